"""The performance controls of DDSP's demo: autotune and the quiet threshold, on the analysed
controls and through a whole transfer (the mel path's notes, a DDSP head's f0, the gate)."""

import numpy as np
import pytest
import torch

from tests.inference.test_transfer import _Mirror
from timbre_transfer.audio.features import Controls
from timbre_transfer.audio.performance import Performance, autotune, gate
from timbre_transfer.inference.transfer import TimbreTransfer

SR = 16000


def _cents(f, ref):
    return 1200 * np.log2(np.asarray(f) / ref)


def _vibrato(seconds=2.0, centre=440.0 * 2 ** (0.2 / 12), depth_cents=30.0, rate=5.5):
    """A 6-harmonic tone whose f0 swings +-``depth_cents`` around ``centre`` (20 c above A4,
    so the nearest semitone is always A4), and its f0 per sample."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = centre * 2 ** (depth_cents / 1200 * np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(0.1 / k * np.sin(k * phase) for k in range(1, 7))
    return wav.astype(np.float32), f0


def test_autotune_moves_f0_by_the_asked_fraction_of_the_way_to_the_semitone():
    f0 = np.array([0.0, 440.0, 440.0 * 2 ** (0.3 / 12), 440.0 * 2 ** (-0.4 / 12), 261.0])
    np.testing.assert_array_equal(autotune(f0, 0.0), f0)
    snapped = autotune(f0, 1.0)
    assert snapped[0] == 0.0  # no pitch stays no pitch
    np.testing.assert_allclose(snapped[1:4], 440.0)
    np.testing.assert_allclose(snapped[4], 440.0 * 2 ** (-9 / 12))  # C4 = 261.63 Hz
    # half way: 30 c sharp becomes 15 c sharp, 40 c flat 20 c flat
    np.testing.assert_allclose(_cents(autotune(f0, 0.5)[2:4], 440.0), [15.0, -20.0])


def test_quiet_frames_are_measured_from_the_loudest_frame_and_unvoiced():
    loudness = np.array([-20.0, -25.0, -61.0, -59.0, -100.0])
    controls = Controls(np.full(5, 220.0), np.full(5, 0.9), loudness, np.ones(5, bool))
    played = Performance(quiet_db=40.0).apply(controls)
    np.testing.assert_array_equal(played.voiced, [True, True, False, True, False])
    np.testing.assert_array_equal(played.voiced_prob, [0.9, 0.9, 0.0, 0.9, 0.0])
    assert Performance().apply(controls) is controls  # the defaults change nothing
    with pytest.raises(ValueError, match="autotune must be between 0 and 1"):
        Performance(autotune=1.5)
    with pytest.raises(ValueError, match="quiet must be a positive number of dB"):
        Performance(quiet_db=-3)


def test_gate_silences_the_quiet_frames_with_a_one_hop_ramp():
    audio = np.ones(10 * 100, np.float32)
    quiet = np.zeros(11, bool)
    quiet[4:7] = True  # frames 4-6: samples 400-600 silent, ramps over 300-400 and 600-700
    out = gate(audio, quiet, 100)
    assert np.all(out[400:601] == 0) and np.all(out[:301] == 1) and np.all(out[700:] == 1)
    assert 0 < out[350] < 1 and np.all(np.diff(out[300:401]) <= 0)


def _ddsp_tt():
    """A transfer through the mirror model with an untrained DDSP head: its harmonic
    oscillator plays exactly the f0 it is given, whatever its weights."""
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    transform = AudioTransform()
    transform.norm_scale.fill_(4.0)
    tt = TimbreTransfer(_Mirror(), transform, ["a"], window=None, pitch_medians={"a": 440.0})
    p = transform.params
    torch.manual_seed(0)
    head = DDSPHead(p.n_mels, p.sample_rate, p.hop_length,
                    DDSPConfig(hidden=8, n_harmonics=4, n_noise_bands=5)).eval()
    with torch.no_grad():  # the noise bands off: the f0 tracker hears the oscillator alone
        head.decoder.proj.bias[-5:] = -20.0
    tt.ddsp["a"] = head
    return tt


def test_autotune_one_puts_a_vibrato_on_the_nearest_semitone():
    from timbre_transfer.audio.f0 import track_f0

    tt = _ddsp_tt()
    wav, _ = _vibrato()
    played = {amount: tt.transfer(wav, SR, "a", inverter="ddsp", octave=0,
                                  performance=Performance(autotune=amount))
              for amount in (0.0, 1.0)}
    np.testing.assert_array_equal(played[0.0], tt.transfer(wav, SR, "a", inverter="ddsp",
                                                           octave=0))  # 0 changes nothing
    cents = {}
    for amount, out in played.items():
        track = track_f0(out[SR // 4:-SR // 4], SR, 160, "pyin")
        cents[amount] = _cents(track.f0[track.voiced], 440.0)
    assert np.all(np.abs(cents[1.0]) < 10), np.abs(cents[1.0]).max()
    assert np.abs(cents[0.0]).max() > 35  # the vibrato itself survives without autotune


def test_autotune_moves_the_notes_a_template_model_plays():
    import dataclasses

    from timbre_transfer.audio.transform import AudioTransform

    tt = TimbreTransfer(_Mirror(), AudioTransform(), ["a"], window=None)
    # the notes are drawn (the mirror ignores them)
    tt.model.config = dataclasses.replace(tt.model.config, pitch_template=True)
    wav, _ = _vibrato(1.0)
    level, _ = tt._at_training_level(wav, SR)
    n = tt.transform(torch.from_numpy(level)).shape[-1]
    source = tt.source_controls(level, n)
    tuned = tt.notes(level, n, 0, Performance(autotune=1.0))
    by_hand = tt.mel_pitch.notes(torch.full((1, n), 440.0) * torch.as_tensor(source.f0_hz > 0),
                                 torch.as_tensor(source.voiced_prob, dtype=torch.float32)[None],
                                 False)[0]
    torch.testing.assert_close(tuned, by_hand)
    assert not torch.allclose(tt.notes(level, n, 0), by_hand)


def test_quiet_silences_a_quiet_passage_and_keeps_a_loud_one():
    from timbre_transfer.audio.transform import AudioTransform

    tt = TimbreTransfer(_Mirror(), AudioTransform(), ["a"], window=None)
    wav, _ = _vibrato(2.0)
    wav[SR:] *= 10 ** (-50 / 20)  # the second second 50 dB down
    plain = tt.transfer(wav, SR, "a", inverter="griffinlim", octave=0)
    gated = tt.transfer(wav, SR, "a", inverter="griffinlim", octave=0,
                        performance=Performance(quiet_db=40.0))
    # 100 ms from the change: the loudness frames (1024 samples) that straddle it read both
    quiet, loud = slice(SR + SR // 10, None), slice(None, SR - SR // 10)
    assert np.sqrt(np.mean(plain[quiet] ** 2)) > 1e-4  # transferred as a faint sound
    assert np.all(gated[quiet] == 0)  # silenced
    np.testing.assert_array_equal(gated[loud], plain[loud])  # the loud passage: as it was
