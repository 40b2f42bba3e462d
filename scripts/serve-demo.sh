#!/usr/bin/env bash
# Install credreg into .venv and serve it on http://127.0.0.1:8000 with the demo dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/credreg serve --demo "$@"
