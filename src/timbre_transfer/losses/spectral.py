"""Multi-scale spectral loss (DDSP, Engel et al. 2020): L1 on STFT magnitudes and log magnitudes
over several FFT sizes, optionally plus an L1 on log-mel magnitudes."""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.audio.transform import mel_filterbank

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
REDUCTIONS = ("mean", "none")


class MultiScaleSpectralLoss(nn.Module):
    """``forward(target (B, T), estimate (B, T))`` -> scalar (``reduction="mean"``) or ``(B,)``.

    For each ``n`` in ``fft_sizes``, ``S = |STFT_n(x)|`` with a periodic Hann window of ``n``
    samples, hop ``max(1, int(n * (1 - overlap)))`` (``n // 4`` at the default 75 % overlap),
    centred frames with zero padding of ``n // 2`` at both ends (``torch.stft(center=True,
    pad_mode="constant")``: any clip length works) and no normalisation. The loss is::

        sum_n  mag_weight    * mean |S_t - S_e|
             + logmag_weight * mean |log(S_t + eps) - log(S_e + eps)|
        + mel_weight * mean |log(mel_t + eps) - log(mel_e + eps)|

    where each mean runs over frequency bins and frames (and over the batch for ``"mean"``), and
    ``mel = mel_basis @ S`` uses the magnitude STFT at ``mel_n_fft`` (default
    ``max(fft_sizes)``) and :func:`~timbre_transfer.audio.transform.mel_filterbank` at
    ``(sample_rate, mel_n_fft, n_mels, f_min, f_max)``, librosa's Slaney scale and norm.
    Identical inputs give exactly 0. The windows and the mel filterbank are buffers.
    """

    def __init__(
        self,
        fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES,
        overlap: float = 0.75,
        mag_weight: float = 1.0,
        logmag_weight: float = 1.0,
        eps: float = 1e-7,
        mel_weight: float = 0.0,
        sample_rate: int | None = None,
        n_mels: int = 128,
        mel_n_fft: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        reduction: str = "mean",
    ):
        super().__init__()
        fft_sizes = tuple(fft_sizes)
        if not fft_sizes or not all(isinstance(n, int) and n >= 2 for n in fft_sizes):
            raise ValueError(f"fft_sizes must be integers >= 2, got {fft_sizes}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if min(mag_weight, logmag_weight, mel_weight) < 0:
            raise ValueError(
                f"weights must be >= 0, got mag_weight={mag_weight}, "
                f"logmag_weight={logmag_weight}, mel_weight={mel_weight}"
            )
        if eps <= 0:
            raise ValueError(f"eps must be positive (it keeps log finite), got {eps}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.fft_sizes = fft_sizes
        self.overlap = overlap
        self.mag_weight = mag_weight
        self.logmag_weight = logmag_weight
        self.eps = eps
        self.mel_weight = mel_weight
        self.reduction = reduction
        for n in fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

        self.mel_n_fft = None
        if mel_weight > 0:
            if sample_rate is None or sample_rate <= 0:
                raise ValueError(f"mel_weight > 0 needs a positive sample_rate, got {sample_rate}")
            if n_mels < 1:
                raise ValueError(f"n_mels must be >= 1, got {n_mels}")
            self.mel_n_fft = max(fft_sizes) if mel_n_fft is None else int(mel_n_fft)
            if self.mel_n_fft < 2:
                raise ValueError(f"mel_n_fft must be >= 2, got {mel_n_fft}")
            basis = mel_filterbank(sample_rate, self.mel_n_fft, n_mels, f_min, f_max)
            self.register_buffer("mel_basis", torch.as_tensor(basis, dtype=torch.float32),
                                 persistent=False)
            if self.mel_n_fft not in fft_sizes:
                self.register_buffer("mel_window", torch.hann_window(self.mel_n_fft),
                                     persistent=False)

    def hop_length(self, n_fft: int) -> int:
        """Hop of the STFT with ``n_fft`` points."""
        return max(1, int(n_fft * (1.0 - self.overlap)))

    def magnitude(self, x: torch.Tensor, n_fft: int) -> torch.Tensor:
        """``|STFT|`` of ``(B, T)`` audio at one scale: ``(B, n_fft // 2 + 1, frames)``."""
        window = getattr(self, f"window_{n_fft}", None)
        if window is None:
            window = self.mel_window
        return torch.stft(x, n_fft, hop_length=self.hop_length(n_fft), window=window.to(x.dtype),
                          center=True, pad_mode="constant", return_complex=True).abs()

    def forward(self, target: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        if target.shape != estimate.shape:
            # broadcasting two mismatched clips would compare the wrong samples
            raise ValueError(
                f"target {tuple(target.shape)} and estimate {tuple(estimate.shape)} differ"
            )
        if target.dim() != 2 or target.shape[-1] < 1:
            raise ValueError(f"expected audio of shape (B, T), got {tuple(target.shape)}")
        both = torch.cat([target, estimate])  # one STFT call per scale for both signals
        batch = target.shape[0]
        per_item = target.new_zeros(batch)
        for n in self.fft_sizes:
            mag = self.magnitude(both, n)
            mag_t, mag_e = mag[:batch], mag[batch:]
            if self.mag_weight:
                per_item = per_item + self.mag_weight * (mag_t - mag_e).abs().mean((1, 2))
            if self.logmag_weight:
                log_diff = torch.log(mag_t + self.eps) - torch.log(mag_e + self.eps)
                per_item = per_item + self.logmag_weight * log_diff.abs().mean((1, 2))
            if self.mel_weight and n == self.mel_n_fft:
                per_item = per_item + self.mel_weight * self._mel_term(mag_t, mag_e)
        if self.mel_weight and self.mel_n_fft not in self.fft_sizes:
            mag = self.magnitude(both, self.mel_n_fft)
            per_item = per_item + self.mel_weight * self._mel_term(mag[:batch], mag[batch:])
        return per_item.mean() if self.reduction == "mean" else per_item

    def _mel_term(self, mag_t: torch.Tensor, mag_e: torch.Tensor) -> torch.Tensor:
        basis = self.mel_basis.to(mag_t.dtype)
        mel_t = torch.matmul(basis, mag_t)
        mel_e = torch.matmul(basis, mag_e)
        diff = torch.log(mel_t + self.eps) - torch.log(mel_e + self.eps)
        return diff.abs().mean((1, 2))

    def extra_repr(self) -> str:
        return (f"fft_sizes={self.fft_sizes}, overlap={self.overlap}, "
                f"mag_weight={self.mag_weight}, logmag_weight={self.logmag_weight}, "
                f"mel_weight={self.mel_weight}, reduction={self.reduction!r}")


def multiscale_spectral_distance(target, estimate, **options) -> torch.Tensor:
    """:class:`MultiScaleSpectralLoss` per clip, without gradients, for benchmarks and metrics.

    Args:
        target: ``(B, T)`` or ``(T,)`` audio (tensors or array-likes).
        estimate: audio of the same shape as ``target``.
        **options: :class:`MultiScaleSpectralLoss` arguments (``reduction`` is always "none").

    Returns:
        ``(B,)`` float32 tensor on the CPU, one distance per clip (``(1,)`` for ``(T,)`` input).
    """
    if "reduction" in options:
        raise ValueError("multiscale_spectral_distance always returns one value per clip; "
                         "do not pass reduction")
    t = torch.as_tensor(target, dtype=torch.float32)
    e = torch.as_tensor(estimate, dtype=torch.float32)
    if t.dim() == 1 and e.dim() == 1:
        t, e = t.unsqueeze(0), e.unsqueeze(0)
    loss = MultiScaleSpectralLoss(reduction="none", **options).to(t.device)
    with torch.no_grad():
        return loss(t, e).cpu()
