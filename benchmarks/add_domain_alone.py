"""Your own instrument on a shipped model: ``add-domain --model NAME`` from the new recordings
alone, against add-domain with the model's own training data, at the same budget.

The shipped model (``real8-small``) never heard Philharmonia. Its ``--instrument`` (cello by
default) is added to it two ways, each for ``--steps`` steps with everything old frozen:

- ``with the old data``: the store holds the model's eight domains and the cello (the route of
  ``benchmarks/grow.py``): the new generator learns from translations of real old-domain clips;
- ``new data alone``: the store holds the cello alone, as a user of a shipped model has it: the
  old domains' crops are stand-ins, cello crops translated by the frozen old generators.

Both are scored on the same store (the model's domains and the cello, prepared ``--like`` the
model): held-out clips of the model's domains (at most ``--max-clips`` each; pitch against the
source's own f0) transferred into the cello: conversion accuracy (CNN judge), median f0 error,
FAD / identity, and each route's wall time. Also checked: both grown models' transfers into old
domains are bit-identical to the shipped model's.

Needs ``benchmarks/train_models.py`` to have run (its store and manifest). Every stage is reused
when its output exists. Run alone, from the repository root::

    .venv/bin/python benchmarks/add_domain_alone.py [--steps 400] [--instrument cello]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODEL = "real8-small"


def main(argv=None) -> None:
    import torch

    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.prepare import prepare_like
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.evaluate import evaluate
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.pretrained import resolve
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE, grown_config
    from timbre_transfer.training.trainer import Trainer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400, help="add-domain steps per route")
    p.add_argument("--instrument", default="cello", help="the Philharmonia instrument added")
    p.add_argument("--val", type=float, default=0.2, help="share of its notes held out")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "add_domain_alone")
    p.add_argument("--max-clips", type=int, default=3,
                   help="held-out clips per source domain scored")
    args = p.parse_args(argv)
    work, new = args.work.resolve(), args.instrument
    model_path = resolve(MODEL)
    blob = read_checkpoint(model_path)
    old = list(blob["domains"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {MODEL}: {old} + {new}",
          flush=True)

    # the instrument's notes, a seeded share held out; the model's own manifest for its domains
    notes = sorted((DATA / "philharmonia" / new).glob("*.flac"))
    held = set(np.random.default_rng(0).choice(len(notes), int(round(len(notes) * args.val)),
                                               replace=False).tolist())
    new_rows = [(str(f), new, "val" if i in held else "train") for i, f in enumerate(notes)]
    with open(ROOT / "data" / "models" / MODEL / "manifest.csv", newline="") as fh:
        old_rows = [tuple(r) for r in list(csv.reader(fh))[1:]]
    stores = {}
    for name, rows in (("alone", new_rows), ("all", old_rows + new_rows)):
        manifest = work / f"{name}.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "domain", "split"])
            writer.writerows(rows)
        stores[name] = FeatureStore(prepare_like(manifest, work / f"store_{name}", blob,
                                                 str(model_path)).store)

    routes = {}
    for route, store in (("with the old data", stores["all"]),
                         ("new data alone", stores["alone"])):
        run = work / "runs" / route.replace(" ", "_")
        done = run / "done.json"
        if not done.is_file():
            config = grown_config(model_path, None, [f"train.max_steps={args.steps}"],
                                  freeze=ADD_DOMAIN_FREEZE, new_generators="nearest",
                                  stand_ins=store is stores["alone"])
            t0 = time.perf_counter()
            Trainer(config, store, run, resume=(run / "checkpoints").is_dir()).fit()
            done.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
        routes[route] = (run / "checkpoints" / "latest.pt", json.loads(done.read_text()))

    rows = {}
    base_tt = TimbreTransfer.from_checkpoint(model_path, device="cpu")
    sr = base_tt.sample_rate
    probe = {d: stores["all"].clip_audio(d, stores["all"].clips(d, "val").files[0])[: 3 * sr]
             for d in old}
    for route, (ckpt, info) in routes.items():
        path = work / "reports" / f"{route.replace(' ', '_')}.json"
        if path.is_file():
            report = json.loads(path.read_text())
        else:
            tt = TimbreTransfer.from_checkpoint(ckpt, device="cpu")
            report = evaluate(tt, stores["all"], work / "classifier.pt", embedder="logmel",
                              sources=old, targets=[new], max_clips=args.max_clips)
            report["old_transfers_identical"] = all(
                np.array_equal(base_tt.transfer(w, sr, to=t, inverter="pghi"),
                               tt.transfer(w, sr, to=t, inverter="pghi"))
                for w in probe.values() for t in old[:2])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1))
        s = report["summary"]
        rows[route] = {"minutes": info["seconds"] / 60, "acc": s["mean_conversion_accuracy"],
                       "f0": s["median_f0_cents"], "within": s["mean_f0_within_50c"],
                       "fad": s["fad_ratio"], "identical": report["old_transfers_identical"]}
    print(f"\n{new} added to {MODEL} for {args.steps} steps, everything old frozen; held-out "
          f"clips of its {len(old)} domains transferred into {new}:\n")
    print("| route | training (min) | conversion (CNN) | median f0 err (c) | within 50 c "
          "| FAD / identity | old transfers bit-identical |")
    print("|---|---|---|---|---|---|---|")
    for route, r in rows.items():
        print(f"| {route} | {r['minutes']:.1f} | {r['acc']:.3f} | {r['f0']:.1f} | "
              f"{r['within']:.3f} | {r['fad']:.3f} | {'yes' if r['identical'] else 'NO'} |")
    (work / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
