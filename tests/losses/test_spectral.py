"""Multi-scale spectral loss against a hand-computed STFT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from timbre_transfer.losses.spectral import MultiScaleSpectralLoss, multiscale_spectral_distance

SR = 16000


def sine(freq: float, seconds: float = 0.5, amp: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).float()[None]


def hand_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| framed by hand in float64: zero-pad n_fft // 2 both sides, periodic Hann, rfft.
    ``(B, T)`` -> ``(B, n_fft // 2 + 1, frames)``."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)))
    n_frames = 1 + (padded.shape[1] - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[:, i * hop: i * hop + n_fft] for i in range(n_frames)], axis=1)
    return np.abs(np.fft.rfft(frames * window, axis=-1)).transpose(0, 2, 1)


def test_identical_inputs_give_exactly_zero():
    x = torch.randn(3, 4000)
    assert MultiScaleSpectralLoss()(x, x.clone()).item() == 0.0
    mel = MultiScaleSpectralLoss(mel_weight=1.0, sample_rate=SR)
    assert mel(x, x.clone()).item() == 0.0


def test_matches_hand_computation():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 300, generator=gen)
    estimate = 0.7 * target + 0.3 * torch.randn(2, 300, generator=gen)
    eps = 1e-7
    mt = hand_magnitude(target.numpy(), 64, 16)
    me = hand_magnitude(estimate.numpy(), 64, 16)
    mag = np.abs(mt - me).mean()
    logmag = np.abs(np.log(mt + eps) - np.log(me + eps)).mean()
    expected = 2.0 * mag + 0.5 * logmag
    loss = MultiScaleSpectralLoss(fft_sizes=(64,), mag_weight=2.0, logmag_weight=0.5, eps=eps)
    got = loss(target, estimate).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_sums_over_scales_and_reduction_none_is_per_clip():
    gen = torch.Generator().manual_seed(1)
    target, estimate = torch.randn(3, 1000, generator=gen), torch.randn(3, 1000, generator=gen)
    both = MultiScaleSpectralLoss(fft_sizes=(128, 64))(target, estimate)
    a = MultiScaleSpectralLoss(fft_sizes=(128,))(target, estimate)
    b = MultiScaleSpectralLoss(fft_sizes=(64,))(target, estimate)
    assert both.item() == pytest.approx((a + b).item(), rel=1e-6)
    per_clip = MultiScaleSpectralLoss(reduction="none")(target, estimate)
    assert per_clip.shape == (3,)
    assert per_clip.mean().item() == pytest.approx(
        MultiScaleSpectralLoss()(target, estimate).item(), rel=1e-6)
    torch.testing.assert_close(multiscale_spectral_distance(target, estimate), per_clip.detach())
    one = multiscale_spectral_distance(target[1].numpy(), estimate[1].numpy())
    assert one.shape == (1,) and one.item() == pytest.approx(per_clip[1].item(), rel=1e-6)


def test_mel_term_by_hand():
    import librosa

    gen = torch.Generator().manual_seed(2)
    target, estimate = torch.randn(1, 2000, generator=gen), torch.randn(1, 2000, generator=gen)
    plain = MultiScaleSpectralLoss(fft_sizes=(256, 64))
    with_mel = MultiScaleSpectralLoss(fft_sizes=(256, 64), mel_weight=3.0, sample_rate=SR,
                                      n_mels=40)
    basis = librosa.filters.mel(sr=SR, n_fft=256, n_mels=40).astype(np.float64)
    mt = basis @ hand_magnitude(target.numpy(), 256, 64)[0]
    me = basis @ hand_magnitude(estimate.numpy(), 256, 64)[0]
    mel = np.abs(np.log(mt + 1e-7) - np.log(me + 1e-7)).mean()
    extra = (with_mel(target, estimate) - plain(target, estimate)).item()
    assert extra == pytest.approx(3.0 * mel, rel=1e-5)
    # a mel scale that is not one of the loss scales gets its own STFT
    own = MultiScaleSpectralLoss(fft_sizes=(64,), mel_weight=1.0, sample_rate=SR, n_mels=40,
                                 mel_n_fft=256)
    extra = (own(target, estimate) - MultiScaleSpectralLoss(fft_sizes=(64,))(target, estimate))
    assert extra.item() == pytest.approx(mel, rel=1e-5)


def test_detuned_sine_is_farther_than_an_attenuated_one():
    loss = MultiScaleSpectralLoss()
    ref = sine(440.0)
    detuned = loss(ref, sine(466.16)).item()  # one semitone up
    quieter = loss(ref, sine(440.0, amp=0.9)).item()
    assert detuned > 2 * quieter > 0


def test_gradients_reach_the_estimate():
    target = sine(440.0, seconds=0.25)
    estimate = torch.zeros_like(target, requires_grad=True)  # silence: |STFT| = 0 everywhere
    loss = MultiScaleSpectralLoss()(target, estimate)
    loss.backward()
    assert torch.isfinite(estimate.grad).all()
    noisy = (0.1 * torch.randn_like(target)).requires_grad_()
    MultiScaleSpectralLoss()(target, noisy).backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="differ"):
        MultiScaleSpectralLoss()(torch.zeros(1, 100), torch.zeros(1, 101))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        MultiScaleSpectralLoss()(torch.zeros(100), torch.zeros(100))
    with pytest.raises(ValueError, match="sample_rate"):
        MultiScaleSpectralLoss(mel_weight=1.0)
    with pytest.raises(ValueError, match="overlap"):
        MultiScaleSpectralLoss(overlap=1.0)
    with pytest.raises(ValueError, match="reduction"):
        MultiScaleSpectralLoss(reduction="sum")
