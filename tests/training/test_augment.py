"""Video-consistent augmentation: one transform per clip, identical on every frame, differentiable."""
import pytest
import torch

from vidgan.training.augment import AUGMENTS, VideoAugment, adjust_p


def _clip(n=4, t=5, h=16, w=16):
    return torch.rand(n, 3, t, h, w) * 2 - 1


def test_p_zero_is_identity():
    x = _clip()
    assert VideoAugment(0.0, AUGMENTS)(x) is x


def test_flip_with_p_one_mirrors_every_frame():
    x = _clip()
    torch.testing.assert_close(VideoAugment(1.0, ("flip",))(x), x.flip(-1))


@pytest.mark.parametrize("op", AUGMENTS)
def test_same_transform_on_every_frame(op):
    # Permuting the frames before or after augmenting gives the same result only if every
    # frame of a clip gets the same transform (same random draws: same seed, same shapes).
    x = _clip()
    perm = torch.tensor([3, 0, 4, 1, 2])
    aug = VideoAugment(1.0, (op,))
    torch.manual_seed(7)
    y = aug(x)
    torch.manual_seed(7)
    y_perm = aug(x[:, :, perm])
    torch.testing.assert_close(y[:, :, perm], y_perm)
    assert y.shape == x.shape
    assert not torch.equal(y, x)
    # a clip of identical frames stays a clip of identical frames
    still = x[:, :, :1].expand_as(x).contiguous()
    z = aug(still)
    torch.testing.assert_close(z, z[:, :, :1].expand_as(z))


def test_translate_shifts_by_whole_pixels():
    x = _clip(n=8)
    y = VideoAugment(1.0, ("translate",))(x)
    # each output pixel is a copy of some input pixel of the same clip (no interpolation)
    for i in range(8):
        vals = set(x[i].flatten().tolist())
        assert set(y[i].flatten().tolist()) <= vals


def test_gradients_flow_through_all_transforms():
    x = _clip().requires_grad_(True)
    y = VideoAugment(1.0, AUGMENTS)(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation"):
        VideoAugment(0.5, ("rotate",))


def test_adaptive_p_moves_toward_target_and_clamps():
    assert adjust_p(0.1, rt=0.9, target=0.6, batch=8, interval=4, speed_kimg=100) == pytest.approx(0.1 + 32 / 1e5)
    assert adjust_p(0.1, rt=0.2, target=0.6, batch=8, interval=4, speed_kimg=100) == pytest.approx(0.1 - 32 / 1e5)
    assert adjust_p(0.0, rt=0.0, target=0.6, batch=8, interval=4, speed_kimg=100) == 0.0
    assert adjust_p(1.0, rt=1.0, target=0.6, batch=8, interval=4, speed_kimg=100) == 1.0
