"""Commands that apply a trained model offline: ``transfer``, ``interpolate``, ``sample``,
``latent-map`` and ``report`` (the listening page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import (
    add_checkpoint,
    add_data,
    add_ddsp_inverter,
    add_f0_tracker,
    add_inverter,
    add_knob_arguments,
    add_octave,
    add_performance,
    attach_heads,
    knobs_from_args,
    performance_from_args,
)
from timbre_transfer.names import format_octaves


def cmd_transfer(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.inference.transfer import TimbreTransfer, output_paths

    for path in args.inputs:  # before the checkpoint loads: a typo fails fast
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such audio file")
    performance = performance_from_args(args)
    tt = TimbreTransfer.from_checkpoint(args.checkpoint, f0_tracker=args.f0_tracker)
    targets = tt.domains if args.all else list(dict.fromkeys(args.to or []))
    if not targets:
        raise ValueError(f"give --to DOMAIN (one or more) or --all; domains: {tt.domains}")
    attach_heads(tt, args, targets)
    output_paths(args.inputs, targets, args.out)  # refuses colliding names before any write
    for path in args.inputs:  # each input is loaded and encoded once for all its targets
        outs = tt.transfer_file(path, targets, args.out, inverter=args.inverter,
                                pitch_shift=args.pitch_shift, loudness_shift=args.loudness_shift,
                                octave=args.octave, controls=knobs_from_args(args),
                                performance=performance)
        # the input's analysis is cached by now: this only reads what the transfer applied
        octaves = tt.applied_octaves(load_audio(path, tt.sample_rate), tt.sample_rate, targets,
                                     args.octave)
        for domain, out in outs.items():
            print(f"{path} -> {domain} ({format_octaves(octaves[domain])}): {out}")
    return 0


def register_transfer(sub) -> None:
    p = sub.add_parser(
        "transfer", help="turn audio files into trained domains",
        description="Transfer each input file to each target domain; writes "
        "OUT/<stem>_to_<domain>.wav at the model's sample rate, with the input's duration. The "
        "input is scaled by one gain to the training level and the output by its inverse (the "
        "level change is undone; loudness is not matched). An output over full scale is scaled "
        "down to a 0.99 peak, with a warning. Long inputs go through the nets in overlapped "
        "windows of the training crop. Inputs that would write the same file are refused before "
        "anything is written.",
    )
    add_checkpoint(p, "checkpoint (e.g. RUN_DIR/checkpoints/latest.pt)", shipped=True,
                   spill="inputs")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files")
    targets = p.add_mutually_exclusive_group()
    targets.add_argument("--to", action="append", metavar="DOMAIN",
                         help="target domain (repeatable)")
    targets.add_argument("--all", action="store_true", help="every domain of the model")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    add_ddsp_inverter(p)
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="DDSP only: shift the source's pitch (default: 0)")
    p.add_argument("--loudness-shift", type=float, default=0.0, metavar="DB",
                   help="DDSP only: shift the source's loudness (default: 0)")
    add_octave(p, " (any inverter; a DDSP head renders the moved f0)")
    add_f0_tracker(p, "what reads the input's pitch (for a model with the pitch template, "
                   "--octave auto; a DDSP head reads with its own); another one than the model "
                   "was trained on warns", default=None)
    add_performance(p)
    add_knob_arguments(p)
    p.set_defaults(func=cmd_transfer)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.io import load_audio, save_audio
    from timbre_transfer.inference.latent import interpolate, save_strip
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    a, b = (load_audio(p, tt.sample_rate) for p in (args.a, args.b))
    wavs, mels = interpolate(tt, a, b, to=args.to, steps=args.steps, mode=args.mode)
    out = Path(args.out)
    for i, wav in enumerate(wavs):
        save_audio(out / f"step_{i:02d}.wav", wav, tt.sample_rate)
    strip = save_strip(mels, out / "strip.png", [f"t={t:.2f}" for t in
                                                 [i / (len(mels) - 1) for i in range(len(mels))]])
    print(f"{len(wavs)} steps ({args.mode}) in {args.to} -> {out}/step_*.wav, {strip}")
    return 0


def register_interpolate(sub) -> None:
    p = sub.add_parser(
        "interpolate", help="walk the latent space between two sounds",
        description="Encode A and B, decode STEPS latents between them with domain DOMAIN's "
        "generator, and write OUT/step_NN.wav and OUT/strip.png (the mels side by side).",
    )
    add_checkpoint(p)
    p.add_argument("a", metavar="A", help="first audio file")
    p.add_argument("b", metavar="B", help="second audio file")
    p.add_argument("--to", required=True, metavar="DOMAIN", help="generator to decode with")
    p.add_argument("--steps", type=int, default=8, help="number of steps (default: 8)")
    p.add_argument("--mode", choices=("lerp", "slerp"), default="slerp",
                   help="linear or spherical interpolation (default: slerp)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_interpolate)


def cmd_sample(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.io import save_audio
    from timbre_transfer.inference.latent import sample, save_strip
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    targets = tt.domains if args.all else [args.to]
    out = Path(args.out)
    for domain in targets:
        wavs, mels = sample(tt, domain, n=args.n, seconds=args.seconds,
                            temperature=args.temperature, seed=args.seed, around=args.around)
        for i, wav in enumerate(wavs):
            save_audio(out / f"{domain}_{i:02d}.wav", wav, tt.sample_rate)
        strip = save_strip(mels, out / f"{domain}.png")
        print(f"{domain}: {len(wavs)} samples -> {out}/{domain}_*.wav, {strip}")
    return 0


def register_sample(sub) -> None:
    p = sub.add_parser(
        "sample", help="decode random latents from the prior into audio",
        description="Draw N latents from N(0, t^2 I), or from N(c, t^2 I) around a domain's "
        "latent centroid c with --around, and decode them with each chosen domain's generator; "
        "writes OUT/<domain>_NN.wav and OUT/<domain>.png.",
    )
    add_checkpoint(p, shipped=True)
    domain = p.add_mutually_exclusive_group(required=True)
    domain.add_argument("--to", metavar="DOMAIN", help="domain to decode with")
    domain.add_argument("--all", action="store_true", help="every domain")
    p.add_argument("--n", type=int, default=8, help="samples per domain (default: 8)")
    p.add_argument("--seconds", type=float, default=2.0, help="length (default: 2)")
    p.add_argument("--temperature", type=float, default=1.0, help="prior scale (default: 1)")
    p.add_argument("--around", metavar="DOMAIN",
                   help="centre the draws on this domain's latent centroid (kept by training)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_sample)


def cmd_latent_map(args: argparse.Namespace) -> int:
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.inference.latent import latent_map, save_latent_map
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    store = FeatureStore(args.data)
    latents = latent_map(tt, store, None if args.split == "all" else args.split)
    path = save_latent_map(latents, args.out, f"{Path(args.checkpoint).name}: "
                           f"{len(latents.files)} clips of {store.root.name}")
    print(f"{len(latents.files)} clips; PC 1 and 2 hold {100 * latents.explained[0]:.0f}% and "
          f"{100 * latents.explained[1]:.0f}% of the variance -> {path}")
    return 0


def register_latent_map(sub) -> None:
    p = sub.add_parser(
        "latent-map", help="plot the clips of a feature store in the model's latent space",
        description="Encode every clip of FEATURES_DIR (the model's prepared store), average "
        "each clip's latent over time, project to 2-D by PCA and write a scatter plot coloured "
        "by domain.",
    )
    add_checkpoint(p)
    add_data(p)
    p.add_argument("--split", choices=("train", "val", "all"), default="all",
                   help="which clips to encode (default: all)")
    p.add_argument("--out", required=True, metavar="MAP_PNG", help="output image, e.g. map.png")
    p.set_defaults(func=cmd_latent_map)


def cmd_report(args: argparse.Namespace) -> int:
    from timbre_transfer.inference.report import write_listening_page
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    index = write_listening_page(tt, args.inputs, args.out, checkpoint=str(args.checkpoint),
                                 evaluation=args.evaluation, inverter=args.inverter,
                                 audio_format=args.audio_format, octave=args.octave)
    print(f"listening page: {index} (open it in a browser; it works offline)")
    return 0


def register_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write a listening page: inputs, transfers, inverters, latent, scores",
        description="Write a self-contained static site in OUT (index.html plus media/): each "
        "input next to its transfer to every domain (players and mel images), the inverters side "
        "by side on one transfer, each timbre knob at five settings on that transfer (players "
        "and the measured descriptor), a latent interpolation strip between the first two "
        "inputs, and the heatmaps of an evaluate report. It works offline and from file://.",
    )
    add_checkpoint(p, shipped=True)
    p.add_argument("--inputs", nargs="+", required=True, metavar="IN", help="audio files")
    p.add_argument("--out", required=True, metavar="SITE_DIR", help="output folder")
    p.add_argument("--evaluation", metavar="REPORT_JSON",
                   help="an evaluate report; its heatmaps (REPORT_*.png beside it) are shown")
    p.add_argument("--ddsp", metavar="CKPT_DDSP", help="a DDSP head, shown among the inverters")
    add_inverter(p, "inverter for the transfers")
    add_octave(p)
    p.add_argument("--audio-format", choices=("wav", "ogg"), default="wav",
                   help="wav, or ogg (Vorbis, compressed) (default: wav)")
    p.set_defaults(func=cmd_report)
