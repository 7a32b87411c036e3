"""The listening page: a self-contained static site to hear and see what a model does.

``timbre-transfer report CKPT --inputs A.wav B.wav --out site/`` writes ``site/index.html`` with
relative links only (it works offline and from ``file://``, no CDN), and beside it the audio
(wav, or ogg when compressed) and PNG images it shows:

- each input next to its transfer to every domain, each with a player and its mel;
- the inverters side by side on one transfer (Griffin-Lim, PGHI, PGHI+GLA, and DDSP where the
  model has a head for that domain);
- a strip per timbre knob (:mod:`timbre_transfer.audio.timbre_controls`) on that transfer:
  five settings, each with its player and the descriptor measured on it (the DDSP head's knobs
  where the model has a head for that domain, the mel inverters' otherwise);
- a latent interpolation strip between the first two inputs, with the audio of every step;
- the evaluation heatmaps, when an ``evaluate`` report is given.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from timbre_transfer.names import DDSP, DEFAULT_OCTAVE, INVERTERS, KNOBS, format_octaves

AUDIO_FORMATS = {"wav": ("PCM_16", "audio/wav"), "ogg": ("VORBIS", "audio/ogg")}


def write_listening_page(tt, inputs: list[str | Path], out_dir: str | Path,
                         checkpoint: str = "", evaluation: str | Path | None = None,
                         inverter: str = "pghi+gla", audio_format: str = "wav",
                         interpolation_steps: int = 6, octave: int | str = DEFAULT_OCTAVE
                         ) -> Path:
    """Write the site for ``tt`` (a :class:`~timbre_transfer.inference.transfer.TimbreTransfer`)
    and return the path of its ``index.html``. Every transfer plays in the register ``octave``
    gives (:meth:`~timbre_transfer.inference.transfer.TimbreTransfer.transfer_many`); each
    player's caption says the octaves applied.

    Raises:
        FileNotFoundError: an input or the evaluation report does not exist.
        ValueError: no inputs, or an unknown audio format.
    """
    from timbre_transfer import __version__
    from timbre_transfer.audio.io import atomic_write_text, load_audio
    from timbre_transfer.inference.latent import interpolate, save_strip

    if not inputs:
        raise ValueError("give at least one input audio file")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {sorted(AUDIO_FORMATS)}, "
                         f"got {audio_format!r}")
    if evaluation is not None and not Path(evaluation).is_file():
        raise FileNotFoundError(f"{evaluation}: no such evaluation report")
    out = Path(out_dir)
    (out / "media").mkdir(parents=True, exist_ok=True)
    sr = tt.sample_rate
    page = _Page(out, tt, audio_format)

    sources = [(Path(p), load_audio(p, sr)) for p in inputs]
    sections = []
    for path, wav in sources:
        stem = _slug(path.stem)
        cells = [page.clip(f"{stem}_original", wav, "original")]
        outs = tt.transfer_many(wav, sr, tt.domains, inverter=inverter, octave=octave)
        octaves = tt.applied_octaves(wav, sr, tt.domains, octave)
        for domain in tt.domains:
            cells.append(page.clip(f"{stem}_to_{_slug(domain)}", outs[domain],
                                   f"to {domain} ({format_octaves(octaves[domain])})"))
        sections.append(f"<h3>{html.escape(path.name)}</h3>\n"
                        f"<div class=\"row\">{''.join(cells)}</div>")

    # the inverters on one transfer: the first input into the first other domain
    path, wav = sources[0]
    target = tt.domains[-1] if len(tt.domains) > 1 else tt.domains[0]
    # the phase reconstructions in alphabetical order, then the head where there is one
    methods = sorted(INVERTERS) + ([DDSP] if target in tt.ddsp else [])
    cells = [page.clip(f"inverter_{m.replace('+', '_')}",
                       tt.transfer(wav, sr, to=target, inverter=m, octave=octave), m)
             for m in methods]
    inverters = (f"<p>{html.escape(path.name)} to {html.escape(target)}, the same generated mel "
                 f"turned into audio {len(methods)} ways.</p>\n"
                 f"<div class=\"row\">{''.join(cells)}</div>")

    controls = _controls_section(page, tt, wav, path.name, target,
                                 DDSP if target in tt.ddsp else inverter, octave)

    if len(sources) >= 2:
        (a_path, a), (b_path, b) = sources[0], sources[1]
        wavs, mels = interpolate(tt, a, b, to=target, steps=interpolation_steps, mode="slerp",
                                 inverter=inverter)
        strip = save_strip(mels, out / "media" / "interpolation.png",
                           [f"t={t:.2f}" for t in np.linspace(0, 1, len(mels))])
        players = "".join(page.player(f"interpolation_{i:02d}", w, f"t={t:.2f}")
                          for i, (w, t) in enumerate(zip(wavs, np.linspace(0, 1, len(wavs)))))
        latent = (f"<p>slerp from {html.escape(a_path.name)} to {html.escape(b_path.name)}, "
                  f"decoded as {html.escape(target)}.</p>\n"
                  f"<img src=\"media/{strip.name}\" alt=\"interpolation strip\">\n"
                  f"<div class=\"row\">{players}</div>")
    else:
        latent = "<p>Give two inputs for an interpolation strip.</p>"

    evaluation_html = "<p>No evaluation report given (<code>--evaluation report.json</code>).</p>"
    if evaluation is not None:
        evaluation = Path(evaluation)
        images = sorted(evaluation.parent.glob(f"{evaluation.stem}_*.png"))
        summary = json.loads(evaluation.read_text()).get("summary", {})
        for image in images:
            shutil.copyfile(image, out / "media" / image.name)
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                       for k, v in summary.items())
        evaluation_html = (f"<table>{rows}</table>\n<div class=\"row\">"
                           + "".join(f"<img src=\"media/{html.escape(i.name)}\" "
                                     f"alt=\"{html.escape(i.stem)}\">" for i in images)
                           + "</div>")

    step = "unknown" if tt.step is None else str(tt.step)
    register = ("octave auto: each transfer moved by whole octaves into its target's register"
                if octave == "auto" else f"every transfer moved by {format_octaves(octave)}")
    body = f"""<h1>timbre_transfer listening page</h1>
<p>Model <code>{html.escape(checkpoint)}</code>: domains {html.escape(', '.join(tt.domains))};
{step} training steps; inverter {html.escape(inverter)}; timbre_transfer {__version__};
{html.escape(register)}.</p>
<h2>Transfers</h2>
{''.join(sections)}
<h2>Inverters side by side</h2>
{inverters}
<h2>Timbre controls</h2>
{controls}
<h2>Latent interpolation</h2>
{latent}
<h2>Evaluation</h2>
{evaluation_html}
"""
    return atomic_write_text(out / "index.html", _HTML.format(body=body))


CONTROL_SETTINGS = 5


def _controls_section(page, tt, wav: np.ndarray, name: str, target: str, inverter: str,
                      octave: int | str) -> str:
    """A strip per timbre knob that ``inverter`` supports: the same transfer at
    :data:`CONTROL_SETTINGS` settings over the knob's range, each with its player and the
    descriptor measured on it (harmonic descriptors at the neutral output's f0, tracked by the
    model's tracker)."""
    from timbre_transfer.audio.descriptors import DESCRIPTORS, describe
    from timbre_transfer.audio.f0 import track_f0
    from timbre_transfer.inference.render import renderer_for

    knobs = renderer_for(tt, inverter, [target]).knobs
    sr = tt.sample_rate
    neutral = tt.transfer(wav, sr, to=target, inverter=inverter, octave=octave)
    f0 = track_f0(neutral, sr, tracker=tt.f0_tracker).f0
    strips = []
    for knob_name, knob in KNOBS.items():
        if knob_name not in knobs:
            continue
        cells = []
        for value in np.linspace(knob.low, knob.high, CONTROL_SETTINGS):
            out = neutral if value == 0 else tt.transfer(wav, sr, to=target, inverter=inverter,
                                                         octave=octave,
                                                         controls={knob_name: float(value)})
            measured = float(np.nanmedian(getattr(describe(out, sr, f0_hz=f0), knob_name)))
            unit = DESCRIPTORS[knob_name][0]
            cells.append(page.player(f"control_{knob_name}_{value:+.2f}".replace(".", "p"), out,
                                     f"{knob_name} {value:+.2f} {knob.unit}").replace(
                "</figure>", f"<figcaption>measured {knob_name}: {measured:.2f} {unit}"
                             "</figcaption></figure>"))
        strips.append(f"<h3>{html.escape(knob_name)} ({html.escape(knob.help)})</h3>\n"
                      f"<div class=\"row\">{''.join(cells)}</div>")
    return (f"<p>{html.escape(name)} to {html.escape(target)} through {html.escape(inverter)}, "
            "each knob at five settings; the descriptor is measured on the audio below each "
            "player.</p>\n" + "".join(strips))


class _Page:
    """Writes the media of one page and returns the HTML that shows them."""

    def __init__(self, out: Path, tt, audio_format: str):
        self.out, self.tt = out, tt
        self.subtype, self.mime = AUDIO_FORMATS[audio_format]
        self.suffix = f".{audio_format}"

    def player(self, name: str, wav: np.ndarray, caption: str) -> str:
        from timbre_transfer.audio.io import save_audio

        path = save_audio(self.out / "media" / f"{name}{self.suffix}", wav, self.tt.sample_rate,
                          subtype=self.subtype)
        return (f"<figure><figcaption>{html.escape(caption)}</figcaption>"
                f"<audio controls preload=\"metadata\"><source src=\"media/{path.name}\" "
                f"type=\"{self.mime}\"></audio></figure>")

    def clip(self, name: str, wav: np.ndarray, caption: str) -> str:
        """A player and the clip's mel image."""
        with torch.no_grad():
            samples = torch.from_numpy(np.asarray(wav, np.float32))
            mel = self.tt.transform(samples.to(self.tt.device))
        image = mel_png(mel.cpu().numpy(), self.out / "media" / f"{name}.png", self.tt)
        player = self.player(name, wav, caption)
        return player.replace("</figure>", f"<img src=\"media/{image.name}\" alt=\"mel of "
                              f"{html.escape(caption)}\"></figure>")


def mel_png(mel: np.ndarray, path: Path, tt) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    p = tt.transform.params
    fig = Figure(figsize=(3.2, 2.0))
    ax = fig.subplots()
    # real audio fills little of the normalised [0, 1] range: scale each image to its own
    # 99.5th percentile so quiet partials stay visible
    ax.imshow(mel, origin="lower", aspect="auto", vmin=0,
              vmax=max(float(np.percentile(mel, 99.5)), 1e-3),
              extent=(0, mel.shape[-1] * p.hop_length / p.sample_rate, 0, mel.shape[0]))
    ax.set_xlabel("s", fontsize=7)
    ax.set_ylabel("mel band", fontsize=7)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _fmt(value) -> str:
    from timbre_transfer.evaluation.evaluate import format_value

    return html.escape(format_value(value))


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>timbre_transfer listening page</title>
<link rel="icon" href="data:,">  <!-- no favicon request (a 404 in the console) -->
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 80em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }}
figure img {{ display: block; width: 288px; }}
figcaption {{ font-size: 0.9em; margin-bottom: 0.2em; }}
audio {{ width: 288px; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
