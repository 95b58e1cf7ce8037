"""vidgan.export: formats, padding, streaming, atomic writes and every bad-input refusal."""
import os
import re
import struct
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.errors import InputError
from vidgan.export import contact_sheet, make_grid, to_uint8, upscale_nearest, write_image, write_video


# ----------------------------------------------------------------------------- helpers
def smooth_clip(t=12, h=32, w=48, seed=0):
    """uint8 [T, H, W, 3]: smooth moving gradients (codec-friendly, so decoded pixels stay close)."""
    ty, tx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    frames = []
    for k in range(t):
        r = 128 + 90 * np.sin((tx + 2 * k) * 2 * np.pi / 96)     # gentle slopes: a few levels per pixel
        g = 128 + 90 * np.cos((ty - k) * 2 * np.pi / 80)
        b = np.full_like(r, 60 + 8 * k + seed)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def read_back(path):
    """-> (meta, uint8 [T, H, W, 3]) decoded by the bundled ffmpeg."""
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])
    return meta, frames


def ffmpeg_stream_line(path):
    """The 'Stream ... Video: ...' line that `ffmpeg -i` prints for the file."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    text = out.stderr.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if "Video:" in ln]
    assert lines, text
    return lines[0]


def mp4_top_level_boxes(path):
    """Top-level ISO-BMFF box types in file order."""
    data = open(path, "rb").read()
    pos, kinds = 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        assert size >= 8, f"corrupt box at {pos}"
        kinds.append(kind.decode("latin-1"))
        pos += size
    assert pos == len(data)
    return kinds


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ----------------------------------------------------------------------------- MP4
def test_mp4_round_trip_h264_yuv420p_faststart(tmp_path):
    clip = smooth_clip(t=12, h=32, w=48)
    info = {}
    out = write_video(clip, tmp_path / "clip.mp4", fps=8, info=info)
    assert out == str(tmp_path / "clip.mp4") and listing(tmp_path) == ["clip.mp4"]
    meta, got = read_back(out)
    assert got.shape == clip.shape
    assert meta["fps"] == pytest.approx(8.0)
    assert meta["duration"] == pytest.approx(12 / 8, abs=0.01)
    assert np.abs(got.astype(int) - clip).mean() < 3.0
    line = ffmpeg_stream_line(out)
    assert re.search(r"Video: h264\b", line), line
    assert "yuv420p" in line and "48x32" in line and re.search(r"\b8 fps\b", line), line
    assert "bt709" in line, line                 # colour matrix tagged, so players do not guess it
    boxes = mp4_top_level_boxes(out)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat"), boxes
    assert info["frames"] == 12 and (info["width"], info["height"]) == (48, 32) and info["padded"] == (0, 0)


def test_fractional_fps_is_stored_exactly(tmp_path):
    out = write_video(smooth_clip(t=6, h=16, w=16), tmp_path / "ntsc.mp4", fps=24000 / 1001)
    assert "23.98 fps" in ffmpeg_stream_line(out)
    meta, got = read_back(out)
    assert len(got) == 6 and meta["fps"] == pytest.approx(23.976, abs=0.01)


@pytest.mark.parametrize("h,w", [(33, 47), (31, 64), (64, 31), (1, 1)])
def test_odd_sizes_are_padded_to_even_never_resized(tmp_path, h, w):
    clip = smooth_clip(t=4, h=max(h, 1), w=max(w, 1))
    info = {}
    out = write_video(clip, tmp_path / "odd.mp4", fps=10, info=info)
    ph, pw = h % 2, w % 2
    meta, got = read_back(out)
    assert meta["size"] == (w + pw, h + ph)
    assert got.shape == (4, h + ph, w + pw, 3)
    assert info["padded"] == (ph, pw) and (info["source_width"], info["source_height"]) == (w, h)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60).stderr.decode()
    assert (f"padded from {w}x{h} to {w + pw}x{h + ph} (edge)" in probe) == bool(ph or pw), probe
    if h > 8 and w > 8:   # the picture is where it was: not rescaled
        assert np.abs(got[:, :h, :w].astype(int) - clip).mean() < 4.0
        if pw:             # edge-replicated column repeats the last one
            assert np.abs(got[:, :h, w].astype(int) - got[:, :h, w - 1]).mean() < 6.0


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
@pytest.mark.parametrize("h,w", [(24, 32), (720, 1280)])
def test_saturated_colours_survive_at_small_and_hd_sizes(tmp_path, ext, h, w):
    colours = [(220, 40, 40), (40, 200, 60), (50, 60, 210), (230, 230, 230)]
    clip = np.zeros((2, h, w, 3), np.uint8)
    clip[:, :h // 2, :w // 2], clip[:, :h // 2, w // 2:], clip[:, h // 2:, :w // 2], clip[:, h // 2:, w // 2:] = colours
    _, got = read_back(write_video(clip, tmp_path / f"c{ext}", fps=4))
    for (y, x), want in zip([(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)],
                            colours):
        assert np.abs(got[:, y, x].astype(int) - want).max() <= 8, (y, x, got[0, y, x], want)


def test_sizes_not_multiple_of_16_keep_their_size(tmp_path):
    out = write_video(smooth_clip(t=3, h=50, w=70), tmp_path / "c.mp4", fps=5)
    assert read_back(out)[0]["size"] == (70, 50)


def test_black_padding(tmp_path):
    clip = np.full((3, 9, 9, 3), 200, np.uint8)
    out = write_video(clip, tmp_path / "b.mp4", fps=5, pad_mode="black", crf=0)
    _, got = read_back(out)
    assert got.shape == (3, 10, 10, 3)
    assert got[:, :8, :8].mean() > 190 and got[:, 9, :8].mean() < 20 and got[:, :8, 9].mean() < 20


# ----------------------------------------------------------------------------- other formats
def test_webm_is_vp9(tmp_path):
    clip = smooth_clip(t=6, h=32, w=32)
    out = write_video(clip, tmp_path / "clip.webm", fps=6)
    meta, got = read_back(out)
    assert meta["codec"] == "vp9" and got.shape == clip.shape
    assert "vp9" in ffmpeg_stream_line(out)
    assert np.abs(got.astype(int) - clip).mean() < 6.0


@pytest.mark.parametrize("fps,want_ms", [(10, [100] * 8), (16, [60, 60, 70, 60, 60, 70, 60, 60])])
def test_gif(tmp_path, fps, want_ms):
    clip = smooth_clip(t=8, h=21, w=30)           # odd sizes are fine for GIF: no padding
    info = {}
    out = write_video(clip, tmp_path / "clip.gif", fps=fps, info=info)
    frames, durations = [], []
    with Image.open(out) as im:
        assert im.format == "GIF" and im.size == (30, 21) and im.n_frames == 8
        for k in range(8):
            im.seek(k)
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("RGB")))
    assert durations == want_ms and sum(durations) == 8000 / fps   # centisecond delays, exact on average
    assert np.abs(np.stack(frames).astype(int) - clip).mean() < 4.0
    assert info["frames"] == 8 and info["padded"] == (0, 0) and listing(tmp_path) == ["clip.gif"]


@pytest.mark.parametrize("name", ["frames", "frames/"])
def test_png_folder_is_exact(tmp_path, name):
    clip = smooth_clip(t=4, h=7, w=9)          # odd sizes are fine for PNG
    out = write_video(clip, str(tmp_path / name), fps=10)
    assert out == str(tmp_path / "frames")
    files = listing(out)
    assert files == [f"frame_{k:06d}.png" for k in range(4)]
    got = np.stack([np.asarray(Image.open(os.path.join(out, f))) for f in files])
    np.testing.assert_array_equal(got, clip)
    assert listing(tmp_path) == ["frames"]


def test_png_folder_overwrite_replaces_old_frames(tmp_path):
    write_video(smooth_clip(t=5, h=8, w=8), tmp_path / "f", fps=5)
    with pytest.raises(InputError, match="overwrite"):
        write_video(smooth_clip(t=2, h=8, w=8), tmp_path / "f", fps=5, overwrite=False)
    write_video(smooth_clip(t=2, h=8, w=8), tmp_path / "f", fps=5)
    assert listing(tmp_path / "f") == ["frame_000000.png", "frame_000001.png"]
    assert listing(tmp_path) == ["f"]


def test_png_folder_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        write_video(smooth_clip(t=2, h=8, w=8), tmp_path / "f", fps=5)
    assert listing(tmp_path / "f") == ["notes.txt"] and listing(tmp_path) == ["f"]


# ----------------------------------------------------------------------------- input kinds
def test_iterator_input_streams_and_matches_array_input(tmp_path):
    clip = smooth_clip(t=10, h=16, w=24)
    pulled = []

    def frames():
        for k, f in enumerate(clip):
            pulled.append(k)
            # while streaming, only a hidden temp file with the same extension exists
            if k == 5:
                names = listing(tmp_path)
                assert len(names) == 1 and names[0].startswith(".it.mp4.tmp-") and names[0].endswith(".mp4")
            yield torch.from_numpy(f) if k % 2 else f

    out = write_video(frames(), tmp_path / "it.mp4", fps=10)
    assert pulled == list(range(10)) and listing(tmp_path) == ["it.mp4"]
    _, got = read_back(out)
    assert got.shape == clip.shape and np.abs(got.astype(int) - clip).mean() < 3.0


def test_torch_float_and_grayscale_inputs(tmp_path):
    clip = smooth_clip(t=3, h=8, w=8)
    x = torch.from_numpy(clip).float() / 127.5 - 1                    # [T, H, W, 3] in [-1, 1]
    write_video(x, tmp_path / "a", input_range=(-1, 1))
    write_video(x.numpy() * 0.5 + 0.5, tmp_path / "b", input_range="0,1")
    gray = clip[..., :1]                                              # [T, H, W, 1]
    write_video(gray, tmp_path / "g")
    for name, want in [("a", clip), ("b", clip), ("g", np.repeat(gray, 3, -1))]:
        got = np.stack([np.asarray(Image.open(tmp_path / name / f)) for f in listing(tmp_path / name)])
        assert np.abs(got.astype(int) - want).max() <= 1, name


def test_parent_folder_is_created_and_mode_follows_umask(tmp_path):
    out = write_video(smooth_clip(t=2, h=8, w=8), tmp_path / "a" / "b" / "clip.mp4", fps=4)
    assert os.path.isfile(out)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------- refusals
def _frames_then_other_size():
    yield np.zeros((8, 8, 3), np.uint8)
    yield np.zeros((8, 8, 3), np.uint8)
    yield np.zeros((8, 10, 3), np.uint8)


def _nan_later():
    yield np.zeros((8, 8, 3), np.float32)
    yield np.full((8, 8, 3), np.nan, np.float32)


BAD = {
    "rank 3": (np.zeros((8, 8, 3), np.uint8), {}, "shape"),
    "rank 5": (np.zeros((2, 3, 8, 8, 3), np.uint8), {}, "make_grid"),
    "2 channels": (np.zeros((3, 8, 8, 2), np.uint8), {}, "shape"),
    "4 channels": (np.zeros((3, 8, 8, 4), np.uint8), {}, "shape"),
    "NaN": (np.full((3, 8, 8, 3), np.nan, np.float32), {"input_range": (-1, 1)}, "NaN"),
    "Inf": (np.full((3, 8, 8, 3), np.inf, np.float32), {"input_range": (0, 1)}, "NaN or Inf"),
    "float without range": (np.zeros((3, 8, 8, 3), np.float32), {}, "input_range"),
    "uint8 with range": (np.zeros((3, 8, 8, 3), np.uint8), {"input_range": (-1, 1)}, "input_range"),
    "int64": (np.zeros((3, 8, 8, 3), np.int64), {}, "dtype"),
    "bool": (np.zeros((3, 8, 8, 3), bool), {}, "dtype"),
    "empty T": (np.zeros((0, 8, 8, 3), np.uint8), {}, "empty"),
    "zero height": (np.zeros((2, 0, 8, 3), np.uint8), {}, "1x1"),
    "empty iterator": (iter([]), {}, "empty"),
    "not frames": (42, {}, "iterable"),
    "a path": ("clip.mp4", {}, "frames is str"),
    "bad range": (np.zeros((3, 8, 8, 3), np.float32), {"input_range": (1, -1)}, "low < high"),
    "range text": (np.zeros((3, 8, 8, 3), np.float32), {"input_range": "minus one"}, "not a range"),
    "fps 0": (np.zeros((3, 8, 8, 3), np.uint8), {"fps": 0}, "fps"),
    "fps nan": (np.zeros((3, 8, 8, 3), np.uint8), {"fps": float("nan")}, "fps"),
    "crf": (np.zeros((3, 8, 8, 3), np.uint8), {"crf": 80}, "crf"),
    "pad mode": (np.zeros((3, 8, 8, 3), np.uint8), {"pad_mode": "mirror"}, "pad_mode"),
    "preset": (np.zeros((3, 8, 8, 3), np.uint8), {"preset": "turbo"}, "x264 preset"),
    "torch rank": (torch.zeros(8, 8, 3, dtype=torch.uint8), {}, "shape"),
    "torch NaN": (torch.full((2, 8, 8, 3), float("nan")), {"input_range": (-1, 1)}, "NaN"),
}


@pytest.mark.parametrize("ext", [".mp4", ".gif", ""])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_before_any_file_exists(tmp_path, case, ext):
    frames, kwargs, match = BAD[case]
    target = tmp_path / "sub" / f"clip{ext}"
    with pytest.raises(InputError, match=match):
        write_video(frames, target, **kwargs)
    assert listing(tmp_path) == []            # not even the parent folder was made


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ""])
@pytest.mark.parametrize("source,match", [(_frames_then_other_size, "same size"), (_nan_later, "NaN")])
def test_bad_later_frame_removes_the_temp_file(tmp_path, ext, source, match):
    kwargs = {"input_range": (0, 1)} if source is _nan_later else {}
    with pytest.raises(InputError, match=match):
        write_video(source(), tmp_path / f"clip{ext}", fps=5, **kwargs)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name,match", [("clip.avi", "unknown extension"), ("", "empty")])
def test_bad_paths(tmp_path, name, match):
    with pytest.raises(InputError, match=match):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), str(tmp_path / name) if name else "", fps=5)
    assert listing(tmp_path) == []


def test_folder_where_a_file_is_wanted_and_vice_versa(tmp_path):
    (tmp_path / "x.mp4").mkdir()
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(InputError, match="is a folder"):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "x.mp4")
    with pytest.raises(InputError, match="is a file"):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "plain")
    assert listing(tmp_path) == ["plain", "x.mp4"]


def test_overwrite_false_refuses_before_reading_frames(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"precious")
    pulled = []

    def frames():
        pulled.append(1)
        yield np.zeros((8, 8, 3), np.uint8)

    with pytest.raises(InputError, match="already exists"):
        write_video(frames(), target, overwrite=False)
    assert pulled == [] and target.read_bytes() == b"precious" and listing(tmp_path) == ["clip.mp4"]
    write_video(frames(), target)                        # default overwrite=True replaces it
    assert mp4_top_level_boxes(target)[0] == "ftyp"


# ----------------------------------------------------------------------------- interruptions
def _ffmpeg_children():
    """ffmpeg processes that are children of this test process (Linux /proc)."""
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"ffmpeg" in cmd:                  # running, or exited but not reaped
            found.append(pid)
    return found


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("ext", [".mp4", ".gif", ""])
def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path, exc, ext):
    target = tmp_path / f"clip{ext}"
    old = smooth_clip(t=2, h=8, w=8)
    write_video(old, target, fps=4)
    before = sorted(os.listdir(target)) if ext == "" else target.read_bytes()

    def frames():
        for f in smooth_clip(t=20, h=16, w=16):
            yield f
            if len(seen) == 5:
                raise exc("stop")
            seen.append(1)

    seen = []
    with pytest.raises(exc):
        write_video(frames(), target, fps=4)
    assert listing(tmp_path) == [f"clip{ext}"]
    after = sorted(os.listdir(target)) if ext == "" else target.read_bytes()
    assert after == before
    if os.path.isdir("/proc"):
        assert _ffmpeg_children() == []


# ----------------------------------------------------------------------------- helpers
def test_to_uint8_maps_the_range_and_layout():
    x = torch.zeros(2, 3, 4, 5, 6)                           # [N, C, T, H, W]
    x[:, 0] = -1.0
    x[:, 1] = 1.0
    x[:, 2] = 0.0
    x[1, 2, 3, 4, 5] = 7.0                                   # out of range: clipped
    y = to_uint8(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.uint8 and y.shape == (2, 4, 5, 6, 3)
    assert (y[..., 0] == 0).all() and (y[..., 1] == 255).all() and y[0, ..., 2].max() == 128
    assert y[1, 3, 4, 5, 2] == 255
    one = to_uint8(x[0].numpy())                             # [C, T, H, W] numpy -> [T, H, W, 3]
    np.testing.assert_array_equal(one, y[0])
    gray = to_uint8(torch.full((1, 2, 3, 3), 0.5), input_range=(0, 1))   # C = 1 -> RGB
    assert gray.shape == (2, 3, 3, 3) and (gray == 128).all()
    with pytest.raises(InputError, match="NaN"):
        to_uint8(torch.full((3, 2, 4, 4), float("nan")))
    with pytest.raises(InputError, match="C = 3"):
        to_uint8(torch.zeros(2, 2, 4, 4, 4))
    with pytest.raises(InputError, match="dtype"):
        to_uint8(torch.zeros(3, 2, 4, 4, dtype=torch.uint8))


def test_make_grid_places_clips_row_major():
    clips = np.stack([np.full((3, 4, 5, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    g = make_grid(clips, rows=2, cols=3, pad=1, pad_value=7)
    assert g.shape == (3, 2 * 4 + 3, 3 * 5 + 4, 3)
    for i in range(5):
        r, c = divmod(i, 3)
        tile = g[:, 1 + r * 5:1 + r * 5 + 4, 1 + c * 6:1 + c * 6 + 5]
        assert (tile == 10 * (i + 1)).all()
    assert (g[:, 6:10, 13:18] == 7).all()                    # the empty sixth tile
    assert (g[:, 0] == 7).all() and (g[:, :, 0] == 7).all()
    assert make_grid(torch.from_numpy(clips)).shape == (3, 2 * 4 + 3 * 2, 3 * 5 + 4 * 2, 3)
    with pytest.raises(InputError, match="cannot hold"):
        make_grid(clips, rows=2, cols=2)
    with pytest.raises(InputError, match="dtype"):
        make_grid(clips.astype(np.float32), 2, 3)


def test_contact_sheet_and_write_image(tmp_path):
    clips = np.zeros((2, 6, 4, 4, 3), np.uint8)
    for n in range(2):
        for t in range(6):
            clips[n, t] = 40 * n + t
    sheet = contact_sheet(clips, every=2, pad=1)
    assert sheet.shape == (2 * 4 + 3, 3 * 4 + 4, 3)
    for n in range(2):
        for j, t in enumerate([0, 2, 4]):
            assert (sheet[1 + n * 5:5 + n * 5, 1 + j * 5:5 + j * 5] == 40 * n + t).all()
    assert contact_sheet(clips[0], every=3, max_frames=1, pad=0).shape == (4, 4, 3)
    out = write_image(sheet, tmp_path / "sheets" / "sheet.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), sheet)
    assert listing(tmp_path / "sheets") == ["sheet.png"]
    with pytest.raises(InputError, match="already exists"):
        write_image(sheet, out, overwrite=False)
    with pytest.raises(InputError, match="extension"):
        write_image(sheet, tmp_path / "sheet.bmp")
    with pytest.raises(InputError, match="shape"):
        write_image(np.zeros((4, 4, 2), np.uint8), tmp_path / "x.png")
    assert listing(tmp_path) == ["sheets"]


def test_upscale_nearest():
    x = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    y = upscale_nearest(x, 3)
    assert y.shape == (2, 9, 12, 3)
    np.testing.assert_array_equal(y[:, ::3, ::3], x)
    np.testing.assert_array_equal(y, x.repeat(3, 1).repeat(3, 2))
    assert upscale_nearest(torch.from_numpy(x), 1).shape == x.shape
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="scale"):
            upscale_nearest(x, bad)


def test_ffmpeg_failure_is_an_error_and_leaves_no_file(tmp_path, monkeypatch):
    import vidgan.export.encode as encode

    monkeypatch.setattr(encode, "_encoder_args", lambda *a: ("libx264", "yuv420p", ["-no_such_option", "1"]))
    with pytest.raises(OSError):
        write_video(smooth_clip(t=30, h=64, w=64), tmp_path / "clip.mp4", fps=8)
    assert listing(tmp_path) == []


CTRL_C_SCRIPT = r"""
import sys, numpy as np
from vidgan.export import write_video

def frames():
    f = np.zeros((128, 128, 3), np.uint8)
    for k in range(100000):
        f[:] = k % 256
        yield f

write_video(frames(), sys.argv[1], fps=25)
"""


@pytest.mark.parametrize("ext", [".mp4", ""])
def test_real_ctrl_c_leaves_no_file(tmp_path, ext):
    import signal
    import sys
    import time

    from tests.conftest import ctrl_c_default

    target = tmp_path / "out" / f"long{ext}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(target)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=ctrl_c_default)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [n for n in listing(tmp_path / "out") if n.startswith(f".long{ext}.tmp-")]
            if temps and (ext == "" or os.path.getsize(tmp_path / "out" / temps[0]) > 0):
                break                                   # the encoder is busy writing
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"KeyboardInterrupt" in err, err.decode()
    assert listing(tmp_path / "out") == []


def test_export_is_a_leaf_package_with_its_public_names_at_the_top():
    import sys

    script = ("import sys, vidgan.export as e\n"
              "missing = [n for n in e.__all__ if not hasattr(e, n)]\n"
              "heavy = [m for m in sys.modules if m.startswith(('vidgan.models', 'vidgan.training', "
              "'vidgan.checkpoint', 'torch'))]\n"
              "print(missing, heavy)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
