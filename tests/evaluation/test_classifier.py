import pytest
import torch

from timbre_transfer.data.store import FeatureStore
from timbre_transfer.evaluation.classifier import (
    Classifier,
    ClassifierConfig,
    classifier_for,
    train_classifier,
    windows,
)

SMALL = ClassifierConfig(steps=120, batch_size=12)


def test_windows_cut_and_pad():
    spec = torch.arange(4 * 10, dtype=torch.float32).reshape(4, 10)
    w = windows(spec, 3)
    assert w.shape == (3, 1, 4, 3)  # the 1-frame tail is dropped
    torch.testing.assert_close(w[1, 0], spec[:, 3:6])
    short = windows(spec[:, :2], 3)
    assert short.shape == (1, 1, 4, 3)
    torch.testing.assert_close(short[0, 0, :, :2], spec[:, :2])
    assert (short[0, 0, :, 2] == 0).all()  # padded with the normalised value of silence
    with pytest.raises(ValueError, match="n_mels, T"):
        windows(spec[None], 3)


@pytest.fixture(scope="module")
def classifier(synth_store):
    return train_classifier(synth_store / "store", SMALL, progress=False)


def test_classifier_learns_the_synthetic_timbres(classifier, synth_store):
    store = FeatureStore(synth_store / "store")
    # every held-out window is scored: one 1.5 s clip per domain = 187 frames = 2 windows of 64
    expected = sum(max(1, int(f) // SMALL.crop_frames) for d in store.domains
                   for f in store.clips(d, "val").frames)
    assert classifier.heldout_windows == expected
    assert set(classifier.heldout_per_domain) == set(store.domains)
    # reed, brass and flute are far apart: a few hundred crops are enough to tell them apart
    assert classifier.heldout_accuracy >= 0.8, classifier.heldout_per_domain


def test_classifier_accuracy_on_audio_agrees_with_its_predictions(classifier, synth_store):
    from timbre_transfer.audio.io import load_audio

    wav = load_audio(synth_store / "audio" / "flute" / "clip_0000.wav", 16000)
    predicted = classifier.predict_audio(wav)
    share = float((predicted == classifier.domains.index("flute")).float().mean())
    assert classifier.accuracy(wav, "flute") == pytest.approx(share)
    # the shares of all domains add up to one: each window gets exactly one label
    assert sum(classifier.accuracy(wav, d) for d in classifier.domains) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="does not know domain 'cello'"):
        classifier.accuracy(wav, "cello")


def test_save_load_gives_identical_predictions(classifier, synth_store, tmp_path):
    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.evaluation.classifier import CnnJudge

    path = classifier.save(tmp_path / "clf.pt")
    # the kind judges were saved under before they were called judges: old files still load
    assert read_checkpoint(path)["kind"] == "domain_classifier"
    loaded = Classifier.load(path)
    assert isinstance(loaded.net, CnnJudge)
    wav = load_audio(synth_store / "audio" / "reed" / "clip_0001.wav", 16000)
    spec = classifier.transform(torch.from_numpy(wav))
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(windows(spec, 64)), classifier.net(windows(spec, 64)),
                                   rtol=0, atol=0)
    assert loaded.heldout_accuracy == classifier.heldout_accuracy
    assert loaded.heldout_per_domain == classifier.heldout_per_domain
    assert loaded.config == classifier.config
    # classifier_for reuses a matching file instead of training again
    assert classifier_for(synth_store / "store", path).heldout_windows == classifier.heldout_windows


def test_classifier_files_are_checked(classifier, synth_store, debug_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="not a domain classifier"):
        Classifier.load(debug_checkpoint)
    other = Classifier(classifier.net, classifier.transform, classifier.config, 1.0, {}, 1)
    other.net = type(classifier.net)(128, ["a", "b", "c"])
    path = other.save(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="trained on other domains"):
        classifier_for(synth_store / "store", path)
    # a plain judge is not reused where a register-invariant one is asked for
    plain = classifier.save(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"trained with pitch_shift=0.0 semitones, not 12.0"):
        classifier_for(synth_store / "store", plain, ClassifierConfig(pitch_shift=12.0))


def test_a_register_invariant_judge_trains_on_shifted_crops(synth_store, monkeypatch):
    """pitch_shift: every training batch is moved along the mel axis by random ratios within
    +-pitch_shift semitones (reproducibly); 0 moves nothing."""
    from timbre_transfer.audio.pitch import MelPitch

    ratios = []
    real = MelPitch.shift
    monkeypatch.setattr(MelPitch, "shift", lambda self, spec, ratio, fill: ratios.append(
        ratio.clone()) or real(self, spec, ratio, fill))
    config = ClassifierConfig(steps=40, batch_size=12, pitch_shift=12.0)
    judge = train_classifier(synth_store / "store", config, progress=False)
    assert len(ratios) == config.steps and all(len(r) == config.batch_size for r in ratios)
    semitones = 12 * torch.log2(torch.cat(ratios))
    assert semitones.abs().max() <= 12.0 + 1e-4 and semitones.std() > 5  # spread over the range
    again = []
    monkeypatch.setattr(MelPitch, "shift", lambda self, spec, ratio, fill: again.append(
        ratio.clone()) or real(self, spec, ratio, fill))
    train_classifier(synth_store / "store", config, progress=False)
    torch.testing.assert_close(torch.cat(again), torch.cat(ratios))
    again.clear()
    train_classifier(synth_store / "store", SMALL, progress=False)
    assert again == []
    assert judge.config.pitch_shift == 12.0


def test_mfcc_judge_reads_the_cepstrum_librosa_computes(synth_store):
    import librosa
    import numpy as np

    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.evaluation.classifier import MfccJudge

    store = FeatureStore(synth_store / "store")
    transform = store.transform
    net = MfccJudge(transform, store.domains, n_mfcc=13)
    wav = load_audio(synth_store / "audio" / "brass" / "clip_0000.wav", 16000)
    spec = transform(torch.from_numpy(wav))
    mel = np.maximum(np.expm1(transform.denormalize(spec).double().numpy()), 1e-5)
    # librosa's MFCC of the same log mel: DCT-II, orthonormal, no liftering; c0 is left out
    expected = librosa.feature.mfcc(S=np.log(mel), n_mfcc=14, dct_type=2, norm="ortho")[1:]
    got = net.mfcc(spec[None, None])[0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="n_ceps must be in"):
        MfccJudge(transform, store.domains, n_mfcc=0)
    with pytest.raises(ValueError, match="mel or mfcc"):
        ClassifierConfig(features="chroma")


def test_mfcc_judge_learns_the_timbres_and_saves(synth_store, tmp_path):
    config = ClassifierConfig(steps=200, batch_size=12, features="mfcc")
    judge = train_classifier(synth_store / "store", config, progress=False)
    assert judge.heldout_accuracy >= 0.8, judge.heldout_per_domain
    path = judge.save(tmp_path / "mfcc.pt")
    loaded = classifier_for(synth_store / "store", path, config)
    x = torch.rand(3, 1, judge.transform.params.n_mels, 64)
    with torch.no_grad():  # the store's normalisation travels with the weights
        torch.testing.assert_close(loaded.net(x), judge.net(x), rtol=0, atol=0)
    assert float(loaded.net.transform.norm_scale) == pytest.approx(
        float(judge.transform.norm_scale))
    with pytest.raises(ValueError, match="is a mfcc judge, not mel"):
        classifier_for(synth_store / "store", path)
