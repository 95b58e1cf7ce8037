"""Grey training: model.channels follows the data in a new run, --channels / a config file force it, a resume
keeps the checkpoint's; a tiny grey run trains, augments and writes its samples; bad values exit 2."""
import json

import numpy as np
import pytest
import torch

from vidgan.cli import main
from vidgan.training import resolve_config
from vidgan.training.augment import VideoAugment
from vidgan.training.loop import Trainer

from ..data.conftest import make_frames
from .conftest import TINY_RUN, tiny_sets

quiet = lambda msg: None  # noqa: E731


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    for v in range(2):
        make_frames(root / f"v{v}", 6, h=32, w=32)
    return str(root)


def _resolve(run, data, **flags):
    return resolve_config(str(run), overrides=dict(TINY_RUN, data=data, **flags), assignments=tiny_sets())


def test_a_new_run_takes_the_datas_channels_unless_a_source_sets_them(tmp_path, mm_pack, colour):
    assert _resolve(tmp_path / "a", mm_pack).model.channels == 1             # the moving-mnist pack: grey
    assert _resolve(tmp_path / "b", colour).model.channels == 3
    assert _resolve(tmp_path / "c", colour, **{"model.channels": 1}).model.channels == 1   # --channels 1
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"model": {"channels": 3}}))
    cfg = resolve_config(str(tmp_path / "d"), config_file=str(cfg_file), overrides=dict(TINY_RUN, data=mm_pack),
                         assignments=tiny_sets())
    assert cfg.model.channels == 3                                             # RGB on grey data: replicated


def test_a_tiny_grey_run_trains_augments_writes_samples_and_resumes_grey(tmp_path, mm_pack):
    run = tmp_path / "run"
    cfg = _resolve(run, mm_pack, steps=2, sample_every=2, augment_p=1.0)
    messages = []
    trainer = Trainer(cfg, log=messages.append)
    assert trainer.dataset.channels == 1 and trainer.dataset[(0, 0)].shape == (1, 4, 32, 32)
    trainer.run()
    trainer.close()
    assert any("grey frames (1 channel)" in m for m in messages)
    with torch.no_grad():
        assert trainer.G_ema(torch.zeros(1, 16), trainer.G_ema.sample_motion(1)).shape[1] == 1
    assert (run / "samples" / "reals.png").is_file() and (run / "samples" / "step-00000002.png").is_file()
    assert json.loads((run / "train_config.json").read_text())["model"]["channels"] == 1
    assert resolve_config(str(run)).model.channels == 1                       # the run folder decides


def test_a_resume_with_other_channels_is_refused_naming_the_key(tmp_path, mm_pack, capsys):
    run = tmp_path / "run"
    Trainer(_resolve(run, mm_pack, steps=1, ckpt_every=1), log=quiet).run()
    assert main(["train", "--out", str(run), "--steps", "2", "--channels", "3"]) == 2
    err = capsys.readouterr().err
    assert "model.channels (checkpoint 1, now 3)" in err and err.count("\n") == 1


@pytest.mark.parametrize("value", ["2", "0"])
def test_a_bad_channels_flag_exits_2_in_one_sentence_writing_nothing(tmp_path, mm_pack, capsys, value):
    code = main(["train", "--data", mm_pack, "--out", str(tmp_path / "run"), "--channels", value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--channels must be 1 (grey) or 3 (RGB), got {value}." in err
    assert not (tmp_path / "run").exists()


def test_a_bad_channels_key_in_a_config_file_exits_2(tmp_path, mm_pack, capsys):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"model": {"channels": 4}}))
    code = main(["train", "--data", mm_pack, "--out", str(tmp_path / "run"), "--config", str(cfg_file)])
    err = capsys.readouterr().err
    assert code == 2 and "model config channels must be 1 (grey) or 3 (RGB), got 4." in err
    assert not (tmp_path / "run").exists()


def test_colour_augmentation_on_one_channel_matches_the_grey_clip_replicated():
    torch.manual_seed(0)
    grey = torch.rand(4, 1, 3, 8, 8) * 2 - 1
    aug = VideoAugment(p=1.0, ops=("color",))
    torch.manual_seed(1)
    one = aug(grey)
    torch.manual_seed(1)
    three = aug(grey.expand(4, 3, 3, 8, 8))
    assert one.shape == grey.shape
    # brightness and contrast act the same; saturation leaves R = G = B as it is
    for c in range(3):
        assert torch.allclose(three[:, c], one[:, 0], atol=1e-6)
    assert not torch.allclose(one, grey)                                        # it did change the clips


def test_diversity_of_grey_clips_equals_that_of_them_replicated():
    from vidgan.metrics.diversity import diversity

    clips = np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16, 1), dtype=np.uint8)
    d = diversity(clips)
    assert d > 0 and d == pytest.approx(diversity(np.repeat(clips, 3, axis=-1)), rel=1e-12)


@pytest.mark.parametrize("forced", [1, 3])
def test_forced_channels_train_on_the_other_kind_of_data(tmp_path, mm_pack, colour, forced):
    data = colour if forced == 1 else mm_pack                                 # colour -> luma, grey -> replicated
    messages = []
    trainer = Trainer(_resolve(tmp_path / "run", data, steps=1, **{"model.channels": forced}), log=messages.append)
    trainer.run()
    trainer.close()
    said = "colour frames converted to grey (ITU-R BT.601 luma)" if forced == 1 else "grey frames replicated"
    assert sum(said in m for m in messages) == 1
