"""EMA of the generator: decay schedule and the update rule."""
import pytest
import torch
from torch import nn

from vidgan.training.ema import ema_beta, make_ema, update_ema


def test_beta_follows_half_life_and_rampup():
    assert ema_beta(8, 10.0, 10**9) == pytest.approx(0.5 ** (8 / 10000))
    assert ema_beta(8, 10.0, 10**9, rampup=0.05) == pytest.approx(0.5 ** (8 / 10000))
    assert ema_beta(8, 10.0, 1000, rampup=0.05) == pytest.approx(0.5 ** (8 / 50))   # ramping up: 50-clip half-life
    assert ema_beta(8, 10.0, 0, rampup=0.05) == 0.0                                  # first step copies G
    # half-life in clips: 1250 steps of 8 clips halve the old weights' share
    assert ema_beta(8, 10.0, 10**9) ** 1250 == pytest.approx(0.5)


def test_update_moves_toward_the_generator():
    G = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    E = make_ema(G)
    assert not E.training and not any(p.requires_grad for p in E.parameters())
    before = [p.clone() for p in E.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
        G[1].running_mean.fill_(3.0)
    update_ema(E, G, 0.75)
    for b, p_e, p_g in zip(before, E.parameters(), G.parameters()):
        torch.testing.assert_close(p_e, 0.75 * b + 0.25 * p_g.detach())
    torch.testing.assert_close(E[1].running_mean, torch.full((4,), 3.0))
    update_ema(E, G, 0.0)
    for p_e, p_g in zip(E.parameters(), G.parameters()):
        torch.testing.assert_close(p_e, p_g.detach())
