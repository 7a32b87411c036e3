"""Transfer quality on real recordings: train config/cpu-small.yaml on ../shared/data/realaudio
for a fixed budget, evaluate on the held-out files, and print the matrices with their baselines.

Steps (each reused when its output is already there, so an interrupted run continues):

1. ``prepare`` the six real-audio domains with a 30 % file-level held-out split (the default 10 %
   would leave one clip per domain);
2. ``train`` config/cpu-small.yaml for ``--max-steps`` (default: the config's 1100);
3. ``evaluate`` on the held-out files: a domain classifier trained on the training files judges
   conversion accuracy; FAD is measured against each target's training audio.

The peers, measured in the same run on the same clips: **identity** (the untouched source scored
against the target: what a model that does nothing gets) and **resynthesis** (the target's own
held-out audio through the same front end and inverter: what a perfect generator would get).
Targets from issue 5: mean conversion accuracy >= 0.8 over source != target, and
FAD(transfer) <= 0.6 x FAD(identity), on the built-in embedder and on VGGish where weights exist.

Run from the repository root (alone: a second torch process on 2 cores halves both)::

    .venv/bin/python benchmarks/transfer_quality.py [--max-steps 1100] [--fad-weights PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "realaudio"),
                   help="folders of real audio per domain (default: ../shared/data/realaudio)")
    p.add_argument("--work", default=str(ROOT / "data" / "bench" / "transfer_quality"),
                   help="working folder: features, run, reports (default: data/bench/transfer_quality)")
    p.add_argument("--config", default=str(ROOT / "config" / "cpu-small.yaml"))
    p.add_argument("--max-steps", type=int, default=None, help="training budget (default: the config's)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="held-out share of each domain's files")
    p.add_argument("--inverter", default="pghi+gla")
    p.add_argument("--fad-weights", default=None,
                   help="vggish-10086976.pth (default: the torch hub cache; skipped without it)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.evaluation.evaluate import evaluate, markdown_summary, write_report
    from timbre_transfer.evaluation.vggish import resolve_weights
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    args = parse_args(argv)
    work = Path(args.work)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {args.data}")

    t0 = time.perf_counter()
    result = prepare(args.data, work / "features", AudioTransform(),
                     PrepareOptions(val_fraction=args.val_fraction), workers=1)
    store = FeatureStore(result.store)
    print(f"prepare: {time.perf_counter() - t0:.1f} s ({result.processed} files analysed, "
          f"{result.reused} reused)")

    overrides = [] if args.max_steps is None else [f"train.max_steps={args.max_steps}"]
    config = load_run_config(args.config, overrides)
    run = work / "run"
    resume = (run / "checkpoints" / "latest.pt").is_file()
    trainer = Trainer(config, store.root, run, resume=resume)
    start, t0 = trainer.step, time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    print(f"train: steps {start} -> {trainer.step} of {config.train.max_steps} in {seconds / 60:.1f} "
          f"min ({(trainer.step - start) / max(seconds, 1e-9):.2f} steps/s this session)")
    del trainer

    tt = TimbreTransfer.from_checkpoint(run / "checkpoints" / "latest.pt", device="cpu")
    embedders = ["logmel"]
    try:
        weights = resolve_weights(args.fad_weights, download=False)
        embedders.append("vggish")
    except FileNotFoundError as exc:
        weights = None
        print(f"VGGish skipped: {exc}")
    for embedder in embedders:
        t0 = time.perf_counter()
        report = evaluate(tt, store, work / "classifier.pt", inverter=args.inverter,
                          embedder=embedder, fad_weights=weights)
        report["checkpoint"] = str(run / "checkpoints" / "latest.pt")
        written = write_report(report, work / f"report_{embedder}.json")
        print(f"\nevaluate ({embedder}): {time.perf_counter() - t0:.0f} s -> {written['json']}\n")
        print(markdown_summary(report))
        s = report["summary"]
        verdict = {True: "met", False: "NOT met"}
        accuracy, ratio = s["mean_conversion_accuracy"], s["fad_ratio"]
        print(f"target: mean conversion accuracy {accuracy:.3f} >= 0.8: {verdict[accuracy >= 0.8]}")
        print(f"target: FAD transfer / identity {ratio:.3f} <= 0.6 ({embedder}): "
              f"{verdict[ratio <= 0.6]}")


if __name__ == "__main__":
    main()
