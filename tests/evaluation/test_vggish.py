import numpy as np
import pytest
import torch

from timbre_transfer.evaluation import vggish

# torchvggish's state-dict keys and shapes (the public vggish-10086976.pth)
KEYS = {
    "features.0": (64, 1, 3, 3), "features.3": (128, 64, 3, 3), "features.6": (256, 128, 3, 3),
    "features.8": (256, 256, 3, 3), "features.11": (512, 256, 3, 3),
    "features.13": (512, 512, 3, 3), "embeddings.0": (4096, 12288),
    "embeddings.2": (4096, 4096), "embeddings.4": (128, 4096),
}


def _random_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in KEYS.items():
        state[f"{name}.weight"] = torch.randn(shape, generator=g) * 0.01
        state[f"{name}.bias"] = torch.randn(shape[0], generator=g) * 0.01
    return state


def test_state_dict_has_torchvggish_keys_and_loads_strictly(tmp_path):
    model = vggish.VGGish()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        f"{n}.{p}": (s if p == "weight" else (s[0],))
        for n, s in KEYS.items() for p in ("weight", "bias")}
    path = tmp_path / vggish.WEIGHTS_FILE
    torch.save(_random_state_dict(), path)
    loaded = vggish.load_vggish(path)
    out = loaded(torch.randn(3, 1, 96, 64))
    assert out.shape == (3, 128) and (out >= 0).all()  # the last layer ends in ReLU
    bad = _random_state_dict()
    del bad["embeddings.4.bias"]
    torch.save(bad, path)
    with pytest.raises(KeyError, match=r"missing keys \['embeddings.4.bias'\]"):
        vggish.load_vggish(path)


def test_flatten_order_is_height_width_channel():
    model = vggish.VGGish().eval()
    x = torch.randn(1, 1, 96, 64)
    feats = model.features(x)  # (1, 512, 6, 4)
    expected = model.embeddings(feats.permute(0, 2, 3, 1).reshape(1, -1))
    wrong = model.embeddings(feats.reshape(1, -1))
    torch.testing.assert_close(model(x), expected)
    assert not torch.allclose(expected, wrong)


def test_mel_matrix_follows_the_htk_formula():
    m = vggish.mel_matrix()
    assert m.shape == (257, 64) and np.all(m[0] == 0)
    edges = np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66)
    centres_hz = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    bin_hz = np.linspace(0, 8000, 257)
    # each band peaks at the bin nearest its centre frequency (allowing a tie with a neighbour)
    for band, centre in enumerate(centres_hz):
        assert abs(bin_hz[np.argmax(m[:, band])] - centre) <= 8000 / 256
    assert m.max() <= 1.0


def test_log_mel_frames_and_a_tone():
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    mel = vggish.log_mel(tone)
    assert mel.shape == (1 + (16000 - 400) // 160, 64)
    # a frame by hand: periodic Hann, 512-point FFT magnitude, mel matrix, log(+0.01)
    frame = tone[160 * 5: 160 * 5 + 400] * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400))
    np.testing.assert_allclose(
        mel[5], np.log(np.abs(np.fft.rfft(frame, 512)) @ vggish.mel_matrix() + 0.01))
    peak_band = int(np.argmax(mel[50]))
    edges = np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66)
    centres = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    assert abs(centres[peak_band] - 1000) < 60
    assert np.allclose(vggish.log_mel(np.zeros(800)), np.log(0.01))


def test_examples_are_096_s_patches():
    x = vggish.examples(np.random.default_rng(0).standard_normal(16000 * 3))
    assert x.shape == (3, 1, 96, 64) and x.dtype == torch.float32  # 298 frames -> 3 patches
    with pytest.raises(ValueError, match="0.96 s"):
        vggish.examples(np.zeros(8000))
    with pytest.raises(ValueError, match="400 samples"):
        vggish.log_mel(np.zeros(100))


def test_pca_postprocessing_by_hand():
    model = vggish.VGGish()
    rng = np.random.default_rng(1)
    matrix, means = rng.standard_normal((128, 128)) * 0.1, rng.standard_normal(128)
    model.load_pca({"pca_eigen_vectors": matrix, "pca_means": means})
    emb = torch.from_numpy(rng.standard_normal((2, 128))).float()
    expected = np.round((np.clip((emb.numpy() - means) @ matrix.T, -2, 2) + 2) * 255 / 4)
    # atol: float32 rounding
    np.testing.assert_allclose(model.postprocess(emb).numpy(), expected, atol=1.0)
    assert model.pca


def test_offline_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"Put vggish-10086976.pth .* at .*hub/checkpoints"):
        vggish.resolve_weights(download=False)
    with pytest.raises(FileNotFoundError, match="no such VGGish weights file"):
        vggish.resolve_weights(tmp_path / "nope.pth")
    cached = tmp_path / "hub" / "checkpoints" / vggish.WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    torch.save(_random_state_dict(), cached)
    assert vggish.resolve_weights(download=False) == cached
