import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timbre_transfer.cli import build_parser, main
from timbre_transfer.cli import data as data_commands

REPO = Path(__file__).resolve().parents[1]


def _sc_values(text):
    return [float(v) for v in re.findall(r"(-?\d+\.\d+)\s*(?:dB|\s+\d)", text)]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """The commands actually registered: a new one is covered without editing the tests."""
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


COMMANDS = list(_subparsers())


def test_all_commands_are_registered():
    assert len(COMMANDS) >= 14 and {"train", "transfer", "demo", "prepare"} <= set(COMMANDS)


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS],
                         ids=lambda argv: " ".join(argv))
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: timbre-transfer {argv[0] if len(argv) > 1 else ''}".rstrip())


def test_help_imports_no_torch():
    """--help of the program and of every command loads neither torch nor numpy."""
    code = ("import contextlib, io, sys\n"
            "from timbre_transfer.cli import main\n"
            f"for argv in {[['--help']] + [[c, '--help'] for c in COMMANDS]!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "print(sorted({'torch', 'numpy'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_train_help_does_not_advertise_what_it_refuses():
    help_text = " ".join(_subparsers()["train"].format_help().split())
    assert "audio.hop_length" not in help_text and "train.lr=2e-4" in help_text
    assert "overrides refused" in help_text


@pytest.mark.parametrize("override", ["audio.hop_length=256", "prepare.target_dbfs=-23",
                                      "audio.n_mels=80"])
def test_train_refuses_store_overrides(tmp_path, capsys, override):
    argv = ["train", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "run"), override]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"override '{override}'" in err and "the feature store fixes the transform" in err
    assert "run prepare again" in err
    assert not (tmp_path / "run").exists()


def test_train_checks_the_stores_mel_bins(tmp_path, capsys):
    main(["synth-data", str(tmp_path / "data"), "--domains", "2", "--clips", "2", "--seconds", "1"])
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "store"),
                 "--workers", "1", "audio.n_mels=90"]) == 0
    capsys.readouterr()
    assert main(["train", "--config", "debug", "--data", str(tmp_path / "store"), "--out",
                 str(tmp_path / "run"), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "audio.n_mels = 90 must be a multiple of 2**model.n_downsample = 4" in err
    assert "88 or 92" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override,message", [
    ("train.crop_frames=62",
     "train.crop_frames = 62 must be a multiple of 2**model.n_downsample = 4"),
    ("train.lr=fast", "config key 'train.lr' must be float, got 'fast'"),
    ("model.dim=[1]", "config key 'model.dim' must be int"),
    ("train.bogus=1", "unknown config key(s) ['train.bogus']"),
])
def test_train_config_errors_exit_2_naming_the_key(tmp_path, capsys, override, message):
    argv = ["train", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "run"), override]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("timbre-transfer train: error: ") and message in err
    assert "Traceback" not in err


def test_a_programming_error_is_not_swallowed(tmp_path, monkeypatch):
    def broken(args):
        raise TypeError("unsupported operand type(s)")  # a bug, not a user's mistake

    monkeypatch.setattr(data_commands, "cmd_synth_data", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["synth-data", str(tmp_path / "x")])


def test_packaged_config_names_work_from_any_folder(synth_store, tmp_path):
    """`--config debug` from a folder without config/ (here through the console entry point)."""
    assert not (tmp_path / "config").exists()
    run = subprocess.run(
        [sys.executable, "-m", "timbre_transfer", "train", "--config", "debug", "--data",
         str(synth_store / "store"), "--out", "run", "--max-steps", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
    help_text = subprocess.run([sys.executable, "-m", "timbre_transfer", "demo", "--help"],
                               cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "(default: cpu-small)" in " ".join(help_text.split())


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "timbre_transfer", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("timbre-transfer ")


def test_demo_runs_the_whole_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: the config is found by its name
    argv = ["demo", "--out", str(tmp_path), "--clips", "4", "--max-steps", "2",
            "--config", "debug"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for stage in ("0/5", "1/5", "2/5", "3/5", "4/5", "5/5"):
        assert stage in out
    # the bundled real recording through the shipped model came first, as long as it is
    shipped = sorted(p.name for p in (tmp_path / "shipped").iterdir())
    assert shipped == sorted(f"singing_to_{d}.wav" for d in ("violin", "flute", "clarinet",
                                                              "trumpet"))
    assert len(sf.read(tmp_path / "shipped" / shipped[0])[0]) == round(2.9721875 * 16000)
    transfers = sorted(p.name for p in (tmp_path / "transfers").iterdir())
    assert len(transfers) == 3 and all("_to_" in name for name in transfers)
    for path in (tmp_path / "transfers").iterdir():
        wav, sr = sf.read(path)
        assert sr == 16000 and len(wav) == 64000
    match = re.search(r"transfer vs twin: (\d+\.\d+); untouched source vs twin: (\d+\.\d+) "
                      r"\((\d+) pairs", out)
    assert match and int(match.group(3)) == 3 * 2  # one validation clip per domain, 2 targets
    assert re.search(r"reconstruction L1: \d+\.\d+ at step 1 -> \d+\.\d+ at step 2", out)
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_synth_data_writes_twins(tmp_path, capsys):
    argv = ["synth-data", str(tmp_path), "--domains", "2", "--clips", "2", "--seconds", "1"]
    assert main(argv) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.wav")) == [
        "brass/clip_0000.wav", "brass/clip_0001.wav", "reed/clip_0000.wav", "reed/clip_0001.wav"]
    assert main(["synth-data", str(tmp_path), "--domains", "9"]) == 2
    assert "n_domains" in capsys.readouterr().err


def test_prepare_command(tmp_path, capsys):
    main(["synth-data", str(tmp_path / "data"), "--domains", "2", "--clips", "3", "--seconds", "1"])
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "store"),
                 "--workers", "1", "prepare.val_fraction=0.34"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^brass\s+3\s+2\s+1\s", out, re.M)
    assert re.search(r"^reed\s+3\s+2\s+1\s", out, re.M)
    assert (tmp_path / "store" / "store.json").is_file()
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "store"),
                 "--workers", "1", "prepare.val_fraction=0.34"]) == 0
    assert "is up to date (6 files)" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "store"),
                 "--workers", "1", "audio.hop_length=256"]) == 2
    assert "other parameters" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "s2"),
                 "prepare.bogus=1"]) == 2
    assert "unknown config key(s) ['prepare.bogus']" in capsys.readouterr().err


def test_failed_prepare_is_never_up_to_date(tmp_path, capsys):
    main(["synth-data", str(tmp_path / "data"), "--domains", "2", "--clips", "2", "--seconds", "1"])
    (tmp_path / "data" / "empty").mkdir()
    (tmp_path / "data" / "empty" / "junk.wav").write_bytes(b"junk")
    argv = ["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "store"), "--workers", "1"]
    for _ in range(2):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "['empty'] have no usable audio" in captured.err and "junk.wav" in captured.err
        assert "up to date" not in captured.out
    assert main(["train", "--config", "debug", "--data", str(tmp_path / "store"), "--out",
                 str(tmp_path / "run")]) == 2
    assert "not a feature store" in capsys.readouterr().err


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
    ("tone", ["audio.hop=3"], "unknown config key(s) ['audio.hop']"),
    ("tone", ["audio.n_mels=lots"], "'audio.n_mels' must be int"),
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


def test_octave_auto_is_the_default_of_every_command_that_transfers():
    parser = build_parser()
    commands = {
        "transfer": ["transfer", "ckpt.pt", "in.wav", "--to", "violin", "--out", "o"],
        "evaluate": ["evaluate", "ckpt.pt", "--data", "f", "--out", "r.json"],
        "report": ["report", "ckpt.pt", "--inputs", "a.wav", "--out", "site"],
        "stream": ["stream", "ckpt.pt", "in.wav", "--to", "violin", "--out", "o.wav"],
        "export": ["export", "ckpt.pt", "--to", "violin", "--out", "m.pt"],
    }
    for name, argv in commands.items():
        assert parser.parse_args(argv).octave == "auto", name
        assert parser.parse_args(argv + ["--octave", "0"]).octave == 0, name


def test_transfer_octave_takes_a_whole_number_or_auto(capsys):
    parser = build_parser()
    base = ["transfer", "ckpt.pt", "in.wav", "--to", "violin", "--out", "o"]
    assert parser.parse_args(base).octave == "auto"
    assert parser.parse_args(base + ["--octave", "-2"]).octave == -2
    assert parser.parse_args(base + ["--octave", "auto"]).octave == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--octave", "1.5"])
    assert "whole number of octaves or 'auto', got '1.5'" in capsys.readouterr().err


def test_describe_prints_each_descriptor_and_plots(tmp_path, capsys):
    """A sawtooth's odd/even ratio is 10 log10(3) = 4.77 dB and its tilt -6.02 dB/octave."""
    sr = 16000
    t = np.arange(sr) / sr
    saw = sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 36))
    path = tmp_path / "saw.wav"
    sf.write(path, saw.astype(np.float32), sr)
    assert main(["describe", str(path), "--plot", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["file", "centroid_hz", "(Hz)"]
    values = dict(zip(re.findall(r"(\w+) \(", header)[0:], map(float, row.split()[1:8])))
    assert values["odd_even"] == pytest.approx(4.77, abs=0.3)
    assert values["tilt"] == pytest.approx(-6.02, abs=0.3)
    assert (tmp_path / "d.png").stat().st_size > 10_000


def test_describe_and_transfer_knob_errors_are_clear(debug_checkpoint, tmp_path, capsys):
    assert main(["describe", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such audio file" in capsys.readouterr().err
    wav = tmp_path / "in.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(8000) * 0.1)).astype(np.float32), 16000)
    base = ["transfer", str(debug_checkpoint), str(wav), "--all", "--out", str(tmp_path / "o")]
    assert main(base + ["--brightness", "3"]) == 2
    assert "brightness must lie in [-0.5, 0.5] octaves, got 3" in capsys.readouterr().err
    assert main(base + ["--noisiness", "3", "--inverter", "pghi"]) == 2
    assert "needs the DDSP head" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
