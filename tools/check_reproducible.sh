#!/usr/bin/env bash
# Build the executables twice and compare their sha256: exit 0 when byte-identical.
# The second build runs from a copy of the source at another path, with its own work folder
# AND its own virtual environment in another folder (PYTHON2, or one made here from
# requirements-build.txt), so that neither the checkout's nor the environment's location nor
# leftovers of the first build can hide a difference.
#
#   tools/check_reproducible.sh            # one-file programs
#   DEIDKIT_ONEFOLDER=1 tools/check_reproducible.sh
#   PYTHON=.venv/bin/python PYTHON2=/elsewhere/venv/bin/python tools/check_reproducible.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/deidkit-repro.XXXXXX")"
keep=0
trap '[ "$keep" = 1 ] && echo "kept for inspection: $scratch" || rm -rf "$scratch"' EXIT

# The second source copy: tracked files plus new ones not ignored (what a commit would hold).
mkdir -p "$scratch/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue  # deleted but still in the index
    mkdir -p "$scratch/src/$(dirname "$f")"
    cp -p "$f" "$scratch/src/$f"
done

if [ -z "${PYTHON2:-}" ]; then
    echo "== second virtual environment: $scratch/venv2"
    "$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))' >/dev/null
    "$PYTHON" -m venv "$scratch/venv2"
    PYTHON2="$scratch/venv2/bin/python"
    [ -x "$PYTHON2" ] || PYTHON2="$scratch/venv2/Scripts/python.exe"
    "$PYTHON2" -m pip install --quiet --disable-pip-version-check -r requirements-build.txt
fi
echo "   environment 1: $("$PYTHON" -c 'import sys; print(sys.prefix)')"
echo "   environment 2: $("$PYTHON2" -c 'import sys; print(sys.prefix)')"

echo "== build 1: $root"
PYTHON="$PYTHON" tools/build_executables.sh --distpath "$scratch/dist1" --workpath "$scratch/work1" | tail -n 6
echo "== build 2: $scratch/src"
(cd "$scratch/src" && PYTHON="$PYTHON2" bash tools/build_executables.sh \
    --distpath "$scratch/dist2" --workpath "$scratch/work2" | tail -n 6)

"$PYTHON" - "$scratch/dist1" "$scratch/dist2" <<'PY' || { keep=1; exit 1; }
import hashlib, sys
from pathlib import Path

a, b = Path(sys.argv[1]), Path(sys.argv[2])
def digests(d):
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}
da, db = digests(a), digests(b)
if not da:
    sys.exit("check_reproducible: nothing was built")
differ = sorted(k for k in da.keys() | db.keys() if da.get(k) != db.get(k))
for k in differ:
    print(f"DIFFERS: {k}  {da.get(k, 'missing')[:16]}  {db.get(k, 'missing')[:16]}")
if differ:
    sys.exit(f"NOT reproducible: {len(differ)} of {len(da)} file(s) differ")
print(f"Reproducible: {len(da)} file(s) byte-identical across two builds")
PY
