"""Plan-time type checks of user values against a dataclass's field types.

Hyper-parameters and task options come from YAML, where `1e-4` is a string and `lr: "fast"` is
legal; without this a typo fails inside the job, after the compute is spent. Values already of
the right type are returned unchanged (so setting hashes of valid suites do not move); numeric
strings, scientific notation included, become numbers.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from bench.core.errors import ConfigError

_NO = object()


def check_fields(dc: type, values: Any, who: str) -> dict:
    """`values` (a mapping of field -> value) checked and coerced against dataclass `dc`'s types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{who} must be a mapping of name -> value, not {type(values).__name__} {values!r}")
    try:
        hints = typing.get_type_hints(dc)
    except Exception:  # unresolvable annotations: leave the values to the dataclass itself
        return dict(values)
    names = {f.name for f in dataclasses.fields(dc)}
    out = {}
    for key, value in values.items():
        if key not in names or key not in hints:
            out[key] = value  # unknown names get their own error, with the known ones listed
            continue
        got = coerce(value, hints[key])
        if got is _NO:
            raise ConfigError(f"{who}: {key} = {value!r} is not {describe(hints[key])}")
        out[key] = got
    return out


def coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or _NO. Understands None/Optional, unions, Literal, bool, int, float,
    str, list/tuple/dict (element types checked for list and tuple[X, ...]); anything else passes."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            got = coerce(value, arg)
            if got is not _NO:
                return got
        return _NO
    if tp is type(None):
        return None if value is None else _NO
    if origin is Literal:
        return value if value in typing.get_args(tp) else _NO
    if tp is bool:
        return value if isinstance(value, bool) else _NO
    if tp is int:
        return _as_int(value)
    if tp is float:
        return _as_float(value)
    if tp is str:
        return value if isinstance(value, str) else _NO
    if origin in (list, tuple) or tp in (list, tuple):
        return _as_sequence(value, tp)
    if origin is dict or tp is dict:
        return value if isinstance(value, dict) else _NO
    return value


def _as_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # YAML `1.0e3`
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return _NO
            return int(f) if f.is_integer() else _NO
    return _NO


def _as_float(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return _NO
    return _NO


def _as_sequence(value: Any, tp: Any) -> Any:
    """A list/tuple, its elements checked for list[X] and tuple[X, ...]."""
    if not isinstance(value, (list, tuple)):
        return _NO
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    elem = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
    if elem is None:
        return value
    items = [coerce(v, elem) for v in value]
    return _NO if any(i is _NO for i in items) else type(value)(items)


def describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true/false"
    if tp is str:
        return "a string"
    return f"a {getattr(tp, '__name__', None) or str(tp)}"
