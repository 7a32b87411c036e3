"""The training run's configuration: model, optimisation, loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from timbre_transfer.models.multidomain import ModelConfig


@dataclass(frozen=True)
class LossWeights:
    """Weights of the raw loss terms (the reference's values); applied in one place only,
    :meth:`timbre_transfer.training.trainer.Trainer.weighted_total`."""

    gan: float = 10.0
    kl: float = 0.1
    recon: float = 100.0
    kl_cycle: float = 0.1
    cycle: float = 100.0
    latent: float = 10.0
    # pitch consistency: translations must sound at their source's pitch to a frozen pitch
    # network (models/pitch_net.py) that train fits first; 0 turns the network off
    pitch: float = 0.0
    # loudness consistency: translations must follow their source's loudness envelope
    # (losses/loudness.py); 0 turns it off
    loudness: float = 0.0
    # domain confusion: a latent critic learns to name each encoding's domain and the encoder
    # is trained to leave it guessing (losses/latent.py), so that the shared latent carries
    # the performance and not the source's timbre; 0 turns the critic off
    latent_confusion: float = 0.0
    # envelope adversaries: per-domain discriminators of each frame's cepstrum (the whole
    # spectral envelope, which the PatchGAN discriminators only see patch by patch) judge every
    # translation (losses/envelope.py); 0 turns them off
    envelope_gan: float = 0.0
    # domain classification (StarGAN): a classifier learns to name each real crop's domain,
    # and every translation is scored by its cross-entropy against its target
    # (losses/domain_class.py); 0 turns the classifier off
    domain_class: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 4
    crop_frames: int = 128
    short_clips: str = "pad"  # clips shorter than a crop: "pad" or "exclude"
    max_steps: int = 100_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_start: float = 0.5  # then linear per-epoch decay; the last epoch at lr / (n + 1)
    beta_warmup_steps: int = 0  # KL weight ramps from 0 to its value over these steps
    gan_loss: str = "lsgan"  # "lsgan" | "bce" | "hinge"
    latent_loss: str = "centroid"  # "centroid" (running per-domain centroids) | "batch_mean"
    centroid_momentum: float = 0.99
    # pitch-shift augmentation: each crop moved by a random interval in [-pitch_shift,
    # pitch_shift] semitones (0: off), so that register no longer tells the domains apart
    pitch_shift: float = 0.0
    # what the pitch loss scores a translation against: "kl", the network's view of its source
    # (KL(p(source) || p(translation))), or "labels", the source's own pYIN f0 and voicing
    # (cross-entropy), which charges every timbre alike for playing the right note
    pitch_loss: str = "kl"
    # what the envelope discriminators (loss.envelope_gan) see: "seen", each frame's cepstrum
    # as it is, which also tells the register (where the spectrum starts, how far apart its
    # partials lie); "blind", the envelope through the partials, held below the higher of the
    # two notes compared, so that a transfer is not asked to leave the source's register
    envelope_register: str = "seen"
    # the envelope discriminators judge each frame alone (True) or about 10 frames at once
    # (False), which also lets them ask for the target's way of moving in time
    envelope_per_frame: bool = False
    pitch_net_steps: int = 400  # updates of the pitch network fitted first (with loss.pitch > 0)
    grad_clip: float | None = None  # max gradient norm, per optimiser
    max_bad_steps: int = 10  # stop after this many non-finite steps in a row
    log_every: int = 50
    sample_every: int = 1000  # TensorBoard mel images and audio
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    num_workers: int = 0
    # bf16 autocast: true, false, or "auto": where the hardware computes bf16 natively (a CUDA
    # GPU with bf16, a CPU with AVX512-BF16 or AMX; 1.9x faster on the reference model there),
    # fp32 elsewhere (emulated bf16 is slower)
    bf16: bool | str = "auto"
    channels_last: bool = False  # NHWC activations; measured no faster on CPU, slower with bf16

    def __post_init__(self):
        if self.gan_loss not in ("lsgan", "bce", "hinge"):
            raise ValueError(f"train.gan_loss must be lsgan, bce or hinge, got {self.gan_loss!r}")
        if self.latent_loss not in ("centroid", "batch_mean"):
            raise ValueError(f"train.latent_loss must be centroid or batch_mean, got {self.latent_loss!r}")
        if self.pitch_loss not in ("kl", "labels"):
            raise ValueError(f"train.pitch_loss must be kl or labels, got {self.pitch_loss!r}")
        if self.envelope_register not in ("seen", "blind"):
            raise ValueError("train.envelope_register must be seen or blind, got "
                             f"{self.envelope_register!r}")
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"train.bf16 must be true, false or auto, got {self.bf16!r}")
        if not 0 <= self.pitch_shift <= 24:
            raise ValueError(f"train.pitch_shift must be in [0, 24] semitones, got {self.pitch_shift}")
        if self.short_clips not in ("pad", "exclude"):
            raise ValueError(f"train.short_clips must be pad or exclude, got {self.short_clips!r}")
        for name in ("batch_size", "crop_frames", "max_steps", "log_every", "sample_every",
                     "checkpoint_every", "keep_last", "max_bad_steps", "pitch_net_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be positive, got {getattr(self, name)}")


#: parts of a model that ``init.freeze`` can hold fixed (generators and discriminators: those
#: of the domains the ``init.checkpoint`` model already had)
FREEZABLE = ("encoder", "shared", "generators", "discriminators")
NEW_GENERATORS = ("scratch", "nearest")


@dataclass(frozen=True)
class InitConfig:
    """Start from a trained model instead of from zero (``train --init-from``, ``add-domain``).

    The weights of ``checkpoint`` that this run's model also has (same name and shape) are
    copied; the store's domains that the checkpoint lacks start fresh (``new_generators``:
    ``scratch``, or ``nearest``: a copy of the generator and discriminator of the checkpoint's
    domain that reconstructs the new domain's crops best); the checkpoint's domains that the
    store lacks are dropped.
    """

    checkpoint: str | None = None
    freeze: tuple[str, ...] = ()  # parts (FREEZABLE) held fixed
    unfreeze_after: int | None = None  # from this step everything trains ...
    unfreeze_lr_scale: float = 0.1  # ... at train.lr times this
    new_generators: str = "scratch"

    def __post_init__(self):
        freeze = tuple(self.freeze)
        unknown = [f for f in freeze if f not in FREEZABLE]
        if unknown:
            raise ValueError(f"init.freeze: unknown parts {unknown}; choose from {list(FREEZABLE)}")
        object.__setattr__(self, "freeze", freeze)
        if freeze and self.checkpoint is None:
            raise ValueError("init.freeze needs init.checkpoint: only a trained model's parts "
                             "can be held fixed")
        if self.unfreeze_after is not None and (isinstance(self.unfreeze_after, bool)
                                                or self.unfreeze_after < 0):
            raise ValueError(f"init.unfreeze_after must be a step >= 0, got {self.unfreeze_after!r}")
        if not 0 < self.unfreeze_lr_scale <= 1:
            raise ValueError(f"init.unfreeze_lr_scale must be in (0, 1], got {self.unfreeze_lr_scale}")
        if self.new_generators not in NEW_GENERATORS:
            raise ValueError(f"init.new_generators must be one of {list(NEW_GENERATORS)}, got "
                             f"{self.new_generators!r}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    init: InitConfig = field(default_factory=InitConfig)

    # ---- checks across sections: sizes the model's stride-2 convs can round-trip ----------------

    def __post_init__(self):
        _check_multiple("train.crop_frames", self.train.crop_frames, self.model.n_downsample,
                        "or change model.n_downsample")

    def check_n_mels(self, n_mels: int) -> None:
        """Raise ValueError unless the store's ``n_mels`` suits the model (call it once the
        store is known: the store, not this config, fixes ``audio.n_mels``)."""
        _check_multiple("the store's audio.n_mels", n_mels, self.model.n_downsample,
                        "prepare a store with such audio.n_mels, or change model.n_downsample")


def _check_multiple(name: str, value: int, n_downsample: int, remedy: str) -> None:
    """``value`` must be a multiple of ``2**n_downsample``, or encode/decode change its size."""
    factor = 2**n_downsample
    if value % factor:
        lower = value // factor * factor
        nearest = " or ".join(str(v) for v in (lower, lower + factor) if v > 0)
        raise ValueError(f"{name} = {value} must be a multiple of 2**model.n_downsample = "
                         f"{factor} (the encoder halves it {n_downsample} times): use {nearest}, "
                         f"{remedy}")


# The store fixes the transform and the cleaning: these sections belong to `prepare`.
_STORE_SECTIONS = ("audio", "prepare")


def load_run_config(path=None, overrides=()) -> RunConfig:
    """A :class:`RunConfig` from a YAML file and ``section.key=value`` overrides.

    The ``audio`` and ``prepare`` sections of a YAML file belong to ``prepare`` and are ignored
    here (one file may serve both); an ``audio.*`` or ``prepare.*`` override is an error, since
    training cannot apply it: the feature store fixes the transform.

    Raises:
        ValueError: such an override, or sizes the model cannot round-trip (``train.crop_frames``
            not a multiple of ``2**model.n_downsample``).
    """
    from timbre_transfer.config import build, load_config

    for item in overrides:
        section = item.partition("=")[0].split(".")[0]
        if section in _STORE_SECTIONS:
            raise ValueError(f"override {item!r}: training cannot apply {section}.* settings, the "
                             "feature store fixes the transform and the cleaning; run prepare "
                             "again with it (into a new --out) and train on that store")
    values = load_config(path, list(overrides))
    values = {k: v for k, v in values.items() if k not in _STORE_SECTIONS}
    return build(RunConfig, values)
