"""The listening page, checked in a real browser: headless Chromium (Debian's chromium and
chromium-driver packages) driven by selenium, the site served over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import headless_chromium
from timbre_transfer.names import format_octaves

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "data" / "test_artifacts"  # git-ignored; the screenshot lands here


@pytest.fixture(scope="module")
def site(synth_store, debug_checkpoint, tmp_path_factory):
    from timbre_transfer.cli import main

    out = tmp_path_factory.mktemp("site")
    inputs = [str(synth_store / "audio" / "reed" / "clip_0000.wav"),
              str(synth_store / "audio" / "brass" / "clip_0001.wav")]
    assert main(["report", str(debug_checkpoint), "--inputs", *inputs, "--out", str(out),
                 "--inverter", "pghi"]) == 0
    return out


def test_page_states_the_model_and_links_only_local_files(site, debug_checkpoint, synth_store):
    text = (site / "index.html").read_text()
    assert "domains brass, flute, reed" in text and "2 training steps" in text
    from timbre_transfer import __version__

    assert f"timbre_transfer {__version__}" in text
    assert "octave auto: each transfer moved by whole octaves" in text
    # every transfer's caption names the octaves the model applied to that input
    from timbre_transfer.audio.io import load_audio
    from timbre_transfer.inference.transfer import TimbreTransfer

    tt = TimbreTransfer.from_checkpoint(debug_checkpoint)
    wav = load_audio(synth_store / "audio" / "reed" / "clip_0000.wav", tt.sample_rate)
    for domain, n in tt.applied_octaves(wav, tt.sample_rate, tt.domains).items():
        assert f"to {domain} ({format_octaves(n)})" in text
    assert "http://" not in text and "https://" not in text  # no CDN: works offline
    # 2 inputs x (original + 3 domains) + 3 inverters + 5 brightness settings (the only knob
    # a mel inverter supports) + 6 interpolation steps
    assert text.count("<audio") == 2 * 4 + 3 + 5 + 6
    assert text.count("measured brightness: ") == 5 and "noisiness" not in text
    assert (site / "media" / "control_brightness_+0p50.wav").is_file()
    for name in ("reed", "brass"):
        assert (site / "media" / f"clip_0000_to_{name}.wav").is_file()
    assert (site / "media" / "interpolation.png").is_file()


def test_report_errors_name_the_problem(debug_checkpoint, tmp_path, capsys):
    from timbre_transfer.cli import main

    assert main(["report", str(debug_checkpoint), "--inputs", str(tmp_path / "nope.wav"),
                 "--out", str(tmp_path / "s")]) == 2
    assert "nope.wav" in capsys.readouterr().err


@pytest.fixture
def browser():
    drv = headless_chromium("--autoplay-policy=no-user-gesture-required", "--window-size=1400,2000")
    yield drv
    drv.quit()


@pytest.fixture
def served(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_listening_page_in_a_real_browser(browser, served):
    browser.set_script_timeout(60)
    browser.get(served)
    sources = browser.execute_script(
        "return Array.from(document.querySelectorAll('audio source')).map(s => s.src)")
    assert len(sources) == 22  # 8 transfers + 3 inverters + 5 knob settings + 6 interpolation
    for src in sources:
        with urllib.request.urlopen(src) as response:
            assert response.status == 200, src
    # every player loads its metadata and knows a positive duration
    durations = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const audios = Array.from(document.querySelectorAll('audio'));
        Promise.all(audios.map(a => new Promise(resolve => {
            if (a.readyState >= 1) return resolve(a.duration);
            a.addEventListener('loadedmetadata', () => resolve(a.duration));
            a.addEventListener('error', () => resolve(-1));
            a.load();
        }))).then(done);
    """)
    assert len(durations) == 22 and all(d > 0 for d in durations), durations
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth])")
    assert len(images) >= 2 * 4 + 3 + 1
    assert all(width > 0 for _, width in images), images
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "listening_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_evaluation_heatmaps_and_a_single_input(synth_store, debug_checkpoint, tmp_path):
    import json

    from matplotlib.figure import Figure

    from timbre_transfer.inference.report import write_listening_page
    from timbre_transfer.inference.transfer import TimbreTransfer

    report = tmp_path / "eval" / "report.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"summary": {"mean_conversion_accuracy": 0.75,
                                              "fad_ratio": None}}))
    Figure(figsize=(1, 1)).savefig(report.with_name("report_fad.png"))
    tt = TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")
    index = write_listening_page(tt, [synth_store / "audio" / "flute" / "clip_0002.wav"],
                                 tmp_path / "site", evaluation=report, inverter="pghi",
                                 audio_format="ogg")
    text = index.read_text()
    assert "<td>mean_conversion_accuracy</td><td>0.750</td>" in text
    assert "<td>fad_ratio</td><td>n/a</td>" in text
    assert (tmp_path / "site" / "media" / "report_fad.png").is_file()
    assert 'src="media/report_fad.png"' in text
    assert "Give two inputs for an interpolation strip" in text
    assert text.count('type="audio/ogg"') == 1 + 3 + 3 + 5  # + the brightness strip
    with pytest.raises(FileNotFoundError, match="no such evaluation report"):
        write_listening_page(tt, [synth_store / "audio" / "flute" / "clip_0002.wav"],
                             tmp_path / "site2", evaluation=tmp_path / "missing.json")
