"""The DDSP re-synthesis head: a decoder from (mel frame, f0, loudness) to the controls of a
harmonic-plus-noise synthesizer (:mod:`timbre_transfer.models.ddsp`), so audio comes back with no
phase to reconstruct.

Frames: the head runs at ``mel_stride`` times the mel hop (hop 256 = 16 ms at 16 kHz for the
default transform), on every ``mel_stride``-th mel frame. Both use centred frames, so a clip of
``T`` samples has ``1 + T // hop_length`` head frames, the same as its f0 track and loudness
envelope at that hop (:mod:`timbre_transfer.audio.features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from timbre_transfer.audio.features import Controls, fill_unvoiced  # noqa: F401 - re-exported
from timbre_transfer.audio.timbre_controls import edit_synth, noise_boost
from timbre_transfer.models.ddsp import (
    Reverb,
    exp_sigmoid,
    filtered_noise,
    harmonic_synth,
    upsample,
)
from timbre_transfer.names import DEFAULT_F0_TRACKER


@dataclass(frozen=True)
class DDSPConfig:
    n_harmonics: int = 60
    n_noise_bands: int = 65
    hidden: int = 256
    mel_stride: int = 2  # head frames every mel_stride mel frames
    reverb_seconds: float = 0.0  # 0: no reverb module
    f0_min: float = 65.0  # f0 search range of the tracker (Hz)
    f0_max: float = 2093.0
    gate_db: float = -70.0  # frames quieter than this (A-weighted dB) are silenced
    # timbre descriptors the decoder is conditioned on (measured from the training audio; at
    # render time predicted from the mel, and moved by the knobs of the same name)
    descriptors: tuple[str, ...] = ()
    # False: the decoder reads f0 and loudness alone, as DDSP's own timbre-transfer models do
    # (one head per instrument; whatever mel it is given is ignored)
    mel_input: bool = True

    def __post_init__(self):
        unknown = [d for d in self.descriptors if d not in DESCRIPTOR_SCALE]
        if unknown:
            raise ValueError(f"head.descriptors: unknown {unknown}; choose from "
                             f"{sorted(DESCRIPTOR_SCALE)}")


# descriptor units -> the decoder's roughly unit-range inputs (octaves stay, dB / 20)
DESCRIPTOR_SCALE = {"brightness": 1.0, "noisiness": 1 / 20, "odd_even": 1 / 20}


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.LeakyReLU(0.2),
                         nn.Linear(n_out, n_out), nn.LayerNorm(n_out), nn.LeakyReLU(0.2))


class DDSPDecoder(nn.Module):
    """``(mel (B, N, n_mels), f0 (B, N), voiced (B, N), loudness (B, N))`` -> synth controls.

    Each input goes through its own MLP (dense, LayerNorm, LeakyReLU, twice), a GRU runs over
    their concatenation, and a last MLP over the GRU output and the inputs' features predicts
    the harmonic amplitude, the harmonic distribution and the noise band magnitudes. Loudness is
    an input, so the decoder shapes the envelope it is given instead of rediscovering it. With
    ``config.mel_input`` off there is no mel MLP and the mel is ignored.
    """

    def __init__(self, n_mels: int, config: DDSPConfig = DDSPConfig()):
        super().__init__()
        h = config.hidden
        self.config = config
        self.mel_in = _mlp(n_mels, h) if config.mel_input else None
        self.pitch_in = _mlp(2, h)  # scaled f0 and the voicing probability
        self.loudness_in = _mlp(1, h)
        n_in = 2 + config.mel_input
        n_desc = len(config.descriptors)
        if n_desc:  # conditioned on descriptors, and predicting them where none are given
            self.descriptor_in = _mlp(n_desc, h)
            self.descriptor_out = nn.Linear(n_in * h, n_desc)
            n_in += 1
        self.gru = nn.GRU(n_in * h, h, batch_first=True)
        self.out = _mlp((n_in + 1) * h, h)
        self.proj = nn.Linear(h, 1 + config.n_harmonics + config.n_noise_bands)

    def forward(self, mel, f0_hz, voiced, loudness_db, descriptors=None, shift=None):
        """Synth controls; with ``config.descriptors``, also the ``(B, N, D)`` descriptors it
        predicts from the other inputs (scaled by :data:`DESCRIPTOR_SCALE`). The decoder reads
        ``descriptors`` where given (training: measured), else its prediction, plus ``shift``
        (``(D,)``, scaled; the knobs)."""
        pitch = torch.stack([_scale_f0(f0_hz), voiced], dim=-1)
        loud = ((loudness_db + 100.0) / 100.0)[..., None]  # -100..0 dB -> 0..1
        feats = [self.pitch_in(pitch), self.loudness_in(loud)]
        if self.mel_in is not None:
            feats.insert(0, self.mel_in(mel))
        feats = torch.cat(feats, dim=-1)
        predicted = None
        if self.config.descriptors:
            predicted = self.descriptor_out(feats)
            given = predicted.detach() if descriptors is None else descriptors
            if shift is not None:
                given = given + shift
            feats = torch.cat([feats, self.descriptor_in(given)], dim=-1)
        hidden, _ = self.gru(feats)
        raw = self.proj(self.out(torch.cat([hidden, feats], dim=-1)))
        k = self.config.n_harmonics
        amplitude = exp_sigmoid(raw[..., 0])
        distribution = exp_sigmoid(raw[..., 1:1 + k])
        noise = exp_sigmoid(raw[..., 1 + k:] - 5.0)  # DDSP's bias: start with little noise
        return amplitude, distribution, noise, predicted


def _scale_f0(f0_hz: torch.Tensor) -> torch.Tensor:
    """Hz -> MIDI / 127 (0 Hz -> 0): pitch on a perceptual, roughly unit scale."""
    midi = 69.0 + 12.0 * torch.log2(f0_hz.clamp_min(1.0) / 440.0)
    return torch.where(f0_hz > 0, midi.clamp_min(0.0) / 127.0, torch.zeros_like(f0_hz))


class DDSPHead(nn.Module):
    """Decoder + harmonic-plus-noise synthesizer (+ optional reverb) at one sample rate.

    Args:
        n_mels: mel bands of the front end the head reads.
        sample_rate: sample rate of that front end (and of the head's audio).
        mel_hop: hop length of that front end, in samples.
        config: the head's settings.
        f0_tracker: the tracker of the controls it is trained on and renders from
            (:func:`~timbre_transfer.audio.f0.track_f0`; its checkpoint records it).
    """

    def __init__(self, n_mels: int, sample_rate: int, mel_hop: int,
                 config: DDSPConfig = DDSPConfig(), f0_tracker: str = DEFAULT_F0_TRACKER):
        super().__init__()
        self.config = config
        self.f0_tracker = f0_tracker
        self.sample_rate = sample_rate
        self.hop_length = mel_hop * config.mel_stride
        self.decoder = DDSPDecoder(n_mels, config)
        self.reverb = (Reverb(int(config.reverb_seconds * sample_rate), sample_rate)
                       if config.reverb_seconds > 0 else None)

    def frames(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``(B, n_mels, T_mel)`` -> head-rate frames ``(B, N, n_mels)``."""
        return mel[..., :: self.config.mel_stride].transpose(1, 2)

    def forward(self, mel_frames, f0_hz, voiced, loudness_db, n_samples: int,
                noise_seed: int | None = None, timbre: dict[str, float] | None = None,
                descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """Render ``(B, n_samples)`` audio from ``(B, N, n_mels)`` mel frames and ``(B, N)``
        controls (frame ``k`` centred on sample ``k * hop_length``). ``timbre``: knobs of
        :mod:`timbre_transfer.audio.timbre_controls`; those among ``config.descriptors`` move
        the decoder's descriptor inputs, the others edit the synthesiser's controls.
        ``descriptors``: ``(B, N, D)`` measured ones (training), else the decoder's own."""
        timbre = dict(timbre or {})
        shift = None
        if self.config.descriptors:
            shift = torch.tensor([timbre.pop(d, 0.0) * DESCRIPTOR_SCALE[d]
                                  for d in self.config.descriptors], device=mel_frames.device)
        amplitude, distribution, noise, _ = self.decoder(mel_frames, f0_hz, voiced, loudness_db,
                                                         descriptors, shift)
        boost = None
        if "noisiness" in timbre:  # calibrated on the audio the controls render
            boost = noise_boost(
                lambda g: self.synthesize(f0_hz, amplitude, distribution, noise * g**0.5,
                                          n_samples, noise_seed),
                f0_hz, voiced, self.sample_rate, self.hop_length, timbre["noisiness"])
        if timbre:
            amplitude, distribution, noise = edit_synth(f0_hz, amplitude, distribution, noise,
                                                        self.sample_rate, timbre, boost)
        return self.synthesize(f0_hz, amplitude, distribution, noise, n_samples, noise_seed)

    def synthesize(self, f0_hz, amplitude, distribution, noise, n_samples: int,
                   noise_seed: int | None = None) -> torch.Tensor:
        """Harmonic-plus-noise audio ``(B, n_samples)`` from the decoder's controls."""
        harmonic, _ = harmonic_synth(f0_hz, amplitude, distribution, self.sample_rate,
                                     self.hop_length, n_samples)
        generator = None
        if noise_seed is not None:
            generator = torch.Generator(amplitude.device).manual_seed(noise_seed)
        audio = harmonic + filtered_noise(noise, self.hop_length, n_samples, generator=generator)
        return self.reverb(audio) if self.reverb is not None else audio

    @torch.no_grad()
    def render(self, mel: torch.Tensor, controls: Controls, n_samples: int,
               pitch_shift: float = 0.0, loudness_shift: float = 0.0, seed: int = 0,
               timbre: dict[str, float] | None = None) -> np.ndarray:
        """Audio ``(n_samples,)`` for one clip: a normalised mel ``(n_mels, T_mel)`` from any
        generator, and the source's :class:`Controls` at this head's hop.

        Performance controls, as in the DDSP timbre-transfer demo: ``pitch_shift`` in semitones,
        ``loudness_shift`` in dB (what the decoder is told; the envelope follows), and a gate
        that silences frames quieter than ``config.gate_db`` (before the shift), so silence and
        unpitched quiet input come out quiet. ``timbre``: knobs checked by
        :func:`~timbre_transfer.audio.timbre_controls.check_controls`.
        """
        device = next(self.parameters()).device
        n = len(controls.f0_hz)
        frames = self.frames(mel[None].to(device))[:, :n]
        if frames.shape[1] < n:  # a generator may return a few frames less: hold the last
            frames = torch.cat([frames, frames[:, -1:].expand(-1, n - frames.shape[1], -1)], 1)
        tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)[None]
        f0 = (tensor(controls.f0_hz) * 2.0 ** (pitch_shift / 12.0)).clamp(
            max=self.sample_rate / 2 - 1)
        loudness = tensor(controls.loudness_db)
        self.eval()
        audio = self(frames, f0, tensor(controls.voiced_prob), loudness + loudness_shift,
                     n_samples, noise_seed=seed, timbre=timbre)
        # the gate closes per frame; upsampled linearly so that it never clicks
        gate = upsample((loudness > self.config.gate_db).float(), n_samples, self.hop_length)
        return (audio * gate)[0].cpu().numpy().astype(np.float32)
