"""Neural networks: shared encoder, per-domain generators and discriminators."""

from timbre_transfer.models.discriminator import PatchDiscriminator
from timbre_transfer.models.encoder import Encoded, Encoder
from timbre_transfer.models.generator import OUTPUT_ACTIVATIONS, Generator
from timbre_transfer.models.layers import ResidualBlock, init_weights
from timbre_transfer.models.multidomain import ModelConfig, TimbreModel, validate_domains

__all__ = [
    "OUTPUT_ACTIVATIONS",
    "Encoded",
    "Encoder",
    "Generator",
    "ModelConfig",
    "PatchDiscriminator",
    "ResidualBlock",
    "TimbreModel",
    "init_weights",
    "validate_domains",
]
