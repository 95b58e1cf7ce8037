import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from vidgan.data import VideoDataset
from vidgan.data.decode import decode_video, ffmpeg_exe, prepare_frames, to_model_range
from vidgan.errors import DataError, InputError

from .conftest import make_frames, write_png16


def _codes(clip):
    """Frame codes (centre patch / 10) of a float clip [3, T, H, W] from coded frames."""
    h, w = clip.shape[-2:]
    return [round(float((v + 1) * 127.5) / 10) for v in clip[0, :, h // 2, w // 2]]


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / "root"
    make_frames(root / "a", 20, 16, 16)
    make_frames(root / "b", 12, 16, 16)
    make_frames(root / "c" / "nested", 30, 16, 16)
    return root


def test_frame_folders_shapes_range_and_order(folders):
    ds = VideoDataset(folders, frames=8, resolution=16)
    assert len(ds) == 3 and [e.name for e in ds.entries] == ["a", "b", "c/nested"]
    x = ds[(0, 7)]
    assert x.shape == (3, 8, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9
    codes = _codes(x)
    assert codes == list(range(codes[0], codes[0] + 8))  # consecutive frames in natural order
    assert "3 usable video(s)" in ds.summary()


def test_stride_takes_every_kth_frame(folders):
    with pytest.warns(UserWarning, match=r"b: too short: 12 frame\(s\), a clip needs 13 \(frames=5, stride=3\)"):
        ds = VideoDataset(folders, frames=5, resolution=16, stride=3)
    assert ds.span == 13 and len(ds) == 2  # b (12 frames) is too short for a 13-frame span
    codes = _codes(ds[(0, 1)])
    assert np.diff(codes).tolist() == [3, 3, 3, 3]


def test_train_keys_are_deterministic(folders):
    a = VideoDataset(folders, frames=8, resolution=16)
    b = VideoDataset(folders, frames=8, resolution=16, seed=99)
    for key in [(0, 1), (2, 5), (1, 123456789)]:
        assert torch.equal(a[key], b[key])
    starts = {_codes(a[(2, s)])[0] for s in range(20)}
    assert len(starts) > 3  # random start within the 30-frame video
    assert max(starts) <= 30 - 8


def test_eval_clip_list_is_documented_and_deterministic(folders):
    ds = VideoDataset(folders, frames=8, resolution=16, mode="eval")
    assert ds.clip_list == [("a", 0), ("a", 8), ("b", 0), ("c/nested", 0), ("c/nested", 8), ("c/nested", 16)]
    assert len(ds) == 6
    assert _codes(ds[4]) == list(range(8, 16))
    again = VideoDataset(folders, frames=8, resolution=16, mode="eval")
    assert all(torch.equal(ds[i], again[i]) for i in range(len(ds)))
    n = VideoDataset(folders, frames=8, resolution=16, mode="eval", eval_clips=7, seed=3)
    assert len(n) == 7 and n.clip_list == VideoDataset(folders, frames=8, resolution=16, mode="eval",
                                                       eval_clips=7, seed=3).clip_list
    assert {name for name, _ in n.clip_list} == {"a", "b", "c/nested"}  # videos used evenly
    other = VideoDataset(folders, frames=8, resolution=16, mode="eval", eval_clips=7, seed=4)
    assert other.clip_list != n.clip_list


def test_hflip_is_identical_across_frames(folders):
    plain = VideoDataset(folders, frames=8, resolution=16)
    flip = VideoDataset(folders, frames=8, resolution=16, hflip=True)
    flipped = 0
    for s in range(12):
        x, y = plain[(0, s)], flip[(0, s)]
        if torch.equal(x, y):
            continue
        assert torch.equal(y, x.flip(-1))  # every frame flipped the same way
        flipped += 1
    assert 0 < flipped < 12


def test_too_short_videos_are_skipped_and_reported_once(tmp_path):
    root = tmp_path / "r"
    make_frames(root / "long", 20, 8, 8)
    make_frames(root / "short1", 5, 8, 8)
    make_frames(root / "short2", 3, 8, 8)
    with pytest.warns(UserWarning, match=r"(?s)2 file\(s\).*short1: too short: 5 frame\(s\), a clip needs 8") as rec:
        ds = VideoDataset(root, frames=8, resolution=8)
    assert len([w for w in rec if "vidgan.data" in str(w.message)]) == 1
    assert len(ds) == 1 and ds.too_short == 2
    assert set(map(os.path.basename, ds.skipped)) == {"short1", "short2"}
    assert "2 too short (need 8 frames)" in ds.summary()


def test_all_too_short_is_one_clear_error(tmp_path):
    make_frames(tmp_path / "r" / "s1", 5, 8, 8)
    make_frames(tmp_path / "r" / "s2", 3, 8, 8)
    with pytest.raises(DataError, match=r"found 2 video\(s\), 2 too short \(s1, s2\) and 0 unreadable; "
                                        r"a clip needs 16 frames \(frames=16, stride=1\)"):
        VideoDataset(tmp_path / "r", frames=16, resolution=8)


def test_missing_empty_and_imageless_roots(tmp_path):
    with pytest.raises(DataError, match=r"data root .*nope does not exist"):
        VideoDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data root .*empty is empty"):
        VideoDataset(tmp_path / "empty")
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"no image frames .* or video files .* found under .*docs"):
        VideoDataset(tmp_path / "docs")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"x\.txt is not a video file"):
        VideoDataset(tmp_path / "x.txt")


def test_bad_arguments(folders):
    with pytest.raises(InputError, match="mode="):
        VideoDataset(folders, mode="test")
    with pytest.raises(InputError, match="frames=0"):
        VideoDataset(folders, frames=0)
    with pytest.raises(InputError, match="eval_clips=0"):
        VideoDataset(folders, mode="eval", eval_clips=0)


def test_text_file_renamed_png_is_skipped_at_indexing(tmp_path):
    root = tmp_path / "r"
    make_frames(root / "good", 10, 8, 8)
    bad = make_frames(root / "bad", 10, 8, 8)
    os.remove(os.path.join(bad, "frame_4.png"))
    with open(os.path.join(bad, "frame_4.png"), "w") as fh:
        fh.write("not a png at all, just text")
    with pytest.warns(UserWarning, match=r"bad: frame frame_4\.png is unreadable \(not a PNG file"):
        ds = VideoDataset(root, frames=4, resolution=8)
    assert [e.name for e in ds.entries] == ["good"]
    shutil.rmtree(root / "good")
    with pytest.raises(DataError, match=r"found 1 video\(s\), 0 too short and 1 unreadable \(bad: frame "
                                        r"frame_4\.png is unreadable"):
        VideoDataset(root, frames=4, resolution=8)


def test_mixed_frame_sizes_are_skipped(tmp_path):
    root = tmp_path / "r"
    make_frames(root / "ok", 10, 8, 8)
    mixed = make_frames(root / "mixed", 10, 8, 8)
    make_frames(mixed, 1, 12, 10, start=7)  # frame_7 becomes 10x12
    with pytest.warns(UserWarning, match=r"mixed: frames of mixed sizes \(frame_0\.png is 8x8, frame_7\.png "
                                         r"is 10x12\); the whole video is skipped"):
        ds = VideoDataset(root, frames=4, resolution=8)
    assert [e.name for e in ds.entries] == ["ok"]


def test_one_frame_gif_is_too_short(tmp_path, carphone):
    root = tmp_path / "r"
    root.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "one.gif")
    shutil.copy(carphone, root / "car.mp4")
    with pytest.warns(UserWarning, match=r"one\.gif: too short: 1 frame\(s\), a clip needs 4"):
        ds = VideoDataset(root, frames=4, resolution=16)
    assert [e.name for e in ds.entries] == ["car.mp4"]
    os.remove(root / "car.mp4")
    with pytest.raises(DataError, match=r"1 too short \(one\.gif\)"):
        VideoDataset(root, frames=4, resolution=16)


def test_16bit_png_frames_load_like_8bit(tmp_path):
    rng = np.random.default_rng(0)
    v8 = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.uint16)
    for t in range(6):
        write_png16_path = tmp_path / "v16" / f"f{t}.png"
        write_png16_path.parent.mkdir(exist_ok=True)
        write_png16(write_png16_path, v8[t] * 257)
        (tmp_path / "v8").mkdir(exist_ok=True)
        Image.fromarray(v8[t].astype(np.uint8)).save(tmp_path / "v8" / f"f{t}.png")
    a = VideoDataset(tmp_path / "v16", frames=6, resolution=8, mode="eval")
    b = VideoDataset(tmp_path / "v8", frames=6, resolution=8, mode="eval")
    assert torch.equal(a[0], b[0])


def test_single_video_file_root_and_mixed_root(tmp_path, carphone):
    ds = VideoDataset(carphone, frames=8, resolution=32, stride=2)
    assert len(ds) == 1 and ds.entries[0].kind == "file"
    full = prepare_frames(decode_video(carphone), 32)
    key = (0, 11)
    x = ds[key]
    start = int(np.random.default_rng(11).integers(0, 120 - ds.span + 1))
    assert torch.equal(x, to_model_range(full[start:start + ds.span:2]))
    # the seek path (no cache) gives the same pixels
    nocache = VideoDataset(carphone, frames=8, resolution=32, stride=2, cache_bytes=0)
    assert torch.equal(nocache[key], x)
    root = tmp_path / "mix"
    make_frames(root / "frames", 10, 20, 20)
    shutil.copy(carphone, root / "car.mp4")
    mix = VideoDataset(root, frames=8, resolution=16)
    assert sorted(e.kind for e in mix.entries) == ["file", "frames"]
    assert mix[(0, 0)].shape == mix[(1, 0)].shape == (3, 8, 16, 16)


def test_keep_aspect_pads_wide_video(bikes):
    ds = VideoDataset(bikes, frames=2, resolution=32, keep_aspect=True, mode="eval", eval_clips=1)
    x = ds[0]  # 640x272 -> 32x14 inside 32x32, black bars above and below
    assert x.shape == (3, 2, 32, 32)
    assert (x[:, :, :9] == -1).all() and (x[:, :, -9:] == -1).all() and x[:, :, 12:20].std() > 0.05


def _truncated_faststart(src, dst, frac=0.3):
    """An mp4 whose index (moov) is intact but whose frame data is cut: readable headers, missing frames."""
    tmp = str(dst) + ".full.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", src, "-c", "copy", "-movflags", "+faststart", tmp],
                   check=True)
    data = open(tmp, "rb").read()
    open(dst, "wb").write(data[: int(len(data) * frac)])
    os.remove(tmp)


def test_truncated_mp4(tmp_path, carphone):
    root = tmp_path / "r"
    make_frames(root / "good", 40, 16, 16)
    data = open(carphone, "rb").read()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov lost: caught at indexing
    _truncated_faststart(carphone, root / "late.mp4")       # 32 frames indexed, 31 decodable
    with pytest.warns(UserWarning, match=r"cut\.mp4: unreadable video"):
        ds = VideoDataset(root, frames=16, resolution=16, mode="eval")
    assert [e.name for e in ds.entries] == ["good", "late.mp4"]
    assert ds.clip_list[-1] == ("late.mp4", 16)
    with pytest.warns(UserWarning, match=r"late\.mp4: unreadable at load time.*replaced by another clip"):
        x = ds[len(ds) - 1]
    assert torch.equal(x, ds[0])  # replaced by the next clip of the list (wraps to the first)
    assert "replaced" in ds.skipped[str(root / "late.mp4")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[len(ds) - 1]  # reported once only


def test_a_damaged_frame_in_the_only_video_does_not_stop_training_clips(tmp_path):
    folder = make_frames(tmp_path / "r" / "v", 12, 16, 16)
    damaged = os.path.join(folder, "frame_9.png")
    with open(damaged, "rb") as fh:
        head = fh.read(40)  # the header survives, the pixels do not
    with open(damaged, "wb") as fh:
        fh.write(head)
    ds = VideoDataset(tmp_path / "r", frames=4, resolution=16, seed=0)
    with pytest.warns(UserWarning, match=r"v: unreadable at load time"):
        clips = [ds[(0, s)] for s in range(100)]  # 3 of 9 starts touch frame 9
    assert all(c.shape == (3, 4, 16, 16) for c in clips)
    for name in os.listdir(folder):  # every frame damaged: the error counts the tries it made
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(head)
    ds = VideoDataset(tmp_path / "r", frames=4, resolution=16, seed=0)
    with pytest.raises(DataError, match=r"could not load any clip from .* after 64 tries"):
        ds.fetch((0, 1))


def test_only_unreadable_videos_get_the_right_advice(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match=r"0 too short and 1 unreadable \(junk\.mp4: .*\); replace the "
                                        r"unreadable videos or point to other data\.$"):
        VideoDataset(tmp_path / "r", frames=4, resolution=8)


def test_symlink_loops_and_run_folders_are_not_data(tmp_path):
    from vidgan.data.discover import RUN_MARKER, index_videos
    from vidgan.training.config import RUN_CONFIG_NAME

    assert RUN_MARKER == RUN_CONFIG_NAME
    make_frames(tmp_path / "r" / "v1", 6, 8, 8)
    os.symlink("..", tmp_path / "r" / "v1" / "up")  # a loop back to the root
    run = tmp_path / "r" / "run"
    (run / "samples").mkdir(parents=True)
    (run / RUN_MARKER).write_text("{}")
    make_frames(run / "samples" / "step-1", 6, 8, 8)
    entries, skipped = index_videos(tmp_path / "r")
    assert [e.name for e in entries] == ["v1"]
    assert list(skipped) == [str(run)] and "vidgan run folder" in skipped[str(run)]


def test_frame_names_that_sort_alike_keep_one_order(tmp_path):
    from vidgan.data.discover import index_videos

    folder = tmp_path / "v"
    folder.mkdir()
    for name in ("frame_01.png", "frame_1.png", "frame_2.png"):
        Image.new("RGB", (4, 4)).save(folder / name)
    (entry,), _ = index_videos(folder)
    assert [os.path.basename(p) for p in entry.frames] == ["frame_01.png", "frame_1.png", "frame_2.png"]
