"""Timestamps as the contract writes them: ISO 8601 UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from streams.core.clock import iso, parse_iso


def test_the_seed_timestamp() -> None:
    assert iso(1675332967.230) == "2023-02-02T10:16:07.230Z"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso(1675332967.9999999) == "2023-02-02T10:16:08.000Z"  # rounds like datetime


@given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
def test_same_text_as_datetime_gives(epoch_s: float) -> None:
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert iso(epoch_s) == expected


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_round_trips_milliseconds(epoch_ms: int) -> None:
    assert round(parse_iso(iso(epoch_ms / 1000)) * 1000) == epoch_ms


def test_the_kept_second_follows_the_clock_both_ways() -> None:
    assert iso(1675332967.230) == "2023-02-02T10:16:07.230Z"
    assert iso(1675332967.731) == "2023-02-02T10:16:07.731Z"  # same second, kept text
    assert iso(1675332968.001) == "2023-02-02T10:16:08.001Z"
    assert iso(1675332967.500) == "2023-02-02T10:16:07.500Z"  # back again (a clock step)
