import json
import os
import shutil

import numpy as np
import pytest
import torch

from vidgan.data import VideoDataset, open_pack, pack_dataset, prepare_frames, read_video
from vidgan.data.pack import read_index
from vidgan.errors import DataError, InputError

from .conftest import make_frames


@pytest.fixture(scope="module")
def source(tmp_path_factory, carphone):
    root = tmp_path_factory.mktemp("src")
    make_frames(root / "wide", 20, 24, 40)
    make_frames(root / "small", 18, 16, 16)
    shutil.copy(carphone, root / "car.mp4")
    return root


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_pack_round_trip_is_pixel_identical(tmp_path, source, keep_aspect):
    out = tmp_path / "d.vidpack"
    summary = pack_dataset(source, out, resolution=32, keep_aspect=keep_aspect)
    assert summary["videos"] == 3 and summary["frames"] == 20 + 18 + 120 and summary["skipped"] == {}
    assert summary["bytes"] == os.path.getsize(out)
    index, frames = open_pack(out)
    assert isinstance(frames, np.memmap) and frames.shape == (158, 32, 32, 3)
    assert [v["name"] for v in index["videos"]] == ["car.mp4", "small", "wide"]
    assert index["version"] == 1 and index["keep_aspect"] == keep_aspect and len(index["source"]["fingerprint"]) == 16
    for v in index["videos"]:
        expect = prepare_frames(read_video(source / v["name"]), 32, keep_aspect).numpy()
        got = frames[v["offset"]:v["offset"] + v["length"]]
        assert np.array_equal(got, expect), v["name"]
    # the dataset reads the same clips from the pack as from the sources
    a = VideoDataset(out, frames=8, resolution=32, stride=2)
    b = VideoDataset(source, frames=8, resolution=32, stride=2, keep_aspect=keep_aspect)
    assert [e.name for e in a.entries] == [e.name for e in b.entries]
    for key in [(0, 5), (1, 6), (2, 7)]:
        assert torch.equal(a[key], b[key])
    assert "packed" in a.summary()


def test_pack_is_atomic_and_refuses_overwrite(tmp_path, source):
    out = tmp_path / "d.vidpack"
    pack_dataset(source / "small", out, resolution=16)
    with pytest.raises(InputError, match=r"d\.vidpack already exists; pass overwrite=True"):
        pack_dataset(source / "small", out, resolution=16)
    pack_dataset(source / "wide", out, resolution=16, overwrite=True)
    assert read_index(out)["videos"][0]["length"] == 20
    assert sorted(os.listdir(tmp_path)) == ["d.vidpack"]  # no temporary leftovers
    with pytest.raises(InputError, match=r"should end with \.vidpack"):
        pack_dataset(source, tmp_path / "d.bin")
    with pytest.raises(InputError, match="already a vidpack"):
        pack_dataset(out, tmp_path / "e.vidpack")
    with pytest.raises(DataError, match="does not exist"):
        pack_dataset(tmp_path / "missing", tmp_path / "f.vidpack")
    assert sorted(os.listdir(tmp_path)) == ["d.vidpack"]


def test_pack_skips_unreadable_and_fails_when_nothing_is_left(tmp_path, carphone):
    root = tmp_path / "r"
    make_frames(root / "ok", 5, 8, 8)
    data = open(carphone, "rb").read()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])
    summary = pack_dataset(root, tmp_path / "a.vidpack", resolution=8)
    assert summary["videos"] == 1 and list(map(os.path.basename, summary["skipped"])) == ["cut.mp4"]
    shutil.rmtree(root / "ok")
    with pytest.raises(DataError, match=r"nothing to pack under .*cut\.mp4: unreadable video"):
        pack_dataset(root, tmp_path / "b.vidpack", resolution=8)
    assert not (tmp_path / "b.vidpack").exists()


def test_damaged_or_mismatched_pack_is_a_clear_error(tmp_path, source):
    out = tmp_path / "d.vidpack"
    pack_dataset(source / "small", out, resolution=16)
    with pytest.raises(DataError, match=r"holds 16x16 frames but resolution=64 was asked; train at 16 or re-pack"):
        VideoDataset(out, frames=4, resolution=64)
    data = open(out, "rb").read()
    (tmp_path / "cut.vidpack").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.vidpack is truncated or damaged"):
        VideoDataset(tmp_path / "cut.vidpack", frames=4, resolution=16)
    (tmp_path / "junk.vidpack").write_text("hello")
    with pytest.raises(DataError, match=r"junk\.vidpack is not a vidpack file"):
        VideoDataset(tmp_path / "junk.vidpack", frames=4, resolution=16)
    index = read_index(out)
    assert json.loads(json.dumps(index)) == index and index["total_frames"] == 18


def _with_index(pack, out, edit):
    """Copy `pack` to `out` with its JSON index replaced by edit(index)."""
    import struct

    data = open(pack, "rb").read()
    pos, n = struct.unpack("<QQ", data[8:24])
    blob = json.dumps(edit(json.loads(data[pos:pos + n]))).encode()
    out.write_bytes(data[:8] + struct.pack("<QQ", pos, len(blob)) + data[24:pos] + blob)
    return out


@pytest.mark.parametrize("edit, words", [
    (lambda ix: [1, 2], "a JSON list, not an object"),
    (lambda ix: {"version": ix["version"]}, "height is None, not a count"),
    (lambda ix: {**ix, "total_frames": "18"}, "total_frames is '18', not a count"),
    (lambda ix: {**ix, "videos": None}, "it has no list of videos"),
    (lambda ix: {**ix, "videos": [{"name": "v", "offset": 0}]}, "video 0 lacks a name, offset or length"),
    (lambda ix: {**ix, "videos": [{"name": "v", "offset": 10, "length": 50}]},
     "video 'v' runs to frame 60 of 18 stored"),
])
def test_a_damaged_index_is_named(tmp_path, source, edit, words):
    good = pack_dataset(source / "small", tmp_path / "good.vidpack", resolution=16)["out"]
    bad = _with_index(good, tmp_path / "bad.vidpack", edit)
    with pytest.raises(DataError, match=r"bad\.vidpack has a damaged index \(" + words.replace("(", r"\(")):
        VideoDataset(bad, frames=4, resolution=16)


def test_short_videos_in_a_pack_are_named(tmp_path):
    root = tmp_path / "r"
    make_frames(root / "long", 12, 8, 8)
    make_frames(root / "short", 4, 8, 8)
    pack_dataset(root, tmp_path / "p.vidpack", resolution=8)
    with pytest.warns(UserWarning, match=r"p\.vidpack#short: too short: 4 frame\(s\), a clip needs 6"):
        ds = VideoDataset(tmp_path / "p.vidpack", frames=6, resolution=8)
    assert [e.name for e in ds.entries] == ["long"] and list(ds.skipped) == [str(tmp_path / "p.vidpack#short")]
