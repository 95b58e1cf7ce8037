"""Seconds per training step and peak memory at the default 64x64x16 config: fused op vs reference path.

    python benchmarks/train_step.py                 # CPU, batch 8, 3 timed steps x 2 rounds
    python benchmarks/train_step.py --device cuda --batch 32 --steps 20

Each measurement runs in a fresh child process (so peak memory is that of one configuration):
`ext` uses the compiled vidgan._C kernels, `reference` the same code with VIDGAN_NO_EXT=1 (the
plain-PyTorch reference of the op). The children alternate (ext, reference, ext, reference, ...)
so a change in machine load hits both sides alike; each child times `--steps` full training steps
(D update + G update + EMA, as in `vidgan train`) after `--warmup` untimed ones. Lazy R1 falls on
step 0 (warm-up), so the timed steps are plain steps; one R1 step every 16 adds the R1 pass.
Peak memory: resident set size of the child (CPU) or torch's peak allocation (CUDA).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from vidgan.ops import backend
    from vidgan.training import TrainConfig
    from vidgan.training.loop import Trainer
    from vidgan.training.reporting import peak_memory_mb

    run = tempfile.mkdtemp(prefix="vidgan-bench-run-")
    cfg = TrainConfig(run_dir=run, data=args.data, batch=args.batch, device=args.device, workers=0,
                      sample_every=0, ckpt_every=0, log_every=0, progress=False, tensorboard=False,
                      amp=args.amp)
    trainer = Trainer(cfg, log=lambda msg: None)
    loader = trainer._loader()
    times = []
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    for i in range(args.warmup + args.steps):
        sync()
        t = time.perf_counter()
        assert trainer._train_step(loader) is not None
        sync()
        trainer.step += 1
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    print(json.dumps({"backend": backend(trainer.device), "times": times,
                      "peak_mb": peak_memory_mb(trainer.device)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="timed steps per child")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="children per side, alternating")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--data", default=None, help="training data (default: a small Moving MNIST pack, made once)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    if args.data is None:
        from vidgan.data import make_moving_mnist

        args.data = os.path.join(tempfile.gettempdir(), "vidgan-bench-mm64.vidpack")
        if not os.path.exists(args.data):
            make_moving_mnist(args.data, videos=32, frames=20, digits=2, size=64, seed=0)
    argv = [sys.executable, os.path.abspath(__file__), "--child", "--batch", str(args.batch), "--steps",
            str(args.steps), "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads),
            "--data", args.data] + (["--amp"] if args.amp else [])
    results = {"ext": [], "reference": []}
    peaks = {"ext": [], "reference": []}
    backends = {}
    for r in range(args.rounds):
        for side in ("ext", "reference"):
            env = dict(os.environ)
            env.pop("VIDGAN_NO_EXT", None)
            if side == "reference":
                env["VIDGAN_NO_EXT"] = "1"
            out = subprocess.run(argv, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{side} child failed:\n{out.stderr[-3000:]}")
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            results[side] += rec["times"]
            peaks[side].append(rec["peak_mb"])
            backends[side] = rec["backend"]
            print(f"round {r + 1} {side:9s} backend={rec['backend']:10s} s/step "
                  + " ".join(f"{t:.3f}" for t in rec["times"]) + f"  peak {rec['peak_mb']:.0f} MB", flush=True)

    import torch

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\ntrain step, default 64x64x16 model, batch {args.batch}, device {args.device}, "
          f"{args.threads} threads, torch {torch.__version__}")
    for side in ("ext", "reference"):
        print(f"  {side:9s} ({backends[side]}): {med[side]:.3f} s/step (median of {len(results[side])}), "
              f"{args.batch / med[side]:.2f} clips/s, peak memory {max(peaks[side]):.0f} MB")
    print(f"  speed-up of the fused op: {med['reference'] / med['ext']:.2f}x "
          f"(peak memory ratio {max(peaks['reference']) / max(peaks['ext']):.2f}x)")


if __name__ == "__main__":
    main()
