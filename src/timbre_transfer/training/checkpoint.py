"""Checkpoints: self-describing, written atomically, loaded with ``weights_only=True``.

A checkpoint holds everything needed to rebuild the model without the run folder: the run
config, the audio transform (with its normalisation statistics), the domain names and the
package version, next to the bare model's ``state_dict``. Training checkpoints add the optimiser,
scheduler and RNG states.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` (plain containers and tensors) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_run_checkpoint(run_dir: str | Path, step: int, payload: dict, keep: int) -> Path:
    """A trainer's save: ``run_dir/checkpoints/step_XXXXXXXX.pt`` (the newest ``keep`` of them are
    kept) and ``latest.pt``; returns the path of ``latest.pt``."""
    folder = Path(run_dir) / "checkpoints"
    save_checkpoint(folder / f"step_{step:08d}.pt", payload)
    keep_last(folder, "step_*.pt", keep)
    return save_checkpoint(folder / "latest.pt", payload)


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and zip errors of many kinds
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a timbre_transfer checkpoint (format "
                         f"{blob.get('format') if isinstance(blob, dict) else None})")
    missing = {"config", "transform", "domains", "model"} - set(blob)
    if missing:
        raise KeyError(f"{path}: checkpoint lacks {sorted(missing)}")
    return blob


def load_state_strict(module: torch.nn.Module, state: dict, what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the missing and unexpected keys."""
    own, given = set(module.state_dict()), set(state)
    missing, unexpected = sorted(own - given), sorted(given - own)
    if missing or unexpected:
        raise KeyError(
            f"{what} does not match this model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''} (was it made with another config or other "
            "domains?)"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes differ: another model size
        raise KeyError(f"{what} does not match this model ({exc})") from exc


def keep_last(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the ``keep`` newest files matching ``pattern`` (names sort by step)."""
    files = sorted(folder.glob(pattern))
    for old in files[:-keep] if keep > 0 else files:
        old.unlink(missing_ok=True)


def check_resumable(path, saved: dict, current: dict, allowed: set[str]) -> None:
    """Raise ValueError unless the run config ``current`` equals the checkpoint's ``saved`` one,
    apart from the dotted keys in ``allowed`` (bookkeeping such as ``train.max_steps``)."""
    diff = [d for d in _differences(saved, current) if d.split(":")[0] not in allowed]
    if diff:
        raise ValueError(f"{path} was written with another config ({'; '.join(diff[:5])}); "
                         f"resume with the same config (only {sorted(allowed)} may change)")


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
