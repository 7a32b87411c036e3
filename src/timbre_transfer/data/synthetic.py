"""Synthetic audio the package can make without any data: a random melody on a harmonic timbre.

Used by ``timbre-transfer demo`` and by tests, so that both run on a fresh machine.
"""

from __future__ import annotations

import numpy as np


def render_melody(
    sample_rate: int = 16000,
    duration: float = 4.0,
    seed: int = 0,
    n_harmonics: int = 24,
    tilt_db_per_octave: float = -9.0,
    vibrato_cents: float = 25.0,
    noise_level: float = 0.01,
) -> np.ndarray:
    """A melody of random notes with vibrato, attack/release envelopes and a little breath noise.

    Notes are drawn from a C major scale between C4 and C6, 0.2-0.6 s long; harmonics above
    Nyquist are left out. Deterministic for a given ``seed``.

    Returns:
        ``(round(duration * sample_rate),)`` float32, peak 0.5.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    midi_choices = np.concatenate([60 + scale, 72 + scale, [84]])

    f0 = np.empty(n)
    amp = np.zeros(n)
    start = 0
    while start < n:
        length = min(int(rng.uniform(0.2, 0.6) * sample_rate), n - start)
        f0[start : start + length] = 440.0 * 2 ** ((rng.choice(midi_choices) - 69) / 12)
        amp[start : start + length] = _note_envelope(length, sample_rate) * rng.uniform(0.5, 1.0)
        start += length
    vibrato = 2 ** (vibrato_cents / 1200 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate

    wav = np.zeros(n)
    for k in range(1, n_harmonics + 1):
        weight = 10 ** (tilt_db_per_octave * np.log2(k) / 20)
        audible = (k * f0 * vibrato) < sample_rate / 2
        wav += weight * np.sin(k * phase) * audible
    wav *= amp
    wav += noise_level * rng.standard_normal(n) * amp
    return (0.5 * wav / max(np.abs(wav).max(), 1e-9)).astype(np.float32)


def _note_envelope(length: int, sample_rate: int) -> np.ndarray:
    """Linear 20 ms attack, exponential decay to 60 %, 50 ms release."""
    attack = min(int(0.02 * sample_rate), length)
    release = min(int(0.05 * sample_rate), length - attack)
    env = 0.6 + 0.4 * np.exp(-np.arange(length) / (0.1 * sample_rate))
    env[:attack] *= np.linspace(0, 1, attack, endpoint=False)
    if release:
        env[length - release :] *= np.linspace(1, 0, release)
    return env
