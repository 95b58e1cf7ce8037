"""FrameDiscriminator (2D, on k frames of each clip), ClipDiscriminator ((2+1)D, on the whole clip),
PairDiscriminator (2D, on pairs of far-apart frames of each clip) and ContentEncoder (2D, single frames
-> content embeddings).

The discriminators take video [N, 3, T, H, W] and return logits [N, 1]; all downsample with FIR
filters through vidgan.ops.upfirdn2d and end with a minibatch-std layer. The content encoder returns
one embedding per frame it reads and has no minibatch-std layer (each frame is read on its own).
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from vidgan.errors import InputError
from vidgan.models.config import ModelConfig
from vidgan.nn import (DownBlock2d, DownBlock3d, Downsample2d, EqualConv2d, EqualConv3d, EqualLinear, MinibatchStd,
                       VideoDownsample)


def _check_video(x: torch.Tensor, cfg: ModelConfig, who: str) -> None:
    r = cfg.resolution
    if x.ndim != 5 or x.shape[1] != 3 or x.shape[3] != r or x.shape[4] != r:
        raise InputError(f"{who} expects video [N, 3, T, {r}, {r}], got {tuple(x.shape)}.")


def distinct_frames(n: int, t: int, k: int) -> torch.Tensor:
    """[N, min(k, T)] frame indices, distinct within each clip, from the global CPU RNG."""
    return torch.rand(n, t).argsort(dim=1)[:, :min(k, t)]


def far_apart_pairs(n: int, k: int, t: int) -> torch.Tensor:
    """[N, k, 2] frame indices (a, b) with a + T // 2 <= b, uniform over the gap, then over a (global CPU RNG)."""
    gap_min = max(1, t // 2)
    gap = gap_min + (torch.rand(n, k) * (t - gap_min)).long()            # gap_min .. t - 1
    a = (torch.rand(n, k) * (t - gap)).long()                             # 0 .. t - 1 - gap
    return torch.stack([a, a + gap], dim=2)


def gather_frames(video: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Frames [N * idx[0].numel(), 3, H, W] of video [N, 3, T, H, W] at per-clip indices idx [N, ...] (CPU)."""
    n, t = video.shape[0], video.shape[2]
    flat = (torch.arange(n).reshape(-1, *[1] * (idx.ndim - 1)) * t + idx).reshape(-1).to(video.device)
    return video.transpose(1, 2).reshape(n * t, 3, *video.shape[3:]).index_select(0, flat)


class FrameDiscriminator(nn.Module):
    """2D residual discriminator on `cfg.frame_d_frames` frames drawn from each clip.

    Frames are drawn without replacement, per clip, with the global (CPU) torch RNG, unless
    `frame_index` [N, k] is given. Each frame gets a logit; the clip's logit is their mean: [N, 1].
    """

    stack = 1  # frames stacked along channels into one input image

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution
        clamp = cfg.conv_clamp
        self.from_rgb = EqualConv2d(3 * self.stack, cfg.d_width(r), 1, act="lrelu", clamp=clamp)
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
        idx = idx.reshape(n, -1, self.stack)                              # [N, k, stack]
        k = idx.shape[1]
        frames = gather_frames(video, idx)                                # [N*k*stack, 3, H, W]
        x = self.from_rgb(frames.reshape(n * k, 3 * self.stack, *video.shape[3:]))   # input [N*k, 3*stack, H, W]
        for block in self.blocks:
            x = block(x)                                                  # [N*k, C, r, r]
        x = self.conv(self.mbstd(x))                                      # [N*k, C4, 4, 4]
        logits = self.out(self.fc(x.flatten(1)))                          # [N*k, 1]
        return logits.reshape(n, k).mean(dim=1, keepdim=True)             # [N, 1]


class PairDiscriminator(FrameDiscriminator):
    """2D residual discriminator on pairs of frames of one clip, stacked as 6 channels: [N, 3, T, H, W] -> [N, 1].

    The two frames of a pair are at least T // 2 apart, earlier one first, so it judges whether a clip
    keeps its content (the same digits, the same face) over time, which neither a single frame nor a
    short-range motion filter shows. `cfg.pair_d_pairs` pairs per clip, drawn with the global CPU RNG
    unless `frame_index` [N, k, 2] is given; the clip's logit is the mean of its pairs'.
    """

    stack = 2

    @torch.no_grad()
    def init_from(self, frame_d: FrameDiscriminator) -> None:
        """Start as a copy of a (trained) frame discriminator that looks at the earlier frame only.

        Every layer is copied; the input layer's weights for the later frame are zero, so at first
        D_pair(a, b) equals D_frame(a), and training teaches it to use frame b: a pair discriminator
        added to a trained run begins with the frame discriminator's features instead of none.
        """
        if type(frame_d) is not FrameDiscriminator or frame_d.cfg.to_dict() != self.cfg.to_dict():
            raise InputError("init_from needs a FrameDiscriminator of the same model config.")
        state = frame_d.state_dict()
        w = state["from_rgb.weight"] * (frame_d.from_rgb.weight_gain / self.from_rgb.weight_gain)
        state["from_rgb.weight"] = torch.cat([w] + [torch.zeros_like(w)] * (self.stack - 1), dim=1)
        self.load_state_dict(state)

    def sample_frames(self, n: int, t: int) -> torch.Tensor:
        """[N, k, 2] frame indices (a, b) with a + T // 2 <= b, uniform over the gap, then over a."""
        return far_apart_pairs(n, self.cfg.pair_d_pairs, t)


class ClipDiscriminator(nn.Module):
    """(2+1)D residual discriminator on whole clips [N, 3, T, H, W] -> [N, 1].

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
        cin = 6 if cfg.clip_diff else 3
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
            x = down(x)                                                   # [N, 3, T, H/2, W/2]
        if self.cfg.clip_diff:
            diff = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
            x = torch.cat([x, diff], dim=1)                               # [N, 6, T, H, W]
        x = self.from_rgb(x)
        for block in self.blocks:
            x = block(x, temporal_down=x.shape[2] >= 4)                   # [N, C, T', r, r]
        x = self.conv(self.mbstd(x))                                      # [N, C4, T', 4, 4]
        n, c, t = x.shape[:3]
        h = self.fc(x.transpose(1, 2).reshape(n, t, c * 16))              # [N, T', C4]
        return self.out(h.mean(dim=1))                                    # [N, 1]


class ContentEncoder(nn.Module):
    """E: single frames -> content embeddings, learned from real clips only.

    [N, 3, T, H, W] -> [N, k, w_dim] (unnormalised): `cfg.content_frames` frames of each clip (distinct,
    drawn with the global CPU RNG unless `frame_index` [N, k] is given), each FIR-downsampled by 2 and
    read alone by a 2D residual network (the frame D's widths). Training teaches it, contrastively on
    real clips, to give two far-apart frames of one clip the same embedding and frames of other clips
    other ones: it learns what stays fixed in a real clip (which digits, which face) and to ignore
    what moves. G is then charged for frames of one clip whose embeddings disagree. Never trained on
    generated frames, it cannot be talked into agreeing with them. Reading at half resolution keeps it
    on shapes rather than pixel detail.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution // 2
        clamp = cfg.conv_clamp
        self.down = Downsample2d()
        self.from_rgb = EqualConv2d(3, cfg.d_width(r), 1, act="lrelu", clamp=clamp)
        self.blocks = nn.ModuleList([DownBlock2d(cfg.d_width(2 ** k), cfg.d_width(2 ** (k - 1)), clamp=clamp)
                                     for k in range(int(math.log2(r)), 2, -1)])
        c4 = cfg.d_width(4)
        self.fc = EqualLinear(c4 * 16, c4, act="lrelu")
        self.out = EqualLinear(c4, cfg.w_dim)

    def sample_frames(self, n: int, t: int) -> torch.Tensor:
        """[N, k] frame indices, distinct within each clip, from the global CPU RNG."""
        return distinct_frames(n, t, self.cfg.content_frames)

    @staticmethod
    def sample_pairs(n: int, t: int) -> torch.Tensor:
        """[N, 2] frame indices (a, b), a + T // 2 <= b: one far-apart pair per clip, from the global CPU RNG."""
        return far_apart_pairs(n, 1, t)[:, 0]

    def forward(self, video: torch.Tensor, frame_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_video(video, self.cfg, "ContentEncoder")
        n, _, t = video.shape[:3]
        idx = self.sample_frames(n, t) if frame_index is None else frame_index.long().cpu().reshape(n, -1)
        k = idx.shape[1]
        x = self.from_rgb(self.down(gather_frames(video, idx)))           # [N*k, C, H/2, W/2]                               # [N*k, C, H/2, W/2]
        for block in self.blocks:
            x = block(x)
        return self.out(self.fc(x.flatten(1))).reshape(n, k, -1)           # [N, k, w_dim]
