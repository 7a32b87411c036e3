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


def _harmonic_tone(f0: float, seconds: float = 1.0, amplitude: float = 0.01) -> np.ndarray:
    """Equal partials ``amplitude`` at every ``k * f0`` below Nyquist."""
    t = np.arange(int(SR * seconds)) / SR
    return sum(amplitude * np.sin(2 * np.pi * k * f0 * t)
               for k in range(1, int((SR / 2) // f0) + 1)).astype(np.float32)


@pytest.mark.parametrize("f0, off", [(65.0, 0.06), (110.0, 0.005), (220.0, 0.005),
                                     (523.25, 0.005)])
def test_comb_is_the_mel_the_front_end_measures_of_a_harmonic_tone(grid, f0, off):
    """The comb, times each band's flat response and the partial's peak (amplitude x window
    sum / 2), is the transform's magnitude mel of a tone of equal partials (a middle frame).
    ``off``: the largest error allowed, as a fraction of the highest band: below ~100 Hz the
    partials' lobes overlap and their phases matter, which a magnitude sum cannot know."""
    from timbre_transfer.audio.transform import AudioTransform

    transform = AudioTransform()
    measured = transform.mel(torch.from_numpy(_harmonic_tone(f0)))[:, 60].double()
    comb = grid.comb(torch.tensor([[f0]]), torch.ones(1, 1))[0, 0, :, 0].double()
    expected = comb * grid.comb.flat.double() * 0.01 * float(transform.window.sum()) / 2
    if f0 > 100:  # resolved partials: each band within 1 %
        strong = comb > 0.2
        np.testing.assert_allclose(measured[strong], expected[strong], rtol=0.01)
    # and nothing anywhere (between the partials, near Nyquist) that the comb does not draw
    assert float((measured - expected).abs().max()) < off * float(measured.max())


def test_comb_peaks_sit_on_the_harmonics_and_follow_voicing(grid):
    f0 = 220.0
    comb = grid.comb(torch.tensor([[f0, f0, 0.0]]), torch.tensor([[1.0, 0.25, 1.0]]))[0, 0]
    column = comb[:, 0].numpy()
    peaks = [m for m in range(1, N_MELS - 1)
             if column[m] > column[m - 1] and column[m] >= column[m + 1] and column[m] > 0.3]
    # each resolved harmonic peaks in the band nearest its frequency (below 1.5 kHz the
    # partials are at least 4 bands apart)
    resolved = [k * f0 for k in range(1, 7)]
    assert peaks[:6] == [round(_librosa_bin(hz)) for hz in resolved]
    torch.testing.assert_close(comb[:, 1], 0.25 * comb[:, 0])  # scaled by the voicing
    assert float(comb[:, 2].abs().max()) == 0.0  # no note, no comb


def test_notes_stack_template_and_comb(grid):
    f0, voiced = torch.full((2, 5), 330.0), torch.ones(2, 5)
    torch.testing.assert_close(grid.notes(f0, voiced), grid.template(f0, voiced))
    both = grid.notes(f0, voiced, source_filter=True)
    assert both.shape == (2, 2, N_MELS, 5)
    torch.testing.assert_close(both[:, 1:], grid.comb(f0, voiced))
    with pytest.raises(ValueError, match="has no comb"):
        MelPitch(SR, N_MELS).notes(f0, voiced, source_filter=True)

