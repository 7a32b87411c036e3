"""The notebooks in notebooks/ run top to bottom (small budget) and are committed without outputs.

Each notebook's last cell prints one ``RESULT key=value ...`` line; the tests check its values.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_or_skip

try:  # dev extras: a user's install may lack them
    import nbclient
    import nbformat

    _MISSING = ""
except ImportError as exc:
    nbclient = nbformat = None
    _MISSING = f"{exc.name} (pip install -e '.[dev]')"


@pytest.fixture(autouse=True)
def _notebook_runners():
    """Skip without nbformat/nbclient on a user's machine, fail under CI=true (where
    pytest.importorskip would skip too)."""
    require_or_skip(not _MISSING, _MISSING)


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def run_notebook(name: str, monkeypatch, tmp_path) -> dict[str, str]:
    """Execute ``notebooks/<name>`` with the small budget; return its RESULT line's key=values.

    TMPDIR points the notebooks' ``tempfile.mkdtemp`` working folders into ``tmp_path``."""
    monkeypatch.setenv("TIMBRE_TRANSFER_NB_BUDGET", "small")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                      resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, f"{name}: expected one RESULT line in the last cell, got {text!r}"
    return dict(item.split("=", 1) for item in lines[0].split()[1:])


def test_notebooks_exist():
    assert [p.name for p in ALL] == ["01_audio_front_end.ipynb", "02_train_and_transfer.ipynb",
                                     "03_latent_space.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [], f"{path.name}: code cell {i} has outputs"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has a count"
    assert "TIMBRE_TRANSFER_NB_BUDGET" in code[0].source, "the first code cell sets the budget"


@pytest.mark.slow
def test_audio_front_end(monkeypatch, tmp_path):
    r = run_notebook("01_audio_front_end.ipynb", monkeypatch, tmp_path)
    assert r["source"] in ("real", "synthetic")
    assert float(r["seconds"]) == pytest.approx(1.5, abs=0.01)
    sc = {m: float(r[f"sc_{m}_db"]) for m in ("griffinlim", "pghi", "pghi_gla")}
    assert all(math.isfinite(v) for v in sc.values()), sc
    assert sc["pghi_gla"] < -10.0, sc
    assert sc["pghi_gla"] <= sc["pghi"], sc  # the refinement never makes PGHI worse
    assert r["deterministic"] == "True"


@pytest.mark.slow
def test_train_and_transfer(monkeypatch, tmp_path):
    r = run_notebook("02_train_and_transfer.ipynb", monkeypatch, tmp_path)
    assert int(r["steps"]) == 3
    for key in ("recon_first", "recon_last", "paired_transfer", "paired_identity"):
        assert math.isfinite(float(r[key])) and float(r[key]) > 0, (key, r[key])
    assert int(r["domains"]) == 3
    assert int(r["pairs"]) == 3 * 1 * 2  # one held-out clip per domain, to 2 other domains


@pytest.mark.slow
def test_latent_space(monkeypatch, tmp_path):
    r = run_notebook("03_latent_space.ipynb", monkeypatch, tmp_path)
    assert int(r["latent_points"]) == int(r["clips"]) == 3 * 2
    explained = [float(x) for x in r["explained"].split(",")]
    assert 0 <= explained[1] <= explained[0] <= 1
    assert int(r["samples"]) == 4
    assert 0 < float(r["lerp_slerp_mid_norm_ratio"]) <= 1.0 + 1e-6


def test_missing_runner_fails_under_ci(tmp_path):
    """Without nbformat, CI=true makes these tests fail, not skip."""
    (tmp_path / "nbformat.py").write_text(  # as if it were not installed
        "raise ModuleNotFoundError(\"No module named 'nbformat'\", name='nbformat')\n")
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_notebooks.py::test_notebooks_exist"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "nbformat (pip install -e '.[dev]') is required under CI=true" in run.stdout
