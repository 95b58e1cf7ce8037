"""Data loading speed: clips/s for 16x64x64 clips from PNG frame folders, mp4 files and a .vidpack.

Everything is measured side by side in one run on the same content (a Moving MNIST set written
three ways), through the real path a trainer uses: VideoDataset + build_loader, 0 and 2 workers.
Also times the candidate PNG/JPEG decoders, which is how vidgan.data.decode picked its decoder.

    python benchmarks/data.py                          # default: 64 videos x 32 frames
    python benchmarks/data.py --videos 128 --batches 40
    python benchmarks/data.py --train-steps-per-s 2.5 --train-batch 16   # compare with the trainer

Floors (issue 3): packed >= 5x PNG folders; data loading >= 3x what training consumes.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidgan.data import VideoDataset, build_loader, make_moving_mnist, pack_dataset  # noqa: E402
from vidgan.data.loader import default_workers  # noqa: E402

PACK_FLOOR = 5.0
TRAIN_FLOOR = 3.0


def compare_with_training(steps_per_s, batch, clips_per_s, floor=TRAIN_FLOOR):
    """Print how many times faster data arrives than training consumes it; returns that ratio.

    steps_per_s: training steps per second (default training config), batch: clips per step,
    clips_per_s: what the loader delivers with the settings training uses.
    """
    need = steps_per_s * batch
    ratio = clips_per_s / need if need > 0 else float("inf")
    verdict = "OK" if ratio >= floor else f"BELOW the {floor:g}x floor"
    print(f"training consumes {need:.1f} clips/s ({steps_per_s:g} steps/s x batch {batch}); "
          f"loader supplies {clips_per_s:.1f} clips/s -> {ratio:.1f}x ({verdict})")
    return ratio


def time_decoders(folder, repeats=3):
    """ms per 64x64 frame for torchvision.io, PIL and imageio on the same PNG files."""
    import warnings

    import imageio.v3 as iio
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_image

    files = sorted(os.path.join(folder, n) for n in os.listdir(folder))

    def tv(p):
        with open(p, "rb") as fh:
            data = torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_image(data, mode=ImageReadMode.RGB)

    out = {}
    for name, fn in (("torchvision.io", tv), ("PIL", lambda p: np.asarray(Image.open(p).convert("RGB"))),
                     ("imageio", lambda p: iio.imread(p))):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for p in files:
                fn(p)
            best = min(best, (time.perf_counter() - t0) / len(files))
        out[name] = best * 1e3
    return out


def write_mp4s(frames_root, out_root):
    """Encode every frame folder as an mp4 (h264, yuv420p, crf 18) with the same content."""
    import imageio_ffmpeg

    from vidgan.data import read_video

    os.makedirs(out_root)
    for name in sorted(os.listdir(frames_root)):
        src = os.path.join(frames_root, name)
        if not os.path.isdir(src):
            continue
        v = read_video(src)
        w = imageio_ffmpeg.write_frames(os.path.join(out_root, name + ".mp4"), (v.shape[2], v.shape[1]), fps=10,
                                        quality=None, output_params=["-crf", "18"], macro_block_size=1)
        w.send(None)
        for f in v:
            w.send(np.ascontiguousarray(f))
        w.close()


def _timed(loader, batches, batch):
    t0 = time.perf_counter()
    for _ in range(batches):
        x = next(loader)
    assert x.shape == (batch, 3, 16, 64, 64)
    return batches * batch / (time.perf_counter() - t0)


def measure(datasets, batch, workers, batches, rounds=5):
    """clips/s per source for one worker count, sources interleaved round by round.

    All loaders are built and warmed first; then each round times `batches` batches of every
    source in turn, so the sources share the same moments of machine load. Returns
    ({label: best clips/s}, {label: [clips/s per round]}).
    """
    loaders = {}
    for label, ds, slow in datasets:
        loaders[label] = build_loader(ds, batch_size=batch, workers=workers, seed=0, pin_memory=False)
        warm = max(2, 2 * workers) if slow else len(ds) // batch + 2 + 2 * workers  # fill the video caches
        for _ in range(warm):
            next(loaders[label])
    per_round = {label: [] for label in loaders}
    for r in range(rounds):
        for label, ds, slow in datasets:
            if slow and r:  # ~150 ms per clip: one short round is enough
                continue
            per_round[label].append(_timed(loaders[label], max(2, batches // 8) if slow else batches, batch))
    del loaders
    return {k: max(v) for k, v in per_round.items()}, per_round


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--frames", type=int, default=32, help="frames per source video")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=16, help="timed batches per source and round (5 rounds)")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="worker counts to compare (default: 0, 2 and build_loader's default)")
    ap.add_argument("--train-steps-per-s", type=float, default=None, help="training step rate to compare with")
    ap.add_argument("--train-batch", type=int, default=None, help="training batch size (default: --batch)")
    args = ap.parse_args(argv)
    if args.workers is None:
        args.workers = sorted({0, 2, default_workers()})
    torch.set_num_threads(1)  # the main process is the trainer's; loading must not need its cores

    with tempfile.TemporaryDirectory(prefix="vidgan-bench-") as tmp:
        t0 = time.perf_counter()
        png = make_moving_mnist(os.path.join(tmp, "png"), videos=args.videos, frames=args.frames, digits=2)
        mp4 = os.path.join(tmp, "mp4")
        write_mp4s(png, mp4)
        pack = pack_dataset(png, os.path.join(tmp, "d.vidpack"), resolution=64)["out"]
        print(f"sources: {args.videos} videos x {args.frames} frames of 64x64, written in "
              f"{time.perf_counter() - t0:.1f} s; clips of 16 frames, batch {args.batch}, "
              f"best of 5 interleaved rounds of {args.batches} batches, torch threads 1, {os.cpu_count()} CPUs")

        dec = time_decoders(os.path.join(png, "video_00000"))
        fastest = min(dec, key=dec.get)
        print("PNG decode, ms per 64x64 frame: " + ", ".join(f"{k} {v:.3f}" for k, v in dec.items())
              + f" -> fastest: {fastest}")

        sources = [("PNG folders", png, {}), ("mp4 files", mp4, {}), ("mp4 (no cache)", mp4, {"cache_bytes": 0}),
                   ("packed", pack, {})]
        datasets = [(label, VideoDataset(root, frames=16, resolution=64, **kw), "no cache" in label)
                    for label, root, kw in sources]
        rates, rounds = {}, {}
        for w in args.workers:
            best, per_round = measure(datasets, args.batch, w, args.batches)
            for label in best:
                rates[label, w], rounds[label, w] = best[label], per_round[label]
        print(f"{'source':<16}" + "".join(f"{f'{w} workers':>14}" for w in args.workers))
        for label, _, _ in sources:
            print(f"{label:<16}" + "".join(f"{rates[label, w]:>14.1f}" for w in args.workers) + "   clips/s")
        for w in args.workers:
            paired = sorted(p / q for p, q in zip(rounds["packed", w], rounds["PNG folders", w]))
            ratio = rates["packed", w] / rates["PNG folders", w]
            verdict = "OK" if ratio >= PACK_FLOOR else f"BELOW the {PACK_FLOOR:g}x floor"
            print(f"packed / PNG folders, {w} workers: {ratio:.1f}x of best rates, median of paired rounds "
                  f"{paired[len(paired) // 2]:.1f}x ({verdict})")
        dw = default_workers()
        if 0 in args.workers and dw in args.workers:
            print(f"packed / PNG folders with build_loader's defaults (0 vs {dw} workers): "
                  f"{rates['packed', 0] / rates['PNG folders', dw]:.1f}x")
        if args.train_steps_per_s:  # build_loader's defaults: packed -> 0 workers, files -> default_workers()
            print(f"default loader settings: packed 0 workers, PNG folders {default_workers()} worker(s)")
            compare_with_training(args.train_steps_per_s, args.train_batch or args.batch, rates["packed", 0])
            compare_with_training(args.train_steps_per_s, args.train_batch or args.batch,
                                  rates["PNG folders", default_workers()])


if __name__ == "__main__":
    main()
