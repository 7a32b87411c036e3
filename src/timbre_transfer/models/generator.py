"""Per-domain generator (decoder): latent -> spectrogram."""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.models.layers import init_weights, res_stack

OUTPUT_ACTIVATIONS = ("sigmoid", "none")
# mel bins of the box that smooths a source-filter output's noise floor, applied twice (a
# 13-bin triangle): the floor follows an envelope but cannot draw lines of partials
NOISE_SMOOTHING = 7


class Generator(nn.Module):
    """``(B, C, F', T') -> (B, out_channels, F' * 2**n_upsample, T' * 2**n_upsample)``.

    Layout (UNIT): the ``shared`` residual stack (the SAME module object in every domain's
    generator, so its weights are trained by all domains), ``n_res`` own residual blocks,
    ``n_upsample`` x [ConvTranspose 4x4 stride 2, IN, LeakyReLU(0.2)] halving the channels,
    reflection-pad 3 + conv 7x7 to ``out_channels``, then the output activation.

    Args:
        shared: the shared residual stack (not initialised here: its owner does it, once).
        latent_channels: C.
        n_res: this domain's residual blocks.
        n_upsample: transposed convs.
        out_channels: 1 for a mel-spectrogram.
        output_activation: "sigmoid" (targets normalised to [0, 1]) or "none" (raw values).
            The reference ends in tanh although its targets lie in [0, 1], so half of tanh's
            range is never a target; sigmoid matches the range.
        pitch_template: the generator also takes a ``(B, 1, F, T)`` harmonic template of the
            notes to play (:meth:`timbre_transfer.audio.pitch.MelPitch.template`). It enters
            twice: average-pooled to the latent's grid and added to the latent through a 1x1
            conv (so the residual blocks know the notes), and concatenated to the last conv's
            input at full resolution (so harmonics can be drawn exactly where they belong).
        source_filter: the output is rendered, not drawn (needs ``pitch_template``; ``pitch``
            is then ``(B, 2, F, T)``, the template and the
            :class:`~timbre_transfer.audio.pitch.HarmonicComb` of the same notes). The last conv
            draws two maps in [0, 1]: a spectral envelope and a noise floor, the latter smoothed
            along frequency (a box of :data:`NOISE_SMOOTHING` bins, twice) so that it cannot draw
            partials. The mel is ``envelope * comb + noise`` in linear amplitude, so every
            partial sits exactly on ``k * f0`` of the notes given, and the nets can only choose
            the partials' strengths and what lies between them: the timbre. The maps are read
            in the front end's normalised units; :meth:`set_levels` gives the normalisation.
    """

    def __init__(
        self,
        shared: nn.Module,
        latent_channels: int,
        n_res: int = 3,
        n_upsample: int = 2,
        out_channels: int = 1,
        output_activation: str = "sigmoid",
        pitch_template: bool = False,
        source_filter: bool = False,
    ):
        super().__init__()
        if source_filter and (not pitch_template or out_channels != 1
                              or output_activation != "sigmoid"):
            raise ValueError("source_filter needs pitch_template, one output channel and the "
                             "sigmoid output")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}"
            )
        channels = latent_channels
        if channels % (2**n_upsample):
            raise ValueError(
                f"latent_channels {channels} cannot be halved {n_upsample} times"
            )
        self.shared = shared
        layers: list[nn.Module] = [res_stack(channels, n_res)]
        for _ in range(n_upsample):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1),
                nn.InstanceNorm2d(channels // 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels //= 2
        self.factor = 2**n_upsample
        self.pitch_template = pitch_template
        self.source_filter = source_filter
        self.pitch_channels = (1 + source_filter) if pitch_template else 0
        head = [nn.ReflectionPad2d(3),
                nn.Conv2d(channels + self.pitch_channels, out_channels + source_filter, 7),
                nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()]
        if source_filter:  # the normalisation of the front end's log1p mel (set_levels)
            self.register_buffer("norm_shift", torch.tensor(0.0))
            self.register_buffer("norm_scale", torch.tensor(1.0))
        if pitch_template:  # the last conv also reads the template: a layer of its own
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(*head)
            self.pitch_in = nn.Conv2d(self.pitch_channels, latent_channels, 1)
            init_weights(self.head)
            init_weights(self.pitch_in)
        else:  # the unconditioned layout keeps its parameter names (older checkpoints load)
            self.body = nn.Sequential(*layers, *head)
        init_weights(self.body)  # only our own layers: the shared stack belongs to the model

    def forward(self, z: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        if not self.pitch_template:
            if pitch is not None:
                raise ValueError("this generator takes no pitch template (model.pitch_template "
                                 "is off)")
            return self.body(self.shared(z))
        expected = (z.shape[0], self.pitch_channels, z.shape[2] * self.factor,
                    z.shape[3] * self.factor)
        if pitch is None or tuple(pitch.shape) != expected:
            what = "template and comb" if self.source_filter else "template"
            raise ValueError(f"this generator needs a pitch {what} of shape {expected}, got "
                             f"{None if pitch is None else tuple(pitch.shape)}")
        pitch = pitch.to(z.dtype)
        h = z + self.pitch_in(nn.functional.avg_pool2d(pitch, self.factor))
        out = self.head(torch.cat([self.body(self.shared(h)), pitch], 1))
        if not self.source_filter:
            return out
        return self.render(out[:, :1], out[:, 1:], pitch[:, 1:])

    def set_levels(self, norm_shift: float, norm_scale: float) -> None:
        """The front end's normalisation (``spec = (log1p(mel) - shift) / scale``), which a
        source-filter output renders in."""
        self.norm_shift.fill_(float(norm_shift))
        self.norm_scale.fill_(float(norm_scale))

    def render(self, envelope: torch.Tensor, noise: torch.Tensor, comb: torch.Tensor
               ) -> torch.Tensor:
        """``envelope * comb + smoothed noise`` in linear mel amplitude, back in normalised log1p
        units; ``envelope`` and ``noise`` are normalised levels, ``comb`` about [0, 1]."""
        with torch.autocast(envelope.device.type, enabled=False):  # exp/log1p want float32
            shift, scale = self.norm_shift, self.norm_scale
            # exp - 1, not expm1: ONNX has no expm1 (the stream's nets are exported)
            level = lambda v: (torch.exp(v.float() * scale + shift) - 1).clamp_min(0)
            for _ in range(2):
                noise = nn.functional.avg_pool2d(
                    nn.functional.pad(noise.float(), (0, 0, NOISE_SMOOTHING // 2,
                                                      NOISE_SMOOTHING // 2), mode="replicate"),
                    (NOISE_SMOOTHING, 1), stride=1)
            mel = level(envelope) * comb.float() + level(noise)
            return (torch.log1p(mel) - shift) / scale
