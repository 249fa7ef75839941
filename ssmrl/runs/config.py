"""Typed configs: YAML presets merged in order into dataclasses, plus ``key.sub=value`` overrides.

A config is a tree of dataclasses. Presets and overrides are plain nested dicts that are deep-merged in order and
only then turned into dataclasses, so that an unknown key or a value of the wrong type is reported with its full
dotted name (``wm.backbone.d_model``) instead of failing somewhere deep in a learner.

Two hooks let a schema shape itself (both optional, both read by :func:`from_dict` and :func:`to_dict`):

- a class with a ``select_schema(data) -> (dataclass, data)`` classmethod stands for the dataclass it picks from
  the data (the run config picks its agent's sections, ``ssmrl.cli.config.Config``);
- a dataclass's ``__config_hidden__`` maps fields that something else sets to the key that does (the ``offline``
  section's ``updates`` is the run's ``train.steps``): they are never written out, and giving one is an error
  that names the key to use.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

def _config_root() -> Path:
    """configs/ of the checkout, else the installed package data (ssmrl.configs; setup.py maps the folder there).
    A checkout is recognised by its setup.py, so an unrelated ``configs/`` beside an installed package is ignored."""
    root = Path(__file__).resolve().parents[2]
    if (root / "setup.py").is_file() and (root / "configs").is_dir():
        return root / "configs"
    return Path(importlib.util.find_spec("ssmrl.configs").origin).parent


CONFIG_ROOT = _config_root()


class ConfigError(ValueError):
    """A config key or value that cannot be accepted; the message names the dotted key."""


def deep_merge(base: dict, update: dict) -> dict:
    """New dict: ``update`` merged into ``base``; nested dicts merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``"a.b.c=3"`` -> ``{"a": {"b": {"c": 3}}}``; the value is parsed as YAML (numbers, bools, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from err
    if isinstance(value, str):
        value = _number(value)
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _number(text: str) -> str | float:
    """YAML 1.1 reads ``1e-3`` as a string; every researcher means the float."""
    try:
        return float(text) if any(c.isdigit() for c in text) else text
    except ValueError:
        return text


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top level")
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert_union(value: Any, tp: Any, key: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _convert_sequence(value: Any, tp: Any, key: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    args = typing.get_args(tp)
    item_tp = args[0] if args else Any
    items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if typing.get_origin(tp) is tuple else items


def _convert_mapping(value: Any, tp: Any, key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    args = typing.get_args(tp)
    val_tp = args[1] if len(args) == 2 else Any
    return {k: _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}


def _convert_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is float:
        if isinstance(value, str):  # ``lr: 4e-5`` in a YAML file arrives as a string (YAML 1.1)
            value = _number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, str):  # ``train.steps=2e4`` arrives as a string (YAML 1.1 has no exponent ints)
            value = _number(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2e4 means 20000
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {_type_name(tp)}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting int -> float and dicts -> dataclasses)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(value, tp, key)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        return _convert_sequence(value, tp, key)
    if origin is dict or tp is dict:
        return _convert_mapping(value, tp, key)
    return _convert_scalar(value, tp, key)


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise ``ConfigError``."""
    select = getattr(cls, "select_schema", None)
    if select is not None:
        cls, data = select(data)
    hints = typing.get_type_hints(cls)
    hidden = _hidden(cls)
    where = f"{prefix}." if prefix else ""
    for name in sorted(set(data) & set(hidden)):
        raise ConfigError(f"{where}{name} is not a key here: it is set by {hidden[name]}")
    names = {f.name for f in dataclasses.fields(cls) if f.init} - set(hidden)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {where}{unknown[0]!s}; valid keys{' of ' + prefix if prefix else ''}: {sorted(names)}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name in names & set(data):
        value = data[name]
        default = fields[name].default_factory
        if isinstance(value, dict) and default is not dataclasses.MISSING and dataclasses.is_dataclass(hints[name]):
            # A partial mapping overrides the field's own default (which may differ from the class defaults).
            value = deep_merge(to_dict(default()), value)
        kwargs[name] = _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # a section's own validation (__post_init__)
        raise ConfigError(f"{prefix or 'config'}: {err}") from err


def _hidden(cls: type) -> dict[str, str]:
    return dict(getattr(cls, "__config_hidden__", None) or {})


def to_dict(config: Any) -> Any:
    """Dataclass tree -> plain nested dicts/lists (YAML-safe)."""
    if dataclasses.is_dataclass(config):
        hidden = _hidden(type(config))
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in hidden}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def preset_groups(root: Path = CONFIG_ROOT) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def preset_path(group: str, name: str, root: Path = CONFIG_ROOT) -> Path | None:
    """The YAML file of preset ``group=name``; for ``env=suite/Game`` the suite's file serves every game."""
    exact = root / group / f"{name}.yaml"
    if exact.is_file():
        return exact
    suite = root / group / f"{name.split('/')[0]}.yaml"
    return suite if "/" in name and suite.is_file() else None


def load_preset(group: str, name: str, root: Path = CONFIG_ROOT, _seen: tuple[str, ...] = ()) -> dict:
    """The settings of preset ``group=name``. A preset file may start from another preset of its group with a
    top-level ``extends: <name>`` (merged first, then this file over it; chains allowed, cycles refused)."""
    path = preset_path(group, name, root)
    if path is None:
        raise ConfigError(f"unknown {group} preset {name!r}")
    data = load_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if base in _seen or base == path.stem:
        raise ConfigError(f"{path}: extends: {base!r} makes a cycle ({' -> '.join((*_seen, path.stem, base))})")
    return deep_merge(load_preset(group, base, root, (*_seen, path.stem)), data)


# Presets merge in this order whatever the command line's order, so that ``size=debug`` always shrinks the agent.
GROUP_ORDER = ("agent", "env", "bench", "size")


def _preset_value(group: str, name: str) -> dict:
    """What choosing a preset records in the config: ``agent: drama``, ``env: {id: atari100k/Pong}``."""
    return {"env": {"id": name}} if group == "env" else {group: name}


def resolve_args(args: list[str], root: Path = CONFIG_ROOT) -> tuple[dict, dict]:
    """Turn command-line words into (defaults + presets + overrides, what the words themselves set).

    ``group=name`` words (a folder ``configs/group`` exists) choose preset ``configs/group/name.yaml``;
    ``key.sub=value`` words are overrides applied after all presets, in order.
    """
    groups = preset_groups(root)
    chosen: dict[str, str] = {}
    given: dict = {}
    for word in args:
        key, sep, value = word.partition("=")
        if not sep:
            raise ConfigError(f"argument {word!r} is neither group=preset nor key.sub=value")
        if "." not in key and key in groups:
            if preset_path(key, value, root) is None:
                names = sorted(p.stem for p in (root / key).glob("*.yaml"))
                raise ConfigError(f"unknown {key} preset {value!r}; valid presets: {names}")
            chosen[key] = value
            given = deep_merge(given, _preset_value(key, value))
        else:
            given = deep_merge(given, parse_override(word))
    # A preset may itself choose an agent or env (``size=quickstart`` is a whole job): load that preset too,
    # unless the command line chose one.
    for group in [g for g in chosen if g not in ("agent", "env")]:
        data = load_preset(group, chosen[group], root)
        implied = {"agent": data.get("agent"), "env": (data.get("env") or {}).get("id")}
        for key, value in implied.items():
            if value and key not in chosen and key in groups and preset_path(key, value, root) is not None:
                chosen[key] = value
    merged = load_yaml(root / "defaults.yaml") if (root / "defaults.yaml").is_file() else {}
    order = sorted(chosen, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER), g))
    for group in order:
        merged = deep_merge(merged, load_preset(group, chosen[group], root))
    return deep_merge(merged, given), given
