"""YAML configs plus ``section.key=value`` overrides from the command line."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """Read a YAML mapping (None: empty) and apply ``a.b=value`` overrides (values parsed as YAML).

    Errors name the file or the override.
    """
    config: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(config, dict):
            raise ValueError(f"{path}: a config must be a mapping, got {type(config).__name__}")
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return config
