"""GAN losses on raw discriminator logits: LSGAN (default), non-saturating BCE, hinge.

The discriminator losses are the SUM of the real and fake terms, not their average, as in the
reference UNIT code (``MSE(D(real), 1) + MSE(D(fake), 0)``): halving would only rescale the
discriminator's learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_KINDS = ("lsgan", "bce", "hinge")


def _check_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {list(GAN_KINDS)}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "lsgan"
) -> torch.Tensor:
    """Discriminator loss; pass ``fake_logits`` of detached fakes.

    - lsgan: ``mean((real - 1)**2) + mean(fake**2)``
    - bce: ``BCE(sigmoid(real), 1) + BCE(sigmoid(fake), 0)``
    - hinge: ``mean(relu(1 - real)) + mean(relu(1 + fake))``
    """
    _check_kind(kind)
    if kind == "lsgan":
        return (real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean()
    if kind == "bce":
        return (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Generator's adversarial loss.

    - lsgan: ``mean((fake - 1)**2)``
    - bce: non-saturating ``BCE(sigmoid(fake), 1)`` (= ``mean(softplus(-fake))``)
    - hinge: ``-mean(fake)``
    """
    _check_kind(kind)
    if kind == "lsgan":
        return (fake_logits - 1).pow(2).mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return -fake_logits.mean()
