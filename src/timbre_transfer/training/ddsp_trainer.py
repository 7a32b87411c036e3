"""Training the DDSP head on the real audio of one or more domains of a feature store.

Input: each clip's normalised mel and its f0, voicing and loudness (both from the store: ``prepare``
analyses the controls once, for training, this head and evaluation alike); target: the audio itself,
through the multi-scale spectral loss. Checkpoints (atomic, ``weights_only`` loading), TensorBoard
scalars and exact resume work as for the VAE-GAN :class:`~timbre_transfer.training.trainer.Trainer`
and use the same checkpoint functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from timbre_transfer.checkpoint import HEAD_KIND, load_state_strict, read_checkpoint
from timbre_transfer.config import to_dict
from timbre_transfer.models.ddsp_head import Controls, DDSPConfig, DDSPHead
from timbre_transfer.training.checkpoint import (
    check_resumable,
    check_store_tracker,
    save_run_checkpoint,
)
from timbre_transfer.training.run_log import RunLog

# Settings a resumed run may change (bookkeeping, and max_steps to train longer).
RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.checkpoint_every",
                     "train.keep_last"}


@dataclass(frozen=True)
class DDSPTrainConfig:
    batch_size: int = 8
    crop_frames: int = 64  # head frames per crop: ~1 s at hop 256 and 16 kHz
    max_steps: int = 3000
    lr: float = 1e-3
    mel_weight: float = 1.0  # the log-mel term of the spectral loss
    log_every: int = 25
    checkpoint_every: int = 250
    keep_last: int = 3
    seed: int = 0


@dataclass(frozen=True)
class DDSPRunConfig:
    head: DDSPConfig = field(default_factory=DDSPConfig)
    train: DDSPTrainConfig = field(default_factory=DDSPTrainConfig)


def load_ddsp_config(path=None, overrides=()) -> DDSPRunConfig:
    """A :class:`DDSPRunConfig` from YAML (sections ``head`` and ``train``) and overrides."""
    from timbre_transfer.config import build, load_config

    return build(DDSPRunConfig, load_config(path, list(overrides)))


@dataclass
class _Clip:
    mel: np.ndarray  # (N, n_mels) normalised, head-rate frames
    controls: Controls
    audio: np.ndarray  # (T,)
    descriptors: np.ndarray | None = None  # (N, D) scaled, NaN where undefined


# what a measured descriptor is clipped to before it conditions the head (a pure tone's
# noisiness reads -250 dB)
DESCRIPTOR_RANGE = {"brightness": (-1.0, 6.0), "noisiness": (-60.0, 20.0),
                    "odd_even": (-40.0, 40.0)}


class DDSPTrainer:
    """Trains a :class:`DDSPHead` on the train split of ``domains`` of a feature store.

    Args:
        domains: the domains whose audio the head learns (one head may serve several).
        run_dir: ``config.yaml``, ``checkpoints/``, ``tensorboard/``. The f0, voicing and
            loudness come from the store's controls (``prepare`` analyses them once).
    """

    def __init__(self, config: DDSPRunConfig, store, domains: list[str], run_dir: str | Path,
                 resume: bool = False, device: str | None = None, progress: bool = True):
        from timbre_transfer.data.store import FeatureStore
        from timbre_transfer.losses.spectral import MultiScaleSpectralLoss

        self.config = config
        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        for d in domains:
            if d not in self.store.domains:
                raise KeyError(f"unknown domain {d!r}; the store has {self.store.domains}")
        self.domains = list(domains)
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        p = self.store.transform.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)
            self.head = DDSPHead(p.n_mels, p.sample_rate, p.hop_length, config.head,
                                 self.store.f0_tracker).to(self.device)
        self.loss = MultiScaleSpectralLoss(mel_weight=config.train.mel_weight,
                                           sample_rate=p.sample_rate).to(self.device)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=config.train.lr)
        self.step = 0
        self.log = RunLog(self.run_dir)
        self.clips = self._load_clips()
        lengths = np.array([len(c.controls.f0_hz) for c in self.clips], dtype=np.float64)
        self.clip_weights = lengths / lengths.sum()  # clips are drawn in proportion to length
        if resume:
            self.load(self.run_dir / "checkpoints" / "latest.pt")
        self.log.write_config({**to_dict(config), "domains": self.domains})

    # ---- data -----------------------------------------------------------------------------------

    def _load_clips(self) -> list[_Clip]:
        """Every train clip of the domains with its controls, read from the store's controls
        cache (analysed once by ``prepare``) at the head's frames."""
        stride = self.config.head.mel_stride
        jobs = []
        for d in self.domains:
            c = self.store.clips(d, "train")
            jobs += [(d, c, i) for i in range(len(c.files))]
        if not jobs:
            raise ValueError(f"{self.store.root}: no train clips in {self.domains}")
        clips = []
        for domain, c, i in jobs:
            audio = self.store.clip_audio(domain, c.files[i])
            full = c.clip_controls(i)
            controls = Controls(full.f0_hz[::stride], full.voiced_prob[::stride],
                                full.loudness_db[::stride], full.voiced[::stride])
            rows = np.asarray(c.features[c.offsets[i]:c.offsets[i] + c.frames[i]], dtype=np.float32)
            mel = self.store.transform.normalize(torch.from_numpy(rows)).numpy()[::stride]
            clips.append(_Clip(mel, controls, audio, self._descriptors(audio, controls)))
        return clips

    def _descriptors(self, audio: np.ndarray, controls: Controls) -> np.ndarray | None:
        """The head's conditioning descriptors of a training clip ``(N, D)``, scaled, NaN where
        undefined (unvoiced frames); None for a head without them."""
        from timbre_transfer.audio.descriptors import describe
        from timbre_transfer.models.ddsp_head import DESCRIPTOR_SCALE

        names = self.config.head.descriptors
        if not names:
            return None
        voiced = controls.voiced if controls.voiced is not None else controls.voiced_prob > 0.5
        f0 = np.where(voiced, controls.f0_hz, np.nan)
        n = len(f0)
        d = describe(_fit(audio, (n - 1) * self.head.hop_length), self.head.sample_rate,
                     self.head.hop_length, f0_hz=f0, attacks=False)
        columns = [np.clip(getattr(d, name), *DESCRIPTOR_RANGE[name]) * DESCRIPTOR_SCALE[name]
                   for name in names]
        return np.stack(columns, 1).astype(np.float32)

    def batch(self, step: int):
        """The crops of ``step``: a function of (seed, step) only, so a resumed run sees the
        same data as an uninterrupted one. Clips are drawn in proportion to their length."""
        cfg = self.config.train
        rng = np.random.default_rng([cfg.seed, step])
        picks = rng.choice(len(self.clips), size=cfg.batch_size, p=self.clip_weights)
        hop, n = self.head.hop_length, cfg.crop_frames
        mel, f0, voiced, loud, audio, desc = [], [], [], [], [], []
        for i in picks:
            clip = self.clips[i]
            start = int(rng.integers(0, max(len(clip.controls.f0_hz) - n, 0) + 1))
            take = lambda a, start=start: _fit(a[start:start + n], n)
            mel.append(_fit(clip.mel[start:start + n], n))
            f0.append(take(clip.controls.f0_hz))
            voiced.append(take(clip.controls.voiced_prob))
            loud.append(_fit(clip.controls.loudness_db[start:start + n], n, fill=-100.0))
            audio.append(_fit(clip.audio[start * hop:(start + n) * hop], n * hop))
            if clip.descriptors is not None:
                desc.append(_fit(clip.descriptors[start:start + n], n, fill=np.nan))
        as_t = lambda x: torch.as_tensor(np.stack(x), dtype=torch.float32, device=self.device)
        return (as_t(mel), as_t(f0), as_t(voiced), as_t(loud), as_t(audio),
                as_t(desc) if desc else None)

    # ---- training -------------------------------------------------------------------------------

    def train_step(self) -> torch.Tensor:
        mel, f0, voiced, loud, audio, desc = self.batch(self.step)
        seed = self.config.train.seed * 1_000_003 + self.step
        if desc is None:
            out = self.head(mel, f0, voiced, loud, audio.shape[-1], noise_seed=seed)
            loss = self.loss(audio, out)
        else:  # conditioned on the measured descriptors; the decoder learns to predict them
            known = torch.isfinite(desc)
            amp, dist, noise, predicted = self.head.decoder(mel, f0, voiced, loud,
                                                            torch.where(known, desc, 0.0))
            out = self.head.synthesize(f0, amp, dist, noise, audio.shape[-1], noise_seed=seed)
            error = (predicted - torch.where(known, desc, predicted.detach())).abs()
            loss = self.loss(audio, out) + error.sum() / known.sum().clamp_min(1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def fit(self, max_steps: int | None = None) -> list[dict]:
        """Train until ``max_steps`` (default: the config's); returns the logged averages."""
        from tqdm import tqdm

        cfg = self.config.train
        max_steps = cfg.max_steps if max_steps is None else max_steps
        history, total, count = [], 0.0, 0
        self.head.train()
        bar = tqdm(total=max_steps, initial=self.step, unit="step", desc="train-ddsp",
                   disable=not self.progress or self.step >= max_steps)
        while self.step < max_steps:
            total, count = total + self.train_step(), count + 1
            bar.update()
            if self.step % cfg.log_every == 0 or self.step == max_steps:
                logged = {"step": self.step, "loss/spectral": float(total) / count}
                history.append(logged)
                self.log.scalars(logged, self.step)
                bar.set_postfix(loss=f"{logged['loss/spectral']:.3f}")
                total, count = 0.0, 0
            if self.step % cfg.checkpoint_every == 0 or self.step == max_steps:
                self.save()
        bar.close()
        self.log.flush()
        return history

    # ---- checkpoints ----------------------------------------------------------------------------

    def checkpoint_payload(self) -> dict:
        from timbre_transfer import __version__

        return {
            "kind": HEAD_KIND,
            "package_version": __version__,
            "config": to_dict(self.config),
            "transform": self.store.transform.to_dict(),
            # the store's cleaning and f0 tracker: the controls the head learnt to render from
            "prepare": self.store.manifest["prepare"],
            "domains": self.domains,
            "model": self.head.state_dict(),
            "training": {"step": self.step, "optimizer": self.optimizer.state_dict()},
        }

    def save(self) -> Path:
        return save_run_checkpoint(self.run_dir, self.step, self.checkpoint_payload(),
                                   self.config.train.keep_last)

    def load(self, path: str | Path) -> None:
        blob = read_checkpoint(path, map_location=self.device)
        if blob.get("kind") != HEAD_KIND:
            raise ValueError(f"{path}: not a DDSP head checkpoint")
        check_resumable(path, blob["config"], to_dict(self.config), RESUMABLE_CHANGES)
        if blob["domains"] != self.domains:
            raise ValueError(f"{path} was trained on {blob['domains']}, not {self.domains}")
        check_store_tracker(blob, self.store, str(path))
        load_state_strict(self.head, blob["model"], f"{path} (DDSP head)")
        self.optimizer.load_state_dict(blob["training"]["optimizer"])
        self.step = int(blob["training"]["step"])


def _fit(a: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    """``a`` cut or padded (with ``fill``) to length ``n`` along its first axis."""
    if len(a) >= n:
        return a[:n]
    pad = np.full((n - len(a),) + a.shape[1:], fill, dtype=a.dtype)
    return np.concatenate([a, pad])
