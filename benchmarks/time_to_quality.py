"""Time to quality: how long must I train? Quality against training wall time, per model size.

Each size is one row of ``quality_rows.py`` (``--row``, the recipe by default) with the size's
overrides, trained once on the Bach10 store of ``transfer_quality.py`` with checkpoints kept at
each ``--minutes`` mark (the step count of a mark is calibrated on the first steps, and the
learning-rate schedule is the one of the longest mark). Each mark is scored as a user gets it
(``--octave auto``, every source != target pair) by both judges. Prints one table (size,
minutes, steps, both judges' conversion, FAD / identity, the pitch columns) and draws
``docs/images/time_to_quality.png``.

Sizes: ``small`` is the row as it is (``config/cpu-small.yaml``: dim 16); ``published`` takes the
reference's architecture (dim 32, 4 / 1 / 3 residual blocks, discriminators 64-512), as
``config/gpu.yaml`` does.

Run from the repository root, alone (a second torch process on 2 cores slows both)::

    .venv/bin/python benchmarks/time_to_quality.py [--sizes small published] [--minutes 5 10 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from quality_common import CONFIGS, JUDGES, ROOT, print_table, stage_bach10
from quality_rows import ROWS

SIZES = {
    "small": (),
    "published": ("model.dim=32", "model.n_res_encoder=4", "model.n_res_shared=1",
                  "model.n_res_generator=3", "model.disc_channels=[64,128,256,512]"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--row", default="recipe", choices=list(ROWS),
                   help="the row of quality_rows.py whose settings each size trains")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--minutes", nargs="+", type=float, default=[5.0, 10.0, 20.0],
                   help="the marks, in minutes of training wall time")
    p.add_argument("--work", default=str(ROOT / "data" / "bench" / "transfer_quality_bach10"),
                   help="transfer_quality.py's Bach10 work folder (its store and judges)")
    p.add_argument("--figure", default=str(ROOT / "docs" / "images" / "time_to_quality.png"))
    return p.parse_args(argv)


def train_marks(name: str, overrides: tuple, store, run: Path, marks: list[float]) -> dict:
    """Train one size, keeping a checkpoint at each mark; ``{minutes: (checkpoint, steps,
    seconds)}``. Marks already trained are reused (``run/marks.json``)."""
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    done_file = run / "marks.json"
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    if all(str(m) in done for m in marks):
        return {m: tuple(done[str(m)]) for m in marks}
    if run.exists():
        shutil.rmtree(run)  # marks share one schedule: a run is trained in one go
    path = CONFIGS / ROWS[name].config
    probe = Trainer(load_run_config(path, [*ROWS[name].overrides, *overrides,
                                           "train.max_steps=30"]), store, run / "probe",
                    progress=False)
    probe.fit(10)  # the first steps are slow (allocations, the loss terms' set-up): not timed
    t0 = time.perf_counter()
    probe.fit()
    rate = 20 / (time.perf_counter() - t0)
    steps = {m: max(21, int(m * 60 * rate)) for m in marks}
    config = load_run_config(path, [*ROWS[name].overrides, *overrides,
                                    f"train.max_steps={max(steps.values())}"])
    trainer = Trainer(config, store, run)
    seconds, done = 0.0, {}
    for m in sorted(marks):
        t0 = time.perf_counter()
        trainer.fit(steps[m])
        seconds += time.perf_counter() - t0
        mark = run / "marks" / f"{m:g}min.pt"
        mark.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "checkpoints" / "latest.pt", mark)
        done[str(m)] = (str(mark), steps[m], seconds)
        done_file.write_text(json.dumps(done))
        print(f"  {name}/{run.name}: {m:g} min mark, {steps[m]} steps, {seconds / 60:.1f} min",
              flush=True)
    return {m: tuple(done[str(m)]) for m in marks}


def main(argv=None) -> None:
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.evaluate import evaluate, write_report
    from timbre_transfer.inference.transfer import TimbreTransfer

    args = parse_args(argv)
    work = Path(args.work).resolve()
    data, truth = stage_bach10(work, 20.0, 4)
    store = FeatureStore(prepare(data, work / "features", AudioTransform(),
                                 PrepareOptions(val_fraction=0.0)).store)
    rows = {}
    for size in args.sizes:
        run = work / "time_to_quality" / f"{args.row}-{size}"
        for minutes, (checkpoint, steps, seconds) in train_marks(
                args.row, SIZES[size], store, run, args.minutes).items():
            summaries = {}
            for judge, (classifier, features) in JUDGES.items():
                path = run / "reports" / f"{minutes:g}min_{judge}.json"
                if not path.is_file():
                    tt = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
                    report = evaluate(tt, store, work / classifier,
                                      inverter=ROWS[args.row].inverter, embedder="logmel",
                                      f0_truth=truth, judge=features, progress=False)
                    write_report(report, path)
                summaries[judge] = json.loads(path.read_text())["summary"]
            s = summaries["cnn"]
            rows[f"{size}, {minutes:g} min ({steps} steps)"] = {
                "size": size, "minutes": seconds / 60, "steps": steps,
                "cnn": s["mean_conversion_accuracy"],
                "mfcc": summaries["mfcc"]["mean_conversion_accuracy"],
                "fad_ratio": s["fad_ratio"], "median_f0_cents": s["median_f0_cents"],
                "f0_within_50c": s["mean_f0_within_50c"],
                "voiced_coverage": s["mean_voiced_coverage"],
                "loudness_correlation": s["mean_loudness_correlation"]}
    print_table(rows)
    plot(rows, Path(args.figure))
    print(f"wrote {args.figure}")


def plot(rows: dict, path: Path) -> None:
    """Four panels against training minutes, one line per size."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.8))
    panels = (("cnn", "conversion (CNN)"), ("mfcc", "conversion (MFCC)"),
              ("fad_ratio", "FAD / identity"), ("f0_within_50c", "f0 within 50 c"))
    for ax, (key, title) in zip(fig.subplots(1, len(panels)), panels):
        for size in dict.fromkeys(r["size"] for r in rows.values()):
            points = sorted((r["minutes"], r[key]) for r in rows.values() if r["size"] == size)
            ax.plot(*zip(*points), marker="o", label=size)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training minutes (2 CPU cores)", fontsize=8)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
