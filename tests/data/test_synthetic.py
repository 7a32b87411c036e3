"""Paired synthetic domains: determinism, twins sharing pitch/timing, distinct timbres, files."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import soundfile as sf

from timbre_transfer.audio.io import load_audio
from timbre_transfer.data.synthetic import (
    TIMBRES,
    Score,
    Timbre,
    get_timbre,
    paired_files,
    random_score,
    render,
    render_melody,
    write_paired_dataset,
)

SR = 16000
NAMES = [t.name for t in TIMBRES]


# ---------------------------------------------------------------- measurement helpers


def f0_track(wav: np.ndarray, sr: int = SR, n_fft: int = 2048, hop: int = 256):
    """Per-frame (centre time s, f0 Hz) from the strongest peak in 200-1200 Hz.

    Every built-in timbre has a falling spectrum, so that peak is the fundamental. Parabolic
    interpolation on the log magnitude refines it below the 7.8 Hz bin width. Frames quieter
    than 5 % of the loudest frame's RMS get NaN.
    """
    wav = np.asarray(wav, dtype=np.float64)
    n_frames = 1 + (len(wav) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = wav[idx]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = np.flatnonzero((freqs >= 200) & (freqs <= 1200))
    peak = band[0] + np.argmax(mag[:, band], axis=1)
    logm = np.log(mag + 1e-12)
    rows = np.arange(n_frames)
    a, b, c = logm[rows, peak - 1], logm[rows, peak], logm[rows, peak + 1]
    offset = 0.5 * (a - c) / np.where(a - 2 * b + c == 0, -1e-12, a - 2 * b + c)
    f0 = (peak + offset) * sr / n_fft
    rms = np.sqrt((frames**2).mean(axis=1))
    f0[rms < 0.05 * rms.max()] = np.nan
    times = (hop * rows + n_fft / 2) / sr
    return times, f0


def cents(f_a, f_b) -> np.ndarray:
    """|1200 log2(a/b)| on frames where both are voiced."""
    ok = np.isfinite(f_a) & np.isfinite(f_b)
    return np.abs(1200 * np.log2(f_a[ok] / f_b[ok]))


def note_features(wav: np.ndarray, f0: float = 440.0, sr: int = SR) -> dict[str, float]:
    """Timbre statistics of one 1 s note at ``f0``, starting at t = 0.

    centroid: power-weighted mean harmonic number (brightness, pitch-independent).
    even_odd_db: power of even over odd harmonics.
    noise_db: power midway between harmonics 1..4 over all power below 2 kHz.
    attack: seconds until 5 ms-frame RMS first reaches 90 % of its maximum.
    sustain: RMS over 0.7-0.9 s relative to the maximum frame RMS.
    """
    wav = np.asarray(wav, dtype=np.float64)
    seg = wav[int(0.15 * sr) : int(0.45 * sr)]
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    freqs = np.fft.rfftfreq(len(seg), 1 / sr)
    k = np.arange(1, int(0.9 * sr / 2 // f0) + 1)
    harm = np.array([power[np.abs(freqs - j * f0) < 0.03 * j * f0].max() for j in k])
    between = sum(power[np.abs(freqs - (j + 0.5) * f0) < 40].sum() for j in (1, 2, 3))
    fr = int(0.005 * sr)
    rms = np.sqrt((wav[: len(wav) // fr * fr].reshape(-1, fr) ** 2).mean(axis=1))
    return {
        "centroid": float((k * harm).sum() / harm.sum()),
        "even_odd_db": float(10 * np.log10(harm[1::2].sum() / harm[0::2].sum())),
        "noise_db": float(10 * np.log10(between / power[freqs < 2000].sum())),
        "attack": float(np.argmax(rms >= 0.9 * rms.max()) * 0.005),
        "sustain": float(np.sqrt((wav[int(0.7 * sr) : int(0.9 * sr)] ** 2).mean()) / rms.max()),
    }


def log_mel(wav: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=1024, hop_length=256, n_mels=64)
    return np.log(mel + 1e-6)


ONE_NOTE = Score(onsets=[0.0], durations=[1.0], midi=[69], velocities=[1.0])  # A4, 440 Hz


@pytest.fixture(scope="module")
def note_table() -> dict[str, dict[str, float]]:
    return {t.name: note_features(render(ONE_NOTE, t, SR, seed=1)) for t in TIMBRES}


# ---------------------------------------------------------------- timbres


def test_builtin_timbres_are_valid_and_named():
    assert len(TIMBRES) >= 5
    assert len(set(NAMES)) == len(NAMES)
    assert {"reed", "brass", "flute", "bowed", "pluck"} <= set(NAMES)
    for t in TIMBRES:
        assert get_timbre(t.name) is t
        gains = t.harmonic_gains()
        assert gains.shape == (t.n_harmonics,) and gains[0] == 1.0
    with pytest.raises(ValueError, match=r"unknown timbre 'kazoo'.*reed, brass, flute"):
        get_timbre("kazoo")
    with pytest.raises(ValueError, match="folder"):
        Timbre("a/b")
    with pytest.raises(ValueError, match="sustain"):
        Timbre("x", sustain=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TIMBRES[0].n_harmonics = 3


def test_each_timbre_has_its_character(note_table):
    """Each built-in timbre shows the trait it is named for, on one A4 note."""
    f = note_table
    others = lambda name: [v for k, v in f.items() if k != name]  # noqa: E731
    # reed: odd partials only (measured -33 dB; all others >= -19 dB).
    assert f["reed"]["even_odd_db"] < -25
    assert all(o["even_odd_db"] > f["reed"]["even_odd_db"] + 10 for o in others("reed"))
    # brass: the brightest (centroid 3.7 harmonics vs <= 2.9) and the slowest attack (95 ms).
    assert all(f["brass"]["centroid"] > 1.2 * o["centroid"] for o in others("brass"))
    assert all(f["brass"]["attack"] >= o["attack"] + 0.025 for o in others("brass"))
    # flute: nearly a sine (centroid 1.04) with breath noise 20 dB above anyone else's.
    assert f["flute"]["centroid"] < 1.1
    assert all(f["flute"]["noise_db"] > o["noise_db"] + 15 for o in others("flute"))
    # pluck: no sustain (0.00 vs >= 0.72) and the fastest attack.
    assert f["pluck"]["sustain"] < 0.05
    assert all(o["sustain"] > 0.6 for o in others("pluck"))
    assert all(f["pluck"]["attack"] < o["attack"] for o in others("pluck"))
    # bowed: all partials (even/odd near the sawtooth's), brighter than a sine-like flute.
    assert -12 < f["bowed"]["even_odd_db"] < -3
    assert f["bowed"]["centroid"] > 1.3 * f["flute"]["centroid"]


MARGINS = {"centroid": 1.25, "even_odd_db": 6.0, "noise_db": 10.0, "attack": 0.025, "sustain": 0.3}


def separation(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """How many margins apart two timbres are, per feature (centroid compared as a ratio)."""
    out = {}
    for key, margin in MARGINS.items():
        if key == "centroid":
            out[key] = abs(np.log(a[key] / b[key])) / np.log(margin)
        else:
            out[key] = abs(a[key] - b[key]) / margin
    return out


@pytest.mark.parametrize("pair", list(itertools.combinations(NAMES, 2)), ids="-".join)
def test_every_pair_of_timbres_differs_clearly(note_table, pair):
    """Same score, two timbres: at least one statistic differs by more than its clear margin."""
    sep = separation(note_table[pair[0]], note_table[pair[1]])
    assert max(sep.values()) > 1.0, f"{pair} too similar: {sep}"


def test_timbres_differ_in_the_mel_spectrogram_more_than_noise_seeds():
    """On one melody, twins in two timbres are far apart frame by frame in log-mel; two
    renders of one timbre that differ only in the breath-noise seed are not."""
    score = random_score(5, 1.5)
    mels = {t.name: log_mel(render(score, t, SR, seed=0)) for t in TIMBRES}
    across = min(
        np.sqrt(np.mean((mels[a] - mels[b]) ** 2)) for a, b in itertools.combinations(NAMES, 2)
    )
    within = max(
        np.sqrt(np.mean((mels[t.name] - log_mel(render(score, t, SR, seed=1))) ** 2))
        for t in TIMBRES
    )
    assert across > 3 * within, (across, within)


# ---------------------------------------------------------------- scores


def test_random_score_draws_notes_as_specified():
    score = random_score(3, 6.0)
    assert len(score) >= 10
    assert score.onsets[0] == 0
    np.testing.assert_allclose(score.onsets[1:], (score.onsets + score.durations)[:-1])  # legato
    assert score.end == pytest.approx(6.0)
    assert ((score.durations[:-1] >= 0.2) & (score.durations[:-1] <= 0.6)).all()
    assert 0 < score.durations[-1] <= 0.6
    assert ((score.midi >= 60) & (score.midi <= 84)).all()
    assert set(score.midi.astype(int) % 12) <= {0, 2, 4, 5, 7, 9, 11}
    assert ((score.velocities >= 0.5) & (score.velocities <= 1.0)).all()
    same = random_score(np.random.default_rng(3), 6.0)
    np.testing.assert_array_equal(same.midi, score.midi)
    assert not np.array_equal(random_score(4, 6.0).midi[:8], score.midi[:8])
    with pytest.raises(ValueError):
        score.midi[0] = 1  # read-only
    with pytest.raises(ValueError, match="duration"):
        random_score(0, 0.0)
    with pytest.raises(ValueError, match="length"):
        Score(onsets=[0, 1], durations=[1], midi=[60])
    with pytest.raises(ValueError, match="velocities"):
        Score(onsets=[0], durations=[1], midi=[60], velocities=[0])


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("timbre", TIMBRES, ids=NAMES)
def test_render_output_contract(timbre):
    score = random_score(1, 2.0)
    wav = render(score, timbre, SR, duration=1.23, seed=0)
    assert wav.dtype == np.float32 and wav.shape == (round(1.23 * SR),)
    assert np.isfinite(wav).all()
    assert np.abs(wav).max() == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_array_equal(wav, render(score, timbre, SR, duration=1.23, seed=0))
    assert render(score, timbre, 22050, duration=0.5).shape == (round(0.5 * 22050),)
    # Nothing sounds before the first note, and silence stays silence.
    late = Score(onsets=[0.5], durations=[0.5], midi=[60])
    assert np.abs(render(late, timbre, SR)[: SR // 2]).max() == 0
    assert not render(late, timbre, SR, duration=0.4).any()


def test_noise_seed_changes_only_the_breath():
    score = random_score(2, 1.0)
    a, b = (render(score, "flute", SR, seed=s) for s in (0, 1))
    assert not np.array_equal(a, b)
    # A timbre without noise ignores the seed entirely.
    quiet = dataclasses.replace(get_timbre("reed"), noise_level=0.0)
    quiet_a, quiet_b = (render(score, quiet, SR, seed=s) for s in (0, 1))
    np.testing.assert_array_equal(quiet_a, quiet_b)


def note_pitches(score: Score, times: np.ndarray, f0: np.ndarray, half_window: float = 0.064):
    """Mean f0 per note over the voiced frames whose window lies inside it (NaN if none);
    averaging over about a vibrato cycle removes most of the vibrato."""
    out = np.full(len(score), np.nan)
    for j, (on, dur) in enumerate(zip(score.onsets, score.durations)):
        inside = (times - half_window >= on) & (times + half_window <= on + dur) & np.isfinite(f0)
        if inside.any():
            out[j] = np.mean(f0[inside])
    return out


def test_twins_share_pitch_and_other_scores_do_not():
    score, other = random_score(11, 3.0), random_score(12, 3.0)
    renders = {t.name: f0_track(render(score, t, SR, seed=0)) for t in TIMBRES}
    _, other_f0 = f0_track(render(other, "reed", SR, seed=0))
    truth_hz = 440.0 * 2 ** ((score.midi - 69) / 12)
    for t in TIMBRES:
        times, f0 = renders[t.name]
        assert np.isfinite(f0).mean() > 0.6, t.name  # most frames voiced (pluck decays)
        # Pitch: every note is played at the score's pitch (vibrato averaged out).
        per_note = note_pitches(score, times, f0)
        assert np.isfinite(per_note).sum() >= len(score) - 1, t.name
        assert np.nanmax(cents(per_note, truth_hz)) < 20, t.name
    # Pitch contour: frame by frame, twins agree up to their vibrato depths. Frames whose 128 ms
    # window spans a note change are left out (which note dominates there depends on the
    # envelope, e.g. a pluck's loud attack).
    times = renders["reed"][0]
    single = ~(np.abs(times[:, None] - score.onsets[1:][None, :]) < 0.064).any(axis=1)
    for a, b in itertools.combinations(TIMBRES, 2):
        err = cents(renders[a.name][1][single], renders[b.name][1][single])
        tolerance = 30 + a.vibrato_cents + b.vibrato_cents
        assert np.mean(err < tolerance) > 0.97, (a.name, b.name, np.mean(err < tolerance))
    # A different melody disagrees.
    assert np.median(cents(renders["reed"][1], other_f0)) > 100


def envelope_dips(wav: np.ndarray, boundaries: np.ndarray, search: float = 0.05) -> np.ndarray:
    """Time (s) of the amplitude minimum within +-``search`` s of each note boundary, on a 5 ms
    moving average of |wav|: every timbre releases to 0 and attacks from 0 there."""
    k = int(0.005 * SR)
    env = np.convolve(np.abs(np.asarray(wav, dtype=np.float64)), np.ones(k) / k, mode="same")
    lows = [int((b - search) * SR) for b in boundaries]
    return np.array([lo + np.argmin(env[lo : lo + int(2 * search * SR)]) for lo in lows]) / SR


def test_twins_share_note_timing():
    score = random_score(11, 3.0)
    boundaries = score.onsets[1:]
    dips = {t.name: envelope_dips(render(score, t, SR), boundaries) for t in TIMBRES}
    for name, d in dips.items():
        assert np.abs(d - boundaries).max() < 0.004, name  # measured <= 2.5 ms (pluck)
    for a, b in itertools.combinations(NAMES, 2):
        assert np.abs(dips[a] - dips[b]).max() < 0.005, (a, b)
    # The check sees a 10 ms offset: the same notes rendered 10 ms late.
    late = Score(score.onsets + 0.01, score.durations, score.midi, score.velocities)
    shifted = envelope_dips(render(late, "brass", SR, duration=3.0), boundaries)
    assert np.abs(shifted - dips["brass"]).min() > 0.008


def test_no_aliasing_for_a_high_note():
    """C7 (2093 Hz) at 16 kHz on the sawtooth-like timbre: partials 1-3 fit under Nyquist,
    partial 4 (8372 Hz) and up would fold back to 7628, 5535, 3442 ... Hz. All power must lie
    within +-3 % (vibrato) of the true partials; a naive render shows the check is sensitive."""
    timbre = dataclasses.replace(get_timbre("bowed"), noise_level=0.0)
    note = Score(onsets=[0.0], durations=[1.0], midi=[96])
    f0 = 440.0 * 2 ** ((96 - 69) / 12)

    def off_harmonic_fraction(wav):
        seg = np.asarray(wav[int(0.2 * SR) : int(0.8 * SR)], dtype=np.float64)
        power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1 / SR)
        near = np.zeros(len(freqs), bool)
        for k in range(1, int(SR / 2 // f0) + 1):
            near |= np.abs(freqs - k * f0) < 0.03 * k * f0 + 20
        return power[~near].sum() / power.sum()

    wav = render(note, timbre, SR)
    assert off_harmonic_fraction(wav) < 1e-4

    t = np.arange(SR) / SR
    vib = 2 ** (timbre.vibrato_cents / 1200 * np.sin(2 * np.pi * timbre.vibrato_rate_hz * t))
    phase = 2 * np.pi * np.cumsum(f0 * vib) / SR
    naive = sum(g * np.sin(k * phase) for k, g in enumerate(timbre.harmonic_gains(), start=1))
    assert off_harmonic_fraction(naive) > 1e-2


# ---------------------------------------------------------------- render_melody


def test_render_melody_keeps_its_contract():
    wav = render_melody(duration=2.0, seed=3)
    assert wav.dtype == np.float32 and wav.shape == (32000,)
    assert np.abs(wav).max() == pytest.approx(0.5, abs=1e-6)
    odd = render_melody(sample_rate=22050, duration=1.2345, seed=1)
    assert odd.shape == (round(1.2345 * 22050),)
    np.testing.assert_array_equal(wav, render_melody(duration=2.0, seed=3))
    assert not np.array_equal(wav, render_melody(duration=2.0, seed=4))
    _, f0 = f0_track(render_melody(duration=1.5, seed=3))
    assert np.isfinite(f0).mean() > 0.6  # a pitched melody, not noise
    with pytest.raises(ValueError, match="duration"):
        render_melody(duration=0)


# ---------------------------------------------------------------- files


def test_write_paired_dataset_layout_and_pairing(tmp_path):
    out = write_paired_dataset(tmp_path / "d", n_domains=3, n_clips=3, seconds=1.0, seed=7)
    assert list(out) == NAMES[:3]
    names = [f"clip_{i:04d}.wav" for i in range(3)]
    for domain, paths in out.items():
        assert [p.name for p in paths] == names
        assert sorted(p.name for p in (tmp_path / "d" / domain).iterdir()) == names
        for p in paths:
            info = sf.info(str(p))
            assert (info.samplerate, info.channels, info.frames) == (SR, 1, SR)
            assert info.subtype == "PCM_16"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(NAMES[:3])

    pairs = paired_files(tmp_path / "d")
    assert list(pairs) == ["clip_0000", "clip_0001", "clip_0002"]
    for clip, by_domain in pairs.items():
        assert by_domain == {d: out[d][int(clip[-4:])] for d in NAMES[:3]}

    # The files are twins: same pitch track in two domains, not across clips.
    _, f_reed = f0_track(load_audio(pairs["clip_0001"]["reed"]))
    _, f_flute = f0_track(load_audio(pairs["clip_0001"]["flute"]))
    _, f_other = f0_track(load_audio(pairs["clip_0002"]["flute"]))
    assert np.median(cents(f_reed, f_flute)) < 15
    assert np.median(cents(f_reed, f_other)) > 100


def test_write_paired_dataset_is_deterministic(tmp_path):
    kw = dict(n_domains=2, n_clips=2, seconds=0.5)
    a = write_paired_dataset(tmp_path / "a", seed=1, **kw)
    b = write_paired_dataset(tmp_path / "b", seed=1, **kw)
    c = write_paired_dataset(tmp_path / "c", seed=2, **kw)
    for domain in a:
        for pa, pb, pc in zip(a[domain], b[domain], c[domain]):
            assert pa.read_bytes() == pb.read_bytes()
            assert pa.read_bytes() != pc.read_bytes()
    # A clip depends on (seed, index, timbre) only, not on n_clips or the other domains.
    solo = write_paired_dataset(tmp_path / "s", n_clips=1, seconds=0.5, seed=1, timbres=["brass"])
    assert solo["brass"][0].read_bytes() == a["brass"][0].read_bytes()


def test_write_paired_dataset_accepts_timbre_objects(tmp_path):
    custom = Timbre("organ", n_harmonics=8, tilt_db_per_octave=-3.0, attack=0.01, sustain=1.0)
    out = write_paired_dataset(tmp_path, n_clips=1, seconds=0.3, timbres=[custom, "pluck"])
    assert list(out) == ["organ", "pluck"]
    assert (tmp_path / "organ" / "clip_0000.wav").is_file()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_domains=0), r"n_domains must be in 1\.\.5"),
        (dict(n_domains=len(TIMBRES) + 1), r"n_domains must be in 1\.\.5"),
        (dict(n_clips=0), "n_clips"),
        (dict(seconds=0.0), "seconds must be positive"),
        (dict(seconds=-1.0), "seconds must be positive"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(seconds=1e-6), "less than one sample"),
        (dict(seed=-1), "seed"),
        (dict(timbres=["reed", "kazoo"]), r"unknown timbre 'kazoo'; known timbres: reed, brass"),
        (dict(timbres=["reed", "reed"]), "unique"),
        (dict(timbres=[]), "at least one"),
    ],
)
def test_write_paired_dataset_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_paired_dataset(tmp_path / "x", **{"n_clips": 1, "seconds": 0.2, **kwargs})
    assert not (tmp_path / "x").exists()  # validated before anything is written


def test_paired_files_keeps_only_complete_pairs(tmp_path):
    write_paired_dataset(tmp_path, n_domains=2, n_clips=3, seconds=0.2)
    (tmp_path / "reed" / "clip_0001.wav").unlink()
    (tmp_path / "brass" / "notes.txt").write_text("not audio")
    (tmp_path / ".cache").mkdir()
    pairs = paired_files(tmp_path)
    assert list(pairs) == ["clip_0000", "clip_0002"]
    assert set(pairs["clip_0002"]) == {"reed", "brass"}
    with pytest.raises(NotADirectoryError):
        paired_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="no domain"):
        paired_files(tmp_path / "reed")
