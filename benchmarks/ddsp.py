"""DDSP re-synthesis against phase reconstruction, on held-out real clips of one domain.

A DDSP head (config/ddsp.yaml) is trained with ``train-ddsp`` on the train split of one domain of
the real-audio store that ``benchmarks/transfer_quality.py`` prepares (30 % of files held out).
Then every held-out clip's own mel is turned back into audio three ways, measured in the same run:

* **ddsp**: the head, steered by the clip's f0 (pYIN) and A-weighted loudness;
* **pghi** and **pghi+gla**: the package's inverters (the peers) on the same mel.

Columns, each against the original clip (lower is better unless noted):
spectral convergence (dB, STFT n_fft 1024, hop 256, Hann); multi-scale spectral distance (the
DDSP loss without the mel term: FFT sizes 2048..64, L1 on magnitude and log magnitude, summed
over scales); median f0 error in cents on frames voiced in both; loudness-envelope correlation
(higher is better); real-time factor of the rendering alone (audio seconds per second; for DDSP
the decoder and synthesizer, given the controls) and, for DDSP, with pYIN's f0 extraction
included.

Run from the repository root, alone (a second torch process on 2 cores halves both)::

    .venv/bin/python benchmarks/ddsp.py [--domain violin] [--max-steps 1500]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "realaudio"))
    p.add_argument("--work", default=str(ROOT / "data" / "bench"),
                   help="working folder (default: data/bench; the store is shared with "
                   "benchmarks/transfer_quality.py)")
    p.add_argument("--domain", default="violin")
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--config", default=str(ROOT / "config" / "ddsp.yaml"))
    return p.parse_args(argv)


def main(argv=None) -> None:
    from timbre_transfer.audio.features import extract_controls
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.content import f0_error_cents, loudness_correlation
    from timbre_transfer.losses.spectral import MultiScaleSpectralLoss
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    args = parse_args(argv)
    work = Path(args.work)
    result = prepare(args.data, work / "transfer_quality" / "features", AudioTransform(),
                     PrepareOptions(val_fraction=0.3), workers=1, progress=False)
    store = FeatureStore(result.store)
    config = load_ddsp_config(args.config, [f"train.max_steps={args.max_steps}"])
    run = work / "ddsp" / args.domain
    trainer = DDSPTrainer(config, store, [args.domain], run,
                          resume=(run / "checkpoints" / "latest.pt").is_file())
    start, t0 = trainer.step, time.perf_counter()
    trainer.fit()
    minutes = (time.perf_counter() - t0) / 60
    head = trainer.head.eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; head trained on "
          f"{args.domain}: steps {start} -> {trainer.step} in {minutes:.1f} min")

    transform = store.transform
    sr = transform.params.sample_rate
    distance = MultiScaleSpectralLoss(mel_weight=0.0)
    window = torch.hann_window(1024)

    def magnitude(wav):
        return torch.stft(torch.as_tensor(wav, dtype=torch.float32), 1024, 256, window=window,
                          return_complex=True).abs()

    rows = {m: {"sc": [], "mss": [], "f0": [], "loud": [], "rtf": [], "rtf_all": []}
            for m in ("ddsp", "pghi", "pghi+gla")}
    files = store.clips(args.domain, "val").files
    seconds_total = 0.0
    for file in files:
        wav = store.clip_audio(args.domain, file)
        seconds = len(wav) / sr
        seconds_total += seconds
        with torch.no_grad():
            mel = transform(torch.from_numpy(wav))
        t0 = time.perf_counter()
        controls = extract_controls(wav, sr, head.hop_length, head.config.f0_min,
                                    head.config.f0_max)
        pyin_seconds = time.perf_counter() - t0
        outputs = {}
        for method in rows:
            t0 = time.perf_counter()
            if method == "ddsp":
                out = head.render(mel, controls, len(wav))
            else:
                with torch.no_grad():
                    out = transform.invert(mel, method=method, length=len(wav)).numpy()
            elapsed = time.perf_counter() - t0
            outputs[method] = out
            r = rows[method]
            r["rtf"].append(seconds / elapsed)
            r["rtf_all"].append(seconds / (elapsed + (pyin_seconds if method == "ddsp" else 0)))
            ref, est = magnitude(wav), magnitude(out)
            r["sc"].append(float(20 * torch.log10((ref - est).norm() / ref.norm())))
            with torch.no_grad():
                r["mss"].append(float(distance(torch.from_numpy(wav)[None],
                                               torch.from_numpy(out)[None])))
            r["f0"].append(f0_error_cents(wav, out, sr).median_cents)
            r["loud"].append(loudness_correlation(wav, out, sr))

    print(f"\n{len(files)} held-out {args.domain} clips, {seconds_total:.1f} s at {sr} Hz\n")
    print("| method | SC dB | multi-scale spectral distance | median f0 error (cents) | "
          "loudness corr. | RTF x (render) | RTF x (with f0 extraction) |")
    print("|---|---|---|---|---|---|---|")
    for method, r in rows.items():
        f0 = [v for v in r["f0"] if not np.isnan(v)]
        print(f"| {method} | {statistics.mean(r['sc']):.2f} | {statistics.mean(r['mss']):.3f} | "
              f"{statistics.median(f0) if f0 else float('nan'):.1f} | "
              f"{np.nanmean(r['loud']):.3f} | {statistics.median(r['rtf']):.1f} | "
              f"{statistics.median(r['rtf_all']):.1f} |")


if __name__ == "__main__":
    main()
