"""Config dataclasses <-> dicts, JSON and TOML, with clear errors for unknown or mistyped keys."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from plmkit.errors import PlmError

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any], *, source: str | Path | None = None,
                     ignore: tuple[str, ...] = ()) -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys are an error naming the key.

    ``ignore`` lists keys that other tools write (e.g. Hugging Face's ``architectures``) and that we
    accept silently.
    """
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in names:
            kwargs[key] = _coerce(value, names[key], source)
        elif key not in ignore:
            raise PlmError(f"unknown config key {key!r} for {cls.__name__}; known keys: "
                           f"{', '.join(sorted(names))}", path=source, field=key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PlmError(f"invalid {cls.__name__}: {exc}", path=source) from None


def _coerce(value: Any, field: dataclasses.Field, source: str | Path | None) -> Any:
    hint = field.type if not isinstance(field.type, str) else None
    if hint is None:
        hint_name = field.type
        simple = {"int": int, "float": float, "str": str, "bool": bool}
        hint = simple.get(hint_name)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and value is not None and not isinstance(value, hint):
        raise PlmError(f"expected {hint.__name__}, got {type(value).__name__} {value!r}",
                       path=source, field=field.name)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlmError("config file not found", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise PlmError(f"invalid TOML: {exc}", path=path) from None


def load_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlmError("file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise PlmError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None


def override(config: T, **changes: Any) -> T:
    """Return a copy of ``config`` with the non-None ``changes`` applied, checking names."""
    names = {f.name for f in dataclasses.fields(config)}
    for key in changes:
        if key not in names:
            raise PlmError(f"unknown field {key!r} for {type(config).__name__}", field=key)
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})


__all__ = ["config_from_dict", "config_to_dict", "load_toml", "load_json", "override"]
_ = typing
