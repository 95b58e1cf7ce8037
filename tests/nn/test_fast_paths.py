"""The layers' faster formulations equal the plain ones: 1x1 convolutions with few input channels as a
batched matrix product, toRGB with the styles in the weight, and the demodulation's scale + bias."""
import torch
import torch.nn.functional as F

from vidgan.nn import EqualConv2d, EqualConv3d, ModulatedConv2d
from vidgan.nn.equalized import FEW_CHANNELS, pointwise
from vidgan.nn.modulated import _ScaleBias


def test_pointwise_equals_1x1_conv():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 6, 7, dtype=torch.float64)
    w = torch.randn(2, 5, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    want = F.conv3d(x, w[:, :, None, None, None], b)
    got = pointwise(x, w[None].expand(3, -1, -1), b)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(pointwise(x, w[None].expand(3, -1, -1)), F.conv3d(x, w[:, :, None, None, None]))


def test_equal_convs_take_the_matrix_product_only_where_it_pays():
    torch.manual_seed(0)
    for layer, x in ((EqualConv2d(3, 4, 1, act="lrelu"), torch.randn(2, 3, 5, 5)),
                     (EqualConv3d(6, 4, 1, act="lrelu"), torch.randn(2, 6, 3, 5, 5)),
                     (EqualConv2d(FEW_CHANNELS + 1, 4, 1), torch.randn(2, FEW_CHANNELS + 1, 5, 5))):
        layer = layer.double()
        with torch.no_grad():
            layer.bias.normal_() if layer.bias is not None else None
        x = x.double().requires_grad_()
        y = layer(x)
        conv = F.conv3d if x.ndim == 5 else F.conv2d
        want = conv(x, layer.weight * layer.weight_gain, layer.bias)
        want = F.leaky_relu(want, 0.2) * 2 ** 0.5 if layer.act == "lrelu" else want
        torch.testing.assert_close(y, want)
        gx, = torch.autograd.grad(y.square().sum(), x)
        wx, = torch.autograd.grad(want.square().sum(), x)
        torch.testing.assert_close(gx, wx)


def test_torgb_training_mode_equals_eval_mode():
    """Training mode puts the styles into the weight (a batched product); eval mode keeps the convolution."""
    torch.manual_seed(0)
    m = ModulatedConv2d(6, 3, 1, w_dim=5, demodulate=False).double()
    x, w, b = torch.randn(4, 6, 8, 8).double(), torch.randn(4, 5).double(), torch.randn(3).double()
    train = m.train()(x, w, bias=b, gain=0.5)
    ev = m.eval()(x, w, bias=b, gain=0.5)
    torch.testing.assert_close(train, ev)


def test_scale_bias_gradients():
    torch.manual_seed(0)
    y = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    d = torch.rand(3, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_ScaleBias.apply, (y, d, b))
    torch.testing.assert_close(_ScaleBias.apply(y, d, b), y * d + b[None, :, None, None])
