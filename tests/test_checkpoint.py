"""Checkpoints outlive the options they were trained with: one written by 0.1.0 still loads and
transfers as it did (tests/fixtures/README.md)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timbre_transfer.checkpoint import load_model, read_checkpoint
from timbre_transfer.inference.transfer import TimbreTransfer
from timbre_transfer.training.config import RETIRED

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD = FIXTURES / "debug-0.1.0.pt"


def test_the_old_checkpoint_holds_retired_options_at_their_off_values():
    config = read_checkpoint(OLD)["config"]
    for key, (off, _) in RETIRED.items():
        section, name = key.split(".")
        assert config[section][name] == off, key


def test_load_model_reads_only_the_model_s_own_sections():
    saved = load_model(OLD)
    assert saved.domains == ["brass", "flute", "reed"]
    assert saved.crop_frames == 32 and saved.step == 2
    assert saved.model.config.pitch_template and not saved.model.training
    assert set(saved.pitch_medians) == set(saved.domains)
    assert saved.f0_tracker == "pyin"  # written before stores named their tracker


def test_a_model_reads_pitch_with_its_own_tracker_and_warns_for_another():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TimbreTransfer.from_checkpoint(OLD, device="cpu").f0_tracker == "pyin"
        assert TimbreTransfer.from_checkpoint(OLD, "cpu", f0_tracker="pyin").f0_tracker == "pyin"
    with pytest.warns(UserWarning, match=r"trained on pitch controls by pyin, and these are by "
                      r"swift.*--f0-tracker pyin"):
        tt = TimbreTransfer.from_checkpoint(OLD, device="cpu", f0_tracker="swift")
    assert tt.f0_tracker == "swift"
    with pytest.raises(ValueError, match="unknown f0 tracker"):
        TimbreTransfer.from_checkpoint(OLD, device="cpu", f0_tracker="yin")


def test_a_checkpoint_of_0_1_0_transfers_as_it_did():
    audio, rate = sf.read(FIXTURES / "debug-input.wav", dtype="float32")
    expected = np.load(FIXTURES / "debug-0.1.0-transfers.npz")
    tt = TimbreTransfer.from_checkpoint(OLD, device="cpu")
    for target in tt.domains:  # Griffin-Lim's random start is seeded by the transform
        out = tt.transfer(audio, rate, to=target, inverter="griffinlim", octave=0)
        want = expected[f"audio_{target}"]
        assert out.shape == want.shape
        # bit-identical on the machine that wrote them; other CPUs may round differently
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_a_model_checkpoint_without_its_model_config_is_a_clear_error(tmp_path):
    from timbre_transfer.checkpoint import save_checkpoint

    blob = read_checkpoint(OLD)
    del blob["config"]["model"]
    save_checkpoint(tmp_path / "broken.pt", blob)
    with pytest.raises(ValueError, match="model config does not fit"):
        load_model(tmp_path / "broken.pt")
