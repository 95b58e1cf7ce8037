"""The training loop: `train(cfg)` (what `vidgan train` calls) and the `Trainer` behind it.

One step, on every rank, with a per-rank micro-batch of batch / (world_size * accum) clips:

    D update:  accum rounds of  real ~ data, fake = G(z, motion) (no grad), both augmented,
               loss = sum over {frame D, clip D, pair D if model.pair_d} of
                      weight * (d_loss + WGAN-GP | lazy R1 every k steps),
               the pair D also calling mismatched real clips fake (pair_mismatch);
               with model.content_encoder, E's contrastive loss on the real clips (InfoNCE: two
               far-apart frames of a clip against those of the other clips of the micro-batch);
               gradients averaged over ranks, one Adam step for Df, Dc (and Dp; and E).
    G update:  accum rounds of  fake = G(z, motion), augmented, loss = sum of weight * g_loss(D(fake))
               (+ content_weight * (1 - mean cosine similarity of E's embeddings of frames of one
               fake clip), with model.content_encoder);
               gradients averaged over ranks, one Adam step for G; then the EMA of G.
               Skipped in the first d_warmup steps.

A new run may start G from a trained generator (init_from); the discriminators then start fresh.

Every step re-seeds torch/numpy/python from (seed, rank, step) and the data stream is a pure
function of its position, so a resumed run repeats an uninterrupted one bit for bit. A NaN or
Inf loss restores the last good state (the latest checkpoint, kept in memory), halves the
learning rates and goes on; a second one stops the run, leaving the checkpoints as they were.
"""
import contextlib
import copy
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from vidgan.errors import CheckpointError, InputError, VidganError
from vidgan.models import (ClipDiscriminator, ContentEncoder, FrameDiscriminator, ModelConfig, PairDiscriminator,
                           TemporalGenerator)
from vidgan.training import distributed as D
from vidgan.training.augment import VideoAugment, adjust_p
from vidgan.training.config import RUN_CONFIG_NAME, TrainConfig
from vidgan.training.ema import ema_beta, make_ema, update_ema
from vidgan.training.losses import d_loss, d_loss_fake, g_loss, gradient_penalty, r1_penalty
from vidgan.training.reporting import Reporter, truncate_stats
from vidgan.training.state import (clean_temp, find_resumable, list_checkpoints, rng_state, save_checkpoint,
                                   set_rng_state)

ADA_INTERVAL = 4  # steps between adaptive-augmentation updates
CONTENT_TAU = 0.1  # temperature of the content encoder's contrastive loss
# Model settings that shape G's weights or what they compute: a generator from init_from must match them all
# (the others concern the discriminators, the content encoder, or may change on resume).
GENERATOR_SETTINGS = ("resolution", "z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "motion", "motion_dim",
                      "motion_code_dim", "motion_spacing", "motion_interp", "time_features", "time_period_min",
                      "time_period_max", "motion_to_styles", "motion_warp", "warp_resolution",
                      "warp_groups", "warp_transform", "warp_limit", "channel_base", "channel_max", "conv_clamp")


class TrainingDiverged(VidganError):
    """The losses became NaN/Inf again after the learning rate was lowered once."""


def _step_seed(seed: int, rank: int, step: int) -> int:
    """A well-mixed 63-bit seed for one (run seed, rank, step)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, rank, step]).generate_state(2, np.uint64)[0] >> 1)


def _cpu_clone(obj):
    """Deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_clone(v) for v in obj)
    return copy.deepcopy(obj)


@torch.no_grad()
def _to_channels_last(module: torch.nn.Module) -> None:
    """channels_last (NHWC) storage for every 4D parameter (2D conv weights); the others stay as they are."""
    for p in module.parameters():
        if p.ndim == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)


class Trainer:
    """Builds everything for one run from a TrainConfig; `run()` trains and returns a summary dict.

    hooks: optional {"after_step": fn(trainer)} called on every rank after each completed step.
    """

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print,
                 hooks: Optional[Dict[str, Callable[["Trainer"], None]]] = None):
        cfg.validate()
        self.cfg, self.log, self.hooks = cfg, log, dict(hooks or {})
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.micro = cfg.check_world(world)          # before joining the group: a clear error on every rank
        if cfg.data is None:
            raise InputError("no training data given; pass --data PATH (frame folders, video files or a .vidpack).")
        self._owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
        self.dist = D.setup(cfg.device)
        self.device = self.dist.device
        self.main = self.dist.is_main
        self.run_dir = Path(cfg.run_dir)
        self._stop_signal = 0
        self._fired: List[int] = []
        self.nan_events = 0
        self.lr_scale = 1.0
        self.step = 0
        self.resumed_from: Optional[str] = None
        self._last_saved: Optional[int] = None
        self._notes = set()
        if cfg.amp and self.device.type != "cuda":
            self._note("amp (bf16 autocast) works on CUDA only; training in float32 on the CPU.")
        if cfg.channels_last and self.device.type != "cuda":
            self._note("channels_last helps on CUDA only; ignored on the CPU.")

        from vidgan.data import VideoDataset

        mc = cfg.model
        self.dataset = VideoDataset(cfg.data, frames=mc.frames, resolution=mc.resolution, stride=cfg.stride,
                                    keep_aspect=cfg.keep_aspect, hflip=cfg.hflip, mode="train", seed=cfg.seed)
        self._build_models()
        self.augment = VideoAugment(cfg.augment_p, cfg.augment)
        self.fvd = None
        if cfg.eval_every and self.main:                 # I3D and the real clips' list, checked up front
            from vidgan.training.evaluation import PeriodicFVD

            self.fvd = PeriodicFVD(cfg, self.device)
        self._resume()
        self.snapshot = self._snapshot()

    # ------------------------------------------------------------------ construction
    def _build_models(self) -> None:
        cfg, mc, dev = self.cfg, self.cfg.model, self.device
        torch.manual_seed(cfg.seed)                   # identical initial weights on every rank
        self.G = TemporalGenerator(mc).to(dev).train()
        self.Df = FrameDiscriminator(mc).to(dev).train()
        self.Dc = ClipDiscriminator(mc).to(dev).train()
        # Dp is built last, so G, Df and Dc start from the same weights with or without it.
        self.Dp = PairDiscriminator(mc).to(dev).train() if mc.pair_d else None
        self.E = ContentEncoder(mc).to(dev).train() if mc.content_encoder else None
        # The trained modules, by their checkpoint names.
        self.modules = {"G": self.G, "Df": self.Df, "Dc": self.Dc}
        if self.Dp is not None:
            self.modules["Dp"] = self.Dp
        if self.E is not None:
            self.modules["E"] = self.E
        if cfg.channels_last and dev.type == "cuda":
            for m in self.modules.values():
                _to_channels_last(m)
        self.G_ema = make_ema(self.G)
        for m in list(self.modules.values()) + [self.G_ema]:
            D.broadcast_module(m, self.dist)
        # (name, module, loss weight) of the discriminators that train
        self.discs = [(n, m, w) for n, m, w in (("f", self.Df, cfg.frame_weight), ("c", self.Dc, cfg.clip_weight),
                                                 ("p", self.Dp, cfg.pair_weight)) if m is not None and w > 0]
        self.r1_on = cfg.loss != "wgan-gp" and cfg.r1_gamma > 0
        # Lazy regularisation: fold the R1 steps into D's Adam settings (StyleGAN2's mb_ratio).
        ratio = cfg.r1_every / (cfg.r1_every + 1) if self.r1_on else 1.0
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=1e-8)
        d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
        d_params = [p for n, m, _ in self.discs if n != "p" for p in m.parameters()]
        groups = [{"params": d_params}]
        if self.Dp is not None:      # a group of its own, so a run that adds Dp keeps Df's and Dc's Adam moments
            groups.append({"params": [p for n, m, _ in self.discs if n == "p" for p in m.parameters()]})
        self.opt_D = torch.optim.Adam(groups, lr=d_lr * ratio, betas=tuple(b ** ratio for b in cfg.betas), eps=1e-8)
        # E learns with G's settings, in an optimiser of its own (so it can be added to a trained run).
        self.opt_E = torch.optim.Adam(self.E.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=1e-8) \
            if self.E is not None else None
        self.base_lr = {"G": cfg.lr, "D": d_lr * ratio, "E": cfg.lr}
        self.d_params = [p for _, m, _ in self.discs for p in m.parameters()]
        n = cfg.sample_num
        gen = torch.Generator().manual_seed(cfg.seed + 12345)   # fixed sample seeds, independent of training
        self.sample_z = self.G.sample_content(n, generator=gen, device="cpu")
        self.sample_m = self.G.sample_motion(n, generator=gen, device="cpu")

    def _optimizers(self):
        """(optimiser, base-lr key, state name) of everything that trains."""
        out = [(self.opt_G, "G", "opt_G"), (self.opt_D, "D", "opt_D")]
        return out + ([(self.opt_E, "E", "opt_E")] if self.opt_E is not None else [])

    def _set_lr(self) -> None:
        for opt, key, _ in self._optimizers():
            for g in opt.param_groups:
                g["lr"] = self.base_lr[key] * self.lr_scale

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        cfg = self.cfg
        if self.main:
            clean_temp(self.run_dir)
        D.barrier(self.dist)
        found = find_resumable(self.run_dir, cfg.model.to_dict(), self.G_ema, self.modules, log=self._warn) \
            if list_checkpoints(self.run_dir) else None
        steps = D.gather_objects(-1 if found is None else int(found[1]["step"]), self.dist)
        if len(set(steps)) > 1:
            raise InputError(f"the ranks found different checkpoints in {self.run_dir} (steps {steps}); "
                             "put the run directory on a filesystem every node shares.")
        if found is not None:
            path, st = found
            try:
                self.opt_G.load_state_dict(st["opt_G"])
                self.opt_D.load_state_dict(self._opt_D_state(st["opt_D"]))
                if self.opt_E is not None and "E" not in st.get("fresh_modules", []):
                    self.opt_E.load_state_dict(st["opt_E"])
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(f"checkpoint file {path / 'state.pt'} does not match this run's optimisers "
                                      f"({type(exc).__name__}: {str(exc).splitlines()[0]}); resume with the "
                                      "settings it was made with, or use a new --out.") from None
            if "Dp" in st.get("fresh_modules", []):       # a pair discriminator added to a trained run
                self.Dp.init_from(self.Df)
                self._warn("note: Dp starts as a copy of Df that looks at the earlier frame of each pair.")
            if "E" in st.get("fresh_modules", []):
                self._warn("note: the content encoder E starts from fresh weights.")
            self.step = int(st["step"])
            self.lr_scale = float(st.get("lr_scale", 1.0))
            self.nan_events = int(st.get("nan_events", 0))
            self._fired = list(st.get("debug_nan_fired", []))
            self.augment.p = float(st.get("augment_p", cfg.augment_p))
            rngs = st.get("rng", [])
            if self.dist.rank < len(rngs):
                set_rng_state(rngs[self.dist.rank])
            self.resumed_from = str(path)
            self._last_saved = self.step
            self._set_lr()
            if self.main:
                truncate_stats(self.run_dir, self.step)
            if cfg.init_from is not None:
                self._warn(f"note: init_from ({cfg.init_from}) starts a new run only; this one resumes from "
                           f"{path.name}.")
        elif cfg.init_from is not None:
            self._init_generator(cfg.init_from)
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_json(str(self.run_dir / RUN_CONFIG_NAME))
        D.barrier(self.dist)

    def _init_generator(self, source: str) -> None:
        """G and G_ema of a new run start from the generator in `source` ("default": the embedded model)."""
        from vidgan.checkpoint import load
        from vidgan.errors import CheckpointError as _CkptError

        try:
            src = load(None if source == "default" else source)
        except _CkptError as exc:
            raise InputError(f"init_from: {exc}") from None
        mc = self.cfg.model
        differ = [k for k in GENERATOR_SETTINGS if getattr(src.cfg, k) != getattr(mc, k)
                  and not ModelConfig.inert(k, src.cfg.to_dict(), mc.to_dict())]
        if differ:
            raise InputError(f"init_from: the generator in {source} was built with other model settings ("
                             + ", ".join(f"model.{k} {getattr(src.cfg, k)!r} there, {getattr(mc, k)!r} here"
                                         for k in differ)
                             + "); use the same model settings as that generator.")
        with torch.no_grad():
            self.G.load_state_dict(src.state_dict())
            self.G_ema.load_state_dict(src.state_dict())
        training = src.meta.get("training") if isinstance(src.meta, dict) else None
        steps = training.get("steps") if isinstance(training, dict) else None
        self._warn(f"note: G starts from the generator in {source}" + (f" ({steps} steps)" if steps else "")
                   + "; the discriminators start fresh"
                   + (f" and train alone for the first {self.cfg.d_warmup} step{'s' * (self.cfg.d_warmup != 1)}."
                      if self.cfg.d_warmup else "."))

    def _opt_D_state(self, saved: Dict[str, Any]) -> Dict[str, Any]:
        """A saved D optimiser state, given the pair discriminator's (fresh) group when it predates it."""
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if self.Dp is None or not isinstance(groups, list) or len(groups) != len(self.opt_D.param_groups) - 1:
            return saved
        n = sum(len(g["params"]) for g in groups)
        extra = dict(self.opt_D.state_dict()["param_groups"][-1])
        extra["params"] = list(range(n, n + len(extra["params"])))   # no entries in "state": Adam starts at 0
        return {"state": saved["state"], "param_groups": list(groups) + [extra]}

    # ------------------------------------------------------------------ state in memory / on disk
    def _snapshot(self) -> Dict[str, Any]:
        """The last good state (restored on NaN/Inf)."""
        snap = {name: _cpu_clone(m.state_dict()) for name, m in self.modules.items()}
        snap.update({name: _cpu_clone(opt.state_dict()) for opt, _, name in self._optimizers()})
        snap.update({"step": self.step, "G_ema": _cpu_clone(self.G_ema.state_dict()), "augment_p": self.augment.p})
        return snap

    def _restore(self, snap: Dict[str, Any]) -> None:
        for name, m in list(self.modules.items()) + [("G_ema", self.G_ema)]:
            m.load_state_dict(snap[name])
        for opt, _, name in self._optimizers():
            opt.load_state_dict(snap[name])
        self.augment.p = snap["augment_p"]
        self.step = snap["step"]

    def _save(self) -> Optional[Path]:
        rngs = D.gather_objects(rng_state(), self.dist)
        path = None
        if self.main:
            cfg = self.cfg
            state = {"step": self.step, "clips_seen": self.step * cfg.batch,
                     "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "rng": rngs,
                     "data_position": self.step * cfg.accum * self.micro, "world_size": self.dist.world_size,
                     "lr_scale": self.lr_scale, "augment_p": self.augment.p, "nan_events": self.nan_events,
                     "debug_nan_fired": list(self._fired)}
            if self.opt_E is not None:
                state["opt_E"] = self.opt_E.state_dict()
            meta = {"training": {"steps": self.step, "kimg": self.step * cfg.batch / 1000.0, "data": cfg.data,
                                 "batch": cfg.batch, "loss": cfg.loss, "seed": cfg.seed}}
            path = save_checkpoint(self.run_dir, self.step, self.G_ema, self.modules, state, cfg.to_dict(),
                                   meta=meta, keep=cfg.keep)
        D.barrier(self.dist)
        self._last_saved = self.step
        self.snapshot = self._snapshot()
        return path

    # ------------------------------------------------------------------ one step
    def _reseed(self) -> None:
        s = _step_seed(self.cfg.seed, self.dist.rank, self.step)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)

    def _autocast(self):
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _fake(self, n: int) -> torch.Tensor:
        z = self.G.sample_content(n, device=self.device)           # [n, Z]
        start = self._clip_start()
        frames = self.G.cfg.frames
        m = self.G.sample_motion(n, frames + start, device=self.device)   # [n, K, E] covering start..end
        with self._autocast():
            codes = self.G.motion_trajectory(m, frames, start=start)       # [n, T, M]
            return self.G.synthesize(z, codes).float()                     # [n, 3, T, H, W]

    def _embed(self, video: torch.Tensor, frame_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Unit-length content embeddings [n, k, D] of k frames of each clip."""
        with self._autocast():
            e = self.E(video, frame_index=frame_index).float()
        return torch.nn.functional.normalize(e, dim=-1)

    def _encoder_loss(self, real: torch.Tensor) -> torch.Tensor:
        """E's contrastive (InfoNCE) loss on real clips: for each clip, one of two far-apart frames must
        pick the other out of the other frames of the micro-batch, both ways."""
        e = self._embed(real, ContentEncoder.sample_pairs(real.shape[0], real.shape[2]))     # [n, 2, D]
        logits = e[:, 0] @ e[:, 1].T / CONTENT_TAU                                          # [n, n]
        labels = torch.arange(len(logits), device=logits.device)
        ce = torch.nn.functional.cross_entropy
        return 0.5 * (ce(logits, labels) + ce(logits.T, labels))

    def _content_loss(self, video: torch.Tensor) -> torch.Tensor:
        """G's content term: 1 - the mean cosine similarity of E's embeddings of two different frames of
        one clip (over every pair of the k frames read, and every clip)."""
        e = self._embed(video)                                          # [n, k, D], k >= 2
        k = e.shape[1]
        total = e.sum(dim=1).square().sum(dim=1)                        # |sum_i e_i|^2 = k + sum_{i!=j} e_i.e_j
        return 1 - ((total - k) / (k * (k - 1))).mean()

    def _clip_start(self) -> int:
        """First frame time of this step's fake clips: 0, or uniform in 0..cfg.time_offset (global RNG)."""
        if not self.cfg.time_offset:
            return 0                                               # draws nothing: the RNG stream is unchanged
        return int(torch.randint(0, int(self.cfg.time_offset) + 1, (1,)).item())

    def _mismatched(self, real: torch.Tensor) -> Optional[torch.Tensor]:
        """Real clips whose second half (frames T//2..) comes from another clip of the micro-batch (the
        previous one, cyclically), augmented as one clip; None when the pair discriminator does not train on them.
        For even T every pair (frames at least T//2 apart) takes its earlier frame from the first half and
        its later one from the second: two real frames of two different clips. For odd T one allowed pair,
        (T//2, T-1), lies in the second half alone, so it is a matched pair counted as mismatched."""
        if not self.cfg.pair_mismatch_on:
            return None
        half = real.shape[2] // 2
        mixed = torch.cat([real[:, :, :half], real.roll(1, dims=0)[:, :, half:]], dim=2)
        return self.augment(mixed).detach()

    def _finite(self, value: torch.Tensor) -> bool:
        return bool(torch.isfinite(D.all_reduce_mean(value.detach().float(), self.dist)).all())

    def _train_step(self, loader) -> Optional[Dict[str, float]]:
        """One D and one G update; None if a loss was NaN/Inf (nothing was applied)."""
        cfg, accum = self.cfg, self.cfg.accum
        # Real clips first: the data loader draws from the global RNG when it (re)starts its iterator,
        # so fetch before re-seeding, or a resumed run would see different noise from an uninterrupted one.
        reals = [next(loader) for _ in range(accum)]                          # accum x [n, 3, T, H, W]
        self._reseed()
        inject = (self.step + 1) in cfg.debug_nan_steps and (self.step + 1) not in self._fired
        do_r1 = self.r1_on and self.step % cfg.r1_every == 0
        logs: Dict[str, torch.Tensor] = {}

        def acc(key, v):
            logs[key] = logs.get(key, 0) + v.detach().float() / accum

        # ---- discriminators
        self.G.requires_grad_(False)
        for _, m, _ in self.discs:
            m.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        if self.E is not None:
            self.E.requires_grad_(True)
            self.opt_E.zero_grad(set_to_none=True)
        d_total = e_total = 0
        for real in reals:
            real = real.to(self.device, non_blocking=True)                    # [n, 3, T, H, W]
            with torch.no_grad():
                fake = self._fake(real.shape[0])
            mism_a = self._mismatched(real)
            real_a = self.augment(real).detach().requires_grad_(do_r1)
            fake_a = self.augment(fake)
            loss = 0
            for name, disc, w in self.discs:
                with self._autocast():
                    lr_, lf_ = disc(real_a), disc(fake_a)                       # [n, 1] each
                term = d_loss(cfg.loss, lr_, lf_)
                acc(f"loss_D{name}", term)
                if name == "p" and mism_a is not None:
                    with self._autocast():
                        lm_ = disc(mism_a)
                    mism = d_loss_fake(cfg.loss, lm_)
                    acc("loss_Dp_mismatch", mism)
                    term = term + cfg.pair_mismatch * mism
                acc("real_sign", lr_.detach().float().sign().mean() / len(self.discs))
                term = w * term
                if cfg.loss == "wgan-gp":
                    def critic(v, disc=disc):
                        with self._autocast():
                            return disc(v)
                    gp = gradient_penalty(critic, real_a, fake_a)
                    acc(f"gp_{name}", gp)
                    term = term + cfg.gp_weight * w * gp
                if do_r1:
                    r1 = r1_penalty(lr_, real_a)
                    acc(f"r1_{name}", r1)
                    term = term + w * r1 * (cfg.r1_gamma / 2 * cfg.r1_every)
                loss = loss + term
            if inject:
                loss = loss * float("nan")
            both = loss
            if self.E is not None:                                          # E learns from the real clips
                e_loss = self._encoder_loss(real)
                acc("loss_E", e_loss)
                both = loss + e_loss                                        # E shares no parameter with the Ds
                e_total = e_total + e_loss.detach() / accum
            (both / accum).backward()
            d_total = d_total + loss.detach() / accum
        if not self._finite(d_total + e_total):
            return None
        D.all_reduce_grads(self.d_params, self.dist)
        self.opt_D.step()
        for _, m, _ in self.discs:
            D.sync_buffers(m, self.dist)
        if self.E is not None:
            D.all_reduce_grads(self.E.parameters(), self.dist)
            self.opt_E.step()
            self.E.requires_grad_(False)

        # ---- generator
        for _, m, _ in self.discs:
            m.requires_grad_(False)
        if self.step < cfg.d_warmup:                                    # the discriminators catch up first
            D.sync_buffers(self.G, self.dist)                           # w_avg moved with the fakes above
            logs["loss_D"] = d_total
            return self._reduce_logs(logs)
        self.G.requires_grad_(True)
        self.opt_G.zero_grad(set_to_none=True)
        g_total = 0
        for _ in range(accum):
            fake = self._fake(self.micro)
            fake_a = self.augment(fake)
            loss = 0
            for name, disc, w in self.discs:
                with self._autocast():
                    lf_ = disc(fake_a)
                term = g_loss(cfg.loss, lf_)
                acc(f"loss_G{name}", term)
                loss = loss + w * term
            if self.E is not None and cfg.content_weight > 0:
                term = self._content_loss(fake)                         # gradients reach G through E
                acc("loss_Gcontent", term)
                loss = loss + cfg.content_weight * term
            (loss / accum).backward()
            g_total = g_total + loss.detach() / accum
        if not self._finite(g_total):
            return None
        D.all_reduce_grads(self.G.parameters(), self.dist)
        self.opt_G.step()
        D.sync_buffers(self.G, self.dist)                               # w_avg: mean over ranks
        self.G.requires_grad_(False)
        beta = ema_beta(cfg.batch, cfg.ema_kimg, self.step * cfg.batch, cfg.ema_rampup)
        update_ema(self.G_ema, self.G, beta)

        logs["loss_D"], logs["loss_G"] = d_total, g_total
        return self._reduce_logs(logs)

    def _reduce_logs(self, logs: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """The step's logged values, averaged over ranks, as floats."""
        keys = sorted(logs)
        vals = D.all_reduce_mean(torch.stack([logs[k].reshape(()) for k in keys]), self.dist).tolist()
        return dict(zip(keys, vals))

    # ------------------------------------------------------------------ NaN recovery
    def _recover(self, reporter: Reporter) -> None:
        bad_step = self.step + 1
        if (bad_step in self.cfg.debug_nan_steps) and bad_step not in self._fired:
            self._fired.append(bad_step)
        self.nan_events += 1
        last = self._last_saved
        where = (f"the last good checkpoint {self.run_dir / 'checkpoints' / f'step-{last:08d}'} is intact"
                 if last is not None else "no checkpoint had been written yet")
        if self.nan_events > 1:
            reporter.event(bad_step, event="diverged", message="NaN/Inf loss after lowering the learning rate")
            raise TrainingDiverged(f"a loss became NaN/Inf at step {bad_step} again after the learning rate was "
                                   f"lowered once; the run stops here and {where} (try a lower --lr, a larger "
                                   "r1_gamma, or --set amp=false).")
        self._restore(self.snapshot)
        reporter.rewind(self.step)
        self.lr_scale *= 0.5
        self._set_lr()
        reporter.event(bad_step, event="nan", restored_step=self.step, lr_scale=self.lr_scale)
        reporter.write(f"warning: NaN/Inf loss at step {bad_step}; restored the state of step {self.step} and "
                       f"halved the learning rates (G {self.opt_G.param_groups[0]['lr']:.3g}, "
                       f"D {self.opt_D.param_groups[0]['lr']:.3g}). A second occurrence stops the run.")

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def render_samples(self) -> np.ndarray:
        """The fixed-seed sample clips of G_ema as uint8 [N, T, H, W, 3] (the training RNG is untouched)."""
        from vidgan.export import to_uint8

        out = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for i in range(0, self.sample_z.shape[0], 8):
                z = self.sample_z[i:i + 8].to(self.device)
                m = self.sample_m[i:i + 8].to(self.device)
                with self._autocast():
                    out.append(self.G_ema(z, m).float().cpu())
        return to_uint8(torch.cat(out).nan_to_num_(0.0).clamp_(-1, 1))

    def _write_reals(self) -> None:
        """samples/reals.png once per run directory: a contact sheet of training clips, to compare samples with."""
        path = self.run_dir / "samples" / "reals.png"
        if not self.main or not self.cfg.sample_every or path.exists():
            return
        from vidgan.export import contact_sheet, to_uint8, write_image

        n = min(8, len(self.dataset), self.cfg.sample_num)
        clips = torch.stack([self.dataset[(i, self.cfg.seed)] for i in range(n)])   # [n, 3, T, H, W]
        write_image(contact_sheet(to_uint8(clips)), str(path))

    def _write_samples(self, reporter: Reporter) -> Dict[str, str]:
        if not self.main:
            return {}
        return reporter.samples(self.step, self.render_samples(), self.cfg.sample_fps)

    def _evaluate(self, reporter: Reporter) -> None:
        if self.fvd is not None:
            rec = self.fvd(self.G_ema)
            reporter.event(self.step, **rec)
            reporter.write(f"step {self.step}: FVD {rec['fvd']:.2f} ({rec['fvd_clips']} clips, {rec['fvd_protocol']})")
        D.barrier(self.dist)

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame):
        if self._stop_signal:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self._stop_signal = signum
        if self.main:
            self.log(f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this step, then stopping "
                     "(Ctrl-C again to abort without saving).")

    @contextlib.contextmanager
    def _signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ run
    def _loader(self):
        from vidgan.data import build_loader

        cfg = self.cfg
        return build_loader(self.dataset, self.micro, workers=cfg.workers, rank=self.dist.rank,
                            world_size=self.dist.world_size, seed=cfg.seed,
                            start=self.step * cfg.accum * self.micro)

    def _note(self, msg: str) -> None:
        if msg not in self._notes and getattr(self, "main", True):
            self._notes.add(msg)
            self.log(f"note: {msg}")

    def _warn(self, msg: str) -> None:
        if self.dist.is_main:
            self.log(msg)

    def run(self) -> Dict[str, Any]:
        """Train from the current step up to cfg.steps (or a signal / the time limit); return a summary."""
        cfg = self.cfg
        start_step = self.step
        rep = Reporter(self.run_dir, cfg.steps, self.step, cfg.batch, self.device, enabled=self.main,
                       progress=cfg.progress, tensorboard=cfg.tensorboard, log=self.log)
        if self.main:
            n_par = {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules.items()}
            rep.write(f"vidgan train: {self.dataset.summary()}")
            rep.write(f"model {cfg.model.resolution}x{cfg.model.resolution}x{cfg.model.frames} "
                      f"({cfg.model.motion} motion), parameters G {n_par['G']:,} Df {n_par['Df']:,} "
                      f"Dc {n_par['Dc']:,}" + (f" Dp {n_par['Dp']:,}" if "Dp" in n_par else "")
                      + (f" E {n_par['E']:,}" if "E" in n_par else "")
                      + f"; batch {cfg.batch} = {self.dist.world_size} rank(s) x {cfg.accum} x {self.micro} "
                      f"on {self.device}; "
                      + (f"resumed from {self.resumed_from}" if self.resumed_from else "new run")
                      + f"; writing to {self.run_dir}")
        t0 = time.perf_counter()
        stopped = "completed"
        samples: Dict[str, str] = {}
        last: Dict[str, Any] = {}
        ada_sum, ada_n = 0.0, 0
        loader = self._loader()
        self._write_reals()
        try:
            with self._signals():
                while self.step < cfg.steps:
                    try:
                        values = self._train_step(loader)
                    except VidganError:
                        # Bad data found while fetching the step's clips, before any update: keep the
                        # steps trained so far (one process only; ranks of a group would wait on each other).
                        if not self.dist.enabled and self.step > start_step and self._last_saved != self.step:
                            self.log(f"vidgan train: saving a checkpoint at step {self.step} before stopping")
                            self._save()
                        raise
                    if values is None:
                        self._recover(rep)
                        loader.close()
                        loader = self._loader()
                        continue
                    self.step += 1
                    if cfg.augment_target is not None:
                        ada_sum, ada_n = ada_sum + values["real_sign"], ada_n + 1
                        if ada_n == ADA_INTERVAL:
                            self.augment.p = adjust_p(self.augment.p, ada_sum / ada_n, cfg.augment_target,
                                                      cfg.batch, ADA_INTERVAL, cfg.augment_speed_kimg)
                            ada_sum, ada_n = 0.0, 0
                    rep.add(values)
                    rep.step_done(self.step, values)
                    if "after_step" in self.hooks:
                        self.hooks["after_step"](self)
                    time_up = cfg.minutes is not None and time.perf_counter() - t0 > cfg.minutes * 60
                    flags = D.all_reduce_mean(torch.tensor([float(bool(self._stop_signal)), float(time_up)]),
                                              self.dist)
                    stop = bool(flags[0] > 0) or bool(flags[1] > 0)
                    if stop:
                        stopped = "signal" if flags[0] > 0 else "time limit"
                    if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == cfg.steps or stop):
                        last = rep.flush(self.step, {"lr_G": self.opt_G.param_groups[0]["lr"],
                                                     "lr_D": self.opt_D.param_groups[0]["lr"],
                                                     "augment_p": self.augment.p})
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        samples = self._write_samples(rep)
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        self._evaluate(rep)
                    if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or stop:
                        self._save()
                    if stop:
                        break
                if self._last_saved != self.step:
                    self._save()
                if cfg.sample_every and self.step > start_step and self.step % cfg.sample_every:
                    samples = self._write_samples(rep)
        finally:
            loader.close()
            rep.close()
        seconds = time.perf_counter() - t0
        done = self.step - start_step
        ckpts = list_checkpoints(self.run_dir)
        summary = {"run_dir": str(self.run_dir), "device": str(self.device), "step": self.step,
                   "start_step": start_step, "steps_run": done, "resumed_from": self.resumed_from,
                   "stopped": stopped, "seconds": seconds, "sec_per_step": seconds / done if done else None,
                   "kimg": self.step * cfg.batch / 1000.0, "nan_events": self.nan_events,
                   "checkpoint": str(ckpts[-1][1]) if ckpts else None, "samples": samples,
                   "last_stats": last}
        if self.main:
            self.log(f"vidgan train: {stopped} at step {self.step} ({done} steps in {seconds:.1f} s); "
                     f"checkpoint {summary['checkpoint']}")
        return summary

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group:
            D.teardown()


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train (or resume) the run described by `cfg`; returns a summary dict (see Trainer.run)."""
    trainer = None
    try:
        trainer = Trainer(cfg, log=log)
        return trainer.run()
    finally:
        if trainer is not None:
            trainer.close()
        elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
            D.teardown()
