"""The training run's configuration: model, optimisation, loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from timbre_transfer.models.multidomain import ModelConfig


@dataclass(frozen=True)
class LossWeights:
    """Weights of the raw loss terms (the reference's values); applied in one place only,
    :meth:`timbre_transfer.training.trainer.Trainer.generator_step`."""

    gan: float = 10.0
    kl: float = 0.1
    recon: float = 100.0
    kl_cycle: float = 0.1
    cycle: float = 100.0
    latent: float = 10.0


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 4
    crop_frames: int = 128
    short_clips: str = "pad"  # clips shorter than a crop: "pad" or "exclude"
    max_steps: int = 100_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_start: float = 0.5  # linear decay to 0 over the epochs after this fraction
    beta_warmup_steps: int = 0  # KL weight ramps from 0 to its value over these steps
    gan_loss: str = "lsgan"  # "lsgan" | "bce" | "hinge"
    latent_loss: str = "centroid"  # "centroid" (running per-domain centroids) | "batch_mean"
    centroid_momentum: float = 0.99
    grad_clip: float | None = None  # max gradient norm, per optimiser
    max_bad_steps: int = 10  # stop after this many non-finite steps in a row
    log_every: int = 50
    sample_every: int = 1000  # TensorBoard mel images and audio
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    num_workers: int = 0
    bf16: bool = False  # bf16 autocast, CUDA only
    channels_last: bool = False  # CUDA only

    def __post_init__(self):
        if self.gan_loss not in ("lsgan", "bce", "hinge"):
            raise ValueError(f"train.gan_loss must be lsgan, bce or hinge, got {self.gan_loss!r}")
        if self.latent_loss not in ("centroid", "batch_mean"):
            raise ValueError(f"train.latent_loss must be centroid or batch_mean, got {self.latent_loss!r}")
        if self.short_clips not in ("pad", "exclude"):
            raise ValueError(f"train.short_clips must be pad or exclude, got {self.short_clips!r}")
        for name in ("batch_size", "crop_frames", "max_steps", "log_every", "sample_every",
                     "checkpoint_every", "keep_last", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossWeights = field(default_factory=LossWeights)


def load_run_config(path=None, overrides=()) -> RunConfig:
    """A :class:`RunConfig` from a YAML file and ``section.key=value`` overrides. The ``audio`` and
    ``prepare`` sections belong to ``prepare`` and are ignored here (the store fixes them)."""
    from timbre_transfer.config import build, load_config

    values = load_config(path, list(overrides))
    values = {k: v for k, v in values.items() if k not in ("audio", "prepare")}
    return build(RunConfig, values)
