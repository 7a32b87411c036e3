"""Per-domain generator (decoder): latent -> spectrogram."""

from __future__ import annotations

import torch
from torch import nn

from timbre_transfer.models.layers import init_weights, res_stack

OUTPUT_ACTIVATIONS = ("sigmoid", "none")


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
    ):
        super().__init__()
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
        head = [nn.ReflectionPad2d(3), nn.Conv2d(channels + pitch_template, out_channels, 7),
                nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity()]
        if pitch_template:  # the last conv also reads the template: a layer of its own
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(*head)
            self.pitch_in = nn.Conv2d(1, latent_channels, 1)
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
        expected = (z.shape[0], 1, z.shape[2] * self.factor, z.shape[3] * self.factor)
        if pitch is None or tuple(pitch.shape) != expected:
            raise ValueError(f"this generator needs a pitch template of shape {expected}, got "
                             f"{None if pitch is None else tuple(pitch.shape)}")
        pitch = pitch.to(z.dtype)
        h = z + self.pitch_in(nn.functional.avg_pool2d(pitch, self.factor))
        return self.head(torch.cat([self.body(self.shared(h)), pitch], 1))
