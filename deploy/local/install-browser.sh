#!/usr/bin/env bash
# The console's browser tests need a headless Chromium and its chromedriver. Where they are
# missing, install the distribution's packages (Debian/Ubuntu: chromium, chromium-driver),
# as root or through sudo; otherwise stop with what to install: the tests never skip.
set -euo pipefail
have() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
  || command -v google-chrome >/dev/null; }
if have && command -v chromedriver >/dev/null; then
  exit 0
fi
if command -v apt-get >/dev/null; then
  run=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then run=(sudo -n); else run=(false); fi
  fi
  echo "installing chromium and chromium-driver for the console's browser tests..." >&2
  if "${run[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      "${run[@]}" apt-get install -y -qq chromium chromium-driver >&2; then
    exit 0
  fi
fi
cat >&2 <<'MSG'
The console's browser tests need Chromium and chromedriver and could not install them.
Install them as root (Debian/Ubuntu: apt-get install chromium chromium-driver; Fedora:
dnf install chromium chromedriver; macOS: brew install --cask chromium chromedriver), or
point OMNIHOOKS_TEST_CHROME and OMNIHOOKS_TEST_CHROMEDRIVER at existing binaries.
MSG
exit 1
