"""``timbre-transfer`` command line: thin subcommands over library functions.

Each module of this package holds a group of commands, each a ``cmd_<name>`` handler and the
``register_<name>`` that declares its options; options shared by several commands are declared
once, in :mod:`timbre_transfer.cli.options`. Heavy imports (torch, librosa) happen inside the
handlers so that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

from timbre_transfer.cli import (
    app,
    audio,
    data,
    demo,
    evaluate,
    grow,
    models,
    stream,
    train,
    transfer,
)

# `timbre-transfer --help` lists the commands in this order.
_COMMANDS = (
    audio.register_reconstruct, data.register_prepare, train.register_train,
    grow.register_add_domain, grow.register_domains, transfer.register_transfer,
    stream.register_stream, stream.register_export, train.register_train_ddsp,
    train.register_bundle, evaluate.register_fad, transfer.register_interpolate,
    transfer.register_sample, transfer.register_latent_map, evaluate.register_evaluate,
    transfer.register_report, data.register_synth_data, demo.register_demo,
    audio.register_describe, models.register_models, app.register_app,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``timbre-transfer`` parser, with every command registered."""
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
    """Run one command; 2 with a one-line message on the library's errors for bad input."""
    from timbre_transfer.cli.options import resolve_model
    from timbre_transfer.config import ConfigError

    parser = build_parser()
    # key=value overrides may follow options; argparse leaves those for us to collect.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = args.overrides + extra
    try:
        resolve_model(args)
        return args.func(args)
    # The errors the library raises for bad input (config errors are KeyError or TypeError
    # subclasses of ConfigError). Anything else, a TypeError included, is a bug: its traceback
    # shows.
    except (FileNotFoundError, ValueError, KeyError, ConfigError) as exc:
        plain_key_error = isinstance(exc, KeyError) and not isinstance(exc, ConfigError)
        message = exc.args[0] if plain_key_error and exc.args else exc
        print(f"timbre-transfer {args.command}: error: {message}", file=sys.stderr)
        return 2
