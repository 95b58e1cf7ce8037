import pytest

from vidgan.models import ModelConfig

TINY = dict(resolution=32, frames=4, z_dim=16, w_dim=16, mapping_layers=2, motion_dim=8, motion_code_dim=8,
            motion_spacing=2, time_features=3, channel_base=128, channel_max=16, d_channel_base=128,
            d_channel_max=16, clip_channel_base=64, clip_channel_max=16)


def tiny_config(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


@pytest.fixture
def tiny():
    return tiny_config
