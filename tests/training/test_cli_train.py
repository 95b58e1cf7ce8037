"""`vidgan train` through the CLI: a real tiny run, resume, and each bad input ending in one sentence, exit 2."""
import json

import pytest

from vidgan.cli import main

from .conftest import TINY_RUN, tiny_sets

BASE_FLAGS = ["--batch", "2", "--workers", "0", "--ckpt-every", "1", "--sample-every", "0",
              "--set", "progress=false", "--set", "tensorboard=false", "--set", "r1_every=2"]


def _train(capsys, *argv):
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, mm_pack):
    """A 1-step CLI run (module-wide; tests copy it before changing it)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--data", mm_pack, "--out", str(run), "--steps", "1", *BASE_FLAGS]
    for s in tiny_sets():
        argv += ["--set", s]
    assert main(argv) == 0
    return run


def _copy(run, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_cli_trains_then_resumes_from_the_run_dir_alone(base_run, tmp_path, capsys):
    run = _copy(base_run, tmp_path)
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["model"]["channel_max"] == 16 and saved["batch"] == 2 and saved["steps"] == 1
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")      # no --data, no --set: from the run
    assert code == 0, err
    assert "resumed from" in out and "completed at step 2" in out
    assert (run / "checkpoints" / "step-00000002" / "generator.safetensors").is_file()


@pytest.mark.parametrize("argv, words", [
    (["--set", "bogus_key=1"], "unknown training config key(s) bogus_key"),
    (["--resolution", "48"], "power of two"),
    (["--frames", "1"], "frames must be at least 2"),
    (["--loss", "softmax"], "loss 'softmax' is unknown"),
    (["--init-from", "no-such-model"], "no-such-model does not exist; pass a model folder"),
    (["--resolution", "32", "--frames", "4", "--init-from", "default"],
     "init_from: the generator in default was built with other model settings (model.resolution 64 there, 32 here"),
])
def test_bad_options_exit_2(tmp_path, capsys, mm_pack, argv, words):
    code, out, err = _train(capsys, "--data", mm_pack, "--out", str(tmp_path / "run"), *argv)
    assert code == 2
    assert words in err and err.count("\n") == 1                        # one line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_key_in_config_file_exits_2(tmp_path, capsys, mm_pack):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"batch": 2, "model": {"resolutoin": 32}}))
    code, _, err = _train(capsys, "--data", mm_pack, "--out", str(tmp_path / "run"), "--config", str(cfg))
    assert code == 2 and "model.resolutoin" in err and "cfg.json" in err


def test_batch_not_divisible_by_world_size_exits_2(tmp_path, capsys, mm_pack, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = _train(capsys, "--data", mm_pack, "--out", str(tmp_path / "run"), "--batch", "3")
    assert code == 2 and "batch 3 is not divisible by world size 2" in err


def test_missing_data_exits_2(tmp_path, capsys):
    code, _, err = _train(capsys, "--out", str(tmp_path / "run"))
    assert code == 2 and "--data" in err


def test_incompatible_run_dir_exits_2_naming_the_keys(base_run, tmp_path, capsys):
    run = _copy(base_run, tmp_path)
    code, _, err = _train(capsys, "--out", str(run), "--steps", "2", "--set", "model.channel_max=8",
                          "--set", "model.motion=gru")
    assert code == 2
    assert "incompatible config" in err and "model.channel_max (checkpoint 16, now 8)" in err
    assert "model.motion (checkpoint 'continuous', now 'gru')" in err
    assert not (run / "checkpoints" / "step-00000002").exists()


def test_corrupt_checkpoint_exits_2_naming_the_file(base_run, tmp_path, capsys):
    run = _copy(base_run, tmp_path)
    (run / "checkpoints" / "step-00000001" / "Dc.safetensors").write_bytes(b"not safetensors")
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")
    assert code == 2
    assert "Dc.safetensors" in out                                      # the warning names the file
    assert "every one is corrupt" in err and "Dc.safetensors" in err


def test_a_run_made_with_a_removed_option_is_refused_by_name(base_run, tmp_path, capsys):
    # A run folder of vidgan 0.1.0 with the pair discriminator on: one sentence, exit 2, nothing written.
    run = _copy(base_run, tmp_path)
    saved = json.loads((run / "train_config.json").read_text())
    saved["model"].update(pair_d=True, pair_d_pairs=2)
    saved.update(pair_weight=1.0, pair_mismatch=1.0)
    (run / "train_config.json").write_text(json.dumps(saved))
    before = sorted(p.name for p in run.rglob("*"))
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")
    assert code == 2
    assert err.strip() == (f"vidgan train: error: {run / 'train_config.json'} uses model.pair_d=true, an option "
                           "that vidgan 0.1.0 was the last version to have; use vidgan 0.1.0 for it, or start a "
                           "new run without it.")
    assert sorted(p.name for p in run.rglob("*")) == before
    # The same folder with the option off (as 0.1.0 wrote every run) resumes.
    saved["model"]["pair_d"] = False
    (run / "train_config.json").write_text(json.dumps(saved))
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")
    assert code == 0, err
    assert (run / "checkpoints" / "step-00000002").is_dir()
    assert "pair_d" not in json.loads((run / "train_config.json").read_text())["model"]


def test_presets_are_listed_and_picked_by_name(tmp_path, mm_pack, capsys):
    code, out, err = _train(capsys, "--list-presets")
    assert code == 0 and out.startswith("default: The plain defaults") and "\nmmnist64: The embedded model's" in out
    code, out, err = _train(capsys, "--out", str(tmp_path / "r"), "--preset", "nope", "--data", mm_pack)
    assert code == 2 and "there is no preset 'nope'; choose one of default, fast, mmnist64" in err
    assert not (tmp_path / "r").exists()
    code, out, err = _train(capsys, "--data", mm_pack)
    assert code == 2 and "needs --out RUN_DIR" in err


@pytest.mark.parametrize("change,words", [
    ({"model": {"z_dim": 10 ** 9}}, "model config z_dim must be at most 1,024"),
    ({"batch": 10 ** 12}, "batch must be at most 65,536"),
    ({"model": {"frames": 10 ** 12}}, "model config frames must be at most 1,048,576"),
])
def test_a_hostile_run_config_is_refused_on_resume(base_run, tmp_path, capsys, change, words):
    run = _copy(base_run, tmp_path)
    saved = json.loads((run / "train_config.json").read_text())
    for k, v in change.items():
        saved[k] = dict(saved[k], **v) if isinstance(v, dict) else v
    (run / "train_config.json").write_text(json.dumps(saved))
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (run / "checkpoints" / "step-00000002").exists()
    (run / "train_config.json").write_text("{" * 100000)
    code, out, err = _train(capsys, "--out", str(run), "--steps", "2")
    assert code == 2 and "nests deeper than 32 levels" in err
