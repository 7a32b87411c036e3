"""Grow a trained model: add-domain against training every domain from scratch, on real audio.

1. ``base``: config/cpu-small.yaml on Bach10's violin, clarinet and tenor_sax (pieces 01-06) plus
   speech_en, four domains, for ``--minutes`` of wall time (steps calibrated on the first 20: N).
2. ``add-domain``: bassoon (Bach10) and cello (philharmonia) added to it for N // 4 steps, new
   generators from scratch, and again starting from the nearest old generator.
3. ``scratch``, the peer: all six domains from zero for N + N // 4 steps.

Every model is scored on the same store (the six domains, analysed ``--like`` the base model):
held-out clips of the OLD domains (Bach10 pieces 07-08, first ``--eval-seconds``, against their
f0 truth; held-out speech, against its pYIN) transferred into the NEW domains: conversion
accuracy, median f0 error, FAD / identity, and each route's training wall time. Also checked:
the grown models' transfers into the old domains are bit-identical to the base model's.

Every stage is reused when its output exists (an interrupted run continues). Run alone, from the
repository root::

    .venv/bin/python benchmarks/grow.py [--minutes 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from quality_common import DATA, stage_bach10

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "cpu-small.yaml"
OLD = ["clarinet", "speech_male", "tenor_sax", "violin"]
NEW = ["bassoon", "cello"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(ROOT / "data" / "bench" / "grow"),
                   help="working folder (default: data/bench/grow)")
    p.add_argument("--minutes", type=float, default=20.0,
                   help="wall time of the base model's training (sets N, its step count)")
    p.add_argument("--eval-seconds", type=float, default=20.0,
                   help="held-out Bach10 pieces are cut to their first N seconds")
    p.add_argument("--cello-val", type=float, default=0.2,
                   help="share of the cello notes held out (seeded)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's); 1 lets two runs share 2 cores")
    return p.parse_args(argv)


def manifests(work: Path, eval_seconds: float, cello_val: float) -> tuple[Path, Path, Path]:
    """CSV manifests of the four old domains and of all six, and the f0 truth folder."""
    staged, truth = stage_bach10(work, eval_seconds, speech_val=4)
    with open(staged, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    cello = sorted((DATA / "philharmonia" / "cello").glob("*.flac"))
    held = set(np.random.default_rng(0).choice(len(cello), int(round(len(cello) * cello_val)),
                                               replace=False).tolist())
    rows += [(str(p), "cello", "val" if i in held else "train") for i, p in enumerate(cello)]
    out = []
    for name, domains in (("old", OLD), ("all", OLD + NEW)):
        path = work / f"{name}.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "domain", "split"])
            writer.writerows(r for r in rows if r[1] in domains)
        out.append(path)
    return out[0], out[1], truth


def train(config, store, run: Path, steps: int | None = None, minutes: float | None = None):
    """Train ``config`` for ``steps`` (or ``minutes``, calibrated on 20 steps); returns
    (checkpoint, steps, seconds of training). Reused when done."""
    import dataclasses

    from timbre_transfer.training.trainer import Trainer

    done = run / "done.json"
    if done.is_file():
        info = json.loads(done.read_text())
        return run / "checkpoints" / "latest.pt", info["steps"], info["seconds"]
    with_steps = lambda n: dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                                 max_steps=n))
    t0 = time.perf_counter()
    if steps is None:  # calibrate: the first 20 steps are part of the run
        Trainer(with_steps(20), store, run, progress=False).fit()
        rate = 20 / (time.perf_counter() - t0)
        steps = max(21, int(minutes * 60 * rate))
    trainer = Trainer(with_steps(steps), store, run, resume=(run / "checkpoints").is_dir())
    trainer.fit()
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({"steps": steps, "seconds": seconds}))
    return run / "checkpoints" / "latest.pt", steps, seconds


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.evaluate import evaluate
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE, grown_config

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    old_csv, all_csv, truth = manifests(work, args.eval_seconds, args.cello_val)
    options = PrepareOptions(val_fraction=0.0)  # the manifests state every split
    workers = 1 if args.threads == 1 else None
    base_store = FeatureStore(prepare(old_csv, work / "old_store", AudioTransform(), options,
                                      workers=workers).store)

    base, n, base_s = train(load_run_config(CONFIG), base_store, work / "runs" / "base",
                            minutes=args.minutes)
    print(f"base: {n} steps in {base_s / 60:.1f} min", flush=True)
    like = TimbreTransfer.from_checkpoint(base, device="cpu").transform
    store = FeatureStore(prepare(all_csv, work / "all_store", like, options, workers=workers,
                                 normalisation=(float(like.norm_shift),
                                                float(like.norm_scale))).store)

    routes = {}
    for name, init in (("add-domain", "scratch"), ("add-domain (nearest)", "nearest")):
        config = grown_config(base, freeze=ADD_DOMAIN_FREEZE, new_generators=init)
        routes[name] = train(config, store, work / "runs" / name.replace(" ", "_"), steps=n // 4)
    routes["scratch"] = train(load_run_config(CONFIG), store, work / "runs" / "scratch",
                              steps=n + n // 4)

    rows = {}
    base_tt = TimbreTransfer.from_checkpoint(base, device="cpu")
    sr = base_tt.sample_rate
    probe = {d: store.clip_audio(d, store.clips(d, "val").files[0])[: 5 * sr] for d in OLD}
    for name, (ckpt, steps, seconds) in routes.items():
        report_path = work / "reports" / f"{name.replace(' ', '_')}.json"
        if report_path.is_file():
            report = json.loads(report_path.read_text())
        else:
            tt = TimbreTransfer.from_checkpoint(ckpt, device="cpu")
            report = evaluate(tt, store, work / "classifier.pt", embedder="logmel",
                              f0_truth=truth, sources=OLD, targets=NEW)
            if name.startswith("add-domain"):
                report["old_transfers_identical"] = all(
                    np.array_equal(base_tt.transfer(w, sr, to=t, inverter="pghi"),
                                   tt.transfer(w, sr, to=t, inverter="pghi"))
                    for w in probe.values() for t in OLD)
            report_path.parent.mkdir(parents=True, exist_ok=True)
            report_path.write_text(json.dumps(report, indent=1))
        s = report["summary"]
        rows[name] = {"steps": steps, "minutes": seconds / 60,
                      "acc": s["mean_conversion_accuracy"], "f0": s["median_f0_cents"],
                      "fad": s["fad_ratio"], "identical": report.get("old_transfers_identical")}

    print("\n| route | steps | training (min) | conversion acc | median f0 err (cents) "
          "| FAD / identity | old transfers bit-identical |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    for name, r in rows.items():
        same = "-" if r["identical"] is None else ("yes" if r["identical"] else "NO")
        print(f"| {name} | {r['steps']} | {r['minutes']:.1f} | {fmt(r['acc'])} | "
              f"{r['f0']:.0f} | {fmt(r['fad'])} | {same} |")
    peer = rows["scratch"]
    print(f"\nbase (four domains): {n} steps, {base_s / 60:.1f} min")
    for name in ("add-domain", "add-domain (nearest)"):
        r = rows[name]
        print(f"{name}: accuracy {r['acc'] - peer['acc']:+.3f} vs scratch (target >= -0.1), "
              f"pitch {r['f0'] - peer['f0']:+.0f} c (target <= +25), wall time "
              f"{r['minutes'] / peer['minutes']:.2f} x scratch (target <= 0.25)")
    (work / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
