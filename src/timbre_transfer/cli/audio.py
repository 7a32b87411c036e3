"""Audio commands that need no model: ``reconstruct`` and ``describe``."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import add_config_options, add_f0_tracker, add_inverter


def _build_transform(config_path: str | None, overrides: list[str]):
    from timbre_transfer.audio.transform import AudioTransform, TransformParams
    from timbre_transfer.config import load_config

    config = load_config(config_path, overrides)
    params = TransformParams.from_dict(config.get("audio") or {})
    return AudioTransform(**vars(params))


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from timbre_transfer.audio.io import load_audio, save_audio
    from timbre_transfer.audio.transform import round_trip

    transform = _build_transform(args.config, args.overrides)
    sr = transform.params.sample_rate
    wav = torch.from_numpy(load_audio(args.input, sr))
    result = round_trip(transform, wav, method=args.inverter, n_iter=args.n_iter)
    save_audio(args.out, result.wav, sr)
    print(f"wrote {args.out} ({wav.shape[-1] / sr:.2f} s at {sr} Hz, inverter {args.inverter})")
    print(f"spectral convergence: {result.spectral_convergence_db:.2f} dB")
    print(f"real-time factor:     {result.real_time_factor:.1f}x ({result.seconds:.2f} s)")
    return 0


def register_reconstruct(sub) -> None:
    p = sub.add_parser(
        "reconstruct", help="round-trip an audio file through the mel front end",
        description="Load IN, compute the normalised log1p mel, invert it back to audio, write "
        "OUT, and print the spectral convergence (dB, lower is better) and real-time factor.",
    )
    p.add_argument("input", metavar="IN", help="audio file (wav, flac, ogg, mp3, aiff)")
    p.add_argument("--out", required=True, metavar="OUT", help="output audio file (.wav/.flac)")
    add_inverter(p)
    p.add_argument("--n-iter", type=int, default=None,
                   help="Griffin-Lim iterations (default 32 for griffinlim, 16 for pghi+gla)")
    add_config_options(p, "Its 'audio' section sets the transform", "audio.hop_length=256")
    p.set_defaults(func=cmd_reconstruct)


def cmd_describe(args: argparse.Namespace) -> int:
    import numpy as np

    from timbre_transfer.audio.descriptors import DESCRIPTORS, describe, plot_descriptors
    from timbre_transfer.audio.f0 import track_f0
    from timbre_transfer.audio.features import a_weighted_loudness
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
        f0 = track_f0(wav, args.sample_rate, args.hop, args.f0_tracker).f0
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
    add_f0_tracker(p, "what reads the f0 the harmonic descriptors are measured at")
    p.set_defaults(func=cmd_describe)
