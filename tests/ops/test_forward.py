"""Forward pass of the compiled ops against the plain-PyTorch reference (the specification)."""
import itertools
import math

import pytest
import torch

from tests.ops.conftest import filt, out_hw, rand
from vidgan.ops import fused_upsample, reference, setup_filter, upfirdn2d

PADS = [0, (1, 2), (2, -1, -1, 3), (-1, -2, 0, 1)]


def close(a, b, tol=1e-5):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("up,down", list(itertools.product((1, 2, 4), (1, 2, 4))))
def test_upfirdn2d_matches_reference_over_grid(up, down):
    x = rand(2, 3, 7, 9, seed=up * 10 + down)  # odd H and W
    checked = 0
    for taps, separable, (ip, padding) in itertools.product(range(1, 9), (True, False), enumerate(PADS)):
        flip = (taps + ip) % 2 == 1  # both flips across the grid
        f = filt(taps, separable, seed=taps)
        oh, ow = out_hw(x, f, up, down, padding)
        if oh < 1 or ow < 1:
            continue
        gain = 1.0 if separable else 0.7
        ref = reference.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
        got = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain, impl="ext")
        assert got.shape == ref.shape == (2, 3, oh, ow)
        assert close(got, ref), (taps, separable, padding, flip)
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("up", [1, 2, 4])
def test_fused_upsample_matches_reference_over_grid(up):
    x = rand(2, 4, 5, 7, seed=up)
    b = rand(4, seed=99)
    checked = set()
    combos = itertools.product((1, 2, 3, 4, 5, 8), (True, False), ((None, None), ((2, 0, -1, 1), 1.5)))
    for i, (taps, separable, (padding, gain)) in enumerate(combos):
        act, clamp = ("lrelu", "relu", "linear")[i % 3], (None, 0.5)[(i // 3) % 2]  # every pair occurs
        f = filt(taps, separable, seed=taps)
        if padding is not None and min(out_hw(x, f, up, 1, padding)) < 1:
            continue
        kw = dict(up=up, padding=padding, act=act, alpha=0.1, act_gain=1.3, clamp=clamp)
        ref = reference.fused_upsample(x, f, b, gain=gain or float(up * up), **kw)
        got = fused_upsample(x, f, b, gain=gain, impl="ext", **kw)
        assert got.shape == ref.shape
        assert close(got, ref), (taps, separable, act, clamp, padding)
        checked.add((act, clamp))
    assert len(checked) == 6


def test_default_filter_gives_exact_upsampled_size_and_defaults_match_spec():
    x, b = rand(2, 3, 8, 6), rand(3, seed=1)
    y = fused_upsample(x, bias=b)
    assert y.shape == (2, 3, 16, 12)
    # The pinned defaults spelled out: [1, 3, 3, 1] / 8 separable, gain up^2, lrelu(0.2) * sqrt(2).
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    z = torch.zeros(2, 3, 16, 12)
    z[:, :, ::2, ::2] = x
    z = torch.nn.functional.pad(z, [2, 1, 2, 1])
    k = (torch.outer(f, f) * 4).flip([0, 1]).expand(3, 1, 4, 4)
    expect = torch.nn.functional.conv2d(z, k, groups=3) + b.view(1, 3, 1, 1)
    expect = torch.nn.functional.leaky_relu(expect, 0.2) * math.sqrt(2)
    assert close(y, expect)


def test_anisotropic_factors_and_asymmetric_filters():
    x = rand(1, 2, 6, 5)
    f = rand(3, 5, seed=3)
    for up, down in (((2, 1), (1, 3)), ((3, 2), (2, 1)), ((1, 4), (3, 3))):
        ref = reference.upfirdn2d(x, f, up=up, down=down, padding=(2, 1, 3, 0))
        got = upfirdn2d(x, f, up=up, down=down, padding=(2, 1, 3, 0), impl="ext")
        assert close(got, ref)
    ref = reference.fused_upsample(x, f, up=(2, 3), gain=6.0)
    assert close(fused_upsample(x, f, up=(2, 3), impl="ext"), ref)


@pytest.mark.parametrize("op", ["fused", "down"])
def test_channels_last_input_gives_channels_last_output_with_same_values(op):
    x = rand(2, 5, 9, 7)
    b = rand(5, seed=2)
    xc = x.contiguous(memory_format=torch.channels_last)
    if op == "fused":
        run = lambda t: fused_upsample(t, None, b, clamp=1.0, impl="ext")  # noqa: E731
    else:
        run = lambda t: upfirdn2d(t, setup_filter([1, 2, 3]), down=2, padding=(1, 0), impl="ext")  # noqa: E731
    y, yc = run(x), run(xc)
    assert y.is_contiguous()
    assert yc.is_contiguous(memory_format=torch.channels_last) and not yc.is_contiguous()
    assert torch.allclose(y, yc, atol=1e-6, rtol=1e-6)


def test_non_contiguous_inputs():
    base = rand(2, 6, 10, 12)
    b = rand(3, seed=4)
    for x in (base[:, ::2, 1:8, ::2], base.transpose(2, 3), base[..., 1:-1]):
        assert not x.is_contiguous()
        c = x.shape[1]
        bb = rand(c, seed=5) if c != 3 else b
        ref = reference.fused_upsample(x, setup_filter(), bb, up=2)
        assert close(fused_upsample(x, None, bb, impl="ext"), ref)
        assert close(upfirdn2d(x, setup_filter(), down=2, padding=1, impl="ext"),
                     reference.upfirdn2d(x, setup_filter(), down=2, padding=1))


def test_float64_is_exact_to_rounding():
    x, b = rand(2, 3, 6, 5, dtype=torch.float64), rand(3, dtype=torch.float64)
    f = setup_filter([1, 4, 6, 4, 1], dtype=torch.float64)
    ref = reference.fused_upsample(x, f, b, up=2)
    got = fused_upsample(x, f, b, impl="ext")
    assert got.dtype == torch.float64
    assert float((got - ref).abs().max()) < 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_half_precision_cpu_against_float32(dtype, tol):
    x, b = rand(2, 8, 9, 11), rand(8, seed=1)
    y32 = fused_upsample(x, None, b, impl="ext")
    y = fused_upsample(x.to(dtype), None, b.to(dtype), impl="ext")
    assert y.dtype == dtype
    assert close(y, y32, tol)
    d32 = upfirdn2d(x, setup_filter(), down=2, padding=1, impl="ext")
    d = upfirdn2d(x.to(dtype), setup_filter(), down=2, padding=1, impl="ext")
    assert close(d, d32, tol)


def test_repeats_are_bit_identical_and_thread_count_and_batch_independent():
    # Guaranteed by construction, on every CPU: both CPU paths split the work into independent
    # units (NCHW: planes, at::parallel_for over N*C; channels_last: output rows) that each run
    # the same code, with no sums across units, so a plane's (row's) values depend neither on the
    # thread that computes it nor on the rest of the batch. Within a process every plane runs the
    # same kernel clone (AVX-512, AVX2 or baseline, picked once at load time). Across clones the
    # last bits do differ (the AVX2/AVX-512 clones contract multiply-adds into FMA, the baseline
    # cannot), as do the NCHW and channels_last paths: those comparisons need a tolerance.
    x, b = rand(4, 16, 17, 13), rand(16, seed=3)
    f = setup_filter([1, 2, 5, 2, 1])
    first = fused_upsample(x, f, b, clamp=2.0, impl="ext")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fused_upsample(x, f, b, clamp=2.0, impl="ext")
    finally:
        torch.set_num_threads(threads)
    for _ in range(3):
        assert torch.equal(fused_upsample(x, f, b, clamp=2.0, impl="ext"), first)
    assert torch.equal(single, first)
    assert torch.equal(fused_upsample(x[2:3], f, b, clamp=2.0, impl="ext"), first[2:3])
    xl = x.contiguous(memory_format=torch.channels_last)
    last = fused_upsample(xl, f, b, clamp=2.0, impl="ext")
    assert torch.equal(fused_upsample(xl[1:3], f, b, clamp=2.0, impl="ext"), last[1:3])
    xg = x.clone().requires_grad_(True)
    dy = rand(*first.shape, seed=7)
    g1, = torch.autograd.grad(fused_upsample(xg, f, b, impl="ext"), xg, dy)
    g2, = torch.autograd.grad(fused_upsample(xg, f, b, impl="ext"), xg, dy)
    assert torch.equal(g1, g2)
    xs = x[1:2].clone().requires_grad_(True)
    gs, = torch.autograd.grad(fused_upsample(xs, f, b, impl="ext"), xs, dy[1:2])
    assert torch.equal(gs, g1[1:2])


def test_zero_size_batch_and_channels_return_empty_results():
    for shape in ((0, 3, 5, 5), (2, 0, 5, 5)):
        x = torch.zeros(shape, requires_grad=True)
        b = torch.zeros(shape[1])
        for impl in ("ext", "reference"):
            y = fused_upsample(x, None, b, impl=impl)
            assert y.shape == (shape[0], shape[1], 10, 10)
            d = upfirdn2d(x, setup_filter(), down=2, padding=1, impl=impl)
            assert d.shape == (shape[0], shape[1], 2, 2)  # (5 + 2 - 4) // 2 + 1
        (g,) = torch.autograd.grad(fused_upsample(x, None, b, impl="ext").sum(), x)
        assert g.shape == x.shape


def test_unusual_activation_parameters_still_match_reference():
    # Non-positive act_gain / negative slope take the unfused activation path; results must agree.
    x, b = rand(1, 3, 4, 4), rand(3, seed=1)
    for act, alpha, act_gain in (("lrelu", -0.5, 1.0), ("lrelu", 0.2, -1.0), ("relu", 0.2, 0.0)):
        ref = reference.fused_upsample(x, setup_filter(), b, act=act, alpha=alpha, act_gain=act_gain)
        xg = x.clone().requires_grad_(True)
        got = fused_upsample(xg, None, b, act=act, alpha=alpha, act_gain=act_gain, impl="ext")
        assert close(got, ref)
        (g,) = torch.autograd.grad(got.sum(), xg)
        xr = x.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(reference.fused_upsample(xr, setup_filter(), b, act=act, alpha=alpha,
                                                             act_gain=act_gain).sum(), xr)
        assert close(g, gr)
