import math

import numpy as np
import pytest

from timbre_transfer.audio.f0 import track_f0
from timbre_transfer.evaluation.content import (
    ContentScores,
    F0Error,
    chroma_similarity,
    content_scores,
    f0_error_cents,
    loudness_correlation,
)

SR = 16000
T = np.arange(SR) / SR


def sine(freq, amp=0.5):
    return amp * np.sin(2 * np.pi * freq * T)


def harmonic(freq, amp=0.3, n_harmonics=8):
    """Sawtooth-like tone: harmonics k = 1..n with amplitude 1/k."""
    return amp * sum(np.sin(2 * np.pi * freq * k * T) / k for k in range(1, n_harmonics + 1))


# three notes a second, each a sharp attack and an exponential decay: reversed, attacks become
# swells, so the two envelopes are anti-correlated
ENVELOPE = np.exp(-6 * ((3 * T) % 1))


@pytest.fixture(scope="module")
def a440_track():
    return track_f0(harmonic(440.0), SR)


# ---- loudness ---------------------------------------------------------------------------------


def test_loudness_correlation_of_identical_clips_is_one():
    x = ENVELOPE * sine(440.0)
    assert abs(loudness_correlation(x, x, SR) - 1.0) < 1e-9


def test_loudness_correlation_follows_the_envelope_not_the_carrier():
    x = ENVELOPE * sine(440.0)
    other_pitch = ENVELOPE * sine(880.0, amp=0.2)
    noise = ENVELOPE * 0.3 * np.random.default_rng(0).standard_normal(SR)
    reversed_env = ENVELOPE[::-1] * sine(440.0)
    assert loudness_correlation(x, other_pitch, SR) > 0.9
    assert loudness_correlation(x, noise, SR) > 0.9
    assert loudness_correlation(x, reversed_env, SR) < -0.3


def test_loudness_correlation_ignores_shared_silence():
    x = ENVELOPE * sine(440.0)
    y = ENVELOPE[::-1] * sine(440.0)
    base = loudness_correlation(x, y, SR)
    pad = np.zeros(2 * SR)
    # two seconds of silence in both would drive an unmasked correlation towards +1
    padded = loudness_correlation(np.concatenate([x, pad]), np.concatenate([y, pad]), SR)
    # (unmasked, the padded pair correlates at +0.87; masked it stays near the -0.70 without
    # padding, moved only by the few frames that straddle the cut to silence)
    assert base < -0.3
    assert padded < -0.3
    assert abs(padded - base) < 0.15


def test_loudness_correlation_uses_the_shorter_clip():
    x = ENVELOPE * sine(440.0)
    # silence appended to the output lies beyond the source's length, so it is not compared
    assert abs(loudness_correlation(x, np.concatenate([x, np.zeros(SR)]), SR) - 1.0) < 1e-9
    assert loudness_correlation(x, x[: SR // 2], SR) > 0.99


def test_loudness_correlation_is_nan_for_a_silent_output():
    x = ENVELOPE * sine(440.0)
    assert math.isnan(loudness_correlation(x, np.zeros(SR), SR))
    assert math.isnan(loudness_correlation(np.zeros(SR), np.zeros(SR), SR))


# ---- f0 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tracker", ["swift", "pyin"])
def test_f0_error_of_a_semitone_is_100_cents(tracker):
    err = f0_error_cents(harmonic(440.0), harmonic(466.16), SR, tracker=tracker)
    assert isinstance(err, F0Error)
    assert abs(err.median_cents - 100.0) < 10
    assert abs(err.mean_cents - 100.0) < 10
    assert err.voiced_frames > 55 and err.source_voiced_frames > 55  # of 63


@pytest.mark.parametrize("octaves, output_hz", [(1, 890.0), (-2, 108.0), (2, 1760.0)])
def test_f0_error_after_the_octaves_applied(a440_track, octaves, output_hz):
    """A transfer moved by whole octaves is scored against the source moved as far: 890 Hz
    against 440 Hz one octave up is 1200 log2(890 / 880) = 19.56 c off, 108 Hz two octaves
    down 1200 log2(110 / 108) = 31.77 c, 1760 Hz two up 0 c."""
    expected = abs(1200 * math.log2(output_hz / (440.0 * 2.0 ** octaves)))
    err = f0_error_cents(harmonic(440.0), harmonic(output_hz), SR, source_track=a440_track,
                         octaves=octaves)
    assert abs(err.median_cents - expected) < 5, (err.median_cents, expected)
    assert err.within_50c > 0.95
    # the same output scored without the octaves is that many octaves off
    unmoved = f0_error_cents(harmonic(440.0), harmonic(output_hz), SR, source_track=a440_track)
    assert abs(unmoved.median_cents - abs(1200 * math.log2(output_hz / 440.0))) < 5
    assert unmoved.within_50c == 0.0
    scores = content_scores(harmonic(440.0), harmonic(output_hz), SR, source_track=a440_track,
                            octaves=octaves)
    assert scores.f0_median_cents == err.median_cents
    with pytest.raises(ValueError, match="whole number"):
        f0_error_cents(harmonic(440.0), harmonic(output_hz), SR, octaves=0.5)


def test_a_precomputed_source_track_gives_the_same_error(a440_track):
    err = f0_error_cents(harmonic(440.0), harmonic(466.16), SR)
    assert f0_error_cents(harmonic(440.0), harmonic(466.16), SR, source_track=a440_track) == err


def test_f0_error_ignores_timbre(a440_track):
    darker = harmonic(440.0, n_harmonics=3)
    err = f0_error_cents(harmonic(440.0), darker, SR, source_track=a440_track)
    assert err.median_cents < 15
    assert err.voiced_frames > 55


def test_f0_error_of_a_silent_output_is_nan(a440_track):
    err = f0_error_cents(harmonic(440.0), np.zeros(SR), SR, source_track=a440_track)
    assert math.isnan(err.median_cents) and math.isnan(err.mean_cents)
    assert err.voiced_frames == 0
    assert err.source_voiced_frames > 55


def test_f0_error_rejects_a_source_track_that_does_not_fit(a440_track):
    with pytest.raises(ValueError, match="source_track"):
        f0_error_cents(harmonic(440.0)[: SR // 2], harmonic(440.0), SR, source_track=a440_track)
    with pytest.raises(ValueError, match="source_track"):
        f0_error_cents(harmonic(440.0), harmonic(440.0), SR, hop_length=128,
                       source_track=a440_track)


# ---- chroma -----------------------------------------------------------------------------------


def test_chroma_similarity_tracks_the_note():
    same = chroma_similarity(sine(440.0), sine(440.0), SR)
    other_timbre = chroma_similarity(sine(440.0), harmonic(440.0), SR)
    tritone = chroma_similarity(harmonic(440.0), harmonic(440.0 * 2**0.5), SR)
    assert abs(same - 1.0) < 1e-9
    assert other_timbre > 0.8
    assert tritone < 0.3
    assert other_timbre - tritone > 0.5


def test_chroma_similarity_of_silence():
    assert chroma_similarity(sine(440.0), np.zeros(SR), SR) == 0.0
    assert math.isnan(chroma_similarity(np.zeros(SR), np.zeros(SR), SR))


# ---- all together and bad input -------------------------------------------------------------


def test_content_scores_match_the_single_metrics(a440_track):
    src, out = ENVELOPE * harmonic(440.0, n_harmonics=3), ENVELOPE * harmonic(440.0)
    track = track_f0(src, SR)
    scores = content_scores(src, out, SR, source_track=track)
    assert isinstance(scores, ContentScores)
    f0 = f0_error_cents(src, out, SR, source_track=track)
    assert scores.loudness_correlation == loudness_correlation(src, out, SR)
    assert scores.chroma_similarity == chroma_similarity(src, out, SR)
    assert scores.f0_median_cents == f0.median_cents
    assert scores.f0_voiced_frames == f0.voiced_frames
    assert scores.loudness_correlation > 0.9
    assert scores.f0_median_cents < 15
    assert scores.chroma_similarity > 0.8


@pytest.mark.parametrize(
    "metric", [loudness_correlation, f0_error_cents, chroma_similarity, content_scores]
)
def test_bad_input_is_rejected(metric):
    good = sine(440.0)[:1000]
    with pytest.raises(ValueError, match="source: audio holds no samples"):
        metric(np.array([]), good, SR)
    bad = good.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="output: audio contains NaN"):
        metric(good, bad, SR)
