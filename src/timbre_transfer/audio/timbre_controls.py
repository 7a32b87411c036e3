"""Timbre knobs: move one descriptor of a transfer by a stated amount, pitch and loudness kept.

A knob is a calibrated edit of what the inverter renders, solved per frame so that the
descriptor of :mod:`timbre_transfer.audio.descriptors` moves by exactly the requested amount on
the spectrum the edit is expected to give:

- ``brightness`` (octaves): the spectral centroid is multiplied by ``2 ** value``. The spectrum is
  tilted by ``(f / f_ref) ** beta``, ``beta`` found by bisection per frame. DDSP head: the
  harmonic distribution (``c_k k ** beta``) and the noise bands alike. Mel inverters: the
  generated mel. The level is kept (DDSP: the harmonic amplitude and the noise power; mel: the
  frame's energy).
- ``noisiness`` (dB): the noise-to-harmonic energy ratio of the rendered audio rises by
  ``value`` dB, the frame's total energy kept. The noise gain is calibrated per frame on the
  audio itself (:func:`noise_boost`), because the rendered harmonics carry a floor of
  inharmonic energy that the noise scaling does not move; below that floor the knob stops.
  DDSP head only: a mel does not separate noise from harmonics.
- ``odd_even`` (dB): the odd- to even-harmonic energy ratio rises by ``value`` dB (odd harmonics
  up and even ones down by ``value / 4`` dB of amplitude each). DDSP head only.

The edits act on each frame's spectral envelope and leave the f0 and the frame-level amplitude
that the synthesiser (or the inverter) is given alone, so the notes and the dynamics are kept;
``benchmarks/controls.py`` measures how well the rendered audio follows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

import numpy as np

from timbre_transfer.audio.descriptors import HANN_LOBE_SUM, N_FFT
from timbre_transfer.names import DDSP, KNOBS  # defined there, for a --help without numpy

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: importing this module stays light

_BETA = 8.0  # tilt exponents searched: (f / f_ref) ** beta with |beta| <= this
_ITERATIONS = 40  # bisection steps: beta to 16 / 2**40


def check_controls(controls: Mapping[str, float] | None, inverter: str) -> dict[str, float]:
    """The knobs that will move, as ``{name: value}`` (zeros dropped).

    Raises:
        ValueError: an unknown knob, a value that is not finite or outside its range (the range
            and unit are in the message), or a knob ``inverter`` cannot render.
    """
    out = {}
    for name, value in (controls or {}).items():
        if name not in KNOBS:
            raise ValueError(f"unknown timbre control {name!r}; controls: {sorted(KNOBS)}")
        knob = KNOBS[name]
        value = float(value)
        if not math.isfinite(value) or not knob.low <= value <= knob.high:
            raise ValueError(f"{name} must lie in [{knob.low:g}, {knob.high:g}] {knob.unit}, "
                             f"got {value:g}")
        if knob.inverters == DDSP and inverter != DDSP:
            raise ValueError(f"the {name} control needs the DDSP head (--inverter ddsp): a mel "
                             f"does not separate what it moves; {inverter!r} supports "
                             f"{[k for k, v in KNOBS.items() if v.inverters == 'any']}")
        if value:
            out[name] = value
    return out


def _solve_tilt(centroid_at, low: torch.Tensor, high: torch.Tensor, target: torch.Tensor):
    """Per-element ``beta`` in ``[low, high]`` with ``centroid_at(beta) == target`` (the
    centroid rises with ``beta``), by bisection; the bound where the target is out of reach."""
    import torch

    for _ in range(_ITERATIONS):
        mid = (low + high) / 2
        above = centroid_at(mid) > target
        high = torch.where(above, mid, high)
        low = torch.where(above, low, mid)
    return (low + high) / 2


# ---- DDSP synth controls ----------------------------------------------------------------------


def edit_synth(f0_hz: torch.Tensor, amplitude: torch.Tensor, distribution: torch.Tensor,
               noise: torch.Tensor, sample_rate: int, controls: Mapping[str, float],
               noise_boost: torch.Tensor | None = None):
    """The DDSP synthesiser's controls ``(B, N)``, ``(B, N)``, ``(B, N, K)``, ``(B, N, M)``
    edited by ``controls`` (checked by :func:`check_controls`); returns the new
    ``(amplitude, distribution, noise)``. Descriptors are those of the expected Hann-window
    spectrum of :func:`timbre_transfer.audio.descriptors.synth_frames`.

    ``noise_boost``: ``(B, N)`` power factor of the noise for ``noisiness`` (from
    :func:`noise_boost`, calibrated on the audio); default ``10 ** (value / 10)`` everywhere."""
    import torch

    k = torch.arange(1, distribution.shape[-1] + 1, dtype=distribution.dtype,
                     device=distribution.device)
    keep = f0_hz[..., None] * k < sample_rate / 2
    dist = distribution * keep
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-12)
    n_bands = noise.shape[-1]
    band_hz = torch.linspace(0, sample_rate / 2, n_bands, dtype=noise.dtype, device=noise.device)
    band_hz = band_hz.clamp_min(band_hz[1] / 2)  # DC: half a band, so that f ** beta is finite

    if "odd_even" in controls:
        gain = 10 ** (controls["odd_even"] / 40)  # amplitude: the power ratio moves by gain ** 4
        dist = dist * torch.where(k % 2 == 1, gain, 1 / gain)
        dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-12)
    if "brightness" in controls:
        dist, noise = _brighten_synth(f0_hz, amplitude, dist, noise, k, band_hz,
                                      controls["brightness"])
    if "noisiness" in controls:
        harmonic_power = amplitude**2 * (dist**2).sum(-1) / 2
        noise_power = (noise**2).mean(-1) / 3  # uniform noise in [-1, 1] through gain |H|
        boost = 10 ** (controls["noisiness"] / 10) if noise_boost is None else noise_boost
        total = harmonic_power + noise_power
        scale = torch.sqrt(total / (harmonic_power + boost * noise_power).clamp_min(1e-20))
        amplitude = amplitude * scale
        noise = noise * (scale * boost**0.5)[..., None]
    return amplitude, dist, noise


def noise_boost(render, f0_hz: torch.Tensor, voiced: torch.Tensor, sample_rate: int,
                hop_length: int, db: float) -> torch.Tensor:
    """Per-frame power factors ``(B, N)`` for the noise that move the *measured* noisiness of
    the rendered audio by ``db``.

    The synthesiser's harmonics are not perfectly harmonic once rendered (their amplitudes
    move at the frame rate, which puts energy between the partials), so the audio's noisiness
    has a floor ``F`` under the noise ``N`` that the knob scales: measured
    ``(F + N) / H``. Both are measured (:func:`~timbre_transfer.audio.descriptors.describe` of
    ``render(0)`` and ``render(1)``, ``render(g)`` being the audio with the noise power times
    ``g``), and ``g = ((F + N) 10 ** (db / 10) - F) / N`` solved per frame. Below the floor the
    noise is removed (``g = 0``) and no further; where nothing is measured (unvoiced frames, no
    noise above the floor) ``g = 10 ** (db / 10)``. Smoothed over 5 frames (a median), so the
    noise does not pump.
    """
    import torch
    from scipy.ndimage import median_filter

    from timbre_transfer.audio.descriptors import describe

    plain = 10 ** (db / 10)
    n_frames = f0_hz.shape[1]
    boosts = []
    for b, (floor, neutral) in enumerate(zip(render(0.0), render(1.0))):
        f0 = torch.where(voiced[b] > 0.5, f0_hz[b], float("nan")).double().cpu().numpy()
        ratio = {}
        for name, audio in (("floor", floor), ("neutral", neutral)):
            audio = audio.detach().double().cpu().numpy()[: (n_frames - 1) * hop_length]
            measured = describe(audio, sample_rate, hop_length, f0_hz=f0, attacks=False).noisiness
            ratio[name] = 10 ** (measured / 10)
        above = ratio["neutral"] - ratio["floor"]
        with np.errstate(invalid="ignore", divide="ignore"):
            g = (ratio["neutral"] * plain - ratio["floor"]) / above
        g = np.where(np.isfinite(g) & (above > 0.05 * ratio["neutral"]), np.maximum(g, 0.0),
                     plain)
        boosts.append(median_filter(g, size=5, mode="nearest"))
    return torch.as_tensor(np.stack(boosts), dtype=f0_hz.dtype, device=f0_hz.device)


def _brighten_synth(f0_hz, amplitude, dist, noise, k, band_hz, octaves):
    import torch

    # expected magnitude sums over the bins (synth_frames): a harmonic of amplitude a has
    # a * n_fft / 4 * HANN_LOBE_SUM in its lobe, noise of band gain H has
    # sqrt(pi) / 2 * sqrt(n_fft / 8) * H in each bin
    bins_per_band = (N_FFT // 2) / (noise.shape[-1] - 1)
    noise_scale = math.sqrt(math.pi) / 2 * math.sqrt(N_FFT / 8) * bins_per_band
    harmonic_hz = f0_hz[..., None] * k
    voiced = (dist.sum(-1) > 0).to(dist.dtype)
    noise_power = (noise**2).sum(-1, keepdim=True)

    def tilted(beta):
        d = dist * k ** beta[..., None]
        d = d / d.sum(-1, keepdim=True).clamp_min(1e-12)
        n = noise * (band_hz / 1000.0) ** beta[..., None]
        n = n * torch.sqrt(noise_power / (n**2).sum(-1, keepdim=True).clamp_min(1e-20))
        return d, n

    def centroid(beta):
        d, n = tilted(beta)
        h = amplitude * voiced * N_FFT / 4 * HANN_LOBE_SUM  # the harmonics' total magnitude
        m = noise_scale * n
        return ((h * (d * harmonic_hz).sum(-1) + (m * band_hz).sum(-1))
                / (h + m.sum(-1)).clamp_min(1e-12))

    zero = torch.zeros_like(amplitude)
    target = centroid(zero) * 2.0**octaves
    beta = _solve_tilt(centroid, zero - _BETA, zero + _BETA, target)
    return tilted(beta)


# ---- generated mels ---------------------------------------------------------------------------


def edit_mel(spec: torch.Tensor, transform, controls: Mapping[str, float]) -> torch.Tensor:
    """A normalised mel ``(n_mels, T)`` with ``controls`` applied (only ``brightness`` acts on a
    mel), clamped to the [0, 1] the generators write.

    Each frame's linear mel is tilted by ``(f / 1 kHz) ** beta`` over the bands' centre
    frequencies; its centroid, each band weighted by its bandwidth (as an STFT magnitude
    centroid weighs it), is moved by ``2 ** octaves``; the frame's energy is kept."""
    import torch

    if "brightness" not in controls:
        return spec
    basis = transform.mel_basis  # (n_mels, n_fft // 2 + 1)
    bin_hz = transform.params.sample_rate / transform.params.n_fft
    freqs = torch.arange(basis.shape[1], dtype=basis.dtype, device=basis.device) * bin_hz
    weight = basis.sum(1).clamp_min(1e-12)
    centre = (basis @ freqs / weight).clamp_min(bin_hz / 2)[:, None]  # (n_mels, 1)
    width = (weight / basis.amax(1).clamp_min(1e-12) * bin_hz)[:, None]
    mel = transform.spec_to_mel(spec)  # (n_mels, T), linear
    power_mel = transform.params.power == 2.0
    if power_mel:
        mel = mel.sqrt()
    energy = (width * mel**2).sum(0)

    def tilted(beta):
        m = mel * (centre / 1000.0) ** beta
        return m * torch.sqrt(energy / (width * m**2).sum(0).clamp_min(1e-20))

    def centroid(beta):
        m = width * tilted(beta)
        return (centre * m).sum(0) / m.sum(0).clamp_min(1e-12)

    zero = torch.zeros(spec.shape[1], dtype=spec.dtype, device=spec.device)
    beta = _solve_tilt(centroid, zero - _BETA, zero + _BETA,
                       centroid(zero) * 2.0 ** controls["brightness"])
    edited = tilted(beta)
    out = transform.normalize(torch.log1p(edited**2 if power_mel else edited))
    return out.clamp(0, 1)
