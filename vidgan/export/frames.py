"""Input frames -> checked uint8 arrays: the array, dtype and range checks every export shares.

Frames are ``uint8 [H, W, 3]`` / ``[H, W, 1]`` (numpy or torch); float frames need an explicit
``input_range`` such as ``(-1, 1)``. Every refusal is a vidgan.errors.InputError naming the frame.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from vidgan.errors import InputError

Range = Union[str, Sequence[float], None]


def parse_range(input_range: Range, name: str = "input_range") -> Optional[Tuple[float, float]]:
    """'-1,1' / '0,1' / (lo, hi) -> (lo, hi) floats with lo < hi; None stays None."""
    if input_range is None:
        return None
    try:
        if isinstance(input_range, str):
            parts = [float(p) for p in input_range.replace(":", ",").split(",")]
        else:
            parts = [float(p) for p in input_range]
        lo, hi = parts
    except (TypeError, ValueError):
        raise InputError(f"{name}={input_range!r} is not a range; pass two numbers such as (-1, 1) or \"0,1\".") \
            from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"{name}={input_range!r} must be two finite numbers low < high, such as (-1, 1).")
    return lo, hi


def to_numpy(x, what: str) -> np.ndarray:
    """numpy/torch/array-like -> numpy array (torch: detached, on CPU; half types widened)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):          # a torch tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception:
        raise InputError(f"{what} is a {type(x).__name__}, not an array; pass uint8 [T, H, W, 3] frames "
                         "(numpy or torch) or an iterable of [H, W, 3] frames.") from None


def scale_to_uint8(x: np.ndarray, rng: Tuple[float, float], what: str) -> np.ndarray:
    """Float array in [lo, hi] -> uint8 [0, 255] (clipped, rounded half to even); NaN/Inf -> InputError."""
    if not np.isfinite(x).all():
        raise InputError(f"{what} contains NaN or Inf values; fix the values before exporting.")
    lo, hi = rng
    y = (x.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.rint(np.clip(y, 0.0, 255.0)).astype(np.uint8)


def check_frame(f, rng, what: str, size=None) -> np.ndarray:
    """One frame -> contiguous uint8 [H, W, 3]; raises InputError naming `what` if it is unusable."""
    a = to_numpy(f, what)
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise InputError(f"{what} has shape {tuple(a.shape)}; each frame must be [H, W, 3] (RGB) or "
                         "[H, W, 1] (grayscale).")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"{what} has shape {tuple(a.shape)}; frames need at least 1x1 pixels.")
    a = _convert_dtype(a, rng, what)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if size is not None and a.shape[:2] != size:
        raise InputError(f"{what} is {a.shape[1]}x{a.shape[0]} but the first frame is {size[1]}x{size[0]}; "
                         "all frames of one video must have the same size.")
    return np.ascontiguousarray(a)


def _convert_dtype(a: np.ndarray, rng, what: str) -> np.ndarray:
    if a.dtype == np.uint8:
        if rng is not None:
            raise InputError(f"{what} is already uint8 but input_range={rng} was given; input_range is only "
                             "for float frames, so drop it.")
        return a
    if np.issubdtype(a.dtype, np.floating):
        if rng is None:
            raise InputError(f"{what} is {a.dtype}; pass uint8 frames, or say how to read floats with "
                             "input_range=(-1, 1) or input_range=(0, 1).")
        return scale_to_uint8(a, rng, what)
    raise InputError(f"{what} has dtype {a.dtype}; pass uint8 frames (0..255), or float frames with "
                     "input_range=(-1, 1) or (0, 1).")


def frame_source(frames, rng) -> Tuple[np.ndarray, Iterator[np.ndarray]]:
    """Validate the first frame eagerly; return it and a lazy iterator over the checked remaining frames."""
    if frames is None or isinstance(frames, (str, bytes, os.PathLike)):
        raise InputError(f"frames is {type(frames).__name__}; pass uint8 [T, H, W, 3] frames (numpy or torch) "
                         "or an iterable of [H, W, 3] frames.")
    is_array = isinstance(frames, np.ndarray) or (hasattr(frames, "detach") and hasattr(frames, "shape"))
    if is_array:
        shape = tuple(frames.shape)
        if len(shape) != 4 or shape[-1] not in (1, 3):
            hint = " (several clips: tile them with make_grid or write one file per clip)" if len(shape) == 5 else ""
            raise InputError(f"frames has shape {shape}; a video must be [T, H, W, 3] (or [T, H, W, 1] "
                             f"grayscale){hint}.")
        if shape[0] == 0:
            raise InputError("frames is empty (T = 0); a video needs at least one frame.")
        items = iter(frames)
    else:
        try:
            items = iter(frames)
        except TypeError:
            raise InputError(f"frames is a {type(frames).__name__}; pass uint8 [T, H, W, 3] frames (numpy or "
                             "torch) or an iterable of [H, W, 3] frames.") from None
    try:
        first = next(items)
    except StopIteration:
        raise InputError("frames is empty; a video needs at least one frame.") from None
    first = check_frame(first, rng, "frame 0")
    size = first.shape[:2]

    def rest():
        for i, f in enumerate(items, start=1):
            yield check_frame(f, rng, f"frame {i}", size)

    return first, rest()
