import pytest

from streams.core.clock import iso
from streams.ops.dead_letters import Entry, FilterError, build_filters, parse_time
from topics.records import Attempt, DeadLetter, WebhookJob

NOW = 1_700_000_000.0


def entry(status: int | None = 500, error: str | None = None, age_s: float = 60) -> Entry:
    job = WebhookJob("d-1", "Message", "room-1", "https://crm.example.com/hook", {}, iso(NOW))
    attempts = (Attempt(iso(NOW - age_s), status, error, 5.0),)
    return Entry(0, 7, DeadLetter(job, attempts, iso(NOW - age_s), "dead"))


def filters(**kwargs: object) -> object:
    values: dict[str, object] = {"since": None, "until": None, "types": [], "room": None,
                                 "url": None, "status": None, "now": NOW}  # fmt: skip
    values.update(kwargs)
    return build_filters(**values)  # type: ignore[arg-type]


def test_relative_and_iso_times() -> None:
    assert parse_time("2h", NOW, "--since") == NOW - 7200
    assert parse_time("30m", NOW, "--since") == NOW - 1800
    assert parse_time(iso(NOW), NOW, "--since") == pytest.approx(NOW, abs=0.001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "yesterday"}, "--since 'yesterday' is neither"),
        ({"until": "2h ago"}, "--until"),
        ({"types": ["Nonsense"]}, "--type"),
        ({"status": "!!"}, "--status"),
        ({"since": "1h", "until": "2h"}, "--since is after --until"),
    ],
)
def test_bad_values_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        filters(**kwargs)


def test_filters_select_by_each_field() -> None:
    e = entry()
    assert filters().matches(e)  # type: ignore[attr-defined]
    assert filters(since="2m").matches(e)  # type: ignore[attr-defined]
    assert not filters(since="30s").matches(e)  # type: ignore[attr-defined]
    assert filters(types=["Message"], room="room-1", url="crm.example").matches(e)  # type: ignore[attr-defined]
    assert not filters(room="room-2").matches(e)  # type: ignore[attr-defined]
    assert filters(status="500").matches(e) and filters(status="5xx").matches(e)  # type: ignore[attr-defined]
    assert not filters(status="404").matches(e)  # type: ignore[attr-defined]
    assert filters(status="timeout").matches(entry(None, "timeout"))  # type: ignore[attr-defined]
    assert filters(ids=["d-1"]).matches(e) and filters(ids=["d-1@0:7"]).matches(e)  # type: ignore[attr-defined]
