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
    assert 0 < a["fvd_diversity"] < math.inf
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(0.5)
    assert fvd(G)["fvd"] != a["fvd"]


def test_eval_needs_nine_frames(make_cfg, tmp_path):
    with pytest.raises(InputError, match="at least 9 frames"):
        make_cfg(tmp_path / "run", eval_every=10)


class Collapsed(nn.Module):
    """A generator made to collapse: every clip of a batch is the wrapped generator's first clip."""

    def __init__(self, G):
        super().__init__()
        self.G = G
        self.sample_content, self.sample_motion = G.sample_content, G.sample_motion

    def forward(self, z, m):
        return self.G(z[:1], m[:1]).repeat(len(z), 1, 1, 1, 1)                # [N, C, T, H, W]


def test_collapse_shows_in_the_diversity(make_cfg, tmp_path):
    cfg = make_cfg(tmp_path / "run", eval_every=1, eval_clips=6, frames=9)
    fvd = PeriodicFVD(cfg, "cpu", model=StubI3D())
    torch.manual_seed(0)
    G = TemporalGenerator(cfg.model).eval()
    healthy, collapsed = fvd(G), fvd(Collapsed(G))
    assert collapsed["fvd_diversity"] < 1e-3 * healthy["fvd_diversity"]


def test_a_run_records_fvd_and_diversity(make_cfg, tmp_path, monkeypatch):
    import json

    from vidgan.training.loop import Trainer

    init = PeriodicFVD.__init__
    monkeypatch.setattr(PeriodicFVD, "__init__", lambda self, cfg, device, model=None: init(self, cfg, device,
                                                                                           StubI3D()))
    said = []
    trainer = Trainer(make_cfg(tmp_path / "run", steps=2, eval_every=2, eval_clips=6, frames=9, sample_every=0,
                               ckpt_every=0, progress=False), log=said.append)
    trainer.run()
    trainer.close()
    rows = [json.loads(line) for line in open(tmp_path / "run" / "stats.jsonl")]
    evals = [r for r in rows if "fvd" in r]
    assert [r["step"] for r in evals] == [2] and 0 < evals[0]["fvd_diversity"] < math.inf
    assert any(f"I3D diversity {evals[0]['fvd_diversity']:.2f} of the data's" in s for s in said)
