import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, DistributedSampler

from timbre_transfer.data.dataset import CropDataset, MultiDomainCropDataset
from timbre_transfer.data.prepare import PrepareOptions, prepare
from timbre_transfer.data.store import FeatureStore

SR = 16000


def _tone(seconds, freq, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Domain "big": 6 clips of 1-6 s; domain "small": 2 clips of 1 s and 0.5 s (shorter than a
    128-frame crop). Each clip has its own pitch, so crops can be traced back to their clip."""
    root = tmp_path_factory.mktemp("data")
    (root / "big").mkdir()
    (root / "small").mkdir()
    for i in range(6):
        sf.write(root / "big" / f"b{i}.wav", _tone(1.0 + i, 200 + 50 * i), SR)
    sf.write(root / "small" / "s0.wav", _tone(1.5, 1000), SR)
    sf.write(root / "small" / "s1.wav", _tone(0.5, 1500), SR)
    out = tmp_path_factory.mktemp("store")
    prepare(root, out, options=PrepareOptions(val_fraction=0.2), progress=False)
    return FeatureStore(out)


def test_items_and_normalisation(store):
    ds = CropDataset(store, crop_frames=64)
    spec, domain = ds[0]
    assert spec.shape == (1, 128, 64) and spec.dtype == torch.float32 and domain == 0
    t = store.transform
    assert (spec >= -1e-3).all() and (spec <= 1 + 1e-3).all()  # train data spans [0, 1]
    # The crop is a verbatim window of the stored log1p mel, normalised with the store's stats.
    clips = store.clips("big", "train")
    rows = ((np.asarray(clips.features, dtype=np.float32) - float(t.norm_shift))
            / float(t.norm_scale))
    crop = spec[0].numpy().T
    starts = [s for s in range(len(rows) - 63) if np.allclose(rows[s], crop[0], atol=1e-6)]
    assert any(np.allclose(rows[s:s + 64], crop, atol=1e-6) for s in starts)


def test_domains_are_balanced_and_clips_weighted_by_length(store):
    ds = CropDataset(store, crop_frames=32, length=6000)
    counts = np.bincount([ds[i][1] for i in range(0, 6000, 1)], minlength=2)
    assert counts.tolist() == [3000, 3000]  # the small domain is not drowned
    # Which clip each "big" crop came from: the loudest mel band identifies the pitch.
    clips = store.clips("big", "train")
    band_of_clip = {}
    for c in range(len(clips.frames)):
        start = clips.offsets[c] + clips.frames[c] // 2
        band_of_clip[int(np.argmax(clips.features[start]))] = c
    rng_counts = np.zeros(len(clips.frames))
    for i in range(0, 6000, 2):
        band = int(np.argmax(ds[i][0][0, :, 16].numpy()))
        rng_counts[band_of_clip[band]] += 1
    expected = clips.frames / clips.frames.sum() * rng_counts.sum()
    assert np.abs(rng_counts - expected).max() < 0.15 * expected.max()


def test_train_and_val_never_share_a_file(store):
    for domain in store.domains:
        train, val = store.clips(domain, "train"), store.clips(domain, "val")
        assert set(train.files).isdisjoint(val.files) and len(val.files) >= 1
    val_ds = CropDataset(store, split="val", crop_frames=16, length=400)
    train_bands = {int(np.argmax(store.clips(d, "train").features[o + f // 2]))
                   for d in store.domains
                   for o, f in zip(store.clips(d, "train").offsets, store.clips(d, "train").frames)}
    for i in range(400):
        spec, _ = val_ds[i]
        frame = spec[0, :, 0].numpy()
        if frame.max() > 0.05:  # not padding
            assert int(np.argmax(frame)) not in train_bands


def test_short_clips_pad_or_exclude(store):
    small = store.clips("small", None)
    assert small.frames.min() < 128
    ds = CropDataset(store, split=None, crop_frames=128, length=400)
    silence = (0.0 - float(store.transform.norm_shift)) / float(store.transform.norm_scale)
    padded = 0
    for i in range(1, 400, 2):  # odd items are the small domain
        spec = ds[i][0][0].numpy()
        if np.allclose(spec[:, -1], silence):
            padded += 1
            first_pad = np.argmax(np.all(np.isclose(spec, silence), axis=0))
            assert np.all(np.isclose(spec[:, first_pad:], silence))
    assert padded > 0
    excluded = CropDataset(store, split=None, crop_frames=128, short_clips="exclude")
    assert "s1.wav" not in excluded.per_domain[1][0].files
    with pytest.raises(ValueError, match="no train clips of at least 1000 frames"):
        CropDataset(store, crop_frames=1000, short_clips="exclude")


def test_reproducible_and_distributed_sampler_safe(store):
    a = CropDataset(store, crop_frames=32, seed=1)
    b = CropDataset(store, crop_frames=32, seed=1)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(10))
    b.set_epoch(1)
    assert not all(torch.equal(a[i][0], b[i][0]) for i in range(10))
    ranks = [list(DistributedSampler(a, num_replicas=2, rank=r, shuffle=True, seed=0))
             for r in (0, 1)]
    assert set(ranks[0]).isdisjoint(ranks[1]) and len(ranks[0]) == len(ranks[1])
    # an item is the same whichever rank, worker or order reads it
    i = ranks[1][3]
    assert torch.equal(a[i][0], CropDataset(store, crop_frames=32, seed=1)[i][0])


def test_multi_domain_batches(store):
    ds = MultiDomainCropDataset(store, crop_frames=32)
    specs, pitch = next(iter(DataLoader(ds, batch_size=4, num_workers=0)))
    assert specs.shape == (4, 2, 1, 128, 32)
    assert pitch.shape == (4, 2, 2, 32)  # f0 and voicing of every crop's frames
    # the pitch rows are the store's controls of the very frames cropped: recompute item 0
    rng = np.random.default_rng([ds.seed, ds.epoch, 0])
    for d in range(2):
        clips, cumulative = ds.per_domain[d]
        clip = min(int(np.searchsorted(cumulative, rng.random(), side="right")),
                   len(cumulative) - 1)
        offset = int(rng.integers(0, max(int(clips.frames[clip]) - 32, 0) + 1))
        start = int(clips.offsets[clip]) + offset
        n = min(int(clips.frames[clip]), 32)
        np.testing.assert_array_equal(pitch[0, d, :, :n].numpy(),
                                      clips.controls[start:start + n, :2].T)
    single = CropDataset(store, crop_frames=32)
    assert len(ds) == max(len(single) // 2, 2)


def test_store_errors(tmp_path, store):
    with pytest.raises(FileNotFoundError, match="not a feature store"):
        FeatureStore(tmp_path)
    with pytest.raises(KeyError, match="unknown domain 'cello'"):
        store.clips("cello")
    with pytest.raises(ValueError, match="short_clips"):
        CropDataset(store, short_clips="loop")


def test_clip_audio_is_the_audio_that_was_analysed(store):
    clips = store.clips("big", None)
    for file, offset, frames in zip(clips.files[:3], clips.offsets, clips.frames):
        wav = store.clip_audio("big", file)
        with torch.no_grad():
            log_mel = torch.log1p(store.transform.mel(torch.from_numpy(wav))).T.numpy()
        stored = np.asarray(clips.features[offset:offset + frames], dtype=np.float32)
        assert log_mel.shape == stored.shape
        np.testing.assert_allclose(log_mel, stored, atol=2e-3 * max(1.0, float(stored.max())))
    with pytest.raises(KeyError, match="no clip 'nope.wav'"):
        store.clip_audio("big", "nope.wav")


def test_clip_audio_names_a_moved_or_changed_source(tmp_path):
    (tmp_path / "audio" / "a").mkdir(parents=True)
    source = tmp_path / "audio" / "a" / "x.wav"
    sf.write(source, _tone(1.0, 300), SR)
    prepare(tmp_path / "audio", tmp_path / "store", progress=False)
    store = FeatureStore(tmp_path / "store")
    sf.write(source, _tone(2.0, 300), SR)  # edited after prepare
    with pytest.raises(ValueError, match="x.wav changed since it was prepared"):
        store.clip_audio("a", "x.wav")
    source.unlink()
    with pytest.raises(FileNotFoundError, match="x.wav"):
        store.clip_audio("a", "x.wav")
