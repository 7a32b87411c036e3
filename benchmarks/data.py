"""Benchmark the data pipeline: ``prepare`` throughput and training-crop loading.

Prints three tables, every row measured in the same run:

1. prepare throughput (seconds of source audio per wall second) on shared/data/realaudio and on
   a synthetic set of at least 30 minutes, at 1 and 2 workers;
2. crops per second from ``MultiDomainCropDataset`` through a DataLoader, against two baselines
   in the same run: the published code's loader (ebadawy/voice_conversion ``DataProc``: every
   spectrogram held in RAM, a clip drawn in proportion to its length, a random crop), and a
   naive one (load a wav file and compute its mel on the fly for every crop);
3. the crops per second a real training step consumes (``Trainer.train_step`` with
   config/reference.yaml), against the store loader.

Run from the repository root::

    .venv/bin/python benchmarks/data.py [--minutes 30] [--batches 50]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from timbre_transfer.audio.io import AUDIO_EXTENSIONS, load_audio
from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.data.dataset import MultiDomainCropDataset
from timbre_transfer.data.prepare import prepare
from timbre_transfer.data.store import FeatureStore
from timbre_transfer.data.synthetic import write_paired_dataset
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer


def parse_args(argv=None) -> argparse.Namespace:
    default_data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "realaudio"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data, help="real audio: <domain>/*.flac")
    ap.add_argument("--minutes", type=float, default=30.0, help="size of the synthetic set")
    ap.add_argument("--batches", type=int, default=50, help="DataLoader batches to time")
    ap.add_argument("--batch-size", type=int, default=4, help="items per batch (DESIGN: 4)")
    ap.add_argument("--crop-frames", type=int, default=128, help="frames per crop")
    return ap.parse_args(argv)


def source_seconds(root: Path) -> float:
    return sum(sf.info(p).duration for p in root.rglob("*")
               if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def time_prepare(data: Path, workers: int, scratch: Path) -> float:
    """Wall seconds of a fresh ``prepare`` (worker start-up included)."""
    out = scratch / f"store_{data.name}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    prepare(data, out, workers=workers, progress=False)
    return time.perf_counter() - start


class NaiveCrops(Dataset):
    """Baseline: every item loads one random file per domain and computes its mel on the fly."""

    def __init__(self, data: Path, crop_frames: int, length: int):
        self.domains = sorted(d for d in data.iterdir() if d.is_dir())
        self.files = [sorted(d.glob("*.wav")) for d in self.domains]
        self.crop_frames, self.length = crop_frames, length
        self.transform = AudioTransform()

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        specs = []
        for files in self.files:
            wav = torch.from_numpy(load_audio(files[rng.integers(len(files))], 16000))
            spec = self.transform(wav)
            start = rng.integers(0, max(spec.shape[-1] - self.crop_frames, 0) + 1)
            specs.append(spec[:, start:start + self.crop_frames])
        return torch.stack(specs)[:, None], torch.arange(len(specs))


def crops_per_second(dataset, batches: int, batch_size: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # start-up (worker spawn, first memmap pages) is not steady-state throughput
    crops, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            specs, _ = next(it)
        except StopIteration:
            it = iter(loader)
            specs, _ = next(it)
        crops += specs.shape[0] * specs.shape[1]
    return crops / (time.perf_counter() - start)


class InMemoryCrops(Dataset):
    """The published loader: all spectrograms in RAM (a dict of arrays per domain, as its pickle
    holds), per item one clip per domain drawn in proportion to its length, and a random crop."""

    def __init__(self, store: Path, crop_frames: int, length: int):
        fs = FeatureStore(store)
        self.specs = []
        for domain in fs.domains:
            clips = fs.clips(domain, "train")
            self.specs.append([np.array(clips.features[o:o + n].T)  # (n_mels, frames) in RAM
                               for o, n in zip(clips.offsets, clips.frames)])
        self.crop_frames, self.length = crop_frames, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        out = []
        for specs in self.specs:
            lengths = np.array([s.shape[1] for s in specs], dtype=np.float64)
            spec = specs[rng.choice(len(specs), p=lengths / lengths.sum())]
            start = rng.integers(0, spec.shape[1] - self.crop_frames + 1)
            out.append(torch.from_numpy(
                spec[None, :, start:start + self.crop_frames].astype(np.float32)))
        return torch.stack(out), torch.arange(len(out))


def step_crops_per_second(store: Path, steps: int = 3) -> float:
    """Crops per second consumed by ``Trainer.train_step`` (config/reference.yaml)."""
    config = load_run_config(Path(__file__).resolve().parents[1] / "config" / "reference.yaml")
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(config, store, run, progress=False)
        batch = next(trainer.batches())
        trainer.train_step(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(batch)
        return steps * batch.specs.shape[0] * batch.specs.shape[1] / (time.perf_counter() - start)


def table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def main(argv=None) -> None:
    args = parse_args(argv)
    real = args.data.resolve()
    if not real.is_dir():
        sys.exit(f"error: real audio folder {real} not found (pass --data DIR)")
    scratch = Path(tempfile.mkdtemp(prefix="tt_bench_data_"))
    try:
        clips = max(1, int(np.ceil(args.minutes * 60 / (3 * 4.0))))
        start = time.perf_counter()
        synth = scratch / "synth"
        write_paired_dataset(synth, n_domains=3, n_clips=clips, seconds=4.0)
        synth_write = time.perf_counter() - start
        print(f"Data pipeline benchmark | torch {torch.__version__} ({torch.get_num_threads()} "
              f"threads) | synthetic set: 3 domains x {clips} clips x 4 s written in "
              f"{synth_write:.1f} s\n")

        rows = []
        for name, data in (("shared/data/realaudio", real), ("synthetic", synth)):
            seconds = source_seconds(data)
            for workers in (1, 2):
                wall = time_prepare(data, workers, scratch)
                rows.append([name, f"{seconds / 60:.1f}", workers, f"{wall:.1f}",
                             f"{seconds / wall:.1f}"])
        print("Table 1: prepare (decode, resample, trim, normalise, log1p mel, store)")
        print(table(["data", "audio min", "workers", "wall s", "audio s / wall s"], rows))

        store = scratch / "store_synth_2"
        ds = MultiDomainCropDataset(store, crop_frames=args.crop_frames)
        naive = NaiveCrops(synth, args.crop_frames, length=len(ds))
        in_ram = InMemoryCrops(store, args.crop_frames, length=len(ds))
        rows, ours = [], {}
        for workers in (0, 2):
            ours[workers] = crops_per_second(ds, args.batches, args.batch_size, workers)
            published = crops_per_second(in_ram, args.batches, args.batch_size, workers)
            base = crops_per_second(naive, max(args.batches // 10, 3), args.batch_size, workers)
            rows.append(["MultiDomainCropDataset (store)", workers, f"{ours[workers]:.0f}", "1.0"])
            rows.append(["published: spectrograms in RAM", workers, f"{published:.0f}",
                         f"{published / ours[workers]:.3f}"])
            rows.append(["naive: load wav + mel per crop", workers, f"{base:.0f}",
                         f"{base / ours[workers]:.3f}"])
        print(f"\nTable 2: training crops per second (batch {args.batch_size} x 3 domains, "
              f"{args.crop_frames} frames)")
        print(table(["loader", "workers", "crops/s", "vs store"], rows))

        consumed = step_crops_per_second(store)
        print("\nTable 3: loading against a training step (Trainer.train_step, "
              "config/reference.yaml, CPU, 3 domains)")
        print(table(["", "crops/s"], [
            ["training step consumes", f"{consumed:.1f}"],
            ["store loader, 0 workers", f"{ours[0]:.0f}"],
            ["ratio loader / step", f"{ours[0] / consumed:.0f}x"]]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
