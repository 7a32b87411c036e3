"""The multi-domain VAE-GAN training loop.

One step takes a crop of every domain (``(B, D, 1, n_mels, T)``), pairs every target domain with
a random other source domain, and makes one generator update and one discriminator update over
all pairs. The encoder runs twice per step, each time on all domains at once (sources, then
translations for the cycle), rather than once per pair as the reference code does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from timbre_transfer.config import build, to_dict
from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.data.dataset import FeatureStore, MultiDomainCropDataset
from timbre_transfer.losses.adversarial import discriminator_loss, generator_loss
from timbre_transfer.losses.domain_class import DomainClassifier
from timbre_transfer.losses.envelope import EnvelopeDiscriminators
from timbre_transfer.losses.latent import (LatentCentroids, LatentCritic, batch_mean_latent_loss,
                                           critic_loss, domain_confusion, domain_labels)
from timbre_transfer.losses.loudness import MelLoudness, loudness_consistency
from timbre_transfer.losses.vae import beta_warmup, kl_divergence, l1
from timbre_transfer.models.multidomain import TimbreModel
from timbre_transfer.models.pitch_net import (PitchNet, pitch_consistency, pitch_fit_loss,
                                              pitch_labels, within_cents)
from timbre_transfer.training import distributed, grow
from timbre_transfer.checkpoint import load_state_strict, read_checkpoint
from timbre_transfer.training.checkpoint import check_resumable, save_run_checkpoint
from timbre_transfer.training.config import RunConfig


# Settings a resumed run may change: bookkeeping, and max_steps to train longer (the LR schedule
# then follows the new length).
RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.sample_every",
                     "train.checkpoint_every", "train.keep_last", "train.num_workers"}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (elsewhere bf16 autocast is emulated, slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # oneDNN's own check: AVX512-BF16 or AMX
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


@dataclass
class GeneratorLosses:
    """What :meth:`Trainer.losses` computes.

    Attributes:
        terms: raw (unweighted) loss terms by name: ``recon``, ``kl``, ``cycle``, ``kl_cycle``,
            ``latent``, ``gan/<domain>``.
        fakes: ``fakes[t]``, the translation into target domain ``t``, ``(B, 1, F, T)``.
        centroids: this step's latent centroid estimates by domain (empty for the batch-mean
            latent loss); the trainer commits them once the step is known to be finite.
        latents: the real crops' encodings ``mu`` ``(D * B, C, F', T')``, domain-major and
            detached, for the latent critic's own update (None without ``loss.latent_confusion``).
    """

    terms: dict[str, torch.Tensor]
    fakes: list[torch.Tensor]
    centroids: dict[str, torch.Tensor]
    latents: torch.Tensor | None = None


@dataclass
class Batch:
    """One step's crops: ``specs (B, D, 1, F, T)`` and their ``pitch (B, D, 2, T)`` (f0 in Hz
    and voicing probability, from the store's controls)."""

    specs: torch.Tensor
    pitch: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "Batch":
        return Batch(self.specs.to(device, non_blocking=non_blocking),
                     self.pitch.to(device, non_blocking=non_blocking))


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf losses for ``max_bad_steps`` steps in a row."""


class Trainer:
    """Trains a :class:`TimbreModel` on a feature store; see :meth:`fit`.

    Args:
        config: the run's configuration.
        store: a prepared feature store (path or :class:`FeatureStore`).
        run_dir: where ``config.yaml``, ``checkpoints/`` and ``tensorboard/`` go.
        resume: continue from ``run_dir/checkpoints/latest.pt``.
        device: defaults to CUDA when available (per local rank under torchrun).

    Seeds torch's global RNG with ``train.seed`` so that the model's initialisation is
    reproducible (a run and its resumed twin start from the same weights).
    """

    def __init__(self, config: RunConfig, store, run_dir: str | Path, resume: bool = False,
                 device: str | torch.device | None = None, progress: bool = True):
        self.config = config
        self.dist = distributed.init_distributed()
        cfg = config.train
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.progress = progress and self.dist.is_main
        self.run_dir = Path(run_dir)
        torch.manual_seed(cfg.seed)

        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        self.domains = self.store.domains
        if len(self.domains) < 2:
            raise ValueError(f"training needs at least 2 domains, the store has {self.domains}")
        config.check_n_mels(self.store.transform.params.n_mels)  # the store fixes n_mels
        self.dataset = MultiDomainCropDataset(self.store, "train", cfg.crop_frames,
                                              cfg.short_clips, seed=cfg.seed)
        per_step = cfg.batch_size * self.dist.world_size
        self.steps_per_epoch = max(1, len(self.dataset) // per_step)
        self.total_epochs = math.ceil(cfg.max_steps / self.steps_per_epoch)

        self.model = TimbreModel(config.model, self.domains).to(self.device)
        self.mel_pitch = MelPitch.of(self.store.transform.params).to(self.device)
        self.mel_loudness = MelLoudness(self.store.transform).to(self.device)
        self.pitch_medians = self.store.pitch_medians()
        self.pitch_net, self.pitch_net_ready = None, False
        if config.loss.pitch > 0:  # fitted by fit() before the first step, then frozen
            self.pitch_net = PitchNet(self.store.transform.params.n_mels).to(self.device)
            self.pitch_net.eval().requires_grad_(False)
        self.use_bf16 = native_bf16(self.device) if cfg.bf16 == "auto" else cfg.bf16
        self.channels_last = cfg.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.centroids = LatentCentroids(self.domains, cfg.centroid_momentum).to(self.device)
        self.latent_critic = None  # the adversary of loss.latent_confusion, updated with the Ds
        if config.loss.latent_confusion > 0:
            self.latent_critic = LatentCritic(config.model.latent_channels,
                                              len(self.domains)).to(self.device)
        self.envelope_discriminators = None  # loss.envelope_gan's adversaries, updated with the Ds
        if config.loss.envelope_gan > 0:
            blind = cfg.envelope_register == "blind"
            self.envelope_discriminators = EnvelopeDiscriminators(
                self.domains, self.store.transform.params.n_mels,
                mel_pitch=self.mel_pitch if blind else None,
                per_frame=cfg.envelope_per_frame).to(self.device)
        self.domain_classifier = None  # loss.domain_class's classifier, updated with the Ds
        if config.loss.domain_class > 0:
            self.domain_classifier = DomainClassifier(len(self.domains)).to(self.device)
        self.init_domains: list[str] = []  # the domains init.checkpoint gave this model
        self.frozen: set[int] = set()  # ids of the parameters held fixed at this step
        if config.init.checkpoint and not resume:
            self._init_from(config.init.checkpoint)
        self.g_params = self.model.generator_parameters()
        self.d_params = self.model.discriminator_parameters()
        for extra in self.adversaries().values():
            self.d_params = [*self.d_params, *extra.parameters()]
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr, betas=cfg.betas)
        self.decay_start_epoch = int(self.total_epochs * cfg.lr_decay_start)
        self._set_lr(0)
        self.noise = torch.Generator(self.device).manual_seed(cfg.seed + self.dist.rank)
        self.step = 0
        self.bad_steps = 0
        self.writer = None
        self._apply_freeze()
        if resume:
            self.load(self.run_dir / "checkpoints" / "latest.pt")
        if self.dist.is_main:
            self._write_config()

    def adversaries(self) -> dict:
        """The training-only nets updated with the discriminators, by checkpoint key: those
        whose loss weight is on."""
        nets = {"latent_critic": self.latent_critic,
                "envelope_discriminators": self.envelope_discriminators,
                "domain_classifier": self.domain_classifier}
        return {key: net for key, net in nets.items() if net is not None}

    # ---- data -----------------------------------------------------------------------------------

    def batches(self):
        """Crops for the steps from ``self.step`` on, forever; resumes mid-epoch exactly."""
        cfg = self.config.train
        while True:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.dataset.set_epoch(epoch)
            order = torch.randperm(len(self.dataset),
                                   generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            mine = order[self.dist.rank::self.dist.world_size].tolist()
            mine = mine[offset * cfg.batch_size:self.steps_per_epoch * cfg.batch_size]
            loader = DataLoader(Subset(self.dataset, mine), batch_size=cfg.batch_size,
                                num_workers=cfg.num_workers, drop_last=True)
            for specs, pitch in loader:
                yield Batch(specs, pitch)

    def pairs(self, step: int) -> list[int]:
        """Source domain index for each target domain at ``step``: random, never the target."""
        n = len(self.domains)
        rng = np.random.default_rng([self.config.train.seed, step])
        draws = rng.integers(0, n - 1, size=n)
        return [int(d + (d >= b)) for b, d in enumerate(draws)]

    # ---- one step -------------------------------------------------------------------------------

    def losses(self, x: torch.Tensor, step: int, templates: torch.Tensor | None = None,
               pitch: torch.Tensor | None = None,
               real_pitch: torch.Tensor | None = None) -> GeneratorLosses:
        """Raw generator-side loss terms for a batch ``(B, D, 1, F, T)`` (``x[:, d]``: crops of
        domain ``d``), with the translations the discriminators judge next.

        Each target domain ``t`` is paired with a source ``s = self.pairs(step)[t]``:

        - recon: ``G_d(E(x_d)) ~ x_d``, every domain through its own generator;
        - translation: ``fake_t = G_t(E(x_s))``, judged by ``D_t`` (``gan/<t>``);
        - cycle: ``G_s(E(fake_t)) ~ x_s``, back to where it came from;
        - kl / kl_cycle: of the encodings of the real crops / of the translations;
        - latent: the domains' latent centroids pulled together;
        - confusion (with ``loss.latent_confusion`` > 0): the latent critic must not tell the
          real crops' encodings apart by domain;
        - envelope (with ``loss.envelope_gan`` > 0): every translation, as the target's
          envelope discriminator judges its cepstrum (with ``train.envelope_register: blind``
          against the notes ``real_pitch (B, D, 2, T)`` of the un-augmented real crops);
        - domain_class (with ``loss.domain_class`` > 0): every translation, as the domain
          classifier names it, against its target;
        - pitch / loudness (with ``loss.pitch`` / ``loss.loudness`` > 0): every translation
          against its source, as a frozen pitch network hears them / as loudness envelopes.
          With ``train.pitch_loss: labels`` the network's view of the translation is scored
          against the source's pYIN labels instead, from ``pitch (B, D, 2, T)`` (f0 Hz and
          voicing, as :meth:`prepare_batch` returns them).

        With ``model.pitch_template``, ``templates (B, D, 1, F, T)`` are the crops' harmonic
        templates, and every generator plays the notes of the crop it started from: the
        translation and the cycle both get the source's template.
        """
        cfg = self.config.train
        model, domains = self.model, self.domains
        n_dom, batch = x.shape[1], x.shape[0]
        real = x.transpose(0, 1)  # (D, B, 1, F, T): real[d] holds domain d's crops
        notes = [None] * n_dom if templates is None else templates.transpose(0, 1)
        enc, z = self._encode(real.reshape(n_dom * batch, *x.shape[2:]), n_dom)
        source_of = self.pairs(step)  # source_of[t]: the domain translated into target t

        recon = [l1(model.decode(z[d], domain, notes[d]), real[d])
                 for d, domain in enumerate(domains)]
        fakes = [model.decode(z[s], domains[t], notes[s]) for t, s in enumerate(source_of)]
        enc_fake, z_fake = self._encode(torch.cat(fakes), n_dom)
        cycle = [l1(model.decode(z_fake[t], domains[s], notes[s]), real[s])
                 for t, s in enumerate(source_of)]
        terms = {
            "recon": torch.stack(recon).mean(),
            "kl": kl_divergence(enc.mu, enc.logvar),
            "cycle": torch.stack(cycle).mean(),
            "kl_cycle": kl_divergence(enc_fake.mu, enc_fake.logvar),
        }
        mu = enc.mu.view(n_dom, batch, *enc.mu.shape[1:])
        centroids = {}
        if cfg.latent_loss == "centroid":
            pooled = [None] * n_dom  # under torchrun: every rank keeps the same centroids
            if self.dist.world_size > 1:
                pooled = distributed.mean_over_ranks(
                    torch.stack([m.detach().mean(dim=(0, 2, 3)) for m in mu]), self.dist.world_size)
            centroids = {domain: self.centroids.estimate(mu[d], domain, pooled[d])
                         for d, domain in enumerate(domains)}
            terms["latent"] = self.centroids.loss(centroids)
        else:
            terms["latent"] = torch.stack([batch_mean_latent_loss(mu[s], mu[t])
                                           for t, s in enumerate(source_of)]).mean()
        sources, translations = torch.cat([real[s] for s in source_of]), torch.cat(fakes)
        if self.pitch_net is not None:  # every translation must keep its source's pitch
            if cfg.pitch_loss == "labels":
                if pitch is None:
                    raise ValueError("train.pitch_loss: labels needs the crops' f0 and voicing")
                f0, voicing = pitch[:, source_of].transpose(0, 1).flatten(0, 1).unbind(1)
                terms["pitch"] = pitch_fit_loss(self.pitch_net(translations),
                                                pitch_labels(f0, voicing))
            else:
                terms["pitch"] = pitch_consistency(self.pitch_net, sources, translations)
        if self.config.loss.loudness > 0:  # ... and its dynamics
            terms["loudness"] = loudness_consistency(self.mel_loudness, sources, translations)
        latents = None
        if self.latent_critic is not None:  # the latent must not say which domain it came from
            terms["confusion"] = domain_confusion(self.latent_critic(enc.mu))
            latents = enc.mu.detach()
        if self.envelope_discriminators is not None:  # ... and take on the target's envelope
            terms["envelope"] = self.envelope_discriminators.generator_loss(
                fakes, domains, cfg.gan_loss, *self._envelope_notes(pitch, real_pitch, source_of))
        if self.domain_classifier is not None:  # ... and be named its target, not its source
            terms["domain_class"] = critic_loss(self.domain_classifier(translations),
                                                domain_labels(n_dom, batch, x.device))
        for t, target in enumerate(domains):
            terms[f"gan/{target}"] = generator_loss(
                model.discriminate(fakes[t], target, notes[source_of[t]]), cfg.gan_loss)
        return GeneratorLosses(terms, fakes, centroids, latents)

    def _envelope_notes(self, pitch: torch.Tensor | None, real_pitch: torch.Tensor | None,
                        source_of: list[int]) -> tuple[list[torch.Tensor] | None,
                                                       torch.Tensor | None]:
        """The notes the register-blind envelope discriminators compare: each translation's
        (its source's, as augmented) and the un-augmented real crops'; Nones when they are not
        register-blind."""
        if self.config.train.envelope_register != "blind":
            return None, None
        if pitch is None or real_pitch is None:
            raise ValueError("train.envelope_register: blind needs the crops' f0 and voicing")
        return [pitch[:, s] for s in source_of], real_pitch

    def _encode(self, flat: torch.Tensor, n_dom: int):
        """Encode ``(D * B, 1, F, T)``; returns the encoding and its samples as ``(D, B, ...)``."""
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        enc = self.model.encode(flat)
        z = self.model.sample(enc, self.noise)
        return enc, z.view(n_dom, -1, *z.shape[1:])

    def discriminator_losses(self, x: torch.Tensor, fakes: list[torch.Tensor],
                             templates: torch.Tensor | None = None, step: int = 0) -> dict:
        """``disc/<d>``: domain ``d``'s discriminator on its real crops ``x[:, d]`` against the
        (detached) translation into ``d``; with ``model.pitch_discriminator`` each with the
        template of its notes (the real crop's own, the translation's source's)."""
        cfg, model = self.config.train, self.model
        notes = [None] * x.shape[1] if templates is None else templates.transpose(0, 1)
        source_of = self.pairs(step)
        return {f"disc/{domain}": discriminator_loss(
                    model.discriminate(x[:, d], domain, notes[d]),
                    model.discriminate(fakes[d].detach(), domain, notes[source_of[d]]),
                    cfg.gan_loss)
                for d, domain in enumerate(self.domains)}

    def weighted_total(self, terms: dict, step: int) -> torch.Tensor:
        """The one place where loss weights are applied."""
        w, cfg = self.config.loss, self.config.train
        beta = beta_warmup(step, cfg.beta_warmup_steps)
        gan = torch.stack([v for k, v in terms.items() if k.startswith("gan/")]).mean()
        total = (w.recon * terms["recon"] + beta * w.kl * terms["kl"] + w.cycle * terms["cycle"]
                 + beta * w.kl_cycle * terms["kl_cycle"] + w.latent * terms["latent"] + w.gan * gan)
        # the optional terms, present only when their weight is on
        for name, weight in (("pitch", w.pitch), ("loudness", w.loudness),
                             ("confusion", w.latent_confusion), ("envelope", w.envelope_gan),
                             ("domain_class", w.domain_class)):
            if name in terms:
                total = total + weight * terms[name]
        return total

    def prepare_batch(self, batch: Batch, step: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The crops ``(B, D, 1, F, T)`` after pitch-shift augmentation (:meth:`augment`),
        their harmonic templates ``(B, D, 1, F, T)`` when the model takes them (else None),
        and their f0 (Hz) and voicing ``(B, D, 2, T)``, shifted alike."""
        x, f0, voiced = self.augment(batch, step)
        pitch = torch.stack([f0, voiced], 2)
        if not self.model.config.pitch_template:
            return x, None, pitch
        b, n_dom, _, n_f, n_t = x.shape
        templates = self.mel_pitch.template(f0.reshape(b * n_dom, n_t), voiced.reshape(b * n_dom, n_t))
        return x, templates.view(b, n_dom, 1, n_f, n_t), pitch

    def augment(self, batch: Batch, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crops ``(B, D, 1, F, T)``, f0 ``(B, D, T)`` and voicing ``(B, D, T)`` after
        pitch-shift augmentation (``train.pitch_shift``; unchanged when 0).

        Augmentation moves each crop by its own random interval, uniform in
        ``[-pitch_shift, pitch_shift]`` semitones (the mel axis warped, f0 scaled alike), so
        that register stops telling the domains apart. The draw is a function of (seed, step).
        """
        x, pitch = batch.specs.to(self.device), batch.pitch.to(self.device)
        b, n_dom, _, n_f, n_t = x.shape
        f0, voiced = pitch[:, :, 0], pitch[:, :, 1]
        span = self.config.train.pitch_shift
        if span > 0:
            draw = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + step)
            semitones = (torch.rand(b * n_dom, generator=draw) * 2 - 1) * span
            ratio = (2.0 ** (semitones / 12)).to(self.device)
            silence = float(-self.store.transform.norm_shift / self.store.transform.norm_scale)
            x = self.mel_pitch.shift(x.reshape(b * n_dom, 1, n_f, n_t), ratio, silence)
            x = x.view(b, n_dom, 1, n_f, n_t)
            f0 = f0 * ratio.view(b, n_dom, 1)
        return x, f0, voiced

    def train_step(self, batch: Batch) -> dict:
        """One generator and one discriminator update; returns detached raw terms (no sync), or
        ``{}`` when the step was skipped for a non-finite loss."""
        cfg = self.config.train
        batch = batch.to(self.device)  # once: augmentation and the envelope reals both read it
        x, templates, pitch = self.prepare_batch(batch, self.step)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)
        if self.step == self.config.init.unfreeze_after:
            self._apply_freeze()
        self._set_lr(self.step)

        for p in self.d_params:  # the generator loss needs no discriminator gradients
            p.requires_grad_(False)
        with autocast:
            g = self.losses(x, self.step, templates, pitch, batch.pitch)
            total = self.weighted_total(g.terms, self.step)
        for p in self.d_params:
            p.requires_grad_(id(p) not in self.frozen)
        with autocast:
            d_terms = self.discriminator_losses(x, g.fakes, templates, self.step)
            d_total = torch.stack(list(d_terms.values())).mean()
            if self.latent_critic is not None:  # the critic learns to name the latents' domains
                d_terms["critic"] = critic_loss(self.latent_critic(g.latents), domain_labels(
                    len(self.domains), x.shape[0], self.device))
                d_total = d_total + d_terms["critic"]
            if self.envelope_discriminators is not None:  # real envelopes: un-augmented crops
                d_terms["envelope_disc"] = self.envelope_discriminators.discriminator_loss(
                    batch.specs, g.fakes, self.domains, cfg.gan_loss,
                    *self._envelope_notes(pitch, batch.pitch, self.pairs(self.step)))
                d_total = d_total + d_terms["envelope_disc"]
            if self.domain_classifier is not None:  # it learns to name the real crops' domains
                n_dom = x.shape[1]
                d_terms["classifier"] = critic_loss(
                    self.domain_classifier(x.transpose(0, 1).flatten(0, 1)),
                    domain_labels(n_dom, x.shape[0], self.device))
                d_total = d_total + d_terms["classifier"]

        # The one deliberate host sync per step: a NaN/inf guard must decide before stepping,
        # and under torchrun all ranks must decide alike, or they fall out of step in the
        # gradient all-reduce.
        finite = (torch.isfinite(total) & torch.isfinite(d_total)).float()
        if not distributed.all_ranks_true(finite, self.dist.world_size):
            self.bad_steps += 1
            warnings.warn(f"step {self.step}: non-finite loss, update skipped "
                          f"({self.bad_steps} in a row)", RuntimeWarning, stacklevel=2)
            if self.bad_steps >= cfg.max_bad_steps:
                raise NonFiniteLossError(
                    f"{self.bad_steps} non-finite steps in a row at step {self.step}; the last "
                    f"good checkpoint is in {self.run_dir / 'checkpoints'}")
            self.step += 1
            return {}
        self.bad_steps = 0
        self.centroids.commit(g.centroids)  # only finite steps move the running centroids
        self._update(self.opt_g, self.g_params, total)
        self._update(self.opt_d, self.d_params, d_total)
        self.step += 1
        out = {f"loss/{k}": v.detach() for k, v in {**g.terms, **d_terms}.items()}
        out["loss/total"] = total.detach()
        return out

    # ---- learning rate --------------------------------------------------------------------------

    def lr_factor(self, step: int) -> float:
        """The LR multiplier at ``step``, a function of the step alone (so a resumed run, even
        one resumed with a larger ``max_steps``, picks up the right rate at once).

        Constant for the first ``lr_decay_start`` fraction of the ``total_epochs`` epochs, then
        linear per epoch over the remaining ``n`` epochs: ``1 - k / (n + 1)`` in the k-th of
        them (k = 1..n), so the rate would reach 0 one epoch after the last and no step trains
        at 0. (The reference steps its decay per batch, which drives the LR through zero.)
        """
        epoch = step // self.steps_per_epoch
        if epoch < self.decay_start_epoch:
            return 1.0
        n = self.total_epochs - self.decay_start_epoch
        k = min(epoch, self.total_epochs - 1) - self.decay_start_epoch + 1
        return 1.0 - k / (n + 1)

    def _set_lr(self, step: int) -> None:
        lr = self.config.train.lr * self.lr_factor(step)
        if self._thawed(step):  # a grown model trained jointly: gently
            lr *= self.config.init.unfreeze_lr_scale
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _update(self, optimizer, params, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params, self.dist.world_size)
        if self.config.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.train.grad_clip)
        optimizer.step()

    # ---- the loop -------------------------------------------------------------------------------

    def fit(self, max_steps: int | None = None) -> list[dict]:
        """Train until ``max_steps`` (default: the config's); returns the logged averages."""
        from tqdm import tqdm

        cfg = self.config.train
        max_steps = cfg.max_steps if max_steps is None else max_steps
        if max_steps > cfg.max_steps:
            raise ValueError(f"fit({max_steps}) goes past train.max_steps={cfg.max_steps}, the "
                             "length the LR schedule was built for; raise train.max_steps")
        if self.pitch_net is not None and not self.pitch_net_ready:
            self.fit_pitch_net()
        history, sums, count = [], {}, 0
        bar = tqdm(total=max_steps, initial=self.step, unit="step", desc="train",
                   disable=not self.progress or self.step >= max_steps)
        for batch in self.batches():
            if self.step >= max_steps:
                break
            terms = self.train_step(batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0) + v
            count += bool(terms)
            bar.update()
            if self.step % cfg.log_every == 0 or self.step == max_steps:
                if count:
                    logged = {k: float(v) / count for k, v in sums.items()}  # one sync per log
                    logged.update(step=self.step, lr=self.opt_g.param_groups[0]["lr"],
                                  beta=beta_warmup(self.step, cfg.beta_warmup_steps))
                    history.append(logged)
                    self._log_scalars(logged)
                    bar.set_postfix(recon=f"{logged['loss/recon']:.4f}",
                                    cycle=f"{logged['loss/cycle']:.4f}")
                sums, count = {}, 0
            if self.step % cfg.sample_every == 0:
                self._log_samples(batch)
            if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                self.save()
        bar.close()
        if self.writer is not None:
            self.writer.flush()
        return history

    def fit_pitch_net(self) -> float:
        """Fit the pitch network on training crops (pitch-shifted like the model's, so that it
        knows every register) against the store's pYIN labels, ``train.pitch_net_steps``
        updates, then freeze it. Returns the share of voiced frames of its last batches within
        50 cents (the fit's own diagnostic, printed with the progress)."""
        from tqdm import tqdm

        cfg, net = self.config.train, self.pitch_net
        data = MultiDomainCropDataset(self.store, "train", cfg.crop_frames, cfg.short_clips,
                                      seed=cfg.seed + 1)  # its own crops: the model's stay as they were
        order = torch.Generator().manual_seed(cfg.seed)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train().requires_grad_(True)
        step, hits = 0, []
        bar = tqdm(total=cfg.pitch_net_steps, unit="step", desc="pitch network",
                   disable=not self.progress)
        while step < cfg.pitch_net_steps:
            data.set_epoch(step)
            picks = torch.randperm(len(data), generator=order)[:cfg.batch_size].tolist()
            specs, pitch = (torch.stack(t) for t in zip(*(data[i] for i in picks)))
            x, f0, voiced = self.augment(Batch(specs, pitch), 1_000_000_000 + step)
            x, f0, voiced = x.flatten(0, 1), f0.flatten(0, 1), voiced.flatten(0, 1)
            logits = net(x)
            loss = pitch_fit_loss(logits, pitch_labels(f0, voiced))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits = (hits + [within_cents(logits.detach(), f0, voiced)])[-20:]
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", within50=f"{np.nanmean(hits):.2f}")
        bar.close()
        net.eval().requires_grad_(False)
        self.pitch_net_ready = True
        return float(np.nanmean(hits))

    # ---- logging --------------------------------------------------------------------------------

    def _tb(self):
        if self.writer is None and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self.writer

    def _log_scalars(self, logged: dict) -> None:
        writer = self._tb()
        if writer is None:
            return
        for key, value in logged.items():
            if key != "step":
                writer.add_scalar(key, value, self.step)

    @torch.no_grad()
    def _log_samples(self, batch: Batch) -> None:
        """Mel plots of source / reconstruction / every translation, and the translations'
        audio (PGHI), for the first item of the batch."""
        writer = self._tb()
        if writer is None:
            return
        from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

        self.model.eval()
        x, templates, _ = self.prepare_batch(batch, self.step)
        x = x[0]  # (D, 1, F, T)
        notes = [None] * len(x) if templates is None else templates[0, :, None]
        n = len(self.domains)
        fig = Figure(figsize=(2.2 * (n + 1), 2 * n))
        axes = fig.subplots(n, n + 1, squeeze=False)
        transform = self.store.transform
        for d, dom in enumerate(self.domains):
            axes[d][0].imshow(x[d, 0].float().cpu().numpy(), origin="lower", aspect="auto", vmin=0, vmax=1)
            axes[d][0].set_title(f"{dom} (source)", fontsize=7)
            for t, target in enumerate(self.domains):
                out = self.model.translate(x[d:d + 1], target, pitch=notes[d])[0, 0].float().cpu()
                axes[d][t + 1].imshow(out.numpy(), origin="lower", aspect="auto", vmin=0, vmax=1)
                axes[d][t + 1].set_title(("recon " if t == d else "-> ") + target, fontsize=7)
                if d == 0:
                    wav = transform.invert(out.unsqueeze(0), method="pghi")[0]
                    writer.add_audio(f"audio/{dom}_to_{target}", wav.clamp(-1, 1),
                                     self.step, sample_rate=transform.params.sample_rate)
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        writer.add_figure("mel/source_recon_translations", fig, self.step)
        self.model.train()

    def _write_config(self) -> None:
        import yaml

        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**to_dict(self.config), "store": str(self.store.root),
                    "domains": list(self.domains)}
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))

    # ---- growing a trained model (init.*) ------------------------------------------------------

    def _init_from(self, path: str | Path) -> None:
        """Start from ``path``'s weights where this model has the same tensors (see
        :class:`~timbre_transfer.training.config.InitConfig`); also its latent centroids and
        its pitch network, where it has them."""
        blob = read_checkpoint(path, map_location=self.device)
        if blob.get("transform") != self.store.transform.to_dict():
            raise ValueError(f"{path} was trained on mels of another transform or normalisation "
                             f"than {self.store.root}'s; grow a model on a store prepared with "
                             "its settings")
        report = grow.load_matching(self.model, blob["model"], str(path))
        saved_domains = list(blob["domains"])
        self.init_domains = [d for d in self.domains if d in saved_domains]
        new = [d for d in self.domains if d not in saved_domains]
        if new and self.config.init.new_generators == "nearest":
            if not self.init_domains:
                raise ValueError(f"init.new_generators=nearest: {path} shares no domain with "
                                 f"{self.store.root} to start the new ones from")
            for domain, nearest in self.nearest_domains(new).items():
                grow.copy_domain(self.model, nearest, domain)
        if "centroids" in blob.get("training", {}):
            grow.merge_centroids(self.centroids, blob["training"]["centroids"], saved_domains)
        if self.pitch_net is not None and "pitch_net" in blob:
            load_state_strict(self.pitch_net, blob["pitch_net"], f"{path} (pitch_net)")
            self.pitch_net.eval().requires_grad_(False)
            self.pitch_net_ready = True
        if self.progress:
            print(f"init from {path}: {report.summary()}; kept domains {self.init_domains}, "
                  f"new {new}, dropped {[d for d in saved_domains if d not in self.domains]}")

    @torch.no_grad()
    def nearest_domains(self, new: list[str], n_crops: int = 16) -> dict[str, str]:
        """For each domain in ``new``, the kept domain whose generator best reconstructs its
        first ``n_crops`` training crops (mel L1 through the encoder's mean)."""
        self.dataset.set_epoch(0)
        items = [self.dataset[i] for i in range(min(n_crops, len(self.dataset)))]
        specs = torch.stack([s for s, _ in items]).to(self.device)  # (B, D, 1, F, T)
        pitch = torch.stack([p for _, p in items]).to(self.device)  # (B, D, 2, T)
        out = {}
        for domain in new:
            d = self.domains.index(domain)
            notes = None
            if self.model.config.pitch_template:
                notes = self.mel_pitch.template(pitch[:, d, 0], pitch[:, d, 1])
            out[domain], _ = grow.nearest_domain(self.model, specs[:, d], notes, self.init_domains)
        return out

    def _thawed(self, step: int) -> bool:
        """Whether a model grown with frozen parts trains all of them at ``step``."""
        init = self.config.init
        return bool(init.freeze) and init.unfreeze_after is not None and step >= init.unfreeze_after

    def _apply_freeze(self) -> None:
        """Hold ``init.freeze``'s parts fixed until ``init.unfreeze_after`` (a function of the
        step alone, so that a resumed run freezes alike); they get no gradient and Adam leaves
        them as they are."""
        frozen = [] if self._thawed(self.step) else grow.frozen_parameters(
            self.model, self.config.init.freeze, self.init_domains)
        self.frozen = {id(p) for p in frozen}
        for p in self.model.parameters():
            p.requires_grad_(id(p) not in self.frozen)

    # ---- checkpoints ----------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict:
        from timbre_transfer import __version__

        return {
            "package_version": __version__,
            "config": to_dict(self.config),
            "transform": self.store.transform.to_dict(),
            "prepare": self.store.manifest["prepare"],  # inputs are normalised the same way
            "domains": list(self.domains),
            "pitch_medians": self.pitch_medians,  # for transfer --octave auto
            "init_domains": self.init_domains,  # what init.freeze holds, on resume
            "model": self.model.state_dict(),
            **({"pitch_net": self.pitch_net.state_dict()} if self.pitch_net_ready else {}),
            "training": {
                "step": self.step,
                "bad_steps": self.bad_steps,
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "centroids": self.centroids.state_dict(),
                **{key: net.state_dict() for key, net in self.adversaries().items()},
                "noise": self.noise.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
        }

    def save(self) -> Path | None:
        """``latest.pt`` and ``step_XXXXXXXX.pt`` (keeping the newest ``keep_last``); rank 0 only."""
        if not self.dist.is_main:
            return None
        return save_run_checkpoint(self.run_dir, self.step, self.checkpoint_payload(),
                                   self.config.train.keep_last)

    def load(self, path: str | Path) -> None:
        """Restore everything :meth:`checkpoint_payload` saved; the config must match."""
        blob = read_checkpoint(path, map_location=self.device)
        try:  # filled in with today's defaults: a key added since is no difference
            saved = to_dict(build(RunConfig, blob["config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: its config does not fit this package version ({exc})") from exc
        check_resumable(path, saved, to_dict(self.config), RESUMABLE_CHANGES)
        if blob["domains"] != list(self.domains):
            raise ValueError(f"{path} has domains {blob['domains']}, the store {self.domains}")
        if "training" not in blob:
            raise KeyError(f"{path} holds no training state (an export?); cannot resume from it")
        state = blob["training"]
        load_state_strict(self.model, blob["model"], f"{path} (model)")
        if self.pitch_net is not None and "pitch_net" in blob:
            load_state_strict(self.pitch_net, blob["pitch_net"], f"{path} (pitch_net)")
            self.pitch_net.eval().requires_grad_(False)
            self.pitch_net_ready = True
        for key, net in self.adversaries().items():  # training only: never in an export
            if key not in state:
                raise KeyError(f"{path} holds no {key} to resume its loss with (its loss "
                               "weight was 0 when it was saved)")
            load_state_strict(net, state[key], f"{path} ({key})")
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.centroids.load_state_dict(state["centroids"])
        self.noise.set_state(state["noise"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.step, self.bad_steps = int(state["step"]), int(state["bad_steps"])
        self.init_domains = list(blob.get("init_domains", []))
        self._apply_freeze()
