import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from timbre_transfer.config import (
    ConfigError,
    build,
    load_config,
    packaged_configs,
    resolve_config,
    to_dict,
)


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    clip: float | None = None


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    channels: tuple[int, ...] = (64, 128)
    inner: Inner = field(default_factory=Inner)


def test_build_nested_with_conversions():
    cfg = build(Outer, {"steps": 3, "channels": [8, 16, 32],
                        "inner": {"lr": 1, "betas": [0.9, 0.99]}})
    assert cfg == Outer(steps=3, channels=(8, 16, 32), inner=Inner(lr=1.0, betas=(0.9, 0.99)))
    assert isinstance(cfg.inner.lr, float)
    assert build(Outer, {"inner": {"clip": 1.5}}).inner.clip == 1.5
    assert to_dict(cfg)["channels"] == [8, 16, 32]
    assert build(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize("values,error,message", [
    ({"stpes": 3}, KeyError, r"\['stpes'\]"),
    ({"inner": {"lrr": 1}}, KeyError, r"\['inner.lrr'\]"),
    ({"steps": "3"}, TypeError, "'steps' must be int"),
    ({"steps": True}, TypeError, "'steps' must be int"),
    ({"flag": 1}, TypeError, "'flag' must be bool"),
    ({"inner": {"betas": [0.5]}}, TypeError, "'inner.betas' must have 2 items"),
    ({"channels": [8, "a"]}, TypeError, r"'channels\[1\]' must be int"),
    ({"inner": {"clip": "big"}}, TypeError, "'inner.clip' must be"),
    ({"inner": 3}, TypeError, "inner must be a mapping"),
])
def test_build_errors_name_the_key(values, error, message):
    with pytest.raises(error, match=message):
        build(Outer, values)


def test_load_config_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.001\n")
    cfg = load_config(path, ["train.steps=5", "model.dim=8", "train.betas=[0.9, 0.99]"])
    assert cfg == {"train": {"lr": 0.001, "steps": 5, "betas": [0.9, 0.99]}, "model": {"dim": 8}}
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(None, ["novalue"])
    with pytest.raises(FileNotFoundError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config(tmp_path / "bad.yaml")


REPO = Path(__file__).resolve().parents[1]


def test_config_errors_are_their_own_type_and_still_key_or_type_errors():
    with pytest.raises(ConfigError) as unknown:
        build(Outer, {"stpes": 3})
    assert isinstance(unknown.value, KeyError)
    assert str(unknown.value).startswith("unknown config key(s) ['stpes']")  # not quoted
    with pytest.raises(ConfigError) as wrong:
        build(Outer, {"steps": "3"})
    assert isinstance(wrong.value, TypeError)
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(None, ["train.betas=[0.5"])


def test_packaged_config_names_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = packaged_configs()
    assert sorted(names) == sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
    for name in ("cpu-small", "cpu-small.yaml"):
        assert (resolve_config(name).read_bytes()
                == (REPO / "config" / "cpu-small.yaml").read_bytes())
    assert load_config("debug")["model"]["dim"] == 4
    (tmp_path / "mine.yaml").write_text("train:\n  lr: 0.5\n")
    assert load_config("mine.yaml") == {"train": {"lr": 0.5}}  # a path still works
    (tmp_path / "debug.yaml").write_text("train:\n  lr: 0.25\n")
    assert load_config("debug.yaml") == {"train": {"lr": 0.25}}  # and a file wins over a name
    with pytest.raises(FileNotFoundError, match=r"cpu-smal: no such config file, nor a packaged "
                       r"config \(names: cpu-small, "):
        resolve_config("cpu-smal")
    with pytest.raises(FileNotFoundError):  # a path with folders is never looked up by name
        resolve_config("elsewhere/cpu-small.yaml")


def test_wheel_ships_config_folder_as_package_data():
    """config/ is the single source of the configs; pyproject.toml maps it into the package, and
    lists the packages by hand for that reason: every package under src/ must be listed."""
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    setuptools = toml.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "src", "timbre_transfer.configs": "config"}
    assert setuptools["package-data"]["timbre_transfer.configs"] == ["*.yaml"]
    src = REPO / "src"
    on_disk = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert set(setuptools["packages"]) == on_disk | {"timbre_transfer.configs"}


def test_run_config_checks_sizes_the_model_round_trips():
    from timbre_transfer.training.config import RunConfig, load_run_config

    with pytest.raises(ValueError, match=r"train.crop_frames = 66 must be a multiple of "
                       r"2\*\*model.n_downsample = 4 .*use 64 or 68"):
        load_run_config(None, ["train.crop_frames=66"])
    with pytest.raises(ValueError, match=r"train.crop_frames = 20 must be a multiple of "
                       r"2\*\*model.n_downsample = 8"):
        load_run_config(None, ["train.crop_frames=20", "model.n_downsample=3"])
    assert load_run_config(None, ["train.crop_frames=24",
                                  "model.n_downsample=3"]).train.crop_frames == 24
    RunConfig().check_n_mels(128)
    with pytest.raises(ValueError, match=r"the store's audio.n_mels = 90 must be a multiple of "
                       r"2\*\*model.n_downsample = 4 .*use 88 or 92, prepare a store"):
        RunConfig().check_n_mels(90)


@pytest.mark.parametrize("override", ["audio.hop_length=256", "prepare.seed=3", "audio={}"])
def test_run_config_refuses_overrides_the_store_fixes(override):
    from timbre_transfer.training.config import load_run_config

    with pytest.raises(ValueError, match="the feature store fixes the transform"):
        load_run_config(None, [override])
    # a YAML file's audio/prepare sections still serve prepare, and training ignores them
    assert load_run_config(REPO / "config" / "reference.yaml").train.crop_frames == 128
