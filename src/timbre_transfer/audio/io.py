"""Reading and writing audio files (and the atomic text write the rest of the package uses).

Every error names the file and the problem, so that a bad file in a folder of thousands can be
found; writes are atomic, so an interrupted save never leaves half a file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioFileError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> np.ndarray:
    """Read an audio file as mono float32, resampled to ``sample_rate`` (None keeps the file's).

    Multi-channel files are averaged to mono; resampling uses librosa (soxr, high quality).

    Returns:
        ``(T,)`` float32 array. A file with zero samples is an error; silence is returned as is.

    Raises:
        FileNotFoundError: the path does not exist.
        AudioFileError: the file cannot be decoded, is empty, or holds NaN/inf samples.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(f"{path}: cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path}: audio contains NaN or infinite samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sample_rate is not None and sample_rate != file_rate:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        import librosa

        wav = librosa.resample(wav, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wav, dtype=np.float32)


def save_audio(
    path: str | os.PathLike, wav, sample_rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write mono audio atomically (temp file in the same folder, then rename).

    Args:
        wav: ``(T,)`` array or tensor; ``(1, T)`` is accepted and squeezed.
        subtype: ``"PCM_16"`` (clipped to [-1, 1], with a RuntimeWarning naming the file, how
            many samples were clipped and the peak in dBFS) or ``"FLOAT"``; the container
            follows the suffix (.wav, .flac, .ogg).
    """
    import soundfile as sf

    path = Path(path)
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.ndim != 1:
        raise ValueError(f"{path}: expected mono audio of shape (T,), got {tuple(wav.shape)}")
    if not np.isfinite(wav).all():
        raise ValueError(f"{path}: refusing to write audio with NaN or infinite samples")
    if subtype == "PCM_16":
        over = np.abs(wav) > 1.0
        if over.any():
            import warnings

            peak = 20 * np.log10(float(np.abs(wav).max()))
            warnings.warn(f"{path}: {int(over.sum())} samples over full scale (peak "
                          f"+{peak:.1f} dBFS) clipped to [-1, 1]; scale the audio down to avoid "
                          "this", RuntimeWarning, stacklevel=2)
        wav = np.clip(wav, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        sf.write(tmp, wav, sample_rate, subtype=subtype)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
