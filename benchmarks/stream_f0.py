"""The stream's pitch: its built-in YIN against SwiftF0's own stream, on the stream's blocks.

A model with the pitch template streams its notes from an f0 tracker that sees only the past
and a little future. This measures, on Bach10's held-out pieces 07-08 (four instruments, 16 kHz)
against their truth, block by block as a live stream feeds them (``--block`` samples):

- **YIN** as :class:`~timbre_transfer.inference.streaming.StreamingTransfer` runs it (its own
  ``_yin`` on the stream's frames: n_fft 1024, hop 128, one chunk of frames at a time);
- **SwiftF0 stream** (``swift_f0.PitchStream``: push a block, take the frames that became
  final; hop 256, threads 1);
- **SwiftF0 offline** (the whole file at once), the reference the stream should equal.

Columns: median error and share within 50 cents on frames both the truth and the tracker call
voiced, voiced recall and precision against the truth, the look-ahead a frame needs beyond its
centre (what the tracker adds to the stream's latency), and the compute per second of audio on
one thread. Run from the repository root, alone::

    .venv/bin/python benchmarks/stream_f0.py [--block 512]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from f0_trackers import DATA, INSTRUMENTS, ROOT, SR, frame_stats, load, summary  # noqa: E402

PIECES = ("07", "08")
FIXTURE = ROOT / "tests" / "fixtures" / "debug-0.1.0.pt"  # a model with the pitch template


def yin_stream(module, y: np.ndarray, block: int):
    """f0 (NaN unvoiced) at the stream's hop, YIN as the stream runs it; and seconds."""
    import torch

    n_fft, hop, chunk = module.n_fft, module.hop, module.chunk
    need = n_fft + (chunk - 1) * hop
    pending = torch.zeros(n_fft // 2)  # frames are centred: n_fft / 2 of silence first
    f0s, seconds = [], 0.0
    audio = torch.from_numpy(np.pad(y, (0, n_fft)).astype(np.float32))
    for start in range(0, len(audio) - block + 1, block):
        begin = time.perf_counter()
        pending = torch.cat([pending, audio[start:start + block]])
        while pending.shape[0] >= need:
            frames = pending[:need].unfold(0, n_fft, hop)
            pending = pending[chunk * hop:]
            f0, voiced = module._yin(frames)
            f0s.append(torch.where(voiced > 0, f0, torch.full_like(f0, float("nan"))))
        seconds += time.perf_counter() - begin
    n_frames = 1 + len(y) // hop
    return torch.cat(f0s).numpy().astype(np.float64)[:n_frames], seconds


def swift_stream(detector, y: np.ndarray, block: int, threshold: float):
    """f0 (NaN unvoiced) at hop 256 from swift_f0's stream, each frame's look-ahead (samples
    pushed when it became final, beyond its centre), and seconds."""
    from timbre_transfer.audio.f0 import SWIFT_HOP as HOP

    stream = detector.stream()
    f0s, ahead, pushed, seconds = [], [], 0, 0.0
    for start in range(0, len(y), block):
        part = y[start:start + block].astype(np.float32)
        begin = time.perf_counter()
        result = stream.push(part, SR)
        seconds += time.perf_counter() - begin
        pushed += len(part)
        first = len(ahead)
        ahead += [pushed - (first + i) * HOP for i in range(len(result.pitch_hz))]
        f0s.append(np.where(result.confidence >= threshold, result.pitch_hz, np.nan))
    tail = stream.flush()
    f0s.append(np.where(tail.confidence >= threshold, tail.pitch_hz, np.nan))
    n_frames = 1 + len(y) // HOP
    f0 = np.concatenate(f0s)
    f0 = np.concatenate([f0, np.full(max(0, n_frames - len(f0)), np.nan)])[:n_frames]
    return f0, np.asarray(ahead), seconds


def main(argv=None) -> None:
    import torch

    from timbre_transfer.audio.f0 import SWIFT_VOICED_THRESHOLD, f0_swift, swift_detector
    from timbre_transfer.evaluation.content import load_f0_truth
    from timbre_transfer.inference.streaming import open_stream
    from timbre_transfer.inference.transfer import TimbreTransfer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--block", type=int, default=512, help="samples per block (default: 512)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tt = TimbreTransfer.from_checkpoint(FIXTURE, device="cpu")
    module = open_stream(tt, tt.domains[0], block=args.block, compiled=False).module
    detector = swift_detector(1)
    rows = {"YIN (the stream's)": [], "SwiftF0 stream": [], "SwiftF0 offline": []}
    cost = dict.fromkeys(rows, 0.0)
    ahead = {"YIN (the stream's)": np.array([module.n_fft // 2])}
    audio_s = 0.0
    for piece in PIECES:
        for inst in INSTRUMENTS:
            path = next((DATA / "bach10" / inst).glob(f"{piece}-*.flac"))
            y = load(path)
            audio_s += len(y) / SR
            truth_csv = DATA / "bach10" / "f0" / f"{path.stem}-{inst}.csv"
            f0, seconds = yin_stream(module, y, args.block)
            cost["YIN (the stream's)"] += seconds
            truth = load_f0_truth(truth_csv, SR, module.hop, len(y))
            rows["YIN (the stream's)"].append(frame_stats(truth, f0, ~np.isnan(f0)))
            f0, lead, seconds = swift_stream(detector, y, args.block, SWIFT_VOICED_THRESHOLD)
            ahead["SwiftF0 stream"] = np.concatenate([ahead.get("SwiftF0 stream", []), lead])
            cost["SwiftF0 stream"] += seconds
            truth = load_f0_truth(truth_csv, SR, 256, len(y))
            rows["SwiftF0 stream"].append(frame_stats(truth, f0, ~np.isnan(f0)))
            begin = time.perf_counter()
            track = f0_swift(y, SR, 256, threads=1)
            cost["SwiftF0 offline"] += time.perf_counter() - begin
            rows["SwiftF0 offline"].append(frame_stats(truth, track.f0, track.voiced))
            print(f"{path.stem} {inst} done", flush=True)
    print(f"\nBach10 pieces {'-'.join(PIECES)}, four instruments ({audio_s:.0f} s), blocks of "
          f"{args.block} samples at {SR} Hz, one thread")
    print("| tracker | median c | within 50 c | recall | precision | look-ahead (ms) | "
          "compute (ms per s of audio) |")
    print("|---|---|---|---|---|---|---|")
    for name, stats in rows.items():
        s = summary(stats, cost[name], audio_s)
        lead = ("whole file" if name not in ahead
                else f"{1000 * np.median(ahead[name]) / SR:.0f} (max "
                     f"{1000 * np.max(ahead[name]) / SR:.0f})")
        print(f"| {name} | {s['median_cents']:.2f} | {s['within_50c']:.3f} | {s['recall']:.3f} | "
              f"{s['precision']:.3f} | {lead} | {1000 * cost[name] / audio_s:.1f} |")


if __name__ == "__main__":
    main()
