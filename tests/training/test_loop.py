"""The training loop on a tiny CPU model: exact resume, outputs, NaN recovery, signals, corrupt checkpoints."""
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from vidgan.errors import CheckpointError, InputError
from vidgan.training import train
from vidgan.training.loop import Trainer, TrainingDiverged
from vidgan.training.state import list_checkpoints

quiet = lambda msg: None  # noqa: E731


def _files(ckpt):
    return {f: load_file(str(ckpt / f"{f}.safetensors")) for f in ("G", "Df", "Dc", "generator")}


def _state(ckpt):
    return torch.load(str(ckpt / "state.pt"), weights_only=True)


def _flat(obj, prefix=""):
    """{path: tensor-or-number} of a nested optimizer state dict."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    if isinstance(obj, (list, tuple)):
        return _flat(dict(enumerate(obj)), prefix)
    return {prefix: obj}


def test_resume_is_bit_exact_and_outputs_are_written(tmp_path, make_cfg):
    # One run of 4 steps (sampling and checkpointing along the way) against 2 steps + resume + 2 steps.
    # R1 runs on steps 0 and 2, augmentation and random clip start times are on, so every part of the
    # step is covered.
    a = tmp_path / "a"
    res = train(make_cfg(a, steps=4, augment_p=0.5, time_offset=4, sample_every=2, ckpt_every=1, keep=2),
                log=quiet)
    assert res["step"] == 4 and res["stopped"] == "completed" and res["resumed_from"] is None
    b = tmp_path / "b"
    train(make_cfg(b, steps=2, augment_p=0.5, time_offset=4), log=quiet)
    from vidgan.training import resolve_config

    cfg_b = resolve_config(str(b), overrides={"steps": 4})        # the rest comes from b/train_config.json
    assert cfg_b.augment_p == 0.5 and cfg_b.time_offset == 4 and cfg_b.model.channel_max == 16
    res_b = train(cfg_b, log=quiet)
    assert res_b["start_step"] == 2 and res_b["resumed_from"].endswith("step-00000002")

    ca, cb = a / "checkpoints" / "step-00000004", b / "checkpoints" / "step-00000004"
    fa, fb = _files(ca), _files(cb)
    for name in fa:
        assert fa[name].keys() == fb[name].keys()
        for k in fa[name]:
            assert torch.equal(fa[name][k], fb[name][k]), f"{name}.{k} differs after resume"
    sa, sb = _flat(_state(ca)["opt_G"]), _flat(_state(cb)["opt_D"])
    sa_d = _flat(_state(ca)["opt_D"])
    for k, v in _flat(_state(cb)["opt_G"]).items():
        assert torch.equal(sa[k], v) if torch.is_tensor(v) else sa[k] == v
    for k, v in sb.items():
        assert torch.equal(sa_d[k], v) if torch.is_tensor(v) else sa_d[k] == v

    steps_b = [json.loads(line)["step"] for line in (b / "stats.jsonl").read_text().splitlines()]
    assert steps_b == [1, 2, 3, 4]                                          # one curve across the resume

    # outputs of run a
    assert [s for s, _ in list_checkpoints(a)] == [3, 4]                    # keep=2
    stats = [json.loads(line) for line in (a / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3, 4]
    assert all(s["loss_D"] == s["loss_D"] and s["kimg_per_s"] > 0 for s in stats)   # finite
    assert "r1_f" in stats[0] and "r1_c" in stats[2] and "r1_f" not in stats[1]
    for step in (2, 4):
        assert (a / "samples" / f"step-{step:08d}.mp4").stat().st_size > 0
        assert (a / "samples" / f"step-{step:08d}.png").stat().st_size > 0
    assert res["samples"]["video"].endswith("step-00000004.mp4")
    assert (a / "samples" / "reals.png").stat().st_size > 0 and not (b / "samples").exists()
    cfg_json = json.loads((ca / "config.json").read_text())
    assert cfg_json["meta"]["training"]["steps"] == 4
    import vidgan

    G = vidgan.load(str(a))                                                  # the EMA generator of the newest step
    assert all(torch.equal(v, fa["generator"][k]) for k, v in G.state_dict().items())


@pytest.mark.parametrize("time_offset", [0, 8])
def test_fake_clips_start_at_random_times_only_with_time_offset(tmp_path, make_cfg, time_offset):
    trainer = Trainer(make_cfg(tmp_path / "run", steps=8, time_offset=time_offset, sample_every=0,
                               ckpt_every=0), log=quiet)
    starts, trajectory = [], trainer.G.motion_trajectory

    def recording(motion, frames=None, fps_scale=1.0, start=0.0, times=None):
        starts.append(start)
        return trajectory(motion, frames, fps_scale, start, times)

    trainer.G.motion_trajectory = recording
    trainer.run()
    trainer.close()
    assert len(starts) >= 16                                                # D and G passes of 8 steps
    if time_offset:
        assert all(0 <= s <= time_offset for s in starts) and len(set(starts)) > 2
    else:
        assert set(starts) == {0}


def test_nan_restores_lowers_lr_then_stops(tmp_path, make_cfg):
    run = tmp_path / "run"
    cfg = make_cfg(run, steps=6, ckpt_every=1, debug_nan_steps=[2, 4])
    with pytest.raises(TrainingDiverged, match="step 4 again") as err:
        train(cfg, log=quiet)
    assert "step-00000003 is intact" in str(err.value)
    lines = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines()]
    events = [s for s in lines if "event" in s]
    assert events[0] == {"step": 2, "event": "nan", "restored_step": 1, "lr_scale": 0.5}
    assert events[1]["event"] == "diverged" and events[1]["step"] == 4
    steps = [s for s in lines if "loss_D" in s]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert steps[0]["lr_G"] == pytest.approx(0.0025) and steps[1]["lr_G"] == pytest.approx(0.00125)
    assert [s for s, _ in list_checkpoints(run)][-1] == 3                  # nothing written past the last good one
    assert _state(run / "checkpoints" / "step-00000003")["lr_scale"] == 0.5


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path, make_cfg):
    def send_sigterm(trainer):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    trainer = Trainer(make_cfg(tmp_path / "run", steps=1000), log=quiet, hooks={"after_step": send_sigterm})
    res = trainer.run()
    trainer.close()
    assert res["stopped"] == "signal" and res["step"] == 2
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2]
    assert signal.getsignal(signal.SIGTERM) == before                       # handler restored


def test_data_that_fails_mid_run_keeps_the_steps_trained(tmp_path, make_cfg):
    from vidgan.errors import DataError

    def spoil_data(trainer):
        if trainer.step == 3:
            def fetch(key):
                raise DataError("every clip is unreadable now")
            trainer.dataset.fetch = fetch

    trainer = Trainer(make_cfg(tmp_path / "run", steps=1000, ckpt_every=0, workers=0), log=quiet,
                      hooks={"after_step": spoil_data})
    with pytest.raises(DataError, match="every clip is unreadable now"):
        trainer.run()
    trainer.close()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [3]


def test_corrupt_newest_checkpoint_falls_back(tmp_path, make_cfg):
    run = tmp_path / "run"
    train(make_cfg(run, steps=2, ckpt_every=1), log=quiet)
    bad = run / "checkpoints" / "step-00000002" / "G.safetensors"
    bad.write_bytes(b"\0" * 64)
    messages = []
    res = train(make_cfg(run, steps=3), log=messages.append)
    assert res["start_step"] == 1 and res["step"] == 3
    assert any("G.safetensors" in m and "step-00000002" in m for m in messages)
    for ck in ("step-00000001", "step-00000002"):
        (run / "checkpoints" / ck / "state.pt").write_bytes(b"x")
    (run / "checkpoints" / "step-00000003" / "train.json").write_text("{")
    with pytest.raises(CheckpointError, match="every one is corrupt"):
        train(make_cfg(run, steps=4), log=quiet)


def test_channels_last_conversion_keeps_models_working():
    from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, TemporalGenerator
    from vidgan.training.step import _to_channels_last

    from .conftest import TINY_MODEL

    cfg = ModelConfig(**TINY_MODEL)
    torch.manual_seed(0)
    G, Df, Dc = TemporalGenerator(cfg), FrameDiscriminator(cfg), ClipDiscriminator(cfg)
    z, m = G.sample_content(2), G.sample_motion(2)
    ref = G(z, m)
    for mod in (G, Df, Dc):
        _to_channels_last(mod)
    conv = [p for mod in (G, Df, Dc) for p in mod.parameters() if p.ndim == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    out = G(z, m)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    (Df(out).sum() + Dc(out).sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


def test_a_pack_loads_in_the_main_process_unless_workers_are_asked_for(tmp_path, make_cfg):
    from vidgan.training.config import TrainConfig

    assert TrainConfig().workers is None
    for workers, expected in ((None, 0), (1, 1)):
        trainer = Trainer(make_cfg(tmp_path / f"w{workers}", workers=workers), log=quiet)
        loader = trainer._loader()
        try:
            assert loader._loader.num_workers == expected
        finally:
            loader.close()


def test_a_schedule_trains_each_phase_with_its_settings_and_resumes_across_phases_bit_exactly(tmp_path, make_cfg):
    phases = '[{"until": 2, "model.frames": 3, "time_offset": 0}]'
    a, b = tmp_path / "a", tmp_path / "b"
    res = train(make_cfg(a, steps=4, ckpt_every=1, keep=4, time_offset=2, sets=[f"schedule={phases}"]), log=quiet)
    assert res["step"] == 4 and res["start_step"] == 0 and res["steps_run"] == 4
    frames = {s: json.loads((p / "config.json").read_text())["model"]["frames"] for s, p in list_checkpoints(a)}
    assert frames == {1: 3, 2: 3, 3: 4, 4: 4}                       # the phase's clip length, then the run's own
    recorded = json.loads((a / "train_config.json").read_text())
    assert recorded["schedule"] == [{"until": 2, "model.frames": 3, "time_offset": 0}] and recorded["steps"] == 4
    assert recorded["model"]["frames"] == 4 and recorded["time_offset"] == 2
    # Stopped inside the first phase, then continued: the same weights as the uninterrupted run.
    train(make_cfg(b, steps=1, time_offset=2, sets=[f"schedule={phases}"]), log=quiet)
    from vidgan.training import resolve_config

    train(resolve_config(str(b), overrides={"steps": 4}), log=quiet)
    fa, fb = _files(a / "checkpoints" / "step-00000004"), _files(b / "checkpoints" / "step-00000004")
    for name in fa:
        assert all(torch.equal(fa[name][k], fb[name][k]) for k in fa[name]), name
