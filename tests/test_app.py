"""``timbre-transfer app``, the transfer page: the server over HTTP (urllib and http.client
against a server on a free port of 127.0.0.1), and the page in a real browser (headless Chromium
driven by selenium, skipped without it as the listening page's test is)."""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import headless_chromium
from timbre_transfer.names import format_octaves

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "images" / "app.png"  # written only with TT_APP_SCREENSHOT set


def wav_bytes(samples, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32), rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model(debug_checkpoint):
    from timbre_transfer.inference.transfer import TimbreTransfer

    return TimbreTransfer.from_checkpoint(debug_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def app(model):
    from timbre_transfer.app import make_server

    server = make_server({"debug": model}, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    assert not server.results.exists()  # the results' temporary folder goes with the server


@pytest.fixture(scope="module")
def clip(synth_store) -> Path:
    return synth_store / "audio" / "reed" / "clip_0000.wav"


def post(server, body: bytes, **query) -> tuple[int, dict]:
    """POST ``body`` to /transfer as the page does; the status and the JSON answer."""
    request = urllib.request.Request(f"{server.url}transfer?{urlencode(query)}", data=body,
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(server, path: str, headers=None) -> tuple[int, bytes, http.client.HTTPMessage]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read(), response.headers


def test_a_good_upload_comes_back_with_the_inputs_duration(app, clip):
    status, answer = post(app, clip.read_bytes(), to="brass")
    assert status == 200, answer
    assert answer["target"] == "brass" and answer["model"] == "debug"
    assert answer["octaves_text"] == format_octaves(answer["octaves"])
    status, body, headers = get(app, answer["audio"])
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    out, rate = sf.read(io.BytesIO(body))
    expected = sf.info(str(clip)).duration
    assert abs(len(out) / rate - expected) <= 0.01 * expected
    for key in ("input_mel", "output_mel"):
        status, png, _ = get(app, answer[key])
        assert status == 200 and png.startswith(b"\x89PNG")
    # a byte range, which the browser's player asks for to seek
    status, part, headers = get(app, answer["audio"], {"Range": "bytes=100-199"})
    assert status == 206 and part == body[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(body)}"


def test_every_control_reaches_the_transfer(app, clip):
    status, answer = post(app, clip.read_bytes(), to="flute", octave="1", quiet="30",
                          brightness="0.25", autotune="0")
    assert status == 200, answer
    assert answer["octaves"] == 1 and answer["octave"] == 1


_BAD_UPLOADS = {
    "not-audio": (lambda: b"this is a text file, not audio", "not audio this server can read"),
    "empty": (lambda: b"", "the upload is empty"),
    "too-long": (lambda: wav_bytes(np.full(8000 * 61, 0.1), 8000),
                 "61.0 s long; the limit is 60 s"),
    "silent": (lambda: wav_bytes(np.zeros(16000), 16000), "the audio is silent"),
    "nan": (lambda: wav_bytes(np.full(1600, np.nan), 16000, "FLOAT"), "NaN"),
}


@pytest.mark.parametrize("case", list(_BAD_UPLOADS))
def test_a_bad_upload_is_refused_with_its_reason_and_the_server_carries_on(app, clip, case):
    make_body, message = _BAD_UPLOADS[case]
    status, answer = post(app, make_body(), to="brass")
    assert status == 400 and message in answer["error"], answer
    status, answer = post(app, clip.read_bytes(), to="brass")
    assert status == 200, answer


def test_an_upload_over_the_byte_limit_is_refused_before_it_is_read(app, clip):
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.putrequest("POST", "/transfer?to=brass")
    connection.putheader("Content-Length", str(app.max_bytes + 1))
    connection.endheaders()  # and no body: the answer must not wait for one
    response = connection.getresponse()
    assert response.status == 400
    assert "the limit is 32 MB" in json.loads(response.read())["error"]
    assert post(app, clip.read_bytes(), to="brass")[0] == 200


@pytest.mark.parametrize("query, message", [
    ({"to": "cello"}, "unknown target 'cello'; debug knows: brass, flute, reed"),
    ({"to": "brass", "model": "other"}, "unknown model 'other'; models: debug"),
    ({"to": "brass", "octave": "high"}, "octave must be 'auto' or a whole number"),
    ({"to": "brass", "brightness": "2"}, "brightness must lie in [-0.5, 0.5] octaves"),
    ({"to": "brass", "loudness": "3"}, "need the DDSP head"),
    ({"to": "brass", "quiet": "-5"}, "quiet must be a positive number"),
    ({"to": "brass", "autotune": "lots"}, "autotune must be a number"),
    ({"to": "brass", "inverter": "vocoder"}, "unknown inverter 'vocoder'"),
])
def test_a_bad_option_is_refused_naming_what_is_known(app, clip, query, message):
    status, answer = post(app, clip.read_bytes(), **query)
    assert status == 400 and message in answer["error"], answer


def test_an_unexpected_error_is_a_500_and_the_server_carries_on(app, model, clip, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    with monkeypatch.context() as patch:
        patch.setattr(model, "transfer_many", broken)
        status, answer = post(app, clip.read_bytes(), to="brass")
    assert status == 500
    assert "internal error (RuntimeError: the model fell over)" in answer["error"]
    assert post(app, clip.read_bytes(), to="brass")[0] == 200


def test_the_page_is_self_contained_and_foreign_requests_are_refused(app, clip):
    status, page, headers = get(app, "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    text = page.decode()
    assert "http://" not in text and "https://" not in text  # no CDN, font or analytics
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(link == "#" or link.startswith("data:") for link in links), links
    assert '"debug": {"domains": ["brass", "flute", "reed"]' in text  # the models, inline
    assert get(app, "/nope")[0] == 404
    assert get(app, "/results/../../etc/passwd")[0] == 404
    # DNS rebinding: another name for this address; CSRF: another site's page posting here
    assert get(app, "/", {"Host": "attacker.example"})[0] == 403
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.request("POST", "/transfer?to=brass", body=clip.read_bytes(),
                       headers={"Origin": "http://attacker.example"})
    assert connection.getresponse().status == 403


def test_models_checks_and_addresses(tmp_path, monkeypatch, app):
    from timbre_transfer import app as app_module
    from timbre_transfer.app import check_address, is_loopback, load_models

    with pytest.raises(FileNotFoundError, match="missing.pt: no such checkpoint"):
        load_models([tmp_path / "missing.pt"])
    monkeypatch.setattr("timbre_transfer.pretrained.available", lambda: [])
    with pytest.raises(ValueError, match="ships no model: give a checkpoint"):
        load_models()
    with pytest.raises(ValueError, match="needs at least one model"):
        app_module.make_server({})
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{app.port}"):
        check_address("127.0.0.1", app.port)  # the running server holds it


def test_the_command_line(debug_checkpoint):
    from timbre_transfer.cli.app import register_app

    parser = argparse.ArgumentParser()
    register_app(parser.add_subparsers())
    args = parser.parse_args(["app", str(debug_checkpoint), "--model", "a", "--model", "b"])
    assert args.checkpoints == [str(debug_checkpoint)] and args.model == ["a", "b"]
    assert (args.host, args.port, args.max_seconds, args.no_browser) == \
        ("127.0.0.1", 7860, 60.0, False)
    assert parser.parse_args(["app"]).checkpoints == []  # every shipped model


# -- the page in a real browser ---------------------------------------------------------------

# Waits for the Run started by a click to end; returns the error shown, or the durations the
# two players read from their metadata.
_WAIT_FOR_RUN = """
const done = arguments[arguments.length - 1];
const $ = id => document.getElementById(id);
const duration = audio => new Promise(resolve => {
  if (audio.readyState >= 1) return resolve(audio.duration);
  audio.addEventListener("loadedmetadata", () => resolve(audio.duration), {once: true});
  audio.addEventListener("error", () => resolve(-1), {once: true});
});
const poll = () => {
  if ($("run").disabled) return setTimeout(poll, 100);
  if (!$("error").hidden) return done({error: $("error").textContent});
  Promise.all([duration($("input-audio")), duration($("result-audio"))]).then(
    ([input, output]) => done({input, output, octaves: $("octaves").textContent}));
};
poll();
"""


@pytest.fixture
def browser():
    # a fake microphone (a beep), granted without asking, for the recording; "performance":
    # every network request the page makes, from Chrome's DevTools events
    drv = headless_chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            "--window-size=1280,1100", logs=("browser", "performance"))
    drv.set_script_timeout(120)
    yield drv
    drv.quit()


def _run(browser, path: Path | None = None) -> dict:
    from selenium.webdriver.common.by import By

    if path is not None:
        browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.ID, "run").click()
    return browser.execute_async_script(_WAIT_FOR_RUN)


def test_the_page_in_a_real_browser(browser, app, clip, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(app.url)
    assert not browser.find_element(By.ID, "model-row").is_displayed()  # one model: no choice
    Select(browser.find_element(By.ID, "target")).select_by_value("flute")
    expected = sf.info(str(clip)).duration

    result = _run(browser, clip)
    assert "error" not in result, result
    assert abs(result["output"] - expected) <= 0.01 * expected, result
    assert re.match(r"Moved by [+-]?\d octaves?", result["octaves"]), result

    not_audio = tmp_path / "notes.wav"  # a text file named like audio
    not_audio.write_text("shopping list: strings, rosin")
    result = _run(browser, not_audio)
    assert "not audio this server can read" in result.get("error", ""), result
    assert browser.find_element(By.ID, "error").is_displayed()
    assert not browser.find_element(By.ID, "result").is_displayed()

    result = _run(browser, clip)  # the page and the server both recover
    assert "error" not in result, result
    assert abs(result["output"] - expected) <= 0.01 * expected, result
    assert not browser.find_element(By.ID, "error").is_displayed()
    if os.environ.get("TT_APP_SCREENSHOT"):
        # the whole page: the window is its height plus the browser's own frame
        height = browser.execute_script("return document.documentElement.scrollHeight "
                                        "+ window.outerHeight - window.innerHeight")
        browser.set_window_size(1280, height)
        assert browser.save_screenshot(str(SCREENSHOT))

    # a recording from the (fake) microphone, encoded as WAV in the page
    record = browser.find_element(By.ID, "record")
    record.click()
    time.sleep(1.5)
    record.click()
    assert browser.find_element(By.ID, "source").text.startswith("A recording of ")
    result = _run(browser)
    assert "error" not in result, result
    assert result["input"] > 1.0, result
    assert abs(result["output"] - result["input"]) <= 0.01 * result["input"], result

    # every request the page made stayed on this server (data: URLs are the player's icons)
    urls = [json.loads(entry["message"])["message"]["params"]["request"]["url"]
            for entry in browser.get_log("performance")
            if '"Network.requestWillBeSent"' in entry["message"]]
    urls += browser.execute_script("return performance.getEntriesByType('navigation')"
                                   ".concat(performance.getEntriesByType('resource'))"
                                   ".map(e => e.name)")
    assert any("/transfer?" in u for u in urls) and any("/results/" in u for u in urls), urls
    outside = [u for u in urls if not u.startswith((app.url, "data:", "blob:"))]
    assert not outside, outside
    # no script error; the refused upload's 400 is the one failed load expected
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "status of 400" not in e["message"]]
    assert not errors, errors
