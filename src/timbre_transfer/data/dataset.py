"""Training crops from a feature store (read through :mod:`timbre_transfer.data.store`)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

# FeatureStore and DomainClips live in store.py; importers of data.dataset.FeatureStore still work
from timbre_transfer.data.store import DomainClips, FeatureStore


class CropDataset(Dataset):
    """Random fixed-length crops, balanced across domains, each
    ``(spec (1, n_mels, T), domain_id)``.

    Item ``i`` belongs to domain ``i % n_domains``, so every run of ``n_domains`` consecutive
    indices (and any shuffled epoch) holds each domain equally often, however small it is. Within
    a domain a clip is drawn with probability proportional to its length, then a uniform offset.
    Each item's randomness comes from ``(seed, epoch, i)``, so results do not depend on workers or
    on which rank of a ``DistributedSampler`` reads it; call :meth:`set_epoch` between epochs.

    Args:
        store: a :class:`FeatureStore` or its path.
        split: "train" or "val".
        crop_frames: T, frames per crop.
        short_clips: "pad" (clips shorter than a crop are padded on the right with silence, the
            normalised value of zero energy) or "exclude".
        length: items per epoch (default: the split's total frames // the frames an item holds,
            at least one per domain).
        seed: base seed.
    """

    all_domains = False  # one crop per item; MultiDomainCropDataset takes one of every domain

    def __init__(self, store, split: str = "train", crop_frames: int = 128,
                 short_clips: str = "pad", length: int | None = None, seed: int = 0):
        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        if short_clips not in ("pad", "exclude"):
            raise ValueError(f"short_clips must be 'pad' or 'exclude', got {short_clips!r}")
        if crop_frames < 1:
            raise ValueError(f"crop_frames must be positive, got {crop_frames}")
        self.crop_frames = crop_frames
        self.seed, self.epoch = seed, 0
        transform = self.store.transform
        self.shift = float(transform.norm_shift)
        self.scale = float(transform.norm_scale)
        self.domains = self.store.domains
        self.per_domain = []
        for domain in self.domains:
            clips = self.store.clips(domain, split)
            if short_clips == "exclude":
                keep = clips.frames >= crop_frames
                clips = DomainClips(clips.features, clips.offsets[keep], clips.frames[keep],
                                    [f for f, k in zip(clips.files, keep) if k], clips.controls)
            if len(clips.frames) == 0:
                at_least = f" of at least {crop_frames} frames" if short_clips == "exclude" else ""
                raise ValueError(f"domain {domain!r} has no {split} clips" + at_least)
            self.per_domain.append((clips, np.cumsum(clips.frames) / clips.frames.sum()))
        total = sum(int(c.frames.sum()) for c, _ in self.per_domain)
        crops_per_item = len(self.domains) if self.all_domains else 1
        self.length = length or max(total // (crop_frames * crops_per_item), len(self.domains))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        domain_id = i % len(self.domains)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return torch.from_numpy(self._crop(domain_id, rng)[0][None]), domain_id

    def _crop(self, domain_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One normalised crop ``(n_mels, crop_frames)`` float32 of a domain, and its pitch
        ``(2, crop_frames)``: f0 (Hz) and voicing probability (0 where padded)."""
        clips, cumulative = self.per_domain[domain_id]
        clip = min(int(np.searchsorted(cumulative, rng.random(), side="right")),
                   len(cumulative) - 1)
        frames = int(clips.frames[clip])
        offset = int(rng.integers(0, max(frames - self.crop_frames, 0) + 1))
        start = int(clips.offsets[clip]) + offset
        rows = clips.features[start:start + min(frames, self.crop_frames)]
        crop = np.zeros((self.crop_frames, rows.shape[1]), dtype=np.float32)  # log1p(0) = 0
        crop[: len(rows)] = rows
        pitch = np.zeros((2, self.crop_frames), dtype=np.float32)
        pitch[:, : len(rows)] = clips.controls[start:start + len(rows), :2].T
        return ((crop - self.shift) / self.scale).T, pitch


class MultiDomainCropDataset(CropDataset):
    """One crop from EVERY domain per item: ``(specs (n_domains, 1, n_mels, T), pitch
    (n_domains, 2, T))``, pitch being each crop's f0 (Hz) and voicing probability.

    What the multi-domain training step consumes; a DataLoader batch is
    ``(B, n_domains, 1, n_mels, T)`` and ``(B, n_domains, 2, T)``. Same sampling and seeding as
    :class:`CropDataset`.
    """

    all_domains = True

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        specs, pitch = zip(*(self._crop(d, rng) for d in range(len(self.domains))))
        return torch.from_numpy(np.stack(specs)[:, None]), torch.from_numpy(np.stack(pitch))
