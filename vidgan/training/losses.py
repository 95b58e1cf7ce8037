"""GAN losses and regularisers for the frame and clip discriminators.

Logits are [N, 1] (or [N]); every function returns a scalar mean over the batch.

    kind        discriminator loss                        generator loss
    logistic    softplus(D(fake)) + softplus(-D(real))    softplus(-D(fake))      (non-saturating, default)
    hinge       relu(1 - D(real)) + relu(1 + D(fake))     -D(fake)
    lsgan       (D(real) - 1)^2 / 2 + D(fake)^2 / 2       (D(fake) - 1)^2 / 2
    wgan-gp     D(fake) - D(real) + drift * D(real)^2     -D(fake)                (+ gradient penalty)

Regularisers: `r1_penalty` (squared gradient norm of D on real clips, applied lazily every k
steps by the loop) and `gradient_penalty` (WGAN-GP, on random interpolates of real and fake).
"""
from typing import Callable

import torch
import torch.nn.functional as F


LOSSES = ("logistic", "hinge", "lsgan", "wgan-gp")
WGAN_DRIFT = 1e-3  # keeps WGAN critic outputs near zero (Karras et al., progressive GAN)


def _check(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")


def d_loss_real(kind: str, real_logits: torch.Tensor) -> torch.Tensor:
    """The real-data half of the discriminator loss."""
    _check(kind)
    r = real_logits.float()
    if kind == "logistic":
        return F.softplus(-r).mean()
    if kind == "hinge":
        return F.relu(1.0 - r).mean()
    if kind == "lsgan":
        return 0.5 * (r - 1.0).square().mean()
    return (-r + WGAN_DRIFT * r.square()).mean()


def d_loss_fake(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generated-data half of the discriminator loss."""
    _check(kind)
    f = fake_logits.float()
    if kind == "logistic":
        return F.softplus(f).mean()
    if kind == "hinge":
        return F.relu(1.0 + f).mean()
    if kind == "lsgan":
        return 0.5 * f.square().mean()
    return f.mean()


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Full discriminator loss (real + fake halves)."""
    return d_loss_real(kind, real_logits) + d_loss_fake(kind, fake_logits)


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss on the discriminator's logits of generated clips."""
    _check(kind)
    f = fake_logits.float()
    if kind == "logistic":
        return F.softplus(-f).mean()
    if kind == "lsgan":
        return 0.5 * (f - 1.0).square().mean()
    return (-f).mean()  # hinge and wgan-gp


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """mean_n ||d sum(D(real)) / d real_n||^2; `real` must require grad and have produced the logits.

    Built with create_graph=True so the penalty itself can be back-propagated into D.
    """
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean (||grad D(x_hat)|| - 1)^2 on x_hat = eps * real + (1 - eps) * fake, eps ~ U(0,1) per clip."""
    eps = torch.rand([real.shape[0]] + [1] * (real.ndim - 1), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).float().sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)
    return (norm - 1.0).square().mean()
