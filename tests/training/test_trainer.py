import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from timbre_transfer.checkpoint import read_checkpoint, save_checkpoint
from timbre_transfer.data.store import FeatureStore
from timbre_transfer.inference.transfer import TimbreTransfer
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
    assert ({f"loss/gan/{d}" for d in t.domains} <= keys
            and {f"loss/disc/{d}" for d in t.domains} <= keys)
    assert history[-1]["loss/recon"] < 0.7 * history[0]["loss/recon"]


@pytest.mark.parametrize("extra", [[], ["loss.pitch=1.0", "train.pitch_net_steps=5"],
                                   ["loss.domain_class=1.0"]],
                         ids=["plain", "pitch-loss", "domain-class"])
def test_resume_matches_uninterrupted_training(synth_store, tmp_path, extra):
    overrides = ["train.max_steps=4", *extra]
    full = _trainer(synth_store / "store", tmp_path / "full", overrides)
    uninterrupted = full.fit()
    first = _trainer(synth_store / "store", tmp_path / "split", overrides)
    first.fit(2)
    first.save()
    resumed = _trainer(synth_store / "store", tmp_path / "split", overrides, resume=True)
    assert resumed.step == 2
    after = resumed.fit()
    for a, b in zip(uninterrupted[2:], after):
        assert a["step"] == b["step"]
        for key in a:
            assert a[key] == b[key], (key, a[key], b[key])
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name


class TaggingModel:
    """Stand-in for TimbreModel whose outputs say where they came from: the encoder is the
    identity (unit variance, no noise), generator d multiplies by GAIN[d] and discriminator d
    by SCALE[d]. A crop that went through the wrong generator or discriminator gives another
    value, which the hand-computed terms below catch."""

    GAIN = (2.0, 3.0, 5.0)
    SCALE = (7.0, 11.0, 13.0)

    def __init__(self, domains):
        self.index = {d: i for i, d in enumerate(domains)}

    def encode(self, x):
        from timbre_transfer.models.encoder import Encoded

        return Encoded(mu=x.clone(), logvar=None)

    def sample(self, enc, generator=None):
        return enc.mu

    def decode(self, z, domain, pitch=None):
        out = z * self.GAIN[self.index[domain]]
        return out if pitch is None else out + pitch  # a template shows up as an offset

    def discriminate(self, x, domain, pitch=None):
        out = x * self.SCALE[self.index[domain]]
        return out if pitch is None else out + pitch


def _distinct_crops(n_dom=3, batch=2):
    # domain d's crops live in [d + 1, d + 2): a crop of the wrong domain shows in every term
    x = torch.rand(batch, n_dom, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return x + torch.arange(1, n_dom + 1, dtype=torch.float32).view(1, n_dom, 1, 1, 1)


@pytest.mark.parametrize("latent_loss", ["centroid", "batch_mean"])
def test_loss_wiring_by_hand(synth_store, tmp_path, latent_loss):
    t = _trainer(synth_store / "store", tmp_path, [f"train.latent_loss={latent_loss}"])
    t.model = TaggingModel(t.domains)
    x = _distinct_crops()
    step = 3
    src = t.pairs(step)
    assert src != list(range(3))  # a real pairing: every target has another source
    g = t.losses(x, step)
    gain, scale = TaggingModel.GAIN, TaggingModel.SCALE
    mean = lambda v: float(v.mean())

    # reconstruction: each domain through its own generator
    recon = [mean((gain[d] * x[:, d] - x[:, d]).abs()) for d in range(3)]
    assert float(g.terms["recon"]) == pytest.approx(sum(recon) / 3)
    # translation into target b comes from source src[b] through generator b
    for b in range(3):
        assert torch.equal(g.fakes[b], gain[b] * x[:, src[b]])
    # each translation judged by its target's discriminator (LSGAN)
    for b, dom in enumerate(t.domains):
        assert float(g.terms[f"gan/{dom}"]) == pytest.approx(
            mean((scale[b] * gain[b] * x[:, src[b]] - 1) ** 2))
    # the cycle of target b returns to source src[b] through src[b]'s generator
    cycle = [mean((gain[src[b]] * gain[b] * x[:, src[b]] - x[:, src[b]]).abs()) for b in range(3)]
    assert float(g.terms["cycle"]) == pytest.approx(sum(cycle) / 3)
    # KL (unit variance: mean mu^2) of the real crops and of all the translations
    assert float(g.terms["kl"]) == pytest.approx(mean(x ** 2))
    kl_cycle = [mean((gain[b] * x[:, src[b]]) ** 2) for b in range(3)]
    assert float(g.terms["kl_cycle"]) == pytest.approx(sum(kl_cycle) / 3)
    # latent: first step, so the centroids are the batch means (one channel here)
    centre = [mean(x[:, d]) for d in range(3)]
    if latent_loss == "centroid":
        pairs = [abs(centre[a] - centre[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
        assert float(g.terms["latent"]) == pytest.approx(sum(pairs) / 3)
    else:  # the reference: target b's batch-mean latent against its source's, per position
        per = [mean((x[:, src[b]].mean(0) - x[:, b].mean(0)).abs()) for b in range(3)]
        assert float(g.terms["latent"]) == pytest.approx(sum(per) / 3)

    # discriminator d: its own real crops against the translation into d
    d_terms = t.discriminator_losses(x, g.fakes)
    for d, dom in enumerate(t.domains):
        expected = mean((scale[d] * x[:, d] - 1) ** 2) + mean((scale[d] * g.fakes[d]) ** 2)
        assert float(d_terms[f"disc/{dom}"]) == pytest.approx(expected)


def test_latent_loss_acts_at_its_stated_weight(synth_store, tmp_path):
    # The gradient on the latents is that of the loss on the batch centroids, whatever the
    # momentum: at 0.99 the old running average passed on only 1 % of it.
    grads = {}
    for momentum in (0.0, 0.99):
        t = _trainer(synth_store / "store", tmp_path / str(momentum),
                     [f"train.centroid_momentum={momentum}"])
        t.model = TaggingModel(t.domains)
        x = _distinct_crops()
        t.centroids.commit({d: torch.full((1,), 5.0) for d in t.domains})  # seen before
        x.requires_grad_(True)
        t.losses(x, 0).terms["latent"].backward()
        grads[momentum] = x.grad.clone()
        assert x.grad.abs().sum() > 0
    assert torch.allclose(grads[0.0], grads[0.99])


def _lrs(trainer, until):
    """The LR each step from trainer.step up to ``until`` trained with."""
    lrs = []
    for specs in trainer.batches():
        if trainer.step >= until:
            return lrs
        trainer.train_step(specs)
        lrs.append(trainer.opt_g.param_groups[0]["lr"])
        assert trainer.opt_d.param_groups[0]["lr"] == lrs[-1]


def test_lr_schedule_first_middle_last_and_after_resume(synth_store, tmp_path):
    store = synth_store / "store"
    t = _trainer(store, tmp_path / "full", ["train.max_steps=40", "train.lr=0.01"])
    spe, epochs = t.steps_per_epoch, t.total_epochs
    assert epochs >= 4
    lrs = _lrs(t, 40)
    start = epochs // 2  # lr_decay_start 0.5
    n = epochs - start
    # first step and the whole first half: the base rate
    assert lrs[0] == pytest.approx(0.01) and lrs[start * spe - 1] == pytest.approx(0.01)
    # the first decayed epoch (the middle): one step down of n + 1
    assert lrs[start * spe] == pytest.approx(0.01 * (1 - 1 / (n + 1)))
    # the last step: the last of n linear steps, not zero
    assert lrs[-1] == pytest.approx(0.01 / (n + 1)) and lrs[-1] > 0
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert all(len(set(lrs[e * spe:(e + 1) * spe])) == 1 for e in range(epochs))
    with pytest.raises(ValueError, match="train.max_steps=40"):
        t.fit(41)

    # a 20-step run resumed to 40 steps trains every later step at the 40-step run's rate,
    # from the first resumed step on
    short = _trainer(store, tmp_path / "grown", ["train.max_steps=20", "train.lr=0.01"])
    short.fit()
    grown = _trainer(store, tmp_path / "grown", ["train.max_steps=40", "train.lr=0.01"],
                     resume=True)
    assert grown.step == 20
    assert _lrs(grown, 40) == pytest.approx(lrs[20:])


def test_nan_guard_skips_then_stops(synth_store, tmp_path, monkeypatch):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_bad_steps=3"])
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    real_losses = t.losses

    def poisoned(x, step, *rest):
        g = real_losses(x, step, *rest)
        g.terms["recon"] = g.terms["recon"] * float("nan")
        return g

    monkeypatch.setattr(t, "losses", poisoned)
    batches = t.batches()
    with pytest.warns(RuntimeWarning, match="non-finite loss, update skipped"):
        assert t.train_step(next(batches)) == {}
        assert t.train_step(next(batches)) == {}
    assert t.step == 2 and t.bad_steps == 2
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    with (pytest.raises(NonFiniteLossError, match="3 non-finite steps in a row"),
          pytest.warns(RuntimeWarning)):
        t.train_step(next(batches))


def test_one_poisoned_latent_leaves_the_centroids_finite_and_training_on(synth_store, tmp_path,
                                                                          monkeypatch):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_bad_steps=2"])
    batches = t.batches()
    assert t.train_step(next(batches))  # a good step: the centroids are set
    saved = t.centroids.centroids.clone()
    real_encode = t.model.encode
    calls = []

    def poisoned_once(x):
        enc = real_encode(x)
        calls.append(1)
        if len(calls) == 1:
            enc.mu = enc.mu * float("nan")
        return enc

    monkeypatch.setattr(t.model, "encode", poisoned_once)
    with pytest.warns(RuntimeWarning, match="update skipped"):
        assert t.train_step(next(batches)) == {}
    assert torch.equal(t.centroids.centroids, saved)
    for _ in range(3):  # more steps than max_bad_steps: each must be a real update
        terms = t.train_step(next(batches))
        assert terms and all(torch.isfinite(v) for v in terms.values())
    assert torch.isfinite(t.centroids.centroids).all() and t.bad_steps == 0


def test_checkpoint_rebuilds_the_model_with_identical_outputs(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"])
    t.fit()
    path = tmp_path / "checkpoints" / "latest.pt"
    tt = TimbreTransfer.from_checkpoint(path, device="cpu")
    spec = torch.rand(1, 1, 128, 37)
    # trained channels_last; the rebuilt model is NCHW: same weights, compared with the same kernels
    t.model.to(memory_format=torch.contiguous_format).eval()
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
    assert terms, "the step was skipped"
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


def test_every_generator_plays_the_notes_of_the_crop_it_started_from(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path)
    t.model = TaggingModel(t.domains)
    x = _distinct_crops()
    notes = 100.0 * torch.arange(1, 4, dtype=torch.float32).view(1, 3, 1, 1, 1).expand_as(x)
    step = 3
    src = t.pairs(step)
    g = t.losses(x, step, notes)
    gain = TaggingModel.GAIN
    mean = lambda v: float(v.mean())
    # recon: domain d with its own notes
    recon = [mean((gain[d] * x[:, d] + notes[:, d] - x[:, d]).abs()) for d in range(3)]
    assert float(g.terms["recon"]) == pytest.approx(sum(recon) / 3)
    # the translation into b keeps the notes of its source src[b] ...
    for b in range(3):
        assert torch.equal(g.fakes[b], gain[b] * x[:, src[b]] + notes[:, src[b]])
    # ... and so does the way back
    cycle = [mean((gain[src[b]] * g.fakes[b] + notes[:, src[b]] - x[:, src[b]]).abs())
             for b in range(3)]
    assert float(g.terms["cycle"]) == pytest.approx(sum(cycle) / 3)
    # discriminators read the notes a crop should play: a translation's are its source's
    scale = TaggingModel.SCALE
    for b, dom in enumerate(t.domains):
        assert float(g.terms[f"gan/{dom}"]) == pytest.approx(
            mean((scale[b] * g.fakes[b] + notes[:, src[b]] - 1) ** 2))
    d_terms = t.discriminator_losses(x, g.fakes, notes, step)
    for d, dom in enumerate(t.domains):
        expected = (mean((scale[d] * x[:, d] + notes[:, d] - 1) ** 2)
                    + mean((scale[d] * g.fakes[d] + notes[:, src[d]]) ** 2))
        assert float(d_terms[f"disc/{dom}"]) == pytest.approx(expected)


def test_pitch_shift_augmentation_moves_crops_and_f0_together(synth_store, tmp_path):
    from timbre_transfer.audio.pitch import MelPitch

    t = _trainer(synth_store / "store", tmp_path, ["train.pitch_shift=12",
                                                   "model.pitch_template=true"])
    batch = next(t.batches())
    x, templates, _ = t.prepare_batch(batch, step=5)
    again, _, _ = t.prepare_batch(batch, step=5)
    other, _, _ = t.prepare_batch(batch, step=6)
    assert torch.equal(x, again) and not torch.equal(x, other)  # a function of (seed, step)
    b, n_dom, _, n_f, n_t = x.shape
    # recover each crop's ratio from the draw, as prepare_batch makes it
    draw = torch.Generator().manual_seed(t.config.train.seed * 1_000_003 + 5)
    ratio = 2.0 ** ((torch.rand(b * n_dom, generator=draw) * 2 - 1) * 12 / 12)
    grid = MelPitch.of(t.store.transform.params)
    silence = float(-t.store.transform.norm_shift / t.store.transform.norm_scale)
    expected = grid.shift(batch.specs.reshape(b * n_dom, 1, n_f, n_t), ratio, silence)
    torch.testing.assert_close(x.reshape(b * n_dom, 1, n_f, n_t), expected)
    f0 = batch.pitch[:, :, 0].reshape(b * n_dom, n_t) * ratio[:, None]
    voiced = batch.pitch[:, :, 1].reshape(b * n_dom, n_t)
    torch.testing.assert_close(templates.reshape(b * n_dom, 1, n_f, n_t),
                               grid.template(f0, voiced))
    assert t.train_step(batch)  # and a step trains on it


def test_a_source_filter_model_trains_on_its_notes_and_resumes_rendering_alike(synth_store,
                                                                              tmp_path):
    """The crops' notes carry the comb beside the template; the generators render in the
    store's normalisation, which the checkpoint keeps."""
    from timbre_transfer.audio.pitch import MelPitch

    overrides = ["model.pitch_template=true", "model.source_filter=true", "train.max_steps=2"]
    t = _trainer(synth_store / "store", tmp_path, overrides)
    for generator in t.model.generators.values():
        assert float(generator.norm_scale) == float(t.store.transform.norm_scale)
    batch = next(t.batches())
    x, notes, pitch = t.prepare_batch(batch, step=0)
    b, n_dom, _, n_f, n_t = x.shape
    assert notes.shape == (b, n_dom, 2, n_f, n_t)
    comb = MelPitch.of(t.store.transform.params).comb(pitch[:, :, 0].reshape(-1, n_t),
                                                      pitch[:, :, 1].reshape(-1, n_t))
    torch.testing.assert_close(notes[:, :, 1:].reshape(b * n_dom, 1, n_f, n_t), comb)
    t.fit()
    again = _trainer(synth_store / "store", tmp_path, overrides, resume=True)
    z = torch.randn(1, t.model.config.latent_channels, n_f // 4, n_t // 4)
    with torch.no_grad():
        torch.testing.assert_close(again.model.decode(z, t.domains[0], notes[:1, 0]),
                                   t.model.decode(z, t.domains[0], notes[:1, 0]))


def test_pitch_loss_fits_its_network_first_freezes_it_and_resumes(synth_store, tmp_path):
    from timbre_transfer.losses.pitch import pitch_consistency

    overrides = ["loss.pitch=2.0", "train.pitch_net_steps=60", "train.max_steps=3"]
    t = _trainer(synth_store / "store", tmp_path / "full", overrides)
    net = t.terms["pitch"].net
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    accuracy = t.prepare_terms()["pitch"]
    # the synthetic domains hold steady notes: the fit must find most of them
    assert accuracy > 0.5, accuracy
    fitted = {k: v.clone() for k, v in net.state_dict().items()}
    assert any(not torch.equal(fresh[k], fitted[k]) for k in fresh)
    assert not any(p.requires_grad for p in net.parameters())
    assert t.prepare_terms() == {}  # fitted once

    # the term is the consistency of every translation with its source, at its weight
    x, templates, _ = t.prepare_batch(next(t.batches()), 0)
    g = t.losses(x, 0, templates)
    real = x.transpose(0, 1)
    expected = pitch_consistency(net, torch.cat([real[s] for s in t.pairs(0)]),
                                 torch.cat(g.fakes))
    assert float(g.terms["pitch"]) == pytest.approx(float(expected), rel=1e-5)
    without = {k: v for k, v in g.terms.items() if k != "pitch"}
    assert float(t.weighted_total(g.terms, 0) - t.weighted_total(without, 0)) == pytest.approx(
        2.0 * float(expected), rel=1e-4)

    history = t.fit()  # the network is fitted already: fit() trains the model only
    assert all(torch.equal(fitted[k], v) for k, v in net.state_dict().items())
    assert "loss/pitch" in history[-1]
    blob = read_checkpoint(tmp_path / "full" / "checkpoints" / "latest.pt")
    assert all(torch.equal(fitted[k], blob["pitch_net"][k]) for k in fitted)
    resumed = _trainer(synth_store / "store", tmp_path / "full",
                       ["loss.pitch=2.0", "train.pitch_net_steps=60", "train.max_steps=4"],
                       resume=True)
    assert resumed.terms["pitch"].ready
    assert all(torch.equal(fitted[k], v)
               for k, v in resumed.terms["pitch"].net.state_dict().items())


def test_a_run_without_the_pitch_loss_has_no_pitch_network(synth_store, tmp_path):
    t = _trainer(synth_store / "store", tmp_path, ["train.max_steps=1"])
    assert "pitch" not in t.terms
    t.fit()
    assert "pitch_net" not in read_checkpoint(tmp_path / "checkpoints" / "latest.pt")


def test_loudness_term_is_the_consistency_of_every_translation_at_its_weight(synth_store,
                                                                            tmp_path):
    from timbre_transfer.losses.loudness import loudness_consistency

    off = _trainer(synth_store / "store", tmp_path / "off")
    x, templates, _ = off.prepare_batch(next(off.batches()), 0)
    assert "loudness" not in off.losses(x, 0, templates).terms  # off by default

    on = _trainer(synth_store / "store", tmp_path / "on", ["loss.loudness=3.0"])
    g = on.losses(x, 0, templates)
    real = x.transpose(0, 1)
    expected = loudness_consistency(on.terms["loudness"].loudness,
                                    torch.cat([real[s] for s in on.pairs(0)]), torch.cat(g.fakes))
    assert float(g.terms["loudness"]) == pytest.approx(float(expected), rel=1e-5)
    assert g.terms["loudness"].requires_grad
    without = {k: v for k, v in g.terms.items() if k != "loudness"}
    assert float(on.weighted_total(g.terms, 0) - on.weighted_total(without, 0)) == pytest.approx(
        3.0 * float(expected), rel=1e-4)
    assert "loss/loudness" in on.fit(1)[-1]


def test_domain_class_names_each_translation_s_target_and_learns_from_augmented_reals(
        synth_store, tmp_path, monkeypatch):
    from timbre_transfer.losses.domain_class import classification_loss, domain_labels

    off = _trainer(synth_store / "store", tmp_path / "off")
    assert "domain_class" not in off.terms and "domain_classifier" not in off.adversaries()
    on = _trainer(synth_store / "store", tmp_path / "on", ["loss.domain_class=2.0",
                                                          "train.pitch_shift=12"])
    batch = next(on.batches())
    x, templates, pitch = on.prepare_batch(batch, 0)
    g = on.losses(x, 0, templates, pitch)
    # translation t was made for domain t: its label is t, whatever its source
    n, b = len(on.domains), x.shape[0]
    labels = torch.tensor([t for t in range(n) for _ in range(b)])
    assert torch.equal(domain_labels(n, b), labels)
    classifier = on.terms["domain_class"].adversary
    assert on.adversaries() == {"domain_classifier": classifier}
    expected = classification_loss(classifier(torch.cat(g.fakes)), labels)
    assert float(g.terms["domain_class"]) == pytest.approx(float(expected), rel=1e-5)
    without = {k: v for k, v in g.terms.items() if k != "domain_class"}
    assert float(on.weighted_total(g.terms, 0) - on.weighted_total(without, 0)) == pytest.approx(
        2.0 * float(expected), abs=2e-5)

    # one step: the classifier moves with the discriminators, on the real crops as augmented
    seen = []
    forward = type(classifier).forward

    def watched(self, spec):
        seen.append(spec.detach().clone())
        return forward(self, spec)

    monkeypatch.setattr(type(classifier), "forward", watched)
    before = [p.clone() for p in classifier.parameters()]
    logged = on.fit(1)[-1]
    assert {"loss/domain_class", "loss/classifier"} <= set(logged)
    assert any(not torch.equal(a, c) for a, c in zip(before, classifier.parameters()))
    assert torch.equal(seen[-1], x.transpose(0, 1).flatten(0, 1))  # domain-major, augmented
    blob = read_checkpoint(tmp_path / "on" / "checkpoints" / "latest.pt")
    assert "domain_classifier" in blob["training"]  # training only: not in the model
    assert not any(k.startswith("domain_classifier") for k in blob["model"])


def test_a_new_loss_term_is_one_class_and_one_weight(synth_store, tmp_path, monkeypatch):
    """A mechanism added the way the next ones will be: a ``@loss_term`` class (here, in this
    test module) and one loss weight named like it; the trainer needs no edit to compute it,
    weigh it once, train its adversary with the discriminators and checkpoint it."""
    import dataclasses

    from timbre_transfer.losses import terms as registry
    from timbre_transfer.training.config import LossWeights

    monkeypatch.setattr(registry, "TERMS", dict(registry.TERMS))  # registered for this test only

    @registry.loss_term
    class Throwaway(registry.LossTerm):
        name = "throwaway"
        adversary_key = "throwaway_adversary"

        def __init__(self, setup):
            super().__init__(setup)
            self.adversary = torch.nn.Linear(1, 1)

        def generator_loss(self, ctx):
            return ctx.translations.mean()

        def adversary_loss(self, ctx):
            return {"throwaway_adversary":
                    self.adversary(ctx.real.mean().view(1, 1)).square().sum()}

    Weights = dataclasses.make_dataclass("Weights", [("throwaway", float, 0.0)],
                                         bases=(LossWeights,), frozen=True)
    config = load_run_config(DEBUG, ["train.log_every=1", "train.checkpoint_every=1000",
                                     "train.sample_every=1000"])
    config = dataclasses.replace(config, loss=Weights(**dataclasses.asdict(config.loss),
                                                      throwaway=3.0))
    t = Trainer(config, synth_store / "store", tmp_path, progress=False)
    term = t.terms["throwaway"]
    assert t.adversaries() == {"throwaway_adversary": term.adversary}
    assert all(any(p is q for q in t.d_params) for p in term.adversary.parameters())

    x, templates, pitch = t.prepare_batch(next(t.batches()), 0)
    g = t.losses(x, 0, templates, pitch)
    assert float(g.terms["throwaway"]) == pytest.approx(float(torch.cat(g.fakes).mean()), rel=1e-6)
    without = {k: v for k, v in g.terms.items() if k != "throwaway"}
    assert float(t.weighted_total(g.terms, 0) - t.weighted_total(without, 0)) == pytest.approx(
        3.0 * float(g.terms["throwaway"]), abs=2e-5)

    before = [p.clone() for p in term.adversary.parameters()]
    logged = t.fit(1)[-1]
    assert {"loss/throwaway", "loss/throwaway_adversary"} <= set(logged)
    assert any(not torch.equal(a, b) for a, b in zip(before, term.adversary.parameters()))
    blob = read_checkpoint(t.save())
    assert set(blob["training"]["throwaway_adversary"]) == {"weight", "bias"}


def test_a_registered_term_needs_its_weight(synth_store, tmp_path, monkeypatch):
    from timbre_transfer.losses import terms as registry

    monkeypatch.setattr(registry, "TERMS", dict(registry.TERMS))

    @registry.loss_term
    class Unweighted(registry.LossTerm):
        name = "unweighted"

    with pytest.raises(AttributeError, match=r"\['unweighted'\] have no weight"):
        _trainer(synth_store / "store", tmp_path)


@pytest.mark.parametrize("key, off, on", [("loss.latent_confusion", "0.0", "1.0"),
                                          ("loss.envelope_gan", "0.0", "10.0"),
                                          ("train.envelope_register", "seen", "blind"),
                                          ("train.envelope_per_frame", "false", "true"),
                                          ("train.pitch_loss", "kl", "labels")])
def test_retired_options_load_when_off_and_are_refused_when_on(key, off, on):
    from timbre_transfer.training.config import RunConfig

    assert load_run_config(DEBUG, [f"{key}={off}"]) == load_run_config(DEBUG)
    with pytest.raises(ValueError, match=rf"{key}: .*retired in timbre_transfer 0\.2\.0"):
        load_run_config(DEBUG, [f"{key}={on}"])
    section, name = key.split(".")
    assert not hasattr(getattr(RunConfig(), section), name)


def test_a_run_saved_with_retired_options_off_resumes(synth_store, tmp_path):
    """A checkpoint written before the options were retired holds them at their off values."""
    first = _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"])
    first.fit(1)
    blob = read_checkpoint(first.save())
    blob["config"]["loss"].update(latent_confusion=0.0, envelope_gan=0.0)
    blob["config"]["train"].update(envelope_register="seen", envelope_per_frame=False,
                                   pitch_loss="kl")
    save_checkpoint(tmp_path / "checkpoints" / "latest.pt", blob)
    resumed = _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"], resume=True)
    assert resumed.step == 1 and resumed.fit()[-1]["step"] == 2

    blob["config"]["loss"]["envelope_gan"] = 10.0
    save_checkpoint(tmp_path / "checkpoints" / "latest.pt", blob)
    with pytest.raises(ValueError, match=r"loss.envelope_gan: 10.0, an option retired"):
        _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"], resume=True)


def test_a_run_resumed_on_another_trackers_store_is_refused(synth_store, tmp_path):
    """The pitch controls of a resumed run must come from the tracker the run started on; a
    checkpoint from before 0.3.0 names none and was made on pYIN's."""
    assert FeatureStore(synth_store / "store").f0_tracker == "swift"
    first = _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"])
    first.fit(1)
    blob = read_checkpoint(first.save())
    assert blob["prepare"]["f0_tracker"] == "swift"
    del blob["prepare"]["f0_tracker"]  # as written before 0.3.0: pYIN's controls
    save_checkpoint(tmp_path / "checkpoints" / "latest.pt", blob)
    with pytest.raises(ValueError, match=r"trained on pitch controls by pyin, and these are by "
                       r"swift.*prepare.f0_tracker=pyin"):
        _trainer(synth_store / "store", tmp_path, ["train.max_steps=2"], resume=True)
