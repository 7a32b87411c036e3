import json
import math
from pathlib import Path

import numpy as np
import pytest

from timbre_transfer.evaluation.evaluate import (
    BASELINE_MATRICES,
    MATRICES,
    REPORT_KEYS,
    SUMMARY_KEYS,
    _json_ready,
    evaluate,
    summarize,
    write_report,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Paired clips of 2.5 s (two 0.96 s FAD patches each), a 2-step debug model and a small
    domain classifier saved where `evaluate --classifier` will find it."""
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.synthetic import write_paired_dataset
    from timbre_transfer.evaluation.classifier import ClassifierConfig, train_classifier
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    root = tmp_path_factory.mktemp("evaluate")
    write_paired_dataset(root / "audio", n_domains=3, n_clips=4, seconds=2.5)
    prepare(root / "audio", root / "store", options=PrepareOptions(val_fraction=0.25),
            workers=1, progress=False)
    config = load_run_config(REPO / "config" / "debug.yaml", ["train.max_steps=2"])
    Trainer(config, root / "store", root / "run", progress=False).fit()
    train_classifier(root / "store", ClassifierConfig(steps=20, batch_size=8),
                     progress=False).save(root / "classifier.pt")
    return root


def test_evaluate_command_writes_every_key_of_the_report(setup, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from timbre_transfer.cli import main

    out = tmp_path / "eval" / "report.json"
    assert main(["evaluate", str(setup / "run" / "checkpoints" / "latest.pt"),
                 "--data", str(setup / "store"), "--out", str(out), "--inverter", "pghi",
                 "--classifier", str(setup / "classifier.pt"), "--twins", str(setup / "audio"),
                 "--tensorboard", str(setup / "run")]) == 0
    printed = capsys.readouterr().out
    assert "mean conversion accuracy" in printed and str(out) in printed
    report = json.loads(out.read_text())
    assert set(report) == set(REPORT_KEYS)
    domains = report["domains"]
    assert domains == ["brass", "flute", "reed"] and report["step"] == 2
    assert report["clips"] == {d: 1 for d in domains}

    def full(m, allow_none=False):
        assert set(m) == set(domains)
        for row in m.values():
            assert set(row) == set(domains)
            for v in row.values():
                assert (v is None and allow_none) or isinstance(v, float)

    for name in MATRICES:
        full(report["matrix"][name], allow_none=name in ("f0_cents", "f0_within_50c"))
    for name in BASELINE_MATRICES:
        full(report["baselines"]["identity"][name])
    for part in ("fad", "conversion_accuracy"):
        assert set(report["baselines"]["resynthesis"][part]) == set(domains)
    for part in ("mel_l1", "spectral_convergence_db"):
        assert set(report["reconstruction"][part]) == set(domains)
    assert set(report["summary"]) == set(SUMMARY_KEYS)
    assert report["paired"]["pairs"] == 6  # 3 held-out clips x 2 other domains
    assert set(report["classifier"]) == {"heldout_accuracy", "heldout_per_domain",
                                         "heldout_windows", "window_frames", "pitch_shift",
                                         "features"}
    assert report["classifier"]["features"] == "mel"
    # the register: auto by default, and the octaves each clip's transfer applied, per pair,
    # as the model itself resolves them
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.inference.transfer import TimbreTransfer

    assert report["octave"] == "auto"
    tt = TimbreTransfer.from_checkpoint(setup / "run" / "checkpoints" / "latest.pt")
    store = FeatureStore(setup / "store")
    for s in domains:
        wav = store.clip_audio(s, store.clips(s, "val").files[0])
        assert report["octaves"][s] == {t: [n] for t, n in tt.applied_octaves(
            wav, tt.sample_rate, domains).items()}

    # values that must hold whatever the model: every window gets one label, so a source's
    # identity accuracies over all targets add up to one; FADs are non-negative
    for s in domains:
        assert sum(report["baselines"]["identity"]["conversion_accuracy"][s].values()) == \
            pytest.approx(1.0)
        assert all(v >= 0 for v in report["matrix"]["fad"][s].values())
        assert all(-1 <= v <= 1 for v in report["matrix"]["loudness_correlation"][s].values())

    summary = out.with_suffix(".md").read_text()
    assert "## Summary (source != target)" in summary and "fad_ratio" in summary
    from matplotlib.image import imread

    for name in (*MATRICES, "fad_identity"):
        image = imread(out.with_name(f"report_{name}.png"))
        assert image.shape[0] > 100 and image.shape[1] > 100
    events = EventAccumulator(str(setup / "run" / "tensorboard")).Reload()
    assert "eval/mean_conversion_accuracy" in events.Tags()["scalars"]
    assert "eval/fad/brass_to_flute" in events.Tags()["scalars"]


def test_evaluate_trains_the_mfcc_judge_asked_for_and_refuses_another(setup, tmp_path, capsys):
    from timbre_transfer.cli import main

    args = ["evaluate", str(setup / "run" / "checkpoints" / "latest.pt"), "--data",
            str(setup / "store"), "--inverter", "pghi", "--judge", "mfcc"]
    out = tmp_path / "report.json"
    assert main([*args, "--out", str(out), "--classifier", str(tmp_path / "mfcc.pt")]) == 0
    assert json.loads(out.read_text())["classifier"]["features"] == "mfcc"
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "again.json"),
                 "--classifier", str(setup / "classifier.pt")]) == 2
    assert "is a mel judge, not mfcc" in capsys.readouterr().err


def test_clips_too_short_for_fad_are_a_clear_error(synth_store, debug_checkpoint):
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    # synth_store's held-out clips last 1.5 s: one 0.96 s patch each, no covariance
    with pytest.raises(ValueError, match="the val clips of 'brass'.*give the domain more"):
        evaluate(tt, FeatureStore(synth_store / "store"), "unused.pt", progress=False)


def test_summary_is_the_mean_over_actual_conversions():
    matrix = {
        "fad": {"a": {"a": 1.0, "b": 4.0}, "b": {"a": 6.0, "b": 0.5}},
        "conversion_accuracy": {"a": {"a": 1.0, "b": 0.5}, "b": {"a": 1.0, "b": 1.0}},
        "loudness_correlation": {"a": {"a": 1.0, "b": 0.8}, "b": {"a": float("nan"), "b": 1.0}},
        "f0_cents": {"a": {"a": 0.0, "b": 30.0}, "b": {"a": 10.0, "b": 0.0}},
        "f0_within_50c": {"a": {"a": 1.0, "b": 0.9}, "b": {"a": 0.5, "b": 1.0}},
        "voiced_coverage": {"a": {"a": 1.0, "b": 0.4}, "b": {"a": 0.6, "b": 1.0}},
        "chroma_similarity": {"a": {"a": 1.0, "b": 0.6}, "b": {"a": 0.8, "b": 1.0}},
    }
    identity = {"fad": {"a": {"a": 0.0, "b": 10.0}, "b": {"a": 10.0, "b": 0.0}}}
    s = summarize(matrix, identity)
    assert s["mean_conversion_accuracy"] == pytest.approx(0.75)
    assert s["mean_fad_transfer"] == pytest.approx(5.0)
    assert s["mean_fad_identity"] == pytest.approx(10.0)
    assert s["fad_ratio"] == pytest.approx(0.5)
    assert s["mean_loudness_correlation"] == pytest.approx(0.8)  # the NaN cell is left out
    assert s["median_f0_cents"] == pytest.approx(20.0)
    assert s["mean_f0_within_50c"] == pytest.approx(0.7)
    assert s["mean_voiced_coverage"] == pytest.approx(0.5)
    assert s["mean_chroma_similarity"] == pytest.approx(0.7)


def test_json_ready_replaces_nan_and_numpy_scalars():
    out = _json_ready({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)], "c": math.inf})
    assert out == {"a": None, "b": [0.5, 3], "c": None}
    json.dumps(out, allow_nan=False)


def test_reference_clips_are_spread_over_the_split():
    from timbre_transfer.evaluation.evaluate import _spread

    assert _spread(list(range(10)), 3) == [0, 4, 9]
    assert _spread(list(range(3)), 5) == [0, 1, 2]
    assert _spread(list(range(4)), None) == [0, 1, 2, 3]


def test_evaluate_scores_pitch_against_truth_where_a_domain_has_it(setup, tmp_path):
    from timbre_transfer.audio.f0 import f0_pyin
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier
    from timbre_transfer.inference.transfer import TimbreTransfer

    store = FeatureStore(setup / "store")
    tt = TimbreTransfer.from_checkpoint(setup / "run" / "checkpoints" / "latest.pt", device="cpu")
    clip = store.clips("brass", "val").files[0]
    wav = store.clip_audio("brass", clip, trim=False)
    track = f0_pyin(wav, 16000, hop_length=160)  # the truth: the clip's own pitch, every 10 ms
    rows = [f"{i * 0.01:.2f},{0.0 if not v else f:.3f}" for i, (f, v) in
            enumerate(zip(track.f0, track.voiced))]
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / f"{Path(clip).stem}.csv").write_text("time_s,f0_hz\n" + "\n".join(rows) + "\n")
    classifier = Classifier.load(setup / "classifier.pt")
    report = evaluate(tt, store, classifier, inverter="pghi", f0_truth=truth, progress=False)
    assert report["f0_reference"]["brass"] == f"truth: {truth}"
    assert report["f0_reference"]["flute"] == "source swift"
    # the untouched source against a truth that is its own pitch: no error, full coverage
    own = report["baselines"]["identity_pitch"]["per_domain"]["brass"]
    # (pYIN at 10 ms and at 16 ms hops disagree around the note changes of these short clips)
    assert own["median_f0_cents"] <= 10 and own["f0_within_50c"] > 0.7
    assert own["voiced_coverage"] > 0.9
    for key in ("f0_within_50c", "voiced_coverage"):
        assert set(report["matrix"][key]["brass"]) == set(report["domains"])
    assert {"mean_f0_within_50c", "mean_voiced_coverage"} <= set(report["summary"])

    # a malformed truth file is named before any transfer runs
    (truth / f"{Path(clip).stem}.csv").write_text("time_s,f0_hz\n0.0,x\n")
    with pytest.raises(ValueError, match=f"{Path(clip).stem}.csv: non-numeric"):
        evaluate(tt, store, classifier, inverter="pghi", f0_truth=truth, progress=False)


def test_evaluate_with_the_ddsp_inverter_resynthesizes_through_each_domains_head(setup, tmp_path):
    """inverter='ddsp' renders transfers and each domain's own clips (the resynthesis baseline)
    with the DDSP head, at the clip's own f0: the resynthesis keeps the pitch."""
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.training.ddsp_trainer import DDSPTrainer, load_ddsp_config

    store = FeatureStore(setup / "store")
    small = ["head.hidden=32", "head.n_harmonics=20", "head.n_noise_bands=17",
             "train.batch_size=2", "train.crop_frames=32", "train.max_steps=1"]
    DDSPTrainer(load_ddsp_config(None, small), store, store.domains, tmp_path / "ddsp",
                progress=False).fit()
    checkpoint = setup / "run" / "checkpoints" / "latest.pt"
    tt = TimbreTransfer.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"no DDSP head for \['brass'.*needs one for every"):
        evaluate(tt, store, setup / "classifier.pt", inverter="ddsp", progress=False)
    from timbre_transfer.cli import main

    assert main(["evaluate", str(checkpoint), "--data", str(store.root), "--out",
                 str(tmp_path / "r.json"), "--inverter", "ddsp"]) == 2  # before any work
    assert not (tmp_path / "r.json").exists()
    tt.attach_ddsp(tmp_path / "ddsp" / "checkpoints" / "latest.pt")
    report = evaluate(tt, store, Classifier.load(setup / "classifier.pt"), inverter="ddsp",
                      progress=False)
    assert report["inverter"] == "ddsp"
    resynth = report["baselines"]["resynthesis_pitch"]["per_domain"]
    assert set(resynth) == set(store.domains)
    for domain, scores in resynth.items():  # the head plays the clip's own f0
        assert scores["median_f0_cents"] < 50, domain
    assert all(math.isfinite(v) for row in report["matrix"]["fad"].values() for v in row.values())
    # the head, not phase reconstruction, rendered it; at the clip's length
    from timbre_transfer.evaluation.scoring import resynthesize
    from timbre_transfer.inference.render import renderer_for

    clip = store.clip_audio("brass", store.clips("brass", "val").files[0])
    by_head, by_phase = (resynthesize(tt, renderer_for(tt, inv, ["brass"]), clip, "brass")
                         for inv in ("ddsp", "pghi"))
    assert by_head.shape == by_phase.shape == clip.shape
    assert float(np.abs(by_head - by_phase).max()) > 1e-3


def test_evaluate_restricted_to_some_pairs_scores_them_as_the_full_run_does(setup, tmp_path):
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier
    from timbre_transfer.inference.transfer import TimbreTransfer

    store = FeatureStore(setup / "store")
    tt = TimbreTransfer.from_checkpoint(setup / "run" / "checkpoints" / "latest.pt", device="cpu")
    classifier = Classifier.load(setup / "classifier.pt")
    full = evaluate(tt, store, classifier, inverter="pghi", progress=False)
    part = evaluate(tt, store, classifier, inverter="pghi", progress=False,
                    sources=["brass", "reed"], targets=["flute"])
    for key in MATRICES:
        assert set(part["matrix"][key]) == {"brass", "reed"}
        for s in ("brass", "reed"):
            assert list(part["matrix"][key][s]) == ["flute"]
            assert part["matrix"][key][s]["flute"] == pytest.approx(full["matrix"][key][s]["flute"])
    assert set(part["baselines"]["resynthesis"]["fad"]) == {"flute"}
    # its summary and heatmaps show the pairs scored (they used to fail on the missing rows)
    written = write_report(part, tmp_path / "part.json")
    summary = written["markdown"].read_text()
    assert "| source \\ target | flute |" in summary and "| reed |" in summary
    assert "| flute | " in summary and "| brass | " not in summary.split("## Per domain")[1]
    from matplotlib.image import imread

    assert imread(written["fad"]).shape[1] < imread(
        write_report(full, tmp_path / "full.json")["fad"]).shape[1]  # one column, not three
    with pytest.raises(KeyError, match="cello"):
        evaluate(tt, store, classifier, inverter="pghi", progress=False, targets=["cello"])


def test_clips_shorter_than_a_fad_patch_are_left_out_of_fad_only(setup, monkeypatch):
    """A short note among the training clips (philharmonia has them) does not stop the
    evaluation: FAD leaves it out; MIN_SECONDS is exactly one VGGish patch."""
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.evaluation.classifier import Classifier
    from timbre_transfer.evaluation.vggish import MIN_SECONDS, examples
    from timbre_transfer.inference.transfer import TimbreTransfer

    n = round(MIN_SECONDS * 16000)
    assert examples(np.zeros(n)).shape[0] == 1
    with pytest.raises(ValueError, match="0.96 s"):
        examples(np.zeros(n - 1))

    store = FeatureStore(setup / "store")
    first = store.clips("flute", "train").files[0]
    real = FeatureStore.clip_audio
    monkeypatch.setattr(FeatureStore, "clip_audio", lambda self, d, f, **k: (
        real(self, d, f, **k)[: n // 2] if (d, f) == ("flute", first) else real(self, d, f, **k)))
    tt = TimbreTransfer.from_checkpoint(setup / "run" / "checkpoints" / "latest.pt", device="cpu")
    report = evaluate(tt, store, Classifier.load(setup / "classifier.pt"), inverter="pghi",
                      progress=False, sources=["brass"], targets=["flute"])
    assert report["matrix"]["fad"]["brass"]["flute"] is not None
