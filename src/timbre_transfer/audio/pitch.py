"""Pitch in mel space: where a note's harmonics fall on the mel axis, and moving a mel along it.

Three uses, all on the model's mel grid (``n_mels`` filters between ``f_min`` and ``f_max``):

- :meth:`MelPitch.template` draws, for each frame, a bump of height 1 at the mel position of every
  harmonic ``k * f0`` below ``f_max``, scaled by the voicing probability. The generators receive
  it beside the latent, so they render the *source's* notes in the target's timbre instead of
  moving the melody into the register the target's discriminator knows.
- :meth:`MelPitch.shift` moves a mel-spectrogram by a pitch ratio (the frequency axis is warped:
  the value at frequency ``f`` comes from ``f / ratio``). Training uses it for random pitch-shift
  augmentation; ``transfer --octave`` uses it to move a performance into another register.
- :meth:`MelPitch.partial_envelope` draws a mel's envelope through the peaks of its partials,
  held flat below a floor: the timbre of a note with the register taken out, for the
  register-blind envelope discriminators.

The mel filters' centres are equally spaced in mel units (librosa's ``mel_frequencies``), so the
fractional bin of a frequency is an affine function of its mel value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TEMPLATE_WIDTH_BINS = 0.5  # Gaussian sigma of a harmonic's bump, in mel bins
MAX_HARMONICS = 64


def hz_to_mel(hz: torch.Tensor, htk: bool = False) -> torch.Tensor:
    """librosa's ``hz_to_mel`` in torch (Slaney: linear below 1 kHz, logarithmic above)."""
    if htk:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + torch.log(hz.clamp_min(min_log_hz) / min_log_hz) / logstep
    return torch.where(hz >= min_log_hz, log, linear)


class MelPitch(nn.Module):
    """The mel grid of a front end, for harmonic templates and pitch shifts.

    Args:
        sample_rate, n_mels, f_min, f_max, mel_scale: the front end's
            :class:`~timbre_transfer.audio.transform.TransformParams` (``f_max`` None: Nyquist).
    """

    def __init__(self, sample_rate: int, n_mels: int, f_min: float = 0.0,
                 f_max: float | None = None, mel_scale: str = "slaney"):
        super().__init__()
        import librosa

        self.htk = mel_scale == "htk"
        self.f_max = float(f_max if f_max is not None else sample_rate / 2)
        edges = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=self.f_max, htk=self.htk)
        # float64: positions of the centres themselves must come out as whole bins
        centres = torch.as_tensor(edges[1:-1], dtype=torch.float64)
        mels = hz_to_mel(centres, self.htk)
        self.mel0 = float(mels[0])
        self.mel_step = float(mels[1] - mels[0]) if n_mels > 1 else 1.0
        self.register_buffer("centres_hz", centres, persistent=False)

    @classmethod
    def of(cls, params) -> "MelPitch":
        """From a :class:`~timbre_transfer.audio.transform.TransformParams`."""
        return cls(params.sample_rate, params.n_mels, params.f_min, params.f_max, params.mel_scale)

    @property
    def n_mels(self) -> int:
        return self.centres_hz.shape[0]

    def position(self, hz: torch.Tensor) -> torch.Tensor:
        """Fractional mel bin of each frequency (bin ``m`` is centred on ``centres_hz[m]``)."""
        return (hz_to_mel(hz, self.htk) - self.mel0) / self.mel_step

    def template(self, f0_hz: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """``f0 (B, T)`` Hz and ``voiced (B, T)`` in [0, 1] -> ``(B, 1, n_mels, T)`` in [0, 1].

        Each harmonic ``k * f0 < f_max`` (k <= 64) adds a Gaussian bump of sigma 0.5 bins and
        height 1 at its fractional bin; overlapping bumps take the maximum (not the sum), so
        the template says *where* harmonics are and leaves their strengths, the timbre, to the
        generator. Frames with f0 <= 0 are empty; the result is scaled by ``voiced``.
        """
        if f0_hz.shape != voiced.shape or f0_hz.dim() != 2:
            raise ValueError(f"f0 and voicing must both be (B, T), got {tuple(f0_hz.shape)} "
                             f"and {tuple(voiced.shape)}")
        f0 = f0_hz.float()
        k = torch.arange(1, MAX_HARMONICS + 1, device=f0.device, dtype=f0.dtype)
        harmonics = f0[..., None] * k  # (B, T, K)
        valid = (harmonics < self.f_max) & (f0[..., None] > 0)
        pos = self.position(harmonics.clamp_min(1.0))
        bins = torch.arange(self.n_mels, device=f0.device, dtype=f0.dtype)
        bumps = torch.exp(-0.5 * ((bins[:, None] - pos[..., None, :]) / TEMPLATE_WIDTH_BINS) ** 2)
        bumps = bumps * valid[..., None, :]  # (B, T, F, K)
        out = bumps.amax(-1) * voiced.float()[..., None]  # (B, T, F)
        return out.transpose(1, 2)[:, None]

    def shift(self, spec: torch.Tensor, ratio: torch.Tensor | float, fill: float) -> torch.Tensor:
        """Move ``(B, C, n_mels, T)`` by the pitch ``ratio`` (per item ``(B,)`` or one float).

        Bin ``m`` takes the value found at frequency ``centres_hz[m] / ratio`` (linear
        interpolation between bins); what falls outside the grid becomes ``fill`` (the
        normalised value of silence).
        """
        b = spec.shape[0]
        ratio = torch.as_tensor(ratio, dtype=torch.float32, device=spec.device).reshape(-1)
        ratio = ratio.expand(b) if ratio.numel() == 1 else ratio
        src = self.position(self.centres_hz[None] / ratio.double()[:, None])  # (B, F), float64
        lo = src.floor().long()
        frac = (src - lo).to(spec.dtype)[:, None, :, None]
        n = self.n_mels

        def take(index):
            inside = ((index >= 0) & (index < n))[:, None, :, None]
            gathered = spec.gather(2, index.clamp(0, n - 1)[:, None, :, None].expand(
                -1, spec.shape[1], -1, spec.shape[3]))
            return torch.where(inside, gathered, torch.full_like(gathered, fill))

        return take(lo) * (1 - frac) + take(lo + 1) * frac

    def partial_envelope(self, spec: torch.Tensor, f0_hz: torch.Tensor,
                         floor_hz: torch.Tensor) -> torch.Tensor:
        """The envelope of ``spec (B, n_mels, T)`` through its partials, held below a floor.

        In frames with ``f0 > 0`` the mel is read at each partial
        ``k * f0 < f_max`` (the largest of the three bins around it) and joined by straight lines
        from one partial's bin to the next; below the first partial it holds the first's value,
        above the last the last's. So the ripple that spaces the partials (and so names the
        note) is gone and what is left is the shape the partials trace: formants, brightness,
        odd against even. Frames with ``f0 <= 0`` keep the mel as it is. (The store's f0 is
        filled through unvoiced frames, and pYIN calls much of a real bassoon unvoiced, so
        voicing is not asked: the envelope of silence or noise read at any partials is still
        silence or noise.)

        Then every bin below ``floor_hz (B, T)`` takes the value at the floor's bin: with one
        floor for two spectra, neither says where its own spectrum starts.
        """
        if spec.dim() != 3 or spec.shape[1] != self.n_mels:
            raise ValueError(f"expected a mel (B, {self.n_mels}, T), got {tuple(spec.shape)}")
        b, n, t = spec.shape
        for name, v in (("f0", f0_hz), ("floor", floor_hz)):
            if v.shape != (b, t):
                raise ValueError(f"{name} must be (B, T) = {(b, t)}, got {tuple(v.shape)}")
        f0 = f0_hz.float()
        k = torch.arange(1, MAX_HARMONICS + 1, device=spec.device, dtype=torch.float32)
        on = f0 > 0
        harmonics = f0[..., None] * k  # (B, T, K)
        valid = (harmonics < self.f_max) & on[..., None]
        pos = self.position(harmonics.clamp_min(1.0)).float().clamp(0, n - 1)
        frames = spec.transpose(1, 2)  # (B, T, F)
        # a partial's peak: the loudest of the three bins around it (it spreads over two
        # filters, and pYIN's f0 is off by a little more at each higher partial)
        near = pos.round().long()
        peaks = torch.stack([frames.gather(2, (near + d).clamp(0, n - 1)) for d in (-1, 0, 1)]
                            ).amax(0)  # (B, T, K)
        last = (valid.sum(-1, keepdim=True) - 1).clamp_min(0)  # index of the last partial
        # how many partials lie at or below each bin: the segment [left, left + 1] that holds it
        bins = torch.arange(n, device=spec.device, dtype=torch.float32)
        sorted_pos = torch.where(valid, pos, torch.full_like(pos, float("inf")))  # k rises
        below = torch.searchsorted(sorted_pos, bins.expand(b, t, n).contiguous(), right=True)
        left = (below - 1).clamp(min=0).minimum(last)
        right = below.minimum(last)
        p_l, p_r = pos.gather(2, left), pos.gather(2, right)
        w = ((bins - p_l) / (p_r - p_l).clamp_min(1e-6)).clamp(0, 1)
        w = torch.where(right > left, w, torch.zeros_like(w))
        env = peaks.gather(2, left) * (1 - w) + peaks.gather(2, right) * w
        env = torch.where(on[..., None], env, frames)
        # hold below the floor: bin m takes the value at max(m, the floor's bin)
        start = self.position(floor_hz.float().clamp_min(1.0)).float().ceil().clamp(0, n - 1)
        start = torch.where(floor_hz > 0, start, torch.zeros_like(start)).long()
        held = env.gather(2, torch.maximum(torch.arange(n, device=spec.device), start[..., None]))
        return held.transpose(1, 2)


def semitones_to_ratio(semitones) -> torch.Tensor:
    return 2.0 ** (torch.as_tensor(semitones, dtype=torch.float32) / 12.0)
