"""Style-modulated convolutions (StyleGAN2-like) and the generator's conv layers.

A modulated conv scales its input channels by a per-sample style s = affine(w), convolves with
one shared weight, and (with demodulation) rescales each output channel so that it has unit
expected variance:  y = conv(x * s) * d,  d[b, o] = 1 / sqrt(sum_i,k (W[o,i,k] s[b,i])^2 + eps).
This equals convolving with the per-sample weight W * s * d, but runs as one ordinary conv over
the whole batch (frames of every clip), which suits both CPU and GPU.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgan.nn.equalized import EqualLinear, bias_act, row_exact_linear
from vidgan.ops import fused_upsample, setup_filter


class ModulatedConv2d(nn.Module):
    """[B, Cin, H, W] and styles w [B, W] -> [B, Cout, H, W] ('same' padding, no bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel, self.demodulate = \
            in_channels, out_channels, kernel, demodulate
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)                                     # [B, Cin]
        weight = self.weight * self.weight_gain                     # [Cout, Cin, k, k]
        y = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=self.kernel // 2)
        if self.demodulate:
            with torch.autocast(device_type=x.device.type, enabled=False):   # float32 even under autocast
                wsq = weight.float().square().sum(dim=[2, 3])               # [Cout, Cin]
                s2 = styles.float().square()                                # [B, Cin]
                # Row-exact in eval mode, so a batch and its slices agree bit for bit.
                d = torch.rsqrt((s2 @ wsq.t() if self.training else row_exact_linear(s2, wsq)) + 1e-8)
            y = y * d.to(y.dtype)[:, :, None, None]                         # d: [B, Cout]
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.kernel}, demodulate={self.demodulate}"


class StyleConv(nn.Module):
    """Modulated 3x3 conv + bias + lrelu; with up=True the conv runs at the input resolution and
    fused_upsample does the 2x zero-insertion upsampling, FIR filtering, bias and lrelu in one op.

    [B, Cin, H, W], w [B, W] -> [B, Cout, H, W] (or [B, Cout, 2H, 2W] with up=True).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool = False,
                 clamp: Optional[float] = None, fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.up, self.clamp = up, clamp
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if up:
            self.register_buffer("fir", setup_filter(fir), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        if self.up:
            return fused_upsample(x, self.fir, bias=self.bias.to(x.dtype), up=2, act="lrelu", clamp=self.clamp)
        return bias_act(x, self.bias, "lrelu", self.clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation + bias: [B, Cin, H, W], w [B, W] -> [B, 3, H, W]."""

    def __init__(self, in_channels: int, w_dim: int, channels: int = 3, clamp: Optional[float] = None):
        super().__init__()
        self.clamp = clamp
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return bias_act(self.conv(x, w), self.bias, "linear", self.clamp)
