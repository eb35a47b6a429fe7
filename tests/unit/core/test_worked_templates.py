"""The README's worked templates (deploy/templates/*.jq) on the seed's two sample bodies:
each makes exactly its golden request, and the README shows each one as it is."""

from __future__ import annotations

import pytest

from streams.core.expressions import render
from tests.support.files import REPO
from topics import codec

TEMPLATES = sorted((REPO / "deploy" / "templates").glob("*.jq"))
SAMPLES = ("livechat-session", "message")


def test_there_is_a_template_for_each_kind_of_receiver() -> None:
    assert {t.stem for t in TEMPLATES} == {
        "hubspot-note",
        "salesforce-case",
        "slack-summary",
        "compact",
    }


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.stem)
@pytest.mark.parametrize("sample", SAMPLES)
def test_a_worked_template_makes_its_golden_request(template: object, sample: str) -> None:
    body = (REPO / "tests" / "golden" / "rocketchat-2023" / f"{sample}.json").read_bytes()
    made = render(template.read_text(), codec.dumps(codec.loads(body)))  # type: ignore[attr-defined]
    golden = codec.loads(
        (REPO / "tests" / "golden" / "templates" / f"{template.stem}.{sample}.json").read_bytes()
    )  # type: ignore[attr-defined]
    assert {"method": made.method, "path": made.path, "headers": made.headers,
            "body": codec.loads(made.body)} == golden  # fmt: skip


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.stem)
def test_the_readme_shows_each_template_as_it_is(template: object) -> None:
    program = "\n".join(
        line
        for line in template.read_text().splitlines()
        if not line.startswith("#")  # type: ignore[attr-defined]
    )
    assert program.strip() in (REPO / "README.md").read_text()
