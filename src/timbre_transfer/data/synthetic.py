"""Synthetic audio the package can make without any data: paired synthetic instrument domains.

A :class:`Score` (notes: onset, duration, MIDI pitch, velocity) is rendered with a
:class:`Timbre` (harmonic spectrum, note envelope, breath noise, vibrato). Rendering the SAME
score with several timbres gives "paired twins": identical pitch and timing, different timbre,
so that every clip of one domain has a ground-truth counterpart in every other domain.
:func:`write_paired_dataset` writes such domains as folders of WAV files with matching names, and
:func:`paired_files` finds the twins again.

:func:`render_melody` renders one random melody on a plain harmonic timbre, for quick tests.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Timbre:
    """A synthetic instrument: a harmonic spectrum, a note envelope, breath noise and vibrato.

    Attributes:
        name: identifier, also the domain's folder name (letters, digits, ``_``, ``-``).
        n_harmonics: partials 1..n_harmonics (those at or above Nyquist are left out).
        tilt_db_per_octave: level of partial k relative to the fundamental is
            ``tilt * log2(k)`` dB (-6 dB/octave is a sawtooth's 1/k).
        even_db: extra gain in dB on even partials (very negative: odd-only, clarinet-like).
        attack: seconds of the linear rise from 0 to 1 at each note onset.
        decay: time constant (s) of the exponential fall from 1 to ``sustain`` after the attack.
        sustain: level the note settles at, in [0, 1] (0: a plucked, freely decaying note).
        release: seconds of the linear fade to 0 at the end of each note.
        noise_level: breath noise RMS relative to the harmonic part's RMS, both following the
            note envelope.
        noise_cutoff_hz: low-pass cut-off of the breath noise (None: white noise).
        vibrato_cents: vibrato depth (peak deviation) in cents; 0 for none.
        vibrato_rate_hz: vibrato rate.
    """

    name: str
    n_harmonics: int = 24
    tilt_db_per_octave: float = -9.0
    even_db: float = 0.0
    attack: float = 0.02
    decay: float = 0.1
    sustain: float = 0.6
    release: float = 0.05
    noise_level: float = 0.01
    noise_cutoff_hz: float | None = None
    vibrato_cents: float = 0.0
    vibrato_rate_hz: float = 5.5

    def __post_init__(self):
        problems = []
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            problems.append(
                f"name must be letters, digits, '_' or '-' (it names a folder), got {self.name!r}"
            )
        if self.n_harmonics < 1:
            problems.append(f"n_harmonics must be >= 1, got {self.n_harmonics}")
        if self.attack < 0 or self.release < 0:
            problems.append(f"attack and release must be >= 0, got {self.attack}, {self.release}")
        if self.decay <= 0:
            problems.append(f"decay must be positive, got {self.decay}")
        if not 0 <= self.sustain <= 1:
            problems.append(f"sustain must be in [0, 1], got {self.sustain}")
        if self.noise_level < 0:
            problems.append(f"noise_level must be >= 0, got {self.noise_level}")
        if self.noise_cutoff_hz is not None and self.noise_cutoff_hz <= 0:
            problems.append(f"noise_cutoff_hz must be positive or None, got {self.noise_cutoff_hz}")
        if self.vibrato_cents < 0 or self.vibrato_rate_hz < 0:
            problems.append(
                f"vibrato_cents and vibrato_rate_hz must be >= 0, got "
                f"{self.vibrato_cents}, {self.vibrato_rate_hz}"
            )
        if problems:
            raise ValueError(f"Timbre {self.name!r}: " + "; ".join(problems))

    def harmonic_gains(self) -> np.ndarray:
        """``(n_harmonics,)`` linear amplitude of partials 1..n (fundamental = 1)."""
        k = np.arange(1, self.n_harmonics + 1)
        db = self.tilt_db_per_octave * np.log2(k) + np.where(k % 2 == 0, self.even_db, 0.0)
        return 10 ** (db / 20)


TIMBRES: tuple[Timbre, ...] = (
    # Clarinet-like: odd partials only (even ones 30 dB down), moderately bright, steady.
    Timbre("reed", n_harmonics=25, tilt_db_per_octave=-4.0, even_db=-30.0, attack=0.03,
           decay=0.2, sustain=0.85, release=0.04, noise_level=0.02, noise_cutoff_hz=3000.0),
    # Brass: the brightest spectrum, slow (90 ms) swell, hardly any vibrato.
    Timbre("brass", n_harmonics=30, tilt_db_per_octave=-2.0, attack=0.09, decay=0.3,
           sustain=0.8, release=0.06, noise_level=0.01, noise_cutoff_hz=4000.0,
           vibrato_cents=5.0, vibrato_rate_hz=5.0),
    # Flute: nearly sinusoidal (4 steep partials) with loud low-passed breath noise.
    Timbre("flute", n_harmonics=4, tilt_db_per_octave=-15.0, attack=0.05, decay=0.4,
           sustain=0.9, release=0.05, noise_level=0.3, noise_cutoff_hz=5000.0,
           vibrato_cents=15.0, vibrato_rate_hz=5.0),
    # Bowed string: sawtooth-like (all partials, 1/k), wide vibrato, a little bow noise.
    Timbre("bowed", n_harmonics=40, tilt_db_per_octave=-6.0, attack=0.06, decay=0.5,
           sustain=0.9, release=0.05, noise_level=0.03, noise_cutoff_hz=6000.0,
           vibrato_cents=35.0, vibrato_rate_hz=6.0),
    # Plucked string: instant attack, fast free decay, no sustain.
    Timbre("pluck", n_harmonics=20, tilt_db_per_octave=-8.0, even_db=-3.0, attack=0.003,
           decay=0.08, sustain=0.0, release=0.02, noise_level=0.005),
)


def get_timbre(timbre: str | Timbre) -> Timbre:
    """The built-in timbre called ``timbre`` (a :class:`Timbre` is returned as is).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if isinstance(timbre, Timbre):
        return timbre
    for t in TIMBRES:
        if t.name == timbre:
            return t
    known = ", ".join(t.name for t in TIMBRES)
    raise ValueError(f"unknown timbre {timbre!r}; known timbres: {known}")


def _readonly(values, dtype) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Score:
    """Notes to play, independent of any timbre. All arrays are ``(n_notes,)`` and read-only.

    Attributes:
        onsets: note starts in seconds (>= 0).
        durations: note lengths in seconds (> 0); envelopes (attack, release) fit inside.
        midi: MIDI pitches (69 = A4 = 440 Hz; fractional values allowed).
        velocities: amplitude of each note in (0, 1].
    """

    onsets: np.ndarray
    durations: np.ndarray
    midi: np.ndarray
    velocities: np.ndarray = field(default=None)

    def __post_init__(self):
        onsets = _readonly(self.onsets, np.float64)
        durations = _readonly(self.durations, np.float64)
        midi = _readonly(self.midi, np.float64)
        vel = np.ones_like(onsets) if self.velocities is None else self.velocities
        velocities = _readonly(vel, np.float64)
        if not len(onsets) == len(durations) == len(midi) == len(velocities):
            raise ValueError(
                f"Score arrays differ in length: onsets {len(onsets)}, durations "
                f"{len(durations)}, midi {len(midi)}, velocities {len(velocities)}"
            )
        arrays = (onsets, durations, midi, velocities)
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("Score holds NaN or infinite values")
        if (onsets < 0).any() or (durations <= 0).any():
            raise ValueError("Score needs onsets >= 0 and durations > 0")
        if ((velocities <= 0) | (velocities > 1)).any():
            raise ValueError("Score velocities must be in (0, 1]")
        for name, arr in zip(("onsets", "durations", "midi", "velocities"), arrays):
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.onsets)

    @property
    def end(self) -> float:
        """Seconds at which the last note ends (0 for an empty score)."""
        return float((self.onsets + self.durations).max()) if len(self) else 0.0

    def midi_at(self, times) -> np.ndarray:
        """MIDI pitch sounding at each of ``times`` (s), NaN where no note sounds.

        Where notes overlap the one that started last wins. ``times``: any shape; same shape out.
        """
        times = np.asarray(times, dtype=np.float64)
        out = np.full(times.shape, np.nan)
        for j in np.argsort(self.onsets, kind="stable"):  # later onsets overwrite earlier
            on = (times >= self.onsets[j]) & (times < self.onsets[j] + self.durations[j])
            out[on] = self.midi[j]
        return out


def random_score(
    rng_or_seed: int | np.random.Generator | np.random.SeedSequence,
    duration: float,
    note_seconds: tuple[float, float] = (0.2, 0.6),
    midi_range: tuple[int, int] = (60, 84),
    scale: Sequence[int] = MAJOR_SCALE,
    velocity_range: tuple[float, float] = (0.5, 1.0),
) -> Score:
    """A random legato melody filling ``duration`` seconds: each note starts as the last ends.

    Args:
        rng_or_seed: a generator (drawn from) or anything ``np.random.default_rng`` takes.
        note_seconds: note lengths are uniform in this range; the last note is cut at
            ``duration``.
        midi_range: inclusive MIDI range (default C4..C6).
        scale: pitch classes (0 = C) the notes are drawn from.
        velocity_range: note velocities are uniform in this range, within (0, 1].
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    lo_s, hi_s = note_seconds
    if not 0 < lo_s <= hi_s:
        raise ValueError(f"note_seconds must satisfy 0 < min <= max, got {note_seconds}")
    lo_v, hi_v = velocity_range
    if not 0 < lo_v <= hi_v <= 1:
        raise ValueError(f"velocity_range must satisfy 0 < min <= max <= 1, got {velocity_range}")
    classes = {int(c) % 12 for c in scale}
    choices = np.array([m for m in range(midi_range[0], midi_range[1] + 1) if m % 12 in classes])
    if len(choices) == 0:
        raise ValueError(f"no note of scale {tuple(scale)} lies in midi_range {midi_range}")

    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else (
        np.random.default_rng(rng_or_seed))
    onsets, durations, midi, velocities = [], [], [], []
    start = 0.0
    while start < duration - 1e-9:
        length = min(rng.uniform(lo_s, hi_s), duration - start)
        onsets.append(start)
        durations.append(length)
        midi.append(rng.choice(choices))
        velocities.append(rng.uniform(lo_v, hi_v))
        start += length
    return Score(onsets, durations, midi, velocities)


def _envelope(length: int, timbre: Timbre, sample_rate: int) -> np.ndarray:
    """``(length,)`` note envelope: linear attack, exponential decay to sustain, linear release."""
    attack = min(int(round(timbre.attack * sample_rate)), length)
    release = min(int(round(timbre.release * sample_rate)), length - attack)
    n = np.arange(length)
    after_attack = np.maximum(n - attack, 0) / (timbre.decay * sample_rate)
    env = timbre.sustain + (1 - timbre.sustain) * np.exp(-after_attack)
    if attack:
        env[:attack] *= np.arange(attack) / attack
    if release:
        env[length - release :] *= np.linspace(1, 0, release)
    return env


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff: float | None, sample_rate: int):
    """``(n,)`` unit-RMS Gaussian noise, low-passed at ``cutoff`` Hz (None: white)."""
    noise = rng.standard_normal(n)
    if cutoff is not None and cutoff < 0.45 * sample_rate and n > 1:
        from scipy.signal import butter, sosfilt

        noise = sosfilt(butter(4, cutoff, fs=sample_rate, output="sos"), noise)
        noise /= max(np.sqrt(np.mean(noise**2)), 1e-12)
    return noise


def render(
    score: Score,
    timbre: Timbre | str,
    sample_rate: int = 16000,
    duration: float | None = None,
    seed: int | np.random.Generator | np.random.SeedSequence = 0,
    peak: float = 0.5,
) -> np.ndarray:
    """Play ``score`` with ``timbre``: additive synthesis of each note, plus breath noise.

    Each note's phase is the cumulative sum of its instantaneous frequency (with vibrato), so
    pitch glides without clicks; a partial fades out linearly between 0.9 and 1.0 x Nyquist
    (measured on the instantaneous frequency) so that nothing aliases and vibrato across the
    limit does not switch a partial on and off abruptly. Notes may overlap or leave gaps.
    Vibrato runs on one clock for the whole clip, so twins with equal vibrato settings match
    sample for sample in pitch.

    Args:
        score: the notes; those starting at or after ``duration`` are dropped, others cut.
        timbre: a :class:`Timbre` or the name of a built-in one.
        duration: seconds of output; None: ``score.end``.
        seed: seeds the breath noise (the only random part of rendering).
        peak: the output's peak absolute value (silence stays all zeros).

    Returns:
        ``(round(duration * sample_rate),)`` float32.
    """
    timbre = get_timbre(timbre)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    duration = score.end if duration is None else duration
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    n = int(round(duration * sample_rate))
    nyquist = sample_rate / 2
    gains = timbre.harmonic_gains()
    # Unit steady-state RMS for the harmonic part (before partials are cut at Nyquist), so
    # noise_level is a noise-to-tone ratio independent of the number of partials.
    gains /= np.sqrt(np.sum(gains**2) / 2)

    t = np.arange(n) / sample_rate
    vibrato = 2 ** (timbre.vibrato_cents / 1200 * np.sin(2 * np.pi * timbre.vibrato_rate_hz * t))
    tone = np.zeros(n)
    amp = np.zeros(n)  # sum of note envelopes, shapes the noise
    for onset, length_s, midi, velocity in zip(
        score.onsets, score.durations, score.midi, score.velocities
    ):
        s0 = int(round(onset * sample_rate))
        s1 = min(int(round((onset + length_s) * sample_rate)), n)
        if s1 <= s0:
            continue
        env = velocity * _envelope(s1 - s0, timbre, sample_rate)
        freq = 440.0 * 2 ** ((midi - 69) / 12) * vibrato[s0:s1]  # instantaneous Hz
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        note = np.zeros(s1 - s0)
        for k, g in enumerate(gains, start=1):
            fade = np.clip((nyquist - k * freq) / (0.1 * nyquist), 0.0, 1.0)
            if not fade.any():
                break  # higher partials are above Nyquist too
            note += g * fade * np.sin(k * phase)
        tone[s0:s1] += env * note
        amp[s0:s1] += env

    wav = tone
    if timbre.noise_level > 0:
        rng = np.random.default_rng(seed)
        wav = tone + timbre.noise_level * amp * _lowpass_noise(
            rng, n, timbre.noise_cutoff_hz, sample_rate
        )
    top = np.abs(wav).max() if n else 0.0
    if top > 0:
        wav = wav * (peak / top)
    return wav.astype(np.float32)


def render_melody(
    sample_rate: int = 16000,
    duration: float = 4.0,
    seed: int = 0,
    n_harmonics: int = 24,
    tilt_db_per_octave: float = -9.0,
    vibrato_cents: float = 25.0,
    noise_level: float = 0.01,
) -> np.ndarray:
    """A melody of random notes with vibrato, attack/release envelopes and a little breath noise.

    Notes are drawn from a C major scale between C4 and C6, 0.2-0.6 s long; harmonics above
    Nyquist are left out. Deterministic for a given ``seed``.

    Returns:
        ``(round(duration * sample_rate),)`` float32, peak 0.5.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    rng = np.random.default_rng(seed)
    score = random_score(rng, duration)
    timbre = Timbre(
        "melody", n_harmonics=n_harmonics, tilt_db_per_octave=tilt_db_per_octave,
        attack=0.02, decay=0.1, sustain=0.6, release=0.05, noise_level=noise_level,
        vibrato_cents=vibrato_cents, vibrato_rate_hz=5.5,
    )
    return render(score, timbre, sample_rate=sample_rate, duration=duration, seed=rng)


def _clip_seed(seed: int, clip: int, *salt: int) -> np.random.SeedSequence:
    # Keyed by clip index (and timbre), so clip i is the same whatever n_clips or domains are.
    return np.random.SeedSequence(entropy=seed, spawn_key=(clip, *salt))


def _resolve_domains(n_domains: int, timbres) -> list[Timbre]:
    if timbres is None:
        if not 1 <= n_domains <= len(TIMBRES):
            raise ValueError(
                f"n_domains must be in 1..{len(TIMBRES)} (the built-in timbres: "
                f"{', '.join(t.name for t in TIMBRES)}), got {n_domains}"
            )
        return list(TIMBRES[:n_domains])
    if isinstance(timbres, (str, Timbre)):
        timbres = [timbres]
    resolved = [get_timbre(t) for t in timbres]
    if not resolved:
        raise ValueError("timbres must name at least one timbre")
    names = [t.name for t in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"timbre names must be unique (they are folder names), got {names}")
    return resolved


def write_paired_dataset(
    out_dir: str | os.PathLike,
    n_domains: int = 3,
    n_clips: int = 50,
    seconds: float = 4.0,
    sample_rate: int = 16000,
    seed: int = 0,
    timbres: Sequence[str | Timbre] | None = None,
    progress: bool = False,
) -> dict[str, list[Path]]:
    """Write paired domains: ``out_dir/<timbre>/clip_0000.wav`` ... for each timbre.

    Clip ``clip_i.wav`` holds the same random score in every domain (the ground-truth twins),
    rendered with each domain's timbre; files are mono 16-bit PCM. The output is a function of
    ``(seed, i, timbre, seconds, sample_rate)`` only: the same seed writes byte-identical
    files, and a clip does not depend on ``n_clips`` or on which other domains are written.
    Existing files of the same names are overwritten; other files are left alone.

    Args:
        n_domains: use the first ``n_domains`` of :data:`TIMBRES`; ignored when ``timbres``
            is given.
        timbres: names of built-in timbres and/or :class:`Timbre` objects, one domain each.
        progress: show a tqdm progress bar.

    Returns:
        ``{timbre name: [path of clip 0, clip 1, ...]}`` in domain order.

    Raises:
        ValueError: n_domains outside 1..len(TIMBRES), n_clips < 1, seconds <= 0,
            sample_rate <= 0, seed < 0, an unknown or duplicated timbre name.
    """
    from timbre_transfer.audio.io import save_audio

    domains = _resolve_domains(n_domains, timbres)
    if int(n_clips) != n_clips or n_clips < 1:
        raise ValueError(f"n_clips must be an integer >= 1, got {n_clips}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if round(seconds * sample_rate) < 1:
        raise ValueError(f"seconds={seconds} at {sample_rate} Hz is less than one sample")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    n_clips, sample_rate, seed = int(n_clips), int(sample_rate), int(seed)

    out_dir = Path(out_dir)
    paths: dict[str, list[Path]] = {t.name: [] for t in domains}
    clips = range(n_clips)
    if progress:
        from tqdm import tqdm

        clips = tqdm(clips, desc=f"paired clips -> {out_dir}", unit="clip")
    for i in clips:
        score = random_score(_clip_seed(seed, i), seconds)
        for timbre in domains:
            noise_seed = _clip_seed(seed, i, zlib.crc32(timbre.name.encode()))
            wav = render(score, timbre, sample_rate, duration=seconds, seed=noise_seed)
            path = save_audio(out_dir / timbre.name / f"clip_{i:04d}.wav", wav, sample_rate)
            paths[timbre.name].append(path)
    return paths


def paired_files(data_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """Find twins: ``{clip name: {domain: path}}`` for clips present in EVERY domain folder.

    Domains are the sub-folders of ``data_dir`` (hidden ones skipped); a clip's name is its
    file name without the extension, so ``reed/clip_0003.wav`` and ``brass/clip_0003.flac``
    pair up. Clips missing from any domain are left out. Both levels are sorted by name.

    Raises:
        NotADirectoryError: ``data_dir`` is not a folder.
        ValueError: it has no domain folders, or a folder holds two audio files of one name.
    """
    from timbre_transfer.audio.io import AUDIO_EXTENSIONS

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NotADirectoryError(f"{data_dir}: not a folder")
    domains = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domains:
        raise ValueError(f"{data_dir}: no domain sub-folders")
    per_domain: dict[str, dict[str, Path]] = {}
    for folder in domains:
        clips: dict[str, Path] = {}
        for f in sorted(folder.iterdir()):
            if f.name.startswith(".") or f.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if not f.is_file():
                continue
            if f.stem in clips:
                raise ValueError(
                    f"{folder}: two audio files named {f.stem!r}: {clips[f.stem].name}, {f.name}"
                )
            clips[f.stem] = f
        per_domain[folder.name] = clips
    common = set.intersection(*(set(c) for c in per_domain.values()))
    return {
        clip: {domain: per_domain[domain][clip] for domain in per_domain}
        for clip in sorted(common)
    }
