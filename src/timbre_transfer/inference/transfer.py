"""``TimbreTransfer``: a trained checkpoint applied to audio of any length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class TimbreTransfer:
    """Turn audio into any trained domain.

    Example:
        >>> tt = TimbreTransfer.from_checkpoint("runs/demo/checkpoints/latest.pt")
        >>> out = tt.transfer(wav, sample_rate=44100, to="violin")   # (T',) at tt.sample_rate

    The nets are fully convolutional, so the whole spectrogram goes through at once (no sliding
    windows). The input is loudness-normalised like the training data, and its own loudness is
    restored on the output.
    """

    def __init__(self, model, transform, domains: list[str], target_dbfs: float = -20.0,
                 device: str | torch.device = "cpu", step: int | None = None,
                 centroids: dict[str, torch.Tensor] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.transform = transform.to(self.device)
        self.domains = list(domains)
        self.target_dbfs = target_dbfs
        self.step = step  # training steps behind the weights, when the checkpoint says
        # each domain's running mean latent ``(C,)`` (channel means), when training kept them
        self.centroids = centroids or {}
        self.ddsp = {}  # domain -> DDSPHead, see attach_ddsp

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None):
        """Rebuild model and transform from a checkpoint alone (``weights_only=True``, strict)."""
        from timbre_transfer.audio.transform import AudioTransform
        from timbre_transfer.config import build
        from timbre_transfer.models.multidomain import TimbreModel
        from timbre_transfer.training.checkpoint import load_state_strict, read_checkpoint
        from timbre_transfer.training.config import RunConfig

        blob = read_checkpoint(path)
        try:
            config = build(RunConfig, blob["config"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: its config does not fit this package version ({exc})") from exc
        model = TimbreModel(config.model, blob["domains"])
        load_state_strict(model, blob["model"], f"{path} (model)")
        transform = AudioTransform.from_dict(blob["transform"])
        target = blob.get("prepare", {}).get("target_dbfs", -20.0)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        training = blob.get("training", {})
        saved = training.get("centroids", {})
        centroids = {}
        if "centroids" in saved and saved["centroids"].numel():
            centroids = {d: saved["centroids"][i] for i, d in enumerate(blob["domains"])
                         if bool(saved["initialized"][i])}
        step = int(training["step"]) if "step" in training else None
        tt = cls(model, transform, blob["domains"], target, device, step, centroids)
        for i, head in enumerate(blob.get("ddsp_heads", [])):  # bundled by `bundle`
            tt.attach_ddsp_payload(head, f"{path} (DDSP head {i})")
        return tt

    @property
    def sample_rate(self) -> int:
        return self.transform.params.sample_rate

    def check_domain(self, domain: str) -> None:
        if domain not in self.domains:
            raise KeyError(f"unknown domain {domain!r}; this model knows {self.domains}")

    def attach_ddsp(self, path: str | Path) -> list[str]:
        """Load a head trained by ``train-ddsp`` for the domains it was trained on; returns them.

        Raises:
            ValueError: the head reads another mel (transform or normalisation) than this model
                writes.
        """
        from timbre_transfer.training.checkpoint import read_checkpoint

        return self.attach_ddsp_payload(read_checkpoint(path, map_location=self.device), str(path))

    def attach_ddsp_payload(self, blob: dict, where: str) -> list[str]:
        """:meth:`attach_ddsp` for a head checkpoint already read; ``where`` names it in errors."""
        from timbre_transfer.training.ddsp_trainer import head_from_payload

        head, domains, transform = head_from_payload(blob, where, self.device)
        if transform != self.transform.to_dict():
            raise ValueError(f"{where} was trained on mels of another transform or normalisation "
                             "than this model's; train the head on the model's feature store")
        for domain in domains:
            self.check_domain(domain)
            self.ddsp[domain] = head
        return domains

    def check_store(self, store) -> None:
        """Raise ValueError unless ``store`` (a FeatureStore) was analysed with this model's
        transform (parameters and normalisation) and holds every domain of the model."""
        if store.transform.to_dict() != self.transform.to_dict():
            raise ValueError(f"{store.root} was prepared with another transform or normalisation "
                             "than this model was trained with; evaluate on the model's own store")
        missing = [d for d in self.domains if d not in store.domains]
        if missing:
            raise ValueError(f"{store.root} lacks the model's domains {missing}")

    @torch.no_grad()
    def transfer(self, wav, sample_rate: int, to: str, inverter: str = "pghi+gla",
                 pitch_shift: float = 0.0, loudness_shift: float = 0.0) -> np.ndarray:
        """``(T,)`` audio at ``sample_rate`` -> ``(T',)`` float32 in domain ``to``, at
        :attr:`sample_rate`, with the input's duration and loudness.

        ``inverter="ddsp"`` renders the generated mel with the domain's DDSP head (see
        :meth:`attach_ddsp`), steered by the source's f0 and loudness, optionally shifted by
        ``pitch_shift`` semitones and ``loudness_shift`` dB (DDSP only).
        """
        self.check_domain(to)
        if inverter == "ddsp" and to not in self.ddsp:
            raise ValueError(f"no DDSP head for {to!r} (heads: {sorted(self.ddsp) or 'none'}); "
                             "train one with `timbre-transfer train-ddsp` and pass --ddsp PATH")
        if inverter != "ddsp" and (pitch_shift or loudness_shift):
            raise ValueError("pitch and loudness shifts need the DDSP head (inverter 'ddsp')")
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"expected mono audio of shape (T,), got {wav.shape}")
        if sample_rate != self.sample_rate:
            import librosa

            wav = librosa.resample(wav, orig_sr=sample_rate, target_sr=self.sample_rate,
                                   res_type="soxr_hq").astype(np.float32)
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if rms < 1e-8:  # silence in, silence out
            return np.zeros_like(wav)
        gain = 10 ** (self.target_dbfs / 20) / rms
        gain = min(gain, 0.99 / float(np.abs(wav).max()))
        spec = self.transform(torch.from_numpy(wav * gain).to(self.device))
        out_spec = self.model.translate(spec[None, None], to)[0, 0].clamp(0, 1)
        if inverter == "ddsp":
            from timbre_transfer.models.ddsp_head import extract_controls

            head = self.ddsp[to]
            controls = extract_controls(wav * gain, self.sample_rate, head.hop_length, head.config)
            out = head.render(out_spec, controls, len(wav), pitch_shift, loudness_shift)
            return (out / gain).astype(np.float32)
        out = self.transform.invert(out_spec, method=inverter, length=len(wav))
        return (out.cpu().numpy() / gain).astype(np.float32)

    def transfer_file(self, path: str | Path, to: str, out_dir: str | Path,
                      inverter: str = "pghi+gla", pitch_shift: float = 0.0,
                      loudness_shift: float = 0.0) -> Path:
        """Transfer one file; writes ``out_dir/<stem>_to_<domain>.wav`` and returns its path."""
        from timbre_transfer.audio.io import load_audio, save_audio

        path = Path(path)
        out = self.transfer(load_audio(path, self.sample_rate), self.sample_rate, to, inverter,
                            pitch_shift, loudness_shift)
        return save_audio(Path(out_dir) / f"{path.stem}_to_{to}.wav", out, self.sample_rate)
