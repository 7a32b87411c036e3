"""Conversion accuracy by two judges on the same transfers: the plain domain classifier, and a
register-invariant one trained with random +-12 semitone mel shifts
(``ClassifierConfig(pitch_shift=12)``), which has heard every domain in every register.

A transfer that keeps the source's pitch plays the target instrument in the source's register;
a judge that learned each instrument in its own register may call that the source. The gap
between the two columns is how much of a model's "no conversion" is register, not timbre.

Uses the models, the DDSP head and the plain classifier of ``transfer_quality.py --set bach10``
(run it first); scores every held-out clip of every source against every other target. Run from
the repository root, alone::

    .venv/bin/python benchmarks/register_judge.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "bench" / "transfer_quality_bach10"
ROWS = {"identity": None, "recipe": ("recipe", "pghi+gla"),
        "template+pitch-loss": ("template+pitch-loss", "pghi+gla"),
        "template+pitch-loss+ddsp": ("template+pitch-loss", "ddsp")}


def main(argv=None) -> None:
    import torch

    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier, ClassifierConfig, classifier_for
    from timbre_transfer.inference.transfer import TimbreTransfer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(WORK), help="transfer_quality.py's work folder")
    args = p.parse_args(argv)
    work = Path(args.work)
    store = FeatureStore(work / "features")
    judges = {"plain": Classifier.load(work / "classifier.pt"),
              "register-invariant": classifier_for(store, work / "classifier_shift12.pt",
                                                   ClassifierConfig(pitch_shift=12.0),
                                                   progress=False)}
    for name, judge in judges.items():
        print(f"{name} judge: held-out accuracy {judge.heldout_accuracy:.3f}", flush=True)
    clips = {d: [store.clip_audio(d, f) for f in store.clips(d, "val").files]
             for d in store.domains}

    def accuracy(judge, wavs, domain):
        labels = torch.cat([judge.predict_audio(w) for w in wavs])
        return float((labels == judge.domains.index(domain)).float().mean())

    table = {"resynthesis": {k: float(np.mean([accuracy(j, clips[d], d) for d in store.domains]))
                             for k, j in judges.items()}}
    for row, spec in ROWS.items():
        t0 = time.perf_counter()
        tt = None
        if spec:
            tt = TimbreTransfer.from_checkpoint(work / "runs" / spec[0] / "checkpoints" / "latest.pt",
                                                device="cpu")
            tt.attach_ddsp(work / "runs" / "ddsp" / "checkpoints" / "latest.pt")
        scores = {k: [] for k in judges}
        for s in store.domains:
            for t in store.domains:
                if s == t:
                    continue
                wavs = clips[s] if tt is None else [tt.transfer(w, tt.sample_rate, to=t,
                                                                inverter=spec[1]) for w in clips[s]]
                for k, judge in judges.items():
                    scores[k].append(accuracy(judge, wavs, t))
        table[row] = {k: float(np.mean(v)) for k, v in scores.items()}
        print(f"{row}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n| row | acc, plain judge | acc, register-invariant judge |\n|---|---|---|")
    for row, acc in table.items():
        print(f"| {row} | {acc['plain']:.3f} | {acc['register-invariant']:.3f} |")
    (work / "register_judge.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
