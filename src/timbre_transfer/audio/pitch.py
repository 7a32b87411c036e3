"""Pitch in mel space: where a note's harmonics fall on the mel axis, and moving a mel along it.

Two uses, both on the model's mel grid (``n_mels`` filters between ``f_min`` and ``f_max``):

- :meth:`MelPitch.template` draws, for each frame, a bump of height 1 at the mel position of every
  harmonic ``k * f0`` below ``f_max``, scaled by the voicing probability. The generators receive
  it beside the latent, so they render the *source's* notes in the target's timbre instead of
  moving the melody into the register the target's discriminator knows.
- :class:`HarmonicComb` renders the mel that the front end itself would measure of a harmonic
  tone with equal partials at ``f0`` (each partial drawn as the analysis window's spectral lobe
  on the FFT grid, then through the mel filters). A source-filter generator
  (``model.source_filter``) multiplies it by the spectral envelope it draws, so the partials of
  its output sit exactly where the notes put them.
- :meth:`MelPitch.shift` moves a mel-spectrogram by a pitch ratio (the frequency axis is warped:
  the value at frequency ``f`` comes from ``f / ratio``). Training uses it for random pitch-shift
  augmentation; ``transfer --octave`` uses it to move a performance into another register.

The mel filters' centres are equally spaced in mel units (librosa's ``mel_frequencies``), so the
fractional bin of a frequency is an affine function of its mel value.
"""

from __future__ import annotations

import math

import numpy as np
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
                 f_max: float | None = None, mel_scale: str = "slaney",
                 comb: "HarmonicComb | None" = None):
        super().__init__()
        self.comb = comb
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
        return cls(params.sample_rate, params.n_mels, params.f_min, params.f_max, params.mel_scale,
                   HarmonicComb.of(params))

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

    def notes(self, f0_hz: torch.Tensor, voiced: torch.Tensor, source_filter: bool = False
              ) -> torch.Tensor:
        """What a generator is told to play: ``(B, 1, n_mels, T)``, the :meth:`template`; with
        ``source_filter``, ``(B, 2, n_mels, T)``, the template and the :class:`HarmonicComb`."""
        template = self.template(f0_hz, voiced)
        if not source_filter:
            return template
        if self.comb is None:
            raise ValueError("this MelPitch has no comb: build it with MelPitch.of(params)")
        return torch.cat([template, self.comb(f0_hz, voiced)], 1)

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


COMB_HARMONICS = 128  # every partial below 8 kHz down to f0 = 62.5 Hz
KERNEL_OVERSAMPLING = 64  # steps per FFT bin of the window lobe's table
KERNEL_RADIUS = 6  # FFT bins drawn on each side of a partial (the Gaussian lobe is < 1e-4 there)


class HarmonicComb(nn.Module):
    """The mel, as the front end measures it, of a harmonic tone whose partials are all 1.

    ``f0 (B, T)`` Hz and ``voiced (B, T)`` -> ``(B, 1, n_mels, T)``: every partial
    ``k * f0 < f_max`` (k <= 128) is drawn on the FFT grid as the magnitude of the analysis
    window's transform centred on it (peak 1, tabulated at 1/64 bin), the partials' lobes add,
    and the mel filters sum the result. Each band is divided by its response to a flat spectrum
    of 1, so a band full of partials reads about 1 and a band between two resolved partials
    about 0. Scaled by ``voiced``; frames with ``f0 <= 0`` are 0. The partials keep their phase-free
    magnitudes: where two lobes overlap (f0 below ~100 Hz) they add, which is off by up to ~5 % of
    a peak at 65 Hz, depending on the partials' phases (0.2 % at 110 Hz and above).

    Args:
        sample_rate, n_fft: the front end's.
        window: its analysis window (any length up to ``n_fft``).
        filters: its mel filterbank ``(n_mels, 1 + n_fft // 2)``.
        f_max: the highest partial drawn (the mel's upper edge).
    """

    def __init__(self, sample_rate: int, n_fft: int, window: torch.Tensor, filters: torch.Tensor,
                 f_max: float):
        super().__init__()
        lobe = np.abs(np.fft.rfft(window.double().numpy(), n_fft * KERNEL_OVERSAMPLING))
        lobe = lobe[: (KERNEL_RADIUS + 2) * KERNEL_OVERSAMPLING] / lobe[0]
        self.bin_hz = sample_rate / n_fft
        self.f_max = float(f_max)
        self.harmonics, self.radius = COMB_HARMONICS, KERNEL_RADIUS  # attributes: TorchScript
        self.oversampling = KERNEL_OVERSAMPLING
        self.register_buffer("lobe", torch.as_tensor(lobe, dtype=torch.float32), persistent=False)
        filters = torch.as_tensor(filters, dtype=torch.float32)
        self.register_buffer("filters", filters.T.contiguous(), persistent=False)  # (bins, F)
        self.register_buffer("flat", filters.sum(1).clamp_min(1e-12), persistent=False)

    @classmethod
    def of(cls, params) -> "HarmonicComb":
        """From a :class:`~timbre_transfer.audio.transform.TransformParams`."""
        from timbre_transfer.audio.inversion import make_window
        from timbre_transfer.audio.transform import mel_filterbank

        win = params.n_fft if params.win_length is None else params.win_length
        f_max = params.f_max if params.f_max is not None else params.sample_rate / 2
        filters = mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.f_min,
                                 f_max, params.mel_scale == "htk", params.norm)
        return cls(params.sample_rate, params.n_fft,
                   make_window(params.window, win, params.hop_length),
                   torch.from_numpy(filters), f_max)

    def forward(self, f0_hz: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        if f0_hz.shape != voiced.shape or f0_hz.dim() != 2:  # (TorchScript: the stream runs it)
            raise ValueError("f0 and voicing must both be (B, T), got " + str(f0_hz.shape)
                             + " and " + str(voiced.shape))
        f0 = f0_hz.float()
        n_bins = self.filters.shape[0]
        k = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=f0.dtype)
        partials = f0[..., None] * k  # (B, T, K)
        valid = (partials < self.f_max) & (f0[..., None] > 0)
        centre = partials / self.bin_hz  # fractional FFT bin
        offsets = torch.arange(-self.radius, self.radius + 1, device=f0.device)
        bins = centre.floor().long()[..., None] + offsets  # (B, T, K, 2R + 1)
        at = (bins - centre[..., None]).abs() * self.oversampling
        low = at.floor().long().clamp(max=self.lobe.shape[0] - 2)
        frac = at - low
        height = self.lobe[low] * (1 - frac) + self.lobe[low + 1] * frac
        height = height * (valid[..., None] & (bins >= 0) & (bins < n_bins))
        b, t = f0.shape
        spectrum = f0.new_zeros(b, t, n_bins).scatter_add_(
            -1, bins.clamp(0, n_bins - 1).reshape(b, t, -1), height.reshape(b, t, -1))
        comb = (spectrum @ self.filters) / self.flat  # (B, T, F)
        return (comb * voiced.float()[..., None]).transpose(1, 2)[:, None]


def semitones_to_ratio(semitones) -> torch.Tensor:
    return 2.0 ** (torch.as_tensor(semitones, dtype=torch.float32) / 12.0)
