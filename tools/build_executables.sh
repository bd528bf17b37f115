#!/usr/bin/env bash
# Reproducible build of dist/deid_tool and dist/rename_folders (.exe on Windows).
#
#   pip install -r requirements-build.txt
#   tools/build_executables.sh            # one-file programs (what partners receive)
#   DEIDKIT_ONEFOLDER=1 tools/build_executables.sh   # dist/deidkit_onefolder/ instead
#
# Same source + same build environment (OS, Python, requirements-build.txt pins) -> the same
# bytes: hash randomisation is fixed and every timestamp comes from the last git commit.
# Extra arguments go to PyInstaller (e.g. --distpath D --workpath W).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

export PYTHONHASHSEED=0
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || true)"
    if [ -z "$SOURCE_DATE_EPOCH" ]; then
        echo "build_executables: no git history; set SOURCE_DATE_EPOCH for a reproducible build" >&2
        SOURCE_DATE_EPOCH=315532800  # 1980-01-01, the earliest a zip archive can record
    fi
fi
export SOURCE_DATE_EPOCH
# Files written during the build must not depend on who builds where.
export TZ=UTC LC_ALL=C
umask 022

distpath=dist
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[i]}" = "--distpath" ] && distpath="${args[i + 1]}"
done

if ! "$PYTHON" -c 'import PyInstaller' 2>/dev/null; then
    echo "build_executables: PyInstaller is not installed for $PYTHON: pip install -r requirements-build.txt" >&2
    exit 2
fi
echo "Building with $("$PYTHON" -c 'import sys, PyInstaller; print(f"Python {sys.version.split()[0]}, PyInstaller {PyInstaller.__version__}")')"
echo "PYTHONHASHSEED=$PYTHONHASHSEED SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN "$@" build.spec
end=$(date +%s)
echo "Build time: $((end - start)) s"

# Sizes and hashes, in Python so the same lines come out on Linux, macOS and Windows (Git Bash).
"$PYTHON" - "$distpath" "${DEIDKIT_ONEFOLDER:-}" <<'PY'
import hashlib, sys
from pathlib import Path

dist = Path(sys.argv[1])
onefolder = sys.argv[2] not in ("", "0")
where = dist / "deidkit_onefolder" if onefolder else dist
found = [p for n in ("deid_tool", "rename_folders") for p in (where / n, where / f"{n}.exe") if p.is_file()]
if not found:
    sys.exit(f"build_executables: no executables under {dist}")
for p in found:
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    print(f"{p.stat().st_size / 2**20:7.1f} MB  sha256 {digest}  {p.as_posix()}")
folder = dist / "deidkit_onefolder"
if onefolder:
    h = hashlib.sha256()
    total = 0
    for f in sorted(q for q in folder.rglob("*") if q.is_file()):
        data = f.read_bytes()
        total += len(data)
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
    print(f"{total / 2**20:7.1f} MB  sha256 {h.hexdigest()}  {folder.as_posix()}/ (whole folder)")
PY
