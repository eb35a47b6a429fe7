"""An endpoint's filter and template: jq programs over the webhook body.

jq (libjq, through the `jq` package) because it is the JSON language operators already
know from the shell, and it compiles once and runs in C: bench/results/costs.json has its
cost per webhook beside JSONata's.

- A **filter** decides whether an endpoint gets a webhook when the job is made: its first
  output is true (jq's truth: anything but `false` and `null`); no output, `false` or
  `null` is no match. A filter that fails on a body is no match too (the caller logs it).
- A **template** builds the request at each attempt: an object with `body` (sent as JSON),
  and optionally `method` (POST, PUT or PATCH), `path` (appended to the endpoint's URL:
  `/notes` or `?id=1`) and `headers` (names to strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jq

from topics import codec

METHODS = ("POST", "PUT", "PATCH")
TEMPLATE_KEYS = frozenset({"body", "method", "path", "headers"})
# libjq's "... at <top-level>, line 1, column 5:" (kept as the position an operator reads)
_POSITION = re.compile(r"line (\d+)(?:, column (\d+))?")


class ExpressionError(ValueError):
    """A filter or template that does not compile, or fails on a body: why, and where."""


@dataclass(frozen=True)
class Request:
    """What a template made of a body: the bytes sent and how."""

    body: bytes
    method: str = "POST"
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _reason(exc: ValueError) -> str:
    text = str(exc).replace("jq: error: ", "").replace("\njq: 1 compile error", "")
    return " ".join(line.strip() for line in text.splitlines() if line.strip() != "^")


@lru_cache(maxsize=512)
def compiled(program: str) -> Any:
    """The compiled program (cached: endpoints share programs, and a record's every
    update would compile again otherwise); ExpressionError if it does not compile."""
    try:
        return jq.compile(program)
    except ValueError as exc:
        raise ExpressionError(f"does not compile: {_reason(exc)}") from None


def position(error: ExpressionError) -> tuple[int, int] | None:
    """(line, column) libjq gave for a compile error, if it gave one."""
    found = _POSITION.search(str(error))
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def matches(program: str, body: bytes) -> bool:
    """Whether the filter lets the webhook through; ExpressionError if it fails on it."""
    try:
        outputs = compiled(program).input_text(body.decode()).all()
    except ValueError as exc:
        raise ExpressionError(f"filter failed: {_reason(exc)}") from None
    return bool(outputs) and outputs[0] is not None and outputs[0] is not False


def render(program: str, body: bytes) -> Request:
    """The request the template makes of the body; ExpressionError if it fails or makes
    something that is not a request."""
    try:
        outputs = compiled(program).input_text(body.decode()).all()
    except ValueError as exc:
        raise ExpressionError(f"template failed: {_reason(exc)}") from None
    if len(outputs) != 1:
        raise ExpressionError(f"template made {len(outputs)} outputs, not one request")
    made = outputs[0]
    if not isinstance(made, dict) or "body" not in made:
        raise ExpressionError("template must make an object with a body: {body: ...}")
    unknown = sorted(set(made) - TEMPLATE_KEYS)
    if unknown:
        raise ExpressionError(f"template made unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(TEMPLATE_KEYS))}")  # fmt: skip
    method = made.get("method") or "POST"
    if method not in METHODS:
        raise ExpressionError(f"template method {method!r}: one of {', '.join(METHODS)}")
    path = made.get("path") or ""
    if not isinstance(path, str) or (path and path[0] not in "/?"):
        raise ExpressionError(f"template path {path!r}: a string starting with / or ?")
    headers = made.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ExpressionError("template headers: an object of strings")
    return Request(codec.dumps(made["body"]), method, path, headers)


def check(program: str, samples: list[bytes], kind: str) -> None:
    """Compile the program and run it on each sample body: ExpressionError naming the
    first sample it fails on (a filter may say no to any; it must not fail)."""
    compiled(program)
    for n, sample in enumerate(samples):
        try:
            if kind == "filter":
                matches(program, sample)
            else:
                render(program, sample)
        except ExpressionError as exc:
            webhook = codec.loads(sample).get("type", f"sample {n + 1}")
            raise ExpressionError(f"{exc} (on the {webhook} sample)") from None
