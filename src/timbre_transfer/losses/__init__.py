"""Loss functions: VAE terms, GAN losses, latent alignment, and the optional terms as parts
(:mod:`timbre_transfer.losses.terms`)."""

# the optional terms register themselves on import
from timbre_transfer.losses import domain_class, loudness, pitch  # noqa: F401 (registration)
from timbre_transfer.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss
from timbre_transfer.losses.latent import LatentCentroids, batch_mean_latent_loss
from timbre_transfer.losses.terms import TERMS, LossTerm, StepContext, build_terms, loss_term
from timbre_transfer.losses.vae import beta_warmup, kl_divergence, l1

__all__ = [
    "GAN_KINDS",
    "TERMS",
    "LatentCentroids",
    "LossTerm",
    "StepContext",
    "batch_mean_latent_loss",
    "beta_warmup",
    "build_terms",
    "discriminator_loss",
    "generator_loss",
    "kl_divergence",
    "l1",
    "loss_term",
]
