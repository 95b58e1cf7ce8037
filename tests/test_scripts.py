"""The maintenance scripts in scripts/: motion_check, digit_check and export_default_model."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from vidgan.checkpoint import save_model
from vidgan.export import write_image
from vidgan.models import ModelConfig, TemporalGenerator

from tests.test_generate import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def motion_check():
    return _script("motion_check")


def test_clip_stats_tell_still_from_moving(motion_check):
    still = torch.rand(4, 1, 8, 8, 3).expand(4, 6, 8, 8, 3)
    s = motion_check.clip_stats(still)
    assert s["motion"] == 0 and s["drift"] == 0 and s["spread"] > 0.1
    moving = torch.zeros(2, 6, 8, 8, 3)
    for t in range(6):
        moving[:, t, :, t] = 1.0                                  # a bright column sweeping right
    m = motion_check.clip_stats(moving)
    assert m["motion"] == pytest.approx(2 * 8 * 3 / (8 * 8 * 3), abs=1e-4)  # two columns change per step
    assert m["spread"] == 0                                       # both clips start the same


def test_motion_check_runs_on_a_model_and_a_frame_folder(motion_check, tmp_path, capsys):
    torch.manual_seed(0)
    save_model(tmp_path / "model", TemporalGenerator(ModelConfig(**TINY)))
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        write_image(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), str(folder / f"f{i}.png"))
    sheet = tmp_path / "sheet.png"
    assert motion_check.main(["--checkpoint", str(tmp_path / "model"), "--data", str(folder), "--num", "4",
                              "--sheet", str(sheet)]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["frames"] == 4 and out["num"] == 4
    assert out["data"]["motion"] > 0.1                            # independent noise frames (resized)
    assert 0 <= out["model"]["motion"] < 1 and sheet.exists()
    assert 0 < out["model"]["noise"] < 1                          # other motion seeds change the clips


def test_noise_effect_is_zero_only_when_the_motion_noise_changes_nothing(motion_check):
    torch.manual_seed(0)
    G = TemporalGenerator(ModelConfig(**TINY)).eval()
    a = motion_check.model_clips(G, 3, 4)
    assert torch.equal(a, motion_check.model_clips(G, 3, 4))     # same seeds, same clips
    b = motion_check.model_clips(G, 3, 4, motion_seed=3)
    assert not torch.equal(a, b)
    assert motion_check.noise_effect(a, a) == 0 and motion_check.noise_effect(a, b) > 0


@pytest.fixture(scope="module")
def digit_check():
    return _script("digit_check")


def test_digit_stability_is_the_share_of_frames_showing_the_clips_most_common_pair(digit_check):
    pairs = torch.tensor([[[1, 3]] * 4,                                      # the same two digits throughout
                          [[1, 3], [1, 3], [2, 5], [4, 6]]])                 # they turn into others
    assert digit_check.stability(pairs) == {"stable": (1 + 0.5) / 2, "ends": 0.5}
    # Legible frames only: the second clip's unreadable third and fourth frames drop out; the first
    # clip has one legible frame, too few to compare, so it is left out.
    legible = torch.tensor([[True, False, False, False], [True, True, False, False]])
    assert digit_check.stability(pairs, legible) == {"stable": 0.75, "ends": 0.5, "legible": 0.375,
                                                     "stable_legible": 1.0}
    mixed = torch.tensor([[[1, 3], [2, 5], [1, 3], [4, 6]]])              # legible frames show two pairs
    assert digit_check.stability(mixed, torch.tensor([[True, True, True, False]]))["stable_legible"] == \
        round(2 / 3, 3)
    assert digit_check.stability(pairs, torch.zeros(2, 4, dtype=torch.bool))["stable_legible"] is None


def test_a_frame_is_legible_when_both_digits_of_its_pair_are_likely(digit_check):
    class Fixed(torch.nn.Module):                 # logits given per frame, whatever the pixels
        def __init__(self, rows):
            super().__init__()
            self.rows = torch.tensor(rows)

        def forward(self, x):
            return self.rows[:len(x)]

    sure, unsure = [-5.0] * 10, [-5.0] * 10
    sure[7], sure[2] = 3.0, 0.5                   # both above probability 0.5
    unsure[4], unsure[1] = 3.0, -0.5              # the second digit below it
    pairs, legible = digit_check.read_digits(Fixed([sure, unsure]), torch.zeros(1, 2, 8, 8, 3))
    assert pairs.tolist() == [[[2, 7], [1, 4]]] and legible.tolist() == [[True, False]]


def test_digit_classifier_learns_to_name_held_out_digit_pairs(digit_check):
    from vidgan.data.mnist import load_digits

    net, accuracy = digit_check.train_classifier(size=48, steps=300, batch=32, log=lambda m: None)
    assert accuracy > 0.2                                         # 0.35 here; guessing a pair of 45 gets 0.02
    x, _ = digit_check.labelled_frames(*load_digits("test", labels=True), 3, 48, np.random.default_rng(5))
    clips = x[:, 0, :, :, None].expand(3, 48, 48, 3)[:, None].expand(3, 4, 48, 48, 3)   # 3 still clips
    pairs = digit_check.read_digits(net, clips)[0]
    assert pairs.shape == (3, 4, 2) and (pairs[..., 0] < pairs[..., 1]).all()     # two different digits, sorted
    assert digit_check.stability(pairs) == {"stable": 1.0, "ends": 1.0}           # a still clip keeps its pair


def test_regions_count_the_bright_blobs_of_each_frame(digit_check):
    frames = torch.zeros(5, 16, 16)
    frames[0, 2:6, 2:6] = frames[0, 9:13, 9:13] = 1             # two digits apart
    frames[1, 2:6, 2:6] = frames[1, 6:10, 6:10] = 1             # touching at a corner (8-connected): one
    frames[2, 2:6, 2:6] = 1
    frames[2, 12:14, 12:14] = 1                                 # a speck of 4 pixels is not a region
    frames[3, 1:4, 1:4] = frames[3, 6:9, 6:9] = frames[3, 11:14, 11:14] = 1     # three pieces
    frames[4, 2:6, 2:6] = 0.4                                   # too dim to count: no region
    clips = frames.reshape(1, 5, 16, 16, 1).expand(1, 5, 16, 16, 3)
    assert digit_check.regions(clips) == {"one_region": 0.4, "two_regions": 0.2, "more_regions": 0.2}
    assert digit_check.regions(clips, threshold=0.3)["one_region"] == 0.6


def test_digit_kinds_is_the_effective_number_of_surest_digits(digit_check):
    assert digit_check.digit_kinds(torch.arange(10).repeat(3)) == {"kinds": 10.0, "top_digit": [0, 0.1]}
    assert digit_check.digit_kinds(torch.full((2, 8), 8)) == {"kinds": 1.0, "top_digit": [8, 1.0]}
    half = digit_check.digit_kinds(torch.tensor([[0, 8], [8, 8]]))          # 8 in 3 frames of 4, 0 in one
    assert half["top_digit"] == [8, 0.75] and half["kinds"] == round(1 / (0.75 ** 0.75 * 0.25 ** 0.25), 2)


def test_digit_check_runs_on_a_model_and_refuses_bad_counts(digit_check, tmp_path, capsys):
    from vidgan.data import make_moving_mnist

    torch.manual_seed(0)
    save_model(tmp_path / "model", TemporalGenerator(ModelConfig(**TINY)))
    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=3, frames=6, digits=2, size=32, seed=1)
    assert digit_check.main(["--checkpoint", str(tmp_path / "model"), "--data", data, "--num", "3",
                             "--frames", "4", "--steps", "2"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["num"] == 3 and out["frames"] == 4 and 0 <= out["accuracy"] <= 1
    for who in ("model", "data"):
        assert 1 / 4 <= out[who]["stable"] <= 1 and 0 <= out[who]["ends"] <= 1 and 0 <= out[who]["legible"] <= 1
        assert out[who]["stable_legible"] is None or 1 / 4 <= out[who]["stable_legible"] <= 1
        shares = [out[who][k] for k in ("one_region", "two_regions", "more_regions")]
        assert all(0 <= x <= 1 for x in shares) and sum(shares) <= 1 + 1e-6
        assert 1 <= out[who]["kinds"] <= 10 and out[who]["top_digit"][0] in range(10)
        assert 1 / 10 <= out[who]["top_digit"][1] <= 1
    # Several checkpoints: one classifier judges each (the same weights in two folders: the same figures).
    import shutil

    first, copy = str(tmp_path / "model"), str(shutil.copytree(tmp_path / "model", tmp_path / "copy"))
    assert digit_check.main(["--checkpoint", first, "--checkpoint", copy, "--data", data, "--num", "3",
                             "--frames", "4", "--steps", "2"]) == 0
    two = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert list(two["models"]) == [first, copy] and "model" not in two
    assert two["models"][first] == two["models"][copy] == out["model"] and two["data"] == out["data"]
    with pytest.raises(SystemExit) as exc:
        digit_check.parse_args(["--data", data, "--num", "0"])
    assert exc.value.code == 2 and "--num must be at least 1" in capsys.readouterr().err


def test_export_writes_the_default_model_layout_and_refuses_an_unfinished_run(tmp_path, capsys):
    from vidgan.data import make_moving_mnist
    from vidgan.training import resolve_config, train

    export = _script("export_default_model")
    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=4, frames=6, digits=1, size=32, seed=1)
    tiny = [f"model.{k}={v}" for k, v in TINY.items()]
    run = str(tmp_path / "run")
    flags = dict(data=data, steps=1, batch=2, workers=0, sample_every=0, progress=False, tensorboard=False)
    train(resolve_config(run, overrides=flags, assignments=tiny), log=lambda m: None)
    out = tmp_path / "model"
    assert export.main([run, "--out", str(out)]) == 0
    import vidgan

    G = vidgan.load(str(out))
    assert G.meta["training"]["steps"] == 1 and G.meta["training"]["train_config"]["steps"] == 1
    assert any("--preset mmnist64" in c for c in G.meta["commands"]) and (out / "samples.png").stat().st_size
    assert vidgan.generate(G, seed=0, num=1, frames=4).shape == (1, 4, 32, 32, 3)
    capsys.readouterr()
    train(resolve_config(run, overrides={"steps": 3, "minutes": 1e-9}), log=lambda m: None)   # stops at step 2
    assert export.main([run, "--out", str(tmp_path / "unfinished")]) == 2
    assert "is step 2 of 3; train to the end first" in capsys.readouterr().err
    assert not (tmp_path / "unfinished").exists()
    assert export.main([str(tmp_path / "nowhere")]) == 2
