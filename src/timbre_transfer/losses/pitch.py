"""Pitch consistency (``loss.pitch``): every translation must keep its source's pitch.

A small frame-level pitch network (:class:`~timbre_transfer.models.pitch_net.PitchNet`) is fitted
first, on the store's own crops (pitch-shifted like the model's, so that it knows every register)
against their f0 labels (the ``controls.npy`` that ``prepare`` wrote), then frozen. The
generators are then trained to make translations the network hears at the same pitch as their
source: ``G_t(E(x_s))`` must carry ``x_s``'s notes (:func:`pitch_consistency`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from timbre_transfer.losses.terms import LossTerm, StepContext, TermSetup, loss_term
from timbre_transfer.models.pitch_net import (
    BINS_PER_OCTAVE,
    F_MIN_HZ,
    LABEL_WIDTH_CENTS,
    N_PITCH_BINS,
    OCTAVES,
    PitchNet,
    pitch_bin,
)

#: where the fitted network goes in a checkpoint (beside the model: a grown model reuses it)
CHECKPOINT_KEY = "pitch_net"


def pitch_labels(f0_hz: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Soft targets ``(B, N_PITCH_BINS + 1, T)`` from ``f0 (B, T)`` Hz and ``voiced (B, T)``
    in [0, 1]: a Gaussian of sigma 25 cents around f0 (clamped into the grid), normalised and
    weighted by the voicing probability; the rest, ``1 - voiced``, on the unvoiced class.
    Frames with f0 <= 0 are unvoiced whatever ``voiced`` says."""
    if f0_hz.shape != voiced.shape or f0_hz.dim() != 2:
        raise ValueError(f"f0 and voicing must both be (B, T), got {tuple(f0_hz.shape)} and "
                         f"{tuple(voiced.shape)}")
    centre = pitch_bin(f0_hz.float()).clamp(0, N_PITCH_BINS - 1)
    bins = torch.arange(N_PITCH_BINS, device=f0_hz.device, dtype=torch.float32)
    sigma = LABEL_WIDTH_CENTS / (1200 / BINS_PER_OCTAVE)
    bumps = torch.exp(-0.5 * ((bins[:, None] - centre[:, None, :]) / sigma) ** 2)
    bumps = bumps / bumps.sum(1, keepdim=True)
    v = torch.where(f0_hz > 0, voiced.float().clamp(0, 1), torch.zeros_like(centre))
    return torch.cat([bumps * v[:, None], (1 - v)[:, None]], 1)


def pitch_fit_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the network's ``logits`` against :func:`pitch_labels`, per frame."""
    return -(labels * F.log_softmax(logits.float(), 1)).sum(1).mean()


def pitch_consistency(net: PitchNet, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """KL(p(source) || p(output)) per frame, averaged: 0 when the network hears ``output``
    exactly as ``source`` (pitch and voicing), growing as they part. ``source`` is the
    reference (no gradient through it); gradients reach ``output``."""
    with torch.no_grad():
        log_p = F.log_softmax(net(source).float(), 1)
    log_q = F.log_softmax(net(output).float(), 1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


def within_cents(logits: torch.Tensor, f0_hz: torch.Tensor, voiced: torch.Tensor,
                 cents: float = 50.0) -> float:
    """Share of the voiced frames (``voiced > 0.5``, f0 inside the grid) whose most likely
    pitch bin lies within ``cents`` of the label (a training diagnostic)."""
    inside = (voiced > 0.5) & (f0_hz >= F_MIN_HZ) & (f0_hz < F_MIN_HZ * 2**OCTAVES)
    if not inside.any():
        return math.nan
    guess = logits[:, :N_PITCH_BINS].argmax(1).float()
    error = (guess - pitch_bin(f0_hz)).abs() * (1200 / BINS_PER_OCTAVE)
    return float((error[inside] <= cents).float().mean())


@loss_term
class PitchConsistency(LossTerm):
    """The frozen pitch network's KL between each translation and its source."""

    name = "pitch"

    def __init__(self, setup: TermSetup):
        super().__init__(setup)
        self.steps = setup.config.train.pitch_net_steps
        self.net = PitchNet(setup.transform.params.n_mels)
        self.net.eval().requires_grad_(False)
        self.fitted = False

    @property
    def ready(self) -> bool:
        return self.fitted

    def prepare(self, crops, progress: bool = True) -> float:
        """Fit the network for ``train.pitch_net_steps`` updates on ``crops`` against their
        f0 labels (the store's tracker), then freeze it. Returns the share of voiced frames of
        its last batches within 50 cents (the fit's own diagnostic, shown with the progress)."""
        from tqdm import tqdm

        net = self.net
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train().requires_grad_(True)
        hits = []
        bar = tqdm(total=self.steps, unit="step", desc="pitch network", disable=not progress)
        for _, (x, f0, voiced) in zip(range(self.steps), crops):
            logits = net(x)
            loss = pitch_fit_loss(logits, pitch_labels(f0, voiced))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits = (hits + [within_cents(logits.detach(), f0, voiced)])[-20:]
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", within50=f"{np.nanmean(hits):.2f}")
        bar.close()
        net.eval().requires_grad_(False)
        self.fitted = True
        return float(np.nanmean(hits))

    def generator_loss(self, ctx: StepContext) -> torch.Tensor:
        return pitch_consistency(self.net, ctx.sources, ctx.translations)

    def state(self) -> dict:
        return {CHECKPOINT_KEY: self.net.state_dict()} if self.fitted else {}

    def load_state(self, blob: dict, where: str) -> None:
        from timbre_transfer.checkpoint import load_state_strict

        if CHECKPOINT_KEY in blob:
            load_state_strict(self.net, blob[CHECKPOINT_KEY], f"{where} ({CHECKPOINT_KEY})")
            self.net.eval().requires_grad_(False)
            self.fitted = True
