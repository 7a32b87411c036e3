"""Does the latent loss pull the domains' latents together? Centroid distances after N steps.

Rows, each trained from the same initial weights on the same batches:

* **no latent loss** (``loss.latent=0``): the baseline;
* **running average, gradient through (1 - momentum)**: the previous centroid loss, where the
  estimate ``m * stored + (1 - m) * batch_mean`` passed only ``1 - m`` of the gradient (at
  m = 0.99 the published weight 10 acted like 0.1); re-created here as a subclass;
* **running average, straight-through** (today's ``LatentCentroids``): same value, the batch
  mean's full gradient;
* **batch mean (reference code)**: ``train.latent_loss=batch_mean``.

After training, every clip of the store is encoded whole; a domain's centroid is the mean of its
clips' channel-mean latents. Printed: the mean over domain pairs of the L1 (mean absolute)
distance between centroids, the same relative to the latents' spread within a domain, and the
held-out reconstruction L1 so that alignment is not bought with reconstruction.

Run alone, from the repository root::

    .venv/bin/python benchmarks/latent_loss.py [--steps 200] [--config config/cpu-small.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import combinations
from pathlib import Path

import torch

from timbre_transfer.data.prepare import PrepareOptions, prepare
from timbre_transfer.data.store import FeatureStore
from timbre_transfer.data.synthetic import write_paired_dataset
from timbre_transfer.losses.latent import LatentCentroids
from timbre_transfer.losses.vae import l1
from timbre_transfer.training.config import load_run_config
from timbre_transfer.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


class PartialGradientCentroids(LatentCentroids):
    """The previous estimate: gradient only through ``(1 - momentum) * batch_mean``."""

    def estimate(self, mu, domain, pooled_mean=None):
        i = self._domain_index(domain)
        batch_mean = mu.mean(dim=[d for d in range(mu.dim()) if d != 1])
        self._fit_width(batch_mean)
        w = self.initialized[i].to(batch_mean.dtype) * self.momentum
        return w * self.centroids[i].to(batch_mean.dtype) + (1 - w) * batch_mean


@torch.no_grad()
def centroid_report(trainer: Trainer) -> dict:
    store: FeatureStore = trainer.store
    model = trainer.model.eval()
    means, spreads, recon = {}, {}, []
    for domain in trainer.domains:
        per_clip = []
        for split in ("train", "val"):
            clips = store.clips(domain, split)
            for offset, frames in zip(clips.offsets, clips.frames):
                rows = clips.features[offset:offset + frames // 4 * 4]  # a multiple of the stride
                spec = torch.from_numpy(rows.T.astype("float32"))[None, None]
                mu = model.encode(spec).mu
                per_clip.append(mu.mean(dim=(0, 2, 3)))
                if split == "val":
                    recon.append(float(l1(model.decode(mu, domain), spec)))
        clips = torch.stack(per_clip)
        means[domain] = clips.mean(0)
        spreads[domain] = float((clips - means[domain]).abs().mean())
    pairs = [float((means[a] - means[b]).abs().mean()) for a, b in combinations(means, 2)]
    spread = sum(spreads.values()) / len(spreads)
    return {"distance": sum(pairs) / len(pairs), "spread": spread,
            "recon": sum(recon) / max(1, len(recon))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "cpu-small.yaml")
    args = ap.parse_args(argv)
    rows = [("no latent loss", ["loss.latent=0"], None),
            ("running average, (1 - m) gradient", [], PartialGradientCentroids),
            ("running average, straight-through", [], None),
            ("batch mean (reference code)", ["train.latent_loss=batch_mean"], None)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_latent_") as tmp:
        tmp = Path(tmp)
        write_paired_dataset(tmp / "audio", n_domains=3, n_clips=12, seconds=3.0)
        prepare(tmp / "audio", tmp / "store", options=PrepareOptions(val_fraction=0.25),
                workers=1, progress=False)
        for i, (name, overrides, centroid_class) in enumerate(rows):
            config = load_run_config(args.config, [f"train.max_steps={args.steps}", *overrides])
            trainer = Trainer(config, tmp / "store", tmp / f"run{i}", progress=False)
            if centroid_class is not None:
                trainer.centroids = centroid_class(trainer.domains, config.train.centroid_momentum)
            start = time.perf_counter()
            trainer.fit()
            report = centroid_report(trainer)
            results.append((name, report, time.perf_counter() - start))
            print(f"  {name}: {report}", flush=True)
    print(f"\nLatent centroids after {args.steps} steps of {args.config.name} "
          "(3 synthetic domains; weight 10, momentum 0.99):")
    print(f"{'latent loss':<36} | {'centroid L1 distance':>20} | {'/ within-domain spread':>22} | "
          f"{'held-out recon L1':>17}")
    print("-" * 106)
    for name, r, _ in results:
        print(f"{name:<36} | {r['distance']:>20.4f} | {r['distance'] / r['spread']:>22.3f} | "
              f"{r['recon']:>17.4f}")


if __name__ == "__main__":
    main()
