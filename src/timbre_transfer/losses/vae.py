"""VAE terms: KL divergence, L1 reconstruction, KL weight warm-up."""

from __future__ import annotations

import torch


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)), averaged over all elements of ``(B, C, F, T)``.

    Without ``logvar`` (the reference's unit-variance encoder) this is ``mean(mu**2)``: the exact
    KL of N(mu, I) is ``0.5 * mu**2`` per element; the reference drops the 0.5, so its loss weight
    stays comparable. With ``logvar`` it is the standard Gaussian KL
    ``-0.5 * mean(1 + logvar - mu**2 - exp(logvar))``.
    """
    if logvar is None:
        return mu.pow(2).mean()
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar shape {tuple(logvar.shape)} != mu shape {tuple(mu.shape)}")
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (reconstruction and cycle losses)."""
    if a.shape != b.shape:
        # broadcasting two mismatched spectrograms would silently compare the wrong frames
        raise ValueError(f"l1: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return (a - b).abs().mean()


def beta_warmup(step: int, warmup_steps: int) -> float:
    """KL weight multiplier: rises linearly from 0 at step 0 to 1 at ``warmup_steps``, then 1.

    ``warmup_steps == 0`` disables the warm-up (always 1.0).
    """
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if warmup_steps == 0:
        return 1.0
    return float(min(1.0, max(0.0, step / warmup_steps)))
