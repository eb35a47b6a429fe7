"""Every JSON encode and decode in omnihooks goes through here (orjson)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """UTF-8 JSON bytes; dataclasses and records encode as objects in field order."""
    return orjson.dumps(value, default=_builtins)


def _builtins(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps_pretty(value: Any) -> str:
    """Indented JSON text, for people."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_builtins).decode()
