"""``models``: the models shipped with the package (:mod:`timbre_transfer.pretrained`)."""

from __future__ import annotations

import argparse


def cmd_models(args: argparse.Namespace) -> int:
    from timbre_transfer.pretrained import available, card

    names = available()
    if not names:
        print("this install ships no model (rebuild one with benchmarks/train_models.py)")
        return 0
    for name in names:
        info = card(name)
        about = info["card"]
        print(f"{name} ({info['size_mb']:.1f} MB): {', '.join(info['domains'])}")
        for key in ("training", "training_minutes", "quality"):
            if key in about:
                print(f"  {key.replace('_', ' ')}: {about[key]}")
        for data, licence in about.get("data", {}).items():
            print(f"  data: {data}: {licence}")
    print("use: timbre-transfer transfer --model NAME IN.wav --to DOMAIN --out OUT/ "
          "(docs/models.md)")
    return 0


def register_models(sub) -> None:
    p = sub.add_parser(
        "models", help="list the models shipped with the package, with their domains",
        description="List the trained models that ship inside the package: their domains, "
        "size, training and data (the model card; docs/models.md). Any command that takes a "
        "checkpoint for a transfer takes --model NAME instead.")
    p.set_defaults(func=cmd_models)
