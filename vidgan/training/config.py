"""TrainConfig: every knob of a training run, serialised to JSON (RUN_DIR/train_config.json).

Where a run's settings come from (presets, the run folder, --config, flags, --set) is
vidgan.training.sources; this module is the dataclass, its checks and its schedule.
Unknown keys and wrongly typed values raise vidgan.errors.InputError naming them.
"""
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from vidgan._atomic import atomic_write_text
from vidgan.errors import InputError
from vidgan.models import ModelConfig
from vidgan.models.config import MAX_FRAMES, drop_removed
from vidgan.training.augment import AUGMENTS
from vidgan.training.losses import LOSSES
from vidgan.training.merge import flatten, merge

RUN_CONFIG_NAME = "train_config.json"
# Flag/file keys that are shorthands for nested model fields.
ALIASES = {"resolution": "model.resolution", "frames": "model.frames"}
# Keys a schedule's phase may set: they shape no parameter, so a run continues across a phase boundary.
SCHEDULABLE = ("time_offset", "model.frames")
# Upper bounds no real run reaches, so a damaged or hostile train_config.json cannot ask for terabytes.
BOUNDS = {"batch": 2 ** 16, "accum": 2 ** 16, "steps": 2 ** 40, "sample_num": 1024, "eval_clips": 2 ** 16,
          "time_offset": MAX_FRAMES, "stride": 1024, "workers": 256, "keep": 10 ** 6, "r1_every": 10 ** 6,
          "sample_fps": 1000.0, "log_every": 2 ** 40, "ckpt_every": 2 ** 40, "sample_every": 2 ** 40,
          "eval_every": 2 ** 40}
# Training settings of removed options (see vidgan.models.config.REMOVED): dropped when an old config is read.
REMOVED_TRAIN = {"pair_weight": None, "pair_mismatch": None, "content_weight": None}


@dataclass
class TrainConfig:
    """Settings of one training run. `model` is the vidgan.models.ModelConfig of G, Df and Dc. The defaults
    are the `default` preset: the embedded model's recipe without its schedule."""

    run_dir: str = "run"                 # checkpoints/, samples/, stats.jsonl, train_config.json
    data: Optional[str] = None           # frame folders, video files, one video, or a .vidpack
    model: ModelConfig = field(default_factory=ModelConfig)

    # data
    stride: int = 1                      # frame step inside a clip
    keep_aspect: bool = False            # pad to square instead of centre-cropping
    hflip: bool = False                  # dataset-level random horizontal flip of real clips
    workers: Optional[int] = None        # data-loading processes per rank (0 = in the main process; None =
                                         # 0 for a .vidpack, whose memmap reads beat a hand-over, else up to
                                         # 4, leaving a core to the trainer)

    # optimisation
    batch: int = 8                       # global batch (all ranks, all accumulation rounds)
    accum: int = 1                       # gradient-accumulation rounds per step
    steps: int = 20000                   # total optimiser steps (a resumed run continues up to this)
    minutes: Optional[float] = None      # also stop (with a checkpoint) after this much wall time
    seed: int = 0
    lr: float = 0.0025                   # generator learning rate
    d_lr: Optional[float] = None         # discriminator learning rate (None = lr)
    betas: Tuple[float, float] = (0.0, 0.99)
    loss: str = "logistic"               # one of LOSSES
    frame_weight: float = 1.0            # weight of the frame discriminator's loss terms
    clip_weight: float = 1.0             # weight of the clip discriminator's loss terms
    r1_gamma: float = 0.1                # R1 weight on real data (0 = off; ignored by wgan-gp)
    r1_every: int = 16                   # lazy R1: every k steps, scaled by k
    gp_weight: float = 10.0              # WGAN-GP gradient-penalty weight
    ema_kimg: float = 2.0                # EMA half-life of the generator, in thousands of clips
    ema_rampup: Optional[float] = 0.05   # half-life at most this fraction of the clips seen (None = off)
    init_from: Optional[str] = None      # a new run's G (and its EMA) start from this generator: "default"
                                         # (the embedded model), a model folder or a run folder; the
                                         # discriminators start fresh. Ignored when the run resumes.
    d_warmup: int = 0                    # the first N steps train the discriminators only (G stays as it is),
                                         # so fresh discriminators catch up with a generator from init_from
    time_offset: int = 32                # fakes render frame times s..s+frames-1, s drawn per step from
                                         # 0..time_offset (0 = always from 0); > 0 also trains the frame
                                         # times that renders longer than a training clip use (the embedded
                                         # model's FVD on 16-frame renders fell from 177 to 103 with it)
    schedule: Tuple[Dict[str, Any], ...] = ()  # phases [{"until": STEP, KEY: VALUE, ...}, ...]: up to step
                                         # STEP the run trains with those values of SCHEDULABLE keys, after
                                         # the last phase with its own (the mmnist64 preset: 8-frame clips
                                         # first, which cost half as much per step)

    # augmentation: the same random transform on every frame of a clip, on reals and fakes
    augment_p: float = 0.0               # probability of each transform (0 = off)
    augment: Tuple[str, ...] = ("flip", "translate", "color")
    augment_target: Optional[float] = None  # adaptive p: aim E[sign(D(real))] at this (e.g. 0.6)
    augment_speed_kimg: float = 100.0    # adaptive p: kimg for p to move by 1

    # hardware
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    amp: bool = False                    # bf16 autocast (CUDA only)
    channels_last: bool = False          # channels_last memory format (CUDA only)
    compile: bool = False                # torch.compile G's synthesis and both Ds (steps with R1 or WGAN-GP run
                                         # eager): fuses the elementwise work between convolutions and removes
                                         # per-op launch costs; see docs/training.md for its measured effect

    # outputs
    log_every: int = 50                  # stats.jsonl, TensorBoard and progress-bar losses
    ckpt_every: int = 1000
    keep: int = 3                        # checkpoints kept (the newest K)
    sample_every: int = 500              # sample grid MP4 + PNG contact sheet (0 = off)
    sample_num: int = 16                 # clips in the sample grid (fixed seeds)
    sample_fps: float = 8.0
    eval_every: int = 0                  # FVD against the data every N steps (0 = off)
    eval_clips: int = 256
    i3d: Optional[str] = None            # I3D weights for FVD (None = vidgan.metrics' default)
    tensorboard: bool = True             # TensorBoard scalars and videos when it is installed
    progress: bool = True                # tqdm progress bar on rank 0

    # debugging: make the loss NaN at these steps (each step once) to exercise recovery
    debug_nan_steps: Tuple[int, ...] = ()

    def __post_init__(self):
        self.run_dir = os.fspath(self.run_dir)
        if self.data is not None:
            self.data = os.fspath(self.data)
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        self.betas = tuple(self.betas)
        self.augment = tuple(self.augment)
        self.schedule = tuple(dict(p) if isinstance(p, dict) else p for p in self.schedule)
        self.debug_nan_steps = tuple(int(s) for s in self.debug_nan_steps)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (the model config nested under "model")."""
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "model":
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = [dict(p) if isinstance(p, dict) else p for p in v]
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "the training config") -> "TrainConfig":
        """Build and validate; unknown keys or bad values raise InputError naming them and `source`."""
        merged = cls().to_dict()
        merge_layer(merged, d, source)
        cfg = cls(**{k: v for k, v in merged.items() if k != "model"}, model=ModelConfig.from_dict(merged["model"]))
        cfg.validate()
        return cfg

    def to_json(self, path: str) -> None:
        """Write atomically as indented JSON."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write_text(path, text, what="training config")

    # ------------------------------------------------------------------ schedule
    def phase(self, step: int) -> Tuple["TrainConfig", int]:
        """(the config that trains step `step` + 1, the step its phase ends at): a phase of the schedule
        sets its keys over this config and ends at its "until" (at most `steps`); after the last phase
        this config holds, schedule-free, up to `steps`."""
        for p in self.schedule:
            if step < p["until"]:
                d = self.to_dict()
                merge(d, {k: v for k, v in p.items() if k != "until"}, "the schedule", annotation)
                d["schedule"] = []
                return TrainConfig.from_dict(dict(d, steps=min(p["until"], self.steps))), min(p["until"], self.steps)
        return dataclasses.replace(self, schedule=()), self.steps

    def _check_schedule(self) -> None:
        last = 0
        for i, p in enumerate(self.schedule):
            until = p.get("until") if isinstance(p, dict) else None
            if isinstance(until, bool) or not isinstance(until, int) or until <= last:
                raise InputError(f"schedule phase {i + 1} must be an object with an integer \"until\" step above "
                                 f"the previous phase's ({last}), got {p!r}.")
            bad = sorted(k for k in p if k != "until" and k not in SCHEDULABLE)
            if bad:
                raise InputError(f"schedule phase {i + 1} sets {', '.join(bad)}; a phase may set only "
                                 f"{', '.join(SCHEDULABLE)} (fields that shape no parameter).")
            last = until

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise InputError (one sentence naming the key) for any value that cannot work."""
        for name, value in flatten(self.to_dict()).items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise InputError(f"{name} must be a finite number, got {value}.")
        _check_run_dir(self.run_dir)
        # Re-validate the model through its own checks (resolution power of two, frames >= 2, ...).
        res, frames = int(self.model.resolution), int(self.model.frames)
        if res < 4 or res & (res - 1):
            raise InputError(f"resolution {res} is not a power of two; use 32, 64, 128 or 256 (--resolution).")
        if frames < 2:
            raise InputError(f"frames must be at least 2 for a video model, got {frames} (--frames).")
        ModelConfig.from_dict(self.model.to_dict())
        if self.loss not in LOSSES:
            raise InputError(f"loss {self.loss!r} is unknown; choose one of {', '.join(LOSSES)} (--set loss=...).")
        bad_aug = [a for a in self.augment if a not in AUGMENTS]
        if bad_aug:
            raise InputError(f"augment lists unknown transform(s) {', '.join(bad_aug)}; "
                             f"choose from {', '.join(AUGMENTS)}.")
        for name in ("batch", "accum", "steps", "r1_every", "keep", "sample_num", "stride"):
            lo = 0 if name == "steps" else 1
            if int(getattr(self, name)) < lo:
                raise InputError(f"{name} must be at least {lo}, got {getattr(self, name)}.")
        for name, most in BOUNDS.items():
            value = getattr(self, name)
            if value is not None and value > most:
                raise InputError(f"{name} must be at most {most:,} (no real run comes near), got {value:,}.")
        for name in ("workers", "log_every", "ckpt_every", "sample_every", "eval_every", "eval_clips", "time_offset",
                     "d_warmup"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 0:
                raise InputError(f"{name} must not be negative, got {getattr(self, name)}.")
        for name in ("lr", "ema_kimg", "sample_fps", "augment_speed_kimg"):
            if not float(getattr(self, name)) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from.strip()):
            raise InputError(f"init_from must name a generator (default, a model folder or a run folder) or be "
                             f"null, got {self.init_from!r}.")
        if self.d_lr is not None and not self.d_lr > 0:
            raise InputError(f"d_lr must be positive (or null for lr), got {self.d_lr}.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InputError(f"betas must be two numbers in [0, 1), got {list(self.betas)}.")
        if not 0 <= self.augment_p <= 1:
            raise InputError(f"augment_p must be in [0, 1], got {self.augment_p}.")
        if self.augment_target is not None and not 0 < self.augment_target < 1:
            raise InputError(f"augment_target must be in (0, 1) or null, got {self.augment_target}.")
        if self.eval_every and frames < 9:
            raise InputError(f"eval_every needs clips of at least 9 frames for the I3D of FVD, but model.frames is "
                             f"{frames}; set eval_every=0 or use --frames 9 or more.")
        if self.ema_rampup is not None and not self.ema_rampup > 0:
            raise InputError(f"ema_rampup must be positive (or null for off), got {self.ema_rampup}.")
        if self.eval_every and self.eval_clips < 2:
            raise InputError(f"eval_clips must be at least 2 for FVD's covariance, got {self.eval_clips}.")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError(f"minutes must be positive (or null for no limit), got {self.minutes}.")
        for name in ("r1_gamma", "gp_weight", "frame_weight", "clip_weight"):
            if float(getattr(self, name)) < 0:
                raise InputError(f"{name} must not be negative, got {getattr(self, name)}.")
        if self.frame_weight == 0 and self.clip_weight == 0:
            raise InputError("frame_weight and clip_weight are both 0; at least one discriminator must train.")
        self._check_schedule()

    def check_world(self, world_size: int) -> int:
        """The per-rank micro-batch; InputError unless batch divides into world_size * accum parts."""
        parts = world_size * self.accum
        if self.batch % parts:
            raise InputError(f"batch {self.batch} is not divisible by world size {world_size} x accum {self.accum}; "
                             f"use a batch that is a multiple of {parts} (--batch).")
        micro = self.batch // parts
        return micro


def _check_run_dir(run_dir: str) -> None:
    """InputError if the run folder is, or would lie under, an existing file."""
    path = os.path.abspath(run_dir)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        what = "is" if path == os.path.abspath(run_dir) else f"would lie under {path}, which is"
        raise InputError(f"the run folder {run_dir} {what} a file; pass a folder (new or a run's) to --out.")


def annotation(key: str) -> Any:
    """The declared type of a dotted config key (TrainConfig field, or ModelConfig for model.*)."""
    owner, name = (ModelConfig, key.split(".", 1)[1]) if key.startswith("model.") else (TrainConfig, key)
    return typing.get_type_hints(owner).get(name)


def merge_layer(base: Dict[str, Any], layer: Dict[str, Any], source: str) -> None:
    """Merge one source's keys into a full TrainConfig dict; the keys of removed options are dropped (or
    refused by name when they switch a removed option on)."""
    layer = drop_removed(dict(layer), source, removed=REMOVED_TRAIN)
    model = {k[6:]: v for k, v in layer.items() if k.startswith("model.")}
    if isinstance(layer.get("model"), dict):
        model.update(layer["model"])
    if model:
        model = drop_removed(model, source, "model.")
        layer = {k: v for k, v in layer.items() if k != "model" and not k.startswith("model.")}
        layer["model"] = model
    merge(base, layer, source, annotation, ALIASES)
