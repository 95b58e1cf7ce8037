"""Decode every frame of indexed videos to find damage that headers do not show (`vidgan data check`).

Indexing (discover.py) reads headers only: an MP4 cut short whose index (moov) sits at the front
(faststart) still announces all its frames there, and a frame folder may hold a PNG whose data is
damaged. Here each video file is decoded whole by ffmpeg (to a null output: nothing is stored) and
each frame image is decoded; a video is damaged when fewer frames decode than it announces, ffmpeg
fails, or its demuxer reports a partial file.
"""
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

from vidgan.data.decode import _passthrough, decode_image, ffmpeg_exe
from vidgan.errors import DataError

DECODE_TIMEOUT_S = 3600


def _announced(log, fallback):
    """Frames the container announces: its duration times the video stream's rate (at least `fallback`)."""
    d = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", log)
    fps = re.search(r"Stream #\S+.*?Video: .*?(\d+(?:\.\d+)?) fps", log)
    if not (d and fps):
        return fallback
    seconds = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    return max(fallback, int(round(seconds * float(fps.group(1)))))


def check_video_file(path, expected):
    """None if every frame of the video file `path` decodes (at least `expected` of them), else the
    reason it is damaged (a clause for `vidgan data check`'s report)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", path, "-map", "0:v:0",
           *_passthrough(), "-f", "null", "-"]
    try:
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=DECODE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"decoding it took over {DECODE_TIMEOUT_S} s; check the file"
    log = res.stderr.decode("utf-8", "replace")
    counts = re.findall(r"frame=\s*(\d+)", log)
    decoded = int(counts[-1]) if counts else 0
    errors = [re.sub(r"^(\[[^\]]*\] )*", "", ln).strip() for ln in log.splitlines()
              if "[error]" in ln or "[fatal]" in ln]
    partial = next((e for e in errors if "partial file" in e), None)
    announced = _announced(log, expected)
    why = partial or (errors[0] if errors else None)
    if res.returncode != 0:
        return f"damaged: ffmpeg cannot decode it ({why or f'exit code {res.returncode}'}); delete or replace it"
    if decoded < expected or partial or (errors and decoded + 1 < announced):
        detail = f" ({why})" if why else ""
        return (f"damaged: only {decoded} of the {max(announced, expected)} frames it announces decode{detail}; "
                "delete or replace it")
    return None


def check_frame_folder(paths):
    """None if every image in `paths` (one video's frames) decodes, else the reason it is damaged."""
    for p in paths:
        try:
            decode_image(p)
        except DataError as exc:  # "cannot decode image P (why); delete or replace the file."
            return f"damaged: {str(exc).rstrip('.')}"
    return None


def check_entries(entries, workers=None):
    """{path: reason} for the damaged ones among indexed VideoEntry's (video files and frame folders;
    packed videos are checked by their index). Runs a few decoders at once."""
    def one(e):
        if e.kind == "file":
            return check_video_file(e.path, e.length)
        if e.kind == "frames":
            return check_frame_folder(e.frames)
        return None

    todo = [e for e in entries if e.kind in ("file", "frames")]
    if not todo:
        return {}
    workers = workers or min(8, os.cpu_count() or 1, len(todo))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        reasons = list(pool.map(one, todo))
    finally:  # Ctrl-C / SIGTERM: drop the files not started rather than decoding them all first
        pool.shutdown(wait=True, cancel_futures=True)
    return {e.path: r for e, r in zip(todo, reasons) if r}
