"""Rebuild the models shipped inside the package (``timbre-transfer models``) from
``../shared/data``, with the package's own commands: ``prepare``, ``train``, then
:func:`timbre_transfer.pretrained.pack` (model-only weights in half precision, with the model
card).

The shipped model learns eight real timbres:

- Bach10's violin, clarinet, tenor_sax and bassoon, pieces 01-06 (07-08 held out);
- ``speech_en``'s speech_male, its last files held out;
- realaudio's flute, trumpet and singing_female, each domain's held-out files those of the store
  ``benchmarks/transfer_quality.py --set realaudio`` scores on (prepared here when missing).

So the held-out clips of both ``transfer_quality.py`` sets stay unheard, and its ``shipped`` row
scores the model on them. Each stage is reused when its output exists (an interrupted run
continues). Run from the repository root, alone (a second torch process on 2 cores slows
both)::

    .venv/bin/python benchmarks/train_models.py [--steps 2400] [--work data/models]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BACH10 = ("violin", "clarinet", "tenor_sax", "bassoon")
REALAUDIO = ("flute", "trumpet", "singing_female")  # the timbres Bach10 and speech lack
SPEECH_VAL = 4  # speech_en files held out, as transfer_quality.py --set bach10 holds out
REALAUDIO_VAL = 0.3  # as transfer_quality.py --set realaudio holds out
REALAUDIO_STORE = ROOT / "data" / "bench" / "transfer_quality_realaudio" / "features"
NAME = "real8-small"
CONFIG = "cpu-small"


def manifest_rows() -> list[tuple[str, str, str]]:
    """``(path, domain, split)`` of every file the shipped model may learn from or is scored on.
    realaudio's split is read from the store ``transfer_quality.py --set realaudio`` scores on
    (prepared here first when it is not there yet), so that its held-out clips stay unheard."""
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.cleaning import PrepareOptions
    from timbre_transfer.data.prepare import prepare
    from timbre_transfer.data.store import read_index

    rows = []
    for instrument in BACH10:
        for path in sorted((DATA / "bach10" / instrument).glob("*.flac")):
            rows.append((str(path), instrument, "train" if int(path.stem[:2]) <= 6 else "val"))
    speech = sorted((DATA / "speech_en" / "speech_male").glob("*.flac"))
    rows += [(str(p), "speech_male", "val" if i >= len(speech) - SPEECH_VAL else "train")
             for i, p in enumerate(speech)]
    # the realaudio benchmark's store, as transfer_quality.py prepares it
    store = prepare(DATA / "realaudio", REALAUDIO_STORE, AudioTransform(),
                    PrepareOptions(val_fraction=REALAUDIO_VAL)).store
    for domain in REALAUDIO:
        rows += [(e["path"], domain, e["split"]) for e in read_index(store, domain)]
    return rows


def run(*command: str) -> None:
    print("$ timbre-transfer " + " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "timbre_transfer", *command], check=True)


def main(argv=None) -> None:
    from timbre_transfer.pretrained import pack, shipped_path

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2400, help="training steps (default: 2400)")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "models" / NAME,
                   help="working folder (store and run)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where the packed model goes (default: the package's {NAME}.pt)")
    args = p.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain", "split"])
        writer.writerows(manifest_rows())
    t0 = time.perf_counter()
    run("prepare", str(manifest), "--out", str(work / "features"))
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    latest = work / "run" / "checkpoints" / "latest.pt"
    resume = ["--resume"] if latest.is_file() else []
    run("train", "--data", str(work / "features"), "--out", str(work / "run"), "--config",
        CONFIG, "--max-steps", str(args.steps), *resume)
    train_s = time.perf_counter() - t0
    timing = work / "timing.json"
    if not resume:  # a resumed run's wall time is not the whole training's
        timing.write_text(json.dumps({"prepare_s": prepare_s, "train_s": train_s,
                                      "steps": args.steps}))
    info = json.loads(timing.read_text()) if timing.is_file() else {}
    card = {
        "name": NAME,
        "data": {
            "bach10": "Bach10 (Duan, Pardo & Zhang 2010), pieces 01-06, research use",
            "speech_en": "one male speaker reading LJSpeech text (Apache-2.0)",
            "realaudio": "Medley-solos-DB (Lostanlen & Cella 2016), CC BY 4.0",
        },
        "training": f"benchmarks/train_models.py --steps {args.steps} (timbre-transfer prepare, "
                    f"then timbre-transfer train --config {CONFIG} --max-steps {args.steps})",
        "training_minutes": round(info.get("train_s", float("nan")) / 60, 1),
        "machine": "2-core CPU, torch CPU build",
        "quality": "docs/models.md (benchmarks/transfer_quality.py, row shipped)",
    }
    out = pack(latest, args.out or shipped_path(NAME), card)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
