"""What each network is trained to minimise in one micro-batch: the discriminators' and the generator's
objectives, summed over the frame and clip discriminators with their weights.

    D:  sum_d  w_d * (d_loss(D_d(real), D_d(fake)) + [WGAN-GP | lazy R1 every k steps, scaled by k])
    G:  sum_d  w_d * g_loss(D_d(fake))
    both, with model.content_classes = K > 0:  + w_f * cross-entropy(Q(fake frame), c), where Q is the frame D's
        guess of the content class c of the frame's clip (InfoGAN's categorical code; `classes` holds c)

`discs` is a list of (name, module, weight) of the discriminators that train ("f" frame, "c" clip);
`acc(key, value)` accumulates a logged value; `autocast()` is the run's autocast context.
"""
from typing import Callable, List, Optional, Tuple

import torch

from vidgan.training.losses import d_loss, g_loss, gradient_penalty, r1_penalty

Discs = List[Tuple[str, torch.nn.Module, float]]


def _judge_fake(cfg, name: str, disc, fake: torch.Tensor, classes: Optional[torch.Tensor], acc: Callable, key: str):
    """(D's logits of the fakes [n, 1], the class cross-entropy or 0 when it is off; logged as `key`)."""
    if name != "f" or not cfg.model.content_classes or classes is None:
        return disc(fake), 0
    logits, guess = disc(fake, with_info=True)                               # guess [n, frames judged, K]
    target = classes.long()[:, None].expand(guess.shape[:2])
    ce = torch.nn.functional.cross_entropy(guess.float().flatten(0, 1), target.flatten())
    acc(key, ce)
    return logits, ce


def discriminator_objective(cfg, discs: Discs, real: torch.Tensor, fake: torch.Tensor, do_r1: bool,
                            acc: Callable, autocast: Callable, classes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The discriminators' loss on augmented real and fake clips [n, 3, T, H, W] (real requires grad for R1);
    `classes` [n]: the fakes' content classes."""
    loss = 0
    for name, disc, w in discs:
        with autocast():
            lr_ = disc(real)                                                 # [n, 1]
            lf_, info = _judge_fake(cfg, name, disc, fake, classes, acc, "info_D")
        term = d_loss(cfg.loss, lr_, lf_)
        acc(f"loss_D{name}", term)
        acc("real_sign", lr_.detach().float().sign().mean() / len(discs))
        term = w * (term + info)
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


def generator_objective(cfg, discs: Discs, fake: torch.Tensor, acc: Callable, autocast: Callable,
                        classes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The generator's loss on augmented fake clips [n, 3, T, H, W] (gradients reach G through every D);
    `classes` [n]: their content classes."""
    loss = 0
    for name, disc, w in discs:
        with autocast():
            lf_, info = _judge_fake(cfg, name, disc, fake, classes, acc, "info_G")
        term = g_loss(cfg.loss, lf_)
        acc(f"loss_G{name}", term)
        loss = loss + w * (term + info)
    return loss
