"""Grey clips at the FVD's input: replicated to RGB, so they score as the same clips in RGB."""
import numpy as np
import pytest
import torch

from vidgan.errors import InputError
from vidgan.metrics.fvd import _as_uint8_tensor, preprocess


def test_grey_clips_enter_the_i3d_as_the_same_clips_replicated_to_rgb():
    grey = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 1), dtype=np.uint8))
    rgb = grey.repeat(1, 1, 1, 1, 3)
    assert torch.equal(preprocess(grey), preprocess(rgb)) and preprocess(grey).shape == (2, 3, 3, 224, 224)
    assert torch.equal(_as_uint8_tensor(grey.numpy()), rgb)


def test_other_channel_counts_are_refused():
    with pytest.raises(InputError, match=r"clips must be uint8 \[N, T, H, W, 3\] \(or \[N, T, H, W, 1\] grey\)"):
        _as_uint8_tensor(np.zeros((1, 9, 8, 8, 2), np.uint8))
