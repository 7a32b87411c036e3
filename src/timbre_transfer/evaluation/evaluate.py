"""``evaluate``: a trained model scored on the held-out clips of its feature store.

For every source domain ``s`` and target domain ``t``, the held-out clips of ``s`` are transferred
to ``t`` and scored:

- ``fad``: FAD between the transfers and the target's training audio (the reference);
- ``conversion_accuracy``: share of the transfers' mel windows the domain classifier calls ``t``;
- content kept from the source: ``loudness_correlation``, ``f0_cents`` (median absolute error on
  frames pitched in both), ``f0_within_50c`` (the share of those frames within 50 cents),
  ``voiced_coverage`` (the share of the source's noted frames the output keeps pitched) and
  ``chroma_similarity``. A transfer plays in the register ``octave`` gives (by default
  ``"auto"``: moved by whole octaves into the target's register), and pitch is scored against
  the source's notes moved by the octaves it applied (``report["octaves"]``, per pair and
  clip). Pitch is read by ``f0_tracker`` (SwiftF0 by default, pYIN as an
  independent check). The source's pitch is its f0 track, or ground truth with ``f0_truth`` (a
  folder of ``<clip stem>.csv`` files, ``time_s,f0_hz``): a domain with truth files is scored
  against them, on its clips' own timeline (silences not trimmed), and a domain with none
  against its track (``report["f0_reference"]`` says which).

Two baselines frame those numbers:

- ``identity``: the untouched source clips scored against the target (the FAD and accuracy a
  model that does nothing gets);
- ``resynthesis``: the target's own held-out clips through the mel front end and the inverter
  (what a perfect generator would get, given the inverter; for ``ddsp``, each domain's head
  rendering its own clips at their own f0 and loudness).

``reconstruction`` scores each domain's own path E -> G_own on its held-out mels (mel L1 and
spectral convergence). With ``twins`` (the paired synthetic domains), ``paired`` gives the
distance of transfers to their ground-truth twins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from timbre_transfer.audio.io import atomic_write_text
from timbre_transfer.evaluation.scoring import (
    PITCH_HOP,
    Judges,
    fad_statistics,
    held_out_clips,
    identity_pitch,
    nanmean,
    nanmedian,
    reconstruction_error,
    score_identity,
    score_resynthesis,
    score_transfer,
)
from timbre_transfer.names import DEFAULT_F0_TRACKER, DEFAULT_OCTAVE

MATRICES = ("fad", "conversion_accuracy", "loudness_correlation", "f0_cents", "f0_within_50c",
            "voiced_coverage", "chroma_similarity")
BASELINE_MATRICES = ("fad", "conversion_accuracy")
SUMMARY_KEYS = ("mean_conversion_accuracy", "mean_fad_transfer", "mean_fad_identity",
                "fad_ratio", "mean_loudness_correlation", "median_f0_cents",
                "mean_f0_within_50c", "mean_voiced_coverage", "mean_chroma_similarity")
REPORT_KEYS = ("checkpoint", "step", "data", "split", "inverter", "embedder", "domains", "clips",
               "octave", "octaves", "f0_tracker", "f0_reference", "classifier", "matrix",
               "baselines", "reconstruction", "summary", "paired")
PITCH_KEYS = ("median_f0_cents", "f0_within_50c", "voiced_coverage", "loudness_correlation")
LOWER_IS_BETTER = {"fad", "f0_cents"}


def evaluate(tt, store, classifier, split: str = "val", inverter: str = "pghi+gla",
             embedder: str = "logmel", fad_weights=None, max_clips: int | None = None,
             reference_clips: int | None = 200, twins: str | Path | None = None,
             f0_truth: str | Path | None = None, progress: bool = True,
             sources: list[str] | None = None, targets: list[str] | None = None,
             judge_pitch_shift: float = 0.0, judge: str = "mel",
             f0_tracker: str = DEFAULT_F0_TRACKER, octave: int | str = DEFAULT_OCTAVE) -> dict:
    """Score ``tt`` (a :class:`~timbre_transfer.inference.transfer.TimbreTransfer`) on the
    ``split`` clips of ``store`` (its own :class:`~timbre_transfer.data.dataset.FeatureStore`).

    Args:
        classifier: a :class:`~timbre_transfer.evaluation.classifier.Classifier` trained on the
            same domains, or a path for
            :func:`~timbre_transfer.evaluation.classifier.classifier_for` (loaded if it
            exists, else trained on ``store`` and saved there, once the inputs have been
            checked).
        max_clips: at most this many clips per source domain (default: all of the split).
        reference_clips: at most this many training clips per domain make the FAD reference,
            spread evenly over the split (None: all), so a large store is not re-read in full.
        twins: folder of paired audio (``<domain>/<name>.wav``); adds the ``paired`` scores.
        f0_truth: folder of ground-truth f0 files ``<clip stem>.csv`` (``time_s,f0_hz``, 0 = no
            note). Every held-out clip of a domain with any file there needs its own (a missing,
            malformed or mismatched file is an error naming it); other domains use the source's
            f0 track.
        sources: score only the transfers from these domains of the store (default: the
            model's), e.g. into a model's newly added domains; the matrices then hold these
            rows. A source need not be a domain of the model (any recording can be
            transferred), and the store need not hold the model's other domains.
        targets: ... and into these domains of the model (default: all); the matrices hold
            these columns, the resynthesis and reconstruction baselines these domains.
        judge_pitch_shift: for a classifier trained here, its training crops' random pitch
            shift in semitones (``ClassifierConfig.pitch_shift``): 12 gives a judge of timbre
            rather than register (a transfer that keeps the source's notes plays the target in
            the source's register). A saved classifier must have been trained with it.
        judge: for a classifier trained here, what it reads (``ClassifierConfig.features``):
            "mel" (a CNN on the mel windows) or "mfcc" (their cepstral statistics: the
            spectral envelope, with little of the register). A saved classifier must match.
        f0_tracker: what reads the pitch of sources and outputs ("swift" or "pyin",
            :func:`~timbre_transfer.audio.f0.track_f0`). A model is conditioned on its own
            tracker's f0, so scoring with the other one is an independent check.
        octave: the register of the transfers (``"auto"`` or whole octaves, as
            :meth:`~timbre_transfer.inference.transfer.TimbreTransfer.transfer_many` takes it).

    Returns:
        the report: a JSON-ready dict with the keys :data:`REPORT_KEYS`. Matrices are
        ``{source: {target: value}}``; a value that cannot be measured (no frame pitched in both
        clips, say) is ``None``.
    """
    from timbre_transfer.audio.f0 import check_tracker, track_f0
    from timbre_transfer.evaluation.classifier import ClassifierConfig, classifier_for
    from timbre_transfer.evaluation.fad import make_embedder
    from timbre_transfer.inference.render import renderer_for

    sr = tt.sample_rate
    sources, targets = list(sources or tt.domains), list(targets or tt.domains)
    for d in targets:  # a source is any domain of the store; a target, one of the model
        tt.check_domain(d)
    domains = list(dict.fromkeys(sources + targets))
    tt.check_store(store, domains)
    check_tracker(f0_tracker)
    renderer = renderer_for(tt, inverter, targets)  # a head for every target, before any work
    embed = make_embedder(embedder, fad_weights)
    held_out = {d: held_out_clips(store, d, split, max_clips, f0_truth, sr)
                for d in dict.fromkeys(sources + targets)}
    source_stats = {d: fad_statistics(embed, held_out[d].audio, sr, f"the {split} clips of {d!r}")
                    for d in sources}
    reference = {d: fad_statistics(embed, (store.clip_audio(d, f) for f in _spread(
        store.clips(d, "train").files, reference_clips)), sr, f"the train clips of {d!r}")
        for d in targets}
    if not hasattr(classifier, "predict_audio"):
        classifier = classifier_for(store, classifier, ClassifierConfig(
            pitch_shift=judge_pitch_shift, features=judge), device=str(tt.device),
            progress=progress)
    if not set(domains) <= set(classifier.domains):
        raise ValueError(f"the classifier knows {classifier.domains}, not all of {domains}")
    judges = Judges(embed, classifier, sr, f0_tracker)

    matrix = {m: {s: {} for s in sources} for m in MATRICES}
    octaves = {s: {} for s in sources}
    identity = {m: {s: {} for s in sources} for m in BASELINE_MATRICES}
    pitch_baselines = {"identity_pitch": {}, "resynthesis_pitch": {}}
    bar = _bar(len(sources) * len(targets), progress)
    for s in sources:
        clips = held_out[s]
        # once per clip, not per target
        tracks = [track_f0(w, sr, PITCH_HOP, f0_tracker) for w in clips.audio]
        pitch_baselines["identity_pitch"][s] = identity_pitch(clips, tracks, sr, f0_tracker)
        source_labels = judges.labels(clips.audio)
        for t in targets:
            bar.set_description(f"evaluate {s} -> {t}")
            scores, octaves[s][t] = score_transfer(tt, judges, clips, tracks, t, reference[t],
                                                   inverter, octave)
            _put(matrix, (s, t), scores)
            _put(identity, (s, t), score_identity(judges, source_stats[s], source_labels, t,
                                                  reference[t]))
            bar.update()
    bar.close()

    resynthesis = {"fad": {}, "conversion_accuracy": {}}
    reconstruction = {"mel_l1": {}, "spectral_convergence_db": {}}
    for d in targets:
        scores, pitch_baselines["resynthesis_pitch"][d] = score_resynthesis(
            tt, judges, renderer, held_out[d], d, reference[d])
        _put(resynthesis, (d,), scores)
        _put(reconstruction, (d,), dict(zip(reconstruction, reconstruction_error(
            tt, held_out[d].audio, d))))

    paired = None
    if twins is not None:
        from dataclasses import asdict

        from timbre_transfer.evaluation.paired import paired_scores

        paired = asdict(paired_scores(tt, twins, store, split, inverter=inverter))

    report = {
        "checkpoint": None,  # filled in by the caller that knows the path
        "step": tt.step,
        "data": str(store.root),
        "split": split,
        "inverter": inverter,
        "embedder": embedder,
        "domains": list(domains),
        "clips": {d: len(clips.audio) for d, clips in held_out.items()},
        "octave": octave,
        "octaves": octaves,
        "f0_tracker": f0_tracker,
        "f0_reference": {d: f"source {f0_tracker}" if clips.truth is None
                         else f"truth: {f0_truth}" for d, clips in held_out.items()},
        "classifier": {"heldout_accuracy": classifier.heldout_accuracy,
                       "heldout_per_domain": classifier.heldout_per_domain,
                       "heldout_windows": classifier.heldout_windows,
                       "window_frames": classifier.config.crop_frames,
                       "pitch_shift": classifier.config.pitch_shift,
                       "features": classifier.config.features},
        "matrix": matrix,
        "baselines": {"identity": identity, "resynthesis": resynthesis,
                      **{k: _mean_over_domains(v) for k, v in pitch_baselines.items()}},
        "reconstruction": reconstruction,
        "summary": summarize(matrix, identity),
        "paired": paired,
    }
    return _json_ready(report)


def summarize(matrix: dict, identity: dict) -> dict:
    """Means over the pairs with source != target (the actual conversions)."""
    def off(m):
        return [v for s, row in m.items() for t, v in row.items() if s != t]

    fad_transfer = nanmean(off(matrix["fad"]))
    fad_identity = nanmean(off(identity["fad"]))
    f0 = [v for v in off(matrix["f0_cents"]) if v is not None and not math.isnan(v)]
    return {
        "mean_conversion_accuracy": nanmean(off(matrix["conversion_accuracy"])),
        "mean_fad_transfer": fad_transfer,
        "mean_fad_identity": fad_identity,
        "fad_ratio": fad_transfer / fad_identity if fad_identity else float("nan"),
        "mean_loudness_correlation": nanmean(off(matrix["loudness_correlation"])),
        "median_f0_cents": float(np.median(f0)) if f0 else float("nan"),
        "mean_f0_within_50c": nanmean(off(matrix["f0_within_50c"])),
        "mean_voiced_coverage": nanmean(off(matrix["voiced_coverage"])),
        "mean_chroma_similarity": nanmean(off(matrix["chroma_similarity"])),
    }


def _put(tables: dict, where: tuple, scores: dict) -> None:
    """``tables[metric][*where] = value`` for every ``metric: value`` of ``scores``."""
    for metric, value in scores.items():
        cell = tables[metric]
        for key in where[:-1]:
            cell = cell[key]
        cell[where[-1]] = value


def _mean_over_domains(per_domain: dict) -> dict:
    """``{domain: {key: value}}`` -> ``{key: mean over domains, "per_domain": per_domain}``."""
    keys = PITCH_KEYS
    out = {k: (nanmedian if k == "median_f0_cents" else nanmean)(
        v[k] for v in per_domain.values()) for k in keys}
    out["per_domain"] = per_domain
    return out


def _spread(items: list, n: int | None) -> list:
    """At most ``n`` items, evenly spaced over ``items`` (all of them when n is None)."""
    if n is None or len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n)]


def _json_ready(value):
    """NaN and inf become None (JSON has no NaN); numpy scalars become floats."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", disable=not enabled, leave=False)


# ---- writing the report --------------------------------------------------------------------------


def write_report(report: dict, path: str | Path) -> dict[str, Path]:
    """Write ``report`` as JSON at ``path``, with ``<stem>.md`` (a Markdown summary) and one
    ``<stem>_<metric>.png`` heatmap per matrix beside it. Returns every path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = {"json": atomic_write_text(path, json.dumps(report, indent=2) + "\n"),
               "markdown": atomic_write_text(path.with_suffix(".md"), markdown_summary(report))}
    for name, fig in heatmaps(report).items():
        target = path.with_name(f"{path.stem}_{name}.png")
        fig.savefig(target, dpi=100)
        written[name] = target
    return written


def markdown_summary(report: dict) -> str:
    s = report["summary"]
    lines = [
        f"# Evaluation of {report['checkpoint']}",
        "",
        f"Step {report['step']}; {report['split']} clips of {report['data']} "
        f"({', '.join(f'{d}: {n}' for d, n in report['clips'].items())}); inverter "
        f"{report['inverter']}; FAD embedder {report['embedder']}"
        + (" (built-in: not comparable with published FAD)"
           if report["embedder"] == "logmel" else "")
        + ".",
        "",
        f"Register: octave {report.get('octave', 0)}; pitch scored against the source moved by "
        "the octaves applied (table below).",
        "",
        f"Pitch read by {report.get('f0_tracker', 'pyin')}; reference: "
        + "; ".join(f"{d}: {r}" for d, r in report["f0_reference"].items()) + ".",
        "",
        "Domain classifier: held-out accuracy "
        f"{format_value(report['classifier']['heldout_accuracy'])} "
        f"over {report['classifier']['heldout_windows']} windows of "
        f"{report['classifier']['window_frames']} frames.",
        "",
        "## Summary (source != target)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {format_value(s[k])} |" for k in SUMMARY_KEYS]
    if report.get("paired"):
        p = report["paired"]
        lines += [f"| twin distance: transfer / identity | {format_value(p['transfer'])} / "
                  f"{format_value(p['identity'])} ({p['pairs']} pairs) |"]
    sections = [(f"{m} (rows: source, columns: target)", report["matrix"][m]) for m in MATRICES]
    sections += [(f"baseline identity: {m}", report["baselines"]["identity"][m])
                 for m in BASELINE_MATRICES]
    for title, m in sections:
        lines += ["", f"## {title}", "", _table(m, report["domains"])]
    if report.get("octaves"):
        applied = {s: {t: _octave_list(v) for t, v in row.items()}
                   for s, row in report["octaves"].items()}
        lines += ["", "## octaves applied (each clip's, where they differ)", "",
                  _table(applied, report["domains"], str)]
    lines += ["", "## Per domain", "", "| domain | resynthesis FAD | resynthesis accuracy | "
              "recon mel L1 | recon SC dB | classifier held-out accuracy |",
              "|---|---|---|---|---|---|"]
    for d in (d for d in report["domains"] if d in report["reconstruction"]["mel_l1"]):
        lines.append(
            f"| {d} | {format_value(report['baselines']['resynthesis']['fad'][d])} | "
            f"{format_value(report['baselines']['resynthesis']['conversion_accuracy'][d])} | "
            f"{format_value(report['reconstruction']['mel_l1'][d])} | "
            f"{format_value(report['reconstruction']['spectral_convergence_db'][d])} | "
            f"{format_value(report['classifier']['heldout_per_domain'].get(d))} |")
    return "\n".join(lines) + "\n"


def heatmaps(report: dict) -> dict:
    """One matplotlib Figure per matrix (transfer matrices and the identity FAD)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    panels = {m: report["matrix"][m] for m in MATRICES}
    panels["fad_identity"] = report["baselines"]["identity"]["fad"]
    figures = {}
    for name, m in panels.items():
        # the rows and columns scored (evaluate's sources and targets)
        sources = [d for d in report["domains"] if d in m]
        targets = [d for d in report["domains"] if any(d in row for row in m.values())]
        values = np.array([[np.nan if m[s].get(t) is None else m[s][t] for t in targets]
                           for s in sources], dtype=float)
        fig = Figure(figsize=(1.0 + 0.9 * len(targets), 0.8 + 0.8 * len(sources)))
        ax = fig.subplots()
        cmap = "viridis_r" if name.startswith("fad") or name in LOWER_IS_BETTER else "viridis"
        image = ax.imshow(values, cmap=cmap)
        for i in range(len(sources)):
            for j in range(len(targets)):
                if not np.isnan(values[i, j]):
                    shade = image.cmap(image.norm(values[i, j]))  # dark text on light cells
                    light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
                    ax.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=7,
                            color="black" if light else "white")
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(sources)), sources, fontsize=7)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
        fig.tight_layout()
        figures[name] = fig
    return figures


def log_to_tensorboard(report: dict, run_dir: str | Path) -> Path:
    """Log the summary, every matrix cell and the heatmaps under ``eval/`` in
    ``run_dir/tensorboard`` (where ``train`` logs), at the checkpoint's step."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(run_dir) / "tensorboard"
    step = report["step"] or 0
    with SummaryWriter(folder) as writer:
        for key, value in report["summary"].items():
            if value is not None:
                writer.add_scalar(f"eval/{key}", value, step)
        for name, m in report["matrix"].items():
            for s, row in m.items():
                for t, value in row.items():
                    if value is not None:
                        writer.add_scalar(f"eval/{name}/{s}_to_{t}", value, step)
        for name, fig in heatmaps(report).items():
            writer.add_figure(f"eval/{name}", fig, step)
    return folder


def _table(m: dict, domains: list[str], fmt=None) -> str:
    """A source x target Markdown table of ``m``; rows and columns it lacks are left out."""
    fmt = fmt or format_value
    columns = [t for t in domains if any(t in row for row in m.values())]
    rows = ["| source \\ target | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|"]
    rows += [f"| {s} | " + " | ".join(fmt(m[s].get(t)) for t in columns) + " |"
             for s in domains if s in m]
    return "\n".join(rows)


def _octave_list(octaves: list[int]) -> str:
    """``+1`` when every clip moved by one octave, ``0/+1`` when they differ."""
    return "/".join(f"{n:+d}" if n else "0" for n in sorted(set(octaves)))


def format_value(value) -> str:
    """A report number for people: 3 decimals (1 beyond 100), ``n/a`` for None."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"

