"""The worker processes of a run: jobs in chunks to a process pool, results as they finish, and
what a dead or stuck worker was on done again (export_worker does the files)."""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator

from . import program
from .export_model import FAILED, WORKER_DIED, FileResult, RunConfig
from .export_twins import Claims, Outcome, process_job
from .export_worker import init_worker

if TYPE_CHECKING:  # imported when a pool is first made (startup time of the programs)
    from concurrent.futures import Future, ProcessPoolExecutor

# A pool in which no file at all has finished for this long is taken as stuck (a decoder in an
# endless loop): its workers are ended and their files redone one by one, as after a dead worker.
WORKER_SILENCE_LIMIT = float(os.environ.get("DEIDKIT_WORKER_SILENCE_LIMIT_S", "1800"))

Job = tuple[str, ...]  # (ref, source path, path relative to SOURCE[, approved boxes[, proposed boxes]])
_InFlight = dict["Future[list[Outcome]]", list[Job]]


def execute(jobs: list[Job], config: RunConfig, claims: Claims | None = None) -> Iterator[Outcome]:
    """Results of every job, in the order they finish. A worker that dies (SIGKILL, the OOM
    killer, a codec that aborts) breaks the pool: its files and every other file then in flight
    are done again in a new pool; a file that also kills a worker working on it alone gets the
    result WORKER_DIED (not journaled: the next run tries it again). Never waits for ever.
    With `claims`, a candidate job with the bytes of an earlier job of the run gives a
    export_twins.SameBytes instead of a FileResult (and an owner whose file changed, a Changed)."""
    args = (config.guidelines, config.key, str(config.dest), str(config.hospital_dir),
            str(config.override_dir or ""))
    workers = config.workers or min((os.cpu_count() or 1) + 1, 9)  # one extra process overlaps disk waits
    if workers <= 1 or len(jobs) < 16:
        init_worker(*args)
        for job in jobs:
            yield from process_job(job, claims)
        return
    # Results travel in chunks: each message costs the parent (which places and journals every
    # file) about as much as placing a file; 16 per chunk cut its CPU by two thirds against 4,
    # while every worker still gets several chunks (even load, steady progress) on smaller runs.
    chunksize = max(4, min(16, len(jobs) // (workers * 4)))
    chunks = [jobs[i:i + chunksize] for i in range(0, len(jobs), chunksize)]
    lost: list[Job] = []
    yield from _run_pool(chunks, workers, args, lost, claims)
    yield from _retry_lost(lost, args, claims)


def _retry_lost(lost: list[Job], args: tuple, claims: Claims | None) -> Iterator[Outcome]:
    """After a broken pool: the files in flight again, one at a time in a one-worker pool, so the
    file a dying worker was on is known for certain. One death can be chance (the OOM killer
    picks a process, not a file): a file is given up only after its worker died twice."""
    deaths: dict[str, int] = {}
    while lost:
        retry, lost = lost, []
        suspects: list[Job] = []
        yield from _run_pool([[job] for job in retry], 1, args, suspects, claims)
        if suspects:
            job = suspects[0]  # the one the lone worker was on when it died
            deaths[job[0]] = deaths.get(job[0], 0) + 1
            if deaths[job[0]] >= 2:
                yield FileResult(ref=job[0], src=job[2], status=FAILED, reason=WORKER_DIED)
                suspects = suspects[1:]
        lost = suspects


def _run_pool(chunks: list[list[Job]], workers: int, args: tuple, lost: list[Job],
              claims: Claims | None) -> Iterator[Outcome]:
    """Run chunks in a process pool, yielding results as chunks finish; at most a few chunks per
    worker are in flight. If the pool breaks, the jobs not finished are added to `lost` (the
    in-flight ones first, in submission order) and the generator ends."""
    from concurrent.futures import ProcessPoolExecutor

    # DEIDKIT_START_METHOD (tests, troubleshooting): "spawn" as on Windows, macOS and the frozen program
    ctx = multiprocessing.get_context(os.environ.get("DEIDKIT_START_METHOD") or ("spawn" if sys.platform == "win32" else None))
    pending = list(reversed(chunks))
    in_flight: _InFlight = {}
    limit = workers * 3 if workers > 1 else 1
    with program.deferred_interrupt():  # Ctrl-C raised in the wait below, not inside a fork hook
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker, initargs=args)
        try:
            while pending or in_flight:
                broken = _submit(pool, pending, in_flight, limit, claims)
                if not broken:
                    broken = _wait_for_one(pool, in_flight)
                broken = broken or _pool_broke(in_flight)  # it can break after the wait returned
                order = sorted(in_flight, key=lambda f: in_flight[f][0][0])
                yield from _finished(order, in_flight, broken)
                if broken:
                    for future in order:
                        if future in in_flight:
                            lost.extend(in_flight.pop(future))
                    for chunk in reversed(pending):
                        lost.extend(chunk)
                    # the workers left are ended, not waited for: with "spawn" one can be left blocked
                    # on the call queue and the pool's shutdown would wait for it for ever
                    program.end_workers(pool)
                    return
        except KeyboardInterrupt:  # Ctrl-C: the workers ignore it; end them now, not after their chunk
            program.end_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool: ProcessPoolExecutor, pending: list[list[Job]], in_flight: _InFlight, limit: int,
            claims: Claims | None) -> bool:
    """Hand chunks to the pool until `limit` are in flight; True: the pool is broken."""
    from concurrent.futures.process import BrokenProcessPool

    while pending and len(in_flight) < limit:
        chunk = pending.pop()
        try:
            in_flight[pool.submit(_process_chunk, chunk, _chunk_claims(chunk, claims))] = chunk
        except BrokenProcessPool:
            pending.append(chunk)
            return True
    return False


def _wait_for_one(pool: ProcessPoolExecutor, in_flight: _InFlight) -> bool:
    """Wait until a chunk finishes; True: the pool broke (a worker died, or none finished within
    WORKER_SILENCE_LIMIT: a worker is stuck, and is ended like a dead one)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    done = program.wait_for_first(in_flight, WORKER_SILENCE_LIMIT)
    if not done:  # no file finished for that long: a worker is stuck; ended like a dead one
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        wait(in_flight, return_when=FIRST_COMPLETED)
    return any(f.exception() is not None for f in done) or not done


def _pool_broke(in_flight: _InFlight) -> bool:
    """True when a chunk already ended because the pool broke (a worker died after the last wait)."""
    from concurrent.futures.process import BrokenProcessPool

    return any(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in in_flight)


def _finished(order: list["Future[list[Outcome]]"], in_flight: _InFlight, broken: bool) -> Iterator[Outcome]:
    """The results of the chunks done (taken out of in_flight), in submission order."""
    for future in order:
        if not future.done() or (broken and future.exception() is not None):
            continue
        in_flight.pop(future)
        error = future.exception()
        if error is not None:  # not a broken pool: a bug in the chunk loop itself
            raise error
        yield from future.result()


def _init_pool_worker(*args: Any) -> None:
    """init_worker in a pool process, which leaves Ctrl-C to the main process."""
    program.ignore_interrupt()
    init_worker(*args)


def _chunk_claims(chunk: list[Job], claims: Claims | None) -> Claims | None:
    """The claims of one chunk's candidates only (what travels to the worker stays small)."""
    if claims is None:
        return None
    mine = frozenset(job[0] for job in chunk if job[0] in claims.candidates)
    return Claims(claims.folder, mine) if mine else None


def _process_chunk(chunk: list[Job], claims: Claims | None) -> list[Outcome]:
    return [outcome for job in chunk for outcome in process_job(job, claims)]
