"""How the conversion judge of ``transfer_quality.py --set bach10`` scores real instruments
playing outside the register it learned them in.

A transfer that keeps the source's melody plays the target instrument in the source's
register: a bassoon at the violin's pitch. Whether the plain judge can call that "bassoon" at
all is measured here on real recordings: the Philharmonia single notes of the bassoon, clarinet
and saxophone (judged as Bach10's tenor sax), grouped by how many octaves each note lies from
the domain's median training pitch in the Bach10 store. The in-register group is the control
(other recordings than Bach10's, so it is not 1.0 either); the drop away from it is what the
judge charges for register, a ceiling on the conversion of any pitch-keeping transfer.

The register-invariant judge of ``benchmarks/register_judge.py``
(``ClassifierConfig(pitch_shift=12)``) and the MFCC judge (``ClassifierConfig(features="mfcc")``:
the spectral envelope only), each trained here on the same store when it is not there yet, are
scored beside the plain one. Run after transfer_quality.py, from the repository root, alone::

    .venv/bin/python benchmarks/judge_out_of_register.py
"""

from __future__ import annotations

import argparse
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "philharmonia"
WORK = ROOT / "data" / "bench" / "transfer_quality_bach10"
AS_DOMAIN = {"bassoon": "bassoon", "clarinet": "clarinet", "saxophone": "tenor_sax"}
NOTE = re.compile(r"_([A-G])(s?)(\d)_")
SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def note_hz(name: str) -> float:
    """Frequency of the note in a Philharmonia file name (``bassoon_As2_1_forte_normal``)."""
    m = NOTE.search(name)
    if m is None:
        raise ValueError(f"{name}: no note name in the file name")
    midi = 12 * (int(m.group(3)) + 1) + SEMITONE[m.group(1)] + (m.group(2) == "s")
    return 440.0 * 2 ** ((midi - 69) / 12)


def main(argv=None) -> None:
    from tqdm import tqdm

    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier, ClassifierConfig, classifier_for

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(WORK), help="transfer_quality.py's work folder")
    args = p.parse_args(argv)
    work = Path(args.work)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: the Philharmonia notes are missing")
    if not (work / "classifier.pt").is_file():
        raise SystemExit(f"{work}: no classifier.pt; run transfer_quality.py --set bach10 first")
    store = FeatureStore(work / "features")
    medians = store.pitch_medians()
    judges = {"plain": Classifier.load(work / "classifier.pt"),
              "register-invariant": classifier_for(store, work / "classifier_shift12.pt",
                                                   ClassifierConfig(pitch_shift=12.0)),
              "mfcc": classifier_for(store, work / "classifier_mfcc.pt",
                                     ClassifierConfig(features="mfcc"))}
    rate = judges["plain"].transform.params.sample_rate

    hits = defaultdict(list)  # (judge, instrument, octaves away) -> per-note accuracy
    files = [(i, f) for i in AS_DOMAIN for f in sorted((DATA / i).glob("*.flac"))]
    for instrument, path in tqdm(files, unit="note", desc="judging notes"):
        domain = AS_DOMAIN[instrument]
        octaves = round(math.log2(note_hz(path.stem) / medians[domain]))
        wav = load_audio(path, rate)
        for name, judge in judges.items():
            hits[name, instrument, octaves].append(judge.accuracy(wav, domain))

    print("\nmedian training pitch (Hz): "
          + ", ".join(f"{d} {medians[d]:.0f}" for d in AS_DOMAIN.values()))
    print("| judge | instrument (as) | octaves from its Bach10 median | notes | called right |")
    print("|---|---|---|---|---|")
    for (name, instrument, octaves), acc in sorted(hits.items()):
        print(f"| {name} | {instrument} ({AS_DOMAIN[instrument]}) | {octaves:+d} | {len(acc)} | "
              f"{np.mean(acc):.2f} |")


if __name__ == "__main__":
    main()
