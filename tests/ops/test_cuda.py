"""CUDA kernels against the CPU kernels (run only where a GPU and the CUDA build are present)."""
import pytest
import torch

from tests.ops.conftest import rand
from vidgan.ops import _ext, fused_upsample, setup_filter, upfirdn2d

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
