"""Paired evaluation on the synthetic domains: transfers against their ground-truth twins."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from timbre_transfer.evaluation.metrics import twin_distance


@dataclass
class PairedScores:
    """Mean :func:`twin_distance` over (clip, source, target) triples."""

    transfer: float  # the transfer against the target-domain twin
    identity: float  # the untouched source against the same twin (the baseline to beat)
    pairs: int


def paired_scores(tt, data_dir: str | Path, store=None, split: str = "val",
                  inverter: str = "pghi") -> PairedScores:
    """Transfer every ``split`` clip of each domain (as listed in ``store``; all twins when no
    store is given) to every other domain and compare with its twin.

    Args:
        tt: a :class:`~timbre_transfer.inference.transfer.TimbreTransfer`.
        data_dir: the paired audio (``<domain>/clip_NNNN.wav``).
        store: a :class:`~timbre_transfer.data.dataset.FeatureStore` whose split picks the
            source clips the model never trained on.
    """
    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.data.synthetic import paired_files

    twins = paired_files(data_dir)
    sr = tt.sample_rate
    transfer, identity = [], []
    for source in tt.domains:
        names = (sorted(twins) if store is None
                 else [Path(f).stem for f in store.clips(source, split).files])
        for name in names:
            src = load_audio(twins[name][source], sr)
            for target in (d for d in tt.domains if d != source):
                twin = torch.from_numpy(load_audio(twins[name][target], sr)).to(tt.device)
                # octave 0: a twin plays the source's notes in the source's register
                out = torch.from_numpy(tt.transfer(src, sr, to=target, inverter=inverter,
                                                   octave=0))
                transfer.append(twin_distance(out.to(tt.device), twin, tt.transform))
                identity.append(twin_distance(torch.from_numpy(src).to(tt.device), twin,
                                              tt.transform))
    if not transfer:
        raise ValueError(f"no {split} clips to evaluate in {data_dir}")
    return PairedScores(float(np.mean(transfer)), float(np.mean(identity)), len(transfer))
