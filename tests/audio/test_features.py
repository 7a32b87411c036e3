import librosa
import numpy as np
import pytest

from timbre_transfer.audio.features import (
    F0Track,
    a_weighted_loudness,
    f0_pyin,
    frame_count,
    pyin_frame_length,
)

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


@pytest.mark.parametrize("make", [sine, harmonic], ids=["sine", "harmonic"])
def test_pyin_finds_440_hz(make):
    track = f0_pyin(make(440.0), SR)
    assert isinstance(track, F0Track)
    assert track.hop_length == 256 and track.sample_rate == SR
    assert (track.f0.shape == track.voiced.shape == track.voiced_prob.shape
            == (frame_count(SR, 256),))
    assert track.f0.dtype == np.float64 and track.voiced.dtype == bool
    assert track.voiced.mean() > 0.9
    assert abs(cents(np.median(track.f0[track.voiced]), 440.0)) < 10
    # unvoiced frames (if any) are NaN, voiced ones are not
    assert np.isnan(track.f0[~track.voiced]).all() and np.isfinite(track.f0[track.voiced]).all()
    assert np.median(track.voiced_prob) > 0.5


def test_pyin_noise_is_mostly_unvoiced_and_silence_all_unvoiced():
    noise = f0_pyin(0.3 * np.random.default_rng(0).standard_normal(SR), SR)
    # pYIN's HMM marks a few noise frames voiced, but with a voicing probability far below a
    # tone's (0.01 here against ~0.98 for a sine)
    assert noise.voiced.mean() < 0.3
    assert noise.voiced_prob.max() < 0.1

    silence = f0_pyin(np.zeros(SR), SR)
    assert not silence.voiced.any()
    assert np.isnan(silence.f0).all()
    assert (silence.voiced_prob == 0).all()


def test_pyin_frame_length_holds_two_periods_of_fmin():
    assert pyin_frame_length(16000, 256, 65.0) == 1024
    assert pyin_frame_length(16000, 512, 65.0) == 2048  # 4 hops
    frame = pyin_frame_length(44100, 256, 65.0)  # 2 periods of 65 Hz = 1357 samples
    assert frame == 2048 and frame // 2 > 44100 / 65.0


@pytest.mark.parametrize("n_samples, hop", [(4000, 256), (4100, 256), (4351, 128), (100, 256)])
def test_loudness_and_pyin_share_centred_frames(n_samples, hop):
    x = sine(440.0, seconds=n_samples / SR)
    expected = 1 + n_samples // hop
    assert frame_count(n_samples, hop) == expected
    assert len(f0_pyin(x, SR, hop_length=hop)) == expected
    assert a_weighted_loudness(x, SR, hop_length=hop).shape == (expected,)
    assert a_weighted_loudness(x, SR, n_fft=1023, hop_length=hop).shape == (expected,)


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


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([]), "no samples"),
        (np.array([0.0, np.nan, 0.1]), "NaN"),
        (np.array([0.0, np.inf, 0.1]), "NaN or infinite"),
        (np.zeros((2, 100)), "shape"),
    ],
)
@pytest.mark.parametrize("feature", [f0_pyin, a_weighted_loudness])
def test_bad_audio_is_rejected(feature, bad, message):
    with pytest.raises(ValueError, match=message):
        feature(bad, SR)


def test_bad_parameters_are_rejected():
    x = sine(440.0, seconds=0.1)
    with pytest.raises(ValueError, match="fmax"):
        f0_pyin(x, 4000)  # fmax 2093 > Nyquist 2000
    with pytest.raises(ValueError, match="hop_length"):
        a_weighted_loudness(x, SR, hop_length=0)
    with pytest.raises(ValueError, match="sample_rate"):
        a_weighted_loudness(x, 0)
