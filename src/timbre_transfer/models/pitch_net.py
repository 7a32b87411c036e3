"""A small frame-level pitch network on the model's mel grid, for the pitch-consistency loss
(:mod:`timbre_transfer.losses.pitch`, which fits it and scores translations with it). A
spectrogram judge of pitch can be applied to a generated mel directly, with gradients, which
pYIN cannot.

Pitch is a distribution over :data:`BINS_PER_OCTAVE`-per-octave bins from :data:`F_MIN_HZ` over
:data:`OCTAVES` octaves, plus one last class, "unvoiced".
"""

from __future__ import annotations

import torch
from torch import nn

F_MIN_HZ = 32.70319566  # C1
OCTAVES = 6  # to C7, 2093 Hz: every Bach10, Philharmonia and speech f0 fits
BINS_PER_OCTAVE = 48  # 25 cents a bin
LABEL_WIDTH_CENTS = 25.0  # Gaussian sigma of a label around the true f0
N_PITCH_BINS = OCTAVES * BINS_PER_OCTAVE


def pitch_bin(f0_hz: torch.Tensor) -> torch.Tensor:
    """Fractional bin of each frequency on the network's grid (not clamped)."""
    return BINS_PER_OCTAVE * torch.log2(f0_hz.clamp_min(1e-3) / F_MIN_HZ)


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
