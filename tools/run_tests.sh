#!/usr/bin/env bash
# Set up a virtual environment, run the static checks (ruff, mypy), build the executables,
# run the whole test suite.
# This is the README.txt test command and exactly what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The review window is tested in a real X window (Xvfb); screenshots need xwd/convert.
if ! command -v Xvfb >/dev/null 2>&1 || ! command -v xdotool >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Xvfb and xdotool for the review-window tests (apt-get)..."
    apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xdotool x11-utils imagemagick >/dev/null \
      || echo "apt-get failed: the review-window tests will be skipped"
  else
    echo "Xvfb/xdotool missing (install: sudo apt-get install xvfb xdotool x11-utils imagemagick);" \
         "the review-window tests will be skipped"
  fi
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# Static checks first (configuration in pyproject.toml): both must report zero.
echo "ruff check (pyflakes, bugbear, complexity, docstrings)..."
.venv/bin/python -m ruff check --no-cache --quiet .
echo "mypy (deidkit and the two tool scripts)..."
.venv/bin/python -m mypy --no-incremental --cache-dir=/dev/null
if [[ -f requirements-build.txt && -f build.spec && "${DEIDKIT_SKIP_BUILD:-0}" != "1" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-build.txt
  PYTHON=.venv/bin/python bash tools/build_executables.sh
  export DEIDKIT_REQUIRE_EXECUTABLES=1
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
