"""Training commands: ``train`` (the model), ``train-ddsp`` (a DDSP head) and ``bundle`` (heads
into a model checkpoint)."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import (
    add_checkpoint,
    add_config_options,
    add_data,
    add_run_options,
    fit_and_report,
    overrides_with_max_steps,
)


def cmd_train(args: argparse.Namespace) -> int:
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    overrides = overrides_with_max_steps(args)
    if args.init_from:
        from timbre_transfer.training.grow import grown_config

        config = grown_config(args.init_from, args.config, overrides, freeze=args.freeze,
                              unfreeze_after=args.unfreeze_after)
    elif args.freeze or args.unfreeze_after is not None:
        raise ValueError("--freeze and --unfreeze-after act on the model of --init-from CKPT")
    else:
        config = load_run_config(args.config, overrides)
    trainer = Trainer(config, args.data, args.out, resume=args.resume)
    if trainer.dist.is_main:
        print(f"training {len(trainer.domains)} domains {trainer.domains} from step {trainer.step} "
              f"to {config.train.max_steps}; TensorBoard: tensorboard --logdir {args.out}")
    return fit_and_report(trainer, args.out)


def _parts(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a many-to-many model on a feature store",
        description="Train the multi-domain VAE-GAN on a store made by `prepare`. Writes "
        "OUT/config.yaml, OUT/checkpoints/ (latest.pt and the last few step_*.pt) and "
        "OUT/tensorboard/. Several GPUs or machines: torchrun --nproc-per-node N -m "
        "timbre_transfer train ...",
    )
    add_data(p)
    add_run_options(p)
    add_config_options(p, "Its 'model', 'train' and 'loss' sections are used; 'audio' and "
                       "'prepare' are ignored and their overrides refused: the feature store "
                       "fixes them (run prepare again to change them)",
                       "train.lr=2e-4 or model.dim=16")
    p.add_argument("--init-from", metavar="CKPT",
                   help="start from a trained model: the weights it shares with this run's model "
                   "(same name and shape) are kept, the store's new domains start fresh, domains "
                   "the store lacks are dropped; without --config, the checkpoint's config is "
                   "the base")
    p.add_argument("--freeze", type=_parts, default=(), metavar="PARTS",
                   help="with --init-from: parts held fixed, comma-separated, of encoder, "
                   "shared, generators, discriminators (the last two: the checkpoint's domains')")
    p.add_argument("--unfreeze-after", type=int, metavar="K",
                   help="with --freeze: from step K, train everything at "
                   "train.lr x init.unfreeze_lr_scale (0.1)")
    p.set_defaults(func=cmd_train)


def cmd_train_ddsp(args: argparse.Namespace) -> int:
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    config = load_ddsp_config(args.config, overrides_with_max_steps(args))
    store = FeatureStore(args.data)
    domains = store.domains if args.all else [args.domain]
    trainer = DDSPTrainer(config, store, domains, args.out, resume=args.resume)
    print(f"training a DDSP head on {domains} ({len(trainer.clips)} clips) from step "
          f"{trainer.step} to {config.train.max_steps}; "
          f"TensorBoard: tensorboard --logdir {args.out}")
    trainer.fit()
    print(f"checkpoint: {Path(args.out) / 'checkpoints' / 'latest.pt'}")
    return 0


def register_train_ddsp(sub) -> None:
    p = sub.add_parser(
        "train-ddsp", help="train a DDSP harmonic-plus-noise head on real audio of a domain",
        description="Train the DDSP re-synthesis head on the train split of one domain (or all) "
        "of FEATURES_DIR: input each clip's mel, f0 (the store's tracker) and A-weighted loudness "
        "(the store's controls, analysed by prepare), target the audio itself (multi-scale "
        "spectral loss). "
        "Writes OUT/config.yaml, OUT/checkpoints/ and OUT/tensorboard/. Use the head with "
        "`transfer --inverter ddsp --ddsp OUT/checkpoints/latest.pt`.",
    )
    add_data(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--domain", metavar="DOMAIN", help="the domain whose audio the head learns")
    which.add_argument("--all", action="store_true", help="one head for every domain of the store")
    add_run_options(p)
    add_config_options(p, "Its 'head' and 'train' sections are used",
                       "train.lr=5e-4 or head.n_harmonics=40",
                       default="built-in defaults, the same as config/ddsp.yaml")
    p.set_defaults(func=cmd_train_ddsp)


def cmd_bundle(args: argparse.Namespace) -> int:
    from timbre_transfer.checkpoint import read_checkpoint, save_checkpoint
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint, device="cpu")
    blob = read_checkpoint(args.checkpoint)
    heads = list(blob.get("ddsp_heads", []))
    for path in args.ddsp:
        head = read_checkpoint(path)
        domains = tt.attach_ddsp_payload(head, str(path))  # checked before anything is written
        heads.append(head)
        print(f"{path}: DDSP head for {domains}")
    blob.pop("format", None)
    out = save_checkpoint(args.out, {**blob, "ddsp_heads": heads})
    print(f"wrote {out}: the model with heads for {sorted(tt.ddsp)}; use it with "
          "`transfer --inverter ddsp` and no --ddsp")
    return 0


def register_bundle(sub) -> None:
    p = sub.add_parser(
        "bundle", help="put DDSP heads into a model checkpoint",
        description="Write OUT: the model checkpoint CKPT carrying the given DDSP heads (each "
        "checked against the model's domains and mel first), so that `transfer --inverter "
        "ddsp` needs no --ddsp.",
    )
    add_checkpoint(p)
    p.add_argument("--ddsp", nargs="+", required=True, metavar="CKPT_DDSP",
                   help="heads from train-ddsp")
    p.add_argument("--out", required=True, metavar="OUT", help="output checkpoint")
    p.set_defaults(func=cmd_bundle)
