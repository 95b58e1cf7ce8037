"""ModelConfig: every number the generator and both discriminators are built from, as one JSON-able dataclass."""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from vidgan.errors import InputError

MOTIONS = ("continuous", "gru")
INTERPOLATIONS = ("cubic", "linear")
# Options that earlier versions had and this one does not: {model config key: its "off" value, or None for a
# setting that only mattered with its switch on}. A saved config that has a switch on is refused by name.
REMOVED = {"pair_d": False, "pair_d_pairs": None, "content_encoder": False, "content_frames": None,
           "styles_per_clip": False, "motion_warp": False, "warp_resolution": None, "warp_groups": None,
           "warp_transform": None, "warp_limit": None}
REMOVED_SINCE = "0.1.0"   # the last vidgan version that had them
# Upper bounds that no real model reaches, checked before anything is built, so a hostile config.json is
# refused in one sentence instead of allocating terabytes.
MAX_FRAMES = 2 ** 20
MAX_CHANNELS = 4096
MAX_DIM = 1024


def _field(default, g: bool = False, resume: bool = False, most=None):
    """A config field with its rules: g = it shapes the generator (a generator given to init_from must match
    it); resume = it shapes no parameter, so a run may continue with another value (a later phase on
    longer clips, say); every other field must match the checkpoint a run resumes from. most: the largest
    value accepted."""
    return field(default=default, metadata={"g": g, "resume": resume, "most": most})


@dataclass
class ModelConfig:
    """Architecture of TemporalGenerator, FrameDiscriminator and ClipDiscriminator.

    Widths: a layer at resolution r has min(base // r, max) channels (G: channel_base/channel_max,
    frame D: d_channel_base/d_channel_max, clip D: clip_channel_base/clip_channel_max). The defaults
    are the embedded model's architecture (vidgan/presets/default.json).
    """

    # Output clips.
    resolution: int = _field(64, g=True)                      # H = W; a power of two in 32..256
    frames: int = _field(16, resume=True, most=MAX_FRAMES)    # training clip length T (renders take any length)
    channels: int = _field(3, g=True)                         # C of every clip: 3 (RGB) or 1 (grey)
    # Content: z_c [N, z_dim] -> mapping network -> w_c [N, w_dim].
    z_dim: int = _field(64, g=True, most=MAX_DIM)
    w_dim: int = _field(128, g=True, most=MAX_DIM)
    mapping_layers: int = _field(2, g=True, most=16)
    mapping_lr_mul: float = _field(0.01, g=True)
    w_avg_beta: float = 0.995                 # EMA of w_c tracked in training mode (for truncation)
    # Motion: noise -> per-frame motion codes [N, T, motion_code_dim].
    motion: str = _field("continuous", g=True)  # "continuous" (time grid + periodic features, any length and
                                                # frame rate) or "gru" (MoCoGAN-like recurrent baseline)
    motion_dim: int = _field(32, g=True, most=MAX_DIM)        # noise size per grid code ('continuous') / step ('gru')
    motion_code_dim: int = _field(32, g=True, most=MAX_DIM)  # size of the per-frame motion code m_t
    motion_spacing: int = _field(4, g=True, most=1024)   # 'continuous': frames between two grid codes
    motion_interp: str = _field("cubic", g=True)  # 'continuous': "cubic" (Catmull-Rom) or "linear"
    time_features: int = _field(8, g=True, most=64)    # 'continuous': number of sin/cos frequencies
    time_period_min: float = _field(4.0, g=True)   # 'continuous': shortest period, in frames (> 2: no flicker)
    time_period_max: float = _field(64.0, g=True, most=MAX_FRAMES)  # 'continuous': longest period (frames)
    motion_to_styles: bool = _field(True, g=True)  # m_t enters the 4x4 input AND offsets the styles of every
                                                   # layer (the embedded model); False: the input only
                                                   # (StyleGAN-V), styles are content alone
    # Synthesis network.
    channel_base: int = _field(1024, g=True, most=MAX_CHANNELS * 256)
    channel_max: int = _field(64, g=True, most=MAX_CHANNELS)
    conv_clamp: Optional[float] = _field(None, g=True)  # clamp of conv outputs, e.g. 256 for float16 (None = off)
    # Frame discriminator (2D, k frames of each clip).
    frame_d_frames: int = _field(2, most=64)
    d_channel_base: int = _field(1024, most=MAX_CHANNELS * 256)
    d_channel_max: int = _field(64, most=MAX_CHANNELS)
    mbstd_group: int = _field(4, most=1024)
    # Clip discriminator ((2+1)D over the whole clip, with frame differences as extra input).
    clip_channel_base: int = _field(512, most=MAX_CHANNELS * 256)
    clip_channel_max: int = _field(64, most=MAX_CHANNELS)
    clip_diff: bool = True
    clip_input_div: int = 2              # the clip D sees clips FIR-downsampled by 1, 2 or 4

    @classmethod
    def rule_fields(cls, rule: str):
        """Names of the fields declared with `rule` ("g" or "resume")."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(rule))

    def __post_init__(self):
        self.validate()

    # --------------------------------------------------------------------- widths
    def g_width(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    def d_width(self, res: int) -> int:
        return max(1, min(self.d_channel_base // res, self.d_channel_max))

    def clip_width(self, res: int) -> int:
        return max(1, min(self.clip_channel_base // res, self.clip_channel_max))

    # --------------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        """Builds a validated config; missing keys take their defaults, unknown keys are an InputError."""
        if not isinstance(d, dict):
            raise InputError(f"a model config must be a JSON object (dict), got {type(d).__name__}.")
        d = drop_removed(d, "the model config", "model.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown model config key(s) {', '.join(unknown)}; "
                             f"valid keys are {', '.join(sorted(known))}.")
        return cls(**d)

    def diff(self, other: "ModelConfig") -> Dict[str, tuple]:
        """{key: (self value, other value)} for every field that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    # --------------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raises InputError naming the first bad field (type or value)."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if kind == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                if isinstance(v, float) and v.is_integer():
                    setattr(self, f.name, int(v))
                    continue
                raise InputError(f"model config {f.name} must be an integer, got {v!r}.")
            if kind == "float" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise InputError(f"model config {f.name} must be a finite number, got {v!r}.")
            if kind == "float":
                setattr(self, f.name, float(v))
            if kind == "bool" and not isinstance(v, bool):
                raise InputError(f"model config {f.name} must be true or false, got {v!r}.")
            if kind == "str" and not isinstance(v, str):
                raise InputError(f"model config {f.name} must be a string, got {v!r}.")
        for f in dataclasses.fields(self):
            most = f.metadata.get("most")
            if most is not None and getattr(self, f.name) > most:
                raise InputError(f"model config {f.name} must be at most {most:,} (no real model comes near), got "
                                 f"{getattr(self, f.name):,}; the config is damaged or not meant for vidgan.")
        r = self.resolution
        if not (32 <= r <= 256 and r & (r - 1) == 0):
            raise InputError(f"model config resolution must be a power of two from 32 to 256, got {r}.")
        if self.frames < 2:
            raise InputError(f"model config frames must be at least 2, got {self.frames}.")
        if self.channels not in (1, 3):
            raise InputError(f"model config channels must be 1 (grey) or 3 (RGB), got {self.channels}.")
        if self.motion not in MOTIONS:
            raise InputError(f"model config motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}.")
        if self.motion_interp not in INTERPOLATIONS:
            raise InputError(f"model config motion_interp must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.motion_interp!r}.")
        for name in ("z_dim", "w_dim", "mapping_layers", "motion_dim", "motion_code_dim", "motion_spacing",
                     "time_features", "channel_base", "channel_max", "frame_d_frames", "d_channel_base",
                     "d_channel_max", "mbstd_group", "clip_channel_base", "clip_channel_max"):
            if getattr(self, name) < 1:
                raise InputError(f"model config {name} must be at least 1, got {getattr(self, name)}.")
        if self.clip_input_div not in (1, 2, 4):
            raise InputError(f"model config clip_input_div must be 1, 2 or 4, got {self.clip_input_div}.")
        if self.frame_d_frames > self.frames:
            raise InputError(f"model config frame_d_frames ({self.frame_d_frames}) must not exceed frames "
                             f"({self.frames}).")
        if not 0 < self.mapping_lr_mul <= 1:
            raise InputError(f"model config mapping_lr_mul must be in (0, 1], got {self.mapping_lr_mul}.")
        if not 0 <= self.w_avg_beta < 1:
            raise InputError(f"model config w_avg_beta must be in [0, 1), got {self.w_avg_beta}.")
        if not 0 < self.time_period_min <= self.time_period_max:
            raise InputError(f"model config needs 0 < time_period_min <= time_period_max, got "
                             f"{self.time_period_min} and {self.time_period_max}.")
        if self.conv_clamp is not None:
            if isinstance(self.conv_clamp, bool) or not isinstance(self.conv_clamp, (int, float)) \
                    or not self.conv_clamp > 0:
                raise InputError(f"model config conv_clamp must be a positive number or null, got {self.conv_clamp!r}.")


def drop_removed(d: Dict[str, Any], what: str, prefix: str = "",
                 removed: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`d` without the keys of options this version no longer has (REMOVED, or `removed`); InputError naming
    the first one that is switched on, since a config that used it cannot be rebuilt."""
    removed = REMOVED if removed is None else removed
    for key, off in removed.items():
        if key in d and off is not None and d[key] != off:
            raise InputError(f"{what} uses {prefix}{key}={json_value(d[key])}, an option that vidgan "
                             f"{REMOVED_SINCE} was the last version to have; use vidgan {REMOVED_SINCE} for it, "
                             f"or start a new run without it.")
    return {k: v for k, v in d.items() if k not in removed}


def json_value(v: Any) -> str:
    return "true" if v is True else "false" if v is False else repr(v)
