"""Loudness consistency: a translation must follow its source's dynamics.

The evaluation scores dynamics as the correlation of A-weighted loudness envelopes
(:func:`timbre_transfer.evaluation.content.loudness_correlation`). Nothing in the VAE-GAN losses
asks for it: a speech generator fed a held clarinet note is free to draw speech's pauses and
syllables. :func:`loudness_consistency` compares the two envelopes read from the mels, with
gradients, and is not learned, so a generator cannot satisfy it by fooling a network.

Loudness from a mel: undo the normalisation and the log1p, square (for a magnitude mel), weight
each band by its A-weighting and its width in Hz (a Slaney-normalised filter measures a spectral
density, so a band's energy is about its value squared times its width), sum over bands, in dB.
It tracks the audio's A-weighted loudness closely (tested on real recordings), though not to
the decibel: the mel smooths harmonics inside a band.
"""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.losses.terms import LossTerm, StepContext, TermSetup, loss_term

RANGE_DB = 60.0  # as the evaluation: frames more than 60 dB under the loudest count as silence
DB_PER_UNIT = 10.0  # the loss is in units of 10 dB
_EPS = 1e-10


class MelLoudness(nn.Module):
    """Normalised log1p mel ``(B, 1, n_mels, T)`` or ``(B, n_mels, T)`` -> band-weighted power
    ``(B, T)`` (linear; ``10 * log10`` of it is an A-weighted loudness in dB up to a constant).

    Args:
        transform: the store's :class:`~timbre_transfer.audio.transform.AudioTransform` (its
            mel grid and normalisation statistics).
    """

    def __init__(self, transform):
        super().__init__()
        import librosa

        p = transform.params
        f_max = p.f_max if p.f_max is not None else p.sample_rate / 2
        edges = librosa.mel_frequencies(p.n_mels + 2, fmin=p.f_min, fmax=f_max,
                                        htk=p.mel_scale == "htk")
        centres, widths = edges[1:-1], edges[2:] - edges[:-2]
        a_weight = 10.0 ** (librosa.A_weighting(centres.clip(min=1.0)) / 10.0)
        weight = torch.as_tensor(a_weight * widths, dtype=torch.float32)
        self.register_buffer("weight", weight / weight.sum(), persistent=False)
        # a copy: moving this module to a device must not move the store's own transform
        self.transform = type(transform).from_dict(transform.to_dict())

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        spec = spec.float()
        mel = self.transform.spec_to_mel(spec[:, 0] if spec.dim() == 4 else spec)
        power = mel.square() if self.transform.params.power == 1.0 else mel
        return torch.einsum("f,bft->bt", self.weight, power)


def loudness_consistency(loudness: MelLoudness, source: torch.Tensor,
                         output: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, in units of 10 dB, between the loudness envelopes of
    ``source`` and ``output`` (both ``(B, 1, n_mels, T)``), each centred on its own mean over
    time: 0 when ``output`` rises and falls as ``source`` does, whatever its overall level.

    Both envelopes are floored at ``RANGE_DB`` under the source's loudest frame of the crop
    (a power added, not a clamp, so a near-silent output still gets a gradient; values at or
    under the store's silence get none), so that differences among near-silent frames do not
    count. ``source`` is the reference (no gradient).
    """
    with torch.no_grad():
        p_src = loudness(source)
        floor = p_src.amax(-1, keepdim=True) * 10.0 ** (-RANGE_DB / 10) + _EPS
        db_src = 10.0 * torch.log10(p_src + floor)
    db_out = 10.0 * torch.log10(loudness(output) + floor)
    centred = (db_out - db_out.mean(-1, keepdim=True)) - (db_src - db_src.mean(-1, keepdim=True))
    return centred.abs().mean() / DB_PER_UNIT


@loss_term
class LoudnessConsistency(LossTerm):
    """``loss.loudness``: every translation must follow its source's loudness envelope."""

    name = "loudness"

    def __init__(self, setup: TermSetup):
        super().__init__(setup)
        self.loudness = MelLoudness(setup.transform)

    def generator_loss(self, ctx: StepContext) -> torch.Tensor:
        return loudness_consistency(self.loudness, ctx.sources, ctx.translations)
