"""The f0 trackers behind one interface (timbre_transfer.audio.f0): SwiftF0 (the default) and
pYIN (the reference), on tones of known f0, on silence and noise, on the package's frame grid, and
against each other on a real Bach10 recording."""

import numpy as np
import pytest

from timbre_transfer.audio.f0 import (
    F0Track,
    check_tracker,
    f0_pyin,
    f0_swift,
    pyin_frame_length,
    track_f0,
)
from timbre_transfer.audio.features import a_weighted_loudness, frame_count
from timbre_transfer.names import F0_TRACKERS

from .test_features import BAD_AUDIO

SR = 16000


def sine(freq, amp=0.5, seconds=1.0, sr=SR):
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def harmonic(freq, amp=0.3, seconds=1.0, n_harmonics=8, sr=SR):
    """Sawtooth-like tone: harmonics k = 1..n with amplitude 1/k (below Nyquist)."""
    t = np.arange(int(sr * seconds)) / sr
    ks = [k for k in range(1, n_harmonics + 1) if freq * k < sr / 2]
    return amp * sum(np.sin(2 * np.pi * freq * k * t) / k for k in ks)


def cents(f, ref):
    return 1200 * np.log2(f / ref)


@pytest.mark.parametrize("tracker", F0_TRACKERS)
@pytest.mark.parametrize("freq", [82.41, 261.63, 440.0, 1174.66])
def test_trackers_find_a_harmonic_tone_within_5_cents(tracker, freq):
    track = track_f0(harmonic(freq), SR, tracker=tracker)
    assert isinstance(track, F0Track) and track.tracker == tracker
    assert track.hop_length == 256 and track.sample_rate == SR
    assert (track.f0.shape == track.voiced.shape == track.voiced_prob.shape
            == (frame_count(SR, 256),))
    assert track.f0.dtype == np.float64 and track.voiced.dtype == bool
    assert track.voiced.mean() > 0.85
    assert abs(cents(np.median(track.f0[track.voiced]), freq)) < 5
    # unvoiced frames are NaN, voiced ones are not
    assert np.isnan(track.f0[~track.voiced]).all() and np.isfinite(track.f0[track.voiced]).all()
    assert ((track.voiced_prob >= 0) & (track.voiced_prob <= 1)).all()


@pytest.mark.parametrize("sr, hop", [(44100, 512), (22050, 256), (16000, 128), (16000, 160)])
def test_swift_resamples_to_any_rate_and_hop(sr, hop):
    """SwiftF0 reads 16 kHz at hop 256; other rates are resampled and other hops interpolated
    (in log frequency), and the pitch stays within 5 cents."""
    track = f0_swift(harmonic(330.0, sr=sr, seconds=1.5), sr, hop)
    assert len(track) == 1 + int(1.5 * sr) // hop
    assert track.voiced.mean() > 0.85
    assert abs(cents(np.median(track.f0[track.voiced]), 330.0)) < 5


def test_swift_follows_a_note_change_on_the_frame_grid():
    """A note that changes at 0.5 s reads the new pitch from the frames centred after it: the
    grid is centred frames (frame t on sample t * hop), as the loudness envelope's."""
    hop = 128
    y = np.concatenate([harmonic(220.0, seconds=0.5), harmonic(330.0, seconds=0.5)])
    track = f0_swift(y, SR, hop)
    change = int(0.5 * SR / hop)  # frame 62.5 at hop 128: the change lies between 62 and 63
    assert abs(cents(np.median(track.f0[change - 20:change - 3]), 220.0)) < 5
    assert abs(cents(np.median(track.f0[change + 4:change + 20]), 330.0)) < 5
    first_high = change - 8 + int(np.argmax(track.f0[change - 8:] > 275.0))
    assert abs(first_high - change) <= 3  # within 3 frames (24 ms) of the change


@pytest.mark.parametrize("seconds", [1.0, 0.3])
def test_swift_calls_silence_and_noise_unvoiced(seconds):
    rng = np.random.default_rng(0)
    n = int(SR * seconds)
    for name, y in {"silence": np.zeros(n), "white noise": 0.3 * rng.standard_normal(n),
                    "quiet noise": 1e-3 * rng.standard_normal(n)}.items():
        track = f0_swift(y, SR)
        assert not track.voiced.any(), name
        assert np.isnan(track.f0).all(), name


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


def test_pyin_finds_a_pure_sine():
    # SwiftF0 was trained on harmonic sounds: a pure sine reads its pitch but at a confidence
    # near 0.5 (docs/benchmarks.md), so only pYIN is held to voicing it
    track = f0_pyin(sine(440.0), SR)
    assert track.voiced.mean() > 0.9
    assert abs(cents(np.median(track.f0[track.voiced]), 440.0)) < 10
    swift = f0_swift(sine(440.0), SR, threshold=0.0)
    assert abs(cents(np.median(swift.f0[8:-8]), 440.0)) < 5


def test_pyin_frame_length_holds_two_periods_of_fmin():
    assert pyin_frame_length(16000, 256, 65.0) == 1024
    assert pyin_frame_length(16000, 512, 65.0) == 2048  # 4 hops
    frame = pyin_frame_length(44100, 256, 65.0)  # 2 periods of 65 Hz = 1357 samples
    assert frame == 2048 and frame // 2 > 44100 / 65.0


@pytest.mark.parametrize("tracker", F0_TRACKERS)
@pytest.mark.parametrize("n_samples, hop", [(4000, 256), (4100, 256), (4351, 128), (100, 256)])
def test_f0_and_loudness_share_centred_frames(tracker, n_samples, hop):
    x = harmonic(440.0, seconds=n_samples / SR)
    expected = 1 + n_samples // hop
    assert len(track_f0(x, SR, hop, tracker)) == expected
    assert a_weighted_loudness(x, SR, hop_length=hop).shape == (expected,)


@pytest.mark.parametrize("bad, message", BAD_AUDIO)
@pytest.mark.parametrize("tracker", F0_TRACKERS)
def test_bad_audio_is_rejected(tracker, bad, message):
    with pytest.raises(ValueError, match=message):
        track_f0(bad, SR, tracker=tracker)


def test_bad_parameters_are_rejected():
    x = harmonic(440.0, seconds=0.1)
    for tracker in F0_TRACKERS:
        with pytest.raises(ValueError, match="fmax"):
            track_f0(x, 4000, tracker=tracker)  # fmax 2093 > Nyquist 2000
        with pytest.raises(ValueError, match="hop_length"):
            track_f0(x, SR, 0, tracker=tracker)
    with pytest.raises(ValueError, match="unknown f0 tracker 'crepe'.*swift"):
        track_f0(x, SR, tracker="crepe")
    with pytest.raises(ValueError, match="unknown f0 tracker"):
        check_tracker("YIN")
    with pytest.raises(ValueError, match="outside SwiftF0"):
        f0_swift(x, SR, fmin=2100.0, fmax=3000.0)


def test_swift_agrees_with_pyin_on_a_real_bach10_clip(bach10_dir):
    """Parity with the reference: on 12 s of Bach10's bassoon and violin, the frames both call
    voiced agree within 20 cents (median, and 90 % of them); SwiftF0 agrees with the truth, and
    its voicing at the default threshold with the truth's notes."""
    import librosa

    from timbre_transfer.evaluation.content import load_f0_truth

    for inst in ("bassoon", "violin"):
        path = bach10_dir / inst / "01-AchGottundHerr.flac"
        y, _ = librosa.load(path, sr=SR)
        truth = load_f0_truth(bach10_dir / "f0" / f"01-AchGottundHerr-{inst}.csv", SR, 256,
                              len(y))
        n = 12 * SR
        swift, pyin = f0_swift(y[:n], SR), f0_pyin(y[:n], SR)
        both = swift.voiced & pyin.voiced
        assert both.sum() > 0.6 * len(swift)
        diff = np.abs(cents(swift.f0[both], pyin.f0[both]))
        assert np.median(diff) < 20 and np.mean(diff < 20) > 0.9, inst
        truth = truth[:len(swift)]
        noted = both & (truth > 0)
        assert np.median(np.abs(cents(swift.f0[noted], truth[noted]))) < 20
        # the documented threshold separates note from no note (Bach10's 01-08: recall 0.98,
        # precision 0.95; docs/benchmarks.md)
        recall = np.mean(swift.voiced[truth > 0])
        precision = np.mean(truth[swift.voiced] > 0)
        assert recall > 0.9 and precision > 0.85, (inst, recall, precision)
