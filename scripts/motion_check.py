"""Does a model's video move, and as much as its training data? A quick pixel-level check.

    python scripts/motion_check.py --checkpoint runs/bikes --data bikes.mp4
    python scripts/motion_check.py --data data/moving-mnist-64.vidpack      # the embedded model
    python scripts/motion_check.py --checkpoint runs/bikes --data bikes.mp4 --sheet bikes.png

For N clips of the model (EMA generator, seeds 0..N-1) and N evaluation clips of the data, at the
model's resolution and the same number of frames, it prints:

  motion   mean |frame[t+1] - frame[t]| over pixels, channels and steps, in [0, 1] pixel units.
           0 means a still image; a generator that collapsed to static clips scores near 0
           while its data does not.
  drift    mean |frame[T-1] - frame[0]|: how far a clip gets from its first frame.
  spread   mean over pixels of the standard deviation across clips of frame 0: near 0 when
           every clip shows the same picture (content collapse).

and for the model alone:

  noise    mean |clip(content i, motion i)[t] - clip(content i, motion N+i)[t]|: how much a clip
           changes when only its motion noise does, at equal frame times. Far below `motion`
           means the motion comes from the frame time more than from the noise, so every clip
           of one content repeats the same movement.

FVD (`vidgan eval`) is the quality measure; this only catches the gross failures (no motion,
motion that is noise, one picture for every seed) and says how the model compares with its data.
--sheet also writes a contact sheet: one data clip on top, then model clips of seeds 0, 1, 2, every
second frame.
"""
import argparse
import json
import sys

import torch


def clip_stats(clips: torch.Tensor) -> dict:
    """clips: float [N, T, H, W, C] in [0, 1]."""
    step = (clips[:, 1:] - clips[:, :-1]).abs().mean().item()
    drift = (clips[:, -1] - clips[:, 0]).abs().mean().item()
    spread = clips[:, 0].std(dim=0).mean().item() if clips.shape[0] > 1 else 0.0
    return {"motion": round(step, 4), "drift": round(drift, 4), "spread": round(spread, 4)}


def model_clips(G, num: int, frames: int, motion_seed: int = 0) -> torch.Tensor:
    """Clips of content seeds 0..num-1 and motion seeds motion_seed + (0..num-1), float in [0, 1]."""
    from vidgan.generate import generate

    clips = generate(G, num=num, frames=frames, content_seed=0, motion_seed=motion_seed)
    return torch.from_numpy(clips).float() / 255.0


def noise_effect(clips: torch.Tensor, other: torch.Tensor) -> float:
    """Mean |clips - other| at equal frame times (same content, other motion noise)."""
    return round((clips - other).abs().mean().item(), 4)


def data_clips(path: str, num: int, frames: int, resolution: int) -> torch.Tensor:
    from vidgan.data import VideoDataset

    ds = VideoDataset(path, frames=frames, resolution=resolution, mode="eval", eval_clips=num, seed=0)
    clips = torch.stack([ds[i] for i in range(len(ds))])          # [N, 3, T, H, W] in [-1, 1]
    return ((clips.permute(0, 2, 3, 4, 1) + 1) / 2).clamp(0, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="run dir, checkpoint or model dir (default: the embedded model)")
    p.add_argument("--data", required=True, help="the data the model was trained on (any vidgan data source)")
    p.add_argument("--num", type=int, default=32, help="clips per side (default 32)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model's training length)")
    p.add_argument("--sheet", default=None, help="also write a PNG contact sheet (data clip, then 3 model clips)")
    args = p.parse_args(argv)

    import vidgan

    G = vidgan.load(args.checkpoint)
    frames = args.frames or G.cfg.frames
    fake = model_clips(G, args.num, frames)
    real = data_clips(args.data, args.num, frames, G.cfg.resolution)
    stats = dict(clip_stats(fake), noise=noise_effect(fake, model_clips(G, args.num, frames, motion_seed=args.num)))
    print(json.dumps({"frames": frames, "num": args.num, "model": stats, "data": clip_stats(real)}))
    if args.sheet:
        from vidgan.export import contact_sheet, write_image

        rows = torch.cat([real[:1], fake[:3]])
        write_image(contact_sheet((rows * 255).round().to(torch.uint8).numpy(), every=2), args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
