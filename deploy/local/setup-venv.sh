#!/usr/bin/env bash
# Creates .venv/ in the repo root and installs omnihooks (editable) with its test tools.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "omnihooks needs Python 3.11+ (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || echo "warning: $tool not found: the embedded Kafka broker needs Java 17+ and Maven" >&2
done
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
stamp="$root/.venv/.omnihooks-installed"
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$root/.venv/bin/python" -m pip install --quiet -e "$root[test]"
  echo "$want" > "$stamp"
fi
