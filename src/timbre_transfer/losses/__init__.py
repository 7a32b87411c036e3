"""Loss functions: VAE terms, GAN losses, latent alignment."""

from timbre_transfer.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss
from timbre_transfer.losses.latent import LatentCentroids, batch_mean_latent_loss
from timbre_transfer.losses.vae import beta_warmup, kl_divergence, l1

__all__ = [
    "GAN_KINDS",
    "LatentCentroids",
    "batch_mean_latent_loss",
    "beta_warmup",
    "discriminator_loss",
    "generator_loss",
    "kl_divergence",
    "l1",
]
