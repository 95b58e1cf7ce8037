"""Frames -> browser-playable MP4, WebM, GIF, a folder of PNG frames, or one PNG/JPEG image.

Frames handed in are ``uint8 [T, H, W, 3]`` (numpy or torch), ``[T, H, W, 1]`` grayscale, or
any iterable of ``[H, W, 3]`` / ``[H, W, 1]`` frames (streamed: long videos never sit in memory
whole). Float frames are accepted only with an explicit ``input_range`` such as ``(-1, 1)``.

Every output is built under a hidden temporary name beside the target (vidgan._atomic) and renamed
over it only when complete, so a failure or Ctrl-C never leaves a half-written file behind.
"""
from __future__ import annotations

import functools
import math
import os
import re
import subprocess
import warnings
from fractions import Fraction
from typing import Optional, Tuple

import numpy as np

from vidgan._atomic import atomic_dir, atomic_file, ensure_folder
from vidgan.errors import InputError, OutputError
from vidgan.export.ffmpeg import FFmpegWriter
from vidgan.export.frames import Range, check_frame, frame_source, parse_range, to_numpy

__all__ = ["write_video", "check_output", "write_image", "VIDEO_FORMATS", "DEFAULT_CRF",
           "X264_PRESETS", "FRAME_NAME"]

VIDEO_FORMATS = (".mp4", ".webm", ".gif")     # plus a folder of PNG frames (no extension or a trailing /)
DEFAULT_CRF = {".mp4": 18, ".webm": 32}         # x264 CRF 0..51, VP9 CRF 0..63; lower = better
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
FRAME_NAME = "frame_{:06d}.png"                 # names inside a PNG-frame folder
_FRAME_RE = re.compile(r"^frame_\d{6,}\.png$")
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


# ----------------------------------------------------------------------------- output paths
def _classify(path) -> Tuple[str, str]:
    """path -> (absolute target, kind) with kind in .mp4 / .webm / .gif / 'frames'."""
    raw = os.path.expanduser(os.fspath(path))
    if not raw:
        raise InputError("the output path is empty; pass a file such as clip.mp4 or a folder name.")
    if raw.endswith(("/", os.sep)):
        return os.path.abspath(raw), "frames"
    ext = os.path.splitext(raw)[1].lower()
    if ext == "":
        return os.path.abspath(raw), "frames"
    if ext not in VIDEO_FORMATS:
        raise InputError(f"cannot write {raw}: unknown extension {ext!r}; use .mp4, .webm or .gif, or a path "
                         "without extension for a folder of PNG frames.")
    return os.path.abspath(raw), ext


def _check_target(target: str, kind: str, overwrite: bool) -> None:
    """Refuse unusable targets before any work (touches nothing)."""
    if kind == "frames":
        if os.path.isfile(target):
            raise InputError(f"{target} is a file, but a path without extension means a folder of PNG frames; "
                             "add .mp4/.webm/.gif or choose another name.")
        if os.path.isdir(target):
            entries = os.listdir(target)
            if entries and not overwrite:
                raise InputError(f"{target} already exists and is not empty; pass overwrite=True (--overwrite) "
                                 "to replace it or choose another folder.")
            foreign = [e for e in entries if not _FRAME_RE.match(e)]
            if foreign:
                raise InputError(f"{target} holds files that are not exported frames (e.g. {foreign[0]!r}); "
                                 "choose an empty or new folder.")
    else:
        if os.path.isdir(target):
            raise InputError(f"{target} is a folder; choose a file name such as clip{kind}.")
        if os.path.exists(target) and not overwrite:
            raise InputError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it "
                             "or choose another name.")


def check_output(path, overwrite: bool = False) -> str:
    """The absolute target `write_video(..., path, overwrite=overwrite)` would write; raises the
    InputError that call would raise for an unusable path (extension, existing file or folder) and
    touches nothing. Lets a caller writing several files check them all before writing the first."""
    target, kind = _classify(path)
    _check_target(target, kind, overwrite)
    return target


def _make_parent(target: str) -> None:
    parent = os.path.dirname(target)
    try:
        ensure_folder(parent)                                 # no space / read-only / no permission: OutputError
    except OutputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot create the folder {parent} for {target}: {exc.strerror}; choose a "
                         "writable location.") from None


# ----------------------------------------------------------------------------- ffmpeg encoding
@functools.lru_cache(maxsize=None)
def _ffmpeg_encoders() -> str:
    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    return out.stdout.decode("utf-8", "replace")


def _has_encoder(name: str) -> bool:
    return re.search(rf"^\s*\S+\s+{re.escape(name)}\s", _ffmpeg_encoders(), re.M) is not None


def _pad_even(frame: np.ndarray, pad_h: int, pad_w: int, mode: str) -> np.ndarray:
    """[H, W, 3] -> [H + pad_h, W + pad_w, 3], new rows/cols at the bottom/right."""
    if not (pad_h or pad_w):
        return frame
    widths = ((0, pad_h), (0, pad_w), (0, 0))
    return np.pad(frame, widths, mode="edge") if mode == "edge" else np.pad(frame, widths)


# RGB -> YUV with the BT.709 matrix, limited range, and say so in the stream: players (browsers included)
# otherwise guess the matrix from the frame size (BT.601 for small, BT.709 for HD) and shift the colours.
_BT709 = ("scale=out_color_matrix=bt709:out_range=tv,"
          "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv")


def _encoder_args(kind: str, crf, preset: str, fps: Fraction, comment: str):
    """-> (codec, pix_fmt_out, output_params) for write_frames."""
    meta = ["-metadata", f"comment={comment}"] if comment else []
    if kind == ".mp4":
        return "libx264", "yuv420p", ["-vf", _BT709, "-crf", str(crf), "-preset", preset,
                                      "-movflags", "+faststart",
                                      "-video_track_timescale", str(_timescale(fps))] + meta
    if kind == ".webm":
        if not _has_encoder("libvpx-vp9"):
            raise InputError("cannot write .webm: the ffmpeg bundled with imageio-ffmpeg has no libvpx-vp9 "
                             "encoder; write .mp4 instead.")
        return "libvpx-vp9", "yuv420p", ["-vf", _BT709, "-crf", str(crf), "-b:v", "0", "-deadline", "good",
                                         "-cpu-used", "5", "-row-mt", "1"] + meta
    raise ValueError(f"no ffmpeg encoder for {kind}")


def _timescale(fps: Fraction) -> int:
    """MP4 track timescale that represents every frame time exactly (a multiple of the fps numerator)."""
    ts = fps.numerator
    while ts < 10000:
        ts *= 2
    return ts


def _encode(first, rest, tmp, kind, fps, crf, preset, pad_mode, comment, info) -> int:
    h, w = first.shape[:2]
    pad_h, pad_w = h % 2, w % 2
    info.update(width=w + pad_w, height=h + pad_h, source_width=w, source_height=h, padded=(pad_h, pad_w))
    if pad_h or pad_w:
        note = f"padded from {w}x{h} to {w + pad_w}x{h + pad_h} ({pad_mode})"
        comment = f"{comment}; {note}" if comment else note
    codec, pix_fmt, params = _encoder_args(kind, crf, preset, fps, comment)
    writer = FFmpegWriter(tmp, (w + pad_w, h + pad_h), fps, codec, pix_fmt, params)
    count = 0
    try:
        for frame in _chain(first, rest):
            writer.write(_pad_even(frame, pad_h, pad_w, pad_mode))
            count += 1
        writer.close()                                       # ffmpeg finishes the file and exits
    except BaseException:
        writer.kill()                                        # gone before its temp file is removed
        raise
    if writer.messages():                                    # it succeeded, but said something: pass it on
        warnings.warn(f"ffmpeg writing {info.get('path', tmp)}: {writer.messages()[-1]}", stacklevel=3)
    return count


def _chain(first, rest):
    yield first
    yield from rest


def _check_written(tmp: str, target: str, kind: str) -> None:
    """ffmpeg's exit code is not reported by write_frames: check the file looks complete instead."""
    size = os.path.getsize(tmp) if os.path.exists(tmp) else 0
    ok = size > 0
    if ok and kind == ".mp4":
        with open(tmp, "rb") as fh:
            head = fh.read(1 << 16)
        ok = b"ftyp" in head[:16] and b"moov" in head             # faststart puts moov up front
    if not ok:
        raise OSError(f"ffmpeg did not produce a complete {kind} file for {target}")


def _write_gif(first, rest, tmp, fps: Fraction, comment: str) -> int:
    """GIF via Pillow: one 256-colour palette per frame (fast octree), looping forever.

    GIF delays are whole centiseconds; they are rounded cumulatively so the average rate is exact
    (16 fps -> 6, 6, 7, 6, 6, 7, ... cs). Identical consecutive frames are merged by Pillow.
    Pillow keeps the palettised frames (1 byte/pixel) until the file is written.
    """
    from PIL import Image

    count = [0]

    def palettised():
        for k, frame in enumerate(_chain(first, rest)):
            im = Image.fromarray(frame, "RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
            t0, t1 = round(k * 100 / fps), round((k + 1) * 100 / fps)       # centiseconds
            im.info["duration"] = 10 * max(1, t1 - t0)                        # Pillow wants ms
            count[0] = k + 1
            yield im

    frames = palettised()
    head = next(frames)
    extra = {"comment": comment} if comment else {}
    with open(tmp, "wb") as fh:
        head.save(fh, format="GIF", save_all=True, append_images=frames, loop=0, optimize=False, **extra)
    return count[0]


def _write_frames_folder(first, rest, tmpdir) -> int:
    from PIL import Image

    count = 0
    for frame in _chain(first, rest):
        Image.fromarray(frame, "RGB").save(os.path.join(tmpdir, FRAME_NAME.format(count)), compress_level=4)
        count += 1
    return count


# ----------------------------------------------------------------------------- public API
def write_video(frames, path, fps: float = 16, crf: Optional[int] = None, input_range: Range = None,
                overwrite: bool = True, preset: str = "veryfast", pad_mode: str = "edge",
                comment: str = "", info: Optional[dict] = None) -> str:
    """Write frames to ``path`` and return the absolute path written.

    frames: uint8 ``[T, H, W, 3]`` or ``[T, H, W, 1]`` (numpy or torch), or an iterable of ``[H, W, 3]``
        frames (consumed lazily). Float frames need ``input_range`` ((-1, 1), (0, 1), "-1,1", ...);
        values outside it are clipped.
    path: by extension ``.mp4`` (H.264 yuv420p, +faststart), ``.webm`` (VP9), ``.gif``; a path without
        extension or ending in ``/`` is a folder of ``frame_000000.png``... files.
    fps: frames per second stored in the container (any positive number; 24000/1001 stays exact).
    crf: quality (lower = better); default 18 for MP4, 32 for WebM; ignored for GIF/PNG.
    overwrite: replace an existing target; False -> InputError before any work. An existing frame
        folder is replaced only if it holds nothing but exported frames.
    preset: x264 speed preset (MP4). pad_mode: "edge" or "black" for the one row/column added to
        odd sizes (MP4/WebM need even sizes; frames are never resized).
    comment: stored in the file's metadata (MP4/WebM/GIF). info: a dict filled with what was written
        (frames, width, height, source_width, source_height, padded=(rows, cols), fps, format).

    Bad input raises vidgan.errors.InputError before the target is touched; a failure or Ctrl-C
    while writing removes the temporary file and leaves any previous target intact.
    """
    target, kind = _classify(path)
    try:
        fps_q = Fraction(fps).limit_denominator(1001 * 1000) if not isinstance(fps, Fraction) else fps
        bad_fps = not (math.isfinite(float(fps)) and fps_q > 0)
    except (TypeError, ValueError, OverflowError):
        bad_fps = True
    if bad_fps:
        raise InputError(f"fps={fps!r} must be a positive number such as 16 or 30.")
    if crf is not None:                                       # checked for every format, used by MP4/WebM
        top = 51 if kind == ".mp4" else 63
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= top:
            raise InputError(f"crf={crf!r} must be an integer from 0 to {top} (lower is better quality).")
    crf = DEFAULT_CRF.get(kind) if crf is None else int(crf)
    if pad_mode not in ("edge", "black"):
        raise InputError(f"pad_mode={pad_mode!r} must be 'edge' or 'black'.")
    if preset not in X264_PRESETS:
        raise InputError(f"preset={preset!r} is not an x264 preset; use one of {', '.join(X264_PRESETS)}.")
    rng = parse_range(input_range)
    _check_target(target, kind, overwrite)                    # refusals before reading any frame
    first, rest = frame_source(frames, rng)                   # first frame checked before any file exists
    if kind == ".webm":
        _encoder_args(kind, crf, preset, fps_q, "")           # no libvpx-vp9 -> InputError, still no file
    _make_parent(target)

    meta = {} if info is None else info
    meta.update(path=target, format=kind if kind != "frames" else "png", fps=float(fps_q))
    # _check_target applied `overwrite` above (an empty frame folder counts as free), hence overwrite=True here.
    if kind == "frames":
        with atomic_dir(target, overwrite=True, what="frame folder", owned=_FRAME_RE.match) as tmp:
            count = _write_frames_folder(first, rest, tmp)
    else:
        with atomic_file(target, overwrite=True, what=f"{kind} file", suffix=kind) as tmp:  # ffmpeg reads the suffix
            if kind == ".gif":
                count = _write_gif(first, rest, tmp, fps_q, comment)
            else:
                count = _encode(first, rest, tmp, kind, fps_q, crf, preset, pad_mode, comment, meta)
                _check_written(tmp, target, kind)
    if kind in ("frames", ".gif"):                            # never padded; first: uint8 [H, W, 3]
        meta.update(width=first.shape[1], height=first.shape[0], source_width=first.shape[1],
                    source_height=first.shape[0], padded=(0, 0))
    meta["frames"] = count
    return target


def write_image(img, path, overwrite: bool = True, input_range: Range = None) -> str:
    """Write one image (uint8 ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]``) to .png/.jpg atomically; returns the path."""
    raw = os.path.expanduser(os.fspath(path))
    ext = os.path.splitext(raw)[1].lower()
    if ext not in _IMAGE_FORMATS:
        raise InputError(f"cannot write {raw}: unknown image extension {ext!r}; use .png or .jpg.")
    target = os.path.abspath(raw)
    a = to_numpy(img, "the image")
    if a.ndim == 2:
        a = a[..., None]
    frame = check_frame(a, parse_range(input_range), "the image")
    _check_target(target, ext, overwrite)
    _make_parent(target)
    from PIL import Image

    with atomic_file(target, overwrite=True, what="image", suffix=ext) as tmp:
        Image.fromarray(frame, "RGB").save(tmp, format=_IMAGE_FORMATS[ext])
    return target
