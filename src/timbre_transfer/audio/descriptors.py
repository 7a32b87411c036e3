"""Frame-level timbre descriptors: what a sound is like, apart from its pitch and loudness.

Every descriptor is computed from one representation, a magnitude spectrum per frame plus the
frame's f0 (:class:`SpectralFrames`). Audio gives it through an STFT (:func:`describe`); the DDSP
head's synthesiser controls give it through the spectrum they are expected to produce
(:func:`describe_synth`). So a knob that edits the controls and the audio it renders are
measured by the same formulas.

Frames are centred (librosa's convention, as in :mod:`timbre_transfer.audio.features`): frame
``t`` sits on sample ``t * hop_length`` and a clip of ``T`` samples has ``1 + T // hop_length``
frames, so descriptors line up with the f0 track and the loudness envelope at the same hop.

Harmonic descriptors (brightness, tilt, noisiness, odd/even ratio) are NaN on unvoiced frames
(no f0, no harmonics); spectral ones (centroid, flatness) are NaN on silent frames.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timbre_transfer.audio.features import as_waveform, check_rate_and_hop
from timbre_transfer.names import DEFAULT_F0_TRACKER

# name: (unit, one line) -- what `describe` prints and the plots label
DESCRIPTORS = {
    "centroid_hz": ("Hz", "spectral centroid"),
    "brightness": ("oct", "spectral centroid in octaves above f0"),
    "tilt": ("dB/oct", "slope of the harmonic amplitudes against log2 harmonic number"),
    "noisiness": ("dB", "noise energy relative to harmonic energy (minus the HNR)"),
    "odd_even": ("dB", "odd- to even-harmonic energy ratio"),
    "flatness": ("0-1", "spectral flatness (geometric / arithmetic mean of the power)"),
}
N_FFT = 1024  # 64 ms at 16 kHz: resolves harmonics from ~65 Hz (a Hann main lobe is 4 bins)
# and is short enough that vibrato does not smear the upper harmonics into "noise"
MAX_HARMONICS = 60
HARMONIC_FLOOR_DB = -60.0  # tilt ignores harmonics this far below the frame's strongest
_HANN_MAIN_LOBE_BINS = 2  # a Hann window's main lobe is +-2 bins wide
# noisiness reads its own STFT: a Hann window leaks ~-33 dB of every harmonic outside its main
# lobe, which reads as noise and hides a quieter noise floor; a Kaiser window (beta 12) leaks
# under -80 dB outside +-4 bins, and 2 * N_FFT keeps those lobes apart down to f0 ~ 70 Hz
NOISE_WINDOW = ("kaiser", 12.0)
NOISE_N_FFT = 2 * N_FFT
NOISE_LOBE_BINS = 4
F0_TOLERANCE = 2 ** (6 / 1200) - 1  # pYIN's f0 lies on a 10-cent grid: within 5 cents
# sum over all bins of |Hann-windowed sinusoid of amplitude a|, in units of a * n_fft / 4,
# averaged over the sinusoid's offset from the bin grid (2.0 on a bin, 2.12 half-way)
HANN_LOBE_SUM = 2.08


@dataclass
class SpectralFrames:
    """What the descriptors read, ``N`` frames.

    Attributes:
        magnitude: ``(F, N)`` magnitude spectrum (``|STFT|`` of a Hann window of ``n_fft``).
        freqs: ``(F,)`` Hz of the bins.
        f0_hz: ``(N,)`` Hz, NaN where unvoiced.
        harmonics: ``(N, K)`` sinusoid amplitudes of harmonics 1..K (NaN above Nyquist or on
            unvoiced frames).
        n_fft: the window length the magnitudes stand for.
        power: ``(F, N)`` expected power per bin where it is not ``magnitude ** 2`` (an
            expected spectrum: the mean magnitude of noise is not the root of its mean power).
    """

    magnitude: np.ndarray
    freqs: np.ndarray
    f0_hz: np.ndarray
    harmonics: np.ndarray
    n_fft: int
    power: np.ndarray | None = None

    def bin_power(self) -> np.ndarray:
        return self.magnitude**2 if self.power is None else self.power


@dataclass
class Descriptors:
    """Descriptor trajectories of one clip (each ``(N,)``, see :data:`DESCRIPTORS`) and its
    note attacks.

    ``onset_s`` / ``attack_s`` hold one entry per detected note (empty when not measured, e.g.
    from synth controls).
    """

    centroid_hz: np.ndarray
    brightness: np.ndarray
    tilt: np.ndarray
    noisiness: np.ndarray
    odd_even: np.ndarray
    flatness: np.ndarray
    hop_length: int
    sample_rate: int
    onset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    attack_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.centroid_hz)

    def times(self) -> np.ndarray:
        return np.arange(len(self)) * self.hop_length / self.sample_rate

    def summary(self) -> dict[str, float]:
        """Median of each trajectory over the frames where it is defined (NaN if none), and
        the median attack time."""
        med = lambda a: float(np.nanmedian(a)) if np.isfinite(a).any() else math.nan
        out = {name: med(getattr(self, name)) for name in DESCRIPTORS}
        out["attack_s"] = med(self.attack_s)
        return out


# ---- spectral descriptors ------------------------------------------------------------------------


def spectral_centroid(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """``sum_f f S(f) / sum_f S(f)`` per frame (Grey & Gordon 1978; ``librosa.feature.
    spectral_centroid`` on a magnitude spectrogram gives the same), ``(F, N) -> (N,)``.
    NaN on silent frames (librosa gives 0 there)."""
    total = magnitude.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, freqs @ magnitude / total, np.nan)


def spectral_flatness(magnitude: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """Wiener entropy of the power spectrum: geometric over arithmetic mean of
    ``max(S^2, amin)`` per frame (Dubnov 2004; ``librosa.feature.spectral_flatness``'s formula
    and floor), ``(F, N) -> (N,)``: 1 for white noise, near 0 for a few sinusoids. NaN on silent
    frames (every bin at the floor)."""
    power = np.maximum(magnitude**2, amin)
    flat = np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)
    return np.where(np.all(magnitude**2 <= amin, axis=0), np.nan, flat)


# ---- harmonic descriptors ------------------------------------------------------------------------


def harmonic_amplitudes(magnitude: np.ndarray, freqs: np.ndarray, f0_hz: np.ndarray,
                        n_fft: int, n_harmonics: int = MAX_HARMONICS) -> np.ndarray:
    """Sinusoid amplitudes of harmonics ``1..K`` from a Hann-window magnitude spectrum,
    ``(F, N) -> (N, K)``: the largest bin within a main lobe of ``k * f0``, refined by
    parabolic interpolation of the log magnitude (removes most of the window's scalloping),
    divided by the window's gain (``n_fft / 4`` for a sinusoid of amplitude 1). NaN above
    Nyquist and on unvoiced frames."""
    bin_hz = freqs[1] - freqs[0]
    n_frames = magnitude.shape[1]
    k = np.arange(1, n_harmonics + 1)
    out = np.full((n_frames, n_harmonics), np.nan)
    voiced = np.flatnonzero(np.isfinite(f0_hz) & (f0_hz > 0))
    if voiced.size == 0:
        return out
    centre = f0_hz[voiced, None] * k / bin_hz  # (V, K) fractional bin of each harmonic
    ok = centre < len(freqs) - 1 - _HANN_MAIN_LOBE_BINS
    log_mag = np.log(np.maximum(magnitude[:, voiced], 1e-12))  # (F, V)
    cols = np.arange(voiced.size)[:, None]
    # the peak bin among the main lobe's bins around the expected one
    search = np.clip(np.rint(centre)[..., None] + np.arange(-1, 2), 1, len(freqs) - 2).astype(int)
    peak = log_mag[search, cols[..., None]].argmax(-1)
    p = np.take_along_axis(search, peak[..., None], 2)[..., 0]  # (V, K)
    a, b, c = log_mag[p - 1, cols], log_mag[p, cols], log_mag[p + 1, cols]
    denom = a - 2 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.clip(np.where(denom < 0, 0.5 * (a - c) / denom, 0.0), -0.5, 0.5)
    peak_log = b - 0.25 * (a - c) * shift
    out[voiced] = np.where(ok, np.exp(peak_log) * 4.0 / n_fft, np.nan)
    return out


def harmonic_tilt(harmonics: np.ndarray, floor_db: float = HARMONIC_FLOOR_DB) -> np.ndarray:
    """Least-squares slope of ``20 log10 a_k`` against ``log2 k`` per frame, in dB per octave
    (a spectral-slope measure on the harmonics, cf. Peeters 2004 sec. 6.2): -6.02 for a
    sawtooth (``a_k = 1/k``), -12.04 for a triangle's odd harmonics. Harmonics more than
    ``floor_db`` below the frame's strongest are left out (they are noise, not partials); NaN
    with fewer than two left."""
    db = 20 * np.log10(np.maximum(harmonics, 1e-12))
    strongest = np.nanmax(np.where(np.isfinite(harmonics), db, -np.inf), axis=1, keepdims=True)
    use = np.isfinite(harmonics) & (db > strongest + floor_db)
    x = np.log2(np.arange(1, harmonics.shape[1] + 1))[None].repeat(len(harmonics), 0)
    n = use.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(use, x, 0).sum(1) / n
        my = np.where(use, db, 0).sum(1) / n
        sxy = np.where(use, (x - mx[:, None]) * (db - my[:, None]), 0).sum(1)
        sxx = np.where(use, (x - mx[:, None]) ** 2, 0).sum(1)
        return np.where(n >= 2, sxy / sxx, np.nan)


def odd_even_ratio(harmonics: np.ndarray) -> np.ndarray:
    """``10 log10(sum_odd a_k^2 / sum_even a_k^2)`` per frame, the fundamental counted odd
    (Peeters 2004, "odd to even harmonic energy ratio"): 4.77 dB for a sawtooth
    (``pi^2/8 : pi^2/24``), large for a square wave or a clarinet's low register. NaN where no
    even harmonic is measured."""
    power = np.where(np.isfinite(harmonics), harmonics, 0.0) ** 2
    odd, even = power[:, 0::2].sum(1), power[:, 1::2].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 10 * np.log10(odd / even)
    return np.where(np.isfinite(harmonics).any(1) & (even > 0) & (odd > 0), out, np.nan)


def noisiness(power: np.ndarray, freqs: np.ndarray, f0_hz: np.ndarray,
              f0_spread_hz: np.ndarray | None = None,
              lobe_bins: int = _HANN_MAIN_LOBE_BINS,
              f0_tolerance: float = 0.0) -> np.ndarray:
    """Noise-to-harmonic energy ratio in dB per frame, i.e. minus the harmonic-to-noise ratio
    (HNR; cf. Peeters 2004 "noisiness", which is the same split as a fraction): the power in
    the bins outside every harmonic's main lobe estimates the noise density, which is
    extrapolated under the lobes; the harmonic energy is what the lobes hold above it.
    A sine in white noise of SNR ``s`` dB reads ``-s``.

    Args:
        power: ``(F, N)`` power spectrum.
        f0_hz: ``(N,)``, NaN where unvoiced (the result is NaN there, and where the lobes
            cover every bin: f0 under about ``2 * lobe_bins + 1`` bins).
        f0_spread_hz: ``(N,)`` how far f0 moves within the window (half its range): harmonic
            ``k``'s lobe is widened by ``k`` times it, so that vibrato and glides, which smear
            the upper harmonics, are not counted as noise. Default 0.
        lobe_bins: half-width of a harmonic's main lobe in bins (2 for a Hann window).
        f0_tolerance: relative error of ``f0_hz`` (pYIN's 10-cent grid is within 0.3 %):
            harmonic ``k``'s lobe is widened by ``k`` times it, or the upper harmonics of a
            slightly wrong f0 fall outside their lobes and read as noise.
    """
    bin_hz = freqs[1] - freqs[0]
    spread = np.zeros(power.shape[1]) if f0_spread_hz is None else np.nan_to_num(f0_spread_hz)
    out = np.full(power.shape[1], np.nan)
    bins = np.arange(len(freqs))
    for t in np.flatnonzero(np.isfinite(f0_hz) & (f0_hz > 0)):
        k = np.arange(1, int(freqs[-1] // f0_hz[t]) + 1)
        # a bin is a lobe bin when within a main lobe (widened by the glide) of some harmonic
        half = lobe_bins + k * (spread[t] + f0_tolerance * f0_hz[t]) / bin_hz
        near = np.abs(bins[None, :] - k[:, None] * f0_hz[t] / bin_hz) <= half[:, None] + 0.5
        lobe = near.any(0)
        lobe[0] = False  # DC is never a harmonic
        if lobe.all() or not lobe.any():
            continue
        density = power[~lobe, t].mean()
        noise = density * len(freqs)
        harmonic = power[lobe, t].sum() - density * lobe.sum()
        if harmonic > 0 and noise > 0:
            out[t] = 10 * np.log10(noise / harmonic)
    return out


def f0_spread(f0_hz: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``(N,)`` half the range of f0 over the frames within ``n_fft / 2`` samples of each frame
    (what a window of ``n_fft`` sees); NaN frames are ignored, 0 where none is voiced."""
    f0 = np.asarray(f0_hz, dtype=np.float64)
    reach = max(0, (n_fft // 2) // hop_length)
    padded = np.pad(f0, reach, constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        spread = (np.nanmax(view, 1) - np.nanmin(view, 1)) / 2
    return np.nan_to_num(spread)


# ---- note attacks --------------------------------------------------------------------------------


def attack_times(wav, sample_rate: int, low: float = 0.1, high: float = 0.9,
                 onsets_s: np.ndarray | None = None,
                 max_note_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Rise time of each note: from the first moment the amplitude envelope reaches ``low`` of
    the note's peak to the first moment it reaches ``high`` (the fixed-threshold attack of
    Peeters 2004 sec. 4.1; 10 %-90 % by default, so a linear ramp of ``D`` seconds from silence
    gives ``0.8 D``).

    The envelope is the RMS over 4 ms windows every 1 ms. Notes start at ``onsets_s`` (default:
    ``librosa.onset.onset_detect`` with backtracking) and end at the next onset or after
    ``max_note_s``; a note's peak is its envelope maximum there. A note that starts above half
    its peak has no attack to measure (a slur, or a spurious onset) and is left out. Returns
    ``(onset_s, attack_s)`` of the notes kept.
    """
    import librosa

    y = as_waveform(wav)
    hop, width = max(1, sample_rate // 1000), max(2, sample_rate // 250)
    env = librosa.feature.rms(y=y, frame_length=width, hop_length=hop, center=True)[0]
    if onsets_s is None:
        onsets_s = librosa.onset.onset_detect(y=y, sr=sample_rate, hop_length=128,
                                              backtrack=True, units="time")
    starts = np.clip(np.rint(np.asarray(onsets_s) * sample_rate / hop).astype(int), 0, len(env))
    bounds = np.append(starts, len(env))
    kept_onsets, attacks = [], []
    longest = int(max_note_s * sample_rate / hop)
    for start, end in zip(bounds[:-1], bounds[1:]):
        note = env[start:min(end, start + longest)]
        if note.size < 2 or note.max() <= 0 or note[0] > 0.5 * note.max():
            continue
        peak = note.max()
        rise_low = np.argmax(note >= low * peak)
        rise_high = np.argmax(note >= high * peak)
        kept_onsets.append(start * hop / sample_rate)
        attacks.append((rise_high - rise_low) * hop / sample_rate)
    return np.asarray(kept_onsets), np.asarray(attacks)


# ---- from audio and from synth controls ----------------------------------------------------------


def _descriptors(frames: SpectralFrames, hop_length: int, sample_rate: int,
                 noise_db: np.ndarray) -> Descriptors:
    centroid = spectral_centroid(frames.magnitude, frames.freqs)
    with np.errstate(invalid="ignore", divide="ignore"):
        brightness = np.log2(centroid / frames.f0_hz)
    return Descriptors(
        centroid_hz=centroid, brightness=brightness, tilt=harmonic_tilt(frames.harmonics),
        noisiness=noise_db, odd_even=odd_even_ratio(frames.harmonics),
        flatness=spectral_flatness(np.sqrt(frames.bin_power())), hop_length=hop_length,
        sample_rate=sample_rate)


def audio_frames(wav, sample_rate: int, hop_length: int, f0_hz: np.ndarray,
                 n_fft: int = N_FFT) -> SpectralFrames:
    """:class:`SpectralFrames` of audio: ``|STFT|`` with a Hann window (librosa's, centred,
    zero-padded) and the given f0 (``(1 + T // hop_length,)``, NaN unvoiced)."""
    import librosa

    y = as_waveform(wav)
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True))
    f0 = np.asarray(f0_hz, dtype=np.float64)
    if f0.shape != (magnitude.shape[1],):
        raise ValueError(f"f0_hz has {f0.shape} frames, the audio {magnitude.shape[1]} at "
                         f"hop_length={hop_length}")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return SpectralFrames(magnitude, freqs, f0,
                          harmonic_amplitudes(magnitude, freqs, f0, n_fft), n_fft)


def describe(wav, sample_rate: int, hop_length: int = 256, f0_hz: np.ndarray | None = None,
             n_fft: int = N_FFT, attacks: bool = True,
             f0_tracker: str = DEFAULT_F0_TRACKER) -> Descriptors:
    """Every descriptor of ``(T,)`` audio, ``1 + T // hop_length`` frames, and its attacks.

    Args:
        f0_hz: ``(frames,)`` Hz with NaN (or 0) where unvoiced; default the track of
            ``f0_tracker`` (:func:`~timbre_transfer.audio.f0.track_f0`) at ``hop_length``.
        attacks: False skips the onsets and attack times (they stay empty).
    """
    from timbre_transfer.audio.f0 import track_f0

    y = as_waveform(wav)
    check_rate_and_hop(sample_rate, hop_length)
    if f0_hz is None:
        f0_hz = track_f0(y, sample_rate, hop_length, f0_tracker).f0
    import librosa

    f0 = np.where(np.asarray(f0_hz, dtype=np.float64) > 0, f0_hz, np.nan)
    frames = audio_frames(y, sample_rate, hop_length, f0, n_fft)
    noise_power = np.abs(librosa.stft(y, n_fft=NOISE_N_FFT, hop_length=hop_length,
                                      window=NOISE_WINDOW)) ** 2
    noise_db = noisiness(noise_power, np.fft.rfftfreq(NOISE_N_FFT, 1.0 / sample_rate), f0,
                         f0_spread(f0, NOISE_N_FFT, hop_length), NOISE_LOBE_BINS,
                         F0_TOLERANCE)
    out = _descriptors(frames, hop_length, sample_rate, noise_db)
    if attacks:
        out.onset_s, out.attack_s = attack_times(y, sample_rate)
    return out


def synth_frames(f0_hz, amplitude, distribution, noise_magnitudes, sample_rate: int,
                 n_fft: int = N_FFT) -> SpectralFrames:
    """The :class:`SpectralFrames` that the DDSP synthesiser's controls are expected to give
    under a Hann STFT of ``n_fft`` (:mod:`timbre_transfer.models.ddsp`'s conventions).

    Harmonic ``k`` has amplitude ``A c_k`` (the distribution renormalised over the harmonics
    below Nyquist, as the synthesiser does) and puts ``A c_k n_fft / 4`` in its peak bin and
    half that in each neighbour (a Hann main lobe), scaled so that the three hold the
    magnitude that the whole window response holds on average (:data:`HANN_LOBE_SUM`). The filtered
    noise (uniform in [-1, 1], variance 1/3) of band gain ``H(f)`` has the expected bin magnitude
    ``sqrt(pi)/2 * sqrt(3 n_fft / 8) * |H(f)| / sqrt(3)`` (a Rayleigh mean) and the expected power
    ``n_fft / 8 * |H(f)|^2``, which noisiness and flatness read.

    Args: ``(N,)`` f0 (Hz; 0 or NaN unvoiced), ``(N,)`` amplitude, ``(N, K)`` distribution,
    ``(N, M)`` noise band magnitudes from 0 to Nyquist.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)
    amplitude = np.asarray(amplitude, dtype=np.float64)
    dist = np.asarray(distribution, dtype=np.float64)
    noise = np.asarray(noise_magnitudes, dtype=np.float64)
    n_frames, n_harmonics = dist.shape
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    k = np.arange(1, n_harmonics + 1)
    voiced = np.isfinite(f0) & (f0 > 0)
    f0v = np.where(voiced, f0, 0.0)
    keep = (f0v[:, None] * k < sample_rate / 2) & voiced[:, None]
    dist = dist * keep
    total = dist.sum(1, keepdims=True)
    harmonics = amplitude[:, None] * dist / np.where(total > 0, total, 1.0)

    band_freqs = np.linspace(0, sample_rate / 2, noise.shape[1])
    noise_gain = np.stack([np.interp(freqs, band_freqs, row) for row in noise], axis=1)
    noise_rms = math.sqrt(n_fft / 8) * noise_gain  # (F, N)
    magnitude = math.sqrt(math.pi) / 2 * noise_rms
    power = noise_rms**2
    bin_hz = freqs[1]
    peak_bin = np.rint(f0v[:, None] * k / bin_hz).astype(int)  # (N, K)
    lobe = harmonics * n_fft / 4 * HANN_LOBE_SUM / 2
    frames_idx = np.arange(n_frames)[:, None].repeat(n_harmonics, 1)
    for offset, weight in ((-1, 0.5), (0, 1.0), (1, 0.5)):
        bins = np.clip(peak_bin + offset, 0, len(freqs) - 1)
        np.add.at(magnitude, (bins[keep], frames_idx[keep]), weight * lobe[keep])
        np.add.at(power, (bins[keep], frames_idx[keep]), (weight * lobe[keep]) ** 2)
    return SpectralFrames(magnitude, freqs, np.where(voiced, f0, np.nan),
                          np.where(keep, harmonics, np.nan), n_fft, power)


def describe_synth(f0_hz, amplitude, distribution, noise_magnitudes, sample_rate: int,
                   hop_length: int, n_fft: int = N_FFT) -> Descriptors:
    """The descriptors that the DDSP synthesiser's controls are expected to produce
    (:func:`synth_frames`), frame for frame; no attacks (they need the rendered audio)."""
    frames = synth_frames(f0_hz, amplitude, distribution, noise_magnitudes, sample_rate, n_fft)
    # the expected spectrum has no leakage: its harmonics' lobes are exactly the 3 bins placed
    noise_db = noisiness(frames.bin_power(), frames.freqs, frames.f0_hz, lobe_bins=1)
    return _descriptors(frames, hop_length, sample_rate, noise_db)


#: the trajectories :func:`plot_descriptors` draws, one panel each, top to bottom
PLOTTED = ("f0_hz", "loudness_db", "centroid_hz", "brightness", "tilt", "noisiness", "odd_even",
           "flatness")


def plot_descriptors(tracks: dict, out: str | Path) -> Path:
    """One panel per trajectory (f0, loudness and each descriptor), every file overlaid; note
    onsets marked on the loudness panel.

    Args:
        tracks: ``{path: (Descriptors, f0_hz, loudness_db)}``, one entry per file.
        out: the PNG to write (its folder is created).
    """
    from matplotlib.figure import Figure

    labels = {"f0_hz": "f0 (Hz)", "loudness_db": "loudness (dB)",
              **{k: f"{k} ({u})" for k, (u, _) in DESCRIPTORS.items()}}
    fig = Figure(figsize=(10, 1.6 * len(PLOTTED)))
    axes = fig.subplots(len(PLOTTED), 1, sharex=True)
    for path, (d, f0, loudness) in tracks.items():
        values = {"f0_hz": f0, "loudness_db": loudness,
                  **{k: getattr(d, k) for k in DESCRIPTORS}}
        t = d.times()
        label = f"{Path(path).parent.name}/{Path(path).name}"
        for ax, key in zip(axes, PLOTTED):
            ax.plot(t, values[key][: len(t)], lw=0.8, label=label)
        for onset in d.onset_s:
            axes[1].axvline(onset, color="0.7", lw=0.5)
    for ax, key in zip(axes, PLOTTED):
        ax.set_ylabel(labels[key], fontsize=8)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out
