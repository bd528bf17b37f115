#!/usr/bin/env bash
# Set up a virtual environment, build the executables, run the whole test suite.
# This is the README.txt test command and exactly what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if [[ -f requirements-build.txt && -f build.spec && "${DEIDKIT_SKIP_BUILD:-0}" != "1" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-build.txt
  PYTHON=.venv/bin/python bash tools/build_executables.sh
  export DEIDKIT_REQUIRE_EXECUTABLES=1
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
