"""The small-plane CPU kernel (planes as vector lanes: 16+ planes of at most 16x16 in and out,
float / double) against the reference, over the same kinds of grids as the row-wise kernel."""
import itertools

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tests.ops.conftest import filt, out_hw, rand
from vidgan.ops import fused_upsample, reference, setup_filter, upfirdn2d


def close(a, b, tol=1e-5):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("up,down", list(itertools.product((1, 2, 3), (1, 2))))
def test_upfirdn2d_small_planes_match_reference(up, down):
    x = rand(4, 5, 5, 6, seed=up + 10 * down)  # 20 planes: one full block of 16 and a partial one
    checked = 0
    for taps, separable, padding in itertools.product((1, 2, 3, 4, 5), (True, False), (0, (1, 2), (2, -1, -1, 3))):
        f = filt(taps, separable, seed=taps)
        oh, ow = out_hw(x, f, up, down, padding)
        if oh < 1 or ow < 1 or oh * ow > 256:
            continue
        flip = taps % 2 == 0
        ref = reference.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.3)
        got = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=1.3, impl="ext")
        assert got.shape == ref.shape and close(got, ref), (taps, separable, padding)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("relu", 0.5), ("linear", 0.3), ("lrelu", 0.7)])
def test_fused_upsample_small_planes_match_reference_with_gradients(act, clamp):
    x = rand(3, 7, 4, 5, seed=1).requires_grad_(True)  # 21 planes
    b = rand(7, seed=2).requires_grad_(True)
    for f in (None, setup_filter([1, 2, 1]), rand(3, 4, seed=3)):
        y = fused_upsample(x, f, b, act=act, alpha=0.1, act_gain=1.3, clamp=clamp, impl="ext")
        ref = reference.fused_upsample(x, setup_filter() if f is None else f, b, act=act, alpha=0.1, act_gain=1.3,
                                       clamp=clamp)
        assert close(y, ref)
        dy = rand(*y.shape, seed=4)
        for g, r in zip(torch.autograd.grad(y, (x, b), dy), torch.autograd.grad(ref, (x, b), dy)):
            assert torch.allclose(g, r, atol=1e-4, rtol=1e-4)


def test_small_planes_gradcheck_and_gradgradcheck():
    x = rand(2, 8, 3, 3, seed=5, dtype=torch.float64).requires_grad_(True)  # 16 planes
    b = rand(8, seed=6, dtype=torch.float64).requires_grad_(True)
    f = setup_filter(dtype=torch.float64)
    fn = lambda x, b: fused_upsample(x, f, b, clamp=0.8, impl="ext")  # noqa: E731
    assert gradcheck(fn, (x, b))
    assert gradgradcheck(fn, (x, b))
    d = lambda x: upfirdn2d(x, f, down=2, padding=1, impl="ext")  # noqa: E731
    assert gradcheck(d, (x,)) and gradgradcheck(d, (x,))


def test_small_and_row_wise_kernels_agree():
    # 16+ planes take the lanes kernel, 15 the row-wise one: the same values to rounding; and a
    # plane's values do not depend on which lane of which block it sits in.
    x, b = rand(32, 1, 6, 7, seed=7), rand(1, seed=8)
    y = fused_upsample(x, None, b, clamp=1.0, impl="ext")
    assert torch.allclose(fused_upsample(x[:15], None, b, clamp=1.0, impl="ext"), y[:15], atol=1e-6, rtol=1e-6)
    assert torch.equal(fused_upsample(x[5:21], None, b, clamp=1.0, impl="ext"), y[5:21])
