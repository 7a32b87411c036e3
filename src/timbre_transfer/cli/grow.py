"""Growing a trained model: ``add-domain``, and ``domains`` (what a checkpoint holds); see
:mod:`timbre_transfer.training.grow`."""

from __future__ import annotations

import argparse

from timbre_transfer.cli.options import add_checkpoint, add_run_options, fit_and_report


def cmd_add_domain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.prepare import prepare_like
    from timbre_transfer.data.store import FeatureStore, read_manifest
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE, grown_config
    from timbre_transfer.training.trainer import Trainer

    blob = read_checkpoint(args.checkpoint)
    old, new = list(blob["domains"]), list(dict.fromkeys(args.domain))
    taken = [d for d in new if d in old]
    if taken:
        raise ValueError(f"{args.checkpoint} already has {taken} (its domains: {old}); "
                         "`train --init-from` retrains a model on its own domains")
    data = Path(args.data)
    if read_manifest(data) is None:  # audio: prepared here, as the model's own data was
        if len(new) > 1 and not data.is_file() and not any(p.is_dir() for p in data.iterdir()):
            raise ValueError(f"{data} holds audio files for one domain; give one --domain, or "
                             "<domain>/ subfolders")
        data = prepare_like(data, Path(args.out) / "features", blob, str(args.checkpoint),
                            domain=new[0]).store
    store = FeatureStore(data)
    if sorted(store.domains) == sorted(old + new):
        stand_ins = False
    elif sorted(store.domains) == sorted(new):
        stand_ins = True  # the model's own data is not at hand
    else:
        raise ValueError(f"{store.root} must hold the new domains {new}, alone or with the "
                         f"model's domains {old}: it has {store.domains}")
    max_steps = args.max_steps or max(1, blob["config"]["train"]["max_steps"] // 4)
    config = grown_config(args.checkpoint, None,
                          [*args.overrides, f"train.max_steps={max_steps}"],
                          freeze=ADD_DOMAIN_FREEZE, unfreeze_after=args.unfreeze_after,
                          new_generators=args.new_generators, stand_ins=stand_ins)
    trainer = Trainer(config, store, args.out, resume=args.resume)
    if trainer.dist.is_main:
        frozen = ("everything else frozen" if args.unfreeze_after is None else
                  f"everything else frozen until step {args.unfreeze_after}")
        sources = ("the old domains' crops are stand-ins: the new clips through the frozen old "
                   "generators" if stand_ins else "learning from the old domains' clips")
        print(f"adding {new} to {old} ({frozen}; {sources}), from step {trainer.step} to "
              f"{max_steps}; TensorBoard: tensorboard --logdir {args.out}")
    return fit_and_report(trainer, args.out)


def register_add_domain(sub) -> None:
    p = sub.add_parser(
        "add-domain", help="add timbres to a trained model: train only their generators",
        description="Add one or more domains to a trained model. Each new domain gets a "
        "generator and a discriminator, copied from the old domain whose generator "
        "reconstructs its clips best (or, with --new-generators scratch, new); the encoder, the "
        "shared block and the old domains' generators and discriminators are frozen, so the "
        "old domains' transfers stay bit-identical. With --unfreeze-after K everything trains "
        "jointly from step K at a tenth of the learning rate (init.unfreeze_lr_scale). "
        "DATA is a feature store prepared with the model's settings (`prepare --like`), or "
        "audio (a folder of the new domain's files, <domain>/ subfolders, or a CSV), prepared "
        "into RUN_DIR/features. It holds the new domains alone, or with the model's own: "
        "without them (a shipped model's data is not at hand) the old domains' crops are "
        "stand-ins, the new clips translated by the frozen old generators. Writes RUN_DIR like "
        "`train`; --resume continues.",
    )
    add_checkpoint(p, "the trained model (a `train` checkpoint)", shipped=True)
    p.add_argument("--data", required=True, metavar="DATA",
                   help="the new domains' audio or feature store, with or without the model's "
                   "own domains")
    p.add_argument("--domain", action="append", required=True, metavar="NAME",
                   help="a domain of FEATURES_DIR to add (repeatable)")
    add_run_options(p)
    p.add_argument("--unfreeze-after", type=int, metavar="K",
                   help="from step K, train everything jointly at a lower learning rate")
    p.add_argument("--new-generators", choices=("scratch", "nearest"), default="nearest",
                   help="how new generators start: a copy of the old domain's generator that "
                   "reconstructs the new clips best (nearest, the default: measured better, "
                   "docs/training.md), or scratch")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides on the checkpoint's config, e.g. train.lr=1e-4")
    p.set_defaults(func=cmd_add_domain)


def cmd_domains(args: argparse.Namespace) -> int:
    from timbre_transfer.training.grow import describe_checkpoint

    print(describe_checkpoint(args.checkpoint))
    return 0


def register_domains(sub) -> None:
    p = sub.add_parser(
        "domains", help="what a model checkpoint holds: domains, steps, transform, DDSP heads",
        description="Print a model checkpoint's domains (with their training registers), its "
        "training steps, its audio transform and model settings, and which DDSP heads are "
        "bundled with it.")
    add_checkpoint(p, shipped=True)
    p.set_defaults(func=cmd_domains)
