import numpy as np
import pytest
import soundfile as sf

from timbre_transfer.audio.io import AudioFileError, load_audio, save_audio


def _tone(sr, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"),
                                            (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III"),
                                            (".aiff", "PCM_16")])
def test_load_formats(tmp_path, suffix, subtype):
    wav = _tone(16000)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, wav, 16000, subtype=subtype)
    out = load_audio(path, 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    # Lossy codecs add padding and noise: compare the energy, and the waveform for lossless.
    assert abs(len(out) - len(wav)) < 2000
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wav**2)), rel=0.05)
    if suffix in (".wav", ".flac", ".aiff"):
        np.testing.assert_allclose(out, wav, atol=1e-4)


def test_downmix_and_resample_match_librosa(tmp_path):
    import librosa

    left, right = _tone(44100, freq=440), _tone(44100, freq=660)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 44100, subtype="FLOAT")
    out = load_audio(path, 16000)
    expected = librosa.resample((left + right) / 2, orig_sr=44100, target_sr=16000,
                                res_type="soxr_hq")
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len(out) == 8000


def test_save_is_atomic_and_roundtrips(tmp_path):
    wav = _tone(16000)
    path = save_audio(tmp_path / "sub" / "x.wav", wav, 16000)
    np.testing.assert_allclose(load_audio(path), wav, atol=1 / 32768)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]  # no temp file left behind
    path = save_audio(tmp_path / "f.wav", 2 * wav, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), 2 * wav)  # float keeps values beyond 1


def test_failed_save_keeps_existing_file(tmp_path):
    path = save_audio(tmp_path / "x.wav", _tone(16000), 16000)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN"):
        save_audio(path, np.full(100, np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match=r"mono audio"):
        save_audio(path, np.zeros((2, 100), np.float32), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.wav: cannot decode"):
        load_audio(path)


def test_zero_sample_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFileError, match="zero.wav: file holds no audio"):
        load_audio(path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not audio samples\n" * 20)
    with pytest.raises(AudioFileError, match="notes.wav: cannot decode"):
        load_audio(path)


def test_nan_float_wav(tmp_path):
    wav = _tone(16000)
    wav[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wav, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav: audio contains NaN"):
        load_audio(path)


def test_one_sample_and_silence_are_returned_as_is(tmp_path):
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.25], np.float32), 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 16000), [0.25])
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    np.testing.assert_array_equal(load_audio(path, 16000), np.zeros(1600))


def test_real_clip_loads_at_16k(real_clips):
    import soundfile as sf

    for path in real_clips("violin", 1) + real_clips("speech", 1):
        info = sf.info(path)
        out = load_audio(path, 16000)
        assert len(out) == pytest.approx(info.frames * 16000 / info.samplerate, abs=2)
        assert np.isfinite(out).all() and np.abs(out).max() > 0


def test_clipping_is_not_silent(tmp_path):
    wav = 1.5 * _tone(16000) / 0.5  # peak 1.5: +3.5 dBFS
    with pytest.warns(RuntimeWarning, match=r"loud\.wav: \d+ samples over full scale "
                      r"\(peak \+3\.5 dBFS\) clipped"):
        path = save_audio(tmp_path / "loud.wav", wav, 16000)
    assert np.abs(load_audio(path)).max() == pytest.approx(1.0, abs=1 / 32768)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in range, or float output: no warning
        save_audio(tmp_path / "ok.wav", _tone(16000), 16000)
        save_audio(tmp_path / "f.wav", wav, 16000, subtype="FLOAT")
