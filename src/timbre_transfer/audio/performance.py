"""How the source performance is played into the target: the performance controls of DDSP's
timbre-transfer demo that act on the analysed f0 and loudness (the octave and loudness shifts
live with the transfer itself).

- ``autotune``: pulls f0 toward the nearest equal-tempered semitone (A4 = 440 Hz) by a fraction;
  1 snaps it, 0 leaves it as played.
- ``quiet_db``: frames quieter than this many dB below the input's loudest frame are silenced,
  instead of being transferred as noise.

They act on :class:`~timbre_transfer.audio.features.Controls`, so the mel path (the notes the
generators are told to play) and a DDSP head (the f0 it renders) read the same edited
performance; :func:`gate` silences the quiet frames of the rendered audio for every inverter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from timbre_transfer.audio.features import Controls

A4_HZ = 440.0


@dataclass(frozen=True)
class Performance:
    """The performance controls; the defaults change nothing.

    Attributes:
        autotune: 0-1, the fraction of the way to the nearest semitone each f0 moves.
        quiet_db: silence frames quieter than this many dB below the loudest frame (> 0);
            None silences nothing.
    """

    autotune: float = 0.0
    quiet_db: float | None = None

    def __post_init__(self):
        if not (isinstance(self.autotune, (int, float)) and 0.0 <= self.autotune <= 1.0):
            raise ValueError(f"autotune must be between 0 and 1, got {self.autotune!r}")
        if self.quiet_db is not None and not (math.isfinite(self.quiet_db)
                                              and self.quiet_db > 0):
            raise ValueError("quiet must be a positive number of dB below the input's peak, got "
                             f"{self.quiet_db!r}")

    @property
    def changes_nothing(self) -> bool:
        return self.autotune == 0.0 and self.quiet_db is None

    def quiet_frames(self, loudness_db: np.ndarray) -> np.ndarray:
        """Boolean per frame of ``loudness_db``: quieter than ``quiet_db`` below its loudest
        frame (all False when ``quiet_db`` is None)."""
        loudness_db = np.asarray(loudness_db, dtype=np.float64)
        if self.quiet_db is None or loudness_db.size == 0:
            return np.zeros(loudness_db.shape, dtype=bool)
        return loudness_db < loudness_db.max() - self.quiet_db

    def apply(self, controls: Controls) -> Controls:
        """``controls`` played this way: f0 autotuned; quiet frames unvoiced."""
        if self.changes_nothing:
            return controls
        quiet = self.quiet_frames(controls.loudness_db)
        voiced = None if controls.voiced is None else controls.voiced & ~quiet
        return dataclasses.replace(controls, f0_hz=autotune(controls.f0_hz, self.autotune),
                                   voiced_prob=np.where(quiet, 0.0, controls.voiced_prob),
                                   voiced=voiced)


def autotune(f0_hz: np.ndarray, amount: float) -> np.ndarray:
    """``f0_hz`` pulled toward the nearest equal-tempered semitone by ``amount`` (0-1), in
    log frequency; frames at 0 Hz (no pitch) stay 0."""
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    if amount == 0.0:
        return f0_hz
    pitched = f0_hz > 0
    semitones = 12.0 * np.log2(np.where(pitched, f0_hz, A4_HZ) / A4_HZ)
    tuned = semitones + amount * (np.round(semitones) - semitones)
    return np.where(pitched, A4_HZ * 2.0 ** (tuned / 12.0), 0.0)


def gate(audio: np.ndarray, quiet: np.ndarray, hop_length: int) -> np.ndarray:
    """``audio`` with the frames ``quiet`` (a boolean per hop, frame ``i`` centred on sample
    ``i * hop_length``) silenced; the gain ramps linearly over one hop at each edge (a hard
    gate would click)."""
    audio = np.asarray(audio, dtype=np.float32)
    if not np.any(quiet):
        return audio
    keep = (~np.asarray(quiet)).astype(np.float64)
    samples = np.interp(np.arange(len(audio)), np.arange(len(keep)) * hop_length, keep)
    return (audio * samples).astype(np.float32)
