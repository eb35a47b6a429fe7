"""The alert fold (streams/core/alerts.py): once per transition across workers, claims of a
silent worker ageing out, pauses, the dead-letter threshold, no alert about an alert
endpoint, and where each alert goes."""

from __future__ import annotations

from streams.core.alerts import (
    ALERT_TYPE,
    CLOSED,
    DEAD_LETTERS,
    OPENED,
    PAUSED,
    RESUMED,
    SLACK_TEMPLATE,
    Alert,
    AlertPolicy,
    alert_jobs,
    fold,
    fold_heartbeat,
)
from streams.core.endpoints import EndpointDirectory
from streams.core.expressions import render
from topics import codec
from topics.records import EndpointRecord, HealthEvent
from topics.state import EndpointAlertState

CRM = "https://crm.example/hooks"
POLICY = AlertPolicy(dead_letters=3, window_s=60, claim_ttl_s=90, stale_s=3600)
T0 = 1_800_000_000.0


def fact(kind: str, worker: str, at: float, url: str = CRM, **more: object) -> HealthEvent:
    return HealthEvent(kind, worker, T0 + at, url, "acme", "crm", **more)  # type: ignore[arg-type]


class Fold:
    """The agent's loop over its table, in memory."""

    def __init__(self) -> None:
        self.states: dict[str, EndpointAlertState] = {}
        self.alerts: list[Alert] = []

    def __call__(self, event: HealthEvent, now: float | None = None) -> list[str]:
        now = event.at if now is None else now
        if event.kind == "heartbeat":
            changes = fold_heartbeat(list(self.states.values()), event, POLICY, now)
        else:
            changes = [fold(self.states.get(event.url), event, POLICY, now)]
        raised = []
        for state, alerts in changes:
            self.states[state.url] = state
            self.alerts += alerts
            raised += [a.kind for a in alerts]
        return raised


def test_two_workers_opening_and_closing_one_endpoint_raise_one_opened_and_one_closed() -> None:
    apply = Fold()
    assert apply(fact("opened", "w1", 0, reason="HTTP 503")) == [OPENED]
    assert apply(fact("opened", "w2", 1)) == []
    assert apply(fact("opened", "w1", 2)) == [], "the same worker again (a fact said twice)"
    assert apply(fact("closed", "w1", 30)) == []
    assert apply(fact("closed", "w2", 31, reason="")) == [CLOSED]
    assert apply(fact("closed", "w2", 32)) == []
    opened = apply.alerts[0]
    assert (opened.workspace, opened.endpoint_id, opened.reason) == ("acme", "crm", "HTTP 503")


def test_a_silent_workers_claim_ages_out_and_closes_the_endpoint() -> None:
    apply = Fold()
    apply(fact("opened", "w1", 0))
    assert apply(HealthEvent("heartbeat", "w2", T0 + 60)) == [], "w1's claim is still fresh"
    assert apply(HealthEvent("heartbeat", "w2", T0 + 91)) == [CLOSED]
    assert "no longer report it open" in apply.alerts[-1].reason


def test_a_heartbeat_refreshes_its_claims_and_drops_those_it_no_longer_holds() -> None:
    apply = Fold()
    apply(fact("opened", "w1", 0))
    apply(fact("opened", "w2", 0))
    assert apply(HealthEvent("heartbeat", "w1", T0 + 80, open=(CRM,))) == []
    assert apply(HealthEvent("heartbeat", "w2", T0 + 100, open=())) == [], "w1 holds it"
    assert apply.states[CRM].open_by == {"w1": T0 + 80}
    assert apply(HealthEvent("heartbeat", "w1", T0 + 110, open=())) == [CLOSED]


def test_a_heartbeat_holding_open_an_endpoint_never_heard_of_opens_it() -> None:
    apply = Fold()
    assert apply(HealthEvent("heartbeat", "w1", T0, open=(CRM,))) == [OPENED]


def test_pauses_alert_once_per_change() -> None:
    apply = Fold()
    assert apply(fact("paused", "w1", 0, reason="maintenance")) == [PAUSED]
    assert apply(fact("paused", "w2", 1)) == [], "forwarded twice"
    assert apply(fact("resumed", "w1", 2)) == [RESUMED]


def test_dead_letters_alert_when_the_count_within_the_window_reaches_the_threshold() -> None:
    apply = Fold()
    assert apply(fact("dead_letter", "w1", 0)) == []
    assert apply(fact("dead_letter", "w2", 70)) == [], "the first fell out of the window"
    assert apply(fact("dead_letter", "w1", 80)) == []
    assert apply(fact("dead_letter", "w1", 90)) == [DEAD_LETTERS]
    assert apply.alerts[-1].count == 3
    assert apply(fact("dead_letter", "w1", 95)) == [], "once until it falls below again"
    assert apply(fact("dead_letter", "w1", 200)) == [], "below: re-armed"
    apply(fact("dead_letter", "w1", 201))
    assert apply(fact("dead_letter", "w1", 202)) == [DEAD_LETTERS]


def test_facts_older_than_an_hour_change_the_state_but_raise_nothing() -> None:
    apply = Fold()
    assert apply(fact("paused", "w1", 0), now=T0 + 3601) == []
    assert apply.states[CRM].paused
    assert apply(fact("resumed", "w1", 3602)) == [RESUMED]


def endpoint(
    workspace: str, id_: str, url: str, alerts: str = "", **more: object
) -> EndpointRecord:
    return EndpointRecord(workspace, id_, url, "t", "t", alerts=alerts, **more)  # type: ignore[arg-type]


def directory(*records: EndpointRecord) -> EndpointDirectory:
    found = EndpointDirectory(None, "rocketchat-7")
    for record in records:
        found.apply(record.key(), record.to_json())
    return found


def test_an_alert_goes_to_the_global_and_the_workspaces_alert_endpoints_only() -> None:
    endpoints = directory(
        endpoint("acme", "crm", CRM),
        endpoint("ops", "pager", "https://ops.example/alerts", alerts="all"),
        endpoint("acme", "slack", "https://hooks.slack.example/acme", alerts="workspace"),
        endpoint("zeta", "slack", "https://hooks.slack.example/zeta", alerts="workspace"),
    )
    alert = Alert(OPENED, CRM, "acme", "crm", T0, "HTTP 503")
    jobs = alert_jobs(alert, endpoints, POLICY, "now")
    assert sorted((j.workspace, j.endpoint_id) for j in jobs) == [
        ("acme", "slack"),
        ("ops", "pager"),
    ]
    assert {j.type for j in jobs} == {ALERT_TYPE}
    assert jobs[0].body["alert"] == OPENED and jobs[0].body["endpoint"] == "crm"
    again = alert_jobs(alert, endpoints, POLICY, "later")
    assert [j.delivery_id for j in again] == [j.delivery_id for j in jobs], "stable ids"
    assert len({j.delivery_id for j in jobs}) == 2
    assert endpoints.wanting("acme", "close") == [], "an alert endpoint gets no webhooks"


def test_an_alert_endpoint_raises_no_alert_about_itself() -> None:
    pager = endpoint("ops", "pager", "https://ops.example/alerts", alerts="all")
    alert = Alert(OPENED, pager.url, None, None, T0, "HTTP 500")
    assert alert_jobs(alert, directory(pager), POLICY, "now") == []


def test_a_pause_naming_only_a_url_names_the_endpoint_at_it() -> None:
    endpoints = directory(
        endpoint("acme", "crm", CRM), endpoint("ops", "pager", "https://ops/a", alerts="all")
    )
    jobs = alert_jobs(Alert(PAUSED, CRM, None, None, T0), endpoints, POLICY, "now")
    assert (jobs[0].body["workspace"], jobs[0].body["endpoint"]) == ("acme", "crm")


def test_the_slack_format_is_a_text_message() -> None:
    body = Alert(CLOSED, CRM, "acme", "crm", T0).body(POLICY)
    request = render(SLACK_TEMPLATE, codec.dumps(body))
    sent = codec.loads(request.body)
    assert sent["text"].startswith(":large_green_circle: omnihooks: endpoint acme/crm")
    assert "recovered" in sent["text"] and set(sent) == {"text", "username"}


def test_alert_ids_are_stable_per_transition() -> None:
    one = Alert(OPENED, CRM, "acme", "crm", T0)
    assert one.id == Alert(OPENED, CRM, "acme", "crm", T0, "another reason").id
    assert one.id != Alert(OPENED, CRM, "acme", "crm", T0 + 1).id
    assert one.id != Alert(CLOSED, CRM, "acme", "crm", T0).id


def test_a_workspace_hears_only_of_its_own_endpoint_when_two_share_a_url() -> None:
    endpoints = directory(
        endpoint("acme", "crm", CRM),
        endpoint("zeta", "crm-z", CRM),
        endpoint("acme", "slack", "https://hooks.example/acme", alerts="workspace"),
        endpoint("zeta", "slack", "https://hooks.example/zeta", alerts="workspace"),
    )
    jobs = alert_jobs(Alert(OPENED, CRM, "acme", "crm", T0, "HTTP 503"), endpoints, POLICY, "t")
    named = {j.workspace: (j.body["workspace"], j.body["endpoint"]) for j in jobs}
    assert named == {"acme": ("acme", "crm"), "zeta": ("zeta", "crm-z")}


def test_a_dead_letter_said_twice_counts_once() -> None:
    apply = Fold()
    apply(fact("dead_letter", "w1", 0))
    assert apply(fact("dead_letter", "w1", 0)) == [], "the same fact again"
    assert apply(fact("dead_letter", "w1", 1)) == []
    assert apply(fact("dead_letter", "w2", 2)) == [DEAD_LETTERS]


def test_a_restarted_workers_old_claim_ages_out_instead_of_closing_at_once() -> None:
    apply = Fold()
    assert apply(fact("opened", "w1", 0)) == [OPENED]
    # w1 restarts (a deploy) at 10: its new breaker has not met the failures yet
    restarted = HealthEvent("heartbeat", "w1", T0 + 40, open=(), started=T0 + 10)
    assert apply(restarted) == [], "no false 'closed' at its first heartbeat"
    assert apply(fact("opened", "w1", 50)) == [], "it opens again: still one 'opened'"
    # when the endpoint is well, the old claim ages out and closes it
    apply2 = Fold()
    apply2(fact("opened", "w1", 0))
    apply2(HealthEvent("heartbeat", "w1", T0 + 40, open=(), started=T0 + 10))
    assert apply2(HealthEvent("heartbeat", "w1", T0 + 91, open=(), started=T0 + 10)) == [CLOSED]
    # a claim of this life, no longer held, goes at once
    apply3 = Fold()
    apply3(fact("opened", "w1", 20))
    assert apply3(HealthEvent("heartbeat", "w1", T0 + 40, open=(), started=T0 + 10)) == [CLOSED]
