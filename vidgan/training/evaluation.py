"""FVD during training (`eval_every` steps, rank 0): the EMA generator against the training data.

Real clips: the dataset's deterministic eval list (`VideoDataset(mode="eval", eval_clips=N)`),
whose I3D statistics are computed once per run. Fake clips: N clips of G_ema from fixed seeds.
The score follows vidgan.metrics' protocol (recorded with its version in stats.jsonl); it is a
training curve on the training data, not the held-out number `vidgan eval` reports.
"""
from typing import Any, Dict, Optional

import numpy as np
import torch

from vidgan.errors import InputError

EVAL_BATCH = 8


class PeriodicFVD:
    """fvd = PeriodicFVD(cfg, device)(G_ema) -> {"fvd": float, "fvd_clips": N, "fvd_protocol": version,
    "fvd_diversity": the clips' I3D diversity over the real clips' (SetStats.diversity; near 0: collapsed)}."""

    def __init__(self, cfg, device, model: Optional[torch.nn.Module] = None):
        from vidgan.metrics.i3d import MIN_FRAMES

        if cfg.model.frames < MIN_FRAMES:
            raise InputError(f"eval_every needs clips of at least {MIN_FRAMES} frames for the I3D of FVD, but "
                             f"model.frames is {cfg.model.frames}; set eval_every=0 or use --frames {MIN_FRAMES}+.")
        if cfg.eval_clips < 2:
            raise InputError(f"eval_clips must be at least 2 for FVD, got {cfg.eval_clips}.")
        from vidgan.data import VideoDataset
        from vidgan.metrics import FeatureExtractor

        mc = cfg.model
        self.dataset = VideoDataset(cfg.data, frames=mc.frames, resolution=mc.resolution, stride=cfg.stride,
                                    keep_aspect=cfg.keep_aspect, mode="eval", seed=cfg.seed,
                                    eval_clips=cfg.eval_clips)
        self.extractor = FeatureExtractor(model=model, i3d=cfg.i3d, device=device, batch=EVAL_BATCH,
                                          companions=False)
        self.device = torch.device(device)
        self.n = len(self.dataset)
        self.seed = cfg.seed + 7777
        self._real = None

    def _real_chunks(self):
        for i in range(0, self.n, EVAL_BATCH):
            yield np.stack([self.dataset.fetch(j)[0] for j in range(i, min(i + EVAL_BATCH, self.n))])

    @torch.no_grad()
    def _fake_chunks(self, G):
        from vidgan.export import to_uint8

        gen = torch.Generator().manual_seed(self.seed)
        for i in range(0, self.n, EVAL_BATCH):
            b = min(EVAL_BATCH, self.n - i)
            z = G.sample_content(b, generator=gen, device=self.device)
            m = G.sample_motion(b, generator=gen, device=self.device)
            yield to_uint8(G(z, m).float().nan_to_num_(0.0).clamp_(-1, 1))          # [b, T, H, W, 3]

    def __call__(self, G) -> Dict[str, Any]:
        from vidgan.metrics import PROTOCOL_VERSION, fvd_from_stats
        from vidgan.metrics.stats import diversity_ratio

        if self._real is None:
            self._real = self.extractor.stats(self._real_chunks(), total=self.n)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            fake = self.extractor.stats(self._fake_chunks(G), total=self.n)
        ratio = diversity_ratio(fake.diversity(), self._real.diversity())
        return {"fvd": float(fvd_from_stats(self._real, fake)), "fvd_clips": self.n,
                "fvd_protocol": PROTOCOL_VERSION, "fvd_diversity": None if ratio is None else round(ratio, 4)}
