"""CUDA kernels against the CPU kernels (run only where a GPU and the CUDA build are present)."""
import pytest
import torch

from tests.ops.conftest import rand
from vidgan.ops import _ext, setup_filter
from vidgan.ops import fused_upsample as _fused_upsample
from vidgan.ops import upfirdn2d as _upfirdn2d


# These tests are of the kernels: impl=None runs the plain-PyTorch reference on CUDA where the kernel has not
# been measured faster (vidgan/ops/fused.py, default_impl), so every call here asks for the extension.
def fused_upsample(*args, impl="ext", **kwargs):
    return _fused_upsample(*args, impl=impl, **kwargs)


def upfirdn2d(*args, impl="ext", **kwargs):
    return _upfirdn2d(*args, impl=impl, **kwargs)


pytestmark = pytest.mark.cuda

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def _cuda_build():
    assert _ext.has_cuda(), "vidgan._C was built without CUDA; rebuild with VIDGAN_CUDA=1"


def close(a, b, tol):
    return float((a.float().cpu() - b.float().cpu()).abs().max()) <= tol * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_upsample_cuda_matches_cpu(dtype, channels_last):
    # The CPU op sees the same dtype-rounded x and bias in float32, so what remains is the
    # kernel's own error: float32 accumulation plus one rounding of the output to dtype.
    x, b = rand(3, 5, 37, 29).to(dtype).float(), rand(5, seed=1).to(dtype).float()  # odd sizes, several tiles
    for f, up, clamp in ((None, 2, None), (setup_filter([1, 2, 3, 2, 1]), 4, 0.7), (rand(3, 5, seed=2), 1, 1.5)):
        cpu = fused_upsample(x, f, b, up=up, clamp=clamp)
        xd = x.cuda().to(dtype)
        if channels_last:
            xd = xd.contiguous(memory_format=torch.channels_last)
        fd = None if f is None else f.cuda()
        got = fused_upsample(xd, fd, b.cuda().to(dtype), up=up, clamp=clamp)
        assert got.dtype == dtype and got.is_cuda
        assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert close(got, cpu, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_upfirdn2d_cuda_matches_cpu(dtype):
    x = rand(2, 3, 45, 70)
    for up, down, pad, f in ((1, 2, (1, 1), setup_filter()), (3, 2, (2, -1, 0, 3), rand(4, 3, seed=1)),
                             ((2, 1), (1, 4), 0, rand(5, seed=2)), (1, 1, 40, rand(70, 70, seed=3))):
        cpu = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=True, gain=1.5)
        got = upfirdn2d(x.cuda().to(dtype), f.cuda(), up=up, down=down, padding=pad, flip_filter=True, gain=1.5)
        assert close(got, cpu, TOL[dtype] * (10 if f.numel() > 1000 else 1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_gradients_match_cpu_and_gradcheck(channels_last):
    x, b = rand(2, 4, 13, 11).requires_grad_(True), rand(4, seed=1).requires_grad_(True)
    dy = rand(2, 4, 26, 22, seed=2)
    cpu = torch.autograd.grad(fused_upsample(x, None, b, clamp=1.0), (x, b), dy)
    xd = x.detach().cuda()
    if channels_last:
        xd = xd.contiguous(memory_format=torch.channels_last)
    xd.requires_grad_(True)
    bd = b.detach().cuda().requires_grad_(True)
    got = torch.autograd.grad(fused_upsample(xd, None, bd, clamp=1.0), (xd, bd), dy.cuda())
    for g, c in zip(got, cpu):
        assert close(g, c, 1e-4)
    x64 = rand(1, 2, 5, 4, dtype=torch.float64, device="cuda").requires_grad_(True)
    b64 = rand(2, dtype=torch.float64, device="cuda").requires_grad_(True)
    f64 = setup_filter(dtype=torch.float64, device="cuda")
    fn = lambda x, b: fused_upsample(x, f64, b, clamp=0.8)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x64, b64))
    assert torch.autograd.gradgradcheck(fn, (x64, b64))


def test_cuda_runs_on_the_current_stream_and_is_deterministic():
    x, b = rand(4, 8, 33, 17, device="cuda"), rand(8, device="cuda")
    ref = fused_upsample(x, None, b)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())  # x and b were made on the default stream
    with torch.cuda.stream(s):
        got = fused_upsample(x, None, b)
    s.synchronize()
    assert torch.equal(got, ref)
    xg = x.clone().requires_grad_(True)
    dy = torch.randn_like(ref)
    g1 = torch.autograd.grad(fused_upsample(xg, None, b), xg, dy)[0]
    g2 = torch.autograd.grad(fused_upsample(xg, None, b), xg, dy)[0]
    assert torch.equal(g1, g2)


def test_cuda_opcheck_and_empty_batch():
    x = rand(1, 2, 4, 5, device="cuda").requires_grad_(True)
    f = torch.outer(setup_filter(device="cuda"), setup_filter(device="cuda"))
    result = torch.library.opcheck(torch.ops.vidgan.fused_upsample.default,
                                   (x, f, None, 2, 2, 2, 1, 2, 1, False, 4.0, "lrelu", 0.2, 1.41, -1.0))
    assert all(v == "SUCCESS" for v in result.values())
    assert fused_upsample(torch.zeros(0, 3, 4, 4, device="cuda")).shape == (0, 3, 8, 8)


# ----------------------------------------------------------------------------- v2 kernels
# VIDGAN_CUDA_KERNEL=v2 routes calls to the v2 kernels (csrc/upfirdn2d_cuda_v2.cu), read at every call.
# Their families: up2_f4 (up 2, down 1, 4x4 taps), down2_f4 (up 1, down 2, 4x4 taps) and generic.
SPEC_UP2 = "2, 1, 4, 4, 4, 2,"      # template arguments after the mode in the kernel's name
SPEC_DOWN2 = "1, 2, 4, 4, 4, 1,"
GENERIC = "0, 0, 0, 0, 1, 1,"


@pytest.fixture
def v2(monkeypatch):
    monkeypatch.setenv("VIDGAN_CUDA_KERNEL", "v2")


def on_cuda(t, dtype=None, channels_last=False):
    t = t.cuda() if dtype is None else t.cuda().to(dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def kernel_names(fn):
    """Names of the CUDA kernels `fn` launches (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if "kernel" in e.name]
    if not names:
        pytest.skip("the profiler recorded no CUDA kernels here")
    return names


def ran(names, family):
    return any("v2_kernel" in n and family in n for n in names)


def test_kernel_names_default_is_v1_and_switch_picks_each_v2_family(monkeypatch):
    monkeypatch.delenv("VIDGAN_CUDA_KERNEL", raising=False)
    x = rand(2, 4, 9, 11, device="cuda").requires_grad_(True)
    b = rand(4, seed=1, device="cuda").requires_grad_(True)
    f = setup_filter(device="cuda")
    names = kernel_names(lambda: fused_upsample(x, f, b).sum().backward())
    assert any("upfirdn2d_tile_kernel" in n for n in names) and not any("v2_kernel" in n for n in names)
    monkeypatch.setenv("VIDGAN_CUDA_KERNEL", "v2")
    names = kernel_names(lambda: fused_upsample(x, f, b).sum().backward())
    assert ran(names, SPEC_UP2) and ran(names, SPEC_DOWN2)
    assert not any("upfirdn2d_tile_kernel" in n for n in names)
    assert ran(kernel_names(lambda: upfirdn2d(x, f, down=2, padding=1)), SPEC_DOWN2)
    assert ran(kernel_names(lambda: upfirdn2d(x, f, up=2, padding=(2, 1))), SPEC_UP2)
    assert ran(kernel_names(lambda: fused_upsample(x, setup_filter([1, 2, 3, 2, 1], device="cuda"), b, up=4)), GENERIC)
    assert ran(kernel_names(lambda: upfirdn2d(x, rand(3, 5, seed=2, device="cuda"), up=3, down=2)), GENERIC)


# (f, up, padding, clamp, act): the up2_f4 family with the default and an odd padding (the other phase),
# then the generic kernel with up=4 / 5 taps and a non-square filter without upsampling.
FWD_CASES = [(None, 2, None, None, "lrelu"), (None, 2, (1, 2, 3, 0), 0.7, "lrelu"),
             (setup_filter([1, 2, 3, 2, 1]), 4, None, 0.7, "lrelu"), (rand(3, 5, seed=2), 1, None, 1.5, "relu")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 37, 29), (16, 64, 4, 4), (4, 3, 8, 8), (2, 1, 9, 70)])
def test_v2_fused_upsample_matches_cpu(v2, dtype, channels_last, shape):
    # odd sizes and several tiles; 4x4 and 8x8 planes with many (or 3) channels: several planes per block
    x, b = rand(*shape).to(dtype).float(), rand(shape[1], seed=1).to(dtype).float()
    for f, up, pad, clamp, act in FWD_CASES:
        cpu = fused_upsample(x, f, b, up=up, padding=pad, clamp=clamp, act=act)
        fd = None if f is None else f.cuda()
        got = fused_upsample(on_cuda(x, dtype, channels_last), fd, b.cuda().to(dtype), up=up, padding=pad,
                             clamp=clamp, act=act)
        assert got.dtype == dtype
        if shape[1] > 1:  # with one channel both layouts are the same strides
            assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert close(got, cpu, TOL[dtype]), (f, up, pad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_v2_upfirdn2d_matches_cpu(v2, dtype, channels_last):
    x = rand(2, 8, 45, 70).to(dtype).float()
    for up, down, pad, f in ((1, 2, (1, 1), setup_filter()), (2, 1, (2, 1), setup_filter()),
                             (1, 2, (-2, 3, 4, -3), rand(4, seed=4)), (3, 2, (2, -1, 0, 3), rand(4, 3, seed=1)),
                             ((2, 1), (1, 4), 0, rand(5, seed=2)), (1, 1, 20, rand(30, 30, seed=3))):
        cpu = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=True, gain=1.5)
        got = upfirdn2d(on_cuda(x, dtype, channels_last), f.cuda(), up=up, down=down, padding=pad, flip_filter=True,
                        gain=1.5)
        assert close(got, cpu, TOL[dtype] * (10 if f.numel() > 100 else 1)), (up, down, pad)


def _grads(x, b, dy, **kw):
    return torch.autograd.grad(fused_upsample(x, None, b, **kw), (x, b), dy)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 13, 11), (2, 3, 70, 45), (16, 64, 4, 4), (3, 68, 8, 8)])
def test_v2_gradients_and_bias_gradient_match_cpu(v2, channels_last, shape):
    # backward = down2_f4 with dy * mask(y) and the bias gradient in one pass; 70x45 spreads a plane over
    # several tiles (partial sums per tile), 4x4 / 8x8 put many planes in one block
    n, c, h, w = shape
    x, b, dy = rand(*shape), rand(c, seed=1), rand(n, c, 2 * h, 2 * w, seed=2)
    for kw in ({"clamp": 1.0}, {"act": "relu"}, {"act": "linear", "up": 2}):
        cpu = _grads(x.clone().requires_grad_(True), b.clone().requires_grad_(True), dy, **kw)
        got = _grads(on_cuda(x, None, channels_last).requires_grad_(True), b.cuda().requires_grad_(True),
                     on_cuda(dy, None, channels_last), **kw)
        assert got[0].is_contiguous(memory_format=torch.channels_last) == channels_last
        for g, r in zip(got, cpu):
            assert close(g, r, 1e-4), kw


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_v2_half_gradients_match_v1(monkeypatch, dtype):
    # Same storage dtype, float accumulation in both kernels: they agree to one rounding of dx and db.
    x, b, dy = rand(4, 16, 17, 19, device="cuda"), rand(16, seed=1, device="cuda"), rand(4, 16, 34, 38, seed=2)
    x, b, dy = x.to(dtype), b.to(dtype), dy.cuda().to(dtype)
    out = {}
    for kernel in ("v1", "v2"):
        monkeypatch.setenv("VIDGAN_CUDA_KERNEL", kernel)
        out[kernel] = _grads(x.clone().requires_grad_(True), b.clone().requires_grad_(True), dy)
    for g1, g2 in zip(out["v1"], out["v2"]):
        assert g2.dtype == dtype and close(g2, g1, TOL[dtype])


def test_v2_bias_gradient_of_fused_upsample_grad_op(v2):
    # The op itself: dx and the bias gradient (per-plane partial sums over tiles, then over the batch);
    # down2_f4 with one and with several tiles per plane, and the generic kernel (5 taps, down 4).
    f4, f5 = setup_filter(), setup_filter([1, 2, 3, 2, 1])
    for f, down, pad, shape in ((f4, 2, (1, 2), (5, 6, 40, 36)), (f4, 2, (1, 2), (2, 3, 150, 140)),
                                (f5, 4, (2, 2), (2, 3, 36, 44))):
        dy, y = rand(*shape, seed=3), rand(*shape, seed=4)
        args = (torch.outer(f, f), down, down, pad[0], pad[1], pad[0], pad[1], False, 4.0, "lrelu", 0.2, 2 ** 0.5,
                0.9, True)
        cpu = torch.ops.vidgan.fused_upsample_grad(dy, y, *args)
        got = torch.ops.vidgan.fused_upsample_grad(dy.cuda(), y.cuda(), args[0].cuda(), *args[1:])
        assert got[1].shape == (shape[1],)
        assert close(got[0], cpu[0], 1e-4) and close(got[1], cpu[1], 1e-4), (down, shape)


def test_v2_second_order_matches_cpu(v2):
    x, b = rand(2, 3, 10, 12), rand(3, seed=1)

    def penalty(x, b):
        x = x.requires_grad_(True)
        y = fused_upsample(x, None, b, clamp=2.0)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return torch.autograd.grad(g.square().sum(), (x, b))

    for g, r in zip(penalty(x.cuda(), b.cuda().requires_grad_(True)),
                    penalty(x.clone(), b.clone().requires_grad_(True))):
        assert close(g, r, 1e-4)


def test_v2_declines_what_it_does_not_cover(v2):
    # float64 and non-contiguous inputs still work (v1, or a contiguous copy first)
    x = rand(2, 3, 9, 7, dtype=torch.float64)
    assert close(fused_upsample(x.cuda(), None, None), fused_upsample(x, None, None), 1e-10)
    xs = rand(2, 6, 9, 16)[:, ::2, :, 3:12]
    assert close(fused_upsample(xs.cuda()), fused_upsample(xs), 1e-5)
    assert fused_upsample(torch.zeros(0, 3, 4, 4, device="cuda")).shape == (0, 3, 8, 8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_v2_is_bit_identical_on_repeat_and_streams(v2, channels_last):
    x = on_cuda(rand(4, 8, 33, 17), None, channels_last)
    b = rand(8, device="cuda")
    ref = fused_upsample(x, None, b)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        got = fused_upsample(x, None, b)
    s.synchronize()
    assert torch.equal(got, ref)
    dy = torch.randn_like(ref)
    g = [_grads(x.clone().requires_grad_(True), b.clone().requires_grad_(True), dy) for _ in range(2)]
    assert torch.equal(g[0][0], g[1][0]) and torch.equal(g[0][1], g[1][1])
    d = [upfirdn2d(x, setup_filter(device="cuda"), down=2, padding=1) for _ in range(2)]
    assert torch.equal(d[0], d[1])
