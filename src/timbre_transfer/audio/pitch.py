"""Pitch in mel space: where a note's harmonics fall on the mel axis, and moving a mel along it.

Two uses, both on the model's mel grid (``n_mels`` filters between ``f_min`` and ``f_max``):

- :meth:`MelPitch.template` draws, for each frame, a bump of height 1 at the mel position of every
  harmonic ``k * f0`` below ``f_max``, scaled by the voicing probability. The generators receive
  it beside the latent, so they render the *source's* notes in the target's timbre instead of
  moving the melody into the register the target's discriminator knows.
- :meth:`MelPitch.shift` moves a mel-spectrogram by a pitch ratio (the frequency axis is warped:
  the value at frequency ``f`` comes from ``f / ratio``). Training uses it for random pitch-shift
  augmentation; ``transfer --octave`` uses it to move a performance into another register.

The mel filters' centres are equally spaced in mel units (librosa's ``mel_frequencies``), so the
fractional bin of a frequency is an affine function of its mel value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TEMPLATE_WIDTH_BINS = 0.5  # Gaussian sigma of a harmonic's bump, in mel bins
MAX_HARMONICS = 64


def hz_to_mel(hz: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """librosa's ``hz_to_mel`` in torch (Slaney: linear below 1 kHz, logarithmic above)."""
    if htk:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + torch.log(hz.clamp_min(min_log_hz) / min_log_hz) / logstep
    return torch.where(hz >= min_log_hz, log, linear)


class MelPitch(nn.Module):
    """The mel grid of a front end, for harmonic templates and pitch shifts.

    Args:
        sample_rate, n_mels, f_min, f_max, mel_scale: the front end's
            :class:`~timbre_transfer.audio.transform.TransformParams` (``f_max`` None: Nyquist).
    """

    def __init__(self, sample_rate: int, n_mels: int, f_min: float = 0.0,
                 f_max: float | None = None, mel_scale: str = "slaney"):
        super().__init__()
        import librosa

        self.htk = mel_scale == "htk"
        self.f_max = float(f_max if f_max is not None else sample_rate / 2)
        edges = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=self.f_max, htk=self.htk)
        # float64: positions of the centres themselves must come out as whole bins
        centres = torch.as_tensor(edges[1:-1], dtype=torch.float64)
        mels = hz_to_mel(centres, self.htk)
        self.mel0 = float(mels[0])
        self.mel_step = float(mels[1] - mels[0]) if n_mels > 1 else 1.0
        self.register_buffer("centres_hz", centres, persistent=False)

    @classmethod
    def of(cls, params) -> "MelPitch":
        """From a :class:`~timbre_transfer.audio.transform.TransformParams`."""
        return cls(params.sample_rate, params.n_mels, params.f_min, params.f_max, params.mel_scale)

    @property
    def n_mels(self) -> int:
        return self.centres_hz.shape[0]

    def position(self, hz: torch.Tensor) -> torch.Tensor:
        """Fractional mel bin of each frequency (bin ``m`` is centred on ``centres_hz[m]``)."""
        return (hz_to_mel(hz, self.htk) - self.mel0) / self.mel_step

    def template(self, f0_hz: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """``f0 (B, T)`` Hz and ``voiced (B, T)`` in [0, 1] -> ``(B, 1, n_mels, T)`` in [0, 1].

        Each harmonic ``k * f0 < f_max`` (k <= 64) adds a Gaussian bump of sigma 0.5 bins and
        height 1 at its fractional bin; overlapping bumps take the maximum (not the sum), so
        the template says *where* harmonics are and leaves their strengths, the timbre, to the
        generator. Frames with f0 <= 0 are empty; the result is scaled by ``voiced``.
        """
        if f0_hz.shape != voiced.shape or f0_hz.dim() != 2:
            raise ValueError(f"f0 and voicing must both be (B, T), got {tuple(f0_hz.shape)} "
                             f"and {tuple(voiced.shape)}")
        f0 = f0_hz.float()
        k = torch.arange(1, MAX_HARMONICS + 1, device=f0.device, dtype=f0.dtype)
        harmonics = f0[..., None] * k  # (B, T, K)
        valid = (harmonics < self.f_max) & (f0[..., None] > 0)
        # Positions rise with k; missing harmonics sit at +inf, so the row stays sorted. The
        # highest bump at a bin is the nearest harmonic's (the bump falls with distance), so
        # each bin needs only its two neighbours in the row, not all 64 (issue 31: the full
        # (T, F, K) tensor was 0.4 s of a 30 s transfer).
        pos = self.position(harmonics.clamp_min(1.0)).masked_fill(~valid, math.inf)
        bins = torch.arange(self.n_mels, device=f0.device, dtype=f0.dtype)
        bins = bins.expand(*pos.shape[:-1], -1).contiguous()  # (B, T, F)
        above = torch.searchsorted(pos, bins).clamp(max=MAX_HARMONICS - 1)
        below = (above - 1).clamp(min=0)
        distance = torch.minimum((bins - pos.gather(-1, below)).abs(),
                                 (bins - pos.gather(-1, above)).abs())
        out = torch.exp(-0.5 * (distance / TEMPLATE_WIDTH_BINS) ** 2) * voiced.float()[..., None]
        return out.transpose(1, 2)[:, None]

    def shift(self, spec: torch.Tensor, ratio: torch.Tensor | float, fill: float) -> torch.Tensor:
        """Move ``(B, C, n_mels, T)`` by the pitch ``ratio`` (per item ``(B,)`` or one float).

        Bin ``m`` takes the value found at frequency ``centres_hz[m] / ratio`` (linear
        interpolation between bins); what falls outside the grid becomes ``fill`` (the
        normalised value of silence).
        """
        b = spec.shape[0]
        ratio = torch.as_tensor(ratio, dtype=torch.float32, device=spec.device).reshape(-1)
        ratio = ratio.expand(b) if ratio.numel() == 1 else ratio
        src = self.position(self.centres_hz[None] / ratio.double()[:, None])  # (B, F), float64
        lo = src.floor().long()
        frac = (src - lo).to(spec.dtype)[:, None, :, None]
        n = self.n_mels

        def take(index):
            inside = ((index >= 0) & (index < n))[:, None, :, None]
            gathered = spec.gather(2, index.clamp(0, n - 1)[:, None, :, None].expand(
                -1, spec.shape[1], -1, spec.shape[3]))
            return torch.where(inside, gathered, torch.full_like(gathered, fill))

        return take(lo) * (1 - frac) + take(lo + 1) * frac


def semitones_to_ratio(semitones) -> torch.Tensor:
    return 2.0 ** (torch.as_tensor(semitones, dtype=torch.float32) / 12.0)
