"""nn.Module wrappers, backend() / build_info(), and the third-party example script."""
import json
import os
import subprocess
import sys

import torch

from tests.ops.conftest import rand
from vidgan.ops import Downsample, FusedUpsample, backend, build_info, fused_upsample, reference, setup_filter

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_fused_upsample_module_learns_its_bias():
    m = FusedUpsample(4, clamp=3.0)
    assert "f" not in m.state_dict() and set(m.state_dict()) == {"bias"}
    with torch.no_grad():
        m.bias.copy_(rand(4, seed=1))
    x = rand(2, 4, 5, 6)
    y = m(x)
    assert y.shape == (2, 4, 10, 12)
    assert torch.allclose(y, reference.fused_upsample(x, setup_filter(), m.bias, clamp=3.0), atol=1e-5)
    y.square().sum().backward()
    assert m.bias.grad is not None and m.bias.grad.shape == (4,) and float(m.bias.grad.abs().sum()) > 0
    assert FusedUpsample(bias=False, act="linear")(x).shape == (2, 4, 10, 12)
    assert "channels=4" in repr(m)


def test_downsample_module_halves_even_sizes():
    d = Downsample()
    x = rand(2, 3, 8, 6)
    y = d(x)
    assert y.shape == (2, 3, 4, 3)
    assert torch.allclose(y, reference.upfirdn2d(x, setup_filter(), down=2, padding=(1, 1, 1, 1)), atol=1e-6)
    assert Downsample(4, f=[1, 2, 2, 1])(rand(1, 1, 16, 16)).shape == (1, 1, 4, 4)
    # A constant image stays constant away from the zero-padded border.
    assert torch.allclose(Downsample()(torch.ones(1, 1, 8, 8))[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_backend_and_build_info():
    assert backend("cpu") == "cpu-ext"
    assert backend() in ("cpu-ext", "cuda")
    info = build_info()
    for key in ("vidgan", "torch", "python", "backend", "ext_compiled", "cuda_compiled", "cuda_available", "devices",
                "num_threads"):
        assert key in info
    assert info["ext_compiled"] is True and info["backend"] == backend()
    assert info["num_threads"] == torch.get_num_threads()
    assert info["cuda_available"] == torch.cuda.is_available()
    json.dumps(info)  # `vidgan info --json` prints it


def test_example_from_another_project_runs(tmp_path):
    script = os.path.join(REPO, "examples", "fused_upsample_elsewhere.py")
    env = {k: v for k, v in os.environ.items() if k != "VIDGAN_NO_EXT"}
    proc = subprocess.run([sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The example runs on the GPU where one is visible (backend "cuda"), else on the CPU kernel.
    assert f"backend: {'cuda' if torch.cuda.is_available() else 'cpu-ext'}" in proc.stdout
    assert "output (2, 3, 32, 32)" in proc.stdout


def test_filter_dtype_and_list_filters_are_accepted():
    x = rand(1, 2, 4, 4, dtype=torch.float64)
    y = fused_upsample(x, [1.0, 3.0, 3.0, 1.0], gain=4.0 / 64)
    ref = reference.fused_upsample(x, torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64), gain=4.0 / 64)
    assert y.dtype == torch.float64 and torch.allclose(y, ref, atol=1e-12)
