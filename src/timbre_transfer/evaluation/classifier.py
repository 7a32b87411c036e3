"""A small domain classifier on mel crops: the judge of conversion accuracy.

It is trained on the real audio of the domains (a store's train split) and its accuracy is
measured on the held-out split, so a user knows how far to trust it before reading the
conversion accuracy of a model: the share of transfers to domain ``j`` that it calls ``j``.
It sees the same normalised log1p mel as the timbre model, in windows of ``crop_frames``:
through a CNN (:class:`CnnJudge`, the default) or as the window's MFCC statistics
(:class:`MfccJudge`, ``ClassifierConfig(features="mfcc")``). Neither is the training loss's
:class:`timbre_transfer.losses.domain_class.DomainClassifier`, which scores translations while
the model trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: the ``kind`` every saved judge records, as files written before the nets were called judges
#: record it: it names no class (the net is rebuilt from ``config.features``), so it stays
SAVED_KIND = "domain_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, ...] = (16, 32, 64, 64)
    crop_frames: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    # each training crop moved along the mel axis by a random number of semitones in
    # [-pitch_shift, pitch_shift] (0: none): a judge that has heard every domain in every
    # register scores timbre rather than register
    pitch_shift: float = 0.0
    # what the judge reads: "mel", a CNN on the mel crop that keeps where in frequency the
    # energy sits (register included), or "mfcc", each cepstral coefficient's mean and spread
    # over the window: the spectral envelope, with little of the notes
    features: str = "mel"
    n_mfcc: int = 13  # with features "mfcc": coefficients 1..n_mfcc (c0, the level, is left out)

    def __post_init__(self):
        if self.features not in ("mel", "mfcc"):
            raise ValueError(f"classifier features must be mel or mfcc, got {self.features!r}")


class CnnJudge(nn.Module):
    """``(B, 1, n_mels, T)`` normalised mel crops -> ``(B, n_domains)`` logits.

    Conv blocks (conv 3x3, batch norm, ReLU, max-pool 2) then a mean over time only: the
    frequency axis keeps its positions, since where the energy sits in frequency is much of
    what tells a flute from a trumpet. Any ``T`` works once it survives the pooling.
    """

    def __init__(self, n_mels: int, domains: list[str], channels=(16, 32, 64, 64)):
        super().__init__()
        self.domains = list(domains)
        blocks, prev = [], 1
        for c in channels:
            blocks += [nn.Conv2d(prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            prev = c
        self.features = nn.Sequential(*blocks)
        bands = n_mels // 2 ** len(channels)
        if bands < 1:
            raise ValueError(f"{n_mels} mel bands are too few for {len(channels)} pooling blocks")
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(prev * bands, len(self.domains)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=-1))


class MfccJudge(nn.Module):
    """``(B, 1, n_mels, T)`` normalised mel crops -> ``(B, n_domains)`` logits from MFCCs.

    The mel is taken back to linear amplitude (the store's ``AudioTransform.spec_to_mel``), to a
    natural log and through :class:`~timbre_transfer.audio.cepstrum.MelCepstrum` (coefficients
    ``1..n_mfcc``: the spectral envelope, little of the notes); the mean and standard deviation
    of each over the window feed a one-hidden-layer MLP.
    """

    def __init__(self, transform, domains: list[str], n_mfcc: int = 13, hidden: int = 64):
        super().__init__()
        from timbre_transfer.audio.cepstrum import MelCepstrum

        self.domains = list(domains)
        # a copy: moving the judge to a device must not move the store's own transform
        self.transform = type(transform).from_dict(transform.to_dict())
        self.cepstrum = MelCepstrum(transform.params.n_mels, n_mfcc)
        self.head = nn.Sequential(nn.BatchNorm1d(2 * n_mfcc, affine=False),
                                  nn.Linear(2 * n_mfcc, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(hidden, len(self.domains)))

    def mfcc(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, T)`` normalised mel -> ``(B, n_mfcc, T)`` cepstral coefficients."""
        return self.cepstrum(torch.log(self.transform.spec_to_mel(x[:, 0]).clamp_min(1e-5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.mfcc(x)
        return self.head(torch.cat([c.mean(-1), c.std(-1)], 1))


def judge_net(config: ClassifierConfig, transform, domains: list[str]) -> nn.Module:
    """The untrained network ``config`` describes, for ``transform``'s mels."""
    if config.features == "mfcc":
        return MfccJudge(transform, domains, config.n_mfcc)
    return CnnJudge(transform.params.n_mels, domains, config.channels)


def windows(spec: torch.Tensor, frames: int) -> torch.Tensor:
    """Non-overlapping windows of a normalised mel ``(n_mels, T)`` -> ``(N, 1, n_mels, frames)``.

    The tail shorter than a window is dropped, except for a clip shorter than one window, which
    is padded with the normalised value of silence (as training crops are).
    """
    if spec.dim() != 2:
        raise ValueError(f"expected a mel of shape (n_mels, T), got {tuple(spec.shape)}")
    n = spec.shape[-1] // frames
    if n == 0:
        return torch.nn.functional.pad(spec, (0, frames - spec.shape[-1]), value=0.0)[None, None]
    return spec[:, : n * frames].reshape(spec.shape[0], n, frames).permute(1, 0, 2)[:, None]


@dataclass
class Classifier:
    """A trained :class:`CnnJudge` or :class:`MfccJudge` with the transform it
    expects and its held-out scores."""

    net: nn.Module
    transform: object  # AudioTransform: normalised mel of the store it was trained on
    config: ClassifierConfig
    heldout_accuracy: float  # over all held-out windows
    heldout_per_domain: dict  # domain -> accuracy on its held-out windows
    heldout_windows: int

    @property
    def domains(self) -> list[str]:
        return self.net.domains

    @torch.no_grad()
    def predict_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """Predicted domain index of each window of a normalised mel ``(n_mels, T)`` -> ``(N,)``."""
        self.net.eval()
        device = next(self.net.parameters()).device
        return self.net(windows(spec.to(device), self.config.crop_frames)).argmax(dim=1).cpu()

    @torch.no_grad()
    def predict_audio(self, wav: np.ndarray) -> torch.Tensor:
        """Predicted domain index of each window of ``(T,)`` audio at the transform's rate."""
        return self.predict_spec(self.transform(torch.from_numpy(np.asarray(wav, np.float32))))

    def accuracy(self, wav: np.ndarray, domain: str) -> float:
        """Share of the windows of ``wav`` classified as ``domain``."""
        if domain not in self.domains:
            raise KeyError(f"the classifier does not know domain {domain!r}; it knows "
                           f"{self.domains}")
        return float((self.predict_audio(wav) == self.domains.index(domain)).float().mean())

    def save(self, path: str | Path) -> Path:
        from timbre_transfer.checkpoint import save_checkpoint
        from timbre_transfer.config import to_dict

        return save_checkpoint(path, {
            "kind": SAVED_KIND,
            "config": to_dict(self.config),
            "transform": self.transform.to_dict(),
            "domains": self.domains,
            "model": self.net.state_dict(),
            "heldout": {"accuracy": self.heldout_accuracy, "per_domain": self.heldout_per_domain,
                        "windows": self.heldout_windows},
        })

    @classmethod
    def load(cls, path: str | Path) -> "Classifier":
        from timbre_transfer.audio.transform import AudioTransform
        from timbre_transfer.checkpoint import load_state_strict, read_checkpoint
        from timbre_transfer.config import build

        blob = read_checkpoint(path)
        if blob.get("kind") != SAVED_KIND:
            raise ValueError(f"{path}: not a domain classifier (a timbre model checkpoint?)")
        config = build(ClassifierConfig, blob["config"], "classifier")
        transform = AudioTransform.from_dict(blob["transform"])
        net = judge_net(config, transform, blob["domains"])
        load_state_strict(net, blob["model"], f"{path} (classifier)")
        held = blob["heldout"]
        return cls(net.eval(), transform, config, float(held["accuracy"]),
                   dict(held["per_domain"]), int(held["windows"]))


def train_classifier(store, config: ClassifierConfig = ClassifierConfig(), device: str = "cpu",
                     progress: bool = True) -> Classifier:
    """Train on random crops of the store's train split (balanced across domains); score every
    window of its val split.

    The global RNG is left untouched: initialisation and crops come from ``config.seed``.
    """
    from timbre_transfer.audio.pitch import MelPitch, semitones_to_ratio
    from timbre_transfer.data.dataset import CropDataset
    from timbre_transfer.data.store import FeatureStore

    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = judge_net(config, store.transform, store.domains)
    net = net.to(device)
    data = CropDataset(store, "train", config.crop_frames, length=config.steps * config.batch_size,
                       seed=config.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=False)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    shifter = MelPitch.of(store.transform.params) if config.pitch_shift else None
    silence = float(-store.transform.norm_shift / store.transform.norm_scale)
    net.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout and shifts
        for specs, labels in _progress(loader, progress, "classifier"):
            if shifter is not None:
                semitones = (torch.rand(len(specs)) * 2 - 1) * config.pitch_shift
                specs = shifter.shift(specs, semitones_to_ratio(semitones), silence)
            loss = nn.functional.cross_entropy(net(specs.to(device)), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier = Classifier(net.eval(), store.transform, config, float("nan"), {}, 0)
    correct, total = 0, 0
    for domain in store.domains:
        clips = store.clips(domain, "val")
        if len(clips.files) == 0:
            raise ValueError(f"{store.root}: domain {domain!r} has no val clips to score the "
                             "classifier on (prepare with a larger prepare.val_fraction)")
        hits = []
        for offset, frames in zip(clips.offsets, clips.frames):
            rows = np.asarray(clips.features[offset:offset + frames], dtype=np.float32)
            spec = store.transform.normalize(torch.from_numpy(rows.T))
            hits.append(classifier.predict_spec(spec) == store.domains.index(domain))
        hits = torch.cat(hits)
        classifier.heldout_per_domain[domain] = float(hits.float().mean())
        correct, total = correct + int(hits.sum()), total + len(hits)
    classifier.heldout_accuracy, classifier.heldout_windows = correct / total, total
    return classifier


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="step", leave=False)


def classifier_for(store, path: str | Path, config: ClassifierConfig = ClassifierConfig(),
                   device: str = "cpu", progress: bool = True) -> Classifier:
    """The classifier saved at ``path`` if it was trained on ``store``'s domains and transform;
    otherwise (no file yet) one trained now and saved there.

    Raises:
        ValueError: ``path`` holds a classifier of other domains or another transform.
    """
    from timbre_transfer.data.store import FeatureStore

    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    path = Path(path)
    if path.is_file():
        classifier = Classifier.load(path)
        if (classifier.domains != store.domains
                or classifier.transform.to_dict() != store.transform.to_dict()):
            raise ValueError(f"{path} was trained on other domains or features than "
                             f"{store.root} ({classifier.domains}); delete it or pass another path")
        if classifier.config.pitch_shift != config.pitch_shift:
            raise ValueError(f"{path} was trained with pitch_shift={classifier.config.pitch_shift} "
                             f"semitones, not {config.pitch_shift}; pass another path")
        if classifier.config.features != config.features:
            raise ValueError(f"{path} is a {classifier.config.features} judge, not "
                             f"{config.features}; pass another path")
        return classifier
    classifier = train_classifier(store, config, device, progress)
    classifier.save(path)
    return classifier
