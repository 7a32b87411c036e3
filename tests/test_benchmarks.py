"""The training-step benchmark's peer is the published step, and the script runs end to end;
the transfer-quality rows keep their settings, and the scripts that read them agree."""

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch

from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_peer_updates_g_first_then_each_d_on_the_same_fakes(synth_store, tmp_path):
    bench = _load("train_step")
    config = load_run_config(REPO / "config" / "debug.yaml", ["train.bf16=false"])
    peer = bench.PublishedStep(Trainer(config, synth_store / "store", tmp_path, progress=False))
    a, b = peer.domains[:2]
    events, judged = [], []
    for name, opt in [("G", peer.opt_g)] + [(f"D_{d}", o) for d, o in peer.opt_d.items()]:
        opt.register_step_post_hook(lambda *_, name=name: events.append(name))
    discriminate = peer.model.discriminate

    def recording(x, domain):
        judged.append((domain, x.detach().clone(), x.requires_grad))
        return discriminate(x, domain)

    peer.model.discriminate = recording
    x1, x2 = torch.rand(2, 1, 128, 32), torch.rand(2, 1, 128, 32)
    peer.pair_update(x1, x2, a, b)
    # train_local: one generator update for the pair, then D_1, then D_2 (not D first, as UNIT)
    assert events == ["G", f"D_{a}", f"D_{b}"]
    # G judges its two translations (with gradients), then each D sees its real crops and the
    # very translations the generator was judged on, detached
    (ga, fake_a, g1), (gb, fake_b, g2), (da, real_a, _), (da2, dfake_a, d1), \
        (db, real_b, _), (db2, dfake_b, d2) = judged
    assert (ga, gb, da, da2, db, db2) == (a, b, a, a, b, b)
    assert g1 and g2 and not d1 and not d2
    assert torch.equal(real_a, x1) and torch.equal(real_b, x2)
    assert torch.equal(dfake_a, fake_a) and torch.equal(dfake_b, fake_b)


def test_train_step_benchmark_prints_the_comparison(tmp_path, capsys):
    bench = _load("train_step")
    bench.main(["--config", str(REPO / "config" / "debug.yaml"), "--steps", "1",
                "--time-to-l1", "1", "--l1-config", str(REPO / "config" / "debug.yaml")])
    out = capsys.readouterr().out
    assert "published (per pair update)" in out and "ours default" in out
    assert "vs published" in out and "Time to held-out reconstruction L1" in out


def test_streaming_benchmark_prints_the_table(debug_checkpoint, realaudio_dir, capsys,
                                             tmp_path):
    from timbre_transfer.inference.transfer import TimbreTransfer

    bench = _load("streaming")
    clip = sorted((realaudio_dir / "violin").glob("*.flac"))[0]
    to = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu").domains[1]
    bench.main(["--checkpoint", str(debug_checkpoint), "--clip", str(clip), "--seconds", "1",
                "--to", to, "--classifier", str(tmp_path / "none.pt")])
    out = capsys.readouterr().out
    assert "offline transfer (pghi+gla), peer" in out
    threads = str(torch.get_num_threads())
    assert "stream, block 512, context 32, " + threads + " torch threads" in out
    assert "constant load" in out and "blocks over 50 %" in out
    for row in ("stream, block 256, context 32", "stream, block 1024, context 32",
                "stream, block 512, context 16",
                "stream, eager module (compiled=False), block 512, context 32"):
        assert row in out
    assert "stream, block 512, context 64" not in out  # beyond the debug model's 32-frame crop


@pytest.fixture
def rows(monkeypatch):
    """quality_rows, imported with benchmarks/ on sys.path as when a script runs (the scripts
    import it by name; its dataclass needs a registered module)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("quality_rows")


def test_quality_rows_load_and_pin_their_settings(rows):
    configs = {name: load_run_config(REPO / "config" / row.config, row.overrides)
               for name, row in rows.ROWS.items()}  # no row names a key the code lacks
    previous, x05 = configs["previous-recipe"], configs["recipe+domain-class-x0.5"]
    for config in (previous, x05, configs["previous-recipe-seed1"]):
        assert config.model.pitch_template and not config.model.pitch_discriminator
        assert (config.train.pitch_shift, config.loss.pitch, config.loss.loudness) == (12, 5, 10)
    assert (previous.loss.domain_class, x05.loss.domain_class) == (0.0, 5.0)
    assert configs["previous-recipe-seed1"].train.seed == 1 and previous.train.seed == 0
    plain = configs["plain"]
    assert not plain.model.pitch_template and plain.train.pitch_shift == 0
    assert (plain.loss.pitch, plain.loss.loudness, plain.loss.domain_class) == (0, 0, 0)
    # a DDSP row renders the model of a row that trains one
    for name, model_row in rows.DDSP_MODEL.items():
        assert rows.ROWS[name].inverter == "ddsp" and rows.ROWS[model_row].inverter == "pghi+gla"
    assert {n for n, r in rows.ROWS.items() if r.inverter == "ddsp"} == set(rows.DDSP_MODEL)


def test_transfer_quality_table_and_the_register_judge_rows(rows, capsys):
    common = _load("quality_common")
    assert common.instruments(["bassoon", "speech_male", "violin", "singing_female"]) == [
        "bassoon", "violin"]
    reports = {(setting, judge): {"summary": {
        "mean_conversion_accuracy": {"cnn": 0.9, "mfcc": 0.8}[judge] - (setting == 0) / 2,
        "median_f0_cents": 10.0 + (setting == 0), "mean_f0_within_50c": 0.95,
        "mean_voiced_coverage": 0.93, "mean_loudness_correlation": 0.88, "fad_ratio": 0.5}}
        for setting in common.SETTINGS for judge in common.JUDGES}
    assert common.table_row(reports, 12.5) == {
        "cnn": 0.9, "mfcc": 0.8, "median_f0_cents": 10.0, "f0_within_50c": 0.95,
        "voiced_coverage": 0.93, "loudness_correlation": 0.88, "fad_ratio": 0.5, "minutes": 12.5,
        "cnn@0": 0.4, "mfcc@0": pytest.approx(0.3), "f0@0": 11.0}
    bench = _load("transfer_quality")
    assert bench.parse_args([]).rows == list(rows.ROWS)
    with pytest.raises(SystemExit):  # a retired row (issue 30) is no longer a choice
        bench.parse_args(["--rows", "recipe+envelope-gan"])
    text = bench.print_table({"recipe": {"cnn": 0.5364, "mfcc": 0.25, "median_f0_cents": 8.2,
                                         "f0_within_50c": 0.784, "voiced_coverage": None,
                                         "loudness_correlation": 0.9, "fad_ratio": 123.4,
                                         "f0@0": 12.0, "minutes": 11.4}})
    assert text.splitlines()[1:] == ["|---" * 12 + "|",
                                     "| recipe | 0.536 | 0.250 | 8.200 | 0.784 | n/a | 0.900 | 123 "
                                     "| n/a | n/a | 12.000 | 11.400 |"]
    assert capsys.readouterr().out == text + "\n"
    judge = _load("register_judge")
    assert list(judge.ROWS) == ["identity", *rows.ROWS] and judge.ROWS["identity"] is None
    assert judge.ROWS["recipe+ddsp"] == ("recipe", "ddsp")
    assert judge.ROWS["recipe+domain-class"] == ("recipe+domain-class", "pghi+gla")
