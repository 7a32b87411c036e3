"""Domain classification loss (``loss.domain_class``), as in StarGAN and StarGAN-VC.

A classifier learns to name the domain of every real crop (the trainer's crops, after the
pitch-shift augmentation, so that register tells it little), and each translation is scored by
its cross-entropy against the domain it was translated into. The per-domain discriminators ask
"is this a real bassoon?"; the classifier asks "is this a bassoon *rather than* a violin?", so a
translation that keeps its source's colour pays even where a discriminator would let it pass.

The classifier is trained on real crops only (never on translations), with the discriminators.
"""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.losses.terms import LossTerm, StepContext, TermSetup, loss_term


class DomainClassifier(nn.Module):
    """Which domain is this mel? ``(N, 1, n_mels, T) -> (N, n_domains)`` logits.

    Four 3x3 convolutions of stride 2, a mean over time, then the frequency axis pooled to
    :attr:`BANDS` bands and kept in order, so that the classifier reads the shape of the
    spectrum from bottom to top (its envelope) and any length of crop.
    """

    BANDS = 8

    def __init__(self, n_domains: int, width: int = 32):
        super().__init__()
        if n_domains < 2:
            raise ValueError(f"a domain classifier needs at least 2 domains, got {n_domains}")
        layers, c_in = [], 1
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(self.BANDS)
        self.head = nn.Linear(c_in * self.BANDS, n_domains)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"expected mels (N, 1, n_mels, T), got {tuple(spec.shape)}")
        h = self.features(spec).mean(-1)  # (N, 4 * width, n_mels / 16)
        return self.head(self.pool(h).flatten(1))


def domain_labels(n_domains: int, batch: int, device=None) -> torch.Tensor:
    """``(n_domains * batch,)`` domain indices of a domain-major batch (``d`` repeated ``batch``
    times, for ``d`` in order), the layout the trainer encodes its crops in."""
    return torch.arange(n_domains, device=device).repeat_interleave(batch)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the classifier's domain guesses ``(N, n_domains)`` against ``labels``."""
    return nn.functional.cross_entropy(logits.float(), labels)


@loss_term
class DomainClassTerm(LossTerm):
    """``loss.domain_class``: the classifier learns to name every real crop's domain; every
    translation must be named its target."""

    name = "domain_class"
    adversary_key = "domain_classifier"

    def __init__(self, setup: TermSetup):
        super().__init__(setup)
        self.adversary = DomainClassifier(len(setup.domains))

    def generator_loss(self, ctx: StepContext) -> torch.Tensor:
        labels = domain_labels(len(ctx.domains), ctx.batch, ctx.translations.device)
        return classification_loss(self.adversary(ctx.translations), labels)

    def adversary_loss(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        labels = domain_labels(len(ctx.domains), ctx.batch, ctx.real.device)
        return {"classifier": classification_loss(self.adversary(ctx.real.flatten(0, 1)), labels)}
