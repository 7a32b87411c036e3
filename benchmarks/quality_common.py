"""What the transfer-quality benchmarks share: staging Bach10, training a row of
:mod:`quality_rows` and the DDSP head, and the table (its rows, its printing, its verdicts).

``transfer_quality.py`` runs them; ``grow.py`` stages Bach10 with them. Work-folder layout
(``runs/<row>/``, ``budget.json``, ``done``) is fixed here: cached runs depend on it.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from quality_rows import INSTRUMENTS, ROWS, TARGETS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CONFIGS = ROOT / "config"


# ---- data --------------------------------------------------------------------------------------


def stage_bach10(work: Path, eval_seconds: float, speech_val: int) -> tuple[Path, Path]:
    """A CSV manifest with explicit splits, and a folder of truth files named like the clips.

    Held-out pieces are cut to ``eval_seconds`` (audio and truth alike) to bound evaluation time;
    file stems are ``<piece>-<instrument>`` so that ``<stem>.csv`` is the Bach10 truth file.
    """
    import soundfile as sf

    rows, truth = [], work / "truth"
    for instrument in INSTRUMENTS:
        for path in sorted((DATA / "bach10" / instrument).glob("*.flac")):
            piece = path.stem
            if int(piece[:2]) <= 6:
                rows.append((str(path), instrument, "train"))
                continue
            stem = f"{piece}-{instrument}"
            clip = work / "heldout" / instrument / f"{stem}.flac"
            if not clip.is_file():
                audio, sr = sf.read(path, dtype="float32")
                clip.parent.mkdir(parents=True, exist_ok=True)
                sf.write(clip, audio[: int(eval_seconds * sr)], sr)
                lines = (DATA / "bach10" / "f0" / f"{stem}.csv").read_text().splitlines()
                keep = [lines[0]] + [r for r in lines[1:] if float(r.split(",")[0]) <= eval_seconds]
                truth.mkdir(parents=True, exist_ok=True)
                (truth / f"{stem}.csv").write_text("\n".join(keep) + "\n")
            rows.append((str(clip), instrument, "val"))
    speech = sorted((DATA / "speech_en" / "speech_male").glob("*.flac"))
    rows += [(str(p), "speech_male", "val" if i >= len(speech) - speech_val else "train")
             for i, p in enumerate(speech)]
    manifest = work / "manifest.csv"
    work.mkdir(parents=True, exist_ok=True)
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain", "split"])
        writer.writerows(rows)
    return manifest, truth


# ---- training ----------------------------------------------------------------------------------


def train_row(name: str, store, run: Path, minutes: float, fixed_steps: int | None = None) -> Path:
    """Train a row's model for ``minutes`` (steps calibrated on steps 11-30) or for
    ``fixed_steps``; its checkpoint. A row already budgeted keeps its budget."""
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    row = ROWS[name]
    path = CONFIGS / row.config
    latest = run / "checkpoints" / "latest.pt"
    budget = run / "budget.json"
    if budget.is_file():
        steps = json.loads(budget.read_text())["steps"]
        if json.loads(budget.read_text()).get("done"):
            return latest
    else:
        calibrate = min(30, fixed_steps or 30)
        config = load_run_config(path, [*row.overrides, f"train.max_steps={calibrate}"])
        trainer = Trainer(config, store, run, progress=False)
        if not all(term.ready for term in trainer.terms.values()):  # before the timed steps
            t0 = time.perf_counter()
            trainer.prepare_terms()
            print(f"  {name}: loss terms prepared in {time.perf_counter() - t0:.0f} s", flush=True)
        trainer.fit(calibrate // 3)  # the first steps are slow (allocations): not timed
        t0 = time.perf_counter()
        trainer.fit()
        rate = (calibrate - calibrate // 3) / (time.perf_counter() - t0)
        steps = fixed_steps or max(calibrate + 1, int(minutes * 60 * rate))
        budget.write_text(json.dumps({"steps": steps, "steps_per_s": rate}))
    config = load_run_config(path, [*row.overrides, f"train.max_steps={steps}"])
    trainer = Trainer(config, store, run, resume=True)
    t0 = time.perf_counter()
    trainer.fit()
    info = json.loads(budget.read_text())
    info.update(done=True, seconds=info.get("seconds", 0) + time.perf_counter() - t0)
    budget.write_text(json.dumps(info))
    print(f"  {name}: {steps} steps ({info['steps_per_s']:.2f} steps/s)", flush=True)
    return latest


def training_minutes(run: Path) -> float | None:
    """Minutes the row's training took (its ``budget.json``), None where not recorded."""
    budget = run / "budget.json"
    seconds = json.loads(budget.read_text()).get("seconds") if budget.is_file() else None
    return None if seconds is None else seconds / 60


def train_ddsp(store, run: Path, minutes: float) -> Path:
    """One DDSP head for every domain (the mel says which timbre), for ``minutes``."""
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    latest = run / "checkpoints" / "latest.pt"
    if (run / "done").is_file():
        return latest
    probe = DDSPTrainer(load_ddsp_config(overrides=["train.max_steps=30"]), store,
                        store.domains, run / "probe", progress=False)
    probe.fit(5)  # the first steps are slow (allocations): timed after them
    t0 = time.perf_counter()
    probe.fit(30)
    steps = max(31, int(minutes * 60 * 25 / (time.perf_counter() - t0)))
    trainer = DDSPTrainer(load_ddsp_config(overrides=[f"train.max_steps={steps}"]), store,
                          store.domains, run)
    trainer.fit()
    (run / "done").write_text(str(steps))
    print(f"  ddsp head: {steps} steps", flush=True)
    return latest


def train_ddsp_anchor(store, run: Path, minutes: float) -> list[Path]:
    """DDSP's own timbre transfer, the anchor a user would pick instead: one head per domain
    that hears f0 and loudness alone (``head.mel_input=false``), the ``minutes`` shared equally
    among the domains; the heads' checkpoints. ``run/budget.json`` records the wall time."""
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    blind = ["head.mel_input=false"]
    heads = [run / d / "checkpoints" / "latest.pt" for d in store.domains]
    budget = run / "budget.json"
    if budget.is_file() and json.loads(budget.read_text()).get("done"):
        return heads
    probe = DDSPTrainer(load_ddsp_config(overrides=[*blind, "train.max_steps=30"]), store,
                        store.domains[:1], run / "probe", progress=False)
    probe.fit(5)  # the first steps are slow (allocations): timed after them
    t0 = time.perf_counter()
    probe.fit(30)
    steps = max(31, int(minutes * 60 / len(store.domains) * 25 / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    for domain in store.domains:
        DDSPTrainer(load_ddsp_config(overrides=[*blind, f"train.max_steps={steps}"]), store,
                    [domain], run / domain).fit()
    budget.write_text(json.dumps({"steps": steps, "done": True,
                                  "seconds": time.perf_counter() - t0}))
    print(f"  ddsp anchor: {len(heads)} heads x {steps} steps", flush=True)
    return heads


# ---- the table ---------------------------------------------------------------------------------


#: the judges of conversion: the saved classifier of the work folder each reads, and its features
JUDGES = {"cnn": ("classifier.pt", "mel"), "mfcc": ("classifier_mfcc.pt", "mfcc")}
#: the registers a row is scored at: auto over every pair (the default a user gets), and 0
#: between the instruments alone
SETTINGS = ("auto", 0)
#: the table's columns: key, header
COLUMNS = {"cnn": "conversion (CNN)", "mfcc": "conversion (MFCC)",
           "median_f0_cents": "median f0 err (c)", "f0_within_50c": "within 50 c",
           "voiced_coverage": "voiced coverage", "loudness_correlation": "loudness corr",
           "fad_ratio": "FAD / identity", "cnn@0": "octave 0: CNN", "mfcc@0": "octave 0: MFCC",
           "f0@0": "octave 0: f0 err (c)", "minutes": "training min"}


def instruments(domains) -> list[str]:
    """The domains that are instruments (not speech or singing): octave 0's pairs."""
    return [d for d in domains if not d.startswith(("speech", "singing"))]


def table_row(reports: dict, minutes: float | None) -> dict:
    """A row of the table from a row's evaluation ``reports`` (``{(setting, judge): report}``,
    means over source != target) and its training minutes."""
    auto = reports["auto", "cnn"]["summary"]
    row = {"cnn": auto["mean_conversion_accuracy"],
           "mfcc": reports["auto", "mfcc"]["summary"]["mean_conversion_accuracy"],
           **{k: auto[s] for k, s in (("median_f0_cents", "median_f0_cents"),
                                      ("f0_within_50c", "mean_f0_within_50c"),
                                      ("voiced_coverage", "mean_voiced_coverage"),
                                      ("loudness_correlation", "mean_loudness_correlation"),
                                      ("fad_ratio", "fad_ratio"))},
           "minutes": minutes}
    if (0, "cnn") in reports:
        row.update({"cnn@0": reports[0, "cnn"]["summary"]["mean_conversion_accuracy"],
                    "mfcc@0": reports[0, "mfcc"]["summary"]["mean_conversion_accuracy"],
                    "f0@0": reports[0, "cnn"]["summary"]["median_f0_cents"]})
    return row


DDSP_RESYNTHESIS = "resynthesis (ddsp head)"
ANCHOR_RESYNTHESIS = "resynthesis (ddsp anchor)"


def baseline_rows(reports: dict, ddsp_label: str = DDSP_RESYNTHESIS) -> dict[str, dict]:
    """identity and resynthesis from a row's auto reports (what they measured of them, by both
    judges); a report rendered by DDSP heads gives its own resynthesis row (the heads, not
    phase reconstruction), named ``ddsp_label``."""
    report = reports["auto", "cnn"]
    base, domains = report["baselines"], report["domains"]
    off = [(a, b) for a in domains for b in domains if a != b]
    rows = {"identity": {"fad_ratio": 1.0}, "resynthesis": {}}
    for judge in JUDGES:
        judged = reports["auto", judge]["baselines"]
        rows["identity"][judge] = float(np.mean(
            [judged["identity"]["conversion_accuracy"][a][b] for a, b in off]))
        rows["resynthesis"][judge] = float(np.mean(
            [judged["resynthesis"]["conversion_accuracy"][d] for d in domains]))
    fad_identity = report["summary"]["mean_fad_identity"]
    resynth_fad = float(np.mean([base["resynthesis"]["fad"][d] for d in domains]))
    rows["resynthesis"]["fad_ratio"] = resynth_fad / fad_identity if fad_identity else None
    for name, key in (("identity", "identity_pitch"), ("resynthesis", "resynthesis_pitch")):
        pitch = base.get(key) or {}
        rows[name].update({k: v for k, v in pitch.items() if k in COLUMNS})
    if report.get("inverter") == "ddsp":
        return {ddsp_label: rows["resynthesis"]}
    return rows


def needs_baselines(table: dict, report: dict, ddsp_label: str = DDSP_RESYNTHESIS) -> bool:
    """Whether ``report`` gives a baseline row the table lacks."""
    return (ddsp_label if report.get("inverter") == "ddsp" else "identity") not in table


def print_table(rows: dict[str, dict]) -> str:
    """Print the table (markdown, one column per :data:`COLUMNS`) and return its text."""
    lines = ["| row | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    fmt = lambda v: "n/a" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}")
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in COLUMNS) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def verdicts(row: dict) -> list[str]:
    """One line per target: the row's value, the bound, met or not."""
    out = []
    for key, (op, bound) in TARGETS.items():
        v = row.get(key)
        ok = v is not None and (v >= bound if op == ">=" else v <= bound)
        out.append(f"{key} {'n/a' if v is None else f'{v:.3f}'} {op} {bound}: "
                   f"{'met' if ok else 'NOT met'}")
    return out
