"""Generation throughput: frames/s of the generator alone, and the cold `vidgan generate` command.

    python benchmarks/generate.py [--checkpoint PATH] [--device cpu|cuda] [--repeats 3]
    python benchmarks/generate.py --compile       # also: eager against torch.compile'd, side by side

Prints, measured in one run on the same model:
  * generator frames/s at several chunk sizes (synthesis only, no encoding),
  * wall time of the whole cold command `vidgan generate --out clip.mp4` (a fresh Python
    process: import, load, render, encode), median of --repeats, and its split into
    process start + import, and the rest,
  * the ratio render-only time / cold-command time,
  * with --compile: frames/s of the eager and the compiled generator (chunks of 16 frames, alternated
    render by render), and the compilation time.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import vidgan
import vidgan.ops
from vidgan.generate import iter_chunks


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def generator_fps(G, device, frames, chunk, repeats):
    list(iter_chunks(G, num=1, frames=min(frames, chunk), batch=chunk, device=device))  # warm-up
    times = []
    for r in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in iter_chunks(G, num=1, frames=frames, seed=r, batch=chunk, device=device):
            pass
        _sync(device)
        times.append(time.perf_counter() - t0)
    return frames / statistics.median(times)


def compiled_vs_eager(args, device, repeats):
    """frames/s of two copies of the model, eager and compile=True, rendering --frames frames alternately."""
    eager, comp = (vidgan.load(args.checkpoint, device=str(device)) for _ in range(2))
    t0 = time.perf_counter()
    list(iter_chunks(comp, num=1, frames=args.frames, device=device, compile=True))   # compiles (both chunk sizes)
    compile_s = time.perf_counter() - t0
    list(iter_chunks(eager, num=1, frames=args.frames, device=device))
    times = {"eager": [], "compiled": []}
    for r in range(repeats):
        for name, G in (("eager", eager), ("compiled", comp))[::1 if r % 2 == 0 else -1]:
            _sync(device)
            t = time.perf_counter()
            for _ in iter_chunks(G, num=1, frames=args.frames, seed=r, device=device):
                pass
            _sync(device)
            times[name].append(time.perf_counter() - t)
    fps = {k: args.frames / statistics.median(v) for k, v in times.items()}
    ratio = fps["compiled"] / fps["eager"]
    pays = (f"compiling pays after about {compile_s * fps['eager'] / (1 - 1 / ratio):.0f} rendered frames"
            if ratio > 1 else "compiling does not pay here")
    print(f"torch.compile: first render {compile_s:.1f} s (compilation included); eager {fps['eager']:.1f} "
          f"frames/s, compiled {fps['compiled']:.1f} frames/s: {ratio:.2f}x; {pays}")


def cold_command(args, repeats):
    cmd = [sys.executable, "-m", "vidgan", "generate", "--overwrite"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.device:
        cmd += ["--device", args.device]
    walls, imports = [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd + ["--out", os.path.join(d, "clip.mp4")], check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import vidgan.cli, torch"], check=True)
            imports.append(time.perf_counter() - t0)
    return statistics.median(walls), statistics.median(imports)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="only: eager against compiled generator, side by side")
    args = ap.parse_args()
    device = torch.device(args.device or "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    G = vidgan.load(args.checkpoint, device=str(device))
    cfg = G.cfg
    print(f"model: {cfg.resolution}x{cfg.resolution}, trained on {cfg.frames} frames, motion={cfg.motion}, "
          f"{sum(p.numel() for p in G.parameters()) / 1e6:.2f}M params; device {device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"op backend {vidgan.ops.backend(device)}")
    if args.compile:
        return compiled_vs_eager(args, device, args.repeats)
    for chunk in (1, 8, 16, 32):
        fps = generator_fps(G, device, args.frames, chunk, args.repeats)
        print(f"generator alone, chunk {chunk:>2} frames: {fps:8.1f} frames/s")
    wall, imp = cold_command(args, args.repeats)
    print(f"cold `vidgan generate --out clip.mp4` ({(G.meta or {}).get('frames', cfg.frames)} frames): "
          f"{wall:.2f} s median of {args.repeats} "
          f"(of which python start + `import vidgan.cli, torch`: {imp:.2f} s; load+render+encode: {wall - imp:.2f} s)")
    print(f"ratio cold command / 10 s floor: {wall / 10:.2f}")


if __name__ == "__main__":
    main()
