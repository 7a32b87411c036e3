"""The models shipped inside the package: packing, loading with ``weights_only=True``,
deterministic transfers, and ``--model NAME`` on the command line."""

import numpy as np
import pytest
import torch

from timbre_transfer.checkpoint import read_checkpoint
from timbre_transfer.cli import main
from timbre_transfer.inference.transfer import TimbreTransfer, translate_windowed
from timbre_transfer.pretrained import available, card, pack, resolve, shipped_path

SHIPPED = "real8-small"
SR = 16000


def _phrase(seconds=1.5):
    t = np.arange(int(seconds * SR)) / SR
    f0 = np.where(t < seconds / 2, 294.0, 392.0)  # D4 then G4
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (sum(0.1 / k * np.sin(k * phase) for k in range(1, 8)) * np.minimum(1, t / 0.05)
            ).astype(np.float32)


def test_pack_keeps_the_model_and_drops_training_state(debug_checkpoint, tmp_path):
    out = pack(debug_checkpoint, tmp_path / "m.pt", {"name": "m", "data": {"x": "CC0"}})
    blob = read_checkpoint(out)  # weights_only=True
    assert blob["model_only"] and blob["card"]["data"] == {"x": "CC0"}
    assert not any(k.startswith("discriminators.") for k in blob["model"])
    assert "optimizers" not in blob.get("training", {})
    big = [v for v in blob["model"].values() if v.numel() >= 1024]
    assert big and all(v.dtype == torch.float16 for v in big)
    assert out.stat().st_size < 0.5 * debug_checkpoint.stat().st_size
    # the packed model transfers as the training checkpoint does, up to half precision
    wav = _phrase()
    full = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    packed = TimbreTransfer.from_checkpoint(out, device="cpu")
    to = full.domains[1]
    # the generated mels (a phase reconstruction would turn any tiny change into other phases)
    spec = full.transform(torch.from_numpy(wav))
    with torch.no_grad():
        mel_a, mel_b = (translate_windowed(tt.model, spec, [to], tt.window)[0]
                        for tt in (full, packed))
    assert float((mel_a - mel_b).abs().mean()) < 0.01 * float(mel_a.abs().mean())
    assert packed.transfer(wav, SR, to, inverter="pghi", octave=0).shape == wav.shape


def test_the_shipped_model_loads_safely_and_transfers_deterministically():
    assert SHIPPED in available()
    blob = torch.load(resolve(SHIPPED), map_location="cpu", weights_only=True)
    assert blob["model_only"] and {"data", "training"} <= set(blob["card"])
    assert shipped_path(SHIPPED).stat().st_size < 20e6
    info = card(SHIPPED)
    assert {"violin", "clarinet", "tenor_sax", "bassoon", "speech_male"} <= set(info["domains"])
    tt = TimbreTransfer.pretrained(SHIPPED, device="cpu")
    wav = _phrase()
    first = tt.transfer(wav, SR, "violin")
    second = TimbreTransfer.pretrained(SHIPPED, device="cpu").transfer(wav, SR, "violin")
    assert first.shape == wav.shape and np.isfinite(first).all() and np.abs(first).max() > 1e-3
    np.testing.assert_array_equal(first, second)


def test_an_unknown_model_name_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"no shipped model named 'nope'; shipped models: .*"
                                         f"{SHIPPED}"):
        TimbreTransfer.pretrained("nope")
    assert main(["transfer", "--model", "nope", "x.wav", "--to", "violin", "--out",
                 str(tmp_path)]) == 2
    assert f"shipped models: {', '.join(available())}" in capsys.readouterr().err


def test_cli_model_option_takes_the_shipped_weights(tmp_path, capsys):
    import soundfile as sf

    clip = tmp_path / "phrase.wav"
    sf.write(clip, _phrase(), SR)
    assert main(["transfer", "--model", SHIPPED, str(clip), "--to", "violin", "--to", "flute",
                 "--out", str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"phrase_to_violin.wav",
                                                              "phrase_to_flute.wav"}
    out, sr = sf.read(tmp_path / "out" / "phrase_to_violin.wav")
    assert sr == SR and len(out) == len(_phrase())
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert SHIPPED in listed and "violin" in listed and "CC BY 4.0" in listed
    # a checkpoint and --model together are refused, as is neither
    assert main(["stream", "--model", SHIPPED, "a.pt", str(clip), "--to", "violin"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["domains"]) == 2
    assert "give a checkpoint (CKPT) or --model NAME" in capsys.readouterr().err
