"""GAN losses and regularisers against their formulas on hand-made logits and linear discriminators."""
import math

import pytest
import torch
import torch.nn.functional as F

from vidgan.training.losses import LOSSES, d_loss, d_loss_fake, d_loss_real, g_loss, gradient_penalty, r1_penalty


def test_formulas_on_known_logits():
    real = torch.tensor([[2.0], [-1.0]])
    fake = torch.tensor([[0.5], [-3.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert d_loss("logistic", real, fake).item() == pytest.approx((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2)
    assert d_loss("hinge", real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert d_loss("lsgan", real, fake).item() == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)
    wgan = (-2 + 1e-3 * 4 + 1 + 1e-3 * 1) / 2 + (0.5 - 3) / 2
    assert d_loss("wgan-gp", real, fake).item() == pytest.approx(wgan)
    assert g_loss("logistic", fake).item() == pytest.approx((sp(-0.5) + sp(3)) / 2)
    assert g_loss("lsgan", fake).item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    assert g_loss("hinge", fake).item() == pytest.approx(1.25)
    assert d_loss("logistic", real, fake) == d_loss_real("logistic", real) + d_loss_fake("logistic", fake)


@pytest.mark.parametrize("kind", LOSSES)
def test_generator_loss_falls_as_fakes_look_real(kind):
    logits = torch.linspace(-2, 0.5, 6)[:, None].requires_grad_(True)
    g_loss(kind, logits).backward()
    assert (logits.grad < 0).all()          # raising D(fake) lowers the generator loss
    real = torch.zeros(6, 1, requires_grad=True)
    d_loss_real(kind, real).backward()
    assert (real.grad < 0).all()            # D gains by raising its score on reals


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        g_loss("softmax", torch.zeros(2, 1))


def test_r1_is_the_squared_gradient_norm_and_differentiable():
    w = torch.randn(3, 2, 4, 4, requires_grad=True)                     # D(x) = <w, x> per clip
    x = torch.randn(5, 3, 2, 4, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    pen = r1_penalty(logits, x)
    assert pen.item() == pytest.approx(w.square().sum().item(), rel=1e-5)
    pen.backward()                                                      # double backward into D's weights
    torch.testing.assert_close(w.grad, 2 * w.detach())


def test_gradient_penalty_of_linear_critics():
    real, fake = torch.randn(4, 3, 2, 4, 4), torch.randn(4, 3, 2, 4, 4)
    w = torch.randn(3, 2, 4, 4)
    for scale, expected in ((1.0, 0.0), (2.0, 1.0), (0.5, 0.25)):
        wn = (w / w.norm() * scale).requires_grad_(True)
        gp = gradient_penalty(lambda v: (v * wn).flatten(1).sum(1, keepdim=True), real, fake)
        assert gp.item() == pytest.approx(expected, abs=1e-5)
        gp.backward()
        assert torch.isfinite(wn.grad).all()
