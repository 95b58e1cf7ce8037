"""Two cheap companions of FVD, computed from the same I3D pass (no other network).

frame_fd: the Fréchet distance between Gaussian fits of per-frame features. The
    per-frame feature is the I3D's response to a single frame standing still: every 3D
    kernel summed over its time taps (what the network computes inside a frozen video),
    spatially averaged at Mixed_5c, 1024-d. It measures appearance only, frame by frame,
    like FID does for images, but it is NOT Inception-v3 FID and its values are not
    comparable with FID numbers.

content distance: for each clip the mean pairwise L2 distance between the feature
    vectors of its sampled frames, averaged over clips. Like MoCoGAN's Average Content
    Distance (ACD), lower means the content (identity, scene) stays steadier across the
    clip; it is only meaningful next to the same score of real clips, which vidgan
    reports beside it.
"""
import numpy as np

from vidgan.metrics.frechet import frechet_distance


def content_distance(frame_features: np.ndarray) -> np.ndarray:
    """[B, K, D] frame features -> [B] mean pairwise L2 distance between the K frames of each clip."""
    f = np.asarray(frame_features, dtype=np.float64)
    b, k, _ = f.shape
    if k < 2:
        return np.zeros(b)
    d = np.sqrt(np.maximum(((f[:, :, None, :] - f[:, None, :, :]) ** 2).sum(-1), 0.0))  # [B, K, K]
    iu = np.triu_indices(k, 1)
    return d[:, iu[0], iu[1]].mean(axis=1)


def frame_fd(a, b) -> float:
    """Fréchet distance between the per-frame feature fits of two SetStats."""
    return frechet_distance(*a.frame_stats(), *b.frame_stats())
