"""Fixtures for vidgan.training tests: a tiny Moving MNIST pack and tiny training configs."""
import pytest

from vidgan.training import resolve_config

# Narrow 32x32x4 models: a training step takes well under a second on one CPU core.
TINY_MODEL = dict(resolution=32, frames=4, z_dim=16, w_dim=16, mapping_layers=1, motion_dim=8, motion_code_dim=8,
                  motion_spacing=2, time_features=3, channel_base=128, channel_max=16, d_channel_base=128,
                  d_channel_max=16, clip_channel_base=64, clip_channel_max=16)
TINY_RUN = dict(batch=2, workers=0, r1_every=2, log_every=1, ckpt_every=0, sample_every=0, sample_num=4,
                time_offset=0, progress=False, tensorboard=False)


def tiny_sets():
    """--set assignments for the tiny model."""
    return [f"model.{k}={v}" for k, v in TINY_MODEL.items()]


@pytest.fixture(scope="session")
def mm_pack(tmp_path_factory):
    """8 Moving MNIST videos of 10 frames at 32x32, packed."""
    from vidgan.data import make_moving_mnist

    return make_moving_mnist(str(tmp_path_factory.mktemp("data") / "mm.vidpack"), videos=8, frames=10, digits=1,
                             size=32, seed=3)


@pytest.fixture
def make_cfg(mm_pack):
    """make_cfg(run_dir, sets=(), **fields) -> a TrainConfig of the tiny model on the tiny pack
    (sets: more --set assignments, e.g. ["model.motion=gru"])."""
    def make(run_dir, sets=(), **fields):
        overrides = dict(TINY_RUN, data=mm_pack)
        overrides.update(fields)
        model = [f"model.{k}={overrides.pop(k)}" for k in ("resolution", "frames") if k in overrides]
        return resolve_config(str(run_dir), overrides=overrides, assignments=tiny_sets() + model + list(sets))
    return make
