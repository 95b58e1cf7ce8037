"""Which implementation impl=None picks (CUDA: the composite until a kernel is measured faster),
the cached default filter, 1D (separable) filters in the C++ ops, and the backward's shortcuts."""
from types import SimpleNamespace

import pytest
import torch

from tests.ops.conftest import rand
from vidgan.ops import _ext, backend, fused, fused_upsample, reference, setup_filter, upfirdn2d

F1 = setup_filter()
F2 = torch.outer(F1, F1)


@pytest.mark.parametrize("op", ["fused_upsample", "upfirdn2d"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_impl_none_uses_the_composite_on_cuda_until_a_kernel_is_measured_faster(op, dtype, monkeypatch):
    assert fused.default_impl(op, "cpu", dtype, True) == "ext"
    assert fused.default_impl(op, "cpu", dtype, False) == "reference"
    assert fused.default_impl(op, "cuda", dtype, False) == "reference"
    assert fused.default_impl(op, "cuda", dtype, True) == "reference"  # 0.83x / 0.41x on an H100
    case = (op, str(dtype).replace("torch.", ""))
    monkeypatch.setattr(fused, "CUDA_KERNEL_FASTER", frozenset({case}))
    assert fused.default_impl(op, "cuda", dtype, True) == "ext"
    other = torch.float64
    assert fused.default_impl(op, "cuda", other, True) == "reference"


def test_call_dispatch_on_a_cuda_tensor_without_a_gpu(monkeypatch):
    x = SimpleNamespace(device=torch.device("cuda", 0), dtype=torch.float32)
    monkeypatch.setattr(_ext, "supports", lambda device: True)
    assert fused._impl(None, x, "fused_upsample") == "reference"
    assert fused._impl("ext", x, "fused_upsample") == "ext"  # impl="ext" still forces the kernel
    assert fused._impl("reference", x, "fused_upsample") == "reference"
    monkeypatch.setattr(_ext, "has_cuda", lambda: True)
    assert backend("cuda") == "reference" and backend("cpu") == "cpu-ext"
    monkeypatch.setattr(fused, "CUDA_KERNEL_FASTER", frozenset({("fused_upsample", "float32")}))
    assert fused._impl(None, x, "fused_upsample") == "ext" and backend("cuda") == "cuda"


def test_default_filter_is_made_once_and_is_a_normal_tensor():
    x = rand(1, 2, 4, 4)
    with torch.inference_mode():
        fused._DEFAULT_FILTERS.clear()
        y0 = fused_upsample(x)  # the first call, in inference mode, builds the cached filter
    f = fused._default_filter(x.device)
    assert fused._default_filter(x.device) is f and not f.is_inference() and not f.requires_grad
    assert torch.equal(f, F1)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fused_upsample(xg).sum(), xg)  # saves the cached filter for backward
    assert torch.equal(fused_upsample(x), y0) and g.shape == x.shape


def test_cpp_ops_take_a_1d_filter_as_separable():
    x, b = rand(2, 3, 7, 6), rand(3, seed=1)
    ops = torch.ops.vidgan
    for f1 in (F1, rand(5, seed=2), rand(3, seed=3, dtype=torch.float64)):
        f2 = torch.outer(f1, f1)
        assert torch.equal(ops.upfirdn2d(x, f1, 2, 1, 1, 2, 2, 1, 0, 1, True, 1.5),
                           ops.upfirdn2d(x, f2, 2, 1, 1, 2, 2, 1, 0, 1, True, 1.5))
        assert torch.equal(ops.fused_upsample(x, f1, b, 2, 2, 2, 1, 2, 1, False, 4.0, "lrelu", 0.2, 1.4, -1.0),
                           ops.fused_upsample(x, f2, b, 2, 2, 2, 1, 2, 1, False, 4.0, "lrelu", 0.2, 1.4, -1.0))
    # A non-contiguous 2D filter is read through its strides.
    ft = rand(4, 3, seed=4).t()
    assert torch.equal(ops.upfirdn2d(x, ft, 1, 1, 1, 1, 1, 1, 1, 1, False, 1.0),
                       ops.upfirdn2d(x, ft.contiguous(), 1, 1, 1, 1, 1, 1, 1, 1, False, 1.0))


def test_grad_of_linear_without_clamp_never_reads_y_and_bias_grad_is_the_sum():
    dy = rand(3, 4, 10, 8, seed=5)
    ops = torch.ops.vidgan
    y = rand(3, 4, 10, 8, seed=6)
    nan_y = torch.full_like(y, float("nan"))
    args = (F2, 2, 2, 1, 2, 1, 2, True, 4.0, "linear", 0.2, 1.0, -1.0, True)
    dx, db = ops.fused_upsample_grad(dy, y, *args)
    dx2, db2 = ops.fused_upsample_grad(dy, nan_y, *args)  # the mask is 1: y is not read
    assert torch.equal(dx, dx2) and torch.equal(db, db2)
    assert torch.allclose(db, dy.sum((0, 2, 3)), atol=1e-5)
    # With a clamp the mask does read y.
    dx3, _ = ops.fused_upsample_grad(dy, nan_y, *args[:-2], 1.0, True)
    assert float(dx3.abs().sum()) == 0.0


def test_many_small_planes_match_the_reference_and_one_another():
    # The model's shapes: 4x4 / 8x8 planes, many to a task; 3-channel skips without bias.
    for shape, act, bias in (((40, 64, 4, 4), "lrelu", True), ((33, 3, 8, 8), "linear", False)):
        x = rand(*shape, seed=7).requires_grad_(True)
        b = rand(shape[1], seed=8).requires_grad_(True) if bias else None
        y = fused_upsample(x, None, b, act=act, impl="ext")
        ref = reference.fused_upsample(x, F1, b, act=act)
        assert torch.allclose(y, ref, atol=1e-5, rtol=1e-5)
        dy = rand(*y.shape, seed=9)
        leaves = (x, b) if bias else (x,)
        got = torch.autograd.grad(y, leaves, dy)
        want = torch.autograd.grad(ref, leaves, dy)
        for g, w in zip(got, want):
            assert torch.allclose(g, w, atol=1e-4, rtol=1e-4)
        assert torch.equal(fused_upsample(x[5:6].detach(), None, b, act=act, impl="ext"), y[5:6].detach())
        d = upfirdn2d(y.detach(), F1, down=2, padding=1, impl="ext")
        assert torch.allclose(d, reference.upfirdn2d(y.detach(), F1, down=2, padding=1), atol=1e-5)
