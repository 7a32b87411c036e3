import json
from pathlib import Path

import numpy as np
import pytest

from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.data import store
from timbre_transfer.data.prepare import PrepareOptions
from timbre_transfer.data.store import FeatureStore, StoredFile


def test_part_names_are_stable():
    # a run interrupted by an older version resumes: its parts keep their names
    part = store.part_path(Path("w"), "flute", "sub/x.wav")
    assert part == Path("w/flute/f58fa4c05bf79b2fa082.npy")


def test_parts_round_trip(tmp_path):
    work = store.work_dir(tmp_path, "abc")
    good, bad = store.part_path(work, "a", "good.wav"), store.part_path(work, "a", "bad.wav")
    assert not store.part_done(good)
    features = np.arange(12, dtype=np.float16).reshape(3, 4)
    controls = np.ones((3, store.N_CONTROLS), dtype=np.float32)
    store.write_part(good, features, controls)
    store.write_skip(bad, "silent")
    assert store.part_done(good) and store.part_done(bad)
    assert store.read_skip(good) is None and store.read_skip(bad) == "silent"
    read_features, read_controls = store.read_part(good)
    np.testing.assert_array_equal(read_features, features)
    np.testing.assert_array_equal(read_controls, controls)
    store.remove_work(tmp_path)
    assert not store.work_dir(tmp_path).exists()


def test_a_written_store_reads_back(tmp_path):
    transform, rng = AudioTransform(), np.random.default_rng(0)
    n_mels, work = transform.params.n_mels, store.work_dir(tmp_path, "abc")
    files, arrays = [], []
    for name, frames, split in (("x.wav", 5, "train"), ("y.wav", 3, "val")):
        part = store.part_path(work, "d", name)
        arrays.append((rng.random((frames, n_mels)).astype(np.float16),
                       rng.random((frames, store.N_CONTROLS)).astype(np.float32)))
        store.write_part(part, *arrays[-1])
        files.append(StoredFile(name, f"/src/{name}", split, part))
    index = store.write_domain(tmp_path, "d", files, transform.params)
    # the on-disk schema of index.json, in its order
    assert store.read_index(tmp_path, "d") == index
    keys = ["file", "path", "offset", "frames", "seconds", "split"]
    assert [list(e) for e in index] == [keys, keys]
    assert [(e["offset"], e["frames"]) for e in index] == [(0, 5), (5, 3)]
    assert index[0]["seconds"] == round(4 * transform.params.hop_length
                                        / transform.params.sample_rate, 3)
    with pytest.raises(FileNotFoundError, match="not a feature store"):
        FeatureStore(tmp_path)  # no store.json yet: not finished
    manifest = store.write_manifest(tmp_path, "abc", transform, PrepareOptions(), ["d"])
    assert store.read_manifest(tmp_path) == manifest
    fs = FeatureStore(tmp_path)
    assert fs.domains == ["d"] and fs.manifest["hash"] == "abc"
    clips = fs.clips("d", None)
    assert clips.files == ["x.wav", "y.wav"] and fs.clips("d", "val").files == ["y.wav"]
    np.testing.assert_array_equal(clips.features, np.concatenate([a[0] for a in arrays]))
    np.testing.assert_array_equal(clips.controls, np.concatenate([a[1] for a in arrays]))


def test_a_store_records_its_f0_tracker_and_one_without_the_record_is_pyin_s(tmp_path):
    transform = AudioTransform()
    swift, pyin = PrepareOptions(), PrepareOptions(f0_tracker="pyin")
    assert swift.f0_tracker == "swift"
    # the tracker is part of the store's identity: another tracker is another store
    assert store.params_hash(transform, swift) != store.params_hash(transform, pyin)
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / store.FEATURES, np.zeros((1, transform.params.n_mels), np.float16))
    np.save(tmp_path / "d" / store.CONTROLS, np.zeros((1, store.N_CONTROLS), np.float32))
    (tmp_path / "d" / store.INDEX).write_text("[]")
    store.write_manifest(tmp_path, "abc", transform, pyin, ["d"])
    assert FeatureStore(tmp_path).f0_tracker == "pyin"
    manifest = store.read_manifest(tmp_path)
    assert manifest["prepare"]["f0_tracker"] == "pyin"
    del manifest["prepare"]["f0_tracker"]  # a store prepared before 0.3.0
    store.manifest_path(tmp_path).write_text(json.dumps(manifest))
    assert FeatureStore(tmp_path).f0_tracker == "pyin"
    manifest["prepare"]["f0_tracker"] = "swift"
    store.manifest_path(tmp_path).write_text(json.dumps(manifest))
    assert FeatureStore(tmp_path).f0_tracker == "swift"
    with pytest.raises(ValueError, match="prepare.f0_tracker: 'crepe' is not a tracker"):
        PrepareOptions(f0_tracker="crepe")


def test_other_formats_are_refused(tmp_path):
    (tmp_path / "store.json").write_text(json.dumps({"format": store.STORE_FORMAT - 1}))
    with pytest.raises(ValueError, match="store format 1, this package reads format 2; prepare"):
        FeatureStore(tmp_path)
