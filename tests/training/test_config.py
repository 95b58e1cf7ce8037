"""TrainConfig: sources and their precedence, aliases, unknown keys, types and value checks."""
import json
import os

import pytest

from vidgan.errors import InputError
from vidgan.training import TrainConfig, resolve_config
from vidgan.training.config import RUN_CONFIG_NAME
from vidgan.training.merge import config_diff


def test_sources_in_order_of_precedence(tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"batch": 16, "lr": 0.001, "loss": "hinge", "model": {"motion": "gru"},
                                    "resolution": 128}))
    cfg = resolve_config(tmp_path / "run", config_file=str(cfg_file), overrides={"batch": 4, "frames": 8},
                                   assignments=["lr=0.0005", "model.channel_max=32", "augment=flip,color",
                                                "betas=[0.5, 0.9]", "amp=true"])
    assert cfg.batch == 4                                  # flag beats file
    assert cfg.lr == 0.0005                                # --set beats file
    assert cfg.loss == "hinge"                             # file beats default
    assert cfg.model.motion == "gru" and cfg.model.channel_max == 32
    assert cfg.model.resolution == 128 and cfg.model.frames == 8   # aliases for model.*
    assert cfg.augment == ("flip", "color") and cfg.betas == (0.5, 0.9) and cfg.amp is True
    assert cfg.run_dir == str(tmp_path / "run")
    assert cfg.steps == TrainConfig().steps                # untouched default


def test_saved_run_config_is_the_base_for_a_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = resolve_config(run, overrides={"batch": 6, "data": "clips/", "resolution": 32})
    first.to_json(str(run / RUN_CONFIG_NAME))
    again = resolve_config(run, overrides={"steps": 50})
    assert again.batch == 6 and again.data == os.path.abspath("clips") and again.model.resolution == 32
    assert again.steps == 50
    assert TrainConfig.from_dict(again.to_dict()) == again


@pytest.mark.parametrize("where", ["file", "flag", "set"])
def test_unknown_keys_are_named(tmp_path, where):
    kwargs = {}
    if where == "file":
        f = tmp_path / "c.json"
        f.write_text(json.dumps({"batch": 2, "bacth_size": 3, "model": {"widht": 3}}))
        kwargs["config_file"] = str(f)
    elif where == "flag":
        kwargs["overrides"] = {"bacth_size": 3}
    else:
        kwargs["assignments"] = ["model.widht=3"]
    with pytest.raises(InputError, match="widht|bacth_size") as err:
        resolve_config(tmp_path / "run", **kwargs)
    if where == "file":
        assert "bacth_size" in str(err.value) and "model.widht" in str(err.value) and "c.json" in str(err.value)


@pytest.mark.parametrize("assignment, words", [
    ("model.resolution=48", "power of two"),
    ("frames=1", "at least 2"),
    ("batch=two", "batch"),
    ("loss=softmax", "loss"),
    ("augment_p=1.5", "augment_p"),
    ("augment=rotate", "rotate"),
    ("betas=[0.5]", "betas"),
    ("steps=1.5", "steps"),
    ("time_offset=-1", "time_offset"),
    ('schedule=[{"until":5,"lr":1}]', "schedule phase 1 sets lr; a phase may set only time_offset, model.frames"),
    ('schedule=[{"until":5},{"until":5}]', r"schedule phase 2 must be an object with an integer \"until\" step above"),
    ("model.pair_d=true", "--set uses model.pair_d=true, an option that vidgan 0.1.0 was the last version"),
    ("nonsense", "KEY=VALUE"),
    # keys whose default is null are checked against their declared type, list items too
    ("d_lr=abc", r"d_lr='abc' .* expected float"),
    ("minutes=abc", "minutes='abc'"),
    ("augment_target=abc", "augment_target='abc'"),
    ("data=5", "data=5"),
    ('betas=[0.5,"a"]', r"betas\[1\]='a'"),
    ('debug_nan_steps=["x"]', r"debug_nan_steps\[0\]='x' .* expected int"),
    ("ema_rampup=-1", "ema_rampup must be positive"),
    # null only where the field is optional; finite numbers only
    ("batch=null", r"batch in --set must be a int like 8, not null"),
    ("augment=null", r"augment in --set must be a list"),
    ("r1_gamma=NaN", "r1_gamma must be a finite number, got nan"),
    ("lr=Infinity", "lr must be a finite number, got inf"),
    ("betas=[0,Infinity]", r"betas must be a finite number, got \[0.0, inf\]"),
    ("model.mapping_lr_mul=NaN", "mapping_lr_mul must be a finite number"),
])
def test_bad_values_raise_one_clear_error(tmp_path, assignment, words):
    with pytest.raises(InputError, match=words):
        resolve_config(tmp_path / "run", assignments=[assignment])


def test_some_discriminator_must_train(tmp_path):
    off = ["frame_weight=0", "clip_weight=0"]
    with pytest.raises(InputError, match="at least one discriminator must train"):
        resolve_config(tmp_path / "run", assignments=off)


def test_bad_config_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        resolve_config(tmp_path, config_file=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        resolve_config(tmp_path, config_file=str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        resolve_config(tmp_path, config_file=str(bad))


def test_batch_must_split_over_ranks_and_accumulation():
    cfg = TrainConfig(batch=12, accum=2)
    assert cfg.check_world(3) == 2
    with pytest.raises(InputError, match="not divisible by world size 5"):
        cfg.check_world(5)


def test_config_diff_names_dotted_keys():
    a = TrainConfig().to_dict()
    b = TrainConfig(batch=3).to_dict()
    b["model"]["channel_max"] = 8
    assert config_diff(a, b) == ["batch", "model.channel_max"]


def test_null_default_keys_take_values_of_their_type(tmp_path):
    cfg = resolve_config(tmp_path / "run", assignments=[
        "d_lr=0.001", "minutes=5", "augment_target=0.6", "betas=[0,0.9]", "debug_nan_steps=[3]",
        "model.conv_clamp=256"])
    assert (cfg.d_lr, cfg.minutes, cfg.augment_target) == (0.001, 5.0, 0.6)
    assert cfg.betas == (0.0, 0.9) and cfg.debug_nan_steps == (3,) and cfg.model.conv_clamp == 256
    with pytest.raises(InputError, match="eval_clips must be at least 2"):
        resolve_config(tmp_path / "run", assignments=["eval_every=10", "eval_clips=1", "frames=9"])


def test_run_folder_and_data_paths(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    for out, words in ((tmp_path / "afile", "afile is a file"), (tmp_path / "afile" / "run", "would lie under")):
        with pytest.raises(InputError, match=f"the run folder .*{words}"):
            resolve_config(out)
    # a relative --data is saved absolute, so a resume from another folder reads the same data
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config(tmp_path / "run", overrides={"data": "clips"})
    assert cfg.data == str(tmp_path / "clips")
    # pathlib paths serialise
    path_cfg = TrainConfig(run_dir=tmp_path / "run", data=tmp_path / "clips")
    path_cfg.to_json(str(tmp_path / "c.json"))
    assert json.load(open(tmp_path / "c.json"))["data"] == str(tmp_path / "clips")
    assert sorted(os.listdir(tmp_path)) == ["afile", "c.json"]
