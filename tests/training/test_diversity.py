"""The collapse check: the samples' diversity against the data's, in stats.jsonl, and said once (past the
first steps, where a fresh generator's samples are still alike)."""
import json

import numpy as np
import torch

from vidgan.metrics.diversity import collapsed, diversity
from vidgan.training.config import TrainConfig
from vidgan.training.loop import Trainer
from vidgan.training.watch import collapse_advice, real_clips


def test_diversity_is_zero_for_identical_clips_and_grows_with_their_differences():
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 4, 32, 32, 3), dtype=np.uint8)
    assert diversity(np.repeat(one, 5, axis=0)) == 0.0 and diversity(one) == 0.0
    varied = rng.integers(0, 256, (5, 4, 32, 32, 3), dtype=np.uint8)
    half = (varied // 2 + 64).astype(np.uint8)                        # the same clips at half the contrast
    assert diversity(varied) > diversity(half) > 0
    assert collapsed(0.01, 0.2) and not collapsed(0.1, 0.2) and not collapsed(0.0, 0.0)


def _stats(run_dir):
    """The run's stats.jsonl lines, parsed."""
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def _code_layers(G):
    """The last layers of the mapping and motion networks: zeroed, every seed gets the same codes."""
    return (G.mapping.net[-1], G.motion.net[-1])


def _collapse(trainer):
    """Make the EMA generator render one clip for every seed: constant styles and motion codes."""
    with torch.no_grad():
        for layer in _code_layers(trainer.G_ema):
            layer.weight.zero_()
            layer.bias.zero_()


def test_a_collapsed_generator_is_said_once_and_logged(tmp_path, make_cfg, monkeypatch):
    monkeypatch.setattr("vidgan.metrics.diversity.COLLAPSE_FROM", 4)      # a 6-step run has no step 1,500
    said = []
    cfg = make_cfg(tmp_path / "run", steps=6, sample_every=2, log_every=2, lr=0.002, r1_gamma=1.0)
    trainer = Trainer(cfg, log=said.append, hooks={"after_step": _collapse})
    trainer.run()
    trainer.close()
    warnings = [m for m in said if "samples have collapsed" in m]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the samples have collapsed at step 6: the 4 sample")
    assert warnings[0].endswith("; try a lower --lr (0.001, half of this run's) or a larger r1_gamma "
                                "(--set r1_gamma=10, 10x this run's).")
    stats = _stats(tmp_path / "run")
    assert [s["step"] for s in stats] == [2, 4, 6]
    assert all(s["diversity"] < 1e-6 < s["diversity_real"] for s in stats)


def test_a_resumed_run_counts_on_and_warns_once(tmp_path, make_cfg, monkeypatch):
    """The watch's count rides in the checkpoint: one low grid before an interruption and one after are two in
    a row (said at step 6), and a run that has said it does not say it again after the next resume."""
    monkeypatch.setattr("vidgan.metrics.diversity.COLLAPSE_FROM", 4)
    said = []
    for steps in (4, 6, 8):                                        # three calls of vidgan train on one run
        cfg = make_cfg(tmp_path / "run", steps=steps, sample_every=2, log_every=2, ckpt_every=2)
        trainer = Trainer(cfg, log=said.append, hooks={"after_step": _collapse})
        trainer.run()
        trainer.close()
    warnings = [m for m in said if "samples have collapsed" in m]
    assert len(warnings) == 1 and "collapsed at step 6:" in warnings[0]
    assert [s["step"] for s in _stats(tmp_path / "run")] == [2, 4, 6, 8]


def test_one_low_grid_is_not_said(tmp_path, make_cfg, monkeypatch):
    """A generator collapsed at one judged grid (step 4) and recovered by the next (step 6) is a slow start."""
    monkeypatch.setattr("vidgan.metrics.diversity.COLLAPSE_FROM", 4)
    saved = {}

    def collapse_until_4(trainer):
        with torch.no_grad():
            for i, layer in enumerate(_code_layers(trainer.G_ema)):
                if trainer.step <= 4:
                    saved.setdefault(i, (layer.weight.clone(), layer.bias.clone()))
                    layer.weight.zero_()
                    layer.bias.zero_()
                else:
                    layer.weight.copy_(saved[i][0])
                    layer.bias.copy_(saved[i][1])

    said = []
    trainer = Trainer(make_cfg(tmp_path / "run", steps=6, sample_every=2, log_every=2), log=said.append,
                      hooks={"after_step": collapse_until_4})
    trainer.run()
    trainer.close()
    ratios = [s["diversity"] / s["diversity_real"] for s in _stats(tmp_path / "run")]
    assert ratios[1] < 1e-6 and ratios[2] > 0.25                   # step 4 collapsed, step 6 not
    assert not any("samples have collapsed" in m for m in said)


def test_a_young_generator_is_not_judged(tmp_path, make_cfg):
    """Before step COLLAPSE_FROM the samples of a fresh generator may still be near-identical: logged, not said."""
    said = []
    trainer = Trainer(make_cfg(tmp_path / "run", steps=4, sample_every=2, log_every=2), log=said.append,
                      hooks={"after_step": _collapse})
    trainer.run()
    trainer.close()
    stats = _stats(tmp_path / "run")
    assert all(s["diversity"] < 1e-6 < s["diversity_real"] for s in stats)
    assert not any("samples have collapsed" in m for m in said)


def test_a_healthy_generator_is_not_called_collapsed(tmp_path, make_cfg):
    said = []
    trainer = Trainer(make_cfg(tmp_path / "run", steps=2, sample_every=2, log_every=2), log=said.append)
    trainer.run()
    trainer.close()
    stats = _stats(tmp_path / "run")
    assert stats[-1]["diversity"] > 0 and not any("samples have collapsed" in m for m in said)


def test_the_last_sample_grid_of_a_run_logs_its_diversity(tmp_path, make_cfg):
    """A run that stops between sample grids writes a last grid; its figure gets a stats line too."""
    trainer = Trainer(make_cfg(tmp_path / "run", steps=3, sample_every=2, log_every=2), log=lambda m: None)
    trainer.run()
    trainer.close()
    stats = _stats(tmp_path / "run")
    assert [s["step"] for s in stats if "diversity" in s] == [2, 3]
    assert all(s["diversity"] > 0 for s in stats if "diversity" in s)


def test_one_video_gives_the_data_figure_several_windows(tmp_path, make_cfg):
    """A single video (here a frame folder) is one dataset item; the data's figure still compares several clips."""
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for t in range(24):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(frames / f"{t:03d}.png")
    trainer = Trainer(make_cfg(tmp_path / "run", data=str(frames), steps=2, sample_every=2, log_every=2),
                      log=lambda m: None)
    assert len(trainer.dataset) == 1
    reals = real_clips(trainer.dataset, trainer.cfg.seed, 4)
    assert reals.shape[0] == 4 and diversity(reals) > 0.05        # distinct windows of noise frames
    trainer.run()
    trainer.close()
    stats = _stats(tmp_path / "run")
    assert stats[-1]["diversity_real"] > 0.05


def test_the_advice_offers_r1_only_where_the_loss_uses_it():
    no_r1 = "a lower --lr (0.00125, half of this run's) or R1 (--set r1_gamma=1)"
    assert collapse_advice(TrainConfig(r1_gamma=0.0)) == no_r1
    assert collapse_advice(TrainConfig(loss="wgan-gp", lr=0.001)) == "a lower --lr (0.0005, half of this run's)"
