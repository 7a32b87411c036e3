import librosa
import numpy as np
import pytest
import torch

from timbre_transfer.audio.transform import (
    AudioTransform,
    TransformParams,
    mel_filterbank,
    round_trip,
)


@pytest.fixture(scope="module")
def transform():
    return AudioTransform()


def _noise_burst(n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n, generator=g) * torch.hann_window(n)


@pytest.mark.parametrize("kwargs", [{}, {"power": 2.0, "window": "hann", "hop_length": 256},
                                    {"mel_scale": "htk", "norm": None, "n_mels": 80, "f_min": 50.0,
                                     "f_max": 7000.0, "win_length": 800}])
def test_mel_matches_librosa(kwargs):
    t = AudioTransform(**kwargs)
    p = t.params
    wav = _noise_burst()
    ours = t.mel(wav).double().numpy()
    theirs = librosa.feature.melspectrogram(
        y=wav.numpy().astype(np.float64), sr=p.sample_rate, n_fft=p.n_fft,
        hop_length=p.hop_length, win_length=t.win_length,
        window=t.window.numpy().astype(np.float64),
        center=True, pad_mode="constant", power=p.power, n_mels=p.n_mels, fmin=p.f_min,
        fmax=p.f_max, htk=p.mel_scale == "htk", norm=p.norm,
    )
    assert ours.shape == theirs.shape == (p.n_mels, 1 + 16000 // p.hop_length)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.max())


@pytest.mark.parametrize("sr, n_fft, n_mels, f_min, f_max, htk, norm", [
    (16000, 1024, 128, 0.0, None, False, "slaney"),
    (22050, 2048, 80, 50.0, 7000.0, True, None),
    (44100, 512, 64, 20.0, 16000.0, False, None),
    (16000, 4096, 128, 30.0, 8000.0, True, "slaney"),
])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, f_min, f_max, htk, norm):
    ours = mel_filterbank(sr, n_fft, n_mels, f_min, f_max, htk=htk, norm=norm)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
                                 htk=htk, norm=norm)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_mel_filterbank_warns_of_empty_bands_and_refuses_unknown_norms():
    with pytest.warns(UserWarning, match="empty"):
        mel_filterbank(16000, 256, 128)
    with pytest.raises(ValueError, match="norm"):
        mel_filterbank(16000, 1024, 128, norm="l2")


def test_forward_is_normalised_log1p_mel(transform):
    wav = _noise_burst()
    t = AudioTransform()
    t.norm_shift.fill_(0.5)
    t.norm_scale.fill_(4.0)
    np.testing.assert_allclose(t(wav), (torch.log1p(transform.mel(wav)) - 0.5) / 4.0, rtol=1e-6)


def test_shapes_batched_and_unbatched(transform):
    wav = _noise_burst()
    single = transform(wav)
    batch = transform(torch.stack([wav, 0.5 * wav]))
    assert single.shape == (128, 126) and batch.shape == (2, 128, 126)
    torch.testing.assert_close(batch[0], single)
    assert transform.invert(single).shape == (16000,)
    assert transform.invert(batch).shape == (2, 16000)
    assert transform.invert(batch, length=12345).shape == (2, 12345)


def test_wrong_input_is_a_clear_error(transform):
    with pytest.raises(ValueError,
                       match=r"wav must have shape \(B, T\) or \(T,\), got \(1, 1, 100\)"):
        transform(torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match="NaN"):
        transform(torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="empty"):
        transform(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="empty"):
        transform(torch.zeros(0))
    with pytest.raises(ValueError, match="empty"):
        transform.invert(torch.zeros(128, 0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        transform(np.zeros(100))
    with pytest.raises(ValueError, match=r"spec must have shape"):
        transform.invert(torch.zeros(128))
    with pytest.raises(ValueError, match="80 mel bands, the transform 128"):
        transform.invert(torch.zeros(1, 80, 10))
    with pytest.raises(ValueError, match="NaN"):
        transform.invert(torch.full((128, 10), float("nan")))
    with pytest.raises(ValueError, match="unknown inversion method 'magic'"):
        transform.invert(torch.zeros(128, 10), method="magic")


def test_invalid_params_name_the_key():
    with pytest.raises(ValueError, match="hop_length must be"):
        AudioTransform(hop_length=2048)
    with pytest.raises(ValueError, match="window must be 'gauss' or 'hann'"):
        AudioTransform(window="kaiser")
    with pytest.raises(KeyError, match=r"\['audio.hop'\]"):
        TransformParams.from_dict({"hop": 128})
    with pytest.raises(TypeError, match="'audio.n_mels' must be int"):
        TransformParams.from_dict({"n_mels": "128"})
    with pytest.raises(TypeError, match="'audio.power' must be float"):
        TransformParams.from_dict({"power": True})


@pytest.mark.parametrize("method", ["pghi", "griffinlim", "pghi+gla"])
def test_silence_in_silence_out(transform, method):
    spec = transform(torch.zeros(4000))
    assert torch.equal(spec, torch.zeros_like(spec))
    out = transform.invert(spec, method=method, length=4000)
    assert out.shape == (4000,) and torch.equal(out, torch.zeros_like(out))


def test_one_sample_clip(transform):
    spec = transform(torch.tensor([0.5]))
    assert spec.shape == (128, 1) and torch.isfinite(spec).all()
    out = transform.invert(spec, length=1)
    assert out.shape == (1,) and torch.isfinite(out).all()


def test_fit_normalization_maps_data_to_unit_range():
    t = AudioTransform()
    logs = [torch.log1p(t.mel(_noise_burst(seed=s))) for s in range(3)]
    t.fit_normalization(logs)
    specs = torch.stack([t.normalize(x) for x in logs])
    assert specs.min().item() == pytest.approx(0.0, abs=1e-6)
    assert specs.max().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(t.denormalize(specs[0]), logs[0])
    with pytest.raises(ValueError, match="silent"):
        t.fit_normalization(torch.zeros(128, 10))


def test_state_round_trip_gives_identical_outputs(tmp_path):
    t = AudioTransform(hop_length=256, n_mels=96, power=2.0)
    t.fit_normalization(torch.log1p(t.mel(_noise_burst())))
    wav = _noise_burst(seed=1)

    rebuilt = AudioTransform.from_dict(t.to_dict())
    assert rebuilt.to_dict() == t.to_dict()
    torch.testing.assert_close(rebuilt(wav), t(wav), rtol=0, atol=0)

    torch.save({"transform": t.to_dict(), "state": t.state_dict()}, tmp_path / "t.pt")
    blob = torch.load(tmp_path / "t.pt", weights_only=True)
    loaded = AudioTransform(**blob["transform"]["params"])
    loaded.load_state_dict(blob["state"], strict=True)
    torch.testing.assert_close(loaded(wav), t(wav), rtol=0, atol=0)
    torch.testing.assert_close(loaded.invert(t(wav)), t.invert(t(wav)), rtol=0, atol=0)

    with pytest.raises(KeyError, match="norm_scale"):
        AudioTransform.from_dict({"params": {}, "norm_shift": 0.0})


def test_round_trip_on_synthetic_melody(transform):
    from timbre_transfer.data.synthetic import render_melody

    wav = torch.from_numpy(render_melody(duration=2.0, seed=3))
    result = round_trip(transform, wav, method="pghi+gla")
    assert result.wav.shape == wav.shape
    assert result.spectral_convergence_db < -20  # measured -26 dB on the 4 s demo melody
    assert result.real_time_factor > 0
