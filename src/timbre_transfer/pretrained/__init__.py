"""The models shipped inside the package, by name: ``timbre-transfer models``, ``--model NAME``,
``TimbreTransfer.pretrained(NAME)``.

A shipped model is a checkpoint packed for inference by :func:`pack`: the model's weights
without the discriminators, the optimiser or any training state, its large tensors in half
precision, and a model card (``card``: its data and their licences, how it was trained). It
loads like any checkpoint (``weights_only=True``); ``benchmarks/train_models.py`` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

import torch

SHIPPED = Path(__file__).resolve().parent
#: a short real recording that ships too (a singer, CC BY 4.0; examples/README.md)
EXAMPLE = SHIPPED / "examples" / "singing.flac"
#: tensors with fewer elements stay in float32 (normalisation levels, norms' statistics): half
#: precision saves nothing on them and would round the levels every output is scaled by
HALF_MIN_ELEMENTS = 1024
#: what a packed model keeps of a training checkpoint
KEPT_SECTIONS = ("package_version", "config", "transform", "prepare", "domains", "pitch_medians",
                 "init_domains", "ddsp_heads")


def shipped_path(name: str) -> Path:
    """Where the shipped model ``name`` lives inside the package."""
    return SHIPPED / f"{name}.pt"


def available() -> list[str]:
    """The shipped models' names, sorted."""
    return sorted(p.stem for p in SHIPPED.glob("*.pt"))


def resolve(name: str) -> Path:
    """The checkpoint of the shipped model ``name``.

    Raises:
        ValueError: no such model (the message lists the shipped ones).
    """
    path = shipped_path(name)
    if not path.is_file():
        known = ", ".join(available()) or "none (this install ships no model)"
        raise ValueError(f"no shipped model named {name!r}; shipped models: {known} (see "
                         "`timbre-transfer models`)")
    return path


def card(name: str) -> dict:
    """The shipped model's card and domains (``{"name", "domains", "card", "size_mb"}``)."""
    from timbre_transfer.checkpoint import read_checkpoint

    path = resolve(name)
    blob = read_checkpoint(path)
    return {"name": name, "domains": list(blob["domains"]), "card": dict(blob.get("card", {})),
            "size_mb": path.stat().st_size / 1e6}


def pack(checkpoint: str | Path, out: str | Path, model_card: dict, half: bool = True) -> Path:
    """Write ``checkpoint`` (a ``train`` or ``add-domain`` checkpoint) to ``out`` packed for
    inference, with ``model_card``; ``half``: large tensors in float16."""
    from timbre_transfer.checkpoint import read_checkpoint, save_checkpoint

    blob = read_checkpoint(checkpoint)
    weights = {}
    for key, value in blob["model"].items():
        if key.startswith("discriminators."):
            continue  # nothing left to judge at inference
        if half and value.is_floating_point() and value.numel() >= HALF_MIN_ELEMENTS:
            value = value.to(torch.float16)
        weights[key] = value.clone()  # not a view of the whole training state
    training = blob.get("training", {})
    payload = {k: blob[k] for k in KEPT_SECTIONS if k in blob}
    payload.update(model=weights, model_only=True, card=dict(model_card),
                   training={k: training[k] for k in ("step", "centroids") if k in training})
    return save_checkpoint(out, payload)
