import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timbre_transfer.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _sc_values(text):
    return [float(v) for v in re.findall(r"(-?\d+\.\d+)\s*(?:dB|\s+\d)", text)]


@pytest.mark.parametrize("argv", [["--help"], ["reconstruct", "--help"], ["demo", "--help"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: timbre-transfer" in capsys.readouterr().out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "timbre_transfer", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("timbre-transfer ")


def test_demo_writes_audio_and_reports_quality(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    rows = {m: float(v) for m, v in re.findall(r"^(pghi\+gla|pghi|griffinlim)\s+(-?\d+\.\d+)", out, re.M)}
    assert set(rows) == {"pghi", "griffinlim", "pghi+gla"}
    assert all(v < -15 for v in rows.values()), rows  # measured -21 to -26 dB on the 4 s clip
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["reconstructed_griffinlim.wav", "reconstructed_pghi.wav",
                     "reconstructed_pghi_gla.wav", "source.wav"]
    source, sr = sf.read(tmp_path / "source.wav")
    assert sr == 16000 and len(source) == 32000
    for name in names:
        assert len(sf.read(tmp_path / name)[0]) == 32000


def test_reconstruct_real_clip(real_clips, tmp_path, capsys):
    clip = real_clips("violin", 1)[0]
    out_path = tmp_path / "out.wav"
    assert main(["reconstruct", str(clip), "--out", str(out_path), "--inverter", "pghi"]) == 0
    out = capsys.readouterr().out
    sc = float(re.search(r"spectral convergence: (-?\d+\.\d+) dB", out).group(1))
    assert sc < -15
    assert re.search(r"real-time factor:\s+\d+\.\d+x", out)
    wav, sr = sf.read(out_path)
    assert sr == 16000 and len(wav) == pytest.approx(sf.info(clip).duration * 16000, abs=2)


def test_reconstruct_with_config_override(tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 330 * np.arange(8000) / 16000), 16000)
    argv = ["reconstruct", str(src), "--out", str(tmp_path / "o.wav"),
            "--config", str(REPO / "config" / "default.yaml"), "audio.hop_length=256"]
    assert main(argv) == 0
    assert "spectral convergence" in capsys.readouterr().out


@pytest.mark.parametrize("content,override,message", [
    (None, [], "no such audio file"),
    (b"not audio", [], "cannot decode audio"),
    ("tone", ["audio.hop=3"], "unknown audio transform parameter(s) ['hop']"),
    ("tone", ["audio.n_mels=lots"], "'n_mels' must be int"),
])
def test_reconstruct_errors_are_clear(tmp_path, capsys, content, override, message):
    src = tmp_path / "bad.wav"
    if content == "tone":
        sf.write(src, np.zeros(1000), 16000)
    elif content is not None:
        src.write_bytes(content)
    out_path = tmp_path / "o.wav"
    assert main(["reconstruct", str(src), "--out", str(out_path), *override]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not out_path.exists()


def test_parser_lists_all_inverters():
    help_text = build_parser()._subparsers._group_actions[0].choices["reconstruct"].format_help()
    for name in ("pghi", "griffinlim", "pghi+gla"):
        assert name in help_text
