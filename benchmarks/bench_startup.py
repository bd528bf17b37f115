"""Start-up time of the built executables next to the scripts they are built from.

    python benchmarks/bench_startup.py [--runs 9] [--dist dist]

Each program runs `--version` (start, load the guideline tables, print, exit) several times; the
median wall time is printed for the executable (empty environment, as a double-click would) and
for `python <script>.py`, with their ratio. A one-file executable unpacks itself into the temp
folder at every start, so every run pays that cost; the first run of each is shown separately
(disk cache may be cold then). Figures only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("deid_tool", "rename_folders")


def executable(dist: Path, name: str) -> Path | None:
    for candidate in (dist / name, dist / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    return None


def bare_env() -> dict[str, str]:
    """As empty as the platform allows (on Windows, what every logged-on user has)."""
    if os.name == "nt":
        keep = ("SYSTEMROOT", "TEMP", "TMP", "USERPROFILE", "APPDATA", "LOCALAPPDATA")
        return {k: os.environ[k] for k in keep if k in os.environ}
    return {}


def timed_runs(cmd: list[str], runs: int, env: dict[str, str] | None, cwd: str) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)

    print(f"Start-up (`--version`), median of {args.runs} runs; Python {sys.version.split()[0]}, {sys.platform}")
    print(f"{'program':15} {'size MB':>8} {'exe first':>10} {'exe median':>11} {'script median':>14} {'exe/script':>11}")
    missing = []
    with tempfile.TemporaryDirectory() as cwd:
        for name in PROGRAMS:
            exe = executable(args.dist, name)
            script = ROOT / f"{name}.py"
            if exe is None or not script.is_file():
                missing.append(name)
                continue
            exe_times = timed_runs([str(exe), "--version"], args.runs + 1, bare_env(), cwd)
            script_times = timed_runs([sys.executable, str(script), "--version"], args.runs, None, cwd)
            first, exe_median = exe_times[0], statistics.median(exe_times[1:])
            script_median = statistics.median(script_times)
            size = exe.stat().st_size / 2**20
            print(f"{name:15} {size:8.1f} {first:9.2f}s {exe_median:10.2f}s {script_median:13.2f}s "
                  f"{exe_median / script_median:10.1f}x")
    if missing:
        print(f"not measured (build with tools/build_executables.sh first): {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
