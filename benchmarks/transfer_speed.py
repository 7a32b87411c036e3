"""End-to-end transfer speed of a 30 s recording: real-time factor, where the time goes, and the
spectral convergence of the audio to the mel the model generated.

One process, one checkpoint, one real 30 s input (realaudio clips of several domains joined
end to end). ``TimbreTransfer.transfer`` is timed whole (median of ``--repeats`` after a
warm-up); the inversion alone (generated mel -> audio) is timed on the same generated mel, and the
rest (resampling, analysis, the nets) is the difference. Spectral convergence compares the mel of
the output audio with the generated mel (linear mel magnitudes, dB, lower is better): the quality
of the inversion that the speed is bought with.

Also timed: the **first** transfer in the process (model already loaded; an f0 tracker's set-up
and the input's analysis included: the repeats find the analysis in the controls cache), and
with ``--cli`` the whole ``timbre-transfer transfer`` command in a fresh process (Python start,
imports, loading, analysis, writing the file), the way a user meets it.

It uses only the API that has not changed, so the same script measures an older checkout::

    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/transfer_speed.py --checkpoint CKPT

Run alone, from the repository root::

    .venv/bin/python benchmarks/transfer_speed.py --checkpoint data/demo/run/checkpoints/latest.pt
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REALAUDIO = ROOT / ".." / "shared" / "data" / "realaudio"


def thirty_seconds(sample_rate: int, seconds: float) -> np.ndarray:
    """Real clips of several domains joined until ``seconds`` long."""
    from timbre_transfer.audio.io import load_audio

    files = [f for domain in ("violin", "speech", "flute", "trumpet")
             for f in sorted((REALAUDIO / domain).glob("*.flac"))[:3]]
    if not files:
        raise SystemExit(f"no real audio in {REALAUDIO.resolve()}")
    parts, total = [], 0
    for f in files:
        wav = load_audio(f, sample_rate)
        parts.append(wav / max(1e-6, float(np.abs(wav).max())) * 0.5)
        total += len(wav)
        if total >= seconds * sample_rate:
            break
    return np.concatenate(parts)[:int(seconds * sample_rate)].astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="a trained model")
    ap.add_argument("--to", help="target domain (default: the model's first)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--inverter", default="pghi+gla")
    ap.add_argument("--cli", action="store_true",
                    help="also time the transfer command end to end in a fresh process")
    args = ap.parse_args(argv)

    from timbre_transfer import __version__
    from timbre_transfer.audio.inversion import spectral_convergence_db
    from timbre_transfer.inference.transfer import TimbreTransfer, translate_windowed

    tt = TimbreTransfer.from_checkpoint(args.checkpoint, device="cpu")
    to = args.to or tt.domains[0]
    sr = tt.sample_rate
    wav = thirty_seconds(sr, args.seconds)
    seconds = len(wav) / sr
    print(f"timbre_transfer {__version__} from "
          f"{Path(__import__('timbre_transfer').__file__).parent}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {seconds:.1f} s input "
          f"-> {to}, inverter {args.inverter}, the default octave", flush=True)

    start = time.perf_counter()  # the first call: kernels, the tracker's set-up, the analysis
    tt.transfer(wav, sr, to=to, inverter=args.inverter)
    first = time.perf_counter() - start
    totals = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = tt.transfer(wav, sr, to=to, inverter=args.inverter)
        totals.append(time.perf_counter() - start)

    # the generated mel, as transfer made it, then its inversion alone
    with torch.no_grad():
        gain = 10 ** (tt.target_dbfs / 20) / float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        gain = min(gain, 0.99 / float(np.abs(wav).max()))
        level = (wav * gain).astype(np.float32)
        spec = tt.transform(torch.from_numpy(level))
        # in the register the transfer played (the default, octave auto, may move it)
        octave = tt.applied_octaves(wav, sr, [to])[to] if hasattr(tt, "applied_octaves") else 0
        if octave:
            silence = float(-tt.transform.norm_shift / tt.transform.norm_scale)
            spec = tt.mel_pitch.shift(spec[None, None], 2.0 ** octave, silence)[0, 0]
        notes = tt.notes(level, spec.shape[-1], octave)  # a pitch-template model needs them
        generated = translate_windowed(tt.model, spec, [to], tt.window, pitch=notes)[0]
        inversions = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            audio = tt.transform.invert(generated, method=args.inverter, length=len(wav))
            inversions.append(time.perf_counter() - start)
        target = tt.transform.spec_to_mel(generated)
        got = tt.transform.mel(audio)[..., :target.shape[-1]]
        sc = float(spectral_convergence_db(target[None], got[None])[0])

    total, inversion = statistics.median(totals), statistics.median(inversions)
    print(f"\n| {'first s':>7} | {'x real time':>11} | {'repeat s':>8} | {'x real time':>11} | "
          f"{'inversion s':>11} | {'analysis + nets s':>17} | "
          f"{'SC of output to generated mel, dB':>33} |")
    print(f"| {first:>7.2f} | {seconds / first:>11.1f} | {total:>8.2f} | {seconds / total:>11.1f} "
          f"| {inversion:>11.2f} | {max(0.0, total - inversion):>17.2f} | {sc:>33.2f} |")
    assert out.shape == wav.shape
    if args.cli:
        cli = time_cli(args.checkpoint, wav, sr, to, args.inverter)
        print(f"\nthe transfer command, end to end in a fresh process: {cli:.2f} s "
              f"({seconds / cli:.1f}x real time)")


def time_cli(checkpoint: Path, wav: np.ndarray, sr: int, to: str, inverter: str) -> float:
    """Seconds of ``timbre-transfer transfer`` on ``wav`` (written to a temporary file), run by
    this interpreter with this environment (so PYTHONPATH picks the checkout)."""
    import subprocess
    import sys
    import tempfile

    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input.wav"
        sf.write(source, wav, sr)
        command = [sys.executable, "-c", "import sys; from timbre_transfer.cli import main; "
                   "sys.exit(main())", "transfer", str(checkpoint), str(source), "--to", to,
                   "--out", tmp, "--inverter", inverter]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
