"""Data commands: ``prepare`` (audio -> feature store) and ``synth-data`` (paired domains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import add_config_options


def cmd_prepare(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.transform import AudioTransform, TransformParams
    from timbre_transfer.config import load_config
    from timbre_transfer.data.prepare import (
        PrepareOptions,
        format_summary,
        prepare,
        settings_like,
    )

    config = load_config(args.config, args.overrides)
    normalisation = None
    if args.like:  # the model's transform, cleaning and normalisation; the split stays ours
        from timbre_transfer.checkpoint import read_checkpoint

        if config.get("audio"):
            raise ValueError("--like takes the audio settings from the checkpoint; drop the "
                             "audio.* settings")
        transform, options, normalisation = settings_like(
            read_checkpoint(args.like), str(args.like), config.get("prepare"))
    else:
        transform = AudioTransform(**vars(TransformParams.from_dict(config.get("audio") or {})))
        options = PrepareOptions.from_dict(config.get("prepare") or {})
    include = [s for s in args.nsynth_include.split(",") if s] if args.nsynth_include else None
    result = prepare(args.data, args.out, transform, options, workers=args.workers,
                     nsynth_by=args.nsynth_by, nsynth_include=include, overwrite=args.overwrite,
                     normalisation=normalisation)
    if result.processed == 0:
        print(f"{args.out} is up to date ({result.reused} files)")
    print(format_summary(result.report))
    print(f"store: {result.store} (report: {result.store / 'prepare_report.json'})")
    return 0


def register_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="turn folders of audio into a feature store for training",
        description="Decode, clean (trim silence, normalise loudness) and analyse every file of "
        "DATA into log1p mel features stored per domain in OUT, with a file-level train/val "
        "split. DATA is a folder of <domain>/ subfolders, a CSV with path,domain columns (and an "
        "optional split column, train or val, that fixes a file's split), or an NSynth folder "
        "(examples.json + audio/). Every file's performance controls (f0 and voicing by "
        "prepare.f0_tracker, SwiftF0 by default or pyin; A-weighted loudness) are analysed "
        "once here, for training, DDSP heads and evaluation. "
        "Bad files are skipped and listed in OUT/prepare_report.json; an interrupted run resumes.",
    )
    p.add_argument("data", metavar="DATA", help="data folder, CSV manifest or NSynth folder")
    p.add_argument("--out", required=True, metavar="OUT", help="feature store folder")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one process with SwiftF0, whose analysis "
                   "costs less than a worker's start-up; with prepare.f0_tracker=pyin the CPU "
                   "count, at most 8, from 4 files)")
    p.add_argument("--nsynth-by", choices=("family", "source", "instrument"), default="family",
                   help="NSynth attribute that names the domains (default: family)")
    p.add_argument("--nsynth-include", metavar="A,B",
                   help="NSynth domains to keep, e.g. string,brass (default: all)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a store in OUT that was prepared with other parameters")
    p.add_argument("--like", metavar="CKPT",
                   help="analyse as the model CKPT was trained: its audio transform, cleaning "
                   "and normalisation (a store to grow that model with: add-domain, train "
                   "--init-from); prepare.* settings still apply on top")
    add_config_options(p, "Its 'audio' section sets the transform and 'prepare' the cleaning",
                       "audio.hop_length=256, prepare.target_dbfs=-23 or prepare.f0_tracker=pyin")
    p.set_defaults(func=cmd_prepare)


def cmd_synth_data(args: argparse.Namespace) -> int:
    from timbre_transfer.data.synthetic import write_paired_dataset

    written = write_paired_dataset(args.out, n_domains=args.domains, n_clips=args.clips,
                                   seconds=args.seconds, seed=args.seed, progress=True)
    for domain, paths in written.items():
        print(f"{domain:<8} {len(paths)} clips -> {Path(args.out) / domain}")
    print("files with the same name in each folder are the same score: ground-truth twins")
    return 0


def register_synth_data(sub) -> None:
    p = sub.add_parser(
        "synth-data", help="write the built-in paired synthetic domains",
        description="Render the same random melodies with several synthetic timbres (reed, "
        "brass, flute, bowed, pluck) into OUT/<timbre>/clip_NNNN.wav. Files with the same name "
        "are ground-truth twins. Deterministic from --seed.",
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--domains", type=int, default=3, help="number of timbres, 1-5 (default: 3)")
    p.add_argument("--clips", type=int, default=50, help="clips per timbre (default: 50)")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=cmd_synth_data)
