"""FVD cost: I3D feature extraction clips/s, memory per batch, and the time of a 2048-clip FVD.

Measured side by side in one run on the same random uint8 clips (16 x 64 x 64 by default, what a
64-pixel model generates; the I3D always sees 224 x 224):

- clips/s of the protocol's feature pass (FVD only) and with the companions' per-frame pass, for
  several batch sizes, with the ratios between them;
- peak memory per batch size (CUDA: max allocated; CPU: peak RSS growth in a fresh process per
  configuration), which shows that memory is set by --batch, not by the number of clips;
- the Fréchet-distance step itself (400-d and 1024-d), and the resulting estimate of a
  2048-clip FVD (one generated set against cached real statistics, and both sets uncached).
  --full also runs the 2048-clip extraction end to end and reports the measured time.

    python benchmarks/eval.py                     # CPU
    python benchmarks/eval.py --device cuda --batches 8 16 32 --full
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidgan.metrics import FeatureExtractor, frechet_distance, load_i3d  # noqa: E402

N_FULL = 2048


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_extraction(model, clips, device, batch, companions, repeats):
    """(clips/s, peak memory MB) of FeatureExtractor.stats over `clips`, best of `repeats`.

    Memory: CUDA max allocated; on CPU the growth of peak RSS over the loaded model, which is
    only meaningful in a fresh process (see _child)."""
    rss0 = _peak_rss_mb()
    ex = FeatureExtractor(model=model, device=device, batch=batch, companions=companions)
    ex.stats(clips[:max(2, batch)])  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        ex.stats(clips)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else _peak_rss_mb() - rss0
    return len(clips) / best, mem


def _child(args):
    """One (batch, companions) measurement in a fresh process, printed as JSON."""
    import json

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_i3d()
    clips = np.random.default_rng(0).integers(0, 256, (args.clips, args.frames, args.size, args.size, 3),
                                              dtype=np.uint8)
    rate, mem = time_extraction(model, clips, device, args.child_batch, args.child_companions, args.repeats)
    print(json.dumps({"rate": rate, "mem": mem}))


def measure(args, batch, companions):
    """Runs _child in a subprocess so CPU peak memory is per configuration."""
    import json
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), "--device", args.device, "--clips", str(args.clips),
           "--frames", str(args.frames), "--size", str(args.size), "--repeats", str(args.repeats),
           "--child-batch", str(batch)] + (["--child-companions"] if companions else []) + \
        (["--threads", str(args.threads)] if args.threads else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    r = json.loads(out)
    return r["rate"], r["mem"]


def time_frechet(dim, n=2048, repeats=3):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, dim)), rng.standard_normal((n, dim)) * 1.1 + 0.1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    m1, m2 = a.mean(0), b.mean(0)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        frechet_distance(m1, s1, m2, s2)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--clips", type=int, default=None, help="clips per timing (default: 8 on CPU, 128 on CUDA)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (default: 1 4 8 on CPU)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--full", action="store_true", help=f"also run a {N_FULL}-clip extraction end to end")
    p.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-companions", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_batch:
        return _child(args)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    n = args.clips = args.clips or (128 if cuda else 8)
    batches = args.batches or ([8, 16, 32] if cuda else [1, 4, 8])
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else
                                f" ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores)")
          + f", torch {torch.__version__}; clips {n} x {args.frames} x {args.size} x {args.size} uint8")

    load_i3d()  # converts and caches the weights once, before the timed processes start
    rows = []
    for b in batches:  # each configuration in its own process, one after the other
        fvd_rate, fvd_mem = measure(args, b, False)
        comp_rate, comp_mem = measure(args, b, True)
        rows.append((b, fvd_rate, fvd_mem, comp_rate, comp_mem))
    base = rows[0][1]
    print(f"\n{'batch':>5} {'FVD clips/s':>12} {'vs batch ' + str(batches[0]):>12} {'mem MB':>8}"
          f" {'+companions clips/s':>20} {'cost ratio':>10} {'mem MB':>8}")
    for b, fr, fm, cr, cm in rows:
        print(f"{b:>5} {fr:>12.2f} {fr / base:>11.2f}x {fm:>8.0f} {cr:>20.2f} {fr / cr:>9.2f}x {cm:>8.0f}")

    best_b, best_rate = max(((r[0], r[1]) for r in rows), key=lambda r: r[1])
    best_comp = max(r[3] for r in rows)
    fd400, fd1024 = time_frechet(400), time_frechet(1024)
    print(f"\nFrechet distance: {fd400 * 1e3:.0f} ms (400-d FVD), {fd1024 * 1e3:.0f} ms (1024-d frame FD)")
    one = N_FULL / best_rate + fd400
    print(f"estimated {N_FULL}-clip FVD at batch {best_b}: {one:.0f} s with cached real statistics "
          f"(one set), {2 * one:.0f} s uncached (two sets); with companions "
          f"{N_FULL / best_comp + fd400 + fd1024:.0f} s / {2 * N_FULL / best_comp + fd400 + fd1024:.0f} s "
          f"(generation and decoding not included)")

    if args.full:
        model = load_i3d()
        rng = np.random.default_rng(1)
        full = rng.integers(0, 256, (N_FULL, args.frames, args.size, args.size, 3), dtype=np.uint8)
        ex = FeatureExtractor(model=model, device=device, batch=best_b, companions=False, progress=True)
        _sync(device)
        t0 = time.perf_counter()
        stats = ex.stats(full)
        frechet_distance(*stats.fvd_stats(), *stats.fvd_stats())
        _sync(device)
        took = time.perf_counter() - t0
        print(f"measured {N_FULL}-clip extraction + Frechet distance: {took:.0f} s "
              f"({N_FULL / took:.1f} clips/s; estimate was {one:.0f} s, ratio {took / one:.2f})")


if __name__ == "__main__":
    main()
