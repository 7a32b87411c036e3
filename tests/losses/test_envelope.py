import numpy as np
import pytest
import torch
from scipy.fft import dct

from timbre_transfer.audio.cepstrum import MelCepstrum
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
