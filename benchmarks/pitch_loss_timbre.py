"""What the pitch-consistency loss (KL) charges a translation for timbre alone.

For each pair of Bach10/speech domains, the median KL between the frozen pitch network's
readings of real frames of the two domains that pYIN labels at the same pitch (within one
25-cent bin): the loss that a *perfect* transfer, the target instrument playing the source's
note, would still pay. The diagonal (two frames of one domain) is the floor.

Uses the recipe's pitch network and store from ``transfer_quality.py --set bach10`` (run it
first); 60 random 64-frame training crops per domain, seed 0. Run from the repository root::

    .venv/bin/python benchmarks/pitch_loss_timbre.py [--run recipe]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "bench" / "transfer_quality_bach10"
PER_BIN = 20  # frames per pitch bin and domain compared


def main(argv=None) -> None:
    import torch
    import torch.nn.functional as F

    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.data.store import FeatureStore
    from timbre_transfer.models.pitch_net import PitchNet, pitch_bin

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(WORK), help="transfer_quality.py's work folder")
    p.add_argument("--run", default="recipe", help="the row whose pitch network is read")
    args = p.parse_args(argv)
    path = Path(args.work) / "runs" / args.run / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run transfer_quality.py --set bach10 --rows {args.run}")
    blob = read_checkpoint(path)
    if "pitch_net" not in blob:
        raise SystemExit(f"{path}: this run has no pitch network (loss.pitch was 0)")
    store = FeatureStore(Path(args.work) / "features")
    net = PitchNet(store.transform.params.n_mels)
    net.load_state_dict(blob["pitch_net"])
    net.eval()

    rng = np.random.default_rng(0)
    readings, bins = {}, {}
    for d in store.domains:
        clips = store.clips(d, "train")
        spans = [(o, n) for o, n in zip(clips.offsets, clips.frames)]
        feats = np.concatenate([np.asarray(clips.features[o:o + n], np.float32) for o, n in spans])
        ctl = np.concatenate([np.asarray(clips.controls[o:o + n]) for o, n in spans])
        starts = rng.choice(len(feats) - 64, 60, replace=False)
        x = torch.from_numpy(np.stack([feats[i:i + 64].T for i in starts]))[:, None]
        c = torch.from_numpy(np.stack([ctl[i:i + 64] for i in starts]))
        with torch.no_grad():
            log_p = F.log_softmax(net(x), 1).permute(0, 2, 1)  # (crops, frames, bins)
        voiced = c[..., 2] > 0.5
        readings[d], bins[d] = log_p[voiced], torch.round(pitch_bin(c[..., 0]))[voiced]

    print("median KL(p_source || p_target) over frame pairs at one labelled pitch (+-1 bin)")
    print("| source \\ target | " + " | ".join(store.domains) + " |")
    print("|---|" + "---|" * len(store.domains))
    for s in store.domains:
        row = []
        for t in store.domains:
            kls = []
            for b in torch.unique(bins[s]):
                a = readings[s][bins[s] == b][:PER_BIN]
                q = readings[t][(bins[t] - b).abs() <= 1][:PER_BIN]
                if len(a) and len(q):
                    kl = (a.exp()[:, None] * (a[:, None] - q[None])).sum(-1)
                    if s == t and len(a) == len(q) and len(a) > 1:  # not a frame with itself
                        kl = kl[~torch.eye(len(a), dtype=torch.bool)]
                    kls.append(kl.flatten())
            row.append(f"{float(torch.cat(kls).median()):.2f}" if kls else "-")
        print(f"| {s} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
