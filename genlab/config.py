"""Dataclass configs with their allowed ranges in one place.

Every hyperparameter is a dataclass field whose metadata gives its help text and
bounds (``opt(default, "help", lo=..., hi=..., choices=...)``). The CLI builds its
flags from these fields, the app its bounded widgets, and :func:`validate` rejects a
value outside them with one line that says what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, asdict, field, fields
from typing import Any


def opt(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
        lo_open: bool = False, choices: tuple | None = None, cli: bool = True):
    """A config field with help text and allowed values.

    lo/hi bound numbers (and every element of an int tuple); ``lo_open`` makes the
    lower bound strict (for learning rates and the like). ``cli=False`` hides fields
    the program sets itself (such as the image shape, which comes from the dataset).
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "cli": cli}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def field_type(cls, f: dataclasses.Field) -> Any:
    return typing.get_type_hints(cls)[f.name]


def format_value(v: Any) -> str:
    """A config value as the command line takes it (tuples comma-separated, true/false)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    return str(v)


def describe(f: dataclasses.Field) -> str:
    """The allowed values of a field, as a short phrase ('>= 1', 'one of a, b')."""
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(map(str, m["choices"]))
    if isinstance(f.default, bool):
        return "true or false"
    lo, hi = m.get("lo"), m.get("hi")
    lo_txt = None if lo is None else ("> " if m.get("lo_open") else ">= ") + f"{lo:g}"
    if lo_txt and hi is not None:
        return f"{lo_txt} and <= {hi:g}"
    return lo_txt or (f"<= {hi:g}" if hi is not None else "any")


def _check_value(name: str, f: dataclasses.Field, value: Any) -> None:
    m = f.metadata
    values = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple) and not value:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if m.get("choices") and v not in m["choices"]:
            raise ValueError(f"{name} must be {describe(f)} (got {v!r})")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number (got {v})")
        lo, hi = m.get("lo"), m.get("hi")
        too_low = lo is not None and (v <= lo if m.get("lo_open") else v < lo)
        if too_low or (hi is not None and v > hi):
            raise ValueError(f"{name} must be {describe(f)} (got {v:g})")


def validate(cfg, label=lambda name: name) -> None:
    """Raise ValueError naming the first field outside its allowed values
    (``label`` turns a field name into what the user typed, e.g. a CLI flag)."""
    for f in fields(cfg):
        _check_value(label(f.name), f, getattr(cfg, f.name))


def coerce(cls, f: dataclasses.Field, value: Any) -> Any:
    """Bring a JSON or command-line value to the field's type (lists -> tuples)."""
    try:
        return _coerce(cls, f, value)
    except (TypeError, ValueError):
        t = field_type(cls, f)
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(t, None)
        if typing.get_origin(t) is tuple:
            kind = "comma-separated whole numbers"
        raise ValueError(f"{f.name} must be {kind or describe(f)} (got {value!r})") from None


def _coerce(cls, f: dataclasses.Field, value: Any) -> Any:
    t = field_type(cls, f)
    origin = typing.get_origin(t)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        elem = typing.get_args(t)[0]
        return tuple(elem(v) for v in value)
    if t is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{f.name} must be true or false (got {value!r})")
        return value.lower() in ("true", "1", "yes")
    if t in (int, float, str) and not isinstance(value, t):
        if t is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{f.name} must be a whole number (got {value})")
        return t(value)
    return value


def from_dict(cls, d: dict, *, what: str = "config"):
    """Build and validate a config from a dict; unknown or bad keys give a clear error."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"{what} has fields {cls.__name__} does not know: {', '.join(unknown)}")
    kwargs = {}
    for name, value in d.items():
        try:
            kwargs[name] = coerce(cls, known[name], value)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    cfg = cls(**kwargs)
    try:
        validate(cfg)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    return cfg


def to_dict(cfg) -> dict:
    return asdict(cfg)


def defaults(cls) -> dict:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out
