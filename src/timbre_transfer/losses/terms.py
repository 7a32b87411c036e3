"""Optional loss terms as parts.

Each mechanism that a loss weight turns on (``loss.pitch``, ``loss.loudness``,
``loss.domain_class``, ...) is one :class:`LossTerm` in one module of this package: its
generator-side term, its adversary if it has one (with the adversary's own loss, trained with
the discriminators), and any ``prepare`` step that must run before the first training step.
The trainer builds the terms whose weight is on (:func:`build_terms`), hands each the same
:class:`StepContext` every step, and applies every weight in one place.

Adding a mechanism is one module with a ``@loss_term`` class and one field of
:class:`~timbre_transfer.training.config.LossWeights` named like the class's ``name`` (the
package's own modules are also imported by ``losses/__init__.py``, so that they register).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class TermSetup:
    """What a term may need to build itself: the run config (its own settings), the feature
    store's :class:`~timbre_transfer.audio.transform.AudioTransform` and the domain names."""

    config: object
    transform: object
    domains: list[str]


@dataclass
class StepContext:
    """One training step, as every optional term sees it.

    Attributes:
        real: the crops after augmentation, domain-major ``(D, B, 1, F, T)``.
        fakes: ``fakes[t]``, the translation into target domain ``t``, ``(B, 1, F, T)``.
        source_of: ``source_of[t]``, the domain translated into ``t``.
        sources: ``(D * B, 1, F, T)``, the crops each translation came from, in target order.
        translations: ``(D * B, 1, F, T)``, ``fakes`` concatenated in target order.
        notes: the crops' harmonic templates, domain-major ``(D, B, C, F, T)`` (the notes each
            translation plays are its source's), or None for a model without them.
        pitch: f0 (Hz) and voicing of the crops after augmentation ``(B, D, 2, T)``, or None.
        domains: the domain names, in index order.
    """

    real: torch.Tensor
    fakes: list[torch.Tensor]
    source_of: list[int]
    sources: torch.Tensor
    translations: torch.Tensor
    notes: torch.Tensor | None
    pitch: torch.Tensor | None
    domains: list[str]

    @property
    def batch(self) -> int:
        return self.real.shape[1]


class LossTerm:
    """An optional loss term; subclasses set :attr:`name` and implement :meth:`generator_loss`.

    Attributes:
        name: the key of its weight in ``config.loss`` and of its raw term (``loss/<name>``).
        adversary_key: where the adversary's state goes in a checkpoint's training state (terms
            with an adversary only).
        adversary: a net trained with the discriminators (its parameters join their
            optimiser), or None.
    """

    name: ClassVar[str]
    adversary_key: ClassVar[str | None] = None

    def __init__(self, setup: TermSetup):
        self.adversary: nn.Module | None = None

    def to(self, device: torch.device) -> LossTerm:
        for value in vars(self).values():
            if isinstance(value, nn.Module):
                value.to(device)
        return self

    @property
    def ready(self) -> bool:
        """Whether :meth:`prepare` has nothing (more) to do."""
        return True

    def prepare(self, crops: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                progress: bool = True) -> float | None:
        """Work before the first training step, on augmented training crops ``(x (N, 1, F, T),
        f0 (N, T), voicing (N, T))``; returns a diagnostic, if any."""
        return None

    def generator_loss(self, ctx: StepContext) -> torch.Tensor:
        """The raw (unweighted) term the generators minimise."""
        raise NotImplementedError

    def adversary_loss(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """The adversary's own raw losses by name (``loss/<name>``), summed into the
        discriminators' total."""
        return {}

    def state(self) -> dict:
        """Checkpoint entries, beside the model, of what :meth:`prepare` learned."""
        return {}

    def load_state(self, blob: dict, where: str) -> None:
        """Take back what :meth:`state` saved, where ``blob`` (a checkpoint) has it."""


#: registered terms by name
TERMS: dict[str, type[LossTerm]] = {}


def loss_term(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: register an optional loss term under its ``name``."""
    if cls.name in TERMS and TERMS[cls.name] is not cls:
        raise ValueError(f"two loss terms are named {cls.name!r}")
    TERMS[cls.name] = cls
    return cls


def build_terms(setup: TermSetup) -> dict[str, LossTerm]:
    """The registered terms whose weight in ``setup.config.loss`` (a dataclass) is on, by name,
    in the order of its fields: the order the terms are computed and summed in, which exact
    reproducibility of training depends on."""
    weights = setup.config.loss
    names = [f.name for f in fields(weights)]
    missing = [name for name in TERMS if name not in names]
    if missing:
        raise AttributeError(f"loss terms {missing} have no weight in the config's loss section")
    return {name: TERMS[name](setup) for name in names
            if name in TERMS and getattr(weights, name) > 0}
