"""From magnitudes back to audio: mel -> linear magnitude, then phase reconstruction.

All inverters are batched torch code on any device. On the CPU the hot loops run as numba kernels
instead (float32 Griffin-Lim, NNLS): they do per frame, in cache, what the torch code does in
many passes over the whole spectrogram, and they match the torch code to float rounding (tested).
PGHI's heap integration always runs on the CPU (numba), because it is inherently sequential.

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
    mel: torch.Tensor,
    mel_basis: torch.Tensor,
    n_iter: int = 100,
    tol: float = 1e-4,
    backend: str = "auto",
) -> torch.Tensor:
    """Non-negative least squares ``min_S ||mel_basis @ S - mel||^2, S >= 0``, frame by frame.

    Accelerated projected gradient (FISTA) with a per-bin step ``1 / (|M|^T |M| 1)`` (a diagonal
    majoriser of ``M^T M``, so no spectral norm is needed, and high bins, whose wide bands have
    small weights, take steps as large as low ones) and adaptive restart (the momentum restarts
    when it points uphill, O'Donoghue & Candes 2015). Started from the back-projection
    ``mel_basis.T @ mel`` rescaled per band, so that energy is spread over each band's bins rather
    than dumped in the few bins a pseudo-inverse favours. Works in whatever domain ``mel`` was
    computed in (magnitude or power).

    Each frame stops on its own when its relative change ``||S_k+1 - S_k|| <= tol ||S_k+1||``:
    silent and simple frames stop after a few iterations, so a real clip averages about 15
    (measured on 30 s of violin and speech at tol 1e-4, at the end-to-end quality of 100 plain
    FISTA iterations). A frame's result does not depend on the other frames.

    Args:
        mel: ``(B, n_mels, N)`` non-negative.
        mel_basis: ``(n_mels, n_freq)`` filterbank.
        n_iter: maximum number of iterations per frame.
        tol: per-frame relative-change tolerance; 0 runs all ``n_iter`` iterations.
        backend: ``"auto"`` (numba for float CPU tensors, else torch), ``"torch"`` or ``"numba"``.

    Returns:
        ``(B, n_freq, N)`` non-negative linear spectrogram.
    """
    basis = mel_basis.to(mel)
    # Back-projection normalised so that a flat spectrum maps back to itself.
    band_area = basis.sum(1).clamp_min(1e-12)  # (n_mels,)
    bin_cover = basis.sum(0)  # (F,); zero for bins no band covers
    init = (basis.T @ (mel / band_area[:, None])) / bin_cover.clamp_min(1e-12)[:, None]
    # diag(|M|^T |M| 1) >= M^T M in the PSD order (Gershgorin), so 1/d is a safe step per bin.
    d = basis.abs().T @ (basis.abs() @ torch.ones_like(bin_cover))
    step = torch.where(d > 0, 1 / d.clamp_min(1e-30), torch.zeros_like(d))
    if _use_numba(backend, mel, (torch.float32, torch.float64)):
        lo, ptr, data = _band_rows(basis)
        mel_np = mel.detach().contiguous().numpy()
        out = np.empty((mel.shape[0], basis.shape[1], mel.shape[2]), dtype=mel_np.dtype)
        _nnls_tiles(mel_np, lo, ptr, data, step.numpy(), init.contiguous().numpy(), int(n_iter),
                    mel_np.dtype.type(tol), NNLS_TILE, out)
        return torch.from_numpy(out)
    return _nnls_torch(mel, basis, init, step[:, None], n_iter, tol)


# Frames per tile of the CPU NNLS kernel: its inner loops run across the frames of a tile, and
# LLVM vectorises them 8 floats x 4 unrolled; 16 measured 3x slower than 32, 64 no faster.
NNLS_TILE = 32


def _nnls_torch(mel, basis, init, step, n_iter: int, tol: float) -> torch.Tensor:
    """Batched torch version of :func:`_nnls_tiles` (any device): every frame iterates until it
    converges, then stays frozen, so the result matches the CPU kernel frame by frame."""
    s = y = init
    t = torch.ones_like(mel[:, :1])  # (B, 1, N) momentum parameter per frame
    active = torch.ones_like(t, dtype=torch.bool)
    for i in range(n_iter):
        s_next = (y - step * (basis.T @ (basis @ y - mel))).clamp_min(0)
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        delta = s_next - s
        restart = ((y - s_next) * delta).sum(1, keepdim=True) > 0
        y_next = torch.where(restart, s_next, s_next + ((t - 1) / t_next) * delta)
        t_next = torch.where(restart, torch.ones_like(t), t_next)
        converged = delta.square().sum(1, keepdim=True) <= tol * tol * s_next.square().sum(
            1, keepdim=True)
        s = torch.where(active, s_next, s)
        y = torch.where(active, y_next, y)
        t = torch.where(active, t_next, t)
        active = active & ~converged
        # Test for the end only every 10 iterations: each test is a host sync on GPU.
        if i % 10 == 9 and not active.any():
            break
    return s


BACKENDS = ("auto", "torch", "numba")


def _use_numba(backend: str, x: torch.Tensor, dtypes) -> bool:
    """Resolve ``backend``: ``"auto"`` takes the numba kernels where they apply (``x`` on the CPU,
    of one of ``dtypes``, no grad); ``"numba"`` where they do not is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    ok = x.device.type == "cpu" and x.dtype in dtypes and not x.requires_grad
    if backend == "numba" and not ok:
        raise ValueError(
            f"backend 'numba' needs a CPU tensor of dtype {' or '.join(map(str, dtypes))} without "
            f"grad; got {x.dtype} on {x.device}"
        )
    return ok and backend != "torch"


def _band_rows(basis: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of ``basis`` as one contiguous run, from its first to its last nonzero (a mel
    filter's support), so that kernels loop over contiguous bins: ``row j = data[ptr[j]:ptr[j+1]]``
    at bins ``lo[j]...``. Exact for any matrix (zeros inside a run are kept)."""
    b = basis.detach().cpu().numpy()
    n_rows = b.shape[0]
    lo = np.zeros(n_rows, dtype=np.int64)
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    runs = []
    for j in range(n_rows):
        nz = np.flatnonzero(b[j])
        run = b[j, nz[0]:nz[-1] + 1] if nz.size else b[j, :0]
        lo[j] = nz[0] if nz.size else 0
        ptr[j + 1] = ptr[j] + run.size
        runs.append(run)
    return lo, ptr, np.ascontiguousarray(np.concatenate(runs))


@numba.njit(cache=True, parallel=True, fastmath=True)
def _nnls_tiles(mel, lo, ptr, data, step, init, n_iter, tol, tile, out):  # pragma: no cover
    """:func:`_nnls_torch` on ``(B, n_mels, N)`` / ``(B, F, N)`` arrays, one tile of frames at a
    time (in cache), the tiles in parallel."""
    n_batch, n_mels, n_frames = mel.shape
    n_freq = out.shape[1]
    n_tiles = (n_frames + tile - 1) // tile
    for job in numba.prange(n_batch * n_tiles):
        b = job // n_tiles
        c0 = (job - b * n_tiles) * tile
        w = min(tile, n_frames - c0)
        s = np.empty((n_freq, w), out.dtype)
        y = np.empty((n_freq, w), out.dtype)
        g = np.empty((n_freq, w), out.dtype)
        r = np.empty(w, out.dtype)
        coef = np.empty(w, out.dtype)
        dot = np.empty(w, out.dtype)
        change = np.empty(w, out.dtype)
        norm = np.empty(w, out.dtype)
        t = np.ones(w)
        active = np.ones(w, np.bool_)
        restart = np.zeros(w, np.bool_)
        for k in range(n_freq):
            for c in range(w):
                s[k, c] = init[b, k, c0 + c]
                y[k, c] = s[k, c]
        n_active = w
        it = 0
        while it < n_iter and n_active > 0:
            it += 1
            # g = M^T (M y - mel), band by band over contiguous bins, vectorised across frames.
            g[:] = 0
            for j in range(n_mels):
                base = lo[j] - ptr[j]
                for c in range(w):
                    r[c] = -mel[b, j, c0 + c]
                for q in range(ptr[j], ptr[j + 1]):
                    for c in range(w):
                        r[c] += data[q] * y[base + q, c]
                for q in range(ptr[j], ptr[j + 1]):
                    for c in range(w):
                        g[base + q, c] += data[q] * r[c]
            for c in range(w):
                t_next = (1 + np.sqrt(1 + 4 * t[c] * t[c])) / 2
                coef[c] = (t[c] - 1) / t_next
                t[c] = t_next
                dot[c] = 0
                change[c] = 0
                norm[c] = 0
            for k in range(n_freq):
                for c in range(w):
                    yk = y[k, c]
                    s_next = max(yk - g[k, c] * step[k], 0)
                    delta = s_next - s[k, c]
                    dot[c] += (yk - s_next) * delta
                    change[c] += delta * delta
                    norm[c] += s_next * s_next
                    if active[c]:
                        s[k, c] = s_next
                        y[k, c] = s_next + coef[c] * delta
            any_restart = False
            for c in range(w):
                restart[c] = active[c] and dot[c] > 0
                if restart[c]:
                    t[c] = 1.0
                    any_restart = True
            if any_restart:
                for k in range(n_freq):
                    for c in range(w):
                        if restart[c]:
                            y[k, c] = s[k, c]
            for c in range(w):
                if active[c] and change[c] <= tol * tol * norm[c]:
                    active[c] = False
                    n_active -= 1
        for k in range(n_freq):
            for c in range(w):
                out[b, k, c0 + c] = s[k, c]


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
    backend: str = "auto",
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): ``(B, F, N)`` magnitude -> ``(B, T)`` audio.

    With ``backend="auto"``, float32 input on the CPU runs the numba version
    (:func:`_griffin_lim_numba`: the same iterates to float rounding, about 2.5x less CPU time);
    anything else runs the torch loop (``backend="torch"`` forces it).

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
    if _use_numba(backend, magnitude, (torch.float32,)):
        if window.shape[-1] > n_fft:
            raise ValueError(f"window of {window.shape[-1]} samples is longer than n_fft={n_fft}")
        return _griffin_lim_numba(magnitude, n_fft, hop_length, window, n_iter, momentum,
                                  init_phase, length, mel_constraint)
    return _griffin_lim_torch(magnitude, n_fft, hop_length, window, n_iter, momentum, init_phase,
                              length, mel_constraint)


def _griffin_lim_torch(magnitude, n_fft, hop_length, window, n_iter, momentum, init_phase, length,
                       mel_constraint):
    """:func:`griffin_lim` as batched torch code, on any device."""
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


def _griffin_lim_numba(magnitude, n_fft, hop_length, window, n_iter, momentum, init_phase, length,
                       mel_constraint):
    """:func:`_griffin_lim_torch` for float32 CPU tensors, frames in rows ``(B, N, F)``.

    Per iteration: torch's irfft, :func:`_overlap_add` (window, envelope computed once, zero
    outside the signal), :func:`_frame`, torch's rfft, and :func:`_gla_update`, which does the
    mel projection, the momentum step and the phase update in one pass per frame, where the torch
    loop makes about fifteen passes over the spectrogram (abs, two dense mel products, angle,
    polar, ...).
    """
    n_batch, n_freq, n_frames = magnitude.shape
    hop = hop_length
    win = torch.zeros(n_fft, dtype=torch.float32)
    left = (n_fft - window.shape[-1]) // 2  # torch.stft centres a shorter window in the frame
    win[left:left + window.shape[-1]] = window.detach().cpu().float()
    win = win.numpy()
    pad = n_fft // 2
    inner = length if length is not None and 1 + length // hop == n_frames else (n_frames - 1) * hop
    out_length = (n_frames - 1) * hop if length is None else length
    n_samples = -(-((n_frames - 1) * hop + n_fft) // hop) * hop  # padded signal, whole hops
    inv_env = _inverse_envelope(win, hop, n_frames, n_samples)

    coeffs = torch.polar(magnitude.detach(), init_phase.detach().to(magnitude)).transpose(1, 2)
    coeffs = coeffs.contiguous()
    previous = coeffs.numpy()
    if mel_constraint is None:
        use_mel = False
        target = magnitude.detach().transpose(1, 2).contiguous().numpy()
        mel_rows = np.zeros((n_batch, n_frames, 0), np.float32)
        lo, ptr, data = np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.float32)
        inv_cover = np.zeros(n_freq, np.float32)
        power = 1.0
    else:
        use_mel = True
        mel, basis, power = mel_constraint
        basis = basis.detach().cpu().float()
        target = np.zeros((n_batch, 0, 0), np.float32)
        mel_rows = mel.detach().cpu().float().transpose(1, 2).contiguous().numpy()
        lo, ptr, data = _band_rows(basis)
        inv_cover = (1 / basis.sum(0).clamp_min(1e-10)).numpy()
    wav = np.empty((n_batch, n_samples), np.float32)
    frames = np.empty((n_batch, n_frames, n_fft), np.float32)
    update = np.empty((n_batch, n_frames, n_freq), np.complex64)
    for _ in range(n_iter):
        _overlap_add(torch.fft.irfft(coeffs, n=n_fft).numpy(), win, inv_env, hop, pad, pad + inner,
                     wav)
        _frame(wav, win, hop, frames)
        rebuilt = torch.fft.rfft(torch.from_numpy(frames)).numpy()
        _gla_update(rebuilt, previous, target, mel_rows, lo, ptr, data, inv_cover,
                    np.float32(momentum), float(power), use_mel, update)
        previous = rebuilt  # rfft allocates a new array each time: no copy needed
        coeffs = torch.from_numpy(update)
    stop = pad + min(out_length, n_samples - pad)
    _overlap_add(torch.fft.irfft(coeffs, n=n_fft).numpy(), win, inv_env, hop, pad, stop, wav)
    out = torch.zeros(n_batch, out_length, dtype=torch.float32)
    out[:, :stop - pad] = torch.from_numpy(wav[:, pad:stop])
    return out.to(magnitude.device)


def _inverse_envelope(window: np.ndarray, hop: int, n_frames: int, n_samples: int) -> np.ndarray:
    """``1 / sum_n window(t - n hop)^2`` over the padded signal (0 where the sum vanishes)."""
    env = np.zeros(n_samples + window.size, np.float64)
    sq = window.astype(np.float64) ** 2
    # add the window in hop-sized pieces, all frames at once
    for start in range(0, window.size, hop):
        piece = sq[start:start + hop]
        view = env[start:start + n_frames * hop].reshape(n_frames, hop)
        view[:, :piece.size] += piece
    env = env[:n_samples]
    return np.where(env > 1e-11, 1 / np.maximum(env, 1e-30), 0).astype(np.float32)


@numba.njit(cache=True, parallel=True, fastmath=True)
def _overlap_add(frames, window, inv_env, hop, start, stop, wav):  # pragma: no cover - numba
    """``wav[b, t] = inv_env[t] sum_n window[t - n hop] frames[b, n, t - n hop]`` for
    ``start <= t < stop`` and 0 elsewhere: torch.istft on the padded signal, one hop-long block
    per task."""
    n_batch, n_frames, n_fft = frames.shape
    n_blocks = wav.shape[1] // hop
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        t0 = (job - b * n_blocks) * hop
        block = wav[b, t0:t0 + hop]
        block[:] = 0
        for n in range(max(0, (t0 - n_fft) // hop + 1), min(t0 // hop, n_frames - 1) + 1):
            off = t0 - n * hop
            frame = frames[b, n, off:off + hop]
            win = window[off:off + hop]
            for i in range(min(hop, n_fft - off)):
                block[i] += frame[i] * win[i]
        # Straight loops over the three ranges (a test per sample measured 4x slower).
        first = min(max(start - t0, 0), hop)
        last = min(max(stop - t0, 0), hop)
        for i in range(first):
            block[i] = 0
        for i in range(first, last):
            block[i] *= inv_env[t0 + i]
        for i in range(last, hop):
            block[i] = 0


@numba.njit(cache=True, parallel=True, fastmath=True)
def _frame(wav, window, hop, frames):  # pragma: no cover - numba
    """Windowed frames ``frames[b, n, i] = wav[b, n hop + i] window[i]`` (torch.stft's framing of
    the zero-padded signal)."""
    n_batch, n_frames, n_fft = frames.shape
    for job in numba.prange(n_batch * n_frames):
        b = job // n_frames
        n = job - b * n_frames
        for i in range(n_fft):
            frames[b, n, i] = wav[b, n * hop + i] * window[i]


@numba.njit(cache=True, parallel=True, fastmath=True)
def _gla_update(rebuilt, previous, target, mel_rows, lo, ptr, data, inv_cover, momentum, power,
                use_mel, out):  # pragma: no cover - numba
    """One Griffin-Lim update per frame, ``(B, N, F)`` complex: the magnitude (``target``, or the
    rebuilt one rescaled to the mel as :func:`project_to_mel` does) with the phase of
    ``rebuilt + momentum (rebuilt - previous)``. Memory-bound (about 45 MB per 30 s of audio),
    so it reads each input once and writes only ``out``."""
    n_batch, n_frames, n_freq = rebuilt.shape
    n_mels = mel_rows.shape[2]
    for job in numba.prange(n_batch * n_frames):
        b = job // n_frames
        n = job - b * n_frames
        mag = np.empty(n_freq, np.float32)
        if use_mel:
            gain = np.zeros(n_freq, np.float32)
            for k in range(n_freq):
                r = rebuilt[b, n, k]
                e = r.real * r.real + r.imag * r.imag
                mag[k] = np.sqrt(e) if power == 1.0 else e
            for j in range(n_mels):
                base = lo[j] - ptr[j]
                e = np.float32(0.0)
                for q in range(ptr[j], ptr[j + 1]):
                    e += data[q] * mag[base + q]
                ratio = mel_rows[b, n, j] / max(e, np.float32(1e-10))
                for q in range(ptr[j], ptr[j + 1]):
                    gain[base + q] += data[q] * ratio
            for k in range(n_freq):
                mag[k] *= gain[k] * inv_cover[k]
                if power != 1.0:
                    mag[k] = np.sqrt(mag[k])
        else:
            for k in range(n_freq):
                mag[k] = target[b, n, k]
        for k in range(n_freq):
            r = rebuilt[b, n, k]
            p = previous[b, n, k]
            re = (1 + momentum) * r.real - momentum * p.real
            im = (1 + momentum) * r.imag - momentum * p.imag
            norm = np.sqrt(re * re + im * im)
            if norm > 0:
                scale = mag[k] / norm
                out[b, n, k] = complex(scale * re, scale * im)
            else:  # torch.angle(0) = 0
                out[b, n, k] = complex(mag[k], 0.0)


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
    # Log-magnitude and steps in float32 halve the memory traffic (rounding 6e-5 rad per step at
    # most; the same spectral convergence as float64 on real clips); the phase accumulates in
    # float64.
    mag = magnitude.detach().float().contiguous()
    n_freq = mag.shape[1]
    peak = mag.amax(dim=(1, 2), keepdim=True)
    # Floor well under the tolerance so that log is finite and gradients near silence are tame.
    logmag = torch.log(torch.maximum(mag, peak * tol * 1e-3).clamp_min(1e-30))
    d_freq = _centred_diff(logmag, dim=1)
    d_time = _centred_diff(logmag, dim=2)
    k = torch.arange(n_freq, dtype=torch.float64, device=mag.device)[None, :, None]
    time_step = (a * m / gamma) * d_freq + (2 * math.pi * a / m) * k.float()
    freq_step = -(gamma / (a * m)) * d_time

    rng = generator if generator is not None else np.random.default_rng()
    phase = rng.uniform(0, 2 * np.pi, size=tuple(mag.shape))
    threshold = torch.log(peak * tol).flatten()
    _integrate_batch(
        logmag.cpu().numpy(),
        time_step.cpu().numpy(),
        freq_step.cpu().numpy(),
        threshold.cpu().numpy(),
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


# Priority levels of PGHI's bucket queue: log-magnitudes above the threshold are quantised to
# this many levels (about 0.002 neper each at tol 1e-4), and ties within a level pop last in,
# first out. Measured against the exact binary heap on 8 real clips: same spectral convergence
# (+0.01 dB), PGHI 1.6x faster on 30 s.
PGHI_LEVELS = 4096


@numba.njit(cache=True)
def _integrate(logmag, time_step, freq_step, threshold, phase):  # pragma: no cover - numba
    n_freq, n_frames = logmag.shape
    flat = logmag.ravel()
    out = phase.ravel()
    # Coefficients under the threshold keep their random phase and are never visited.
    done = flat < threshold
    level, order = _levels(flat, done, PGHI_LEVELS)
    # A bucket queue: one LIFO list per level, linked through ``following``; ``top`` is the
    # highest level that may hold an entry. Push and pop are O(1), where a heap is O(log n).
    head = np.full(PGHI_LEVELS, -1, dtype=np.int64)
    following = np.empty(flat.size, dtype=np.int64)
    for start in order:
        if done[start]:
            continue
        # A new island: its largest coefficient gets phase 0 and the queue spreads from there.
        out[start] = 0.0
        done[start] = True
        top = _push(head, following, level, start, 0)
        queued = 1
        while queued > 0:
            while head[top] < 0:
                top -= 1
            idx = head[top]
            head[top] = following[idx]
            queued -= 1
            k = idx // n_frames
            n = idx - k * n_frames
            p = out[idx]
            if n + 1 < n_frames and not done[idx + 1]:
                out[idx + 1] = p + 0.5 * (time_step[k, n] + time_step[k, n + 1])
                done[idx + 1] = True
                top = _push(head, following, level, idx + 1, top)
                queued += 1
            if n >= 1 and not done[idx - 1]:
                out[idx - 1] = p - 0.5 * (time_step[k, n] + time_step[k, n - 1])
                done[idx - 1] = True
                top = _push(head, following, level, idx - 1, top)
                queued += 1
            if k + 1 < n_freq and not done[idx + n_frames]:
                out[idx + n_frames] = p + 0.5 * (freq_step[k, n] + freq_step[k + 1, n])
                done[idx + n_frames] = True
                top = _push(head, following, level, idx + n_frames, top)
                queued += 1
            if k >= 1 and not done[idx - n_frames]:
                out[idx - n_frames] = p - 0.5 * (freq_step[k, n] + freq_step[k - 1, n])
                done[idx - n_frames] = True
                top = _push(head, following, level, idx - n_frames, top)
                queued += 1


@numba.njit(cache=True, inline="always")
def _push(head, following, level, index, top):  # pragma: no cover - numba
    """Put ``index`` on its level's list; returns the new highest level in use."""
    lv = level[index]
    following[index] = head[lv]
    head[lv] = index
    return max(top, lv)


@numba.njit(cache=True)
def _levels(values, skip, levels):  # pragma: no cover - numba
    """Quantised level (0 = lowest, ``levels - 1`` = highest) of each non-skipped value, and the
    indices of those values, highest level first, by counting sort: O(n) instead of argsort's
    O(n log n)."""
    n = values.size
    low, high = np.inf, -np.inf
    count = 0
    for i in range(n):
        if not skip[i]:
            count += 1
            low = min(low, values[i])
            high = max(high, values[i])
    level = np.zeros(n, dtype=np.int32)
    order = np.empty(count, dtype=np.int64)
    if count == 0:
        return level, order
    scale = (levels - 1) / max(high - low, 1e-12)
    starts = np.zeros(levels + 1, dtype=np.int64)
    for i in range(n):
        if not skip[i]:
            level[i] = int((values[i] - low) * scale)
            starts[levels - level[i]] += 1
    for b in range(levels):
        starts[b + 1] += starts[b]
    for i in range(n):
        if not skip[i]:
            b = levels - 1 - level[i]
            order[starts[b]] = i
            starts[b] += 1
    return level, order


# --------------------------------------------------------------------------------------------
# One entry point

# PGHI's tolerance when Griffin-Lim follows: coefficients under 1e-3 of the peak keep random phase
# (a third of them at 1e-4), which Griffin-Lim then fixes. On 18 held-out real clips of six
# domains (mel path, 16 iterations): -0.02 dB against 1e-4, for 2.3x less PGHI time.
PGHI_GLA_TOL = 1e-3


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
    rng = np.random.default_rng(seed)
    if method == "pghi":
        phase = pghi_phase(magnitude, hop_length, n_fft, gamma, generator=rng)
        return istft(torch.polar(magnitude, phase), n_fft, hop_length, window, length)
    phase = pghi_phase(magnitude, hop_length, n_fft, gamma, tol=PGHI_GLA_TOL, generator=rng)
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
