"""The run loop: the `Trainer` behind `train(cfg)` (phases.py).

A Trainer locks the run folder (runlock.py), builds the networks (step.py), resumes the folder's newest
usable checkpoint (or starts G from init_from), then repeats the step (step.py) until cfg.steps, a signal
or the time limit, writing stats, samples, FVD and checkpoints as configured.

The data stream is a pure function of its position and every step re-seeds from (seed, rank, step), so a
resumed run repeats an uninterrupted one bit for bit. A NaN or Inf loss restores the last good state (the
latest checkpoint, kept in memory), halves the learning rates and goes on; a second one stops the run,
leaving the checkpoints as they were.
"""
import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

import torch

from vidgan.errors import InputError, VidganError
from vidgan.hostmem import reuse_freed_memory
from vidgan.training import distributed as D
from vidgan.training.augment import adjust_p
from vidgan.training.config import RUN_CONFIG_NAME, TrainConfig
from vidgan.training.init_from import init_generator
from vidgan.training.reporting import Reporter, truncate_stats
from vidgan.training.runlock import RunLock
from vidgan.training.state import clean_temp, find_resumable, list_checkpoints, rng_state, save_checkpoint
from vidgan.training.step import Networks
from vidgan.training.watch import CollapseWatch, real_clips

ADA_INTERVAL = 4  # steps between adaptive-augmentation updates


class TrainingDiverged(VidganError):
    """The losses became NaN/Inf again after the learning rate was lowered once."""


class Trainer:
    """Builds everything for one run (or one phase of its schedule) from a TrainConfig; `run()` trains and
    returns a summary dict. `record` is the config written to the run folder and its checkpoints (default:
    cfg itself; `train` passes the whole config when cfg is one phase of its schedule).

    hooks: optional {"after_step": fn(trainer)} called on every rank after each completed step.
    """

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print,
                 hooks: Optional[Dict[str, Callable[["Trainer"], None]]] = None, record: Optional[TrainConfig] = None):
        cfg.validate()
        self.cfg, self.log, self.hooks = cfg, log, dict(hooks or {})
        self.record = cfg if record is None else record
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.micro = cfg.check_world(world)          # before joining the group: a clear error on every rank
        if cfg.data is None:
            raise InputError("no training data given; pass --data PATH (frame folders, video files or a .vidpack).")
        self._lock = RunLock(cfg.run_dir).__enter__()   # before anything reads or writes the run folder
        try:
            self._build()
        except BaseException:
            self._lock.__exit__()
            raise

    def _build(self) -> None:
        cfg = self.cfg
        self._owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
        self.dist = D.setup(cfg.device)
        self.device = self.dist.device
        self.main = self.dist.is_main
        self.run_dir = Path(cfg.run_dir)
        self._stop_signal = 0
        self.resumed_from: Optional[str] = None
        self._last_saved: Optional[int] = None
        self._notes = set()
        self._diversity: Dict[str, float] = {}            # the last sample grid's, for the next stats line
        if cfg.amp and self.device.type != "cuda":
            self._note("amp (bf16 autocast) works on CUDA only; training in float32 on the CPU.")
        if cfg.channels_last and self.device.type != "cuda":
            self._note("channels_last helps on CUDA only; ignored on the CPU.")
        if self.device.type == "cpu":
            reuse_freed_memory()                       # vidgan/hostmem.py: no page faults on every activation

        from vidgan.data import VideoDataset

        mc = cfg.model
        self.dataset = VideoDataset(cfg.data, frames=mc.frames, resolution=mc.resolution, stride=cfg.stride,
                                    keep_aspect=cfg.keep_aspect, hflip=cfg.hflip, mode="train", seed=cfg.seed,
                                    channels=mc.channels)
        self.nets = Networks(cfg, self.dist, self.micro)
        self.watch = CollapseWatch(cfg, self.dataset)
        self.fvd = None
        if cfg.eval_every and self.main:                 # I3D and the real clips' list, checked up front
            from vidgan.training.evaluation import PeriodicFVD

            self.fvd = PeriodicFVD(cfg, self.device)
        self._resume()
        self.snapshot = self.nets.snapshot()

    # The networks, for hooks and callers.
    G = property(lambda self: self.nets.G)
    G_ema = property(lambda self: self.nets.G_ema)
    Df = property(lambda self: self.nets.Df)
    Dc = property(lambda self: self.nets.Dc)
    modules = property(lambda self: self.nets.modules)
    opt_G = property(lambda self: self.nets.opt_G)
    opt_D = property(lambda self: self.nets.opt_D)
    step = property(lambda self: self.nets.step)

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        cfg, nets = self.cfg, self.nets
        if self.main:
            clean_temp(self.run_dir)
        D.barrier(self.dist)
        found = find_resumable(self.run_dir, cfg.model.to_dict(), nets.G_ema, nets.modules, log=self._warn) \
            if list_checkpoints(self.run_dir) else None
        steps = D.gather_objects(-1 if found is None else int(found[1]["step"]), self.dist)
        if len(set(steps)) > 1:
            raise InputError(f"the ranks found different checkpoints in {self.run_dir} (steps {steps}); "
                             "put the run directory on a filesystem every node shares.")
        if found is not None:
            path, st = found
            nets.load_training_state(st, path)
            self.watch.load_state(st.get("collapse_watch"))
            self.resumed_from = str(path)
            self._last_saved = nets.step
            if self.main:
                truncate_stats(self.run_dir, nets.step)
            if cfg.init_from is not None:
                self._warn(f"note: init_from ({cfg.init_from}) starts a new run only; this one resumes from "
                           f"{path.name}.")
        elif cfg.init_from is not None:
            self._warn(init_generator(self.nets, cfg, cfg.init_from))
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.record.to_json(str(self.run_dir / RUN_CONFIG_NAME))
        D.barrier(self.dist)

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> Optional[Path]:
        rngs = D.gather_objects(rng_state(), self.dist)
        path, nets = None, self.nets
        if self.main:
            cfg = self.cfg
            meta = {"training": {"steps": nets.step, "kimg": nets.step * cfg.batch / 1000.0, "data": cfg.data,
                                 "batch": cfg.batch, "loss": cfg.loss, "seed": cfg.seed}}
            state = dict(nets.training_state(rngs), collapse_watch=self.watch.state())
            path = save_checkpoint(self.run_dir, nets.step, nets.G_ema, nets.modules, state,
                                   self.record.to_dict(), meta=meta, keep=cfg.keep)
        D.barrier(self.dist)
        self._last_saved = nets.step
        self.snapshot = nets.snapshot()
        return path

    def _train_step(self, loader) -> Optional[Dict[str, float]]:
        # Real clips first: the data loader draws from the global RNG when it (re)starts its iterator,
        # so fetch before re-seeding, or a resumed run would see different noise from an uninterrupted one.
        with torch.profiler.record_function("data"):
            reals = [next(loader) for _ in range(self.cfg.accum)]             # accum x [n, 3, T, H, W]
        return self.nets.train_step(reals)

    # ------------------------------------------------------------------ NaN recovery
    def _recover(self, reporter: Reporter) -> None:
        bad_step = self.nets.step + 1
        if (bad_step in self.cfg.debug_nan_steps) and bad_step not in self.nets.fired:
            self.nets.fired.append(bad_step)
        self.nets.nan_events += 1
        last = self._last_saved
        where = (f"the last good checkpoint {self.run_dir / 'checkpoints' / f'step-{last:08d}'} is intact"
                 if last is not None else "no checkpoint had been written yet")
        if self.nets.nan_events > 1:
            reporter.event(bad_step, event="diverged", message="NaN/Inf loss after lowering the learning rate")
            raise TrainingDiverged(f"a loss became NaN/Inf at step {bad_step} again after the learning rate was "
                                   f"lowered once; the run stops here and {where} (try a lower --lr, a larger "
                                   "r1_gamma, or --set amp=false).")
        self.nets.restore(self.snapshot)
        reporter.rewind(self.nets.step)
        self.nets.lr_scale *= 0.5
        self.nets.set_lr()
        reporter.event(bad_step, event="nan", restored_step=self.nets.step, lr_scale=self.nets.lr_scale)
        reporter.write(f"warning: NaN/Inf loss at step {bad_step}; restored the state of step {self.nets.step} and "
                       f"halved the learning rates (G {self.nets.opt_G.param_groups[0]['lr']:.3g}, "
                       f"D {self.nets.opt_D.param_groups[0]['lr']:.3g}). A second occurrence stops the run.")

    # ------------------------------------------------------------------ samples
    def render_samples(self) -> np.ndarray:
        """The fixed-seed sample clips of G_ema as uint8 [N, T, H, W, 3] (the training RNG is untouched)."""
        return self.nets.render_samples()

    def _write_reals(self) -> None:
        """samples/reals.png once per run directory: a contact sheet of training clips, to compare samples with."""
        path = self.run_dir / "samples" / "reals.png"
        if not self.main or not self.cfg.sample_every or path.exists():
            return
        from vidgan.export import contact_sheet, write_image

        write_image(contact_sheet(real_clips(self.dataset, self.cfg.seed, min(8, self.cfg.sample_num))), str(path))

    def _write_samples(self, reporter: Reporter) -> Dict[str, str]:
        """The sample grid (reporter.samples), its diversity for the next stats line and the progress bar, and
        the collapse warning (watch.py)."""
        if not self.main:
            return {}
        clips = self.render_samples()
        fake, real = self.watch.check(self.nets.step, clips, reporter.write)
        self._diversity = {"diversity": round(fake, 5), "diversity_real": round(real, 5)}
        reporter.diversity = f"{fake / real:.2f}" if real > 0 else None
        return reporter.samples(self.nets.step, clips, self.cfg.sample_fps)

    def _evaluate(self, reporter: Reporter) -> None:
        if self.fvd is not None:
            rec = self.fvd(self.nets.G_ema)
            reporter.event(self.nets.step, **rec)
            div = "" if rec["fvd_diversity"] is None else f", I3D diversity {rec['fvd_diversity']:.2f} of the data's"
            reporter.write(f"step {self.nets.step}: FVD {rec['fvd']:.2f} ({rec['fvd_clips']} clips, "
                           f"{rec['fvd_protocol']}{div})")
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
                            start=self.nets.step * cfg.accum * self.micro)

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
        rep = Reporter(self.run_dir, self.record.steps, self.step, cfg.batch, self.device, enabled=self.main,
                       progress=cfg.progress, tensorboard=cfg.tensorboard, log=self.log)
        if self.main:
            n_par = {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules.items()}
            rep.write(f"vidgan train: {self.dataset.summary()}")
            rep.write(f"model {cfg.model.resolution}x{cfg.model.resolution}x{cfg.model.frames} "
                      f"({cfg.model.motion} motion), parameters G {n_par['G']:,} Df {n_par['Df']:,} "
                      f"Dc {n_par['Dc']:,}; batch {cfg.batch} = {self.dist.world_size} rank(s) x {cfg.accum} x "
                      f"{self.micro} on {self.device}; "
                      + (f"resumed from {self.resumed_from}" if self.resumed_from else "new run")
                      + f"; writing to {self.run_dir}")
        t0 = time.perf_counter()
        stopped = "completed"
        samples: Dict[str, str] = {}
        last: Dict[str, Any] = {}
        ada_sum, ada_n = 0.0, 0
        compile_said = False
        loader = self._loader()
        self._write_reals()
        try:
            with self._signals():
                while self.step < cfg.steps:
                    try:
                        t_step = time.perf_counter()
                        values = self._train_step(loader)
                        if cfg.compile and not compile_said and not self.nets.eager_d(self.step):
                            compile_said = True
                            rep.write("torch.compile: the first compiled step took "
                                      f"{time.perf_counter() - t_step:.1f} s, "
                                      "compilation included (steps with R1 run uncompiled)")
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
                    self.nets.step += 1
                    if cfg.augment_target is not None:
                        ada_sum, ada_n = ada_sum + values["real_sign"], ada_n + 1
                        if ada_n == ADA_INTERVAL:
                            self.nets.augment.p = adjust_p(self.nets.augment.p, ada_sum / ada_n,
                                                           cfg.augment_target, cfg.batch, ADA_INTERVAL,
                                                           cfg.augment_speed_kimg)
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
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        samples = self._write_samples(rep)
                    if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == cfg.steps or stop):
                        last = rep.flush(self.step, {"lr_G": self.opt_G.param_groups[0]["lr"],
                                                     "lr_D": self.opt_D.param_groups[0]["lr"],
                                                     "augment_p": self.nets.augment.p, **self._diversity})
                        self._diversity = {}
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
                    if self._diversity:                  # the last grid's figure has no stats line to ride on
                        rep.event(self.step, **self._diversity)
                        self._diversity = {}
        finally:
            loader.close()
            rep.close()
        seconds = time.perf_counter() - t0
        done = self.step - start_step
        ckpts = list_checkpoints(self.run_dir)
        summary = {"run_dir": str(self.run_dir), "device": str(self.device), "step": self.step,
                   "start_step": start_step, "steps_run": done, "resumed_from": self.resumed_from,
                   "stopped": stopped, "seconds": seconds, "sec_per_step": seconds / done if done else None,
                   "kimg": self.step * cfg.batch / 1000.0, "nan_events": self.nets.nan_events,
                   "checkpoint": str(ckpts[-1][1]) if ckpts else None, "samples": samples,
                   "last_stats": last}
        if self.main:
            self.log(f"vidgan train: {stopped} at step {self.step} ({done} steps in {seconds:.1f} s); "
                     f"checkpoint {summary['checkpoint']}")
        return summary

    def close(self) -> None:
        """Leave the process group if this trainer joined it; release the run folder."""
        if self._owns_group:
            D.teardown()
        self._lock.__exit__()

