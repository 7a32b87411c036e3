"""Inference: transfer audio between domains with a trained checkpoint."""

from timbre_transfer.inference.transfer import TimbreTransfer

__all__ = ["TimbreTransfer"]
