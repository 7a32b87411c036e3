"""Training crops from a feature store (see :mod:`timbre_transfer.data.prepare`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from timbre_transfer.data.prepare import STORE_FORMAT


@dataclass
class DomainClips:
    """The clips of one domain in one split: rows of the domain's feature array."""

    features: np.ndarray  # (total_frames, n_mels) float16, memmapped
    offsets: np.ndarray  # (n_clips,) first row of each clip
    frames: np.ndarray  # (n_clips,) length of each clip in frames
    files: list[str]
    controls: np.ndarray  # (total_frames, 4) float32, memmapped: f0, voicing, voiced, loudness

    def clip_controls(self, i: int):
        """The :class:`~timbre_transfer.audio.features.Controls` of clip ``i`` at the mel hop."""
        from timbre_transfer.audio.features import Controls

        return Controls.from_array(self.controls[self.offsets[i]:self.offsets[i] + self.frames[i]])


class FeatureStore:
    """Read-only view of a prepared store: its transform, domains and memmapped features."""

    def __init__(self, root: str | Path):
        from timbre_transfer.audio.transform import AudioTransform

        self.root = Path(root)
        manifest_path = self.root / "store.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{self.root}: not a feature store (no store.json); run `timbre-transfer prepare`"
            )
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != STORE_FORMAT:
            raise ValueError(f"{manifest_path}: store format {self.manifest.get('format')}, "
                             f"this package reads format {STORE_FORMAT}; prepare it again")
        self.transform = AudioTransform.from_dict(self.manifest["transform"])
        self.domains: list[str] = list(self.manifest["domains"])
        self._features = {}
        self._controls = {}
        self._index = {}
        self._by_file = {}
        for domain in self.domains:
            self._features[domain] = np.load(self.root / domain / "features.npy", mmap_mode="r")
            self._controls[domain] = np.load(self.root / domain / "controls.npy", mmap_mode="r")
            self._index[domain] = json.loads((self.root / domain / "index.json").read_text())

    def clips(self, domain: str, split: str | None = "train") -> DomainClips:
        """The clips of ``domain`` in ``split`` ("train", "val", or None for all)."""
        if domain not in self._index:
            raise KeyError(f"unknown domain {domain!r}; the store has {self.domains}")
        rows = [e for e in self._index[domain] if split is None or e["split"] == split]
        return DomainClips(
            self._features[domain],
            np.array([e["offset"] for e in rows], dtype=np.int64),
            np.array([e["frames"] for e in rows], dtype=np.int64),
            [e["file"] for e in rows],
            self._controls[domain],
        )

    def pitch_medians(self, split: str = "train") -> dict[str, float | None]:
        """Each domain's median f0 (Hz) over the voiced frames of its ``split`` clips: its
        register (None for a domain with no voiced frame)."""
        medians = {}
        for domain in self.domains:
            clips = self.clips(domain, split)
            f0 = np.concatenate([np.asarray(clips.controls[o:o + n]) for o, n in
                                 zip(clips.offsets, clips.frames)] or [np.zeros((0, 4))])
            voiced = f0[f0[:, 2] > 0.5, 0] if len(f0) else f0[:0, 0]
            medians[domain] = float(np.median(voiced)) if voiced.size else None
        return medians

    def clip_audio(self, domain: str, file: str, trim: bool = True) -> np.ndarray:
        """The audio of one clip as it was analysed: its source file decoded at the store's
        rate and cleaned with the store's prepare options ``(T,)`` float32.

        ``trim=False`` keeps the file's own timeline (no silence trimmed or shortened, for
        comparing with time-stamped annotations such as f0 truth) at the level cleaning gave.

        Raises:
            FileNotFoundError: the source file moved since ``prepare`` (the path is named).
            ValueError: the file changed since ``prepare`` (its length no longer matches).
        """
        from timbre_transfer.audio.io import load_audio
        from timbre_transfer.data.prepare import PrepareOptions, clean_audio

        if domain not in self._by_file:  # built once per domain: stores may hold many files
            self._by_file[domain] = {e["file"]: e for e in self._index.get(domain, [])}
        entry = self._by_file[domain].get(file)
        if entry is None:
            raise KeyError(f"{self.root}: no clip {file!r} in domain {domain!r}")
        sample_rate = self.transform.params.sample_rate
        raw = load_audio(entry["path"], sample_rate)
        wav = clean_audio(raw, sample_rate, PrepareOptions.from_dict(self.manifest["prepare"]))
        frames = len(wav) // self.transform.params.hop_length + 1
        if frames != entry["frames"]:
            raise ValueError(f"{entry['path']} changed since it was prepared ({frames} frames, "
                             f"the store has {entry['frames']}); prepare {self.root} again")
        if not trim:  # cleaning applies one gain; its loudest sample is never trimmed
            return (raw * (np.abs(wav).max() / np.abs(raw).max())).astype(np.float32)
        return wav


class CropDataset(Dataset):
    """Random fixed-length crops, balanced across domains, each ``(spec (1, n_mels, T), domain_id)``.

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
                raise ValueError(f"domain {domain!r} has no {split} clips"
                                 + (f" of at least {crop_frames} frames" if short_clips == "exclude" else ""))
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
        clip = min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(cumulative) - 1)
        frames = int(clips.frames[clip])
        start = int(clips.offsets[clip]) + int(rng.integers(0, max(frames - self.crop_frames, 0) + 1))
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
