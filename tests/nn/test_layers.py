import math

import pytest
import torch
import torch.nn.functional as F

from vidgan.nn import (DownBlock2d, DownBlock3d, Downsample2d, EqualConv2d, EqualConv3d, EqualLinear, MinibatchStd,
                       ModulatedConv2d, StyleConv, ToRGB, Upsample2d, VideoDownsample, bias_act, row_exact_linear)
from vidgan.ops import fused_upsample, reference, setup_filter


@torch.no_grad()
def test_equalized_layers_keep_unit_scale_and_apply_lr_mul():
    torch.manual_seed(0)
    x = torch.randn(4096, 256)
    y = EqualLinear(256, 128)(x)
    assert 0.9 < float(y.std()) < 1.1
    slow = EqualLinear(8, 4, lr_mul=0.01, bias_init=1.0)
    assert torch.allclose(slow(torch.zeros(2, 8)), torch.ones(2, 4))
    assert torch.allclose(slow.weight * slow.weight_gain, slow.weight.detach() * 0.01 / math.sqrt(8))
    conv = EqualConv2d(64, 32, 3)
    assert 0.8 < float(conv(torch.randn(8, 64, 16, 16))[:, :, 1:-1, 1:-1].std()) < 1.2
    conv3 = EqualConv3d(8, 4, (3, 1, 1))
    assert conv3(torch.randn(2, 8, 5, 6, 6)).shape == (2, 4, 5, 6, 6)


def test_row_exact_linear_matches_linear_and_is_batch_invariant():
    # Bitwise equality is guaranteed by construction here, not by the BLAS kernel (whose float64
    # sums do differ between a batch and its slices): row_exact_linear rounds to float32 only
    # where no summation order can change the result, and recomputes the rest in an order fixed
    # by in_features alone. So it holds for any batch size, thread count and CPU.
    torch.manual_seed(0)
    x, w = torch.randn(37, 48), torch.randn(20, 48)
    w[0, :3] = 1.0
    x[3] = 0.0
    x[5:7] = 0.0
    x[5, :2] = torch.tensor([1.0, -1.0])                 # row 5 . w[0] = 1 - 1: exactly 0
    x[6, :2] = torch.tensor([1.0, 2.0 ** -24])           # exact result 1 + 2^-24: a float32 rounding tie
    full = row_exact_linear(x, w)
    assert torch.allclose(full, x @ w.t(), atol=1e-5)
    assert float(full[5, 0]) == 0.0 and float(full[6, 0]) == 1.0   # the tie rounds to even, as the exact value
    assert torch.equal(full[3], torch.zeros(20))
    for size in (1, 2, 5):
        assert torch.equal(full, torch.cat([row_exact_linear(x[a:a + size], w) for a in range(0, 37, size)]))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(full, row_exact_linear(x, w))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(row_exact_linear(x.reshape(37, 1, 48), w), full.reshape(37, 1, 20))
    # Still differentiable, recomputed elements included.
    xg = x[6:7].clone().requires_grad_(True)
    row_exact_linear(xg, w)[0, 0].backward()
    assert torch.equal(xg.grad[0], w[0])


def test_bias_act():
    x = torch.tensor([[-1.0, 2.0]])
    assert torch.allclose(bias_act(x, torch.tensor([0.5, 0.0]), "lrelu", dim=1),
                          torch.tensor([[-0.1, 2.0]]) * math.sqrt(2))
    assert torch.equal(bias_act(x * 100, None, "linear", clamp=5), torch.tensor([[-5.0, 5.0]]))
    with pytest.raises(ValueError):
        bias_act(x, act="tanh")


def test_bias_act_is_the_ops_one_with_the_layers_defaults():
    # One implementation (vidgan.ops.reference.bias_act); each caller keeps its defaults.
    torch.manual_seed(0)
    x, b = torch.randn(2, 3, 4, 5, 6), torch.randn(3)
    for act in ("lrelu", "relu", "linear"):
        for clamp in (None, 0.0, 0.5):
            assert torch.equal(bias_act(x, b, act, clamp), reference.bias_act(x, b, act=act, clamp=clamp))
    assert torch.equal(bias_act(x, b), x + b.view(1, 3, 1, 1, 1))                      # nn: linear
    assert torch.equal(bias_act(x, b[:1].expand(6), dim=-1), x + b[0])                 # any dim
    x4 = x[:, :, 0]
    assert torch.equal(reference.bias_act(x4, b), F.leaky_relu(x4 + b.view(1, 3, 1, 1), 0.2) * math.sqrt(2))
    assert torch.equal(reference.bias_act(x4, act="relu", act_gain=0.5), F.relu(x4) * 0.5)
    assert torch.equal(reference.bias_act(x4, act="linear", clamp=-1.0), x4)            # ops: -1 = no clamp
    with pytest.raises(ValueError, match="clamp must be a non-negative number"):
        bias_act(x, clamp=-1.0)                                                        # nn: an error


def test_modulated_conv_equals_per_sample_weights():
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, 3, w_dim=7)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 7)
    y = layer(x, w)
    styles = layer.affine(w)
    for b in range(3):
        weight = layer.weight * layer.weight_gain * styles[b][None, :, None, None]
        weight = weight * torch.rsqrt(weight.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        assert torch.allclose(y[b:b + 1], F.conv2d(x[b:b + 1], weight, padding=1), atol=1e-5)
    # Demodulated outputs have about unit variance whatever the style scale.
    big = ModulatedConv2d(64, 64, 3, w_dim=7)(torch.randn(4, 64, 16, 16), torch.randn(4, 7) * 10)
    assert 0.7 < float(big[:, :, 1:-1, 1:-1].detach().std()) < 1.3


def test_style_conv_upsampling_uses_the_fused_op():
    torch.manual_seed(0)
    layer = StyleConv(4, 6, w_dim=5, up=True)
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 5)
    y = layer(x, w)
    assert y.shape == (2, 6, 16, 16)
    expected = fused_upsample(layer.conv(x, w), setup_filter(), bias=layer.bias, up=2, act="lrelu")
    assert torch.allclose(y, expected, atol=1e-6)
    assert StyleConv(4, 6, w_dim=5)(x, w).shape == (2, 6, 8, 8)
    assert ToRGB(6, w_dim=5)(y, w).shape == (2, 3, 16, 16)


def test_resampling_shapes_and_constant_preservation():
    x = torch.full((2, 3, 16, 16), 2.0)
    d = Downsample2d()(x)
    assert d.shape == (2, 3, 8, 8) and torch.allclose(d[:, :, 1:-1, 1:-1], torch.full_like(d[:, :, 1:-1, 1:-1], 2.0))
    u = Upsample2d()(x)
    assert u.shape == (2, 3, 32, 32) and torch.allclose(u[:, :, 2:-2, 2:-2], torch.full_like(u[:, :, 2:-2, 2:-2], 2.0))
    v = torch.arange(5.0).reshape(1, 1, 5, 1, 1).expand(1, 2, 5, 8, 8).contiguous()
    vd = VideoDownsample()(v, temporal=True)
    assert vd.shape == (1, 2, 3, 4, 4)
    assert torch.allclose(vd[0, 0, :, 1, 1], torch.tensor([0.5, 2.5, 4.0]))
    assert VideoDownsample()(v).shape == (1, 2, 5, 4, 4)


def test_minibatch_std():
    x = torch.randn(8, 4, 3, 3)
    y = MinibatchStd(group_size=4)(x)
    assert y.shape == (8, 5, 3, 3)
    # Sample 0 is grouped with samples 2, 4, 6 (stride B/G).
    g = x[[0, 2, 4, 6]]
    expected = (g.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    assert torch.allclose(y[0, 4], expected.expand(3, 3), atol=1e-6)
    assert torch.equal(y[0, 4], y[2, 4])
    # Batch sizes that the group size does not divide fall back to a smaller group; 5D inputs work.
    assert MinibatchStd(4)(torch.randn(6, 4, 2, 3, 3)).shape == (6, 5, 2, 3, 3)
    assert MinibatchStd(4)(torch.randn(1, 4, 3, 3))[0, 4].abs().max() < 1e-3


def test_down_blocks():
    assert DownBlock2d(4, 8)(torch.randn(2, 4, 16, 16)).shape == (2, 8, 8, 8)
    block = DownBlock3d(4, 8)
    x = torch.randn(2, 4, 6, 16, 16)
    assert block(x).shape == (2, 8, 6, 8, 8)
    assert block(x, temporal_down=True).shape == (2, 8, 3, 8, 8)
