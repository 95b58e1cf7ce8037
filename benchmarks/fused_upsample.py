"""fused_upsample against the fastest composite of standard PyTorch ops, and the memory floor.

    python benchmarks/fused_upsample.py                     # CPU, 2 threads, x = [8, 256, 32, 32]
    python benchmarks/fused_upsample.py --model --tiny      # + the shipped model's layers, + per-call overhead
    python benchmarks/fused_upsample.py --level baseline    # the CPU kernels at another level (VIDGAN_CPU_LEVEL)
    python benchmarks/fused_upsample.py --device cuda

Main section: on x = [8, 256, 32, 32] float32, the default 4-tap filter, up=2, bias, lrelu * sqrt(2)
(output [8, 256, 64, 64]) it times, side by side in one run (round robin, median):

  (a) vidgan.ops.fused_upsample (the compiled kernel: impl="ext"),
  (b) several composites of standard torch ops that give the same result (each checked
      against the op before it is timed); the fastest one is the one to beat,
  (c) the floor: allocating and writing the output (torch.empty + fill_), and a plain
      copy of a tensor of the output's size, into fresh memory (clone) and into memory
      already mapped (copy_); their GB/s are the bandwidth yardsticks,

for the forward pass and for forward + backward (gradients of x and bias), and prints
composite/op ratios and the op's achieved GB/s.

--model: the same comparison at every upsampling layer of the shipped model
(vidgan/assets/default/config.json, one training batch of clips x frames per call): the
StyleConv upsamplings (bias, lrelu) and the toRGB skip upsamplings (3 channels, linear).
--tiny: per-call time on tiny tensors ([1, 4, 4, 4]), where host overhead is all there is.
The header names the CPU level the kernels ran at and the machine's load average.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import vidgan.ops as ops
from vidgan.ops import _ext, reference

SQRT2 = math.sqrt(2)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTBOOK = "conv_transpose2d + bias + act"
MALLOC = {"default": {}, "fresh": {"MALLOC_MMAP_THRESHOLD_": "131072"},
          "warm": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs)")
    p.add_argument("--shape", default="8,256,32,32", help="N,C,H,W of the input (main section)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (each round runs every candidate once)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    p.add_argument("--model", action="store_true", help="add the shipped model's layer shapes")
    p.add_argument("--model-rounds", type=int, default=7, help="timed rounds per model layer")
    p.add_argument("--tiny", action="store_true", help="add per-call overhead on tiny tensors")
    p.add_argument("--no-main", action="store_true", help="skip the main [8, 256, 32, 32] section")
    p.add_argument("--level", choices=["avx512", "avx2", "baseline"],
                   help="run the CPU kernels at this level (re-runs the script with VIDGAN_CPU_LEVEL set)")
    p.add_argument("--malloc", choices=sorted(MALLOC), default="default",
                   help="glibc's memory reuse (re-runs the script with its variables): 'fresh' = every large "
                        "tensor on new pages, so each call pays page faults for its outputs and temporaries; "
                        "'warm' = freed memory kept and reused, no page faults after warm-up; 'default' = "
                        "glibc's adaptive mix, where a call pays or not by what ran before it")
    return p.parse_args(argv)


class Timer:
    """Wall time of one call, synchronising the GPU when there is one."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def round_robin(cands, timer, rounds, warmup=2, slow_s=1.0):
    """(median, min) seconds per candidate, timed in turn so machine load hits all alike.

    Each round starts one candidate further on, so no candidate always runs after the same one:
    a call pays for the memory state the previous one leaves (freed pages handed back to the
    system must be faulted in again), and the reference composite leaves the most.
    After one untimed warm-up call, a candidate whose next call takes over `slow_s` seconds is
    timed once more only (it is far behind anyway, and would otherwise dominate the run time).
    """
    times = {k: [] for k in cands}
    slow = set()
    for k, fn in cands.items():
        fn()
        t = timer(fn)
        if t > slow_s:
            slow.add(k)
            times[k] += [t, timer(fn)]
            continue
        for _ in range(warmup - 1):
            fn()
    keys = [k for k in cands if k not in slow]
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            times[k].append(timer(cands[k]))
    return {k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()}


def composites(x, f1, b, gain_up, act="lrelu"):
    """Composites of standard ops with the op's result (bias b may be None): name -> fn(x, b) -> y."""
    c = x.shape[1]
    g = SQRT2 if act == "lrelu" else 1.0                                  # lrelu(g v) = g lrelu(v) for g > 0
    f2 = torch.outer(f1, f1) * gain_up                                    # [4, 4], true-convolution filter
    w_t = f2[None, None].expand(c, 1, 4, 4).contiguous()                  # conv_transpose2d weight (no flip)
    w_t_g = (w_t * g).contiguous()
    w_rows = (f1 * 2)[None, None, :, None].expand(c, 1, 4, 1).contiguous()  # separable: columns then rows
    w_cols = (f1 * 2 * g)[None, None, None, :].expand(c, 1, 1, 4).contiguous()
    w_conv = (f2 * g).flip([0, 1])[None, None].expand(c, 1, 4, 4).contiguous()  # conv2d on the zero-inserted input

    def gb(b):
        return None if b is None else b * g

    def finish(y):
        return F.leaky_relu(y, 0.2, inplace=True) if act == "lrelu" else y

    def convt_bias_act(x, b):  # the textbook composite
        y = F.conv_transpose2d(x, w_t, stride=2, padding=1, groups=c)
        y = y if b is None else y + b.view(1, -1, 1, 1)
        return F.leaky_relu(y, 0.2) * SQRT2 if act == "lrelu" else y

    def convt_folded_inplace(x, b):  # bias and gain folded into the conv, one in-place activation
        return finish(F.conv_transpose2d(x, w_t_g, bias=gb(b), stride=2, padding=1, groups=c))

    def convt_separable(x, b):  # two 1D transposed convolutions
        y = F.conv_transpose2d(x, w_rows, stride=(2, 1), padding=(1, 0), groups=c)
        return finish(F.conv_transpose2d(y, w_cols, bias=gb(b), stride=(1, 2), padding=(0, 1), groups=c))

    def zero_insert_conv(x, b):  # explicit zero insertion, then a depthwise conv2d with bias
        n, _, h, w = x.shape
        z = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)
        return finish(F.conv2d(F.pad(z, [2, 1, 2, 1]), w_conv, bias=gb(b), groups=c))

    def convt_channels_last(x, b):  # the transposed convolution in channels_last (oneDNN's favourite)
        xc = x.contiguous(memory_format=torch.channels_last)
        y = F.conv_transpose2d(xc, w_t_g, bias=gb(b), stride=2, padding=1, groups=c)
        return finish(y).contiguous()

    def ref(x, b):
        return reference.fused_upsample(x, f1, b, up=2, act=act)

    out = {TEXTBOOK: convt_bias_act}
    if act != "linear" or b is not None:  # else it is the textbook composite again
        out["conv_transpose2d(gain, bias folded) + act_"] = convt_folded_inplace
    out.update({"separable conv_transpose2d x2 + act_": convt_separable,
                "zero-insert + conv2d + act_": zero_insert_conv,
                "conv_transpose2d channels_last + act_": convt_channels_last, "reference (vidgan.ops.reference)": ref})
    return out


class Case:
    """The op and its checked composites on one input shape, forward and forward + backward."""

    def __init__(self, shape, act, bias, device, dtype, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(*shape, generator=gen).to(device, dtype)
        self.b = torch.randn(shape[1], generator=gen).to(device, dtype) if bias else None
        self.f1 = ops.setup_filter(device=device, dtype=dtype)
        impl = "ext" if _ext.supports(device) else None  # the kernel, also where impl=None would not pick it
        self.op = lambda x, b: ops.fused_upsample(x, self.f1, b, up=2, act=act, impl=impl)  # noqa: E731
        self.y = self.op(self.x, self.b)
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        self.comps, self.skipped = {}, []
        for name, fn in composites(self.x, self.f1, self.b, 4.0, act).items():
            err = (fn(self.x, self.b).float() - self.y.float()).abs().max().item()
            if err > tol * max(1.0, self.y.abs().max().item()):
                self.skipped.append(f"{name!r} (differs from the op by {err:.3g})")
            else:
                self.comps[name] = fn
        self.xg = self.x.clone().requires_grad_(True)
        self.bg = None if self.b is None else self.b.clone().requires_grad_(True)
        self.dy = torch.randn(self.y.shape, generator=gen).to(device, dtype)

    def forward(self):
        cands = {"op": lambda: self.op(self.x, self.b)}
        cands.update({k: (lambda fn=fn: fn(self.x, self.b)) for k, fn in self.comps.items()})
        return cands

    def fb(self, fn):
        leaves = (self.xg,) if self.bg is None else (self.xg, self.bg)
        return lambda: torch.autograd.grad(fn(self.xg, self.bg), leaves, self.dy)

    def forward_backward(self):
        cands = {"op": self.fb(self.op)}
        cands.update({k: self.fb(fn) for k, fn in self.comps.items()})
        return cands


def main_section(args, device, dtype, timer):
    n, c, h, w = (int(v) for v in args.shape.split(","))
    case = Case((n, c, h, w), "lrelu", True, device, dtype)
    for s in case.skipped:
        print(f"  skipped composite {s}")
    y = case.y
    out_shape, out_bytes = y.shape, y.numel() * y.element_size()
    in_bytes = case.x.numel() * case.x.element_size()
    big = torch.empty(out_shape, device=device, dtype=dtype).fill_(1)
    big2 = torch.empty_like(big)
    cands = case.forward()
    cands["floor: empty + fill_ (output)"] = lambda: torch.empty(out_shape, device=device, dtype=dtype).fill_(1)
    cands["plain copy (output-sized clone)"] = lambda: big.clone()
    cands["copy_ into an existing tensor"] = lambda: big2.copy_(big)
    with torch.no_grad():
        fwd, fwd_min = round_robin(cands, timer, args.rounds)
    fb_cands = case.forward_backward()
    fb_cands["floor: fwd floor + empty + fill_ (dx)"] = lambda: (
        torch.empty(out_shape, device=device, dtype=dtype).fill_(1),
        torch.empty(case.x.shape, device=device, dtype=dtype).fill_(1))
    fbt, fbt_min = round_robin(fb_cands, timer, args.rounds)

    copy_gbs = 2 * out_bytes / fwd["plain copy (output-sized clone)"] / 1e9
    copy_existing_gbs = 2 * out_bytes / fwd["copy_ into an existing tensor"] / 1e9
    best_fwd = min(case.comps, key=lambda k: fwd[k])
    best_fb = min(case.comps, key=lambda k: fbt[k])
    print(f"\nforward{'ms: median':>55s}  (min)")
    for k, v in fwd.items():
        print(f"  {k:<48s} {v * 1e3:9.3f}  ({fwd_min[k] * 1e3:.3f})")
    print(f"\nforward + backward{'ms: median':>44s}  (min)")
    for k, v in fbt.items():
        print(f"  {k:<48s} {v * 1e3:9.3f}  ({fbt_min[k] * 1e3:.3f})")
    fwd_gbs = (in_bytes + out_bytes) / fwd["op"] / 1e9
    bwd_gbs = (in_bytes + 2 * out_bytes + in_bytes + out_bytes) / fbt["op"] / 1e9
    print("\nsummary:")
    print(f"  forward:           best composite '{best_fwd}' / op = {fwd[best_fwd] / fwd['op']:.2f}x "
          f"(textbook conv_transpose2d composite / op = {fwd[TEXTBOOK] / fwd['op']:.2f}x)")
    print(f"  forward+backward:  best composite '{best_fb}' / op = {fbt[best_fb] / fbt['op']:.2f}x "
          f"(textbook / op = {fbt[TEXTBOOK] / fbt['op']:.2f}x)")
    print(f"  op / floor:        forward {fwd['op'] / fwd['floor: empty + fill_ (output)']:.2f}x, "
          f"forward+backward {fbt['op'] / fbt['floor: fwd floor + empty + fill_ (dx)']:.2f}x")
    print(f"  bandwidth:         op forward {fwd_gbs:.1f} GB/s (reads x, writes y), op fwd+bwd {bwd_gbs:.1f} GB/s "
          f"(x, y, dy, dx); plain copy {copy_gbs:.1f} GB/s (clone: read + write into fresh memory), "
          f"{copy_existing_gbs:.1f} GB/s (copy_ into memory already mapped)")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
        if clock_khz and bus_bits:  # double data rate: two transfers per clock
            peak = 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
            print(f"  device:            {props.name}, peak memory bandwidth {peak:.0f} GB/s: op forward at "
                  f"{fwd_gbs / peak:.0%}, fwd+bwd at {bwd_gbs / peak:.0%}, copy_ at {copy_existing_gbs / peak:.0%}")
        else:
            print(f"  device:            {props.name}")


def model_layers():
    """[(input shape, act, bias)] of every fused_upsample call of the shipped model, one training batch."""
    with open(os.path.join(REPO, "vidgan", "assets", "default", "config.json")) as fh:
        cfg = json.load(fh)
    m, training = cfg["model"], cfg["meta"]["training"]
    batch = training["batch"] * m["frames"]  # clips x frames: the synthesis runs per frame
    layers, r = [], 8
    while r <= m["resolution"]:
        width = max(1, min(m["channel_base"] // r, m["channel_max"]))  # ModelConfig.g_width(r)
        layers.append(((batch, width, r // 2, r // 2), "lrelu", True))  # StyleConv(up=True)
        r *= 2
    r = 8
    while r <= m["resolution"]:
        layers.append(((batch, 3, r // 2, r // 2), "linear", False))  # Upsample2d of the RGB skip
        r *= 2
    return layers


def model_section(args, device, dtype, timer):
    print("\nshipped model's upsampling layers (vidgan/assets/default, one training batch per call), ms median:")
    print(f"  {'input':<20s} {'act':<7s} {'op fwd':>8s} {'best comp':>9s} {'ratio':>6s}   "
          f"{'op f+b':>8s} {'best comp':>9s} {'ratio':>6s}   best composites (fwd / f+b)")
    totals = [0.0] * 4
    for shape, act, bias in model_layers():
        case = Case(shape, act, bias, device, dtype)
        with torch.no_grad():
            fwd, _ = round_robin(case.forward(), timer, args.model_rounds)
        fbt, _ = round_robin(case.forward_backward(), timer, args.model_rounds)
        bf, bb = min(case.comps, key=lambda k: fwd[k]), min(case.comps, key=lambda k: fbt[k])
        row = (fwd["op"], fwd[bf], fbt["op"], fbt[bb])
        totals = [t + v for t, v in zip(totals, row)]
        label = "+bias" if bias else ""
        print(f"  {str(list(shape)):<20s} {act + label:<7s} {row[0] * 1e3:8.2f} {row[1] * 1e3:9.2f} "
              f"{row[1] / row[0]:5.2f}x   {row[2] * 1e3:8.2f} {row[3] * 1e3:9.2f} {row[3] / row[2]:5.2f}x   "
              f"{bf.split(' ')[0]} / {bb.split(' ')[0]}")
    print(f"  {'all layers':<28s} {totals[0] * 1e3:8.2f} {totals[1] * 1e3:9.2f} {totals[1] / totals[0]:5.2f}x   "
          f"{totals[2] * 1e3:8.2f} {totals[3] * 1e3:9.2f} {totals[3] / totals[2]:5.2f}x")


def per_call(fn, calls, rounds=5):
    """Seconds per call: the best of `rounds` loops of `calls` calls."""
    for _ in range(max(3, calls // 10)):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def tiny_section(args, device, dtype):
    print("\nper-call time on tiny tensors (host overhead), us: best of 5 loops")
    print(f"  {'input':<16s} {'op fwd':>8s} {'best comp':>10s} {'ratio':>7s}   {'op f+b':>8s} {'best comp':>10s} "
          f"{'ratio':>7s}   {'torch.ops.vidgan fwd (no Python checks)':>40s}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for shape, act, bias in (((1, 4, 4, 4), "lrelu", True), ((1, 3, 4, 4), "linear", False)):
        case = Case(shape, act, bias, device, dtype)
        pads, f2 = ops.default_padding(case.f1, 2), torch.outer(case.f1, case.f1)  # 2D: older builds take no 1D
        direct = lambda: torch.ops.vidgan.fused_upsample(  # noqa: E731
            case.x, f2, case.b, 2, 2, *pads, False, 4.0, act, 0.2, SQRT2, -1.0)
        res = {}
        with torch.no_grad():
            for k, fn in list(case.forward().items()) + [("direct", direct)]:
                res[("fwd", k)] = per_call(lambda fn=fn: (fn(), sync()), 300 if k in ("op", "direct") else 30)
        for k, fn in case.forward_backward().items():
            res[("fb", k)] = per_call(lambda fn=fn: (fn(), sync()), 200 if k == "op" else 20)
        bf = min(case.comps, key=lambda k: res[("fwd", k)])
        bb = min(case.comps, key=lambda k: res[("fb", k)])
        label = "+bias" if bias else ""
        print(f"  {str(list(shape)) + ' ' + act + label:<16s} {res[('fwd', 'op')] * 1e6:8.1f} "
              f"{res[('fwd', bf)] * 1e6:10.1f} {res[('fwd', bf)] / res[('fwd', 'op')]:6.1f}x   "
              f"{res[('fb', 'op')] * 1e6:8.1f} {res[('fb', bb)] * 1e6:10.1f} "
              f"{res[('fb', bb)] / res[('fb', 'op')]:6.1f}x"
              f"   {res[('fwd', 'direct')] * 1e6:40.1f}")


def main(argv=None):
    args = parse_args(argv)
    env = dict(MALLOC[args.malloc])
    if args.level:
        env["VIDGAN_CPU_LEVEL"] = args.level  # read once when vidgan._C loads: start afresh
    if any(os.environ.get(k) != v for k, v in env.items()) and os.environ.get("VIDGAN_BENCH_REEXEC") != "1":
        os.environ.update(env, VIDGAN_BENCH_REEXEC="1")
        os.execv(sys.executable, [sys.executable] + sys.argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible.")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    timer = Timer(device)
    backend = ops.backend(device) if _ext.supports(device) else "reference"
    cpu_level = getattr(ops, "cpu_level", lambda: None)()  # None: an older vidgan, or no extension
    level = f", CPU level {cpu_level}" if cpu_level else ""
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"vidgan fused_upsample benchmark: {args.dtype} on {device} (threads={torch.get_num_threads()}), "
          f"torch {torch.__version__}, 4-tap filter, up=2; op: the compiled kernel (impl='ext'{level}); "
          f"impl=None here: {backend}; malloc: {args.malloc}; {load}")
    if not _ext.supports(device):
        print("WARNING: the compiled extension is not in use; the 'op' below is the reference path.")
    if not args.no_main:
        print(f"main: x=[{args.shape}], bias, lrelu*sqrt(2)")
        main_section(args, device, dtype, timer)
    if args.model:
        model_section(args, device, dtype, timer)
    if args.tiny:
        tiny_section(args, device, dtype)
    if hasattr(os, "getloadavg"):
        print("\nload average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
