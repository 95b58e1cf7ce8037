"""What a run's sample grids are compared with: fixed training clips, and the collapse watch.

`real_clips` picks n training clips fixed by the run's seed (the reals.png contact sheet and the
data's diversity figure). `CollapseWatch` turns each sample grid into its diversity figures and says,
once, when the grids have collapsed to near-identical clips (vidgan.metrics.diversity), with advice
taken from the run's own settings.
"""
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from vidgan.metrics import diversity as div
from vidgan.training.config import TrainConfig


def real_clips(dataset, seed: int, n: int) -> np.ndarray:
    """n training clips, fixed by the run's seed: one per video, and several windows of each when the data
    has fewer than n videos (one video file: n windows of it, not one clip). uint8 [n, T, H, W, 3]."""
    from vidgan.export import to_uint8

    videos = len(dataset)
    keys = [(i % videos, seed + i // videos) for i in range(n)]
    return to_uint8(torch.stack([dataset[key] for key in keys]))


def collapse_advice(cfg: TrainConfig) -> str:
    """What to change, from this run's own values: on Moving MNIST, R1 gamma 0.1 collapsed and 1 did not
    (docs/experiments.md); augmentation is not offered, as no run measured it curing a collapse."""
    tries = [f"a lower --lr ({cfg.lr / 2:g}, half of this run's)"]
    if cfg.loss != "wgan-gp":
        tries.append(f"a larger r1_gamma (--set r1_gamma={10 * cfg.r1_gamma:g}, 10x this run's)" if cfg.r1_gamma > 0
                     else "R1 (--set r1_gamma=1)")
    return " or ".join(tries)


class CollapseWatch:
    """Per sample grid: the samples' diversity against the data's (the same number of training clips, taken
    once), and one warning when, from step div.COLLAPSE_FROM on, div.COLLAPSE_GRIDS grids in a row are below
    div.COLLAPSE of the data's (real_clips of `dataset`)."""

    def __init__(self, cfg: TrainConfig, dataset):
        self.cfg, self.dataset = cfg, dataset
        self.real: Optional[float] = None
        self.low_grids, self.said = 0, False

    def state(self) -> Dict[str, Any]:
        """What a checkpoint keeps of the watch (the grids up to its step), so that a resumed run goes on
        counting low grids and still warns once per run."""
        return {"low_grids": self.low_grids, "said": self.said}

    def load_state(self, st: Optional[Dict[str, Any]]) -> None:
        """The watch as a checkpoint's state.pt left it (none in checkpoints that predate it: a fresh count)."""
        if st:
            self.low_grids, self.said = int(st["low_grids"]), bool(st["said"])

    def check(self, step: int, clips: np.ndarray, say: Callable[[str], None]) -> Tuple[float, float]:
        """The grid's diversity and the data's; `say` gets the warning."""
        if self.real is None:
            self.real = div.diversity(real_clips(self.dataset, self.cfg.seed, len(clips)))
        fake, real = div.diversity(clips), self.real
        low = step >= div.COLLAPSE_FROM and div.collapsed(fake, real)
        self.low_grids = self.low_grids + 1 if low else 0
        if self.low_grids >= div.COLLAPSE_GRIDS and not self.said:
            self.said = True
            say(f"warning: the samples have collapsed at step {step}: the {len(clips)} sample clips differ "
                f"{real / max(fake, 1e-12):.0f}x less from each other than training clips do (diversity "
                f"{fake:.3f} against {real:.3f}, below {div.COLLAPSE:.0%} of it); try {collapse_advice(self.cfg)}.")
        return fake, real
