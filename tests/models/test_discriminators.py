import pytest
import torch

from vidgan.errors import InputError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, TemporalGenerator

from .conftest import tiny_config


def models(**kw):
    torch.manual_seed(0)
    cfg = tiny_config(**kw)
    return TemporalGenerator(cfg), FrameDiscriminator(cfg), ClipDiscriminator(cfg)


@pytest.mark.parametrize("resolution", [32, 64])
def test_logit_shapes(resolution):
    _, Df, Dc = models(resolution=resolution)
    x = torch.randn(3, 3, 4, resolution, resolution)
    assert Df(x).shape == (3, 1)
    assert Dc(x).shape == (3, 1)
    # Clips of another length are accepted by the clip discriminator.
    assert Dc(torch.randn(2, 3, 7, resolution, resolution)).shape == (2, 1)


def test_wrong_input_shape_is_an_input_error():
    _, Df, Dc = models()
    with pytest.raises(InputError, match="FrameDiscriminator"):
        Df(torch.randn(2, 3, 4, 16, 16))
    with pytest.raises(InputError, match="ClipDiscriminator"):
        Dc(torch.randn(2, 3, 32, 32))


def test_frame_sampling_uses_the_global_rng_and_explicit_indices():
    _, Df, _ = models(frame_d_frames=2)
    x = torch.randn(4, 3, 4, 32, 32)
    torch.manual_seed(5)
    a = Df(x)
    torch.manual_seed(5)
    assert torch.equal(a, Df(x))
    idx = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])
    assert torch.equal(Df(x, frame_index=idx), Df(x, frame_index=idx))
    # The logit of a clip is the mean over its k frames: frames 0,1 and 1,0 agree.
    swapped = torch.tensor([[1, 0], [3, 2], [0, 1], [2, 3]])
    assert torch.allclose(Df(x, frame_index=idx), Df(x, frame_index=swapped), atol=1e-5)


def test_clip_discriminator_sees_frame_order():
    _, _, Dc = models()
    x = torch.randn(2, 3, 4, 32, 32)
    assert not torch.allclose(Dc(x), Dc(x.flip(2)))


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_gradients_reach_every_parameter_including_r1_double_backward(motion):
    G, Df, Dc = models(motion=motion)
    z, m = G.sample_content(4), G.sample_motion(4, 4)
    fake = G.train()(z, m)
    (Df(fake).sum() + Dc(fake).sum()).backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
    for D in (Df, Dc):
        for name, p in D.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
        D.zero_grad(set_to_none=True)
    # R1: the gradient penalty on real clips backpropagates into every weight of both discriminators.
    real = torch.randn(4, 3, 4, 32, 32, requires_grad=True)
    logits = Df(real).sum() + Dc(real).sum()
    (grad,) = torch.autograd.grad(logits, real, create_graph=True)
    grad.square().sum().backward()
    for D in (Df, Dc):
        for name, p in D.named_parameters():
            if name.endswith("weight"):
                assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name

