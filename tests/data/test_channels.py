"""Grey or colour data: detection (packs record it, other sources are probed), luma and replication."""
import os

import numpy as np
import pytest
from PIL import Image

from vidgan.data import VideoDataset, make_moving_mnist, open_pack, pack_dataset
from vidgan.data.channels import detect_channels, is_grey, to_channels
from vidgan.errors import InputError

from .conftest import make_frames


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """Two frame folders of 6 colour frames (R and G gradients differ)."""
    root = tmp_path_factory.mktemp("colour")
    for v in range(2):
        make_frames(root / f"v{v}", 6, h=16, w=16)
    return str(root)


@pytest.fixture(scope="module")
def grey_folder(tmp_path_factory):
    """Moving MNIST as single-channel PNG frames (2 videos of 6 frames, 32x32)."""
    return make_moving_mnist(tmp_path_factory.mktemp("g") / "mm", videos=2, frames=6, digits=1, size=32, seed=2)


def test_bt601_luma_is_exact_on_grey_and_weighted_on_colour():
    v = np.arange(256, dtype=np.uint8)
    grey = np.repeat(v[:, None], 3, axis=1)                                   # [256, 3], R = G = B
    assert is_grey(grey) and np.array_equal(to_channels(grey, 1)[:, 0], v)
    prim = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]], np.uint8)
    assert not is_grey(prim)
    # 0.299 R + 0.587 G + 0.114 B, rounded
    assert to_channels(prim, 1)[:, 0].tolist() == [76, 150, 29, round(2.99 + 117.4 + 3.42)]
    assert to_channels(prim, 3) is prim


def test_a_moving_mnist_pack_records_grey_and_yields_one_channel(tmp_path):
    pack = make_moving_mnist(tmp_path / "mm.vidpack", videos=2, frames=6, digits=1, size=32, seed=2)
    assert open_pack(pack)[0]["channels"] == 1
    ds = VideoDataset(pack, frames=4, resolution=32)
    assert ds.channels == ds.source_channels == 1
    x = ds[(0, 5)]
    assert x.shape == (1, 4, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert "grey frames (1 channel)" in ds.summary()


def test_single_channel_pngs_are_probed_as_grey_and_colour_folders_as_colour(grey_folder, colour):
    assert Image.open(os.path.join(grey_folder, "video_00000", "frame_000.png")).mode == "L"
    grey = VideoDataset(grey_folder, frames=4, resolution=32, mode="eval")
    assert grey.channels == 1 and grey[0].shape == (1, 4, 32, 32)
    col = VideoDataset(colour, frames=4, resolution=16)
    assert col.channels == 3 and col[(0, 1)].shape == (3, 4, 16, 16)
    assert "colour frames (3 channels)" in col.summary()


def test_packs_of_folders_record_what_they_hold(tmp_path, grey_folder, colour):
    g = pack_dataset(grey_folder, tmp_path / "g.vidpack", resolution=32)["out"]
    c = pack_dataset(colour, tmp_path / "c.vidpack", resolution=16)["out"]
    assert open_pack(g)[0]["channels"] == 1 and open_pack(c)[0]["channels"] == 3
    # A pack written before the key existed is probed instead, with the same answer.
    for path, want in ((g, 1), (c, 3)):
        ds = VideoDataset(path, frames=4, resolution=open_pack(path)[0]["height"])
        assert detect_channels(ds.entries, {}, open_pack(path)[1]) == want


def test_channels_1_on_colour_converts_to_luma_and_says_so(colour):
    rgb = VideoDataset(colour, frames=4, resolution=16, channels=3)
    grey = VideoDataset(colour, frames=4, resolution=16, channels=1)
    assert grey.source_channels == 3 and grey.channels == 1
    a, b = rgb.fetch((1, 9))[0], grey.fetch((1, 9))[0]                     # uint8 [T, H, W, C], same draw
    assert b.shape == (4, 16, 16, 1) and np.array_equal(b, to_channels(a, 1))
    assert "colour frames converted to grey (ITU-R BT.601 luma) for a 1-channel model" in grey.summary()


def test_channels_3_on_grey_replicates(grey_folder):
    ds = VideoDataset(grey_folder, frames=4, resolution=32, mode="eval", channels=3)
    x = ds[0]
    assert x.shape == (3, 4, 32, 32) and (x[0] == x[1]).all() and (x[1] == x[2]).all()
    assert "grey frames replicated to 3 channels" in ds.summary()


@pytest.mark.parametrize("value", [2, 0, True, "1"])
def test_a_bad_channels_value_is_refused(colour, value):
    with pytest.raises(InputError, match=r"^channels=.* is not valid; use 1 \(grey\), 3 \(RGB\) or None \(detect\)\.$"):
        VideoDataset(colour, frames=4, resolution=16, channels=value)
