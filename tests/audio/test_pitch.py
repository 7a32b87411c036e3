"""Pitch on the mel grid: harmonic templates and mel pitch shifts, checked by hand."""

import math

import librosa
import numpy as np
import pytest
import torch

from timbre_transfer.audio.pitch import TEMPLATE_WIDTH_BINS, MelPitch, hz_to_mel
from timbre_transfer.audio.transform import TransformParams

SR, N_MELS = 16000, 128


@pytest.fixture(scope="module")
def grid() -> MelPitch:
    return MelPitch.of(TransformParams())


@pytest.mark.parametrize("htk", [False, True])
def test_hz_to_mel_matches_librosa(htk):
    hz = np.array([0.0, 55.0, 440.0, 999.0, 1000.0, 1500.0, 7999.0])
    ours = hz_to_mel(torch.tensor(hz, dtype=torch.float64), htk).numpy()
    np.testing.assert_allclose(ours, librosa.hz_to_mel(hz, htk=htk), rtol=1e-9, atol=1e-9)


def _librosa_bin(hz: float) -> float:
    """The fractional mel bin of ``hz`` by interpolating librosa's filter centres."""
    centres = librosa.mel_frequencies(N_MELS + 2, fmin=0.0, fmax=SR / 2)[1:-1]
    return float(np.interp(librosa.hz_to_mel(hz), librosa.hz_to_mel(centres), np.arange(N_MELS)))


def test_template_puts_a_unit_bump_on_every_harmonic(grid):
    f0 = 440.0
    template = grid.template(torch.tensor([[f0]]), torch.tensor([[1.0]]))
    assert template.shape == (1, 1, N_MELS, 1)
    column = template[0, 0, :, 0].numpy()
    for k in (1, 2, 3, 5, 8):
        pos = _librosa_bin(k * f0)
        nearest = int(round(pos))
        expected = math.exp(-0.5 * ((nearest - pos) / TEMPLATE_WIDTH_BINS) ** 2)
        assert column[nearest] == pytest.approx(expected, abs=1e-4), k
    # between the first two harmonics (well apart on the mel axis) the template is empty
    middle = int(round((_librosa_bin(440.0) + _librosa_bin(880.0)) / 2))
    assert column[middle] < 1e-6
    # nothing below the fundamental
    assert column[: int(_librosa_bin(440.0)) - 2].max() < 1e-6


def test_template_scales_with_voicing_and_is_empty_without_a_note(grid):
    f0 = torch.tensor([[220.0, 220.0, 0.0]])
    voiced = torch.tensor([[1.0, 0.25, 1.0]])
    t = grid.template(f0, voiced)[0, 0]
    torch.testing.assert_close(t[:, 1], 0.25 * t[:, 0])
    assert t[:, 2].abs().max() == 0.0  # 0 Hz: no note


def test_template_stops_at_f_max(grid):
    # 3000 Hz: harmonics 3000 and 6000 are inside 8 kHz, 9000 is not; so two bumps only
    column = grid.template(torch.tensor([[3000.0]]), torch.tensor([[1.0]]))[0, 0, :, 0]
    peaks = [m for m in range(1, N_MELS - 1)
             if column[m] > 0.5 and column[m] >= column[m - 1] and column[m] >= column[m + 1]]
    assert len(peaks) == 2


def test_template_shape_errors(grid):
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        grid.template(torch.ones(2, 3), torch.ones(2, 4))


def test_shift_by_one_is_identity_and_moves_bins_like_frequencies(grid):
    spec = torch.rand(2, 1, N_MELS, 5)
    torch.testing.assert_close(grid.shift(spec, 1.0, fill=0.0), spec)
    # above 1 kHz the Slaney mel axis is logarithmic: a pitch ratio is a translation, so the
    # template of f0 moved by a ratio is the template of f0 * ratio (up to interpolation)
    f0, ratio = 1100.0, 1.5
    moved = grid.shift(grid.template(torch.tensor([[f0]]), torch.ones(1, 1)), ratio, fill=0.0)
    direct = grid.template(torch.tensor([[f0 * ratio]]), torch.ones(1, 1))
    assert int(moved[0, 0, :, 0].argmax()) == int(direct[0, 0, :, 0].argmax())
    assert (moved - direct).abs().max() < 0.35  # linear interpolation of 0.5-bin-wide bumps


def test_shift_fills_what_comes_from_outside_the_grid(grid):
    spec = torch.ones(1, 1, N_MELS, 3)
    # an octave up, bin 0 (centre c0, on the linear part of the Slaney scale) reads c0 / 2: half
    # way between the lowest filter and the "filter" below it, which is outside: half fill
    up = grid.shift(spec, 2.0, fill=-1.0)
    assert up[0, 0, 0, 0].item() == pytest.approx(0.0, abs=1e-6) and up[0, 0, -1, 0] == 1.0
    down = grid.shift(spec, 0.5, fill=-1.0)  # top bins would come from above f_max
    assert down[0, 0, -1, 0] == -1.0 and down[0, 0, 0, 0] == 1.0
    # one ratio per item
    both = grid.shift(torch.ones(2, 1, N_MELS, 3), torch.tensor([1.0, 2.0]), fill=-1.0)
    assert both[0].min().item() == pytest.approx(1.0) and both[1].min() < 0.5


def _partials(f0: float, level, n_frames: int = 2) -> torch.Tensor:
    """A ``(1, N_MELS, T)`` mel holding ``level(hz)`` on the bin nearest each partial of f0
    (librosa's mel centres) and 0 elsewhere: a note whose partials trace ``level``."""
    spec = np.zeros((N_MELS, n_frames))
    for k in range(1, 65):
        if k * f0 < SR / 2:
            spec[round(_librosa_bin(k * f0)), :] = level(k * f0)
    return torch.tensor(spec, dtype=torch.float32)[None]


def test_partial_envelope_joins_the_partials_by_hand(grid):
    f0 = 440.0
    level = lambda hz: 1.0 - hz / 10000  # noqa: E731  (a gentle tilt)
    spec = _partials(f0, level)
    env = grid.partial_envelope(spec, torch.full((1, 2), f0), torch.zeros(1, 2))
    # straight lines from each partial's fractional bin to the next, at the partial's level;
    # held at the first below it and at the last above it (np.interp holds the ends)
    knots = [(_librosa_bin(k * f0), level(k * f0)) for k in range(1, 65) if k * f0 < SR / 2]
    expected = np.interp(np.arange(N_MELS), *zip(*knots))
    np.testing.assert_allclose(env[0, :, 0].numpy(), expected, atol=1e-5)
    # the ripple between the partials is gone: the envelope never drops to the zeros between
    assert env.min() > 0.2 and spec.min() == 0.0


def test_partial_envelope_holds_below_the_floor_and_keeps_frames_without_a_note(grid):
    spec = _partials(220.0, lambda hz: 1.0, n_frames=3)
    spec[..., 2] = torch.rand(N_MELS)  # a frame with no note: kept as it is
    f0 = torch.tensor([[220.0, 220.0, 0.0]])
    floor = torch.tensor([[0.0, 880.0, 0.0]])
    tilted = spec * torch.linspace(1, 2, N_MELS)[:, None]
    env = grid.partial_envelope(tilted, f0, floor)
    start = math.ceil(_librosa_bin(880.0))
    assert (env[0, :start, 1] == env[0, start, 1]).all()  # every bin below the floor's
    torch.testing.assert_close(env[0, start:, 1], env[0, start:, 0])  # above it, as without
    assert env[0, 0, 0] < env[0, start, 0]  # no floor: the tilt goes on down
    torch.testing.assert_close(env[0, :, 2], tilted[0, :, 2])
    with pytest.raises(ValueError, match=r"floor must be \(B, T\)"):
        grid.partial_envelope(spec, f0, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"expected a mel"):
        grid.partial_envelope(spec[:, :40], f0, floor)


def test_one_timbre_at_two_registers_looks_alike_through_its_partials(grid):
    """The same envelope (a formant at 1.2 kHz) played two octaves apart: the mels differ where
    one has partials and the other has none, their envelopes under a shared floor agree."""
    formant = lambda hz: math.exp(-((hz - 1200.0) / 900.0) ** 2)  # noqa: E731
    low, high = _partials(110.0, formant), _partials(440.0, formant)
    floor = torch.full((1, 2), 440.0)
    env_low = grid.partial_envelope(low, torch.full((1, 2), 110.0), floor)
    env_high = grid.partial_envelope(high, torch.full((1, 2), 440.0), floor)
    start = math.ceil(_librosa_bin(440.0))
    assert (env_low - env_high)[0, start:].abs().mean() < 0.1 * env_high[0, start:].abs().mean()
    assert (low - high)[0, start:].abs().mean() > 0.5 * high[0, start:].abs().mean()
