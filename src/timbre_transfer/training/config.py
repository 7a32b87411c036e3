"""The training run's configuration: model, optimisation, loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from timbre_transfer.models.multidomain import ModelConfig


@dataclass(frozen=True)
class LossWeights:
    """Weights of the raw loss terms (the reference's values); applied in one place only,
    :meth:`timbre_transfer.training.trainer.Trainer.weighted_total`. Each optional term (off at
    0) is a :class:`~timbre_transfer.losses.terms.LossTerm` registered under its field's name."""

    gan: float = 10.0
    kl: float = 0.1
    recon: float = 100.0
    kl_cycle: float = 0.1
    cycle: float = 100.0
    latent: float = 10.0
    # pitch consistency: translations must sound at their source's pitch to a frozen pitch
    # network that train fits first (losses/pitch.py); 0 turns the network off
    pitch: float = 0.0
    # loudness consistency: translations must follow their source's loudness envelope
    # (losses/loudness.py); 0 turns it off
    loudness: float = 0.0
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
            raise ValueError(f"train.latent_loss must be centroid or batch_mean, got "
                             f"{self.latent_loss!r}")
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"train.bf16 must be true, false or auto, got {self.bf16!r}")
        if not 0 <= self.pitch_shift <= 24:
            raise ValueError(f"train.pitch_shift must be in [0, 24] semitones, got "
                             f"{self.pitch_shift}")
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

    ``stand_ins``: the store holds the new domains alone (a user of a shipped model has none of
    its training data). The checkpoint's domains are kept, and each step their crops are stand-
    ins: crops of the new domains translated by the checkpoint's frozen generators
    (:func:`~timbre_transfer.training.grow.with_stand_ins`).
    """

    checkpoint: str | None = None
    freeze: tuple[str, ...] = ()  # parts (FREEZABLE) held fixed
    unfreeze_after: int | None = None  # from this step everything trains ...
    unfreeze_lr_scale: float = 0.1  # ... at train.lr times this
    new_generators: str = "scratch"
    stand_ins: bool = False

    def __post_init__(self):
        freeze = tuple(self.freeze)
        unknown = [f for f in freeze if f not in FREEZABLE]
        if unknown:
            raise ValueError(f"init.freeze: unknown parts {unknown}; choose from {list(FREEZABLE)}")
        object.__setattr__(self, "freeze", freeze)
        if freeze and self.checkpoint is None:
            raise ValueError("init.freeze needs init.checkpoint: only a trained model's parts "
                             "can be held fixed")
        if self.stand_ins and self.checkpoint is None:
            raise ValueError("init.stand_ins needs init.checkpoint: the stand-ins are its "
                             "generators' translations")
        if self.unfreeze_after is not None and (isinstance(self.unfreeze_after, bool)
                                                or self.unfreeze_after < 0):
            raise ValueError(f"init.unfreeze_after must be a step >= 0, got "
                             f"{self.unfreeze_after!r}")
        if not 0 < self.unfreeze_lr_scale <= 1:
            raise ValueError(f"init.unfreeze_lr_scale must be in (0, 1], got "
                             f"{self.unfreeze_lr_scale}")
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


#: options measured, lost and taken out of the code: ``key: (its "off" value, the release that
#: retired it)``. A config or checkpoint holding one at its off value still loads (the key is
#: dropped); one that had it on is refused, since this version cannot train what it asked for.
RETIRED = {
    "loss.latent_confusion": (0.0, "0.2.0"),
    "loss.envelope_gan": (0.0, "0.2.0"),
    "train.envelope_register": ("seen", "0.2.0"),
    "train.envelope_per_frame": (False, "0.2.0"),
    "train.pitch_loss": ("kl", "0.2.0"),
}


def without_retired(values: dict, where: str = "the config") -> dict:
    """``values`` (nested config sections) less the :data:`RETIRED` keys at their off value.

    Raises:
        ValueError: a retired key set to anything else, naming it and the release that retired it.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for key, (off, release) in RETIRED.items():
        section, name = key.split(".")
        if not isinstance(out.get(section), dict) or name not in out[section]:
            continue
        value = out[section].pop(name)
        if value != off:
            raise ValueError(f"{where} sets {key}: {value!r}, an option retired in timbre_transfer "
                             f"{release} after it was measured and lost (docs/benchmarks.md); "
                             f"only {key}: {off!r} (off) is still accepted")
    return out


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
    where = "the config" if path is None or isinstance(path, dict) else str(path)
    values = without_retired(load_config(path, list(overrides)), where)
    values = {k: v for k, v in values.items() if k not in _STORE_SECTIONS}
    return build(RunConfig, values)
