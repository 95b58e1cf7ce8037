"""model.channels: a grey (1-channel) generator and discriminators, and the config's checks."""
import pytest
import torch

from vidgan.errors import InputError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, TemporalGenerator

from .conftest import tiny_config


@pytest.mark.parametrize("clip_diff", [True, False])
def test_a_grey_generator_renders_one_channel_and_both_discriminators_take_it(clip_diff):
    cfg = tiny_config(channels=1, clip_diff=clip_diff)
    torch.manual_seed(0)
    G, Df, Dc = TemporalGenerator(cfg), FrameDiscriminator(cfg), ClipDiscriminator(cfg)
    video = G(G.sample_content(2), G.sample_motion(2))
    assert video.shape == (2, 1, cfg.frames, 32, 32)
    assert G.synthesis.torgb4.conv.weight.shape[0] == 1 and G.synthesis.blocks[-1].torgb.bias.shape == (1,)
    assert Df.from_rgb.weight.shape[1] == 1 and Dc.from_rgb.weight.shape[1] == (2 if clip_diff else 1)
    logits = Df(video) + Dc(video)
    assert logits.shape == (2, 1)
    logits.sum().backward()                       # gradients reach G's grey toRGB layers
    assert G.synthesis.blocks[-1].torgb.bias.grad.abs().sum() > 0


def test_discriminators_refuse_the_other_channel_count_naming_it():
    video = torch.zeros(2, 3, 4, 32, 32)
    for D in (FrameDiscriminator(tiny_config(channels=1)), ClipDiscriminator(tiny_config(channels=1))):
        with pytest.raises(InputError, match=r"expects video \[N, 1, T, 32, 32\] \(model.channels 1\), got \(2, 3"):
            D(video)


def test_channels_defaults_to_3_and_old_configs_load_as_rgb():
    assert ModelConfig().channels == 3 and "channels" in ModelConfig.rule_fields("g")
    old = tiny_config().to_dict()
    del old["channels"]                            # a config.json written before the key existed
    assert ModelConfig.from_dict(old).channels == 3


@pytest.mark.parametrize("value", [2, 0, 4])
def test_a_bad_channel_count_is_one_sentence(value):
    with pytest.raises(InputError, match=rf"^model config channels must be 1 \(grey\) or 3 \(RGB\), got {value}\.$"):
        tiny_config(channels=value)
