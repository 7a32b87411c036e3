from dataclasses import dataclass, field

import pytest

from timbre_transfer.config import build, load_config, to_dict


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
    cfg = build(Outer, {"steps": 3, "channels": [8, 16, 32], "inner": {"lr": 1, "betas": [0.9, 0.99]}})
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
