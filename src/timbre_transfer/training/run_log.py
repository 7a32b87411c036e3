"""What a run writes beside its checkpoints: its resolved config, and TensorBoard scalars and
samples (mel images and audio of its translations, every ``train.sample_every`` steps)."""

from __future__ import annotations

from pathlib import Path

import torch


class RunLog:
    """A run folder's TensorBoard log (``run_dir/tensorboard``), opened on first use; a log that
    is not ``enabled`` (ranks other than 0 under torchrun) writes nothing."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self._writer = None

    @property
    def writer(self):
        """The ``SummaryWriter``, or None when not enabled."""
        if self._writer is None and self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._writer

    def scalars(self, logged: dict[str, float], step: int) -> None:
        """Every value of ``logged`` but its ``step`` entry, at ``step``."""
        if self.writer is None:
            return
        for key, value in logged.items():
            if key != "step":
                self.writer.add_scalar(key, value, step)

    def samples(self, model, x: torch.Tensor, templates: torch.Tensor | None,
                domains: list[str], transform, step: int) -> None:
        """:func:`log_samples` into this log, when enabled."""
        if self.writer is not None:
            log_samples(self.writer, model, x, templates, domains, transform, step)

    def write_config(self, resolved: dict) -> None:
        """``run_dir/config.yaml``: the run's resolved config (written atomically)."""
        import yaml

        from timbre_transfer.audio.io import atomic_write_text

        if self.enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml",
                              yaml.safe_dump(resolved, sort_keys=False))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()


@torch.no_grad()
def log_samples(writer, model, x: torch.Tensor, templates: torch.Tensor | None,
                domains: list[str], transform, step: int) -> None:
    """Mel plots of source / reconstruction / every translation, and the translations' audio
    (PGHI), for the first item of a prepared batch ``x (B, D, 1, F, T)`` (``templates``: its
    harmonic templates, or None). Leaves ``model`` in training mode."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    model.eval()
    x = x[0]  # (D, 1, F, T)
    notes = [None] * len(x) if templates is None else templates[0, :, None]
    n = len(domains)
    fig = Figure(figsize=(2.2 * (n + 1), 2 * n))
    axes = fig.subplots(n, n + 1, squeeze=False)
    image = dict(origin="lower", aspect="auto", vmin=0, vmax=1)
    for d, dom in enumerate(domains):
        axes[d][0].imshow(x[d, 0].float().cpu().numpy(), **image)
        axes[d][0].set_title(f"{dom} (source)", fontsize=7)
        for t, target in enumerate(domains):
            out = model.translate(x[d:d + 1], target, pitch=notes[d])[0, 0].float().cpu()
            axes[d][t + 1].imshow(out.numpy(), **image)
            axes[d][t + 1].set_title(("recon " if t == d else "-> ") + target, fontsize=7)
            if d == 0:
                wav = transform.invert(out.unsqueeze(0), method="pghi")[0]
                writer.add_audio(f"audio/{dom}_to_{target}", wav.clamp(-1, 1), step,
                                 sample_rate=transform.params.sample_rate)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    writer.add_figure("mel/source_recon_translations", fig, step)
    model.train()
