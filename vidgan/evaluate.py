"""`vidgan eval`: FVD (and its companions) of a model, or of a second real source, against real data.

    from vidgan.evaluate import evaluate, Evaluator
    result = evaluate("clips/", checkpoint="runs/a")          # dict, also printed by the CLI
    result = evaluate("clips/", against="other_clips/")       # two real sources, no model

    ev = Evaluator("clips/", num_clips=256, frames=16, resolution=64)   # e.g. inside training
    ev.score_model(G)            # {'fvd': ..., 'diversity': ..., 'diversity_real': ..., 'N': 256, 'frame_fd': ...}

Real clips come from vidgan.data.VideoDataset in eval mode: its deterministic clip list
(eval_clips=N, seed 0) at the model's resolution, quantised to uint8 exactly like
generated clips, so both sets take the same path into the I3D (vidgan.metrics.PROTOCOL).
Their statistics are cached under <cache>/stats/ by a fingerprint of the files used
(names, sizes, modification times), the clip list, the protocol and the I3D weights.

Model clips: run r uses seeds seed + r*N ... seed + r*N + N - 1 (clip i of vidgan.generate
with seed s is the clip of seed s + i), so runs never share a clip. With --against, run r
compares the fixed clip list of --data with the list of the second source drawn with
seed + r.
"""
import hashlib
import json
import math
import os
import time
import warnings
from typing import Callable, Dict, List, Optional

import numpy as np

from vidgan import __version__
from vidgan.errors import InputError

RECOMMENDED_CLIPS = 2048
DEFAULT_RESOLUTION = 64  # for --data/--against without a model (VideoDataset's default)
REAL_SEED = 0            # the clip list of the reference data
DIVERSITY_NOTE = ("RMS distance between the I3D logits of two different clips, over all pairs (sqrt(2 tr S) of "
                  "the FVD fit); ratio: the model's over the real clips'. Near 0: the clips are near-identical")


# ----------------------------------------------------------------------------- real clips
def _file_stamp(path: str) -> list:
    try:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [None, None]


def dataset_fingerprint(ds) -> str:
    """sha256 over what the clips depend on: the files used (name, size, mtime), the clip list and options."""
    h = hashlib.sha256()
    head = {"root": os.path.basename(os.path.normpath(ds.root)), "frames": ds.frames, "stride": ds.stride,
            "resolution": ds.resolution, "keep_aspect": getattr(ds, "keep_aspect", False),
            "clip_list": [list(c) for c in ds.clip_list], "vidgan": __version__}
    h.update(json.dumps(head, sort_keys=True).encode())
    if getattr(ds, "packed", False):
        h.update(json.dumps(_file_stamp(ds.root)).encode())
    for e in ds.entries:
        files = list(e.frames) if getattr(e, "kind", "") == "frames" else ([] if e.kind == "packed" else [e.path])
        h.update(json.dumps([e.name, e.kind, e.length, e.width, e.height,
                             [_file_stamp(p) for p in files]]).encode())
    return h.hexdigest()


def _real_dataset(root, frames: int, resolution: int, stride: int, num_clips: int, seed: int):
    from vidgan.data import VideoDataset

    # channels=3: real clips enter FVD as RGB whatever the source (grey data gives R = G = B, the same
    # numbers as grey clips replicated at the metric's input).
    return VideoDataset(root, frames=frames, resolution=resolution, stride=stride, mode="eval", seed=seed,
                        eval_clips=num_clips, channels=3)


def _uint8_clip(ds, i: int) -> np.ndarray:
    """Clip i of an eval-mode dataset as uint8 [T, R, R, C]."""
    if hasattr(ds, "fetch"):
        clip, new = ds.fetch(i)
        if new and hasattr(ds, "_report"):
            ds._report(new)
        return np.asarray(clip, dtype=np.uint8)
    x = np.asarray(ds[i], dtype=np.float32)  # [C, T, R, R] in [-1, 1]
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)


def _iter_dataset(ds, batch: int):
    for a in range(0, len(ds), batch):
        yield np.stack([_uint8_clip(ds, i) for i in range(a, min(a + batch, len(ds)))])


# ----------------------------------------------------------------------------- Evaluator
class Evaluator:
    """Scores clip sets against one real source; the real statistics are computed (or read from
    the cache) once and reused, so it can run every N training steps.

    sample callables: sample(seed, num) -> uint8 [num, T, H, W, 3] (or [..., 1] grey, replicated to RGB at
    the metric's input) where clip i is the clip of seed + i (vidgan.generate's convention).
    """

    def __init__(self, data, num_clips: int = RECOMMENDED_CLIPS, frames: int = 16, resolution: int = 64,
                 stride: int = 1, batch: int = 8, device=None, i3d: Optional[str] = None,
                 companions: bool = True, progress: bool = False, cache: bool = True, model=None):
        from vidgan.metrics.fvd import FeatureExtractor

        if num_clips < 2:
            raise InputError(f"--num-clips must be at least 2 (FVD fits a Gaussian), got {num_clips}.")
        self.data, self.num_clips, self.frames = data, int(num_clips), int(frames)
        self.resolution, self.stride, self.batch = int(resolution), int(stride), int(batch)
        self.cache = cache
        self.extractor = FeatureExtractor(model=model, i3d=i3d, device=device, batch=batch,
                                          companions=companions, progress=progress)
        self._real = None
        self.real_source = None  # "cache" or "computed"

    @property
    def companions(self) -> bool:
        return self.extractor.companions

    def _stats_key(self, ds) -> dict:
        from vidgan.metrics.fvd import PROTOCOL

        return {"kind": "real-clips", "fingerprint": dataset_fingerprint(ds), "protocol": PROTOCOL,
                "weights": self.extractor.sha256, "companions": self.companions}

    def data_stats(self, root, seed: int = REAL_SEED, desc: str = "real clips"):
        """SetStats of a real source's eval clip list (cached when self.cache)."""
        from vidgan.metrics.stats import load_cached, save_cached

        ds = _real_dataset(root, self.frames, self.resolution, self.stride, self.num_clips, seed)
        key = self._stats_key(ds)
        if self.cache:
            cached = load_cached(key)
            if cached is not None:
                return cached, "cache"
        stats = self.extractor.stats(_iter_dataset(ds, self.batch), total=len(ds), desc=desc)
        if self.cache:
            save_cached(stats, key)
        return stats, "computed"

    @property
    def real(self):
        """SetStats of the reference data (computed or read from the cache on first use)."""
        if self._real is None:
            self._real, self.real_source = self.data_stats(self.data)
        return self._real

    def _compare(self, other) -> Dict[str, float]:
        from vidgan.metrics.companions import frame_fd
        from vidgan.metrics.fvd import fvd_from_stats

        real = self.real
        out = {"fvd": fvd_from_stats(real, other), "N": other.n, "diversity": other.diversity(),
               "diversity_real": real.diversity()}
        if self.companions:
            out["frame_fd"] = frame_fd(real, other)
            out["content_distance"] = other.content_distance()
            out["content_distance_real"] = real.content_distance()
        return out

    def sampler_stats(self, sample: Callable[[int, int], np.ndarray], seed: int = 0, num: Optional[int] = None):
        num = int(num or self.num_clips)

        want = (self.frames, self.resolution, self.resolution)

        def chunks():
            for a in range(0, num, self.batch):
                clips = np.asarray(sample(seed + a, min(self.batch, num - a)))
                if clips.ndim != 5 or clips.shape[1:4] != want or clips.shape[4] not in (1, 3):
                    raise InputError(f"the sampler returned clips of shape {clips.shape[1:]}, expected "
                                     f"({self.frames}, {self.resolution}, {self.resolution}, 3) like the real ones "
                                     f"(or 1 channel for grey).")
                yield clips

        return self.extractor.stats(chunks(), total=num, desc="generated clips")

    def score_sampler(self, sample: Callable[[int, int], np.ndarray], seed: int = 0) -> Dict[str, float]:
        """FVD (+ companions) of num_clips clips from `sample` (clips seed .. seed + N - 1)."""
        return self._compare(self.sampler_stats(sample, seed))

    def score_model(self, G, seed: int = 0, truncation: float = 1.0, device=None) -> Dict[str, float]:
        """FVD (+ companions) of a TemporalGenerator's clips (vidgan.generate) at self.frames frames."""
        from vidgan.generate import generate

        def sample(s, n):  # device None: where G already is (a training G is never moved)
            return generate(G, seed=s, num=n, frames=self.frames, truncation=truncation, device=device)

        return self.score_sampler(sample, seed)

    def score_data(self, root, seed: int = REAL_SEED) -> Dict[str, float]:
        """FVD (+ companions) of a second real source (its eval clip list drawn with `seed`)."""
        other, _ = self.data_stats(root, seed=seed, desc="second source")
        return self._compare(other)


# ----------------------------------------------------------------------------- evaluate
def _mean_std(values: List[float]):
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


class ResultNotSavedError(InputError):
    """The evaluation finished but its --json file could not be written; `.result` holds the result."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def _check_json_target(path) -> str:
    """The absolute --json path; InputError (before any work) if it cannot be written."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InputError(f"--json {path}: the folder {folder} does not exist; create it or pick another path.")
    if os.path.isdir(path):
        raise InputError(f"--json {path} is a folder; name a file such as {os.path.join(path, 'fvd.json')}.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"--json {path}: the folder {folder} is not writable; pick another path.")
    return path


def _write_json(result: dict, path: str) -> None:
    """Write atomically; ResultNotSavedError (carrying the result) if the file cannot be written."""
    from vidgan._atomic import atomic_write_text

    try:
        path = _check_json_target(path)
        atomic_write_text(path, json.dumps(result, indent=2) + "\n", what="--json file")
    except (OSError, InputError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ResultNotSavedError(f"--json {path} could not be written ({why}); the result itself is complete "
                                  "(`vidgan eval` prints it): keep it and choose another path next time.",
                                  result) from None


def evaluate(data, checkpoint=None, against=None, num_clips: int = RECOMMENDED_CLIPS, frames: int = 16,
             stride: int = 1, runs: int = 1, seed: int = 0, batch: int = 8, device=None, i3d=None,
             json_out=None, *, resolution: Optional[int] = None, truncation: float = 1.0,
             companions: bool = True, progress: bool = True, cache: bool = True) -> dict:
    """FVD of a model (default: the embedded one) or of `against` vs the real clips of `data`.

    Returns one JSON-ready dict: metric, value, std (None for one run), N, frames, resolution,
    stride, seeds, i3d_sha256, vidgan_version, protocol_version, per-run values, companions,
    warnings. `json_out` also writes it to that file (checked before any work; if writing still
    fails at the end, ResultNotSavedError carries the result). Keyword-only extras: resolution
    (default: the model's; 64 for two real sources), truncation, companions, progress, cache.
    """
    from vidgan.metrics.fvd import PROTOCOL_VERSION, default_device
    from vidgan.metrics.stats import diversity_ratio

    t0 = time.perf_counter()
    if checkpoint is not None and against is not None:
        raise InputError("--checkpoint and --against exclude each other: compare --data with a model "
                         "or with a second real source, not both.")
    for name, value, low in (("--num-clips", num_clips, 2), ("--runs", runs, 1), ("--frames", frames, 9),
                             ("--stride", stride, 1), ("--batch", batch, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")
    notes = []
    if num_clips < RECOMMENDED_CLIPS:
        notes.append(f"FVD with {num_clips} clips per set is biased upwards (it falls as N grows) and not "
                     f"comparable with the {RECOMMENDED_CLIPS}-clip numbers papers report.")
        warnings.warn(notes[-1], stacklevel=2)
    if json_out is not None:
        _check_json_target(json_out)
    if device is None:
        device = default_device()
    else:
        from vidgan.device import resolve_device

        device = resolve_device(str(device))

    G = None
    if against is None:
        from vidgan.checkpoint import load

        G = load(checkpoint, device=device)
        if resolution is not None and int(resolution) != G.cfg.resolution:
            raise InputError(f"--resolution {resolution} differs from the model's {G.cfg.resolution}; leave it "
                             f"out so the real clips are compared at the model's resolution.")
        resolution = G.cfg.resolution
    resolution = int(resolution or DEFAULT_RESOLUTION)

    ev = Evaluator(data, num_clips=num_clips, frames=frames, resolution=resolution, stride=stride, batch=batch,
                   device=device, i3d=i3d, companions=companions, progress=progress, cache=cache)
    real = ev.real
    n_real = real.n
    results, seeds = [], []
    for r in range(runs):
        if G is not None:
            s = seed + r * num_clips
            results.append(ev.score_model(G, seed=s, truncation=truncation))
        else:
            s = seed + r
            results.append(ev.score_data(against, seed=s))
        seeds.append(s)

    value, std = _mean_std([x["fvd"] for x in results])
    out = {
        "metric": "fvd",
        "value": value,
        "std": std,
        "runs": [x["fvd"] for x in results],
        "N": int(results[0]["N"]),
        "N_real": int(n_real),
        "frames": int(frames),
        "resolution": int(resolution),
        "stride": int(stride),
        "seeds": seeds,
        "i3d_sha256": ev.extractor.sha256,
        "vidgan_version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "data": os.path.abspath(os.fspath(data)),
        "checkpoint": (None if G is None else (os.path.abspath(os.fspath(checkpoint)) if checkpoint else "embedded")),
        "against": None if against is None else os.path.abspath(os.fspath(against)),
        "truncation": float(truncation) if G is not None else None,
        "device": str(ev.extractor.device),
        "real_stats": ev.real_source,
    }
    div, _ = _mean_std([x["diversity"] for x in results])
    real_div = results[0]["diversity_real"]
    out["diversity"] = {"value": div, "real": real_div, "ratio": diversity_ratio(div, real_div),
                        "what": DIVERSITY_NOTE}
    if companions:
        fd_mean, fd_std = _mean_std([x["frame_fd"] for x in results])
        cd_mean, cd_std = _mean_std([x["content_distance"] for x in results])
        out["companions"] = {
            "frame_fd": {"value": fd_mean, "std": fd_std, "runs": [x["frame_fd"] for x in results]},
            "content_distance": {"value": cd_mean, "std": cd_std, "real": results[0]["content_distance_real"]},
        }
    out["warnings"] = notes
    out["seconds"] = round(time.perf_counter() - t0, 2)
    if any(not math.isfinite(v) for v in out["runs"]):
        raise InputError("FVD came out non-finite; the clips may contain NaN values.")
    if json_out:
        _write_json(out, json_out)
    return out
