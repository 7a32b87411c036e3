"""The ``describe`` command and the timbre-knob options of ``transfer`` (see
:mod:`timbre_transfer.audio.descriptors` and :mod:`timbre_transfer.audio.timbre_controls`);
heavy imports stay inside the handlers, so that ``--help`` stays instant."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.audio.timbre_controls import KNOBS

PLOTTED = ("f0_hz", "loudness_db", "centroid_hz", "brightness", "tilt", "noisiness", "odd_even",
           "flatness")


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """``--brightness``, ``--noisiness``, ... one option per knob, its unit and range in the help."""
    for name, knob in KNOBS.items():
        where = "any inverter" if knob.inverters == "any" else "--inverter ddsp only"
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0,
                       metavar=knob.unit.upper(),
                       help=f"timbre knob: {knob.help}, {knob.low:g} to {knob.high:g} "
                            f"{knob.unit} ({where}; default 0)")


def knobs_from_args(args: argparse.Namespace) -> dict[str, float]:
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name)}


def cmd_describe(args: argparse.Namespace) -> int:
    import numpy as np

    from timbre_transfer.audio.descriptors import DESCRIPTORS, describe
    from timbre_transfer.audio.features import a_weighted_loudness, f0_pyin
    from timbre_transfer.audio.io import load_audio

    for path in args.files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such audio file")
    columns = [*DESCRIPTORS, "attack_s"]
    units = {**{k: u for k, (u, _) in DESCRIPTORS.items()}, "attack_s": "s"}
    print("file".ljust(28) + "".join(f"{c} ({units[c]})".rjust(20) for c in columns))
    tracks = {}
    for path in args.files:
        wav = load_audio(path, args.sample_rate)
        if not np.any(wav):
            print(f"{str(path)[:27]:28}  skipped: silent")
            continue
        f0 = f0_pyin(wav, args.sample_rate, args.hop).f0
        d = describe(wav, args.sample_rate, args.hop, f0_hz=f0)
        summary = d.summary()
        print(f"{Path(path).name[:27]:28}" + "".join(f"{summary[c]:20.3f}" for c in columns)
              + f"   ({len(d.attack_s)} notes)")
        tracks[path] = (d, f0, a_weighted_loudness(wav, args.sample_rate, hop_length=args.hop))
    print("medians over the frames where each is defined; " + "; ".join(
        f"{k}: {text}" for k, (_, text) in DESCRIPTORS.items()) + "; attack_s: 10-90 % rise time")
    if args.plot and tracks:
        print(f"wrote {plot_descriptors(tracks, args.plot)}")
    return 0


def plot_descriptors(tracks: dict, out: str | Path) -> Path:
    """One panel per trajectory (f0, loudness and each descriptor), every file overlaid; note
    onsets marked on the loudness panel."""
    from matplotlib.figure import Figure

    from timbre_transfer.audio.descriptors import DESCRIPTORS

    labels = {"f0_hz": "f0 (Hz)", "loudness_db": "loudness (dB)",
              **{k: f"{k} ({u})" for k, (u, _) in DESCRIPTORS.items()}}
    fig = Figure(figsize=(10, 1.6 * len(PLOTTED)))
    axes = fig.subplots(len(PLOTTED), 1, sharex=True)
    for path, (d, f0, loudness) in tracks.items():
        values = {"f0_hz": f0, "loudness_db": loudness,
                  **{k: getattr(d, k) for k in DESCRIPTORS}}
        t = d.times()
        for ax, key in zip(axes, PLOTTED):
            ax.plot(t, values[key][: len(t)], lw=0.8, label=f"{Path(path).parent.name}/{Path(path).name}")
        for onset in d.onset_s:
            axes[1].axvline(onset, color="0.7", lw=0.5)
    for ax, key in zip(axes, PLOTTED):
        ax.set_ylabel(labels[key], fontsize=8)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def register_describe(sub) -> None:
    p = sub.add_parser(
        "describe", help="measure timbre descriptors of audio files",
        description="Print each file's median timbre descriptors (spectral centroid, brightness "
        "in octaves above f0, harmonic tilt, noisiness, odd/even harmonic ratio, spectral "
        "flatness, note attack time) and optionally plot their trajectories with f0 and "
        "loudness. Formulas: timbre_transfer.audio.descriptors.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--plot", metavar="OUT.png", help="write the trajectories here")
    p.add_argument("--sample-rate", type=int, default=16000,
                   help="analysis rate; files are resampled to it (default: 16000)")
    p.add_argument("--hop", type=int, default=256,
                   help="samples between frames (default: 256, 16 ms at 16 kHz)")
    p.set_defaults(func=cmd_describe)
