"""SwiftF0 against pYIN on Bach10's pitch truth, speech and clips with no note.

Both trackers run through :func:`timbre_transfer.audio.f0.track_f0` at the package's control
grid (16 kHz, hop 256), each on ONE thread (``OMP_NUM_THREADS=1``; SwiftF0 with
``threads=1``). Against the truth (``bach10/f0``, 0 Hz = no note) on each piece x instrument:

- median error (cents) and the share within 50 c, on frames both the truth and the tracker
  call voiced;
- voiced recall (truth-voiced frames the tracker calls voiced) and voiced precision
  (tracker-voiced frames the truth calls voiced);
- x real time on one thread.

SwiftF0's threshold is picked on pieces 01-06: the highest confidence whose voicing F1 over
their pooled frames is within :data:`F1_TIE` of the best (F1 is flat over a wide range, and
among ties the higher threshold calls fewer frames of noise voiced); pieces 07-08 are reported
at it. Speech (speech_en) has no truth: the
table gives each tracker's voiced share and SwiftF0's precision and recall against pYIN's
decision. Silence, white and pink noise and noise bursts have no note at all:
every voiced frame there is a false alarm. pYIN's results are cached in ``data/bench/f0_trackers``
(delete it to time pYIN again). Run from the repository root, alone::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/f0_trackers.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "data" / "bench" / "f0_trackers"
SR, HOP = 16000, 256
INSTRUMENTS = ("violin", "clarinet", "tenor_sax", "bassoon")
PICK, REPORT = ("01", "02", "03", "04", "05", "06"), ("07", "08")
THRESHOLDS = np.round(np.arange(0.2, 0.96, 0.05), 2)
F1_TIE = 0.002  # F1 differences below this are ties (a few hundred of ~100k frames)


def load(path: Path) -> np.ndarray:
    import librosa

    y, _ = librosa.load(path, sr=SR, mono=True)
    return y.astype(np.float64)


def run_tracker(name: str, y: np.ndarray, key: str):
    """(f0 with NaN unvoiced, voicing prob, raw pitch, seconds) of ``y`` by tracker ``name``."""
    from timbre_transfer.audio.f0 import f0_pyin, f0_swift

    if name == "pyin":
        cached = CACHE / f"{key}.npz"
        if cached.exists():
            z = np.load(cached)
            return z["f0"], z["prob"], float(z["seconds"])
        start = time.perf_counter()
        track = f0_pyin(y, SR, HOP)
        seconds = time.perf_counter() - start
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cached, f0=track.f0, prob=track.voiced_prob, seconds=seconds)
        return track.f0, track.voiced_prob, seconds
    f0_swift(y[:SR], SR, HOP, threads=1)  # warm: the first call builds the session
    start = time.perf_counter()
    # threshold 0: every frame's pitch comes back; voicing is decided below per threshold
    track = f0_swift(y, SR, HOP, threads=1, threshold=0.0)
    return track.f0, track.voiced_prob, time.perf_counter() - start


def frame_stats(truth, f0, voiced):
    """Counts of one clip: errors (cents) on frames voiced in both, and voicing counts."""
    has_note = truth > 0
    both = has_note & voiced
    cents = 1200 * np.abs(np.log2(f0[both] / truth[both]))
    return {"cents": cents, "tp": int(both.sum()), "notes": int(has_note.sum()),
            "called": int(voiced.sum())}


def summary(stats: list[dict], seconds: float, audio_s: float) -> dict:
    cents = np.concatenate([s["cents"] for s in stats])
    tp, notes, called = (sum(s[k] for s in stats) for k in ("tp", "notes", "called"))
    recall, precision = tp / max(notes, 1), tp / max(called, 1)
    return {"median_cents": float(np.median(cents)) if cents.size else float("nan"),
            "within_50c": float(np.mean(cents < 50)) if cents.size else float("nan"),
            "recall": recall, "precision": precision,
            "f1": 2 * recall * precision / max(recall + precision, 1e-12),
            "x_realtime": audio_s / max(seconds, 1e-9)}


def no_note_clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 10 * SR
    white = rng.normal(0, 0.1, n)
    pink = np.fft.irfft(np.fft.rfft(rng.normal(0, 1, n)) / np.sqrt(np.arange(1, n // 2 + 2)))
    pink *= 0.1 / pink.std()
    bursts = white * (np.sin(2 * np.pi * 0.5 * np.arange(n) / SR) > 0)
    return {"silence": np.zeros(n), "white noise": white, "pink noise": pink,
            "noise bursts": bursts, "quiet white noise (-60 dBFS)": white * 0.01}


def main(argv=None) -> None:
    from timbre_transfer.evaluation.content import load_f0_truth

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "data" / "bench" / "f0_trackers.json"))
    args = p.parse_args(argv)
    clips = {}  # (piece, instrument) -> (truth, {tracker: (f0, prob, seconds)}, audio seconds)
    for inst in INSTRUMENTS:
        for path in sorted((DATA / "bach10" / inst).glob("*.flac")):
            piece = path.name[:2]
            y = load(path)
            truth = load_f0_truth(DATA / "bach10" / "f0" / f"{path.stem}-{inst}.csv", SR, HOP,
                                  len(y))
            runs = {t: run_tracker(t, y, f"{path.stem}-{inst}") for t in ("swift", "pyin")}
            clips[piece, inst] = (truth, runs, len(y) / SR)
            print(f"{path.stem} {inst}: swift {runs['swift'][2]:.2f} s, "
                  f"pyin {runs['pyin'][2]:.1f} s", flush=True)

    def decide(tracker, f0, prob, threshold):
        if tracker == "pyin":
            return f0, ~np.isnan(f0)
        return f0, prob >= threshold

    def table(pieces, tracker, threshold, inst=None):
        chosen = [(k, v) for k, v in clips.items() if k[0] in pieces and inst in (None, k[1])]
        stats = [frame_stats(truth, *decide(tracker, *runs[tracker][:2], threshold))
                 for _, (truth, runs, _) in chosen]
        return summary(stats, sum(runs[tracker][2] for _, (_, runs, _) in chosen),
                       sum(a for _, (_, _, a) in chosen))

    sweep = {float(t): table(PICK, "swift", t) for t in THRESHOLDS}
    top = max(s["f1"] for s in sweep.values())
    best = max(t for t, s in sweep.items() if s["f1"] >= top - F1_TIE)
    print("\nSwiftF0 threshold sweep on pieces 01-06 (pooled frames)")
    print("| threshold | recall | precision | F1 | median c | within 50 c |")
    print("|---|---|---|---|---|---|")
    for t, s in sweep.items():
        mark = " **picked**" if t == best else (" (best F1)" if s["f1"] == top else "")
        print(f"| {t:.2f}{mark} | {s['recall']:.3f} | {s['precision']:.3f} | {s['f1']:.3f} | "
              f"{s['median_cents']:.2f} | {s['within_50c']:.3f} |")

    results = {"threshold": best, "sweep": sweep, "bach10": {}}
    header = ("| pieces | instrument | tracker | median c | within 50 c | recall | precision | "
              "x real time (1 thread) |")
    print(f"\nBach10 against its truth; SwiftF0 at threshold {best:.2f}\n{header}")
    print("|---|---|---|---|---|---|---|---|")
    for pieces, label in ((PICK, "01-06 (picked on)"), (REPORT, "07-08 (reported)")):
        for inst in (*INSTRUMENTS, None):
            for tracker in ("swift", "pyin"):
                s = table(pieces, tracker, best, inst)
                results["bach10"][f"{label}/{inst or 'all'}/{tracker}"] = s
                print(f"| {label} | {inst or '**all four**'} | {tracker} | "
                      f"{s['median_cents']:.2f} | {s['within_50c']:.3f} | {s['recall']:.3f} | "
                      f"{s['precision']:.3f} | {s['x_realtime']:.0f} |")

    from timbre_transfer.audio.f0 import f0_swift

    print("\nNo note and speech: share of frames each tracker calls voiced")
    print("| clip | seconds | swift voiced share | pyin voiced share | swift vs pyin "
          "precision | swift vs pyin recall |")
    print("|---|---|---|---|---|---|")
    speech = [load(f) for f in sorted((DATA / "speech_en" / "speech_male").glob("*.flac"))]
    others = {**no_note_clips(), "speech_en (all files)": np.concatenate(speech)}
    results["other"] = {}
    for name, y in others.items():
        sw = f0_swift(y, SR, HOP, threads=1, threshold=best).voiced
        py = ~np.isnan(run_tracker("pyin", y, "other-" + name.replace(" ", "_"))[0])
        both = int((sw & py).sum())
        row = {"swift_voiced": float(sw.mean()), "pyin_voiced": float(py.mean()),
               "precision_vs_pyin": both / max(int(sw.sum()), 1),
               "recall_vs_pyin": both / max(int(py.sum()), 1)}
        results["other"][name] = row
        print(f"| {name} | {len(y) / SR:.0f} | {row['swift_voiced']:.3f} | "
              f"{row['pyin_voiced']:.3f} | {row['precision_vs_pyin']:.3f} | "
              f"{row['recall_vs_pyin']:.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
