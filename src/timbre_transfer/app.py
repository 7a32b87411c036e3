"""The transfer page: ``timbre-transfer app``, a web page served on this machine that turns one
person's recordings into a model's domains, like DDSP's timbre-transfer demo.

Upload a file or record from the microphone, pick the target and the controls, press Run: the
page POSTs the audio as the raw request body to ``/transfer`` and shows the result (a player, a
download link, the input's and output's mels side by side, the octaves applied).

Built on the standard library's :class:`~http.server.ThreadingHTTPServer` alone: no dependency
beyond the package's own, and offline by construction, since the page (one file, CSS and
JavaScript inline) loads nothing but itself and what it asks this server for. The server binds
to 127.0.0.1 unless told otherwise. Bad uploads (not audio, empty, too long or too large,
silent, NaN) are answered 400 with a message the page shows; any other failure 500; the server
keeps serving either way.
"""

from __future__ import annotations

import io
import ipaddress
import json
import math
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from timbre_transfer.names import DDSP, DEFAULT_OCTAVE, INVERTERS, KNOBS, format_octaves

if TYPE_CHECKING:
    import numpy as np

    from timbre_transfer.inference.transfer import TimbreTransfer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: the longest upload transferred, in seconds of audio
MAX_SECONDS = 60.0
#: the largest request body read; checked from Content-Length before reading. 60 s of 48 kHz
#: stereo float32 WAV is 23 MB; the page's own recordings are 16-bit mono (5.8 MB a minute)
MAX_BYTES = 32_000_000
#: an upload whose peak is below this (-80 dBFS) is refused as silent: nothing to transfer
SILENT_PEAK = 1e-4
#: results kept on disk; older ones are deleted (the page only shows the last one)
RESULTS_KEPT = 20
#: the renderer the page uses unless DDSP is picked (the CLI's default)
PHASE_INVERTER = "pghi+gla"

_PAGE = Path(__file__).with_name("app_page.html")
_RESULT_PATH = re.compile(r"/results/([0-9a-f]{32})/((?:input|output)\.(?:wav|png))")
_CONTENT_TYPES = {".wav": "audio/wav", ".png": "image/png"}
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class UploadError(ValueError):
    """A request the person can fix (the upload or an option); its message says how."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, port: int) -> None:
    """Raise ValueError, saying what to do, unless ``host:port`` can be listened on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind((host.strip("[]"), port))
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                         "another --port (0: any free one) or --host") from None


def load_models(checkpoints=(), names=None) -> dict[str, TimbreTransfer]:
    """The models the page offers, by the name it shows: each shipped model of ``names`` and
    each checkpoint path of ``checkpoints`` (named by its path as given); with neither, every
    model shipped with the package.

    Raises:
        FileNotFoundError: a checkpoint that does not exist (checked before any loads).
        ValueError: an unknown shipped model, or nothing given and no model shipped.
    """
    from timbre_transfer.inference.transfer import TimbreTransfer
    from timbre_transfer.pretrained import available

    checkpoints, names = [str(c) for c in checkpoints], list(names or [])
    for path in checkpoints:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    if not checkpoints and not names:
        names = available()
        if not names:
            raise ValueError("this install ships no model: give a checkpoint, e.g. "
                             "`timbre-transfer app runs/a/checkpoints/latest.pt`")
    models = {name: TimbreTransfer.pretrained(name) for name in names}
    models.update((path, TimbreTransfer.from_checkpoint(path)) for path in checkpoints)
    return models


def decode_upload(body: bytes, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """The uploaded file's audio, mono float32, and its sample rate; decoded by soundfile
    (WAV, FLAC, OGG, and MP3 where libsndfile reads it).

    Raises:
        UploadError: empty, not decodable, no samples, longer than ``max_seconds`` (checked
            before decoding), NaN or infinite samples, or silent.
    """
    import numpy as np
    import soundfile as sf

    if not body:
        raise UploadError("the upload is empty: choose an audio file or record something first")
    try:
        with sf.SoundFile(io.BytesIO(body)) as f:
            rate, seconds = f.samplerate, f.frames / f.samplerate
            # the length is in the header: a long file is refused before it is decoded
            data = f.read(dtype="float32", always_2d=True) if seconds <= max_seconds else None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # libsndfile's own words ("Format not recognised."), without the BytesIO's repr
        reason = getattr(exc, "error_string", None) or str(exc)
        raise UploadError(f"the upload is not audio this server can read ({reason}); send a "
                          "WAV, FLAC or OGG file") from exc
    if data is None:
        raise UploadError(f"the audio is {seconds:.1f} s long; the limit is {max_seconds:g} s: "
                          "upload a shorter excerpt")
    if data.shape[0] == 0:
        raise UploadError("the upload holds no audio samples")
    if not np.isfinite(data).all():
        raise UploadError("the audio contains NaN or infinite samples")
    wav = data.mean(axis=1)
    if float(np.abs(wav).max()) < SILENT_PEAK:
        raise UploadError("the audio is silent (its peak is below -80 dBFS): nothing to "
                          "transfer; check the microphone or the file")
    return np.ascontiguousarray(wav, dtype=np.float32), rate


def describe_model(tt: TimbreTransfer) -> dict:
    """What the page needs to know of a model to offer its controls."""
    return {"domains": list(tt.domains), "ddsp": sorted(tt.ddsp),
            "pitch_template": bool(tt.model.config.pitch_template),
            "sample_rate": tt.sample_rate}


def _number(query: dict[str, str], key: str, default: float) -> float:
    value = query.get(key, "")
    if value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise UploadError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UploadError(f"{key} must be a finite number, got {value!r}")
    return number


class AppServer(ThreadingHTTPServer):
    """The page's HTTP server: ``models`` by name, results in a temporary folder removed by
    :meth:`server_close`."""

    daemon_threads = True  # a browser holding a connection open never blocks shutdown

    def __init__(self, models: dict[str, TimbreTransfer], host: str = DEFAULT_HOST,
                 port: int = 0, max_seconds: float = MAX_SECONDS, max_bytes: int = MAX_BYTES,
                 quiet: bool = False):
        if not models:
            raise ValueError("the app needs at least one model")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host.strip("[]"), port), _Handler)
        self.host, self.models = host, dict(models)
        self.max_seconds, self.max_bytes, self.quiet = float(max_seconds), int(max_bytes), quiet
        self.results = Path(tempfile.mkdtemp(prefix="timbre-transfer-app-"))
        self._kept: deque[Path] = deque()
        # one transfer at a time: a model's analysis cache is not thread-safe, and one person
        # runs one transfer at a time anyway; the page and results are served meanwhile
        self._transfer_lock = threading.Lock()
        config = {"models": {name: describe_model(tt) for name, tt in self.models.items()},
                  "max_seconds": self.max_seconds, "max_bytes": self.max_bytes,
                  "knobs": {"brightness": [KNOBS["brightness"].low, KNOBS["brightness"].high]}}
        # "</" would end the inline <script> early
        blob = json.dumps(config).replace("</", "<\\/")
        self.page = _PAGE.read_text(encoding="utf-8").replace("__CONFIG__", blob).encode()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        """Where a browser on this machine opens the page."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.results, ignore_errors=True)

    def _new_result_folder(self) -> Path:
        folder = self.results / uuid.uuid4().hex
        folder.mkdir()
        self._kept.append(folder)
        while len(self._kept) > RESULTS_KEPT:
            shutil.rmtree(self._kept.popleft(), ignore_errors=True)
        return folder

    def _options(self, query: dict[str, str]) -> tuple[str, TimbreTransfer, str, dict]:
        """The model's name, the model, the target and ``transfer_many``'s keyword arguments
        of the request's query; the library checks the values' ranges."""
        from timbre_transfer.audio.performance import Performance

        name = query.get("model") or (next(iter(self.models)) if len(self.models) == 1 else "")
        if name not in self.models:
            raise UploadError(f"unknown model {name!r}; models: {', '.join(self.models)}")
        tt = self.models[name]
        target = query.get("to", "")
        if target not in tt.domains:
            raise UploadError(f"unknown target {target!r}; {name} knows: "
                              f"{', '.join(tt.domains)}")
        inverter = query.get("inverter") or PHASE_INVERTER
        if inverter not in INVERTERS + (DDSP,):
            raise UploadError(f"unknown inverter {inverter!r}; inverters: "
                              f"{', '.join(INVERTERS + (DDSP,))}")
        octave: int | str = query.get("octave") or DEFAULT_OCTAVE
        if octave != "auto":
            try:
                octave = int(octave)
            except ValueError:
                raise UploadError(f"octave must be 'auto' or a whole number, got {octave!r}") \
                    from None
        quiet = query.get("quiet", "off")
        brightness = _number(query, "brightness", 0.0)
        performance = Performance(
            autotune=_number(query, "autotune", 0.0),
            quiet_db=None if quiet in ("", "off") else _number(query, "quiet", 0.0))
        return name, tt, target, {
            "inverter": inverter, "octave": octave, "performance": performance,
            "loudness_shift": _number(query, "loudness", 0.0),
            "controls": {"brightness": brightness} if brightness else None}

    def run_transfer(self, body: bytes, query: dict[str, str]) -> dict:
        """Transfer the uploaded audio as the query says; returns the JSON the page shows.

        Raises:
            ValueError: a bad upload or option (:class:`UploadError`, or the library's checks).
            KeyError: the library's unknown-domain error.
        """
        import librosa
        import numpy as np
        import torch

        from timbre_transfer.audio.io import save_audio
        from timbre_transfer.inference.report import mel_png  # the listening page's mel plot
        from timbre_transfer.inference.transfer import limit_peak

        name, tt, target, options = self._options(query)
        wav, rate = decode_upload(body, self.max_seconds)
        started = time.perf_counter()
        with self._transfer_lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if rate != tt.sample_rate:  # once here, so the input's mel and the model agree
                wav = librosa.resample(wav, orig_sr=rate, target_sr=tt.sample_rate,
                                       res_type="soxr_hq").astype(np.float32)
            out = tt.transfer_many(wav, tt.sample_rate, [target], **options)[target]
            octaves = tt.applied_octaves(wav, tt.sample_rate, [target], options["octave"])[target]
            folder = self._new_result_folder()
            for role, audio in (("input", wav), ("output", out)):
                audio, _ = limit_peak(audio)  # scaled to a 0.99 peak rather than clipped
                save_audio(folder / f"{role}.wav", audio, tt.sample_rate)
                with torch.no_grad():
                    mel = tt.transform(torch.from_numpy(audio).to(tt.device)).cpu().numpy()
                mel_png(mel, folder / f"{role}.png", tt)
        url = f"/results/{folder.name}/"
        return {
            "model": name, "target": target, "octaves": octaves,
            "octaves_text": format_octaves(octaves), "octave": options["octave"],
            "input_seconds": len(wav) / tt.sample_rate, "seconds": len(out) / tt.sample_rate,
            "took_seconds": round(time.perf_counter() - started, 2),
            "audio": url + "output.wav", "input_audio": url + "input.wav",
            "input_mel": url + "input.png", "output_mel": url + "output.png",
            "warnings": list(dict.fromkeys(str(w.message) for w in caught)),
        }


class _Handler(BaseHTTPRequestHandler):
    server: AppServer
    server_version = "timbre-transfer-app"
    timeout = 60  # seconds a client may stall mid-request before its thread gives up

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _foreign(self) -> str | None:
        """Why this request did not come from the page itself, or None. On loopback, a Host
        other than a loopback name is a DNS-rebinding attempt; a POST whose Origin is another
        site is a cross-site request (another web page using this server)."""
        host = self.headers.get("Host", "")
        if is_loopback(self.server.host) and host.rsplit(":", 1)[0] not in _LOOPBACK_NAMES:
            return f"refused: Host {host!r} is not this machine"
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin is not None and origin != f"http://{host}":
            return f"refused: a request from another site ({origin})"
        return None

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        refused = self._foreign()
        if refused:
            return self._error(HTTPStatus.FORBIDDEN, refused)
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        match = _RESULT_PATH.fullmatch(path)
        file = self.server.results / match[1] / match[2] if match else None
        if file is None or not file.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"no such page or result: {path}")
        self._send_file(file)

    def _send_file(self, file: Path) -> None:
        """A result file; with a byte range when asked, which a browser's player needs to seek."""
        data = file.read_bytes()
        content_type = _CONTENT_TYPES[file.suffix]
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if not ranged or not any(ranged.groups()):
            return self._send(HTTPStatus.OK, data, content_type, [("Accept-Ranges", "bytes")])
        first, last = ranged.groups()
        if first:
            start, end = int(first), min(int(last or len(data) - 1), len(data) - 1)
        else:  # "bytes=-N": the last N bytes
            start, end = max(len(data) - int(last), 0), len(data) - 1
        if start > end or start >= len(data):
            return self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", content_type,
                              [("Content-Range", f"bytes */{len(data)}")])
        self._send(HTTPStatus.PARTIAL_CONTENT, data[start:end + 1], content_type,
                   [("Accept-Ranges", "bytes"),
                    ("Content-Range", f"bytes {start}-{end}/{len(data)}")])

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= self.server.max_bytes:
            self.close_connection = True  # refused unread: the rest of the body is no request
            if length < 0:
                return self._error(HTTPStatus.BAD_REQUEST, "the upload needs a Content-Length")
            return self._error(HTTPStatus.BAD_REQUEST,
                               f"the upload is {length / 1e6:.1f} MB; the limit is "
                               f"{self.server.max_bytes / 1e6:g} MB")
        # read before answering: closing over an unread body resets the connection, which can
        # lose the answer on its way to the client
        body = self.rfile.read(length)
        split = urlsplit(self.path)
        refused = self._foreign()
        if refused:
            return self._error(HTTPStatus.FORBIDDEN, refused)
        if split.path != "/transfer":
            return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {split.path}")
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            result = self.server.run_transfer(body, query)
        except (ValueError, KeyError) as exc:  # what the person can fix
            plain_key_error = isinstance(exc, KeyError) and exc.args
            self._error(HTTPStatus.BAD_REQUEST, str(exc.args[0] if plain_key_error else exc))
        except Exception as exc:  # a bug: say so, log it, and keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        f"internal error ({type(exc).__name__}: {exc}); the traceback is in the "
                        "server's console, and the server keeps running")
        else:
            self._json(HTTPStatus.OK, result)


def make_server(models: dict[str, TimbreTransfer], host: str = DEFAULT_HOST, port: int = 0,
                max_seconds: float = MAX_SECONDS, max_bytes: int = MAX_BYTES,
                quiet: bool = False) -> AppServer:
    """A server for the page, bound but not yet serving: call ``serve_forever()`` (in a thread
    for tests) and ``server_close()`` to end it. ``models``: by the name the page shows (see
    :func:`load_models`); ``port`` 0 picks a free one (``server.port``, ``server.url``);
    ``quiet``: no request log on stderr.

    Raises:
        OSError: the address cannot be bound (e.g. the port is taken).
    """
    return AppServer(models, host, port, max_seconds, max_bytes, quiet)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(models: dict[str, TimbreTransfer], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          max_seconds: float = MAX_SECONDS, open_browser: bool = False) -> None:
    """Serve the page until Ctrl+C; prints its URL (and a warning when ``host`` is reachable
    from other machines), and opens it in the default browser with ``open_browser``."""
    server = make_server(models, host, port, max_seconds)
    if not is_loopback(host):
        print(f"warning: --host {host} is not a loopback address: anyone who can reach this "
              f"machine on port {server.port} can use the page and upload audio to it (there "
              "is no login)", file=sys.stderr)
    print(f"timbre-transfer app: {server.url} (models: {', '.join(models)}; Ctrl+C stops it)",
          flush=True)
    if threading.current_thread() is threading.main_thread():
        # `kill` or a closed terminal stop it as Ctrl+C does: the results folder is removed
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), _interrupt)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
