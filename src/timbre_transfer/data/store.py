"""The feature store on disk: the one module that knows its layout, writes it and reads it.

Layout (``FEATURES_DIR``)::

    store.json              transform (params + normalisation statistics), its hash, the prepare
                            options, the domains and the seeded file-level train/val split
    <domain>/features.npy   float16 log1p mel frames of all files, (total_frames, n_mels), memmapped
    <domain>/controls.npy   float32 performance controls of every frame, (total_frames, 4):
                            f0 (Hz, unvoiced frames filled), voicing probability, voiced (0/1),
                            A-weighted loudness (dB); same rows as features.npy. The f0
                            tracker (``prepare.f0_tracker`` in store.json) runs at
                            CONTROL_STRIDE x the mel hop and is interpolated onto the mel frames
                            (:data:`timbre_transfer.data.prepare.CONTROL_STRIDE`).
    <domain>/index.json     one entry per file: name, source path, offset, frames, seconds, split
    prepare_report.json     per-domain counts and durations, and every skipped file with its reason
    .work/<hash>/           per-file results while preparing ("parts", below); an interrupted or
                            failed run resumes from here

``store.json`` is written last: a folder without it is not a finished store. Features are stored
un-normalised (log1p mel); the statistics live in ``store.json`` and are applied when crops are
read, so they can be refitted without touching the features.

A part is one analysed file in ``.work/<hash>/<domain>/``: ``<key>.npy`` (its features,
``(frames, n_mels)`` float16) beside ``<key>.controls.npy`` (``(frames, 4)`` float32), or
``<key>.skip.json`` (why the file cannot be used). :mod:`timbre_transfer.data.prepare` decides
what goes in; this module decides where and how it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from timbre_transfer.audio.features import CONTROL_COLUMNS
from timbre_transfer.audio.io import atomic_write_text
from timbre_transfer.names import recorded_f0_tracker

STORE_FORMAT = 2  # 2: controls.npy beside features.npy
MANIFEST = "store.json"
REPORT = "prepare_report.json"
WORK = ".work"
FEATURES = "features.npy"
CONTROLS = "controls.npy"
INDEX = "index.json"
N_CONTROLS = len(CONTROL_COLUMNS)


# ---- identity and manifest ---------------------------------------------------------------------


def params_hash(transform, options, normalisation: tuple[float, float] | None = None) -> str:
    """Identity of a store: the format, the transform's parameters, the prepare options (a
    :class:`~timbre_transfer.data.prepare.PrepareOptions`), and the normalisation when it is
    fixed rather than fitted."""
    identity = {"format": STORE_FORMAT, "audio": asdict(transform.params),
                "prepare": asdict(options)}
    if normalisation is not None:
        identity["normalisation"] = [float(v) for v in normalisation]
    blob = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST


def read_manifest(root: str | Path) -> dict | None:
    """``store.json`` of ``root``, or None when there is none (no finished store)."""
    path = manifest_path(root)
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(root: Path, digest: str, transform, options, domains: list[str]) -> dict:
    """Write ``store.json``, the mark of a finished store: call it last."""
    from timbre_transfer import __version__

    manifest = {"format": STORE_FORMAT, "package_version": __version__, "hash": digest,
                "transform": transform.to_dict(), "prepare": asdict(options), "domains": domains,
                "split": {"seed": options.seed, "val_fraction": options.val_fraction}}
    atomic_write_text(manifest_path(root), json.dumps(manifest, indent=1))
    return manifest


def unfinish(root: Path) -> None:
    """Remove ``store.json``: a store being rewritten is not finished until its new one lands."""
    manifest_path(root).unlink(missing_ok=True)


def remove(root: Path, domains: list[str]) -> None:
    """Delete a store's domains, manifest and report (``.work/`` is kept)."""
    for domain in domains:
        shutil.rmtree(root / domain, ignore_errors=True)
    for name in (MANIFEST, REPORT):
        (root / name).unlink(missing_ok=True)


# ---- report ------------------------------------------------------------------------------------


def read_report(root: Path) -> dict | None:
    path = root / REPORT
    return json.loads(path.read_text()) if path.exists() else None


def write_report(folder: Path, report: dict) -> Path:
    """Write ``prepare_report.json`` into ``folder`` (the store, or a failed run's work folder);
    its path."""
    return atomic_write_text(folder / REPORT, json.dumps(report, indent=1))


# ---- parts: one analysed file while preparing --------------------------------------------------


def work_dir(root: Path, digest: str | None = None) -> Path:
    """Where a run with hash ``digest`` keeps its parts (all runs' when ``digest`` is None)."""
    return root / WORK if digest is None else root / WORK / digest


def remove_work(root: Path) -> None:
    shutil.rmtree(work_dir(root), ignore_errors=True)


def part_path(work: Path, domain: str, name: str) -> Path:
    """The features file of the part of the file ``name`` of ``domain``."""
    key = hashlib.sha1(f"{domain}\0{name}".encode()).hexdigest()[:20]
    return work / domain / f"{key}.npy"


def _controls_path(part: Path) -> Path:
    return part.with_suffix(".controls.npy")


def _skip_path(part: Path) -> Path:
    return part.with_suffix(".skip.json")


def part_done(part: Path) -> bool:
    """Whether the file of ``part`` has a result: its features or its skip reason."""
    return part.exists() or _skip_path(part).exists()


def write_part(part: Path, features: np.ndarray, controls: np.ndarray) -> None:
    """Write one file's features ``(frames, n_mels)`` and controls ``(frames, 4)``, each
    atomically; the features last, as they mark the file done."""
    part.parent.mkdir(parents=True, exist_ok=True)
    for path, array in ((_controls_path(part), controls), (part, features)):
        fd, tmp = tempfile.mkstemp(dir=part.parent, suffix=".npy")
        os.close(fd)
        np.save(tmp, array)
        os.replace(tmp, path)


def write_skip(part: Path, reason: str) -> None:
    """Record that the file of ``part`` cannot be used, and why."""
    atomic_write_text(_skip_path(part), json.dumps({"reason": reason}))


def read_skip(part: Path) -> str | None:
    """The reason the file of ``part`` was skipped, or None when it was not."""
    path = _skip_path(part)
    return json.loads(path.read_text())["reason"] if path.exists() else None


def read_part(part: Path) -> tuple[np.ndarray, np.ndarray]:
    """One file's features ``(frames, n_mels)`` float16 (memmapped) and controls ``(frames, 4)``
    float32."""
    return np.load(part, mmap_mode="r"), np.load(_controls_path(part))


# ---- domains -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """One usable file of a domain, as :func:`write_domain` stores it."""

    file: str  # name inside the domain
    path: str  # the source audio file
    split: str  # "train" or "val"
    part: Path  # its analysed features and controls


def write_domain(root: Path, domain: str, files: list[StoredFile], params) -> list[dict]:
    """Concatenate the parts of ``files`` into the domain's ``features.npy`` and
    ``controls.npy`` (rows in the order of ``files``) and write its ``index.json``; the index.

    ``params`` (:class:`~timbre_transfer.audio.transform.TransformParams`) gives n_mels and the
    frame rate of the ``seconds`` recorded per file.
    """
    frames = [int(np.load(f.part, mmap_mode="r").shape[0]) for f in files]
    total = sum(frames)
    (root / domain).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root / domain, suffix=".npy")
    os.close(fd)
    features = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                         shape=(total, params.n_mels))
    controls = np.empty((total, N_CONTROLS), dtype=np.float32)
    index, offset = [], 0
    for f, n_frames in zip(files, frames):
        feats, ctrls = read_part(f.part)
        features[offset:offset + n_frames] = feats
        controls[offset:offset + n_frames] = ctrls
        index.append({"file": f.file, "path": f.path, "offset": offset, "frames": n_frames,
                      "seconds": round((n_frames - 1) * params.hop_length / params.sample_rate,
                                       3),
                      "split": f.split})
        offset += n_frames
    features.flush()
    del features
    os.replace(tmp, root / domain / FEATURES)
    np.save(tmp, controls)  # np.save keeps the name: tmp ends in .npy
    os.replace(tmp, root / domain / CONTROLS)
    atomic_write_text(root / domain / INDEX, json.dumps(index, indent=1))
    return index


def read_index(root: Path, domain: str) -> list[dict]:
    """The ``index.json`` entries of ``domain``.

    Raises:
        FileNotFoundError: the domain has no index.
    """
    return json.loads((root / domain / INDEX).read_text())


def open_domain(root: Path, domain: str) -> tuple[np.ndarray, np.ndarray]:
    """The domain's features ``(total_frames, n_mels)`` float16 and controls
    ``(total_frames, 4)`` float32, both memmapped read-only."""
    return (np.load(root / domain / FEATURES, mmap_mode="r"),
            np.load(root / domain / CONTROLS, mmap_mode="r"))


# ---- reading a finished store ------------------------------------------------------------------


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
        if not manifest_path(self.root).is_file():
            raise FileNotFoundError(
                f"{self.root}: not a feature store (no {MANIFEST}); run `timbre-transfer prepare`"
            )
        self.manifest = read_manifest(self.root)
        if self.manifest.get("format") != STORE_FORMAT:
            raise ValueError(f"{manifest_path(self.root)}: store format "
                             f"{self.manifest.get('format')}, this package reads format "
                             f"{STORE_FORMAT}; prepare it again")
        self.transform = AudioTransform.from_dict(self.manifest["transform"])
        self.domains: list[str] = list(self.manifest["domains"])
        self._features = {}
        self._controls = {}
        self._index = {}
        self._by_file = {}
        for domain in self.domains:
            self._features[domain], self._controls[domain] = open_domain(self.root, domain)
            self._index[domain] = read_index(self.root, domain)

    @property
    def f0_tracker(self) -> str:
        """The tracker that made the store's pitch controls ("pyin" for stores from before
        0.3.0, which do not name it)."""
        return recorded_f0_tracker(self.manifest["prepare"])

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
        from timbre_transfer.data.cleaning import PrepareOptions, clean_audio

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
