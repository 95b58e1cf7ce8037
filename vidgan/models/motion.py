"""The two motion designs: noise -> per-frame motion codes m_t [N, T, M], at any (real) times t.

Both take the motion noise drawn by `sample` and a 1D tensor of times (in training frames:
t = 0, 1, 2, ... at the training frame rate; fractional t renders in between) and return codes
[N, len(times), M]. Times are shared by the whole batch.

* ContinuousMotion ('continuous', default; StyleGAN-V-like): noise is a row of random codes
  [N, K, E] placed on a time grid, one every `motion_spacing` frames (code k sits at time
  (k - 1) * spacing). A code is interpolated at any real t (Catmull-Rom cubic or linear), with
  the interpolation weights renormalised so the interpolated code keeps unit variance between
  grid points. The code also sets the phase and amplitude of sin/cos features at fixed
  frequencies (periods from time_period_min to time_period_max frames). An MLP maps
  [code, features] to m_t. Everything is a function of t and the nearby grid codes only, so
  renders of any length and frame rate stay in the training distribution (no drift).
* GRUMotion ('gru'; MoCoGAN-like): noise is one vector per frame step [N, S, E]; a GRU over the
  steps gives hidden states (bounded by tanh), mapped to m_t; fractional t interpolates linearly
  between steps.
"""
import math
import torch
import torch.nn as nn

from vidgan.errors import InputError
from vidgan.nn import EqualLinear


def _sample(shape, generator, device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (CPU by default), then moved to device."""
    src = generator.device if generator is not None else torch.device("cpu")
    x = torch.randn(shape, generator=generator, device=src)
    return x if device is None else x.to(device)


def _check_noise(motion, noise: torch.Tensor, times: torch.Tensor, min_steps: int, shape: str, covered: str):
    """InputError unless noise is [N, >= min_steps, E] motion noise covering `times`."""
    if noise.ndim != 3 or noise.shape[2] != motion.noise_dim or noise.shape[1] < min_steps:
        raise InputError(f"{shape} (from G.sample_motion), got {tuple(noise.shape)}.")
    if not motion.covers(noise, times):
        raise InputError(f"the motion noise covers frame times {covered.format(span=motion.span(noise))}, "
                         f"but times {float(times.min()):g} to {float(times.max()):g} were asked for; draw it "
                         "with G.sample_motion(n, frames) for enough frames.")


def _gather_time(noise: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """noise [N, K, E], idx [T] (long) -> [N, T, E]."""
    return noise.index_select(1, idx)


class ContinuousMotion(nn.Module):
    """Grid codes [N, K, E] -> motion codes [N, T, M] at any real times."""

    def __init__(self, cfg):
        super().__init__()
        self.spacing, self.interp = cfg.motion_spacing, cfg.motion_interp
        self.noise_dim, self.code_dim = cfg.motion_dim, cfg.motion_code_dim
        nf = cfg.time_features
        periods = torch.logspace(math.log10(cfg.time_period_min), math.log10(cfg.time_period_max), nf,
                                 dtype=torch.float64)
        self.register_buffer("omega", (2 * math.pi / periods).float(), persistent=False)   # [F]
        self.phase_amp = EqualLinear(cfg.motion_dim, 2 * nf)                                # code -> phase, amp
        self.net = nn.Sequential(EqualLinear(cfg.motion_dim + 2 * nf, cfg.motion_code_dim, act="lrelu"),
                                 EqualLinear(cfg.motion_code_dim, cfg.motion_code_dim))

    def noise_steps(self, span: float) -> int:
        """Grid codes needed to cover times 0..span (in frames)."""
        return int(math.floor(span / self.spacing)) + 4

    def sample(self, n: int, span: float, generator=None, device=None) -> torch.Tensor:
        return _sample((n, self.noise_steps(span), self.noise_dim), generator, device)   # [N, K, E]

    def span(self, noise: torch.Tensor) -> float:
        """The noise covers times 0 <= t < span (in frames)."""
        return float((noise.shape[1] - 3) * self.spacing)

    def covers(self, noise: torch.Tensor, times: torch.Tensor) -> bool:
        if not times.numel():
            return True
        k0 = int(math.floor(float(times.max()) / self.spacing + 1.0))
        return float(times.min()) >= 0 and k0 + 3 <= noise.shape[1]

    def interpolate(self, noise: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Grid codes [N, K, E] at times [T] -> [N, T, E] (unit-variance-preserving interpolation)."""
        u = times.to(noise.dtype) / self.spacing + 1.0       # grid position; code k at u = k
        k0 = u.floor()
        s = (u - k0)[None, :, None]                          # [1, T, 1]
        k0 = k0.long()
        if self.interp == "linear":
            idx, weights = [k0, k0 + 1], [1 - s, s]
        else:  # Catmull-Rom
            s2, s3 = s * s, s * s * s
            idx = [k0 - 1, k0, k0 + 1, k0 + 2]
            weights = [0.5 * (-s + 2 * s2 - s3), 0.5 * (2 - 5 * s2 + 3 * s3),
                       0.5 * (s + 4 * s2 - 3 * s3), 0.5 * (s3 - s2)]
        out = sum(w * _gather_time(noise, i) for w, i in zip(weights, idx))
        return out * torch.rsqrt(sum(w * w for w in weights))

    def forward(self, noise: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        _check_noise(self, noise, times, 4, f"'continuous' motion noise must be [N, K>=4, {self.noise_dim}]",
                     "0 <= t < {span:g}")
        c = self.interpolate(noise, times)                                  # [N, T, E]
        phase, amp = self.phase_amp(c).chunk(2, dim=-1)                     # [N, T, F] each
        angle = times.to(c.dtype)[None, :, None] * self.omega + phase
        feats = torch.cat([amp * torch.sin(angle), amp * torch.cos(angle)], dim=-1)   # [N, T, 2F]
        return self.net(torch.cat([c, feats], dim=-1))                      # [N, T, M]


class GRUMotion(nn.Module):
    """Per-step noise [N, S, E] -> GRU -> motion codes [N, T, M]; fractional times interpolate linearly.

    The GRU is written out (gates as in torch.nn.GRU) on equalized linear layers, so in eval mode each
    clip's codes are bit-identical whatever the batch it is rendered in.
    """

    def __init__(self, cfg):
        super().__init__()
        self.noise_dim, self.code_dim = cfg.motion_dim, cfg.motion_code_dim
        hidden = cfg.motion_code_dim
        self.input_gates = EqualLinear(cfg.motion_dim, 3 * hidden)    # x -> (r, z, n) pre-activations
        self.hidden_gates = EqualLinear(hidden, 3 * hidden)           # h -> (r, z, n) pre-activations
        self.h0 = nn.Parameter(torch.zeros(hidden))
        self.out = EqualLinear(hidden, cfg.motion_code_dim)

    def noise_steps(self, span: float) -> int:
        return int(math.ceil(span)) + 1

    def sample(self, n: int, span: float, generator=None, device=None) -> torch.Tensor:
        return _sample((n, self.noise_steps(span), self.noise_dim), generator, device)   # [N, S, E]

    def span(self, noise: torch.Tensor) -> float:
        """The noise covers times 0 <= t <= span (in frames)."""
        return float(noise.shape[1] - 1)

    def covers(self, noise: torch.Tensor, times: torch.Tensor) -> bool:
        return not times.numel() or (float(times.min()) >= 0 and float(times.max()) <= self.span(noise))

    def run(self, noise: torch.Tensor) -> torch.Tensor:
        """Hidden states [N, S, H] of the GRU over noise [N, S, E]."""
        gx = self.input_gates(noise)                                        # [N, S, 3H]
        h = self.h0.to(noise.dtype)[None].expand(noise.shape[0], -1)        # [N, H]
        states = []
        for t in range(noise.shape[1]):
            xr, xz, xn = gx[:, t].chunk(3, dim=1)
            hr, hz, hn = self.hidden_gates(h).chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            states.append(h)
        return torch.stack(states, dim=1)

    def forward(self, noise: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        _check_noise(self, noise, times, 1, f"'gru' motion noise must be [N, S, {self.noise_dim}]",
                     "0 to {span:g}")
        t_max = float(times.max()) if times.numel() else 0.0
        steps = min(noise.shape[1], int(math.floor(t_max)) + 2)
        codes = self.out(self.run(noise[:, :steps]))                        # [N, S', M]
        u = times.to(codes.dtype)
        k0 = u.floor()
        s = (u - k0)[None, :, None]
        k0 = k0.long()
        k1 = (k0 + 1).clamp(max=steps - 1)
        return (1 - s) * _gather_time(codes, k0) + s * _gather_time(codes, k1)


def build_motion(cfg) -> nn.Module:
    return ContinuousMotion(cfg) if cfg.motion == "continuous" else GRUMotion(cfg)
