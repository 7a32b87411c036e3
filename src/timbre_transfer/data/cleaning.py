"""Cleaning a recording before it is analysed: silence trimmed and shortened, loudness
normalised (:func:`clean_audio`), as :class:`PrepareOptions` say. ``prepare`` cleans every file
this way, and :meth:`timbre_transfer.data.store.FeatureStore.clip_audio` cleans a stored clip's
source again to give the audio that was analysed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timbre_transfer.names import DEFAULT_F0_TRACKER, F0_TRACKERS


@dataclass(frozen=True)
class PrepareOptions:
    """How audio is cleaned before features are computed; part of the store's identity."""

    trim_top_db: float = 40.0  # silence = more than this below the file's peak
    max_silence: float = 0.3  # inner silences longer than this (s) are shortened to it
    target_dbfs: float = -20.0  # RMS loudness of the non-silent audio after normalisation
    silence_peak_dbfs: float = -40.0  # a file whose peak stays below this is "silent"
    min_seconds: float = 0.25  # shorter than this after trimming: "too short"
    allow_upsampling: bool = False  # files recorded below the transform's rate are skipped
    val_fraction: float = 0.1  # share of each domain's FILES held out for validation
    seed: int = 0  # seeds the split
    # what reads each file's pitch for its controls: "swift" (SwiftF0) or "pyin"
    # (timbre_transfer.audio.f0); a model is conditioned on its store's tracker
    f0_tracker: str = DEFAULT_F0_TRACKER

    def __post_init__(self):
        if self.f0_tracker not in F0_TRACKERS:
            raise ValueError(f"prepare.f0_tracker: {self.f0_tracker!r} is not a tracker; "
                             f"choose one of {list(F0_TRACKERS)}")

    @classmethod
    def from_dict(cls, values: dict) -> "PrepareOptions":
        from timbre_transfer.config import build

        return build(cls, values, "prepare")


class SkipFile(Exception):
    """A file that cannot be used; the message is the reason recorded in the report."""


def clean_audio(wav: np.ndarray, sample_rate: int, options: PrepareOptions) -> np.ndarray:
    """Trim leading/trailing silence, shorten long inner silences, normalise loudness.

    Raises:
        SkipFile: silent or too short.
    """
    import librosa

    peak = float(np.abs(wav).max())
    peak_dbfs = 20 * np.log10(max(peak, 1e-10))
    if peak_dbfs < options.silence_peak_dbfs:
        raise SkipFile(f"silent (peak {peak_dbfs:.1f} dBFS < {options.silence_peak_dbfs} dBFS)")
    intervals = librosa.effects.split(wav, top_db=options.trim_top_db, frame_length=1024,
                                      hop_length=256)
    max_gap = int(options.max_silence * sample_rate)
    pieces = [wav[intervals[0][0]:intervals[0][1]]]
    for (_, prev_end), (start, end) in zip(intervals[:-1], intervals[1:]):
        # Keep the start of each gap (decays and reverb tails), up to max_silence of it.
        pieces.append(wav[prev_end:min(start, prev_end + max_gap)])
        pieces.append(wav[start:end])
    wav = np.concatenate(pieces)
    if len(wav) < options.min_seconds * sample_rate:
        raise SkipFile(f"too short ({len(wav) / sample_rate:.3f} s of sound "
                       f"< {options.min_seconds} s)")
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    gain = 10 ** (options.target_dbfs / 20) / max(rms, 1e-10)
    gain = min(gain, 0.99 / max(float(np.abs(wav).max()), 1e-10))  # never clip
    return (wav * gain).astype(np.float32)
