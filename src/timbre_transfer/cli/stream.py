"""Live transfer: ``stream`` (block by block, from a file or the sound device) and ``export``
(TorchScript or ONNX); see :mod:`timbre_transfer.inference.streaming`. torch is imported inside
the handlers, so that ``--help`` stays instant."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbre_transfer.cli.options import (
    add_checkpoint,
    add_octave,
    add_performance,
    performance_from_args,
)
from timbre_transfer.names import STREAM_INVERTERS

#: torch threads of the stream command: one is a little slower on average than two on 2 cores,
#: but a second thread makes every block wait for whichever core is busy elsewhere (the slowest
#: blocks of benchmarks/streaming.py: 25-30 % of the block at one thread in three runs of four,
#: 65 % in the fourth; 35-370 % at two)
STREAM_THREADS = 1


def _load(args: argparse.Namespace):
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(args.checkpoint, device="cpu")
    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    return tt


def _open_stream(tt, args: argparse.Namespace, input_dbfs: float | None):
    return tt.stream(args.to, inverter=args.inverter, block=args.block, context=args.context,
                     input_dbfs=input_dbfs, octave=args.octave,
                     performance=performance_from_args(args))


def cmd_stream(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    import torch

    before = torch.get_num_threads()  # a process-wide setting: given back to a caller of main()
    torch.set_num_threads(args.threads)
    try:
        return _stream_live(args) if args.live else _stream_file(args)
    finally:
        torch.set_num_threads(before)


def _stream_file(args: argparse.Namespace) -> int:
    if args.input is None or args.out is None:
        raise ValueError("give IN.wav and --out OUT.wav (a file streamed block by block), or "
                         "--live (the sound device)")
    if not Path(args.input).is_file():
        raise FileNotFoundError(f"{args.input}: no such audio file")
    import time

    import numpy as np
    from tqdm import tqdm

    from timbre_transfer.audio.io import load_audio, save_audio
    from timbre_transfer.inference.transfer import limit_peak

    tt = _load(args)
    wav = load_audio(args.input, tt.sample_rate)
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    if rms < 1e-8:
        raise ValueError(f"{args.input} is silent")
    level = args.input_dbfs if args.input_dbfs is not None else 20 * np.log10(rms)
    stream = _open_stream(tt, args, level)
    block = stream.block
    n_blocks = -(-len(wav) // block)
    padded = np.zeros((n_blocks + -(-stream.delay // block)) * block, np.float32)
    padded[:len(wav)] = wav
    out, times = [], []
    for i in tqdm(range(len(padded) // block), desc="stream", unit="block"):
        x = padded[i * block:(i + 1) * block]
        start = time.perf_counter()
        out.append(stream.process(x))
        times.append(time.perf_counter() - start)
    out = np.concatenate(out)[stream.delay:stream.delay + len(wav)]
    out, reduced = limit_peak(out)
    save_audio(args.out, out, tt.sample_rate)
    duration = block / tt.sample_rate
    times = np.asarray(times)
    print(f"wrote {args.out}: {len(wav) / tt.sample_rate:.1f} s streamed into {args.to!r} in "
          f"blocks of {block} ({1000 * duration:.0f} ms)"
          + (f"; scaled down {reduced:.1f} dB to avoid clipping" if reduced else ""))
    print(f"latency {stream.latency_ms:.1f} ms ({stream.delay} samples of look-ahead and "
          f"overlap-add + one block); real-time factor {duration * len(times) / times.sum():.1f}x;"
          f" worst block {1000 * times.max():.1f} ms = {100 * times.max() / duration:.0f} % of "
          f"its duration (median {100 * np.median(times) / duration:.0f} %)")
    return 0


def _stream_live(args: argparse.Namespace) -> int:
    try:
        import sounddevice
    except ImportError:
        raise ValueError("--live needs the sounddevice package: pip install "
                         "'timbre-transfer[live]'") from None
    import numpy as np

    stream = _open_stream(_load(args), args, args.input_dbfs)
    print(f"live into {args.to!r}: {stream.sample_rate} Hz, blocks of {stream.block}, latency "
          f"{stream.latency_ms:.1f} ms plus the device's buffers; Ctrl-C stops")

    def callback(indata, outdata, frames, time, status):
        if status:
            print(status)
        outdata[:, 0] = stream.process(np.ascontiguousarray(indata[:, 0]))

    try:
        with sounddevice.Stream(samplerate=stream.sample_rate, blocksize=stream.block,
                                channels=1, dtype="float32", callback=callback):
            sounddevice.sleep(int(1000 * args.seconds) if args.seconds else 10**9)
    except KeyboardInterrupt:
        pass
    return 0


def _add_stream_options(p: argparse.ArgumentParser, spill: str | None = None) -> None:
    """The options of a stream; ``spill``: the command's next positional (see add_checkpoint)."""
    add_checkpoint(p, "checkpoint (e.g. RUN_DIR/checkpoints/latest.pt)", shipped=True,
                   spill=spill)
    p.add_argument("--to", required=True, metavar="DOMAIN", help="target domain")
    p.add_argument("--inverter", choices=STREAM_INVERTERS, default="pghi",
                   help="pghi: real-time phase-gradient integration; ddsp: the domain's DDSP "
                   "head, frame by frame (--ddsp, or heads bundled in CKPT) (default: pghi)")
    p.add_argument("--ddsp", metavar="CKPT_DDSP",
                   help="a head trained by train-ddsp (not needed for a checkpoint made by "
                   "`bundle`, which carries its heads)")
    p.add_argument("--block", type=int, default=512, metavar="N",
                   help="samples per block at the model's rate, a multiple of 32 (default: 512)")
    p.add_argument("--context", type=int, default=None, metavar="FRAMES",
                   help="mel frames the nets see per run (default: 32; a multiple of twice the "
                   "nets' stride, at most the training crop)")
    add_octave(p, "; a stream cannot see ahead, so auto measures the first second of voiced "
               "input (played in its own register meanwhile) and then holds that move; N: at "
               "most 4 either way")
    add_performance(p, "the loudest frame so far (a stream has no future)")


def register_stream(sub) -> None:
    p = sub.add_parser(
        "stream", help="transfer block by block, as live audio (latency, real-time factor)",
        description="Transfer audio one block at a time at a constant latency, as a live "
        "performance would be: from a file (IN, simulated block by block; writes OUT aligned "
        "with the input, the latency removed) or, with --live, from the sound device to the "
        "sound device (needs the sounddevice package). Prints the latency, the real-time factor "
        "and the slowest block against the block's duration. See docs/streaming.md.")
    _add_stream_options(p, spill="input")
    p.add_argument("input", nargs="?", metavar="IN", help="audio file to stream")
    p.add_argument("--out", metavar="OUT.wav", help="where the streamed transfer goes")
    p.add_argument("--input-dbfs", type=float, default=None, metavar="DB",
                   help="the input's RMS level, which one fixed gain brings to the training "
                   "level (default: measured over IN, as the offline transfer does; for --live, "
                   "the training level itself, -20 dBFS)")
    p.add_argument("--live", action="store_true",
                   help="read from the default input device, play on the default output device")
    p.add_argument("--seconds", type=float, default=None,
                   help="--live: stop after this many seconds (default: at Ctrl-C)")
    p.add_argument("--threads", type=int, default=STREAM_THREADS, metavar="N",
                   help=f"torch threads for the stream (default: {STREAM_THREADS}: a little "
                   "slower on average than 2, but the steadiest block times; docs/streaming.md)")
    p.set_defaults(func=cmd_stream)


def cmd_export(args: argparse.Namespace) -> int:
    from timbre_transfer.inference.streaming import export_onnx, export_torchscript

    stream = _open_stream(_load(args), args, args.input_dbfs)
    write = export_torchscript if args.format == "torchscript" else export_onnx
    path = write(stream, args.out)
    meta = stream.module.metadata
    print(f"wrote {path} ({args.format}): {meta}")
    if args.format == "torchscript":
        print("use: m = torch.jit.load(PATH); state = m.initial_state(); "
              "out, state = m(block, state)")
    else:
        print("the nets only: analysis, notes, phase and overlap-add are the host's "
              "(docs/streaming.md)")
    return 0


def register_export(sub) -> None:
    p = sub.add_parser(
        "export", help="write a self-contained streaming model (TorchScript or ONNX)",
        description="Write the streaming transfer into one domain as a file that runs without "
        "this package. torchscript: the whole processor, forward(block, state) -> (block, "
        "state), with initial_state() and its metadata (sample rate, block, latency, domain) "
        "embedded. onnx: the nets on one window (spec, template -> mel); the stateful stages "
        "around them are documented in docs/streaming.md.")
    _add_stream_options(p)
    p.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript",
                   help="default: torchscript")
    p.add_argument("--input-dbfs", type=float, default=None, metavar="DB",
                   help="the RMS level the input will have, which one fixed gain brings to the "
                   "training level (default: the training level, -20 dBFS)")
    p.add_argument("--out", required=True, metavar="M.pt", help="output file")
    p.set_defaults(func=cmd_export)
