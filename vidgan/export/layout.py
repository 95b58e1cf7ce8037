"""Arrange frames: library video -> uint8 frames, clip grids, contact sheets, integer upscaling.

Pure numpy (torch only when given torch tensors); nothing here touches the file system.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from vidgan.errors import InputError
from vidgan.export.frames import Range, parse_range, scale_to_uint8, to_numpy

__all__ = ["to_uint8", "make_grid", "contact_sheet", "upscale_nearest"]


def to_uint8(video, input_range: Range = (-1, 1)) -> np.ndarray:
    """Library video -> user frames.

    video: float ``[N, C, T, H, W]`` or ``[C, T, H, W]`` (torch or numpy), C = 3 (or 1, repeated to RGB),
    values in ``input_range``. Returns numpy uint8 ``[N, T, H, W, 3]`` (or ``[T, H, W, 3]`` for 4D input);
    values are clipped to the range and rounded.
    """
    rng = parse_range(input_range)
    if rng is None:
        raise InputError("to_uint8 needs input_range, such as (-1, 1).")
    shape = tuple(video.shape) if hasattr(video, "shape") else None
    if shape is None or len(shape) not in (4, 5) or shape[-4] not in (1, 3):
        raise InputError(f"video has shape {shape}; to_uint8 expects [N, C, T, H, W] or [C, T, H, W] "
                         "with C = 3 (or 1).")
    if hasattr(video, "detach"):                                # torch: scale on its device, then move
        import torch

        x = video.detach()
        if not x.is_floating_point():
            raise InputError(f"video has dtype {x.dtype}; to_uint8 converts float videos.")
        if not bool(torch.isfinite(x).all()):
            raise InputError("video contains NaN or Inf values; fix the values before exporting.")
        lo, hi = rng
        x = ((x.float() - lo) * (255.0 / (hi - lo))).clamp_(0, 255).round_().to(torch.uint8)
        a = x.movedim(-4, -1).cpu().numpy()                      # [.., C, T, H, W] -> [.., T, H, W, C]
    else:
        a = np.asarray(video)
        if not np.issubdtype(a.dtype, np.floating):
            raise InputError(f"video has dtype {a.dtype}; to_uint8 converts float videos.")
        a = scale_to_uint8(np.moveaxis(a, -4, -1), rng, "video")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def _as_uint8_array(x, what: str, ndim: int) -> np.ndarray:
    a = to_numpy(x, what)
    if a.dtype != np.uint8:
        raise InputError(f"{what} has dtype {a.dtype}; pass uint8 frames (convert floats with to_uint8).")
    if a.ndim != ndim:
        raise InputError(f"{what} has shape {tuple(a.shape)}; expected {ndim} dimensions.")
    return a


def make_grid(clips, rows: Optional[int] = None, cols: Optional[int] = None, pad: int = 2,
              pad_value: int = 0) -> np.ndarray:
    """Tile clips uint8 ``[N, T, H, W, C]`` into one mosaic video uint8 ``[T, H', W', C]``.

    Row-major order; ``pad`` pixels of ``pad_value`` between tiles and around the border
    (H' = rows*H + (rows+1)*pad). Missing tiles (N < rows*cols) are left as padding colour.
    rows/cols default to a near-square layout. Works on time chunks too (grid each chunk).
    """
    a = _as_uint8_array(clips, "clips", 5)
    n, t, h, w, c = a.shape
    if n == 0:
        raise InputError("clips is empty; make_grid needs at least one clip.")
    if rows is None and cols is None:
        cols = math.ceil(math.sqrt(n))
    if rows is None:
        rows = math.ceil(n / cols)
    if cols is None:
        cols = math.ceil(n / rows)
    if rows < 1 or cols < 1 or rows * cols < n:
        raise InputError(f"a {rows}x{cols} grid cannot hold {n} clips; use rows*cols >= {n}.")
    if pad < 0 or not 0 <= pad_value <= 255:
        raise InputError(f"pad={pad} must be >= 0 and pad_value={pad_value} within 0..255.")
    out = np.full((t, rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[:, y:y + h, x:x + w] = a[i]
    return out


def contact_sheet(clips, every: int = 1, max_frames: Optional[int] = None, pad: int = 2,
                  pad_value: int = 255) -> np.ndarray:
    """One image of several clips: row n shows frames 0, every, 2*every, ... of clip n.

    clips: uint8 ``[N, T, H, W, 3]`` (or one clip ``[T, H, W, 3]``). Returns uint8 ``[H', W', 3]``.
    """
    a = to_numpy(clips, "clips")
    if a.ndim == 4:
        a = a[None]
    a = _as_uint8_array(a, "clips", 5)
    if every < 1:
        raise InputError(f"every={every} must be >= 1.")
    picked = a[:, ::every]                                        # [N, J, H, W, C]
    if max_frames is not None:
        picked = picked[:, :max(1, max_frames)]
    n, j = picked.shape[:2]
    tiles = picked.reshape(n * j, 1, *picked.shape[2:])           # each frame a 1-frame clip
    return make_grid(tiles, rows=n, cols=j, pad=pad, pad_value=pad_value)[0]


def upscale_nearest(frames, scale: int) -> np.ndarray:
    """Integer nearest-neighbour upscaling of uint8 ``[..., H, W, C]`` -> ``[..., H*scale, W*scale, C]``."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise InputError(f"scale={scale!r} must be a positive integer.")
    a = to_numpy(frames, "frames")
    if a.ndim < 3:
        raise InputError(f"frames has shape {tuple(a.shape)}; expected [..., H, W, C].")
    if scale == 1:
        return a
    return np.repeat(np.repeat(a, scale, axis=-3), scale, axis=-2)
