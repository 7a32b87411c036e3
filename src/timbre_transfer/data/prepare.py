"""``prepare``: folders (or a CSV, or NSynth) of audio -> a feature store of log1p mels per domain.

This module finds the files, cleans and analyses each one (features and controls) and decides the
split and the normalisation; :mod:`timbre_transfer.data.store` writes them in the store's layout.

``store.json`` is written last, and only when every domain has usable audio: a folder without it
is not a finished store. A run that fails keeps ``.work/`` (nothing analysed is lost) and writes
its report to ``.work/<hash>/prepare_report.json``; a store already finished in the folder is left
as it was.
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from timbre_transfer.audio.io import AUDIO_EXTENSIONS, AudioFileError, load_audio
from timbre_transfer.data import store
from timbre_transfer.data.cleaning import PrepareOptions, SkipFile, clean_audio

# The f0 tracker runs every CONTROL_STRIDE mel frames (hop 256 = 16 ms at the default 16 kHz /
# 128): SwiftF0's own grid, half the cost of the mel hop for pYIN, and exactly the frames of a
# DDSP head with mel_stride 2.
CONTROL_STRIDE = 2
NSYNTH_KEYS = {"family": "instrument_family_str", "source": "instrument_source_str",
               "instrument": "instrument_str"}


@dataclass(frozen=True)
class SourceFile:
    path: Path
    domain: str
    name: str  # stable name inside the domain (path relative to the data root)
    split: str | None = None  # "train" or "val" when the CSV says; None: the seeded draw


@dataclass
class PrepareResult:
    """What :func:`prepare` did; ``report`` is what ``prepare_report.json`` holds."""

    store: Path
    processed: int
    reused: int
    report: dict = field(default_factory=dict)


class StoreMismatchError(ValueError):
    """The output folder holds a store prepared with other parameters."""


class PrepareFileError(RuntimeError):
    """Processing one file failed unexpectedly (not a :class:`SkipFile`): the message names the
    file; the original error is the cause (in a worker, the remote traceback)."""


# ---- discovery --------------------------------------------------------------------------------


def discover(
    data: str | Path, nsynth_by: str = "family", nsynth_include: list[str] | None = None
) -> list[SourceFile]:
    """List the audio files of a dataset and their domains.

    ``data`` is a folder of ``<domain>/**/*.{wav,flac,ogg,mp3,aiff}``, a CSV file with
    ``path,domain`` columns (paths relative to the CSV's folder, or absolute), or an NSynth folder
    (``examples.json`` + ``audio/``) whose domains are the ``nsynth_by`` attribute (family,
    source or instrument), optionally restricted to ``nsynth_include``.
    """
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such folder or CSV file")
    if data.is_file():
        files = _discover_csv(data)
    elif (data / "examples.json").is_file():
        files = _discover_nsynth(data, nsynth_by, nsynth_include)
    else:
        files = [
            SourceFile(p, domain.name, str(p.relative_to(domain)))
            for domain in sorted(d for d in data.iterdir()
                                 if d.is_dir() and not d.name.startswith("."))
            for p in sorted(domain.rglob("*"))
            if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
        ]
    if not files:
        raise ValueError(
            f"{data}: no audio files found (expected <domain>/*.wav|flac|ogg|mp3|aiff folders, "
            "a CSV with path,domain columns, or an NSynth folder with examples.json)"
        )
    return files


def _discover_csv(csv_path: Path) -> list[SourceFile]:
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "domain"} - set(reader.fieldnames or [])
        if missing:
            raise KeyError(f"{csv_path}: CSV lacks column(s) {sorted(missing)} (needs path,domain)")
        files = []
        for line, row in enumerate(reader, start=2):
            if not row["path"] or not row["domain"]:
                raise ValueError(f"{csv_path}:{line}: empty path or domain")
            path = Path(row["path"])
            path = path if path.is_absolute() else csv_path.parent / path
            split = (row.get("split") or "").strip() or None
            if split not in (None, "train", "val"):
                raise ValueError(f"{csv_path}:{line}: split must be train, val or empty, got "
                                 f"{split!r}")
            files.append(SourceFile(path, row["domain"], row["path"], split))
    return files


def _discover_nsynth(root: Path, by: str, include: list[str] | None) -> list[SourceFile]:
    if by not in NSYNTH_KEYS:
        raise ValueError(f"--nsynth-by must be one of {sorted(NSYNTH_KEYS)}, got {by!r}")
    try:
        examples = json.loads((root / "examples.json").read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{root / 'examples.json'}: not valid JSON ({exc})") from exc
    files = []
    for note, meta in sorted(examples.items()):
        if NSYNTH_KEYS[by] not in meta:
            raise KeyError(f"{root / 'examples.json'}: entry {note!r} lacks {NSYNTH_KEYS[by]!r}")
        domain = meta[NSYNTH_KEYS[by]]
        if include and domain not in include:
            continue
        files.append(SourceFile(root / "audio" / f"{note}.wav", domain, f"{note}.wav"))
    return files


# ---- one file ----------------------------------------------------------------------------------


def file_features(source: SourceFile, transform, options: PrepareOptions
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Decode, clean and analyse one file: its ``(frames, n_mels)`` float16 log1p mel and its
    ``(frames, 4)`` float32 performance controls on the same frames (columns:
    :data:`~timbre_transfer.audio.features.CONTROL_COLUMNS`).

    Raises:
        SkipFile: with the reason (unreadable, truncated, empty, NaN, low rate, silent, short).
    """
    import torch

    from timbre_transfer.audio.features import extract_controls

    p = transform.params
    wav = cleaned_audio(source, p.sample_rate, options)
    with torch.no_grad():
        log_mel = torch.log1p(transform.mel(torch.from_numpy(wav)))
    features = log_mel.T.numpy().astype(np.float16)
    controls = extract_controls(wav, p.sample_rate, p.hop_length * CONTROL_STRIDE,
                                tracker=options.f0_tracker)
    return features, controls.resample(CONTROL_STRIDE, len(features)).as_array()


def cleaned_audio(source: SourceFile, sample_rate: int, options: PrepareOptions) -> np.ndarray:
    """One file decoded at ``sample_rate`` and cleaned (:func:`clean_audio`).

    Raises:
        SkipFile: with the reason (unreadable, truncated, empty, NaN, low rate, silent, short).
    """
    import soundfile as sf

    try:
        file_rate = sf.info(str(source.path)).samplerate
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for bad files
        raise SkipFile(f"unreadable ({exc})") from exc
    if file_rate < sample_rate and not options.allow_upsampling:
        raise SkipFile(f"sample rate {file_rate} Hz is below the transform's {sample_rate} Hz "
                       "(it would lack high frequencies; set allow_upsampling to keep it)")
    try:
        wav = load_audio(source.path, sample_rate)
    except (AudioFileError, FileNotFoundError) as exc:
        raise SkipFile(str(exc).removeprefix(f"{source.path}: ")) from exc
    return clean_audio(wav, sample_rate, options)


# ---- the whole run -----------------------------------------------------------------------------


def settings_like(model: dict, where: str, prepare_overrides: dict | None = None):
    """What a store must be prepared with to feed the model checkpoint ``model`` (already
    read; ``where`` names it in errors): ``(transform, options, normalisation)``, its audio
    transform, cleaning and f0 tracker, and its normalisation statistics; ``prepare_overrides``
    (``prepare.*`` settings, the split for one) win over the model's."""
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.names import recorded_f0_tracker

    if "transform" not in model:
        raise KeyError(f"{where} records no audio transform (not a model checkpoint?)")
    transform = AudioTransform.from_dict(model["transform"])
    normalisation = (float(transform.norm_shift), float(transform.norm_scale))
    # a model from before 0.3.0 records no tracker: its controls came from pYIN
    options = PrepareOptions.from_dict({"f0_tracker": recorded_f0_tracker(model.get("prepare")),
                                        **model.get("prepare", {}), **(prepare_overrides or {})})
    return transform, options, normalisation


def prepare_like(data: str | Path, out: str | Path, model: dict, where: str,
                 domain: str | None = None, progress: bool = True) -> PrepareResult:
    """:func:`prepare` ``data`` into ``out`` with the settings of the model checkpoint ``model``
    (:func:`settings_like`), so that the store feeds that model. ``data`` may also be a folder
    of one domain's audio files (no ``<domain>/`` subfolders): they become domain ``domain``."""
    data, out = Path(data), Path(out)
    if data.is_dir() and domain is not None and any(
            p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS for p in data.iterdir()):
        manifest = out.parent / f"{out.name}_{domain}.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "domain"])
            writer.writerows((str(p.resolve()), domain) for p in sorted(data.rglob("*"))
                             if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        data = manifest
    transform, options, normalisation = settings_like(model, where)
    return prepare(data, out, transform, options, progress=progress, normalisation=normalisation)


def prepare(
    data: str | Path,
    out: str | Path,
    transform=None,
    options: PrepareOptions | None = None,
    workers: int | None = None,
    nsynth_by: str = "family",
    nsynth_include: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    normalisation: tuple[float, float] | None = None,
) -> PrepareResult:
    """Prepare a feature store; see the module docstring for the layout.

    ``normalisation`` (shift, scale) fixes the normalisation instead of fitting it on the
    training files: a store for a model that exists already (``prepare --like CKPT``, to grow
    it), whose inputs must be scaled as in its training.

    Files already processed by an interrupted run with the same parameters are reused. A store
    in ``out`` made with other parameters is an error unless ``overwrite``. ``workers=None``
    picks :func:`auto_workers`.

    Raises:
        ValueError: a domain name the model cannot use (before any work), or a domain without
            a usable file (after every file has been analysed; no ``store.json`` is written, the
            report goes to ``.work/<hash>/prepare_report.json`` and a rerun resumes).
        StoreMismatchError: ``out`` holds a store with other parameters.
        PrepareFileError: a file failed unexpectedly (the message names it).
    """
    from timbre_transfer.audio.transform import AudioTransform

    transform = transform if transform is not None else AudioTransform()
    options = options or PrepareOptions()
    out = Path(out)
    digest = store.params_hash(transform, options, normalisation)
    sources = discover(data, nsynth_by, nsynth_include)
    check_domain_names(sorted({s.domain for s in sources}), data)
    _check_existing(out, digest, overwrite)

    up_to_date = _up_to_date(out, digest, sources)
    if up_to_date is not None:
        return PrepareResult(out, processed=0, reused=len(sources), report=up_to_date)
    work = store.work_dir(out, digest)
    jobs = [(s, store.part_path(work, s.domain, s.name)) for s in sources]
    todo = [(s, part) for s, part in jobs if not store.part_done(part)]
    run_jobs(todo, transform, options,
             auto_workers(len(todo), options.f0_tracker) if workers is None else workers,
             progress)

    kept, skipped = _collect(jobs)
    empty = [d for d, files in kept.items() if not files]
    if empty:  # before anything of the store is written: no store.json, .work/ kept to resume
        report = {"domains": {d: {"files": len(kept[d]),
                                  "skipped": sum(s["domain"] == d for s in skipped)} for d in kept},
                  "skipped": skipped}
        report_path = store.write_report(work, report)
        reasons = "; ".join(f"{Path(s['path']).name}: {s['reason']}"
                            for s in skipped if s["domain"] in empty)
        raise ValueError(f"domain(s) {empty} have no usable audio, so no store was written "
                         f"(fix or remove them and run prepare again; files already analysed are "
                         f"kept): {_shorten(reasons)} (report: {report_path})")
    report = _consolidate(out, kept, skipped, transform, options, digest, normalisation)
    store.remove_work(out)
    return PrepareResult(out, processed=len(todo), reused=len(jobs) - len(todo), report=report)


def check_domain_names(domains: list[str], data: str | Path = "") -> None:
    """Raise ValueError, naming the domain and what to rename, unless the model can use every
    domain name (the model's own rule, :func:`timbre_transfer.models.multidomain.validate_domains`)
    and each names one folder of the store."""
    from timbre_transfer.models.multidomain import validate_domains

    where = f"{data}: " if str(data) else ""
    fix = ("rename the domain folder (or the domain in the CSV manifest) and run prepare again")
    for name in domains:
        if isinstance(name, str) and ("/" in name or "\\" in name):
            raise ValueError(f"{where}domain name {name!r} must not contain a path separator; "
                             f"{fix}")
    try:
        validate_domains(domains, owner=str(data) or "domains")
    except ValueError as exc:
        raise ValueError(f"{exc}; {fix}") from exc


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit - 5] + " ..."


def auto_workers(n_files: int, f0_tracker: str = "swift") -> int:
    """Worker processes for ``n_files`` analysed by ``f0_tracker``. Starting a worker (importing
    torch and librosa) costs about 4 s. With pYIN the controls run at about 4x real time, so a
    handful of files pays for it: the CPU count (at most 8) from 4 files. With SwiftF0 a file
    costs a fraction of a second, and one process was the faster on 2 cores (Bach10 + speech_en,
    92 files: 15.8 s against 18.8 s with 2 workers; docs/benchmarks.md): ``--workers`` still
    parallelises a large set."""
    if f0_tracker == "swift" or n_files < 4:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def run_jobs(jobs, transform, options: PrepareOptions, workers: int = 1, progress: bool = True):
    """Process ``(source, part_path)`` jobs, writing each result (features or skip reason)
    atomically next to ``part_path``; in worker processes when ``workers > 1``."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="file", desc="prepare", disable=not progress or not jobs)
    state = transform.to_dict()
    if workers <= 1:
        for source, part in jobs:
            _process(source, part, transform, options)
            bar.update()
    else:
        ctx = get_context("spawn")  # fork after torch has started threads can deadlock
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(_process_in_worker, s, p, state, options) for s, p in jobs]
            try:
                for future in as_completed(futures):
                    future.result()  # a PrepareFileError names its file
                    bar.update()
            except BaseException:
                for future in futures:  # finished files stay in .work/; the rest need not start
                    future.cancel()
                raise
    bar.close()


_WORKER_TRANSFORM = {}


def _init_worker():
    import torch

    torch.set_num_threads(1)  # one process per core does the parallelism


def _process_in_worker(source, part, state, options):
    from timbre_transfer.audio.transform import AudioTransform

    key = json.dumps(state, sort_keys=True)
    if key not in _WORKER_TRANSFORM:
        _WORKER_TRANSFORM[key] = AudioTransform.from_dict(state)
    _process(source, part, _WORKER_TRANSFORM[key], options)


def _process(source: SourceFile, part: Path, transform, options: PrepareOptions) -> None:
    try:
        features, controls = file_features(source, transform, options)
    except SkipFile as exc:
        store.write_skip(part, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - anything else is a bug or a broken system: name the file
        raise PrepareFileError(f"{source.path} (domain {source.domain!r}): "
                               f"{type(exc).__name__}: {exc}") from exc
    store.write_part(part, features, controls)


def _up_to_date(out: Path, digest: str, sources: list[SourceFile]) -> dict | None:
    """The report of a finished store with these parameters and exactly these files, else None."""
    manifest = store.read_manifest(out)
    if manifest is None or manifest.get("hash") != digest:
        return None
    report = store.read_report(out)
    if report is None:
        return None
    # resolved: the same files named by a relative and an absolute path are still the same
    done = {(s["domain"], Path(s["path"]).resolve()) for s in report["skipped"]}
    for domain in report["domains"]:
        try:
            index = store.read_index(out, domain)
        except FileNotFoundError:
            return None
        done |= {(domain, Path(e["path"]).resolve()) for e in index}
    return report if done == {(s.domain, s.path.resolve()) for s in sources} else None


def _check_existing(out: Path, digest: str, overwrite: bool) -> None:
    old = store.read_manifest(out)
    if old is None:
        return
    if old.get("hash") == digest:
        return  # same parameters: rebuilding gives the same store
    if not overwrite:
        raise StoreMismatchError(
            f"{out} holds a store prepared with other parameters (hash {old.get('hash')}, now "
            f"{digest}); choose another --out or pass --overwrite to replace it"
        )
    store.remove(out, old.get("domains", []))


def _collect(jobs) -> tuple[dict[str, list], list[dict]]:
    """The per-file results: ``({domain: [(source, part), ...] usable, by name}, skipped)``,
    every domain present (possibly with no usable file); skipped entries carry their reason."""
    kept: dict[str, list] = {d: [] for d in sorted({s.domain for s, _ in jobs})}
    skipped = []
    for source, part in sorted(jobs, key=lambda sp: (sp[0].domain, sp[0].name)):
        reason = store.read_skip(part)
        if reason is not None:
            skipped.append({"path": str(source.path), "domain": source.domain, "reason": reason})
        else:
            kept[source.domain].append((source, part))
    return kept, skipped


def _consolidate(out: Path, kept: dict[str, list], skipped: list[dict], transform,
                 options: PrepareOptions, digest: str,
                 normalisation: tuple[float, float] | None = None) -> dict:
    """Split each domain by file, store its files (:func:`store.write_domain`), fit the
    normalisation on the training files, and write prepare_report.json, then store.json last."""
    store.unfinish(out)
    domains = sorted(kept)
    rng = np.random.default_rng(options.seed)
    report = {"domains": {}, "skipped": skipped}
    low, high = np.inf, -np.inf
    for domain in domains:
        split = _split(len(kept[domain]), options.val_fraction, rng)
        for i, (source, _) in enumerate(kept[domain]):  # a split the CSV states wins the draw
            if source.split is not None:
                split[i] = source.split == "val"
        files = [store.StoredFile(source.name, str(source.path), "val" if is_val else "train",
                                  part) for (source, part), is_val in zip(kept[domain], split)]
        index = store.write_domain(out, domain, files, transform.params)
        features, _ = store.open_domain(out, domain)
        for e in index:
            if e["split"] == "train":
                rows = features[e["offset"]:e["offset"] + e["frames"]]
                low, high = min(low, float(rows.min())), max(high, float(rows.max()))
        report["domains"][domain] = {
            "files": len(index),
            "skipped": sum(1 for s in report["skipped"] if s["domain"] == domain),
            "train_files": sum(e["split"] == "train" for e in index),
            "val_files": sum(e["split"] == "val" for e in index),
            "seconds": round(sum(e["seconds"] for e in index), 2),
        }
    store.write_report(out, report)

    if normalisation is not None:  # fixed: a store for a model that exists already
        transform.norm_shift.fill_(normalisation[0])
        transform.norm_scale.fill_(normalisation[1])
    elif np.isfinite(low) and high > low:
        transform.norm_shift.fill_(low)
        transform.norm_scale.fill_(high - low)
    store.write_manifest(out, digest, transform, options, domains)
    return report


def _split(n: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean "is validation" per file: a seeded share, at least one when a domain has two or
    more files and val_fraction > 0, and never all of them."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[:n_val]] = True
    return is_val


def format_summary(report: dict) -> str:
    """The table printed at the end of ``prepare``."""
    lines = [f"{'domain':<20} {'files':>6} {'train':>6} {'val':>5} {'minutes':>8} {'skipped':>8}"]
    for domain, info in report["domains"].items():
        lines.append(f"{domain:<20} {info['files']:>6} {info['train_files']:>6} "
                     f"{info['val_files']:>5} {info['seconds'] / 60:>8.2f} {info['skipped']:>8}")
    for skip in report["skipped"]:
        lines.append(f"skipped {skip['path']}: {skip['reason']}")
    return "\n".join(lines)
