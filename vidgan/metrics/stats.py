"""Statistics of one clip set, and their on-disk cache.

SetStats holds what FVD and its companions need from a set, in float64:
- the Gaussian fit (mean, covariance) of the 400-d I3D logits, one vector per clip;
- the Gaussian fit of the 1024-d per-frame features (frame-level Fréchet distance);
- each clip's content distance (mean pairwise L2 distance between its frame features).
The set's diversity (how far apart two of its clips are in I3D logits) follows from the first fit.

Real-data statistics are cached as safetensors + JSON metadata (no pickle) under
<cache_dir>/stats/, named by a digest of a key dict (dataset fingerprint, protocol,
weights); the key is stored inside and compared on load.
"""
import hashlib
import json
import os
import warnings
from typing import Optional, Tuple

import numpy as np

from vidgan._atomic import atomic_file
from vidgan.errors import InputError
from vidgan.metrics.companions import content_distance
from vidgan.metrics.frechet import GaussianAccumulator


def diversity_ratio(value: float, real: float) -> Optional[float]:
    """A set's diversity over the real clips' (None when the real clips have none to compare with)."""
    return value / real if real > 0 else None


class SetStats:
    """Accumulated statistics of one clip set (see module docstring)."""

    def __init__(self, companions: bool = True, keep_features: bool = False):
        self.companions = companions
        self.features = [] if keep_features else None  # per-clip logits [400] when kept
        self.clip = GaussianAccumulator()
        self.frame = GaussianAccumulator() if companions else None
        self.content = []  # per-clip content distances
        self.frames = self.height = self.width = None
        self._fixed = None  # (mu, sigma) pairs when loaded from a cache

    @property
    def n(self) -> int:
        return self._fixed["n"] if self._fixed else self.clip.n

    def add(self, logits: np.ndarray, frame_features: Optional[np.ndarray], frames: int, height: int,
            width: int) -> None:
        """logits [B, 400]; frame_features [B, K, D] (or None without companions)."""
        if self._fixed:
            raise RuntimeError("cached statistics are read-only")
        self.frames, self.height, self.width = int(frames), int(height), int(width)
        self.clip.update(logits)
        if self.features is not None:
            self.features.extend(np.asarray(logits, dtype=np.float64))
        if self.companions:
            if frame_features is None:
                raise ValueError("companion statistics need frame features")
            self.frame.update(frame_features.reshape(-1, frame_features.shape[-1]))
            self.content.extend(content_distance(frame_features).tolist())

    def fvd_stats(self) -> Tuple[np.ndarray, np.ndarray]:
        return (self._fixed["clip_mu"], self._fixed["clip_sigma"]) if self._fixed else self.clip.stats()

    def diversity(self) -> float:
        """The RMS distance between the I3D logits of two different clips of the set, over all pairs: the
        root of 2 tr(S), S the unbiased covariance (an identity, so it needs no features kept). Near 0 when the
        clips are near-identical."""
        _, sigma = self.fvd_stats()
        return float(np.sqrt(max(2.0 * float(np.trace(sigma)), 0.0)))

    def frame_stats(self) -> Tuple[np.ndarray, np.ndarray]:
        if not self.companions:
            raise InputError("these statistics were computed without companions.")
        return (self._fixed["frame_mu"], self._fixed["frame_sigma"]) if self._fixed else self.frame.stats()

    def content_distance(self) -> float:
        """Mean over clips of the per-clip content distance (lower = steadier content)."""
        if not self.companions:
            raise InputError("these statistics were computed without companions.")
        values = self._fixed["content"] if self._fixed else np.asarray(self.content)
        return float(np.mean(values))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, key: dict) -> None:
        """Atomically writes the statistics and `key` to a safetensors file."""
        from safetensors.numpy import save_file

        mu, sigma = self.fvd_stats()
        tensors = {"clip_mu": mu, "clip_sigma": sigma}
        if self.companions:
            fmu, fsigma = self.frame_stats()
            content = self._fixed["content"] if self._fixed else np.asarray(self.content, dtype=np.float64)
            tensors.update(frame_mu=fmu, frame_sigma=fsigma, content=content)
        tensors = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()}
        meta = {"key": json.dumps(key, sort_keys=True), "n": str(self.n), "frames": str(self.frames),
                "height": str(self.height), "width": str(self.width), "companions": str(int(self.companions))}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_file(path, overwrite=True, what="statistics file") as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str, key: Optional[dict] = None) -> Optional["SetStats"]:
        """Statistics saved with `save`, or None when absent, unreadable or saved under another key."""
        from safetensors import safe_open

        if not os.path.isfile(path):
            return None
        try:
            with safe_open(path, framework="numpy") as f:
                meta = dict(f.metadata() or {})
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except Exception:
            return None
        if key is not None and meta.get("key") != json.dumps(key, sort_keys=True):
            return None
        out = cls(companions=meta.get("companions") == "1")
        out._fixed = dict(arrays, n=int(meta["n"]))
        out.frames, out.height, out.width = int(meta["frames"]), int(meta["height"]), int(meta["width"])
        return out


def stats_cache_path(key: dict, folder: Optional[str] = None) -> str:
    """<cache_dir>/stats/<digest of key>.safetensors."""
    from vidgan.metrics.weights import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(folder or os.path.join(cache_dir(), "stats"), f"{digest}.safetensors")


def save_cached(stats: SetStats, key: dict) -> Optional[str]:
    """Saves to the cache; a read-only cache folder only warns."""
    path = stats_cache_path(key)
    try:
        stats.save(path, key)
    except (OSError, InputError) as exc:                 # InputError: a folder in the cache file's place
        warnings.warn(f"could not cache real-data statistics at {path} ({exc}); "
                      f"set VIDGAN_CACHE to a writable folder to reuse them.")
        return None
    return path


def load_cached(key: dict) -> Optional[SetStats]:
    return SetStats.load(stats_cache_path(key), key)

