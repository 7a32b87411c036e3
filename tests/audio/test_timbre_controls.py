"""Timbre knobs move their descriptor by the amount their unit says, on the spectrum they edit
and in the audio that comes out."""

import math

import numpy as np
import pytest
import torch

from timbre_transfer.audio import descriptors as D
from timbre_transfer.audio.timbre_controls import (
    KNOBS,
    check_controls,
    edit_mel,
    edit_synth,
    noise_boost,
)

SR = 16000
HOP = 256


def synth_controls(n_frames=40, f0=196.0):
    k = torch.arange(1, 61, dtype=torch.float32)
    f0 = torch.full((1, n_frames), f0)
    amplitude = torch.full((1, n_frames), 0.3)
    dist = (k ** -1.2).expand(1, n_frames, 60).clone()
    noise = torch.linspace(0.01, 0.002, 65).expand(1, n_frames, 65).clone()
    return f0, amplitude, dist, noise


def expected(f0, amplitude, dist, noise):
    return D.describe_synth(f0[0].numpy(), amplitude[0].numpy(), dist[0].numpy(),
                            noise[0].numpy(), SR, HOP).summary()


@pytest.mark.parametrize("name,value,descriptor,change", [
    ("brightness", 0.5, "brightness", 0.5), ("brightness", -0.4, "brightness", -0.4),
    ("noisiness", 5.0, "noisiness", 5.0), ("noisiness", -6.0, "noisiness", -6.0),
    ("odd_even", 4.0, "odd_even", 4.0), ("odd_even", -6.0, "odd_even", -6.0)])
def test_each_knob_moves_its_descriptor_by_its_value(name, value, descriptor, change):
    controls = synth_controls()
    before = expected(*controls)
    after = expected(controls[0], *edit_synth(*controls, SR, {name: value}))
    assert after[descriptor] - before[descriptor] == pytest.approx(change, abs=0.02)


def test_noisiness_keeps_the_frame_energy_and_the_f0():
    f0, amplitude, dist, noise = synth_controls()
    a2, d2, n2 = edit_synth(f0, amplitude, dist, noise, SR, {"noisiness": 6.0})
    d = dist * (f0[..., None] * torch.arange(1, 61) < SR / 2)  # the synthesiser's harmonics
    d = d / d.sum(-1, keepdim=True)
    power = lambda a, d, n: a**2 * (d**2).sum(-1) / 2 + (n**2).mean(-1) / 3
    torch.testing.assert_close(power(a2, d2, n2), power(amplitude, d, noise))
    assert torch.equal(f0, synth_controls()[0])


def test_brightness_of_a_mel_moves_the_centroid_of_the_inverted_audio():
    """The mel edit, through the real front end and PGHI: the audio's centroid moves by the
    requested octaves (within 0.1 octave)."""
    from timbre_transfer.audio.transform import AudioTransform

    transform = AudioTransform()
    t = np.arange(2 * SR) / SR
    wav = sum(0.1 / k * np.sin(2 * np.pi * 196 * k * t) for k in range(1, 30)).astype(np.float32)
    with torch.no_grad():
        log_mel = torch.log1p(transform.mel(torch.from_numpy(wav)))
        transform.fit_normalization([log_mel])
        spec = transform(torch.from_numpy(wav))
    f0 = np.full(1 + len(wav) // HOP, 196.0)
    centroid = {}
    for octaves in (-0.5, 0.0, 0.5):
        edited = edit_mel(spec, transform, {"brightness": octaves} if octaves else {})
        audio = transform.invert(edited, method="pghi", length=len(wav)).numpy()
        centroid[octaves] = np.median(D.describe(audio, SR, HOP, f0_hz=f0).centroid_hz[20:-20])
    assert math.log2(centroid[0.5] / centroid[0.0]) == pytest.approx(0.5, abs=0.1)
    assert math.log2(centroid[-0.5] / centroid[0.0]) == pytest.approx(-0.5, abs=0.1)


def test_controls_are_checked_with_their_range_and_inverter():
    assert check_controls({"brightness": 0.0, "noisiness": 3}, "ddsp") == {"noisiness": 3.0}
    with pytest.raises(ValueError, match=r"brightness must lie in \[-0.5, 0.5\] octaves, got 1.5"):
        check_controls({"brightness": 1.5}, "ddsp")
    with pytest.raises(ValueError, match=r"noisiness must lie in \[-6, 6\] dB"):
        check_controls({"noisiness": float("nan")}, "ddsp")
    with pytest.raises(ValueError, match="unknown timbre control 'sharpness'"):
        check_controls({"sharpness": 1}, "ddsp")
    with pytest.raises(ValueError, match="needs the DDSP head"):
        check_controls({"noisiness": 3}, "pghi+gla")
    assert check_controls({"brightness": 0.3}, "pghi+gla") == {"brightness": 0.3}
    assert all(k.low < 0 < k.high for k in KNOBS.values())


def test_transfer_turns_the_knobs_and_refuses_what_the_inverter_cannot_do():
    from tests.inference.test_transfer import _Mirror, _tones
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.inference.transfer import TimbreTransfer

    transform = AudioTransform()
    transform.norm_scale.fill_(4.0)
    tt = TimbreTransfer(_Mirror(), transform, ["a"], window=None)
    wav = _tones(1.0, [196.0, 392.0, 588.0], 0.1, 0)
    plain = tt.transfer(wav, SR, to="a", inverter="pghi")
    bright = tt.transfer(wav, SR, to="a", inverter="pghi", controls={"brightness": 0.5})
    f0 = np.full(1 + len(wav) // HOP, 196.0)
    ratio = (np.median(D.describe(bright, SR, HOP, f0_hz=f0).centroid_hz[10:-10])
             / np.median(D.describe(plain, SR, HOP, f0_hz=f0).centroid_hz[10:-10]))
    assert math.log2(ratio) == pytest.approx(0.5, abs=0.15)
    with pytest.raises(ValueError, match="needs the DDSP head"):
        tt.transfer(wav, SR, to="a", inverter="pghi", controls={"odd_even": 3})
    with pytest.raises(ValueError, match="must lie in"):
        tt.transfer(wav, SR, to="a", controls={"brightness": -2})


def test_noisiness_is_calibrated_on_the_rendered_audio():
    """Harmonics whose amplitude moves at the frame rate put energy between the partials: a
    floor the noise scaling cannot move. noise_boost solves for the noise gain that moves the
    *measured* noisiness by the request, and stops at the floor."""
    from timbre_transfer.models.ddsp import filtered_noise, harmonic_synth

    n_frames = 126
    n = (n_frames - 1) * HOP
    f0, amplitude, dist, noise = synth_controls(n_frames, f0=262.0)
    amplitude = amplitude * (1 + 0.2 * torch.sin(torch.arange(n_frames) * 2.0))  # tremolo
    voiced = torch.ones_like(f0)

    def render(a, d, z):
        return (harmonic_synth(f0, a, d, SR, HOP, n).audio
                + filtered_noise(z, HOP, n, generator=torch.Generator().manual_seed(0)))

    def measured(audio):
        return np.nanmedian(D.describe(audio[0].numpy(), SR, HOP, f0_hz=f0[0].numpy(),
                                       attacks=False).noisiness[10:-10])

    neutral = measured(render(amplitude, dist, noise))
    floor = measured(render(amplitude, dist, noise * 0))
    assert floor < neutral - 3  # the tremolo's floor lies under the noise
    for db in (5.0, -2.0):
        boost = noise_boost(lambda g: render(amplitude, dist, noise * g**0.5), f0, voiced, SR,
                            HOP, db)
        edited = edit_synth(f0, amplitude, dist, noise, SR, {"noisiness": db}, boost)
        assert measured(render(*edited)) - neutral == pytest.approx(db, abs=0.6)
    boost = noise_boost(lambda g: render(amplitude, dist, noise * g**0.5), f0, voiced, SR, HOP,
                        -6.0 + (floor - neutral))  # below the floor: the noise goes, no further
    assert float(boost[0, 10:-10].max()) == 0.0
