"""Checkpoint state: atomic writes, keep-K, weights_only loading, RNG round trip, corrupt fallback."""
import json
import random

import numpy as np
import pytest
import torch

from vidgan.errors import CheckpointError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, TemporalGenerator
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
                                                      "config.json", "generator.safetensors", "manifest.json",
                                                      "state.pt", "train.json"]
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
    assert "state.pt does not match the size and sha256 recorded when it was written" in messages[-1]
    # Without the manifest (vidgan 0.1.0's checkpoints) the reader names the damage, in one sentence.
    (run / "checkpoints" / "step-00000001" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="every one is corrupt"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods, log=messages.append)
    assert messages[-1].endswith("state.pt cannot be read as a training state (UnpicklingError); it is damaged: "
                                 "resume from another checkpoint or delete this one. Falling back to the previous "
                                 "checkpoint.")


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
    (path / "manifest.json").unlink()                                   # such checkpoints had none
    G_ema, mods = _models(1)
    found, state = S.find_resumable(run, ModelConfig(**TINY_MODEL).to_dict(), G_ema, mods)
    assert found == path and state["step"] == 3
    with pytest.raises(CheckpointError, match=r"model\.motion_to_styles \(checkpoint True, now False\)"):
        S.find_resumable(run, ModelConfig(**TINY_MODEL, motion_to_styles=False).to_dict(), G_ema, mods)


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


def test_rng_state_round_trip():
    saved = S.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    S.set_rng_state(saved)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


class _Payload:
    """Pickles as a call of os.system: what a hostile state.pt would carry."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/vidgan-pwned",))


def test_a_state_file_with_code_in_it_is_refused_and_never_run(tmp_path):
    import os

    run = tmp_path / "run"
    path = _save(run, 1)[0]
    torch.save({"step": 1, "x": _Payload()}, str(path / S.STATE_FILE))
    (path / "manifest.json").unlink()                       # a stranger's file: no manifest to catch it first
    G_ema, mods = _models(0)
    with pytest.raises(CheckpointError) as err:
        S.load_checkpoint(path, G_ema, mods)
    assert str(err.value) == (f"checkpoint file {path / S.STATE_FILE} holds objects other than tensors and "
                              "numbers, which vidgan never loads; it is damaged or not vidgan's: resume from "
                              "another checkpoint or delete this one.")
    assert "weights_only" not in str(err.value) and not os.path.exists("/tmp/vidgan-pwned")


def test_old_checkpoints_are_moved_out_of_their_step_names_before_they_are_removed(tmp_path, monkeypatch):
    # A kill during the removal of an old checkpoint leaves a hidden folder, which the next run clears,
    # never a step-* folder holding only part of a checkpoint.
    import shutil

    run = tmp_path / "run"
    _save(run, 1, keep=1)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)             # "killed" before anything went
    _save(run, 2, keep=1)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names[-1] == "step-00000002" and names[0].startswith(".step-00000001.old-") and len(names) == 2
    monkeypatch.undo()
    S.clean_temp(run)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002"]
