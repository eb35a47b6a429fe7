#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests against a real broker
# (KAFKA_BOOTSTRAP_SERVERS, else testcontainers when Docker answers, else the local broker).
set -euo pipefail
cd "$(dirname "$0")"
bash deploy/local/setup-venv.sh
bash deploy/local/install-helm.sh
bash deploy/local/install-browser.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
