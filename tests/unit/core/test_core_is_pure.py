"""The core is pure: the standard library, the typed records and its own modules only."""

from __future__ import annotations

import ast
import sys

from tests.support.files import REPO

CORE = REPO / "streams" / "core"
# Third-party code the core may use: pure functions of data, no I/O of their own.
PURE_LIBRARIES = {"uaparser", "msgspec", "jq"}
RECORDS = {"topics.records", "topics.state", "topics.codec", "topics"}


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            if node.module == "topics":
                found.update(f"topics.{alias.name}" for alias in node.names)
    return found


def not_allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in PURE_LIBRARIES:
        return False
    return not (module.startswith("streams.core") or module in RECORDS)


def test_the_core_imports_no_kafka_faust_http_or_settings() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted(CORE.rglob("*.py"))
        for module in imported_modules(path.read_text())
        if not_allowed(module)
    }
    assert not offenders, sorted(offenders)


def test_the_check_catches_a_kafka_or_settings_import() -> None:
    source = "import faust\nfrom confluent_kafka import Producer\nfrom streams.settings import Settings\n"
    assert {m for m in imported_modules(source) if not_allowed(m)} == {
        "faust",
        "confluent_kafka",
        "streams.settings",
    }
