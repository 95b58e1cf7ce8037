import pytest
import torch

from vidgan.errors import InputError
from vidgan.models import ClipDiscriminator, FrameDiscriminator, PairDiscriminator, TemporalGenerator

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


@pytest.mark.parametrize("t", [2, 4, 7, 16])
def test_pair_sampling_draws_far_apart_ordered_frames(t):
    Dp = PairDiscriminator(tiny_config(pair_d=True, pair_d_pairs=3))
    torch.manual_seed(0)
    idx = Dp.sample_frames(500, t)                                       # [N, k, 2]
    assert idx.shape == (500, 3, 2)
    a, b = idx[..., 0], idx[..., 1]
    assert (a >= 0).all() and (b <= t - 1).all() and (b - a >= max(1, t // 2)).all()
    # Every allowed gap and every allowed first frame of the longest gap occur.
    assert set((b - a).unique().tolist()) == set(range(max(1, t // 2), t))
    assert set(a[b - a == max(1, t // 2)].unique().tolist()) == set(range(t - max(1, t // 2)))
    torch.manual_seed(0)
    assert torch.equal(idx, Dp.sample_frames(500, t))                   # the global RNG


def test_pair_discriminator_judges_the_two_frames_of_a_pair_together():
    torch.manual_seed(0)
    Dp = PairDiscriminator(tiny_config(pair_d=True, pair_d_pairs=1))
    x = torch.randn(3, 3, 4, 32, 32)
    assert Dp(x).shape == (3, 1)
    idx = torch.tensor([[[0, 2]], [[1, 3]], [[0, 3]]])
    def logits(v, index):                 # clip by clip: minibatch std would mix the clips of a batch
        return torch.cat([Dp(v[i:i + 1], frame_index=index[i:i + 1]) for i in range(len(v))])

    base = logits(x, idx)
    # A change to the second frame of a pair changes that clip's logit only; frames outside the pairs
    # change nothing.
    y = x.clone()
    y[0, :, 2] = torch.randn(3, 32, 32)
    y[1, :, 2] = torch.randn(3, 32, 32)
    out = logits(y, idx)
    assert not torch.allclose(out[0], base[0]) and torch.equal(out[1:], base[1:])
    # The order of the pair's frames matters (earlier frame first): it is not a mean of frame logits.
    assert not torch.allclose(logits(x, idx.flip(2)), base)
    with pytest.raises(InputError, match="PairDiscriminator"):
        Dp(torch.randn(2, 3, 4, 16, 16))


def test_a_pair_discriminator_can_start_as_the_frame_discriminator_on_the_earlier_frame():
    cfg = tiny_config(pair_d=True, pair_d_pairs=1)
    torch.manual_seed(0)
    Df, Dp = FrameDiscriminator(cfg), PairDiscriminator(cfg)
    with torch.no_grad():
        for p in Df.parameters():                              # a "trained" Df: biases not zero
            p.add_(0.1 * torch.randn_like(p))
    Dp.init_from(Df)
    x = torch.randn(4, 3, 4, 32, 32)
    idx = torch.tensor([[[0, 2]], [[1, 3]], [[0, 3]], [[1, 2]]])
    torch.testing.assert_close(Dp(x, frame_index=idx), Df(x, frame_index=idx[..., 0]), rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[:, :, 2:] = 0                                           # the later frames do not count, yet
    torch.testing.assert_close(Dp(x2, frame_index=idx), Dp(x, frame_index=idx), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="FrameDiscriminator of the same model config"):
        Dp.init_from(FrameDiscriminator(tiny_config(pair_d=True, d_channel_max=8)))


def test_pair_discriminator_gradients_reach_every_parameter_and_the_generator():
    G, _, _ = models()
    Dp = PairDiscriminator(tiny_config(pair_d=True))
    fake = G.train()(G.sample_content(4), G.sample_motion(4, 4))
    Dp(fake).sum().backward()
    for module in (G, Dp):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
