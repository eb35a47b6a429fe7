#!/usr/bin/env bash
# The main job on the embedded default: set up .venv, start the local Kafka broker, create
# the topics, run the worker in the foreground (Ctrl-C stops it; `omnihooks kafka down`
# stops the broker).
set -euo pipefail
cd "$(dirname "$0")"
bash deploy/local/setup-venv.sh
.venv/bin/omnihooks kafka up
.venv/bin/omnihooks topics apply
exec .venv/bin/omnihooks worker "$@"
