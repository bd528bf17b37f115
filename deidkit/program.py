"""Where the running program sits (script or frozen executable). A module of its own, imported
by console, mapping and the command lines alike, so none of them needs another (no import circle)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import concurrent.futures


def is_frozen() -> bool:
    """True inside a PyInstaller executable."""
    return bool(getattr(sys, "frozen", False))


def program_dir() -> Path:
    """The folder the program sits in (the executable's, never PyInstaller's unpack folder)."""
    if is_frozen():
        return Path(sys.executable).resolve().parent
    return Path(sys.argv[0]).resolve().parent


def ignore_interrupt() -> None:
    """Initialiser step for pool worker processes: Ctrl-C reaches every process of the console,
    but only the main process handles it (it ends the pool and says how to resume), so a worker
    ignores SIGINT and prints no "Process ForkPoolWorker-N" traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def end_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """The main process was interrupted: end a ProcessPoolExecutor's workers now (they ignore
    Ctrl-C, see ignore_interrupt) and drop the work not started; their work is redone on resume."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)
