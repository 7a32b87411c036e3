"""Benchmark spectrogram inversion on real recordings: quality (spectral convergence) and speed.

Table 1 inverts the linear STFT magnitude of each clip (our Griffin-Lim / PGHI / PGHI+GLA against
``librosa.griffinlim`` and tifresi's PGHI); table 2 inverts the package's log1p mel (our
``AudioTransform.invert`` against ``librosa.feature.inverse.mel_to_audio``). Every method is scored
with the analysis transform that produced the magnitude it was given. Table 4 times the default
mel inverter (pghi+gla) against its previous default settings in the same run, on the clips and
on a 30 s clip, with the time split into NNLS, PGHI and Griffin-Lim.

Run from the repository root::

    .venv/bin/python benchmarks/inversion.py [--clips-per-domain 4] [--json out.json]
    .venv/bin/python benchmarks/inversion.py --speed-only --repeats 5   # table 4 alone
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import librosa
import numpy as np
import torch

from timbre_transfer.audio import inversion
from timbre_transfer.audio.io import load_audio
from timbre_transfer.audio.transform import AudioTransform

SR = 16000


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    default_data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "realaudio"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data, help="folder of <domain>/*.flac")
    ap.add_argument("--domains", default="violin,speech", help="comma-separated domain folders")
    ap.add_argument("--clips-per-domain", type=int, default=4, help="first N files (sorted) each")
    ap.add_argument("--n-fft", type=int, default=1024, help="FFT size of table 1")
    ap.add_argument("--hop", type=int, default=256, help="hop length of table 1")
    ap.add_argument("--repeats", type=int, default=1,
                    help="time each inversion this many times and keep the fastest (noisy CPUs)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--device", default="cpu", help="device for our rows (peers run on the CPU)")
    ap.add_argument("--batch-sizes", default="",
                    help="also time batched mel inversion of 4 s crops at these batch sizes, "
                         "e.g. 1,16,64 (table 3)")
    ap.add_argument("--speed-only", action="store_true",
                    help="only table 4: default pghi+gla vs its previous default settings")
    ap.add_argument("--speed-seconds", type=float, default=30.0,
                    help="length of the long clip of table 4 (the clips, concatenated and tiled)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def load_clips(root: Path, domains: list[str], per_domain: int) -> list[tuple[str, np.ndarray]]:
    """The first ``per_domain`` sorted ``.flac`` files of each domain, mono at 16 kHz."""
    if not root.is_dir():
        sys.exit(f"error: data folder {root} not found (pass --data DIR)")
    clips = []
    for domain in domains:
        files = sorted((root / domain).glob("*.flac"))[:per_domain]
        if not files:
            sys.exit(f"error: no .flac files in {root / domain}")
        clips += [(f"{domain}/{f.name}", load_audio(f, SR)) for f in files]
    return clips


def fit_length(y, n: int) -> np.ndarray:
    """1-D float32 numpy copy of ``y`` (tensor or array, optionally batched) trimmed/padded to n."""
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    y = y.reshape(-1)[:n].astype(np.float32)
    return np.pad(y, (0, n - len(y)))


def sc_db(ref: np.ndarray, est: np.ndarray) -> float:
    """Spectral convergence 20 log10(||ref - est||_F / ||ref||_F) of two magnitudes, in dB."""
    return float(20 * np.log10(np.linalg.norm(ref - est) / max(np.linalg.norm(ref), 1e-20)))


def torch_analysis(n_fft: int, hop: int, window: torch.Tensor):
    """Magnitude of our ``inversion.stft``: 1-D numpy audio -> ``(F, N)`` numpy."""
    return lambda w: inversion.stft(torch.from_numpy(w)[None], n_fft, hop, window).abs()[0].numpy()


def bench(clips, prepare, invert, analyses, repeats: int = 1) -> dict:
    """Run one method over the clips and score it.

    ``prepare(x)`` builds the method's input (untimed), ``invert(input, length)`` returns audio
    (timed, after one warm-up call on the first clip; the fastest of ``repeats`` runs per clip),
    and each ``analyses`` entry maps audio to the magnitude used for one spectral-convergence
    score (mean of per-clip dB).
    """
    inputs = [prepare(x) for x in clips]
    invert(inputs[0], len(clips[0]))
    outputs, wall = [], 0.0
    for x, inp in zip(clips, inputs):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            y = invert(inp, len(x))
            if isinstance(y, torch.Tensor) and y.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        wall += best
        outputs.append(fit_length(y, len(x)))
    scs = [float(np.mean([sc_db(a(x), a(y)) for x, y in zip(clips, outputs)])) for a in analyses]
    return {"sc_db": scs, "rtf": sum(map(len, clips)) / SR / wall, "seconds": wall}


def linear_table(clips, n_fft: int, hop: int, repeats: int = 1, device: str = "cpu") -> list[dict]:
    """Table 1: |STFT| -> phase reconstruction -> audio, at ``n_fft``/``hop``."""
    rows = []
    for win_name, method, n_iter in [("gauss", "griffinlim", 32), ("gauss", "pghi", None),
                                     ("hann", "pghi", None), ("gauss", "pghi+gla", 8),
                                     ("gauss", "pghi+gla", 16)]:
        window = inversion.make_window(win_name, n_fft, hop)
        gamma = inversion.window_gamma(win_name, n_fft, hop)
        analyse = torch_analysis(n_fft, hop, window)
        prep = lambda x, w=window: inversion.stft(
            torch.from_numpy(x)[None].to(device), n_fft, hop, w).abs()
        inv = lambda mag, n, w=window, g=gamma, m=method, k=n_iter: inversion.reconstruct_phase(
            mag, n_fft, hop, w, g, method=m, n_iter=k, length=n, seed=0)
        rows.append({"method": f"ours {method}", "window": win_name, "n_iter": n_iter,
                     **bench(clips, prep, inv, [analyse], repeats)})

    lr_analyse = lambda w: np.abs(librosa.stft(w, n_fft=n_fft, hop_length=hop, window="hann"))
    for n_iter in (32, 100):
        inv = lambda mag, n, k=n_iter: librosa.griffinlim(
            mag, n_iter=k, hop_length=hop, n_fft=n_fft, window="hann", init="random",
            random_state=0, length=n)
        rows.append({"method": "librosa griffinlim", "window": "hann", "n_iter": n_iter,
                     **bench(clips, lr_analyse, inv, [lr_analyse], repeats)})

    try:
        from tifresi.stft import GaussTF
    except ImportError as exc:
        print(f"note: tifresi not importable ({exc}); its PGHI row is skipped")
        return rows
    tf = GaussTF(hop_size=hop, stft_channels=n_fft)
    block = int(np.lcm(n_fft, hop))  # tifresi's dgt needs len(x) % n_fft == len(x) % hop == 0

    def tf_analyse(w):
        """|dgt| of the clip zero-padded to a multiple of ``block`` (circular, not centred)."""
        return np.abs(tf.dgt(np.pad(w, (0, -len(w) % block))))

    rows.append({"method": "tifresi pghi", "window": "gauss(dgt)", "n_iter": None,
                 **bench(clips, tf_analyse, lambda mag, n: tf.invert_spectrogram(mag),
                         [tf_analyse], repeats)})

    # The same |STFT| as our gauss rows, so that only the PGHI implementations differ.
    from timbre_transfer.audio.reference import tifresi_pghi_phase

    window = inversion.make_window("gauss", n_fft, hop)
    prep = lambda x: inversion.stft(torch.from_numpy(x)[None], n_fft, hop, window).abs()
    inv = lambda mag, n: inversion.istft(
        torch.polar(mag, tifresi_pghi_phase(mag[0], hop, n_fft)[None]), n_fft, hop, window, n)
    rows.append({"method": "tifresi pghi, our |STFT|", "window": "gauss", "n_iter": None,
                 **bench(clips, prep, inv, [torch_analysis(n_fft, hop, window)], repeats)})
    return rows


def mel_table(clips, t: AudioTransform, repeats: int = 1) -> list[dict]:
    """Table 2: normalised log1p mel -> audio at the default transform; SC with gauss and hann."""
    p = t.params
    analyses = [torch_analysis(p.n_fft, p.hop_length, t.window),
                torch_analysis(p.n_fft, p.hop_length,
                               inversion.make_window("hann", p.n_fft, p.hop_length))]
    device = t.mel_basis.device
    prep = lambda x: t(torch.from_numpy(x)[None].to(device))
    rows = []
    for method, n_iter in [("pghi", None), ("griffinlim", 32), ("pghi+gla", 16)]:
        inv = lambda spec, n, m=method, k=n_iter: t.invert(spec, method=m, n_iter=k, length=n)
        rows.append({"method": f"ours {method}", "n_iter": n_iter,
                     **bench(clips, prep, inv, analyses, repeats)})

    def lr_invert(spec, n, n_iter):
        """librosa's NNLS + Griffin-Lim (its own Hann window) from our linear-amplitude mel."""
        np.random.seed(0)  # mel_to_audio takes no random_state; griffinlim then uses np.random
        return librosa.feature.inverse.mel_to_audio(
            t.spec_to_mel(spec)[0].cpu().numpy(), sr=p.sample_rate, n_fft=p.n_fft,
            hop_length=p.hop_length, window="hann", power=p.power, n_iter=n_iter, length=n,
            htk=False, norm="slaney", fmin=0.0, fmax=p.sample_rate / 2)

    for n_iter in (32, 100):
        rows.append({"method": "librosa mel_to_audio", "n_iter": n_iter,
                     **bench(clips, prep, lambda s, n, k=n_iter: lr_invert(s, n, k), analyses,
                               repeats)})
    return rows


def mel_diagnostics(clips, t: AudioTransform, full_pghi_gla_sc: float) -> dict:
    """Where the mel round trip loses: NNLS magnitude vs phase, and the time split of pghi+gla."""
    p = t.params
    analyse = torch_analysis(p.n_fft, p.hop_length, t.window)
    nnls_sc, phase_sc, t_mag, t_phase = [], [], 0.0, 0.0
    for x in clips:
        wav = torch.from_numpy(x)[None].to(t.mel_basis.device)
        spec, true = t(wav), t.stft(wav)
        start = time.perf_counter()
        mel = t.spec_to_mel(spec)
        mag = t.mel_to_magnitude(mel)
        mid = time.perf_counter()
        inversion.reconstruct_phase(mag, p.n_fft, p.hop_length, t.window, t.gamma,
                                    method="pghi+gla", length=len(x), seed=0,
                                    mel_constraint=(mel, t.mel_basis, p.power))
        t_mag, t_phase = t_mag + mid - start, t_phase + time.perf_counter() - mid
        y = inversion.istft(torch.polar(mag, true.angle()), p.n_fft, p.hop_length, t.window, len(x))
        nnls_sc.append(sc_db(analyse(x), analyse(fit_length(y, len(x)))))
        y = inversion.reconstruct_phase(true.abs(), p.n_fft, p.hop_length, t.window, t.gamma,
                                        method="pghi+gla", length=len(x), seed=0)
        phase_sc.append(sc_db(analyse(x), analyse(fit_length(y, len(x)))))
    return {"nnls_mag_true_phase_sc_db": float(np.mean(nnls_sc)),
            "true_mag_pghi_gla_sc_db": float(np.mean(phase_sc)),
            "full_mel_pghi_gla_sc_db": full_pghi_gla_sc,
            "mel_to_magnitude_time_share": t_mag / (t_mag + t_phase)}


def batch_table(clips, t: AudioTransform, batch_sizes: list[int]) -> list[dict]:
    """Table 3: throughput of ``t.invert`` (pghi+gla) on batches of 4 s crops of the clips."""
    crop = 4 * SR
    pool = np.concatenate(clips)
    rows = []
    for b in batch_sizes:
        starts = np.linspace(0, len(pool) - crop, b).astype(int)
        wav = torch.from_numpy(np.stack([pool[s:s + crop] for s in starts])).to(t.mel_basis.device)
        spec = t(wav)
        for method in ("pghi", "pghi+gla"):
            t.invert(spec, method=method)  # warm-up
            if wav.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            t.invert(spec, method=method)
            if wav.is_cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            rows.append({"method": method, "batch": b, "rtf": b * crop / SR / wall})
    return rows


@dataclass(frozen=True)
class MelInverter:
    """Settings of the pghi+gla mel inverter, as the package's functions take them."""

    nnls_iter: int = 100
    nnls_tol: float = 1e-4
    pghi_tol: float = inversion.PGHI_GLA_TOL
    gla_iter: int = 16
    backend: str = "auto"


# Table 4's rows. "previous default" is what AudioTransform.invert ran before the speed work of
# issue 11: all 100 NNLS iterations (no per-frame stop), PGHI at tol 1e-4, and the torch loops
# for NNLS and Griffin-Lim. It runs today's code, so two things of the old path are not in it:
# the NNLS step (a global 1/L then, per bin now) and PGHI's queue (a binary heap then, a bucket
# queue now). docs/benchmarks.md has the old code's own numbers, measured against these.
MEL_INVERTERS = {
    "default": MelInverter(),
    "previous default": MelInverter(nnls_tol=0.0, pghi_tol=1e-4, backend="torch"),
}


def invert_mel(t: AudioTransform, spec: torch.Tensor, length: int, cfg: MelInverter,
               times: dict | None = None) -> torch.Tensor:
    """``t.invert(spec, method="pghi+gla")`` step by step with ``cfg``'s settings; adds the
    seconds of each step to ``times`` (keys nnls, pghi, gla)."""
    p = t.params
    sync = torch.cuda.synchronize if spec.is_cuda else (lambda: None)
    start = time.perf_counter()
    mel = t.spec_to_mel(spec)
    linear = inversion.mel_to_linear(mel, t.mel_basis, n_iter=cfg.nnls_iter, tol=cfg.nnls_tol,
                                     backend=cfg.backend)
    magnitude = linear if p.power == 1.0 else linear.sqrt()
    sync()
    mid = time.perf_counter()
    phase = inversion.pghi_phase(magnitude, p.hop_length, p.n_fft, t.gamma, tol=cfg.pghi_tol,
                                 generator=np.random.default_rng(0))
    sync()
    late = time.perf_counter()
    wav = inversion.griffin_lim(magnitude, p.n_fft, p.hop_length, t.window, n_iter=cfg.gla_iter,
                                momentum=0.95, init_phase=phase, length=length,
                                mel_constraint=(mel, t.mel_basis, p.power), backend=cfg.backend)
    sync()
    if times is not None:
        for key, seconds in (("nnls", mid - start), ("pghi", late - mid),
                             ("gla", time.perf_counter() - late)):
            times[key] = times.get(key, 0.0) + seconds
    return wav


def speed_table(clips, t: AudioTransform, repeats: int, seconds: float) -> list[dict]:
    """Table 4: each of :data:`MEL_INVERTERS` on the clips (SC, RTF) and on one long clip
    (the clips concatenated and tiled to ``seconds``): RTF and the split NNLS / PGHI / GLA, all
    timed interleaved, ``repeats`` rounds, medians (a noisy machine slows both alike)."""
    p = t.params
    device = t.mel_basis.device
    analyses = [torch_analysis(p.n_fft, p.hop_length, t.window),
                torch_analysis(p.n_fft, p.hop_length,
                               inversion.make_window("hann", p.n_fft, p.hop_length))]
    n_long = int(seconds * SR)
    long = np.resize(np.concatenate(clips), n_long)
    long_spec = t(torch.from_numpy(long)[None].to(device))
    assert torch.equal(t.invert(long_spec[..., :200], length=199 * p.hop_length),
                       invert_mel(t, long_spec[..., :200], 199 * p.hop_length,
                                  MEL_INVERTERS["default"])), "invert_mel differs from invert"
    rows = {name: {"inverter": name, **asdict(cfg), "long_seconds": n_long / SR, "long_wall": [],
                   "long_split": []} for name, cfg in MEL_INVERTERS.items()}
    for name, cfg in MEL_INVERTERS.items():
        inv = lambda spec, n, c=cfg: invert_mel(t, spec, n, c)
        prep = lambda x: t(torch.from_numpy(x)[None].to(device))
        rows[name].update(bench(clips, prep, inv, analyses, repeats))
        invert_mel(t, long_spec, n_long, cfg)  # warm-up
    for _ in range(repeats):
        for name, cfg in MEL_INVERTERS.items():
            split = {}
            start = time.perf_counter()
            invert_mel(t, long_spec, n_long, cfg, split)
            rows[name]["long_wall"].append(time.perf_counter() - start)
            rows[name]["long_split"].append(split)
    for row in rows.values():
        row["long_seconds_median"] = float(np.median(row["long_wall"]))
        row["long_rtf"] = row["long_seconds"] / row["long_seconds_median"]
        row["long_split_median"] = {k: float(np.median([d[k] for d in row["long_split"]]))
                                    for k in ("nnls", "pghi", "gla")}
    return list(rows.values())


def print_speed_table(rows: list[dict], repeats: int) -> None:
    """Print table 4; speed-up is each row's 30 s RTF over the last row's (previous default)."""
    base = rows[0]
    print(f"\nTable 4: pghi+gla mel inversion, default vs previous default settings, same run; "
          f"{base['long_seconds']:.0f} s clip: median of {repeats} interleaved rounds")
    print(format_table(
        ["inverter", "NNLS tol", "PGHI tol", "backend", "SC dB (gauss)", "SC dB (hann)",
         "RTF x clips", f"{base['long_seconds']:.0f} s: s", "RTF x", "NNLS s", "PGHI s", "GLA s",
         "speed-up"],
        [[r["inverter"], f"{r['nnls_tol']:g}", f"{r['pghi_tol']:g}", r["backend"],
          f"{r['sc_db'][0]:.2f}", f"{r['sc_db'][1]:.2f}", f"{r['rtf']:.1f}",
          f"{r['long_seconds_median']:.2f}", f"{r['long_rtf']:.1f}",
          *(f"{r['long_split_median'][k]:.2f}" for k in ("nnls", "pghi", "gla")),
          f"{r['long_rtf'] / rows[-1]['long_rtf']:.2f}"] for r in rows]))


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def main(argv=None) -> None:
    """Measure everything in one run, print the tables, optionally write JSON."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    domains = [d for d in args.domains.split(",") if d]
    named = load_clips(args.data.resolve(), domains, args.clips_per_domain)
    clips = [x for _, x in named]
    try:
        tifresi_version = metadata.version("tifresi")
    except metadata.PackageNotFoundError:
        tifresi_version = "missing"
    meta = {"clips": [n for n, _ in named], "audio_seconds": sum(map(len, clips)) / SR,
            "torch": torch.__version__, "librosa": librosa.__version__, "tifresi": tifresi_version,
            "threads": torch.get_num_threads(), "repeats": args.repeats, "device": args.device,
            "python": platform.python_version()}
    print(f"Spectrogram inversion benchmark | {len(clips)} clips ({', '.join(domains)}), "
          f"{meta['audio_seconds']:.1f} s at {SR} Hz | torch {meta['torch']} "
          f"({meta['threads']} threads, best of {args.repeats}, ours on {args.device}) | "
          f"librosa {meta['librosa']} | "
          f"tifresi {tifresi_version}")
    print("Peers: librosa.griffinlim (Hann, momentum 0.99, random init), tifresi GaussTF PGHI, "
          "librosa.feature.inverse.mel_to_audio (NNLS + Griffin-Lim, Hann).")
    print("SC = 20 log10(|| |S(y)|-|S(x)| || / || |S(x)| ||), mean of per-clip dB (lower is "
          "better); RTF = audio s / inversion wall s.\n")

    if args.speed_only:
        with torch.inference_mode():
            speed = speed_table(clips, AudioTransform().to(args.device), args.repeats,
                                args.speed_seconds)
        print_speed_table(speed, args.repeats)
        if args.json:
            args.json.write_text(json.dumps({"meta": meta, "speed": speed}, indent=2))
            print(f"\nwrote {args.json}")
        return

    with torch.inference_mode():
        linear = linear_table(clips, args.n_fft, args.hop, args.repeats, args.device)
        print(f"Table 1: linear magnitude round trip (n_fft {args.n_fft}, hop {args.hop}); "
              "SC with each method's own analysis transform")
        print(format_table(["method", "window", "iters", "SC dB", "RTF x"], [
            [r["method"], r["window"], str(r["n_iter"] or "-"), f"{r['sc_db'][0]:.2f}",
             f"{r['rtf']:.1f}"] for r in linear]))

        t = AudioTransform().to(args.device)
        mel = mel_table(clips, t, args.repeats)
        p = t.params
        lr_basis = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=0.0,
                                       fmax=p.sample_rate / 2, htk=False, norm="slaney")
        meta["mel_basis_max_diff_vs_librosa"] = float(
            np.abs(lr_basis - t.mel_basis.cpu().numpy()).max())
        print(f"\nTable 2: mel round trip, default AudioTransform (n_fft {p.n_fft}, hop "
              f"{p.hop_length}, {p.n_mels} mels, {p.window} window); librosa's Griffin-Lim "
              "uses its own Hann window;\nlibrosa's mel basis vs ours: max abs diff "
              f"{meta['mel_basis_max_diff_vs_librosa']:.1e}")
        print(format_table(["method", "iters", "SC dB (gauss)", "SC dB (hann)", "RTF x"], [
            [r["method"], str(r["n_iter"] or "-"), f"{r['sc_db'][0]:.2f}", f"{r['sc_db'][1]:.2f}",
             f"{r['rtf']:.1f}"] for r in mel]))

        full = next(r for r in mel if r["method"] == "ours pghi+gla")["sc_db"][0]
        diag = mel_diagnostics(clips, t, full)
    print("\nMel path diagnostics (ours, gauss SC, mean over clips):")
    print(f"  (a) NNLS magnitude + true phase      {diag['nnls_mag_true_phase_sc_db']:7.2f} dB")
    print(f"  (b) true magnitude + pghi+gla phase  {diag['true_mag_pghi_gla_sc_db']:7.2f} dB")
    print(f"  (c) full mel round trip, pghi+gla    {diag['full_mel_pghi_gla_sc_db']:7.2f} dB")
    share = diag["mel_to_magnitude_time_share"]
    print(f"  pghi+gla time: mel->magnitude {100 * share:.0f}%, phase reconstruction "
          f"{100 * (1 - share):.0f}%")

    batch = []
    if args.batch_sizes:
        with torch.inference_mode():
            batch = batch_table(clips, t, [int(b) for b in args.batch_sizes.split(",")])
        print(f"\nTable 3: batched mel inversion of 4 s crops on {args.device} (default transform)")
        print(format_table(["method", "batch", "RTF x"],
                           [[r["method"], str(r["batch"]), f"{r['rtf']:.1f}"] for r in batch]))

    with torch.inference_mode():
        speed = speed_table(clips, t, args.repeats, args.speed_seconds)
    print_speed_table(speed, args.repeats)

    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "linear": linear, "mel": mel,
                                         "diagnostics": diag, "batch": batch, "speed": speed},
                                        indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
