"""Fake kernels (for torch.compile / meta tensors) of torch.ops.vidgan.*.

Imported once, right after `vidgan._C` loads (the C++ library names this module as the home
of its Python registrations). The autograd formulas are registered in C++
(csrc/upfirdn2d_autograd.cpp: a Python torch.library.register_autograd cost about 100 us of
host time per call); each backward is built from the ops themselves, so gradients are
differentiable again to any order:

    upfirdn2d            backward = upfirdn2d with up/down swapped, the filter flipped
    fused_upsample       backward = fused_upsample_grad (dy masked by the activation and
                                    clamp derivative read off y, then the adjoint upfirdn2d)
    fused_upsample_grad  backward = fused_upsample(act="linear") of (ddx, ddb), times the mask

A filter is 2D [fh, fw] or 1D [taps] (separable: fh = fw = taps).
"""
import torch

OPS = torch.ops.vidgan


def out_len(n, up: int, down: int, p0: int, p1: int, taps: int):
    """Output length of upfirdn along one axis."""
    return (n * up + p0 + p1 - taps) // down + 1


def output_format(x: torch.Tensor) -> torch.memory_format:
    """The kernels' layout rule: channels_last in -> channels_last out, else NCHW."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


# ----------------------------------------------------------------------------- fake kernels
def _empty(x, shape):
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))


@torch.library.register_fake("vidgan::upfirdn2d")
def _upfirdn2d_fake(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
    n, c, h, w = x.shape
    oh = out_len(h, upy, downy, pady0, pady1, f.shape[0])
    ow = out_len(w, upx, downx, padx0, padx1, f.shape[-1])
    return _empty(x, (n, c, oh, ow))


@torch.library.register_fake("vidgan::fused_upsample")
def _fused_upsample_fake(x, f, bias, upx, upy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain,
                         clamp):
    n, c, h, w = x.shape
    oh = out_len(h, upy, 1, pady0, pady1, f.shape[0])
    ow = out_len(w, upx, 1, padx0, padx1, f.shape[-1])
    return _empty(x, (n, c, oh, ow))


@torch.library.register_fake("vidgan::fused_upsample_grad")
def _fused_upsample_grad_fake(dy, y, f, downx, downy, padx0, padx1, pady0, pady1, flip, gain, act, alpha,
                              act_gain, clamp, bias_grad):
    n, c, h, w = dy.shape
    oh = out_len(h, 1, downy, pady0, pady1, f.shape[0])
    ow = out_len(w, 1, downx, padx0, padx1, f.shape[-1])
    return _empty(dy, (n, c, oh, ow)), dy.new_empty((c,))
