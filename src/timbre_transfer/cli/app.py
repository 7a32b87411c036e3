"""``app``: the transfer page, a web page served on this machine that turns one's own recordings
(uploaded or recorded from the microphone) into a model's domains, like DDSP's timbre-transfer
demo (:mod:`timbre_transfer.app`)."""

from __future__ import annotations

import argparse


def cmd_app(args: argparse.Namespace) -> int:
    from timbre_transfer.app import check_address, load_models, serve

    if args.max_seconds <= 0:
        raise ValueError(f"--max-seconds must be positive, got {args.max_seconds:g}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0 to 65535, got {args.port}")
    check_address(args.host, args.port)  # before the models load, which takes a while
    models = load_models(args.checkpoints, args.model)
    serve(models, args.host, args.port, args.max_seconds, open_browser=not args.no_browser)
    return 0


def register_app(sub) -> None:
    p = sub.add_parser(
        "app", help="a local web page: upload or record a sound, hear it in another timbre",
        description="Serve the transfer page on this machine and open it in the browser: "
        "upload an audio file (WAV, FLAC or OGG) or record one from the microphone, pick the "
        "target timbre and the controls (octave, autotune, quiet threshold, brightness, and "
        "loudness where the target has a DDSP head), press Run, and hear, download and see "
        "(the input's and output's mels) the result. Offline by construction: the page loads "
        "nothing but itself and what it asks this server for, and the server listens on "
        "127.0.0.1 (this machine only) unless --host says otherwise. Uploads longer than "
        "--max-seconds or over 32 MB are refused with a message. Results live in a temporary "
        "folder, removed when the server stops (Ctrl+C). Models: the CKPTs and --model names "
        "given; with neither, every model shipped with the package (docs/app.md).",
    )
    p.add_argument("checkpoints", nargs="*", metavar="CKPT",
                   help="checkpoints to offer (e.g. RUN_DIR/checkpoints/latest.pt), each named "
                   "by its path on the page")
    p.add_argument("--model", action="append", default=[], metavar="NAME",
                   help="a model shipped with the package to offer (repeatable; "
                   "`timbre-transfer models` lists them)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; another "
                   "address lets other machines use the page, with a warning: there is no login)")
    p.add_argument("--port", type=int, default=7860,
                   help="port to listen on; 0 picks a free one (default: 7860)")
    p.add_argument("--max-seconds", type=float, default=60.0, metavar="SECONDS",
                   help="longest upload transferred, in seconds of audio (default: 60)")
    p.add_argument("--no-browser", action="store_true",
                   help="only print the page's URL; do not open it in the default browser")
    p.set_defaults(func=cmd_app)
