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

from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.config import to_dict
from timbre_transfer.data.dataset import MultiDomainCropDataset
from timbre_transfer.data.store import FeatureStore
from timbre_transfer.losses import LossTerm, StepContext, build_terms
from timbre_transfer.losses.adversarial import discriminator_loss, generator_loss
from timbre_transfer.losses.latent import LatentCentroids, batch_mean_latent_loss
from timbre_transfer.losses.terms import TermSetup
from timbre_transfer.losses.vae import beta_warmup, kl_divergence, l1
from timbre_transfer.models.multidomain import TimbreModel
from timbre_transfer.training import distributed, grow
from timbre_transfer.training.checkpoint import (
    restore_trainer,
    save_run_checkpoint,
    trainer_payload,
)
from timbre_transfer.training.config import RunConfig
from timbre_transfer.training.run_log import RunLog


@dataclass
class GeneratorLosses:
    """What :meth:`Trainer.losses` computes.

    Attributes:
        terms: raw (unweighted) loss terms by name: ``recon``, ``kl``, ``cycle``, ``kl_cycle``,
            ``latent``, ``gan/<domain>``, and each optional term's name.
        fakes: ``fakes[t]``, the translation into target domain ``t``, ``(B, 1, F, T)``.
        centroids: this step's latent centroid estimates by domain (empty for the batch-mean
            latent loss); the trainer commits them once the step is known to be finite.
        context: the step as the optional terms saw it (their adversaries' update reads it).
    """

    terms: dict[str, torch.Tensor]
    fakes: list[torch.Tensor]
    centroids: dict[str, torch.Tensor]
    context: StepContext


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
        self.domains = grow.run_domains(self.store, config.init)
        if len(self.domains) < 2:
            raise ValueError(f"training needs at least 2 domains, the store has {self.domains}")
        config.check_n_mels(self.store.transform.params.n_mels)  # the store fixes n_mels
        self.dataset = MultiDomainCropDataset(self.store, "train", cfg.crop_frames,
                                              cfg.short_clips, seed=cfg.seed)
        per_step = cfg.batch_size * self.dist.world_size
        self.steps_per_epoch = max(1, len(self.dataset) // per_step)
        self.total_epochs = math.ceil(cfg.max_steps / self.steps_per_epoch)

        self.model = TimbreModel(config.model, self.domains).to(self.device)
        self.model.set_levels(self.store.transform)
        self.mel_pitch = MelPitch.of(self.store.transform.params).to(self.device)
        self.pitch_medians = self.store.pitch_medians()
        # the optional loss terms whose weight is on (losses/terms.py), in the config's order
        self.terms: dict[str, LossTerm] = {
            name: term.to(self.device) for name, term in build_terms(
                TermSetup(config, self.store.transform, list(self.domains))).items()}
        self.use_bf16 = distributed.native_bf16(self.device) if cfg.bf16 == "auto" else cfg.bf16
        self.channels_last = cfg.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.centroids = LatentCentroids(self.domains, cfg.centroid_momentum).to(self.device)
        self.init_domains: list[str] = []  # the domains init.checkpoint gave this model
        self.frozen: set[int] = set()  # ids of the parameters held fixed at this step
        if config.init.checkpoint and not resume:
            grow.init_from(self, config.init.checkpoint)
        self.g_params = self.model.generator_parameters()
        self.d_params = self.model.discriminator_parameters()
        for adversary in self.adversaries().values():  # trained with the discriminators
            self.d_params = [*self.d_params, *adversary.parameters()]
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr, betas=cfg.betas)
        self.decay_start_epoch = int(self.total_epochs * cfg.lr_decay_start)
        self._set_lr(0)
        self.noise = torch.Generator(self.device).manual_seed(cfg.seed + self.dist.rank)
        self.step = 0
        self.bad_steps = 0
        self.log = RunLog(self.run_dir, enabled=self.dist.is_main)
        grow.apply_freeze(self)
        if resume:
            self.load(self.run_dir / "checkpoints" / "latest.pt")
        self.log.write_config({**to_dict(self.config), "store": str(self.store.root),
                               "domains": list(self.domains)})

    def adversaries(self) -> dict[str, torch.nn.Module]:
        """The optional terms' training-only nets, updated with the discriminators, by their
        checkpoint key."""
        return {term.adversary_key: term.adversary for term in self.terms.values()
                if term.adversary is not None}

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
               pitch: torch.Tensor | None = None) -> GeneratorLosses:
        """Raw generator-side loss terms for a batch ``(B, D, 1, F, T)`` (``x[:, d]``: crops of
        domain ``d``), with the translations the discriminators judge next.

        Each target domain ``t`` is paired with a source ``s = self.pairs(step)[t]``:

        - recon: ``G_d(E(x_d)) ~ x_d``, every domain through its own generator;
        - translation: ``fake_t = G_t(E(x_s))``, judged by ``D_t`` (``gan/<t>``);
        - cycle: ``G_s(E(fake_t)) ~ x_s``, back to where it came from;
        - kl / kl_cycle: of the encodings of the real crops / of the translations;
        - latent: the domains' latent centroids pulled together;
        - each optional term whose weight is on (:attr:`terms`), from the step's
          :class:`~timbre_transfer.losses.terms.StepContext` (``pitch (B, D, 2, T)``: the crops'
          f0 in Hz and voicing, as :meth:`prepare_batch` returns them).

        With ``model.pitch_template``, ``templates (B, D, C, F, T)`` are the crops' notes
        (:meth:`prepare_batch`), and every generator plays the notes of the crop it started
        from: the translation and the cycle both get the source's.
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
        # built once: every term that reads them shares one node of the graph
        context = StepContext(real=real, fakes=fakes, source_of=source_of,
                              sources=torch.cat([real[s] for s in source_of]),
                              translations=torch.cat(fakes),
                              notes=None if templates is None else templates.transpose(0, 1),
                              pitch=pitch, domains=list(domains))
        for name, term in self.terms.items():
            terms[name] = term.generator_loss(context)
        for t, target in enumerate(domains):
            terms[f"gan/{target}"] = generator_loss(
                model.discriminate(fakes[t], target, notes[source_of[t]]), cfg.gan_loss)
        return GeneratorLosses(terms, fakes, centroids, context)

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
        for name in self.terms:  # the optional terms, each under its own weight's name
            if name in terms:
                total = total + getattr(w, name) * terms[name]
        return total

    def prepare_batch(self, batch: Batch, step: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The crops ``(B, D, 1, F, T)`` after pitch-shift augmentation (:meth:`augment`),
        their notes ``(B, D, C, F, T)`` when the model takes them (else None; the harmonic
        template, and for a source-filter model the comb), and their f0 (Hz) and voicing
        ``(B, D, 2, T)``, shifted alike."""
        x, f0, voiced = self.augment(batch, step)
        if self.config.init.stand_ins:  # the checkpoint's domains, from the store's crops
            x, f0, voiced = grow.with_stand_ins(self, x, f0, voiced)
        pitch = torch.stack([f0, voiced], 2)
        if not self.model.config.pitch_template:
            return x, None, pitch
        b, n_dom, _, n_f, n_t = x.shape
        templates = self.mel_pitch.notes(f0.reshape(b * n_dom, n_t),
                                         voiced.reshape(b * n_dom, n_t),
                                         self.model.config.source_filter)
        return x, templates.view(b, n_dom, -1, n_f, n_t), pitch

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
        x, templates, pitch = self.prepare_batch(batch.to(self.device), self.step)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)
        if self.step == self.config.init.unfreeze_after:
            grow.apply_freeze(self)
        self._set_lr(self.step)

        for p in self.d_params:  # the generator loss needs no discriminator gradients
            p.requires_grad_(False)
        with autocast:
            g = self.losses(x, self.step, templates, pitch)
            total = self.weighted_total(g.terms, self.step)
        for p in self.d_params:
            p.requires_grad_(id(p) not in self.frozen)
        with autocast:
            d_terms = self.discriminator_losses(x, g.fakes, templates, self.step)
            d_total = torch.stack(list(d_terms.values())).mean()
            for term in self.terms.values():  # the terms' adversaries learn alongside
                for name, value in term.adversary_loss(g.context).items():
                    d_terms[name] = value
                    d_total = d_total + value

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
        if grow.thawed(self.config.init, step):  # a grown model trained jointly: gently
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
        self.prepare_terms()
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
                    self.log.scalars(logged, self.step)
                    bar.set_postfix(recon=f"{logged['loss/recon']:.4f}",
                                    cycle=f"{logged['loss/cycle']:.4f}")
                sums, count = {}, 0
            if self.step % cfg.sample_every == 0 and self.log.enabled:
                self.log.samples(self.model, *self.prepare_batch(batch, self.step)[:2],
                                 self.domains, self.store.transform, self.step)
            if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                self.save()
        bar.close()
        self.log.flush()
        return history

    def prepare_terms(self) -> dict[str, float | None]:
        """Run the ``prepare`` step of every optional term not yet prepared (the pitch
        network's fit), before the first step; returns each one's diagnostic."""
        return {name: term.prepare(self.term_crops(), self.progress)
                for name, term in self.terms.items() if not term.ready}

    def term_crops(self):
        """Training crops for the terms' ``prepare``, forever: ``batch_size`` draws of every
        domain, pitch-shifted like the model's (so that a pitch network knows every register),
        flattened to ``(x (N, 1, F, T), f0 (N, T), voicing (N, T))``. Their own crops and draws
        (seeded apart from the model's), so the model's stay as they were."""
        cfg = self.config.train
        data = MultiDomainCropDataset(self.store, "train", cfg.crop_frames, cfg.short_clips,
                                      seed=cfg.seed + 1)
        order = torch.Generator().manual_seed(cfg.seed)
        step = 0
        while True:
            data.set_epoch(step)
            picks = torch.randperm(len(data), generator=order)[:cfg.batch_size].tolist()
            specs, pitch = (torch.stack(t) for t in zip(*(data[i] for i in picks)))
            x, f0, voiced = self.augment(Batch(specs, pitch), 1_000_000_000 + step)
            yield x.flatten(0, 1), f0.flatten(0, 1), voiced.flatten(0, 1)
            step += 1

    # ---- checkpoints ----------------------------------------------------------------------------

    def save(self) -> Path | None:
        """``latest.pt`` and ``step_XXXXXXXX.pt`` (keeping the newest ``keep_last``); rank 0
        only. What they hold: :func:`~timbre_transfer.training.checkpoint.trainer_payload`."""
        if not self.dist.is_main:
            return None
        return save_run_checkpoint(self.run_dir, self.step, trainer_payload(self),
                                   self.config.train.keep_last)

    def load(self, path: str | Path) -> None:
        """Restore everything :meth:`save` saved; the config must match (see
        :func:`~timbre_transfer.training.checkpoint.restore_trainer`)."""
        restore_trainer(self, path)
