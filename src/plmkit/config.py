"""Config dataclasses <-> dicts, JSON and TOML, with clear errors for unknown or mistyped keys.

A config read from a file is input, not truth: :func:`config_from_dict` refuses unknown keys and
values of the wrong type, and a config class declares once, in :class:`FieldRules`, what its
fields may hold beyond their types (positive sizes, probabilities, known names, widths that split
into heads); :func:`validate_fields`, called from the class's ``__post_init__``, enforces both,
so a config built from a file, a TOML table or command-line flags is checked the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from plmkit.errors import PlmError

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any], *, source: str | Path | None = None,
                     ignore: tuple[str, ...] = ()) -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys are an error naming the key.

    ``ignore`` lists keys that other tools write (e.g. Hugging Face's ``architectures``) and that we
    accept silently. Every error, including those the class's own checks raise, names ``source``.
    """
    if not isinstance(values, Mapping):
        raise PlmError(f"a {cls.__name__} must be a JSON object / TOML table of keys, not "
                       f"{_kind(values)}", path=source)
    names = {f.name: f for f in dataclasses.fields(cls)}
    hints = _type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key in names:
            kwargs[key] = _coerce(value, key, hints.get(key), source)
        elif key not in ignore:
            raise PlmError(f"unknown config key {key!r} for {cls.__name__}; known keys: "
                           f"{', '.join(sorted(names))}", path=source, field=key)
    try:
        return cls(**kwargs)
    except PlmError as exc:
        if exc.path is None and source is not None:
            raise PlmError(exc.message, path=source, line=exc.line, field=exc.field) from None
        raise
    except (TypeError, ValueError) as exc:
        raise PlmError(f"invalid {cls.__name__}: {exc}", path=source) from None


# ----------------------------------------------------------------------------- types
@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The evaluated annotations of a dataclass (``from __future__ import annotations`` leaves
    strings); an annotation that cannot be evaluated is left unchecked."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a forward reference we cannot resolve: skip checking
        return {}


_SCALARS = (bool, int, float, str)


def _allowed(hint: Any) -> tuple[type, ...] | None:
    """The runtime types ``hint`` admits, or None when it is not one we check."""
    if hint in _SCALARS or hint is type(None):
        return (hint,)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_allowed(arg) for arg in typing.get_args(hint)]
        if any(p is None for p in parts):
            return None
        return tuple(t for p in parts for t in p)  # type: ignore[union-attr]
    if origin is dict or hint is dict:
        return (dict,)
    if origin in (list, tuple) or hint in (list, tuple):
        return (list, tuple)  # JSON and TOML have only arrays
    return None


def _kind(value: Any) -> str:
    return "a JSON list" if isinstance(value, list) else f"{type(value).__name__} {value!r}"[:80]


def _coerce(value: Any, name: str, hint: Any, source: str | Path | None) -> Any:
    """``value`` checked against the field's type; an int where a float goes becomes a float.

    ``True`` is an int to Python but never a size to us, and ``1e12`` (a float) is not a layer
    count, so both are refused where an int goes.
    """
    allowed = _allowed(hint)
    if allowed is None:
        return value
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and int not in allowed and float in allowed:
        return float(value)
    elif isinstance(value, allowed):
        if isinstance(value, float) and not math.isfinite(value):
            raise PlmError(f"must be a finite number, not {value}", path=source, field=name)
        return value
    names = " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in allowed}))
    raise PlmError(f"expected {names}, got {_kind(value)}", path=source, field=name)


# ----------------------------------------------------------------------------- values
@dataclasses.dataclass(frozen=True)
class FieldRules:
    """What a config's fields may hold beyond their types, declared once per config class.

    ``positive``: sizes and counts (> 0); ``non_negative``: ids and rates that may be 0;
    ``probabilities``: dropout rates, in [0, 1]; ``choices``: names from a fixed set (e.g. the
    activation functions); ``multiples``: (width, heads) pairs, the width split evenly into heads;
    ``token_ids``: ids that must name a row of the embedding, in [0, ``vocab_size``);
    ``at_most``: upper bounds, e.g. on a layer count, where building the modules alone would take
    minutes before any size check could look at the result. Fields holding ``None`` (unset
    optional fields) are skipped.
    """

    positive: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    probabilities: tuple[str, ...] = ()
    choices: Mapping[str, Collection[str]] = dataclasses.field(default_factory=dict)
    multiples: tuple[tuple[str, str], ...] = ()
    token_ids: tuple[str, ...] = ()
    at_most: Mapping[str, int] = dataclasses.field(default_factory=dict)


def validate_fields(config: Any, rules: FieldRules) -> None:
    """Check every field of dataclass ``config`` against its type and ``rules``.

    Called from ``__post_init__``, so every way of building a config is checked. Raises a
    one-line :class:`PlmError` naming the field (the file is added by :func:`config_from_dict`).
    """
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        value = _coerce(getattr(config, f.name), f.name, hints.get(f.name), None)
        object.__setattr__(config, f.name, value)
    for name in rules.positive:
        _check(config, name, lambda v: v > 0, "must be > 0")
    for name in rules.non_negative:
        _check(config, name, lambda v: v >= 0, "must be ≥ 0")
    for name in rules.probabilities:
        _check(config, name, lambda v: 0 <= v <= 1, "is a probability: it must lie in [0, 1]")
    for name, known in rules.choices.items():
        value = getattr(config, name)
        if value is not None and value not in known:
            raise PlmError(f"{value!r} is not one of {', '.join(sorted(known))}", field=name)
    for width, heads in rules.multiples:
        if getattr(config, width) % getattr(config, heads):
            raise PlmError(f"{width} ({getattr(config, width)}) must be a multiple of {heads} "
                           f"({getattr(config, heads)}): each head gets an equal slice",
                           field=heads)
    for name, bound in rules.at_most.items():
        _check(config, name, lambda v: v <= bound, f"must be at most {bound:,}")
    for name in rules.token_ids:
        rows = config.vocab_size
        _check(config, name, lambda v: 0 <= v < rows,
               f"must be a token id in [0, vocab_size={rows})")


def _check(config: Any, name: str, test: Any, message: str) -> None:
    value = getattr(config, name)
    if value is not None and not test(value):
        raise PlmError(f"{message}, not {value}", field=name)


# ----------------------------------------------------------------------------- files
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


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlmError("file not found", path=path) from None
    except IsADirectoryError:
        raise PlmError("is a folder, not a JSON file", path=path) from None
    except UnicodeDecodeError:
        raise PlmError("not UTF-8 text", path=path) from None
    except json.JSONDecodeError as exc:
        raise PlmError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None


def load_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold one object (a config), not a list or a bare value."""
    values = load_json(path)
    if not isinstance(values, dict):
        raise PlmError(f"expected a JSON object of keys, found {_kind(values)}", path=path)
    return values


def override(config: T, **changes: Any) -> T:
    """Return a copy of ``config`` with the non-None ``changes`` applied, checking names."""
    names = {f.name for f in dataclasses.fields(config)}
    for key in changes:
        if key not in names:
            raise PlmError(f"unknown field {key!r} for {type(config).__name__}", field=key)
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})


__all__ = ["FieldRules", "config_from_dict", "config_to_dict", "load_json", "load_json_object",
           "load_toml", "override", "validate_fields"]
