"""Peak memory and time of the translation step of ``transfer`` on long inputs: the whole file in
one pass (before) against overlapped windows of the training crop size (after,
``translate_windowed``, what ``TimbreTransfer`` does).

What is measured: the nets only, normalised mel ``(n_mels, T)`` in -> translated mel out, for one
target, with the model of ``--config`` (random weights: memory and time do not depend on them).
Each case runs in a fresh process; the figure is the peak resident set size during the call
minus the resident set size just before it (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` right before the call), so the model, the input mel and the
interpreter are not counted. The STFT analysis and the mel -> audio inversion around the nets
are not measured here (see benchmarks/inversion.py).

With ``--checkpoint CKPT --audio DIR`` (a model trained on the paired synthetic domains of DIR,
e.g. ``make demo``'s data/demo/run/checkpoints/latest.pt and data/demo/audio), it prints instead
how the window choice does on that model, in a few minutes:

- consistency: mel L1 (normalised mel) between a held-out clip translated alone and the same
  clip cut from the translation of a 60 s file that holds it among other clips at other levels
  and a stretch of silence, averaged over 4 stride-aligned positions of the clip in the file
  (one of them aligned to the windows); and at one position off the stride grid;
- quality: mel L1 between the translation of the held-out clips of each domain, end to end, and
  their ground-truth twins in every other domain (lower is better; the untouched source is the
  baseline).

Run from the repository root (alone: another torch process on 2 cores slows both; memory
figures are not affected)::

    .venv/bin/python benchmarks/transfer_memory.py [--config config/reference.yaml] [--minutes 1 5]
    .venv/bin/python benchmarks/transfer_memory.py \
        --checkpoint data/demo/run/checkpoints/latest.pt \
        --audio data/demo/audio --features data/demo/features
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES_PER_SECOND = 16000 / 128  # the default front end: 16 kHz, hop 128


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_case(config: str, minutes: float, mode: str, threads: int) -> dict:
    """One measurement, in this process: returns the figures as a dict."""
    import torch
    import yaml

    from timbre_transfer.inference.transfer import translate_windowed
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    torch.set_num_threads(threads)
    values = yaml.safe_load(Path(config).read_text())
    n_mels = values.get("audio", {}).get("n_mels", 128)
    model = TimbreModel(ModelConfig(**values.get("model", {})), ["a", "b"]).eval()
    stride = 2 * model.downsample_factor
    crop = values.get("train", {}).get("crop_frames", 128)
    window = None if mode == "whole" else -(-crop // stride) * stride
    frames = int(minutes * 60 * FRAMES_PER_SECOND) + 1
    spec = torch.rand(n_mels, frames, generator=torch.Generator().manual_seed(0))
    translate_windowed(model, spec[:, :window or 256], ["b"], window)  # warm-up: lazy inits
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = translate_windowed(model, spec, ["b"], window)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    assert out.shape == (1, n_mels, frames)
    return {"minutes": minutes, "mode": mode, "window": window, "frames": frames,
            "peak_mib": (peak - before) / 1024, "seconds": seconds}


def _normalised(tt, wav):
    """``wav`` scaled as ``TimbreTransfer.transfer_many`` scales it, then its mel."""
    import numpy as np
    import torch

    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    gain = min(10 ** (tt.target_dbfs / 20) / rms, 0.99 / float(np.abs(wav).max()))
    return tt.transform(torch.from_numpy((wav * gain).astype(np.float32)))


def window_study(checkpoint: str, audio: str, features: str | None) -> None:
    """Consistency and quality of each window choice on a trained model (see the docstring)."""
    import numpy as np
    import torch

    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.data.synthetic import paired_files
    from timbre_transfer.inference.transfer import TimbreTransfer, translate_windowed

    tt = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
    crop, f, hop_length = tt.window, tt.model.downsample_factor, tt.transform.params.hop_length
    sr = tt.sample_rate
    twins = paired_files(audio)
    if features:  # each domain's held-out clips, as the store split them
        from timbre_transfer.data.store import FeatureStore

        store = FeatureStore(features)
        held = {d: sorted(Path(f).stem for f in store.clips(d, "val").files) for d in tt.domains}
    else:
        held = {d: sorted(twins)[-4:] for d in tt.domains}
    held_out = held[tt.domains[0]]
    context = [n for n in sorted(twins) if not any(n in h for h in held.values())]
    choices = [("whole file (before)", None, None), (f"{crop} (crop), hop {crop // 2}", crop, None),
               (f"{crop} (crop), hop {crop // 4}", crop, crop // 4),
               (f"{2 * crop} (2 crops), hop {crop}", 2 * crop, None),
               (f"{2 * crop} (2 crops), hop {crop // 2}", 2 * crop, crop // 2),
               (f"{4 * crop} (4 crops), hop {2 * crop}", 4 * crop, None)]
    # a 60 s file: context clips of every domain at gains from -12 to +8 dB, 6 s of silence,
    # then the phrase at frame `at`, then more context
    rng = np.random.default_rng(0)
    pieces = [load_audio(twins[n][d], sr) * 10 ** (rng.uniform(-12, 8) / 20)
              for n in context for d in tt.domains]
    rng.shuffle(pieces)
    background = np.concatenate(pieces)[:60 * sr].astype(np.float32)
    background[24 * sr:30 * sr] = 0.0
    source, to = tt.domains[0], tt.domains[1]
    phrase = load_audio(twins[held_out[0]][source], sr)
    base = 30 * sr // hop_length // (4 * crop) * (4 * crop)  # aligned to every window choice
    offsets = [base + k * f for k in (0, 1, 3, 5)] + [base + 2]  # the last is off the stride
    consistency = {label: [] for label, _, _ in choices}
    for at in offsets:
        wav = background.copy()
        wav[at * hop_length:at * hop_length + len(phrase)] = phrase
        spec_file = _normalised(tt, wav)
        rms_file = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        # the phrase alone, at the gain the file gets (the gain is one number per file)
        gain = min(10 ** (tt.target_dbfs / 20) / rms_file, 0.99 / float(np.abs(wav).max()))
        spec_alone = tt.transform(torch.from_numpy((phrase * gain).astype(np.float32)))
        n = spec_alone.shape[1]
        for label, window, hop in choices:
            inside = translate_windowed(tt.model, spec_file, [to], window, hop=hop)[0]
            alone = translate_windowed(tt.model, spec_alone, [to], window, hop=hop)[0]
            consistency[label].append(float((alone - inside[:, at:at + n]).abs().mean()))
    quality = {label: [] for label, _, _ in choices}
    identity = []
    for source in tt.domains:
        src = _normalised(tt, np.concatenate([load_audio(twins[n][source], sr)
                                              for n in held[source]]))
        for target in (d for d in tt.domains if d != source):
            twin = _normalised(tt, np.concatenate([load_audio(twins[n][target], sr)
                                                   for n in held[source]]))
            m = min(src.shape[1], twin.shape[1])
            identity.append(float((src[:, :m] - twin[:, :m]).abs().mean()))
            for label, window, hop in choices:
                out = translate_windowed(tt.model, src, [target], window, hop=hop)[0]
                quality[label].append(float((out[:, :m] - twin[:, :m]).abs().mean()))
    print(f"\nwindow choices on {checkpoint} (step {tt.step}), training crop {crop} frames; "
          f"phrase: {held_out[0]} ({source} -> {to}, {len(phrase) / sr:.1f} s) in a 60 s file\n")
    print("| window (frames) | net passes per frame | consistency: L1 alone vs in file, mean of "
          "4 stride-aligned positions (max) | off the stride grid | quality: L1 to twin |")
    print("|---|---|---|---|---|")
    for label, window, hop in choices:
        c = consistency[label]
        passes = 1 if window is None else window // (hop or window // 2)
        print(f"| {label} | {passes} | {np.mean(c[:4]):.4f} ({max(c[:4]):.4f}) | {c[4]:.4f} | "
              f"{np.mean(quality[label]):.4f} |")
    print(f"| untouched source (baseline) | | | | {np.mean(identity):.4f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "config" / "reference.yaml"),
                   help="model config (default: config/reference.yaml, the published size)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--checkpoint", help="instead: compare window choices on this trained model")
    p.add_argument("--audio",
                   help="with --checkpoint: the paired synthetic audio it was trained on")
    p.add_argument("--features", help="with --checkpoint: the feature store (its held-out split)")
    p.add_argument("--case", choices=("whole", "windowed"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.checkpoint:
        if not args.audio:
            p.error("--checkpoint needs --audio (the paired synthetic domains)")
        window_study(args.checkpoint, args.audio, args.features)
        return 0
    if args.case:  # a child process: one measurement, printed as JSON
        print(json.dumps(run_case(args.config, args.minutes[0], args.case, args.threads)))
        return 0
    rows = []
    for minutes in args.minutes:
        for mode in ("whole", "windowed"):
            cmd = [sys.executable, __file__, "--case", mode, "--config", args.config,
                   "--minutes", str(minutes), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                sys.stderr.write(done.stderr)
                return done.returncode
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  measured {minutes:g} min {mode}: {r['peak_mib']:.0f} MiB, "
                  f"{r['seconds']:.1f} s", file=sys.stderr)
    print(f"\ntranslation step of transfer (nets only, one target), {Path(args.config).name}, "
          f"{args.threads} threads; peak = VmHWM - VmRSS before the call, fresh process per row\n")
    print("| input | frames | path | window | peak MiB | time s | peak vs whole | time vs whole |")
    print("|---|---|---|---|---|---|---|---|")
    for minutes in args.minutes:
        whole, windowed = (next(r for r in rows if r["minutes"] == minutes and r["mode"] == m)
                           for m in ("whole", "windowed"))
        for r in (whole, windowed):
            print(f"| {minutes:g} min | {r['frames']} | {r['mode']} | {r['window'] or 'none'} | "
                  f"{r['peak_mib']:.0f} | {r['seconds']:.1f} | "
                  f"{r['peak_mib'] / whole['peak_mib']:.3f}x | "
                  f"{r['seconds'] / whole['seconds']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
