"""Video file -> a folder of numbered PNG frames (frame_000000.png, ...)."""
import os
import re

from vidgan._atomic import atomic_dir
from vidgan.data.decode import VIDEO_EXTS, iter_video
from vidgan.errors import DataError


def extract_frames(video, out, overwrite=False):
    """Write every frame of `video` as PNG into the new folder `out`; returns the frame count.

    The folder is built beside `out` and renamed into place; an existing `out` is refused unless
    overwrite=True, and even then only if it holds nothing but such frames. An unreadable video
    raises DataError naming it.
    """
    from PIL import Image

    video = os.fspath(video)
    if not os.path.isfile(video):
        raise DataError(f"video {video} does not exist or is not a file; pass a video file "
                        f"({', '.join(VIDEO_EXTS)}).")
    n = 0
    with atomic_dir(out, overwrite, what="frame folder", owned=re.compile(r"frame_\d{6,}\.png$").match) as tmp:
        for chunk in iter_video(video, chunk=32):
            for frame in chunk:
                Image.fromarray(frame).save(os.path.join(tmp, f"frame_{n:06d}.png"), compress_level=1)
                n += 1
    return n
