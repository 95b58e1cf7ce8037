"""TemporalGenerator: content code z_c (one per clip) + motion noise -> clip [N, C, T, H, W] (C = cfg.channels).

    G = TemporalGenerator(ModelConfig())
    z = G.sample_content(n)                   # [N, Z]
    motion = G.sample_motion(n, frames)       # noise covering `frames` frames
    codes = G.motion_trajectory(motion, frames)   # [N, frames, M], cheap
    video = G.synthesize(z, codes)            # [N, C, frames, H, W]; frames are a batch, so any
                                              # slice codes[:, a:b] renders frames a..b-1 alone
    video = G(z, motion)                      # the same in one call (frames default cfg.frames)

Styles: w_c = mapping(z_c) [N, W] (content); truncation psi lerps it toward the tracked average
w_avg: w_c' = w_avg + psi (w_c - w_avg). Per frame, w_t = w_c' + offset(w_c', m_t) (or w_t = w_c'
with cfg.motion_to_styles False, where motion enters only at the 4x4 input) and the synthesis
network renders each frame from (w_t, m_t). So the same z_c
with other motion noise keeps the content and changes the motion, and the other way round;
psi = 0 gives the average content.

w_avg is an EMA (beta = cfg.w_avg_beta) of the batch mean of w_c, updated inside `synthesize`
(hence inside forward) whenever the module is in training mode and `track_w_avg` is True; eval mode
never changes it. It is a buffer: saved with the weights, and an EMA copy should copy it.
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from vidgan.errors import InputError
from vidgan.models.config import ModelConfig
from vidgan.models.motion import build_motion
from vidgan.models.synthesis import SynthesisNetwork
from vidgan.nn import EqualLinear


class MappingNetwork(nn.Module):
    """z [N, Z] -> w [N, W]: normalise z to unit second moment, then an MLP of `layers` lrelu layers."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act="lrelu") for a, b in zip(dims, dims[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.net(z)


class TemporalGenerator(nn.Module):
    """Clips [N, C, T, H, W] (C = cfg.channels) from content codes and motion noise (see the module docstring)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise InputError(f"TemporalGenerator needs a ModelConfig, got {type(cfg).__name__}.")
        self.cfg = cfg
        self.meta = {}
        self.track_w_avg = True
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_mul)
        self.motion = build_motion(cfg)
        self.motion_style = nn.Sequential(EqualLinear(cfg.w_dim + cfg.motion_code_dim, cfg.w_dim, act="lrelu"),
                                          EqualLinear(cfg.w_dim, cfg.w_dim)) if cfg.motion_to_styles else None
        self.synthesis = SynthesisNetwork(cfg)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    # ------------------------------------------------------------------ sampling
    def _device(self, device):
        return torch.device(device) if device is not None else self.w_avg.device

    def sample_content(self, n: int, generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
        """z_content [n, Z] ~ N(0, I), drawn on the generator's device (CPU by default), returned on device
        (default: the model's device)."""
        src = generator.device if generator is not None else torch.device("cpu")
        return torch.randn(n, self.cfg.z_dim, generator=generator, device=src).to(self._device(device))

    def sample_motion(self, n: int, frames: Optional[int] = None, generator: Optional[torch.Generator] = None,
                      device=None, fps_scale: float = 1.0) -> torch.Tensor:
        """Motion noise [n, K, E] covering `frames` frames (default cfg.frames) rendered at fps_scale times
        the training frame rate ('continuous': K grid codes; 'gru': one vector per frame step)."""
        frames = self.cfg.frames if frames is None else int(frames)
        if frames < 1:
            raise InputError(f"frames must be at least 1, got {frames}.")
        span = (frames - 1) / _check_fps_scale(fps_scale)
        return self.motion.sample(n, span, generator=generator, device=self._device(device))

    def motion_span(self, motion: torch.Tensor) -> float:
        """Largest frame time (in training frames) that the motion noise covers."""
        return self.motion.span(motion)

    # ------------------------------------------------------------------ motion
    def frame_times(self, frames: int, fps_scale: float = 1.0, start: float = 0.0, device=None) -> torch.Tensor:
        """Times [frames] in training frames: start + i / fps_scale."""
        i = torch.arange(int(frames), dtype=torch.float64)
        return (float(start) + i / _check_fps_scale(fps_scale)).float().to(self._device(device))

    def motion_trajectory(self, motion: torch.Tensor, frames: Optional[int] = None, fps_scale: float = 1.0,
                          start: float = 0.0, times: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-frame motion codes [N, frames, M] at times start + i / fps_scale (or at explicit `times` [T])."""
        if times is None:
            frames = self.cfg.frames if frames is None else int(frames)
            times = self.frame_times(frames, fps_scale, start, device=motion.device)
        else:
            times = torch.as_tensor(times, dtype=torch.float32, device=motion.device).reshape(-1)
        return self.motion(motion, times)

    # ------------------------------------------------------------------ styles
    def content_styles(self, z_content: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """w_c [N, W], truncated toward w_avg; updates w_avg in training mode."""
        w = self.mapping(z_content)
        if self.training and self.track_w_avg:
            self.update_w_avg(w)
        if truncation != 1:
            w = self.w_avg.to(w.dtype).lerp(w, float(truncation))
        return w

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor) -> None:
        """w_avg <- beta * w_avg + (1 - beta) * mean(w) (w: mapped content styles [N, W])."""
        self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.cfg.w_avg_beta))

    # ------------------------------------------------------------------ rendering
    def _check_latents(self, z_content: torch.Tensor, codes: torch.Tensor) -> None:
        if z_content.ndim != 2 or z_content.shape[1] != self.cfg.z_dim:
            raise InputError(f"z_content must be [N, {self.cfg.z_dim}], got {tuple(z_content.shape)}.")
        if codes.ndim != 3 or codes.shape[0] != z_content.shape[0] or codes.shape[2] != self.cfg.motion_code_dim:
            raise InputError(f"motion codes must be [{z_content.shape[0]}, T, {self.cfg.motion_code_dim}], "
                             f"got {tuple(codes.shape)}.")

    def synthesize(self, z_content: torch.Tensor, codes: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """z_content [N, Z], motion codes [N, T, M] -> video [N, C, T, H, W]."""
        self._check_latents(z_content, codes)
        n, t = codes.shape[:2]
        wc = self.content_styles(z_content, truncation)                        # [N, W]
        m = codes.reshape(n * t, -1)                                            # [N*T, M]
        w = wc[:, None].expand(n, t, wc.shape[1]).reshape(n * t, -1)            # [N*T, W]
        if self.motion_style is not None:
            w = w + self.motion_style(torch.cat([w, m], dim=1))               # per-frame offsets
        frames = self.synthesis(w, m)                                           # [N*T, C, H, W]
        return frames.reshape(n, t, *frames.shape[1:]).transpose(1, 2).contiguous()  # [N, C, T, H, W]

    def forward(self, z_content: torch.Tensor, motion: torch.Tensor, frames: Optional[int] = None,
                truncation: float = 1.0) -> torch.Tensor:
        """[N, C, frames, H, W] (frames None = cfg.frames)."""
        return self.synthesize(z_content, self.motion_trajectory(motion, frames), truncation)


def _check_fps_scale(fps_scale: float) -> float:
    fps_scale = float(fps_scale)
    if not (math.isfinite(fps_scale) and fps_scale > 0):
        raise InputError(f"fps_scale must be a positive number, got {fps_scale}.")
    return fps_scale
