import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from timbre_transfer.inference.transfer import TimbreTransfer
from timbre_transfer.training.checkpoint import read_checkpoint, save_checkpoint
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import NonFiniteLossError, Trainer

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / "config" / "debug.yaml"


def _trainer(store, run, overrides=(), **kwargs):
    config = load_run_config(DEBUG, ["train.log_every=1", "train.sample_every=1000",
                                     "train.checkpoint_every=1000", *overrides])
    return Trainer(config, store, run, progress=False, **kwargs)


def test_loss_weights_are_applied_once_by_hand(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.beta_warmup_steps=10", "loss.gan=2.0",
                                                   "loss.latent=3.0"])
    terms = {k: torch.tensor(v) for k, v in {"recon": 0.5, "kl": 2.0, "cycle": 0.25,
                                             "kl_cycle": 4.0, "latent": 0.1,
                                             "gan/a": 1.0, "gan/b": 3.0}.items()}
    # step 5 of a 10-step warm-up: beta = 0.5; gan is the mean over domains (2.0)
    expected = 100 * 0.5 + 0.5 * 0.1 * 2.0 + 100 * 0.25 + 0.5 * 0.1 * 4.0 + 3.0 * 0.1 + 2.0 * 2.0
    assert float(t.weighted_total(terms, 5)) == pytest.approx(expected)


def test_pairs_never_map_a_domain_to_itself(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path)
    seen = set()
    for step in range(50):
        src = t.pairs(step)
        assert all(a != b for b, a in enumerate(src))
        seen.update(enumerate(src))
    assert len(seen) == 6  # every (target, source) pair of 3 domains occurs


def test_training_reduces_reconstruction_and_logs_every_term(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=30", "train.lr=0.002",
                                                   "train.log_every=10"])
    history = t.fit()
    keys = set(history[0])
    for name in ("loss/recon", "loss/kl", "loss/cycle", "loss/kl_cycle", "loss/latent",
                 "loss/total", "lr", "beta"):
        assert name in keys
    assert {f"loss/gan/{d}" for d in t.domains} <= keys and {f"loss/disc/{d}" for d in t.domains} <= keys
    assert history[-1]["loss/recon"] < 0.7 * history[0]["loss/recon"]


def test_resume_matches_uninterrupted_training(synth_store, tmp_path):
    full = _trainer(synth_store / "store", tmp_path / "full", ["train.max_steps=4"])
    uninterrupted = full.fit()
    first = _trainer(synth_store / "store", tmp_path / "split", ["train.max_steps=4"])
    first.fit(2)
    first.save()
    resumed = _trainer(synth_store / "store", tmp_path / "split", ["train.max_steps=4"], resume=True)
    assert resumed.step == 2
    after = resumed.fit()
    for a, b in zip(uninterrupted[2:], after):
        assert a["step"] == b["step"]
        for key in a:
            assert a[key] == b[key], (key, a[key], b[key])
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_lr_decays_linearly_per_epoch(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=40", "train.lr=0.01"])
    spe, epochs = t.steps_per_epoch, t.total_epochs
    start = int(epochs * 0.5)
    lrs = []
    for specs in t.batches():
        if t.step >= 40:
            break
        lrs.append(t.opt_g.param_groups[0]["lr"])
        t.train_step(specs)
    for step, lr in enumerate(lrs):
        epoch = step // spe
        factor = 1.0 if epoch < start else 1 - (epoch - start) / (epochs - start)
        assert lr == pytest.approx(0.01 * factor)
    assert len(set(lrs[:spe])) == 1  # constant within an epoch


def test_nan_guard_skips_then_stops(synth_store, tmp_path, monkeypatch):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_bad_steps=3"])
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    real_losses = t.losses

    def poisoned(x, step):
        terms, fakes = real_losses(x, step)
        terms["recon"] = terms["recon"] * float("nan")
        return terms, fakes

    monkeypatch.setattr(t, "losses", poisoned)
    batches = t.batches()
    with pytest.warns(RuntimeWarning, match="non-finite loss, update skipped"):
        assert t.train_step(next(batches)) == {}
        t.train_step(next(batches))
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    with pytest.raises(NonFiniteLossError, match="3 non-finite steps in a row"), pytest.warns(RuntimeWarning):
        t.train_step(next(batches))


def test_checkpoint_rebuilds_the_model_with_identical_outputs(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"])
    t.fit()
    path = tmp_path / "checkpoints" / "latest.pt"
    tt = TimbreTransfer.from_checkpoint(path, device="cpu")
    spec = torch.rand(1, 1, 128, 37)
    t.model.eval()
    with torch.no_grad():
        expected = t.model.translate(spec, t.domains[1])
        got = tt.model.translate(spec, t.domains[1])
    assert torch.equal(expected, got)
    assert tt.transform.to_dict() == t.store.transform.to_dict()


def test_bad_checkpoints_get_clear_errors(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=1"])
    t.fit()
    blob = read_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    missing = dict(blob, model={k: v for k, v in blob["model"].items() if "encoder" not in k})
    save_checkpoint(tmp_path / "missing.pt", {k: v for k, v in missing.items() if k != "format"})
    with pytest.raises(KeyError, match=r"missing keys \['encoder"):
        TimbreTransfer.from_checkpoint(tmp_path / "missing.pt")
    other = dict(blob, config={**blob["config"], "model": {**blob["config"]["model"], "dim": 8}})
    save_checkpoint(tmp_path / "other.pt", {k: v for k, v in other.items() if k != "format"})
    with pytest.raises(KeyError, match="does not match this model"):
        TimbreTransfer.from_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        TimbreTransfer.from_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match=r"another config \(model.dim: 4 -> 8"):
        _trainer(synth_store / "store", tmp_path, ["model.dim=8"], resume=True)


# config/ddsp.yaml configures the DDSP head (tests/training/test_ddsp_trainer.py), not this model
@pytest.mark.parametrize("config", sorted(p for p in (REPO / "config").glob("*.yaml")
                                          if p.stem != "ddsp"), ids=lambda p: p.stem)
def test_every_config_builds_and_runs_one_step(synth_store, tmp_path, config):
    # batch 1 keeps the reference model's single step to a few seconds on 2 cores
    cfg = load_run_config(config, ["train.max_steps=1", "train.batch_size=1"])
    t = Trainer(cfg, synth_store / "store", tmp_path, progress=False)
    terms = t.train_step(next(t.batches()))
    assert all(torch.isfinite(v) for v in terms.values()) and t.step == 1


def test_transfer_writes_one_file_per_target(synth_store, tmp_path):
    from timbre_transfer.cli import main

    t = _trainer(synth_store / "store", tmp_path / "run", ["train.max_steps=1"])
    t.fit()
    src = tmp_path / "in.wav"
    sf.write(src, 0.2 * np.sin(2 * np.pi * 330 * np.arange(22050 * 2 + 7) / 22050), 22050)
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert main(["transfer", str(ckpt), str(src), "--all", "--out", str(tmp_path / "out"),
                 "--inverter", "pghi"]) == 0
    outs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outs] == [f"in_to_{d}.wav" for d in t.domains]
    for p in outs:
        info = sf.info(p)
        assert info.samplerate == 16000
        # the input's duration, to the sample (the resampler rounds the length up)
        assert abs(info.frames - (2 * 22050 + 7) * 16000 / 22050) <= 1
    assert main(["transfer", str(ckpt), str(src), "--to", "cello", "--out", str(tmp_path)]) == 2


def test_three_step_cli_run_on_real_audio(real_clips, tmp_path):
    from timbre_transfer.cli import main

    clips = real_clips("violin", 2) + real_clips("speech", 2)
    data = clips[0].parents[1]  # tmp_path/<domain>/<clip>
    assert main(["prepare", str(data), "--out", str(tmp_path / "store")]) == 0
    assert main(["train", "--config", str(DEBUG), "--data", str(tmp_path / "store"),
                 "--out", str(tmp_path / "run"), "--max-steps", "3"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["training"]["step"] == 3


def test_torchrun_two_processes_gloo(synth_store, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", "29533", "-m",
           "timbre_transfer", "train", "--config", str(DEBUG), "--data",
           str(synth_store / "store"), "--out", str(tmp_path / "run"), "--max-steps", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("training 3 domains") == 1  # only rank 0 speaks
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.*"))) == 1
    blob = read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert blob["training"]["step"] == 2
