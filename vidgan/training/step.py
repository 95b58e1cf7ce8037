"""One training step: the networks, their optimisers and what a step does to them (`Networks.train_step`).

One step, on every rank, with a per-rank micro-batch of batch / (world_size * accum) clips:

    D update:  accum rounds of  real ~ data, fake = G(z, motion) (no grad), both augmented,
               the discriminators' objective (objectives.py); gradients averaged over ranks, one
               Adam step for Df and Dc.
    G update:  accum rounds of  fake = G(z, motion), augmented, the generator's objective;
               gradients averaged over ranks, one Adam step for G; then the EMA of G.
               Skipped in the first d_warmup steps.

Every step re-seeds torch/numpy/python from (seed, rank, step), so a resumed run repeats an
uninterrupted one bit for bit.
"""
import contextlib
import copy
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from vidgan.device import compile_in_place
from vidgan.errors import CheckpointError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, TemporalGenerator
from vidgan.training import distributed as D
from vidgan.training.augment import VideoAugment
from vidgan.training.ema import ema_beta, make_ema, update_ema
from vidgan.training.objectives import discriminator_objective, generator_objective


def _phase(name: str):
    """A named range for torch.profiler (benchmarks/profile_step.py); costs nothing measurable otherwise."""
    return torch.profiler.record_function(name)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A well-mixed 63-bit seed for one (run seed, rank, step)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, rank, step]).generate_state(2, np.uint64)[0] >> 1)


def cpu_clone(obj):
    """Deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_clone(v) for v in obj)
    return copy.deepcopy(obj)


@torch.no_grad()
def _to_channels_last(module: torch.nn.Module) -> None:
    """channels_last (NHWC) storage for every 4D parameter (2D conv weights); the others stay as they are."""
    for p in module.parameters():
        if p.ndim == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)


def _eager_if(flag: bool):
    """Runs compiled modules eagerly inside (double backward, for R1 and WGAN-GP, does not go through
    torch.compile's AOTAutograd)."""
    return torch.compiler.set_stance("force_eager") if flag else contextlib.nullcontext()


class Networks:
    """G, G_ema, Df, Dc and their optimisers for one run (built from a TrainConfig on `dist`'s device)."""

    def __init__(self, cfg, dist: D.DistInfo, micro: int):
        self.cfg, self.dist, self.micro = cfg, dist, micro
        mc, dev = cfg.model, dist.device
        self.device = dev
        torch.manual_seed(cfg.seed)                   # identical initial weights on every rank
        self.G = TemporalGenerator(mc).to(dev).train()
        self.Df = FrameDiscriminator(mc).to(dev).train()
        self.Dc = ClipDiscriminator(mc).to(dev).train()
        self.modules = {"G": self.G, "Df": self.Df, "Dc": self.Dc}   # the trained modules, by checkpoint name
        if cfg.channels_last and dev.type == "cuda":
            for m in self.modules.values():
                _to_channels_last(m)
        self.G_ema = make_ema(self.G)
        if cfg.compile:
            compile_in_place(self.G.synthesis, self.Df, self.Dc)   # G's mapping and motion are tiny
        for m in list(self.modules.values()) + [self.G_ema]:
            D.broadcast_module(m, dist)
        # (name, module, loss weight) of the discriminators that train
        self.discs = [(n, m, w) for n, m, w in (("f", self.Df, cfg.frame_weight), ("c", self.Dc, cfg.clip_weight))
                      if w > 0]
        self.r1_on = cfg.loss != "wgan-gp" and cfg.r1_gamma > 0
        # Lazy regularisation: fold the R1 steps into D's Adam settings (StyleGAN2's mb_ratio).
        ratio = cfg.r1_every / (cfg.r1_every + 1) if self.r1_on else 1.0
        # One fused Adam kernel per parameter list: 0.7 ms instead of 3.4 ms for G's update on this project's CPU.
        fused = dev.type in ("cpu", "cuda")
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=1e-8, fused=fused)
        d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
        self.d_params = [p for _, m, _ in self.discs for p in m.parameters()]
        self.opt_D = torch.optim.Adam(self.d_params, lr=d_lr * ratio, betas=tuple(b ** ratio for b in cfg.betas),
                                      eps=1e-8, fused=fused)
        self.base_lr = {"G": cfg.lr, "D": d_lr * ratio}
        self.augment = VideoAugment(cfg.augment_p, cfg.augment)
        self.step, self.lr_scale, self.nan_events = 0, 1.0, 0
        self.fired: List[int] = []                   # debug_nan_steps already injected
        gen = torch.Generator().manual_seed(cfg.seed + 12345)   # fixed sample seeds, independent of training
        self.sample_z = self.G.sample_content(cfg.sample_num, generator=gen, device="cpu")   # [S, Z]
        self.sample_m = self.G.sample_motion(cfg.sample_num, generator=gen, device="cpu")    # [S, K, E]

    # ------------------------------------------------------------------ state
    def optimizers(self):
        """(optimiser, base-lr key, state name) of everything that trains."""
        return [(self.opt_G, "G", "opt_G"), (self.opt_D, "D", "opt_D")]

    def set_lr(self) -> None:
        for opt, key, _ in self.optimizers():
            for g in opt.param_groups:
                g["lr"] = self.base_lr[key] * self.lr_scale

    def snapshot(self) -> Dict[str, Any]:
        """The whole state in memory (restored on NaN/Inf)."""
        snap = {name: cpu_clone(m.state_dict()) for name, m in self.modules.items()}
        snap.update({name: cpu_clone(opt.state_dict()) for opt, _, name in self.optimizers()})
        snap.update({"step": self.step, "G_ema": cpu_clone(self.G_ema.state_dict()), "augment_p": self.augment.p})
        return snap

    def restore(self, snap: Dict[str, Any]) -> None:
        for name, m in list(self.modules.items()) + [("G_ema", self.G_ema)]:
            m.load_state_dict(snap[name])
        for opt, _, name in self.optimizers():
            opt.load_state_dict(snap[name])
        self.augment.p = snap["augment_p"]
        self.step = snap["step"]

    def training_state(self, rngs: list) -> Dict[str, Any]:
        """The networks' part of state.pt besides the weights; the loop adds the collapse watch's count (tensors,
        numbers, lists and dicts only)."""
        cfg = self.cfg
        return {"step": self.step, "clips_seen": self.step * cfg.batch,
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "rng": rngs,
                "data_position": self.step * cfg.accum * self.micro, "world_size": self.dist.world_size,
                "lr_scale": self.lr_scale, "augment_p": self.augment.p, "nan_events": self.nan_events,
                "debug_nan_fired": list(self.fired)}

    def load_training_state(self, st: Dict[str, Any], path) -> None:
        """The optimisers and counters of a checkpoint's state.pt (the weights are loaded already)."""
        from vidgan.training.state import set_rng_state

        try:
            self.opt_G.load_state_dict(st["opt_G"])
            self.opt_D.load_state_dict(st["opt_D"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint file {path / 'state.pt'} does not match this run's optimisers "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0]}); resume with the "
                                  "settings it was made with, or start a new run in another directory.") from None
        self.step = int(st["step"])
        self.lr_scale = float(st.get("lr_scale", 1.0))
        self.nan_events = int(st.get("nan_events", 0))
        self.fired = list(st.get("debug_nan_fired", []))
        self.augment.p = float(st.get("augment_p", self.cfg.augment_p))
        rngs = st.get("rng", [])
        if self.dist.rank < len(rngs):
            set_rng_state(rngs[self.dist.rank])
        self.set_lr()

    @torch.no_grad()
    def render_samples(self) -> np.ndarray:
        """The fixed-seed sample clips of G_ema as uint8 [S, T, H, W, 3] (the training RNG is untouched)."""
        from vidgan.export import to_uint8

        out = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            for i in range(0, self.sample_z.shape[0], 8):
                z = self.sample_z[i:i + 8].to(self.device)
                m = self.sample_m[i:i + 8].to(self.device)
                with self.autocast():
                    out.append(self.G_ema(z, m).float().cpu())
        return to_uint8(torch.cat(out).nan_to_num_(0.0).clamp_(-1, 1))

    # ------------------------------------------------------------------ one step
    def autocast(self):
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _reseed(self) -> None:
        s = step_seed(self.cfg.seed, self.dist.rank, self.step)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)

    def _clip_start(self) -> int:
        """First frame time of this step's fake clips: 0, or uniform in 0..cfg.time_offset (global RNG)."""
        if not self.cfg.time_offset:
            return 0                                               # draws nothing: the RNG stream is unchanged
        return int(torch.randint(0, int(self.cfg.time_offset) + 1, (1,)).item())

    def fake(self, n: int) -> torch.Tensor:
        """n fake clips [n, 3, T, H, W] of G, starting at this step's frame time."""
        z = self.G.sample_content(n, device=self.device)                   # [n, Z]
        start = self._clip_start()
        frames = self.G.cfg.frames
        m = self.G.sample_motion(n, frames + start, device=self.device)   # [n, K, E] covering start..end
        with self.autocast():
            codes = self.G.motion_trajectory(m, frames, start=start)       # [n, T, M]
            return self.G.synthesize(z, codes).float()                     # [n, 3, T, H, W]

    def _finite(self, value: torch.Tensor) -> bool:
        return bool(torch.isfinite(D.all_reduce_mean(value.detach().float(), self.dist)).all())

    def train_step(self, reals: List[torch.Tensor]) -> Optional[Dict[str, float]]:
        """One D and one G update on accum micro-batches of real clips; the step's logged values, or None if
        a loss was NaN/Inf (then nothing was applied)."""
        cfg, accum = self.cfg, self.cfg.accum
        self._reseed()
        inject = (self.step + 1) in cfg.debug_nan_steps and (self.step + 1) not in self.fired
        do_r1 = self.r1_on and self.step % cfg.r1_every == 0
        logs: Dict[str, torch.Tensor] = {}

        def acc(key, v):
            logs[key] = logs.get(key, 0) + v.detach().float() / accum

        # ---- discriminators
        with _eager_if(self.eager_d(self.step)):
            d_total = self._d_update(reals, do_r1, inject, acc)
        if d_total is None:
            return None

        # ---- generator
        for _, m, _ in self.discs:
            m.requires_grad_(False)
        if self.step < cfg.d_warmup:                                    # the discriminators catch up first
            D.sync_buffers(self.G, self.dist)                           # w_avg moved with the fakes above
            logs["loss_D"] = d_total
            return self._reduce_logs(logs)
        g_total = self._g_update(acc)
        if g_total is None:
            return None
        logs["loss_D"], logs["loss_G"] = d_total, g_total
        return self._reduce_logs(logs)

    def eager_d(self, step: int) -> bool:
        """Whether a compiled run's discriminator update at `step` runs eager (it needs double backward)."""
        return self.cfg.compile and ((self.r1_on and step % self.cfg.r1_every == 0) or self.cfg.loss == "wgan-gp")

    def _d_update(self, reals, do_r1: bool, inject: bool, acc) -> Optional[torch.Tensor]:
        """One Adam step of the discriminators; their loss, or None if it was NaN/Inf (nothing applied)."""
        cfg, accum = self.cfg, self.cfg.accum
        self.G.requires_grad_(False)
        for _, m, _ in self.discs:
            m.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        d_total = 0
        for real in reals:
            real = real.to(self.device, non_blocking=True)                    # [n, 3, T, H, W]
            with torch.no_grad(), _phase("D: G forward (fakes)"):
                fake = self.fake(real.shape[0])
            real_a = self.augment(real).detach().requires_grad_(do_r1)
            fake_a = self.augment(fake)
            with _phase("D: forward" + (" + R1" if do_r1 else "")):
                loss = discriminator_objective(cfg, self.discs, real_a, fake_a, do_r1, acc, self.autocast)
            if inject:
                loss = loss * float("nan")
            with _phase("D: backward" + (" + R1" if do_r1 else "")):
                (loss / accum).backward()
            d_total = d_total + loss.detach() / accum
        if not self._finite(d_total):
            return None
        D.all_reduce_grads(self.d_params, self.dist)
        with _phase("D: optimiser"):
            self.opt_D.step()
        for _, m, _ in self.discs:
            D.sync_buffers(m, self.dist)
        return d_total

    def _g_update(self, acc) -> Optional[torch.Tensor]:
        """One Adam step of G and the EMA update; its loss, or None if it was NaN/Inf (nothing applied)."""
        cfg, accum = self.cfg, self.cfg.accum
        self.G.requires_grad_(True)
        self.opt_G.zero_grad(set_to_none=True)
        g_total = 0
        for _ in range(accum):
            with _phase("G: G forward"):
                fake = self.augment(self.fake(self.micro))
            with _phase("G: D forward"):
                loss = generator_objective(cfg, self.discs, fake, acc, self.autocast)
            with _phase("G: backward"):
                (loss / accum).backward()
            g_total = g_total + loss.detach() / accum
        if not self._finite(g_total):
            return None
        D.all_reduce_grads(self.G.parameters(), self.dist)
        with _phase("G: optimiser"):
            self.opt_G.step()
        D.sync_buffers(self.G, self.dist)                               # w_avg: mean over ranks
        self.G.requires_grad_(False)
        beta = ema_beta(cfg.batch, cfg.ema_kimg, self.step * cfg.batch, cfg.ema_rampup)
        with _phase("EMA"):
            update_ema(self.G_ema, self.G, beta)
        return g_total

    def _reduce_logs(self, logs: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """The step's logged values, averaged over ranks, as floats."""
        keys = sorted(logs)
        vals = D.all_reduce_mean(torch.stack([logs[k].reshape(()) for k in keys]), self.dist).tolist()
        return dict(zip(keys, vals))
