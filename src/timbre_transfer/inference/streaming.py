"""Block-streaming transfer: audio in, audio out, one block at a time, at a constant latency.

The offline transfer (:mod:`timbre_transfer.inference.transfer`) sees the whole file: an f0
tracker for the notes (SwiftF0 by default, 10 frames of look-ahead), 128-frame windows through
the nets, PGHI and Griffin-Lim over every frame. A live
input has only the past and a few milliseconds of the future, so the streaming path replaces
each stage with one that needs no more:

* **analysis**: the same STFT and mel as offline, frame by frame (a frame centred at sample
  ``t * hop`` needs the input up to ``t * hop + n_fft / 2``);
* **notes**: YIN (de Cheveigne & Kawahara 2002) on the same 1024-sample frame, in place of
  the offline tracker, for models with a pitch template (docs/benchmarks.md, "Pitch at network
  speed", measures both on the stream's blocks);
* **nets**: every ``chunk`` frames (the latent's time stride), the encoder and the target's
  generator run on the last ``context`` frames (InstanceNorm sees ``context`` frames, as the
  offline windows see theirs), and the newest ``chunk`` output frames are kept. The newest frame
  therefore sits at the window's right edge: the nets see no future beyond the chunk;
* **inverter** (:mod:`timbre_transfer.inference.stream_inverters`): ``"pghi"``, real-time
  phase-gradient integration (RTPGHI, Prusa & Holighaus 2017) with no look-ahead, then
  overlap-add with the window's canonical dual (a sample is final once the next frame no
  longer overlaps it); or ``ddsp``, the domain's DDSP head frame by frame (its GRU state,
  the oscillator's running phase and the noise's overlap-add carried over), steered by the YIN
  f0 and the A-weighted loudness of the same frames.

**Register.** ``octave`` moves the performance by whole octaves, as offline: each new mel chunk
is shifted along the mel axis, the template's notes and a DDSP head's f0 with it. ``"auto"`` (the
default, as offline) cannot see the whole input, so it resolves from the first second of voiced
frames (YIN's), then holds: until then the stream plays in the input's own register, and once
resolved the nets' context still holds up to ``context`` frames of the old register.

Everything is one ``nn.Module``, :class:`StreamingTransfer`, whose ``forward(block, state)``
returns ``(block, state)``; it compiles with TorchScript, so that :func:`export_torchscript`
writes a model that runs without this package. :class:`Stream` wraps it with its state for
Python use; :func:`open_stream` (``TimbreTransfer.stream``) builds both.

Latency (input sample to the output sample that renders it, once the block is complete):
``delay + block`` samples, where ``delay`` is the smallest constant that a block of this size
allows: the analysis needs ``n_fft / 2`` samples of future, a chunk waits for its last frame
(``(chunk - 1) * hop``), and the inverter makes a chunk's samples up to ``lag`` before the
chunk's end (``n_fft / 2`` for overlap-add, one head hop for DDSP). :func:`stream_delay`
computes it: at 16 kHz, hop 128, n_fft 1024 and block 512, 1024 + 512 samples (96 ms) with
PGHI and 768 + 512 (80 ms) with a DDSP head at hop 256.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from timbre_transfer.audio.f0 import F0_MAX, F0_MIN  # YIN searches the offline trackers' range
from timbre_transfer.audio.pitch import MAX_HARMONICS, TEMPLATE_WIDTH_BINS, hz_to_mel
from timbre_transfer.names import (
    DEFAULT_OCTAVE,
    STREAM_INVERTERS,  # noqa: F401 (re-export)
)

#: YIN: the cumulative-mean-normalised difference must fall under this for a frame to be voiced
YIN_THRESHOLD = 0.2
#: frames the nets see per run by default (see docs/streaming.md for the measured choice)
DEFAULT_CONTEXT = 32
#: the stream's register moves: whole octaves up to this many either way
MAX_STREAM_OCTAVES = 4
#: the block sizes the stream accepts must be multiples of this many samples
BLOCK_QUANTUM = 32


class WindowNets(nn.Module):
    """The encoder and one domain's generator on one window: ``(1, 1, F, W)`` normalised mel
    and ``(1, C, F, W)`` notes (the harmonic template; for a source-filter model also the
    comb) -> ``(1, 1, F, W)`` output mel in [0, 1]. A module of its own so that it can be
    traced (no Python branches, no dataclasses) for export."""

    def __init__(self, model, domain: str):
        super().__init__()
        model._check_domain(domain)
        self.encoder = model.encoder
        self.generator = model.generators[domain]
        self.pitch_template = bool(model.config.pitch_template)

    def forward(self, spec: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        mu = self.encoder(spec).mu
        if self.pitch_template:
            return self.generator(mu, template).clamp(0, 1)
        return self.generator(mu).clamp(0, 1)


def stream_delay(block: int, hop: int, n_fft: int, chunk: int, lag: int | None = None) -> int:
    """The smallest constant delay (samples) at which a stream fed ``block``-sample blocks
    always has its output ready: ``max`` over block ends ``m`` of ``m - final(m)``, where
    ``final(m)`` is the first sample not yet made after ``m`` input samples. Frames come in
    chunks of ``chunk`` hops, each frame needs ``n_fft / 2`` samples of its future, and the
    inverter makes a chunk's samples up to ``lag`` before the chunk's end (``n_fft / 2`` for
    overlap-add, the default)."""
    lag = n_fft // 2 if lag is None else lag
    step = chunk * hop
    need = (chunk - 1) * hop + n_fft // 2  # input beyond a chunk's first frame centre
    period = block * step // math.gcd(block, step)
    worst = 0
    for m in range(block, period + block * (1 + (n_fft + need) // block) + 1, block):
        chunks = max(0, (m - need) // step + 1)
        worst = max(worst, m - (chunks * step - lag))
    return worst


class StreamingTransfer(nn.Module):
    """A stateful block processor: ``forward(block (block,), state) -> (block, state)``.

    Build it with :func:`open_stream`; :meth:`initial_state` gives the state of a
    fresh stream. The output block lags the input by :attr:`delay` samples (one block more in
    a live audio callback: see the module docstring). Metadata: :attr:`sample_rate`,
    :attr:`block`, :attr:`delay`, :attr:`latency` (samples, ``delay + block``), the domain
    and the inverter, also as a JSON string :attr:`metadata`.

    Args:
        nets: ``(1, 1, n_mels, context)`` mel and template -> output mel (:class:`WindowNets`).
        inverter: a module of :mod:`timbre_transfer.inference.stream_inverters`.
        chunk: frames per run of the nets (the latent's time stride).
        gain: the fixed input gain to the training level (the output gets its inverse).
    """

    def __init__(self, nets: nn.Module, inverter: nn.Module, inverter_name: str, transform,
                 mel_pitch, domain: str, block: int, context: int, chunk: int, gain: float,
                 pitch_template: bool, octave: int | str = 0, register_hz: float | None = None,
                 source_filter: bool = False, autotune: float = 0.0, quiet_db: float = 0.0):
        super().__init__()
        if octave == "auto" and not register_hz:
            raise ValueError(f"octave 'auto' needs {domain!r}'s training register (register_hz)")
        if octave != "auto" and (isinstance(octave, bool) or not isinstance(octave, int)
                                 or abs(octave) > MAX_STREAM_OCTAVES):
            raise ValueError(f"octave must be 'auto' or a whole number from "
                             f"{-MAX_STREAM_OCTAVES} to {MAX_STREAM_OCTAVES}, got {octave!r}")
        p = transform.params
        self.nets = nets
        self.inverter = inverter
        self.sample_rate = int(p.sample_rate)
        self.n_fft = int(p.n_fft)
        self.hop = int(p.hop_length)
        self.n_mels = int(p.n_mels)
        self.power = float(p.power)
        self.block = int(block)
        self.context = int(context)
        self.chunk = int(chunk)
        self.gain = float(gain)
        self.pitch_template = bool(pitch_template)
        # a source-filter model also reads the notes' comb (MelPitch.notes): channel 1
        self.source_filter = bool(source_filter)
        self.comb = copy.deepcopy(mel_pitch.comb).cpu()
        self.auto_octave = octave == "auto"
        self.fixed_octave = 0 if self.auto_octave else int(octave)
        self.register_log2 = math.log2(register_hz) if self.auto_octave else 0.0
        self.auto_frames = int(round(self.sample_rate / self.hop))  # one second of voiced frames
        # the performance controls (audio/performance.py); quiet_db 0: nothing is silenced
        self.autotune = float(autotune)
        self.quiet_db = float(quiet_db)
        # f0 for the template and for an inverter steered by it (octave 'auto' also reads it
        # until it has resolved)
        self.needs_f0 = self.pitch_template or bool(inverter.needs_f0)
        self.lag = int(inverter.lag)
        self.delay = stream_delay(self.block, self.hop, self.n_fft, self.chunk, self.lag)
        self.latency = self.delay + self.block
        self.norm_shift = float(transform.norm_shift)
        self.norm_scale = float(transform.norm_scale)
        self.silence = -self.norm_shift / self.norm_scale  # the normalised value of log1p(0)
        self.metadata = json.dumps({
            "sample_rate": self.sample_rate, "block": self.block, "delay": self.delay,
            "latency": self.latency, "latency_ms": 1000.0 * self.latency / self.sample_rate,
            "domain": domain, "inverter": inverter_name, "context": self.context,
            "chunk": self.chunk, "gain": self.gain, "n_fft": self.n_fft, "hop": self.hop,
            "octave": octave, "autotune": self.autotune, "quiet_db": self.quiet_db,
        })
        window = transform.window.detach().cpu().float()
        if window.shape[0] != self.n_fft:
            raise ValueError("streaming needs win_length == n_fft")
        self.register_buffer("window", window)
        self.register_buffer("basis", transform.mel_basis.detach().cpu().float())
        # the pitch template's mel grid (MelPitch), as plain numbers for TorchScript
        self.register_buffer("centre_bins", torch.arange(self.n_mels, dtype=torch.float32))
        self.mel_htk = bool(mel_pitch.htk)
        self.mel0 = float(mel_pitch.mel0)
        self.mel_step = float(mel_pitch.mel_step)
        self.f_max = float(mel_pitch.f_max)
        self.max_harmonics, self.width = MAX_HARMONICS, TEMPLATE_WIDTH_BINS
        self.yin_threshold = YIN_THRESHOLD
        self.tau_min = max(2, int(self.sample_rate / F0_MAX))
        self.tau_max = min(self.n_fft // 2, int(math.ceil(self.sample_rate / F0_MIN)))
        self.max_octaves = MAX_STREAM_OCTAVES
        # MelPitch.shift by each whole octave from -MAX_STREAM_OCTAVES up, as gather tables:
        # bin m takes the value at centres[m] / 2**n, between bins below[m] and below[m] + 1
        ratios = 2.0 ** torch.arange(-MAX_STREAM_OCTAVES, MAX_STREAM_OCTAVES + 1,
                                     dtype=torch.float64)
        source = mel_pitch.position(mel_pitch.centres_hz.cpu()[None] / ratios[:, None])
        below = source.floor().long()
        self.register_buffer("shift_frac", (source - below).float())
        self.register_buffer("shift_below", below)

    @torch.jit.unused
    def nets_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero inputs of :attr:`nets` on one window: the mel ``(1, 1, n_mels, context)`` and
        the notes ``(1, C, n_mels, context)`` (for tracing and export)."""
        return (torch.zeros(1, 1, self.n_mels, self.context),
                torch.zeros(1, 1 + int(self.source_filter), self.n_mels, self.context))

    # ---- state -------------------------------------------------------------------------------

    @torch.jit.export
    def initial_state(self) -> Dict[str, torch.Tensor]:
        """The state of a fresh stream (silence before the first sample)."""
        state = self.inverter.initial_state()
        # input from the next frame's start (frames are centred: n_fft / 2 of silence first)
        state["input"] = torch.zeros(self.n_fft // 2)
        state["spec"] = torch.full((self.n_mels, self.context), self.silence)
        state["template"] = torch.zeros(1 + int(self.source_filter), self.n_mels, self.context)
        state["octave"] = torch.tensor(float(self.fixed_octave))
        state["voiced_log2"] = torch.zeros(self.auto_frames)  # octave 'auto': f0s seen so far
        state["voiced_count"] = torch.tensor(0.0)
        state["peak_db"] = torch.tensor(-200.0)  # --quiet: the loudest frame so far
        # output made, not yet returned; it starts with the zeros that make the delay constant
        # (the first ``lag`` samples the inverter makes lie before the input's first sample)
        state["output"] = torch.zeros(self.delay - self.lag)
        return state

    # ---- one block ---------------------------------------------------------------------------

    def forward(self, block: torch.Tensor, state: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if block.dim() != 1 or block.shape[0] != self.block:
            raise ValueError("expected a mono block of shape (" + str(self.block)
                             + ",), got " + str(list(block.shape)))
        pending = torch.cat([state["input"], block.float() * self.gain])
        spec, template = state["spec"], state["template"]
        # the inverter hands back a state of its own keys: the rest is carried here
        octave_now, seen, count = state["octave"], state["voiced_log2"], state["voiced_count"]
        peak = state["peak_db"]
        made: List[torch.Tensor] = [state["output"]]
        need = self.n_fft + (self.chunk - 1) * self.hop
        while pending.shape[0] >= need:
            frames = pending[:need].unfold(0, self.n_fft, self.hop)  # (chunk, n_fft)
            pending = pending[self.chunk * self.hop:]
            new_spec = self._mel(frames)
            listening = self.auto_octave and int(count.item()) < self.auto_frames
            f0, voiced = self._yin(frames) if self.needs_f0 or listening else (
                torch.zeros(self.chunk), torch.zeros(self.chunk))
            if self.autotune > 0.0:
                f0 = self._autotune(f0)
            keep = torch.ones(self.chunk)
            if self.quiet_db > 0.0:  # against the loudest frame so far: a stream has no future
                level = 10.0 * torch.log10((frames * frames).mean(1) + 1e-10)
                peak = torch.maximum(peak, level.max())
                keep = (level >= peak - self.quiet_db).float()
                voiced = voiced * keep
            if listening:
                octave_now, seen, count = self._resolve_octave(f0, voiced, octave_now, seen,
                                                               count)
            octave = int(octave_now.item())
            if octave != 0:
                new_spec = self._shift(new_spec, octave)
                f0 = f0 * 2.0 ** octave
            new_template = (self._template(f0, voiced) if self.pitch_template
                            else torch.zeros_like(new_spec))[None]
            if self.source_filter:
                comb = self.comb(f0[None], voiced[None])[0]
                new_template = torch.cat([new_template, comb])
            spec = torch.cat([spec[:, self.chunk:], new_spec], 1)
            template = torch.cat([template[:, :, self.chunk:], new_template], 2)
            out = self.nets(spec[None, None], template[None])[0, 0, :, -self.chunk:]
            samples, state = self.inverter(out, frames, f0, voiced, state)
            if self.quiet_db > 0.0:
                gate = nn.functional.interpolate(keep[None, None], size=samples.shape[0])[0, 0]
                samples = samples * gate
            made.append(samples)
        output = torch.cat(made)
        state["input"] = pending
        state["spec"] = spec
        state["template"] = template
        state["octave"], state["voiced_log2"], state["voiced_count"] = octave_now, seen, count
        state["peak_db"] = peak
        state["output"] = output[self.block:]
        return output[:self.block] / self.gain, state

    # ---- stages ------------------------------------------------------------------------------

    def _mel(self, frames: torch.Tensor) -> torch.Tensor:
        """``(chunk, n_fft)`` input frames -> normalised mel ``(n_mels, chunk)``, as
        :class:`~timbre_transfer.audio.transform.AudioTransform` computes it."""
        magnitude = torch.fft.rfft(frames * self.window).abs().T  # (n_freq, chunk)
        if self.power != 1.0:
            magnitude = magnitude.square()
        return (torch.log1p(self.basis @ magnitude) - self.norm_shift) / self.norm_scale

    def _yin(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """YIN f0 (Hz) and voicing in [0, 1] of each ``(chunk, n_fft)`` frame: the difference
        function over the frame's first ``n_fft - tau_max`` samples, normalised by its
        cumulative mean; the first dip under :data:`YIN_THRESHOLD`, refined to its minimum and
        by a parabola. Voicing is ``1 - d'`` at the dip (0 when nothing dips under)."""
        n = self.n_fft
        width = n - self.tau_max - 1  # lags up to tau_max + 1 (the parabola) stay inside
        x = frames - frames.mean(1, keepdim=True)
        size = 2 * n
        # r(tau) = sum_j x[j] x[j + tau] over j < width
        r = torch.fft.irfft(torch.fft.rfft(x[:, :width], size).conj() * torch.fft.rfft(x, size),
                            size)[:, :self.tau_max + 2]
        energy = torch.cat([torch.zeros(x.shape[0], 1), torch.cumsum(x * x, 1)], 1)
        lags = torch.arange(self.tau_max + 2)
        e_tau = energy[:, lags + width] - energy[:, lags]  # sum of x^2 over [tau, tau + width)
        diff = (e_tau[:, :1] + e_tau - 2 * r).clamp_min(0)  # (chunk, tau_max + 2)
        running = torch.cumsum(diff[:, 1:], 1) / lags[1:].float()
        cmnd = torch.cat([torch.ones(x.shape[0], 1), diff[:, 1:] / running.clamp_min(1e-12)], 1)
        span = cmnd[:, self.tau_min:self.tau_max + 1]
        below = span < self.yin_threshold
        first = below.float().argmax(1)  # the first dip's start (0 when none)
        ascending = span[:, 1:] > span[:, :-1]
        positions = torch.arange(span.shape[1] - 1)[None]
        rising = ascending & (positions >= first[:, None])
        has_rise = rising.any(1)
        bottom = torch.where(has_rise, rising.float().argmax(1), first)
        tau = bottom + self.tau_min
        prev = cmnd.gather(1, (tau - 1)[:, None])[:, 0]
        here = cmnd.gather(1, tau[:, None])[:, 0]
        nxt = cmnd.gather(1, (tau + 1)[:, None])[:, 0]
        curve = prev - 2 * here + nxt
        offset = torch.where(curve > 1e-9, 0.5 * (prev - nxt) / curve.clamp_min(1e-9),
                             torch.zeros_like(curve)).clamp(-1, 1)
        f0 = self.sample_rate / (tau.float() + offset)
        loud = frames.square().mean(1) > 1e-8
        voiced = torch.where(below.any(1) & loud, (1 - here).clamp(0, 1), torch.zeros_like(here))
        return f0, voiced

    def _autotune(self, f0: torch.Tensor) -> torch.Tensor:
        """f0 pulled toward the nearest semitone by :attr:`autotune`, as
        :func:`~timbre_transfer.audio.performance.autotune` does offline (0 Hz stays 0)."""
        pitched = f0 > 0
        semitones = 12.0 * torch.log2(torch.where(pitched, f0, torch.full_like(f0, 440.0)) / 440.0)
        tuned = semitones + self.autotune * (torch.round(semitones) - semitones)
        return torch.where(pitched, 440.0 * torch.pow(2.0, tuned / 12.0), torch.zeros_like(f0))

    def _resolve_octave(self, f0: torch.Tensor, voiced: torch.Tensor, octave: torch.Tensor,
                        seen: torch.Tensor, count: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Octave 'auto': gather the log2 f0 of voiced frames in ``seen`` (``count`` so far)
        until one second's worth, then set ``octave`` to the whole octaves from their median to
        the target's register (as ``TimbreTransfer.resolve_octave`` does offline) and hold it."""
        n = int(count.item())
        heard = torch.log2(f0[voiced > 0])
        take = min(self.auto_frames - n, int(heard.shape[0]))
        if take <= 0:
            return octave, seen, count
        seen = seen.clone()
        seen[n:n + take] = heard[:take]
        n += take
        if n == self.auto_frames:
            octave = torch.round(self.register_log2 - torch.quantile(seen, 0.5)).clamp(
                -self.max_octaves, self.max_octaves)
        return octave, seen, torch.tensor(float(n))

    def _shift(self, spec: torch.Tensor, octave: int) -> torch.Tensor:
        """:meth:`MelPitch.shift` of a ``(n_mels, chunk)`` mel by ``2 ** octave``."""
        row = octave + self.max_octaves
        below, frac = self.shift_below[row], self.shift_frac[row][:, None]
        return self._rows(spec, below) * (1 - frac) + self._rows(spec, below + 1) * frac

    def _rows(self, spec: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``spec``'s rows at ``index``; silence where the index is off the mel grid."""
        inside = ((index >= 0) & (index < self.n_mels))[:, None]
        values = spec[index.clamp(0, self.n_mels - 1)]
        return torch.where(inside, values, torch.full_like(values, self.silence))

    def _template(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """:meth:`MelPitch.template` of ``(chunk,)`` f0 and voicing -> ``(n_mels, chunk)``."""
        k = torch.arange(1, self.max_harmonics + 1, dtype=torch.float32)
        harmonics = f0[:, None] * k  # (chunk, K)
        valid = (harmonics < self.f_max) & (f0[:, None] > 0)
        pos = (hz_to_mel(harmonics.clamp_min(1.0), self.mel_htk) - self.mel0) / self.mel_step
        bumps = torch.exp(-0.5 * ((self.centre_bins[:, None, None] - pos[None]) / self.width) ** 2)
        bumps = bumps * valid[None].float()  # (n_mels, chunk, K)
        return bumps.amax(-1) * voiced[None]


class Stream:
    """A :class:`StreamingTransfer` with its state: ``process(block) -> block``, then
    ``flush()`` for the tail. Made by :func:`open_stream`.

    Attributes:
        module: the :class:`StreamingTransfer` (what :func:`export_torchscript` compiles).
        latency: samples from an input sample to the output sample that renders it, in a live
            callback (the delay of ``process``'s output plus one block).
        delay: samples by which ``process``'s output lags its input.
    """

    def __init__(self, module: StreamingTransfer, compiled: bool = True):
        """``compiled``: run the TorchScript compilation of ``module`` (what
        :func:`export_torchscript` writes), warmed up on silence, rather than the eager
        module: the same samples, with less Python per frame (see docs/streaming.md)."""
        self.module = module.eval()
        self.sample_rate = module.sample_rate
        self.block = module.block
        self.delay = module.delay
        self.latency = module.latency
        self.runner = module
        if compiled:
            self.runner = compile_stream(module)
            # TorchScript optimises a graph on its first calls: make them now, not live
            state = self.runner.initial_state()
            # (a DDSP head draws noise: the caller's random stream is left as it was)
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                for _ in range(3 + 3 * module.chunk * module.hop // module.block):
                    _, state = self.runner(torch.zeros(module.block), state)
        self.state = self.runner.initial_state()

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency / self.sample_rate

    @torch.no_grad()
    def process(self, block) -> np.ndarray:
        """One ``(block,)`` float block of input at :attr:`sample_rate` -> one output block.

        Raises:
            ValueError: the block has another size or shape, or non-finite samples.
        """
        x = torch.as_tensor(np.asarray(block, dtype=np.float32))
        if x.dim() != 1 or x.shape[0] != self.block:
            raise ValueError(f"expected a mono block of {self.block} samples at "
                             f"{self.sample_rate} Hz, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("the input block contains NaN or infinite samples")
        out, self.state = self.runner(x, self.state)
        return out.numpy()

    def flush(self) -> np.ndarray:
        """The output still inside the stream (:attr:`delay` samples, rounded up to whole
        blocks of silence fed in); the stream then starts over."""
        tail = [self.process(np.zeros(self.block, np.float32))
                for _ in range(-(-self.delay // self.block))]
        self.state = self.runner.initial_state()
        return np.concatenate(tail)[:self.delay]

    def run(self, wav: np.ndarray) -> np.ndarray:
        """Stream a whole signal block by block (zero-padded to whole blocks), flush, and
        return the output aligned with the input: ``len(wav)`` samples, delay removed."""
        wav = np.asarray(wav, dtype=np.float32)
        n_blocks = -(-len(wav) // self.block)
        padded = np.zeros(n_blocks * self.block, np.float32)
        padded[:len(wav)] = wav
        out = [self.process(padded[i * self.block:(i + 1) * self.block]) for i in range(n_blocks)]
        out.append(self.flush())
        return np.concatenate(out)[self.delay:self.delay + len(wav)]


def open_stream(tt, to: str, inverter: str = "pghi", block: int = 512,
                context: int | None = None, input_dbfs: float | None = None,
                sample_rate: int | None = None, compiled: bool = True,
                octave: int | str = DEFAULT_OCTAVE, performance=None) -> Stream:
    """A live transfer of ``tt`` (a
    :class:`~timbre_transfer.inference.transfer.TimbreTransfer`) into ``to``: a
    :class:`Stream` whose ``process(block) -> block`` takes and returns ``block`` samples at
    ``tt.sample_rate``, at a constant latency (``stream.latency``; see the module docstring for
    what each stage needs). ``TimbreTransfer.stream`` calls it.

    Args:
        inverter: one of :data:`~timbre_transfer.names.STREAM_INVERTERS`: ``"pghi"``
            (real-time phase-gradient integration) or the domain's DDSP head (see
            ``TimbreTransfer.attach_ddsp``), frame by frame.
        block: samples per block, a multiple of :data:`BLOCK_QUANTUM`.
        context: frames the nets see per run (default :data:`DEFAULT_CONTEXT`; a multiple of
            twice the nets' stride, at most the training crop).
        input_dbfs: the input's expected RMS level; it is scaled by one fixed gain to the
            training level (``target_dbfs``), as an offline transfer scales a whole file.
            None: the input is taken to be at the training level already.
        sample_rate: the rate the caller will feed, checked against the model's (a live
            stream cannot resample without adding latency).
        compiled: run the TorchScript compilation (faster per block; False: the eager
            module, e.g. to step through it).
        octave: the register: whole octaves (up to :data:`MAX_STREAM_OCTAVES`), or ``"auto"``
            (the default), resolved from the first second of voiced input and then held (see
            the module docstring). A checkpoint without the target's training register keeps
            the input's, with a warning, as offline.
        performance: a :class:`~timbre_transfer.audio.performance.Performance`: ``autotune``
            as offline, on the stream's YIN f0; ``quiet_db`` against the loudest frame so far
            (a stream cannot know the input's peak), on each frame's RMS level.

    Raises:
        ValueError: an unknown inverter or one that cannot stream, a DDSP head missing, a
            block or context the nets cannot take, or another sample rate.
    """
    from timbre_transfer.inference.render import renderer_for

    renderer = renderer_for(tt, inverter, [to], streaming=True)
    if sample_rate is not None and sample_rate != tt.sample_rate:
        raise ValueError(f"this model streams at {tt.sample_rate} Hz, got {sample_rate} Hz; "
                         "open the audio device (or resample the file) at the model's rate")
    if isinstance(block, bool) or not isinstance(block, int) or block < BLOCK_QUANTUM \
            or block % BLOCK_QUANTUM:
        raise ValueError(f"block must be a positive multiple of {BLOCK_QUANTUM} samples, "
                         f"got {block!r}")
    model = tt.model
    stride = 2 * model.downsample_factor
    context = DEFAULT_CONTEXT if context is None else context
    largest = max(tt.window or 0, stride)
    if isinstance(context, bool) or not isinstance(context, int) or context < stride \
            or context % stride or context > largest:
        raise ValueError(f"context must be a multiple of {stride} frames from {stride} to "
                         f"{largest} (the training crop), got {context!r}")
    gain = 1.0 if input_dbfs is None else 10 ** ((tt.target_dbfs - input_dbfs) / 20)
    # streams run on the CPU; a model on another device is copied, not moved
    cpu = model if tt.device.type == "cpu" else copy.deepcopy(model).cpu()
    chunk = model.downsample_factor
    register = tt.pitch_medians.get(to)
    autotune = 0.0 if performance is None else performance.autotune
    quiet_db = 0.0 if performance is None or performance.quiet_db is None else performance.quiet_db
    if autotune and not (model.config.pitch_template or renderer.shifts):
        raise ValueError("autotune moves the notes a model with the pitch template plays, or "
                         "the f0 a DDSP head renders; this model has no template")
    if octave == "auto" and register is None:
        octave = tt.resolve_octave(octave, to, np.zeros(0))  # 0, with the offline warning
    module = StreamingTransfer(
        WindowNets(cpu, to), renderer.stream_inverter(to, chunk), inverter, tt.transform,
        tt.mel_pitch, to, block, context, chunk, gain, bool(model.config.pitch_template),
        octave, register, bool(model.config.source_filter), autotune, quiet_db)
    return Stream(module, compiled)


# ---- export ----------------------------------------------------------------------------------

EXPORT_FORMATS = ("torchscript", "onnx")
#: the file inside a TorchScript export (``torch.jit.load(..., _extra_files=...)``) and the ONNX
#: metadata key that hold the stream's metadata as JSON
METADATA_NAME = "timbre_transfer.json"


def _traced_nets(module: StreamingTransfer) -> torch.jit.ScriptModule:
    """The module's nets traced on one window (shapes are fixed by the stream)."""
    import warnings

    example = module.nets_inputs()
    with warnings.catch_warnings():
        # the generator's shape check is a Python branch; the traced shapes never change
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module.nets.eval(), example, check_trace=False)


def compile_stream(module: StreamingTransfer) -> torch.jit.ScriptModule:
    """A TorchScript compilation of a copy of ``module`` (the nets traced on one window, the
    rest scripted); ``module`` itself stays eager."""
    module = copy.deepcopy(module)
    module.requires_grad_(False)  # outputs a caller can turn into numpy
    module.nets = _traced_nets(module)
    return torch.jit.script(module.eval())


def export_torchscript(stream: Stream, path: str | Path) -> Path:
    """Write ``stream``'s processor as one TorchScript file that runs without this package:

    ``m = torch.jit.load(path)``; ``state = m.initial_state()``; then
    ``out, state = m(block, state)`` per ``(block,)`` float32 block. Metadata (sample rate,
    block, delay, latency, domain, inverter) is the JSON string ``m.metadata`` and the extra
    file :data:`METADATA_NAME`. Written atomically (temp file, then rename).
    """
    scripted = compile_stream(stream.module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={METADATA_NAME: stream.module.metadata})
    tmp.replace(path)
    return path


def export_onnx(stream: Stream, path: str | Path) -> Path:
    """Write the stream's nets (encoder and the target's generator on one window) as ONNX:
    inputs ``spec``, ``(1, 1, n_mels, context)``, and (for a model with a pitch template)
    ``template``, ``(1, C, n_mels, context)`` (C = 2 for a source-filter model: the template and
    the comb); output ``mel``, as ``spec``. The stateful parts (STFT and mel analysis,
    YIN and the harmonic template, the inverter) are the host's to run around it, as
    :class:`StreamingTransfer` does (docs/streaming.md lists them); the stream's metadata is in
    the model's ``metadata_props`` under :data:`METADATA_NAME`. Needs the ``onnx`` package."""
    import warnings

    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: "
                          "pip install 'timbre-transfer[export]'") from exc
    module = stream.module
    nets, names = module.nets.eval(), ["spec", "template"]
    if not module.pitch_template:  # the graph would drop the unused input anyway
        nets, names = _SpecOnly(nets), ["spec"]
    example = module.nets_inputs()[:len(names)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nets, example, str(tmp), input_names=names, output_names=["mel"],
                          dynamo=False)
    model = onnx.load(str(tmp))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, module.metadata
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


class _SpecOnly(nn.Module):
    """Window nets of a model without a pitch template, with their one real input."""

    def __init__(self, nets: nn.Module):
        super().__init__()
        self.nets = nets

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.nets(spec, spec)


def read_metadata(path: str | Path) -> dict:
    """The metadata of an export written by :func:`export_torchscript` or :func:`export_onnx`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                 .metadata_props}
        if METADATA_NAME not in props:
            raise ValueError(f"{path}: an ONNX model without timbre_transfer metadata")
        return json.loads(props[METADATA_NAME])
    extra = {METADATA_NAME: ""}
    try:
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a TorchScript export ({exc})") from exc
    if not extra[METADATA_NAME]:
        raise ValueError(f"{path}: a TorchScript file without timbre_transfer metadata")
    return json.loads(extra[METADATA_NAME])
