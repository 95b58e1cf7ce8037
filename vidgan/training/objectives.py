"""What each network is trained to minimise in one micro-batch: the discriminators' and the generator's
objectives, summed over the frame and clip discriminators with their weights.

    D:  sum_d  w_d * (d_loss(D_d(real), D_d(fake)) + [WGAN-GP | lazy R1 every k steps, scaled by k])
    G:  sum_d  w_d * g_loss(D_d(fake))

`discs` is a list of (name, module, weight) of the discriminators that train ("f" frame, "c" clip);
`acc(key, value)` accumulates a logged value; `autocast()` is the run's autocast context.
"""
from typing import Callable, List, Tuple

import torch

from vidgan.training.losses import d_loss, g_loss, gradient_penalty, r1_penalty

Discs = List[Tuple[str, torch.nn.Module, float]]


def discriminator_objective(cfg, discs: Discs, real: torch.Tensor, fake: torch.Tensor, do_r1: bool,
                            acc: Callable, autocast: Callable) -> torch.Tensor:
    """The discriminators' loss on augmented real and fake clips [n, 3, T, H, W] (real requires grad for R1)."""
    loss = 0
    for name, disc, w in discs:
        with autocast():
            lr_, lf_ = disc(real), disc(fake)                                # [n, 1] each
        term = d_loss(cfg.loss, lr_, lf_)
        acc(f"loss_D{name}", term)
        acc("real_sign", lr_.detach().float().sign().mean() / len(discs))
        term = w * term
        if cfg.loss == "wgan-gp":
            def critic(v, disc=disc):
                with autocast():
                    return disc(v)
            gp = gradient_penalty(critic, real, fake)
            acc(f"gp_{name}", gp)
            term = term + cfg.gp_weight * w * gp
        if do_r1:
            r1 = r1_penalty(lr_, real)
            acc(f"r1_{name}", r1)
            term = term + w * r1 * (cfg.r1_gamma / 2 * cfg.r1_every)
        loss = loss + term
    return loss


def generator_objective(cfg, discs: Discs, fake: torch.Tensor, acc: Callable, autocast: Callable) -> torch.Tensor:
    """The generator's loss on augmented fake clips [n, 3, T, H, W] (gradients reach G through every D)."""
    loss = 0
    for name, disc, w in discs:
        with autocast():
            lf_ = disc(fake)
        term = g_loss(cfg.loss, lf_)
        acc(f"loss_G{name}", term)
        loss = loss + w * term
    return loss
