"""Fundamental frequency trackers: one interface, two trackers.

:func:`track_f0` is what the package calls wherever it reads a performance's pitch (``prepare``'s
controls, the pitch template at transfer, evaluation, ``describe``, the listening page and the
DDSP head). It returns an :class:`F0Track` on the package's frame grid: centred frames, frame
``t`` on sample ``t * hop_length``, ``1 + T // hop_length`` frames, the grid of
:func:`~timbre_transfer.audio.features.a_weighted_loudness` at the same hop.

Two trackers stand behind it (names in :data:`timbre_transfer.names.F0_TRACKERS`):

- ``"swift"`` (the default): SwiftF0 (``swift-f0`` on PyPI, MIT), a 135 kB ONNX network run by
  onnxruntime, 46.875-2093.75 Hz, on its own grid of 16 kHz and hop 256. On one thread it runs
  at about 109x real time, 27x faster than pYIN, at the same accuracy on Bach10
  (docs/benchmarks.md, "Pitch at network speed"). A frame is voiced when its confidence reaches
  :data:`SWIFT_VOICED_THRESHOLD`, chosen on Bach10 pieces 01-06.
- ``"pyin"``: pYIN (Mauch & Dixon 2014, ``librosa.pyin``), the reference, kept for an
  independent check of a model conditioned on SwiftF0's pitch and for old models.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from timbre_transfer.audio.features import as_waveform, check_rate_and_hop
from timbre_transfer.names import DEFAULT_F0_TRACKER, F0_TRACKERS

#: the lowest and highest f0 the package looks for: C2-C7, the pitched instruments it transfers
F0_MIN, F0_MAX = 65.0, 2093.0
#: SwiftF0's confidence at or above which a frame is voiced, picked on Bach10 pieces 01-06
#: (benchmarks/f0_trackers.py; pieces 07-08 report it): voicing F1 against the truth is flat from
#: 0.2 to 0.45 (0.964-0.963), and of those ties the highest calls the fewest frames of noise
#: voiced (at 0.3 the last frames of a clip that ends in quiet noise can reach it). A pure sine,
#: unlike the harmonic sounds the model learnt on, scores only about 0.5.
SWIFT_VOICED_THRESHOLD = 0.45
SWIFT_RATE, SWIFT_HOP = 16000, 256  # SwiftF0's own grid (swift_f0.SAMPLE_RATE, HOP)


@dataclass(frozen=True)
class F0Track:
    """Frame-wise fundamental frequency of a clip, ``1 + T // hop_length`` centred frames.

    Attributes:
        f0: ``(frames,)`` float64, Hz; NaN where the frame is unvoiced.
        voiced: ``(frames,)`` bool, the tracker's voicing decision.
        voiced_prob: ``(frames,)`` float64 in [0, 1]: SwiftF0's confidence, or pYIN's voicing
            probability (pYIN's HMM can still mark frames of noise voiced at a low value).
        hop_length: samples between frames.
        sample_rate: Hz.
        tracker: which tracker made it (:data:`timbre_transfer.names.F0_TRACKERS`).
    """

    f0: np.ndarray
    voiced: np.ndarray
    voiced_prob: np.ndarray
    hop_length: int
    sample_rate: int
    tracker: str = DEFAULT_F0_TRACKER

    def __len__(self) -> int:
        return int(self.f0.shape[0])


def check_tracker(tracker: str) -> str:
    """``tracker`` if it names a tracker, else ValueError listing them."""
    if tracker not in F0_TRACKERS:
        raise ValueError(f"unknown f0 tracker {tracker!r}; choose one of {list(F0_TRACKERS)}")
    return tracker


def track_f0(wav, sample_rate: int, hop_length: int = 256, tracker: str = DEFAULT_F0_TRACKER,
             fmin: float = F0_MIN, fmax: float = F0_MAX) -> F0Track:
    """The f0 of a mono clip by ``tracker`` ("swift" or "pyin") on the centred grid of
    ``hop_length``. Silence is all unvoiced (f0 NaN), not an error.

    Raises:
        ValueError: empty, non-1-D or non-finite audio, an unknown tracker, or an invalid
            rate, hop or range (``0 < fmin < fmax <= sample_rate / 2``).
    """
    check_tracker(tracker)
    track = f0_swift if tracker == "swift" else f0_pyin
    return track(wav, sample_rate, hop_length, fmin, fmax)


def _check_range(sample_rate: float, fmin: float, fmax: float) -> None:
    if not 0 < fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"need 0 < fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}, "
            f"sample_rate={sample_rate}"
        )


# ---- SwiftF0 -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def swift_detector(threads: int | None = None):
    """One SwiftF0 detector per thread count, built once (building allocates onnxruntime's
    thread pool). ``spin=False`` lets the pool sleep between calls, so it does not hold the
    cores that torch needs between analyses."""
    from swift_f0 import SwiftF0

    return SwiftF0(threads=threads, spin=False)


def f0_swift(wav, sample_rate: int, hop_length: int = 256, fmin: float = F0_MIN,
             fmax: float = F0_MAX, threads: int | None = None,
             threshold: float = SWIFT_VOICED_THRESHOLD) -> F0Track:
    """f0 with SwiftF0 on the centred grid of ``hop_length`` at ``sample_rate``.

    SwiftF0 reads 16 kHz audio (other rates are resampled with soxr, librosa's default) and
    gives one frame per 256 samples, frame ``i`` centred on sample ``i * 256``. Its confidence
    is interpolated linearly and its pitch in log frequency onto the frames asked for, so at
    16 kHz and hop 256 the result is SwiftF0's own frames. ``fmin``/``fmax`` are clipped to the
    model's 46.875-2093.75 Hz.
    """
    import librosa

    y = as_waveform(wav)
    check_rate_and_hop(sample_rate, hop_length)
    _check_range(sample_rate, fmin, fmax)
    from swift_f0 import FMAX, FMIN

    fmin, fmax = max(fmin, FMIN), min(fmax, FMAX)
    if not fmin < fmax:
        raise ValueError(f"fmin/fmax {fmin}-{fmax} Hz lie outside SwiftF0's {FMIN}-{FMAX} Hz")
    y16 = y if sample_rate == SWIFT_RATE else librosa.resample(
        y, orig_sr=sample_rate, target_sr=SWIFT_RATE, res_type="soxr_hq")
    n_frames = 1 + len(y) // hop_length
    times = np.arange(n_frames) * (hop_length / sample_rate)
    positions = times * (SWIFT_RATE / SWIFT_HOP)  # in SwiftF0 frames
    # Zeros after the end, so that SwiftF0 has a frame at or beyond the last one asked for.
    need = int(math.ceil(positions[-1])) + 2
    y16 = np.pad(y16.astype(np.float32), (0, max(0, need * SWIFT_HOP - len(y16))))
    result = swift_detector(threads).detect(y16, SWIFT_RATE, fmin, fmax)
    known = np.arange(len(result.confidence))
    confidence = np.clip(np.interp(positions, known, result.confidence), 0.0, 1.0)
    log_f0 = np.interp(positions, known, np.log2(np.maximum(result.pitch_hz, 1e-3)))
    voiced = confidence >= threshold
    f0 = np.where(voiced, 2.0 ** log_f0, np.nan)
    return F0Track(f0=f0, voiced=voiced, voiced_prob=confidence, hop_length=int(hop_length),
                   sample_rate=int(sample_rate), tracker="swift")


# ---- pYIN --------------------------------------------------------------------------------------


def pyin_frame_length(sample_rate: float, hop_length: int, fmin: float) -> int:
    """Analysis frame of :func:`f0_pyin`: the smallest power of two that is at least 1024,
    at least ``4 * hop_length`` (75 % overlap, librosa's ratio) and holds two periods of ``fmin``
    (below that YIN's difference function cannot see the lowest pitch; librosa warns)."""
    two_periods = 2 * math.ceil(sample_rate / fmin) + 2
    need = max(1024, 4 * hop_length, two_periods)
    return 1 << (need - 1).bit_length()


def f0_pyin(wav, sample_rate: int, hop_length: int = 256, fmin: float = F0_MIN,
            fmax: float = F0_MAX) -> F0Track:
    """f0 with pYIN (``librosa.pyin``), the reference tracker.

    Values lie on pYIN's grid of 10-cent steps from ``fmin``. At hop 256 it runs about 4x
    faster than real time on one core; its cost is per frame. The frame length is
    :func:`pyin_frame_length` (1024 at 16 kHz, 64 ms).
    """
    import librosa

    y = as_waveform(wav)
    check_rate_and_hop(sample_rate, hop_length)
    _check_range(sample_rate, fmin, fmax)
    frame_length = pyin_frame_length(sample_rate, hop_length, fmin)
    f0, voiced, voiced_prob = librosa.pyin(
        y, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame_length,
        hop_length=hop_length, center=True, pad_mode="constant",
    )
    return F0Track(
        f0=np.asarray(f0, dtype=np.float64),
        voiced=np.asarray(voiced, dtype=bool),
        voiced_prob=np.nan_to_num(np.asarray(voiced_prob, dtype=np.float64)),
        hop_length=int(hop_length),
        sample_rate=int(sample_rate),
        tracker="pyin",
    )
