#!/usr/bin/env bash
# Install everything the test suite needs, then run it all, fast suite first:
# `bash scripts/test.sh [pytest args]`.
# Chromium (for the Automations page tests) and PostgreSQL (events store tests) come from
# Debian's packages; the rest from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
# PostgreSQL (the events store's tests start their own cluster with its initdb and postgres).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi

PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python scripts/typecheck.py  # mypy: strict on domain/ and workflows/ (pyproject [tool.mypy])
# The fast suite first (tests/domain, tests/workflows, tests/api: no server process but
# Temporal's time-skipping test server; under a minute), then the slow one (tests/e2e and
# tests/page: real processes, Chromium). Each failure fails the script; so does pytest's exit
# status 5 (it collected no test). Arguments (e.g. `-q -x`) go to both runs.
# The fast suite runs over every core (pytest-xdist): 54 s on 2 cores, 90 s in one.
.venv/bin/python -m pytest -m "not e2e" -n auto "$@"
.venv/bin/python -m pytest -m e2e "$@"
