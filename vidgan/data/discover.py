"""Finding the videos under a root: frame folders, video files, or both.

A *video* is either a folder holding image frames (ordered by natural sort) or one video
file. The root may be a single video file, a single frame folder, or a tree mixing both;
hidden files and other extensions are ignored. Indexing reads only headers (image headers,
an ffmpeg stream copy for video files), so it stays cheap; what cannot be read here is
reported in `skipped` and left out.
"""
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vidgan.data.decode import IMAGE_EXTS, VIDEO_EXTS, natural_key, probe_video
from vidgan.errors import DataError

RUN_MARKER = "train_config.json"  # vidgan.training.config.RUN_CONFIG_NAME: the file every run folder holds


@dataclass
class VideoEntry:
    """One usable video: `name` is its path relative to the root (posix), `kind` 'frames' or 'file'."""
    name: str
    path: str
    kind: str
    length: int            # number of frames
    width: int
    height: int
    fps: float = 25.0
    frames: tuple = ()     # frame file paths (kind == 'frames'), natural-sorted
    offset: int = 0        # first frame in the packed file (kind == 'packed')


_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def image_size(path):
    """(width, height) from an image header, without decoding pixels. Raises ValueError if unreadable."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if path.lower().endswith(".png"):
        if len(head) < 24 or head[:8] != _PNG_SIG or head[12:16] != b"IHDR":
            raise ValueError("not a PNG file (bad header)")
        return struct.unpack(">II", head[16:24])
    if not head:
        raise ValueError("the file is empty")
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:  # PIL raises several types for junk input
        raise ValueError(f"not a readable image ({type(exc).__name__})") from None


def _rel(path, root):
    rel = os.path.relpath(path, root)
    return os.path.basename(path) if rel == "." else rel.replace(os.sep, "/")


def _index_frames(folder, names, root, skipped):
    paths = tuple(os.path.join(folder, n) for n in sorted(names, key=lambda n: (natural_key(n), n)))
    sizes = {}
    for p in paths:
        try:
            size = image_size(p)
        except (OSError, ValueError) as exc:
            skipped[folder] = f"frame {os.path.basename(p)} is unreadable ({exc}); the whole video is skipped"
            return None
        sizes.setdefault(size, p)
    if len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        skipped[folder] = (f"frames of mixed sizes ({os.path.basename(p1)} is {s1[0]}x{s1[1]}, "
                           f"{os.path.basename(p2)} is {s2[0]}x{s2[1]}); the whole video is skipped")
        return None
    (w, h), = sizes.keys()
    return VideoEntry(_rel(folder, root), folder, "frames", len(paths), w, h, frames=paths)


def _probe_file(path, root):
    """(VideoEntry, None) for a readable video file, else (None, reason)."""
    try:
        n, w, h, fps = probe_video(path)
    except DataError as exc:
        return None, getattr(exc, "reason", str(exc)) + "; skipped"
    if n <= 0:
        return None, "ffmpeg found no video frames; skipped"
    return VideoEntry(_rel(path, root), path, "file", n, w, h, fps), None


def index_videos(root):
    """Index `root` -> (entries sorted by natural name, skipped {path: reason}).

    Raises DataError when root is missing, empty, or holds no image or video file at all.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.exists(root):
        raise DataError(f"data root {root} does not exist; pass a folder of videos or frame folders, "
                        f"a video file, or a .vidpack.")
    skipped = {}
    if os.path.isfile(root):
        if not root.lower().endswith(VIDEO_EXTS):
            raise DataError(f"{root} is not a video file ({', '.join(VIDEO_EXTS)}), a .vidpack, or a folder; "
                            f"pass one of those.")
        entry, reason = _probe_file(root, os.path.dirname(root))
        if reason:
            skipped[root] = reason
        return ([entry] if entry else []), skipped

    entries, video_files, seen_any = [], [], False
    visited = set()  # real folders walked: a symlink back up the tree is walked once, not in a loop
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        if folder != root and RUN_MARKER in files:
            # a training run's folder (samples/*.mp4) inside the data: its outputs are not data
            skipped[folder] = f"a vidgan run folder (it holds {RUN_MARKER}); its samples are not used as data"
            dirs[:] = []
            continue
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        files = [f for f in files if not f.startswith(".")]
        seen_any = seen_any or bool(files) or bool(dirs)
        images = [f for f in files if f.lower().endswith(IMAGE_EXTS)]
        if images:
            e = _index_frames(folder, images, root, skipped)
            if e:
                entries.append(e)
        video_files += [os.path.join(folder, f) for f in files if f.lower().endswith(VIDEO_EXTS)]
    if video_files:  # one ffmpeg process per file: run a few at once
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(video_files)))
        try:
            found = list(pool.map(lambda p: _probe_file(p, root), video_files))
        finally:  # Ctrl-C / SIGTERM: drop the files not started rather than probing them all first
            pool.shutdown(wait=True, cancel_futures=True)
        for path, (e, reason) in zip(video_files, found):
            if reason:
                skipped[path] = reason
            else:
                entries.append(e)
    if not seen_any:
        raise DataError(f"data root {root} is empty; put video files or folders of frames in it.")
    if not entries and not skipped:
        raise DataError(f"no image frames ({', '.join(IMAGE_EXTS)}) or video files ({', '.join(VIDEO_EXTS)}) "
                        f"found under {root}; check the path and the file extensions.")
    entries.sort(key=lambda e: natural_key(e.name))
    return entries, skipped
