"""Shared fixtures. Real recordings come from ../shared/data/realaudio (or
$TIMBRE_TRANSFER_REALAUDIO): tests that need them skip on a clone without them, and fail under
CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REALAUDIO = Path(
    os.environ.get(
        "TIMBRE_TRANSFER_REALAUDIO",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "realaudio",
    )
).resolve()


def require_or_skip(available: bool, what: str) -> None:
    """Skip when ``what`` is missing on a user's machine; fail under CI, where it must exist."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true but is missing")
    pytest.skip(f"{what} is not available")


def headless_chromium(*flags: str, logs: tuple[str, ...] = ("browser",)):
    """Debian's chromium in headless mode, driven by selenium (skipped without it, failed under
    CI=true), with ``flags`` added and the ``logs`` kinds recorded (``driver.get_log``)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    require_or_skip(chromium is not None and driver is not None,
                    "headless Chromium (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 *flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {kind: "ALL" for kind in logs})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="session")
def realaudio_dir() -> Path:
    require_or_skip(REALAUDIO.is_dir(), f"real audio folder {REALAUDIO}")
    return REALAUDIO


@pytest.fixture(scope="session")
def bach10_dir() -> Path:
    """../shared/data/bach10 (beside realaudio): four instruments with f0 truth."""
    path = REALAUDIO.parent / "bach10"
    require_or_skip((path / "f0").is_dir(), f"Bach10 folder {path}")
    return path


@pytest.fixture
def real_clips(realaudio_dir, tmp_path):
    """Copy the first ``n`` clips (sorted) of a domain into tmp_path and return their paths."""

    def take(domain: str, n: int = 2) -> list[Path]:
        files = sorted((realaudio_dir / domain).glob("*.flac"))[:n]
        require_or_skip(len(files) == n, f"{n} clips of {realaudio_dir / domain}")
        out = []
        for f in files:
            dst = tmp_path / domain / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
            out.append(dst)
        return out

    return take


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory):
    """3 paired synthetic domains x 4 clips x 1.5 s, prepared (one validation clip per domain)."""
    from timbre_transfer.data.prepare import PrepareOptions, prepare
    from timbre_transfer.data.synthetic import write_paired_dataset

    root = tmp_path_factory.mktemp("synth")
    write_paired_dataset(root / "audio", n_domains=3, n_clips=4, seconds=1.5)
    prepare(root / "audio", root / "store", options=PrepareOptions(val_fraction=0.25),
            workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def debug_checkpoint(synth_store, tmp_path_factory) -> Path:
    """A 2-step config/debug.yaml model trained on ``synth_store``: its latest.pt."""
    from timbre_transfer.training.config import load_run_config
    from timbre_transfer.training.trainer import Trainer

    run = tmp_path_factory.mktemp("debug_run")
    config = load_run_config(Path(__file__).resolve().parents[1] / "config" / "debug.yaml",
                             ["train.max_steps=2"])
    Trainer(config, synth_store / "store", run, progress=False).fit()
    return run / "checkpoints" / "latest.pt"
