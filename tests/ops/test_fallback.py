"""The reference fallback when the extension is hidden: VIDGAN_NO_EXT=1, or vidgan._C failing to import."""
import json
import os
import subprocess
import sys

import torch

import vidgan
from tests.ops.conftest import rand
from vidgan.ops import fused_upsample, upfirdn2d

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BLOCK_C = '''
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "vidgan._C":
            raise ImportError("vidgan._C is hidden by the test")
        return None
sys.meta_path.insert(0, _Block())
'''

SCRIPT = '''
import json, sys, warnings
{prelude}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import torch
    import vidgan.ops as ops
    data = torch.load(sys.argv[1], weights_only=True)
    y = ops.fused_upsample(data["x"], None, data["b"])
    d = ops.upfirdn2d(data["x"], None, down=2, padding=1)
    for _ in range(3):
        ops.fused_upsample(data["x"], impl=None)
    forced = None
    try:
        ops.fused_upsample(data["x"], impl="ext")
    except RuntimeError as exc:
        forced = str(exc)
    torch.save({{"y": y, "d": d}}, sys.argv[2])
mine = [str(w.message) for w in caught if "vidgan" in str(w.message)]
print(json.dumps({{"backend": ops.backend(), "cpu": ops.backend("cpu"), "warnings": mine, "forced": forced,
                  "info": ops.build_info()}}))
'''


def run_hidden(tmp_path, prelude, env_extra):
    x, b = rand(2, 3, 6, 5), rand(3, seed=1)
    torch.save({"x": x, "b": b}, tmp_path / "in.pt")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(prelude=prelude), str(tmp_path / "in.pt"),
                           str(tmp_path / "out.pt")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    # Same numbers as the compiled kernels in this process.
    assert torch.allclose(out["y"], fused_upsample(x, None, b, impl="ext"), atol=1e-5)
    assert torch.allclose(out["d"], upfirdn2d(x, None, down=2, padding=1, impl="ext"), atol=1e-5)
    assert report["backend"] == report["cpu"] == "reference"
    assert len(report["warnings"]) == 1, report["warnings"]
    assert "pip install --no-build-isolation -e ." in report["warnings"][0]
    assert "impl='ext'" in report["forced"]
    assert report["info"]["ext_compiled"] is False and report["info"]["backend"] == "reference"
    return report


def test_env_switch_forces_reference_with_one_warning(tmp_path):
    report = run_hidden(tmp_path, "", {"VIDGAN_NO_EXT": "1"})
    assert "VIDGAN_NO_EXT is set" in report["warnings"][0]


def test_failing_extension_import_falls_back_with_one_warning(tmp_path):
    report = run_hidden(tmp_path, BLOCK_C, {"VIDGAN_NO_EXT": "0"})
    assert "hidden by the test" in report["warnings"][0]
    assert "hidden by the test" in report["info"]["ext_error"]


def test_extension_imports_from_another_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VIDGAN_NO_EXT"}
    code = ("import warnings; warnings.simplefilter('error'); import torch, vidgan._C as c, vidgan.ops as o; "
            "print(c.__version__, c.cuda_compiled, o.backend('cpu'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    version, cuda, backend = proc.stdout.split()
    assert version == vidgan.__version__ and cuda in ("True", "False") and backend == "cpu-ext"
