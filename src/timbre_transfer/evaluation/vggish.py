"""A VGGish embedder for FAD, faithful to torchvggish so that its public weights load strictly.

Preprocessing (the VGGish reference, ``vggish_input`` / ``mel_features``): 16 kHz mono; frames of
25 ms (400 samples) every 10 ms (160), periodic Hann window, 512-point FFT magnitude, no padding;
64 HTK mel bands (mel = 1127 ln(1 + f / 700)) from 125 to 7500 Hz with triangles in the mel
domain and the DC bin zeroed; ``log(mel + 0.01)``; non-overlapping patches of 96 frames
(0.96 s): ``(N, 1, 96, 64)``.

The network has torchvggish's state-dict keys (``features.0`` ... ``embeddings.4``) so that
``vggish-10086976.pth`` loads with ``strict=True``. Optional PCA post-processing (whitening and
8-bit quantisation, as in the released AudioSet embeddings) uses ``pca_eigen_vectors`` and
``pca_means`` from ``vggish_pca_params-970ea276.pth``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # next power of two
MEL_BANDS = 64
MEL_MIN_HZ, MEL_MAX_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96  # 0.96 s
#: the shortest audio that gives one patch: 0.975 s (at VGGish's 16 kHz)
MIN_SECONDS = (WINDOW + (PATCH_FRAMES - 1) * HOP) / SAMPLE_RATE
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
WEIGHTS_FILE = "vggish-10086976.pth"
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/" + WEIGHTS_FILE


def hz_to_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """``(FFT // 2 + 1, 64)`` HTK triangles between band edges spaced evenly in mel."""
    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1))
    edges = np.linspace(hz_to_mel(MEL_MIN_HZ), hz_to_mel(MEL_MAX_HZ), MEL_BANDS + 2)
    weights = np.empty((len(bins_mel), MEL_BANDS))
    for i in range(MEL_BANDS):
        low, centre, high = edges[i:i + 3]
        rising = (bins_mel - low) / (centre - low)
        falling = (high - bins_mel) / (high - centre)
        weights[:, i] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the reference drops the DC bin
    return weights


def log_mel(wav: np.ndarray) -> np.ndarray:
    """``(T,)`` 16 kHz audio -> ``(frames, 64)`` log mel, ``frames = 1 + (T - 400) // 160``."""
    wav = np.asarray(wav, dtype=np.float64)
    if len(wav) < WINDOW:
        raise ValueError(f"VGGish needs at least {WINDOW} samples (25 ms), got {len(wav)}")
    n_frames = 1 + (len(wav) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(wav[index] * window, n=FFT))
    return np.log(spectrum @ mel_matrix() + LOG_OFFSET)


def examples(wav: np.ndarray) -> torch.Tensor:
    """``(T,)`` 16 kHz audio -> ``(N, 1, 96, 64)`` float32 patches (a partial last patch is
    dropped, as in the reference)."""
    mel = log_mel(wav)
    n = len(mel) // PATCH_FRAMES
    if n == 0:
        raise ValueError(f"VGGish needs at least 0.96 s of audio ({PATCH_FRAMES} frames), got "
                         f"{len(mel)} frames")
    patches = mel[:n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, MEL_BANDS)
    return torch.from_numpy(patches[:, None]).float()


class VGGish(nn.Module):
    """The VGGish network: ``(N, 1, 96, 64)`` log-mel patches -> ``(N, 128)`` embeddings."""

    def __init__(self, pca: bool = False):
        super().__init__()
        layers, channels = [], 1
        for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 128), nn.ReLU(inplace=True))
        self.pca = pca
        self.register_buffer("pca_eigen_vectors", torch.eye(128), persistent=False)
        self.register_buffer("pca_means", torch.zeros(128), persistent=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.features(patches)
        # (N, C, H, W) -> (N, H, W, C) before flattening, the order the TF weights expect
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        x = self.embeddings(x)
        return self.postprocess(x) if self.pca else x

    def postprocess(self, embeddings: torch.Tensor) -> torch.Tensor:
        """PCA with whitening, clipped to [-2, 2] and quantised to 0..255 (AudioSet format)."""
        projected = (embeddings - self.pca_means) @ self.pca_eigen_vectors.T
        clipped = projected.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
        return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))

    def load_pca(self, params: dict) -> None:
        """Load ``pca_eigen_vectors (128, 128)`` and ``pca_means (128,)`` and enable PCA."""
        self.pca_eigen_vectors.copy_(torch.as_tensor(params["pca_eigen_vectors"]).float())
        self.pca_means.copy_(torch.as_tensor(params["pca_means"]).float().reshape(-1))
        self.pca = True


def resolve_weights(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Where the VGGish weights are: ``path`` if given; else the torch hub cache
    (``$TORCH_HOME/hub/checkpoints/vggish-10086976.pth``); else downloaded there when online.

    Raises:
        FileNotFoundError: none found; the message says where to put the file.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such VGGish weights file")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    if cached.is_file():
        return cached
    if download:
        try:
            torch.hub.download_url_to_file(WEIGHTS_URL, str(cached), progress=True)
            return cached
        except Exception as exc:  # noqa: BLE001 - offline machines fail in many ways
            reason = f"download failed: {exc}"
    else:
        reason = "download disabled"
    raise FileNotFoundError(
        f"VGGish weights not found ({reason}). Put {WEIGHTS_FILE} (from {WEIGHTS_URL}) at "
        f"{cached}, or pass its path with --fad-weights PATH"
    )


def load_vggish(path: str | os.PathLike | None = None, download: bool = True) -> VGGish:
    """A VGGish with the public weights, loaded with ``weights_only=True`` and strict keys."""
    from timbre_transfer.checkpoint import load_state_strict

    weights = resolve_weights(path, download)
    model = VGGish()
    load_state_strict(model, torch.load(weights, map_location="cpu", weights_only=True),
                      f"{weights} (VGGish weights)")
    return model.eval()
