"""The CPU kernels at each instruction-set level this CPU supports (VIDGAN_CPU_LEVEL, read at load).

The level is fixed when vidgan._C loads, so every other level runs in a subprocess: the whole op
suite once per level, and a set of results compared across levels within float tolerance (not
bit for bit: the AVX2 and AVX-512 code contracts multiply-adds into FMA, baseline x86-64 cannot).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from vidgan.ops import _ext, build_info, cpu_level

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVELS = list(_ext.ext().cpu_levels()) if _ext.ext() is not None else []

RESULTS = '''
import sys, torch
import vidgan.ops as ops
g = torch.Generator().manual_seed(0)
out = {"level": ops.cpu_level()}
for dtype in (torch.float32, torch.float64):
    for shape, up, act, clamp in (((3, 5, 9, 7), 2, "lrelu", None), ((128, 3, 4, 4), 2, "linear", None),
                                  ((2, 4, 33, 17), 2, "relu", 0.5), ((2, 3, 6, 5), 3, "lrelu", 1.0)):
        x = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
        b = torch.randn(shape[1], generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
        y = ops.fused_upsample(x, None, b, up=up, act=act, clamp=clamp, impl="ext")
        dx, db = torch.autograd.grad(y, (x, b), torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype))
        d = ops.upfirdn2d(x.detach(), torch.tensor([1.0, 2.0, 1.0]), down=2, padding=1, impl="ext")
        key = f"{dtype}-{shape}"
        out[key] = [t.double().flatten().tolist() for t in (y, dx, db, d)]
print(__import__("json").dumps(out))
'''


def run_at(level, code=None, args=(), timeout=600):
    env = {**os.environ, "VIDGAN_CPU_LEVEL": level, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", code] if code else [sys.executable, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_running_level_is_reported():
    assert cpu_level() in ("avx512", "avx2", "baseline")
    assert cpu_level() in LEVELS and "baseline" in LEVELS
    info = build_info()
    assert info["cpu_level"] == cpu_level() and info["cpu_levels_supported"] == LEVELS


@pytest.mark.slow
@pytest.mark.parametrize("level", [lv for lv in LEVELS if lv != cpu_level()])
def test_op_suite_passes_at_every_other_supported_level(level):
    proc = run_at(level, args=("-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/ops",
                               "--ignore=tests/ops/test_levels.py", "--ignore=tests/ops/test_cuda.py"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    check = run_at(level, code="import vidgan.ops as o; print(o.cpu_level())")
    assert check.stdout.split()[-1] == level


@pytest.mark.slow
def test_levels_agree_within_float_tolerance():
    results = {}
    for level in LEVELS:
        proc = run_at(level, code=RESULTS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[level] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert results[level].pop("level") == level
    best = results[LEVELS[0]]
    for level in LEVELS[1:]:
        for key, tensors in best.items():
            tol = 1e-12 if "float64" in key else 2e-5
            for a, b in zip(tensors, results[level][key]):
                a, b = torch.tensor(a), torch.tensor(b)
                assert torch.allclose(a, b, rtol=tol, atol=tol * max(1.0, float(a.abs().max()))), (level, key)


def test_unknown_or_unsupported_level_runs_the_best_with_one_warning():
    code = ("import warnings; warnings.simplefilter('always'); "
            "import json, vidgan.ops as o; print(json.dumps(o.cpu_level()))")
    for value in ("sse9", "avx512") if "avx512" not in LEVELS else ("sse9",):
        proc = run_at(value, code=code)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == LEVELS[0]
        warned = [ln for ln in proc.stderr.splitlines() if "VIDGAN_CPU_LEVEL" in ln]
        assert len(warned) == 1 and LEVELS[0] in warned[0], proc.stderr


def test_level_spelling_is_forgiving_and_empty_means_best():
    for value, expect in (("  BaseLine ", "baseline"), ("", LEVELS[0])):
        proc = run_at(value, code="import vidgan.ops as o; print(o.cpu_level())")
        assert proc.returncode == 0 and proc.stdout.split()[-1] == expect, proc.stderr
        assert "VIDGAN_CPU_LEVEL" not in proc.stderr


def test_float_results_do_not_depend_on_threads_at_this_level():
    x, b = torch.randn(64, 8, 4, 4), torch.randn(8)  # many small planes: grouped several to a task
    y = torch.ops.vidgan.fused_upsample(x, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8, b, 2, 2, 2, 1, 2, 1, False,
                                        4.0, "lrelu", 0.2, 1.4, -1.0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1 = torch.ops.vidgan.fused_upsample(x, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8, b, 2, 2, 2, 1, 2, 1, False,
                                             4.0, "lrelu", 0.2, 1.4, -1.0)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(y, y1)
