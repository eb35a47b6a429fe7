"""Paths inside the repository that tests read: nothing outside it (test_standalone.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
# Rocket.Chat's documentation samples, the seed era's two bodies (tests/golden/README.md).
SEED = GOLDEN / "rocketchat-2023"
DOCS = REPO / "docs"
