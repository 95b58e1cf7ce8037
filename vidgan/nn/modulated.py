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

from vidgan.nn.equalized import SQRT2, EqualLinear, pointwise, row_exact_linear
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

    def forward(self, x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor] = None,
                gain: float = 1.0) -> torch.Tensor:
        """(conv(x * s) * d + bias) * gain, with the bias and gain applied in the same pass as d (or, without
        demodulation, by the convolution itself)."""
        styles = self.affine(w)                                     # [B, Cin]
        weight = self.weight * self.weight_gain                     # [Cout, Cin, k, k]
        if self.kernel == 1 and not self.demodulate and self.training:
            # toRGB: the styles scale the weight (W * s per sample) instead of a modulated copy of x, and the
            # 1x1 conv is a batched matrix product (equalized.FEW_CHANNELS). Training mode only: eval mode keeps
            # the convolution, whose results do not depend on the batch (tests/test_generate.py).
            ws = weight.reshape(1, self.out_channels, self.in_channels) * styles[:, None, :]
            ws = ws * gain if gain != 1.0 else ws
            return pointwise(x, ws.to(x.dtype), None if bias is None else (bias * gain).to(x.dtype))
        xs = x * styles.to(x.dtype)[:, :, None, None]
        b = None if bias is None else (bias * gain).to(x.dtype)
        if not self.demodulate:
            return F.conv2d(xs, (weight * gain if gain != 1.0 else weight).to(x.dtype), b, padding=self.kernel // 2)
        y = F.conv2d(xs, weight.to(x.dtype), padding=self.kernel // 2)
        with torch.autocast(device_type=x.device.type, enabled=False):   # float32 even under autocast
            wsq = weight.float().square().sum(dim=[2, 3])               # [Cout, Cin]
            s2 = styles.float().square()                                # [B, Cin]
            # Row-exact in eval mode, so a batch and its slices agree bit for bit.
            d = torch.rsqrt((s2 @ wsq.t() if self.training else row_exact_linear(s2, wsq)) + 1e-8)
        d = (d * gain if gain != 1.0 else d).to(y.dtype)[:, :, None, None]  # d: [B, Cout, 1, 1]
        return y * d if b is None else _ScaleBias.apply(y, d, b)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.kernel}, demodulate={self.demodulate}"


class _ScaleBias(torch.autograd.Function):
    """y * d + b for y [B, C, H, W], d [B, C, 1, 1], b [C]: torch.addcmul forward, a backward without the
    full-size copy y * 1 that addcmul's derivative makes (about 2 % of a CPU training step)."""

    @staticmethod
    def forward(ctx, y, d, b):
        ctx.save_for_backward(y, d)
        return torch.addcmul(b[None, :, None, None], y, d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        y, d = ctx.saved_tensors
        need_y, need_d, need_b = ctx.needs_input_grad
        return (g * d if need_y else None, (g * y).sum(dim=(2, 3), keepdim=True) if need_d else None,
                g.sum(dim=(0, 2, 3)) if need_b else None)


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
        if self.up:
            x = self.conv(x, w)
            return fused_upsample(x, self.fir, bias=self.bias.to(x.dtype), up=2, act="lrelu", clamp=self.clamp)
        # lrelu(y + b) * sqrt(2) = lrelu((y + b) * sqrt(2)): bias and gain join the demodulation's pass.
        y = F.leaky_relu(self.conv(x, w, bias=self.bias, gain=SQRT2), 0.2, inplace=True)
        return y if self.clamp is None else y.clamp(-self.clamp, self.clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation + bias: [B, Cin, H, W], w [B, W] -> [B, 3, H, W]."""

    def __init__(self, in_channels: int, w_dim: int, channels: int = 3, clamp: Optional[float] = None):
        super().__init__()
        self.clamp = clamp
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = self.conv(x, w, bias=self.bias)                    # the bias added by the convolution
        return y if self.clamp is None else y.clamp(-self.clamp, self.clamp)
