"""The renderers: what each way back to audio supports, and the one place that picks and checks
them (a missing DDSP head, an unknown inverter, one that cannot stream)."""

import numpy as np
import pytest
import torch

from timbre_transfer.inference.render import renderer_for
from timbre_transfer.inference.transfer import TimbreTransfer
from timbre_transfer.names import KNOBS

SR = 16000


class _Model(torch.nn.Module):
    """Enough of a TimbreModel to build a TimbreTransfer: the checks fail before any net runs."""

    def __init__(self):
        super().__init__()
        from timbre_transfer.models.multidomain import ModelConfig

        self.config = ModelConfig()
        self.downsample_factor = 1


@pytest.fixture
def tt():
    from timbre_transfer.audio.transform import AudioTransform

    return TimbreTransfer(_Model(), AudioTransform(), ["a", "b"], window=None)


def _head(tt):
    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    p = tt.transform.params
    return DDSPHead(p.n_mels, p.sample_rate, p.hop_length,
                    DDSPConfig(hidden=8, n_harmonics=4, n_noise_bands=5))


def test_each_renderer_says_what_it_supports(tt):
    for name in ("pghi", "griffinlim", "pghi+gla"):
        phase = renderer_for(tt, name, ["a"])
        assert phase.name == name and phase.knobs == {"brightness"} and not phase.shifts
        assert phase.streaming == (name == "pghi")
    tt.ddsp["a"] = _head(tt)
    ddsp = renderer_for(tt, "ddsp", ["a"])
    assert ddsp.knobs == set(KNOBS) and ddsp.shifts and ddsp.streaming


def test_renderer_for_is_the_one_check(tt):
    tt.ddsp["a"] = _head(tt)
    with pytest.raises(ValueError, match=r"no DDSP head for \['b'\] \(heads: \['a'\]\); "
                                         "inverter 'ddsp' needs one for every target"):
        renderer_for(tt, "ddsp", ["a", "b", "b"])
    with pytest.raises(ValueError, match="unknown inverter 'magic'"):
        renderer_for(tt, "magic", ["a"])
    with pytest.raises(ValueError, match="'griffinlim' cannot stream"):
        renderer_for(tt, "griffinlim", ["a"], streaming=True)
    with pytest.raises(KeyError, match="unknown domain 'c'"):
        renderer_for(tt, "pghi", ["c"])
    # transfer, render and stream ask it, before any work
    wav = np.zeros(SR, np.float32)
    for call in (lambda: tt.transfer(wav, SR, "b", inverter="ddsp"),
                 lambda: tt.render(torch.zeros(80, 10), wav, "b", inverter="ddsp"),
                 lambda: tt.stream("b", inverter="ddsp")):
        with pytest.raises(ValueError, match=r"no DDSP head for \['b'\]"):
            call()
    with pytest.raises(ValueError, match="shifts need the DDSP head"):
        tt.transfer(wav, SR, "a", inverter="pghi", pitch_shift=1.0)
