"""FrameDiscriminator (2D, on k frames of each clip) and ClipDiscriminator ((2+1)D, on the whole clip).

Both take video [N, C, T, H, W] (C = cfg.channels: 3 RGB, 1 grey) and return logits [N, 1]; both
downsample with FIR filters through vidgan.ops.upfirdn2d and end with a minibatch-std layer.
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from vidgan.errors import InputError
from vidgan.models.config import ModelConfig
from vidgan.nn import (DownBlock2d, DownBlock3d, EqualConv2d, EqualConv3d, EqualLinear, MinibatchStd,
                       VideoDownsample)


def _check_video(x: torch.Tensor, cfg: ModelConfig, who: str) -> None:
    r, c = cfg.resolution, cfg.channels
    if x.ndim != 5 or x.shape[1] != c or x.shape[3] != r or x.shape[4] != r:
        raise InputError(f"{who} expects video [N, {c}, T, {r}, {r}] (model.channels {c}), got {tuple(x.shape)}.")


def distinct_frames(n: int, t: int, k: int) -> torch.Tensor:
    """[N, min(k, T)] frame indices, distinct within each clip, from the global CPU RNG."""
    return torch.rand(n, t).argsort(dim=1)[:, :min(k, t)]


def gather_frames(video: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Frames [N * idx[0].numel(), C, H, W] of video [N, C, T, H, W] at per-clip indices idx [N, ...] (CPU)."""
    n, c, t = video.shape[:3]
    flat = (torch.arange(n).reshape(-1, *[1] * (idx.ndim - 1)) * t + idx).reshape(-1).to(video.device)
    return video.transpose(1, 2).reshape(n * t, c, *video.shape[3:]).index_select(0, flat)


class FrameDiscriminator(nn.Module):
    """2D residual discriminator on `cfg.frame_d_frames` frames drawn from each clip.

    Frames are drawn without replacement, per clip, with the global (CPU) torch RNG, unless
    `frame_index` [N, k] is given. Each frame gets a logit; the clip's logit is their mean: [N, 1].
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution
        clamp = cfg.conv_clamp
        self.from_rgb = EqualConv2d(cfg.channels, cfg.d_width(r), 1, act="lrelu", clamp=clamp)
        self.blocks = nn.ModuleList([DownBlock2d(cfg.d_width(2 ** k), cfg.d_width(2 ** (k - 1)), clamp=clamp)
                                     for k in range(int(math.log2(r)), 2, -1)])
        c4 = cfg.d_width(4)
        self.mbstd = MinibatchStd(cfg.mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3, act="lrelu", clamp=clamp)
        self.fc = EqualLinear(c4 * 16, c4, act="lrelu")
        self.out = EqualLinear(c4, 1)

    def sample_frames(self, n: int, t: int) -> torch.Tensor:
        """[N, k] frame indices, distinct within each clip, from the global CPU RNG."""
        return distinct_frames(n, t, self.cfg.frame_d_frames)

    def forward(self, video: torch.Tensor, frame_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_video(video, self.cfg, type(self).__name__)
        n, _, t = video.shape[:3]
        idx = self.sample_frames(n, t) if frame_index is None else frame_index.long().cpu()
        k = idx.shape[1]
        x = self.from_rgb(gather_frames(video, idx))                      # input [N*k, C, H, W]
        for block in self.blocks:
            x = block(x)                                                  # [N*k, C, r, r]
        x = self.conv(self.mbstd(x))                                      # [N*k, C4, 4, 4]
        logits = self.out(self.fc(x.flatten(1)))                          # [N*k, 1]
        return logits.reshape(n, k).mean(dim=1, keepdim=True)             # [N, 1]


class ClipDiscriminator(nn.Module):
    """(2+1)D residual discriminator on whole clips [N, C, T, H, W] -> [N, 1].

    Input: the frames, FIR-downsampled by cfg.clip_input_div (the frame discriminator judges the
    fine detail; this one judges motion), plus (clip_diff) the frame differences x_t - x_{t-1} (zero
    for t = 0), so motion is visible from the first layer. Each block halves H and W by FIR filtering and halves T
    (averaging frame pairs) while T >= 4. At 4x4: minibatch std, a spatial conv, a linear layer per
    remaining time step, mean over time, then the logit; so clips of any length are accepted.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution // cfg.clip_input_div
        clamp = cfg.conv_clamp
        cin = 2 * cfg.channels if cfg.clip_diff else cfg.channels
        self.input_down = nn.ModuleList([VideoDownsample() for _ in range(int(math.log2(cfg.clip_input_div)))])
        self.from_rgb = EqualConv3d(cin, cfg.clip_width(r), 1, act="lrelu", clamp=clamp)
        self.blocks = nn.ModuleList([DownBlock3d(cfg.clip_width(2 ** k), cfg.clip_width(2 ** (k - 1)), clamp=clamp)
                                     for k in range(int(math.log2(r)), 2, -1)])
        c4 = cfg.clip_width(4)
        self.mbstd = MinibatchStd(cfg.mbstd_group)
        self.conv = EqualConv3d(c4 + 1, c4, (1, 3, 3), act="lrelu", clamp=clamp)
        self.fc = EqualLinear(c4 * 16, c4, act="lrelu")
        self.out = EqualLinear(c4, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        _check_video(video, self.cfg, "ClipDiscriminator")
        x = video
        for down in self.input_down:
            x = down(x)                                                   # [N, C, T, H/2, W/2]
        if self.cfg.clip_diff:
            diff = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
            x = torch.cat([x, diff], dim=1)                               # [N, 2C, T, H, W]
        x = self.from_rgb(x)
        for block in self.blocks:
            x = block(x, temporal_down=x.shape[2] >= 4)                   # [N, C, T', r, r]
        x = self.conv(self.mbstd(x))                                      # [N, C4, T', 4, 4]
        n, c, t = x.shape[:3]
        h = self.fc(x.transpose(1, 2).reshape(n, t, c * 16))              # [N, T', C4]
        return self.out(h.mean(dim=1))                                    # [N, 1]
