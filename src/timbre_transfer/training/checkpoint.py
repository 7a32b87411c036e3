"""What only training needs of a checkpoint: a trainer's full state (saved and restored), the
run folder's rotating files, and the check that a resumed run keeps its config (apart from
bookkeeping and retired options).

Reading, writing and rebuilding models live in :mod:`timbre_transfer.checkpoint`, which
inference and evaluation use without importing training.
"""

from __future__ import annotations

from pathlib import Path

import torch

from timbre_transfer.checkpoint import (
    keep_last,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
)
from timbre_transfer.names import f0_tracker_mismatch, recorded_f0_tracker

# Settings a resumed run may change: bookkeeping, and max_steps to train longer (the LR schedule
# then follows the new length).
RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.sample_every",
                     "train.checkpoint_every", "train.keep_last", "train.num_workers"}


def trainer_payload(trainer) -> dict:
    """A :class:`~timbre_transfer.training.trainer.Trainer`'s checkpoint: the sections a model is
    rebuilt from (:func:`timbre_transfer.checkpoint.load_model`), what its loss terms learned
    before training, and under ``training`` the state that resuming needs."""
    from timbre_transfer import __version__
    from timbre_transfer.config import to_dict

    return {
        "package_version": __version__,
        "config": to_dict(trainer.config),
        "transform": trainer.store.transform.to_dict(),
        "prepare": trainer.store.manifest["prepare"],  # inputs are normalised the same way
        "domains": list(trainer.domains),
        "pitch_medians": trainer.pitch_medians,  # for transfer --octave auto
        "init_domains": trainer.init_domains,  # what init.freeze holds, on resume
        "model": trainer.model.state_dict(),
        **{key: value for term in trainer.terms.values() for key, value in term.state().items()},
        "training": {
            "step": trainer.step,
            "bad_steps": trainer.bad_steps,
            "opt_g": trainer.opt_g.state_dict(),
            "opt_d": trainer.opt_d.state_dict(),
            "centroids": trainer.centroids.state_dict(),
            **{key: net.state_dict() for key, net in trainer.adversaries().items()},
            "noise": trainer.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
    }


def check_store_tracker(blob: dict, store, where: str) -> None:
    """Raise ValueError unless ``store``'s pitch controls come from the f0 tracker that made
    those of the checkpoint ``blob`` (read from ``where``): resuming or growing a model on
    another tracker's voicing would change its pitch input under it."""
    trained = recorded_f0_tracker(blob.get("prepare"))
    if trained != store.f0_tracker:
        raise ValueError(f0_tracker_mismatch(
            trained, store.f0_tracker, where, f"prepare the store again with "
            f"prepare.f0_tracker={trained} (into a new --out), or train anew on this one"))


def restore_trainer(trainer, path: str | Path) -> None:
    """Put back into ``trainer`` everything :func:`trainer_payload` saved at ``path``.

    Raises:
        ValueError: the run's config differs from the checkpoint's beyond
            :data:`RESUMABLE_CHANGES` (retired options at their off value are no difference), or
            its domains differ.
        KeyError: the checkpoint holds no training state, or no state for one of the run's
            loss terms' adversaries.
    """
    from timbre_transfer.config import build, to_dict
    from timbre_transfer.training import grow
    from timbre_transfer.training.config import RunConfig, without_retired

    blob = read_checkpoint(path, map_location=trainer.device)
    try:  # filled in with today's defaults: a key added since is no difference
        saved = to_dict(build(RunConfig, without_retired(blob["config"], str(path))))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its config does not fit this package version ({exc})") from exc
    check_resumable(path, saved, to_dict(trainer.config), RESUMABLE_CHANGES)
    if blob["domains"] != list(trainer.domains):
        raise ValueError(f"{path} has domains {blob['domains']}, the store {trainer.domains}")
    check_store_tracker(blob, trainer.store, str(path))
    if "training" not in blob:
        raise KeyError(f"{path} holds no training state (an export?); cannot resume from it")
    state = blob["training"]
    load_state_strict(trainer.model, blob["model"], f"{path} (model)")
    for term in trainer.terms.values():
        term.load_state(blob, str(path))
    for key, net in trainer.adversaries().items():  # training only: never in an export
        if key not in state:
            raise KeyError(f"{path} holds no {key} to resume its loss with (its loss "
                           "weight was 0 when it was saved)")
        load_state_strict(net, state[key], f"{path} ({key})")
    trainer.opt_g.load_state_dict(state["opt_g"])
    trainer.opt_d.load_state_dict(state["opt_d"])
    trainer.centroids.load_state_dict(state["centroids"])
    trainer.noise.set_state(state["noise"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    trainer.step, trainer.bad_steps = int(state["step"]), int(state["bad_steps"])
    trainer.init_domains = list(blob.get("init_domains", []))
    # the registers saved (a grown model's old domains keep the ones they learnt, and a run on
    # stand-ins has no store to measure them in)
    trainer.pitch_medians.update(blob.get("pitch_medians") or {})
    grow.apply_freeze(trainer)


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
