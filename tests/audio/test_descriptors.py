"""Timbre descriptors on signals with a known answer, parity with librosa, and agreement between
the synthesiser's expected spectrum and the audio it renders."""

import math

import librosa
import numpy as np
import pytest
import torch

from timbre_transfer.audio import descriptors as D

SR = 16000
HOP = 256


def tone(partials, seconds=1.0, f0=220.0):
    """sum_k a_k sin(2 pi k f0 t) for ``partials = {k: a_k}``."""
    t = np.arange(int(SR * seconds)) / SR
    return sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in partials.items())


def middle(x):
    """The frames away from the zero-padded edges."""
    return x[len(x) // 4: -len(x) // 4]


def constant_f0(wav, f0):
    return np.full(1 + len(wav) // HOP, float(f0))


def test_a_pure_tones_centroid_is_its_frequency():
    wav = tone({1: 0.5}, f0=1000.0)
    d = D.describe(wav, SR, HOP, f0_hz=constant_f0(wav, 1000.0))
    np.testing.assert_allclose(middle(d.centroid_hz), 1000.0, atol=0.5)
    np.testing.assert_allclose(middle(d.brightness), 0.0, atol=1e-3)  # octaves above f0


def test_sawtooth_tilt_and_odd_even_ratio():
    """a_k = 1/k: -6.02 dB per octave, and odd : even energy = (pi^2/8) : (pi^2/24) = 3."""
    f0 = 220.0
    wav = tone({k: 0.3 / k for k in range(1, int(SR / 2 / f0))}, f0=f0)
    d = D.describe(wav, SR, HOP, f0_hz=constant_f0(wav, f0))
    np.testing.assert_allclose(middle(d.tilt), -20 * math.log10(2), atol=0.1)
    # the sum over the harmonics below Nyquist (36 of them) is 3 within 0.5 %
    np.testing.assert_allclose(middle(d.odd_even), 10 * math.log10(3), atol=0.1)
    assert np.all(middle(d.noisiness) < -30)  # a clean tone


def test_harmonic_amplitudes_are_the_sinusoids_amplitudes():
    wav = tone({1: 0.4, 2: 0.1, 3: 0.05}, f0=310.0)
    frames = D.audio_frames(wav, SR, HOP, constant_f0(wav, 310.0))
    amps = middle(frames.harmonics)[:, :3]
    # within 0.4 dB: what parabolic interpolation leaves of a Hann window's scalloping
    np.testing.assert_allclose(amps, np.tile([0.4, 0.1, 0.05], (len(amps), 1)), rtol=0.045)


def test_white_noise_has_maximal_flatness():
    """The flatness of white noise's power spectrum is e^-gamma = 0.561 (its bins are
    exponentially distributed), far above any tone's."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, SR)
    flat = middle(D.describe(noise, SR, HOP, f0_hz=np.full(1 + SR // HOP, np.nan)).flatness)
    np.testing.assert_allclose(np.median(flat), math.exp(-np.euler_gamma), atol=0.02)
    saw = tone({k: 0.3 / k for k in range(1, 20)})
    assert np.median(flat) > 20 * np.median(middle(
        D.describe(saw, SR, HOP, f0_hz=constant_f0(saw, 220.0)).flatness))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_noisiness_of_a_tone_in_white_noise_is_minus_its_snr(snr_db):
    rng = np.random.default_rng(1)
    sine = tone({1: 0.5}, seconds=2.0, f0=440.0)
    noise = rng.standard_normal(len(sine)) * math.sqrt(0.125 / 10 ** (snr_db / 10))
    d = D.describe(sine + noise, SR, HOP, f0_hz=constant_f0(sine, 440.0))
    assert abs(np.median(middle(d.noisiness)) + snr_db) < 0.5


def test_a_linear_attack_ramp_gives_its_rise_time():
    """A ramp of 0.2 s from silence rises from 10 % to 90 % in 0.16 s."""
    t = np.arange(SR) / SR
    note = np.minimum(t / 0.2, 1.0) * np.sin(2 * np.pi * 440 * t)
    wav = np.concatenate([np.zeros(SR // 2), note])
    onsets, attacks = D.attack_times(wav, SR)
    first = np.argmin(np.abs(onsets - 0.5))
    assert abs(onsets[first] - 0.5) < 0.03
    assert abs(attacks[first] - 0.16) < 0.01
    # given onsets are used as they are
    onsets, attacks = D.attack_times(wav, SR, onsets_s=np.array([0.45]))
    assert abs(attacks[0] - 0.16) < 0.01


def test_centroid_and_flatness_match_librosa():
    rng = np.random.default_rng(2)
    wav = tone({k: 0.2 / k for k in range(1, 12)}, f0=196.0) + 0.01 * rng.standard_normal(SR)
    d = D.describe(wav, SR, HOP, f0_hz=constant_f0(wav, 196.0))
    kw = dict(y=wav, sr=SR, n_fft=D.N_FFT, hop_length=HOP)
    np.testing.assert_allclose(d.centroid_hz, librosa.feature.spectral_centroid(**kw)[0],
                               rtol=1e-6)
    kw.pop("sr")
    np.testing.assert_allclose(d.flatness, librosa.feature.spectral_flatness(**kw)[0], rtol=1e-6)


def test_silence_and_unvoiced_frames_are_nan_not_errors():
    wav = np.concatenate([np.zeros(SR // 2), tone({1: 0.5}, seconds=0.5)])
    f0 = constant_f0(wav, 220.0)
    f0[: len(f0) // 2] = np.nan
    d = D.describe(wav, SR, HOP, f0_hz=f0)
    assert np.isnan(d.centroid_hz[:5]).all() and np.isnan(d.brightness[:5]).all()
    assert np.isfinite(d.centroid_hz[-10:]).all()
    s = d.summary()
    assert set(s) == set(D.DESCRIPTORS) | {"attack_s"} and math.isfinite(s["centroid_hz"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no samples"):
        D.describe(np.zeros(0), SR)
    with pytest.raises(ValueError, match="NaN"):
        D.describe(np.full(1000, np.nan), SR)
    with pytest.raises(ValueError, match="frames"):
        D.describe(np.zeros(SR), SR, HOP, f0_hz=np.zeros(3))


def test_synth_controls_predict_the_descriptors_of_the_audio_they_render():
    """describe_synth (no audio) agrees with describe of what the synthesiser plays."""
    from timbre_transfer.models.ddsp import filtered_noise, harmonic_synth

    n_frames, k = 126, 60
    n = (n_frames - 1) * HOP
    f0 = np.full(n_frames, 220.0)
    amplitude = np.full(n_frames, 0.3)
    dist = np.tile(np.arange(1, k + 1) ** -1.5, (n_frames, 1))
    dist[:, 1::2] *= 0.5  # even harmonics 6 dB down
    noise = np.tile(np.linspace(0.02, 0.004, 65), (n_frames, 1))
    as_t = lambda a: torch.tensor(a, dtype=torch.float32)[None]
    audio = (harmonic_synth(as_t(f0), as_t(amplitude), as_t(dist), SR, HOP, n).audio
             + filtered_noise(as_t(noise), HOP, n, generator=torch.Generator().manual_seed(0)))
    heard = D.describe(audio[0].numpy(), SR, HOP, f0_hz=f0).summary()
    expected = D.describe_synth(f0, amplitude, dist, noise, SR, HOP).summary()
    # the expected spectrum overstates the noise in the top and bottom bands by ~20 % (the
    # FIR's smoothing at the band edges), which lifts the centroid by ~0.06 octave here
    assert abs(heard["brightness"] - expected["brightness"]) < 0.08
    assert abs(heard["noisiness"] - expected["noisiness"]) < 1.0
    assert abs(heard["odd_even"] - expected["odd_even"]) < 0.3
    assert abs(heard["tilt"] - expected["tilt"]) < 0.5
