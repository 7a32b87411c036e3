"""Scoring commands: ``fad`` (two folders of audio) and ``evaluate`` (a model on held-out
clips)."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import (
    add_checkpoint,
    add_data,
    add_ddsp_inverter,
    add_embedder,
    add_f0_tracker,
    add_octave,
    attach_heads,
)


def cmd_fad(args: argparse.Namespace) -> int:
    from timbre_transfer.evaluation.fad import fad, folder_statistics

    reference = folder_statistics(args.reference, args.embedder, args.fad_weights)
    evaluated = folder_statistics(args.evaluated, args.embedder, args.fad_weights)
    note = (" (built-in embedder: not comparable with published FAD)"
            if args.embedder == "logmel" else "")
    print(f"FAD {fad(reference, evaluated):.4f}{note}")
    print(f"embeddings: {reference.n} in {args.reference}, {evaluated.n} in {args.evaluated}")
    return 0


def register_fad(sub) -> None:
    p = sub.add_parser(
        "fad", help="Frechet Audio Distance between two folders of audio",
        description="Embed every audio file of the two folders (0.96 s patches) and print the "
        "Frechet distance between the two Gaussians. Empty or unreadable inputs are errors.",
    )
    p.add_argument("reference", metavar="DIR_A", help="reference audio folder")
    p.add_argument("evaluated", metavar="DIR_B", help="evaluated audio folder")
    add_embedder(p)
    p.set_defaults(func=cmd_fad)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.evaluate import (
        evaluate,
        format_value,
        log_to_tensorboard,
        write_report,
    )
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    store = FeatureStore(args.data)
    tt.check_store(store)
    attach_heads(tt, args, tt.domains)
    out = Path(args.out)
    classifier = Path(args.classifier or out.with_name("classifier.pt"))
    report = evaluate(tt, store, classifier, split=args.split, inverter=args.inverter,
                      embedder=args.embedder, fad_weights=args.fad_weights,
                      max_clips=args.max_clips, twins=args.twins, f0_truth=args.f0_truth,
                      judge_pitch_shift=args.judge_pitch_shift, judge=args.judge,
                      f0_tracker=args.f0_tracker, octave=args.octave)
    report["checkpoint"] = str(args.checkpoint)
    written = write_report(report, out)
    if args.tensorboard:
        print(f"logged to {log_to_tensorboard(report, args.tensorboard)}")
    c = report["classifier"]
    print(f"domain classifier {classifier}: held-out accuracy "
          f"{format_value(c['heldout_accuracy'])} ({c['heldout_windows']} windows)")
    s = {k: format_value(v) for k, v in report["summary"].items()}
    print(f"octave {args.octave}; source != target: median f0 error {s['median_f0_cents']} c "
          "after the octaves applied")
    print(f"source != target: mean conversion accuracy {s['mean_conversion_accuracy']}; FAD "
          f"transfer {s['mean_fad_transfer']} vs identity {s['mean_fad_identity']} (ratio "
          f"{s['fad_ratio']})")
    print(f"report: {written['json']} (summary {written['markdown']}, heatmaps "
          f"{out.parent / (out.stem + '_*.png')})")
    return 0


def register_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score a model on held-out clips: FAD, conversion accuracy, content",
        description="Transfer the held-out clips of every domain of FEATURES_DIR (the model's "
        "prepared store) to every domain and write REPORT (JSON) with source x target matrices "
        "of FAD (against the target's training audio), conversion accuracy (by a domain "
        "classifier trained on the store) and content kept (loudness-envelope correlation; f0 "
        "error in cents on frames pitched in both, the share of them within 50 cents and the "
        "voiced coverage, read by --f0-tracker, against the source's f0 or --f0-truth; chroma "
        "similarity); the identity and resynthesis baselines; reconstruction quality. The "
        "transfers play in the register --octave gives (auto by default), and pitch is scored "
        "against the source moved by the octaves each transfer applied (in the report). A "
        "Markdown summary (.md) and PNG heatmaps are written beside REPORT.",
    )
    add_checkpoint(p, shipped=True)
    add_data(p, "the feature store the model was trained on (its split is reused)")
    p.add_argument("--out", required=True, metavar="REPORT", help="report path, e.g. report.json")
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="clips to transfer (default: val, the held-out files)")
    add_ddsp_inverter(p)
    add_octave(p, "; the report records the octaves applied per pair and clip")
    add_embedder(p)
    p.add_argument("--classifier", metavar="PATH",
                   help="domain classifier: loaded if the file exists, else trained on the "
                   "store's train split and saved there (default: classifier.pt beside REPORT)")
    p.add_argument("--judge-pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="train the classifier on crops shifted by up to this many semitones, "
                   "so that it judges timbre rather than register; 12 is a register-invariant "
                   "judge (default: 0; a saved --classifier must match)")
    p.add_argument("--judge", choices=("mel", "mfcc"), default="mel",
                   help="what the classifier reads: mel, a CNN on the mel windows (it hears "
                   "register as well as timbre), or mfcc, the windows' cepstral means and "
                   "spreads (the spectral envelope; it tells real instruments apart across "
                   "their ranges and recordings) (default: mel; a saved --classifier must match)")
    p.add_argument("--max-clips", type=int, metavar="N", help="at most N clips per domain")
    p.add_argument("--twins", metavar="AUDIO_DIR",
                   help="paired audio (<domain>/<name>.wav, e.g. from synth-data): also score "
                   "transfers against their ground-truth twins")
    p.add_argument("--f0-truth", metavar="DIR",
                   help="ground-truth f0 files <clip stem>.csv (columns time_s,f0_hz; 0 = no "
                   "note): the pitch of a domain's transfers is scored against them (on the "
                   "clips' untrimmed timeline) instead of the source's f0; domains without "
                   "files there keep the source's f0")
    add_f0_tracker(p, "what reads the pitch of sources and outputs; the model is conditioned "
                   "on its own tracker's f0, so the other one is an independent check")
    p.add_argument("--tensorboard", metavar="RUN_DIR",
                   help="also log the scores to RUN_DIR/tensorboard at the checkpoint's step")
    p.set_defaults(func=cmd_evaluate)
