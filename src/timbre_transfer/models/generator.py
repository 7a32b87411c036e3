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
    """

    def __init__(
        self,
        shared: nn.Module,
        latent_channels: int,
        n_res: int = 3,
        n_upsample: int = 2,
        out_channels: int = 1,
        output_activation: str = "sigmoid",
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
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7)]
        layers.append(nn.Sigmoid() if output_activation == "sigmoid" else nn.Identity())
        self.body = nn.Sequential(*layers)
        init_weights(self.body)  # only our own layers: the shared stack belongs to the model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.shared(z))
