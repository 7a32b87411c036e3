"""The ways back to audio: a generated mel made audible by phase reconstruction or a DDSP head.

Each way is a :class:`Renderer`. It says what it supports (the timbre knobs it applies, whether
pitch and loudness shifts move its output, whether it has a stream inverter) and renders a
domain's ``(n_mels, T)`` normalised mel into audio as long as the source performance.
:func:`renderer_for` picks one by its inverter name (:mod:`timbre_transfer.names`) and checks,
once and before any work, that it can render into every target domain.
"""

from __future__ import annotations

import copy
from typing import Mapping, Protocol

import numpy as np
import torch
from torch import nn

from timbre_transfer.audio.performance import Performance
from timbre_transfer.names import DDSP, INVERTERS, KNOBS, STREAM_INVERTERS


class Renderer(Protocol):
    """One way back to audio.

    Attributes:
        name: the inverter name it answers to.
        knobs: the timbre knobs (:data:`~timbre_transfer.names.KNOBS`) it can apply.
        shifts: whether ``pitch_shift`` and ``loudness_shift`` move its output.
        streaming: whether :meth:`stream_inverter` exists for it.
    """

    name: str
    knobs: frozenset[str]
    shifts: bool
    streaming: bool

    def render(self, spec: torch.Tensor, level: np.ndarray, domain: str,
               pitch_shift: float = 0.0, loudness_shift: float = 0.0,
               timbre: Mapping[str, float] | None = None,
               performance: Performance | None = None) -> np.ndarray:
        """``(n_mels, T)`` normalised mel of ``domain`` -> ``(len(level),)`` float32 audio of
        the performance ``level`` (the source at the model's rate and training level);
        ``timbre``: knobs already checked by
        :func:`~timbre_transfer.audio.timbre_controls.check_controls`; ``performance``: how
        the source's analysed f0 is played (for a renderer that reads it)."""
        ...

    def stream_inverter(self, domain: str, chunk: int) -> nn.Module:
        """The inverter of a stream into ``domain`` (a module of
        :mod:`timbre_transfer.inference.stream_inverters`), on the CPU."""
        ...


class PhaseRenderer:
    """Phase reconstruction of the mel (``pghi``, ``griffinlim`` or ``pghi+gla``; see
    :meth:`~timbre_transfer.audio.transform.AudioTransform.invert`). Only the knobs that act on
    a mel apply; a register change is already in the mel, so shifts are not its to make."""

    knobs = frozenset(k for k, knob in KNOBS.items() if knob.inverters == "any")
    shifts = False

    def __init__(self, transform, method: str):
        self.transform = transform
        self.name = method
        self.streaming = method in STREAM_INVERTERS

    @torch.no_grad()
    def render(self, spec: torch.Tensor, level: np.ndarray, domain: str,
               pitch_shift: float = 0.0, loudness_shift: float = 0.0,
               timbre: Mapping[str, float] | None = None,
               performance: Performance | None = None) -> np.ndarray:
        """The mel's pitch is already the performance's (the notes the model played)."""
        from timbre_transfer.audio.timbre_controls import edit_mel

        spec = edit_mel(spec, self.transform, timbre or {})
        return self.transform.invert(spec, method=self.name, length=len(level)).cpu().numpy()

    def stream_inverter(self, domain: str, chunk: int) -> nn.Module:
        from timbre_transfer.inference.stream_inverters import PGHIStreamInverter

        if not self.streaming:
            raise ValueError(f"inverter {self.name!r} cannot stream")
        return PGHIStreamInverter(self.transform)


class DDSPRenderer:
    """Each domain's DDSP head (``tt.ddsp``, see
    :meth:`~timbre_transfer.inference.transfer.TimbreTransfer.attach_ddsp`), steered by the
    source's f0 and loudness (analysed once per input and head) moved by the shifts."""

    name = DDSP
    knobs = frozenset(KNOBS)
    shifts = True
    streaming = DDSP in STREAM_INVERTERS

    def __init__(self, tt):
        self.tt = tt

    def missing(self, domains) -> list[str]:
        """The domains of ``domains`` with no head."""
        return [d for d in domains if d not in self.tt.ddsp]

    @torch.no_grad()
    def render(self, spec: torch.Tensor, level: np.ndarray, domain: str,
               pitch_shift: float = 0.0, loudness_shift: float = 0.0,
               timbre: Mapping[str, float] | None = None,
               performance: Performance | None = None) -> np.ndarray:
        from timbre_transfer.audio.features import extract_controls

        head = self.tt.ddsp[domain]
        cfg = head.config
        controls = self.tt.cached(("head", id(head)), level, lambda: extract_controls(
            level, self.tt.sample_rate, head.hop_length, cfg.f0_min, cfg.f0_max,
            head.f0_tracker))
        if performance is not None:
            controls = performance.apply(controls)
        return np.asarray(head.render(spec, controls, len(level), pitch_shift,
                                      loudness_shift, timbre=timbre or {}))

    def stream_inverter(self, domain: str, chunk: int) -> nn.Module:
        from timbre_transfer.inference.stream_inverters import DDSPStreamInverter

        head = self.tt.ddsp[domain]
        # streams run on the CPU; a head on another device is copied, not moved
        if self.tt.device.type != "cpu":
            head = copy.deepcopy(head).cpu()
        return DDSPStreamInverter(head, self.tt.transform, chunk)


def renderer_for(tt, name: str, targets, streaming: bool = False) -> Renderer:
    """The renderer of inverter ``name`` for ``tt`` (a
    :class:`~timbre_transfer.inference.transfer.TimbreTransfer`), checked for every domain of
    ``targets``; ``streaming``: for a stream, which only :data:`STREAM_INVERTERS` have.

    Raises:
        KeyError: a target the model does not know.
        ValueError: an unknown inverter, one that cannot stream (with ``streaming``), or
            :data:`~timbre_transfer.names.DDSP` with no DDSP head for a target.
    """
    targets = list(dict.fromkeys(targets))
    for domain in targets:
        tt.check_domain(domain)
    if streaming and name not in STREAM_INVERTERS:
        raise ValueError(f"inverter {name!r} cannot stream; streaming inverters: "
                         f"{STREAM_INVERTERS}")
    if name in INVERTERS:
        return PhaseRenderer(tt.transform, name)
    if name != DDSP:
        raise ValueError(f"unknown inverter {name!r}; choose one of {INVERTERS + (DDSP,)}")
    renderer = DDSPRenderer(tt)
    missing = renderer.missing(targets)
    if missing:
        raise ValueError(f"no DDSP head for {missing} (heads: {sorted(tt.ddsp) or 'none'}); "
                         f"inverter {DDSP!r} needs one for every target domain: train one with "
                         "`timbre-transfer train-ddsp` and pass --ddsp PATH")
    return renderer
