import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.data.decode import decode_image, natural_key, prepare_frames, probe_video, read_video, to_model_range
from vidgan.errors import DataError

from .conftest import coded_frame, make_frames, write_png16


def test_natural_sort():
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "Frame_3.png", "frame_100.png", "a9b", "a10b"]
    assert sorted(names, key=natural_key) == ["a9b", "a10b", "frame_1.png", "frame_2.png", "Frame_3.png",
                                              "frame_10.png", "frame_100.png"]


def test_frame_folder_is_natural_sorted(tmp_path):
    folder = make_frames(tmp_path / "v", 12, h=16, w=16)  # frame_0 ... frame_11, unpadded
    v = read_video(folder)
    assert v.shape == (12, 16, 16, 3) and v.dtype == np.uint8
    assert [int(f[8, 8, 0]) for f in v] == [10 * t for t in range(12)]


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "RGB"])
def test_modes_become_rgb(tmp_path, mode):
    rgb = coded_frame(3, 10, 12)
    img = Image.fromarray(rgb).convert(mode)
    img.save(tmp_path / "x.png")
    out = decode_image(tmp_path / "x.png")
    assert out.shape == (10, 12, 3) and out.dtype == torch.uint8
    expect = np.asarray(img.convert("RGB"))
    assert np.array_equal(out.numpy(), expect)


@pytest.mark.parametrize("ext", ["jpg", "webp", "bmp"])
def test_other_formats(tmp_path, ext):
    rgb = coded_frame(1, 16, 16)
    Image.fromarray(rgb).save(tmp_path / f"x.{ext}", quality=95) if ext != "bmp" else \
        Image.fromarray(rgb).save(tmp_path / f"x.{ext}")
    out = decode_image(tmp_path / f"x.{ext}").numpy().astype(int)
    assert out.shape == (16, 16, 3)
    assert np.abs(out - rgb).mean() < (0.5 if ext == "bmp" else 8)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_scaled_to_8bit(tmp_path, channels):
    rng = np.random.default_rng(channels)
    arr = rng.integers(0, 65536, (6, 7, channels)).astype(np.uint16)
    arr[0, 0] = 65535
    arr[0, 1] = 257 * 100
    write_png16(tmp_path / "x16.png", arr)
    out = decode_image(tmp_path / "x16.png").numpy().astype(int)
    rgb = arr[..., :3] if channels >= 3 else np.repeat(arr, 3, axis=-1)
    assert np.array_equal(out, np.round(rgb / 257.0).astype(int))
    assert (out[0, 0] == 255).all() and (out[0, 1] == 100).all()


def test_text_file_renamed_png_is_a_clear_error(tmp_path):
    (tmp_path / "fake.png").write_text("this is not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*fake\.png.*delete or replace"):
        decode_image(tmp_path / "fake.png")


def test_read_video_file(carphone):
    v = read_video(carphone)
    assert v.shape == (120, 144, 176, 3) and v.dtype == np.uint8
    assert probe_video(carphone)[:3] == (120, 176, 144)


@pytest.mark.parametrize("stream, fps", [
    ("Stream #0:0: Video: vp9 (Profile 0), yuv420p(tv), 320x240, SAR 1:1 DAR 4:3, 29.97 tbr, 1k tbn", 29.97),
    ("Stream #0:0: Video: h264, yuv420p, 176x144, 12 fps, 12 tbr, 12288 tbn", 12.0),
    ("Stream #0:0: Video: vp9, yuv420p, 320x240", 25.0),
])
def test_probe_reads_the_rate_off_the_stream_line(monkeypatch, stream, fps):
    import subprocess

    import vidgan.data.decode as decode

    err = f"Input #0, matroska,webm, from 'v.webm':\n  {stream}\nframe=  300 fps=0.0 q=-1.0 Lsize=N/A\n"
    monkeypatch.setattr(decode.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, b"", err.encode()))
    assert probe_video("v.webm") == (300, 320 if "320" in stream else 176, 240 if "320" in stream else 144, fps)


def test_truncated_mp4_is_a_clear_error(tmp_path, carphone):
    data = open(carphone, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end is lost
    with pytest.raises(DataError, match=r"cannot read video .*cut\.mp4"):
        probe_video(tmp_path / "cut.mp4")
    with pytest.raises(DataError, match=r"cut\.mp4"):
        read_video(tmp_path / "cut.mp4")


def test_read_video_bad_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image frames"):
        read_video(tmp_path / "empty")


def test_prepare_frames_crop_and_resize():
    clip = torch.from_numpy(np.stack([coded_frame(t, 48, 80) for t in range(5)]))  # [5, 48, 80, 3]
    out = prepare_frames(clip, 24)
    assert out.shape == (5, 24, 24, 3) and out.dtype == torch.uint8
    # batched resize equals frame-by-frame resize
    single = torch.cat([prepare_frames(clip[t:t + 1], 24) for t in range(5)])
    assert torch.equal(out, single)
    # frame order and flat content survive the resize
    flat = torch.arange(5, dtype=torch.uint8).mul(10).view(5, 1, 1, 1).expand(5, 48, 80, 3)
    assert [int(f.min()) for f in prepare_frames(flat, 24)] == [int(f.max()) for f in prepare_frames(flat, 24)] \
        == [10 * t for t in range(5)]
    same = prepare_frames(clip[:, :, 16:64], 48)
    assert torch.equal(same, clip[:, :, 16:64])


def test_prepare_frames_keep_aspect_pads():
    clip = np.full((2, 20, 40, 3), 200, np.uint8)
    out = prepare_frames(clip, 16, keep_aspect=True)  # 40 -> 16 wide, 20 -> 8 high, padded to 16
    assert out.shape == (2, 16, 16, 3)
    assert (out[:, :4] == 0).all() and (out[:, 12:] == 0).all() and (out[:, 4:12] == 200).all()


def test_to_model_range_and_flip():
    clip = torch.from_numpy(np.stack([coded_frame(t, 8, 8) for t in range(3)]))
    x = to_model_range(clip)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose((x + 1) * 127.5, clip.permute(3, 0, 1, 2).float())
    assert torch.equal(to_model_range(clip, hflip=True), x.flip(-1))
