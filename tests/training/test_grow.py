"""Growing a trained model: add-domain, train --init-from, prepare --like, domains."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from timbre_transfer.cli import main
from timbre_transfer.training.grow import grown_config
from timbre_transfer.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "config" / "debug.yaml")
OLD, NEW = ["brass", "reed"], "flute"


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A debug model trained on brass and reed, and a store of brass, reed and flute prepared
    --like it (its transform, cleaning and normalisation)."""
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.synthetic import write_paired_dataset

    root = tmp_path_factory.mktemp("grow")
    files = write_paired_dataset(root / "audio", n_domains=3, n_clips=4, seconds=1.5)
    with open(root / "old.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain"])
        writer.writerows((str(p), d) for d in OLD for p in files[d])
    prepare(root / "old.csv", root / "old_store", options=PrepareOptions(val_fraction=0.25),
            workers=1, progress=False)
    assert main(["train", "--data", str(root / "old_store"), "--out", str(root / "old_run"),
                 "--config", DEBUG, "--max-steps", "2"]) == 0
    ckpt = root / "old_run" / "checkpoints" / "latest.pt"
    assert main(["prepare", str(root / "audio"), "--out", str(root / "store"), "--like",
                 str(ckpt), "--workers", "1", "prepare.val_fraction=0.25"]) == 0
    return root, ckpt


def _params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_prepare_like_keeps_the_models_transform(grown):
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.store import FeatureStore

    root, ckpt = grown
    store, old = FeatureStore(root / "store"), FeatureStore(root / "old_store")
    assert store.domains == sorted(OLD + [NEW])
    assert store.transform.to_dict() == read_checkpoint(ckpt)["transform"]
    # fitted on brass, reed and flute it would differ (flute has other levels)
    assert store.transform.to_dict() == old.transform.to_dict()


def test_add_domain_trains_only_the_new_domain(grown, tmp_path):
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE

    root, ckpt = grown
    config = grown_config(ckpt, None, ["train.max_steps=2"], freeze=ADD_DOMAIN_FREEZE)
    trainer = Trainer(config, root / "store", tmp_path / "run", progress=False)
    model = trainer.model
    before = {name: _params(m) for name, m in (
        ("encoder", model.encoder), ("shared", model.shared),
        *((f"G {d}", model.generators[d]) for d in trainer.domains),
        *((f"D {d}", model.discriminators[d]) for d in trainer.domains))}
    # the old weights are the checkpoint's
    saved = torch.load(ckpt, weights_only=True)["model"]
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, saved[f"encoder.{key}"], rtol=0, atol=0)
    trainer.fit()
    for name, module in (("encoder", model.encoder), ("shared", model.shared),
                         *((f"G {d}", model.generators[d]) for d in OLD),
                         *((f"D {d}", model.discriminators[d]) for d in OLD)):
        for key, value in module.state_dict().items():
            assert torch.equal(value, before[name][key]), f"{name} {key} changed"
    for name in (f"G {NEW}", f"D {NEW}"):  # the new ones did train
        module = model.generators[NEW] if name.startswith("G") else model.discriminators[NEW]
        changed = [k for k, v in module.state_dict().items()
                   if not k.startswith("shared.") and not torch.equal(v, before[name][k])]
        assert changed, f"{name} did not train"


def test_add_domain_cli_keeps_old_transfers_bit_identical(grown, tmp_path, capsys):
    from timbre_transfer.inference.transfer import TimbreTransfer

    root, ckpt = grown
    out = tmp_path / "add"
    assert main(["add-domain", str(ckpt), "--data", str(root / "store"), "--domain", NEW,
                 "--out", str(out), "--max-steps", "2"]) == 0
    assert "adding ['flute'] to ['brass', 'reed']" in capsys.readouterr().out
    new_ckpt = out / "checkpoints" / "latest.pt"
    old_tt = TimbreTransfer.from_checkpoint(ckpt, device="cpu")
    new_tt = TimbreTransfer.from_checkpoint(new_ckpt, device="cpu")
    assert new_tt.domains == sorted(OLD + [NEW])
    wav = np.sin(2 * np.pi * 330 * np.arange(16000) / 16000).astype(np.float32) * 0.3
    for d in OLD:
        np.testing.assert_array_equal(old_tt.transfer(wav, 16000, d, inverter="pghi"),
                                      new_tt.transfer(wav, 16000, d, inverter="pghi"))
    assert np.isfinite(new_tt.transfer(wav, 16000, NEW, inverter="pghi")).all()

    assert main(["domains", str(new_ckpt)]) == 0
    printed = capsys.readouterr().out
    for d in OLD + [NEW]:
        assert f"\n  {d}" in printed
    assert "training steps: 2 (grown from a model of ['brass', 'reed'])" in printed
    assert "DDSP heads bundled: none" in printed and "n_mels 128" in printed


def test_add_domain_from_the_new_recordings_alone(grown, tmp_path, capsys):
    """A model packed for shipping (no discriminators, no training data at hand) takes a new
    timbre from a folder of its recordings alone: prepared like the model, the old domains'
    crops stand-ins made by the frozen old generators; the old transfers stay bit-identical."""
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.pretrained import pack

    root, ckpt = grown
    packed = pack(ckpt, tmp_path / "packed.pt", {"name": "test"})
    out = tmp_path / "alone"
    assert main(["add-domain", str(packed), "--data", str(root / "audio" / NEW), "--domain",
                 NEW, "--out", str(out), "--max-steps", "2"]) == 0
    assert "stand-ins: the new clips through the frozen old generators" in \
        capsys.readouterr().out
    store = FeatureStore(out / "features")  # prepared here, with the model's settings
    assert store.domains == [NEW]
    assert store.transform.to_dict() == TimbreTransfer.from_checkpoint(packed).transform.to_dict()
    old_tt = TimbreTransfer.from_checkpoint(packed, device="cpu")
    new_tt = TimbreTransfer.from_checkpoint(out / "checkpoints" / "latest.pt", device="cpu")
    assert new_tt.domains == OLD + [NEW]
    wav = np.sin(2 * np.pi * 330 * np.arange(16000) / 16000).astype(np.float32) * 0.3
    for d in OLD:
        np.testing.assert_array_equal(old_tt.transfer(wav, 16000, d, inverter="pghi"),
                                      new_tt.transfer(wav, 16000, d, inverter="pghi"))
    flute = new_tt.transfer(wav, 16000, NEW, inverter="pghi")
    assert np.isfinite(flute).all() and np.abs(flute).max() > 0


def test_stand_ins_are_new_crops_through_the_old_generators(grown, tmp_path):
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.prepare import prepare_like
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE

    root, ckpt = grown
    store = prepare_like(root / "audio" / NEW, tmp_path / "store", read_checkpoint(ckpt),
                         str(ckpt), domain=NEW, progress=False).store
    config = grown_config(ckpt, None, ["train.max_steps=1"], freeze=ADD_DOMAIN_FREEZE,
                          stand_ins=True)
    trainer = Trainer(config, store, tmp_path / "run", progress=False)
    assert trainer.domains == OLD + [NEW]
    batch = next(trainer.batches())
    x, _, pitch = trainer.prepare_batch(batch, 0)
    assert x.shape[1] == 3 and pitch.shape[1] == 3
    new = batch.specs[:, 0]
    torch.testing.assert_close(x[:, 2], new)  # the new domain's own crops, as drawn
    model = trainer.model
    with torch.no_grad():  # old domain i: the batch rolled by i + 1, through G_i
        for i, domain in enumerate(OLD):
            source = new.roll(i + 1, dims=0)
            torch.testing.assert_close(x[:, i], model.decode(model.encode(source).mu, domain))
            torch.testing.assert_close(pitch[:, i], batch.pitch[:, 0].roll(i + 1, dims=0))
    with pytest.raises(ValueError, match="must hold the new domains alone"):
        Trainer(config, root / "store", tmp_path / "run2", progress=False)


def test_add_domain_refusals(grown, tmp_path, capsys):
    root, ckpt = grown
    assert main(["add-domain", str(ckpt), "--data", str(root / "store"), "--domain", "brass",
                 "--out", str(tmp_path / "a")]) == 2
    assert "already has ['brass']" in capsys.readouterr().err
    # a store without the model's domains
    assert main(["add-domain", str(ckpt), "--data", str(root / "old_store"), "--domain", NEW,
                 "--out", str(tmp_path / "b")]) == 2
    assert "must hold the new domains ['flute'], alone or with the model's domains" in \
        capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_store_with_another_normalisation_is_refused(grown, tmp_path):
    from timbre_transfer.data.prepare import PrepareOptions, prepare

    root, ckpt = grown
    prepare(root / "audio", tmp_path / "fitted", options=PrepareOptions(val_fraction=0.25),
            workers=1, progress=False)  # normalisation fitted on all three: not the model's
    with pytest.raises(ValueError, match="another transform or normalisation"):
        Trainer(grown_config(ckpt), tmp_path / "fitted", tmp_path / "run", progress=False)


def test_init_from_keeps_matching_weights_drops_and_adds_domains(grown, tmp_path):
    from timbre_transfer.data.prepare import prepare

    root, ckpt = grown
    saved = torch.load(ckpt, weights_only=True)["model"]
    # the 3-domain store: brass and reed kept, flute new
    trainer = Trainer(grown_config(ckpt), root / "store", tmp_path / "a", progress=False)
    state = trainer.model.state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    fresh = [k for k in state if k.startswith(f"generators.{NEW}.") and ".shared." not in k]
    assert fresh and all(k not in saved for k in fresh)
    # a store with reed and flute only: brass is dropped
    with open(tmp_path / "two.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain"])
        for d in ("reed", NEW):
            writer.writerows((str(p), d) for p in sorted((root / "audio" / d).glob("*.wav")))
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.data.prepare import PrepareOptions

    like = AudioTransform.from_dict(torch.load(ckpt, weights_only=True)["transform"])
    prepare(tmp_path / "two.csv", tmp_path / "two", like, PrepareOptions(val_fraction=0.25),
            workers=1, progress=False,
            normalisation=(float(like.norm_shift), float(like.norm_scale)))
    trainer = Trainer(grown_config(ckpt), tmp_path / "two", tmp_path / "b", progress=False)
    assert trainer.domains == [NEW, "reed"] and trainer.init_domains == ["reed"]
    state = trainer.model.state_dict()
    assert not any(k.startswith("generators.brass.") for k in state)
    for key in (k for k in saved if k.startswith(("encoder.", "generators.reed."))):
        torch.testing.assert_close(state[key], saved[key], rtol=0, atol=0, msg=key)


def test_init_from_a_model_of_other_shapes_names_the_parameter(grown, tmp_path):
    root, ckpt = grown
    config = grown_config(ckpt, None, ["model.dim=8"])
    with pytest.raises(ValueError, match=r"encoder\.\S+ has shape \(4, .*\) there and \(8, "):
        Trainer(config, root / "store", tmp_path / "run", progress=False)


def test_nearest_new_generators_start_as_the_best_reconstructing_old_one(grown, tmp_path):
    from timbre_transfer.training.grow import nearest_domain

    root, ckpt = grown
    trainer = Trainer(grown_config(ckpt, new_generators="nearest"), root / "store",
                      tmp_path / "run", progress=False)
    model = trainer.model
    scratch = Trainer(grown_config(ckpt), root / "store", tmp_path / "s", progress=False)
    # recompute the choice on the same crops, from the untouched (scratch) copy of old weights
    trainer.dataset.set_epoch(0)
    crops = torch.stack([trainer.dataset[i][0] for i in range(16)])[:, trainer.domains.index(NEW)]
    chosen, errors = nearest_domain(scratch.model, crops, None, OLD)
    assert set(errors) == set(OLD) and errors[chosen] == min(errors.values())
    theirs = dict(model.generators[chosen].named_parameters())
    for name, p in model.generators[NEW].named_parameters():
        assert torch.equal(p, theirs[name]), name
    theirs = dict(model.discriminators[chosen].named_parameters())
    for name, p in model.discriminators[NEW].named_parameters():
        assert torch.equal(p, theirs[name]), name


def test_unfreeze_after_trains_everything_at_a_lower_rate(grown, tmp_path):
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE

    root, ckpt = grown
    config = grown_config(ckpt, None, ["train.max_steps=3"], freeze=ADD_DOMAIN_FREEZE,
                          unfreeze_after=1)
    trainer = Trainer(config, root / "store", tmp_path / "run", progress=False)
    encoder = _params(trainer.model.encoder)
    history = trainer.fit(1)
    assert all(torch.equal(v, encoder[k]) for k, v in trainer.model.encoder.state_dict().items())
    assert history[-1]["lr"] == pytest.approx(config.train.lr * trainer.lr_factor(0))
    history = trainer.fit(2)
    assert any(not torch.equal(v, encoder[k])
               for k, v in trainer.model.encoder.state_dict().items())
    assert history[-1]["lr"] == pytest.approx(config.train.lr * 0.1 * trainer.lr_factor(1))


@pytest.mark.parametrize("unfreeze_after", [None, 3])
def test_resumed_add_domain_equals_uninterrupted(grown, tmp_path, unfreeze_after):
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE

    root, ckpt = grown
    config = grown_config(ckpt, None, ["train.max_steps=4", "train.checkpoint_every=2"],
                          freeze=ADD_DOMAIN_FREEZE, unfreeze_after=unfreeze_after)
    whole = Trainer(config, root / "store", tmp_path / "whole", progress=False)
    whole.fit()
    first = Trainer(config, root / "store", tmp_path / "split", progress=False)
    first.fit(2)
    resumed = Trainer(config, root / "store", tmp_path / "split", resume=True, progress=False)
    assert resumed.step == 2 and resumed.init_domains == OLD
    resumed.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_a_resumed_run_on_stand_ins_equals_uninterrupted_and_keeps_the_registers(grown,
                                                                                tmp_path):
    """A run on stand-ins has no store of the old domains to measure their registers in: a
    resumed one takes them from its checkpoint, and trains as the uninterrupted run does."""
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.prepare import prepare_like
    from timbre_transfer.training.grow import ADD_DOMAIN_FREEZE

    root, ckpt = grown
    store = prepare_like(root / "audio" / NEW, tmp_path / "store", read_checkpoint(ckpt),
                         str(ckpt), domain=NEW, progress=False).store
    config = grown_config(ckpt, None, ["train.max_steps=4", "train.checkpoint_every=2"],
                          freeze=ADD_DOMAIN_FREEZE, stand_ins=True)
    whole = Trainer(config, store, tmp_path / "whole", progress=False)
    whole.fit()
    Trainer(config, store, tmp_path / "split", progress=False).fit(2)
    resumed = Trainer(config, store, tmp_path / "split", resume=True, progress=False)
    assert resumed.pitch_medians == whole.pitch_medians
    assert all(resumed.pitch_medians[d] for d in OLD)  # the checkpoint's, not None
    resumed.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_freeze_needs_init_from(grown, tmp_path, capsys):
    root, _ = grown
    assert main(["train", "--data", str(root / "store"), "--out", str(tmp_path / "r"),
                 "--config", DEBUG, "--freeze", "encoder"]) == 2
    assert "--init-from" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown parts"):
        grown_config(grown[1], freeze=("encoder", "decoder"))
