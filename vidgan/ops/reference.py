"""Plain-PyTorch reference of the fused ops: the specification the kernels are tested against.

Semantics (pinned in DESIGN.md), on x: [N, C, H, W]:

    z = zero-insertion upsample of x by `up` (x at every up-th pixel, zeros between)
    z = pad z by padding (negative = crop)
    y = true 2D convolution of z with f (flipped unless flip_filter), scaled by gain
    y = y[:, :, ::down, ::down]                         (upfirdn2d only)
    y = y + bias[c]; y = act(y) * act_gain; y = clamp(y)  (fused_upsample only)

Everything here is differentiable by autograd to any order.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

IntPair = Union[int, Sequence[int]]
ACTIVATIONS = ("lrelu", "relu", "linear")


def pair(v: IntPair, name: str) -> Tuple[int, int]:
    """(x, y) from an int or a 2-sequence."""
    if isinstance(v, int):
        return v, v
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair (x, y), got {v!r}.")
    return v


def pad4(padding: IntPair) -> Tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, a pair (px, py) or a quadruple (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = tuple(int(t) for t in padding)
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p
    raise ValueError(f"padding must be an int, a pair (px, py) or (x0, x1, y0, y1), got {padding!r}.")


def setup_filter(f=None, normalize: bool = True, separable: Optional[bool] = None,
                 device=None, dtype=torch.float32) -> torch.Tensor:
    """A float filter tensor from a list/array/tensor; None gives [1, 3, 3, 1] (separable).

    A 1D filter is separable (applied along x then y); `separable=False` turns it into
    the equivalent 2D outer product. Normalised to sum 1 (per axis for 1D) by default.
    """
    if f is None:
        f = [1.0, 3.0, 3.0, 1.0]
    f = torch.as_tensor(f, dtype=dtype, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"the filter must be a non-empty 1D (separable) or 2D tensor, got shape {tuple(f.shape)}.")
    if normalize:
        f = f / f.sum()
    if separable is False and f.ndim == 1:
        f = torch.outer(f, f)
    return f


def default_padding(f: torch.Tensor, up: IntPair) -> Tuple[int, int, int, int]:
    """The pinned default: ((fw+up-1)//2, (fw-up)//2) on each axis, so 4 taps give [up*H, up*W]."""
    upx, upy = pair(up, "up")
    fh, fw = (f.shape[0], f.shape[-1]) if f.ndim == 2 else (f.shape[0], f.shape[0])
    return (fw + upx - 1) // 2, (fw - upx) // 2, (fh + upy - 1) // 2, (fh - upy) // 2


def output_size(h: int, w: int, f: torch.Tensor, up: IntPair = 1, down: IntPair = 1,
                padding: IntPair = 0) -> Tuple[int, int]:
    """Output (H, W) of upfirdn2d for an input of (h, w)."""
    upx, upy = pair(up, "up")
    downx, downy = pair(down, "down")
    px0, px1, py0, py1 = pad4(padding)
    fh, fw = (f.shape[0], f.shape[-1]) if f.ndim == 2 else (f.shape[0], f.shape[0])
    oh = (h * upy + py0 + py1 - fh) // downy + 1
    ow = (w * upx + px0 + px1 - fw) // downx + 1
    return oh, ow


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: IntPair = 1, down: IntPair = 1,
              padding: IntPair = 0, flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR filter, downsample: [N, C, H, W] -> [N, C, H', W']."""
    upx, upy = pair(up, "up")
    downx, downy = pair(down, "down")
    px0, px1, py0, py1 = pad4(padding)
    n, c, h, w = x.shape
    if n * c == 0:  # empty batch or no channels: an empty result (still attached to x's graph)
        oh, ow = output_size(h, w, f, (upx, upy), (downx, downy), (px0, px1, py0, py1))
        return x.new_zeros((n, c, oh, ow)) + x.sum()
    # Zero insertion: x at every up-th pixel.                     [N, C, H*upy, W*upx]
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # Pad (positive) then crop (negative).
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # True convolution = cross-correlation with the flipped filter.
    f = f.to(dtype=x.dtype, device=x.device) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, f.shape[0]), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, f.shape[0], 1), groups=c)
    return x[:, :, ::downy, ::downx]


def bias_act(y: torch.Tensor, bias: Optional[torch.Tensor] = None, act: str = "lrelu", alpha: float = 0.2,
             act_gain: Optional[float] = None, clamp: Optional[float] = None, dim: int = 1) -> torch.Tensor:
    """y + bias (broadcast along `dim`), then act(y) * act_gain, then clamp to [-clamp, clamp].

    The one bias + activation of the package: the reference of the fused op's epilogue, its
    unfused fallback, and (through vidgan.nn.bias_act, with nn's defaults) every nn layer.
    act: 'lrelu' (slope alpha), 'relu' or 'linear' (which ignores act_gain); act_gain None =
    sqrt(2). clamp None or negative = no clamp (the kernels' -1 convention).
    """
    if bias is not None:
        shape = [1] * y.ndim
        shape[dim] = -1
        y = y + bias.to(y.dtype).reshape(shape)
    if act == "lrelu":
        y = F.leaky_relu(y, alpha) * (math.sqrt(2) if act_gain is None else act_gain)
    elif act == "relu":
        y = F.relu(y) * (math.sqrt(2) if act_gain is None else act_gain)
    elif act != "linear":
        raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}.")
    if clamp is not None and clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y


def fused_upsample(x: torch.Tensor, f: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
                   up: int = 2, padding: Optional[IntPair] = None, gain: Optional[float] = None,
                   flip_filter: bool = False, act: str = "lrelu", alpha: float = 0.2,
                   act_gain: Optional[float] = None, clamp: Optional[float] = None) -> torch.Tensor:
    """Reference of the fused op: upfirdn2d(up) + bias + activation + clamp."""
    if f is None:
        f = setup_filter(device=x.device)
    if padding is None:
        padding = default_padding(f, up)
    ux, uy = pair(up, "up")
    y = upfirdn2d(x, f, up=up, padding=padding, flip_filter=flip_filter, gain=float(ux * uy) if gain is None else gain)
    return bias_act(y, bias, act=act, alpha=alpha, act_gain=act_gain, clamp=clamp)
