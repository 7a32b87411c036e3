"""DDSP synthesis against analytic signals: pitch, Nyquist masking, phase over a minute,
upsampling, FIR design, filtered-noise spectra, reverb identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from timbre_transfer.models.ddsp import (
    Reverb,
    exp_sigmoid,
    filtered_noise,
    harmonic_synth,
    noise_filter_ir,
    upsample,
)

SR = 16000
HOP = 64


def constant_controls(f0: float, dist, seconds: float, hop: int = HOP):
    """Frames for a clip of ``seconds``: ``1 + T // hop`` frames of constant f0, amplitude 1."""
    n = int(round(seconds * SR))
    frames = 1 + n // hop
    dist = torch.as_tensor(dist, dtype=torch.float32)
    return (
        torch.full((1, frames), f0),
        torch.ones(1, frames),
        dist.expand(1, frames, dist.numel()).clone(),
        n,
    )


def angle_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| as angles (2 pi and 0 are the same phase)."""
    return torch.remainder(a - b + math.pi, 2 * math.pi).sub(math.pi).abs()


# --- exp_sigmoid ------------------------------------------------------------------------------

def test_exp_sigmoid_values():
    x = torch.tensor([-100.0, 0.0, 100.0])
    y = exp_sigmoid(x)
    assert y[0].item() == pytest.approx(1e-7, rel=1e-3)
    assert y[1].item() == pytest.approx(2 * 0.5 ** math.log(10) + 1e-7, rel=1e-6)
    assert y[2].item() == pytest.approx(2.0, rel=1e-6)


# --- upsampling ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["linear", "window"])
def test_upsample_constant_frames_give_constant_samples(mode):
    frames = torch.full((2, 11, 3), 0.37)
    out = upsample(frames, 10 * 32 + 5, 32, mode)
    assert out.shape == (2, 325, 3)
    torch.testing.assert_close(out, torch.full_like(out, 0.37), rtol=0, atol=1e-7)


@pytest.mark.parametrize("mode", ["linear", "window"])
def test_upsample_hits_frame_values_at_centres_and_holds_the_last(mode):
    frames = torch.randn(2, 9)
    hop = 16
    out = upsample(frames, 9 * hop, hop, mode)  # (B, T) in, (B, T) out
    assert out.shape == (2, 9 * hop)
    torch.testing.assert_close(out[:, ::hop], frames, rtol=0, atol=1e-6)
    # after the last centre the last value is held
    torch.testing.assert_close(out[:, 8 * hop:], frames[:, -1:].expand(2, hop), rtol=0, atol=0)


def test_upsample_linear_and_window_between_centres():
    frames = torch.tensor([[0.0, 1.0]])
    lin = upsample(frames, 8, 4, "linear")
    win = upsample(frames, 8, 4, "window")
    torch.testing.assert_close(lin[0, :4], torch.tensor([0.0, 0.25, 0.5, 0.75]))
    # Hann overlap-add of 2 * hop windows = raised-cosine interpolation
    u = torch.arange(4) / 4
    torch.testing.assert_close(win[0, :4], 0.5 - 0.5 * torch.cos(math.pi * u))


def test_upsample_rejects_uncovered_lengths():
    with pytest.raises(ValueError, match="frame k is centred"):
        upsample(torch.zeros(1, 10), 10 * 64 + 1, 64)
    with pytest.raises(ValueError, match="frame k is centred"):
        upsample(torch.zeros(1, 10), 8 * 64, 64)
    with pytest.raises(ValueError, match="mode"):
        upsample(torch.zeros(1, 10), 600, 64, "cubic")


# --- harmonic synthesis ----------------------------------------------------------------------

def test_fundamental_only_peaks_at_f0():
    f0, amp, dist, n = constant_controls(440.0, [1.0, 0.0, 0.0], 1.0)
    audio, _ = harmonic_synth(f0, amp, dist, SR, HOP, n)
    assert audio.shape == (1, n)
    spectrum = np.abs(np.fft.rfft(audio[0].double().numpy()))
    freqs = np.fft.rfftfreq(n, 1 / SR)  # 1 Hz bins for 1 s
    assert abs(freqs[np.argmax(spectrum)] - 440.0) <= freqs[1]
    # only harmonic 1: nothing at 880 Hz
    assert spectrum[880] < 1e-3 * spectrum[440]


def test_harmonics_at_or_above_nyquist_are_removed_and_the_rest_renormalised():
    # f0 = 3000 Hz, K = 4: 3, 6 kHz kept; 9, 12 kHz >= 8 kHz removed
    f0, amp, dist, n = constant_controls(3000.0, [0.1, 0.2, 0.3, 0.4], 0.25)
    audio, _ = harmonic_synth(f0, amp, dist, SR, HOP, n)
    kept = dist[..., :2]
    ref, _ = harmonic_synth(f0, amp, kept, SR, HOP, n)
    torch.testing.assert_close(audio, ref, rtol=0, atol=1e-5)
    t = np.arange(n) / SR
    analytic = (np.sin(2 * np.pi * 3000 * t) + 2 * np.sin(2 * np.pi * 6000 * t)) / 3
    assert np.max(np.abs(audio[0].double().numpy() - analytic)) < 1e-5


def test_nyquist_mask_follows_f0_per_sample():
    # f0 glides 3000 -> 5000 Hz: harmonic 2 crosses 8 kHz at f0 = 4000 Hz, half way
    hop, frames = 64, 101
    f0 = torch.linspace(3000, 5000, frames)[None]
    dist = torch.tensor([0.5, 0.5]).expand(1, frames, 2).clone()
    audio, _ = harmonic_synth(f0, torch.ones(1, frames), dist, SR, hop, (frames - 1) * hop)
    only_h1, _ = harmonic_synth(f0, torch.ones(1, frames), dist[..., :1], SR, hop,
                                (frames - 1) * hop)
    half = (frames - 1) * hop // 2
    torch.testing.assert_close(audio[:, half + 1:], only_h1[:, half + 1:], rtol=0, atol=1e-6)
    assert (audio[:, :half] - only_h1[:, :half]).abs().max() > 0.1


def test_minute_long_phase_is_exact_and_chunking_is_seamless():
    weights = [0.5, 0.3, 0.2]
    f0, amp, dist, n = constant_controls(440.0, weights, 60.0)
    whole, final_whole = harmonic_synth(f0, amp, dist, SR, HOP, n)

    chunk = n // 10  # 96000 samples = 1500 hops; each chunk takes the frame on its far edge
    per = chunk // HOP
    phase, parts = None, []
    for c in range(10):
        sl = slice(c * per, c * per + per + 1)
        part, phase = harmonic_synth(f0[:, sl], amp[:, sl], dist[:, sl], SR, HOP, chunk, phase)
        parts.append(part)
    chunked = torch.cat(parts, dim=1)
    diff = (chunked - whole).abs().max().item()
    assert diff < 1e-4
    # float64 running sums of 96 000 vs 960 000 steps: rounding differs by ~1e-7 rad
    assert angle_error(phase, final_whole).max() < 1e-6

    t = np.arange(n - 1000, n, dtype=np.float64) / SR
    analytic = sum(w * np.sin(2 * np.pi * 440.0 * (k + 1) * t) for k, w in enumerate(weights))
    assert np.max(np.abs(whole[0, -1000:].double().numpy() - analytic)) < 1e-3
    # final phase = phase of sample n
    expected = torch.tensor(2 * np.pi * 440.0 * np.arange(1, 4) * n / SR)
    assert angle_error(final_whole[0], expected).max() < 1e-6


def test_chunking_is_seamless_with_vibrato():
    seconds, hop = 4.0, 128
    n = int(seconds * SR)
    frames = n // hop + 1
    t = torch.arange(frames) * hop / SR
    f0 = (440 + 20 * torch.sin(2 * math.pi * 5 * t))[None]
    amp = (0.5 + 0.4 * torch.sin(2 * math.pi * 1.3 * t))[None]
    dist = torch.rand(1, frames, 8)
    whole, _ = harmonic_synth(f0, amp, dist, SR, hop, n)
    per, phase, parts = (n // 4) // hop, None, []
    for c in range(4):
        sl = slice(c * per, c * per + per + 1)
        part, phase = harmonic_synth(f0[:, sl], amp[:, sl], dist[:, sl], SR, hop, n // 4, phase)
        parts.append(part)
    assert (torch.cat(parts, 1) - whole).abs().max().item() < 1e-4


def test_harmonic_synth_gradients_and_shape_errors():
    f0 = torch.full((2, 11), 220.0, requires_grad=True)
    logits = torch.zeros(2, 11, 4, requires_grad=True)
    amp = exp_sigmoid(torch.zeros(2, 11, 1, requires_grad=True))
    audio, final = harmonic_synth(f0, amp, exp_sigmoid(logits), SR, HOP, 10 * HOP)
    assert audio.shape == (2, 640) and final.shape == (2, 4) and final.dtype == torch.float64
    audio.pow(2).sum().backward()
    assert torch.isfinite(f0.grad).all() and f0.grad.abs().sum() > 0
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="must be \\(B, N\\)"):
        harmonic_synth(f0, amp, torch.ones(2, 10, 4), SR, HOP, 640)
    with pytest.raises(ValueError, match="initial_phase"):
        harmonic_synth(f0, amp, torch.ones(2, 11, 4), SR, HOP, 640, torch.zeros(4))


# --- filtered noise ----------------------------------------------------------------------------

@pytest.mark.parametrize("ir_size", [127, 128])
def test_noise_filter_ir_matches_a_smooth_response_and_is_linear_phase(ir_size):
    bands = 65
    ramp = torch.linspace(0.2, 1.0, bands, dtype=torch.float64)
    ir = noise_filter_ir(ramp.expand(1, 3, bands), ir_size)
    assert ir.shape == (1, 3, ir_size)
    taps = ir[0, 0]
    if ir_size % 2:
        torch.testing.assert_close(taps, taps.flip(0), rtol=0, atol=1e-12)
    else:
        assert taps[0] == 0
        torch.testing.assert_close(taps[1:], taps[1:].flip(0), rtol=0, atol=1e-12)
    # response at band centre m is bin 8 m of a 16 * (M - 1)-point FFT
    n_fft = 16 * (bands - 1)
    response = torch.fft.rfft(taps, n_fft)
    got = response.abs()[::8]
    interior = slice(3, bands - 3)  # the even extension of a ramp has kinks at 0 and Nyquist
    assert (got[interior] - ramp[interior]).abs().max() < 1e-3
    assert (got - ramp).abs().max() < 0.02  # the edges are smoothed a little
    # linear phase: H(w) = |H| exp(-i w c), c = ir_size // 2
    w = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft
    rotated = response * torch.exp(1j * w * (ir_size // 2))
    assert rotated.imag.abs().max() < 1e-10 and rotated.real.min() > 0


def test_noise_filter_ir_rejects_bad_sizes():
    with pytest.raises(ValueError, match="ir_size"):
        noise_filter_ir(torch.ones(1, 1, 65), 129)
    with pytest.raises(ValueError, match="bands"):
        noise_filter_ir(torch.ones(1, 1, 1), 1)


def test_filtered_noise_low_pass_keeps_energy_below_cutoff():
    n, bands = 3 * SR, 65
    frames = 1 + n // HOP
    freqs = torch.linspace(0, SR / 2, bands)
    mags = (freqs <= 2000).float().expand(1, frames, bands)
    gen = torch.Generator().manual_seed(1)
    out = filtered_noise(mags, HOP, n, generator=gen)
    assert out.shape == (1, n)
    power = np.abs(np.fft.rfft(out[0].double().numpy())) ** 2
    f = np.fft.rfftfreq(n, 1 / SR)
    share = power[f < 2500].sum() / power.sum()
    assert share > 0.95
    # and the pass band is really passed: output power ~ input power * 2 kHz / 8 kHz
    assert 0.5 * (1 / 3) * 0.25 < out.pow(2).mean().item() < 2 * (1 / 3) * 0.25


def test_filtered_noise_silence_length_and_reproducibility():
    silent = filtered_noise(torch.zeros(2, 11, 33), 100, 1050)
    assert silent.shape == (2, 1050) and torch.count_nonzero(silent) == 0
    mags = torch.rand(2, 11, 33)
    a = filtered_noise(mags, 100, 1000, generator=torch.Generator().manual_seed(3))
    b = filtered_noise(mags, 100, 1000, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 1000)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same seed, the same noise
    c = filtered_noise(mags, 100, 1000, generator=torch.Generator().manual_seed(4))
    assert (a - c).abs().max() > 0


def test_filtered_noise_gain_follows_frames():
    # loud first half, silent second half: the silent part is silent once the filter has rung out
    n, hop, bands = 8000, 100, 33
    frames = 1 + n // hop
    mags = torch.ones(1, frames, bands)
    mags[:, frames // 2 + 1:] = 0
    out = filtered_noise(mags, hop, n, ir_size=32, generator=torch.Generator().manual_seed(0))
    assert out[0, : n // 2 - hop].abs().max() > 0.1
    assert out[0, n // 2 + hop + 32:].abs().max() == 0


# --- reverb --------------------------------------------------------------------------------

def test_reverb_with_zero_tail_is_identity_and_keeps_length():
    reverb = Reverb(ir_samples=4000, sample_rate=SR)
    with torch.no_grad():
        reverb.tail.zero_()
    x = torch.randn(2, 3000)
    torch.testing.assert_close(reverb(x), x, rtol=0, atol=0)


def test_reverb_applies_its_impulse_response():
    reverb = Reverb(ir_samples=50, sample_rate=SR)
    x = torch.zeros(1, 200)
    x[0, 10] = 1.0
    y = reverb(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[0, 10:60], reverb.ir.detach(), rtol=0, atol=1e-6)
    assert reverb.ir[0] == 1 and reverb.tail.abs().max() < 0.1  # quiet start
    y.sum().backward()
    assert reverb.tail.grad is not None and torch.isfinite(reverb.tail.grad).all()
