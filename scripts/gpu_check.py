"""One GPU visit in one command: build, CUDA tests on both kernels, memcheck, op benchmark, training, generation.

    python scripts/gpu_check.py OUT             # on the GPU machine, from a fresh clone (6 to 8 minutes, H100)
    python scripts/gpu_check.py OUT --dry-run   # anywhere: prints every step's command, runs the CPU parts
    make gpu-check OUT=dir

Steps, in order, each a subprocess under its own time limit (and the whole run under --budget seconds);
a failed step is recorded and the run goes on:
  build      VIDGAN_CUDA=1, TORCH_CUDA_ARCH_LIST from nvidia-smi, pip install --no-build-isolation --no-deps -e .
  ext        vidgan._C has CUDA, backend('cuda')
  tests      pytest -m cuda with VIDGAN_CUDA_KERNEL unset (v1, the default) and =v2
  bench      benchmarks/fused_upsample.py at [8,256,32,32] (float32/16, bfloat16) and the embedded model's shapes
             (64 channels, 4..32 px in, 8..64 px out, 128 frames per call; 3-channel skips), v1 and v2 side by side
             in one process (the kernel switch is read at every call); copy_ bandwidth at the largest layer
  memcheck   compute-sanitizer --tool memcheck over the v2 op tests (float32, float16: bfloat16 accesses are the same)
  train      benchmarks/train_step.py --device cuda --batch 32 (synthetic PNG frames: no network, no mlxtend), v2 and v1
  generate   vidgan generate to PNG frames (no imageio-ffmpeg there) and benchmarks/generate.py --device cuda,
             also with --compile (eager against torch.compile'd generator)
It writes OUT/report.md, OUT/report.json (rewritten after every step) and OUT/logs/<step>.log.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
HEADLINE = "8,256,32,32"
MODEL = [f"128,64,{r},{r}" for r in (4, 8, 16, 32)]    # StyleConv up: [B*T, 64, r/2, r/2] -> r = 8..64
SKIPS = [f"128,3,{r},{r}" for r in (4, 8, 16, 32)]     # Upsample2d of the RGB skips
KERNELS = ("v1", "v2")


def sh(cmd, timeout=20):
    """Output of a quick command, or '' (never raises)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT).stdout.strip()
    except Exception:
        return ""


def versions():
    import torch

    v = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
         "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count(), "platform": platform.platform(),
         "gpu": sh(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader"]),
         "nvcc": (sh(["nvcc", "--version"])
                  or sh([os.path.join(cuda_home(), "bin", "nvcc"), "--version"])).splitlines()[-1:],
         "sanitizer": sanitizer() or None, "commit": sh(["git", "rev-parse", "HEAD"]) or None}
    caps = sorted({c.strip()
                   for c in sh(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]).splitlines()
                   if c.strip()})
    if not caps and torch.cuda.is_available():
        caps = sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    v["arch_list"] = ";".join(caps) or None
    return v


def cuda_home():
    return os.environ.get("CUDA_HOME") or "/usr/local/cuda"


def sanitizer():
    return shutil.which("compute-sanitizer") or next(
        (p for p in (os.path.join(cuda_home(), "bin", "compute-sanitizer"),) if os.path.exists(p)), "")


# ----------------------------------------------------------------------------- parsers
def parse_pytest(text):
    out = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", text[-3000:])}
    out["failures"] = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)[:30]
    return out


def parse_memcheck(text):
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    return dict(parse_pytest(text), memcheck_errors=int(m.group(1)) if m else None)


def parse_train(text):
    out = {side: float(t) for side, t in re.findall(r"^\s+(ext|reference)\s*: ([\d.]+) s/step", text, re.M)}
    m = re.search(r"speed-up of the fused op: ([\d.]+)x", text)
    out["speedup"] = float(m.group(1)) if m else None
    out["peak_mb"] = {side: float(mb)
                      for side, mb in re.findall(r"^\s+(ext|reference)\s*:.*peak memory (\d+) MB", text, re.M)}
    return out


def parse_generate(text):
    fps = {int(c): float(f) for c, f in re.findall(r"chunk\s+(\d+) frames:\s+([\d.]+) frames/s", text)}
    m = re.search(r"cold `vidgan generate.*?: ([\d.]+) s median", text)
    return {"frames_per_s": fps, "cold_command_s": float(m.group(1)) if m else None}


def parse_compile(text):
    m = re.search(r"first render ([\d.]+) s .*eager ([\d.]+) frames/s, compiled ([\d.]+) frames/s", text)
    return {"compile_s": float(m.group(1)), "eager_fps": float(m.group(2)), "compiled_fps": float(m.group(3))} \
        if m else {}


def parse_bench(text):
    """The figures benchmarks/fused_upsample.py prints (ms are medians)."""
    out, section = {"fwd": {}, "fwdbwd": {}}, None
    for line in text.splitlines():
        if line.startswith("forward + backward"):
            section = "fwdbwd"
        elif line.startswith("forward"):
            section = "fwd"
        elif line.startswith("summary"):
            section = None
        m = re.match(r"^  (.+?)\s+(\d+\.\d+)\s+\((\d+\.\d+)\)$", line)
        if section and m:
            out[section][m.group(1)] = float(m.group(2))
    for key, pat in (("best_fwd", r"forward:\s+best composite '(.+?)' / op = ([\d.]+)x"),
                     ("best_fwdbwd", r"forward\+backward:\s+best composite '(.+?)' / op = ([\d.]+)x")):
        m = re.search(pat, text)
        out[key] = {"name": m.group(1), "composite_over_op": float(m.group(2))} if m else None
    for key, pat in (("op_fwd_gbs", r"op forward ([\d.]+) GB/s"), ("op_fwdbwd_gbs", r"op fwd\+bwd ([\d.]+) GB/s"),
                     ("clone_gbs", r"plain copy ([\d.]+) GB/s"), ("copy_gbs", r"([\d.]+) GB/s \(copy_ into"),
                     ("peak_gbs", r"peak memory bandwidth (\d+) GB/s")):
        m = re.search(pat, text)
        out[key] = float(m.group(1)) if m else None
    return out


# ----------------------------------------------------------------------------- benchmark child
def bench_child(args):
    """Runs benchmarks/fused_upsample.py's main() per case and kernel in this one process; JSON lines to args.jsonl."""
    spec = importlib.util.spec_from_file_location("vidgan_bench_fu",
                                                  os.path.join(ROOT, "benchmarks", "fused_upsample.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for case in args.cases:
        shape, dtype, rounds = case.split(":")
        for kernel in args.kernels.split(","):
            if kernel == "v2":
                os.environ["VIDGAN_CUDA_KERNEL"] = "v2"
            else:
                os.environ.pop("VIDGAN_CUDA_KERNEL", None)
            buf, t0, err = io.StringIO(), time.time(), None
            try:
                with contextlib.redirect_stdout(buf):
                    mod.main(["--device", args.device, "--shape", shape, "--dtype", dtype, "--rounds", rounds])
            except BaseException as exc:  # noqa: BLE001  (SystemExit included: record it and go on)
                err = f"{type(exc).__name__}: {exc}"
            text = buf.getvalue()
            rec = {"shape": shape, "dtype": dtype, "kernel": kernel, "seconds": round(time.time() - t0, 2),
                   "error": err, "figures": parse_bench(text), "output": text}
            with open(args.jsonl, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"bench {shape} {dtype} {kernel}: {rec['seconds']} s{' ERROR ' + err if err else ''}", flush=True)


# ----------------------------------------------------------------------------- steps
def make_frames(root, videos=32, frames=20, size=64):
    """Moving squares as PNG frame folders (video_NNN/frame_NNN.png): training data without network access."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for v in range(videos):
        d = os.path.join(root, f"video_{v:03d}")
        os.makedirs(d, exist_ok=True)
        pos, vel, col = rng.uniform(8, 40, 2), rng.uniform(-3, 3, 2), rng.integers(80, 255, 3)
        for t in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            y, x = (pos + vel * t).astype(int) % (size - 16)
            img[y:y + 16, x:x + 16] = col
            Image.fromarray(img).save(os.path.join(d, f"frame_{t:03d}.png"))
    return root


def steps(out, data, v, dry=False):
    env_build = {"VIDGAN_CUDA": "1", "VIDGAN_BUILD_EXT": "1", "TORCH_CUDA_ARCH_LIST": v.get("arch_list") or "9.0",
                 "MAX_JOBS": str(os.cpu_count() or 4), "CUDA_HOME": cuda_home()}
    v2 = {"VIDGAN_CUDA_KERNEL": "v2"}
    ext_probe = ("import json, vidgan.ops as o, vidgan.ops._ext as e; "
                 "print(json.dumps({'has_cuda': e.has_cuda(), 'backend': o.backend('cuda'), 'error': e.ERROR}))")
    cases = ([f"{HEADLINE}:{d}:21" for d in ("float32", "float16", "bfloat16")]
             + [f"{s}:float32:11" for s in MODEL + SKIPS])
    san = sanitizer() or ("compute-sanitizer" if dry else "")
    # (name, argv, extra env, timeout s, parser)
    return [
        ("build", [PY, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", "."], env_build, 300, None),
        ("ext", [PY, "-c", ext_probe], {}, 60, lambda t: json.loads(t.strip().splitlines()[-1])),
        ("tests_v1", [PY, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
         {"VIDGAN_CUDA_KERNEL": ""}, 150, parse_pytest),
        ("tests_v2", [PY, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"], v2, 150,
         parse_pytest),
        ("bench", [PY, os.path.abspath(__file__), "--bench-child", os.path.join(out, "bench.jsonl"), "--cases", *cases],
         {}, 180, None),
        ("memcheck_v2", [san, "--tool", "memcheck", "--leak-check", "no", "--print-limit", "50", PY, "-m", "pytest",
                         "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/ops/test_cuda.py", "-k",
                         "v2 and not kernel_names and not bfloat16"] if san else None, v2, 180, parse_memcheck),
        ("train_v2", [PY, "benchmarks/train_step.py", "--device", "cuda", "--batch", "32", "--data", data,
                      "--no-memory"], v2, 120, parse_train),
        ("generate_v2", [PY, "-m", "vidgan", "generate", "--device", "cuda", "--overwrite", "--out",
                         os.path.join(out, "generate_v2_frames")], v2, 60, None),
        ("generate_bench", [PY, "benchmarks/generate.py", "--device", "cuda", "--repeats", "1"], {}, 90,
         parse_generate),
        ("generate_compile", [PY, "benchmarks/generate.py", "--device", "cuda", "--compile", "--frames", "256",
                              "--repeats", "3"], {}, 120, parse_compile),
        ("train_v1", [PY, "benchmarks/train_step.py", "--device", "cuda", "--batch", "32", "--data", data],
         {"VIDGAN_CUDA_KERNEL": ""}, 150, parse_train),
    ]


def run_step(name, argv, extra, timeout, parser, out, deadline, dry):
    rec = {"name": name, "cmd": shlex.join(argv) if argv else None, "env": extra, "timeout_s": timeout}
    if argv is None:
        rec["status"] = "unavailable (compute-sanitizer not found)"
        print(f"== {name}: {rec['status']}", flush=True)
        return rec
    env_txt = " ".join(f"{k}={v}" for k, v in extra.items())
    limit = int(min(timeout, deadline - time.time() - 5))
    if dry:
        print(f"== {name} [dry-run, limit {timeout} s]: {env_txt} {rec['cmd']}", flush=True)
        rec["status"] = "dry-run"
        return rec
    if limit < 15:
        rec["status"] = "skipped: out of time"
        print(f"== {name}: {rec['status']}", flush=True)
        return rec
    print(f"== {name} (limit {limit} s): {env_txt} {rec['cmd']}", flush=True)
    env = dict(os.environ, **extra)
    env = {k: v for k, v in env.items() if v != ""}  # an empty value means: unset
    log = os.path.join(out, "logs", f"{name}.log")
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group
            proc.wait()
            rc = None
    rec["seconds"] = round(time.time() - t0, 1)
    rec["rc"] = rc
    rec["status"] = "timeout" if rc is None else ("ok" if rc == 0 else "failed")
    with open(log, errors="replace") as fh:
        text = fh.read()
    rec["tail"] = "\n".join(text.splitlines()[-40:])
    if parser:
        try:
            rec["parsed"] = parser(text)
        except Exception as exc:  # noqa: BLE001
            rec["parsed"] = {"parse_error": repr(exc)}
    print(f"   -> {rec['status']} in {rec['seconds']} s" + (f": {rec.get('parsed')}" if parser else ""), flush=True)
    return rec


# ----------------------------------------------------------------------------- report
def bench_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_report(out, meta, recs, rows):
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump({"meta": meta, "steps": recs, "bench": [{k: r[k] for k in r if k != "output"} for r in rows]}, fh,
                  indent=1)
    md = [f"# gpu_check report ({meta.get('date')})", "", "```"] + [f"{k}: {v}" for k, v in meta["versions"].items()]
    md += ["```", "", "| step | status | seconds | figures |", "|---|---|---:|---|"]
    for r in recs:
        md.append(f"| {r['name']} | {r['status']} | {r.get('seconds', '')} | {json.dumps(r.get('parsed', ''))[:300]} |")
    if rows:
        md += ["", "## fused_upsample: op against the best composite (medians, ms; composite/op > 1: op faster)", "",
               "| x | dtype | kernel | op fwd | best comp. fwd | comp./op | op fwd+bwd | best comp. fwd+bwd | comp./op "
               "| op fwd GB/s | copy_ GB/s | peak GB/s |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            f = r["figures"]
            bf, bb = f.get("best_fwd") or {}, f.get("best_fwdbwd") or {}
            cf = f["fwd"].get(bf.get("name"), "")
            cb = f["fwdbwd"].get(bb.get("name"), "")
            md.append(f"| [{r['shape']}] | {r['dtype']} | {r['kernel']} "
                      f"| {f['fwd'].get('op', r['error'] or '')} | {cf} "
                      f"| {bf.get('composite_over_op', '')} | {f['fwdbwd'].get('op', '')} | {cb} "
                      f"| {bb.get('composite_over_op', '')} | {f.get('op_fwd_gbs')} | {f.get('copy_gbs')} "
                      f"| {f.get('peak_gbs')} |")
    for r in recs:
        if r.get("tail"):
            md += ["", f"## {r['name']}: `{r['cmd']}` ({r['status']})", "", "```", r["tail"], "```"]
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="folder for report.md, report.json and logs/")
    ap.add_argument("--dry-run", action="store_true", help="print each step's command; run only the CPU parts")
    ap.add_argument("--budget", type=float, default=470, help="seconds for the whole run (steps past it are skipped)")
    ap.add_argument("--only", nargs="*", help="run only these steps (by name)")
    ap.add_argument("--bench-child", metavar="JSONL", help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--kernels", default=",".join(KERNELS), help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bench_child:
        args.jsonl = args.bench_child
        return bench_child(args)
    if not args.out:
        ap.error("give the output folder, e.g. `python scripts/gpu_check.py out/gpu-check`")
    t_start = time.time()
    deadline = t_start + args.budget
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    v = versions()
    print(f"python {v['python']} | torch {v['torch']} (CUDA {v['torch_cuda']}) | nvcc {' '.join(v['nvcc'])} | "
          f"GPU {v['gpu'] or 'none visible'} | arch list {v['arch_list']} | sanitizer {v['sanitizer']}", flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "versions": v, "dry_run": args.dry_run,
            "budget_s": args.budget}
    data = make_frames(tempfile.mkdtemp(prefix="vidgan-gpucheck-frames-"))
    print(f"synthetic training frames: {data}", flush=True)
    recs = []
    for name, argv_, extra, timeout, parser in steps(out, data, v, args.dry_run):
        if args.only and name not in args.only:
            continue
        recs.append(run_step(name, argv_, extra, timeout, parser, out, deadline, args.dry_run))
        write_report(out, meta, recs, bench_rows(os.path.join(out, "bench.jsonl")))
    if args.dry_run:  # the CPU part of the benchmark pipeline: one tiny case through the same child and parser
        jsonl = os.path.join(out, "bench.jsonl")
        if os.path.exists(jsonl):
            os.remove(jsonl)
        rc = subprocess.run([PY, os.path.abspath(__file__), "--bench-child", jsonl, "--device", "cpu",
                             "--kernels", "v1", "--cases", "1,4,8,8:float32:1"], cwd=ROOT, timeout=300).returncode
        rows = bench_rows(jsonl)
        print(f"dry-run bench child: rc={rc}, parsed figures: {rows[0]['figures'] if rows else None}", flush=True)
        write_report(out, meta, recs, rows)
    meta["seconds"] = round(time.time() - t_start, 1)
    write_report(out, meta, recs, bench_rows(os.path.join(out, "bench.jsonl")))
    shutil.rmtree(data, ignore_errors=True)
    bad = [r["name"] for r in recs if r["status"] not in ("ok", "dry-run")]
    print(f"report: {os.path.join(out, 'report.md')} ({meta['seconds']} s); steps not ok: {bad or 'none'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
