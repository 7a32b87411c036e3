import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import timbre_transfer.data.prepare as prepare_module
from tests.conftest import require_or_skip
from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.data.prepare import (
    PrepareFileError,
    PrepareOptions,
    StoreMismatchError,
    clean_audio,
    discover,
    prepare,
    run_jobs,
)
from timbre_transfer.data.store import FeatureStore, params_hash, part_path
from timbre_transfer.models.multidomain import validate_domains

SR = 16000
NEARLY_SILENT_FLUTE = "Medley-solos-DB_training-3_0e68c3b9-fa02-5c2a-fefa-6d95adbafc96.flac"


def _tone(seconds, freq=440.0, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def real_data(realaudio_dir, tmp_path_factory):
    """violin (44.1 kHz), speech (22.05 kHz) and flute (with its nearly silent clip)."""
    root = tmp_path_factory.mktemp("real")
    for domain, n in (("violin", 3), ("speech", 3), ("flute", 2)):
        files = sorted((realaudio_dir / domain).glob("*.flac"))[:n]
        if domain == "flute":
            files.append(realaudio_dir / domain / NEARLY_SILENT_FLUTE)
        require_or_skip(all(f.exists() for f in files), f"clips of {realaudio_dir / domain}")
        (root / domain).mkdir()
        for f in files:
            shutil.copyfile(f, root / domain / f.name)
    return root


@pytest.fixture(scope="module")
def real_store(real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    result = prepare(real_data, out, workers=1, progress=False)
    return out, result


def test_real_store_counts_rates_and_silence(real_data, real_store):
    out, result = real_store
    report = json.loads((out / "prepare_report.json").read_text())
    assert report == result.report
    assert {d: i["files"] for d, i in report["domains"].items()} == {"flute": 2, "speech": 3,
                                                                     "violin": 3}
    assert [s["reason"][:6] for s in report["skipped"]] == ["silent"]
    assert report["skipped"][0]["path"].endswith(NEARLY_SILENT_FLUTE)
    manifest = json.loads((out / "store.json").read_text())
    assert manifest["domains"] == ["flute", "speech", "violin"]
    # Mixed source rates (44.1 and 22.05 kHz) all become 16 kHz frames at hop 128.
    for domain in ("violin", "speech"):
        index = json.loads((out / domain / "index.json").read_text())
        feats = np.load(out / domain / "features.npy", mmap_mode="r")
        assert feats.dtype == np.float16 and feats.shape[1] == 128
        assert sum(e["frames"] for e in index) == feats.shape[0]
        for entry in index:
            src_seconds = sf.info(real_data / domain / entry["file"]).duration
            # trimming only removes audio; frames are 125 per second
            assert entry["frames"] <= src_seconds * SR / 128 + 1
            assert entry["frames"] > 0.3 * src_seconds * SR / 128
    # Normalisation fitted on training files maps them into [0, 1].
    t = AudioTransform.from_dict(manifest["transform"])
    assert float(t.norm_shift) >= 0 and float(t.norm_scale) > 1


def test_split_is_by_file_and_seeded(real_store, real_data, tmp_path):
    out, _ = real_store
    for domain in ("violin", "speech"):
        index = json.loads((out / domain / "index.json").read_text())
        splits = [e["split"] for e in index]
        assert splits.count("val") == 1 and splits.count("train") == len(index) - 1
        # clip rows are disjoint and cover the array: a file's frames belong to one split only
        rows = sorted((e["offset"], e["offset"] + e["frames"]) for e in index)
        assert all(a[1] == b[0] for a, b in zip(rows[:-1], rows[1:]))
    again = prepare(real_data, tmp_path / "again", workers=1, progress=False)
    for domain in ("violin", "speech"):
        a = json.loads((out / domain / "index.json").read_text())
        b = json.loads((again.store / domain / "index.json").read_text())
        assert [e["split"] for e in a] == [e["split"] for e in b]


def test_second_run_is_up_to_date(real_data, real_store):
    out, _ = real_store
    before = (out / "violin" / "features.npy").stat().st_mtime_ns
    result = prepare(real_data, out, workers=1, progress=False)
    assert result.processed == 0 and result.reused == 9
    assert (out / "violin" / "features.npy").stat().st_mtime_ns == before
    # the same folder spelled as a relative path is the same files
    import os

    relative = Path(os.path.relpath(real_data))
    assert not relative.is_absolute()
    assert prepare(relative, out, workers=1, progress=False).processed == 0


def test_changed_parameters_never_mix(real_data, real_store, tmp_path):
    out, _ = real_store
    with pytest.raises(StoreMismatchError, match="other parameters"):
        prepare(real_data, out, AudioTransform(hop_length=256), progress=False)
    with pytest.raises(StoreMismatchError):
        prepare(real_data, out, options=PrepareOptions(target_dbfs=-23.0), progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    prepare(real_data, copy, AudioTransform(hop_length=256), overwrite=True, progress=False)
    manifest = json.loads((copy / "store.json").read_text())
    assert manifest["transform"]["params"]["hop_length"] == 256
    assert manifest["hash"] == params_hash(AudioTransform(hop_length=256), PrepareOptions())
    index = json.loads((copy / "violin" / "index.json").read_text())
    assert np.load(copy / "violin" / "features.npy").shape[0] == sum(e["frames"] for e in index)


def test_interrupted_prepare_resumes(real_data, real_store, tmp_path):
    out, _ = real_store
    transform, options = AudioTransform(), PrepareOptions()
    resumed = tmp_path / "resumed"
    sources = discover(real_data)
    work = resumed / ".work" / params_hash(transform, options)
    run_jobs([(s, part_path(work, s.domain, s.name)) for s in sources[:4]], transform, options,
             progress=False)
    result = prepare(real_data, resumed, workers=1, progress=False)
    assert (result.processed, result.reused) == (5, 4)
    assert not (resumed / ".work").exists()
    for domain in ("flute", "speech", "violin"):
        np.testing.assert_array_equal(np.load(resumed / domain / "features.npy"),
                                      np.load(out / domain / "features.npy"))


def test_two_workers_give_the_same_store(real_data, real_store, tmp_path):
    out, _ = real_store
    prepare(real_data, tmp_path / "w2", workers=2, progress=False)
    for domain in ("flute", "speech", "violin"):
        np.testing.assert_array_equal(np.load(tmp_path / "w2" / domain / "features.npy"),
                                      np.load(out / domain / "features.npy"))


@pytest.fixture
def broken_data(tmp_path):
    root = tmp_path / "data"
    good, bad = root / "good", root / "broken"
    good.mkdir(parents=True)
    bad.mkdir()
    sf.write(good / "tone.wav", _tone(1.0), SR)
    sf.write(bad / "fine.wav", _tone(1.0, 330), SR)
    (bad / "zero.wav").write_bytes(b"")
    sf.write(bad / "full.flac", _tone(1.0), SR)
    data = (bad / "full.flac").read_bytes()
    (bad / "truncated.flac").write_bytes(data[: len(data) // 2])
    (bad / "full.flac").unlink()
    (bad / "text.wav").write_text("not audio at all\n" * 50)
    nan = _tone(1.0)
    nan[500] = np.nan
    sf.write(bad / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(bad / "short.wav", _tone(0.01), SR)
    sf.write(bad / "stereo.wav", np.stack([_tone(1.0), _tone(1.0, 660)], 1), SR)
    sf.write(bad / "lowrate.wav", _tone(1.0, sr=8000), 8000)
    sf.write(bad / "silent.wav", np.zeros(SR, np.float32), SR)
    return root


def test_bad_files_are_skipped_with_reasons(broken_data, tmp_path):
    result = prepare(broken_data, tmp_path / "store", progress=False)
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in result.report["skipped"]}
    assert set(reasons) == {"zero.wav", "truncated.flac", "text.wav", "nan.wav", "short.wav",
                            "lowrate.wav", "silent.wav"}
    assert "cannot decode" in reasons["zero.wav"] or "unreadable" in reasons["zero.wav"]
    assert "lost sync" in reasons["truncated.flac"] or "unreadable" in reasons["truncated.flac"]
    assert "unreadable" in reasons["text.wav"]
    assert "NaN" in reasons["nan.wav"]
    assert reasons["short.wav"].startswith("too short (0.010 s")
    assert reasons["lowrate.wav"].startswith("sample rate 8000 Hz is below the transform's "
                                             "16000 Hz")
    assert reasons["silent.wav"].startswith("silent (peak -200.0 dBFS")
    kept = json.loads((tmp_path / "store" / "broken" / "index.json").read_text())
    assert sorted(e["file"] for e in kept) == ["fine.wav", "stereo.wav"]
    assert result.report["domains"]["broken"]["skipped"] == 7
    assert result.report["domains"]["good"] == {"files": 1, "skipped": 0, "train_files": 1,
                                                "val_files": 0, "seconds": 1.0}


def test_domain_without_usable_audio_is_an_error(tmp_path):
    root, out = tmp_path / "data", tmp_path / "store"
    (root / "ok").mkdir(parents=True)
    (root / "empty_domain").mkdir()
    sf.write(root / "ok" / "a.wav", _tone(1.0), SR)
    (root / "empty_domain" / "bad.wav").write_bytes(b"junk")
    for _ in range(2):  # a rerun fails the same way: never "up to date" on a store never finished
        with pytest.raises(ValueError, match=r"\['empty_domain'\] have no usable audio, so no "
                           r"store was written .*bad\.wav: (unreadable|cannot decode)"):
            prepare(root, out, progress=False)
        assert not (out / "store.json").exists()
        with pytest.raises(FileNotFoundError, match="not a feature store"):
            FeatureStore(out)
    # the report of the failed run lies beside the analysed files it keeps
    work = out / ".work" / params_hash(AudioTransform(), PrepareOptions())
    report = json.loads((work / "prepare_report.json").read_text())
    assert report["skipped"][0]["path"].endswith("bad.wav")
    assert report["domains"] == {"empty_domain": {"files": 0, "skipped": 1},
                                 "ok": {"files": 1, "skipped": 0}}
    # fixed: the files already analysed are reused, only the new one is processed
    sf.write(root / "empty_domain" / "good.wav", _tone(1.0, 330), SR)
    result = prepare(root, out, progress=False)
    assert (result.processed, result.reused) == (1, 2)
    assert FeatureStore(out).domains == ["empty_domain", "ok"]
    assert not (out / ".work").exists()


def test_failed_rerun_leaves_a_finished_store_as_it_was(tmp_path):
    root, out = tmp_path / "data", tmp_path / "store"
    for domain, freq in (("a", 300), ("b", 400)):
        (root / domain).mkdir(parents=True)
        sf.write(root / domain / "x.wav", _tone(1.0, freq), SR)
    prepare(root, out, progress=False)
    before = {p.name: p.read_bytes() for p in (out / "store.json", out / "prepare_report.json")}
    (root / "c").mkdir()
    (root / "c" / "silent.wav").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"\['c'\] have no usable audio"):
        prepare(root, out, progress=False)
    after = {p.name: p.read_bytes() for p in (out / "store.json", out / "prepare_report.json")}
    assert after == before
    assert FeatureStore(out).domains == ["a", "b"]
    with pytest.raises(ValueError, match="no usable audio"):  # and the rerun is no "up to date"
        prepare(root, out, progress=False)


def test_unexpected_file_error_names_the_file(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for domain in ("a", "b"):
        (root / domain).mkdir(parents=True)
        sf.write(root / domain / "fine.wav", _tone(1.0), SR)
    sf.write(root / "b" / "zz_breaks.wav", _tone(1.0), SR)
    real = prepare_module.file_features

    def file_features(source, transform, options):
        if source.path.name == "zz_breaks.wav":
            raise RuntimeError("boom")
        return real(source, transform, options)

    monkeypatch.setattr(prepare_module, "file_features", file_features)
    with pytest.raises(PrepareFileError,
                       match=r"zz_breaks\.wav \(domain 'b'\): RuntimeError: boom") as exc:
        prepare(root, tmp_path / "store", workers=1, progress=False)
    assert isinstance(exc.value.__cause__, RuntimeError)
    # a worker's error crosses the process boundary by pickling: the message, with its file, too
    import pickle

    assert str(pickle.loads(pickle.dumps(exc.value))) == str(exc.value)
    # the files analysed before it are kept for the rerun; no store looks finished
    assert not (tmp_path / "store" / "store.json").exists()
    assert len(list((tmp_path / "store" / ".work").rglob("*.npy"))) == 4  # features, controls


@pytest.mark.parametrize("layout,name,message", [
    ("folder", "violin.v2", "must not contain '.'"),
    ("folder", "train", "is reserved by torch.nn.Module"),
    ("csv", "strings/violin", "must not contain a path separator"),
])
def test_domain_names_are_checked_before_any_work(tmp_path, layout, name, message):
    root = tmp_path / "data"
    if layout == "folder":
        for domain in ("ok", name):
            (root / domain).mkdir(parents=True)
            sf.write(root / domain / "a.wav", _tone(1.0), SR)
        data = root
    else:
        root.mkdir()
        sf.write(root / "a.wav", _tone(1.0), SR)
        sf.write(root / "b.wav", _tone(1.0), SR)
        data = root / "list.csv"
        data.write_text(f"path,domain\na.wav,ok\nb.wav,{name}\n")
    with pytest.raises(ValueError, match=rf"domain name '{re.escape(name)}' {message}.*rename"):
        prepare(data, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()  # nothing analysed, nothing written


def test_prepare_and_the_model_share_one_domain_rule(tmp_path):
    # The message is the model's own (validate_domains), with the remedy added.
    with pytest.raises(ValueError) as model_error:
        validate_domains(["ok", "a.b"], owner=str(tmp_path))
    with pytest.raises(ValueError) as prepare_error:
        prepare_module.check_domain_names(["a.b", "ok"], tmp_path)
    assert str(prepare_error.value).startswith(str(model_error.value))


def test_clean_audio_trims_shortens_silences_and_normalises():
    wav = np.concatenate([np.zeros(SR), _tone(0.5), np.zeros(2 * SR), _tone(0.5, amp=0.05),
                          np.zeros(SR)]).astype(np.float32)
    out = clean_audio(wav, SR, PrepareOptions())
    # 1 s of tone survives, the 2 s gap is cut to 0.3 s, leading/trailing silence goes
    assert 1.2 * SR < len(out) < 1.45 * SR
    sound = out[np.abs(out) > 1e-4]
    rms_db = 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(-20.0, abs=0.1)
    assert np.abs(out).max() <= 0.99 and sound.size > 0.95 * SR  # zero crossings aside


def test_csv_and_nsynth_layouts(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name, freq in (("a", 300), ("b", 400), ("c", 500)):
        sf.write(audio / f"{name}.wav", _tone(1.0, freq), SR)
    manifest = tmp_path / "list.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "domain"], ["audio/a.wav", "x"], ["audio/b.wav", "y"],
                                  [str(audio / "c.wav"), "y"]])
    assert [(s.domain, s.path.name) for s in discover(manifest)] == [("x", "a.wav"), ("y", "b.wav"),
                                                                       ("y", "c.wav")]
    (tmp_path / "examples.json").write_text(json.dumps({
        "a": {"instrument_family_str": "string", "instrument_source_str": "acoustic",
              "instrument_str": "s1"},
        "b": {"instrument_family_str": "brass", "instrument_source_str": "acoustic",
              "instrument_str": "b1"},
        "c": {"instrument_family_str": "string", "instrument_source_str": "synthetic",
              "instrument_str": "s2"},
    }))
    by_family = discover(tmp_path, nsynth_by="family", nsynth_include=["string"])
    assert [(s.domain, s.path.name) for s in by_family] == [("string", "a.wav"),
                                                            ("string", "c.wav")]
    by_source = discover(tmp_path, nsynth_by="source")
    assert sorted({s.domain for s in by_source}) == ["acoustic", "synthetic"]
    result = prepare(tmp_path, tmp_path / "store", nsynth_by="family", progress=False)
    assert sorted(result.report["domains"]) == ["brass", "string"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx,y\n")
    with pytest.raises(KeyError, match="lacks column"):
        discover(bad)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        discover(tmp_path / "nowhere")


def _harmonic(seconds, f0, sr=SR, amp=0.2):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def test_prepare_analyses_the_controls_once_for_every_frame(tmp_path):
    root = tmp_path / "data"
    for domain, f0 in (("low", 110.0), ("high", 440.0)):
        (root / domain).mkdir(parents=True)
        sf.write(root / domain / "note.wav", _harmonic(1.5, f0), SR)
        sf.write(root / domain / "other.wav", _harmonic(1.0, f0 * 1.5), SR)
    prepare(root, tmp_path / "store", options=PrepareOptions(val_fraction=0.0), workers=1,
            progress=False)
    store = FeatureStore(tmp_path / "store")
    for domain, f0 in (("low", 110.0), ("high", 440.0)):
        clips = store.clips(domain)
        assert clips.controls.shape == (clips.features.shape[0], 4)  # a row per mel frame
        i = clips.files.index("note.wav")
        c = clips.clip_controls(i)
        assert len(c.f0_hz) == clips.frames[i]
        inner = slice(10, -10)  # pYIN's edges
        assert c.voiced[inner].all()
        cents = 1200 * np.abs(np.log2(c.f0_hz[inner] / f0))
        assert np.median(cents) < 10
        assert np.all(c.loudness_db[inner] > -40)
    # the register of each domain: the median over both files
    medians = store.pitch_medians()
    assert 1200 * abs(np.log2(medians["high"] / 440.0)) < 10 or \
        1200 * abs(np.log2(medians["high"] / 660.0)) < 10


def test_csv_split_column_fixes_the_split(tmp_path):
    rows = []
    for domain in ("a", "b"):
        for i in range(3):
            path = tmp_path / domain / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _tone(0.6, 300.0 + 50 * i), SR)
            rows.append((f"{domain}/{i}.wav", domain, "val" if i == 2 else "train"))
    manifest = tmp_path / "files.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "domain", "split"), *rows])
    prepare(manifest, tmp_path / "store", options=PrepareOptions(val_fraction=0.5), workers=1,
            progress=False)
    store = FeatureStore(tmp_path / "store")
    for domain in ("a", "b"):
        assert store.clips(domain, "val").files == [f"{domain}/2.wav"]
    with open(manifest, "a", newline="") as fh:
        csv.writer(fh).writerow(("a/0.wav", "a", "test"))
    with pytest.raises(ValueError, match="split must be train, val or empty"):
        discover(manifest)


def test_worker_count_follows_the_tracker_s_cost():
    import os

    from timbre_transfer.data.prepare import auto_workers

    # SwiftF0 analyses a file faster than a worker starts; pYIN pays for workers from 4 files
    assert auto_workers(500, "swift") == 1
    assert auto_workers(3, "pyin") == 1
    assert auto_workers(500, "pyin") == max(1, min(os.cpu_count() or 1, 8))
