"""``AudioTransform``: waveform <-> normalised log1p mel-spectrogram, the models' input and
output."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from timbre_transfer.audio import inversion


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None, htk: bool = False,
                   norm: str | None = "slaney") -> np.ndarray:
    """``librosa.filters.mel`` (0.11), float32 ``(n_mels, 1 + n_fft // 2)``: triangles between
    mel-spaced edges, area-normalised with ``norm="slaney"``.

    Written out because importing ``librosa.filters`` imports ``scipy.signal``, which took 0.64 s
    of every ``transfer`` command on a 2-core machine (docs/benchmarks.md, issue 31); the edges
    still come from librosa's ``mel_frequencies``, and tests/audio/test_transform.py holds the
    weights equal to librosa's.
    """
    import librosa

    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    f_max = float(sample_rate) / 2 if f_max is None else f_max
    fft_hz = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    edges = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max, htk=htk)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    # float32 before the normalisation, as librosa fills its float32 array row by row
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    if norm == "slaney":  # about constant energy per channel
        weights = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    if not np.all((edges[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(f"{n_mels} mel bands over {n_fft // 2 + 1} FFT bins leave some bands "
                      "empty; use fewer mels, a larger n_fft or a higher f_max", stacklevel=2)
    return weights


@dataclass(frozen=True)
class TransformParams:
    """Everything that defines the features; two stores or checkpoints with equal params agree.

    Names follow torchaudio. ``window`` is ``"gauss"`` (truncated Gaussian matched to the
    lattice, the best for PGHI) or ``"hann"``; ``power`` is 1 for a magnitude mel and 2 for a
    power mel; ``mel_scale`` and ``norm`` mean what they mean to ``librosa.filters.mel`` (``htk``
    / ``slaney`` scale, ``"slaney"`` or ``None`` area normalisation; see :func:`mel_filterbank`).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 128
    win_length: int | None = None
    window: str = "gauss"
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 1.0
    mel_scale: str = "slaney"
    norm: str | None = "slaney"

    def __post_init__(self):
        win = self.n_fft if self.win_length is None else self.win_length
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft <= 0 or self.n_fft % 2:
            problems.append(f"n_fft must be a positive even number, got {self.n_fft}")
        if not 0 < self.hop_length <= win:
            problems.append(f"hop_length must be in (0, win_length={win}], got {self.hop_length}")
        if not 0 < win <= self.n_fft:
            problems.append(f"win_length must be in (0, n_fft={self.n_fft}], got {win}")
        if self.window not in ("gauss", "hann"):
            problems.append(f"window must be 'gauss' or 'hann', got {self.window!r}")
        if self.n_mels <= 0:
            problems.append(f"n_mels must be positive, got {self.n_mels}")
        f_max = self.sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.power not in (1.0, 2.0):
            problems.append(f"power must be 1.0 or 2.0, got {self.power}")
        if self.mel_scale not in ("slaney", "htk"):
            problems.append(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.norm not in ("slaney", None):
            problems.append(f"norm must be 'slaney' or None, got {self.norm!r}")
        if problems:
            raise ValueError("invalid audio transform parameters: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> "TransformParams":
        """Build from a plain dict (a config's ``audio`` section, a checkpoint). Unknown keys and
        values of the wrong type are errors that name the key."""
        from timbre_transfer.config import build

        return build(cls, values, "audio")


class AudioTransform(nn.Module):
    """Waveform ``(B, T)`` -> normalised log1p mel ``(B, n_mels, 1 + T // hop_length)``, and back.

    ``spec = (log1p(mel) - norm_shift) / norm_scale``. The statistics are buffers (saved in
    ``state_dict`` and in :meth:`to_dict`); they start as the identity and are set from data with
    :meth:`fit_normalization`, which maps the data's range onto [0, 1].

    Example:
        >>> t = AudioTransform(sample_rate=16000)
        >>> spec = t(torch.randn(2, 16000) * 0.1)      # (2, 128, 126)
        >>> wav = t.invert(spec, method="pghi+gla")     # (2, 16000)
    """

    def __init__(self, **params):
        super().__init__()
        self.params = TransformParams(**params)
        p = self.params
        basis = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.f_min, p.f_max,
                               htk=p.mel_scale == "htk", norm=p.norm)
        self.register_buffer("mel_basis", torch.from_numpy(basis).float())
        self.register_buffer("window",
                             inversion.make_window(p.window, self.win_length, p.hop_length))
        self.register_buffer("norm_shift", torch.tensor(0.0))
        self.register_buffer("norm_scale", torch.tensor(1.0))

    # ---- geometry -------------------------------------------------------------------------

    @property
    def win_length(self) -> int:
        return self.params.n_fft if self.params.win_length is None else self.params.win_length

    @property
    def gamma(self) -> float:
        """The window's time-frequency ratio in samples^2, as PGHI needs it."""
        return inversion.window_gamma(self.params.window, self.win_length, self.params.hop_length)

    # ---- analysis ---------------------------------------------------------------------------

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> complex ``(B, n_fft // 2 + 1, frames)``."""
        return inversion.stft(wav, self.params.n_fft, self.params.hop_length, self.window)

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` or ``(T,)`` -> linear-amplitude mel ``(B, n_mels, frames)`` (or unbatched)."""
        wav, unbatched = _as_batch(wav, "wav", "(B, T) or (T,)")
        if not torch.isfinite(wav).all():
            raise ValueError("waveform contains NaN or infinite samples")
        mag = self.stft(wav.to(self.window.dtype)).abs()
        mel = self.mel_basis @ (mag if self.params.power == 1.0 else mag.square())
        return mel[0] if unbatched else mel

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` or ``(T,)`` -> normalised log1p mel ``(B, n_mels, frames)`` (or unbatched)."""
        return self.normalize(torch.log1p(self.mel(wav)))

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.norm_shift) / self.norm_scale

    def denormalize(self, spec: torch.Tensor) -> torch.Tensor:
        return spec * self.norm_scale + self.norm_shift

    @torch.no_grad()
    def fit_normalization(self, log_mels) -> None:
        """Set the statistics so that the given log1p mels span [0, 1].

        Args:
            log_mels: a tensor or an iterable of tensors of ``log1p(self.mel(wav))``, any shape.
        """
        if isinstance(log_mels, torch.Tensor):
            log_mels = [log_mels]
        low, high = math.inf, -math.inf
        for x in log_mels:
            if not torch.isfinite(x).all():
                raise ValueError("fit_normalization got NaN or infinite values")
            if x.numel():
                low, high = min(low, x.min().item()), max(high, x.max().item())
        if not math.isfinite(low) or high - low <= 0:
            raise ValueError(
                "fit_normalization needs non-empty, non-constant data "
                f"(got range [{low}, {high}]); is the audio silent?"
            )
        self.norm_shift.fill_(low)
        self.norm_scale.fill_(high - low)

    # ---- synthesis --------------------------------------------------------------------------

    def spec_to_mel(self, spec: torch.Tensor) -> torch.Tensor:
        """Normalised log1p mel -> linear-amplitude mel (the inverse of ``forward``'s last
        steps)."""
        return torch.expm1(self.denormalize(spec)).clamp_min(0)

    def mel_to_magnitude(self, mel: torch.Tensor, n_iter: int = 100) -> torch.Tensor:
        """Linear-amplitude mel ``(B, n_mels, N)`` -> STFT magnitude ``(B, F, N)`` by NNLS."""
        linear = inversion.mel_to_linear(mel, self.mel_basis, n_iter=n_iter)
        return linear if self.params.power == 1.0 else linear.sqrt()

    def invert(
        self,
        spec: torch.Tensor,
        method: str = "pghi+gla",
        n_iter: int | None = None,
        length: int | None = None,
        seed: int | None = 0,
    ) -> torch.Tensor:
        """Normalised log1p mel ``(B, n_mels, N)`` or ``(n_mels, N)`` -> waveform ``(B, T)``.

        Args:
            method: ``"pghi"``, ``"griffinlim"`` or ``"pghi+gla"`` (PGHI start, 16 fast
                Griffin-Lim iterations; the best quality per second).
            n_iter: Griffin-Lim iterations (default 32 for ``"griffinlim"``, 16 for ``"pghi+gla"``).
            length: output length in samples (default ``(N - 1) * hop_length``).
            seed: seeds the random phase of near-silent bins / Griffin-Lim's start.
        """
        spec, unbatched = _as_batch(spec, "spec", "(B, n_mels, N) or (n_mels, N)", rank=3)
        if spec.shape[-2] != self.params.n_mels:
            raise ValueError(f"spec has {spec.shape[-2]} mel bands, the transform "
                             f"{self.params.n_mels}")
        if not torch.isfinite(spec).all():
            raise ValueError("spec contains NaN or infinite values")
        spec = spec.to(self.mel_basis.dtype)
        mel = self.spec_to_mel(spec)
        magnitude = self.mel_to_magnitude(mel)
        wav = inversion.reconstruct_phase(
            magnitude, self.params.n_fft, self.params.hop_length, self.window, self.gamma,
            method=method, n_iter=n_iter, length=length, seed=seed,
            mel_constraint=(mel, self.mel_basis, self.params.power),
        )
        return wav[0] if unbatched else wav

    # ---- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-python description (params and statistics) that :meth:`from_dict` rebuilds."""
        return {
            "params": asdict(self.params),
            "norm_shift": float(self.norm_shift),
            "norm_scale": float(self.norm_scale),
        }

    @classmethod
    def from_dict(cls, state: dict) -> "AudioTransform":
        missing = {"params", "norm_shift", "norm_scale"} - set(state)
        if missing:
            raise KeyError(f"audio transform state lacks key(s) {sorted(missing)}")
        transform = cls(**asdict(TransformParams.from_dict(state["params"])))
        transform.norm_shift.fill_(float(state["norm_shift"]))
        transform.norm_scale.fill_(float(state["norm_scale"]))
        return transform

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.params).items())


def _as_batch(x: torch.Tensor, name: str, expected: str,
              rank: int = 2) -> tuple[torch.Tensor, bool]:
    """Add a batch dimension to an unbatched input; any other rank is an error naming
    ``expected``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (rank - 1, rank):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return (x.unsqueeze(0), True) if x.dim() == rank - 1 else (x, False)


@dataclass
class RoundTrip:
    """Result of :func:`round_trip`: the audio, its quality and the time the inversion took."""

    wav: torch.Tensor  # (T,)
    spectral_convergence_db: float
    seconds: float
    real_time_factor: float  # audio seconds per wall-clock second of inversion


def round_trip(
    transform: AudioTransform, wav: torch.Tensor, method: str = "pghi+gla",
    n_iter: int | None = None
) -> RoundTrip:
    """wav ``(T,)`` -> normalised log1p mel -> wav, timed, with the spectral convergence of the
    result against the input (on the transform's own STFT magnitude)."""
    import time

    spec = transform(wav)
    start = time.perf_counter()
    out = transform.invert(spec, method=method, n_iter=n_iter, length=wav.shape[-1])
    seconds = time.perf_counter() - start
    sc = inversion.spectral_convergence_db(
        transform.stft(wav[None]).abs(), transform.stft(out[None]).abs()
    )
    duration = wav.shape[-1] / transform.params.sample_rate
    return RoundTrip(out, float(sc), seconds, duration / max(seconds, 1e-9))
