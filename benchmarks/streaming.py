"""Streaming transfer on a real clip: latency, real-time factor, the slowest block, and how far
the stream lands from the offline transfer of the same clip.

A 30 s held-out real clip (Bach10 piece 07, violin, by default) is transferred into another
instrument by a trained cpu-small model, once offline (``TimbreTransfer.transfer``, PGHI+GLA and
PGHI: the peers) and streamed block by block (``TimbreTransfer.stream``) at blocks of 256, 512
and 1024 samples (the stream runs its TorchScript compilation, what `export` writes, at the
`stream` command's one torch thread), then at block 512 with all of torch's threads, with other
net contexts, and once with the eager module (the baseline). Each block is timed on its own:
the real-time factor is audio time over processing time, and the worst block's time is set against
the block's duration (a live callback must never run late), with the count of blocks over half their
duration. A last row times a constant load (matrix products calibrated to the block-512 stream's
median) in the same loop: the worst blocks that this machine gives any work of that size, so that
the stream's own spread can be told from the machine's. Quality: spectral convergence (STFT
magnitudes, dB) of each output against the source and of the stream against the offline transfer,
and the conversion accuracy (the share of windows that transfer_quality.py's domain classifier hears
as the target). The two streaming targets of issue 15 at block 512: SC(stream, source) within 2 dB
of SC(offline, source), or SC(stream, offline) <= -20 dB.

The model is the ``recipe`` row of ``transfer_quality.py --set bach10`` (cpu-small.yaml);
run that first, or pass --checkpoint. Run from the repository root, alone (timings)::

    .venv/bin/python benchmarks/streaming.py [--checkpoint CKPT] [--to bassoon]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "data/bench/transfer_quality_bach10"
CHECKPOINT = WORK / "runs/recipe/checkpoints/latest.pt"
CLASSIFIER = WORK / "classifier.pt"
CLIP = DATA / "bach10/violin/07-HerrGott.flac"
BLOCKS = (256, 512, 1024)
CONTEXTS = (16, 32, 64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(CHECKPOINT), help="a trained model")
    p.add_argument("--clip", default=str(CLIP), help="the source clip")
    p.add_argument("--to", default="bassoon", help="target domain")
    p.add_argument("--seconds", type=float, default=30.0, help="the clip's first N seconds")
    p.add_argument("--classifier", default=str(CLASSIFIER),
                   help="the domain classifier of transfer_quality.py (a conversion-accuracy "
                   "column when it exists)")
    p.add_argument("--ddsp", default=None, metavar="CKPT_DDSP",
                   help="a DDSP head of the target (train-ddsp): adds its offline and streamed "
                   "rows")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the offline transfers and of the multi-thread stream "
                   "row (default: torch's); the other streams run as the stream command does")
    return p.parse_args(argv)


def timed_stream(process, wav: np.ndarray, block: int, delay: int):
    """Feed ``wav`` (then ``delay`` samples of silence) block by block through ``process``;
    returns the output aligned with ``wav`` and each block's seconds."""
    n = -(-(len(wav) + delay) // block)
    padded = np.zeros(n * block, np.float32)
    padded[:len(wav)] = wav
    out, times = [], []
    for i in range(n):
        x = padded[i * block:(i + 1) * block]
        start = time.perf_counter()
        out.append(process(x))
        times.append(time.perf_counter() - start)
    return np.concatenate(out)[delay:delay + len(wav)], np.asarray(times)


def _seconds(f, *args) -> float:
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from timbre_transfer.audio.inversion import spectral_convergence_db
    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.cli.stream import STREAM_THREADS
    from timbre_transfer.inference.transfer import TimbreTransfer

    if args.threads:  # the offline peers' threads; the streams run at the stream command's
        torch.set_num_threads(args.threads)
    default_threads = torch.get_num_threads()
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: no model; run benchmarks/transfer_quality.py --set bach10 "
                         "--rows recipe first, or pass --checkpoint")
    tt = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
    if args.ddsp:
        tt.attach_ddsp(args.ddsp)
    judge = None
    if Path(args.classifier).is_file():
        from timbre_transfer.evaluation.classifier import Classifier

        judge = Classifier.load(args.classifier)
        if args.to not in judge.domains:
            raise SystemExit(f"{args.classifier} does not know {args.to!r} (it knows "
                             f"{judge.domains}); pass the classifier of this model's domains")
    accuracy = lambda x: judge.accuracy(x, args.to) if judge is not None else float("nan")
    sr = tt.sample_rate
    wav = load_audio(args.clip, sr)[:int(args.seconds * sr)]
    seconds = len(wav) / sr
    level = 20 * np.log10(float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))))
    mag = lambda x: tt.transform.stft(torch.from_numpy(np.ascontiguousarray(x))[None]).abs()
    source = mag(wav)
    sc = lambda ref, x: float(spectral_convergence_db(ref, mag(x)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {checkpoint}; "
          f"{Path(args.clip).name} ({seconds:.0f} s) -> {args.to}")

    rows = [("source itself (identity)", "-", "-", "-", float("inf"), "-", float("-inf"), "-",
             accuracy(wav))]
    offline = {}
    for inverter in ("pghi+gla", "pghi") + (("ddsp",) if args.ddsp else ()):
        start = time.perf_counter()
        out = tt.transfer(wav, sr, args.to, inverter=inverter)
        elapsed = time.perf_counter() - start
        offline[inverter] = out
        rows.append((f"offline transfer ({inverter}), peer", "-", "whole file", "-",
                     seconds / elapsed, "-", sc(source, out), "-", accuracy(out)))

    def timing_columns(times, duration):
        return (f"{1000 * times.max():.1f} ms = {100 * times.max() / duration:.0f} %",
                int((times > duration / 2).sum()), duration * len(times) / times.sum(),
                f"{100 * np.median(times) / duration:.0f} %")

    medians = {}

    def stream_row(name, block, context, inverter="pghi", against="pghi+gla",
                   compiled=True, threads=STREAM_THREADS):
        torch.set_num_threads(threads)
        try:
            stream = tt.stream(args.to, inverter=inverter, block=block, context=context,
                               input_dbfs=level, compiled=compiled)
            out, times = timed_stream(stream.process, wav, block, stream.delay)
        finally:
            torch.set_num_threads(default_threads)
        medians[name] = float(np.median(times))
        rows.append((name, f"{stream.latency_ms:.0f}", *timing_columns(times, block / sr),
                     sc(source, out), float(spectral_convergence_db(mag(offline[against]),
                                                                    mag(out))), accuracy(out)))
        return out

    stream_row("stream, eager module (compiled=False), block 512, context 32", 512, 32,
               compiled=False)
    for block in BLOCKS:
        stream_row(f"stream, block {block}, context 32", block, 32)
    stream_row(f"stream, block 512, context 32, {default_threads} torch threads", 512, 32,
               threads=default_threads)
    for context in CONTEXTS:
        if context != 32 and context <= tt.window:  # at most the training crop
            stream_row(f"stream, block 512, context {context}", 512, context)
    if args.ddsp:
        stream_row("stream, DDSP head, block 512, context 32 (against the offline DDSP render)",
                   512, 32, inverter="ddsp", against="ddsp")

    # the machine's own jitter: a constant load of the block-512 stream's median cost, timed alike
    target = medians["stream, block 512, context 32"]
    a = torch.randn(160, 160)

    def load(n):
        x = a
        for _ in range(n):
            x = torch.tanh(x @ a)
        return x

    torch.set_num_threads(STREAM_THREADS)
    n = 1
    while min(_seconds(load, n) for _ in range(5)) < target:
        n = int(n * 1.2) + 1
    times = np.asarray([_seconds(load, n) for _ in range(-(-len(wav) // 512))])
    torch.set_num_threads(default_threads)
    rows.append((f"constant load ({n} products of 160 x 160, the block-512 stream's median cost), "
                 "baseline", "-", *timing_columns(times, 512 / sr), float("nan"), "-",
                 float("nan")))

    print()
    print("| row | latency (ms) | worst block (of its duration) | blocks over 50 % | real-time "
          "factor | median block | SC vs source (dB) | SC vs offline (pghi+gla unless said) (dB) "
          "| conversion acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, latency, worst, late, rtf, median, vs_source, vs_offline, acc in rows:
        off = vs_offline if isinstance(vs_offline, str) else f"{vs_offline:.1f}"
        print(f"| {name} | {latency} | {worst} | {late} | {rtf:.1f}x | {median} | "
              f"{vs_source:.1f} | {off} | {acc:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
