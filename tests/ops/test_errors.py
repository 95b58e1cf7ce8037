"""Bad input: one clear sentence each, from Python or from TORCH_CHECK, never a crash."""
import pytest
import torch

from tests.ops.conftest import rand
from vidgan.errors import InputError
from vidgan.ops import _ext, fused_upsample, setup_filter, upfirdn2d

X = rand(1, 3, 4, 4)
F2 = torch.outer(setup_filter(), setup_filter())


@pytest.mark.parametrize("impl", [None, "reference"])
@pytest.mark.parametrize("call,match", [
    (lambda i: fused_upsample(rand(3, 4, 4), impl=i), "4D tensor"),
    (lambda i: upfirdn2d(rand(1, 1, 1, 3, 4, 4), None, impl=i), "4D tensor"),
    (lambda i: fused_upsample(torch.ones(1, 3, 4, 4, dtype=torch.int64), impl=i), "floating-point"),
    (lambda i: upfirdn2d(torch.ones(1, 3, 4, 4, dtype=torch.bool), None, impl=i), "floating-point"),
    (lambda i: fused_upsample(X, bias=torch.zeros(4), impl=i), "length C=3"),
    (lambda i: fused_upsample(X, bias=torch.zeros(3, 1), impl=i), "length C=3"),
    (lambda i: fused_upsample(X, bias=torch.zeros(3, dtype=torch.int32), impl=i), "bias must be floating"),
    (lambda i: fused_upsample(X, setup_filter(device="meta"), impl=i), "filter is on meta"),
    (lambda i: fused_upsample(X, bias=torch.zeros(3, device="meta"), impl=i), "bias is on meta"),
    (lambda i: upfirdn2d(X, None, padding=-3, impl=i), "output would have size"),
    (lambda i: upfirdn2d(X, setup_filter([1] * 9), impl=i), "output would have size"),
    (lambda i: upfirdn2d(X, None, down=0, impl=i), "down must be >= 1"),
    (lambda i: fused_upsample(X, up=0, impl=i), "up must be >= 1"),
    (lambda i: fused_upsample(X, up=(2, -1), impl=i), "up must be >= 1"),
    (lambda i: fused_upsample(X, act="gelu", impl=i), "act must be one of"),
    (lambda i: fused_upsample(X, torch.zeros(2, 2, 2), impl=i), "1D \\(separable\\) or 2D"),
    (lambda i: fused_upsample(X, torch.zeros(0), impl=i), "non-empty"),
    (lambda i: upfirdn2d(X, None, padding=(1, 2, 3), impl=i), "padding must be"),
    (lambda i: upfirdn2d(rand(1, 3, 0, 4), None, impl=i), "empty spatial size"),
    (lambda i: fused_upsample([[1.0]], impl=i), "torch.Tensor"),
    (lambda i: fused_upsample(X, clamp=-1, impl=i), "clamp must be a non-negative number or None"),
    (lambda i: fused_upsample(X, clamp=float("nan"), impl=i), "clamp must be a finite number"),
    (lambda i: fused_upsample(X, alpha="a", impl=i), "alpha must be a finite number, got 'a'"),
    (lambda i: fused_upsample(X, act_gain=float("inf"), impl=i), "act_gain must be a finite number"),
    (lambda i: fused_upsample(X, gain=True, impl=i), "gain must be a finite number"),
    (lambda i: upfirdn2d(X, None, gain="2", impl=i), "gain must be a finite number"),
])
def test_python_checks_raise_one_clear_value_error(call, match, impl):
    with pytest.raises(ValueError, match=match) as info:
        call(impl)
    assert isinstance(info.value, InputError)
    msg = str(info.value)
    assert msg.endswith(".") and "\n" not in msg


def test_unknown_impl_and_forced_ext_without_extension(monkeypatch):
    with pytest.raises(ValueError, match="impl must be"):
        fused_upsample(X, impl="triton")
    monkeypatch.setattr(_ext, "_C", None)
    monkeypatch.setattr(_ext, "ERROR", "importing vidgan._C failed: test")
    with pytest.raises(RuntimeError, match="impl='ext' was requested.*not available.*pip install"):
        fused_upsample(X, impl="ext")
    with pytest.raises(RuntimeError, match="impl='ext'"):
        upfirdn2d(X, None, impl="ext")
    # impl=None quietly takes the reference path.
    assert fused_upsample(X).shape == (1, 3, 8, 8)


def test_forced_ext_on_a_device_without_kernels():
    with pytest.raises(RuntimeError, match="no kernels for meta"):
        fused_upsample(torch.zeros(1, 1, 2, 2, device="meta"), setup_filter(device="meta"), impl="ext")


@pytest.mark.parametrize("call,match", [
    (lambda o: o.upfirdn2d(rand(3, 4, 4), F2, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0), "4D tensor"),
    (lambda o: o.upfirdn2d(torch.ones(1, 1, 4, 4, dtype=torch.int32), F2, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0),
     "floating-point"),
    (lambda o: o.upfirdn2d(X, F2[None], 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0), "1D \\(separable\\) or 2D tensor"),
    (lambda o: o.upfirdn2d(X, F2, 0, 1, 1, 1, 0, 0, 0, 0, False, 1.0), "must be >= 1"),
    (lambda o: o.upfirdn2d(X, F2, 1, 1, 1, -2, 0, 0, 0, 0, False, 1.0), "must be >= 1"),
    (lambda o: o.upfirdn2d(X, F2, 1, 1, 1, 1, -9, 0, 0, 0, False, 1.0), "output would have size"),
    (lambda o: o.upfirdn2d(X, F2, 1, 1, 1, 1, 1 << 40, 0, 0, 0, False, 1.0), "out of range"),
    (lambda o: o.upfirdn2d(X, F2, 1 << 20, 1, 1, 1, 0, 0, 0, 0, False, 1.0), "<= 65536"),
    (lambda o: o.fused_upsample(X, F2, torch.zeros(5), 2, 2, 2, 1, 2, 1, False, 4.0, "lrelu", 0.2, 1.0, -1.0),
     "bias must have shape"),
    (lambda o: o.fused_upsample(X, F2, None, 2, 2, 2, 1, 2, 1, False, 4.0, "swish", 0.2, 1.0, -1.0),
     "act must be one of"),
    (lambda o: o.fused_upsample_grad(rand(1, 3, 8, 8), rand(1, 3, 8, 7), F2, 2, 2, 1, 2, 1, 2, True, 4.0, "lrelu",
                                     0.2, 1.0, -1.0, True), "same shape"),
])
def test_cpp_checks_raise_runtime_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call(torch.ops.vidgan)
