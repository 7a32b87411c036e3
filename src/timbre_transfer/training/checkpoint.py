"""What only training needs of a checkpoint: the run folder's rotating files, and the check
that a resumed run keeps its config (apart from bookkeeping and retired options).

Reading, writing and rebuilding models live in :mod:`timbre_transfer.checkpoint`, which
inference and evaluation use without importing training.
"""

from __future__ import annotations

from pathlib import Path

from timbre_transfer.checkpoint import keep_last, save_checkpoint


def save_run_checkpoint(run_dir: str | Path, step: int, payload: dict, keep: int) -> Path:
    """A trainer's save: ``run_dir/checkpoints/step_XXXXXXXX.pt`` (the newest ``keep`` of them are
    kept) and ``latest.pt``; returns the path of ``latest.pt``."""
    folder = Path(run_dir) / "checkpoints"
    save_checkpoint(folder / f"step_{step:08d}.pt", payload)
    keep_last(folder, "step_*.pt", keep)
    return save_checkpoint(folder / "latest.pt", payload)


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
