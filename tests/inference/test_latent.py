from pathlib import Path

import numpy as np
import pytest
import torch

from timbre_transfer.config import to_dict
from timbre_transfer.inference.latent import interpolate, lerp, sample, slerp
from timbre_transfer.inference.transfer import TimbreTransfer
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer

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
def tt(synth_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = load_run_config(REPO / "config" / "debug.yaml", ["train.max_steps=2"])
    Trainer(cfg, synth_store / "store", run, progress=False).fit()
    return TimbreTransfer.from_checkpoint(run / "checkpoints" / "latest.pt", device="cpu")


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
    from timbre_transfer.cli import main
    from timbre_transfer.training.checkpoint import save_checkpoint

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
