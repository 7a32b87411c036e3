"""Per-domain discriminators of the spectral envelope (``loss.envelope_gan``).

The PatchGAN discriminators judge local patches of the mel: none sees the whole spectrum of a
frame at once, so none can tell a bright tenor sax from a thin tone with the right local texture.
These judge each frame's cepstrum instead (:class:`~timbre_transfer.audio.cepstrum.MelCepstrum`
of the normalised log1p mel): every coefficient weighs every band, so the envelope from the
lowest band to the highest (formants, brightness) is what they read, over a few frames of time.

Their real crops are the un-augmented ones: a pitch-shifted mel moves the envelope with the notes,
and the envelope of an instrument is what a transfer should take on at any pitch.
"""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.audio.cepstrum import MelCepstrum
from timbre_transfer.losses.adversarial import discriminator_loss, generator_loss


class EnvelopeDiscriminators(nn.Module):
    """``(B, 1, n_mels, T)`` normalised mels -> ``(B, 1, T / 4)`` logits, one net per domain:
    the cepstrum (coefficients 1..``n_ceps``), then 1-D convolutions over time (two of stride 2),
    so each logit judges the envelope of about 10 frames."""

    def __init__(self, domains: list[str], n_mels: int, n_ceps: int = 20, width: int = 64):
        super().__init__()
        self.cepstrum = MelCepstrum(n_mels, n_ceps)
        self.nets = nn.ModuleDict({d: nn.Sequential(
            nn.Conv1d(n_ceps, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 1, 3, padding=1)) for d in domains})

    def forward(self, spec: torch.Tensor, domain: str) -> torch.Tensor:
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"expected mels (B, 1, n_mels, T), got {tuple(spec.shape)}")
        return self.nets[domain](self.cepstrum(spec[:, 0]))

    def generator_loss(self, fakes: list[torch.Tensor], domains: list[str],
                       kind: str = "lsgan") -> torch.Tensor:
        """Mean over targets of the adversarial loss of translation ``fakes[t]`` into
        ``domains[t]``."""
        return torch.stack([generator_loss(self(f, d), kind)
                            for f, d in zip(fakes, domains)]).mean()

    def discriminator_loss(self, real: torch.Tensor, fakes: list[torch.Tensor],
                           domains: list[str], kind: str = "lsgan") -> torch.Tensor:
        """Mean over domains: domain ``d``'s net on its real crops ``real[:, d]`` against the
        (detached) translation into ``d``."""
        return torch.stack([discriminator_loss(self(real[:, d], dom), self(fakes[d].detach(), dom),
                                               kind) for d, dom in enumerate(domains)]).mean()
