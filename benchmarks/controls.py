"""Timbre knobs on held-out real clips: does each knob move its descriptor by what its unit
says, and leave the notes, the dynamics and the conversion alone?

Ten held-out clips (Bach10 pieces 07-08, violin / clarinet / tenor sax / bassoon, and two
philharmonia notes), each transferred to another instrument and rendered at 7 settings of every
knob, spread over its documented range. Each knob is measured twice on the DDSP head: as the
calibrated edit of the synth controls (any head), and as the descriptor input of a head
conditioned on the descriptors (trained here, ``head.descriptors``, for as many steps as the
plain head); brightness also on the mel inverter (PGHI+GLA). One table per knob and mechanism:

- per setting, averaged over the clips: the descriptor's measured change against the neutral (0)
  setting, the f0 change (each clip's median in cents, pYIN of the output against pYIN of the
  neutral output), the loudness-envelope correlation with the neutral output, and the
  conversion accuracy to the target;
- summary: Spearman correlation of setting and measured descriptor (per clip, averaged), the
  least-squares slope of measured against requested change (1.0 = the unit holds), the worst
  setting's f0 change and loudness correlation, the largest accuracy change at the two extreme
  settings, and the targets of issue 14.

The baseline is the neutral setting itself (every column is against it). The model is the
``transfer_quality.py --set bach10`` run's (its work folder holds the checkpoints, the DDSP head
and the domain classifier): run that benchmark first. Run from the repository root, alone::

    .venv/bin/python benchmarks/controls.py [--row template+pitch-loss] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "data" / "bench" / "transfer_quality_bach10"
SR = 16000
HOP = 256
# (source file, target domain): Bach10's held-out pieces and two philharmonia notes
CLIPS = [
    *[(f"bach10/{inst}/{piece}", target)
      for piece in ("07-HerrGott.flac", "08-FuerDeinenThron.flac")
      for inst, target in (("violin", "clarinet"), ("clarinet", "violin"),
                           ("tenor_sax", "bassoon"), ("bassoon", "tenor_sax"))],
    ("philharmonia/flute/flute_A4_15_mezzo-forte_normal.flac", "violin"),
    ("philharmonia/cello/cello_A2_15_pianissimo_arco-normal.flac", "bassoon"),
]
SETTINGS = 7
# knob -> (descriptor it moves, how a change of it is measured)
MEASURED = {"brightness": "brightness", "noisiness": "noisiness", "odd_even": "odd_even"}
EDIT, CONDITIONED = "edit of the synth controls", "descriptor input of a conditioned head"
MEL_EDIT = "edit of the generated mel"
TARGETS = {"spearman": 0.9, "slope": (0.7, 1.3), "f0_cents": 20.0, "loudness_corr": 0.9,
           "accuracy_drop": 0.15}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(WORK), help="transfer_quality.py's work folder")
    p.add_argument("--row", default="template+pitch-loss",
                   help="which of its trained rows transfers (default: template+pitch-loss)")
    p.add_argument("--seconds", type=float, default=6.0, help="each clip's first N seconds")
    p.add_argument("--knobs", nargs="+", default=None,
                   help="measure only these knobs (default: all); their tables replace the "
                        "ones a previous run wrote")
    p.add_argument("--out", default=str(ROOT / "data" / "bench" / "controls"),
                   help="results (JSON, tables) go here")
    return p.parse_args(argv)


def load_clip(rel: str, seconds: float) -> np.ndarray:
    from timbre_transfer.audio.io import load_audio

    path = DATA / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; this benchmark needs ../shared/data")
    return load_audio(path, SR)[: int(seconds * SR)]


def median_cents(f0: np.ndarray, ref: np.ndarray) -> float:
    both = np.isfinite(f0) & np.isfinite(ref)
    if not both.any():
        return float("nan")
    return float(np.median(np.abs(1200 * np.log2(f0[both] / ref[both]))))


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def sweep(tt, classifier, name: str, inverter: str, clips, mechanism: str) -> dict:
    """Every clip at every setting of knob ``name``; the measured rows and their summary."""
    from timbre_transfer.audio.descriptors import describe
    from timbre_transfer.audio.f0 import f0_pyin
    from timbre_transfer.audio.features import a_weighted_loudness
    from timbre_transfer.audio.timbre_controls import KNOBS

    knob = KNOBS[name]
    settings = np.linspace(knob.low, knob.high, SETTINGS)
    descriptor = MEASURED[name]
    per_setting = {float(v): {"change": [], "f0_cents": [], "loudness_corr": [], "accuracy": []}
                   for v in settings}
    rhos, requested, measured = [], [], []
    for wav, target in clips:
        neutral = tt.transfer(wav, SR, to=target, inverter=inverter)
        f0_ref = f0_pyin(neutral, SR, HOP).f0
        loud_ref = a_weighted_loudness(neutral, SR, hop_length=HOP)
        values = []
        for v in settings:
            out = neutral if v == 0 else tt.transfer(wav, SR, to=target, inverter=inverter,
                                                     controls={name: float(v)})
            # harmonic descriptors read the neutral output's f0: the knob must not move it
            d = describe(out, SR, HOP, f0_hz=f0_ref)
            value = float(np.nanmedian(getattr(d, descriptor)))
            values.append(value)
            row = per_setting[float(v)]
            row["f0_cents"].append(median_cents(f0_pyin(out, SR, HOP).f0, f0_ref))
            loud = a_weighted_loudness(out, SR, hop_length=HOP)
            row["loudness_corr"].append(float(np.corrcoef(loud, loud_ref)[0, 1]))
            row["accuracy"].append(classifier.accuracy(out, target))
        base = values[list(settings).index(0.0)] if 0.0 in settings else np.nan
        for v, value in zip(settings, values):
            per_setting[float(v)]["change"].append(value - base)
            requested.append(float(v))
            measured.append(value - base)
        rhos.append(spearman(settings, values))
    requested, measured = np.asarray(requested), np.asarray(measured)
    ok = np.isfinite(measured)
    slope = float(np.sum(requested[ok] * measured[ok]) / np.sum(requested[ok] ** 2))
    rows = {v: {k: float(np.nanmean(x)) for k, x in r.items()} for v, r in per_setting.items()}
    neutral_acc = rows[0.0]["accuracy"]
    extremes = [rows[float(settings[0])]["accuracy"], rows[float(settings[-1])]["accuracy"]]
    summary = {
        "spearman": float(np.nanmean(rhos)), "slope": slope,
        "f0_cents": max(rows[v]["f0_cents"] for v in rows if v),  # worst setting's mean
        "loudness_corr": min(rows[v]["loudness_corr"] for v in rows if v),
        "accuracy_neutral": neutral_acc,
        "accuracy_drop": max(abs(a - neutral_acc) for a in extremes),
    }
    return {"knob": name, "unit": knob.unit, "inverter": inverter, "mechanism": mechanism,
            "rows": rows, "summary": summary}


def train_conditioned_head(work: Path, plain_head: Path) -> Path:
    """A head conditioned on every knob's descriptor (``head.descriptors``), trained on the
    same store for as many steps as the plain head of the ``ddsp`` row."""
    from timbre_transfer.audio.timbre_controls import KNOBS
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    run = work / "runs" / "ddsp-descriptors"
    latest = run / "checkpoints" / "latest.pt"
    if (run / "done").is_file():
        return latest
    steps = int((plain_head.parents[1] / "done").read_text())
    names = ",".join(KNOBS)
    config = load_ddsp_config(overrides=[f"train.max_steps={steps}",
                                         f"head.descriptors=[{names}]"])
    store = FeatureStore(work / "features")
    t0 = time.perf_counter()
    DDSPTrainer(config, store, store.domains, run, resume=latest.is_file()).fit()
    (run / "done").write_text(str(steps))
    print(f"conditioned head: {steps} steps in {(time.perf_counter() - t0) / 60:.1f} min",
          flush=True)
    return latest


def verdict(summary: dict) -> list[str]:
    s, t = summary, TARGETS
    checks = [("Spearman", s["spearman"] >= t["spearman"], f"{s['spearman']:.3f} >= 0.9"),
              ("slope", t["slope"][0] <= s["slope"] <= t["slope"][1],
               f"{s['slope']:.3f} in 0.7-1.3"),
              ("f0 change", s["f0_cents"] <= t["f0_cents"], f"{s['f0_cents']:.1f} c <= 20"),
              ("loudness corr", s["loudness_corr"] >= t["loudness_corr"],
               f"{s['loudness_corr']:.3f} >= 0.9"),
              ("accuracy at the extremes", s["accuracy_drop"] <= t["accuracy_drop"],
               f"within {s['accuracy_drop']:.3f} of neutral {s['accuracy_neutral']:.3f} (<= 0.15)")]
    return [f"{name}: {text}: {'met' if good else 'NOT met'}" for name, good, text in checks]


def table(result: dict) -> str:
    unit = result["unit"]
    lines = [f"### {result['knob']} ({unit}), {result['inverter']}: {result['mechanism']}", "",
             f"| setting ({unit}) | measured change ({unit}) | f0 change (c) | loudness corr "
             "| conversion acc |", "|---|---|---|---|---|"]
    for v, r in result["rows"].items():  # keys are strings once read back from JSON
        lines.append(f"| {float(v):+.2f} | {r['change']:+.3f} | {r['f0_cents']:.1f} | "
                     f"{r['loudness_corr']:.3f} | {r['accuracy']:.3f} |")
    lines += ["", *("- " + line for line in verdict(result["summary"]))]
    return "\n".join(lines)


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.timbre_controls import KNOBS
    from timbre_transfer.evaluation.classifier import Classifier
    from timbre_transfer.inference.transfer import TimbreTransfer

    args = parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    checkpoint = work / "runs" / args.row / "checkpoints" / "latest.pt"
    head = work / "runs" / "ddsp" / "checkpoints" / "latest.pt"
    for path in (checkpoint, head, work / "classifier.pt"):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run benchmarks/transfer_quality.py --set bach10 "
                             f"--rows {args.row} ddsp first")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {checkpoint}",
          flush=True)
    tt = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
    tt.attach_ddsp(head)
    conditioned = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
    conditioned.attach_ddsp(train_conditioned_head(work, head))
    classifier = Classifier.load(work / "classifier.pt")
    clips = [(load_clip(rel, args.seconds), target) for rel, target in CLIPS]
    out.mkdir(parents=True, exist_ok=True)
    results = []
    runs = [(name, "ddsp", tt, EDIT) for name in KNOBS]
    runs += [(name, "ddsp", conditioned, CONDITIONED) for name in KNOBS]
    runs += [(name, "pghi+gla", tt, MEL_EDIT)
             for name, k in KNOBS.items() if k.inverters == "any"]
    saved = out / "controls.json"
    if args.knobs:
        runs = [r for r in runs if r[0] in args.knobs]
        if saved.is_file():  # keep the other knobs' tables of the last run
            results = [r for r in json.loads(saved.read_text()) if r["knob"] not in args.knobs]
    for name, inverter, model, mechanism in runs:
        t0 = time.perf_counter()
        result = sweep(model, classifier, name, inverter, clips, mechanism)
        results.append(result)
        print(f"\n{table(result)}\n({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
    mechanisms = [EDIT, CONDITIONED, MEL_EDIT]
    results.sort(key=lambda r: (mechanisms.index(r["mechanism"]), list(KNOBS).index(r["knob"])))
    saved.write_text(json.dumps(results, indent=1))
    (out / "controls.md").write_text("\n\n".join(table(r) for r in results) + "\n")
    print(f"\nwrote {out / 'controls.md'}")


if __name__ == "__main__":
    main()
