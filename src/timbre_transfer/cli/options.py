"""Options shared by several commands, declared once, and the helpers that act on them.

Heavy imports (torch, librosa) happen inside the functions so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.names import (
    DDSP,
    DEFAULT_F0_TRACKER,
    DEFAULT_OCTAVE,
    F0_TRACKERS,
    INVERTERS,
    KNOBS,
)


def config_names() -> str:
    """The packaged configs' names, for the help of ``--config``."""
    from timbre_transfer.config import packaged_configs

    return ", ".join(packaged_configs()) or "none found"


def add_config_options(p: argparse.ArgumentParser, uses: str, examples: str,
                       default: str = "built-in defaults") -> None:
    """``--config`` (a YAML path or a packaged config's name) and trailing ``key=value``
    overrides; ``uses`` says which sections the command reads."""
    p.add_argument("--config", help=f"YAML config: a path, or the name of a config shipped with "
                   f"the package ({config_names()}; see config/). {uses} (default: {default})")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"config overrides, e.g. {examples}")


def add_data(p: argparse.ArgumentParser, help: str = "prepared feature store") -> None:
    """``--data FEATURES_DIR``, required."""
    p.add_argument("--data", required=True, metavar="FEATURES_DIR", help=help)


def add_checkpoint(p: argparse.ArgumentParser, help: str | None = None, shipped: bool = False,
                   spill: str | None = None) -> None:
    """The positional ``CKPT``; ``shipped``: or ``--model NAME``, a model shipped with the
    package (:func:`resolve_model` sets ``args.checkpoint`` to its weights). ``spill`` names
    the command's next positional, which takes what argparse gave CKPT when --model is used."""
    if not shipped:
        p.add_argument("checkpoint", metavar="CKPT", help=help)
        return
    p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                   help=f"{help or 'checkpoint'}; or --model NAME instead")
    p.add_argument("--model", metavar="NAME",
                   help="a model shipped with the package, instead of CKPT: no training needed "
                   "(`timbre-transfer models` lists them)")
    p.set_defaults(model_spill=spill)


def resolve_model(args: argparse.Namespace) -> None:
    """Point ``args.checkpoint`` at the shipped weights of ``--model`` (commands registered with
    ``add_checkpoint(shipped=True)``; others are left alone).

    Raises:
        ValueError: neither CKPT nor --model, both, or an unknown model name.
    """
    if "model_spill" not in args:
        return
    if args.model is None:
        if args.checkpoint is None:
            raise ValueError("give a checkpoint (CKPT) or --model NAME (`timbre-transfer models` "
                             "lists the shipped models)")
        return
    from timbre_transfer.pretrained import resolve

    if args.checkpoint is not None:  # argparse filled CKPT first: it is the next positional
        spill = args.model_spill
        taken = getattr(args, spill) if spill else None
        if isinstance(taken, list):
            setattr(args, spill, [args.checkpoint, *taken])
        elif spill and taken is None:
            setattr(args, spill, args.checkpoint)
        else:
            raise ValueError(f"give a checkpoint or --model, not both ({args.checkpoint} and "
                             f"--model {args.model})")
    args.checkpoint = str(resolve(args.model))


def add_inverter(p: argparse.ArgumentParser, help: str = "phase reconstruction",
                 extra: tuple[str, ...] = ()) -> None:
    """``--inverter``: one of :data:`~timbre_transfer.names.INVERTERS`, or of ``extra``."""
    p.add_argument("--inverter", choices=INVERTERS + extra, default="pghi+gla",
                   help=f"{help} (default: pghi+gla)")


def add_f0_tracker(p: argparse.ArgumentParser, help: str,
                   default: str | None = DEFAULT_F0_TRACKER) -> None:
    """``--f0-tracker``: one of :data:`~timbre_transfer.names.F0_TRACKERS`."""
    shown = f"default: {default}" if default else "default: the model's own"
    p.add_argument("--f0-tracker", choices=F0_TRACKERS, default=default,
                   help=f"{help}: swift (SwiftF0, a small network, fast) or pyin (the reference, "
                   f"about 27x slower) ({shown})")


def octave_value(value: str) -> int | str:
    """``--octave``'s type: ``auto`` or a whole number of octaves."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--octave takes a whole number of octaves or 'auto', got {value!r}") from None


def add_octave(p: argparse.ArgumentParser, extra: str = "") -> None:
    """``--octave N|auto`` (default :data:`~timbre_transfer.names.DEFAULT_OCTAVE`)."""
    p.add_argument("--octave", type=octave_value, default=DEFAULT_OCTAVE, metavar="N|auto",
                   help="the register of the transfer: auto moves the performance, per target, "
                   "by the whole number of octaves that brings the input's median pitch closest "
                   "to the target's training register (as DDSP's timbre-transfer demo does; an "
                   "input with no pitch stays where it is); N moves it by N octaves; 0 keeps the "
                   f"input's register{extra} (default: {DEFAULT_OCTAVE})")


def add_ddsp_inverter(p: argparse.ArgumentParser) -> None:
    """``--inverter`` with ``ddsp`` among the choices, and ``--ddsp`` for the head."""
    add_inverter(p, "phase reconstruction, or ddsp: the DDSP head of --ddsp renders the "
                 "generated mel with the source's pitch and loudness", extra=(DDSP,))
    p.add_argument("--ddsp", metavar="CKPT_DDSP",
                   help="a head trained by train-ddsp (not needed for a checkpoint made by "
                   "`bundle`, which carries its heads)")


def attach_heads(tt, args: argparse.Namespace, domains) -> None:
    """Attach --ddsp and check, before any work, that --inverter can render every domain (the
    library's one check, :func:`~timbre_transfer.inference.render.renderer_for`)."""
    from timbre_transfer.inference.render import renderer_for

    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    renderer_for(tt, args.inverter, domains)


def add_embedder(p: argparse.ArgumentParser) -> None:
    """``--embedder`` and ``--fad-weights``: how FAD embeds audio."""
    p.add_argument("--embedder", choices=("logmel", "vggish"), default="logmel",
                   help="FAD embedder: logmel, built-in, offline, not comparable with published "
                   "FAD (default); vggish, the standard (needs its weights)")
    p.add_argument("--fad-weights", metavar="PATH",
                   help="vggish-10086976.pth (default: the torch hub cache, or a download)")


def add_max_steps(p: argparse.ArgumentParser,
                  help: str = "stop at this step (overrides train.max_steps)") -> None:
    """``--max-steps N``."""
    p.add_argument("--max-steps", type=int, help=help)


def add_resume(p: argparse.ArgumentParser,
               help: str = "continue from RUN_DIR/checkpoints/latest.pt") -> None:
    """``--resume``."""
    p.add_argument("--resume", action="store_true", help=help)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """A training run's folder, its last step and resumption (train, train-ddsp, add-domain)."""
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    add_max_steps(p)
    add_resume(p)


def overrides_with_max_steps(args: argparse.Namespace) -> list[str]:
    """The key=value overrides, plus ``train.max_steps`` when ``--max-steps`` is given."""
    extra = [] if args.max_steps is None else [f"train.max_steps={args.max_steps}"]
    return list(getattr(args, "overrides", [])) + extra


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


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """``--brightness``, ``--noisiness``, ...: one option per knob, its unit and range in its
    help."""
    for name, knob in KNOBS.items():
        where = "any inverter" if knob.inverters == "any" else "--inverter ddsp only"
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0,
                       metavar=knob.unit.upper(),
                       help=f"timbre knob: {knob.help}, {knob.low:g} to {knob.high:g} "
                            f"{knob.unit} ({where}; default 0)")


def knobs_from_args(args: argparse.Namespace) -> dict[str, float]:
    """The knobs given a value other than 0, as ``{name: value}``."""
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name)}


def add_performance(p: argparse.ArgumentParser, loudest: str = "its loudest frame") -> None:
    """``--autotune`` and ``--quiet``: how the source is played (DDSP's demo controls), for
    every inverter; ``loudest``: what --quiet measures against."""
    p.add_argument("--autotune", type=float, default=0.0, metavar="AMOUNT",
                   help="pull the input's pitch toward the nearest semitone by this fraction, 0 "
                   "to 1 (1 snaps it) (any inverter: the notes the model plays, the f0 a DDSP "
                   "head renders; default: 0)")
    p.add_argument("--quiet", type=float, default=None, metavar="DB",
                   help=f"silence the output where the input is more than DB decibels below "
                   f"{loudest}, instead of transferring that noise (any inverter; default: off)")


def performance_from_args(args: argparse.Namespace):
    """The :class:`~timbre_transfer.audio.performance.Performance` of --autotune and --quiet
    (checked: a bad value fails before any work)."""
    from timbre_transfer.audio.performance import Performance

    return Performance(autotune=args.autotune, quiet_db=args.quiet)
