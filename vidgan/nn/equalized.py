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

SQRT2 = math.sqrt(2.0)


def bias_act(x: torch.Tensor, bias: Optional[torch.Tensor] = None, act: str = "linear",
             clamp: Optional[float] = None, dim: int = 1) -> torch.Tensor:
    """x + bias (broadcast along `dim`), then lrelu(0.2)*sqrt(2) / relu*sqrt(2) / linear, then clamp."""
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.to(x.dtype).reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2) * SQRT2
    elif act == "relu":
        x = F.relu(x) * SQRT2
    elif act != "linear":
        raise ValueError(f"act must be 'lrelu', 'relu' or 'linear', got {act!r}.")
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def row_exact_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T where each output row depends on its input row only, bit for bit, whatever the batch size.

    BLAS kernels pick different accumulation orders for different numbers of rows, so float32 results
    can differ in the last bit between a batch and its slices. Accumulating in float64 and rounding
    back makes those differences vanish (they are ~1e-16, far below float32 resolution). Used in
    eval mode only, where rendering a clip in chunks must equal rendering it whole.
    """
    if x.dtype != torch.float32:
        return F.linear(x, w.to(x.dtype))
    return F.linear(x.double(), w.double()).float()


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
        w = (self.weight * self.weight_gain).to(x.dtype)
        return bias_act(F.conv2d(x, w, padding=self.kernel // 2), self.bias, self.act, self.clamp)

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
        w = (self.weight * self.weight_gain).to(x.dtype)
        y = F.conv3d(x, w, padding=tuple(v // 2 for v in self.kernel))
        return bias_act(y, self.bias, self.act, self.clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.kernel}, act={self.act}"
