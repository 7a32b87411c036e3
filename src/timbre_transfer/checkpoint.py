"""Checkpoints: self-describing, written atomically, loaded with ``weights_only=True``.

A checkpoint holds everything needed to rebuild the model without the run folder: the run
config, the audio transform (with its normalisation statistics), the domain names and the
package version, next to the bare model's ``state_dict``. Training checkpoints add the optimiser,
scheduler and RNG states.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from timbre_transfer.names import LEGACY_F0_TRACKER, recorded_f0_tracker

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


# ---- rebuilding what a checkpoint holds, from its own sections alone -----------------------------
# Only the sections a model needs are read (``config.model``, ``config.train.crop_frames``, the
# transform, the domains), so that a training option retired later cannot make a trained model
# unloadable.

#: the ``kind`` of a DDSP head checkpoint (a model checkpoint has none)
HEAD_KIND = "ddsp_head"


@dataclass
class SavedModel:
    """A :class:`~timbre_transfer.models.multidomain.TimbreModel` checkpoint, rebuilt.

    Attributes:
        model: the model, its weights loaded (strict), in eval mode on the CPU.
        transform: the :class:`~timbre_transfer.audio.transform.AudioTransform` it was trained on.
        domains: its domain names.
        crop_frames: the training crop length (frames), which inference windows follow.
        target_dbfs: the level ``prepare`` normalised training clips to.
        step: training steps behind the weights (None when the checkpoint does not say).
        centroids: each domain's running mean latent ``(C,)``, where training kept one.
        pitch_medians: each domain's median training f0 (Hz), for ``octave="auto"``.
        ddsp_heads: DDSP head payloads bundled into the checkpoint by ``bundle``.
        f0_tracker: the tracker of the store the model was trained on (its pitch controls);
            "pyin" for checkpoints from before 0.3.0, which do not name it.
    """

    model: torch.nn.Module
    transform: object
    domains: list[str]
    crop_frames: int
    target_dbfs: float = -20.0
    step: int | None = None
    centroids: dict[str, torch.Tensor] = field(default_factory=dict)
    pitch_medians: dict[str, float | None] = field(default_factory=dict)
    ddsp_heads: list[dict] = field(default_factory=list)
    f0_tracker: str = LEGACY_F0_TRACKER


def load_model(path: str | Path) -> SavedModel:
    """Rebuild the model of a training or exported checkpoint (``weights_only=True``, strict
    keys); see :class:`SavedModel`."""
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.config import build
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    blob = read_checkpoint(path)
    if blob.get("kind") == HEAD_KIND:
        raise ValueError(f"{path} is a DDSP head (from train-ddsp), not a model; give it as "
                         "--ddsp next to a model checkpoint")
    try:
        model_config = build(ModelConfig, blob["config"]["model"])
        crop_frames = int(blob["config"]["train"]["crop_frames"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its model config does not fit this package version "
                         f"({exc})") from exc
    model = TimbreModel(model_config, blob["domains"])
    if blob.get("model_only"):  # packed for inference (pretrained.pack): no discriminators
        model.discriminators = torch.nn.ModuleDict()
    load_state_strict(model, blob["model"], f"{path} (model)")
    domains = list(blob["domains"])
    training = blob.get("training", {})
    saved = training.get("centroids", {})
    centroids = {}
    if "centroids" in saved and saved["centroids"].numel():
        centroids = {d: saved["centroids"][i] for i, d in enumerate(domains)
                     if bool(saved["initialized"][i])}
    return SavedModel(
        model=model.eval(), transform=AudioTransform.from_dict(blob["transform"]),
        domains=domains, crop_frames=crop_frames,
        target_dbfs=blob.get("prepare", {}).get("target_dbfs", -20.0),
        step=int(training["step"]) if "step" in training else None, centroids=centroids,
        pitch_medians=dict(blob.get("pitch_medians") or {}),
        ddsp_heads=list(blob.get("ddsp_heads", [])),
        f0_tracker=recorded_f0_tracker(blob.get("prepare")))


def load_ddsp_head(path: str | Path, device: str | torch.device = "cpu"):
    """A head trained by ``train-ddsp``, from its checkpoint: ``(head, domains, transform
    dict)``."""
    return ddsp_head_from_payload(read_checkpoint(path, map_location=device), str(path), device)


def ddsp_head_from_payload(blob: dict, where: str, device: str | torch.device = "cpu"):
    """:func:`load_ddsp_head` on a checkpoint already read (also a head bundled into a model
    checkpoint by ``bundle``); ``where`` names it in errors."""
    from timbre_transfer.config import build
    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    if blob.get("kind") != HEAD_KIND:
        raise ValueError(f"{where}: not a DDSP head checkpoint (train one with `train-ddsp`)")
    try:
        config = build(DDSPConfig, blob["config"]["head"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: its head config does not fit this package version "
                         f"({exc})") from exc
    params = blob["transform"]["params"]
    head = DDSPHead(params["n_mels"], params["sample_rate"], params["hop_length"], config,
                    recorded_f0_tracker(blob.get("prepare")))
    load_state_strict(head, blob["model"], f"{where} (DDSP head)")
    return head.to(device).eval(), list(blob["domains"]), blob["transform"]
