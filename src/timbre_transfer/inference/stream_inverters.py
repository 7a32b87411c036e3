"""The inverters of a stream: a chunk of generated mel frames -> the audio samples that became
final, frame by frame, with no look-ahead beyond the chunk.

Both have one interface, so that :class:`~timbre_transfer.inference.streaming.StreamingTransfer`
compiles with TorchScript whichever it holds: ``forward(mel, frames, f0, voiced, state)``
returns ``(samples, state)``, where ``mel`` is the ``(n_mels, chunk)`` output of the nets in
[0, 1], ``frames`` the chunk's ``(chunk, n_fft)`` input frames at the training level, ``f0`` and
``voiced`` their YIN analysis, and ``samples`` the ``chunk * hop`` output samples made final.
:attr:`lag` says where the first sample they ever make lies (``-lag``, before the input's first
sample), which with the chunking sets the stream's delay; :attr:`needs_f0` whether ``f0`` and
``voiced`` must be analysed for it (the stream skips YIN otherwise).
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import nn

from timbre_transfer.models.ddsp import exp_sigmoid
from timbre_transfer.models.ddsp_head import _scale_f0

#: RTPGHI: bins under this fraction of the frame's peak magnitude are not peaks
PEAK_TOL = 1e-3
#: NNLS iterations per frame (mel -> linear magnitude; the offline one stops at a relative change
#: of 1e-4, 15 on average). Fixed, so that a chunk's cost is known. On a real violin clip's own
#: mel, 8 came within 0.8 dB of the offline NNLS's spectral convergence (16: 0.2 dB); on a
#: streamed transfer (benchmarks/streaming.py) 8 and 16 gave the same distance to the offline
#: transfer and the same conversion, and 8 took the stream from 2.4x to 2.9x real time.
NNLS_ITERS = 8


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


class PGHIStreamInverter(nn.Module):
    """NNLS to linear magnitude, then real-time phase-gradient integration (RTPGHI, Prusa &
    Holighaus 2017) without look-ahead, then overlap-add with the window's canonical dual.

    Per frame, the phase gradients of PGHI come from this frame's log-magnitude (along
    frequency: the time-direction step) and from this frame and the one before (along time,
    backward: the frequency-direction step). Spectral peaks advance their phase along time;
    every other bin takes its nearest peak's phase plus the integrated frequency-direction step.
    That is the heap of RTPGHI reduced to peaks, a few vector operations per frame. A sample is
    final once the next frame no longer overlaps it: the first made lies ``n_fft / 2`` before
    the input.
    """

    def __init__(self, transform):
        super().__init__()
        p = transform.params
        self.n_fft, self.hop = int(p.n_fft), int(p.hop_length)
        self.power = float(p.power)
        self.norm_shift = float(transform.norm_shift)
        self.norm_scale = float(transform.norm_scale)
        self.gamma = float(transform.gamma)
        self.lag = self.n_fft // 2
        self.needs_f0 = False
        self.peak_tol = PEAK_TOL
        self.nnls_iters = NNLS_ITERS
        window = transform.window.detach().cpu().float()
        self.register_buffer("dual", _dual_window(window, self.hop))
        basis = transform.mel_basis.detach().cpu().float()
        self.register_buffer("basis", basis)
        # NNLS as inversion.mel_to_linear: back-projection start and per-bin steps
        band_area = basis.sum(1).clamp_min(1e-12)
        bin_cover = basis.sum(0)
        self.register_buffer("backproject", (basis / band_area[:, None]).T
                             / bin_cover.clamp_min(1e-12)[:, None])
        d = basis.abs().T @ (basis.abs() @ torch.ones_like(bin_cover))
        self.register_buffer("nnls_step", torch.where(d > 0, 1 / d.clamp_min(1e-30),
                                                      torch.zeros_like(d))[:, None])
        self.register_buffer("bins", torch.arange(self.n_fft // 2 + 1, dtype=torch.float32))

    @torch.jit.export
    def initial_state(self) -> Dict[str, torch.Tensor]:
        n_freq = self.n_fft // 2 + 1
        return {"pghi.phase": torch.zeros(n_freq), "pghi.time_step": torch.zeros(n_freq),
                "pghi.logmag": torch.full((n_freq,), -30.0), "pghi.ola": torch.zeros(self.n_fft)}

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, f0: torch.Tensor,
                voiced: torch.Tensor, state: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        magnitude = self._magnitude(mel)  # (n_freq, chunk)
        phase, time_step = state["pghi.phase"], state["pghi.time_step"]
        logmag, ola = state["pghi.logmag"], state["pghi.ola"]
        made = []
        for c in range(mel.shape[1]):
            phase, time_step, logmag = self._phase(magnitude[:, c], phase, time_step, logmag)
            shifted = phase + math.pi * self.bins  # torch.stft's phase convention
            frame = torch.fft.irfft(torch.polar(magnitude[:, c], shifted), n=self.n_fft)
            ola = ola + frame * self.dual
            made.append(ola[:self.hop])
            ola = torch.cat([ola[self.hop:], torch.zeros(self.hop)])
        state = {"pghi.phase": phase, "pghi.time_step": time_step, "pghi.logmag": logmag,
                 "pghi.ola": ola}
        return torch.cat(made), state

    def _magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Output mel ``(n_mels, chunk)`` in [0, 1] -> linear STFT magnitude ``(n_freq, chunk)``
        by :data:`NNLS_ITERS` steps of accelerated projected gradient with restarts (as
        :func:`~timbre_transfer.audio.inversion.mel_to_linear`, without its early stop)."""
        target = torch.expm1(mel * self.norm_scale + self.norm_shift).clamp_min(0)
        s = self.backproject @ target
        y = s
        t = torch.ones(1, target.shape[1])
        for _ in range(self.nnls_iters):
            s_next = (y - self.nnls_step * (self.basis.T @ (self.basis @ y - target))).clamp_min(0)
            t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            delta = s_next - s
            restart = ((y - s_next) * delta).sum(0, keepdim=True) > 0
            y = torch.where(restart, s_next, s_next + ((t - 1) / t_next) * delta)
            t = torch.where(restart, torch.ones_like(t), t_next)
            s = s_next
        return s if self.power == 1.0 else s.sqrt()

    def _phase(self, magnitude: torch.Tensor, phase: torch.Tensor, time_step: torch.Tensor,
               logmag: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame: its ``(n_freq,)`` magnitude and the previous frame's phase (centred
        convention), time-direction step and log-magnitude -> this frame's three."""
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
        across = torch.cat([torch.zeros(1),
                            torch.cumsum(0.5 * (freq_step[1:] + freq_step[:-1]), 0)])
        threshold = torch.log(peak * self.peak_tol + 1e-12)
        is_peak = log_now > threshold
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


class DDSPStreamInverter(nn.Module):
    """A domain's DDSP head, frame by frame: its decoder (the GRU carries its hidden state from
    chunk to chunk), the harmonic oscillator (a running phase) and the filtered noise
    (overlap-added), steered by the stream's YIN f0 (held through unvoiced frames, as the
    offline controls fill them) and the A-weighted loudness of the same 1024-sample frames, and
    gated as :meth:`~timbre_transfer.models.ddsp_head.DDSPHead.render` gates.

    The head runs every ``mel_stride`` mel frames (hop ``H``). The samples between two head
    frames need both (the controls are interpolated), so the first sample made lies ``H`` before
    the input and a chunk makes the samples up to its last head frame. The noise is drawn live,
    so it differs from an offline render's; a head with reverb or descriptor inputs cannot
    stream.
    """

    def __init__(self, head, transform, chunk: int):
        super().__init__()
        import librosa

        cfg = head.config
        p = transform.params
        if head.reverb is not None:
            raise ValueError("a DDSP head with reverb cannot stream (its impulse response is "
                             "longer than any block); train one with head.reverb_seconds=0")
        if cfg.descriptors:
            raise ValueError("a DDSP head conditioned on descriptors cannot stream yet; use a "
                             "plain head")
        if chunk % cfg.mel_stride:
            raise ValueError(f"the head's mel_stride {cfg.mel_stride} must divide the stream's "
                             f"chunk of {chunk} frames")
        # the decoder's layers (not the decoder: its forward is not TorchScript's business)
        d = head.decoder
        self.mel_in, self.pitch_in, self.loudness_in = d.mel_in, d.pitch_in, d.loudness_in
        self.gru, self.out, self.proj = d.gru, d.out, d.proj
        self.stride = int(cfg.mel_stride)
        self.hop = int(head.hop_length)
        self.lag = self.hop
        self.needs_f0 = True  # the head is steered by the YIN f0
        self.sample_rate = float(p.sample_rate)
        self.n_harmonics, self.n_bands = int(cfg.n_harmonics), int(cfg.n_noise_bands)
        self.hidden = int(cfg.hidden)
        self.gate_db = float(cfg.gate_db)
        self.ir_size = 2 * (self.n_bands - 1)
        self.centre = self.ir_size // 2
        self.offset = self.hop - self.hop // 2 - self.centre  # where a noise piece starts
        if self.offset < 0:
            raise ValueError(f"the head's noise filter ({self.ir_size} taps) is longer than "
                             f"twice its hop ({self.hop}); it cannot stream")
        self.seg = self.hop + self.ir_size - 1
        self.noise_fft = 1 << (self.seg - 1).bit_length()
        n = int(p.n_fft)
        # A-weighted loudness, as audio.features.a_weighted_loudness (Hann, power weights)
        freqs = torch.fft.rfftfreq(n, 1.0 / self.sample_rate).double().numpy()
        weight = torch.zeros(n // 2 + 1, dtype=torch.float64)
        weight[1:] = torch.from_numpy(10.0 ** (librosa.A_weighting(freqs[1:]) / 10.0)) * 2.0
        weight[-1] /= 2.0
        hann = torch.hann_window(n, periodic=True, dtype=torch.float64)
        weight /= n * float((hann ** 2).sum())
        self.register_buffer("loud_window", hann.float())
        self.register_buffer("loud_weight", weight.float())
        self.register_buffer("ir_window", torch.hann_window(2 * self.centre + 1, periodic=False)
                             [:self.ir_size])
        self.register_buffer("harmonics", torch.arange(1, self.n_harmonics + 1,
                                                       dtype=torch.float64))
        u = torch.arange(self.hop, dtype=torch.float32) / self.hop
        self.register_buffer("ramp", u)  # linear interpolation weight (f0, gate)
        self.register_buffer("smooth", 0.5 - 0.5 * torch.cos(math.pi * u))  # amplitudes

    @torch.jit.export
    def initial_state(self) -> Dict[str, torch.Tensor]:
        return {"ddsp.gru": torch.zeros(1, 1, self.hidden), "ddsp.f0": torch.zeros(1),
                "ddsp.amplitude": torch.zeros(1), "ddsp.gate": torch.zeros(1),
                "ddsp.distribution": torch.zeros(self.n_harmonics),
                "ddsp.phase": torch.zeros(1, dtype=torch.float64),
                "ddsp.started": torch.zeros(1),
                "ddsp.noise": torch.zeros(self.hop + self.seg)}

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, f0: torch.Tensor,
                voiced: torch.Tensor, state: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        pick = torch.arange(0, mel.shape[1], self.stride)
        frames, f0, voiced = frames[pick], f0[pick], voiced[pick]
        # f0 of unvoiced frames: the last voiced one's (the offline controls fill it likewise)
        held = state["ddsp.f0"]
        filled = []
        for i in range(f0.shape[0]):
            if bool(voiced[i] > 0):
                held = f0[i:i + 1]
            filled.append(held)
        f0 = torch.cat(filled).clamp(max=self.sample_rate / 2 - 1)
        spectrum = torch.fft.rfft(frames * self.loud_window)
        power = (spectrum.real ** 2 + spectrum.imag ** 2) @ self.loud_weight
        loudness = torch.where(power > 1e-10, 10 * torch.log10(power.clamp_min(1e-10)),
                               torch.full_like(power, -100.0))
        amplitude, distribution, noise, hidden = self._decode(mel[:, pick].T, f0, voiced,
                                                              loudness, state["ddsp.gru"])
        gate = (loudness > self.gate_db).float()
        prev_f0, prev_amp = state["ddsp.f0"], state["ddsp.amplitude"]
        prev_dist, prev_gate = state["ddsp.distribution"], state["ddsp.gate"]
        phase, noise_ola = state["ddsp.phase"], state["ddsp.noise"]
        if not bool(state["ddsp.started"] > 0):
            # the segment before the first frame lies before the input: it starts from silence
            # at the first frame's pitch, and the phase restarts at 0 on sample 0, as offline
            prev_f0 = f0[:1]
        made = []
        for i in range(f0.shape[0]):
            f0_up = prev_f0 + (f0[i] - prev_f0) * self.ramp
            amp_up = prev_amp + (amplitude[i] - prev_amp) * self.smooth
            dist_up = prev_dist + (distribution[i] - prev_dist) * self.smooth[:, None]
            keep = f0_up.double()[:, None] * self.harmonics < self.sample_rate / 2
            dist_up = dist_up * keep.float()
            total = dist_up.sum(-1, keepdim=True)
            dist_up = dist_up / torch.where(total > 0, total, torch.ones_like(total))
            omega = f0_up.double() * (2 * math.pi / self.sample_rate)
            running = torch.cumsum(omega, 0)
            base = torch.remainder(phase + running - omega, 2 * math.pi)
            waves = torch.sin(torch.remainder(base[:, None] * self.harmonics, 2 * math.pi).float())
            harmonic = amp_up * (dist_up * waves).sum(-1)
            phase = torch.remainder(phase + running[-1:], 2 * math.pi)
            if not bool(state["ddsp.started"] > 0) and i == 0:
                phase = torch.zeros_like(phase)
            noise_ola = self._add_noise(noise_ola, noise[i])
            gate_up = prev_gate + (gate[i] - prev_gate) * self.ramp
            made.append((harmonic + noise_ola[:self.hop]) * gate_up)
            noise_ola = torch.cat([noise_ola[self.hop:], torch.zeros(self.hop)])
            prev_f0, prev_amp = f0[i:i + 1], amplitude[i:i + 1]
            prev_dist, prev_gate = distribution[i], gate[i:i + 1]
        state = {"ddsp.gru": hidden, "ddsp.f0": prev_f0, "ddsp.amplitude": prev_amp,
                 "ddsp.gate": prev_gate, "ddsp.distribution": prev_dist, "ddsp.phase": phase,
                 "ddsp.noise": noise_ola, "ddsp.started": torch.ones(1)}
        return torch.cat(made), state

    def _decode(self, mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor,
                loudness: torch.Tensor, hidden: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:class:`~timbre_transfer.models.ddsp_head.DDSPDecoder` over ``N`` head frames, its
        GRU continuing from ``hidden``: amplitude ``(N,)``, distribution ``(N, K)``, noise
        ``(N, M)`` and the new hidden state."""
        pitch = torch.stack([_scale_f0(f0), voiced], -1)
        loud = ((loudness + 100.0) / 100.0)[:, None]
        feats = torch.cat([self.mel_in(mel), self.pitch_in(pitch), self.loudness_in(loud)],
                          -1)[None]
        out, hidden = self.gru(feats, hidden)
        raw = self.proj(self.out(torch.cat([out, feats], -1)))[0]
        k = self.n_harmonics
        return (exp_sigmoid(raw[:, 0]), exp_sigmoid(raw[:, 1:1 + k]),
                exp_sigmoid(raw[:, 1 + k:] - 5.0), hidden)

    def _add_noise(self, ola: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        """One frame of :func:`~timbre_transfer.models.ddsp.filtered_noise`: a block of white
        noise through the frame's linear-phase filter, overlap-added where the offline render
        puts it (``ola`` starts at the segment this frame completes)."""
        zero_phase = torch.fft.irfft(torch.complex(magnitudes, torch.zeros_like(magnitudes)),
                                     n=self.ir_size)
        ir = torch.roll(zero_phase, self.centre)[:self.ir_size] * self.ir_window
        block = torch.rand(self.hop) * 2 - 1
        piece = torch.fft.irfft(torch.fft.rfft(block, self.noise_fft)
                                * torch.fft.rfft(ir, self.noise_fft), self.noise_fft)[:self.seg]
        pad = torch.zeros(ola.shape[0] - self.offset - self.seg)
        return ola + torch.cat([torch.zeros(self.offset), piece, pad])
