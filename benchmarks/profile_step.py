"""Where a training step's time goes: torch.profiler over steps of the default config (the embedded model's
architecture, batch 8, 16-frame clips), by phase of the step and by op family.

    python benchmarks/profile_step.py                       # 4 plain steps and 1 step with lazy R1
    python benchmarks/profile_step.py --steps 8 --markdown docs/profile.md

Phases are the record_function ranges of vidgan.training.step (D: G forward (fakes), D: forward,
D: backward, D: optimiser, G: G forward, G: D forward, G: backward, G: optimiser, EMA) and the loop's
"data". Op families group aten ops by name (convolution and its backward, the fused op, upfirdn2d,
elementwise, ...); times are self CPU time summed over the profiled steps, divided by their number.
"""
import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

FAMILIES = [  # (family, substrings of op names), first match wins
    ("conv backward", ("convolution_backward",)),
    ("conv forward (mkldnn/oneDNN)", ("mkldnn_convolution", "aten::_convolution", "aten::convolution",
                                      "aten::conv2d", "aten::conv3d", "_slow_conv")),
    ("fused_upsample (vidgan op)", ("fused_upsample",)),
    ("upfirdn2d (vidgan op)", ("upfirdn2d",)),
    ("matmul / linear", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul")),
    ("optimiser (Adam)", ("_foreach", "aten::_fused_adam")),
    ("EMA lerp / copy", ("aten::lerp", "aten::copy_")),
    ("reductions", ("aten::sum", "aten::mean", "aten::std", "aten::var", "aten::norm", "aten::amax")),
    ("activation backward", ("_backward",)),
    ("elementwise", ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::rsqrt", "aten::sqrt",
                     "aten::leaky_relu", "aten::where", "aten::clamp", "aten::square", "aten::pow",
                     "aten::softplus", "aten::sigmoid", "aten::tanh", "aten::sin", "aten::cos", "aten::neg",
                     "aten::exp", "aten::log", "threshold")),
    ("memory / layout (cat, contiguous, empty, fill, index)", ("aten::cat", "aten::contiguous", "aten::clone",
                                                              "aten::empty", "aten::zero", "aten::fill",
                                                              "aten::index", "aten::stack", "aten::pad",
                                                              "aten::constant_pad", "aten::repeat",
                                                              "aten::expand", "aten::copy")),
    ("random numbers", ("aten::randn", "aten::rand", "aten::normal", "aten::uniform", "aten::randint",
                        "aten::randperm", "aten::argsort", "aten::sort")),
]
PHASES = ("data", "D: G forward (fakes)", "D: forward", "D: backward", "D: forward + R1", "D: backward + R1",
          "D: optimiser", "G: G forward", "G: D forward", "G: backward", "G: optimiser", "EMA")


def family(name: str) -> str:
    for fam, keys in FAMILIES:
        if any(k in name for k in keys):
            return fam
    return "other"


def profile(trainer, loader, steps: int):
    from torch.profiler import ProfilerActivity, profile as tprofile

    t0 = time.perf_counter()
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            assert trainer._train_step(loader) is not None
            trainer.nets.step += 1
    wall = (time.perf_counter() - t0) / steps
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 / steps for e in events if e.key in PHASES}
    fams = defaultdict(float)
    for e in events:
        if e.key.startswith("aten::") or "vidgan" in e.key or "fused" in e.key or "upfirdn" in e.key:
            fams[family(e.key)] += e.self_cpu_time_total / 1e6 / steps
    top = sorted(((e.self_cpu_time_total / 1e6 / steps, e.key) for e in events), reverse=True)[:12]
    return wall, phases, dict(fams), top


def table(title, rows, wall):
    lines = [f"**{title}** (wall {wall:.3f} s/step, profiler on)", "", "| | s/step | share |", "|---|---:|---:|"]
    for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.3f} | {100 * v / wall:.0f} % |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_step import _trainer                            # the same trainer as the step benchmark

    data = os.path.join(tempfile.gettempdir(), "vidgan-bench-mm64.vidpack")
    if not os.path.exists(data):
        from vidgan.data import make_moving_mnist

        make_moving_mnist(data, videos=32, frames=20, digits=2, size=64, seed=0)
    ns = argparse.Namespace(threads=args.threads, data=data, batch=args.batch, device="cpu", amp=False)
    trainer, loader = _trainer(ns)
    trainer._train_step(loader)                                # step 0: warm-up (with lazy R1)
    trainer.nets.step += 1
    wall, phases, fams, top = profile(trainer, loader, args.steps)
    trainer.nets.step = 16                                      # a lazy-R1 step
    wall_r1, phases_r1, fams_r1, _ = profile(trainer, loader, 1)
    head = (f"train step profile: default config (64x64, 16 frames, batch {args.batch}), cpu, {args.threads} "
            f"threads, torch {torch.__version__}, vidgan.ops backend {__import__('vidgan.ops').ops.backend()}")
    out = "\n\n".join([head, table(f"phases, mean of {args.steps} plain steps", phases, wall),
                       table(f"op families (self time), mean of {args.steps} plain steps", fams, wall),
                       table("the 12 costliest ops (self time), plain steps", {k: v for v, k in top}, wall),
                       table("phases, one lazy-R1 step (1 step in 16)", phases_r1, wall_r1),
                       table("op families (self time), one lazy-R1 step", fams_r1, wall_r1)])
    print(out)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(out + "\n")


if __name__ == "__main__":
    main()
