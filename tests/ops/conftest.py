"""Helpers for the vidgan.ops tests: random inputs and the output size of a configuration."""
import pytest
import torch

from vidgan.ops import _ext, reference


def needs_ext():
    """Fail loudly when the compiled extension is missing: the op tests exist to test it."""
    if _ext.ext() is None:
        pytest.fail(f"vidgan._C is not loaded ({_ext.ERROR}); build it with `pip install --no-build-isolation -e .`")


@pytest.fixture(autouse=True)
def _require_ext():
    needs_ext()


def out_hw(x, f, up=1, down=1, padding=0):
    """(H', W') of upfirdn2d, may be <= 0 for invalid crops."""
    return reference.output_size(x.shape[2], x.shape[3], f, up, down, padding)


def rand(*shape, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def filt(taps, separable, seed=0, dtype=torch.float32):
    """A random (not normalised) filter: 1D [taps] or 2D [taps, taps + 1] (non-square on purpose)."""
    if separable:
        return rand(taps, seed=seed, dtype=dtype)
    return rand(taps, max(1, taps + 1 if taps < 8 else taps - 1), seed=seed, dtype=dtype)
