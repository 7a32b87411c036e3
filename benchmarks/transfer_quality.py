"""Transfer quality on real recordings: does a transfer keep the performance (pitch, dynamics,
timing) while the timbre converts? One table, one row per training recipe, all measured in one run.

Sets (``--set``):

- ``bach10``: Bach10's violin, clarinet, tenor_sax and bassoon (pieces 01-06 train, 07-08 held
  out) plus ``speech_en`` (its last files held out): five domains. Held-out pieces are scored
  against their ground-truth f0 (``bach10/f0``), cut to their first ``--eval-seconds``; speech
  against its own pYIN.
- ``realaudio``: the six realaudio domains, 30 % of the files held out (seeded), pitch against
  the source's pYIN.

Rows (``--rows``; each trains from scratch on the same store for ``--minutes`` of wall time,
the step count calibrated on the first steps, or for ``--steps`` steps when runs share the
cores and wall time stops being a fair budget):

- ``identity`` / ``resynthesis``: the untouched source, and the target's own held-out audio
  through the mel front end and the inverter (from the evaluation of the first trained row);
- ``reference``: config/reference.yaml, the published architecture and losses;
- ``plain``: config/cpu-small.yaml with every pitch mechanism off (the previous default);
- ``template``: + the harmonic pitch template as a generator input;
- ``template+D``: + the same template read by the discriminators too;
- ``augment``: + random pitch-shift augmentation (+-12 semitones) alone;
- ``pitch-loss``: + the pitch-consistency loss alone (a frozen pitch network, fitted first on
  the store's pYIN labels, must hear each translation at its source's pitch);
- ``ddsp``: the reference model's mels rendered by a DDSP head at the source's f0/loudness;
- ``template+pitch-loss``: the template (generators only) with the pitch-consistency loss;
- ``template+D+augment``: the template read by generators and discriminators, with the
  augmentation (the recipe before 2026-12-04);
- ``template+D+augment+pitch-loss``: that with the pitch-consistency loss added;
- ``template+augment+pitch-loss``: the template (generators only), the augmentation and the
  pitch-consistency loss at weight 1 (the recipe of 2026-12-04);
- ``template+augment+pitch-loss+loudness-loss``: that with the loudness-consistency loss
  (``loss.loudness``: each translation must follow its source's A-weighted loudness envelope,
  read from the mels);
- ``template+augment+pitch-loss-x5``: that with five times the pitch-consistency weight;
- ``previous-recipe``: the recipe of the second run of 2026-12-04: the template (generators
  only), the augmentation, the pitch-consistency loss at weight 5 and the loudness-consistency
  loss (``-seed1``: again with seed 1, to read the other rows against the noise between two runs
  of one setting). The ``recipe+...`` and ``recipe-...`` rows below are this recipe with one
  change;
- ``recipe+gan-x2`` / ``recipe+kl-x5`` / ``recipe+cycle-x0.1`` / ``recipe+gan-x2+cycle-x0.1``:
  the recipe with one loss re-weighted, to look for the conversion the pitch terms cost: twice
  the adversarial weight, five times the KL weights (a narrower latent), a tenth of the cycle
  weight (a translation need not keep what the way back needs), and the first with the third;
- ``recipe+latent-confusion`` / ``...-x10``: the recipe with a latent critic that must not
  tell the domains apart from the encodings (``loss.latent_confusion`` 1 / 10), so that the
  source's timbre does not reach the target's generator through the shared latent;
- ``recipe-augment``: the recipe without the pitch-shift augmentation (does it still earn its
  place once the pitch loss is strong?);
- ``recipe+pitch-labels``: the recipe with the pitch loss scored against the source's pYIN
  labels (``train.pitch_loss: labels``) rather than the pitch network's view of the source, which
  also charges a translation for not sounding like the source's timbre;
- ``recipe+envelope-gan``: the recipe with per-domain discriminators of each frame's cepstrum
  (``loss.envelope_gan: 10``, as much as the PatchGAN's), which see the whole spectral envelope
  that the patch discriminators only see piece by piece; ``recipe+envelope-gan-x3`` / ``-x10``
  at weight 30 / 100 (``-x3-seed1``: again with seed 1), and
  ``recipe+envelope-gan-x3+pitch-x2+loudness-x2`` with twice the pitch and loudness weights
  besides, to hold the notes and dynamics that the envelope's pull moves;
- ``recipe+envelope-blind-x3`` / ``-x10``: envelope discriminators at weight 30 / 100 that cannot
  read the register (``train.envelope_register: blind``): they judge the envelope through the
  partials, held flat below the higher of the two notes compared (``-x3-seed1``: again with seed 1;
  ``-x3+loudness-x2``: with twice the loudness weight); ``-x3-per-frame`` with nets that
  judge each frame alone (``train.envelope_per_frame: true``), so they cannot ask for the target's
  way of moving in time;
- ``recipe+domain-class`` / ``-x0.5`` / ``-x3``: the recipe with a domain classifier
  (StarGAN's classification loss, ``loss.domain_class`` 10 / 5 / 30; ``-seed1`` /
  ``-x0.5-seed1``: 10 / 5 again with seed 1): it learns to name every real crop's domain (as
  augmented), and each translation must be named its target, not its source;
- ``recipe``: config/cpu-small.yaml as shipped: the previous recipe with the domain classifier
  at weight 5 (the settings of ``recipe+domain-class-x0.5``);
- ``template+pitch-loss+ddsp`` / ``recipe+ddsp``: those rows' models, their mels rendered by the
  ``ddsp`` row's head at the source's f0 and loudness (no model of their own).

Every step is reused when its output exists (an interrupted run continues). Run from the
repository root, alone (a second torch process on 2 cores slows both)::

    .venv/bin/python benchmarks/transfer_quality.py --set bach10 [--minutes 10] [--rows ...]
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
CONFIGS = ROOT / "config"


def mechanisms(template: bool = False, discriminator: bool = False, shift: int = 0,
               pitch: float = 0.0, loudness: float = 0.0, domain_class: float = 0.0) -> list[str]:
    """cpu-small.yaml overrides that set every mechanism a row measures, on or off (so that a
    row keeps its meaning, and its cached run, when the shipped recipe changes)."""
    return [f"model.pitch_template={str(template).lower()}",
            f"model.pitch_discriminator={str(discriminator).lower()}",
            f"train.pitch_shift={shift}", f"loss.pitch={pitch}", f"loss.loudness={loudness}",
            f"loss.domain_class={domain_class}"]


SMALL = "cpu-small.yaml"
# the recipe of the second run of 2026-12-04, before the domain classifier: the base of the
# ``recipe+...`` rows
PREVIOUS = mechanisms(template=True, shift=12, pitch=5.0, loudness=10.0)
BLIND = ("train.envelope_register=blind",)


def on_previous(*overrides: str) -> tuple[str, list[str], str]:
    """A row of the previous recipe with ``overrides``."""
    return SMALL, [*PREVIOUS, *overrides], "pghi+gla"


ROWS = {  # name: (config, overrides, inverter)
    "reference": ("reference.yaml", [], "pghi+gla"),
    "plain": (SMALL, mechanisms(), "pghi+gla"),
    "template": (SMALL, mechanisms(template=True), "pghi+gla"),
    "template+D": (SMALL, mechanisms(template=True, discriminator=True), "pghi+gla"),
    "augment": (SMALL, mechanisms(shift=12), "pghi+gla"),
    "pitch-loss": (SMALL, mechanisms(pitch=1.0), "pghi+gla"),
    "ddsp": ("reference.yaml", [], "ddsp"),  # the reference row's model, rendered by DDSP
    "template+pitch-loss": (SMALL, mechanisms(template=True, pitch=1.0), "pghi+gla"),
    "template+D+augment": (SMALL, mechanisms(template=True, discriminator=True, shift=12),
                           "pghi+gla"),
    "template+D+augment+pitch-loss": (
        SMALL, mechanisms(template=True, discriminator=True, shift=12, pitch=1.0), "pghi+gla"),
    "template+augment+pitch-loss": (SMALL, mechanisms(template=True, shift=12, pitch=1.0),
                                    "pghi+gla"),
    "template+augment+pitch-loss+loudness-loss": (
        SMALL, mechanisms(template=True, shift=12, pitch=1.0, loudness=10.0), "pghi+gla"),
    "template+augment+pitch-loss-x5": (SMALL, mechanisms(template=True, shift=12, pitch=5.0),
                                       "pghi+gla"),
    "previous-recipe": on_previous(),
    "previous-recipe-seed1": on_previous("train.seed=1"),  # its run-to-run noise
    "recipe+gan-x2": on_previous("loss.gan=20.0"),
    "recipe+kl-x5": on_previous("loss.kl=0.5", "loss.kl_cycle=0.5"),
    "recipe+cycle-x0.1": on_previous("loss.cycle=10.0"),
    "recipe+gan-x2+cycle-x0.1": on_previous("loss.gan=20.0", "loss.cycle=10.0"),
    "recipe+latent-confusion": on_previous("loss.latent_confusion=1.0"),
    "recipe+latent-confusion-x10": on_previous("loss.latent_confusion=10.0"),
    "recipe-augment": on_previous("train.pitch_shift=0"),
    "recipe+pitch-labels": on_previous("train.pitch_loss=labels"),
    "recipe+envelope-gan": on_previous("loss.envelope_gan=10.0"),
    "recipe+envelope-gan-x3": on_previous("loss.envelope_gan=30.0"),
    "recipe+envelope-gan-x3-seed1": on_previous("loss.envelope_gan=30.0", "train.seed=1"),
    "recipe+envelope-gan-x10": on_previous("loss.envelope_gan=100.0"),
    "recipe+envelope-gan-x3+pitch-x2+loudness-x2": on_previous(
        "loss.envelope_gan=30.0", "loss.pitch=10.0", "loss.loudness=20.0"),
    "recipe+envelope-blind-x3": on_previous("loss.envelope_gan=30.0", *BLIND),
    "recipe+envelope-blind-x3-seed1": on_previous("loss.envelope_gan=30.0", *BLIND, "train.seed=1"),
    "recipe+envelope-blind-x3+loudness-x2": on_previous("loss.envelope_gan=30.0", *BLIND,
                                                        "loss.loudness=20.0"),
    "recipe+envelope-blind-x10": on_previous("loss.envelope_gan=100.0", *BLIND),
    "recipe+envelope-blind-x3-per-frame": on_previous("loss.envelope_gan=30.0", *BLIND,
                                                      "train.envelope_per_frame=true"),
    "recipe+domain-class": on_previous("loss.domain_class=10.0"),
    "recipe+domain-class-x3": on_previous("loss.domain_class=30.0"),
    "recipe+domain-class-seed1": on_previous("loss.domain_class=10.0", "train.seed=1"),
    "recipe+domain-class-x0.5": on_previous("loss.domain_class=5.0"),  # the recipe's settings
    "recipe+domain-class-x0.5-seed1": on_previous("loss.domain_class=5.0", "train.seed=1"),
    "recipe": (SMALL, [], "pghi+gla"),  # as shipped
    "template+pitch-loss+ddsp": (SMALL, [], "ddsp"),
    "recipe+ddsp": (SMALL, [], "ddsp"),
}
# rows that train no model of their own: another row's mels, rendered by the one DDSP head
DDSP_MODEL = {"ddsp": "reference", "template+pitch-loss+ddsp": "template+pitch-loss",
              "recipe+ddsp": "recipe"}
TARGETS = {"conversion_accuracy": (">=", 0.8), "median_f0_cents": ("<=", 50.0),
           "f0_within_50c": (">=", 0.8), "voiced_coverage": (">=", 0.8),
           "loudness_correlation": (">=", 0.85), "fad_ratio": ("<=", 0.6)}
INSTRUMENTS = ("violin", "clarinet", "tenor_sax", "bassoon")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("bach10", "realaudio"), default="bach10")
    p.add_argument("--work", default=None,
                   help="working folder (default: data/bench/transfer_quality_<set>)")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--minutes", type=float, default=10.0,
                   help="training wall time per row (the issue allows up to 60)")
    p.add_argument("--steps", type=int, default=None,
                   help="train each new row for this many steps instead of --minutes of wall time "
                        "(for runs that share the cores)")
    p.add_argument("--ddsp-minutes", type=float, default=6.0,
                   help="training wall time of the ddsp row's head (its model is the reference row's)")
    p.add_argument("--figures", default=str(ROOT / "docs" / "images"),
                   help="where the mel figures of source / reference / recipe go (bach10 only)")
    p.add_argument("--eval-seconds", type=float, default=20.0,
                   help="bach10: held-out pieces are cut to their first N seconds")
    p.add_argument("--speech-val", type=int, default=4, help="bach10: held-out speech files")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's); 1 lets two runs share 2 cores")
    return p.parse_args(argv)


# ---- data -----------------------------------------------------------------------------------------


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


# ---- training ---------------------------------------------------------------------------------------


def train_row(name: str, store, run: Path, minutes: float, fixed_steps: int | None = None) -> Path:
    """Train a row's model for ``minutes`` (steps calibrated on the first 20) or for
    ``fixed_steps``; its checkpoint. A row already budgeted keeps its budget."""
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    config_name, overrides, _ = ROWS[name]
    latest = run / "checkpoints" / "latest.pt"
    budget = run / "budget.json"
    if budget.is_file():
        steps = json.loads(budget.read_text())["steps"]
        if json.loads(budget.read_text()).get("done"):
            return latest
    else:
        calibrate = min(20, fixed_steps or 20)
        config = load_run_config(CONFIGS / config_name, [*overrides, f"train.max_steps={calibrate}"])
        trainer = Trainer(config, store, run, progress=False)
        if trainer.pitch_net is not None:  # its own stage, before the model's timed steps
            t0 = time.perf_counter()
            trainer.fit_pitch_net()
            print(f"  {name}: pitch network fitted in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        trainer.fit()
        rate = calibrate / (time.perf_counter() - t0)
        steps = fixed_steps or max(calibrate + 1, int(minutes * 60 * rate))
        budget.write_text(json.dumps({"steps": steps, "steps_per_s": rate}))
    config = load_run_config(CONFIGS / config_name, [*overrides, f"train.max_steps={steps}"])
    trainer = Trainer(config, store, run, resume=True)
    t0 = time.perf_counter()
    trainer.fit()
    info = json.loads(budget.read_text())
    info.update(done=True, seconds=info.get("seconds", 0) + time.perf_counter() - t0)
    budget.write_text(json.dumps(info))
    print(f"  {name}: {steps} steps ({info['steps_per_s']:.2f} steps/s)", flush=True)
    return latest


def train_ddsp(store, run: Path, minutes: float) -> Path:
    """One DDSP head for every domain (the mel says which timbre), for ``minutes``."""
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    latest = run / "checkpoints" / "latest.pt"
    if (run / "done").is_file():
        return latest
    probe = DDSPTrainer(load_ddsp_config(overrides=["train.max_steps=10"]), store,
                        store.domains, run / "probe", progress=False)
    t0 = time.perf_counter()
    probe.fit()
    steps = max(11, int(minutes * 60 * 10 / (time.perf_counter() - t0)))
    trainer = DDSPTrainer(load_ddsp_config(overrides=[f"train.max_steps={steps}"]), store,
                          store.domains, run)
    trainer.fit()
    (run / "done").write_text(str(steps))
    print(f"  ddsp head: {steps} steps", flush=True)
    return latest


# ---- the table ---------------------------------------------------------------------------------------


def summary_row(report: dict) -> dict:
    s = report["summary"]
    return {"conversion_accuracy": s["mean_conversion_accuracy"],
            "median_f0_cents": s["median_f0_cents"],
            "f0_within_50c": s.get("mean_f0_within_50c"),
            "voiced_coverage": s.get("mean_voiced_coverage"),
            "loudness_correlation": s["mean_loudness_correlation"],
            "fad_ratio": s["fad_ratio"]}


DDSP_RESYNTHESIS = "resynthesis (ddsp head)"


def baseline_rows(report: dict) -> dict[str, dict]:
    """identity and resynthesis from one report (what it measured of them); a report rendered
    by the DDSP head gives its own resynthesis row (the head, not phase reconstruction)."""
    base, domains = report["baselines"], report["domains"]
    off = [(a, b) for a in domains for b in domains if a != b]
    identity_acc = float(np.mean([base["identity"]["conversion_accuracy"][a][b] for a, b in off]))
    resynth_acc = float(np.mean([base["resynthesis"]["conversion_accuracy"][d] for d in domains]))
    fad_identity = report["summary"]["mean_fad_identity"]
    resynth_fad = float(np.mean([base["resynthesis"]["fad"][d] for d in domains]))
    rows = {"identity": {"conversion_accuracy": identity_acc, "fad_ratio": 1.0},
            "resynthesis": {"conversion_accuracy": resynth_acc,
                            "fad_ratio": resynth_fad / fad_identity if fad_identity else None}}
    for name, key in (("identity", "identity_pitch"), ("resynthesis", "resynthesis_pitch")):
        pitch = base.get(key) or {}
        rows[name].update({k: v for k, v in pitch.items() if k in TARGETS})
    if report.get("inverter") == "ddsp":
        return {DDSP_RESYNTHESIS: rows["resynthesis"]}
    return rows


def _needs_baselines(table: dict, report: dict) -> bool:
    """Whether ``report`` gives a baseline row the table lacks."""
    return (DDSP_RESYNTHESIS if report.get("inverter") == "ddsp" else "identity") not in table


def print_table(rows: dict[str, dict]) -> str:
    cols = list(TARGETS)
    head = ("| row | conversion acc | median f0 err (cents) | frames within 50 c | voiced coverage "
            "| loudness corr | FAD / identity |")
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    fmt = lambda v: "n/a" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}")
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in cols) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def verdicts(row: dict) -> list[str]:
    out = []
    for key, (op, bound) in TARGETS.items():
        v = row.get(key)
        ok = v is not None and (v >= bound if op == ">=" else v <= bound)
        out.append(f"{key} {'n/a' if v is None else f'{v:.3f}'} {op} {bound}: "
                   f"{'met' if ok else 'NOT met'}")
    return out


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.evaluation.evaluate import evaluate, write_report
    from timbre_transfer.inference.transfer import TimbreTransfer

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # absolute: the staged manifest's paths are read relative to the manifest's own folder
    work = Path(args.work or ROOT / "data" / "bench" / f"transfer_quality_{args.set}").resolve()
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes} min"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; set {args.set}; "
          f"{budget} of training per new row", flush=True)
    t0 = time.perf_counter()
    if args.set == "bach10":
        data, truth = stage_bach10(work, args.eval_seconds, args.speech_val)
        options = PrepareOptions(val_fraction=0.0)
    else:
        data, truth = DATA / "realaudio", None
        options = PrepareOptions(val_fraction=0.3)
    result = prepare(data, work / "features", AudioTransform(), options)
    store = FeatureStore(result.store)
    print(f"prepare: {time.perf_counter() - t0:.0f} s ({result.processed} files analysed, "
          f"{result.reused} reused); registers (median training f0, Hz): "
          + ", ".join(f"{d} {v:.0f}" for d, v in store.pitch_medians().items() if v), flush=True)

    # every row's model first, then every evaluation (a long run gives its models early)
    checkpoints = {}
    for name in args.rows:
        model_row = DDSP_MODEL.get(name, name)
        t0 = time.perf_counter()
        checkpoints[name] = train_row(model_row, store, work / "runs" / model_row, args.minutes,
                                      args.steps)
        if name in DDSP_MODEL:
            checkpoints["ddsp head"] = train_ddsp(store, work / "runs" / "ddsp", args.ddsp_minutes)
        print(f"{name}: model ready ({(time.perf_counter() - t0) / 60:.1f} min this session)",
              flush=True)

    table: dict[str, dict] = {}
    saved = work / "table.json"
    done = json.loads(saved.read_text()) if saved.is_file() else {}
    for name in args.rows:
        report_path = work / "reports" / f"{name}.json"
        if name not in done and report_path.is_file():  # evaluated by an interrupted run
            report = json.loads(report_path.read_text())
            done[name] = {**(baseline_rows(report) if _needs_baselines(table, report) else {}),
                          name: summary_row(report)}
        if name in done:
            table.update(done[name])
            continue
        t0 = time.perf_counter()
        tt = TimbreTransfer.from_checkpoint(checkpoints[name], device="cpu")
        if name in DDSP_MODEL:
            tt.attach_ddsp(checkpoints["ddsp head"])
        report = evaluate(tt, store, work / "classifier.pt", inverter=ROWS[name][2],
                          embedder="logmel", f0_truth=truth)
        report["checkpoint"] = str(checkpoints[name])
        write_report(report, report_path)
        rows = baseline_rows(report) if _needs_baselines(table, report) else {}
        rows[name] = summary_row(report)
        table.update(rows)
        done[name] = rows
        if saved.is_file():  # another run may have evaluated other rows meanwhile: keep them
            done = {**json.loads(saved.read_text()), **done}
        saved.write_text(json.dumps(done, indent=1))
        print(f"{name}: evaluated in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    print()
    order = ["identity", "resynthesis", DDSP_RESYNTHESIS] + [r for r in ROWS if r in table]
    text = print_table({r: table[r] for r in order if r in table})
    (work / "table.md").write_text(text + "\n")
    if "recipe" in table:
        print("\ntargets for the recipe (means over source != target):")
        print("\n".join("  " + v for v in verdicts(table["recipe"])))
    if args.set == "bach10" and {"reference", "recipe"} <= set(checkpoints):
        for path in figures(store, checkpoints, Path(args.figures), work / "figures"):
            print(f"wrote {path}")


FIGURE_PAIRS = (("violin", "bassoon"), ("speech_male", "clarinet"))
FIGURE_ROWS = ("reference", "previous-recipe", "recipe")  # where trained


def figures(store, checkpoints: dict, out: Path, audio_dir: Path, seconds: float = 6.0):
    """Mel images of the source and of its transfers by the FIGURE_ROWS models (those trained)
    for FIGURE_PAIRS, each from the first held-out clip (its first
    ``seconds``), and the audio beside them."""
    import torch
    from matplotlib.figure import Figure

    from timbre_transfer.audio.io import save_audio
    from timbre_transfer.inference.transfer import TimbreTransfer

    models = {name: TimbreTransfer.from_checkpoint(checkpoints[name], device="cpu")
              for name in FIGURE_ROWS if name in checkpoints}
    sr = store.transform.params.sample_rate
    out.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, target in FIGURE_PAIRS:
        clip = store.clips(source, "val").files[0]
        wav = store.clip_audio(source, clip)[: int(seconds * sr)]
        panels = {f"{source} (source)": wav}
        for name, tt in models.items():
            panels[f"{name} -> {target}"] = tt.transfer(wav, sr, to=target)
        fig = Figure(figsize=(9, 2.2 * len(panels)))
        for ax, (title, audio) in zip(fig.subplots(len(panels), 1), panels.items()):
            with torch.no_grad():
                mel = store.transform(torch.from_numpy(np.asarray(audio, dtype=np.float32)))
            ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=0, vmax=1,
                      extent=(0, len(audio) / sr, 0, mel.shape[0]))
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("mel bin")
            save_audio(audio_dir / f"{source}_to_{target}_{title.split(' ')[0]}.wav",
                       np.clip(audio, -1, 1), sr)
        fig.axes[-1].set_xlabel("seconds")
        fig.tight_layout()
        path = out / f"transfer_{source}_to_{target}.png"
        fig.savefig(path, dpi=80)
        written.append(path)
    return written


if __name__ == "__main__":
    main()
