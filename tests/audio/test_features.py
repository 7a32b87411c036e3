import librosa
import numpy as np
import pytest

from timbre_transfer.audio.features import a_weighted_loudness

SR = 16000


def sine(freq, amp=0.5, seconds=1.0):
    t = np.arange(int(SR * seconds)) / SR
    return amp * np.sin(2 * np.pi * freq * t)


def harmonic(freq, amp=0.3, seconds=1.0, n_harmonics=8):
    """Sawtooth-like tone: harmonics k = 1..n with amplitude 1/k."""
    t = np.arange(int(SR * seconds)) / SR
    return amp * sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, n_harmonics + 1))


def cents(f, ref):
    return 1200 * np.log2(f / ref)


def test_loudness_is_calibrated_at_1khz():
    # A-weight is ~0 dB at 1 kHz, so a sine of amplitude a reads its mean square: 20 log10(a) - 3.01
    level = a_weighted_loudness(sine(1000.0, amp=0.5), SR)[4:-4]  # skip the padded edge frames
    expected = 20 * np.log10(0.5) - 10 * np.log10(2) + librosa.A_weighting(1000.0)
    assert np.abs(level - expected).max() < 0.1


def test_loudness_scales_20_db_per_decade_of_amplitude():
    loud = a_weighted_loudness(sine(1000.0, amp=0.5), SR)
    soft = a_weighted_loudness(sine(1000.0, amp=0.05), SR)
    assert np.abs((loud - soft) - 20.0).max() < 0.5


def test_loudness_applies_a_weighting():
    high = np.median(a_weighted_loudness(sine(1000.0), SR))
    low = np.median(a_weighted_loudness(sine(100.0), SR))
    expected = librosa.A_weighting(1000.0) - librosa.A_weighting(100.0)  # ~19.1 dB
    assert expected > 15
    assert abs((high - low) - expected) < 1.5


def test_loudness_of_silence_is_the_floor():
    assert (a_weighted_loudness(np.zeros(SR), SR) == -100.0).all()
    assert (a_weighted_loudness(np.zeros(SR), SR, floor_db=-80.0) == -80.0).all()
    # a very quiet tone is clamped to the floor, a louder one is not
    quiet = a_weighted_loudness(sine(1000.0, amp=1e-7), SR, floor_db=-100.0)
    assert np.median(quiet) == -100.0
    assert np.median(a_weighted_loudness(sine(1000.0, amp=1e-3), SR)) > -70.0


#: audio every analysis refuses, with the message it gives (tests/audio/test_f0.py too)
BAD_AUDIO = [
    (np.array([]), "no samples"),
    (np.array([0.0, np.nan, 0.1]), "NaN"),
    (np.array([0.0, np.inf, 0.1]), "NaN or infinite"),
    (np.zeros((2, 100)), "shape"),
]


@pytest.mark.parametrize("bad, message", BAD_AUDIO)
def test_bad_audio_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        a_weighted_loudness(bad, SR)


def test_bad_parameters_are_rejected():
    x = sine(440.0, seconds=0.1)
    with pytest.raises(ValueError, match="hop_length"):
        a_weighted_loudness(x, SR, hop_length=0)
    with pytest.raises(ValueError, match="sample_rate"):
        a_weighted_loudness(x, 0)
