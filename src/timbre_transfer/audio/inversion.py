"""From magnitudes back to audio: mel -> linear magnitude, then phase reconstruction.

All inverters are batched torch code on any device; only PGHI's heap integration runs on the CPU
(numba), because it is inherently sequential.

Conventions: complex spectrograms are ``(B, n_freq, n_frames)`` with ``n_freq = n_fft // 2 + 1``
and frames centred on multiples of ``hop_length`` (``torch.stft(center=True)``), zero padded.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

PHASE_METHODS = ("pghi", "griffinlim", "pghi+gla")

# Time-frequency ratio of a Hann window of length L is 0.25645 * L**2 (Prusa et al. 2017, sec. V).
HANN_GAMMA = 0.25645


def make_window(name: str, win_length: int, hop_length: int) -> torch.Tensor:
    """Analysis/synthesis window. ``"hann"`` (periodic) or ``"gauss"``, a truncated Gaussian whose
    time-frequency ratio matches the lattice (gamma = hop * win_length, so that time and frequency
    resolution are balanced for PGHI)."""
    if name == "hann":
        return torch.hann_window(win_length, periodic=True, dtype=torch.float64).float()
    if name == "gauss":
        gamma = window_gamma(name, win_length, hop_length)
        m = torch.arange(win_length, dtype=torch.float64) - win_length / 2
        return torch.exp(-math.pi * m**2 / gamma).float()
    raise ValueError(f"unknown window {name!r}; choose 'hann' or 'gauss'")


def window_gamma(name: str, win_length: int, hop_length: int) -> float:
    """Time-frequency ratio gamma (in samples^2) of the window: g(t) ~ exp(-pi t^2 / gamma)."""
    if name == "hann":
        return HANN_GAMMA * win_length**2
    if name == "gauss":
        return float(hop_length * win_length)
    raise ValueError(f"unknown window {name!r}; choose 'hann' or 'gauss'")


def stft(wav: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` -> complex ``(B, n_fft // 2 + 1, 1 + T // hop_length)``."""
    return torch.stft(
        wav,
        n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window.to(wav.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


def istft(
    spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, length: int | None
) -> torch.Tensor:
    """Least-squares inverse of :func:`stft`: complex ``(B, F, N)`` -> ``(B, T)``."""
    if length is None:
        length = (spec.shape[-1] - 1) * hop_length
    return torch.istft(
        spec,
        n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window.to(spec.device),
        center=True,
        length=length,
    )


# --------------------------------------------------------------------------------------------
# mel -> linear magnitude


def mel_to_linear(
    mel: torch.Tensor, mel_basis: torch.Tensor, n_iter: int = 100, tol: float = 1e-6
) -> torch.Tensor:
    """Non-negative least squares ``min_S ||mel_basis @ S - mel||^2, S >= 0``, batched.

    Accelerated projected gradient (FISTA) started from the back-projection
    ``mel_basis.T @ mel`` rescaled per band, so that energy is spread over each band's bins rather
    than dumped in the few bins a pseudo-inverse favours. Works in whatever domain ``mel`` was
    computed in (magnitude or power).

    Args:
        mel: ``(B, n_mels, N)`` non-negative.
        mel_basis: ``(n_mels, n_freq)`` filterbank.
        n_iter: maximum number of iterations.
        tol: stop when the relative change of ``S`` falls below this.

    Returns:
        ``(B, n_freq, N)`` non-negative linear spectrogram.
    """
    basis = mel_basis.to(mel)
    # Lipschitz constant of the gradient: the largest squared singular value of the basis.
    lipschitz = torch.linalg.matrix_norm(basis.double(), ord=2).item() ** 2
    # Back-projection normalised so that a flat spectrum maps back to itself.
    band_area = basis.sum(1).clamp_min(1e-12)  # (n_mels,)
    bin_cover = basis.sum(0)  # (F,); zero for bins no band covers
    s = (basis.T @ (mel / band_area[:, None])) / bin_cover.clamp_min(1e-12)[:, None]
    y, t = s, 1.0
    for i in range(n_iter):
        # basis.T @ (basis @ y - mel): two thin products, half the work of a dense F x F Gram.
        s_next = (y - (basis.T @ (basis @ y - mel)) / lipschitz).clamp_min(0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = s_next + ((t - 1) / t_next) * (s_next - s)
        # Test convergence only every 10 iterations: each test is a host sync on GPU.
        converged = i % 10 == 9 and (s_next - s).norm() <= tol * s_next.norm()
        s, t = s_next, t_next
        if converged:
            break
    return s


# --------------------------------------------------------------------------------------------
# Griffin-Lim


def project_to_mel(
    magnitude: torch.Tensor, mel: torch.Tensor, mel_basis: torch.Tensor, power: float = 1.0
) -> torch.Tensor:
    """Rescale a magnitude ``(B, F, N)`` so that its mel matches ``mel`` ``(B, n_mels, N)``.

    Multiplicative (Richardson-Lucy-like) step: each bin is scaled by the filter-weighted mean of
    ``mel / (mel_basis @ magnitude**power)`` over the bands that cover it. It keeps the fine
    structure inside each band (which the consistent STFT supplies) instead of the flat spread a
    least-squares solution gives; ``power`` is the domain the mel was computed in.
    """
    basis = mel_basis.to(magnitude)
    energy = magnitude if power == 1.0 else magnitude.pow(power)
    ratio = mel / (basis @ energy).clamp_min(1e-10)
    gain = (basis.T @ ratio) / basis.sum(0).clamp_min(1e-10)[:, None]
    energy = energy * gain
    return energy if power == 1.0 else energy.pow(1.0 / power)


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    n_iter: int = 32,
    momentum: float = 0.99,
    init_phase: torch.Tensor | None = None,
    length: int | None = None,
    generator: torch.Generator | None = None,
    mel_constraint: tuple[torch.Tensor, torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): ``(B, F, N)`` magnitude -> ``(B, T)`` audio.

    Args:
        init_phase: radians, same shape; replaces the random start (PGHI is a good one).
        mel_constraint: ``(mel, mel_basis, power)``. When the magnitude itself is an estimate
            from a mel, each iteration re-imposes the mel on the rebuilt magnitude
            (:func:`project_to_mel`) instead of forcing the fixed estimate back; measured here as
            1.3-1.8 dB better spectral convergence on real clips.
    """
    if init_phase is None:
        init_phase = 2 * math.pi * torch.rand(
            magnitude.shape, generator=generator, device="cpu", dtype=magnitude.dtype
        ).to(magnitude.device)
    coeffs = torch.polar(magnitude, init_phase)
    previous = coeffs
    # Iterate at a length whose STFT has the same frame count; ``length`` only shapes the output.
    n_frames = magnitude.shape[-1]
    inner_length = length if length is not None and 1 + length // hop_length == n_frames else None
    for _ in range(n_iter):
        wav = istft(coeffs, n_fft, hop_length, window, inner_length)
        rebuilt = stft(wav, n_fft, hop_length, window)
        accelerated = rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        if mel_constraint is not None:
            magnitude = project_to_mel(rebuilt.abs(), *mel_constraint)
        coeffs = torch.polar(magnitude, torch.angle(accelerated))
    return istft(coeffs, n_fft, hop_length, window, length)


# --------------------------------------------------------------------------------------------
# PGHI


def pghi_phase(
    magnitude: torch.Tensor,
    hop_length: int,
    n_fft: int,
    gamma: float,
    tol: float = 1e-4,
    generator: np.random.Generator | None = None,
) -> torch.Tensor:
    """Phase from magnitude by phase-gradient heap integration (Prusa et al. 2017).

    The phase gradients follow in closed form from the log-magnitude for a Gaussian(-like) window
    with time-frequency ratio ``gamma`` (samples^2):

    * along time, per hop:  ``(a M / gamma) d/dk log|X| + 2 pi a k / M``
    * along frequency, per bin: ``-(gamma / (a M)) d/dn log|X|``

    with centred differences, ``a = hop_length`` and ``M = n_fft``. They are integrated from the
    largest coefficient outwards (max-heap); coefficients below ``tol * max`` keep random
    phase (1e-4 measured no worse than 1e-5 on real clips, with a fifth fewer coefficients).
    Returns phase in torch.stft's convention (window starting at the frame start), which differs
    from the centred-window convention of the formulas by ``pi * k``.

    Args:
        magnitude: ``(B, F, N)`` non-negative, any device.

    Returns:
        ``(B, F, N)`` phase in radians, on ``magnitude``'s device.
    """
    if magnitude.dim() != 3:
        raise ValueError(f"expected magnitude of shape (B, F, N), got {tuple(magnitude.shape)}")
    a, m = float(hop_length), float(n_fft)
    mag = magnitude.double()
    n_freq = mag.shape[1]
    peak = mag.amax(dim=(1, 2), keepdim=True)
    # Floor well under the tolerance so that log is finite and gradients near silence are tame.
    logmag = torch.log(torch.maximum(mag, peak * tol * 1e-3).clamp_min(1e-30))
    d_freq = _centred_diff(logmag, dim=1)
    d_time = _centred_diff(logmag, dim=2)
    k = torch.arange(n_freq, dtype=torch.float64, device=mag.device)[None, :, None]
    time_step = (a * m / gamma) * d_freq + 2 * math.pi * a * k / m
    freq_step = -(gamma / (a * m)) * d_time

    rng = generator if generator is not None else np.random.default_rng()
    phase = rng.uniform(0, 2 * np.pi, size=tuple(mag.shape))
    threshold = torch.log(peak * tol).flatten()
    # Steps in float32 halve the memory traffic of the integration (rounding 6e-5 rad per step at
    # most); the phase accumulates in float64.
    _integrate_batch(
        logmag.float().cpu().numpy(),
        time_step.float().cpu().numpy(),
        freq_step.float().cpu().numpy(),
        threshold.float().cpu().numpy(),
        phase,
    )
    phase = torch.from_numpy(phase).to(magnitude.device) + math.pi * k
    return torch.remainder(phase, 2 * math.pi).to(magnitude.dtype)


def _centred_diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Centred first difference along ``dim``, one-sided at the ends; zero for length 1."""
    n = x.shape[dim]
    if n < 2:
        return torch.zeros_like(x)
    d = torch.empty_like(x)
    d.narrow(dim, 1, n - 2).copy_((x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2)
    d.narrow(dim, 0, 1).copy_(x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1))
    d.narrow(dim, n - 1, 1).copy_(x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1))
    return d


@numba.njit(cache=True, parallel=True)
def _integrate_batch(logmag, time_step, freq_step, threshold, phase):  # pragma: no cover - numba
    for b in numba.prange(logmag.shape[0]):
        _integrate(logmag[b], time_step[b], freq_step[b], threshold[b], phase[b])


@numba.njit(cache=True)
def _integrate(logmag, time_step, freq_step, threshold, phase):  # pragma: no cover - numba
    n_freq, n_frames = logmag.shape
    flat = logmag.ravel()
    out = phase.ravel()
    # Coefficients under the threshold keep their random phase and are never visited.
    done = flat < threshold
    order = _descending_order(flat, done)
    heap_val = np.empty(order.size, dtype=np.float32)
    heap_idx = np.empty(order.size, dtype=np.int64)
    for start in order:
        if done[start]:
            continue
        # A new island: its largest coefficient gets phase 0 and the heap spreads from there.
        out[start] = 0.0
        done[start] = True
        size = _heap_push(heap_val, heap_idx, 0, flat[start], start)
        while size > 0:
            idx, size = _heap_pop(heap_val, heap_idx, size)
            k = idx // n_frames
            n = idx - k * n_frames
            p = out[idx]
            if n + 1 < n_frames and not done[idx + 1]:
                out[idx + 1] = p + 0.5 * (time_step[k, n] + time_step[k, n + 1])
                done[idx + 1] = True
                size = _heap_push(heap_val, heap_idx, size, flat[idx + 1], idx + 1)
            if n >= 1 and not done[idx - 1]:
                out[idx - 1] = p - 0.5 * (time_step[k, n] + time_step[k, n - 1])
                done[idx - 1] = True
                size = _heap_push(heap_val, heap_idx, size, flat[idx - 1], idx - 1)
            if k + 1 < n_freq and not done[idx + n_frames]:
                out[idx + n_frames] = p + 0.5 * (freq_step[k, n] + freq_step[k + 1, n])
                done[idx + n_frames] = True
                size = _heap_push(heap_val, heap_idx, size, flat[idx + n_frames], idx + n_frames)
            if k >= 1 and not done[idx - n_frames]:
                out[idx - n_frames] = p - 0.5 * (freq_step[k, n] + freq_step[k - 1, n])
                done[idx - n_frames] = True
                size = _heap_push(heap_val, heap_idx, size, flat[idx - n_frames], idx - n_frames)


@numba.njit(cache=True)
def _descending_order(values, skip, levels=4096):  # pragma: no cover - numba
    """Indices of the non-skipped ``values``, largest first, by counting sort on ``levels``
    quantisation levels: O(n) instead of argsort's O(n log n) (a third of PGHI's time), and
    only island starts use this order, where ties within 1/4096 of the range do not matter."""
    n = values.size
    low, high = np.inf, -np.inf
    count = 0
    for i in range(n):
        if not skip[i]:
            count += 1
            low = min(low, values[i])
            high = max(high, values[i])
    order = np.empty(count, dtype=np.int64)
    if count == 0:
        return order
    scale = (levels - 1) / max(high - low, 1e-12)
    starts = np.zeros(levels + 1, dtype=np.int64)
    for i in range(n):
        if not skip[i]:
            starts[levels - 1 - int((values[i] - low) * scale) + 1] += 1
    for b in range(levels):
        starts[b + 1] += starts[b]
    for i in range(n):
        if not skip[i]:
            b = levels - 1 - int((values[i] - low) * scale)
            order[starts[b]] = i
            starts[b] += 1
    return order


# A binary max-heap in two flat arrays. Sifting moves a hole instead of swapping pairs, which
# halves the writes.


@numba.njit(cache=True, inline="always")
def _heap_push(vals, idxs, size, value, index):  # pragma: no cover - numba
    j = size
    while j > 0:
        parent = (j - 1) >> 1
        if vals[parent] >= value:
            break
        vals[j] = vals[parent]
        idxs[j] = idxs[parent]
        j = parent
    vals[j] = value
    idxs[j] = index
    return size + 1


@numba.njit(cache=True, inline="always")
def _heap_pop(vals, idxs, size):  # pragma: no cover - numba
    top = idxs[0]
    size -= 1
    value = vals[size]
    index = idxs[size]
    j = 0
    while True:
        child = 2 * j + 1
        if child >= size:
            break
        if child + 1 < size and vals[child + 1] > vals[child]:
            child += 1
        if value >= vals[child]:
            break
        vals[j] = vals[child]
        idxs[j] = idxs[child]
        j = child
    vals[j] = value
    idxs[j] = index
    return top, size


# --------------------------------------------------------------------------------------------
# One entry point


def reconstruct_phase(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    gamma: float,
    method: str = "pghi+gla",
    n_iter: int | None = None,
    length: int | None = None,
    seed: int | None = 0,
    mel_constraint: tuple[torch.Tensor, torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """Linear magnitude ``(B, F, N)`` -> audio ``(B, T)`` with the chosen phase method.

    ``n_iter`` defaults to 32 for ``"griffinlim"`` and 16 for ``"pghi+gla"``; PGHI takes none.
    ``seed`` fixes the random phases (None: fresh randomness). ``mel_constraint`` is passed to
    :func:`griffin_lim`.
    """
    if method not in PHASE_METHODS:
        raise ValueError(f"unknown inversion method {method!r}; choose one of {PHASE_METHODS}")
    if method == "griffinlim":
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return griffin_lim(
            magnitude, n_fft, hop_length, window, n_iter=32 if n_iter is None else n_iter,
            length=length, generator=generator, mel_constraint=mel_constraint,
        )
    phase = pghi_phase(magnitude, hop_length, n_fft, gamma, generator=np.random.default_rng(seed))
    if method == "pghi":
        return istft(torch.polar(magnitude, phase), n_fft, hop_length, window, length)
    # Started near a solution, Griffin-Lim needs less extrapolation: momentum 0.95 beat 0.99 by
    # 0.5 dB at hop 256 and 0.6 dB at hop 128 on 18 held-out real clips (mel path: -0.06 dB).
    return griffin_lim(
        magnitude, n_fft, hop_length, window, n_iter=16 if n_iter is None else n_iter,
        momentum=0.95, init_phase=phase, length=length, mel_constraint=mel_constraint,
    )


def spectral_convergence_db(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """``20 log10(|| |R| - |E| ||_F / || |R| ||_F)`` per batch item, for ``(B, F, N)`` magnitudes
    (lower is better). Silence against silence is 0/0 and reported as -inf only if both are zero."""
    num = (reference - estimate).flatten(1).norm(dim=1)
    den = reference.flatten(1).norm(dim=1)
    return 20 * torch.log10(num.clamp_min(1e-20) / den.clamp_min(1e-20))
