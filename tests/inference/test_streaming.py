"""Streaming transfer: constant latency, block-size independence, the stages against their
offline counterparts, the exports and the errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from timbre_transfer.audio.inversion import spectral_convergence_db
from timbre_transfer.audio.pitch import MelPitch
from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.inference.stream_inverters import PGHIStreamInverter
from timbre_transfer.inference.streaming import (
    Stream,
    StreamingTransfer,
    export_onnx,
    export_torchscript,
    read_metadata,
    stream_delay,
)
from timbre_transfer.inference.transfer import TimbreTransfer

SR = 16000


class _Identity(torch.nn.Module):
    """Nets that give back their input: the stream is then analysis + NNLS + RTPGHI +
    overlap-add, which must give back the input signal."""

    def forward(self, spec, template):
        return spec


def _identity_stream(transform, block=512, context=16, template=False, octave=0,
                     register_hz=None):
    module = StreamingTransfer(_Identity(), PGHIStreamInverter(transform), "pghi", transform,
                               MelPitch.of(transform.params), "x", block, context, 4, 1.0,
                               template, octave, register_hz)
    return Stream(module)


def _tone(seconds, f0, amp=0.1):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def _mag(transform, wav):
    return transform.stft(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]).abs()


def test_delay_is_the_worst_block_end_by_hand():
    # hop 128, n_fft 1024, chunks of 4 frames (512 samples). A chunk's last frame (centre 384
    # samples after its first) needs 512 samples of future: chunk j is made once 512 j + 896
    # samples are in, and then samples before 512 (j + 1) - 512 are final.
    # Block 512: after m = 512 i samples, chunks 0..i-2 are made -> final up to 512 i - 1024.
    assert stream_delay(512, 128, 1024, 4) == 1024
    # Block 1024: m = 1024 i, chunks 0..2i-2 -> final up to 1024 i - 1024.
    assert stream_delay(1024, 128, 1024, 4) == 1024
    # Block 256: m = 512 i + 256 has only chunks 0..i-2, final up to 512 i - 512: 1280 behind.
    assert stream_delay(256, 128, 1024, 4) == 1280


def test_identity_nets_give_back_the_input_at_the_stated_delay(realaudio_dir):
    from timbre_transfer.audio.io import load_audio

    path = sorted((realaudio_dir / "violin").glob("*.flac"))[0]
    wav = load_audio(path, SR)[:3 * SR]
    transform = AudioTransform()
    with torch.no_grad():
        transform.fit_normalization(torch.log1p(transform.mel(torch.from_numpy(wav))))
    stream = _identity_stream(transform)
    out = stream.run(wav)
    assert out.shape == wav.shape
    # aligned: the magnitudes match best at lag 0, not a hop or two either way (waveforms are
    # not compared: phase reconstruction leaves each partial's phase free)
    sc = {lag: float(spectral_convergence_db(_mag(transform, wav[2048:-2048]),
                                             _mag(transform, np.roll(out, -lag)[2048:-2048])))
          for lag in (-256, -128, 0, 128, 256)}
    assert min(sc, key=sc.get) == 0, sc
    offline = transform.invert(transform(torch.from_numpy(wav)), method="pghi", length=len(wav))
    sc_offline = float(spectral_convergence_db(_mag(transform, wav[2048:-2048]),
                                               _mag(transform, offline.numpy()[2048:-2048])))
    # the causal phase costs little against offline PGHI (measured -15.9 against -17.5 dB)
    assert sc[0] < -12.0, (sc[0], sc_offline)
    assert sc[0] < sc_offline + 4.0, (sc[0], sc_offline)


def _median_f0(wav):
    from timbre_transfer.audio.f0 import track_f0

    track = track_f0(wav, SR)
    return float(2 ** np.median(np.log2(track.f0[track.voiced])))


def test_the_stream_moves_the_register_by_whole_octaves():
    """Identity nets: the stream's output is its shifted input, so its pitch is the tone's
    moved by the octaves asked (a fixed one at once; 'auto' after one second of voiced input,
    then held)."""
    transform = AudioTransform()
    wav = _tone(3.0, 220.0)
    with torch.no_grad():
        transform.fit_normalization(torch.log1p(transform.mel(torch.from_numpy(wav))))
    # measured against the unmoved stream's pitch: the mel's interpolation and the phase
    # reconstruction move a tone by a few cents either way
    base = _median_f0(_identity_stream(transform).run(wav)[SR // 2:])
    assert abs(1200 * np.log2(base / 220.0)) < 20
    up = _identity_stream(transform, octave=1).run(wav)
    # 16 c measured: one octave up, a partial's peak falls between the mel bins of the
    # linear part of the scale (below 1 kHz), and the interpolation pulls it
    assert abs(1200 * np.log2(_median_f0(up[SR // 2:]) / (2 * base))) < 25
    shift = MelPitch.of(transform.params).shift
    with torch.no_grad():  # the chunk's shift is MelPitch.shift's
        mel = transform(torch.from_numpy(wav[:SR]))
        module = _identity_stream(transform, octave=-1).module
        torch.testing.assert_close(module._shift(mel, -1),
                                   shift(mel[None, None], 0.5, module.silence)[0, 0])
    auto = _identity_stream(transform, octave="auto", register_hz=880.0)  # 2 octaves above
    out = auto.run(wav)
    assert int(auto.state["octave"]) == 0  # run() ends with flush(), which starts over
    early, late = _median_f0(out[SR // 4:3 * SR // 4]), _median_f0(out[2 * SR:])
    assert abs(1200 * np.log2(early / base)) < 15  # the first second: the input's register
    assert abs(1200 * np.log2(late / (4 * base))) < 15  # then two octaves up, held
    for block in np.split(wav[:63 * 512], 63):
        auto.process(block)
    assert int(auto.state["octave"]) == 2 and int(auto.state["voiced_count"]) == SR // 128
    with pytest.raises(ValueError, match="training register"):
        _identity_stream(transform, octave="auto")
    with pytest.raises(ValueError, match="whole number"):
        _identity_stream(transform, octave=5)


def test_yin_and_template_match_the_offline_template():
    transform = AudioTransform()
    module = _identity_stream(transform, template=True).module
    pitch = MelPitch.of(transform.params)
    for f0 in (110.0, 220.0, 440.0, 880.0):
        wav = torch.from_numpy(_tone(0.2, f0))
        frames = wav[1000:1000 + 1024 + 3 * 128].unfold(0, 1024, 128)
        hz, voiced = module._yin(frames)
        assert torch.all(1200 * torch.log2(hz / f0).abs() < 10), (f0, hz)
        assert torch.all(voiced > 0.8), voiced
        ours = module._template(hz, voiced)
        offline = pitch.template(hz[None], voiced[None])[0, 0]
        torch.testing.assert_close(ours, offline, atol=1e-5, rtol=0)
    hz, voiced = module._yin(torch.zeros(4, 1024))
    assert torch.all(voiced == 0)


def test_block_sizes_give_the_same_output(debug_checkpoint):
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    wav = _tone(1.5, 196.0)
    outs = {b: tt.stream(tt.domains[1], block=b, context=16).run(wav) for b in (256, 512, 1024)}
    for b in (256, 1024):
        np.testing.assert_allclose(outs[b], outs[512], atol=1e-5, rtol=0)
    assert np.abs(outs[512]).max() > 1e-3  # something came out


def test_process_returns_the_stream_delayed_by_its_delay(debug_checkpoint):
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    wav = _tone(1.0, 330.0)
    stream = tt.stream(tt.domains[0], block=256, context=16)
    aligned = stream.run(wav)
    stream = tt.stream(tt.domains[0], block=256, context=16)
    raw = np.concatenate([stream.process(wav[i:i + 256]) for i in range(0, len(wav) - 255, 256)])
    assert np.all(raw[:stream.delay - 512] == 0)  # nothing before the first frame's samples
    np.testing.assert_allclose(raw[stream.delay:], aligned[:len(raw) - stream.delay], atol=1e-6)
    assert stream.latency == stream.delay + 256
    assert stream.latency_ms == pytest.approx(1000 * (1280 + 256) / SR)


def test_torchscript_export_runs_without_the_package_and_matches(debug_checkpoint, tmp_path):
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    stream = tt.stream(tt.domains[1], block=512, context=16, input_dbfs=-30.0)
    path = export_torchscript(stream, tmp_path / "m.pt")
    wav = _tone(1.0, 262.0)
    np.save(tmp_path / "in.npy", wav)
    expected = np.concatenate([stream.process(wav[i:i + 512])
                               for i in range(0, len(wav) - 511, 512)])
    code = f"""
import sys
sys.modules["timbre_transfer"] = None  # any import of the package would fail
import json, numpy as np, torch
m = torch.jit.load({str(path)!r})
state = m.initial_state()
x = np.load({str(tmp_path / 'in.npy')!r})
out = []
for i in range(0, len(x) - 511, 512):
    y, state = m(torch.from_numpy(x[i:i + 512]), state)
    out.append(y.numpy())
np.save({str(tmp_path / 'out.npy')!r}, np.concatenate(out))
print(json.dumps({{"loaded": sys.modules.get("timbre_transfer") is None, "meta": m.metadata}}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["loaded"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5, rtol=0)
    meta = json.loads(report["meta"])
    assert meta == read_metadata(path) == json.loads(stream.module.metadata)
    assert (meta["sample_rate"], meta["block"], meta["latency"], meta["domain"]) == (
        SR, 512, stream.latency, tt.domains[1])
    assert meta["gain"] == pytest.approx(10 ** ((-20 + 30) / 20))


def test_onnx_export_matches_the_nets(debug_checkpoint, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    stream = tt.stream(tt.domains[0], block=512, context=16)
    path = export_onnx(stream, tmp_path / "m.onnx")
    assert read_metadata(path) == json.loads(stream.module.metadata)
    spec = torch.rand(1, 1, 128, 16)
    template = torch.zeros(1, 1, 128, 16)
    with torch.no_grad():
        expected = stream.module.nets(spec, template).numpy()
    session = ort.InferenceSession(str(path))
    # the debug model has no pitch template: its export takes the mel alone
    assert [i.name for i in session.get_inputs()] == ["spec"]
    got = session.run(None, {"spec": spec.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_bad_blocks_and_options_get_clear_errors(debug_checkpoint, tmp_path):
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    to = tt.domains[0]
    stream = tt.stream(to, block=512, context=16)
    with pytest.raises(ValueError, match="512 samples at 16000 Hz, got shape \\(256,\\)"):
        stream.process(np.zeros(256, np.float32))
    with pytest.raises(ValueError, match="got shape \\(2, 512\\)"):
        stream.process(np.zeros((2, 512), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        stream.process(np.full(512, np.nan, np.float32))
    with pytest.raises(ValueError, match="streams at 16000 Hz, got 44100 Hz"):
        tt.stream(to, sample_rate=44100)
    with pytest.raises(ValueError, match="multiple of 32"):
        tt.stream(to, block=100)
    with pytest.raises(ValueError, match="context must be a multiple of 8"):
        tt.stream(to, context=12)
    with pytest.raises(ValueError, match="cannot stream"):
        tt.stream(to, inverter="griffinlim")
    with pytest.raises(ValueError, match="no DDSP head"):
        tt.stream(to, inverter="ddsp")
    with pytest.raises(KeyError, match="unknown domain"):
        tt.stream("cello")
    # the exported module refuses a wrong block too
    path = export_torchscript(stream, tmp_path / "m.pt")
    m = torch.jit.load(str(path))
    with pytest.raises(Exception, match="expected a mono block of shape \\(512,\\)"):
        m(torch.zeros(300), m.initial_state())
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        read_metadata(tmp_path / "junk.pt")


def test_stream_and_export_commands(debug_checkpoint, tmp_path, capsys):
    from timbre_transfer.audio.io import load_audio, save_audio
    from timbre_transfer.cli import main

    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    src = save_audio(tmp_path / "in.wav", _tone(1.2, 220.0), SR)
    threads = torch.get_num_threads()
    assert main(["stream", str(debug_checkpoint), str(src), "--to", tt.domains[1], "--block",
                 "256", "--context", "16", "--out", str(tmp_path / "out.wav")]) == 0
    printed = capsys.readouterr().out
    assert "latency 96.0 ms" in printed and "real-time factor" in printed
    assert torch.get_num_threads() == threads  # the stream's one thread was given back
    assert len(load_audio(tmp_path / "out.wav", SR)) == int(1.2 * SR)
    assert main(["export", str(debug_checkpoint), "--to", tt.domains[1], "--context", "16",
                 "--out", str(tmp_path / "m.pt")]) == 0
    assert read_metadata(tmp_path / "m.pt")["domain"] == tt.domains[1]
    assert main(["stream", str(debug_checkpoint), "--to", tt.domains[1]]) == 2
    assert "give IN.wav and --out" in capsys.readouterr().err
    assert main(["stream", str(debug_checkpoint), str(src), "--to", tt.domains[1], "--threads",
                 "0", "--out", str(tmp_path / "out.wav")]) == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err
    assert torch.get_num_threads() == threads


class _FakeSoundDevice:
    """``sounddevice``'s ``Stream`` and ``sleep`` without a device: ``sleep`` feeds ``signal``
    through the callback block by block, as PortAudio would, and keeps what it writes."""

    def __init__(self, signal):
        self.signal, self.played, self.opened = signal, [], None

    def Stream(self, samplerate, blocksize, channels, dtype, callback):
        import contextlib

        self.opened = dict(samplerate=samplerate, blocksize=blocksize, channels=channels,
                           dtype=dtype)
        self.callback = callback
        return contextlib.nullcontext()

    def sleep(self, ms):
        block = self.opened["blocksize"]
        n = min(len(self.signal) // block, int(ms * self.opened["samplerate"] / 1000) // block)
        for i in range(n):
            indata = self.signal[i * block:(i + 1) * block, None].copy()
            outdata = np.full((block, 1), np.nan, np.float32)
            self.callback(indata, outdata, block, None, None)
            self.played.append(outdata[:, 0].copy())


def test_live_stream_feeds_the_device_callback(debug_checkpoint, monkeypatch, capsys):
    from timbre_transfer.cli import main

    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    to = tt.domains[1]
    wav = _tone(1.0, 247.0)
    device = _FakeSoundDevice(wav)
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    assert main(["stream", str(debug_checkpoint), "--to", to, "--block", "256", "--context",
                 "16", "--live", "--seconds", "0.5"]) == 0
    assert "latency 96.0 ms plus the device's buffers" in capsys.readouterr().out
    assert device.opened == dict(samplerate=SR, blocksize=256, channels=1, dtype="float32")
    assert len(device.played) == int(0.5 * SR) // 256  # --seconds stops it
    # the device plays what the stream makes of the same blocks (input at the training level)
    stream = tt.stream(to, block=256, context=16)
    expected = [stream.process(wav[i * 256:(i + 1) * 256]) for i in range(len(device.played))]
    np.testing.assert_allclose(np.concatenate(device.played), np.concatenate(expected),
                               atol=1e-6, rtol=0)
    assert np.abs(np.concatenate(device.played)).max() > 1e-4
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed
    assert main(["stream", str(debug_checkpoint), "--to", to, "--live"]) == 2
    assert "--live needs the sounddevice package" in capsys.readouterr().err


def _template_model(source_filter: bool = False) -> TimbreTransfer:
    """A tiny random model with a pitch template (and a source-filter output), domains a, b."""
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    model = TimbreModel(ModelConfig(dim=4, n_res_encoder=1, n_res_shared=1, n_res_generator=1,
                                    pitch_template=True, source_filter=source_filter),
                        ["a", "b"])
    transform = AudioTransform()
    transform.norm_scale.fill_(4.0)
    model.set_levels(transform)
    return TimbreTransfer(model, transform, ["a", "b"], window=32, device="cpu")


@pytest.mark.parametrize("source_filter", [False, True])
def test_a_model_with_pitch_template_streams_and_exports(tmp_path, source_filter):
    """The notes path (YIN -> template, and the comb for a source-filter model -> generator)
    under the same guarantees."""
    tt = _template_model(source_filter)
    wav = _tone(1.0, 247.0)
    outs = {b: tt.stream("b", block=b, context=16).run(wav) for b in (256, 512)}
    np.testing.assert_allclose(outs[256], outs[512], atol=1e-5, rtol=0)
    stream = tt.stream("b", block=512, context=16)
    path = export_torchscript(stream, tmp_path / "m.pt")
    m = torch.jit.load(str(path))
    state, ours = m.initial_state(), []
    for i in range(0, len(wav) - 511, 512):
        y, state = m(torch.from_numpy(wav[i:i + 512]), state)
        ours.append(y.numpy())
    expected = [stream.process(wav[i:i + 512]) for i in range(0, len(wav) - 511, 512)]
    np.testing.assert_allclose(np.concatenate(ours), np.concatenate(expected), atol=1e-5, rtol=0)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(export_onnx(stream, tmp_path / "m.onnx")))
    assert [i.name for i in session.get_inputs()] == ["spec", "template"]
    spec, template = torch.rand(1, 1, 128, 16), torch.rand(1, 1 + source_filter, 128, 16)
    with torch.no_grad():
        expected = stream.module.nets(spec, template).numpy()
    got = session.run(None, {"spec": spec.numpy(), "template": template.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def _quiet_noise_head():
    """A random DDSP head whose noise bands are silenced (bias -50: magnitudes ~1e-7), so that
    its audio is the harmonic part alone, which is deterministic."""
    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    head = DDSPHead(128, SR, 128, DDSPConfig(hidden=32)).eval()
    with torch.no_grad():
        head.decoder.proj.bias[1 + head.config.n_harmonics:] = -50.0
    return head


def test_ddsp_inverter_matches_the_offline_head_on_the_same_controls():
    from timbre_transfer.audio.features import a_weighted_loudness
    from timbre_transfer.inference.stream_inverters import DDSPStreamInverter
    from timbre_transfer.models.ddsp import harmonic_synth, upsample

    transform = AudioTransform()
    transform.norm_scale.fill_(4.0)
    head = _quiet_noise_head()
    wav = np.concatenate([np.zeros(2000, np.float32), _tone(1.0, 233.0),
                          _tone(0.5, 311.0, 0.05)])
    module = StreamingTransfer(_Identity(), DDSPStreamInverter(head, transform, 4), "ddsp",
                               transform, MelPitch.of(transform.params), "x", 512, 16, 4, 1.0,
                               False)
    stream = Stream(module)
    assert stream.delay == 768 and stream.latency_ms == pytest.approx(80.0)
    out = stream.run(wav)
    # offline, from the same analysis: YIN on the same frames, f0 held through unvoiced ones
    n_head = 1 + len(wav) // 256
    padded = np.concatenate([np.zeros(512, np.float32), wav, np.zeros(1024, np.float32)])
    frames = torch.from_numpy(padded).unfold(0, 1024, 256)[:n_head]
    with torch.no_grad():
        f0, voiced = module._yin(frames)
    held, filled = 0.0, []
    for hz, v in zip(f0.tolist(), voiced.tolist()):
        held = hz if v > 0 else held
        filled.append(held)
    f0 = torch.tensor(filled)[None]
    loudness = torch.from_numpy(a_weighted_loudness(wav, SR, 1024, 256)).float()[None]
    mel = head.frames(transform(torch.from_numpy(wav))[None])[:, :n_head]
    with torch.no_grad():
        amplitude, distribution, _, _ = head.decoder(mel, f0, voiced[None], loudness)
        harmonic, _ = harmonic_synth(f0, amplitude, distribution, SR, 256, len(wav))
    gate = upsample((loudness > head.config.gate_db).float(), len(wav), 256)
    expected = (harmonic * gate)[0].numpy()
    assert np.abs(expected).max() > 0.01
    # the last head frame's interpolation differs (offline holds it, the stream reads ahead)
    np.testing.assert_allclose(out[:-512], expected[:-512], atol=2e-4, rtol=0)


def test_ddsp_stream_is_block_size_independent_and_exports(tmp_path):
    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    tt = _template_model()
    tt.ddsp["b"] = DDSPHead(128, SR, 128, DDSPConfig(hidden=32)).eval()
    wav = _tone(1.0, 247.0)
    outs = {}
    for b in (256, 512, 1024):
        torch.manual_seed(1)  # the noise is drawn live, one block per head frame, in order
        outs[b] = tt.stream("b", inverter="ddsp", block=b, context=16).run(wav)
    for b in (256, 1024):
        np.testing.assert_allclose(outs[b], outs[512], atol=1e-5, rtol=0)
    stream = tt.stream("b", inverter="ddsp", block=512, context=16)
    assert stream.latency == 768 + 512
    m = torch.jit.load(str(export_torchscript(stream, tmp_path / "m.pt")))
    assert json.loads(m.metadata)["inverter"] == "ddsp"
    state, ours, expected = m.initial_state(), [], []
    torch.manual_seed(2)
    for i in range(0, len(wav) - 511, 512):
        y, state = m(torch.from_numpy(wav[i:i + 512]), state)
        ours.append(y.numpy())
    torch.manual_seed(2)
    expected = [stream.process(wav[i:i + 512]) for i in range(0, len(wav) - 511, 512)]
    np.testing.assert_allclose(np.concatenate(ours), np.concatenate(expected), atol=1e-5, rtol=0)


def test_the_stream_autotunes_and_silences_quiet_passages(tmp_path):
    """--autotune and --quiet, streamed: a DDSP head renders the autotuned YIN f0 (a vibrato
    lands on its nearest semitone), and a passage 30 dB under the loudest frame so far comes
    out silent at --quiet 20 while the loud one plays; both survive TorchScript."""
    from timbre_transfer.audio.f0 import track_f0
    from timbre_transfer.audio.performance import Performance
    from timbre_transfer.inference.stream_inverters import DDSPStreamInverter

    transform = AudioTransform()
    transform.norm_scale.fill_(4.0)
    t = np.arange(2 * SR) / SR
    f0 = 440.0 * 2 ** (0.2 / 12 + 0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))  # 20 c +- 30 c
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = (0.1 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)
    wav[SR:] *= 10 ** (-30 / 20)  # loud enough for the head's own gate (-70 dB) to play it

    from timbre_transfer.models.ddsp_head import DDSPConfig, DDSPHead

    # four harmonics and no noise: the f0 tracker hears the oscillator's fundamental
    head = DDSPHead(128, SR, 128, DDSPConfig(hidden=8, n_harmonics=4, n_noise_bands=5)).eval()
    with torch.no_grad():
        head.decoder.proj.bias[1 + 4:] = -50.0

    def stream(performance):
        module = StreamingTransfer(
            _Identity(), DDSPStreamInverter(head, transform, 4), "ddsp",
            transform, MelPitch.of(transform.params), "x", 512, 16, 4, 1.0, False,
            autotune=performance.autotune, quiet_db=performance.quiet_db or 0.0)
        return Stream(module)

    plain = stream(Performance()).run(wav)
    tuned = stream(Performance(autotune=1.0, quiet_db=20.0)).run(wav)
    cents = lambda out: 1200 * np.log2(track_f0(out[SR // 4:SR - SR // 8], SR, 160, "pyin").f0
                                       / 440.0)
    # the vibrato's +-30 c become a steady A4 on every frame
    assert np.nanmax(np.abs(cents(tuned))) < 10 < np.nanmax(np.abs(cents(plain)))
    quiet = slice(SR + SR // 8, None)  # past the latency and the fade
    assert np.sqrt(np.mean(plain[quiet] ** 2)) > 1e-4 and np.all(tuned[quiet] == 0)
    scripted = torch.jit.script(stream(Performance(autotune=1.0, quiet_db=20.0)).module)
    assert json.loads(scripted.metadata)["quiet_db"] == 20.0
