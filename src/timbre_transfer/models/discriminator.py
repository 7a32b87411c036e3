"""Per-domain PatchGAN discriminator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from timbre_transfer.models.layers import init_weights


class PatchDiscriminator(nn.Module):
    """``(B, in_channels, F, T) -> (B, 1, F / 2**k, T / 2**k)`` logits, ``k = len(channels)``.

    ``k`` x [conv 4x4 stride 2 pad 1, InstanceNorm (not on the first), LeakyReLU(0.2)], then
    conv 3x3 pad 1 to one channel: each logit judges one receptive-field patch. Outputs are raw
    logits; the loss (:mod:`timbre_transfer.losses.adversarial`) chooses how to read them.
    Conv weights ~ N(0, 0.02), biases 0.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        channels = tuple(channels)
        if not channels:
            raise ValueError("channels must not be empty")
        layers: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(channels):
            layers.append(nn.Conv2d(prev, c, 4, stride=2, padding=1))
            if i > 0:  # no norm on the first layer: it would erase the input's absolute level
                layers.append(nn.InstanceNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = c
        layers.append(nn.Conv2d(prev, 1, 3, padding=1))
        self.model = nn.Sequential(*layers)
        self.downsample_factor = 2 ** len(channels)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
