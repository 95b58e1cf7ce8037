"""nn.Module wrappers of the ops, for use inside networks."""
from typing import Optional

import torch
from torch import nn

from vidgan.errors import InputError
from vidgan.ops.fused import SQRT2, IntPair, fused_upsample, upfirdn2d
from vidgan.ops.reference import pair, setup_filter


class FusedUpsample(nn.Module):
    """Upsample by `up` with an FIR filter, add a learnable bias, activate, clamp: one kernel.

    x: [N, channels, H, W] -> [N, channels, up*H, up*W] (4-tap filter, default padding).
    channels None (or bias=False) means no bias.
    """

    def __init__(self, channels: Optional[int] = None, up: int = 2, f=None, bias: bool = True, act: str = "lrelu",
                 alpha: float = 0.2, act_gain: float = SQRT2, clamp: Optional[float] = None,
                 impl: Optional[str] = None):
        super().__init__()
        self.up, self.act, self.alpha, self.act_gain, self.clamp, self.impl = up, act, alpha, act_gain, clamp, impl
        self.register_buffer("f", setup_filter(f), persistent=False)  # the filter is config, not a weight
        self.bias = nn.Parameter(torch.zeros(channels)) if (bias and channels) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_upsample(x, self.f, self.bias, up=self.up, act=self.act, alpha=self.alpha,
                              act_gain=self.act_gain, clamp=self.clamp, impl=self.impl)

    def extra_repr(self) -> str:
        c = None if self.bias is None else self.bias.shape[0]
        return f"channels={c}, up={self.up}, taps={tuple(self.f.shape)}, act={self.act}, clamp={self.clamp}"


class Downsample(nn.Module):
    """Low-pass FIR filter then keep every `down`-th pixel: [N, C, H, W] -> [N, C, H/down, W/down].

    padding None = ((fw - down + 1)//2, (fw - down)//2) per axis, which halves even sizes
    exactly for the default 4-tap filter and down=2.
    """

    def __init__(self, down: IntPair = 2, f=None, padding: Optional[IntPair] = None, gain: float = 1.0,
                 impl: Optional[str] = None):
        super().__init__()
        self.down, self.gain, self.impl = down, gain, impl
        self.register_buffer("f", setup_filter(f), persistent=False)
        if padding is None:
            dx, dy = pair(down, "down")
            if dx < 1 or dy < 1:
                raise InputError(f"Downsample: down must be >= 1, got {down!r}.")
            fh, fw = (self.f.shape[0], self.f.shape[-1])
            padding = ((fw - dx + 1) // 2, (fw - dx) // 2, (fh - dy + 1) // 2, (fh - dy) // 2)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.f, down=self.down, padding=self.padding, gain=self.gain, impl=self.impl)

    def extra_repr(self) -> str:
        return f"down={self.down}, taps={tuple(self.f.shape)}, padding={self.padding}"
