"""TrainConfig: every knob of a training run, serialised to JSON, built from several sources.

Sources, later ones win (`TrainConfig.from_sources`):

    1. the defaults below,
    2. RUN_DIR/train_config.json when RUN_DIR already holds a run (so `vidgan train --out RUN_DIR`
       alone resumes with the settings it was started with),
    3. a JSON file (`--config FILE`),
    4. command-line flags (`--batch 16`; `--resolution`/`--frames` set `model.resolution`/`model.frames`),
    5. dotted assignments (`--set model.motion=gru --set betas=[0,0.99]`).

Unknown keys and wrongly typed values raise vidgan.errors.InputError naming them.
"""
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vidgan.errors import InputError
from vidgan.models import ModelConfig
from vidgan.training.augment import AUGMENTS
from vidgan.training.losses import LOSSES

RUN_CONFIG_NAME = "train_config.json"
# Flag/file keys that are shorthands for nested model fields.
ALIASES = {"resolution": "model.resolution", "frames": "model.frames"}


@dataclass
class TrainConfig:
    """Settings of one training run. `model` is the vidgan.models.ModelConfig of G, Df, Dc (and Dp)."""

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
    pair_weight: float = 1.0             # weight of the pair discriminator's loss terms (with model.pair_d)
    pair_mismatch: float = 1.0           # weight of the pair D's term on mismatched real clips: the first half
                                         # of one clip, the second half of another, to be called fake, so it
                                         # must learn whether both frames show the same content (0 = off)
    content_weight: float = 1.0          # weight of G's content term (with model.content_encoder): 1 - the
                                         # mean cosine similarity of the encoder's embeddings of frames of
                                         # one fake clip
    r1_gamma: float = 0.1                # R1 weight on real data (0 = off; ignored by wgan-gp)
    r1_every: int = 16                   # lazy R1: every k steps, scaled by k
    gp_weight: float = 10.0              # WGAN-GP gradient-penalty weight
    ema_kimg: float = 10.0               # EMA half-life of the generator, in thousands of clips
    ema_rampup: Optional[float] = 0.05   # half-life at most this fraction of the clips seen (None = off)
    init_from: Optional[str] = None      # a new run's G (and its EMA) start from this generator: "default"
                                         # (the embedded model), a model folder or a run folder; the
                                         # discriminators start fresh. Ignored when the run resumes.
    d_warmup: int = 0                    # the first N steps train the discriminators only (G stays as it is),
                                         # so fresh discriminators catch up with a generator from init_from
    time_offset: int = 0                 # fakes render frame times s..s+frames-1, s drawn per step from
                                         # 0..time_offset (0 = always from 0); > 0 also trains the frame
                                         # times that renders longer than a training clip use

    # augmentation: the same random transform on every frame of a clip, on reals and fakes
    augment_p: float = 0.0               # probability of each transform (0 = off)
    augment: Tuple[str, ...] = ("flip", "translate", "color")
    augment_target: Optional[float] = None  # adaptive p: aim E[sign(D(real))] at this (e.g. 0.6)
    augment_speed_kimg: float = 100.0    # adaptive p: kimg for p to move by 1

    # hardware
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    amp: bool = False                    # bf16 autocast (CUDA only)
    channels_last: bool = False          # channels_last memory format (CUDA only)

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
                v = list(v)
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "the training config") -> "TrainConfig":
        """Build and validate; unknown keys or bad values raise InputError naming them and `source`."""
        merged = cls().to_dict()
        _merge(merged, d, source)
        cfg = cls(**{k: v for k, v in merged.items() if k != "model"}, model=ModelConfig.from_dict(merged["model"]))
        cfg.validate()
        return cfg

    def to_json(self, path: str) -> None:
        """Write atomically as indented JSON."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_sources(cls, run_dir: str, config_file: Optional[str] = None,
                     overrides: Optional[Dict[str, Any]] = None,
                     assignments: Optional[Sequence[str]] = None) -> "TrainConfig":
        """Defaults < RUN_DIR/train_config.json < config_file < overrides (flags) < assignments (KEY=VALUE).

        A new run (no checkpoint yet) with init_from takes the model settings of that generator in place
        of the defaults, so `--init-from default` fine-tunes the embedded model as it was built; a resumed
        one keeps the init_from it was started with (which is not applied again).
        """
        saved = os.path.join(run_dir, RUN_CONFIG_NAME)
        saved_cfg = _read_json(saved) if os.path.isfile(saved) else None
        layers = [(saved_cfg, saved)] if saved_cfg is not None else []
        if config_file is not None:
            layers.append((_read_json(config_file), config_file))
        if overrides:
            layers.append((dict(overrides), "the command-line flags"))
        if assignments:
            layers.append((_parse_assignments(assignments), "--set"))

        def merge(model=None):
            out = cls().to_dict()
            if model is not None:
                out["model"].update(model)
            for layer, source in layers:
                _merge(out, layer, source)
            return out

        merged = merge()
        init = merged.get("init_from")
        if isinstance(init, str) and init and init != "default":
            init = merged["init_from"] = os.path.abspath(os.path.expanduser(init))
        if _has_checkpoints(run_dir):                   # a resume: init_from has done its work already
            if saved_cfg is not None:
                merged["init_from"] = saved_cfg.get("init_from", merged["init_from"])
        elif isinstance(init, str) and init:
            merged = merge(_generator_model(init))
            merged["init_from"] = init
        merged["run_dir"] = os.fspath(run_dir)
        if isinstance(merged.get("data"), str) and merged["data"]:
            # saved as absolute, so a resume from another folder reads the same data
            merged["data"] = os.path.abspath(os.path.expanduser(merged["data"]))
        try:
            model = ModelConfig.from_dict(merged["model"])
        except InputError:
            raise
        except (TypeError, ValueError) as exc:
            raise InputError(f"the model config is invalid ({exc}); fix the model.* keys.") from None
        cfg = cls(**{k: v for k, v in merged.items() if k != "model"}, model=model)
        cfg.validate()
        return cfg

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise InputError (one sentence naming the key) for any value that cannot work."""
        for name, value in _flatten(self.to_dict()).items():
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
        for name in ("r1_gamma", "gp_weight", "frame_weight", "clip_weight", "pair_weight", "pair_mismatch",
                     "content_weight"):
            if float(getattr(self, name)) < 0:
                raise InputError(f"{name} must not be negative, got {getattr(self, name)}.")
        if self.frame_weight == 0 and self.clip_weight == 0 and not (self.model.pair_d and self.pair_weight > 0):
            raise InputError("frame_weight and clip_weight are both 0 (and no pair discriminator trains); "
                             "at least one discriminator must train.")

    @property
    def pair_mismatch_on(self) -> bool:
        """Whether the pair discriminator trains on mismatched real clips."""
        return self.model.pair_d and self.pair_weight > 0 and self.pair_mismatch > 0

    def check_world(self, world_size: int) -> int:
        """The per-rank micro-batch; InputError unless batch divides into world_size * accum parts (of
        at least 2 clips when mismatched clips pair clips of one micro-batch, or the content encoder
        contrasts them)."""
        parts = world_size * self.accum
        if self.batch % parts:
            raise InputError(f"batch {self.batch} is not divisible by world size {world_size} x accum {self.accum}; "
                             f"use a batch that is a multiple of {parts} (--batch).")
        micro = self.batch // parts
        if self.pair_mismatch_on and micro < 2:
            raise InputError(f"pair_mismatch pairs clips of one micro-batch, which holds {micro} clip here "
                             f"(batch {self.batch} / {world_size} rank(s) / accum {self.accum}); use a larger "
                             "--batch, a smaller accum, or --set pair_mismatch=0.")
        if self.model.content_encoder and micro < 2:
            raise InputError(f"the content encoder learns by telling the clips of one micro-batch apart, which "
                             f"holds {micro} clip here (batch {self.batch} / {world_size} rank(s) / accum "
                             f"{self.accum}); use a larger --batch or a smaller accum.")
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


# ---------------------------------------------------------------------- merging helpers
def _has_checkpoints(run_dir: str) -> bool:
    from vidgan.training.state import list_checkpoints

    return bool(list_checkpoints(run_dir))


def _generator_model(source: str) -> Dict[str, Any]:
    """The model config (a dict) of the generator that init_from names."""
    from vidgan.checkpoint import load
    from vidgan.errors import CheckpointError

    try:
        return load(None if source == "default" else source).cfg.to_dict()
    except CheckpointError as exc:
        raise InputError(f"init_from: {exc}") from None


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path) as fh:
            d = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist; check the path given to --config.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"config file {path} is not valid JSON ({exc}); fix or remove it.") from None
    if not isinstance(d, dict):
        raise InputError(f"config file {path} must hold a JSON object of TrainConfig keys, not {type(d).__name__}.")
    return d


def _parse_assignments(items: Sequence[str]) -> Dict[str, Any]:
    """["a.b=1", "loss=hinge"] -> {"a": {"b": 1}, "loss": "hinge"}; values are JSON, else plain strings."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--set {item!r} is not of the form KEY=VALUE (e.g. --set model.motion=gru).")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {item!r} conflicts with another assignment to {p}.")
        node[parts[-1]] = value
    return out


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and (prefix + k) == "model":
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def _merge(base: Dict[str, Any], new: Dict[str, Any], source: str) -> None:
    """Merge `new` (nested or dotted keys) into the full dict `base`, type-checking each value."""
    flat = {}
    for k, v in _flatten(new).items():
        flat[ALIASES.get(k, k)] = v
    unknown = []
    for key, value in flat.items():
        parts = key.split(".")
        node, name = base, parts[-1]
        ok = True
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                ok = False
                break
            node = node[p]
        if not ok or name not in node:
            unknown.append(key)
            continue
        node[name] = _coerce(key, value, node[name], source, _annotation(key))
    if unknown:
        raise InputError(f"unknown training config key(s) {', '.join(sorted(unknown))} in {source}; "
                         f"see the TrainConfig fields (model.* for the model) for the valid names.")


def _annotation(key: str) -> Any:
    """The declared type of a dotted config key (TrainConfig field, or ModelConfig for model.*)."""
    owner, name = (ModelConfig, key.split(".", 1)[1]) if key.startswith("model.") else (TrainConfig, key)
    return typing.get_type_hints(owner).get(name)


# An example value of each plain type, to check a value against a field whose default is None or
# against the items of a list field.
_EXAMPLES = {float: 0.0, int: 0, str: "", bool: False}


def _optional(annotation: Any) -> bool:
    """Whether a declared type admits None (Optional[...])."""
    return typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)


def _example(annotation: Any) -> Any:
    """An example value of `annotation` with Optional[...] removed (None when it is not a plain type)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        annotation = args[0]
    return _EXAMPLES.get(annotation)


def _coerce(key: str, value: Any, default: Any, source: str, annotation: Any = None) -> Any:
    """Convert `value` to the type of the current `default` (for a None default, to the declared
    `annotation` of the field, e.g. Optional[float]; items of a list to the declared item type)."""
    def bad():
        like = default if default is not None else _example(annotation)
        return InputError(f"{key}={value!r} in {source} has the wrong type; expected "
                          f"{type(like).__name__} like {like!r}.")

    if value is None:
        if default is None or _optional(annotation):
            return value
        like = default
        raise InputError(f"{key} in {source} must be a {type(like).__name__} like {like!r}, not null.")
    if default is None:
        example = _example(annotation)
        if example is None:
            return value
        default = example
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if isinstance(default, int):
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad()
    if isinstance(default, (list, tuple)):
        if isinstance(value, str):  # "flip,color" -> ["flip", "color"]
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad()
        item_types = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        out = []
        for i, item in enumerate(value):
            example = _EXAMPLES.get(item_types[min(i, len(item_types) - 1)]) if item_types else None
            out.append(item if example is None else _coerce(f"{key}[{i}]", item, example, source))
        return out
    return value


def config_diff(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two (nested) config dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + k + ".")
        elif va != vb:
            out.append(prefix + k)
    return out
