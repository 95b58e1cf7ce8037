"""How different a set of clips is from itself: the training loop's collapse check.

diversity(clips) is the mean, over all pairs of clips, of the RMS difference between their 16x16
grey thumbnails, frame by frame (pixel units in [0, 1]). A generator whose samples have collapsed to
near-identical clips scores near 0; its data scores what its own variety gives (Moving MNIST: about
0.2). Cheap: 16 clips of 16 frames take milliseconds, so it runs on every sample grid.
"""
import numpy as np

THUMB = 16
COLLAPSE = 0.25       # samples below this fraction of the data's diversity have collapsed
COLLAPSE_FROM = 1500  # ... judged from this step on: a fresh generator's samples start near-identical and spread
                      # out (three healthy 60-minute fast runs on Moving MNIST: 0.17-0.33 of the data's at step
                      # 500, 0.23-0.57 at 1,000, 0.52-0.66 at 1,500), while a collapsed run falls later
                      # (R1 gamma 0.1: 0.50 at step 1,500, 0.04 at 2,000)
COLLAPSE_GRIDS = 2    # ... and said when this many sample grids in a row are below COLLAPSE: a slow start can dip
                      # once (fast with lr 0.0015: 0.14 of the data's at step 1,500, 0.54 at 2,000), while the
                      # collapsed run stayed down (0.04 at 2,000, 0.10 at 2,500)


def thumbnails(clips: np.ndarray) -> np.ndarray:
    """uint8 [N, T, H, W, C] -> float32 [N, T, 16, 16] grey thumbnails in [0, 1] (box-averaged)."""
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[1] < 1:
        raise ValueError(f"clips must be [N, T, H, W, C], got shape {clips.shape}.")
    n, t, h, w, _ = clips.shape
    grey = clips.astype(np.float32).mean(axis=-1) / 255.0                       # [N, T, H, W]
    fh, fw = max(1, h // THUMB), max(1, w // THUMB)
    grey = grey[:, :, :fh * (h // fh), :fw * (w // fw)]
    return grey.reshape(n, t, h // fh, fh, w // fw, fw).mean(axis=(3, 5))


def diversity(clips: np.ndarray) -> float:
    """Mean pairwise RMS difference of the clips' thumbnails (0 when all clips are the same, or N < 2)."""
    x = thumbnails(clips).reshape(len(clips), -1).astype(np.float64)              # [N, D]
    if len(x) < 2:
        return 0.0
    rms = [np.sqrt(((x[i + 1:] - x[i]) ** 2).mean(axis=1)) for i in range(len(x) - 1)]   # pairs (i, j > i)
    return float(np.concatenate(rms).mean())


def collapsed(fake: float, real: float) -> bool:
    """Whether samples of diversity `fake` have collapsed against data of diversity `real`."""
    return real > 0 and fake < COLLAPSE * real
