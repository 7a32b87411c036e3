"""Block-streaming transfer: audio in, audio out, one block at a time, at a constant latency.

The offline transfer (:mod:`timbre_transfer.inference.transfer`) sees the whole file: pYIN
for the notes, 128-frame windows through the nets, PGHI and Griffin-Lim over every frame. A live
input has only the past and a few milliseconds of the future, so the streaming path replaces
each stage with one that needs no more:

* **analysis**: the same STFT and mel as offline, frame by frame (a frame centred at sample
  ``t * hop`` needs the input up to ``t * hop + n_fft / 2``);
* **notes**: YIN (de Cheveigne & Kawahara 2002) on the same 1024-sample frame, in place of
  pYIN, for models with a pitch template;
* **nets**: every ``chunk`` frames (the latent's time stride), the encoder and the target's
  generator run on the last ``context`` frames (InstanceNorm sees ``context`` frames, as the
  offline windows see theirs), and the newest ``chunk`` output frames are kept. The newest frame
  therefore sits at the window's right edge: the nets see no future beyond the chunk;
* **phase**: real-time phase-gradient integration (RTPGHI, Prusa & Holighaus 2017) with no
  look-ahead: the phase gradients of PGHI from each frame and the one before it; spectral peaks
  advance their phase along time, every other bin takes the phase of its nearest peak plus the
  integrated frequency-direction gradient (the heap of RTPGHI, reduced to peaks so that a frame
  is a few vector operations);
* **synthesis**: overlap-add with the window's canonical dual, so a frame's samples are final
  once the next frame no longer overlaps them.

Everything is one ``nn.Module``, :class:`StreamingTransfer`, whose ``forward(block, state)``
returns ``(block, state)``; it compiles with TorchScript, so that :func:`export_torchscript`
writes a model that runs without this package. :class:`Stream` wraps it with its state for
Python use (``TimbreTransfer.stream``).

Latency (input sample to the output sample that renders it, once the block is complete):
``delay + block`` samples, where ``delay`` is the smallest constant that a block of this size
allows: the analysis needs ``n_fft / 2`` samples of future, a chunk waits for its last frame
(``(chunk - 1) * hop``), and overlap-add finalises a sample ``n_fft / 2`` after its frame
(:func:`stream_delay` computes it; 1024 + 512 samples, 96 ms, at 16 kHz, hop 128, n_fft 1024,
block 512).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from timbre_transfer.inference.streaming_cli import STREAM_INVERTERS  # noqa: F401 (re-export)

#: RTPGHI: bins under this fraction of the frame's peak magnitude are not peaks
PEAK_TOL = 1e-3
#: YIN: the cumulative-mean-normalised difference must fall under this for a frame to be voiced
YIN_THRESHOLD = 0.2
#: the f0 range the YIN tracker searches (prepare's pYIN range, C2-C7)
F0_MIN, F0_MAX = 65.0, 2093.0
#: NNLS iterations per frame (mel -> linear magnitude; the offline one stops at 1e-4 change, 15
#: on average); fixed, so that a frame's cost is known
NNLS_ITERS = 16
#: frames the nets see per run by default (see docs/streaming.md for the measured choice)
DEFAULT_CONTEXT = 32
#: the block sizes the stream accepts must be multiples of this many samples
BLOCK_QUANTUM = 32


class WindowNets(nn.Module):
    """The encoder and one domain's generator on one window: ``(1, 1, F, W)`` normalised mel
    and ``(1, 1, F, W)`` harmonic template -> ``(1, 1, F, W)`` output mel in [0, 1]. A module of
    its own so that it can be traced (no Python branches, no dataclasses) for export."""

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


def stream_delay(block: int, hop: int, n_fft: int, chunk: int) -> int:
    """The smallest constant delay (samples) at which a stream fed ``block``-sample blocks
    always has its output ready: ``max`` over block ends ``m`` of ``m - final(m)``, where
    ``final(m)`` is the first sample not yet final after ``m`` input samples (frames come in
    chunks of ``chunk`` hops, each frame needs ``n_fft / 2`` samples of its future, and a
    sample is final once the next frame starts past it)."""
    step = chunk * hop
    need = (chunk - 1) * hop + n_fft // 2  # input beyond a chunk's first frame centre
    period = block * step // math.gcd(block, step)
    worst = 0
    for m in range(block, period + block * (1 + (n_fft + need) // block) + 1, block):
        chunks = max(0, (m - need) // step + 1)
        final = chunks * step - n_fft // 2
        worst = max(worst, m - final)
    return worst


def _dual_window(window: torch.Tensor, hop: int) -> torch.Tensor:
    """The canonical dual of ``window`` at ``hop``: ``window / sum_t window(n - t hop)^2``, so
    that overlap-adding ``dual * frame`` of a consistent STFT gives back the signal (what
    ``torch.istft`` does, in the steady state)."""
    n = window.shape[0]
    envelope = torch.zeros(hop, dtype=torch.float64)
    w2 = window.double() ** 2
    for start in range(0, n, hop):
        part = w2[start:start + hop]
        envelope[:part.shape[0]] += part
    return (window.double() / envelope.repeat(n // hop + 1)[:n]).float()


class StreamingTransfer(nn.Module):
    """A stateful block processor: ``forward(block (block,), state) -> (block, state)``.

    Build it with :meth:`TimbreTransfer.stream`; :meth:`initial_state` gives the state of a
    fresh stream. The output block lags the input by :attr:`delay` samples (one block more in
    a live audio callback: see the module docstring). Metadata: :attr:`sample_rate`,
    :attr:`block`, :attr:`delay`, :attr:`latency` (samples, ``delay + block``), the domain
    and the inverter, also as a JSON string :attr:`metadata`.
    """

    def __init__(self, nets: nn.Module, transform, mel_pitch, domain: str, block: int,
                 context: int, chunk: int, gain: float, pitch_template: bool):
        super().__init__()
        p = transform.params
        self.nets = nets
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
        self.delay = stream_delay(self.block, self.hop, self.n_fft, self.chunk)
        self.latency = self.delay + self.block
        self.domain = domain
        self.inverter = "pghi"
        self.norm_shift = float(transform.norm_shift)
        self.norm_scale = float(transform.norm_scale)
        self.silence = -self.norm_shift / self.norm_scale  # the normalised value of log1p(0)
        self.gamma = float(transform.gamma)
        self.metadata = json.dumps({
            "sample_rate": self.sample_rate, "block": self.block, "delay": self.delay,
            "latency": self.latency, "latency_ms": 1000.0 * self.latency / self.sample_rate,
            "domain": domain, "inverter": self.inverter, "context": self.context,
            "chunk": self.chunk, "gain": self.gain, "n_fft": self.n_fft, "hop": self.hop,
        })
        window = transform.window.detach().cpu().float()
        if window.shape[0] != self.n_fft:
            raise ValueError("streaming needs win_length == n_fft")
        self.register_buffer("window", window)
        self.register_buffer("dual", _dual_window(window, self.hop))
        basis = transform.mel_basis.detach().cpu().float()
        self.register_buffer("basis", basis)
        # NNLS (as inversion.mel_to_linear): back-projection start and per-bin steps
        band_area = basis.sum(1).clamp_min(1e-12)
        bin_cover = basis.sum(0)
        self.register_buffer("backproject", (basis / band_area[:, None]).T
                             / bin_cover.clamp_min(1e-12)[:, None])
        d = basis.abs().T @ (basis.abs() @ torch.ones_like(bin_cover))
        self.register_buffer("nnls_step", torch.where(d > 0, 1 / d.clamp_min(1e-30),
                                                      torch.zeros_like(d))[:, None])
        n_freq = self.n_fft // 2 + 1
        k = torch.arange(n_freq, dtype=torch.float32)
        self.register_buffer("bins", k)
        # the pitch template's mel grid (MelPitch), precomputed for TorchScript
        self.register_buffer("centre_bins", torch.arange(self.n_mels, dtype=torch.float32))
        self.mel_htk = bool(mel_pitch.htk)
        self.mel0 = float(mel_pitch.mel0)
        self.mel_step = float(mel_pitch.mel_step)
        self.f_max = float(mel_pitch.f_max)
        self.yin_threshold = YIN_THRESHOLD
        self.peak_tol = PEAK_TOL
        self.nnls_iters = NNLS_ITERS
        # YIN lags
        self.tau_min = max(2, int(self.sample_rate / F0_MAX))
        self.tau_max = min(self.n_fft // 2, int(math.ceil(self.sample_rate / F0_MIN)))

    # ---- state -------------------------------------------------------------------------------

    @torch.jit.export
    def initial_state(self) -> Dict[str, torch.Tensor]:
        """The state of a fresh stream (silence before the first sample)."""
        n_freq = self.n_fft // 2 + 1
        return {
            # input from the next frame's start (frames are centred: n_fft / 2 of silence first)
            "input": torch.zeros(self.n_fft // 2),
            "spec": torch.full((self.n_mels, self.context), self.silence),
            "template": torch.zeros(self.n_mels, self.context),
            "phase": torch.zeros(n_freq),
            "time_step": torch.zeros(n_freq),
            "logmag": torch.full((n_freq,), -30.0),
            "ola": torch.zeros(self.n_fft),
            # output made, not yet returned; starts with the zeros that make the delay constant
            # (the first n_fft / 2 samples made lie before the input's first sample)
            "output": torch.zeros(self.delay - self.n_fft // 2),
        }

    # ---- one block ---------------------------------------------------------------------------

    def forward(self, block: torch.Tensor, state: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if block.dim() != 1 or block.shape[0] != self.block:
            raise ValueError("expected a mono block of shape (" + str(self.block)
                             + ",), got " + str(list(block.shape)))
        pending = torch.cat([state["input"], block.float() * self.gain])
        spec, template = state["spec"], state["template"]
        phase, time_step, logmag = state["phase"], state["time_step"], state["logmag"]
        ola = state["ola"]
        made: List[torch.Tensor] = [state["output"]]
        need = self.n_fft + (self.chunk - 1) * self.hop
        while pending.shape[0] >= need:
            frames = pending[:need].unfold(0, self.n_fft, self.hop)  # (chunk, n_fft)
            pending = pending[self.chunk * self.hop:]
            new_spec, new_template = self._analyse(frames)
            spec = torch.cat([spec[:, self.chunk:], new_spec], 1)
            template = torch.cat([template[:, self.chunk:], new_template], 1)
            out = self.nets(spec[None, None], template[None, None])[0, 0, :, -self.chunk:]
            magnitude = self._magnitude(out)  # (n_freq, chunk)
            for c in range(self.chunk):
                phase, time_step, logmag = self._phase(magnitude[:, c], phase, time_step, logmag)
                shifted = phase + math.pi * self.bins  # torch.stft's phase convention
                frame = torch.fft.irfft(torch.polar(magnitude[:, c], shifted), n=self.n_fft)
                ola = ola + frame * self.dual
                made.append(ola[:self.hop])
                ola = torch.cat([ola[self.hop:], torch.zeros(self.hop)])
        output = torch.cat(made)
        state = {"input": pending, "spec": spec, "template": template, "phase": phase,
                 "time_step": time_step, "logmag": logmag, "ola": ola,
                 "output": output[self.block:]}
        return output[:self.block] / self.gain, state

    # ---- stages ------------------------------------------------------------------------------

    def _analyse(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(chunk, n_fft)`` input frames -> normalised mel and harmonic template, both
        ``(n_mels, chunk)``."""
        magnitude = torch.fft.rfft(frames * self.window).abs().T  # (n_freq, chunk)
        if self.power != 1.0:
            magnitude = magnitude.square()
        spec = (torch.log1p(self.basis @ magnitude) - self.norm_shift) / self.norm_scale
        if not self.pitch_template:
            return spec, torch.zeros_like(spec)
        f0, voiced = self._yin(frames)
        return spec, self._template(f0, voiced)

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

    def _template(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """:meth:`MelPitch.template` of ``(chunk,)`` f0 and voicing -> ``(n_mels, chunk)``."""
        k = torch.arange(1, 65, dtype=torch.float32)
        harmonics = f0[:, None] * k  # (chunk, K)
        valid = (harmonics < self.f_max) & (f0[:, None] > 0)
        hz = harmonics.clamp_min(1.0)
        if self.mel_htk:
            mel = 2595.0 * torch.log10(1.0 + hz / 700.0)
        else:
            f_sp = 200.0 / 3
            log = 1000.0 / f_sp + torch.log(hz.clamp_min(1000.0) / 1000.0) / (math.log(6.4) / 27.0)
            mel = torch.where(hz >= 1000.0, log, hz / f_sp)
        pos = (mel - self.mel0) / self.mel_step
        bumps = torch.exp(-0.5 * ((self.centre_bins[:, None, None] - pos[None]) / 0.5) ** 2)
        bumps = bumps * valid[None].float()  # (n_mels, chunk, K)
        return bumps.amax(-1) * voiced[None]

    def _magnitude(self, out: torch.Tensor) -> torch.Tensor:
        """Output mel ``(n_mels, chunk)`` in [0, 1] -> linear STFT magnitude ``(n_freq, chunk)``
        by :data:`NNLS_ITERS` steps of accelerated projected gradient (as
        :func:`~timbre_transfer.audio.inversion.mel_to_linear`, without its early stop)."""
        mel = torch.expm1(out * self.norm_scale + self.norm_shift).clamp_min(0)
        s = self.backproject @ mel
        y = s
        t = torch.ones(1, mel.shape[1])
        for _ in range(self.nnls_iters):
            s_next = (y - self.nnls_step * (self.basis.T @ (self.basis @ y - mel))).clamp_min(0)
            t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            delta = s_next - s
            restart = ((y - s_next) * delta).sum(0, keepdim=True) > 0
            y = torch.where(restart, s_next, s_next + ((t - 1) / t_next) * delta)
            t = torch.where(restart, torch.ones_like(t), t_next)
            s = s_next
        return s if self.power == 1.0 else s.sqrt()

    def _phase(self, magnitude: torch.Tensor, phase: torch.Tensor, time_step: torch.Tensor,
               logmag: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame of RTPGHI without look-ahead: the frame's ``(n_freq,)`` magnitude and the
        previous frame's phase (centred convention), time-direction step and log-magnitude ->
        this frame's three."""
        a, m = float(self.hop), float(self.n_fft)
        peak = magnitude.max()
        log_now = torch.log(torch.maximum(magnitude, peak * 1e-7).clamp_min(1e-12))
        # time direction (per hop): from the frequency derivative of the log-magnitude
        d_freq = torch.zeros_like(log_now)
        d_freq[1:-1] = (log_now[2:] - log_now[:-2]) / 2
        d_freq[0] = log_now[1] - log_now[0]
        d_freq[-1] = log_now[-1] - log_now[-2]
        step_now = (a * m / self.gamma) * d_freq + (2 * math.pi * a / m) * self.bins
        advanced = phase + 0.5 * (time_step + step_now)
        # frequency direction (per bin): from the time derivative, backward (no look-ahead)
        freq_step = -(self.gamma / (a * m)) * (log_now - logmag)
        across = torch.cat([torch.zeros(1), torch.cumsum(0.5 * (freq_step[1:] + freq_step[:-1]), 0)])
        threshold = torch.log(peak * self.peak_tol + 1e-12)
        is_peak = (log_now > threshold)
        is_peak[1:] = is_peak[1:] & (log_now[1:] > log_now[:-1])
        is_peak[:-1] = is_peak[:-1] & (log_now[:-1] >= log_now[1:])
        n = log_now.shape[0]
        index = torch.arange(n)
        left = torch.cummax(torch.where(is_peak, index, torch.full_like(index, -n)), 0)[0]
        right = torch.flip(torch.cummin(torch.flip(
            torch.where(is_peak, index, torch.full_like(index, 2 * n)), [0]), 0)[0], [0])
        nearest = torch.where(index - left <= right - index, left, right)
        has_peak = (nearest >= 0) & (nearest < n)
        nearest = nearest.clamp(0, n - 1)
        locked = advanced[nearest] + across - across[nearest]
        new_phase = torch.where(has_peak, locked, advanced)
        return torch.remainder(new_phase, 2 * math.pi), step_now, log_now


class Stream:
    """A :class:`StreamingTransfer` with its state: ``process(block) -> block``, then
    ``flush()`` for the tail. Made by :meth:`TimbreTransfer.stream`.

    Attributes:
        module: the :class:`StreamingTransfer` (what :func:`export_torchscript` compiles).
        latency: samples from an input sample to the output sample that renders it, in a live
            callback (the delay of ``process``'s output plus one block).
        delay: samples by which ``process``'s output lags its input.
    """

    def __init__(self, module: StreamingTransfer):
        self.module = module.eval()
        self.state = module.initial_state()
        self.sample_rate = module.sample_rate
        self.block = module.block
        self.delay = module.delay
        self.latency = module.latency

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
        out, self.state = self.module(x, self.state)
        return out.numpy()

    def flush(self) -> np.ndarray:
        """The output still inside the stream (:attr:`delay` samples, rounded up to whole
        blocks of silence fed in); the stream then starts over."""
        tail = [self.process(np.zeros(self.block, np.float32))
                for _ in range(-(-self.delay // self.block))]
        self.state = self.module.initial_state()
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


# ---- export ----------------------------------------------------------------------------------

EXPORT_FORMATS = ("torchscript", "onnx")
#: the file inside a TorchScript export (``torch.jit.load(..., _extra_files=...)``) and the ONNX
#: metadata key that hold the stream's metadata as JSON
METADATA_NAME = "timbre_transfer.json"


def _traced_nets(module: StreamingTransfer) -> torch.jit.ScriptModule:
    """The module's nets traced on one window (shapes are fixed by the stream)."""
    import warnings

    example = (torch.zeros(1, 1, module.n_mels, module.context),) * 2
    with warnings.catch_warnings():
        # the generator's shape check is a Python branch; the traced shapes never change
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module.nets.eval(), example, check_trace=False)


def export_torchscript(stream: Stream, path: str | Path) -> Path:
    """Write ``stream``'s processor as one TorchScript file that runs without this package:

    ``m = torch.jit.load(path)``; ``state = m.initial_state()``; then
    ``out, state = m(block, state)`` per ``(block,)`` float32 block. Metadata (sample rate,
    block, delay, latency, domain, inverter) is the JSON string ``m.metadata`` and the extra
    file :data:`METADATA_NAME`. Written atomically (temp file, then rename).
    """
    import copy

    module = copy.deepcopy(stream.module)  # the Stream keeps its eager nets
    module.requires_grad_(False)  # outputs a caller can turn into numpy
    module.nets = _traced_nets(module)
    scripted = torch.jit.script(module.eval())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={METADATA_NAME: stream.module.metadata})
    tmp.replace(path)
    return path


def export_onnx(stream: Stream, path: str | Path) -> Path:
    """Write the stream's nets (encoder and the target's generator on one window) as ONNX:
    inputs ``spec`` and (for a model with a pitch template) ``template``, ``(1, 1, n_mels,
    context)``; output ``mel``, the same shape. The stateful parts (STFT and mel analysis, YIN and the harmonic template, NNLS,
    RTPGHI, overlap-add) are the host's to run around it, as :class:`StreamingTransfer` does
    (docs/streaming.md lists them); the stream's metadata is in the model's
    ``metadata_props`` under :data:`METADATA_NAME`. Needs the ``onnx`` package."""
    import warnings

    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'timbre-transfer[export]'"
                          ) from exc
    module = stream.module
    nets, names = module.nets.eval(), ["spec", "template"]
    if not module.pitch_template:  # the graph would drop the unused input anyway
        nets, names = _SpecOnly(nets), ["spec"]
    example = (torch.zeros(1, 1, module.n_mels, module.context),) * len(names)
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
