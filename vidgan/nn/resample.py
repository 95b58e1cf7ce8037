"""FIR resampling built on vidgan.ops: 2x downsampling of images and videos, 2x upsampling of skips.

Filters are registered as non-persistent buffers (they follow .to(device) but are not saved:
they derive from the layer's arguments).
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn

from vidgan.ops import fused_upsample, setup_filter, upfirdn2d


def down_padding(taps: int, factor: int = 2):
    """Padding (x0, x1, y0, y1) so that FIR-filtering then keeping every factor-th pixel gives H/factor."""
    p0, p1 = (taps - factor + 1) // 2, (taps - factor) // 2
    return p0, p1, p0, p1


class Downsample2d(nn.Module):
    """FIR low-pass then keep every 2nd pixel: [B, C, H, W] -> [B, C, H/2, W/2] (upfirdn2d, down=2)."""

    def __init__(self, fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.register_buffer("fir", setup_filter(fir), persistent=False)
        self.padding = down_padding(self.fir.shape[0], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.fir, down=2, padding=self.padding)


class VideoDownsample(nn.Module):
    """Spatial FIR 2x downsampling of every frame, optionally halving T by averaging frame pairs.

    [N, C, T, H, W] -> [N, C, T', H/2, W/2] with T' = ceil(T/2) when `temporal` else T
    (an odd last frame is paired with itself).
    """

    def __init__(self, fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.spatial = Downsample2d(fir)

    def forward(self, x: torch.Tensor, temporal: bool = False) -> torch.Tensor:
        n, c, t, h, w = x.shape
        x = self.spatial(x.reshape(n, c * t, h, w)).reshape(n, c, t, h // 2, w // 2)
        if temporal and t > 1:
            if t % 2:
                x = torch.cat([x, x[:, :, -1:]], dim=2)
            x = x.reshape(n, c, x.shape[2] // 2, 2, h // 2, w // 2).mean(dim=3)
        return x


class Upsample2d(nn.Module):
    """FIR 2x upsampling without bias or activation (for toRGB skips): [B, C, H, W] -> [B, C, 2H, 2W]."""

    def __init__(self, fir: Optional[Sequence[float]] = None):
        super().__init__()
        self.register_buffer("fir", setup_filter(fir), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_upsample(x, self.fir, up=2, act="linear")
