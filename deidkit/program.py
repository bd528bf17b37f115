"""Where the running program sits (script or frozen executable). A module of its own, imported
by console, mapping and the command lines alike, so none of them needs another (no import circle)."""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import concurrent.futures

WAIT_SLICE_S = 0.2  # how often a loop waiting on pool workers looks for a Ctrl-C noted meanwhile
_CTRL_C: list[bool] = []  # Ctrl-C came while deferred (see deferred_interrupt)


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


def _note_interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001 (a signal handler's signature)
    _CTRL_C.append(True)


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """While pool workers run, Ctrl-C is noted and raised as KeyboardInterrupt by
    `raise_if_interrupted`, at a point of the waiting loop, not wherever it lands: raised inside
    a fork hook or a finaliser (the pool forks workers while it runs), Python prints "Exception
    ignored ... KeyboardInterrupt" and drops it, and the run then waits for ever (seen under load).
    Only in the main thread, and only where Ctrl-C is not already ignored."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    _CTRL_C.clear()
    previous = signal.signal(signal.SIGINT, _note_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _CTRL_C.clear()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt when Ctrl-C came during `deferred_interrupt`."""
    if _CTRL_C:
        raise KeyboardInterrupt


def wait_for_first(futures: Iterable[concurrent.futures.Future], timeout: float) -> set[concurrent.futures.Future]:
    """concurrent.futures.wait(FIRST_COMPLETED) for at most `timeout` seconds, in slices of
    WAIT_SLICE_S, raising KeyboardInterrupt between them when Ctrl-C was noted (deferred_interrupt);
    returns the futures done (empty after the timeout)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = list(futures)
    deadline = time.monotonic() + timeout
    while True:
        done, _ = wait(pending, timeout=max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic())),
                       return_when=FIRST_COMPLETED)
        raise_if_interrupted()
        if done or time.monotonic() >= deadline:
            return done


def end_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """The main process was interrupted: end a ProcessPoolExecutor's workers now (they ignore
    Ctrl-C, see ignore_interrupt) and drop the work not started; their work is redone on resume."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    # A task still being written to the workers' pipe would never be read now: the queue's feeder
    # thread stays blocked in that write, and the exit (multiprocessing joins the feeder) would
    # wait for it for ever. Drop it instead (seen under load: verify hung after Ctrl-C).
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        call_queue.cancel_join_thread()
    pool.shutdown(wait=True, cancel_futures=True)
