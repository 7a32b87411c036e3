"""Conversion accuracy by three judges on the same transfers: the plain domain classifier, a
register-invariant one trained with random +-12 semitone mel shifts
(``ClassifierConfig(pitch_shift=12)``), which has heard every domain in every register, and an
MFCC judge (``ClassifierConfig(features="mfcc")``), which reads the spectral envelope only.

A transfer that keeps the source's pitch plays the target instrument in the source's register;
a judge that learned each instrument in its own register may call that the source. The gap
between the columns is how much of a model's "no conversion" is register, not timbre.
``benchmarks/judge_out_of_register.py`` measures each judge on real notes of other recordings,
in and out of register.

Uses the models, the DDSP head and the plain classifier of ``transfer_quality.py --set bach10``
(run it first); scores every held-out clip of every source against every other target. Run from
the repository root, alone::

    .venv/bin/python benchmarks/register_judge.py [--rows recipe ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from quality_rows import DDSP_MODEL
from quality_rows import ROWS as TQ_ROWS

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "bench" / "transfer_quality_bach10"
# row: (transfer_quality.py's run, inverter), None for the sources themselves; every row of
# quality_rows.py, transfer_quality.py's table (a DDSP row renders another row's model)
ROWS = {"identity": None, **{name: (DDSP_MODEL.get(name, name), row.inverter)
                             for name, row in TQ_ROWS.items()}}
JUDGES = {"plain": None, "register-invariant": ("classifier_shift12.pt", {"pitch_shift": 12.0}),
          "mfcc": ("classifier_mfcc.pt", {"features": "mfcc"})}


def main(argv=None) -> None:
    import torch

    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier, ClassifierConfig, classifier_for
    from timbre_transfer.inference.transfer import TimbreTransfer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(WORK), help="transfer_quality.py's work folder")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=None,
                   help="rows to score (default: every row whose runs the work folder holds; "
                        "a row named here must have them)")
    args = p.parse_args(argv)
    work = Path(args.work)
    if not (work / "classifier.pt").is_file():
        raise SystemExit(f"{work}: no classifier.pt; run transfer_quality.py --set bach10 first")

    def missing(row):  # the runs a row needs that the work folder lacks
        spec = ROWS[row]
        needed = [] if spec is None else [spec[0]] + (["ddsp"] if spec[1] == "ddsp" else [])
        return [run for run in needed
                if not (work / "runs" / run / "checkpoints" / "latest.pt").is_file()]

    rows = args.rows or [row for row in ROWS if not missing(row)]
    for row in rows:
        absent = missing(row)
        if absent:
            raise SystemExit(f"row {row}: no model in {work / 'runs' / absent[0]}; train it "
                             f"with transfer_quality.py --rows {absent[0]}")
    store = FeatureStore(work / "features")
    judges = {name: Classifier.load(work / "classifier.pt") if spec is None else
              classifier_for(store, work / spec[0], ClassifierConfig(**spec[1]), progress=False)
              for name, spec in JUDGES.items()}
    for name, judge in judges.items():
        print(f"{name} judge: held-out accuracy {judge.heldout_accuracy:.3f}", flush=True)
    clips = {d: [store.clip_audio(d, f) for f in store.clips(d, "val").files]
             for d in store.domains}

    def accuracy(judge, wavs, domain):
        labels = torch.cat([judge.predict_audio(w) for w in wavs])
        return float((labels == judge.domains.index(domain)).float().mean())

    per_pair = {}  # row -> judge -> "source->target" -> accuracy
    table = {"own clips": {k: float(np.mean([accuracy(j, clips[d], d) for d in store.domains]))
                             for k, j in judges.items()}}
    for row in rows:
        spec = ROWS[row]
        t0 = time.perf_counter()
        tt = None
        if spec:
            run = work / "runs" / spec[0]
            tt = TimbreTransfer.from_checkpoint(run / "checkpoints" / "latest.pt", device="cpu")
            if spec[1] == "ddsp":
                tt.attach_ddsp(work / "runs" / "ddsp" / "checkpoints" / "latest.pt")
        scores, pairs = {k: [] for k in judges}, {k: {} for k in judges}
        for s in store.domains:
            for t in store.domains:
                if s == t:
                    continue
                wavs = clips[s] if tt is None else [tt.transfer(w, tt.sample_rate, to=t,
                                                                inverter=spec[1]) for w in clips[s]]
                for k, judge in judges.items():
                    scores[k].append(accuracy(judge, wavs, t))
                    pairs[k][f"{s}->{t}"] = scores[k][-1]
        table[row] = {k: float(np.mean(v)) for k, v in scores.items()}
        per_pair[row] = pairs
        print(f"{row}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n| row | " + " | ".join(f"acc, {name} judge" for name in judges) + " |")
    print("|---|" + "---|" * len(judges))
    for row, acc in table.items():
        print(f"| {row} | " + " | ".join(f"{acc[name]:.3f}" for name in judges) + " |")
    out = work / "register_judge.json"  # rows scored before and not now are kept
    saved = json.loads(out.read_text()) if out.is_file() else {"mean": {}, "pairs": {}}
    saved["mean"].update(table)
    saved["pairs"].update(per_pair)
    out.write_text(json.dumps(saved, indent=1))


if __name__ == "__main__":
    main()
