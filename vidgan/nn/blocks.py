"""Discriminator building blocks: minibatch standard deviation and residual FIR-downsampling blocks."""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn

from vidgan.nn.equalized import EqualConv2d, EqualConv3d
from vidgan.nn.resample import Downsample2d, VideoDownsample

SQRT_HALF = math.sqrt(0.5)


class MinibatchStd(nn.Module):
    """Appends `features` channels holding the std of each feature over groups of samples.

    [B, C, *S] -> [B, C + features, *S] (S: any spatial / temporal dims). Samples b, b + B/G, ...
    form a group; the group size is the largest divisor of B not above `group_size`.
    """

    def __init__(self, group_size: int = 4, features: int = 1):
        super().__init__()
        self.group_size, self.features = group_size, features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        rest = x.shape[2:]
        g = max(d for d in range(1, min(self.group_size, b) + 1) if b % d == 0)
        f = self.features
        y = x.reshape(g, -1, f, c // f, *rest).float()              # [G, B/G, F, C/F, *S]
        y = (y - y.mean(dim=0)).square().mean(dim=0)                # [B/G, F, C/F, *S]
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, *range(3, y.ndim)])                      # [B/G, F]
        y = y.to(x.dtype).reshape(-1, f, *([1] * len(rest))).repeat(g, 1, *rest)  # [B, F, *S]
        return torch.cat([x, y], dim=1)


class DownBlock2d(nn.Module):
    """Residual 2D block: 3x3 conv at H, FIR 2x down, 3x3 conv at H/2; skip = FIR down + 1x1.

    [B, Cin, H, W] -> [B, Cout, H/2, W/2].
    """

    def __init__(self, in_channels: int, out_channels: int, clamp: Optional[float] = None,
                 fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, act="lrelu", clamp=clamp)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, act="lrelu", clamp=clamp)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)
        self.down = Downsample2d(fir)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.down(self.conv0(x)))
        return (y + self.skip(self.down(x))) * SQRT_HALF


class DownBlock3d(nn.Module):
    """Residual (2+1)D block on clips: per-frame 3x3 conv, spatial FIR 2x down (and optionally T/2 by
    averaging frame pairs), then a temporal conv over 3 frames; skip = the same downsampling + 1x1x1.

    [N, Cin, T, H, W] -> [N, Cout, T', H/2, W/2].
    """

    def __init__(self, in_channels: int, out_channels: int, clamp: Optional[float] = None,
                 fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.spatial = EqualConv3d(in_channels, in_channels, (1, 3, 3), act="lrelu", clamp=clamp)
        self.temporal = EqualConv3d(in_channels, out_channels, (3, 1, 1), act="lrelu", clamp=clamp)
        self.skip = EqualConv3d(in_channels, out_channels, 1, bias=False)
        self.down = VideoDownsample(fir)

    def forward(self, x: torch.Tensor, temporal_down: bool = False) -> torch.Tensor:
        y = self.temporal(self.down(self.spatial(x), temporal_down))
        return (y + self.skip(self.down(x, temporal_down))) * SQRT_HALF
