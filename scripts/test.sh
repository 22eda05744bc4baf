#!/usr/bin/env bash
# Run the whole test suite, installing what it needs (Debian's chromium for the browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
"$PY" -m ruff check .
"$PY" -m pytest "$@"
