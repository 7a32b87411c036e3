from pathlib import Path

import numpy as np
import pytest
import torch

from timbre_transfer.config import to_dict
from timbre_transfer.inference.latent import interpolate, lerp, sample, slerp
from timbre_transfer.inference.transfer import TimbreTransfer
from timbre_transfer.training.config import load_run_config

REPO = Path(__file__).resolve().parents[2]


def test_slerp_endpoints_unit_norm_and_parallel_case():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 4, generator=g), torch.randn(2, 4, 4, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    ua, ub = a / a.norm(), b / b.norm()
    for t in np.linspace(0, 1, 7):
        assert float(slerp(ua, ub, float(t)).norm()) == pytest.approx(1.0, abs=1e-5)
    # halfway between orthogonal unit vectors: equal weights of 1/sqrt(2)
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(slerp(e1, e2, 0.5), torch.tensor([0.5 ** 0.5, 0.5 ** 0.5]))
    # parallel vectors: 0/0 weights, falls back to lerp, never NaN
    out = slerp(a, 2 * a, 0.25)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, lerp(a, 2 * a, 0.25))


@pytest.fixture(scope="module")
def tt(debug_checkpoint):
    return TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")


def test_interpolate_between_two_clips(tt, synth_store):
    from timbre_transfer.audio.io import load_audio

    a = load_audio(synth_store / "audio" / "reed" / "clip_0000.wav", 16000)
    b = load_audio(synth_store / "audio" / "brass" / "clip_0001.wav", 16000)
    wavs, mels = interpolate(tt, a, b, to="flute", steps=5, mode="slerp", inverter="pghi")
    assert len(wavs) == len(mels) == 5
    assert all(m.shape == mels[0].shape and m.shape[0] == 128 for m in mels)
    assert all(np.isfinite(w).all() and len(w) == len(wavs[0]) for w in wavs)
    # the path moves: the ends differ from each other more than neighbouring steps do
    ends = (mels[0] - mels[-1]).abs().mean()
    assert (mels[0] - mels[1]).abs().mean() < ends
    with pytest.raises(ValueError, match="mode"):
        interpolate(tt, a, b, to="flute", mode="cubic")
    with pytest.raises(KeyError, match="unknown domain 'cello'"):
        interpolate(tt, a, b, to="cello")


def test_sample_from_the_prior(tt):
    wavs, mels = sample(tt, "reed", n=3, seconds=1.0, temperature=0.5, seed=1, inverter="pghi")
    assert len(wavs) == 3 and mels[0].shape == (128, 124)  # 125 frames rounded down to 4
    again, _ = sample(tt, "reed", n=3, seconds=1.0, temperature=0.5, seed=1, inverter="pghi")
    assert all(np.array_equal(x, y) for x, y in zip(wavs, again))


def test_interpolate_and_sample_commands(tt, synth_store, tmp_path, capsys):
    from timbre_transfer.checkpoint import save_checkpoint
    from timbre_transfer.cli import main

    ckpt = tmp_path / "model.pt"
    # a minimal export: what TimbreTransfer needs, without training state
    save_checkpoint(ckpt, {"config": to_dict(load_run_config(REPO / "config" / "debug.yaml")),
                           "transform": tt.transform.to_dict(), "domains": tt.domains,
                           "model": tt.model.state_dict()})
    a = synth_store / "audio" / "reed" / "clip_0000.wav"
    b = synth_store / "audio" / "brass" / "clip_0002.wav"
    assert main(["interpolate", str(ckpt), str(a), str(b), "--to", "flute", "--steps", "3",
                 "--out", str(tmp_path / "interp")]) == 0
    assert sorted(p.name for p in (tmp_path / "interp").iterdir()) == [
        "step_00.wav", "step_01.wav", "step_02.wav", "strip.png"]
    assert main(["sample", str(ckpt), "--all", "--n", "2", "--seconds", "0.5",
                 "--out", str(tmp_path / "samples")]) == 0
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == sorted([f"{d}_{i:02d}.wav" for d in tt.domains for i in range(2)]
                           + [f"{d}.png" for d in tt.domains])
    assert main(["sample", str(ckpt), "--to", "cello", "--out", str(tmp_path / "x")]) == 2
    assert "unknown domain 'cello'" in capsys.readouterr().err


def test_sample_around_a_domain_centroid(tt):
    from timbre_transfer.inference.transfer import TimbreTransfer

    assert set(tt.centroids) == set(tt.domains)  # training kept one per domain
    # at temperature 0 the draw IS the centroid, broadcast over every latent position
    _, mels = sample(tt, "reed", n=2, seconds=0.5, temperature=0.0, around="brass",
                     inverter="pghi")
    z = tt.centroids["brass"][None, :, None, None].expand(
        1, -1, 128 // tt.model.downsample_factor, mels[0].shape[-1] // tt.model.downsample_factor)
    with torch.no_grad():
        expected = tt.model.decode(z.contiguous(), "reed")[0, 0].clamp(0, 1)
    torch.testing.assert_close(mels[0], expected)
    torch.testing.assert_close(mels[1], expected)
    # around another centroid, the samples differ
    _, other = sample(tt, "reed", n=1, seconds=0.5, temperature=0.0, around="flute",
                      inverter="pghi")
    assert (other[0] - expected).abs().max() > 0
    bare = TimbreTransfer(tt.model, tt.transform, tt.domains)  # an export: no centroids
    with pytest.raises(ValueError, match="no latent centroid for 'brass'"):
        sample(bare, "reed", around="brass")


def test_latent_map_is_a_pca_of_every_clip(tt, synth_store, debug_checkpoint, tmp_path, capsys):
    from timbre_transfer.cli import main
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.inference.latent import latent_map

    store = FeatureStore(synth_store / "store")
    latents = latent_map(tt, store)
    assert len(latents.files) == 12 and latents.points.shape == (12, 2)
    assert sorted(set(latents.domains)) == sorted(tt.domains)
    val = latent_map(tt, store, "val")
    assert len(val.files) == 3
    # PCA: centred coordinates, uncorrelated axes, decreasing shares of the variance
    np.testing.assert_allclose(latents.points.mean(axis=0), 0, atol=1e-9)
    cov = np.cov(latents.points.T)
    assert abs(cov[0, 1]) < 1e-9 * cov[0, 0]
    assert cov[0, 0] >= cov[1, 1]
    assert 1 >= latents.explained[0] >= latents.explained[1] >= 0
    assert sum(latents.explained) <= 1 + 1e-12
    out = tmp_path / "map.png"
    assert main(["latent-map", str(debug_checkpoint), "--data", str(synth_store / "store"),
                 "--out", str(out)]) == 0
    assert "12 clips" in capsys.readouterr().out
    from matplotlib.image import imread

    assert imread(out).shape[:2] == (450, 550)  # 5.5 x 4.5 inches at 100 dpi
    assert main(["latent-map", str(tmp_path / "missing.pt"), "--data", str(synth_store / "store"),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.pt: no such checkpoint" in capsys.readouterr().err
