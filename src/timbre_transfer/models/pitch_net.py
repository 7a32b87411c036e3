"""A small frame-level pitch network on the model's mel grid, for a pitch-consistency loss.

``train`` fits it first, on the store's own crops and their pYIN labels (the ``controls.npy``
that ``prepare`` wrote), then freezes it. The generators are then trained to make translations
the network hears at the same pitch as their source: ``G_t(E(x_s))`` must carry ``x_s``'s
notes (:func:`pitch_consistency`). A spectrogram judge of pitch can be applied to a generated
mel directly, with gradients, which pYIN cannot.

Pitch is a distribution over :data:`BINS_PER_OCTAVE`-per-octave bins from :data:`F_MIN_HZ` over
:data:`OCTAVES` octaves, plus one last class, "unvoiced".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

F_MIN_HZ = 32.70319566  # C1
OCTAVES = 6  # to C7, 2093 Hz: every Bach10, Philharmonia and speech f0 fits
BINS_PER_OCTAVE = 48  # 25 cents a bin
LABEL_WIDTH_CENTS = 25.0  # Gaussian sigma of a label around the true f0
N_PITCH_BINS = OCTAVES * BINS_PER_OCTAVE


def pitch_bin(f0_hz: torch.Tensor) -> torch.Tensor:
    """Fractional bin of each frequency on the network's grid (not clamped)."""
    return BINS_PER_OCTAVE * torch.log2(f0_hz.clamp_min(1e-3) / F_MIN_HZ)


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


class PitchNet(nn.Module):
    """``(B, 1, n_mels, T)`` normalised mel -> ``(B, N_PITCH_BINS + 1, T)`` logits, frame by
    frame (a 3-frame context per conv layer). Convolutions along frequency find harmonic
    patterns wherever they sit; one linear map per frame reads their positions into pitch bins.
    """

    def __init__(self, n_mels: int, channels: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, (7, 3), padding=(3, 1)), nn.ReLU(),
            nn.Conv2d(channels, channels, (7, 3), padding=(3, 1)), nn.ReLU(),
            nn.Conv2d(channels, 4, (7, 3), padding=(3, 1)), nn.ReLU())
        self.head = nn.Conv1d(4 * n_mels, N_PITCH_BINS + 1, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.features(mel)
        return self.head(h.flatten(1, 2))


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
