"""Checkpoint state: atomic writes, keep-K, weights_only loading, RNG round trip, corrupt fallback."""
import json
import random

import numpy as np
import pytest
import torch

from vidgan.errors import CheckpointError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, PairDiscriminator, TemporalGenerator
from vidgan.training import state as S

from .conftest import TINY_MODEL


def _models(seed, cfg=None):
    torch.manual_seed(seed)
    cfg = cfg or ModelConfig(**TINY_MODEL)
    return TemporalGenerator(cfg), {"G": TemporalGenerator(cfg), "Df": FrameDiscriminator(cfg),
                                    "Dc": ClipDiscriminator(cfg)}


def _save(run, step, seed=0, keep=3, model=None):
    G_ema, mods = _models(seed, model)
    train = {"model": (model or ModelConfig(**TINY_MODEL)).to_dict(), "batch": 2}
    opt = torch.optim.Adam(mods["G"].parameters())
    mods["G"](torch.randn(1, mods["G"].cfg.z_dim), mods["G"].sample_motion(1)).mean().backward()
    opt.step()
    st = {"step": step, "opt_G": opt.state_dict(), "rng": [S.rng_state()], "lr_scale": 0.5}
    return S.save_checkpoint(run, step, G_ema, mods, st, train, meta={"training": {"steps": step}}, keep=keep), \
        G_ema, mods


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_save_load_round_trip_and_keep(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3, 4):
        path, G_ema, mods = _save(run, step, seed=step, keep=2)
    assert [s for s, _ in S.list_checkpoints(run)] == [3, 4]
    assert sorted(p.name for p in path.iterdir()) == ["Dc.safetensors", "Df.safetensors", "G.safetensors",
                                                      "config.json", "generator.safetensors", "state.pt",
                                                      "train.json"]
    G_ema2, mods2 = _models(99)
    found, st = S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema2, mods2)
    assert found == path and st["step"] == 4 and st["lr_scale"] == 0.5
    assert _same(G_ema, G_ema2) and all(_same(mods[k], mods2[k]) for k in mods)
    assert torch.load(path / "state.pt", weights_only=True)["opt_G"]["state"]   # no pickled code needed
    import vidgan

    assert _same(vidgan.load(str(run)), G_ema)                                   # a run dir is a loadable model


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _save(run, 1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(S.torch, "save", boom)
    with pytest.raises(OSError):
        _save(run, 2)
    assert [s for s, _ in S.list_checkpoints(run)] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    _save(run, 1, seed=1)
    _save(run, 2, seed=2)
    bad = run / "checkpoints" / "step-00000002" / "Df.safetensors"
    bad.write_bytes(bad.read_bytes()[:100])                                     # truncated
    messages = []
    G_ema, mods = _models(5)
    found, st = S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods, log=messages.append)
    assert st["step"] == 1 and found.name == "step-00000001"
    assert len(messages) == 1 and "Df.safetensors" in messages[0] and "previous" in messages[0]
    (run / "checkpoints" / "step-00000001" / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="every one is corrupt"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods, log=messages.append)
    assert "state.pt is missing or corrupt (UnpicklingError: " in messages[-1]


def test_incompatible_config_names_the_keys(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)
    other = ModelConfig(**dict(TINY_MODEL, channel_max=8, motion="gru")).to_dict()
    G_ema, mods = _models(0)
    with pytest.raises(CheckpointError, match=r"model\.channel_max \(checkpoint 16, now 8\), model\.motion"):
        S.find_resumable(run, other, G_ema, mods)


def test_checkpoint_older_than_a_new_config_field_still_resumes(tmp_path):
    # A checkpoint written before a model config field existed has no such key; the field's default
    # is what that model was, so it must resume rather than be called incompatible.
    run = tmp_path / "run"
    path = _save(run, 3)[0]
    f = path / S.TRAIN_FILE
    saved = json.loads(f.read_text())
    del saved["model"]["motion_to_styles"]
    f.write_text(json.dumps(saved))
    G_ema, mods = _models(1)
    found, state = S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods)
    assert found == path and state["step"] == 3
    with pytest.raises(CheckpointError, match=r"model\.motion_to_styles \(checkpoint True, now False\)"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL, motion_to_styles=False).to_dict(), G_ema, mods)


def test_warp_settings_without_motion_warp_shape_nothing_on_resume(tmp_path):
    # warp_resolution, warp_groups and warp_transform build nothing while motion_warp is off: a run resumes silently with
    # other values; switching motion_warp on is refused like any other change of G's shape.
    run = tmp_path / "run"
    path, G_saved, _ = _save(run, 3)
    messages = []
    G_ema, mods = _models(1)
    other = ModelConfig(**TINY_MODEL, warp_resolution=8, warp_groups=3, warp_transform="translate").to_dict()
    found, state = S.find_resumable(run, other, G_ema, mods, log=messages.append)
    assert found == path and state["step"] == 3 and _same(G_ema, G_saved) and messages == []
    with pytest.raises(CheckpointError, match=r"model\.motion_warp \(checkpoint False, now True\), "
                                              r"model\.warp_groups \(checkpoint 2, now 1\)"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL, motion_warp=True, warp_groups=1).to_dict(), G_ema, mods)


def test_a_new_training_clip_length_resumes_and_is_reported(tmp_path):
    # frames shapes no parameter, so a later phase may train on longer clips; other fields still must match.
    run = tmp_path / "run"
    path, G_saved, _ = _save(run, 3)
    longer = ModelConfig(**dict(TINY_MODEL, frames=8))
    messages = []
    G_ema, mods = _models(1)
    found, state = S.find_resumable(run, longer.to_dict(), G_ema, mods, log=messages.append)
    assert found == path and state["step"] == 3 and _same(G_ema, G_saved)
    assert messages == [f"note: {path.name} was trained with model.frames=4; continuing with 8."]
    with pytest.raises(CheckpointError, match=r"incompatible config: model\.channel_max \(checkpoint 16, now 8\);"):
        S.find_resumable(run, ModelConfig(**dict(TINY_MODEL, frames=8, channel_max=8)).to_dict(), G_ema, mods)


def test_per_clip_styles_resume_a_per_frame_run_and_are_reported(tmp_path):
    # styles_per_clip shapes no parameter: a run trained with per-frame styles may continue with it.
    run = tmp_path / "run"
    path, G_saved, saved_mods = _save(run, 3)
    messages = []
    G_ema, mods = _models(1)
    found, state = S.find_resumable(run, ModelConfig(**TINY_MODEL, styles_per_clip=True).to_dict(), G_ema, mods,
                                    log=messages.append)
    assert found == path and state["step"] == 3 and _same(G_ema, G_saved) and _same(mods["G"], saved_mods["G"])
    assert messages == [f"note: {path.name} was trained with model.styles_per_clip=False; continuing with True."]


def test_a_warp_bound_set_on_a_trained_warp_run_resumes_it_and_is_reported(tmp_path):
    # warp_limit shapes no parameter: an unbounded motion_warp run may continue with its translations
    # bounded; its transforms then change (a large translation is pulled in) while every weight is kept.
    run = tmp_path / "run"
    warp = dict(TINY_MODEL, motion_warp=True, warp_resolution=8, warp_transform="translate")
    path, G_saved, saved_mods = _save(run, 3, model=ModelConfig(**warp))
    messages = []
    bounded = ModelConfig(**warp, warp_limit=0.25)
    G_ema, mods = _models(1, bounded)
    found, state = S.find_resumable(run, bounded.to_dict(), G_ema, mods, log=messages.append)
    assert found == path and state["step"] == 3 and _same(G_ema, G_saved) and _same(mods["G"], saved_mods["G"])
    assert messages == [f"note: {path.name} was trained with model.warp_limit=0.0; continuing with 0.25."]
    x = torch.full((1, G_ema.synthesis.warp.net[0].weight.shape[1]), 3.0)
    shift = G_ema.synthesis.warp(x)[..., 2].abs()
    assert shift.max() < 0.25 < G_saved.synthesis.warp(x)[..., 2].abs().max()
    with pytest.raises(CheckpointError, match=r"model\.warp_groups"):                  # a shaping field still counts
        S.find_resumable(run, ModelConfig(**dict(warp, warp_groups=4)).to_dict(), *_models(1))


def test_a_pair_discriminator_switched_on_starts_fresh_and_is_reported(tmp_path):
    # A run that adds model.pair_d loads G, Df and Dc from a checkpoint without Dp; Dp keeps its new
    # weights. Switching it off again (a checkpoint with Dp) is refused like any other change.
    run = tmp_path / "run"
    path, G_saved, saved_mods = _save(run, 3)
    with_pair = ModelConfig(**dict(TINY_MODEL, pair_d=True, pair_d_pairs=1))
    G_ema, mods = _models(1)
    Dp = PairDiscriminator(with_pair)
    fresh = {k: v.clone() for k, v in Dp.state_dict().items()}
    messages = []
    found, state = S.find_resumable(run, with_pair.to_dict(), G_ema, dict(mods, Dp=Dp), log=messages.append)
    assert found == path and state["step"] == 3 and _same(G_ema, G_saved)
    assert all(_same(mods[k], saved_mods[k]) for k in ("G", "Df", "Dc"))
    assert all(torch.equal(v, fresh[k]) for k, v in Dp.state_dict().items())
    assert messages == [f"note: {path.name} was trained with model.pair_d=False; Dp is new."]
    assert state["fresh_modules"] == ["Dp"]
    path5 = S.save_checkpoint(run, 5, G_ema, dict(mods, Dp=Dp), {"step": 5}, {"model": with_pair.to_dict()})
    G_ema, mods = _models(2)
    with pytest.raises(CheckpointError, match=r"model\.pair_d \(checkpoint True, now False\)"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods)
    # A checkpoint with Dp resumes it (with any number of pairs per clip).
    Dp2 = PairDiscriminator(with_pair)
    found, _ = S.find_resumable(run, dict(with_pair.to_dict(), pair_d_pairs=4), G_ema, dict(mods, Dp=Dp2),
                                log=messages.append)
    assert found == path5 and _same(Dp2, Dp) and _["fresh_modules"] == []


def test_rng_state_round_trip():
    saved = S.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    S.set_rng_state(saved)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
