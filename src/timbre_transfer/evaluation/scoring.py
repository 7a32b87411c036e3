"""What :func:`~timbre_transfer.evaluation.evaluate.evaluate` scores, one piece at a time.

- :func:`score_transfer`: one (source, target) pair, a cell of every matrix;
- :func:`score_identity` and :func:`identity_pitch`: the source clips left untouched;
- :func:`score_resynthesis`: a domain's own clips through the front end and the renderer;
- :func:`reconstruction_error`: a domain's own path E -> G_own on its mels.

Each takes the held-out clips it scores (:class:`HeldOut`) and the :class:`Judges` that score
them, and returns plain numbers keyed as the report keys them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from timbre_transfer.names import DEFAULT_F0_TRACKER, DEFAULT_OCTAVE

PITCH_HOP = 256  # the content metrics' hop (16 ms at 16 kHz)


@dataclass
class HeldOut:
    """One domain's held-out clips: ``audio``, ``(T,)`` each at the model's rate, and
    ``truth``, their ground-truth f0 tracks at :data:`PITCH_HOP` (None: scored against the
    source's own f0 track)."""

    audio: list[np.ndarray]
    truth: list[np.ndarray] | None = None

    @property
    def references(self) -> list:
        """Each clip's ground-truth f0, or None where the source's own f0 track is the
        reference."""
        return self.truth if self.truth is not None else [None] * len(self.audio)


def held_out_clips(store, domain: str, split: str, max_clips: int | None,
                   f0_truth: str | Path | None, sample_rate: int) -> HeldOut:
    """The first ``max_clips`` ``split`` clips of ``domain`` in ``store``, with their truth
    files ``f0_truth/<clip stem>.csv`` when the domain has any (then on the clips' own
    timeline: silences not trimmed).

    Raises:
        ValueError: no clip, or a truth file missing, malformed or of another length.
    """
    from timbre_transfer.evaluation.content import load_f0_truth

    files = store.clips(domain, split).files[:max_clips]
    if not files:
        raise ValueError(f"{store.root}: domain {domain!r} has no {split} clips to evaluate")
    paths = {f: Path(f0_truth) / f"{Path(f).stem}.csv" for f in files} if f0_truth else {}
    with_truth = any(p.is_file() for p in paths.values())
    audio = [store.clip_audio(domain, f, trim=not with_truth) for f in files]
    if not with_truth:
        return HeldOut(audio)
    # read up front: a bad file fails before hours of transfers
    return HeldOut(audio, [load_f0_truth(paths[f], sample_rate, PITCH_HOP, len(w))
                           for f, w in zip(files, audio)])


def fad_statistics(embed: Callable, wavs, sample_rate: int, what: str = "audio"):
    """FAD statistics of ``wavs``; clips shorter than one 0.96 s patch are left out (short
    notes keep their place in every other score). ``what`` names them in errors."""
    from timbre_transfer.evaluation.fad import embedding_statistics
    from timbre_transfer.evaluation.vggish import MIN_SECONDS

    long_enough = (w for w in wavs if len(w) >= MIN_SECONDS * sample_rate)
    try:
        return embedding_statistics(embed(w, sample_rate) for w in long_enough)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc} (FAD embeds 0.96 s patches; give the domain more "
                         "or longer clips)") from exc


@dataclass(frozen=True)
class Judges:
    """What scores a set of clips as a domain: the FAD embedder and the conversion judge (a
    :class:`~timbre_transfer.evaluation.classifier.Classifier`), at ``sample_rate``, and the
    f0 tracker that reads the pitch of sources and outputs (``"swift"`` or ``"pyin"``)."""

    embed: Callable
    classifier: object
    sample_rate: int
    f0_tracker: str = DEFAULT_F0_TRACKER

    def fad(self, reference, wavs) -> float:
        """FAD of ``wavs`` against ``reference`` statistics."""
        from timbre_transfer.evaluation.fad import fad

        return fad(reference, fad_statistics(self.embed, wavs, self.sample_rate))

    def labels(self, wavs) -> torch.Tensor:
        """``(N,)``: the judge's label of every window of the clips."""
        return torch.cat([self.classifier.predict_audio(w) for w in wavs])

    def accuracy(self, labels: torch.Tensor, domain: str) -> float:
        """The share of ``labels`` that name ``domain``."""
        return float((labels == self.classifier.domains.index(domain)).float().mean())


def score_transfer(tt, judges: Judges, clips: HeldOut, tracks: list, target: str, reference,
                   inverter: str, octave: int | str = DEFAULT_OCTAVE
                   ) -> tuple[dict[str, float], list[int]]:
    """One cell of every matrix: ``clips`` (a source's held-out clips, with their f0
    ``tracks`` by ``judges.f0_tracker``) transferred by ``tt`` to ``target`` through
    ``inverter`` in the register ``octave`` gives, scored against ``reference`` (the target's
    training FAD statistics) and the source's notes moved by the octaves each clip's transfer
    applied. Returns the scores and those octaves, one per clip."""
    from timbre_transfer.evaluation.content import content_scores

    sr = tt.sample_rate
    outs = [tt.transfer(w, sr, to=target, inverter=inverter, octave=octave) for w in clips.audio]
    octaves = [tt.applied_octaves(w, sr, [target], octave)[target] for w in clips.audio]
    scores = {"fad": judges.fad(reference, outs),
              "conversion_accuracy": judges.accuracy(judges.labels(outs), target)}
    content = [content_scores(w, o, sr, source_track=k, reference_f0=r, tracker=judges.f0_tracker,
                              octaves=n)
               for w, o, k, r, n in zip(clips.audio, outs, tracks, clips.references, octaves)]
    scores["loudness_correlation"] = nanmean(c.loudness_correlation for c in content)
    scores["f0_cents"] = nanmean(c.f0_median_cents for c in content)
    scores["f0_within_50c"] = nanmean(c.f0_within_50c for c in content)
    scores["voiced_coverage"] = nanmean(c.voiced_coverage for c in content)
    scores["chroma_similarity"] = nanmean(c.chroma_similarity for c in content)
    return scores, octaves


def score_identity(judges: Judges, source_statistics, source_labels: torch.Tensor,
                   target: str, reference) -> dict[str, float]:
    """What doing nothing scores against ``target``: the source's FAD statistics and window
    labels (computed once per source) against the target's."""
    from timbre_transfer.evaluation.fad import fad

    return {"fad": fad(reference, source_statistics),
            "conversion_accuracy": judges.accuracy(source_labels, target)}


def identity_pitch(clips: HeldOut, tracks: list, sample_rate: int,
                   tracker: str = DEFAULT_F0_TRACKER) -> dict[str, float]:
    """What doing nothing keeps: the source scored against its reference (perfect against its
    own ``tracks``; against truth, the tracker's own error)."""
    from timbre_transfer.evaluation.content import content_scores

    return pitch_means([content_scores(w, w, sample_rate, source_track=k, reference_f0=r,
                                       tracker=tracker)
                        for w, k, r in zip(clips.audio, tracks, clips.references)])


def score_resynthesis(tt, judges: Judges, renderer, clips: HeldOut, domain: str, reference
                      ) -> tuple[dict[str, float], dict[str, float]]:
    """``domain``'s own clips through the front end and ``renderer`` (a perfect generator,
    given the renderer): their ``fad`` and ``conversion_accuracy``, and :func:`pitch_means`
    against the clips' own notes."""
    from timbre_transfer.evaluation.content import content_scores

    resynth = [resynthesize(tt, renderer, w, domain) for w in clips.audio]
    pitch = pitch_means([content_scores(w, o, tt.sample_rate, reference_f0=r,
                                        tracker=judges.f0_tracker)
                         for w, o, r in zip(clips.audio, resynth, clips.references)])
    return {"fad": judges.fad(reference, resynth),
            "conversion_accuracy": judges.accuracy(judges.labels(resynth), domain)}, pitch


@torch.no_grad()
def resynthesize(tt, renderer, wav: np.ndarray, domain: str) -> np.ndarray:
    """``(T,)`` clip of ``domain`` -> its mel -> ``(T,)`` audio by ``renderer`` (a
    :class:`~timbre_transfer.inference.render.Renderer`; a DDSP head plays the clip's own
    f0 and loudness)."""
    return renderer.render(tt.transform(torch.from_numpy(wav).to(tt.device)), wav, domain)


@torch.no_grad()
def reconstruction_error(tt, wavs: list[np.ndarray], domain: str) -> tuple[float, float]:
    """Mean over clips of the mel L1 (normalised scale) and the spectral convergence (dB, on the
    linear-amplitude mel) of E -> G_own."""
    from timbre_transfer.audio.inversion import spectral_convergence_db

    factor = tt.model.downsample_factor
    l1, sc = [], []
    for wav in wavs:
        spec = tt.transform(torch.from_numpy(wav).to(tt.device))
        notes = tt.notes(wav, spec.shape[-1])  # the clip's own pitch, for a pitch-template model
        n = spec.shape[-1] // factor * factor
        spec = spec[:, :n]
        if n == 0:
            continue
        notes = None if notes is None else notes[None, :, :, :n]
        recon = tt.model.decode(tt.model.encode(spec[None, None]).mu, domain,
                                notes)[0, 0].clamp(0, 1)
        l1.append(float((recon - spec).abs().mean()))
        sc.append(float(spectral_convergence_db(tt.transform.spec_to_mel(spec)[None],
                                                tt.transform.spec_to_mel(recon)[None])[0]))
    return nanmean(l1), nanmean(sc)


def pitch_means(scores) -> dict[str, float]:
    """Clip means of one domain's pitch and loudness scores (the median f0 error as in the
    summary: a median over clips)."""
    return {"median_f0_cents": nanmedian(c.f0_median_cents for c in scores),
            "f0_within_50c": nanmean(c.f0_within_50c for c in scores),
            "voiced_coverage": nanmean(c.voiced_coverage for c in scores),
            "loudness_correlation": nanmean(c.loudness_correlation for c in scores)}


def nanmean(values) -> float:
    """The mean of the values that are neither None nor NaN; NaN when none is."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(kept)) if kept else float("nan")


def nanmedian(values) -> float:
    """The median of the values that are neither None nor NaN; NaN when none is."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.median(kept)) if kept else float("nan")
