"""Latent exploration: interpolation between two sounds and sampling from the prior."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Linear interpolation ``a + t (b - a)``."""
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation of two latents (each flattened to one vector).

    The angle comes from the normalised vectors; the weights ``sin((1 - t) w) / sin w`` and
    ``sin(t w) / sin w`` apply to the vectors themselves, so the endpoints are exact and unit
    vectors stay on the unit sphere. Near-parallel vectors (``sin w < eps``), where the weights
    are 0/0, fall back to :func:`lerp`.
    """
    fa, fb = a.reshape(-1).double(), b.reshape(-1).double()
    cos = torch.dot(fa / fa.norm().clamp_min(1e-12), fb / fb.norm().clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    if sin < eps:
        return lerp(a, b, t)
    wa, wb = torch.sin((1 - t) * omega) / sin, torch.sin(t * omega) / sin
    return (wa * fa + wb * fb).reshape(a.shape).to(a.dtype)


@torch.no_grad()
def interpolate(tt, wav_a: np.ndarray, wav_b: np.ndarray, to: str, steps: int = 8,
                mode: str = "slerp", inverter: str = "pghi+gla"
                ) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """Decode ``steps`` latents between the encodings of two clips (at ``tt.sample_rate``)
    with domain ``to``'s generator; the longer clip is cut to the shorter one's length.

    Returns:
        the audio of each step and its normalised mel ``(n_mels, T)``.
    """
    if mode not in ("lerp", "slerp"):
        raise ValueError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    tt.check_domain(to)
    n = min(len(wav_a), len(wav_b))
    specs = [tt.transform(torch.from_numpy(np.asarray(w[:n], np.float32)).to(tt.device))
             for w in (wav_a, wav_b)]
    factor = tt.model.downsample_factor
    frames = specs[0].shape[-1] // factor * factor
    if frames == 0:
        raise ValueError(f"clips too short to interpolate ({specs[0].shape[-1]} frames)")
    za, zb = (tt.model.encode(s[None, None, :, :frames]).mu for s in specs)
    blend = slerp if mode == "slerp" else lerp
    wavs, mels = [], []
    for t in np.linspace(0.0, 1.0, steps):
        mel = tt.model.decode(blend(za, zb, float(t)), to)[0, 0].clamp(0, 1)
        mels.append(mel.cpu())
        wavs.append(tt.transform.invert(mel, method=inverter).cpu().numpy())
    return wavs, mels


@torch.no_grad()
def sample(tt, to: str, n: int = 8, seconds: float = 2.0, temperature: float = 1.0,
           seed: int = 0, inverter: str = "pghi+gla", around: str | None = None,
           ) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """Decode ``n`` latents with domain ``to``'s generator; ``seconds`` sets the latent's length.

    The latents are drawn from the prior N(0, temperature^2 I), or, with ``around``, from
    N(c, temperature^2 I) where ``c`` is that domain's latent centroid (its mean latent per
    channel, kept by training), i.e. near where that domain's sounds encode.
    """
    tt.check_domain(to)
    p = tt.transform.params
    factor = tt.model.downsample_factor
    frames = max(factor, int(seconds * p.sample_rate / p.hop_length) // factor * factor)
    shape = (n, tt.model.config.latent_channels, p.n_mels // factor, frames // factor)
    g = torch.Generator().manual_seed(seed)
    z = (temperature * torch.randn(shape, generator=g)).to(tt.device)
    if around is not None:
        tt.check_domain(around)
        if around not in tt.centroids:
            raise ValueError(f"the checkpoint keeps no latent centroid for {around!r} (trained "
                             "with train.latent_loss=batch_mean, or an export without training "
                             "state); sample from the prior instead")
        z = z + tt.centroids[around].to(tt.device, z.dtype)[None, :, None, None]
    mels = tt.model.decode(z, to)[:, 0].clamp(0, 1)
    wavs = [tt.transform.invert(m, method=inverter).cpu().numpy() for m in mels]
    return wavs, [m.cpu() for m in mels]


@dataclass
class LatentMap:
    """Clip latents projected to 2-D by PCA."""

    points: np.ndarray  # (N, 2) coordinates on the first two principal components
    domains: list[str]  # the domain of each point
    files: list[str]  # the clip of each point
    explained: tuple[float, float]  # share of the variance on each of the two axes


@torch.no_grad()
def latent_map(tt, store, split: str | None = None) -> LatentMap:
    """Encode every clip of a feature store (``split`` "train", "val" or None for both) and
    project the clip latents to 2-D by PCA.

    A clip's latent is its encoder mean ``mu`` ``(C, F', T')`` averaged over time, so a clip of
    any length gives one ``C * F'`` vector that keeps the frequency layout, where much of the
    timbre lives.
    """
    tt.check_store(store)
    factor = tt.model.downsample_factor
    vectors, domains, files = [], [], []
    for domain in tt.domains:
        clips = store.clips(domain, split)
        for file, offset, frames in zip(clips.files, clips.offsets, clips.frames):
            usable = max(int(frames) // factor * factor, 0)
            if usable == 0:
                continue  # shorter than the encoder's stride: nothing to encode
            rows = np.asarray(clips.features[offset:offset + usable], dtype=np.float32)
            spec = tt.transform.normalize(torch.from_numpy(rows.T).to(tt.device))
            mu = tt.model.encode(spec[None, None]).mu[0]
            vectors.append(mu.mean(dim=-1).flatten().double().cpu())
            domains.append(domain)
            files.append(file)
    if len(vectors) < 3:
        raise ValueError(f"{store.root}: a latent map needs at least 3 clips, found {len(vectors)}")
    x = torch.stack(vectors)
    x = x - x.mean(dim=0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    points = (x @ vh[:2].T).numpy()
    var = (s ** 2) / (s ** 2).sum()
    return LatentMap(points, domains, files, (float(var[0]), float(var[1])))


def save_latent_map(latents: LatentMap, path, title: str = "") -> Path:
    """Scatter plot of a :class:`LatentMap`, one colour per domain, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    for domain in dict.fromkeys(latents.domains):
        pick = [i for i, d in enumerate(latents.domains) if d == domain]
        ax.scatter(latents.points[pick, 0], latents.points[pick, 1], s=22, label=domain)
    ax.set_xlabel(f"PC 1 ({100 * latents.explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * latents.explained[1]:.0f}% of variance)")
    ax.set_title(title or f"clip latents ({len(latents.files)} clips)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def save_strip(mels: list[torch.Tensor], path, titles: list[str] | None = None):
    """One PNG with the mels side by side (normalised, shared colour scale)."""
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(1.8 * len(mels), 2.4))
    axes = fig.subplots(1, len(mels), squeeze=False)
    for i, (ax, mel) in enumerate(zip(axes[0], mels)):
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
