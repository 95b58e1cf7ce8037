"""The content encoder (model.content_encoder), starting a run from a trained generator (init_from) and
discriminator-only warm-up steps (d_warmup), on the tiny CPU model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from vidgan.checkpoint import save_model
from vidgan.errors import CheckpointError, InputError
from vidgan.models import TemporalGenerator
from vidgan.training import train
from vidgan.training.loop import Trainer

quiet = lambda msg: None  # noqa: E731
E_ON = ["model.content_encoder=true", "model.content_frames=2"]


def _state(ckpt):
    return torch.load(str(ckpt / "state.pt"), weights_only=True)


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_content_encoder_trains_saves_and_resumes_bit_exactly(tmp_path, make_cfg):
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_cfg(a, sets=E_ON, steps=4, time_offset=4), log=quiet)
    train(make_cfg(b, sets=E_ON, steps=2, time_offset=4), log=quiet)
    train(make_cfg(b, sets=E_ON, steps=4, time_offset=4), log=quiet)
    ca, cb = a / "checkpoints" / "step-00000004", b / "checkpoints" / "step-00000004"
    for name in ("E", "G", "generator"):
        fa, fb = (load_file(str(c / f"{name}.safetensors")) for c in (ca, cb))
        assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa), name
    ea, eb = _state(ca)["opt_E"], _state(cb)["opt_E"]
    assert ea["state"] and all(torch.equal(ea["state"][i]["exp_avg"], eb["state"][i]["exp_avg"]) for i in ea["state"])
    stats = _stats(a)
    assert all(s["loss_E"] > 0 and 0 <= s["loss_Gcontent"] <= 2 for s in stats)
    # loss_G holds the content term (content_weight 1); loss_D does not hold E's loss.
    assert all(abs(s["loss_G"] - (s["loss_Gf"] + s["loss_Gc"] + s["loss_Gcontent"])) < 1e-4 for s in stats)
    plain = [s for s in stats if "r1_f" not in s]                                 # steps without R1
    assert plain and all(abs(s["loss_D"] - s["loss_Df"] - s["loss_Dc"]) < 1e-4 for s in plain)


def test_the_encoder_loss_and_the_content_term(tmp_path, make_cfg):
    trainer = Trainer(make_cfg(tmp_path / "run", sets=E_ON), log=quiet)
    E = trainer.E
    video = torch.randn(3, 3, 4, 32, 32)
    # G's term: 1 - the mean cosine similarity over the pairs of read frames of each clip.
    torch.manual_seed(5)
    got = trainer._content_loss(video)
    torch.manual_seed(5)
    e = torch.nn.functional.normalize(E(video), dim=-1)                          # [3, 2, D]
    assert torch.allclose(got, 1 - (e[:, 0] * e[:, 1]).sum(-1).mean(), atol=1e-6)
    still = video[:, :, :1].expand(3, 3, 4, 32, 32)                               # every frame the same
    assert trainer._content_loss(still).abs() < 1e-6
    # With k = 3 frames: the mean over the 3 pairs of each clip.
    E.cfg.content_frames = 3
    torch.manual_seed(7)
    got = trainer._content_loss(video)
    torch.manual_seed(7)
    e = torch.nn.functional.normalize(E(video), dim=-1)                          # [3, 3, D]
    pairs = [(e[:, i] * e[:, j]).sum(-1) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert torch.allclose(got, 1 - torch.stack(pairs).mean(), atol=1e-6)
    E.cfg.content_frames = 2
    # Frames are read alone: frame i of a clip embeds as a clip made of that frame does.
    pred = E(video, frame_index=torch.tensor([[0, 3], [1, 2], [2, 0]]))
    alone = E(video[1:2, :, 2:3].expand(1, 3, 4, 32, 32).contiguous(), frame_index=torch.tensor([[0]]))
    assert pred.shape == (3, 2, trainer.cfg.model.w_dim) and torch.allclose(pred[1, 1], alone[0, 0], atol=1e-5)
    # E's loss is InfoNCE over far-apart pairs, both ways, at temperature 0.1.
    torch.manual_seed(6)
    got = trainer._encoder_loss(video)
    torch.manual_seed(6)
    idx = E.sample_pairs(3, 4)
    assert ((idx[:, 1] - idx[:, 0]) >= 2).all()
    e = torch.nn.functional.normalize(E(video, frame_index=idx), dim=-1)
    logits = e[:, 0] @ e[:, 1].T / 0.1
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(got, (ce(logits, torch.arange(3)) + ce(logits.T, torch.arange(3))) / 2, atol=1e-5)
    trainer.close()


def test_the_encoder_learns_from_real_clips_only(tmp_path, make_cfg):
    # With and without G's content term, E ends with the same weights: G's term never trains E.
    weights, before = [], None
    for weight in (0.0, 1.0):
        trainer = Trainer(make_cfg(tmp_path / f"w{weight}", sets=E_ON, steps=3, content_weight=weight), log=quiet)
        before = {k: v.clone() for k, v in trainer.E.state_dict().items()}
        calls, content_loss = [], trainer._content_loss

        def recording(video, trainer=trainer, content_loss=content_loss):   # G's term: E takes no gradient
            calls.append(any(p.requires_grad for p in trainer.E.parameters()))
            return content_loss(video)

        trainer._content_loss = recording
        trainer.run()
        assert calls == ([False] * 3 if weight else [])
        trainer.close()
        weights.append(trainer.E.state_dict())
        assert ("loss_Gcontent" in _stats(tmp_path / f"w{weight}")[-1]) == (weight > 0)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in before)
    assert any(not torch.equal(weights[0][k], before[k]) for k in before)              # and it did learn
    with pytest.raises(InputError, match="content encoder learns by telling the clips of one micro-batch apart"):
        make_cfg(tmp_path / "one", sets=E_ON, batch=2, accum=2).check_world(1)


def test_a_content_encoder_added_to_a_run_starts_fresh(tmp_path, make_cfg):
    run = tmp_path / "run"
    train(make_cfg(run, steps=2), log=quiet)
    messages = []
    trainer = Trainer(make_cfg(run, sets=E_ON, steps=3), log=messages.append)
    assert messages[:2] == ["note: step-00000002 was trained with model.content_encoder=False; E is new.",
                            "note: the content encoder E starts from fresh weights."]
    assert trainer.step == 2 and not trainer.opt_E.state_dict()["state"]
    trainer.run()
    trainer.close()
    assert (run / "checkpoints" / "step-00000003" / "E.safetensors").is_file()
    # Switching it off again is refused (E's weights would be dropped).
    with pytest.raises(CheckpointError, match=r"model\.content_encoder \(checkpoint True, now False\)"):
        Trainer(make_cfg(run, sets=["model.content_encoder=false"], steps=4), log=quiet)


def _source_generator(tmp_path, make_cfg, **model):
    cfg = make_cfg(tmp_path / "unused").model
    for k, v in model.items():
        setattr(cfg, k, v)
    torch.manual_seed(7)
    G = TemporalGenerator(cfg)
    with torch.no_grad():
        G.w_avg.normal_()
    save_model(tmp_path / "source", G, meta={"training": {"steps": 123}})
    return G


def test_init_from_starts_g_from_the_generator_and_d_warmup_holds_it(tmp_path, make_cfg):
    src = _source_generator(tmp_path, make_cfg)
    messages = []
    trainer = Trainer(make_cfg(tmp_path / "run", steps=2, init_from=str(tmp_path / "source"), d_warmup=2),
                      log=messages.append)
    assert f"note: G starts from the generator in {tmp_path / 'source'} (123 steps); the discriminators start " \
           "fresh and train alone for the first 2 steps." in messages
    for model in (trainer.G, trainer.G_ema):
        assert all(torch.equal(v, src.state_dict()[k]) for k, v in model.state_dict().items())
    df = {k: v.clone() for k, v in trainer.Df.state_dict().items()}
    trainer.run()
    trainer.close()
    # Two warm-up steps: the discriminators moved, G's weights and its EMA did not (G's w_avg buffer, an
    # average of its unchanged mapping's outputs, goes on tracking them).
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in trainer.G_ema.state_dict().items())
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in trainer.G.named_parameters())
    assert any(not torch.equal(v, df[k]) for k, v in trainer.Df.state_dict().items())
    assert all("loss_G" not in s and s["loss_D"] > 0 for s in _stats(tmp_path / "run"))
    # Resumed past the warm-up, G trains; init_from is not applied again (its generator may be gone).
    import shutil

    shutil.rmtree(tmp_path / "source")
    resumed = Trainer(make_cfg(tmp_path / "run", steps=3), log=messages.append)
    assert f"note: init_from ({tmp_path / 'source'}) starts a new run only; this one resumes from " \
           "step-00000002." in messages
    g2 = {k: v.clone() for k, v in resumed.G.state_dict().items()}
    assert resumed.cfg.init_from == str(tmp_path / "source") and resumed.step == 2
    resumed.run()
    resumed.close()
    assert any(not torch.equal(v, g2[k]) for k, v in resumed.G.state_dict().items())
    assert "loss_G" in _stats(tmp_path / "run")[-1]


def test_init_from_refuses_a_missing_or_mismatched_generator(tmp_path, make_cfg):
    with pytest.raises(InputError, match=r"^init_from: .*nowhere does not exist"):
        make_cfg(tmp_path / "a", init_from=str(tmp_path / "nowhere"))
    _source_generator(tmp_path, make_cfg, w_dim=32)
    with pytest.raises(InputError, match=r"model\.w_dim 32 there, 16 here\); use the same model settings"):
        Trainer(make_cfg(tmp_path / "b", init_from=str(tmp_path / "source")), log=quiet)
    _source_generator(tmp_path, make_cfg, motion_warp=True, warp_resolution=8)
    with pytest.raises(InputError, match=r"\(model\.motion_warp True there, False here\); use the same model"):
        Trainer(make_cfg(tmp_path / "b", init_from=str(tmp_path / "source"), sets=["model.motion_warp=false"]),
                log=quiet)
    _source_generator(tmp_path, make_cfg, motion_warp=True, warp_resolution=8, warp_transform="translate")
    with pytest.raises(InputError, match=r"\(model\.warp_transform 'translate' there, 'affine' here\)"):
        Trainer(make_cfg(tmp_path / "b", init_from=str(tmp_path / "source"),
                         sets=["model.warp_transform=affine"]), log=quiet)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()     # nothing written
    # warp settings without motion_warp build nothing: a generator that differs only there is taken.
    _source_generator(tmp_path, make_cfg, warp_groups=4)
    Trainer(make_cfg(tmp_path / "c", init_from=str(tmp_path / "source")), log=quiet).close()


@pytest.mark.parametrize("sets,words", [
    (["content_weight=-1"], "content_weight must not be negative"),
    (["d_warmup=-1"], "d_warmup must not be negative"),
    (["model.content_frames=0"], "content_frames must be at least 1"),
    (E_ON[:1] + ["model.content_frames=1"], "content_frames must be at least 2 with content_encoder"),
    (['init_from=""'], "init_from must name a generator"),
])
def test_bad_values_are_refused(tmp_path, make_cfg, sets, words):
    with pytest.raises(InputError, match=words):
        make_cfg(tmp_path / "run", sets=sets)


def test_a_new_run_from_init_from_takes_that_generators_model_settings(tmp_path, make_cfg, mm_pack):
    from vidgan.training import TrainConfig

    _source_generator(tmp_path, make_cfg, w_dim=32)
    flags = {"data": mm_pack, "init_from": str(tmp_path / "source")}
    cfg = TrainConfig.from_sources(str(tmp_path / "run"), overrides=flags, assignments=["model.frames=6"])
    assert cfg.model.w_dim == 32 and cfg.model.channel_max == 16 and cfg.model.frames == 6   # source, then --set
    assert cfg.init_from == str(tmp_path / "source")
    # The run keeps them in its train_config.json; a resume reads them from there.
    cfg.to_json(str(tmp_path / "run.json"))
    assert json.loads((tmp_path / "run.json").read_text())["model"]["w_dim"] == 32
