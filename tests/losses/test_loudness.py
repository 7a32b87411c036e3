import math

import numpy as np
import pytest
import torch

from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.losses.loudness import MelLoudness, loudness_consistency


def _spec(transform, mel):
    """Normalised log1p spec ``(B, 1, F, T)`` of a linear-amplitude mel ``(B, F, T)``."""
    return transform.normalize(torch.log1p(mel))[:, None]


@pytest.fixture
def transform():
    t = AudioTransform()
    t.norm_shift.fill_(0.5)  # any statistics: the loss must undo them
    t.norm_scale.fill_(7.0)
    return t


def test_loudness_weights_bands_by_a_weighting_and_width(transform):
    import librosa

    loud = MelLoudness(transform)
    edges = librosa.mel_frequencies(130, fmax=8000.0)
    a_db = librosa.A_weighting(edges[1:-1].clip(min=1.0))
    ratio = float(loud.weight[90] / loud.weight[40])
    expected = (10 ** ((a_db[90] - a_db[40]) / 10) * (edges[92] - edges[90])
                / (edges[42] - edges[40]))
    assert ratio == pytest.approx(expected, rel=1e-5)
    mel = torch.zeros(1, 128, 3)
    mel[0, 40] = torch.tensor([0.0, 1.0, 3.0])
    power = loud(_spec(transform, mel))[0]
    # a magnitude mel: a band's power is its value squared
    torch.testing.assert_close(power, loud.weight[40] * torch.tensor([0.0, 1.0, 9.0]),
                               rtol=1e-4, atol=1e-9)


def test_identical_envelopes_and_a_constant_gain_cost_nothing(transform):
    loud = MelLoudness(transform)
    mel = torch.rand(2, 128, 40) * torch.linspace(0.1, 5, 40)
    source = _spec(transform, mel)
    assert float(loudness_consistency(loud, source, source)) == 0.0
    # x4 amplitude is +12 dB on every frame: the centred envelopes agree
    louder = _spec(transform, 4 * mel)
    assert float(loudness_consistency(loud, source, louder)) == pytest.approx(0.0, abs=1e-4)


def test_a_flat_output_against_a_20_db_swing_costs_one_unit(transform):
    loud = MelLoudness(transform)
    src = torch.zeros(1, 128, 2)
    src[0, 60] = torch.tensor([1.0, 10.0])  # frames 20 dB apart
    out = torch.zeros(1, 128, 2)
    out[0, 60] = 3.0
    # centred: source -10 / +10 dB, output 0 / 0 -> mean |difference| 10 dB = 1 unit of 10 dB
    # (the floor, 60 dB under the source's peak, moves the quiet frame by 0.0004 dB)
    value = loudness_consistency(loud, _spec(transform, src), _spec(transform, out))
    assert float(value) == pytest.approx(1.0, abs=1e-3)


def test_a_nearly_silent_output_is_pushed_up_where_the_source_is_loud(transform):
    """A sigmoid generator never reaches exact silence; just above it, the gradient is finite
    and raises the frames that should be loud (those of a source crescendo) against the rest."""
    loud = MelLoudness(transform)
    mel = torch.rand(1, 128, 16) * torch.linspace(0, 3, 16)
    source = _spec(transform, mel)
    quiet = (_spec(transform, torch.full((1, 128, 16), 1e-3))).requires_grad_(True)
    value = loudness_consistency(loud, source, quiet)
    value.backward()
    assert math.isfinite(value.item()) and value.item() > 0.5
    assert torch.isfinite(quiet.grad).all()
    push = -quiet.grad[0, 0].sum(0)  # the descent direction, per frame
    assert push[-4:].mean() > 0 > push[:4].mean()


def test_mel_loudness_tracks_the_evaluations_a_weighted_loudness(real_clips):
    """On real recordings, the envelope read from the mel is the audio's A-weighted loudness
    (the one ``loudness_correlation`` scores) up to a constant."""
    from timbre_transfer.audio.features import a_weighted_loudness
    from timbre_transfer.audio.io import load_audio

    transform = AudioTransform()
    loud = MelLoudness(transform)
    for domain in ("violin", "speech"):
        path = real_clips(domain, 1)[0]
        wav = load_audio(path, transform.params.sample_rate)
        spec = transform(torch.as_tensor(wav))[None]
        ours = 10 * np.log10(loud(spec)[0].numpy() + 1e-12)
        truth = a_weighted_loudness(wav, transform.params.sample_rate,
                                    hop_length=transform.params.hop_length)[: len(ours)]
        active = truth > truth.max() - 60
        corr = np.corrcoef(ours[active], truth[active])[0, 1]
        assert corr > 0.99, (path, corr)
        assert abs(np.median(ours[active] - truth[active])) < 3.0, path
