from pathlib import Path

import numpy as np
import pytest
import torch

from timbre_transfer.checkpoint import load_ddsp_head
from timbre_transfer.data.store import FeatureStore
from timbre_transfer.models.ddsp_head import Controls, DDSPConfig, DDSPHead, fill_unvoiced
from timbre_transfer.training.ddsp_trainer import DDSPRunConfig, DDSPTrainer, load_ddsp_config

REPO = Path(__file__).resolve().parents[2]
SMALL = ["head.hidden=32", "head.n_harmonics=20", "head.n_noise_bands=17", "train.batch_size=2",
         "train.crop_frames=32", "train.checkpoint_every=2", "train.log_every=1"]


@pytest.fixture(scope="module")
def real_store(realaudio_dir, tmp_path_factory):
    """Two violin and two flute recordings, prepared (one of each held out)."""
    import shutil

    from timbre_transfer.data.prepare import PrepareOptions, prepare

    root = tmp_path_factory.mktemp("real")
    for domain in ("violin", "flute"):
        (root / "audio" / domain).mkdir(parents=True)
        for f in sorted((realaudio_dir / domain).glob("*.flac"))[:2]:
            shutil.copyfile(f, root / "audio" / domain / f.name)
    prepare(root / "audio", root / "store", options=PrepareOptions(val_fraction=0.5),
            workers=1, progress=False)
    return root


def test_config_file_matches_the_defaults():
    assert load_ddsp_config(REPO / "config" / "ddsp.yaml") == DDSPRunConfig()
    with pytest.raises(KeyError, match="head.n_harmonic"):
        load_ddsp_config(None, ["head.n_harmonic=3"])


def test_fill_unvoiced_takes_the_nearest_voiced_frame():
    f0 = np.array([np.nan, 100.0, np.nan, np.nan, np.nan, 200.0, np.nan])
    np.testing.assert_array_equal(fill_unvoiced(f0), [100, 100, 100, 100, 200, 200, 200])
    np.testing.assert_array_equal(fill_unvoiced(np.full(3, np.nan)), np.zeros(3))


def test_silent_and_unpitched_input_give_quiet_output():
    torch.manual_seed(0)
    head = DDSPHead(128, 16000, 128, DDSPConfig(hidden=32, n_harmonics=20, n_noise_bands=17))
    n, samples = 63, 62 * 256
    mel = torch.zeros(128, 2 * n)
    silent = Controls(np.zeros(n), np.zeros(n), np.full(n, -100.0))
    out = head.render(mel, silent, samples)
    assert out.shape == (samples,) and np.all(out == 0)  # the gate closes on silence
    # unpitched (no f0 anywhere, voicing 0) at a normal level: no error, no harmonic part
    unpitched = Controls(fill_unvoiced(np.full(n, np.nan)), np.zeros(n), np.full(n, -30.0))
    out = head.render(mel, unpitched, samples)
    assert np.isfinite(out).all() and float(np.sqrt(np.mean(out ** 2))) < 0.1


def test_train_ddsp_three_steps_on_real_audio_and_resume_exactly(real_store, tmp_path, capsys):
    from timbre_transfer.cli import main

    store = real_store / "store"
    run = tmp_path / "ddsp"
    assert main(["train-ddsp", "--data", str(store), "--domain", "violin", "--out", str(run),
                 "--max-steps", "3", *SMALL]) == 0
    assert "training a DDSP head on ['violin']" in capsys.readouterr().out
    head, domains, _ = load_ddsp_head(run / "checkpoints" / "latest.pt")
    assert domains == ["violin"] and not (run / "controls.npz").exists()  # the store's are used
    # the head's controls are the store's, every mel_stride-th mel frame
    trainer = DDSPTrainer(load_ddsp_config(None, SMALL), store, ["violin"], tmp_path / "c",
                          progress=False)
    clips = FeatureStore(store).clips("violin")
    stride = trainer.config.head.mel_stride
    np.testing.assert_array_equal(trainer.clips[0].controls.f0_hz,
                                  clips.clip_controls(0).f0_hz[::stride])
    assert len(trainer.clips[0].mel) == len(trainer.clips[0].controls.f0_hz)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    # 2 steps, then 1 more resumed, equals 3 uninterrupted (same data, noise and optimiser state)
    config = load_ddsp_config(None, SMALL)
    first = DDSPTrainer(config, store, ["violin"], tmp_path / "split", progress=False)
    history = first.fit(2)
    assert len(history) == 2 and all(np.isfinite(h["loss/spectral"]) for h in history)
    resumed = DDSPTrainer(config, store, ["violin"], tmp_path / "split", resume=True,
                          progress=False)
    assert resumed.step == 2
    resumed.fit(3)
    for (name, a), b in zip(head.state_dict().items(), resumed.head.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)

    with pytest.raises(ValueError, match="another config"):
        DDSPTrainer(load_ddsp_config(None, SMALL + ["train.lr=0.5"]), store, ["violin"],
                    tmp_path / "split", resume=True, progress=False)


def test_transfer_with_the_ddsp_head_keeps_the_length(real_store, tmp_path, capsys):
    import soundfile as sf

    from timbre_transfer.cli import main

    store = real_store / "store"
    assert main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "--config",
                 str(REPO / "config" / "debug.yaml"), "--max-steps", "2"]) == 0
    assert main(["train-ddsp", "--data", str(store), "--domain", "violin", "--out",
                 str(tmp_path / "ddsp"), "--max-steps", "1", *SMALL]) == 0
    source = sorted((real_store / "audio" / "flute").glob("*.flac"))[0]
    ckpt = str(tmp_path / "run" / "checkpoints" / "latest.pt")
    head = str(tmp_path / "ddsp" / "checkpoints" / "latest.pt")
    assert main(["transfer", ckpt, str(source), "--to", "violin", "--inverter", "ddsp", "--ddsp",
                 head, "--pitch-shift", "12", "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / f"{source.stem}_to_violin.wav"
    from timbre_transfer.audio.io import load_audio

    info = sf.info(out)
    assert info.samplerate == 16000
    assert info.frames == len(load_audio(source, 16000))  # the input's duration at 16 kHz
    assert abs(info.frames - sf.info(source).duration * 16000) <= 1
    # a model checkpoint that carries the head transfers the same without --ddsp
    bundled = str(tmp_path / "bundled.pt")
    assert main(["bundle", ckpt, "--ddsp", head, "--out", bundled]) == 0
    assert main(["transfer", bundled, str(source), "--to", "violin", "--inverter", "ddsp",
                 "--pitch-shift", "12", "--out", str(tmp_path / "out2")]) == 0
    a, _ = sf.read(out)
    b, _ = sf.read(tmp_path / "out2" / out.name)
    np.testing.assert_array_equal(a, b)
    capsys.readouterr()
    # no head for flute, and shifts without the head, are clear errors
    assert main(["transfer", ckpt, str(source), "--to", "flute", "--inverter", "ddsp", "--ddsp",
                 head, "--out", str(tmp_path / "out")]) == 2
    assert "no DDSP head for ['flute']" in capsys.readouterr().err
    assert main(["transfer", ckpt, str(source), "--to", "violin", "--pitch-shift", "2",
                 "--out", str(tmp_path / "out")]) == 2
    assert "need the DDSP head" in capsys.readouterr().err


def test_a_head_conditioned_on_descriptors_learns_them_and_turns_its_knobs(real_store, tmp_path):
    """head.descriptors: the training clips carry their measured descriptors (scaled, NaN
    where unvoiced); the decoder predicts them; a knob shifts the decoder's input by its value
    in the descriptor's units."""
    from timbre_transfer.audio.descriptors import describe
    from timbre_transfer.models.ddsp_head import DESCRIPTOR_SCALE

    store = real_store / "store"
    config = load_ddsp_config(None, SMALL + ["head.descriptors=[brightness,noisiness]"])
    trainer = DDSPTrainer(config, store, ["violin"], tmp_path / "d", progress=False)
    clip = trainer.clips[0]
    assert clip.descriptors.shape == (len(clip.controls.f0_hz), 2)
    f0 = np.where(clip.controls.voiced, clip.controls.f0_hz, np.nan)
    n = len(f0)
    measured = describe(clip.audio[:(n - 1) * trainer.head.hop_length], 16000,
                        trainer.head.hop_length, f0_hz=f0, attacks=False).brightness
    np.testing.assert_allclose(clip.descriptors[:, 0], np.clip(measured, -1, 6), equal_nan=True)
    assert np.isnan(clip.descriptors[~clip.controls.voiced, 0]).all()
    history = trainer.fit(3)
    assert all(np.isfinite(h["loss/spectral"]) for h in history)

    decoder = trainer.head.decoder
    mel, f0_t, voiced, loud, _, _ = trainer.batch(0)
    predicted = decoder(mel, f0_t, voiced, loud)[3]
    seen, real_in = {}, decoder.descriptor_in.forward
    decoder.descriptor_in.forward = lambda x: seen.update(input=x) or real_in(x)
    trainer.head(mel, f0_t, voiced, loud, 32 * trainer.head.hop_length,
                 timbre={"brightness": 0.5, "noisiness": -6.0})
    shift = torch.tensor([0.5 * DESCRIPTOR_SCALE["brightness"], -6 * DESCRIPTOR_SCALE["noisiness"]])
    torch.testing.assert_close(seen["input"], predicted + shift)
    with pytest.raises(ValueError, match="head.descriptors: unknown"):
        load_ddsp_config(None, ["head.descriptors=[sharpness]"])


def test_a_head_without_mel_input_hears_f0_and_loudness_alone():
    """DDSP's own timbre transfer: ``mel_input: false`` builds no mel branch, and the audio
    does not depend on the mel it is handed."""
    torch.manual_seed(0)
    config = DDSPConfig(hidden=32, n_harmonics=20, n_noise_bands=17, mel_input=False)
    head = DDSPHead(128, 16000, 128, config)
    assert not any(k.startswith("decoder.mel_in") for k in head.state_dict())
    n, samples = 20, 19 * 256
    controls = Controls(np.full(n, 220.0), np.ones(n), np.full(n, -30.0))
    one = head.render(torch.rand(128, 2 * n), controls, samples)
    other = head.render(torch.rand(128, 2 * n), controls, samples)
    np.testing.assert_array_equal(one, other)
    louder = head.render(torch.rand(128, 2 * n), Controls(np.full(n, 220.0), np.ones(n),
                                                          np.full(n, -20.0)), samples)
    assert not np.array_equal(one, louder)  # it does hear the loudness
    with_mel = DDSPHead(128, 16000, 128, DDSPConfig(hidden=32, n_harmonics=20, n_noise_bands=17))
    assert any(k.startswith("decoder.mel_in") for k in with_mel.state_dict())
