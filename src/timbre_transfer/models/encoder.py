"""The encoder shared by all domains: spectrogram -> latent mean (and optionally log-variance)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from timbre_transfer.models.layers import init_weights, res_stack


@dataclass
class Encoded:
    """The encoder's output.

    Attributes:
        mu: ``(B, C, F', T')`` latent mean.
        logvar: ``(B, C, F', T')`` log-variance, or None for the reference's unit-variance VAE.
    """

    mu: torch.Tensor
    logvar: torch.Tensor | None


class Encoder(nn.Module):
    """``(B, in_channels, F, T) -> Encoded``, ``mu`` ``(B, dim * 2**n, F / 2**n, T / 2**n)``.

    Layout (UNIT), with ``n = n_downsample``: reflection-pad 3 + conv 7x7, IN, LeakyReLU(0.2);
    ``n`` x [conv 4x4 stride 2, IN, ReLU] doubling the channels; ``n_res`` residual blocks. F and
    T should be multiples of ``2**n`` (a strided conv floors odd sizes).

    Args:
        in_channels: input channels (1 for a mel-spectrogram).
        dim: channels after the first conv.
        n_downsample: stride-2 convs.
        n_res: residual blocks at the latent resolution.
        learned_variance: add a 3x3 conv head that predicts ``logvar``; it starts at zero so the
            model starts as the unit-variance reference and learns away from it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        dim: int = 32,
        n_downsample: int = 2,
        n_res: int = 4,
        learned_variance: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, dim, 7),
            nn.InstanceNorm2d(dim),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = dim
        for _ in range(n_downsample):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1),
                nn.InstanceNorm2d(channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        self.body = nn.Sequential(*layers)
        self.res = res_stack(channels, n_res)
        self.out_channels = channels
        self.logvar_head: nn.Module | None = None
        if learned_variance:
            self.logvar_head = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3)
            )
        init_weights(self)
        if self.logvar_head is not None:
            # logvar = 0 at the start: identical to the unit-variance VAE until trained.
            nn.init.zeros_(self.logvar_head[1].weight)
            nn.init.zeros_(self.logvar_head[1].bias)

    def forward(self, x: torch.Tensor) -> Encoded:
        h = self.res(self.body(x))
        logvar = self.logvar_head(h) if self.logvar_head is not None else None
        return Encoded(mu=h, logvar=logvar)
