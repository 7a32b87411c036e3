"""Metrics on audio pairs."""

from __future__ import annotations

import torch


def twin_distance(estimate: torch.Tensor, twin: torch.Tensor, transform) -> float:
    """Mean absolute difference of normalised log1p mels between a clip and its ground-truth twin.

    On the paired synthetic domains, a transfer of clip ``k`` from domain a to domain b should
    sound like clip ``k`` of domain b (same score, same timbre); this distance measures how far it
    is (0 = identical mels). The shorter clip sets the compared length.

    Args:
        estimate, twin: ``(T,)`` waveforms at ``transform``'s sample rate.
        transform: an :class:`~timbre_transfer.audio.transform.AudioTransform` (its normalisation
            sets the scale of the distance).
    """
    a, b = transform(estimate), transform(twin)  # the transform rejects empty or NaN audio
    frames = min(a.shape[-1], b.shape[-1])
    return float((a[..., :frames] - b[..., :frames]).abs().mean())
