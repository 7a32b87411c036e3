"""Per-domain discriminators of the spectral envelope (``loss.envelope_gan``).

The PatchGAN discriminators judge local patches of the mel: none sees the whole spectrum of a
frame at once, so none can tell a bright tenor sax from a thin tone with the right local texture.
These judge each frame's cepstrum instead (:class:`~timbre_transfer.audio.cepstrum.MelCepstrum`
of the normalised log1p mel): every coefficient weighs every band, so the envelope from the
lowest band to the highest (formants, brightness) is what they read, over a few frames of time.

Their real crops are the un-augmented ones: a pitch-shifted mel moves the envelope with the notes,
and the envelope of an instrument is what a transfer should take on at any pitch.

A cepstrum also says where a spectrum starts and how far apart its partials lie, that is, the
register: a real violin has no energy at 147 Hz. Register-blind (``train.envelope_register:
blind``), they judge :meth:`~timbre_transfer.audio.pitch.MelPitch.partial_envelope` instead:
the envelope through the partials, with every bin below the higher of the two notes compared
(the translation's source's and the real crop's, frame by frame) held at that note's value.
Real and translation are then cut alike, and what tells them apart is the shape of the partials
above the note.
"""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.audio.cepstrum import MelCepstrum
from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.losses.adversarial import discriminator_loss, generator_loss


class EnvelopeDiscriminators(nn.Module):
    """``(B, 1, n_mels, T)`` normalised mels -> ``(B, 1, T / 4)`` logits, one net per domain:
    the cepstrum (coefficients 1..``n_ceps``), then 1-D convolutions over time (two of stride 2),
    so each logit judges the envelope of about 10 frames. ``per_frame``: ``(B, 1, T)`` logits,
    each from one frame's cepstrum alone.

    With ``mel_pitch`` (the front end's mel grid) they are register-blind: the losses take the
    notes of the translations and of the real crops, ``(B, 2, T)`` f0 (Hz) and voicing each (as
    the trainer's batches hold them; the voicing is not used), and judge both through
    :meth:`view`."""

    def __init__(self, domains: list[str], n_mels: int, n_ceps: int = 20, width: int = 64,
                 mel_pitch: MelPitch | None = None, per_frame: bool = False):
        super().__init__()
        self.cepstrum = MelCepstrum(n_mels, n_ceps)
        self.mel_pitch = mel_pitch
        self.nets = nn.ModuleDict({d: self._frame_net(n_ceps, width) if per_frame
                                   else self._window_net(n_ceps, width) for d in domains})

    @staticmethod
    def _window_net(n_ceps: int, width: int) -> nn.Module:
        """``(B, n_ceps, T) -> (B, 1, T / 4)``: each logit judges about 10 frames."""
        return nn.Sequential(
            nn.Conv1d(n_ceps, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 1, 3, padding=1))

    @staticmethod
    def _frame_net(n_ceps: int, width: int) -> nn.Module:
        """``(B, n_ceps, T) -> (B, 1, T)``: one logit per frame, from that frame alone, so the
        nets cannot ask for the target's way of moving in time (a voice's syllables)."""
        return nn.Sequential(
            nn.Conv1d(n_ceps, width, 1), nn.LeakyReLU(0.2),
            nn.Conv1d(width, 2 * width, 1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 2 * width, 1), nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 1, 1))

    def forward(self, spec: torch.Tensor, domain: str) -> torch.Tensor:
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"expected mels (B, 1, n_mels, T), got {tuple(spec.shape)}")
        return self.nets[domain](self.cepstrum(spec[:, 0]))

    def view(self, spec: torch.Tensor, notes: torch.Tensor | None,
             other: torch.Tensor | None) -> torch.Tensor:
        """What the nets judge of ``spec (B, 1, n_mels, T)`` playing ``notes``, compared with a
        crop playing ``other``: the mel itself, or (register-blind) its envelope through the
        partials held below the higher of the two notes."""
        if self.mel_pitch is None:
            return spec
        if notes is None or other is None:
            raise ValueError("register-blind envelope discriminators need the notes (f0, "
                             "voicing) of the translations and of the real crops")
        floor = torch.maximum(notes[:, 0], other[:, 0]).clamp_min(0)
        return self.mel_pitch.partial_envelope(spec[:, 0], notes[:, 0], floor)[:, None]

    def generator_loss(self, fakes: list[torch.Tensor], domains: list[str], kind: str = "lsgan",
                       fake_notes: list[torch.Tensor] | None = None,
                       real_notes: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over targets of the adversarial loss of translation ``fakes[t]`` into
        ``domains[t]``. Register-blind: ``fake_notes[t]`` are ``fakes[t]``'s notes (its
        source's) and ``real_notes (B, D, 2, T)`` those of the real crops it is compared with."""
        losses = []
        for t, (fake, dom) in enumerate(zip(fakes, domains)):
            fake_n, real_n = self._notes(fake_notes, real_notes, t)
            losses.append(generator_loss(self(self.view(fake, fake_n, real_n), dom), kind))
        return torch.stack(losses).mean()

    def discriminator_loss(self, real: torch.Tensor, fakes: list[torch.Tensor],
                           domains: list[str], kind: str = "lsgan",
                           fake_notes: list[torch.Tensor] | None = None,
                           real_notes: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over domains: domain ``d``'s net on its real crops ``real[:, d]`` against the
        (detached) translation into ``d``; notes as in :meth:`generator_loss`."""
        losses = []
        for d, dom in enumerate(domains):
            fake_n, real_n = self._notes(fake_notes, real_notes, d)
            losses.append(discriminator_loss(self(self.view(real[:, d], real_n, fake_n), dom),
                                             self(self.view(fakes[d].detach(), fake_n, real_n),
                                                  dom), kind))
        return torch.stack(losses).mean()

    @staticmethod
    def _notes(fake_notes, real_notes, d):
        """(translation into ``d``'s notes, ``d``'s real crops' notes), or Nones."""
        if fake_notes is None or real_notes is None:
            return None, None
        return fake_notes[d], real_notes[:, d]
