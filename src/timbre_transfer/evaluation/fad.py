"""Fréchet Audio Distance: the pure mathematics (embedders live elsewhere).

FAD (Kilgour et al. 2019) is the Fréchet distance between two Gaussians fitted to embeddings of
two sets of audio::

    FAD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)

The trace of the matrix square root is computed in the symmetric eigen form
``sum(sqrt(eigvalsh(S1^1/2 S2 S1^1/2)))``: ``S1^1/2 S2 S1^1/2`` is symmetric positive
semi-definite, so its eigenvalues are real and (up to rounding, clipped at 0) non-negative. This
avoids ``scipy.linalg.sqrtm`` of the non-symmetric ``S1 S2``, whose result can turn complex or
the distance negative on near-singular covariances.

FAD-infinity (Gui et al. 2024, "Adapting Frechet Audio Distance for Generative Music
Evaluation", as implemented in fadtk): FAD is biased upward by ~1/n for n evaluated samples;
computing it on random subsets of several sizes and extrapolating the linear fit in 1/n to
1/n -> 0 removes the bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmbeddingStatistics:
    """Mean and covariance of embeddings, mergeable: ``a.merge(b)`` equals the statistics of the
    union (Chan et al.'s parallel update, in float64)."""

    n: int
    mean: np.ndarray  # (D,)
    scatter: np.ndarray  # (D, D) sum of outer products of deviations from the mean

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance ``(D, D)`` (divides by n - 1, as numpy.cov)."""
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 embeddings, got {self.n}")
        return self.scatter / (self.n - 1)

    def merge(self, other: "EmbeddingStatistics") -> "EmbeddingStatistics":
        if self.mean.shape != other.mean.shape:
            raise ValueError(f"cannot merge statistics of dimension {self.mean.shape[0]} and "
                             f"{other.mean.shape[0]}")
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return EmbeddingStatistics(n, mean, scatter)


def embedding_statistics(embeddings) -> EmbeddingStatistics:
    """Statistics of an ``(N, D)`` array of embeddings, or of an iterable of such arrays
    (streamed: one file or batch at a time). Needs at least 2 embeddings in total.

    Raises:
        ValueError: fewer than 2 embeddings, a non-2-D array, mixed dimensions, or NaN/inf.
    """
    chunks = [embeddings] if isinstance(embeddings, np.ndarray) else embeddings
    total: EmbeddingStatistics | None = None
    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
        if len(x) == 0:
            continue
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN or infinite values")
        mean = x.mean(axis=0)
        dev = x - mean
        stats = EmbeddingStatistics(len(x), mean, dev.T @ dev)
        total = stats if total is None else total.merge(stats)
    if total is None or total.n < 2:
        raise ValueError("FAD needs at least 2 embedding frames, got "
                         f"{0 if total is None else total.n}")
    return total


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); see the module docstring for
    the formula. Never negative, never complex."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / "
                         f"{sigma2.shape}")
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def fad(reference: EmbeddingStatistics, evaluated: EmbeddingStatistics) -> float:
    return frechet_distance(reference.mean, reference.cov, evaluated.mean, evaluated.cov)


@dataclass(frozen=True)
class FadInfinity:
    value: float  # the extrapolated FAD at 1/n -> 0
    slope: float  # FAD per unit of 1/n
    r2: float  # goodness of the linear fit
    sizes: tuple[int, ...]
    fads: tuple[float, ...]


def fad_infinity(reference: EmbeddingStatistics, embeddings: np.ndarray, min_n: int = 500,
                 steps: int = 25, seed: int = 0) -> FadInfinity:
    """FAD-infinity of ``embeddings (N, D)`` against ``reference``: FAD on random subsets (drawn
    without replacement) of ``steps`` sizes evenly spaced from ``min(min_n, N // 2)`` to N, a
    least-squares line through (1/n, FAD), and its intercept.

    Raises:
        ValueError: fewer than 4 embeddings or fewer than 2 distinct sizes.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"FAD-infinity needs (N, D) embeddings with N >= 4, got {x.shape}")
    low = max(2, min(min_n, len(x) // 2))
    sizes = sorted({int(n) for n in np.linspace(low, len(x), steps)})
    if len(sizes) < 2:
        raise ValueError("FAD-infinity needs at least 2 distinct subset sizes")
    rng = np.random.default_rng(seed)
    fads = [fad(reference, embedding_statistics(x[rng.choice(len(x), n, replace=False)]))
            for n in sizes]
    inv = 1.0 / np.array(sizes, dtype=np.float64)
    slope, intercept = np.polyfit(inv, fads, 1)
    pred = slope * inv + intercept
    ss_res = float(((np.array(fads) - pred) ** 2).sum())
    ss_tot = float(((np.array(fads) - np.mean(fads)) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return FadInfinity(float(intercept), float(slope), r2, tuple(sizes), tuple(map(float, fads)))


# ---- embedding audio folders -----------------------------------------------------------------

EMBEDDERS = ("logmel", "vggish")


def logmel_embeddings(wav: np.ndarray) -> np.ndarray:
    """The built-in offline embedder: per 0.96 s patch of VGGish's log mel (64 bands), the mean
    and standard deviation of each band over time -> ``(N, 128)``.

    It needs no weights, so CI and the demo always get a score, but its numbers are NOT
    comparable with published FAD (which uses VGGish or other learned embeddings).
    """
    from timbre_transfer.evaluation.vggish import examples

    patches = examples(wav)[:, 0].numpy().astype(np.float64)  # (N, 96, 64)
    return np.concatenate([patches.mean(axis=1), patches.std(axis=1)], axis=1)


def make_embedder(embedder: str = "logmel", weights=None):
    """A function ``(wav (T,), sample_rate) -> (N, D)`` embeddings, one per 0.96 s patch.

    ``"logmel"``: :func:`logmel_embeddings` (offline, not comparable with published FAD);
    ``"vggish"``: VGGish from ``weights`` (see
    :func:`~timbre_transfer.evaluation.vggish.load_vggish`).
    Audio at another rate than 16 kHz is resampled first.
    """
    import torch

    from timbre_transfer.evaluation.vggish import examples, load_vggish

    if embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {embedder!r}; choose one of {EMBEDDERS}")
    model = load_vggish(weights) if embedder == "vggish" else None

    def embed(wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        if sample_rate != 16000:
            import librosa

            wav = librosa.resample(np.asarray(wav, np.float32), orig_sr=sample_rate,
                                   target_sr=16000, res_type="soxr_hq")
        if model is None:
            return logmel_embeddings(wav)
        with torch.no_grad():
            return model(examples(wav)).numpy()

    return embed


def folder_statistics(folder, embedder: str = "logmel", weights=None) -> EmbeddingStatistics:
    """Statistics of the embeddings of every audio file under ``folder`` (streamed per file).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no audio files, an unreadable file (named), or fewer than 2 embeddings.
    """
    from pathlib import Path

    from timbre_transfer.audio.io import AUDIO_EXTENSIONS, AudioFileError, load_audio

    embed = make_embedder(embedder, weights)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder}: no audio files")

    def per_file():
        for path in files:
            try:
                wav = load_audio(path, 16000)
            except AudioFileError as exc:
                raise ValueError(f"cannot embed {exc}") from exc
            try:
                yield embed(wav)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc

    return embedding_statistics(per_file())
