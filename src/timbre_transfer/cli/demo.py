"""``demo``: the main job on built-in data, end to end: a real recording through the shipped
model first, then synthesise, prepare, train, transfer and score."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import (
    add_max_steps,
    add_resume,
    config_names,
    overrides_with_max_steps,
)


def cmd_demo(args: argparse.Namespace) -> int:
    from timbre_transfer.data.prepare import prepare
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.data.synthetic import write_paired_dataset
    from timbre_transfer.evaluation.paired import paired_scores
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    out = Path(args.out)
    config = load_run_config(args.config, overrides_with_max_steps(args))
    shipped_transfer(out / "shipped")
    print(f"1/5 synthesising {args.clips} paired clips in 3 timbres -> {out / 'audio'}")
    write_paired_dataset(out / "audio", n_domains=3, n_clips=args.clips, seconds=4.0,
                         seed=args.seed)
    print(f"2/5 preparing features -> {out / 'features'}")
    prepare(out / "audio", out / "features", workers=1)
    store = FeatureStore(out / "features")
    print(f"3/5 training {args.config} for {config.train.max_steps} steps -> {out / 'run'}")
    trainer = Trainer(config, store, out / "run", resume=args.resume)
    history = trainer.fit()
    ckpt = out / "run" / "checkpoints" / "latest.pt"
    tt = TimbreTransfer.from_checkpoint(ckpt)
    held_out = store.clips(tt.domains[0], "val").files[0]
    source = out / "audio" / tt.domains[0] / held_out
    print(f"4/5 transferring the held-out clip {source} to every domain -> {out / 'transfers'}")
    for path in tt.transfer_file(source, tt.domains, out / "transfers").values():
        print(f"    {path}")  # loaded and encoded once for every domain
    print("5/5 scoring held-out transfers against their ground-truth twins (log-mel L1)")
    scores = paired_scores(tt, out / "audio", store)
    if history:
        print(f"    reconstruction L1: {history[0]['loss/recon']:.4f} at step "
              f"{history[0]['step']} -> {history[-1]['loss/recon']:.4f} at step "
              f"{history[-1]['step']}")
    print(f"    transfer vs twin: {scores.transfer:.4f}; untouched source vs twin: "
          f"{scores.identity:.4f} ({scores.pairs} pairs; lower is better)")
    print(f"audio: {out / 'transfers'}; TensorBoard: tensorboard --logdir {out / 'run'}")
    return 0


#: the shipped model's targets the demo plays the bundled recording into
DEMO_TARGETS = ("violin", "flute", "clarinet", "trumpet")


def shipped_transfer(out: Path) -> None:
    """A real recording (bundled) through the shipped model, before any training."""
    import time

    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.pretrained import EXAMPLE, available

    if not available():
        print("0/5 no shipped model in this install: skipping the real recording")
        return
    t0 = time.perf_counter()
    tt = TimbreTransfer.pretrained(available()[0])
    targets = [d for d in DEMO_TARGETS if d in tt.domains] or tt.domains[:2]
    print(f"0/5 a real recording ({EXAMPLE.name}, a singer; CC BY 4.0) through the shipped "
          f"model {available()[0]}, no training -> {out}")
    for path in tt.transfer_file(EXAMPLE, targets, out).values():
        print(f"    {path}")
    print(f"    {time.perf_counter() - t0:.1f} s; `timbre-transfer transfer --model "
          f"{available()[0]} IN.wav --to DOMAIN` does this for any file")


def register_demo(sub) -> None:
    p = sub.add_parser(
        "demo", help="the main job on built-in data: synthesise, prepare, train, transfer",
        description="First transfer a bundled real recording (a singer) through the shipped "
        "model into four instruments (OUT/shipped/, seconds, no training). Then synthesise "
        "paired domains (reed, brass, flute), prepare them, train the cpu-small config (about "
        "15 minutes on 2 CPU cores), transfer a held-out clip to every domain, and score "
        "held-out transfers against their ground-truth twins. Runs from any folder: the "
        "configs and the shipped model ship with the package.",
    )
    p.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    p.add_argument("--config", default="cpu-small",
                   help="training config: a YAML path, or the name of a config shipped with the "
                   f"package ({config_names()}) (default: cpu-small)")
    p.add_argument("--clips", type=int, default=40, help="clips per timbre (default: 40)")
    add_max_steps(p, "training steps (default: the config's)")
    add_resume(p, "continue an interrupted demo run")
    p.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    p.set_defaults(func=cmd_demo)
