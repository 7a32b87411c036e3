"""Content preservation: does a transfer keep the performance of its source?

A timbre transfer should change how an instrument sounds and nothing else: the pitch contour,
the loudness envelope and the notes with their timing belong to the performance and should come
through unchanged. Each metric here compares one of them between a source clip and its transfer
(both ``(T,)`` waveforms at the same sample rate; the shorter clip sets the compared length):

- :func:`loudness_correlation`: Pearson correlation of the A-weighted loudness envelopes in dB,
  1 when the dynamics (attacks, decays, crescendi, rests) are kept. Being a correlation it
  ignores a constant gain or a level offset between instruments.
- :func:`f0_error_cents`: how far the output's pitch is from the source's, in cents (100 cents
  = one semitone), over the frames where *both* are pitched. Frames where either is unvoiced say
  nothing about pitch, so they are left out; how many frames were compared is reported beside
  the error, since a low error over a handful of frames means little, and so is the *voiced
  coverage*: the share of the source's noted frames where the output is pitched at all. Pitch
  is read by one f0 tracker (:func:`~timbre_transfer.audio.f0.track_f0`, SwiftF0 by default,
  pYIN for an independent check); the source's pitch is its track, or ground truth where a
  dataset ships it (:func:`load_f0_truth`, as Bach10 does).
- :func:`chroma_similarity`: cosine similarity of chroma (pitch-class energy) frame by frame,
  which checks that the same notes sound at the same times, also for polyphony and for sounds
  pYIN cannot track. It is not timbre-blind: harmonics fold into pitch classes (the 3rd
  harmonic is a fifth up), so two instruments playing one note score high, not 1.

Silent stretches would make any two clips look alike, so the loudness and chroma metrics use
only the frames where at least one clip is within 60 dB of its own loudest frame (digital
silence never counts). A metric that cannot be computed is NaN, as documented per function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timbre_transfer.audio.f0 import F0Track, track_f0
from timbre_transfer.audio.features import a_weighted_loudness, as_waveform, frame_count
from timbre_transfer.names import DEFAULT_F0_TRACKER

ACTIVE_RANGE_DB = 60.0  # a frame is active when within this many dB of the clip's loudest frame
_FLOOR_DB = -100.0  # loudness floor: digital silence, never active
_CHROMA_N_FFT = 2048  # 7.8 Hz bins at 16 kHz: resolves semitones down to about C3


def _pair(source, output, sample_rate: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated waveforms and the shorter clip's length in samples."""
    src = as_waveform(source, "source")
    out = as_waveform(output, "output")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return src, out, min(src.shape[0], out.shape[0])


def _active(loudness: np.ndarray) -> np.ndarray:
    """``(frames,)`` bool: within ACTIVE_RANGE_DB of the loudest frame and above the floor."""
    return loudness > max(float(loudness.max()) - ACTIVE_RANGE_DB, _FLOOR_DB)


def _loudness_pair(src, out, sample_rate, hop_length, n_samples):
    """Both loudness envelopes cut to the shorter clip's frames, and the frames to compare."""
    frames = frame_count(n_samples, hop_length)
    # Each envelope is computed on the whole clip and then cut, so the frames are the same
    # ones the clip would give alone (the f0 tracks are cut the same way).
    a = a_weighted_loudness(src, sample_rate, hop_length=hop_length, floor_db=_FLOOR_DB)[:frames]
    b = a_weighted_loudness(out, sample_rate, hop_length=hop_length, floor_db=_FLOOR_DB)[:frames]
    return a, b, _active(a) | _active(b)


def loudness_correlation(source, output, sample_rate: int, hop_length: int = 256) -> float:
    """Pearson correlation of the A-weighted loudness envelopes (dB) of source and output.

    Only active frames count (either clip within 60 dB of its loudest frame), so long shared
    silences do not inflate the score.

    Returns:
        A value in [-1, 1]; NaN when fewer than 3 frames are active or either envelope is
        constant over them (for example a silent output).
    """
    src, out, n = _pair(source, output, sample_rate)
    a, b, active = _loudness_pair(src, out, sample_rate, hop_length, n)
    if int(active.sum()) < 3:
        return math.nan
    a = a[active] - a[active].mean()
    b = b[active] - b[active].mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    if denom == 0.0:
        return math.nan
    return float(np.clip((a @ b) / denom, -1.0, 1.0))


@dataclass(frozen=True)
class F0Error:
    """Pitch error of a transfer over the frames voiced in both clips.

    Attributes:
        median_cents: median of ``1200 * |log2(f0_out / f0_src) - octaves|``; NaN if
            ``voiced_frames == 0``.
        mean_cents: mean of the same; NaN if ``voiced_frames == 0``. More sensitive than the
            median to octave errors (1200 cents each).
        voiced_frames: frames voiced in both source and output.
        source_voiced_frames: frames voiced in the source (within the compared length).
        within_50c: share of the ``voiced_frames`` whose error is at most 50 cents (a quarter
            tone: the note is right); NaN if ``voiced_frames == 0``.
        voiced_coverage: ``voiced_frames / source_voiced_frames``, how much of the source's
            pitched material the output kept pitched; NaN if the source has no voiced frame.
    """

    median_cents: float
    mean_cents: float
    voiced_frames: int
    source_voiced_frames: int
    within_50c: float = math.nan
    voiced_coverage: float = math.nan


def f0_error_cents(
    source,
    output,
    sample_rate: int,
    hop_length: int = 256,
    source_track: F0Track | None = None,
    reference_f0: np.ndarray | None = None,
    tracker: str = DEFAULT_F0_TRACKER,
    octaves: int = 0,
) -> F0Error:
    """Absolute f0 difference between source and output in cents, both tracked by ``tracker``
    (:func:`~timbre_transfer.audio.f0.track_f0`), after the whole ``octaves`` the transfer
    moved the performance by: ``1200 * |log2(f0_out / (f0_src * 2**octaves))|``. The notes,
    their intonation and their timing must survive exactly, in the register they were moved to.

    Args:
        source: ``(T,)`` waveform at ``sample_rate``.
        output: ``(T,)`` waveform at ``sample_rate``.
        sample_rate: sample rate of both waveforms, in Hz.
        hop_length: analysis hop in samples.
        source_track: the source's :class:`F0Track` from ``track_f0(source, sample_rate,
            hop_length, tracker)``, to skip recomputing it when one source is transferred to many
            targets. It must match ``source``'s frame count, ``hop_length`` and ``sample_rate``.
        reference_f0: the source's true f0 on the same frames, ``(1 + T // hop_length,)`` Hz
            with 0 where no note sounds (:func:`load_f0_truth`); replaces the source's track.
        tracker: "swift" or "pyin" (:data:`timbre_transfer.names.F0_TRACKERS`).
        octaves: the whole octaves the transfer applied
            (:meth:`~timbre_transfer.inference.transfer.TimbreTransfer.applied_octaves`).

    Raises:
        ValueError: bad audio, or a ``source_track`` or ``reference_f0`` that does not fit
            ``source``, or ``octaves`` not a whole number.
    """
    if isinstance(octaves, bool) or not isinstance(octaves, (int, np.integer)):
        raise ValueError(f"octaves must be a whole number, got {octaves!r}")
    src, out, n = _pair(source, output, sample_rate)
    if reference_f0 is not None:
        expected = frame_count(src.shape[0], hop_length)
        reference_f0 = np.asarray(reference_f0, dtype=np.float64)
        if reference_f0.shape != (expected,):
            raise ValueError(f"reference_f0 has shape {reference_f0.shape}, the source "
                             f"{expected} frames at hop {hop_length}")
        noted = reference_f0 > 0
        source_track = F0Track(np.where(noted, reference_f0, np.nan), noted,
                               noted.astype(np.float64), hop_length, sample_rate, "truth")
    elif source_track is None:
        source_track = track_f0(src, sample_rate, hop_length, tracker)
    else:
        expected = frame_count(src.shape[0], hop_length)
        if (
            source_track.hop_length != hop_length
            or source_track.sample_rate != sample_rate
            or len(source_track) != expected
        ):
            raise ValueError(
                f"source_track (hop_length={source_track.hop_length}, sample_rate="
                f"{source_track.sample_rate}, {len(source_track)} frames) does not fit the "
                f"source (hop_length={hop_length}, sample_rate={sample_rate}, {expected} frames)"
            )
    output_track = track_f0(out, sample_rate, hop_length, tracker)

    frames = frame_count(n, hop_length)
    f_src, f_out = source_track.f0[:frames], output_track.f0[:frames]
    src_voiced = source_track.voiced[:frames] & np.isfinite(f_src)
    both = src_voiced & output_track.voiced[:frames] & np.isfinite(f_out)
    count, noted = int(both.sum()), int(src_voiced.sum())
    if count == 0:
        median = mean = within = math.nan
    else:
        cents = 1200.0 * np.abs(np.log2(f_out[both] / f_src[both]) - octaves)
        median, mean = float(np.median(cents)), float(np.mean(cents))
        within = float(np.mean(cents <= 50.0))
    return F0Error(
        median_cents=median,
        mean_cents=mean,
        voiced_frames=count,
        source_voiced_frames=noted,
        within_50c=within,
        voiced_coverage=count / noted if noted else math.nan,
    )


TRUTH_DURATION_TOLERANCE_S = 0.25  # Bach10's truth ends 46 ms before its audio


def load_f0_truth(path, sample_rate: int, hop_length: int, n_samples: int) -> np.ndarray:
    """Ground-truth f0 from a ``time_s,f0_hz`` CSV (0 Hz = no note) on the frames of a clip of
    ``n_samples``: ``(1 + n_samples // hop_length,)`` Hz, frame ``k`` (centred on sample
    ``k * hop_length``) taking the nearest row's value; frames past the last row have no note.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed file (header other than ``time_s,f0_hz``, a non-numeric,
            negative or non-finite value, times not increasing) or one whose duration differs
            from the clip's by more than 0.25 s; the message names the file.
    """
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no f0 truth file for this clip")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0]] != ["time_s", "f0_hz"]:
        raise ValueError(f"{path}: an f0 truth file needs the header time_s,f0_hz, got "
                         f"{','.join(rows[0]) if rows else 'an empty file'}")
    try:
        table = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: non-numeric value in an f0 truth row ({exc})") from None
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] != 2:
        raise ValueError(f"{path}: an f0 truth file needs at least two rows of time_s,f0_hz")
    times, f0 = table[:, 0], table[:, 1]
    if not np.isfinite(table).all() or (f0 < 0).any():
        raise ValueError(f"{path}: f0 values must be finite and >= 0 (0 = no note)")
    if (np.diff(times) <= 0).any():
        raise ValueError(f"{path}: time_s must increase from row to row")
    duration = n_samples / sample_rate
    if abs(times[-1] - duration) > TRUTH_DURATION_TOLERANCE_S:
        raise ValueError(f"{path}: the truth ends at {times[-1]:.2f} s but the clip lasts "
                         f"{duration:.2f} s; it belongs to another recording or another cut")
    centres = np.arange(frame_count(n_samples, hop_length)) * hop_length / sample_rate
    nearest = np.clip(np.searchsorted(times, centres), 1, len(times) - 1)
    nearest -= (centres - times[nearest - 1]) < (times[nearest] - centres)
    step = float(np.median(np.diff(times)))
    return np.where(centres <= times[-1] + step / 2, f0[nearest], 0.0)


def chroma_similarity(source, output, sample_rate: int, hop_length: int = 256) -> float:
    """Mean cosine similarity of chroma frames of source and output over active frames.

    Chroma is ``librosa.feature.chroma_stft`` (n_fft 2048, tuning fixed at A440 so both clips
    share one pitch grid). A frame where one clip is silent (all-zero chroma) scores 0 against
    the other.

    Returns:
        A value in [0, 1] (chroma is non-negative); NaN when no frame is active.
    """
    import librosa

    src, out, n = _pair(source, output, sample_rate)
    _, _, active = _loudness_pair(src, out, sample_rate, hop_length, n)
    if not active.any():
        return math.nan
    frames = active.shape[0]
    kwargs = dict(sr=sample_rate, n_fft=_CHROMA_N_FFT, hop_length=hop_length, tuning=0.0,
                  center=True, pad_mode="constant")
    a = librosa.feature.chroma_stft(y=src, **kwargs)[:, :frames][:, active]
    b = librosa.feature.chroma_stft(y=out, **kwargs)[:, :frames][:, active]
    norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    dots = np.sum(a * b, axis=0)
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return float(np.clip(cos, 0.0, 1.0).mean())


@dataclass(frozen=True)
class ContentScores:
    """All content-preservation metrics of one transfer (see the module docstring)."""

    loudness_correlation: float
    f0_median_cents: float
    f0_voiced_frames: int
    chroma_similarity: float
    f0_within_50c: float = math.nan
    voiced_coverage: float = math.nan


def content_scores(
    source, output, sample_rate: int, source_track: F0Track | None = None,
    reference_f0: np.ndarray | None = None, tracker: str = DEFAULT_F0_TRACKER,
    octaves: int = 0,
) -> ContentScores:
    """Loudness correlation, the f0 scores and chroma similarity at the default hop (256).

    ``source_track``, ``reference_f0``, ``tracker`` and ``octaves`` are passed to
    :func:`f0_error_cents` (with pYIN, the costly part; SwiftF0 is about 27x cheaper). Chroma
    and loudness need no octave: pitch classes and levels do not change with the register.
    """
    f0 = f0_error_cents(source, output, sample_rate, source_track=source_track,
                        reference_f0=reference_f0, tracker=tracker, octaves=octaves)
    return ContentScores(
        loudness_correlation=loudness_correlation(source, output, sample_rate),
        f0_median_cents=f0.median_cents,
        f0_voiced_frames=f0.voiced_frames,
        chroma_similarity=chroma_similarity(source, output, sample_rate),
        f0_within_50c=f0.within_50c,
        voiced_coverage=f0.voiced_coverage,
    )
