import json

import pytest

from vidgan.errors import InputError
from vidgan.models import ModelConfig


def test_round_trip_through_json():
    cfg = ModelConfig(resolution=128, frames=8, motion="gru", channel_max=32, conv_clamp=None)
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.to_dict() == cfg.to_dict()


def test_missing_keys_take_defaults_and_ints_become_floats():
    cfg = ModelConfig.from_dict({"resolution": 32, "time_period_min": 3})
    assert cfg.frames == ModelConfig().frames
    assert isinstance(cfg.time_period_min, float) and cfg.time_period_min == 3.0


def test_unknown_keys_are_named():
    with pytest.raises(InputError, match="resolutoin.*speed|speed.*resolutoin"):
        ModelConfig.from_dict({"resolutoin": 64, "speed": 2})


@pytest.mark.parametrize("key,value,pattern", [
    ("resolution", 48, "power of two"), ("resolution", 16, "power of two"), ("resolution", 512, "power of two"),
    ("resolution", "64", "integer"), ("resolution", True, "integer"), ("frames", 1, "at least 2"),
    ("motion", "lstm", "motion must be one of"), ("motion_interp", "spline", "motion_interp"),
    ("channel_max", 0, "channel_max"), ("frame_d_frames", 99, "frame_d_frames"),
    ("time_period_min", 100.0, "time_period_min"), ("conv_clamp", -1.0, "conv_clamp"),
    ("mapping_lr_mul", float("nan"), "mapping_lr_mul"), ("clip_diff", 1, "clip_diff"),
    ("motion_to_styles", "yes", "motion_to_styles must be true or false"), ("mbstd_group", 0, "at least 1"),
])
def test_bad_values_raise_input_error_naming_the_field(key, value, pattern):
    with pytest.raises(InputError, match=pattern):
        ModelConfig.from_dict({key: value})


def test_not_a_dict():
    with pytest.raises(InputError, match="JSON object"):
        ModelConfig.from_dict([("resolution", 64)])


def test_diff_lists_changed_keys():
    a, b = ModelConfig(), ModelConfig(frames=8, motion="gru")
    assert a.diff(b) == {"frames": (16, 8), "motion": ("continuous", "gru")}
    assert a.diff(ModelConfig()) == {}


def test_widths_follow_base_and_max():
    cfg = ModelConfig(channel_base=1024, channel_max=64)
    assert [cfg.g_width(r) for r in (4, 8, 16, 32, 64)] == [64, 64, 64, 32, 16]


@pytest.mark.parametrize("key,value", [("pair_d", True), ("content_encoder", True), ("styles_per_clip", True),
                                       ("motion_warp", True)])
def test_a_removed_option_switched_on_is_refused_by_name(key, value):
    with pytest.raises(InputError, match=rf"^the model config uses model\.{key}=true, an option that vidgan 0\.1\.0 "
                                         r"was the last version to have; use vidgan 0\.1\.0 for it, or start a new "
                                         r"run without it\.$"):
        ModelConfig.from_dict({key: value})


def test_removed_options_left_off_are_dropped():
    old = dict(ModelConfig().to_dict(), pair_d=False, pair_d_pairs=2, content_encoder=False, content_frames=4,
               styles_per_clip=False, motion_warp=False, warp_resolution=16, warp_groups=2,
               warp_transform="affine", warp_limit=0.0)
    assert ModelConfig.from_dict(old) == ModelConfig()


def test_field_rules_are_declared_on_the_fields():
    assert ModelConfig.rule_fields("resume") == ("frames",)
    g = ModelConfig.rule_fields("g")
    assert {"resolution", "z_dim", "motion", "channel_base", "motion_to_styles"} <= set(g)
    assert not {"frames", "d_channel_base", "clip_channel_max", "frame_d_frames"} & set(g)
