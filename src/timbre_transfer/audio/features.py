"""Performance features of a waveform: fundamental frequency and A-weighted loudness.

These describe *how* something is played (pitch contour, dynamics) rather than *what* it sounds
like, so a timbre transfer should leave them unchanged. Evaluation compares them between a
source and its transfer (:mod:`timbre_transfer.evaluation.content`); a DDSP head can take them
as controls.

All features use centred frames (librosa's convention): frame ``t`` is centred on sample
``t * hop_length`` and a clip of ``T`` samples has ``1 + T // hop_length`` frames, so the f0
track and the loudness envelope of one clip line up frame for frame at the same hop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timbre_transfer.names import DEFAULT_F0_TRACKER


def frame_count(n_samples: int, hop_length: int) -> int:
    """Number of centred frames of a clip of ``n_samples``: ``1 + n_samples // hop_length``."""
    if hop_length <= 0:
        raise ValueError(f"hop_length must be positive, got {hop_length}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    return 1 + n_samples // hop_length


def as_waveform(wav, name: str = "audio") -> np.ndarray:
    """Check and convert a mono waveform to a float64 ``(T,)`` array.

    Raises:
        ValueError: ``wav`` is not 1-D, has no samples, or holds NaN/inf; the message starts
            with ``name``.
    """
    if hasattr(wav, "detach"):  # a torch tensor
        wav = wav.detach().cpu().numpy()
    arr = np.asarray(wav, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected mono audio of shape (T,), got {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name}: audio holds no samples")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(arr)


def check_rate_and_hop(sample_rate: float, hop_length: int) -> None:
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not (isinstance(hop_length, (int, np.integer)) and hop_length > 0):
        raise ValueError(f"hop_length must be a positive integer, got {hop_length!r}")


def a_weighted_loudness(
    wav,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    floor_db: float = -100.0,
) -> np.ndarray:
    """A-weighted loudness envelope in dB, one value per centred frame.

    Each frame (Hann window of ``n_fft`` samples centred on ``t * hop_length``, zero padding at
    the edges) gives a power spectrum; it is weighted by the A-weighting curve (IEC 61672,
    ``librosa.A_weighting``, converted from dB to power) and averaged over all ``n_fft``
    frequency bins (both halves of the spectrum) then divided by the window's energy. By
    Parseval this is the A-weighted mean square of the frame, so the scale is calibrated: a
    1 kHz sine of amplitude ``a`` (A-weight ~0 dB) reads ``20 * log10(a) - 3.01`` dB, and a
    full-scale square wave without weighting would read 0 dB.

    Args:
        wav: ``(T,)`` mono waveform.
        floor_db: lower bound of the result; silence reads exactly ``floor_db``, never -inf.

    Returns:
        ``(1 + T // hop_length,)`` float64 array in dB, the same frames as
        :func:`~timbre_transfer.audio.f0.track_f0` at the same hop.

    Raises:
        ValueError: empty, non-1-D or non-finite audio, or invalid rate/n_fft/hop/floor.
    """
    import librosa

    y = as_waveform(wav)
    check_rate_and_hop(sample_rate, hop_length)
    if not (isinstance(n_fft, (int, np.integer)) and n_fft >= 2):
        raise ValueError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    if not math.isfinite(floor_db):
        raise ValueError(f"floor_db must be finite, got {floor_db}")

    # Pad n_fft // 2 on the left (frame t centred on t * hop) and the rest on the right, so the
    # frame count is 1 + T // hop for odd n_fft too.
    left = n_fft // 2
    padded = np.pad(y, (left, n_fft - left))
    n_frames = frame_count(y.shape[0], hop_length)
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann (librosa.filters would import scipy.signal)
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    weight = np.zeros_like(freqs)  # A-weighting is -inf dB at DC (and librosa warns on log 0)
    weight[1:] = 10.0 ** (librosa.A_weighting(freqs[1:]) / 10.0)
    # Bins other than DC and Nyquist stand for two bins of the full spectrum.
    weight[1:] *= 2.0
    if n_fft % 2 == 0:
        weight[-1] /= 2.0
    weight /= n_fft * float(np.sum(window**2))

    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length][:n_frames]
    power = np.empty(n_frames)
    block = max(1, (1 << 22) // n_fft)  # frames per FFT call: bounds memory on long clips
    for start in range(0, n_frames, block):
        spec = np.fft.rfft(frames[start : start + block] * window, axis=-1)
        power[start : start + block] = (spec.real**2 + spec.imag**2) @ weight
    floor = 10.0 ** (floor_db / 10.0)
    # where() rather than max() in dB so that silence reads exactly floor_db (no round trip)
    return np.where(power > floor, 10.0 * np.log10(np.maximum(power, floor)), float(floor_db))


# ---- performance controls: what a clip plays, analysed once ------------------------------------

CONTROL_COLUMNS = ("f0_hz", "voiced_prob", "voiced", "loudness_db")


@dataclass
class Controls:
    """Frame-rate performance controls of a clip, ``N = 1 + T // hop_length`` frames.

    Attributes:
        f0_hz: ``(N,)`` f0, unvoiced frames filled from their voiced neighbours (0 Hz in a clip
            with no voiced frame), so an oscillator glides instead of jumping.
        voiced_prob: ``(N,)`` the tracker's voicing probability (SwiftF0's confidence).
        loudness_db: ``(N,)`` A-weighted loudness (:func:`a_weighted_loudness`).
        voiced: ``(N,)`` the tracker's voicing decision (None where only the probability is
            known).
    """

    f0_hz: np.ndarray
    voiced_prob: np.ndarray
    loudness_db: np.ndarray
    voiced: np.ndarray | None = None

    def as_array(self) -> np.ndarray:
        """``(N, 4)`` float32 in the order of :data:`CONTROL_COLUMNS`."""
        voiced = self.voiced if self.voiced is not None else self.voiced_prob > 0.5
        return np.stack([self.f0_hz, self.voiced_prob, voiced, self.loudness_db],
                        1).astype(np.float32)

    @classmethod
    def from_array(cls, rows: np.ndarray) -> "Controls":
        rows = np.asarray(rows, dtype=np.float64)
        return cls(rows[:, 0], rows[:, 1], rows[:, 3], rows[:, 2] > 0.5)

    def resample(self, factor: int, n_frames: int) -> "Controls":
        """These controls (at ``hop``) on the finer grid of ``hop / factor``, ``n_frames`` long:
        f0 interpolated in log frequency, the rest linearly, the end held."""
        positions = np.arange(n_frames) / factor
        known = np.arange(len(self.f0_hz))
        interp = lambda a: np.interp(positions, known, np.asarray(a, dtype=np.float64))
        log_f0 = np.log2(np.maximum(self.f0_hz, 1e-3))
        f0 = np.where(interp(self.f0_hz > 0) > 0.5, 2.0 ** interp(log_f0), 0.0)
        voiced = None if self.voiced is None else interp(self.voiced) > 0.5
        return Controls(f0, interp(self.voiced_prob), interp(self.loudness_db), voiced)


def extract_controls(wav, sample_rate: int, hop_length: int, f0_min: float = 65.0,
                     f0_max: float = 2093.0, tracker: str = DEFAULT_F0_TRACKER) -> Controls:
    """f0 (by ``tracker``, :func:`~timbre_transfer.audio.f0.track_f0`; unvoiced frames filled)
    and A-weighted loudness at ``hop_length``."""
    from timbre_transfer.audio.f0 import track_f0

    track = track_f0(wav, sample_rate, hop_length, tracker, f0_min, f0_max)
    loudness = a_weighted_loudness(wav, sample_rate, hop_length=hop_length)
    return Controls(fill_unvoiced(track.f0), track.voiced_prob, loudness,
                    track.voiced.copy())


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """NaN frames take the value of the nearest non-NaN frame; all-NaN gives zeros."""
    f0 = np.asarray(f0, dtype=np.float64)
    known = np.flatnonzero(~np.isnan(f0))
    if known.size == 0:
        return np.zeros_like(f0)
    positions = np.arange(len(f0))
    nearest = known[np.clip(np.searchsorted(known, positions), 0, known.size - 1)]
    before = known[np.clip(np.searchsorted(known, positions) - 1, 0, known.size - 1)]
    pick = np.where(np.abs(positions - before) <= np.abs(nearest - positions), before, nearest)
    return f0[pick]
