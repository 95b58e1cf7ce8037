import json
import os
import warnings

import pytest
import torch

import vidgan.checkpoint as ckpt
from vidgan.checkpoint import atomic_directory, load, load_modules, save_model, save_modules
from vidgan.errors import CheckpointError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, TemporalGenerator

TINY = dict(resolution=32, frames=4, z_dim=16, w_dim=16, mapping_layers=2, motion_dim=8, motion_code_dim=8,
            motion_spacing=2, time_features=3, channel_base=128, channel_max=16, d_channel_base=128,
            d_channel_max=16, clip_channel_base=64, clip_channel_max=16)


def make_G(seed=0, **kw):
    torch.manual_seed(seed)
    G = TemporalGenerator(ModelConfig(**{**TINY, **kw}))
    G.w_avg.normal_()
    return G.eval()


def render(G):
    g = torch.Generator().manual_seed(3)
    z, m = G.sample_content(2, generator=g), G.sample_motion(2, 4, generator=g)
    with torch.no_grad():
        return G(z, m, truncation=0.7)


def test_round_trip_is_bit_identical(tmp_path):
    G = make_G(motion="gru")
    out = save_model(tmp_path / "model", G, meta={"steps": 12, "data": "moving-mnist", "fps": 8})
    assert sorted(os.listdir(out)) == ["config.json", "generator.safetensors", "manifest.json"]
    doc = json.loads((out / "config.json").read_text())
    assert doc["model"]["motion"] == "gru" and doc["meta"]["steps"] == 12
    H = load(out)
    assert not H.training and H.cfg == G.cfg and H.meta == {"steps": 12, "data": "moving-mnist", "fps": 8}
    assert torch.equal(render(G), render(H))
    # A .safetensors file with its config.json beside it.
    assert torch.equal(render(G), render(load(out / "generator.safetensors")))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp folders left


def test_save_into_an_existing_folder_keeps_other_files(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"x")
    save_model(tmp_path, make_G())
    assert sorted(os.listdir(tmp_path)) == ["config.json", "generator.safetensors", "manifest.json", "state.pt"]


def test_atomic_directory_leaves_nothing_on_error_and_replaces_on_success(tmp_path):
    target = tmp_path / "step-00000001"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            save_model(tmp, make_G())
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        save_model(tmp, make_G())
    assert sorted(os.listdir(target)) == ["config.json", "generator.safetensors", "manifest.json"]
    assert os.listdir(tmp_path) == ["step-00000001"]


def test_corrupt_weights_and_config_name_the_file(tmp_path):
    # Without a manifest (as vidgan 0.1.0 wrote models), the readers themselves find the damage.
    out = save_model(tmp_path / "m", make_G())
    (out / "manifest.json").unlink()
    weights = out / "generator.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="generator.safetensors"):
        load(out)
    weights.write_bytes(data)
    (out / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load(out)
    (out / "config.json").write_text(json.dumps({"format": "vidgan-generator", "model": {"resolution": 48}}))
    with pytest.raises(CheckpointError, match="config.json.*power of two"):
        load(out)
    for version in ("x", None, 1.5, True):
        doc = {"format": "vidgan-generator", "format_version": version, "model": {}}
        (out / "config.json").write_text(json.dumps(doc))
        with pytest.raises(CheckpointError, match=r"config.json has format_version .* not an integer"):
            load(out)


def test_non_finite_weights_are_refused(tmp_path):
    G = make_G()
    with torch.no_grad():
        G.synthesis.const[0, 0, 0] = float("nan")
    out = save_model(tmp_path / "m", G)
    with pytest.raises(CheckpointError, match="generator.safetensors.*NaN"):
        load(out)


def test_weights_of_another_config_are_refused(tmp_path):
    out = save_model(tmp_path / "m", make_G())
    other = save_model(tmp_path / "o", make_G(channel_max=8))
    os.replace(other / "generator.safetensors", out / "generator.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load(out)


def test_run_dir_picks_the_newest_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    G2, G4, G6 = make_G(2), make_G(4), make_G(6)
    save_model(run / "checkpoints" / "step-00000002", G2, meta={"steps": 2})
    save_model(run / "checkpoints" / "step-00000004", G4, meta={"steps": 4})
    (run / "checkpoints" / "step-00000009").mkdir()   # incomplete (no files yet)
    (run / "config.json").write_text("{}")           # training's own config does not confuse it
    with pytest.warns(UserWarning, match="step-00000009.*step-00000004"):
        H = load(run)
    assert H.meta["steps"] == 4 and torch.equal(render(H), render(G4))
    # A corrupt newest checkpoint falls back to the previous one, saying which.
    save_model(run / "checkpoints" / "step-00000006", G6, meta={"steps": 6})
    w = run / "checkpoints" / "step-00000006" / "generator.safetensors"
    w.write_bytes(b"garbage" * 10)
    with pytest.warns(UserWarning) as rec:
        H = load(run)
    assert H.meta["steps"] == 4
    assert any("step-00000006" in str(r.message) and "generator.safetensors" in str(r.message) for r in rec)
    # The checkpoints folder itself works too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load(run / "checkpoints").meta["steps"] == 4


def test_run_dir_with_only_broken_checkpoints(tmp_path):
    (tmp_path / "checkpoints" / "step-00000001").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="no loadable checkpoint"):
            load(tmp_path)


def test_missing_paths_and_default_model(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load(tmp_path)
    monkeypatch.setattr(ckpt, "DEFAULT_DIR", tmp_path / "default")
    with pytest.raises(CheckpointError, match="embedded default model is not present"):
        load()
    save_model(tmp_path / "default", make_G(), meta={"steps": 1})
    assert load().meta == {"steps": 1}


def test_save_and_load_modules(tmp_path):
    cfg = ModelConfig(**TINY)
    torch.manual_seed(0)
    Df, Dc = FrameDiscriminator(cfg), ClipDiscriminator(cfg)
    save_modules(tmp_path, {"frame_d": Df, "clip_d": Dc})
    torch.manual_seed(1)
    Df2, Dc2 = FrameDiscriminator(cfg), ClipDiscriminator(cfg)
    load_modules(tmp_path, {"frame_d": Df2, "clip_d": Dc2})
    for a, b in ((Df, Df2), (Dc, Dc2)):
        for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(v, w), k
    os.remove(tmp_path / "clip_d.safetensors")
    with pytest.raises(CheckpointError, match="clip_d.safetensors"):
        load_modules(tmp_path, {"clip_d": Dc2})


def test_meta_must_be_json(tmp_path):
    from vidgan.errors import InputError
    with pytest.raises(InputError, match="JSON"):
        save_model(tmp_path / "m", make_G(), meta={"bad": object()})
    assert not (tmp_path / "m").exists()


def test_saved_model_is_readable_by_others(tmp_path):
    # Shipped models must be readable after a system-wide install (temp files start 0600).
    import stat

    save_model(tmp_path / "m", TemporalGenerator(ModelConfig(resolution=32, frames=4, channel_max=8)))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "generator.safetensors"):
        mode = stat.S_IMODE(os.stat(tmp_path / "m" / name).st_mode)
        assert mode == 0o666 & ~umask


def test_damage_that_still_parses_is_found_by_the_manifest(tmp_path):
    # 64 random bytes inside the tensor data: the file still loads as safetensors, with wild weights.
    out = save_model(tmp_path / "m", make_G())
    weights = out / "generator.safetensors"
    data = bytearray(weights.read_bytes())
    data[-200:-136] = os.urandom(64)
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"generator\.safetensors does not match the size and sha256 recorded"):
        load(out)
    with pytest.raises(CheckpointError, match=r"generator\.safetensors does not match"):
        load(out / "generator.safetensors")
    save_model(out, make_G())                                         # written again: whole again
    (out / "config.json").write_text((out / "config.json").read_text()[:-20])     # truncated
    with pytest.raises(CheckpointError, match=r"config\.json does not match the size and sha256"):
        load(out)
    (out / "manifest.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"manifest\.json is unreadable"):
        load(out)


def test_the_embedded_model_carries_a_manifest_and_verifies_fast():
    import time

    from vidgan.checkpoint import DEFAULT_DIR
    from vidgan.manifest import verify

    t0 = time.perf_counter()
    assert verify(DEFAULT_DIR, ["config.json", "generator.safetensors"]) is True
    assert time.perf_counter() - t0 < 5          # a generous ceiling; it takes milliseconds


@pytest.mark.parametrize("model,words", [
    ({"z_dim": 10 ** 9}, "z_dim must be at most 1,024"),
    ({"w_dim": 10 ** 6}, "w_dim must be at most 1,024"),
    ({"channel_base": 10 ** 9, "channel_max": 10 ** 9}, "channel_base must be at most"),
    ({"time_features": 10 ** 8}, "time_features must be at most 64"),
    ({"mapping_layers": 10 ** 6}, "mapping_layers must be at most 16"),
    ({"frames": 10 ** 12}, "frames must be at most 1,048,576"),
])
def test_hostile_model_configs_are_refused_before_anything_is_built(tmp_path, monkeypatch, model, words):
    import vidgan.checkpoint as C

    out = save_model(tmp_path / "m", make_G())
    (out / "manifest.json").unlink()                              # a stranger's model folder
    doc = json.loads((out / "config.json").read_text())
    doc["model"].update(model)
    (out / "config.json").write_text(json.dumps(doc))
    built = []
    monkeypatch.setattr(C, "TemporalGenerator", lambda cfg: built.append(cfg))
    with pytest.raises(CheckpointError, match=rf"config\.json holds a bad model config: .*{words}"):
        load(out)
    assert built == []


@pytest.mark.parametrize("meta,words", [({"frames": 10 ** 12}, r"meta\.frames 1000000000000, not a whole number"),
                                        ({"fps": "fast"}, r"meta\.fps 'fast', not a number above 0")])
def test_a_models_bad_viewing_length_or_rate_is_named(tmp_path, meta, words):
    out = save_model(tmp_path / "m", make_G(), meta=meta)
    with pytest.raises(CheckpointError, match=words):
        load(out)


def test_json_nested_too_deep_is_one_sentence(tmp_path):
    out = save_model(tmp_path / "m", make_G())
    (out / "manifest.json").unlink()
    (out / "config.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON \(it nests deeper than 32 levels\)"):
        load(out)
