"""Video-consistent differentiable augmentation (for small datasets).

Every transform draws its random parameters once per clip and applies them identically to
all frames of that clip, so augmentation never injects flicker the clip discriminator could
learn to detect. Each transform is applied to a clip with probability p. Everything is built
from differentiable tensor ops, so gradients flow from D back into G through the augmented
fakes. Reals and fakes are augmented with the same distribution (not the same draws).

Transforms: flip (horizontal), translate (integer shift up to 1/8 of the size, reflect
padding), color (brightness, contrast, saturation), cutout (a square of half the size set
to 0 in every frame). Any channel count works: on grey clips (C = 1) brightness and contrast
act on the grey value as they act on a replicated RGB clip, and saturation (which a grey
clip has none of) is skipped.
"""
import math
from typing import Sequence

import torch
from torch import nn

AUGMENTS = ("flip", "translate", "color", "cutout")


def _mask(n: int, p: float, device) -> torch.Tensor:
    """[N] bool: which clips get a transform."""
    return torch.rand(n, device=device) < p


class VideoAugment(nn.Module):
    """x [N, C, T, H, W] -> same shape; `p` may be changed between calls (adaptive augmentation)."""

    def __init__(self, p: float = 0.0, ops: Sequence[str] = ("flip", "translate", "color")):
        super().__init__()
        unknown = [o for o in ops if o not in AUGMENTS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {AUGMENTS}")
        self.p = float(p)
        self.ops = tuple(ops)

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}, ops={self.ops}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or not self.ops:
            return x
        if x.ndim != 5:
            raise ValueError(f"expected a video batch [N, C, T, H, W], got shape {tuple(x.shape)}")
        for op in AUGMENTS:  # a fixed order, whatever order the config lists them in
            if op in self.ops:
                x = getattr(self, "_" + op)(x)
        return x

    # ------------------------------------------------------------------ transforms
    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        m = _mask(x.shape[0], self.p, x.device).view(-1, 1, 1, 1, 1)
        return torch.where(m, x.flip(-1), x)

    def _translate(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        py, px = max(1, h // 8), max(1, w // 8)
        m = _mask(n, self.p, x.device)
        # Integer shifts in [-p, p], zero for clips without the transform.      [N]
        ty = (torch.randint(-py, py + 1, (n,), device=x.device) * m).long()
        tx = (torch.randint(-px, px + 1, (n,), device=x.device) * m).long()
        xp = nn.functional.pad(x.reshape(n, c * t, h, w), (px, px, py, py), mode="reflect")  # [N, CT, H+2py, W+2px]
        rows = torch.arange(h, device=x.device)[None] + py - ty[:, None]                   # [N, H]
        cols = torch.arange(w, device=x.device)[None] + px - tx[:, None]                   # [N, W]
        idx = torch.arange(n, device=x.device)[:, None, None]
        out = xp[idx, :, rows[:, :, None], cols[:, None, :]]                               # [N, H, W, CT]
        return out.permute(0, 3, 1, 2).reshape(n, c, t, h, w)

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        shape = (n, 1, 1, 1, 1)
        dev, dt = x.device, x.dtype
        # brightness: add b ~ N(0, 0.2)
        b = torch.randn(shape, device=dev, dtype=dt) * 0.2
        x = x + b * _mask(n, self.p, dev).view(shape)
        # contrast: scale about the clip mean by lognormal(0, 0.5 ln 2)
        cst = torch.exp2(torch.randn(shape, device=dev, dtype=dt) * 0.5)
        cst = torch.where(_mask(n, self.p, dev).view(shape), cst, torch.ones_like(cst))
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x = (x - mean) * cst + mean
        # saturation: scale away from per-pixel grey by lognormal(0, ln 2) (RGB only)
        if x.shape[1] == 3:
            sat = torch.exp2(torch.randn(shape, device=dev, dtype=dt))
            sat = torch.where(_mask(n, self.p, dev).view(shape), sat, torch.ones_like(sat))
            grey = x.mean(dim=1, keepdim=True)
            x = (x - grey) * sat + grey
        return x

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, _, _, h, w = x.shape
        m = _mask(n, self.p, x.device)
        cy = torch.rand(n, device=x.device) * h                                    # [N] centre
        cx = torch.rand(n, device=x.device) * w
        ys = torch.arange(h, device=x.device, dtype=torch.float32)[None] + 0.5    # [1, H]
        xs = torch.arange(w, device=x.device, dtype=torch.float32)[None] + 0.5
        iny = (ys - cy[:, None]).abs() < h / 4                                     # [N, H]
        inx = (xs - cx[:, None]).abs() < w / 4                                     # [N, W]
        hole = iny[:, :, None] & inx[:, None, :] & m[:, None, None]                # [N, H, W]
        return x * (~hole).to(x.dtype)[:, None, None]


def adjust_p(p: float, rt: float, target: float, batch: int, interval: int, speed_kimg: float) -> float:
    """Adaptive augmentation (ADA): move p up when D is overconfident on reals (rt > target), down otherwise.

    rt = E[sign(D(real))] over the last `interval` steps; p moves by batch*interval/(speed_kimg*1000) per call.
    """
    step = math.copysign(batch * interval / (speed_kimg * 1000.0), rt - target) if rt != target else 0.0
    return float(min(1.0, max(0.0, p + step)))
