"""Cepstral coefficients of a log mel: the spectral envelope of each frame, apart from its notes.

An orthonormal DCT-II along the mel axis (librosa's MFCC of a given log mel, without liftering).
Low coefficients describe the envelope (formants, brightness); the harmonic ripple that spells
the notes sits higher. Coefficient 0, the frame's overall level, is left out: loudness is the
performance's, not the timbre's.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MelCepstrum(nn.Module):
    """``(B, n_mels, T)`` log mel -> ``(B, n_ceps, T)`` coefficients ``1..n_ceps``."""

    def __init__(self, n_mels: int, n_ceps: int = 13):
        super().__init__()
        if not 1 <= n_ceps < n_mels:
            raise ValueError(f"n_ceps must be in [1, {n_mels}), got {n_ceps}")
        k = torch.arange(1, n_ceps + 1, dtype=torch.float64)[:, None]
        m = torch.arange(n_mels, dtype=torch.float64)[None]
        basis = torch.cos(math.pi / n_mels * (m + 0.5) * k) * math.sqrt(2.0 / n_mels)
        self.register_buffer("basis", basis.float(), persistent=False)  # a function of the sizes

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 3 or log_mel.shape[1] != self.basis.shape[1]:
            raise ValueError(f"expected a log mel (B, {self.basis.shape[1]}, T), got "
                             f"{tuple(log_mel.shape)}")
        return self.basis @ log_mel.float()
