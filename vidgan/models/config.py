"""ModelConfig: every number the generator and both discriminators are built from, as one JSON-able dataclass."""
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from vidgan.errors import InputError

MOTIONS = ("continuous", "gru")
INTERPOLATIONS = ("cubic", "linear")
WARP_TRANSFORMS = ("affine", "translate")


@dataclass
class ModelConfig:
    """Architecture of TemporalGenerator, FrameDiscriminator and ClipDiscriminator.

    Widths: a layer at resolution r has min(base // r, max) channels (G: channel_base/channel_max,
    frame D: d_channel_base/d_channel_max, clip D: clip_channel_base/clip_channel_max).
    """

    # Output clips.
    resolution: int = 64                 # H = W; a power of two in 32..256
    frames: int = 16                     # training clip length T (rendering may use any length)
    # Content: z_c [N, z_dim] -> mapping network -> w_c [N, w_dim].
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01
    w_avg_beta: float = 0.995            # EMA of w_c tracked in training mode (for truncation)
    # Motion: noise -> per-frame motion codes [N, T, motion_code_dim].
    motion: str = "continuous"           # "continuous" (time grid + periodic features) or "gru"
    motion_dim: int = 64                 # noise size per grid code ('continuous') / per step ('gru')
    motion_code_dim: int = 64            # size of the per-frame motion code m_t
    motion_spacing: int = 4              # 'continuous': frames between two grid codes
    motion_interp: str = "cubic"         # 'continuous': "cubic" (Catmull-Rom) or "linear"
    time_features: int = 8               # 'continuous': number of sin/cos frequencies
    time_period_min: float = 4.0         # 'continuous': shortest period, in frames (> 2: no flicker)
    time_period_max: float = 64.0        # 'continuous': longest period, in frames
    motion_to_styles: bool = True        # m_t enters the 4x4 input AND offsets the styles of every layer;
                                         # False: the input only (StyleGAN-V), styles are content alone
    styles_per_clip: bool = False        # with motion_to_styles: the style offset network sees a zero motion
                                         # code, so styles are content alone (one per clip) and motion enters
                                         # at the input only; changeable on resume (same weights)
    motion_warp: bool = False            # the layers up to warp_resolution run once per clip from w_c alone (a
                                         # content feature map); each frame moves that map by transforms
                                         # (warp_transform) of (w_c, m_t); with motion_to_styles false, motion
                                         # then cannot redraw what a group holds (an affine warp can still
                                         # rescale it)
    warp_resolution: int = 16            # motion_warp: resolution of the moved map (power of two, 4..resolution)
    warp_groups: int = 2                 # motion_warp: channel groups with a transform each, rendered apart as
                                         # layers (parts that move independently, e.g. two digits); must
                                         # divide the width there
    warp_transform: str = "affine"       # motion_warp: "affine" (move, turn, scale, shear each group) or
                                         # "translate" (move only: each group keeps its shape)
    warp_limit: float = 0.0              # motion_warp: soft bound L on each group's translation t, as L * tanh(t / L)
                                         # (grid units: 2 = a frame width; with "translate" the map centre then
                                         # stays within L / 2 frame widths of the frame centre, on the frame
                                         # for L <= 1); 0 = no bound
    # Synthesis network.
    channel_base: int = 512
    channel_max: int = 128
    conv_clamp: Optional[float] = None   # clamp of conv outputs, e.g. 256 for float16 (None = off)
    # Frame discriminator (2D, k frames of each clip).
    frame_d_frames: int = 2
    d_channel_base: int = 512
    d_channel_max: int = 128
    mbstd_group: int = 4
    # Pair discriminator (2D, optional): two frames of one clip, at least frames // 2 apart, stacked as
    # 6 channels, so it sees whether a clip's content stays the same; widths as the frame D's.
    pair_d: bool = False
    pair_d_pairs: int = 2                # pairs drawn from each clip
    # Content encoder E (optional): embeds single frames (FIR-downsampled by 2), learned contrastively on
    # real clips so that the frames of one clip agree; G is charged for fake clips whose frames disagree,
    # so a clip's content (which digits, which face) stays the same over time; widths as the frame D's.
    content_encoder: bool = False
    content_frames: int = 4              # frames of each fake clip whose embeddings G must make agree
    # Clip discriminator ((2+1)D over the whole clip, with frame differences as extra input).
    clip_channel_base: int = 256
    clip_channel_max: int = 64
    clip_diff: bool = True
    clip_input_div: int = 2              # the clip D sees clips FIR-downsampled by 1, 2 or 4

    # Fields that shape nothing while the switch they name is off: two configs that differ only there
    # (with the switch off in both) build the same networks.
    INERT_UNLESS = {"warp_resolution": "motion_warp", "warp_groups": "motion_warp", "warp_transform": "motion_warp",
                    "warp_limit": "motion_warp"}

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

    @classmethod
    def inert(cls, key: str, *configs: Dict[str, Any]) -> bool:
        """Whether field `key` shapes nothing in any of these model config dicts (its switch is off in all)."""
        switch = cls.INERT_UNLESS.get(key)
        return switch is not None and not any(isinstance(c, dict) and c.get(switch, False) for c in configs)

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
        r = self.resolution
        if not (32 <= r <= 256 and r & (r - 1) == 0):
            raise InputError(f"model config resolution must be a power of two from 32 to 256, got {r}.")
        if self.frames < 2:
            raise InputError(f"model config frames must be at least 2, got {self.frames}.")
        if self.motion not in MOTIONS:
            raise InputError(f"model config motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}.")
        if self.motion_interp not in INTERPOLATIONS:
            raise InputError(f"model config motion_interp must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.motion_interp!r}.")
        for name in ("z_dim", "w_dim", "mapping_layers", "motion_dim", "motion_code_dim", "motion_spacing",
                     "time_features", "channel_base", "channel_max", "frame_d_frames", "d_channel_base",
                     "d_channel_max", "mbstd_group", "pair_d_pairs", "content_frames", "warp_groups",
                     "clip_channel_base", "clip_channel_max"):
            if getattr(self, name) < 1:
                raise InputError(f"model config {name} must be at least 1, got {getattr(self, name)}.")
        if self.content_encoder and self.content_frames < 2:
            raise InputError(f"model config content_frames must be at least 2 with content_encoder (the frames of "
                             f"one clip are compared), got {self.content_frames}.")
        if self.styles_per_clip and not self.motion_to_styles:
            raise InputError("model config styles_per_clip needs motion_to_styles true (without the style offset "
                             "network the styles are content alone already); set styles_per_clip false.")
        wr = self.warp_resolution
        if self.motion_warp and not (4 <= wr <= r and wr & (wr - 1) == 0):
            raise InputError(f"model config warp_resolution must be a power of two from 4 to resolution ({r}), "
                             f"got {wr}.")
        if self.motion_warp and self.g_width(wr) % self.warp_groups:
            raise InputError(f"model config warp_groups ({self.warp_groups}) must divide the generator width at "
                             f"warp_resolution {wr} ({self.g_width(wr)} channels).")
        if self.motion_warp and self.warp_transform not in WARP_TRANSFORMS:
            raise InputError(f"model config warp_transform must be one of {', '.join(WARP_TRANSFORMS)}, "
                             f"got {self.warp_transform!r}.")
        if self.motion_warp and self.warp_limit < 0:
            raise InputError(f"model config warp_limit must be 0 (no bound) or positive, got {self.warp_limit}.")
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
