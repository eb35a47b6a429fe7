#!/usr/bin/env bash
# helm for the manifest tests: PATH's if there is one, else built once with Go from the Go
# module proxy into .cache/bin (no other download is reachable on these machines).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=v3.22.0
if command -v helm >/dev/null || [ -x "$root/.cache/bin/helm" ]; then
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "helm is missing and Go is not here to build it: install helm $version" >&2
  exit 1
fi
echo "building helm $version with Go into .cache/bin (once; a few minutes)" >&2
GOBIN="$root/.cache/bin" go install "helm.sh/helm/v3/cmd/helm@$version"
