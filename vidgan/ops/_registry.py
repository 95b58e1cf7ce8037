"""Fake kernels (for torch.compile / meta tensors) and autograd formulas of torch.ops.vidgan.*.

Imported once, right after `vidgan._C` loads (the C++ library names this module as the
home of its Python registrations). Every backward is built from the ops themselves, so
gradients are differentiable again to any order:

    upfirdn2d            backward = upfirdn2d with up/down swapped, the filter flipped
    fused_upsample       backward = fused_upsample_grad (dy masked by the activation and
                                    clamp derivative read off y, then the adjoint upfirdn2d)
    fused_upsample_grad  backward = fused_upsample(act="linear") of (ddx, ddb), times the mask
"""
from typing import Tuple

import torch

OPS = torch.ops.vidgan


def out_len(n, up: int, down: int, p0: int, p1: int, taps: int):
    """Output length of upfirdn along one axis."""
    return (n * up + p0 + p1 - taps) // down + 1


def adjoint_pads(n_in, n_out, up: int, down: int, p0: int, p1: int, taps: int) -> Tuple[int, int]:
    """Padding of the adjoint upfirdn (up and down swapped, filter flipped) along one axis.

    It maps a length-n_out signal back to exactly n_in samples.
    """
    return taps - 1 - p0, n_in * up - n_out * down + p0 - up + 1


def output_format(x: torch.Tensor) -> torch.memory_format:
    """The kernels' layout rule: channels_last in -> channels_last out, else NCHW."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def grad_mask(y: torch.Tensor, act: str, alpha: float, act_gain: float, clamp: float):
    """d(clamp(act(v) * act_gain))/dv read off the output y (None when it is 1 everywhere)."""
    m = None
    if act == "lrelu":
        m = (y > 0).to(y.dtype) * (act_gain - alpha * act_gain) + alpha * act_gain
    elif act == "relu":
        m = (y > 0).to(y.dtype) * act_gain
    if clamp >= 0:
        inside = (y.abs() < clamp).to(y.dtype)
        m = inside if m is None else m * inside
    return m


# ----------------------------------------------------------------------------- fake kernels
def _empty(x, shape):
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))


@torch.library.register_fake("vidgan::upfirdn2d")
def _upfirdn2d_fake(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
    n, c, h, w = x.shape
    oh = out_len(h, upy, downy, pady0, pady1, f.shape[0])
    ow = out_len(w, upx, downx, padx0, padx1, f.shape[1])
    return _empty(x, (n, c, oh, ow))


@torch.library.register_fake("vidgan::fused_upsample")
def _fused_upsample_fake(x, f, bias, upx, upy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain,
                         clamp):
    n, c, h, w = x.shape
    oh = out_len(h, upy, 1, pady0, pady1, f.shape[0])
    ow = out_len(w, upx, 1, padx0, padx1, f.shape[1])
    return _empty(x, (n, c, oh, ow))


@torch.library.register_fake("vidgan::fused_upsample_grad")
def _fused_upsample_grad_fake(dy, y, f, downx, downy, padx0, padx1, pady0, pady1, flip, gain, act, alpha,
                              act_gain, clamp, bias_grad):
    n, c, h, w = dy.shape
    oh = out_len(h, 1, downy, pady0, pady1, f.shape[0])
    ow = out_len(w, 1, downx, padx0, padx1, f.shape[1])
    return _empty(dy, (n, c, oh, ow)), dy.new_empty((c,))


# ----------------------------------------------------------------------------- autograd
def _upfirdn2d_setup(ctx, inputs, output):
    x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain = inputs
    ctx.save_for_backward(f)
    ctx.args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain)
    ctx.sizes = (x.shape[2], x.shape[3], output.shape[2], output.shape[3])


def _upfirdn2d_backward(ctx, dy):
    (f,) = ctx.saved_tensors
    upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain = ctx.args
    h, w, oh, ow = ctx.sizes
    qx0, qx1 = adjoint_pads(w, ow, upx, downx, padx0, padx1, f.shape[1])
    qy0, qy1 = adjoint_pads(h, oh, upy, downy, pady0, pady1, f.shape[0])
    dx = OPS.upfirdn2d(dy, f, downx, downy, upx, upy, qx0, qx1, qy0, qy1, not flip, gain)
    return (dx,) + (None,) * 11


def _fused_upsample_setup(ctx, inputs, output):
    x, f, bias, upx, upy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp = inputs
    ctx.save_for_backward(output, f)
    ctx.args = (upx, upy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp)
    ctx.sizes = (x.shape[2], x.shape[3])
    ctx.has_bias = bias is not None


def _fused_upsample_backward(ctx, dy):
    y, f = ctx.saved_tensors
    upx, upy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp = ctx.args
    h, w = ctx.sizes
    qx0, qx1 = adjoint_pads(w, y.shape[3], upx, 1, padx0, padx1, f.shape[1])
    qy0, qy1 = adjoint_pads(h, y.shape[2], upy, 1, pady0, pady1, f.shape[0])
    bias_grad = ctx.has_bias and ctx.needs_input_grad[2]
    dx, db = OPS.fused_upsample_grad(dy, y, f, upx, upy, qx0, qx1, qy0, qy1, not flip, gain, act, alpha,
                                     act_gain, clamp, bias_grad)
    return (dx, None, db if bias_grad else None) + (None,) * 12


def _fused_upsample_grad_setup(ctx, inputs, output):
    (dy, y, f, downx, downy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp,
     bias_grad) = inputs
    ctx.save_for_backward(y, f)
    ctx.args = (downx, downy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp, bias_grad)
    ctx.sizes = (dy.shape[2], dy.shape[3], output[0].shape[2], output[0].shape[3])


def _fused_upsample_grad_backward(ctx, ddx, ddb):
    # fused_upsample_grad is linear in dy: (dx, db) = (D(m * dy), sum(m * dy)) with a mask m
    # that is piecewise constant in y, so y gets no gradient and dy gets m * (D^T ddx + ddb).
    y, f = ctx.saved_tensors
    downx, downy, padx0, padx1, pady0, pady1, flip, gain, act, alpha, act_gain, clamp, bias_grad = ctx.args
    h, w, oh, ow = ctx.sizes
    qx0, qx1 = adjoint_pads(w, ow, 1, downx, padx0, padx1, f.shape[1])
    qy0, qy1 = adjoint_pads(h, oh, 1, downy, pady0, pady1, f.shape[0])
    ddy = OPS.fused_upsample(ddx, f, ddb if bias_grad else None, downx, downy, qx0, qx1, qy0, qy1, not flip, gain,
                             "linear", 0.0, 1.0, -1.0)
    m = grad_mask(y, act, alpha, act_gain, clamp)
    if m is not None:
        ddy = ddy * m
    return (ddy,) + (None,) * 15


torch.library.register_autograd("vidgan::upfirdn2d", _upfirdn2d_backward, setup_context=_upfirdn2d_setup)
torch.library.register_autograd("vidgan::fused_upsample", _fused_upsample_backward,
                                setup_context=_fused_upsample_setup)
torch.library.register_autograd("vidgan::fused_upsample_grad", _fused_upsample_grad_backward,
                                setup_context=_fused_upsample_grad_setup)
