"""Seconds per training step and peak memory at the default 64x64x16 config: fused op vs reference path,
or this working tree against the code of another git revision.

    python benchmarks/train_step.py                 # CPU, batch 8, 6 timed steps per side
    python benchmarks/train_step.py --device cuda --batch 32 --steps 20
    python benchmarks/train_step.py --against 3a93221   # this tree vs that commit, the shipped model's config
    python benchmarks/train_step.py --against 3a93221 --compile   # ... and this tree with vidgan train --compile
    python benchmarks/train_step.py --preset fast --variant model.frame_d_frames=4  # one setting's effect, side by side

--against REV: the code at REV is checked out into a temporary git worktree and its extension built
there (cached under the temp folder by commit); one child process per tree trains the embedded model's
configuration (its model and optimiser settings from vidgan/assets/default/config.json, 16-frame clips,
batch --batch), read by both as a TrainConfig JSON; the parent asks each child for one step at a time,
alternating (A B B A ...), so both see the same machine load, and prints the ratio of the medians and
each child's peak memory (resident set size on CPU).

Time: one process trains the default model and alternates the op's implementation step by step
(ext, reference, reference, ext, ...): `ext` is the compiled vidgan._C kernel, `reference` its
plain-PyTorch reference (the op's dispatch is told the extension does not support the device),
so both sides see the same machine load, the same warm caches and the same model. Each timed step
is a full training step as in `vidgan train` (D update, G update, EMA); lazy R1 falls on step 0
(warm-up), so timed steps are plain steps (one step in 16 adds the R1 pass).

Memory: a fresh child process per side (VIDGAN_NO_EXT=1 for the reference) runs warm-up plus two
steps; peak = resident set size of that process (CPU) or torch's peak allocation (CUDA).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _trainer(args):
    import torch

    torch.set_num_threads(args.threads)
    from vidgan.training import TrainConfig
    from vidgan.training.loop import Trainer

    run = tempfile.mkdtemp(prefix="vidgan-bench-run-")
    cfg = TrainConfig(run_dir=run, data=args.data, batch=args.batch, device=args.device, workers=0,
                      sample_every=0, ckpt_every=0, log_every=0, progress=False, tensorboard=False, amp=args.amp)
    trainer = Trainer(cfg, log=lambda msg: None)
    return trainer, trainer._loader()


def _step(trainer, loader) -> float:
    import torch

    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    assert trainer._train_step(loader) is not None, "non-finite loss"
    sync()
    trainer.nets.step += 1
    return time.perf_counter() - t


def child_time(args) -> None:
    """Alternate ext / reference step by step in one process."""
    from vidgan.ops import _ext, backend

    trainer, loader = _trainer(args)
    supports = _ext.supports
    use = {"ext": supports, "reference": lambda device: False}
    if not supports(trainer.device):
        sys.exit(f"the compiled extension cannot run on {trainer.device} here ({_ext.ERROR}); build it first.")
    times = {"ext": [], "reference": []}
    order = ("ext", "reference")
    for i in range(args.warmup):                              # warm both paths
        for side in order:
            _ext.supports = use[side]
            _step(trainer, loader)
    for i in range(args.steps):
        for side in (order if i % 2 == 0 else order[::-1]):
            _ext.supports = use[side]
            times[side].append(_step(trainer, loader))
    _ext.supports = supports
    print(json.dumps({"times": times, "backend": backend(trainer.device)}))


def child_memory(args) -> None:
    from vidgan.ops import backend
    from vidgan.training.reporting import peak_memory_mb

    trainer, loader = _trainer(args)
    for _ in range(args.warmup + 2):
        _step(trainer, loader)
    print(json.dumps({"peak_mb": peak_memory_mb(trainer.device), "backend": backend(trainer.device)}))


def child_serve(args) -> None:
    """Read commands from stdin ("step", "peak", "quit"); answer each with one JSON line. The trainer comes
    from --config (a TrainConfig JSON both trees read) through whatever vidgan is first on sys.path."""
    import torch

    torch.set_num_threads(args.threads)
    from vidgan.training.config import TrainConfig
    from vidgan.training.loop import Trainer
    from vidgan.training.reporting import peak_memory_mb

    with open(args.config) as fh:
        cfg = TrainConfig.from_dict(json.load(fh))
    trainer = Trainer(cfg, log=lambda msg: None)
    loader = trainer._loader()
    owner = trainer.nets if hasattr(trainer, "nets") else trainer     # where the step counter lives
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "step":
            t = time.perf_counter()
            assert trainer._train_step(loader) is not None, "non-finite loss"
            owner.step += 1
            print(json.dumps({"s": time.perf_counter() - t}), flush=True)
        elif cmd == "peak":
            print(json.dumps({"peak_mb": peak_memory_mb(trainer.device)}), flush=True)
        else:
            break


def _run_child(argv, env, what):
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per side")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--no-memory", action="store_true", help="skip the two memory children")
    p.add_argument("--data", default=None, help="training data (default: a small Moving MNIST pack, made once)")
    p.add_argument("--against", metavar="REV", default=None, help="time this tree against git revision REV")
    p.add_argument("--compile", action="store_true", help="with --against: also time this tree with compile: true")
    p.add_argument("--tiny", action="store_true", help="with --against: the tests' 32x32x8 model instead")
    p.add_argument("--preset", default=None, help="with --against or --variant: this preset's settings instead")
    p.add_argument("--variant", nargs="+", metavar="KEY=VALUE", default=None,
                   help="time this tree with these --set values against itself without them")
    p.add_argument("--child", choices=("time", "memory", "serve"), help=argparse.SUPPRESS)
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "time":
        return child_time(args)
    if args.child == "memory":
        return child_memory(args)
    if args.child == "serve":
        return child_serve(args)
    if args.against or args.variant:
        from against import run_against                    # benchmarks/against.py

        return run_against(args, __file__)

    if args.data is None:
        from vidgan.data import make_moving_mnist

        args.data = os.path.join(tempfile.gettempdir(), "vidgan-bench-mm64.vidpack")
        if not os.path.exists(args.data):
            make_moving_mnist(args.data, videos=32, frames=20, digits=2, size=64, seed=0)
    base = [sys.executable, os.path.abspath(__file__), "--batch", str(args.batch), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads),
            "--data", args.data] + (["--amp"] if args.amp else [])
    env = {k: v for k, v in os.environ.items() if k != "VIDGAN_NO_EXT"}
    rec = _run_child(base + ["--child", "time"], env, "timing child")
    times = rec["times"]
    peaks = {}
    if not args.no_memory:
        peaks["ext"] = _run_child(base + ["--child", "memory"], env, "ext memory child")["peak_mb"]
        peaks["reference"] = _run_child(base + ["--child", "memory"], dict(env, VIDGAN_NO_EXT="1"),
                                        "reference memory child")["peak_mb"]

    import torch

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"train step, default 64x64x16 model, batch {args.batch}, device {args.device} ({rec['backend']}), "
          f"{args.threads} threads, torch {torch.__version__}")
    for side in ("ext", "reference"):
        mem = f", peak memory {peaks[side]:.0f} MB" if side in peaks else ""
        print(f"  {side:9s}: {med[side]:.3f} s/step (median of {len(times[side])}; "
              f"all: {' '.join(f'{t:.2f}' for t in times[side])}), {args.batch / med[side]:.2f} clips/s{mem}")
    ratios = sorted(r / e for e, r in zip(times["ext"], times["reference"]))
    print(f"  speed-up of the fused op: {med['reference'] / med['ext']:.2f}x "
          f"(per adjacent pair: {ratios[0]:.2f}x to {ratios[-1]:.2f}x)"
          + (f"; peak memory reference / ext: {peaks['reference'] / peaks['ext']:.2f}x" if peaks else ""))


if __name__ == "__main__":
    main()
