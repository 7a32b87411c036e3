"""tifresi's PGHI (the reference implementation, optional extra ``reference``) on torch.stft
magnitudes, so that both PGHIs can be given the same input."""

from __future__ import annotations

import math

import numpy as np
import torch


def tifresi_pghi_phase(magnitude: torch.Tensor, hop_length: int, n_fft: int) -> torch.Tensor:
    """Phase of one ``(F, N)`` magnitude of a Gaussian-window ``torch.stft`` with
    gamma = hop_length * n_fft, by tifresi's gradients and heap integration.

    tifresi integrates in ltfat's frequency-invariant convention over a circular signal of
    ``hop_length * N`` samples; the phase is converted to torch.stft's convention
    (frame-start window): ``+ 2 pi k n a / M + pi k``.

    Raises:
        ImportError: tifresi is not installed (``pip install -e ".[reference]"``).
    """
    from tifresi.phase.modGabPhaseGrad import modgabphasegrad
    from tifresi.phase.pghi import pghi

    mag = magnitude.detach().cpu().double().numpy()
    n_freq, n_frames = mag.shape
    length = hop_length * n_frames
    tgrad, fgrad = modgabphasegrad(
        "abs", mag, {"name": "gauss", "tfr": hop_length * n_fft / length}, hop_length, n_fft
    )
    phase = pghi(mag, tgrad, fgrad, hop_length, n_fft, length)
    k = np.arange(n_freq)[:, None]
    n = np.arange(n_frames)[None, :]
    phase = phase + 2 * math.pi * k * n * hop_length / n_fft + math.pi * k
    return torch.from_numpy(np.remainder(phase, 2 * math.pi)).to(magnitude.device, magnitude.dtype)
