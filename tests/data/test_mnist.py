import gzip
import json
import os
import struct

import numpy as np
import pytest

from vidgan.data import VideoDataset, make_moving_mnist, read_video
from vidgan.data.mnist import load_digits, read_idx_images
from vidgan.errors import InputError


def _videos(root):
    return {d: read_video(os.path.join(root, d)) for d in sorted(os.listdir(root)) if d.startswith("video_")}


def test_moving_mnist_folder_shapes_and_determinism(tmp_path):
    a = make_moving_mnist(tmp_path / "a", videos=3, frames=6, digits=2, seed=5)
    b = make_moving_mnist(tmp_path / "b", videos=3, frames=6, digits=2, seed=5)
    c = make_moving_mnist(tmp_path / "c", videos=3, frames=6, digits=2, seed=6)
    va, vb, vc = _videos(a), _videos(b), _videos(c)
    assert sorted(va) == ["video_00000", "video_00001", "video_00002"]
    assert sorted(os.listdir(os.path.join(a, "video_00000")))[0] == "frame_000.png"
    for name, v in va.items():
        assert v.shape == (6, 64, 64, 3)
        assert np.array_equal(v, vb[name])
        assert v.max() > 200 and (v == 0).mean() > 0.5  # bright digits on black
    assert any(not np.array_equal(va[n], vc[n]) for n in va)
    info = json.load(open(os.path.join(a, "moving_mnist.json")))
    assert info["digits"] == 2 and info["split"] == "train" and info["digit_images"] == 4000
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp leftovers


def test_digits_move_and_stay_inside():
    from vidgan.data.mnist import render_video

    pool = load_digits("train")
    v = render_video(np.random.default_rng(0), pool, frames=40, digits=1, size=64)
    ys, xs = [], []
    for f in v:
        yy, xx = np.nonzero(f)
        ys.append(yy.mean())
        xs.append(xx.mean())
    steps = np.hypot(np.diff(ys), np.diff(xs))
    assert steps.mean() > 1.0                      # it moves
    assert v[:, :, :].any(axis=(1, 2)).all()       # never leaves the canvas


def test_split_shares_no_digit_image():
    train, test = load_digits("train"), load_digits("test")
    assert len(train) == 4000 and len(test) == 1000
    seen = {img.tobytes() for img in train}
    assert not any(img.tobytes() in seen for img in test)


def test_digit_labels_come_with_the_same_images(tmp_path):
    images, labels = load_digits("test", labels=True)
    assert np.array_equal(images, load_digits("test")) and labels.shape == (1000,)
    assert np.bincount(labels, minlength=10).min() > 50            # every class, in its share
    with pytest.raises(InputError, match="labels are known only"):
        load_digits("train", mnist=str(tmp_path / "x-idx3-ubyte"), labels=True)


def test_moving_mnist_pack_equals_folder(tmp_path):
    folder = make_moving_mnist(tmp_path / "mm", videos=2, frames=5, digits=1, seed=1, split="test")
    pack = make_moving_mnist(tmp_path / "mm.vidpack", videos=2, frames=5, digits=1, seed=1, split="test")
    ds_f = VideoDataset(folder, frames=5, resolution=64, mode="eval")
    ds_p = VideoDataset(pack, frames=5, resolution=64, mode="eval")
    assert ds_f.clip_list == ds_p.clip_list == [("video_00000", 0), ("video_00001", 0)]
    for i in range(2):
        assert np.array_equal(ds_f[i].numpy(), ds_p[i].numpy())


def test_moving_mnist_refuses_overwrite(tmp_path):
    out = make_moving_mnist(tmp_path / "mm", videos=1, frames=2, digits=1)
    with pytest.raises(InputError, match="already exists.*overwrite"):
        make_moving_mnist(out, videos=1, frames=2, digits=1)
    make_moving_mnist(out, videos=2, frames=2, digits=1, overwrite=True)
    assert len(_videos(out)) == 2


def _write_idx(path, images, gz):
    data = b"\0\0\x08\x03" + struct.pack(">III", *images.shape) + images.tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_file(tmp_path, gz):
    imgs = load_digits("test")[:10]
    path = tmp_path / ("imgs.idx.gz" if gz else "imgs.idx")
    _write_idx(path, imgs, gz)
    assert np.array_equal(read_idx_images(path), imgs)
    assert len(load_digits("train", mnist=path)) == 8 and len(load_digits("test", mnist=path)) == 2
    out = make_moving_mnist(tmp_path / "mm", videos=1, frames=3, digits=1, mnist=path)
    assert _videos(out)["video_00000"].shape == (3, 64, 64, 3)


def test_bad_idx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "labels.idx"
    bad.write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 20) + bytes(range(20)))
    with pytest.raises(InputError, match="labels.idx.*not uint8 images"):
        make_moving_mnist(tmp_path / "mm", videos=1, mnist=bad)
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"hello world")
    with pytest.raises(InputError, match="junk.gz is not an IDX file"):
        read_idx_images(junk)
    with pytest.raises(InputError, match="does not exist"):
        read_idx_images(tmp_path / "missing")
    two = tmp_path / "two.idx"
    _write_idx(two, load_digits("test")[:2], gz=False)
    with pytest.raises(InputError, match=r"two.idx holds 2 images, which leaves none for the test split"):
        make_moving_mnist(tmp_path / "mm", videos=1, split="test", mnist=two)
    assert not (tmp_path / "mm").exists()
