#!/usr/bin/env bash
# Install credreg with its development dependencies, the services the tests start (PostgreSQL
# and Virtuoso from Debian's packages), and run the linters and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is not installed and cannot be installed here: its tests will be skipped" >&2
  fi
fi
# Virtuoso 7 (the second remote triple store): only the server and isql binaries, not the
# virtuoso-opensource metapackage, whose debconf asks for a dba password.
if ! command -v virtuoso-t >/dev/null 2>&1 || ! command -v isql-vt >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Virtuoso from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      virtuoso-opensource-7-bin >/dev/null
  else
    echo "Virtuoso is not installed and cannot be installed here: its tests will be skipped" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
