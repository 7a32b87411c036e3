"""Transfer quality on real recordings: does a transfer keep the performance (pitch, dynamics,
timing) while the timbre converts? One table, one row per training recipe, all measured in one run.

Sets (``--set``):

- ``bach10``: Bach10's violin, clarinet, tenor_sax and bassoon (pieces 01-06 train, 07-08 held
  out) plus ``speech_en`` (its last files held out): five domains. Held-out pieces are scored
  against their ground-truth f0 (``bach10/f0``), cut to their first ``--eval-seconds``; speech
  against its own pYIN.
- ``realaudio``: the six realaudio domains, 30 % of the files held out (seeded), pitch against
  the source's pYIN.

Rows (``--rows``; the table of named settings is ``quality_rows.py``, which says what each row
measures): each trains from scratch on the same store for ``--minutes`` of wall time, the step
count calibrated on the first steps, or for ``--steps`` steps when runs share the cores and wall
time stops being a fair budget. ``identity`` and ``resynthesis`` (the untouched source, and the
target's own held-out audio through the mel front end and the inverter) come from the
evaluation of the first trained row; a DDSP row renders another row's model with one DDSP head;
the ``ddsp-anchor`` row is DDSP's own timbre transfer (one head per domain from f0 and loudness
alone, trained for ``--minutes`` in all).

Each row is scored at the default register (``--octave auto``, every source != target pair) and at
octave 0 between the instruments alone, each by both judges: the CNN on mel windows
(``classifier.pt``) and the MFCC one (``classifier_mfcc.pt``, the spectral envelope); pitch is
scored after the octaves each transfer applied. One report per row, register and judge goes to
``reports/<row>/octave_<setting>_<judge>.json``. The columns: both judges' conversion, the pitch
and loudness scores and FAD / identity at auto; both judges' conversion and the f0 error at
octave 0; the row's training minutes.

Every step is reused when its output exists (an interrupted run continues). Run from the
repository root, alone (a second torch process on 2 cores slows both)::

    .venv/bin/python benchmarks/transfer_quality.py --set bach10 [--minutes 10] [--rows ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from quality_common import (
    ANCHOR_RESYNTHESIS,
    DATA,
    DDSP_RESYNTHESIS,
    JUDGES,
    ROOT,
    SETTINGS,
    baseline_rows,
    instruments,
    needs_baselines,
    print_table,
    stage_bach10,
    table_row,
    train_ddsp,
    train_ddsp_anchor,
    train_row,
    training_minutes,
    verdicts,
)
from quality_rows import (
    ANCHOR,
    DDSP_MODEL,
    FIGURE_PAIRS,
    FIGURE_ROWS,
    ROWS,
    SHIPPED,
    SHIPPED_MODEL,
)


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
                   help="training wall time of the ddsp row's head (its model is the reference "
                        "row's)")
    p.add_argument("--figures", default=str(ROOT / "docs" / "images"),
                   help="where the mel figures of source / reference / recipe go (bach10 only)")
    p.add_argument("--eval-seconds", type=float, default=20.0,
                   help="bach10: held-out pieces are cut to their first N seconds")
    p.add_argument("--speech-val", type=int, default=4, help="bach10: held-out speech files")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's); 1 lets two runs share 2 cores")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.store import FeatureStore
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
    checkpoints, heads = {}, {}
    for name in args.rows:
        if name == SHIPPED:  # trained by benchmarks/train_models.py
            from timbre_transfer.pretrained import resolve

            checkpoints[name] = resolve(SHIPPED_MODEL)
            continue
        model_row = DDSP_MODEL.get(name, name)
        t0 = time.perf_counter()
        checkpoints[name] = train_row(model_row, store, work / "runs" / model_row, args.minutes,
                                      args.steps)
        if name == ANCHOR:  # the heads alone make the sound; the model resolves the octaves
            heads[name] = train_ddsp_anchor(store, work / "runs" / ANCHOR, args.minutes)
        elif name in DDSP_MODEL:
            heads[name] = [train_ddsp(store, work / "runs" / "ddsp", args.ddsp_minutes)]
        print(f"{name}: model ready ({(time.perf_counter() - t0) / 60:.1f} min this session)",
              flush=True)

    # each row scored at both registers by both judges; cached per report (octave auto is the
    # default since issue 32: the octave-0 tables of before live in table.json)
    table: dict[str, dict] = {}
    for name in args.rows:
        t0 = time.perf_counter()
        tt = None
        reports = {}
        row_store, suffix = store, ""
        if name == SHIPPED:  # the set's clips, prepared like the shipped model
            row_store, suffix = shipped_store(data, options, checkpoints[name], work), "_shipped"
        for setting in SETTINGS:
            for judge, (classifier, features) in JUDGES.items():
                path = work / "reports" / name / f"octave_{setting}_{judge}.json"
                if path.is_file():
                    reports[setting, judge] = json.loads(path.read_text())
                    continue
                if tt is None:
                    tt = TimbreTransfer.from_checkpoint(checkpoints[name], device="cpu")
                    for head in heads.get(name, []):
                        tt.attach_ddsp(head)
                # every domain of the set the model has (the shipped model lacks some)
                ours = [d for d in row_store.domains if d in tt.domains]
                pairs = ours if setting == "auto" else instruments(ours)
                classifier = classifier.replace(".pt", f"{suffix}.pt")
                report = evaluate(tt, row_store, work / classifier, inverter=ROWS[name].inverter,
                                  embedder="logmel", f0_truth=truth, judge=features,
                                  octave=setting, sources=pairs, targets=pairs, progress=False)
                report["checkpoint"] = str(checkpoints[name])
                write_report(report, path)
                reports[setting, judge] = report
        label = ANCHOR_RESYNTHESIS if name == ANCHOR else DDSP_RESYNTHESIS
        if needs_baselines(table, reports["auto", "cnn"], label):
            table.update(baseline_rows(reports, label))
        trained = name if name == ANCHOR else DDSP_MODEL.get(name, name)
        minutes = (shipped_minutes(checkpoints[name]) if name == SHIPPED
                   else training_minutes(work / "runs" / trained))
        table[name] = table_row(reports, minutes)
        if tt is not None:
            print(f"{name}: evaluated in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    print()
    order = ["identity", "resynthesis", DDSP_RESYNTHESIS, ANCHOR_RESYNTHESIS] + [
        r for r in ROWS if r in table]
    text = print_table({r: table[r] for r in order if r in table})
    (work / "table_auto.md").write_text(text + "\n")
    if "recipe" in table:
        print("\ntargets for the recipe (means over source != target):")
        print("\n".join("  " + v for v in verdicts(table["recipe"])))
    if args.set == "bach10" and {"reference", "recipe"} <= set(checkpoints):
        for path in figures(store, checkpoints, heads, Path(args.figures), work / "figures"):
            print(f"wrote {path}")


def shipped_store(data, options, checkpoint: Path, work: Path):
    """The set's clips (``data``, split by ``options`` as the set's own store) prepared with
    the shipped model's transform, f0 tracker and normalisation."""
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.prepare import prepare, settings_like
    from timbre_transfer.data.store import FeatureStore

    transform, like, normalisation = settings_like(
        read_checkpoint(checkpoint), str(checkpoint),
        {"val_fraction": options.val_fraction, "seed": options.seed})
    return FeatureStore(prepare(data, work / "features_shipped", transform, like,
                                normalisation=normalisation).store)


def shipped_minutes(checkpoint: Path) -> float | None:
    """The shipped model's training minutes, from its model card."""
    from timbre_transfer.checkpoint import read_checkpoint

    return read_checkpoint(checkpoint).get("card", {}).get("training_minutes")


def figures(store, checkpoints: dict, heads: dict, out: Path, audio_dir: Path,
            seconds: float = 6.0):
    """Mel images of the source and of its transfers by the FIGURE_ROWS models (those in
    ``checkpoints``, with their DDSP ``heads``) for FIGURE_PAIRS, each from the first held-out
    clip (its first ``seconds``), and the audio beside them."""
    import torch
    from matplotlib.figure import Figure

    from timbre_transfer.audio.io import save_audio
    from timbre_transfer.inference.transfer import TimbreTransfer

    models = {}
    for name in FIGURE_ROWS:
        if name in checkpoints:
            models[name] = TimbreTransfer.from_checkpoint(checkpoints[name], device="cpu")
            for head in heads.get(name, []):
                models[name].attach_ddsp(head)
    sr = store.transform.params.sample_rate
    out.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, target in FIGURE_PAIRS:
        clip = store.clips(source, "val").files[0]
        wav = store.clip_audio(source, clip)[: int(seconds * sr)]
        panels = {f"{source} (source)": wav}
        for name, tt in models.items():
            panels[f"{name} -> {target}"] = tt.transfer(wav, sr, to=target,
                                                        inverter=ROWS[name].inverter)
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
