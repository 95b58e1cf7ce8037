import os

import numpy as np
import pytest

from vidgan.data import extract_frames, read_video
from vidgan.errors import DataError, InputError


def test_extract_round_trip(tmp_path, carphone):
    out = tmp_path / "frames"
    assert extract_frames(carphone, out) == 120
    names = sorted(os.listdir(out))
    assert names[0] == "frame_000000.png" and names[-1] == "frame_000119.png" and len(names) == 120
    assert np.array_equal(read_video(out), read_video(carphone))  # PNG is lossless
    with pytest.raises(InputError, match=r"frames already exists; pass overwrite=True"):
        extract_frames(carphone, out)
    assert sorted(os.listdir(tmp_path)) == ["frames"]


def test_extract_bad_video(tmp_path, carphone):
    data = open(carphone, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot decode video .*cut\.mp4"):
        extract_frames(tmp_path / "cut.mp4", tmp_path / "out")
    with pytest.raises(DataError, match=r"missing\.mp4 does not exist"):
        extract_frames(tmp_path / "missing.mp4", tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["cut.mp4"]  # nothing half-written
