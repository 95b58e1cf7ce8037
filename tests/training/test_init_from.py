"""Starting a run from a trained generator (init_from) and discriminator-only warm-up steps (d_warmup),
on the tiny CPU model."""
import json

import pytest
import torch

from vidgan.checkpoint import save_model
from vidgan.errors import InputError
from vidgan.models import TemporalGenerator
from vidgan.training.loop import Trainer

quiet = lambda msg: None  # noqa: E731


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


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
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()     # nothing written
    # Discriminator settings shape no part of G: a generator that differs only there is taken.
    _source_generator(tmp_path, make_cfg, d_channel_max=8)
    Trainer(make_cfg(tmp_path / "c", init_from=str(tmp_path / "source")), log=quiet).close()


@pytest.mark.parametrize("sets,words", [
    (["d_warmup=-1"], "d_warmup must not be negative"),
    (['init_from=""'], "init_from must name a generator"),
])
def test_bad_values_are_refused(tmp_path, make_cfg, sets, words):
    with pytest.raises(InputError, match=words):
        make_cfg(tmp_path / "run", sets=sets)


def test_a_new_run_from_init_from_takes_that_generators_model_settings(tmp_path, make_cfg, mm_pack):
    from vidgan.training import resolve_config

    _source_generator(tmp_path, make_cfg, w_dim=32)
    flags = {"data": mm_pack, "init_from": str(tmp_path / "source")}
    cfg = resolve_config(str(tmp_path / "run"), overrides=flags, assignments=["model.frames=6"])
    assert cfg.model.w_dim == 32 and cfg.model.channel_max == 16 and cfg.model.frames == 6   # source, then --set
    assert cfg.init_from == str(tmp_path / "source")
    # The run keeps them in its train_config.json; a resume reads them from there.
    cfg.to_json(str(tmp_path / "run.json"))
    assert json.loads((tmp_path / "run.json").read_text())["model"]["w_dim"] == 32
