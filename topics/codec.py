"""Every JSON encode and decode in omnihooks goes through here (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """UTF-8 JSON bytes; dataclasses encode as objects in field order."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps_pretty(value: Any) -> str:
    """Indented JSON text, for people."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
