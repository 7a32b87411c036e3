import numpy as np
import pytest
import torch
from scipy.fft import dct

from timbre_transfer.audio.cepstrum import MelCepstrum
from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.losses.envelope import EnvelopeDiscriminators


def test_cepstrum_is_scipy_s_orthonormal_dct_without_c0():
    log_mel = torch.randn(2, 40, 7, dtype=torch.float64)
    got = MelCepstrum(40, 12)(log_mel)
    expected = dct(log_mel.numpy(), type=2, norm="ortho", axis=1)[:, 1:13]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    # a level change moves c0 only: the coefficients kept do not see loudness
    torch.testing.assert_close(MelCepstrum(40, 12)(log_mel + 3.0), got.float())
    with pytest.raises(ValueError, match="n_ceps must be in"):
        MelCepstrum(40, 40)
    with pytest.raises(ValueError, match=r"log mel \(B, 40, T\)"):
        MelCepstrum(40, 12)(log_mel[:, :30])


def test_losses_by_hand_with_constant_logits():
    env = EnvelopeDiscriminators(["a", "b"], n_mels=32, n_ceps=8)
    for bias, net in zip((0.25, -0.5), env.nets.values()):
        torch.nn.init.zeros_(net[-1].weight)
        torch.nn.init.constant_(net[-1].bias, bias)
    spec = torch.rand(3, 1, 32, 16)
    assert env(spec, "a").shape == (3, 1, 4)
    # LSGAN: the generator wants 1 from every net; the nets want 1 on real and 0 on fake
    fakes = [spec, spec]
    assert float(env.generator_loss(fakes, ["a", "b"])) == pytest.approx(
        ((0.25 - 1) ** 2 + (-0.5 - 1) ** 2) / 2)
    real = torch.stack([spec, spec], 1)
    assert float(env.discriminator_loss(real, fakes, ["a", "b"])) == pytest.approx(
        ((0.25 - 1) ** 2 + 0.25 ** 2 + (-0.5 - 1) ** 2 + 0.5 ** 2) / 2)
    with pytest.raises(ValueError, match=r"mels \(B, 1, n_mels, T\)"):
        env(spec[:, 0], "a")


def test_a_discriminator_learns_a_bright_envelope_from_a_dark_one_at_any_pitch():
    """Real: a bright spectrum (flat tilt); fake: a dark one (steep tilt); each with a random
    harmonic ripple (its notes). After training, every real frame scores above every fake."""
    torch.manual_seed(0)
    bands = torch.linspace(0, 1, 32)[None, :, None]

    def crops(tilt, n=16):
        ripple = 0.3 * torch.cos(2 * torch.pi * bands * torch.randint(3, 9, (n, 1, 1)))
        return (1.0 - tilt * bands + ripple + 0.05 * torch.randn(n, 32, 16))[:, None]

    env = EnvelopeDiscriminators(["x"], n_mels=32, n_ceps=8)
    opt = torch.optim.Adam(env.parameters(), lr=1e-3)
    for _ in range(150):
        loss = env.discriminator_loss(crops(0.2)[:, None], [crops(1.5)], ["x"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert env(crops(0.2), "x").min() > env(crops(1.5), "x").max()


def test_register_blind_nets_judge_both_sides_through_the_partials_under_one_floor():
    grid = MelPitch(16000, 128)
    env = EnvelopeDiscriminators(["a", "b"], n_mels=128, n_ceps=8, mel_pitch=grid)
    fakes = [torch.rand(2, 1, 128, 8) for _ in range(2)]
    real = torch.rand(2, 2, 1, 128, 8)

    def notes(hz):  # (B, 2, T): f0 and a voicing the view does not read
        return torch.stack([torch.full((2, 8), hz), torch.rand(2, 8)], 1)

    fake_notes = [notes(440.0), notes(98.0)]  # translation into a plays 440 Hz, into b 98 Hz
    real_notes = torch.stack([notes(110.0), notes(196.0)], 1)  # a's real crops 110, b's 196

    def seen(spec, f0, floor):
        return grid.partial_envelope(spec[:, 0], torch.full((2, 8), f0),
                                     torch.full((2, 8), floor))[:, None]

    # each side read at its own notes, both held below the higher of the two
    expected_g = ((env(seen(fakes[0], 440.0, 440.0), "a") - 1) ** 2).mean() / 2 + (
        (env(seen(fakes[1], 98.0, 196.0), "b") - 1) ** 2).mean() / 2
    got_g = env.generator_loss(fakes, ["a", "b"], fake_notes=fake_notes, real_notes=real_notes)
    assert float(got_g) == pytest.approx(float(expected_g), rel=1e-6)
    expected_d = torch.stack([
        ((env(seen(real[:, 0], 110.0, 440.0), "a") - 1) ** 2).mean()
        + (env(seen(fakes[0], 440.0, 440.0), "a") ** 2).mean(),
        ((env(seen(real[:, 1], 196.0, 196.0), "b") - 1) ** 2).mean()
        + (env(seen(fakes[1], 98.0, 196.0), "b") ** 2).mean()]).mean()
    got_d = env.discriminator_loss(real, fakes, ["a", "b"], fake_notes=fake_notes,
                                   real_notes=real_notes)
    assert float(got_d) == pytest.approx(float(expected_d), rel=1e-6)
    with pytest.raises(ValueError, match="need the notes"):
        env.generator_loss(fakes, ["a", "b"])
    # without a grid the notes change nothing: the mel itself is judged
    seeing = EnvelopeDiscriminators(["a", "b"], n_mels=128, n_ceps=8)
    assert seeing.view(fakes[0], fake_notes[0], real_notes[:, 0]) is fakes[0]


def test_per_frame_nets_score_each_frame_from_that_frame_alone():
    torch.manual_seed(0)
    env = EnvelopeDiscriminators(["a"], n_mels=32, n_ceps=8, per_frame=True)
    spec = torch.rand(2, 1, 32, 16)
    moved = spec.clone()
    moved[..., 5] += torch.rand(2, 1, 32)
    before, after = env(spec, "a"), env(moved, "a")
    assert before.shape == (2, 1, 16)
    changed = (before - after).abs().amax(dim=(0, 1)) > 0
    assert changed.tolist() == [t == 5 for t in range(16)]
    # the window nets mix neighbouring frames
    window = EnvelopeDiscriminators(["a"], n_mels=32, n_ceps=8)
    assert ((window(spec, "a") - window(moved, "a")).abs() > 0).sum() > 1
