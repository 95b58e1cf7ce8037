"""Equalized-learning-rate layers: weights stored at unit scale, scaled by 1/sqrt(fan_in) at run time.

Every layer here multiplies its stored weight by `lr_mul / sqrt(fan_in)` in forward, so Adam sees
parameters of similar scale everywhere (StyleGAN's equalized learning rate). `lr_mul` < 1 slows a
layer down (the mapping network uses 0.01).
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgan.ops import reference

SQRT2 = math.sqrt(2.0)


def bias_act(x: torch.Tensor, bias: Optional[torch.Tensor] = None, act: str = "linear",
             clamp: Optional[float] = None, dim: int = 1) -> torch.Tensor:
    """x + bias (broadcast along `dim`), then lrelu(0.2)*sqrt(2) / relu*sqrt(2) / linear, then clamp.

    The layers' defaults (linear unless told, slope 0.2, gain sqrt(2)) on the one implementation,
    vidgan.ops.reference.bias_act. clamp: None = no clamp, else >= 0 (a negative clamp is an error
    here, as in vidgan.ops.fused_upsample: the model config only ever passes a positive one).
    """
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"clamp must be a non-negative number or None (no clamp), got {clamp!r}.")
    return reference.bias_act(x, bias, act=act, alpha=0.2, act_gain=SQRT2, clamp=clamp, dim=dim)


# A 1x1 convolution with at most this many input channels (an RGB input, a toRGB output) runs as a batched
# matrix product: oneDNN's 1x1 kernels are 2-4x slower than it there (forward + backward on this project's
# 2-core AVX2 CPU: [8, 6, 16, 32, 32] -> 16 channels 10.3 -> 5.2 ms, [128, 16, 64, 64] -> 3 with styles
# 30.6 -> 13.1 ms), and with more input channels it gains nothing.
FEW_CHANNELS = 8


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A 1x1 convolution with a weight per sample: x [B, Cin, *S], weight [B, Cout, Cin], bias [Cout] or None
    -> [B, Cout, *S], as one batched matrix product (no padding, stride 1)."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    y = torch.bmm(weight, flat) if bias is None else torch.baddbmm(bias.reshape(1, -1, 1), weight, flat)
    return y.reshape(x.shape[0], weight.shape[1], *x.shape[2:])


def conv_act(conv, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], act: str,
             clamp: Optional[float], **kwargs) -> torch.Tensor:
    """bias_act(conv(x, weight), bias, act, clamp) in fewer passes over memory: the activation's gain
    sqrt(2) is folded into the weight and bias (lrelu and relu are positively homogeneous), the bias
    is added by the convolution, and the activation runs in place on the convolution's fresh output.
    Equal to the unfused form up to rounding."""
    if act not in ("lrelu", "relu", "linear"):
        raise ValueError(f"act must be one of lrelu, relu, linear, got {act!r}.")
    g = 1.0 if act == "linear" else SQRT2
    w = (weight * g if g != 1.0 else weight).to(x.dtype)
    b = None if bias is None else (bias * g).to(x.dtype)
    if weight.shape[1] <= FEW_CHANNELS and all(k == 1 for k in weight.shape[2:]):
        y = pointwise(x, w.reshape(1, *w.shape[:2]).expand(x.shape[0], -1, -1), b)
    else:
        y = conv(x, w, b, **kwargs)
    if act == "lrelu":
        y = F.leaky_relu(y, 0.2, inplace=True)
    elif act == "relu":
        y = F.relu(y, inplace=True)
    return y if clamp is None else y.clamp(-clamp, clamp)


def _fixed_order_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a * b, -1) for [U, K] rows, added pairwise in an order that depends on K alone.

    Elementwise multiplies and adds only, each rounded on its own: a row's result depends on
    that row's values and nothing else (not U, the thread count or the SIMD width).
    """
    p = a * b
    while p.shape[-1] > 1:
        h = p.shape[-1] // 2
        s = p[:, :h] + p[:, h:2 * h]
        p = torch.cat([s, p[:, 2 * h:]], dim=1) if p.shape[-1] % 2 else s
    return p[:, 0]


def row_exact_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T where each output row depends on its input row only, bit for bit, whatever the batch size.

    BLAS kernels pick different accumulation orders for different numbers of rows (and for
    different alignments, thread counts and CPUs), so their results can differ in the last bit
    between a batch and its slices. For float32 x this is made impossible by construction:

      r = x @ w.T in float64 (BLAS, any order). For any summation order, and so also for an
      exact or a fixed-order sum, |r - x.w| <= gamma_K * s with s = |x| @ |w|.T and
      gamma_K ~ K * 2^-53 (K = in_features). Rounding to float32 is monotonic, so where
      float32(r - b) == float32(r + b) for a margin b >= 2 gamma_K s, every float64 value any
      order could produce rounds to the same float32: that of the exact dot product. The rare
      remaining elements (within b of a float32 rounding boundary, ~1e-4 of them) are recomputed
      with _fixed_order_dot, which depends on the row only; it lies within the same interval of
      any r, so it also agrees with every safe result.

    Used in eval mode only, where rendering a clip in chunks must equal rendering it whole.
    Other dtypes: plain F.linear (no such guarantee).
    """
    if x.dtype != torch.float32:
        return F.linear(x, w.to(x.dtype))
    k, out = x.shape[-1], w.shape[0]
    x64, w64 = x.reshape(-1, k).double(), w.double()
    r = F.linear(x64, w64)                                                       # [R, out]
    y = r.float()
    with torch.no_grad():
        s = F.linear(x64.abs(), w64.abs())
        b = s * (4.0 * (k + 2) * 2.0 ** -53)  # 2 gamma_K s, doubled for the rounding of s and of r +- b
        rd = r.detach()
        unsafe = (rd - b).float() != (rd + b).float()          # also NaN: recomputed, still row-exact
        rows, cols = unsafe.nonzero(as_tuple=True)
    if rows.numel():
        step = max(1, (1 << 22) // max(k, 1))                  # bounds the [U, K] products to 32 MiB
        fix = torch.cat([_fixed_order_dot(x64[rows[a:a + step]], w64[cols[a:a + step]])
                         for a in range(0, rows.numel(), step)])
        y = y.index_put((rows, cols), fix.float())
    return y.reshape(*x.shape[:-1], out)


class EqualLinear(nn.Module):
    """Fully connected layer with equalized learning rate: [*, in] -> [*, out].

    In eval mode the product is row-exact (see row_exact_linear), so a batch and its slices agree.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, act: str = "linear"):
        super().__init__()
        self.in_features, self.out_features, self.act = in_features, out_features, act
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        y = F.linear(x, w.to(x.dtype)) if self.training else row_exact_linear(x, w)
        return bias_act(y, b, self.act, dim=x.ndim - 1)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.act}"


class EqualConv2d(nn.Module):
    """2D convolution (stride 1, 'same' padding) with equalized learning rate: [B, Cin, H, W] -> [B, Cout, H, W]."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True,
                 act: str = "linear", clamp: Optional[float] = None):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel, self.act, self.clamp = \
            in_channels, out_channels, kernel, act, clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_act(F.conv2d, x, self.weight * self.weight_gain, self.bias, self.act, self.clamp,
                        padding=self.kernel // 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.kernel}, act={self.act}"


class EqualConv3d(nn.Module):
    """3D convolution (stride 1, 'same' padding) with equalized learning rate on [B, Cin, T, H, W].

    kernel is (kt, kh, kw): (1, 3, 3) is a per-frame spatial conv, (3, 1, 1) a per-pixel temporal conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Union[int, Sequence[int]], bias: bool = True,
                 act: str = "linear", clamp: Optional[float] = None):
        super().__init__()
        k = (kernel,) * 3 if isinstance(kernel, int) else tuple(int(v) for v in kernel)
        self.in_channels, self.out_channels, self.kernel, self.act, self.clamp = \
            in_channels, out_channels, k, act, clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * k[0] * k[1] * k[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_act(F.conv3d, x, self.weight * self.weight_gain, self.bias, self.act, self.clamp,
                        padding=tuple(v // 2 for v in self.kernel))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.kernel}, act={self.act}"
