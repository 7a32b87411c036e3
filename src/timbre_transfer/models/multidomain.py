"""The many-to-many model: one shared encoder, per-domain generators and discriminators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from timbre_transfer.models.discriminator import PatchDiscriminator
from timbre_transfer.models.encoder import Encoded, Encoder
from timbre_transfer.models.generator import OUTPUT_ACTIVATIONS, Generator
from timbre_transfer.models.layers import init_weights, res_stack

__all__ = ["Encoded", "ModelConfig", "TimbreModel", "validate_domains"]


def _check_int(name: str, value, minimum: int) -> None:
    # bool is an int subclass; `dim: true` in a YAML file is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"ModelConfig.{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"ModelConfig.{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; the defaults are the reference's.

    Attributes:
        dim: channels after the encoder's first conv; the latent has ``dim * 2**n_downsample``.
        n_downsample: stride-2 convs in the encoder (and transposed convs in each generator).
        n_res_encoder: residual blocks at the end of the encoder.
        n_res_shared: residual blocks shared by all generators (at their input).
        n_res_generator: each generator's own residual blocks.
        learned_variance: the encoder also predicts a log-variance (else unit variance).
        output_activation: "sigmoid" (targets in [0, 1]) or "none".
        disc_channels: channels of the discriminators' stride-2 convs.
        pitch_template: generators also take a harmonic template of the notes to play (the
            source's f0 and voicing drawn on the mel grid), so a transfer keeps the source's
            pitch instead of moving it into the target's register.
        pitch_discriminator: discriminators also see the template of the notes a crop should
            play (its own f0 for a real crop, the source's for a translation), so they judge
            "is this the domain's timbre at this pitch" and can refuse a translation that adds
            partials the notes do not have. Needs ``pitch_template``.
        source_filter: generators render their output from the notes' harmonic comb under an
            envelope and a smooth noise floor they draw, so partials sit exactly on the notes
            (:class:`~timbre_transfer.models.generator.Generator`). Needs ``pitch_template``;
            the notes are then the template and the comb, ``(B, 2, F, T)``.
    """

    dim: int = 32
    n_downsample: int = 2
    n_res_encoder: int = 4
    n_res_shared: int = 1
    n_res_generator: int = 3
    learned_variance: bool = False
    output_activation: str = "sigmoid"
    disc_channels: tuple[int, ...] = (64, 128, 256, 512)
    pitch_template: bool = False
    pitch_discriminator: bool = False
    source_filter: bool = False

    def __post_init__(self):
        _check_int("dim", self.dim, 1)
        _check_int("n_downsample", self.n_downsample, 0)
        _check_int("n_res_encoder", self.n_res_encoder, 0)
        _check_int("n_res_shared", self.n_res_shared, 0)
        _check_int("n_res_generator", self.n_res_generator, 0)
        if not isinstance(self.learned_variance, bool):
            raise ValueError(
                f"ModelConfig.learned_variance must be true or false, got {self.learned_variance!r}"
            )
        if not isinstance(self.pitch_template, bool):
            raise ValueError(
                f"ModelConfig.pitch_template must be true or false, got {self.pitch_template!r}"
            )
        if not isinstance(self.pitch_discriminator, bool):
            raise ValueError("ModelConfig.pitch_discriminator must be true or false, got "
                             f"{self.pitch_discriminator!r}")
        if not isinstance(self.source_filter, bool):
            raise ValueError("ModelConfig.source_filter must be true or false, got "
                             f"{self.source_filter!r}")
        if self.source_filter and (not self.pitch_template
                                   or self.output_activation != "sigmoid"):
            raise ValueError("ModelConfig.source_filter needs pitch_template: true and the "
                             "sigmoid output (it renders the notes' comb)")
        if self.pitch_discriminator and not self.pitch_template:
            raise ValueError("ModelConfig.pitch_discriminator needs pitch_template: true (the "
                             "discriminators read the same template as the generators)")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"ModelConfig.output_activation must be one of {list(OUTPUT_ACTIVATIONS)}, "
                f"got {self.output_activation!r}"
            )
        channels = self.disc_channels
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
            raise ValueError(
                f"ModelConfig.disc_channels must be a list of positive integers, got {channels!r}"
            )
        channels = tuple(channels)  # YAML gives a list; keep the frozen config hashable
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                               for c in channels):
            raise ValueError(
                "ModelConfig.disc_channels must be a non-empty list of positive integers, "
                f"got {list(channels)!r}"
            )
        object.__setattr__(self, "disc_channels", channels)

    @property
    def latent_channels(self) -> int:
        return self.dim * 2**self.n_downsample


def validate_domains(domains: Sequence[str], owner: str = "domains") -> list[str]:
    """Return ``domains`` as a list, or raise ValueError if a name is unusable as a module key."""
    if isinstance(domains, str) or not isinstance(domains, Sequence):
        raise ValueError(f"{owner} must be a list of domain names, got {domains!r}")
    names = list(domains)
    if not names:
        raise ValueError(f"{owner} must name at least one domain")
    reserved = nn.ModuleDict()
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{owner}: every domain name must be a non-empty string, got {name!r}")
        if "." in name:
            raise ValueError(f"{owner}: domain name {name!r} must not contain '.'")
        if hasattr(reserved, name):  # e.g. "train", "items": would shadow an nn.Module attribute
            raise ValueError(f"{owner}: domain name {name!r} is reserved by torch.nn.Module")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{owner}: duplicate domain names {dupes}")
    return names


def _extend_right(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Extend ``x`` along ``dim`` to ``size`` on the right by reflection (without repeating the
    edge sample), reflecting again as often as needed; a length-1 axis is replicated."""
    while x.shape[dim] < size:
        n = x.shape[dim]
        if n == 1:
            shape = [size if d == dim % x.dim() else -1 for d in range(x.dim())]
            return x.expand(*shape).contiguous()
        take = min(size - n, n - 1)
        x = torch.cat([x, x.narrow(dim, n - 1 - take, take).flip(dim)], dim)
    return x


class TimbreModel(nn.Module):
    """Shared VAE encoder, per-domain generators (sharing their first residual blocks) and
    per-domain PatchGAN discriminators, on ``(B, 1, F, T)`` normalised log1p mels.

    Attributes:
        config: the :class:`ModelConfig`.
        domains: the domain names, in order.
        encoder: the :class:`~timbre_transfer.models.encoder.Encoder`.
        shared: the residual stack shared by every generator (``generators[d].shared is shared``).
        generators: ``{domain: Generator}``.
        discriminators: ``{domain: PatchDiscriminator}``.

    The shared stack appears under several keys of ``state_dict()`` (``shared.*`` and each
    ``generators.<d>.shared.*``); they hold the same tensors and load consistently.
    """

    def __init__(self, config: ModelConfig, domains: Sequence[str]):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.domains: list[str] = validate_domains(domains)
        c = config.latent_channels
        self.encoder = Encoder(
            in_channels=1,
            dim=config.dim,
            n_downsample=config.n_downsample,
            n_res=config.n_res_encoder,
            learned_variance=config.learned_variance,
        )
        self.shared = init_weights(res_stack(c, config.n_res_shared))
        self.generators = nn.ModuleDict({
            d: Generator(
                self.shared,
                c,
                n_res=config.n_res_generator,
                n_upsample=config.n_downsample,
                out_channels=1,
                output_activation=config.output_activation,
                pitch_template=config.pitch_template,
                source_filter=config.source_filter,
            )
            for d in self.domains
        })
        self.discriminators = nn.ModuleDict(
            {d: PatchDiscriminator(1 + config.pitch_discriminator, config.disc_channels)
             for d in self.domains}
        )

    @property
    def pitch_channels(self) -> int:
        """Channels of the notes the generators take: 0, 1 (template) or 2 (+ comb)."""
        return (1 + self.config.source_filter) if self.config.pitch_template else 0

    def set_levels(self, transform) -> None:
        """Give source-filter generators the front end's normalisation (``transform``, an
        :class:`~timbre_transfer.audio.transform.AudioTransform`); no-op for other models."""
        if self.config.source_filter:
            for generator in self.generators.values():
                generator.set_levels(transform.norm_shift, transform.norm_scale)

    @property
    def downsample_factor(self) -> int:
        """``2**n_downsample``: F and T must be multiples of it for encode/decode to round-trip."""
        return 2**self.config.n_downsample

    def _check_domain(self, domain: str) -> None:
        if domain not in self.generators:
            raise KeyError(f"unknown domain {domain!r}; the model knows {self.domains}")

    @staticmethod
    def _check_input(x: torch.Tensor, channels: tuple[int, ...] = (1,)) -> None:
        if x.dim() != 4 or x.shape[1] not in channels:
            c = " or ".join(map(str, channels))
            raise ValueError(f"expected a (B, {c}, F, T) tensor, got shape {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> Encoded:
        """``(B, 1, F, T) -> Encoded``; ``mu``: ``(B, C, F / f, T / f)``, f = downsample_factor."""
        self._check_input(x)
        return self.encoder(x)

    def sample(self, enc: Encoded, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised ``mu + sigma * eps``, ``eps ~ N(0, I)``; ``sigma = 1`` without logvar.

        ``generator`` (on ``mu``'s device) makes the noise reproducible.
        """
        mu = enc.mu
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        if enc.logvar is None:
            return mu + eps
        return mu + torch.exp(0.5 * enc.logvar) * eps

    def decode(self, z: torch.Tensor, domain: str,
               pitch: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, F', T') -> (B, 1, F' * f, T' * f)`` in ``domain``; ``pitch``: the
        ``(B, pitch_channels, F' * f, T' * f)`` notes when ``config.pitch_template`` (the
        harmonic template, and with ``source_filter`` the comb)."""
        self._check_domain(domain)
        return self.generators[domain](z, pitch)

    def discriminate(self, x: torch.Tensor, domain: str,
                     pitch: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, F, T) -> (B, 1, F / 2**k, T / 2**k)`` logits of ``domain``'s discriminator;
        ``pitch``: the notes; their ``(B, 1, F, T)`` template is read beside ``x`` when
        ``config.pitch_discriminator`` (ignored otherwise)."""
        self._check_domain(domain)
        if self.config.pitch_discriminator:
            pitch = None if pitch is None else pitch[:, :1]
            if pitch is None or pitch.shape != x.shape:
                raise ValueError(f"this discriminator needs a pitch template of shape "
                                 f"{tuple(x.shape)}, got "
                                 f"{None if pitch is None else tuple(pitch.shape)}")
            x = torch.cat([x, pitch.to(x.dtype)], 1)
        return self.discriminators[domain](x)

    def translate(self, x: torch.Tensor, domain: str, sample: bool = False,
                  pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Render ``(B, 1, F, T)`` of any size in ``domain``; returns the same shape.

        F and T are extended on the right by reflection up to a multiple of
        :attr:`downsample_factor` (and to at least 2 latent frames, which the reflection padding
        of the residual blocks needs), decoded from ``mu`` (or a sample when ``sample``), and
        cropped back. Gradients are kept: wrap in ``torch.no_grad()`` for inference. ``pitch``
        (the notes, ``(B, pitch_channels, F, T)``) is padded alike.
        """
        self._check_domain(domain)
        padded = self.pad_to_stride(x)  # checks the shape
        n_f, n_t = x.shape[2:]
        enc = self.encode(padded)
        z = self.sample(enc) if sample else enc.mu
        pitch = None if pitch is None else self.pad_to_stride(pitch)
        return self.decode(z, domain, pitch)[:, :, :n_f, :n_t]

    def pad_to_stride(self, x: torch.Tensor) -> torch.Tensor:
        """Extend ``(B, C, F, T)`` (C: 1, or the notes' channels) on the right by reflection
        so that F and T are multiples of :attr:`downsample_factor` and at least 2 latent frames
        (what encode/decode round-trip); crop the decoded output back to ``(F, T)``."""
        self._check_input(x, tuple(sorted({1, self.pitch_channels or 1})))
        f = self.downsample_factor
        minimum = -(-max(2 * f, 4) // f) * f  # the first 7x7 reflection pad needs 4 samples
        _, _, n_f, n_t = x.shape
        if n_f == 0 or n_t == 0:
            raise ValueError(f"cannot translate an empty input of shape {tuple(x.shape)}")
        for dim, n in ((2, n_f), (3, n_t)):
            x = _extend_right(x, dim, max(-(-n // f) * f, minimum))
        return x

    def generator_parameters(self) -> list[nn.Parameter]:
        """Encoder, shared stack and generators, each parameter once (for the G optimiser)."""
        return _unique(self.encoder, self.shared, self.generators)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """All discriminators' parameters (for the D optimiser)."""
        return _unique(self.discriminators)


def _unique(*modules: nn.Module) -> list[nn.Parameter]:
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
