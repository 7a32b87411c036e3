"""Pitch scored against ground truth: the truth files, and the metrics on tones of known f0."""

import math

import numpy as np
import pytest

from timbre_transfer.evaluation.content import f0_error_cents, load_f0_truth

SR, HOP = 16000, 256


def _tone(seconds, f0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))).astype(np.float32)


def _write_truth(path, seconds, f0_of_time, step=0.01):
    times = np.arange(0, seconds - 0.04, step)  # Bach10's truth ends ~50 ms before the audio
    rows = ["time_s,f0_hz"] + [f"{t:.2f},{f0_of_time(t):.3f}" for t in times]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_truth_is_resampled_onto_the_frames(tmp_path):
    path = _write_truth(tmp_path / "a.csv", 2.0, lambda t: 220.0 if t < 1.0 else 0.0)
    n = 2 * SR
    f0 = load_f0_truth(path, SR, HOP, n)
    assert f0.shape == (1 + n // HOP,)
    centres = np.arange(len(f0)) * HOP / SR
    assert np.all(f0[centres < 0.99] == 220.0)
    assert np.all(f0[centres > 1.01] == 0.0)  # no note, and nothing past the truth's end


def test_error_against_truth_matches_the_hand_computed_offset(tmp_path):
    # the output plays 220 Hz; the truth says it should be 30 cents higher: error 30 cents, on
    # pYIN's 10-cent grid
    seconds, shift = 2.0, 30.0
    truth = load_f0_truth(_write_truth(tmp_path / "t.csv", seconds,
                                       lambda t: 220.0 * 2 ** (shift / 1200)), SR, HOP,
                          int(seconds * SR))
    out = _tone(seconds, 220.0)
    err = f0_error_cents(out, out, SR, HOP, reference_f0=truth)
    assert abs(err.median_cents - shift) <= 10
    assert err.within_50c == 1.0
    assert err.voiced_coverage > 0.9
    assert err.source_voiced_frames == int((truth > 0).sum())
    # only frames with a note count: a truth silent in its second half halves what is compared
    half = load_f0_truth(_write_truth(tmp_path / "h.csv", seconds,
                                      lambda t: 220.0 if t < 1.0 else 0.0), SR, HOP,
                         int(seconds * SR))
    err_half = f0_error_cents(out, out, SR, HOP, reference_f0=half)
    assert err_half.source_voiced_frames == pytest.approx(err.source_voiced_frames / 2, abs=3)
    assert err_half.median_cents <= 10
    # an octave off is 1200 cents and no frame within 50 cents
    octave = f0_error_cents(out, _tone(seconds, 440.0), SR, HOP, reference_f0=half)
    assert abs(octave.median_cents - 1200) <= 10 and octave.within_50c == 0.0


@pytest.mark.parametrize("tracker", ["swift", "pyin"])
def test_an_unpitched_output_covers_nothing(tmp_path, tracker):
    seconds = 2.0
    truth = load_f0_truth(_write_truth(tmp_path / "t.csv", seconds, lambda t: 220.0), SR, HOP,
                          int(seconds * SR))
    noise = np.random.default_rng(0).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    err = f0_error_cents(noise, noise, SR, HOP, reference_f0=truth, tracker=tracker)
    if tracker == "swift":  # SwiftF0 calls white noise unvoiced: nothing to compare
        assert err.voiced_coverage == 0.0 and math.isnan(err.within_50c)
    else:  # pYIN's HMM calls some frames of white noise voiced (16 % here), ~100 % of a tone's
        assert 0.0 < err.voiced_coverage < 0.25 and err.within_50c == 0.0
    silent = np.zeros(int(seconds * SR), np.float32)
    err = f0_error_cents(silent + 1e-9, silent, SR, HOP, reference_f0=truth, tracker=tracker)
    assert err.voiced_coverage == 0.0 and math.isnan(err.median_cents)


@pytest.mark.parametrize("content,message", [
    ("time,f0\n0.0,100\n0.01,100\n", "header time_s,f0_hz"),
    ("time_s,f0_hz\n0.0,100\n0.01,abc\n", "non-numeric"),
    ("time_s,f0_hz\n0.0,100\n0.01,-5\n", ">= 0"),
    ("time_s,f0_hz\n0.0,100\n0.0,100\n", "increase"),
    ("time_s,f0_hz\n", "at least two rows"),
])
def test_malformed_truth_files_are_named(tmp_path, content, message):
    path = tmp_path / "piece-violin.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as exc:
        load_f0_truth(path, SR, HOP, 160)
    assert "piece-violin.csv" in str(exc.value)


def test_missing_or_mismatched_truth_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_f0_truth(tmp_path / "nowhere.csv", SR, HOP, SR)
    path = _write_truth(tmp_path / "short.csv", 1.0, lambda t: 220.0)
    with pytest.raises(ValueError, match=r"short\.csv: the truth ends at 0\.95 s but the clip "
                                         r"lasts 3\.00 s"):
        load_f0_truth(path, SR, HOP, 3 * SR)
