"""``TimbreTransfer``: a trained checkpoint applied to audio of any length.

Long inputs go through the nets in overlapped windows of the training crop size (see
:func:`translate_windowed`): the generators and the encoder normalise every feature map by its own
mean and variance (InstanceNorm), so a net run on a whole 5-minute file would give each frame
statistics from silences and loud passages minutes away, which no training crop ever saw, and its
memory would grow with the file.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from timbre_transfer.audio.features import frame_count
from timbre_transfer.audio.performance import Performance, gate
from timbre_transfer.names import DDSP, DEFAULT_F0_TRACKER, DEFAULT_OCTAVE, f0_tracker_mismatch

#: windows of this many training crops, at half-window hop. Measured (docs/transfer.md) on a
#: trained cpu-small model: 1 and 2 crops tie for consistency, 4 crops are worse, and all are as
#: close to the ground truth as the whole file; 1 crop is what training saw
WINDOW_CROPS = 1
#: frames of mel put through the nets at once (several windows in one batch); bounds memory
BATCH_FRAMES = 2048
#: an output written to a file is scaled down to this peak when it would exceed it
PEAK_LIMIT = 0.99
#: inputs whose pitch/loudness analyses are kept (evaluation transfers each held-out clip of a
#: domain to every target in turn; a few floats per frame each)
CONTROLS_KEPT = 64


def window_weights(window: int, first: bool, last: bool) -> torch.Tensor:
    """``(window,)`` cross-fade weights: a periodic Hann window, whose copies at hop
    ``window // 2`` sum to one, with the outer half flat on a file's first and last window."""
    n = torch.arange(window, dtype=torch.float32)
    w = 0.5 - 0.5 * torch.cos(2 * math.pi * n / window)
    half = window // 2
    if first:
        w[:half] = 1.0
    if last:
        w[half:] = 1.0
    return w


@torch.no_grad()
def translate_windowed(model, spec: torch.Tensor, to: Sequence[str], window: int | None,
                       batch_frames: int = BATCH_FRAMES, hop: int | None = None,
                       pitch: torch.Tensor | None = None) -> torch.Tensor:
    """Translate one normalised mel ``(F, T)`` into each domain of ``to``; returns
    ``(len(to), F, T)``, clamped to [0, 1].

    With ``window`` frames (a positive multiple of ``2 * model.downsample_factor``), the input is
    cut into windows of ``window`` frames at ``hop`` (default ``window // 2``; a multiple of the
    stride, at most ``window // 2``), each translated on its own
    (so InstanceNorm sees ``window`` frames, as in training), and the outputs are overlap-added
    with Hann weights normalised by their sum. Window starts are multiples of the hop, hence of
    the nets' stride, so a frame keeps its phase on the stride grid; the last window is moved
    left to end at the input's end (rounded up to the stride) instead of reading padding.
    Windows are encoded once and batched ``batch_frames // window`` at a time, so memory is
    bounded by the batch, not by the input length. An input of at most ``window`` frames goes
    through in one pass, exactly as :meth:`TimbreModel.translate` would.

    ``window=None`` runs the whole input in one pass (memory grows with its length and every
    frame depends on the whole input): the behaviour before windows, kept for comparison.

    ``pitch``: the notes to play, for a model with ``pitch_template``: the ``(F, T)`` harmonic
    template, or ``(C, F, T)`` (the template and, for a source-filter model, the comb), cut
    into the same windows.
    """
    if spec.dim() != 2 or 0 in spec.shape:
        raise ValueError(f"expected a non-empty (F, T) mel, got shape {tuple(spec.shape)}")
    if pitch is not None:
        pitch = pitch[None] if pitch.dim() == 2 else pitch
        if pitch.dim() != 3 or pitch.shape[1:] != spec.shape:
            raise ValueError(f"the notes {tuple(pitch.shape)} must match the mel "
                             f"{tuple(spec.shape)}")
    domains = list(to)
    if not domains:
        raise ValueError("give at least one target domain")
    for d in domains:
        model._check_domain(d)
    stride = 2 * model.downsample_factor
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < stride or window % stride):
        raise ValueError(f"window must be a positive multiple of {stride} frames (twice the "
                         f"nets' stride) or None, got {window!r}")
    n_f, n_t = spec.shape
    if window is None or n_t <= window:
        x = spec[None, None]
        p = None if pitch is None else model.pad_to_stride(pitch[None])
        z, crop = _encode(model, x)
        return torch.cat([model.decode(z, d, p)[:, :, :n_f, :crop]
                          for d in domains]).squeeze(1).clamp(0, 1)
    hop = window // 2 if hop is None else hop
    if hop < 1 or hop > window // 2 or hop % model.downsample_factor:
        raise ValueError(f"hop must be a positive multiple of {model.downsample_factor} frames "
                         f"and at most window // 2 = {window // 2}, got {hop}")
    end = -(-n_t // model.downsample_factor) * model.downsample_factor
    starts = list(range(0, end - window, hop)) + [end - window]
    from timbre_transfer.models.multidomain import _extend_right

    out = spec.new_zeros(len(domains), n_f, end)
    total = spec.new_zeros(end)
    weights = {(a, b): window_weights(window, a, b).to(spec) for a in (0, 1) for b in (0, 1)}
    per_batch = max(1, batch_frames // window)
    for b in range(0, len(starts), per_batch):
        chunk = starts[b:b + per_batch]
        # (n, 1, F, window); only the last window can reach past the input (< stride frames)
        x = torch.stack([_extend_right(spec[:, s:s + window], 1, window) for s in chunk])[:, None]
        z, _ = _encode(model, x)
        p = None
        if pitch is not None:
            p = torch.stack([_extend_right(pitch[..., s:s + window], 2, window) for s in chunk])
            p = model.pad_to_stride(p)
        for i, d in enumerate(domains):
            y = model.decode(z, d, p)[:, 0, :n_f, :window]  # (n, F, window)
            for k, s in enumerate(chunk):
                w = weights[s == 0, s == starts[-1]]
                out[i, :, s:s + window] += y[k] * w
                if i == 0:
                    total[s:s + window] += w
    return out.div_(total).clamp_(0, 1)[:, :, :n_t]


def _encode(model, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``mu`` of ``(B, 1, F, T)`` padded as :meth:`TimbreModel.translate` pads; and ``T``."""
    return model.encode(model.pad_to_stride(x)).mu, x.shape[3]


def limit_peak(wav: np.ndarray, peak: float = PEAK_LIMIT) -> tuple[np.ndarray, float]:
    """Scale ``wav`` down so that its peak is at most ``peak``; returns it and the dB removed
    (0.0 when it already fits)."""
    top = float(np.abs(wav).max()) if wav.size else 0.0
    if top <= peak:
        return wav, 0.0
    return (wav * (peak / top)).astype(wav.dtype), 20 * math.log10(top / peak)


def output_paths(inputs: Sequence[str | Path], targets: Sequence[str],
                 out_dir: str | Path) -> dict[tuple[Path, str], Path]:
    """``{(input, target): out_dir/<stem>_to_<target>.wav}`` for every pair.

    Raises:
        ValueError: two inputs would write the same file (same stem, compared case-insensitively
            as macOS and Windows do), naming both; nothing has been written.
    """
    paths, owner = {}, {}
    for p in map(Path, inputs):
        for t in targets:
            out = Path(out_dir) / f"{p.stem}_to_{t}.wav"
            key = out.name.casefold()
            if key in owner and owner[key] != p:
                raise ValueError(
                    f"inputs {owner[key]} and {p} would both be written to {out}; transfer them "
                    "in separate runs with different --out folders, or rename one")
            if key in owner:
                raise ValueError(f"input {p} is given twice")
            owner[key] = p
            paths[p, t] = out
    return paths


class TimbreTransfer:
    """Turn audio into any trained domain.

    Example:
        >>> tt = TimbreTransfer.from_checkpoint("runs/demo/checkpoints/latest.pt")
        >>> out = tt.transfer(wav, sample_rate=44100, to="violin")   # (T',) at tt.sample_rate

    The input's mel goes through the nets in overlapped, cross-faded windows of ``window``
    frames (the training crop size when loaded from a checkpoint; see :func:`translate_windowed`).
    The input is scaled by one gain to the training data's level (``target_dbfs`` RMS, peak at
    most 0.99) and the output by the inverse of that gain. That undoes the level change; it does
    not measure or match the output's loudness to the input's.
    """

    def __init__(self, model, transform, domains: list[str], target_dbfs: float = -20.0,
                 device: str | torch.device = "cpu", step: int | None = None,
                 centroids: dict[str, torch.Tensor] | None = None, window: int | None = 128,
                 pitch_medians: dict[str, float | None] | None = None,
                 f0_tracker: str = DEFAULT_F0_TRACKER):
        """``window``: frames per window of :func:`translate_windowed` (:meth:`from_checkpoint`
        sets the training crop size); None puts each input through the nets whole.
        ``pitch_medians``: each domain's median training f0 in Hz, for ``octave="auto"``.
        ``f0_tracker``: what reads the input's pitch for the pitch template
        (:func:`~timbre_transfer.audio.f0.track_f0`): the tracker the model was trained on."""
        from timbre_transfer.audio.pitch import MelPitch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.transform = transform.to(self.device)
        self.domains = list(domains)
        self.target_dbfs = target_dbfs
        self.step = step  # training steps behind the weights, when the checkpoint says
        # each domain's running mean latent ``(C,)`` (channel means), when training kept them
        self.centroids = centroids or {}
        self.ddsp = {}  # domain -> DDSPHead, see attach_ddsp
        # frames per window of translate_windowed (None: the whole input at once)
        self.window = window
        self.pitch_medians = dict(pitch_medians or {})
        self.f0_tracker = f0_tracker
        self.mel_pitch = MelPitch.of(transform.params).to(self.device)
        # recent inputs' analyses: evaluation transfers each clip to every target
        self._controls: OrderedDict = OrderedDict()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        f0_tracker: str | None = None):
        """Rebuild model and transform from a checkpoint alone (``weights_only=True``, strict);
        see :func:`timbre_transfer.checkpoint.load_model`.

        ``f0_tracker``: read the input's pitch with this tracker instead of the one the model
        was trained on (None); another one than the model's warns, since a model with the pitch
        template is conditioned on its tracker's voicing."""
        from timbre_transfer.audio.f0 import check_tracker
        from timbre_transfer.checkpoint import load_model

        saved = load_model(path)
        if f0_tracker is None:
            f0_tracker = saved.f0_tracker
        elif check_tracker(f0_tracker) != saved.f0_tracker and saved.model.config.pitch_template:
            warnings.warn(f0_tracker_mismatch(
                saved.f0_tracker, f0_tracker, str(path),
                f"transfers with --f0-tracker {saved.f0_tracker} read the pitch as it learnt"),
                stacklevel=2)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        stride = 2 * saved.model.downsample_factor  # the crop, rounded up to what windows allow
        window = -(-saved.crop_frames * WINDOW_CROPS // stride) * stride
        tt = cls(saved.model, saved.transform, saved.domains, saved.target_dbfs, device,
                 saved.step, saved.centroids, window, saved.pitch_medians, f0_tracker)
        for i, head in enumerate(saved.ddsp_heads):  # bundled by `bundle`
            tt.attach_ddsp_payload(head, f"{path} (DDSP head {i})")
        return tt

    @classmethod
    def pretrained(cls, name: str, device: str | torch.device | None = None,
                   f0_tracker: str | None = None):
        """A model shipped inside the package, by name (``timbre-transfer models`` lists
        them); :meth:`from_checkpoint` on its weights. No training and no network needed.

        Raises:
            ValueError: no shipped model has that name (the message lists those that do).
        """
        from timbre_transfer.pretrained import resolve

        return cls.from_checkpoint(resolve(name), device, f0_tracker)

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
        from timbre_transfer.checkpoint import read_checkpoint

        return self.attach_ddsp_payload(read_checkpoint(path, map_location=self.device), str(path))

    def attach_ddsp_payload(self, blob: dict, where: str) -> list[str]:
        """:meth:`attach_ddsp` for a head checkpoint already read; ``where`` names it in errors."""
        from timbre_transfer.checkpoint import ddsp_head_from_payload

        head, domains, transform = ddsp_head_from_payload(blob, where, self.device)
        if transform != self.transform.to_dict():
            raise ValueError(f"{where} was trained on mels of another transform or normalisation "
                             "than this model's; train the head on the model's feature store")
        for domain in domains:
            self.check_domain(domain)
            self.ddsp[domain] = head
        return domains

    def check_store(self, store, domains: Sequence[str] | None = None) -> None:
        """Raise ValueError unless ``store`` (a FeatureStore) was analysed with this model's
        transform (parameters and normalisation) and holds every domain of the model (or of
        ``domains``)."""
        if store.transform.to_dict() != self.transform.to_dict():
            raise ValueError(f"{store.root} was prepared with another transform or normalisation "
                             "than this model was trained with; evaluate on the model's own store "
                             "or one prepared --like it")
        missing = [d for d in (self.domains if domains is None else domains)
                   if d not in store.domains]
        if missing:
            raise ValueError(f"{store.root} lacks the model's domains {missing}")

    def transfer(self, wav, sample_rate: int, to: str, inverter: str = "pghi+gla",
                 pitch_shift: float = 0.0, loudness_shift: float = 0.0,
                 octave: int | str = DEFAULT_OCTAVE, controls: dict[str, float] | None = None,
                 performance: Performance | None = None) -> np.ndarray:
        """``(T,)`` audio at ``sample_rate`` -> ``(T',)`` float32 in domain ``to``, at
        :attr:`sample_rate`, with the input's duration; see :meth:`transfer_many`."""
        return self.transfer_many(wav, sample_rate, [to], inverter, pitch_shift,
                                  loudness_shift, octave, controls, performance)[to]

    def source_controls(self, wav: np.ndarray, n_frames: int):
        """The performance controls of ``wav`` (already at :attr:`sample_rate` and level) on
        its ``n_frames`` mel frames, analysed as ``prepare`` analyses training clips. Recent
        inputs' are kept: a clip transferred to several targets is analysed once."""
        from timbre_transfer.audio.features import extract_controls
        from timbre_transfer.data.prepare import CONTROL_STRIDE

        def analyse():
            hop = self.transform.params.hop_length * CONTROL_STRIDE
            controls = extract_controls(wav, self.sample_rate, hop, tracker=self.f0_tracker)
            return controls.resample(CONTROL_STRIDE, n_frames)

        return self.cached(("source", n_frames), wav, analyse)

    def cached(self, kind: tuple, wav: np.ndarray, analyse):
        """``analyse()`` of ``wav``, kept for the last :data:`CONTROLS_KEPT` (kind, input)s
        (the renderers keep their analyses here too)."""
        key = (*kind, hashlib.blake2b(wav.tobytes(), digest_size=16).hexdigest())
        if key in self._controls:
            self._controls.move_to_end(key)
        else:
            self._controls[key] = analyse()
            while len(self._controls) > CONTROLS_KEPT:
                self._controls.popitem(last=False)
        return self._controls[key]

    def notes(self, wav: np.ndarray, n_frames: int, octave: int = 0,
              performance: Performance | None = None) -> torch.Tensor | None:
        """The ``(C, n_mels, n_frames)`` notes of ``wav``'s pitch (moved by ``octave``, played
        as ``performance`` says) for a model with ``pitch_template`` (:meth:`MelPitch.notes`:
        the harmonic template, and for a source-filter model the comb); None for a model
        without."""
        if not self.model.config.pitch_template:
            return None
        source = self.source_controls(np.asarray(wav, dtype=np.float32), n_frames)
        if performance is not None:
            source = performance.apply(source)
        tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)[None]
        return self.mel_pitch.notes(tensor(source.f0_hz * 2.0 ** octave),
                                    tensor(source.voiced_prob),
                                    self.model.config.source_filter)[0]

    def resolve_octave(self, octave: int | str, to: str, source_f0: np.ndarray) -> int:
        """``octave`` as a whole number of octaves for target ``to``: an int as given, or for
        ``"auto"`` the whole number of octaves that moves the source's median f0 (over its
        voiced frames ``source_f0``) closest to the target's training median.

        ``"auto"`` is 0 for an input with no voiced frame (nothing to move) and, with a
        warning, for a target whose training register the checkpoint does not record."""
        if octave != "auto":
            if isinstance(octave, bool) or not isinstance(octave, (int, np.integer)):
                raise ValueError("octave must be a whole number of octaves or 'auto', got "
                                 f"{octave!r}")
            return int(octave)
        target = self.pitch_medians.get(to)
        if target is None:
            warnings.warn(f"octave 'auto' keeps the source's register for {to!r}: this "
                          "checkpoint does not record its training register (trained before "
                          "0.2.0, or no voiced training frame)", stacklevel=2)
            return 0
        if source_f0.size == 0:
            return 0
        return int(round(math.log2(target / float(np.median(source_f0)))))

    def applied_octaves(self, wav, sample_rate: int, targets: Sequence[str],
                        octave: int | str = DEFAULT_OCTAVE) -> dict[str, int]:
        """The whole octaves :meth:`transfer_many` moves ``wav`` by for each target, with the
        same arguments (cheap after a transfer of the same input: the analysis is cached)."""
        level, gain = self._at_training_level(wav, sample_rate)
        if not gain:
            return {to: 0 for to in targets}
        return self._octaves(level, frame_count(len(level), self.transform.params.hop_length),
                             list(dict.fromkeys(targets)), octave)

    def _at_training_level(self, wav, sample_rate: int) -> tuple[np.ndarray, float]:
        """``wav`` at :attr:`sample_rate`, scaled by one gain to the training level, and the
        gain (0 for silence, which stays as it is)."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"expected mono audio of shape (T,), got {wav.shape}")
        if sample_rate != self.sample_rate:
            import librosa

            wav = librosa.resample(wav, orig_sr=sample_rate, target_sr=self.sample_rate,
                                   res_type="soxr_hq").astype(np.float32)
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if rms < 1e-8:
            return wav, 0.0
        gain = 10 ** (self.target_dbfs / 20) / rms
        gain = min(gain, 0.99 / float(np.abs(wav).max()))
        return (wav * gain).astype(np.float32), gain

    def _octaves(self, level: np.ndarray, n_frames: int, targets: list[str],
                 octave: int | str) -> dict[str, int]:
        voiced_f0 = np.zeros(0)
        if octave == "auto":
            source = self.source_controls(level, n_frames)
            voiced_f0 = source.f0_hz[source.voiced]
        return {to: self.resolve_octave(octave, to, voiced_f0) for to in targets}

    @torch.no_grad()
    def transfer_many(self, wav, sample_rate: int, targets: Sequence[str],
                      inverter: str = "pghi+gla", pitch_shift: float = 0.0,
                      loudness_shift: float = 0.0, octave: int | str = DEFAULT_OCTAVE,
                      controls: dict[str, float] | None = None,
                      performance: Performance | None = None) -> dict[str, np.ndarray]:
        """``(T,)`` audio at ``sample_rate`` -> ``{target: (T',) float32}`` at
        :attr:`sample_rate`, with the input's duration. The input is resampled, analysed and
        encoded once for all targets.

        The input is scaled by one gain ``g`` to ``target_dbfs`` RMS (peak at most 0.99) as the
        training data was, and each output by ``1 / g``. Outputs are not peak-limited: one can
        exceed full scale when the transfer has a higher crest factor than the input
        (:meth:`transfer_file` limits what it writes).

        ``inverter`` picks the renderer (:func:`~timbre_transfer.inference.render.renderer_for`):
        a phase reconstruction, or :data:`~timbre_transfer.names.DDSP`, the domain's DDSP head
        (see :meth:`attach_ddsp`) steered by the source's f0 and loudness, optionally shifted by
        ``pitch_shift`` semitones and ``loudness_shift`` dB (DDSP only).

        ``octave`` moves the performance into another register, for every inverter: the input's
        mel is shifted by that many octaves along the mel axis before encoding (and, for a
        model with ``pitch_template``, the notes it is told to play too; the DDSP head renders
        at the shifted f0). ``"auto"``, the default, picks per target the whole number of octaves
        closest to the target's training register (:meth:`resolve_octave`), as DDSP's
        timbre-transfer demo does; :meth:`applied_octaves` says which. 0 keeps the source's
        register.

        ``controls`` turns timbre knobs, e.g. ``{"brightness": 0.5, "noisiness": -6}``
        (octaves, dB; :data:`~timbre_transfer.names.KNOBS` lists each knob's unit, range and the
        inverters that support it).

        ``performance`` (:class:`~timbre_transfer.audio.performance.Performance`) plays the
        source differently, for every inverter: ``autotune`` pulls the f0 the notes are drawn
        from (and a DDSP head renders) toward the nearest semitone; ``quiet_db`` silences the
        output where the input is that many dB below its loudest frame.
        """
        from timbre_transfer.audio.timbre_controls import check_controls
        from timbre_transfer.inference.render import renderer_for

        timbre = check_controls(controls, inverter)
        targets = list(dict.fromkeys(targets))
        if not targets:
            raise ValueError(f"give at least one target domain; domains: {self.domains}")
        renderer = renderer_for(self, inverter, targets)
        if (pitch_shift or loudness_shift) and not renderer.shifts:
            raise ValueError(f"pitch and loudness shifts need the DDSP head (inverter {DDSP!r})")
        if (performance is not None and performance.autotune and not renderer.shifts
                and not self.model.config.pitch_template):
            raise ValueError("autotune moves the notes a model with the pitch template plays, or "
                             f"the f0 a DDSP head renders (inverter {DDSP!r}); this model has no "
                             "template")
        level, gain = self._at_training_level(wav, sample_rate)
        if not gain:  # silence in, silence out
            return {to: np.zeros_like(level) for to in targets}
        spec = self.transform(torch.from_numpy(level).to(self.device))
        shifts = self._octaves(level, spec.shape[-1], targets, octave)
        out_specs = {}
        for n in sorted(set(shifts.values())):  # one pass per register
            group = [to for to in targets if shifts[to] == n]
            moved = spec
            if n:
                silence = float(-self.transform.norm_shift / self.transform.norm_scale)
                moved = self.mel_pitch.shift(spec[None, None], 2.0 ** n, silence)[0, 0]
            notes = self.notes(level, spec.shape[-1], n, performance)
            out_specs.update(zip(group, translate_windowed(self.model, moved, group, self.window,
                                                           pitch=notes)))
        outs = {to: (renderer.render(out_specs[to], level, to, pitch_shift + 12 * shifts[to],
                                     loudness_shift, timbre, performance) / gain)
                for to in targets}
        if performance is not None and performance.quiet_db is not None:
            quiet = performance.quiet_frames(
                self.source_controls(level, spec.shape[-1]).loudness_db)
            outs = {to: gate(out, quiet, self.transform.params.hop_length)
                    for to, out in outs.items()}
        return {to: out.astype(np.float32) for to, out in outs.items()}

    @torch.no_grad()
    def render(self, spec: torch.Tensor, level: np.ndarray, domain: str,
               inverter: str = "pghi+gla", pitch_shift: float = 0.0,
               loudness_shift: float = 0.0, controls: dict[str, float] | None = None
               ) -> np.ndarray:
        """A ``(n_mels, T)`` normalised mel of ``domain`` -> audio as long as ``level``, the
        performance it renders (at :attr:`sample_rate` and training level), by the renderer of
        ``inverter`` (:mod:`timbre_transfer.inference.render`); for the DDSP one, the domain's
        DDSP head steered by ``level``'s f0 and loudness (moved by ``pitch_shift`` semitones
        and ``loudness_shift`` dB). ``controls``: timbre knobs, as :meth:`transfer_many` takes
        them."""
        from timbre_transfer.audio.timbre_controls import check_controls
        from timbre_transfer.inference.render import renderer_for

        timbre = check_controls(controls, inverter)
        return renderer_for(self, inverter, [domain]).render(spec, level, domain, pitch_shift,
                                                             loudness_shift, timbre)

    def stream(self, to: str, inverter: str = "pghi", block: int = 512,
               context: int | None = None, input_dbfs: float | None = None,
               sample_rate: int | None = None, compiled: bool = True,
               octave: int | str = DEFAULT_OCTAVE, performance: Performance | None = None):
        """A live transfer into ``to``, a
        :class:`~timbre_transfer.inference.streaming.Stream`: see
        :func:`~timbre_transfer.inference.streaming.open_stream`, which takes the same
        arguments."""
        from timbre_transfer.inference.streaming import open_stream

        return open_stream(self, to, inverter, block, context, input_dbfs, sample_rate, compiled,
                           octave, performance)

    def transfer_file(self, path: str | Path, to: str | Sequence[str], out_dir: str | Path,
                      inverter: str = "pghi+gla", pitch_shift: float = 0.0,
                      loudness_shift: float = 0.0, octave: int | str = DEFAULT_OCTAVE,
                      controls: dict[str, float] | None = None,
                      performance: Performance | None = None) -> Path | dict[str, Path]:
        """Transfer one file to one target or several (loaded and encoded once); writes
        ``out_dir/<stem>_to_<domain>.wav`` for each. Returns its path for one target given as a
        string, ``{domain: path}`` for a sequence of targets.

        An output that would exceed full scale is scaled down to a peak of
        :data:`PEAK_LIMIT` (rather than clipped), with a RuntimeWarning naming the file and the
        dB removed.
        """
        from timbre_transfer.audio.io import load_audio, save_audio

        path = Path(path)
        targets = [to] if isinstance(to, str) else list(to)
        names = output_paths([path], targets, out_dir)
        outs = self.transfer_many(load_audio(path, self.sample_rate), self.sample_rate, targets,
                                  inverter, pitch_shift, loudness_shift, octave, controls,
                                  performance)
        written = {}
        for domain, out in outs.items():
            target = names[path, domain]
            out, reduced = limit_peak(out)
            if reduced > 0:
                peak = reduced + 20 * math.log10(PEAK_LIMIT)
                warnings.warn(f"{target}: the transfer of {path} would peak at {peak:+.1f} dBFS; "
                              f"scaled down by {reduced:.1f} dB (to a peak of {PEAK_LIMIT}) "
                              "instead of clipping", RuntimeWarning, stacklevel=2)
            written[domain] = save_audio(target, out, self.sample_rate)
        return written[to] if isinstance(to, str) else written
