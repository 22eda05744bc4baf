#!/usr/bin/env bash
# Run the whole test suite, installing what it needs (Debian's chromium for the browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
bash scripts/chromium.sh
"$PY" -m ruff check .
"$PY" -m pytest "$@"
