"""Gradients (first and second order), torch.library.opcheck and torch.compile of the ops."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tests.ops.conftest import rand
from vidgan.ops import fused_upsample, reference, setup_filter, upfirdn2d

F64 = torch.float64


def leaf(*shape, seed=0, channels_last=False):
    t = rand(*shape, seed=seed, dtype=F64)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(True)


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("relu", 0.6), ("linear", 0.4), ("lrelu", 0.5)])
def test_fused_upsample_gradcheck_and_gradgradcheck(act, clamp):
    x, b = leaf(1, 2, 4, 3), leaf(2, seed=1)
    f = setup_filter(dtype=F64)
    fn = lambda x, b: fused_upsample(x, f, b, act=act, clamp=clamp, impl="ext")  # noqa: E731
    assert gradcheck(fn, (x, b))
    assert gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("up,down,padding,flip", [(1, 2, (1, 1), False), (2, 1, (2, -1, 1, 0), True),
                                                  ((2, 1), (1, 3), (1, 0, 2, -1), False), (3, 2, 1, True)])
def test_upfirdn2d_gradcheck_and_gradgradcheck(up, down, padding, flip):
    x = leaf(1, 2, 5, 4, channels_last=up == 3)
    f = rand(3, 2, seed=4, dtype=F64)
    fn = lambda x: upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.3, impl="ext")  # noqa
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_fused_upsample_up4_and_channels_last_gradcheck():
    x, b = leaf(1, 2, 3, 3, channels_last=True), leaf(2, seed=1)
    f = setup_filter([1, 2, 1], dtype=F64)
    fn = lambda x, b: fused_upsample(x, f, b, up=4, padding=(2, 1), clamp=1.5, impl="ext")  # noqa: E731
    assert gradcheck(fn, (x, b))
    assert gradgradcheck(fn, (x, b))


def test_gradients_match_reference_in_float32():
    x, b = rand(2, 8, 9, 7).requires_grad_(True), rand(8, seed=1).requires_grad_(True)
    dy = rand(2, 8, 18, 14, seed=2)
    got = torch.autograd.grad(fused_upsample(x, None, b, clamp=1.0, impl="ext"), (x, b), dy)
    ref = torch.autograd.grad(reference.fused_upsample(x, setup_filter(), b, clamp=1.0), (x, b), dy)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=1e-4, rtol=1e-4)
    d = rand(2, 8, 3, 3, seed=3)  # (9 + 0 - 4) // 2 + 1, (7 + 2 - 4) // 2 + 1
    (gd,) = torch.autograd.grad(upfirdn2d(x, setup_filter(), down=2, padding=(1, 0), impl="ext"), x, d)
    (rd,) = torch.autograd.grad(reference.upfirdn2d(x, setup_filter(), down=2, padding=(1, 0)), x, d)
    assert torch.allclose(gd, rd, atol=1e-5, rtol=1e-5)


def test_bias_without_grad_and_input_without_grad():
    x, b = rand(1, 3, 4, 4), rand(3, seed=1).requires_grad_(True)
    (gb,) = torch.autograd.grad(fused_upsample(x, None, b, impl="ext").sum(), b)
    (rb,) = torch.autograd.grad(reference.fused_upsample(x, setup_filter(), b).sum(), b)
    assert torch.allclose(gb, rb, atol=1e-4)
    xg = x.clone().requires_grad_(True)
    out = fused_upsample(xg, None, b.detach(), impl="ext")
    (gx,) = torch.autograd.grad(out.sum(), xg)
    assert gx.shape == x.shape and float(gx.abs().sum()) > 0


def _opcheck(op, args):
    # test_schema, test_autograd_registration, test_faketensor, test_aot_dispatch_dynamic
    result = torch.library.opcheck(op, args)
    assert all(v == "SUCCESS" for v in result.values()), result


def test_opcheck_all_ops():
    x, b = leaf(1, 2, 4, 5).float(), leaf(2, seed=1).float()
    x, b = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
    f = torch.outer(setup_filter(), setup_filter())
    ops = torch.ops.vidgan
    _opcheck(ops.upfirdn2d.default, (x, f, 2, 1, 1, 2, 2, 1, 0, 1, False, 1.5))
    _opcheck(ops.fused_upsample.default, (x, f, b, 2, 2, 2, 1, 2, 1, False, 4.0, "lrelu", 0.2, 1.41, 0.8))
    _opcheck(ops.fused_upsample.default, (x.contiguous(memory_format=torch.channels_last), f, None, 2, 2, 2, 1, 2,
                                          1, True, 4.0, "relu", 0.2, 1.0, -1.0))
    y = fused_upsample(x.detach(), f, b.detach())
    dy = rand(*y.shape, seed=5).requires_grad_(True)
    _opcheck(ops.fused_upsample_grad.default, (dy, y, f, 2, 2, 1, 2, 1, 2, True, 4.0, "lrelu", 0.2, 1.41, -1.0, True))


def test_torch_compile_fullgraph_matches_eager():
    f = setup_filter()

    def block(x, b):
        y = fused_upsample(x, f, b, clamp=2.0)
        return upfirdn2d(y, f, down=2, padding=1)

    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    x, b = rand(2, 3, 6, 5).requires_grad_(True), rand(3, seed=1).requires_grad_(True)
    out = compiled(x, b)
    ref = block(x, b)
    assert torch.allclose(out, ref, atol=1e-6)
    g = torch.autograd.grad(out.square().sum(), (x, b))
    r = torch.autograd.grad(ref.square().sum(), (x, b))
    for a, e in zip(g, r):
        assert torch.allclose(a, e, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_runs_the_custom_op():
    f = setup_filter()
    compiled = torch.compile(lambda x: fused_upsample(x, f) * 2, fullgraph=True)
    x = rand(1, 2, 4, 4)
    assert torch.allclose(compiled(x), fused_upsample(x, f) * 2, atol=1e-6)
