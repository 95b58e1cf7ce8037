"""Named presets: the plain defaults are the `default` preset, and `mmnist64` is the embedded model's recipe."""
import json
import os

import pytest

from vidgan.training import TrainConfig, list_presets, resolve_config

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "vidgan", "assets", "default", "config.json")


def test_the_plain_defaults_are_the_default_preset(tmp_path):
    assert set(list_presets()) == {"default", "fast", "mmnist64"}
    assert resolve_config(str(tmp_path / "run"), "default") == resolve_config(str(tmp_path / "run"))
    assert resolve_config(str(tmp_path / "run")).to_dict() == dict(TrainConfig().to_dict(),
                                                                   run_dir=str(tmp_path / "run"))


def test_mmnist64_reproduces_the_shipped_models_recipe(tmp_path):
    meta = json.load(open(SHIPPED))["meta"]
    shipped = meta["training"]["train_config"]
    cfg = resolve_config(str(tmp_path / "run"), "mmnist64", overrides={"data": str(tmp_path / "mm.vidpack")})
    assert cfg.steps == meta["training"]["steps"] == 58750
    # Its last phase is the shipped run's train_config.json, up to the paths (and the schedule it was run by).
    last = cfg.phase(cfg.steps - 1)[0].to_dict()
    for key in ("run_dir", "data", "schedule"):
        last.pop(key)
    newer = {k: last.pop(k) for k in list(last) if k not in shipped}          # fields added since: at their off values
    assert newer == {"d_warmup": 0, "init_from": None, "compile": False}
    newer_model = {k: last["model"].pop(k) for k in list(last["model"]) if k not in shipped["model"]}
    assert newer_model == {"channels": 3}                     # the shipped model is RGB (the preset says so)
    assert last == {k: v for k, v in shipped.items() if k not in ("run_dir", "data")}
    # Its phases are the shipped run's: frame times 0.. on 8-frame clips, then random starts, then 16 frames.
    ends = [p["until"] for p in meta["training"]["phases"]]                 # [36533, 53816, None]
    for start, end, phase in zip([0] + ends[:-1], ends, meta["training"]["phases"]):
        for step in (start, (end or cfg.steps) - 1):
            got, until = cfg.phase(step)
            assert until == (end or cfg.steps)
            assert got.time_offset == phase["time_offset"] and got.model.frames == phase.get("frames", 8)


def test_an_unknown_preset_names_the_known_ones(tmp_path):
    from vidgan.errors import InputError

    with pytest.raises(InputError, match=r"there is no preset 'big'; choose one of default, fast, mmnist64"):
        resolve_config(str(tmp_path / "run"), "big")
