"""Exponential moving average of the generator's weights (the model that gets exported).

    beta = 0.5 ** (batch / (half_life_kimg * 1000))         per step
    half_life_kimg = min(ema_kimg, clips_seen * rampup / 1000) while ramping up

so the EMA forgets at a rate set in clips seen, independent of the batch size, and follows
the fast-changing generator closely early in training.
"""
import copy
from typing import Optional

import torch
from torch import nn


def ema_beta(batch: int, ema_kimg: float, clips_seen: int, rampup: Optional[float] = None) -> float:
    """The decay for one step of `batch` clips after `clips_seen` clips."""
    half_life = ema_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, clips_seen * rampup)
    if half_life <= 0:
        return 0.0
    return 0.5 ** (batch / max(half_life, 1e-8))


def make_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of G in eval mode."""
    G_ema = copy.deepcopy(G).eval()
    G_ema.requires_grad_(False)
    return G_ema


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b.detach())
