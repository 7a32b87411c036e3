"""Building blocks shared by the encoder, generators and discriminators."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``x + F(x)``, ``F`` = [reflection-pad 1, conv 3x3, IN, ReLU, reflection-pad 1, conv 3x3, IN].

    Keeps shape: ``(B, C, F, T) -> (B, C, F, T)``. Reflection padding (not zeros) avoids a dark
    border on spectrogram edges; every spatial size must therefore be at least 2.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def res_stack(channels: int, n: int) -> nn.Sequential:
    """``n`` :class:`ResidualBlock` s in a row (an identity when ``n == 0``)."""
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(n)))


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise in place, as UNIT / pix2pix do: conv and linear weights ~ N(0, std), biases 0.

    Affine normalisation layers (if any) get weight 1, bias 0. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module
