"""The pitch network and the pitch-consistency loss (losses/pitch.py): labels, the loss, its
diagnostic, by hand."""

import math

import pytest
import torch

from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.audio.transform import TransformParams
from timbre_transfer.losses.pitch import (
    pitch_consistency,
    pitch_fit_loss,
    pitch_labels,
    within_cents,
)
from timbre_transfer.models.pitch_net import BINS_PER_OCTAVE, N_PITCH_BINS, PitchNet, pitch_bin


def test_a_known_f0_labels_its_bin():
    # A4 = 440 Hz is 3.75 octaves above C1 = 32.70 Hz: bin 48 * 3.75 = 180
    assert float(pitch_bin(torch.tensor(440.0))) == pytest.approx(180.0, abs=1e-4)
    labels = pitch_labels(torch.tensor([[440.0, 440.0, 0.0]]), torch.tensor([[1.0, 0.25, 1.0]]))
    assert labels.shape == (1, N_PITCH_BINS + 1, 3)
    assert torch.allclose(labels.sum(1), torch.ones(1, 3))
    assert int(labels[0, :N_PITCH_BINS, 0].argmax()) == 180
    # sigma 25 cents = 1 bin: the neighbours hold exp(-1/2) of the peak
    assert float(labels[0, 181, 0] / labels[0, 180, 0]) == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert float(labels[0, -1, 0]) == 0.0  # voiced: nothing on the unvoiced class
    assert float(labels[0, -1, 1]) == pytest.approx(0.75)  # voicing 0.25
    assert float(labels[0, -1, 2]) == 1.0  # no f0: unvoiced whatever the voicing says


def test_label_shape_errors():
    with pytest.raises(ValueError, match="both be"):
        pitch_labels(torch.zeros(2, 3), torch.zeros(2, 4))


def test_fit_loss_is_the_entropy_of_the_labels_at_its_minimum():
    labels = pitch_labels(torch.tensor([[220.0, 0.0]]), torch.tensor([[0.8, 0.0]]))
    perfect = pitch_fit_loss(labels.clamp_min(1e-30).log(), labels)
    entropy = -(labels * labels.clamp_min(1e-30).log()).sum(1).mean()
    assert float(perfect) == pytest.approx(float(entropy), abs=1e-5)
    assert float(pitch_fit_loss(torch.zeros_like(labels), labels)) == pytest.approx(
        math.log(N_PITCH_BINS + 1), rel=1e-6)  # uniform guess: log(number of classes)


def test_consistency_is_zero_for_identical_pitch_and_grows_when_it_moves():
    torch.manual_seed(0)
    net = PitchNet(n_mels=128).eval()
    mel = torch.rand(2, 1, 128, 16)
    same = pitch_consistency(net, mel, mel.clone())
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    octave_up = MelPitch.of(TransformParams()).shift(mel, 2.0, fill=0.0)
    output = octave_up.clone().requires_grad_(True)
    moved = pitch_consistency(net, mel, output)
    assert float(moved) > 1e-6  # an untrained network: small, but not the 0 of identical input
    moved.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0  # it trains the output


def test_within_cents_counts_voiced_frames_near_the_label():
    f0 = torch.tensor([[440.0, 440.0, 440.0, 100.0]])
    voiced = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last frame does not count
    logits = torch.full((1, N_PITCH_BINS + 1, 4), -10.0)
    logits[0, 180, 0] = 10.0  # exact
    logits[0, 181, 1] = 10.0  # 25 cents off: within 50
    logits[0, 180 + 3, 2] = 10.0  # 75 cents off
    logits[0, 0, 3] = 10.0
    assert within_cents(logits, f0, voiced) == pytest.approx(2 / 3)
    assert math.isnan(within_cents(logits, f0, torch.zeros_like(voiced)))
    assert BINS_PER_OCTAVE * 25 / 1200 == 1.0  # the test's "one bin = 25 cents"
