"""FVD during training: plumbing from the EMA generator and the eval clip list to a score (stub feature net)."""
import math

import pytest
import torch
from torch import nn

from vidgan.errors import InputError
from vidgan.models import TemporalGenerator
from vidgan.training.evaluation import PeriodicFVD


class StubI3D(nn.Module):
    """Stands in for the I3D: 6 fixed random projections of the clip's time-averaged, pooled frames."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 4 * 4, 6)

    def forward(self, x):                                   # x [B, 3, T, 224, 224]
        pooled = nn.functional.adaptive_avg_pool3d(x, (1, 4, 4)).flatten(1)
        return {"logits": self.proj(pooled)}


def test_periodic_fvd_scores_the_generator(make_cfg, tmp_path):
    cfg = make_cfg(tmp_path / "run", eval_every=1, eval_clips=6, frames=9)
    fvd = PeriodicFVD(cfg, "cpu", model=StubI3D())
    torch.manual_seed(0)
    G = TemporalGenerator(cfg.model).eval()
    rng_before = torch.get_rng_state()
    a = fvd(G)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training RNG is untouched
    assert a["fvd_clips"] == 6 and a["fvd_protocol"].startswith("vidgan-fvd") and math.isfinite(a["fvd"])
    assert fvd(G)["fvd"] == a["fvd"]                        # fixed seeds: same generator, same score
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(0.5)
    assert fvd(G)["fvd"] != a["fvd"]


def test_eval_needs_nine_frames(make_cfg, tmp_path):
    with pytest.raises(InputError, match="at least 9 frames"):
        make_cfg(tmp_path / "run", eval_every=10)
