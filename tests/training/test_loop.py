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
    from vidgan.training import TrainConfig

    cfg_b = TrainConfig.from_sources(str(b), overrides={"steps": 4})        # the rest comes from b/train_config.json
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


def test_pair_discriminator_trains_saves_and_resumes_bit_exactly(tmp_path, make_cfg):
    pair = ["model.pair_d=true", "model.pair_d_pairs=1"]
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_cfg(a, sets=pair, steps=4, augment_p=0.5, time_offset=4, ckpt_every=2), log=quiet)
    train(make_cfg(b, sets=pair, steps=2, augment_p=0.5, time_offset=4), log=quiet)
    train(make_cfg(b, sets=pair, steps=4, augment_p=0.5, time_offset=4), log=quiet)
    ca, cb = a / "checkpoints" / "step-00000004", b / "checkpoints" / "step-00000004"
    fa, fb = (load_file(str(c / "Dp.safetensors")) for c in (ca, cb))
    assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa)
    assert all(torch.equal(x, y) for x, y in zip(_files(ca)["G"].values(), _files(cb)["G"].values()))
    da, db = _flat(_state(ca)["opt_D"]), _flat(_state(cb)["opt_D"])
    assert da.keys() == db.keys() and len(_state(ca)["opt_D"]["param_groups"]) == 2
    assert all(torch.equal(v, db[k]) if torch.is_tensor(v) else v == db[k] for k, v in da.items())
    stats = [json.loads(line) for line in (a / "stats.jsonl").read_text().splitlines()]
    assert all({"loss_Dp", "loss_Gp", "loss_Dp_mismatch"} <= set(s) for s in stats) and "r1_p" in stats[0]


def test_a_motion_warp_generator_trains_resumes_bit_exactly_and_loads(tmp_path, make_cfg):
    import vidgan

    warp = ["model.motion_warp=true", "model.motion_to_styles=false", "model.warp_resolution=8"]
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_cfg(a, sets=warp, steps=4, time_offset=4, ckpt_every=2), log=quiet)
    train(make_cfg(b, sets=warp, steps=2, time_offset=4), log=quiet)
    train(make_cfg(b, sets=warp, steps=4, time_offset=4), log=quiet)
    ca, cb = a / "checkpoints" / "step-00000004", b / "checkpoints" / "step-00000004"
    fa, fb = _files(ca), _files(cb)
    assert any(k.startswith("synthesis.warp.") for k in fa["G"])
    for name in fa:
        assert fa[name].keys() == fb[name].keys() and all(torch.equal(fa[name][k], fb[name][k]) for k in fa[name])
    G = vidgan.load(str(ca))
    assert G.cfg.motion_warp and G.cfg.warp_resolution == 8
    clips = vidgan.generate(G, seed=0, num=2, frames=6)
    assert clips.shape == (2, 6, 32, 32, 3) and (clips[:, 1:] != clips[:, :1]).any()   # the frames move


def test_mismatched_real_clips_join_halves_of_two_clips(tmp_path, make_cfg):
    trainer = Trainer(make_cfg(tmp_path / "run", sets=["model.pair_d=true"], frames=6, batch=3), log=quiet)
    real = torch.arange(3.0).view(3, 1, 1, 1, 1).expand(3, 3, 6, 32, 32)        # clip i is all i
    mixed = trainer._mismatched(real)
    assert mixed.shape == real.shape
    assert mixed[:, 0, :3, 0, 0].tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]  # first half: the clip itself
    assert mixed[:, 0, 3:, 0, 0].tolist() == [[2, 2, 2], [0, 0, 0], [1, 1, 1]]  # second half: another clip
    # Every pair the pair discriminator draws from 6 frames takes one frame from each half.
    idx = trainer.Dp.sample_frames(1000, 6)
    assert (idx[..., 0] < 3).all() and (idx[..., 1] >= 3).all()
    trainer.close()
    off = Trainer(make_cfg(tmp_path / "off", sets=["model.pair_d=true"], pair_mismatch=0), log=quiet)
    assert off._mismatched(real) is None
    off.close()
    # A micro-batch of one clip has no other clip to mismatch with.
    with pytest.raises(InputError, match="pair_mismatch pairs clips of one micro-batch, which holds 1 clip"):
        Trainer(make_cfg(tmp_path / "one", sets=["model.pair_d=true"], batch=2, accum=2), log=quiet)
    Trainer(make_cfg(tmp_path / "one", sets=["model.pair_d=true"], batch=2, accum=2, pair_mismatch=0),
            log=quiet).close()


def test_a_pair_discriminator_added_to_a_run_keeps_the_other_optimiser_moments(tmp_path, make_cfg):
    run = tmp_path / "run"
    train(make_cfg(run, steps=2), log=quiet)
    saved = _state(run / "checkpoints" / "step-00000002")["opt_D"]
    messages = []
    trainer = Trainer(make_cfg(run, sets=["model.pair_d=true"], steps=3), log=messages.append)
    assert messages[:2] == ["note: step-00000002 was trained with model.pair_d=False; Dp is new.",
                            "note: Dp starts as a copy of Df that looks at the earlier frame of each pair."]
    # Dp begins as the resumed Df on the earlier frame: every layer copied, zero weights for the later frame.
    df, dp = trainer.Df.state_dict(), trainer.Dp.state_dict()
    assert all(torch.equal(dp[k], df[k]) for k in df if k != "from_rgb.weight")
    assert torch.count_nonzero(dp["from_rgb.weight"][:, 3:]) == 0
    saved_df = load_file(str(run / "checkpoints" / "step-00000002" / "Df.safetensors"))
    assert all(torch.equal(df[k], saved_df[k]) for k in saved_df)
    now = trainer.opt_D.state_dict()
    n = len(saved["param_groups"][0]["params"])
    assert now["param_groups"][0]["params"] == list(range(n)) and len(now["param_groups"]) == 2
    assert all(torch.equal(now["state"][i]["exp_avg"], saved["state"][i]["exp_avg"]) for i in range(n))
    assert not any(i in now["state"] for i in now["param_groups"][1]["params"])   # Dp's moments start at zero
    before = {k: v.clone() for k, v in dp.items()}
    res = trainer.run()
    trainer.close()
    assert res["start_step"] == 2 and res["step"] == 3
    after = load_file(str(run / "checkpoints" / "step-00000003" / "Dp.safetensors"))
    assert any(not torch.equal(after[k], before[k]) for k in after)                # Dp trained
    # The frame and clip weights may both be 0 when the pair discriminator trains.
    cfg = make_cfg(tmp_path / "only-pair", sets=["model.pair_d=true"], steps=1, frame_weight=0, clip_weight=0)
    assert train(cfg, log=quiet)["last_stats"]["loss_Dp"] > 0


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
    from vidgan.training.loop import _to_channels_last

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
