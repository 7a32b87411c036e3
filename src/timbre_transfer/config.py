"""Configs: frozen dataclasses filled from YAML plus ``section.key=value`` overrides.

Unknown keys and values of the wrong type are errors that name the key (``train.lr``): a
:class:`ConfigError`, which is also a ``KeyError`` (unknown key) or a ``TypeError`` (wrong type).

A config is a YAML path, or the name of a config shipped with the package (``cpu-small``, the
files of the repository's ``config/`` folder); see :func:`resolve_config`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path

import yaml

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]  # in a source checkout (and an editable install): the repository


class ConfigError(Exception):
    """A config key or value is wrong; the message names the key (``train.lr``)."""

    def __str__(self) -> str:  # the message as given (a KeyError would quote it)
        return str(self.args[0]) if self.args else ""


class UnknownConfigKeyError(ConfigError, KeyError):
    """A key the config does not have; the message lists the known ones."""


class ConfigTypeError(ConfigError, TypeError):
    """A value of the wrong type; the message names the key and the expected type."""


def packaged_configs() -> dict[str, Path]:
    """The configs shipped with the package, by name (``{"cpu-small": .../cpu-small.yaml}``).

    The repository's ``config/`` folder is their single source: a wheel carries it as
    ``timbre_transfer/configs/`` (pyproject.toml maps it), and a source checkout or an editable
    install reads it in place.
    """
    folder = _HERE / "configs"
    if not folder.is_dir() and (_REPO / "pyproject.toml").is_file():
        folder = _REPO / "config"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config(config: str | Path) -> Path:
    """The YAML file of ``config``: a path to a file, else the name of a packaged config
    (``cpu-small`` or ``cpu-small.yaml``), so that a name works from any folder.

    Raises:
        FileNotFoundError: neither; the message lists the packaged names.
    """
    path = Path(config)
    if path.is_file():
        return path
    named = packaged_configs()
    if path.name == str(config):  # a bare name, no folder: look it up among the packaged ones
        stem = path.name[:-len(".yaml")] if path.name.endswith(".yaml") else path.name
        if stem in named:
            return named[stem]
    raise FileNotFoundError(f"{config}: no such config file, nor a packaged config "
                            f"(names: {', '.join(named) or 'none found'})")


def load_config(path: str | Path | dict | None, overrides: list[str] = ()) -> dict:
    """Read a YAML mapping (None: empty) and apply ``a.b=value`` overrides (values parsed as YAML).

    ``path`` is a file, the name of a packaged config (:func:`resolve_config`), or a mapping
    already read (a checkpoint's config). Errors name the file or the override.
    """
    config: dict = {}
    if isinstance(path, dict):
        config = path
    elif path is not None:
        path = resolve_config(path)
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
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    return config


def build(cls, values: dict | None, where: str = ""):
    """Instantiate the frozen dataclass ``cls`` from plain values, recursively.

    Missing keys keep their defaults. Lists are accepted for tuple fields (YAML has no tuples).

    Raises:
        UnknownConfigKeyError: an unknown key (a ``KeyError``); the message names it
            (``where.key``) and lists the known ones.
        ConfigTypeError: a value of the wrong type (a ``TypeError``); the message names the key
            and the expected type.
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigTypeError(f"{where or cls.__name__} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        keys = [f"{where}.{k}" if where else k for k in unknown]
        raise UnknownConfigKeyError(f"unknown config key(s) {keys}; known in "
                                    f"{where or cls.__name__}: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        name = f"{where}.{key}" if where else key
        kwargs[key] = _convert(value, hints[key], name)
    return cls(**kwargs)


def to_dict(obj) -> dict:
    """A dataclass config as plain Python (tuples as lists), for YAML, JSON and checkpoints."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(obj))


def _convert(value, hint, name: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, value, name)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, name)
            except TypeError as exc:
                errors.append(exc)
        raise ConfigTypeError(f"config key {name!r} must be {_describe(hint)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigTypeError(f"config key {name!r} must be a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is None and len(args) != len(value):
            raise ConfigTypeError(f"config key {name!r} must have {len(args)} items, got {value!r}")
        return tuple(_convert(v, item or args[i], f"{name}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (hint in (int, str, bool) and isinstance(value, hint)
            and (hint is bool or not isinstance(value, bool))):
        return value
    if hint is typing.Any:
        return value
    raise ConfigTypeError(f"config key {name!r} must be {_describe(hint)}, got {value!r}")


def _describe(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
