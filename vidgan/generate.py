"""Sampling clips from a trained generator, as arrays or straight to video files.

    G = vidgan.load()                                   # embedded default model
    clips = vidgan.generate(G, seed=0, num=4)           # uint8 [4, T, H, W, 3]
    clips = vidgan.generate(G, content_seed=1, motion_seed=7, frames=64)

Seeds: clip i takes its content code from `content_seed + i` (default: `seed + i`) and
its motion noise from `motion_seed + i` (default: `seed + i`), each from its own CPU
generator, and each clip is rendered on its own in chunks of `batch` frames (a number that does not
depend on how many clips are asked for). So, by construction, clip i of a batch equals the single
clip of seed + i, the same seed gives bit-identical clips on the same device and backend, and
content or motion can be changed while the other is held. Memory stays flat whatever the length.

A grey model (model.channels 1) renders [N, 1, T, H, W]; its clips come out replicated to RGB
(R = G = B), so arrays, files and mosaics have the same [.., 3] shape for every model.
"""
import math
import os
import re
import sys
import time
import types
from typing import Iterator, List, Optional

import numpy as np
import torch

from vidgan.errors import InputError
from vidgan.export import to_uint8
from vidgan.models.config import MAX_FRAMES

_MOTION_STREAM = 0x5EED_0001  # keeps the motion stream apart from the content stream
_MAX_SIDE = 8192  # the largest frame side generate writes (H.264 levels stop at 8192)
CHUNK = 16  # default frames per rendering call
MAX_CLIPS = 4096  # clips in one call


def _cpu_generator(seed: int, stream: int = 0) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed((int(seed) + stream) % (2**63))


def _resolve_device(G, device) -> torch.device:
    """None -> where G is (the CPU without a G); a name ("cpu", "cuda", "cuda:1", "auto") is checked
    (InputError if unusable)."""
    if device is None:
        return torch.device("cpu") if G is None else next(G.parameters()).device
    if isinstance(device, torch.device):
        return device
    from vidgan.device import resolve_device

    return resolve_device(str(device))


def sample_latents(G, num: int, frames: int, seed: int = 0, content_seed: Optional[int] = None,
                   motion_seed: Optional[int] = None, device=None):
    """(z_content [N, Z], motion noise [N, ...]) drawn per clip on the CPU, then moved to `device`."""
    dev = _resolve_device(G, device)
    cs = seed if content_seed is None else content_seed
    ms = seed if motion_seed is None else motion_seed
    z = torch.cat([G.sample_content(1, generator=_cpu_generator(cs + i), device="cpu") for i in range(num)])
    motion = torch.cat([G.sample_motion(1, frames, generator=_cpu_generator(ms + i, _MOTION_STREAM), device="cpu")
                        for i in range(num)])
    return z.to(dev), motion.to(dev)


@torch.no_grad()
def iter_chunks(G, num: int = 1, frames: Optional[int] = None, seed: int = 0, truncation: float = 1.0,
                content_seed: Optional[int] = None, motion_seed: Optional[int] = None,
                batch: Optional[int] = None, device=None, compile: bool = False) -> Iterator[np.ndarray]:
    """Yields consecutive uint8 [num, t, H, W, 3] chunks of the clips, t <= batch frames each.

    compile: torch.compile G's synthesis network in place first (G stays compiled for later calls; results
    equal eager ones up to rounding). It pays on long renders only: see docs/generate.md for the measured figures."""
    frames = int(G.cfg.frames if frames is None else frames)
    if not 1 <= frames <= MAX_FRAMES:
        raise InputError(f"frames must be from 1 to {MAX_FRAMES:,}, got {frames}.")
    if not 1 <= num <= MAX_CLIPS:
        raise InputError(f"the number of clips must be from 1 to {MAX_CLIPS}, got {num}.")
    if not math.isfinite(truncation):
        raise InputError(f"truncation must be a finite number (1 = none), got {truncation}.")
    batch = int(CHUNK if batch is None else batch)
    if batch < 1:
        raise InputError(f"batch (frames per chunk) must be at least 1, got {batch}.")
    dev = _resolve_device(G, device)
    G = G.to(dev).eval()
    if compile:
        from vidgan.device import compile_in_place

        compile_in_place(G.synthesis)
    z, motion = sample_latents(G, num, frames, seed, content_seed, motion_seed, dev)
    # Clip by clip, so that no clip's result depends on the others (a batch of one takes other kernels).
    codes = [G.motion_trajectory(motion[i:i + 1], frames) for i in range(num)]     # num x [1, T, M]
    for a in range(0, frames, batch):
        chunk = [G.synthesize(z[i:i + 1], codes[i][:, a:a + batch], truncation=truncation) for i in range(num)]
        yield to_uint8(torch.cat(chunk))                                          # [num, t, H, W, 3]


def generate(G, seed: int = 0, num: int = 1, frames: Optional[int] = None, truncation: float = 1.0,
             content_seed: Optional[int] = None, motion_seed: Optional[int] = None,
             batch: Optional[int] = None, device=None, compile: bool = False) -> np.ndarray:
    """Clips as uint8 [N, T, H, W, 3] (N = num, T = frames, default the training length)."""
    chunks = list(iter_chunks(G, num=num, frames=frames, seed=seed, truncation=truncation,
                              content_seed=content_seed, motion_seed=motion_seed, batch=batch, device=device,
                              compile=compile))
    return np.concatenate(chunks, axis=1)


def _parse_grid(grid: Optional[str]):
    if grid is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(grid))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise InputError(f"--grid must look like RxC with positive integers (e.g. 2x3), got {grid!r}.")
    return int(m.group(1)), int(m.group(2))


def _output_paths(out: str, num: int, grid) -> List[str]:
    if grid is not None or num == 1:
        return [out]
    root, ext = os.path.splitext(out.rstrip("/\\"))
    if ext:
        return [f"{root}_{i:03d}{ext}" for i in range(num)]
    return [os.path.join(out, f"clip_{i:03d}") for i in range(num)]


def generate_to_file(out: str, checkpoint: Optional[str] = None, seed: int = 0, num: int = 1,
                     grid: Optional[str] = None, frames: Optional[int] = None, fps: Optional[float] = None,
                     scale: int = 1, truncation: float = 1.0, content_seed: Optional[int] = None,
                     motion_seed: Optional[int] = None, device=None, batch: Optional[int] = None,
                     overwrite: bool = False, compile: bool = False) -> dict:
    """Renders clips from a checkpoint (default: the embedded model) to MP4/GIF/WebM/PNG frames.

    Several clips go to numbered files (clip_000.mp4, ...), or into one mosaic with grid="RxC".
    Frames stream from the generator to the encoder chunk by chunk. Returns a report dict.
    """
    from vidgan.checkpoint import load
    from vidgan.export import check_output, make_grid, upscale_nearest, write_video

    rc = _parse_grid(grid)
    if rc is not None:
        num = rc[0] * rc[1]
    if num < 1:
        raise InputError(f"--num must be at least 1, got {num}.")
    if scale < 1:
        raise InputError(f"--scale must be a positive integer, got {scale}.")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"--fps must be a positive number, got {fps}.")
    for name, value in (("--frames", frames), ("--batch", batch)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}.")
    if not math.isfinite(truncation):
        raise InputError(f"--truncation must be a finite number (1 = none), got {truncation}.")
    paths = _output_paths(out, num, rc)
    for p in paths:  # every target is checked before the first clip is written
        if os.path.exists(p) and not overwrite:
            raise InputError(f"{p} already exists; pass --overwrite to replace it or choose another --out.")
        check_output(p, overwrite)
    dev = _resolve_device(None, device)
    if dev.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        from vidgan.device import idle_threads

        torch.set_num_threads(idle_threads())          # cores that other jobs keep busy are left to them
    G = load(checkpoint, device=dev)
    meta = getattr(G, "meta", None) or {}
    # A model may suggest its viewing length and rate (meta "frames"/"fps"); else its training length.
    frames = int(frames or meta.get("frames") or G.cfg.frames)
    fps = float(fps or meta.get("fps", 8))
    side = G.cfg.resolution * (max(rc) if rc else 1) * scale  # the mosaic's padding aside
    if side > _MAX_SIDE:
        raise InputError(f"--scale {scale} makes frames {side} pixels wide or high, above the {_MAX_SIDE} "
                         "that encoders and viewers take; use a smaller --scale.")

    timing = {"render_s": 0.0}

    def frames_of(chunks, index=None):
        # Streams uint8 [H, W, 3] frames of one clip (index) or of the mosaic (index None).
        it = iter(chunks)
        while True:
            t0 = time.perf_counter()
            try:
                chunk = next(it)
            except StopIteration:
                return
            timing["render_s"] += time.perf_counter() - t0
            part = chunk[index] if index is not None else make_grid(chunk, rc[0], rc[1])
            if scale > 1:
                part = upscale_nearest(part, scale)
            yield from part

    kwargs = dict(frames=frames, seed=seed, truncation=truncation, content_seed=content_seed,
                  motion_seed=motion_seed, batch=batch, device=dev, compile=compile)
    if rc is not None:
        write_video(frames_of(iter_chunks(G, num=num, **kwargs)), paths[0], fps=fps, overwrite=True)
    else:
        for i, p in enumerate(paths):  # clip i of the request = the single clip of seed + i
            k = dict(kwargs, seed=seed + i,
                     content_seed=None if content_seed is None else content_seed + i,
                     motion_seed=None if motion_seed is None else motion_seed + i)
            write_video(frames_of(iter_chunks(G, num=1, **k), index=0), p, fps=fps, overwrite=True)
    h = w = G.cfg.resolution
    if rc is not None:  # the mosaic's geometry, padding included
        h, w = make_grid(np.zeros((num, 1, h, w, 3), np.uint8), rc[0], rc[1]).shape[1:3]
    total = frames * num
    return {"paths": paths, "clips": len(paths), "frames": frames, "width": w * scale, "height": h * scale, "fps": fps,
            "frames_per_s": total / max(timing["render_s"], 1e-9)}


class _CallableModule(types.ModuleType):
    """`vidgan.generate` names both this module and its `generate` function. Importing the module
    (`import vidgan.generate`, or any code that does) binds the package attribute to the module,
    so the module itself must also work as the function: `vidgan.generate(G, seed=0)`."""

    def __call__(self, *args, **kwargs):
        return generate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
