"""``timbre-transfer`` command line: thin subcommands over library functions.

Each command is a ``cmd_<name>`` handler followed by the ``_register_<name>`` that declares its
options; options shared by several commands are declared once, by the ``_add_*`` helpers below.
Heavy imports (torch, librosa) happen inside the handlers so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

INVERTERS = ("pghi", "griffinlim", "pghi+gla")


# ---- options shared by several commands -------------------------------------------------------


def _config_names() -> str:
    from timbre_transfer.config import packaged_configs

    return ", ".join(packaged_configs()) or "none found"


def _add_config_options(p: argparse.ArgumentParser, uses: str, examples: str,
                        default: str = "built-in defaults") -> None:
    """``--config`` (a YAML path or a packaged config's name) and trailing ``key=value``
    overrides; ``uses`` says which sections the command reads."""
    p.add_argument("--config", help=f"YAML config: a path, or the name of a config shipped with "
                   f"the package ({_config_names()}; see config/). {uses} (default: {default})")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"config overrides, e.g. {examples}")


def _add_data(p: argparse.ArgumentParser, help: str = "prepared feature store") -> None:
    p.add_argument("--data", required=True, metavar="FEATURES_DIR", help=help)


def _add_checkpoint(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help=help)


def _add_inverter(p: argparse.ArgumentParser, help: str = "phase reconstruction",
                  extra: tuple[str, ...] = ()) -> None:
    p.add_argument("--inverter", choices=INVERTERS + extra, default="pghi+gla",
                   help=f"{help} (default: pghi+gla)")


def _add_ddsp_inverter(p: argparse.ArgumentParser) -> None:
    _add_inverter(p, "phase reconstruction, or ddsp: the DDSP head of --ddsp renders the "
                  "generated mel with the source's pitch and loudness", extra=("ddsp",))
    p.add_argument("--ddsp", metavar="CKPT_DDSP",
                   help="a head trained by train-ddsp (not needed for a checkpoint made by "
                   "`bundle`, which carries its heads)")


def _attach_heads(tt, args: argparse.Namespace, domains) -> None:
    """Attach --ddsp and, for --inverter ddsp, check that every domain has a head (before any
    work)."""
    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    for domain in domains:
        tt.check_domain(domain)
        if args.inverter == "ddsp" and domain not in tt.ddsp:
            raise ValueError(f"--inverter ddsp needs a head for {domain!r}: pass --ddsp PATH "
                             f"(heads loaded: {sorted(tt.ddsp) or 'none'})")


def _add_embedder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", choices=("logmel", "vggish"), default="logmel",
                   help="FAD embedder: logmel, built-in, offline, not comparable with published "
                   "FAD (default); vggish, the standard (needs its weights)")
    p.add_argument("--fad-weights", metavar="PATH",
                   help="vggish-10086976.pth (default: the torch hub cache, or a download)")


def _add_max_steps(p: argparse.ArgumentParser,
                   help: str = "stop at this step (overrides train.max_steps)") -> None:
    p.add_argument("--max-steps", type=int, help=help)


def _add_resume(p: argparse.ArgumentParser,
                help: str = "continue from RUN_DIR/checkpoints/latest.pt") -> None:
    p.add_argument("--resume", action="store_true", help=help)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """A training run's folder, its last step and resumption (train, train-ddsp)."""
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    _add_max_steps(p)
    _add_resume(p)


def _overrides_with_max_steps(args: argparse.Namespace) -> list[str]:
    """The key=value overrides, plus ``train.max_steps`` when ``--max-steps`` is given."""
    extra = [] if args.max_steps is None else [f"train.max_steps={args.max_steps}"]
    return list(getattr(args, "overrides", [])) + extra


def _build_transform(config_path: str | None, overrides: list[str]):
    from timbre_transfer.audio.transform import AudioTransform, TransformParams
    from timbre_transfer.config import load_config

    config = load_config(config_path, overrides)
    params = TransformParams.from_dict(config.get("audio") or {})
    return AudioTransform(**vars(params))


# ---- the commands, in the order of `timbre-transfer --help` -----------------------------------


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.io import load_audio, save_audio
    from timbre_transfer.audio.transform import round_trip
    import torch

    transform = _build_transform(args.config, args.overrides)
    sr = transform.params.sample_rate
    wav = torch.from_numpy(load_audio(args.input, sr))
    result = round_trip(transform, wav, method=args.inverter, n_iter=args.n_iter)
    save_audio(args.out, result.wav, sr)
    print(f"wrote {args.out} ({wav.shape[-1] / sr:.2f} s at {sr} Hz, inverter {args.inverter})")
    print(f"spectral convergence: {result.spectral_convergence_db:.2f} dB")
    print(f"real-time factor:     {result.real_time_factor:.1f}x ({result.seconds:.2f} s)")
    return 0


def _register_reconstruct(sub) -> None:
    p = sub.add_parser(
        "reconstruct", help="round-trip an audio file through the mel front end",
        description="Load IN, compute the normalised log1p mel, invert it back to audio, write "
        "OUT, and print the spectral convergence (dB, lower is better) and real-time factor.",
    )
    p.add_argument("input", metavar="IN", help="audio file (wav, flac, ogg, mp3, aiff)")
    p.add_argument("--out", required=True, metavar="OUT", help="output audio file (.wav/.flac)")
    _add_inverter(p)
    p.add_argument("--n-iter", type=int, default=None,
                   help="Griffin-Lim iterations (default 32 for griffinlim, 16 for pghi+gla)")
    _add_config_options(p, "Its 'audio' section sets the transform", "audio.hop_length=256")
    p.set_defaults(func=cmd_reconstruct)


def cmd_prepare(args: argparse.Namespace) -> int:
    from timbre_transfer.audio.transform import AudioTransform, TransformParams
    from timbre_transfer.config import load_config
    from timbre_transfer.data.prepare import PrepareOptions, format_summary, prepare

    config = load_config(args.config, args.overrides)
    normalisation = None
    if args.like:  # the model's transform, cleaning and normalisation; the split stays ours
        from timbre_transfer.checkpoint import read_checkpoint

        if config.get("audio"):
            raise ValueError("--like takes the audio settings from the checkpoint; drop the "
                             "audio.* settings")
        model = read_checkpoint(args.like)
        if "transform" not in model:
            raise KeyError(f"{args.like} records no audio transform (not a model checkpoint?)")
        transform = AudioTransform.from_dict(model["transform"])
        normalisation = (float(transform.norm_shift), float(transform.norm_scale))
        options = PrepareOptions.from_dict({**model.get("prepare", {}),
                                            **(config.get("prepare") or {})})
    else:
        transform = AudioTransform(**vars(TransformParams.from_dict(config.get("audio") or {})))
        options = PrepareOptions.from_dict(config.get("prepare") or {})
    include = [s for s in args.nsynth_include.split(",") if s] if args.nsynth_include else None
    result = prepare(args.data, args.out, transform, options, workers=args.workers,
                     nsynth_by=args.nsynth_by, nsynth_include=include, overwrite=args.overwrite,
                     normalisation=normalisation)
    if result.processed == 0:
        print(f"{args.out} is up to date ({result.reused} files)")
    print(format_summary(result.report))
    print(f"store: {result.store} (report: {result.store / 'prepare_report.json'})")
    return 0


def _register_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="turn folders of audio into a feature store for training",
        description="Decode, clean (trim silence, normalise loudness) and analyse every file of "
        "DATA into log1p mel features stored per domain in OUT, with a file-level train/val "
        "split. DATA is a folder of <domain>/ subfolders, a CSV with path,domain columns (and an "
        "optional split column, train or val, that fixes a file's split), or an NSynth folder "
        "(examples.json + audio/). Every file's performance controls (pYIN f0 and voicing, "
        "A-weighted loudness) are analysed once here, for training, DDSP heads and evaluation. "
        "Bad files are skipped and listed in OUT/prepare_report.json; an interrupted run resumes.",
    )
    p.add_argument("data", metavar="DATA", help="data folder, CSV manifest or NSynth folder")
    p.add_argument("--out", required=True, metavar="OUT", help="feature store folder")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one process below 4 files, where worker "
                   "start-up costs more than it saves; else the CPU count, at most 8)")
    p.add_argument("--nsynth-by", choices=("family", "source", "instrument"), default="family",
                   help="NSynth attribute that names the domains (default: family)")
    p.add_argument("--nsynth-include", metavar="A,B",
                   help="NSynth domains to keep, e.g. string,brass (default: all)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a store in OUT that was prepared with other parameters")
    p.add_argument("--like", metavar="CKPT",
                   help="analyse as the model CKPT was trained: its audio transform, cleaning "
                   "and normalisation (a store to grow that model with: add-domain, train "
                   "--init-from); prepare.* settings still apply on top")
    _add_config_options(p, "Its 'audio' section sets the transform and 'prepare' the cleaning",
                        "audio.hop_length=256 or prepare.target_dbfs=-23")
    p.set_defaults(func=cmd_prepare)


def cmd_train(args: argparse.Namespace) -> int:
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    overrides = _overrides_with_max_steps(args)
    if args.init_from:
        from timbre_transfer.training.grow import grown_config

        config = grown_config(args.init_from, args.config, overrides, freeze=args.freeze,
                              unfreeze_after=args.unfreeze_after)
    elif args.freeze or args.unfreeze_after is not None:
        raise ValueError("--freeze and --unfreeze-after act on the model of --init-from CKPT")
    else:
        config = load_run_config(args.config, overrides)
    trainer = Trainer(config, args.data, args.out, resume=args.resume)
    if trainer.dist.is_main:
        print(f"training {len(trainer.domains)} domains {trainer.domains} from step {trainer.step} "
              f"to {config.train.max_steps}; TensorBoard: tensorboard --logdir {args.out}")
    return fit_and_report(trainer, args.out)


def fit_and_report(trainer, out) -> int:
    """Train to the end, leave the process group (under torchrun), name the checkpoint."""
    from timbre_transfer.training.distributed import shutdown

    try:
        trainer.fit()
    finally:
        shutdown(trainer.dist)  # under torchrun: leave the process group cleanly
    if trainer.dist.is_main:
        print(f"checkpoint: {Path(out) / 'checkpoints' / 'latest.pt'} (domains {trainer.domains})")
    return 0


def _register_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a many-to-many model on a feature store",
        description="Train the multi-domain VAE-GAN on a store made by `prepare`. Writes "
        "OUT/config.yaml, OUT/checkpoints/ (latest.pt and the last few step_*.pt) and "
        "OUT/tensorboard/. Several GPUs or machines: torchrun --nproc-per-node N -m "
        "timbre_transfer train ...",
    )
    _add_data(p)
    _add_run_options(p)
    _add_config_options(p, "Its 'model', 'train' and 'loss' sections are used; 'audio' and "
                        "'prepare' are ignored and their overrides refused: the feature store "
                        "fixes them (run prepare again to change them)",
                        "train.lr=2e-4 or model.dim=16")
    p.add_argument("--init-from", metavar="CKPT",
                   help="start from a trained model: the weights it shares with this run's model "
                   "(same name and shape) are kept, the store's new domains start fresh, domains "
                   "the store lacks are dropped; without --config, the checkpoint's config is "
                   "the base")
    p.add_argument("--freeze", type=_parts, default=(), metavar="PARTS",
                   help="with --init-from: parts held fixed, comma-separated, of encoder, "
                   "shared, generators, discriminators (the last two: the checkpoint's domains')")
    p.add_argument("--unfreeze-after", type=int, metavar="K",
                   help="with --freeze: from step K, train everything at "
                   "train.lr x init.unfreeze_lr_scale (0.1)")
    p.set_defaults(func=cmd_train)


def _parts(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def cmd_transfer(args: argparse.Namespace) -> int:
    from timbre_transfer.inference.transfer import TimbreTransfer, output_paths

    for path in args.inputs:  # before the checkpoint loads: a typo fails fast
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such audio file")
    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    targets = tt.domains if args.all else list(dict.fromkeys(args.to or []))
    if not targets:
        raise ValueError(f"give --to DOMAIN (one or more) or --all; domains: {tt.domains}")
    _attach_heads(tt, args, targets)
    output_paths(args.inputs, targets, args.out)  # refuses colliding names before any write
    for path in args.inputs:  # each input is loaded and encoded once for all its targets
        outs = tt.transfer_file(path, targets, args.out, inverter=args.inverter,
                                pitch_shift=args.pitch_shift, loudness_shift=args.loudness_shift,
                                octave=args.octave, controls=knobs_from_args(args))
        for domain, out in outs.items():
            print(f"{path} -> {domain}: {out}")
    return 0


def _register_transfer(sub) -> None:
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
    _add_checkpoint(p, "checkpoint (e.g. RUN_DIR/checkpoints/latest.pt)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files")
    targets = p.add_mutually_exclusive_group()
    targets.add_argument("--to", action="append", metavar="DOMAIN", help="target domain (repeatable)")
    targets.add_argument("--all", action="store_true", help="every domain of the model")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    _add_ddsp_inverter(p)
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="DDSP only: shift the source's pitch (default: 0)")
    p.add_argument("--loudness-shift", type=float, default=0.0, metavar="DB",
                   help="DDSP only: shift the source's loudness (default: 0)")
    p.add_argument("--octave", type=_octave, default=0, metavar="N|auto",
                   help="move the performance by N octaves (any inverter), or 'auto': per target, "
                   "by the whole number of octaves that brings the input's median pitch closest "
                   "to the target's training register (default: 0, the input's own pitch)")
    add_knob_arguments(p)
    p.set_defaults(func=cmd_transfer)


def _octave(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--octave takes a whole number of octaves or 'auto', got {value!r}") from None


def cmd_bundle(args: argparse.Namespace) -> int:
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.checkpoint import read_checkpoint, save_checkpoint

    tt = TimbreTransfer.from_checkpoint(args.checkpoint, device="cpu")
    blob = read_checkpoint(args.checkpoint)
    heads = list(blob.get("ddsp_heads", []))
    for path in args.ddsp:
        head = read_checkpoint(path)
        domains = tt.attach_ddsp_payload(head, str(path))  # checked before anything is written
        heads.append(head)
        print(f"{path}: DDSP head for {domains}")
    blob.pop("format", None)
    out = save_checkpoint(args.out, {**blob, "ddsp_heads": heads})
    print(f"wrote {out}: the model with heads for {sorted(tt.ddsp)}; use it with "
          "`transfer --inverter ddsp` and no --ddsp")
    return 0


def _register_bundle(sub) -> None:
    p = sub.add_parser(
        "bundle", help="put DDSP heads into a model checkpoint",
        description="Write OUT: the model checkpoint CKPT carrying the given DDSP heads (each "
        "checked against the model's domains and mel first), so that `transfer --inverter "
        "ddsp` needs no --ddsp.",
    )
    _add_checkpoint(p)
    p.add_argument("--ddsp", nargs="+", required=True, metavar="CKPT_DDSP", help="heads from train-ddsp")
    p.add_argument("--out", required=True, metavar="OUT", help="output checkpoint")
    p.set_defaults(func=cmd_bundle)


def cmd_train_ddsp(args: argparse.Namespace) -> int:
    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    config = load_ddsp_config(args.config, _overrides_with_max_steps(args))
    store = FeatureStore(args.data)
    domains = store.domains if args.all else [args.domain]
    trainer = DDSPTrainer(config, store, domains, args.out, resume=args.resume)
    print(f"training a DDSP head on {domains} ({len(trainer.clips)} clips) from step "
          f"{trainer.step} to {config.train.max_steps}; TensorBoard: tensorboard --logdir {args.out}")
    trainer.fit()
    print(f"checkpoint: {Path(args.out) / 'checkpoints' / 'latest.pt'}")
    return 0


def _register_train_ddsp(sub) -> None:
    p = sub.add_parser(
        "train-ddsp", help="train a DDSP harmonic-plus-noise head on real audio of a domain",
        description="Train the DDSP re-synthesis head on the train split of one domain (or all) "
        "of FEATURES_DIR: input each clip's mel, f0 (pYIN) and A-weighted loudness (the store's "
        "controls, analysed by prepare), target the audio itself (multi-scale spectral loss). "
        "Writes OUT/config.yaml, OUT/checkpoints/ and OUT/tensorboard/. Use the head with "
        "`transfer --inverter ddsp --ddsp OUT/checkpoints/latest.pt`.",
    )
    _add_data(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--domain", metavar="DOMAIN", help="the domain whose audio the head learns")
    which.add_argument("--all", action="store_true", help="one head for every domain of the store")
    _add_run_options(p)
    _add_config_options(p, "Its 'head' and 'train' sections are used",
                        "train.lr=5e-4 or head.n_harmonics=40",
                        default="built-in defaults, the same as config/ddsp.yaml")
    p.set_defaults(func=cmd_train_ddsp)


def cmd_fad(args: argparse.Namespace) -> int:
    from timbre_transfer.evaluation.fad import fad, folder_statistics

    reference = folder_statistics(args.reference, args.embedder, args.fad_weights)
    evaluated = folder_statistics(args.evaluated, args.embedder, args.fad_weights)
    note = " (built-in embedder: not comparable with published FAD)" if args.embedder == "logmel" else ""
    print(f"FAD {fad(reference, evaluated):.4f}{note}")
    print(f"embeddings: {reference.n} in {args.reference}, {evaluated.n} in {args.evaluated}")
    return 0


def _register_fad(sub) -> None:
    p = sub.add_parser(
        "fad", help="Frechet Audio Distance between two folders of audio",
        description="Embed every audio file of the two folders (0.96 s patches) and print the "
        "Frechet distance between the two Gaussians. Empty or unreadable inputs are errors.",
    )
    p.add_argument("reference", metavar="DIR_A", help="reference audio folder")
    p.add_argument("evaluated", metavar="DIR_B", help="evaluated audio folder")
    _add_embedder(p)
    p.set_defaults(func=cmd_fad)


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


def _register_interpolate(sub) -> None:
    p = sub.add_parser(
        "interpolate", help="walk the latent space between two sounds",
        description="Encode A and B, decode STEPS latents between them with domain DOMAIN's "
        "generator, and write OUT/step_NN.wav and OUT/strip.png (the mels side by side).",
    )
    _add_checkpoint(p)
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


def _register_sample(sub) -> None:
    p = sub.add_parser(
        "sample", help="decode random latents from the prior into audio",
        description="Draw N latents from N(0, t^2 I), or from N(c, t^2 I) around a domain's "
        "latent centroid c with --around, and decode them with each chosen domain's generator; "
        "writes OUT/<domain>_NN.wav and OUT/<domain>.png.",
    )
    _add_checkpoint(p)
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
    from timbre_transfer.data.dataset import FeatureStore
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


def _register_latent_map(sub) -> None:
    p = sub.add_parser(
        "latent-map", help="plot the clips of a feature store in the model's latent space",
        description="Encode every clip of FEATURES_DIR (the model's prepared store), average "
        "each clip's latent over time, project to 2-D by PCA and write a scatter plot coloured "
        "by domain.",
    )
    _add_checkpoint(p)
    _add_data(p)
    p.add_argument("--split", choices=("train", "val", "all"), default="all",
                   help="which clips to encode (default: all)")
    p.add_argument("--out", required=True, metavar="MAP_PNG", help="output image, e.g. map.png")
    p.set_defaults(func=cmd_latent_map)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.evaluation.evaluate import (evaluate, format_value, log_to_tensorboard,
                                                     write_report)
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    store = FeatureStore(args.data)
    tt.check_store(store)
    _attach_heads(tt, args, tt.domains)
    out = Path(args.out)
    classifier = Path(args.classifier or out.with_name("classifier.pt"))
    report = evaluate(tt, store, classifier, split=args.split, inverter=args.inverter,
                      embedder=args.embedder, fad_weights=args.fad_weights,
                      max_clips=args.max_clips, twins=args.twins, f0_truth=args.f0_truth,
                      judge_pitch_shift=args.judge_pitch_shift, judge=args.judge)
    report["checkpoint"] = str(args.checkpoint)
    written = write_report(report, out)
    if args.tensorboard:
        print(f"logged to {log_to_tensorboard(report, args.tensorboard)}")
    c = report["classifier"]
    print(f"domain classifier {classifier}: held-out accuracy "
          f"{format_value(c['heldout_accuracy'])} ({c['heldout_windows']} windows)")
    s = {k: format_value(v) for k, v in report["summary"].items()}
    print(f"source != target: mean conversion accuracy {s['mean_conversion_accuracy']}; FAD "
          f"transfer {s['mean_fad_transfer']} vs identity {s['mean_fad_identity']} (ratio "
          f"{s['fad_ratio']})")
    print(f"report: {written['json']} (summary {written['markdown']}, heatmaps "
          f"{out.parent / (out.stem + '_*.png')})")
    return 0


def _register_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score a model on held-out clips: FAD, conversion accuracy, content",
        description="Transfer the held-out clips of every domain of FEATURES_DIR (the model's "
        "prepared store) to every domain and write REPORT (JSON) with source x target matrices "
        "of FAD (against the target's training audio), conversion accuracy (by a domain "
        "classifier trained on the store) and content kept (loudness-envelope correlation; f0 "
        "error in cents on frames pitched in both, the share of them within 50 cents and the "
        "voiced coverage, against the source's pYIN or --f0-truth; chroma similarity); the "
        "identity and "
        "resynthesis baselines; reconstruction quality. A Markdown summary (.md) and PNG "
        "heatmaps are written beside REPORT.",
    )
    _add_checkpoint(p)
    _add_data(p, "the feature store the model was trained on (its split is reused)")
    p.add_argument("--out", required=True, metavar="REPORT", help="report path, e.g. report.json")
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="clips to transfer (default: val, the held-out files)")
    _add_ddsp_inverter(p)
    _add_embedder(p)
    p.add_argument("--classifier", metavar="PATH",
                   help="domain classifier: loaded if the file exists, else trained on the "
                   "store's train split and saved there (default: classifier.pt beside REPORT)")
    p.add_argument("--judge-pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="train the classifier on crops shifted by up to this many semitones, "
                   "so that it judges timbre rather than register; 12 is a register-invariant "
                   "judge (default: 0; a saved --classifier must match)")
    p.add_argument("--judge", choices=("mel", "mfcc"), default="mel",
                   help="what the classifier reads: mel, a CNN on the mel windows (it hears "
                   "register as well as timbre), or mfcc, the windows' cepstral means and "
                   "spreads (the spectral envelope; it tells real instruments apart across "
                   "their ranges and recordings) (default: mel; a saved --classifier must match)")
    p.add_argument("--max-clips", type=int, metavar="N", help="at most N clips per domain")
    p.add_argument("--twins", metavar="AUDIO_DIR",
                   help="paired audio (<domain>/<name>.wav, e.g. from synth-data): also score "
                   "transfers against their ground-truth twins")
    p.add_argument("--f0-truth", metavar="DIR",
                   help="ground-truth f0 files <clip stem>.csv (columns time_s,f0_hz; 0 = no "
                   "note): the pitch of a domain's transfers is scored against them (on the "
                   "clips' untrimmed timeline) instead of the source's pYIN; domains without "
                   "files there keep pYIN")
    p.add_argument("--tensorboard", metavar="RUN_DIR",
                   help="also log the scores to RUN_DIR/tensorboard at the checkpoint's step")
    p.set_defaults(func=cmd_evaluate)


def cmd_report(args: argparse.Namespace) -> int:
    from timbre_transfer.inference.report import write_listening_page
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint)
    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    index = write_listening_page(tt, args.inputs, args.out, checkpoint=str(args.checkpoint),
                                 evaluation=args.evaluation, inverter=args.inverter,
                                 audio_format=args.audio_format)
    print(f"listening page: {index} (open it in a browser; it works offline)")
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write a listening page: inputs, transfers, inverters, latent, scores",
        description="Write a self-contained static site in OUT (index.html plus media/): each "
        "input next to its transfer to every domain (players and mel images), the inverters side "
        "by side on one transfer, each timbre knob at five settings on that transfer (players "
        "and the measured descriptor), a latent interpolation strip between the first two inputs, and "
        "the heatmaps of an evaluate report. It works offline and from file://.",
    )
    _add_checkpoint(p)
    p.add_argument("--inputs", nargs="+", required=True, metavar="IN", help="audio files")
    p.add_argument("--out", required=True, metavar="SITE_DIR", help="output folder")
    p.add_argument("--evaluation", metavar="REPORT_JSON",
                   help="an evaluate report; its heatmaps (REPORT_*.png beside it) are shown")
    p.add_argument("--ddsp", metavar="CKPT_DDSP", help="a DDSP head, shown among the inverters")
    _add_inverter(p, "inverter for the transfers")
    p.add_argument("--audio-format", choices=("wav", "ogg"), default="wav",
                   help="wav, or ogg (Vorbis, compressed) (default: wav)")
    p.set_defaults(func=cmd_report)


def cmd_synth_data(args: argparse.Namespace) -> int:
    from timbre_transfer.data.synthetic import write_paired_dataset

    written = write_paired_dataset(args.out, n_domains=args.domains, n_clips=args.clips,
                                   seconds=args.seconds, seed=args.seed, progress=True)
    for domain, paths in written.items():
        print(f"{domain:<8} {len(paths)} clips -> {Path(args.out) / domain}")
    print("files with the same name in each folder are the same score: ground-truth twins")
    return 0


def _register_synth_data(sub) -> None:
    p = sub.add_parser(
        "synth-data", help="write the built-in paired synthetic domains",
        description="Render the same random melodies with several synthetic timbres (reed, "
        "brass, flute, bowed, pluck) into OUT/<timbre>/clip_NNNN.wav. Files with the same name "
        "are ground-truth twins. Deterministic from --seed.",
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--domains", type=int, default=3, help="number of timbres, 1-5 (default: 3)")
    p.add_argument("--clips", type=int, default=50, help="clips per timbre (default: 50)")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=cmd_synth_data)


def cmd_demo(args: argparse.Namespace) -> int:
    from timbre_transfer.data.dataset import FeatureStore
    from timbre_transfer.data.prepare import prepare
    from timbre_transfer.data.synthetic import write_paired_dataset
    from timbre_transfer.evaluation.paired import paired_scores
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    out = Path(args.out)
    config = load_run_config(args.config, _overrides_with_max_steps(args))
    print(f"1/5 synthesising {args.clips} paired clips in 3 timbres -> {out / 'audio'}")
    write_paired_dataset(out / "audio", n_domains=3, n_clips=args.clips, seconds=4.0,
                         seed=args.seed)
    print(f"2/5 preparing features -> {out / 'features'}")
    prepare(out / "audio", out / "features", workers=1)
    store = FeatureStore(out / "features")
    print(f"3/5 training {args.config} for {config.train.max_steps} steps -> {out / 'run'}")
    trainer = Trainer(config, store, out / "run", resume=args.resume)
    history = trainer.fit()
    ckpt = out / "run" / "checkpoints" / "latest.pt"
    tt = TimbreTransfer.from_checkpoint(ckpt)
    held_out = store.clips(tt.domains[0], "val").files[0]
    source = out / "audio" / tt.domains[0] / held_out
    print(f"4/5 transferring the held-out clip {source} to every domain -> {out / 'transfers'}")
    for path in tt.transfer_file(source, tt.domains, out / "transfers").values():
        print(f"    {path}")  # loaded and encoded once for every domain
    print("5/5 scoring held-out transfers against their ground-truth twins (log-mel L1)")
    scores = paired_scores(tt, out / "audio", store)
    if history:
        print(f"    reconstruction L1: {history[0]['loss/recon']:.4f} at step "
              f"{history[0]['step']} -> {history[-1]['loss/recon']:.4f} at step "
              f"{history[-1]['step']}")
    print(f"    transfer vs twin: {scores.transfer:.4f}; untouched source vs twin: "
          f"{scores.identity:.4f} ({scores.pairs} pairs; lower is better)")
    print(f"audio: {out / 'transfers'}; TensorBoard: tensorboard --logdir {out / 'run'}")
    return 0


def _register_demo(sub) -> None:
    p = sub.add_parser(
        "demo", help="the main job on built-in data: synthesise, prepare, train, transfer",
        description="Synthesise paired domains (reed, brass, flute), prepare them, train the "
        "cpu-small config (about 15 minutes on 2 CPU cores), transfer a held-out clip to every "
        "domain, and score held-out transfers against their ground-truth twins. Runs from any "
        "folder: the configs ship with the package.",
    )
    p.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    p.add_argument("--config", default="cpu-small",
                   help="training config: a YAML path, or the name of a config shipped with the "
                   f"package ({_config_names()}) (default: cpu-small)")
    p.add_argument("--clips", type=int, default=40, help="clips per timbre (default: 40)")
    _add_max_steps(p, "training steps (default: the config's)")
    _add_resume(p, "continue an interrupted demo run")
    p.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    p.set_defaults(func=cmd_demo)


from timbre_transfer.audio.timbre_cli import (add_knob_arguments, knobs_from_args,  # noqa: E402
                                              register_describe)
from timbre_transfer.inference.streaming_cli import register_export, register_stream  # noqa: E402
from timbre_transfer.training.grow_cli import register_add_domain, register_domains  # noqa: E402

# `timbre-transfer --help` lists the commands in this order.
_COMMANDS = (
    _register_reconstruct, _register_prepare, _register_train, register_add_domain,
    register_domains, _register_transfer, register_stream, register_export, _register_train_ddsp, _register_bundle, _register_fad, _register_interpolate, _register_sample,
    _register_latent_map, _register_evaluate, _register_report, _register_synth_data,
    _register_demo, register_describe,
)


def build_parser() -> argparse.ArgumentParser:
    from timbre_transfer import __version__

    parser = argparse.ArgumentParser(
        prog="timbre-transfer",
        description="Many-to-many timbre transfer on log1p mel-spectrograms.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from timbre_transfer.config import ConfigError

    parser = build_parser()
    # key=value overrides may follow options; argparse leaves those for us to collect.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = args.overrides + extra
    try:
        return args.func(args)
    # The errors the library raises for bad input (config errors are KeyError or TypeError
    # subclasses of ConfigError). Anything else, a TypeError included, is a bug: its traceback
    # shows.
    except (FileNotFoundError, ValueError, KeyError, ConfigError) as exc:
        plain_key_error = isinstance(exc, KeyError) and not isinstance(exc, ConfigError)
        message = exc.args[0] if plain_key_error and exc.args else exc
        print(f"timbre-transfer {args.command}: error: {message}", file=sys.stderr)
        return 2
