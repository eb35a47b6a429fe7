"""The repository stands alone: no code, test, benchmark or document reads or links a path
outside it. CI always has a folder beside the clone, so a test that passes there could still
depend on it; this one looks for such paths instead."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.files import REPO

SKIPPED_DIRS = {".git", ".venv", ".cache", ".test-output", "omnihooks-data", "node_modules"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yaml", ".yml", ".txt", ".json", ".properties"}
OUTSIDE_NAMES = re.compile(r"\.\./shared|\bshared/(seed|contract|hooks)\b|\"shared\"\s*/")
PARENTS = re.compile(r"__file__\)[^\n]*?\.parents\[(\d+)\]")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def repository_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if SKIPPED_DIRS & set(relative.parts) or any(
            p.endswith(".egg-info") for p in relative.parts
        ):
            continue
        if path.is_file() and (
            path.suffix in TEXT_SUFFIXES or path.name in {"Dockerfile", "run", "run.sh"}
        ):
            files.append(path)
    return files


def outside_references(path: Path, text: str) -> list[str]:
    where = path.relative_to(REPO)
    found = [f"{where}: {m.group(0)}" for m in OUTSIDE_NAMES.finditer(text)]
    if path.suffix == ".py":
        # parents[k] of a file k+1 folders deep is the repository root's parent
        depth = len(where.parts)
        found += [
            f"{where}: parents[{m.group(1)}]"
            for m in PARENTS.finditer(text)
            if int(m.group(1)) >= depth
        ]
    if path.suffix == ".md":
        for m in LINK.finditer(text):
            target = m.group(1).split("#")[0]
            if not target or re.match(r"[a-z]+:", target):
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(REPO):
                found.append(f"{where}: link to {target} (outside the repository)")
            elif not resolved.exists():
                found.append(f"{where}: link to {target} (no such file)")
    return found


def test_nothing_reads_or_links_outside_the_repository() -> None:
    files = [path for path in repository_files() if path != Path(__file__).resolve()]
    assert len(files) > 100  # the walk found the repository
    offenders = [
        hit for path in files for hit in outside_references(path, path.read_text(errors="replace"))
    ]
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_a_path_outside_and_a_dead_link(tmp_path: Path) -> None:
    code = REPO / "tests" / "unit" / "probe.py"
    doc = REPO / "docs" / "probe.md"
    assert outside_references(code, 'Path(__file__).resolve().parents[3] / "x"')
    assert not outside_references(code, 'Path(__file__).resolve().parents[2] / "x"')
    assert outside_references(code, 'SEED = ROOT.parent / "shared" / "seed"')
    assert outside_references(doc, "[contract](../../shared/contract/README.md)")
    assert outside_references(doc, "[gone](design/nowhere.md)")
    assert not outside_references(
        doc, "[contract](contract.md) and [web](https://docs.rocket.chat/)"
    )
