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


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "examples", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def motion_check():
    return _example("motion_check")


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


def test_warp_stats_measure_how_the_groups_are_scaled_and_moved(motion_check, tmp_path, capsys):
    torch.manual_seed(0)
    warp = dict(TINY, motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_groups=2)
    G = TemporalGenerator(ModelConfig(**warp)).eval()
    last = G.synthesis.warp.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        bias = last.bias.view(2, 2, 3)
        bias[0, 0, 0] = bias[0, 1, 1] = 1.0 / last.bias_gain          # group 0 reads twice as far: area 4
    assert motion_check.warp_stats(G, 3, 4) == {"warp_area": 2.5, "warp_area_range": 0.0, "warp_shift": 0.0,
                                                "warp_reach": 0.0}
    moving = TemporalGenerator(ModelConfig(**dict(warp, warp_transform="translate"))).eval()
    stats = motion_check.warp_stats(moving, 3, 4)
    assert stats["warp_area"] == 1.0 and stats["warp_area_range"] == 0.0 and stats["warp_shift"] > 0
    save_model(tmp_path / "model", moving)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        write_image(np.full((32, 32, 3), 20 * i, dtype=np.uint8), str(folder / f"f{i}.png"))
    assert motion_check.main(["--checkpoint", str(tmp_path / "model"), "--data", str(folder), "--num", "2"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["model"]["warp_area"] == 1.0 and "warp_area" not in out["data"]


def test_warp_stats_reduce_over_frames_within_each_clip_and_measure_on_screen(motion_check, monkeypatch):
    # Clip 0: group 0 scaled 1, 2, 2 (areas 1, 4, 4) with translations 0, 0.4, 0.8 along x, so its map
    # centre shows at x = -(t / s) / 2 = 0, -0.1, -0.2 frame widths; group 1 unscaled, moved along y to
    # 0, 0.1, 0.3. Clip 1: identities.
    theta = torch.zeros(2, 3, 2, 2, 3)
    theta[..., 0, 0] = theta[..., 1, 1] = 1.0
    for f, (s, tx, ty) in enumerate([(1.0, 0.0, 0.0), (2.0, 0.4, -0.2), (2.0, 0.8, -0.6)]):
        theta[0, f, 0, 0, 0] = theta[0, f, 0, 1, 1] = s
        theta[0, f, 0, 0, 2] = tx
        theta[0, f, 1, 1, 2] = ty
    G = TemporalGenerator(ModelConfig(**dict(TINY, motion_warp=True, motion_to_styles=False, warp_resolution=8,
                                             warp_groups=2))).eval()
    monkeypatch.setattr(G, "transforms", lambda z, codes, truncation=1.0: theta)
    # area: (mean 3 and 1 over clip 0's groups, 1 in clip 1) / 2; range 3 and 0, then 0; shift 0.2 and
    # 0.3, then 0; reach 0.3, then 0.
    assert motion_check.warp_stats(G, 2, 3) == {"warp_area": 1.5, "warp_area_range": 0.75, "warp_shift": 0.125,
                                                "warp_reach": 0.15}


@pytest.fixture(scope="module")
def recipe():
    return _example("train_default_model")


def test_phase_plan_splits_the_run_at_the_phase_boundaries(recipe):
    phases = [dict(until=10, time_offset=0), dict(until=20, time_offset=5), dict(until=None, time_offset=5, frames=16)]
    f8, f16 = {"frames": 8}, {"frames": 16}
    assert recipe.phase_plan(25, phases) == [(10, 0, f8), (20, 5, f8), (25, 5, f16)]
    assert recipe.phase_plan(20, phases) == [(10, 0, f8), (20, 5, f8)]
    assert recipe.phase_plan(10, phases) == [(10, 0, f8)]
    assert recipe.phase_plan(4, phases) == [(4, 0, f8)]
    assert recipe.phase_plan(60000) == [(36533, 0, f8), (53816, 32, f8), (60000, 32, f16)]   # the shipped recipe
    # The warp recipe bounds the translations from step 16,967 on (as its best checkpoint was trained).
    bound = dict(f8, warp_limit=1.0)
    assert recipe.phase_plan(30000, recipe.WARP_PHASES) == [(16967, 0, f8), (30000, 0, bound)]
    assert recipe.phase_plan(60000, recipe.WARP_PHASES)[-1] == (60000, 32, dict(f16, warp_limit=1.0))


def test_recipe_defaults_reproduce_the_shipped_model(recipe):
    # `make default-model` must train what vidgan/assets/default holds: its steps and its phases.
    meta = json.load(open(os.path.join(REPO, "vidgan", "assets", "default", "config.json")))["meta"]
    assert recipe.parse_args([]).steps == meta["training"]["steps"]
    assert meta["training"]["phases"] == recipe.PHASES
    model = meta["training"]["train_config"]["model"]
    assert model == {**model, **recipe.MODEL_RECIPE, "frames": recipe.PHASES[-1]["frames"]}
    from vidgan.training import TrainConfig

    assert recipe.variant_sets(TrainConfig.from_dict(meta["training"]["train_config"])) == []   # no --set


def test_recipe_trains_each_phase_with_its_settings_and_resumes_past_finished_phases(recipe, tmp_path,
                                                                                      monkeypatch):
    import vidgan.training
    from vidgan.data import make_moving_mnist
    from vidgan.training.state import list_checkpoints, read_train_config

    from tests.training.conftest import TINY_MODEL

    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=4, frames=8, digits=1, size=32, seed=1)
    monkeypatch.setattr(recipe, "MODEL_RECIPE", TINY_MODEL)                     # 4-frame clips
    monkeypatch.setattr(recipe, "TRAIN_RECIPE", dict(recipe.TRAIN_RECIPE, log_every=1, ckpt_every=1,
                                                     sample_every=0, keep=10, r1_every=2))
    monkeypatch.setattr(recipe, "PHASES", [dict(until=2, time_offset=0), dict(until=3, time_offset=3),
                                           dict(until=None, time_offset=3, frames=6)])
    calls = []
    real_train = vidgan.training.train

    def train(cfg, **kw):
        calls.append((cfg.steps, cfg.time_offset, cfg.model.frames))
        return real_train(cfg, **kw)

    monkeypatch.setattr(vidgan.training, "train", train)
    args = recipe.parse_args(["--run", str(tmp_path / "run"), "--data", data, "--steps", "5", "--minutes", "0",
                              "--batch", "2", "--workers", "0", "--no-export",
                              "--set", "model.pair_d=true", "--set", "r1_gamma=0.5"])
    cfg, summary = recipe.train_model(args)
    assert calls == [(2, 0, 4), (3, 3, 4), (5, 3, 6)] and summary["stopped"] == "completed" and summary["step"] == 5
    saved = {step: read_train_config(path) for step, path in list_checkpoints(args.run)}
    assert {step: (t["time_offset"], t["model"]["frames"], t["model"]["pair_d"], t["r1_gamma"])
            for step, t in saved.items()} == \
        {1: (0, 4, True, 0.5), 2: (0, 4, True, 0.5), 3: (3, 4, True, 0.5), 4: (3, 6, True, 0.5), 5: (3, 6, True, 0.5)}
    args.steps, args.set = 6, []                    # continuing skips the finished phases and keeps the --set values
    calls.clear()
    cfg, summary = recipe.train_model(args)
    assert calls == [(6, 3, 6)] and summary["step"] == 6 and cfg.model.pair_d and cfg.r1_gamma == 0.5
    assert recipe.variant_sets(cfg) == ["model.pair_d=true", "r1_gamma=0.5"]    # what an export records


def test_warp_recipe_bounds_the_translations_in_its_later_phases_and_records_itself(recipe, tmp_path,
                                                                                      monkeypatch, capsys):
    from vidgan.data import make_moving_mnist
    from vidgan.training.state import list_checkpoints, read_train_config

    from tests.training.conftest import TINY_MODEL

    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=4, frames=8, digits=1, size=32, seed=1)
    monkeypatch.setattr(recipe, "MODEL_RECIPE", dict(TINY_MODEL, warp_resolution=8))
    monkeypatch.setattr(recipe, "TRAIN_RECIPE", dict(recipe.TRAIN_RECIPE, log_every=1, ckpt_every=1,
                                                     sample_every=0, keep=10, r1_every=2))
    monkeypatch.setattr(recipe, "WARP_PHASES", [dict(until=2, time_offset=0),
                                                dict(until=None, time_offset=0, warp_limit=1.0)])
    run, model = tmp_path / "run", tmp_path / "model"
    argv = ["--run", str(run), "--data", data, "--batch", "2", "--workers", "0", "--minutes", "0",
            "--export", str(model), "--recipe", "warp"]
    assert recipe.main(argv + ["--steps", "2"]) == 0                  # unbounded so far: recorded as is
    meta = json.load(open(model / "config.json"))["meta"]
    assert meta["commands"] == ["python examples/train_default_model.py --recipe warp"]
    assert meta["training"]["train_config"]["model"]["warp_limit"] == 0.0
    assert recipe.main(argv + ["--steps", "3", "--no-export"]) == 0
    saved = {step: read_train_config(path)["model"] for step, path in list_checkpoints(str(run))}
    assert {step: (m["motion_warp"], m["motion_to_styles"], m["warp_transform"], m["warp_limit"])
            for step, m in saved.items()} == {1: (True, False, "translate", 0.0), 2: (True, False, "translate", 0.0),
                                              3: (True, False, "translate", 1.0)}
    assert "model.warp_limit=0.0; continuing with 1.0" in capsys.readouterr().out
    assert recipe.main(argv + ["--steps", "4"]) == 0                  # continued (bound kept), then exported
    meta = json.load(open(model / "config.json"))["meta"]
    assert meta["training"]["steps"] == 4 and meta["training"]["recipe"] == "warp"
    assert meta["training"]["phases"] == recipe.WARP_PHASES
    assert meta["commands"] == ["python examples/train_default_model.py --recipe warp"]
    assert meta["training"]["train_config"]["model"]["warp_limit"] == 1.0
    # A run of the default recipe is not continued as a warp one: the warp's model is refused.
    monkeypatch.setattr(recipe, "PHASES", [dict(until=None, time_offset=0)])
    other = ["--run", str(tmp_path / "plain"), "--data", data, "--batch", "2", "--workers", "0", "--minutes", "0",
             "--no-export"]
    assert recipe.main(other + ["--steps", "1"]) == 0
    capsys.readouterr()
    assert recipe.main(other + ["--steps", "2", "--recipe", "warp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "motion_warp" in err
    assert [step for step, _ in list_checkpoints(str(tmp_path / "plain"))] == [1]


def test_recipe_exports_only_a_finished_run(recipe, tmp_path, monkeypatch, capsys):
    from vidgan.data import make_moving_mnist

    from tests.training.conftest import TINY_MODEL

    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=4, frames=8, digits=1, size=32, seed=1)
    monkeypatch.setattr(recipe, "MODEL_RECIPE", TINY_MODEL)
    monkeypatch.setattr(recipe, "TRAIN_RECIPE", dict(recipe.TRAIN_RECIPE, sample_every=0, r1_every=2))
    monkeypatch.setattr(recipe, "PHASES", [dict(until=None, time_offset=0)])
    argv = ["--run", str(tmp_path / "run"), "--data", data, "--batch", "2", "--workers", "0",
            "--export", str(tmp_path / "model")]
    # Stopped by the time limit (after its first step) with 1,000 steps to go: nothing is exported.
    assert recipe.main(argv + ["--steps", "1000", "--minutes", "0.0001"]) == 0
    assert "time limit: the checkpoint is saved; run the same command again" in capsys.readouterr().out
    assert not (tmp_path / "model").exists()
    assert recipe.main(argv + ["--steps", "2", "--minutes", "0"]) == 0            # finished: exported
    assert (tmp_path / "model" / "generator.safetensors").is_file()


def test_recipe_refuses_a_malformed_or_unknown_set(recipe, tmp_path, capsys):
    from vidgan.data import make_moving_mnist

    with pytest.raises(SystemExit) as exc:
        recipe.parse_args(["--set", "model.pair_d"])
    assert exc.value.code == 2 and "--set 'model.pair_d' is not of the form KEY=VALUE" in capsys.readouterr().err
    data = make_moving_mnist(str(tmp_path / "mm.vidpack"), videos=2, frames=4, digits=1, size=32, seed=1)
    assert recipe.main(["--run", str(tmp_path / "run"), "--data", data, "--no-export",
                        "--set", "model.no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown training config key(s) model.no_such_key in --set" in err and not (tmp_path / "run").exists()


def test_recipe_rejects_a_step_count_below_one(recipe, capsys):
    with pytest.raises(SystemExit) as exc:
        recipe.parse_args(["--steps", "0"])
    assert exc.value.code == 2 and "--steps must be at least 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digit_check():
    return _example("digit_check")


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
