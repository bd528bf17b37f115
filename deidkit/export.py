"""The export walk: plan the files, process them in parallel, place outputs, resume, report.

Layout of what one run writes:
  DEST/                         what may be sent: de-identified DICOM + manifest + summary (no PHI)
    SUBJ_<code>/STUDY_<code>/SERIES_<nnnn>_<MOD>_<code>/IMG_<nnnnn>_<code>.dcm
    deid_manifest.csv, deid_summary.txt
  <DEST>_HOSPITAL_ONLY/         never sent: names original files
    held_back.csv, run_log.txt, progress.jsonl (resume state), review.html (+ thumbnails)

This module conducts one run (run_export); each step lives in a module of its own:
  export_model      RunConfig, FileResult, RunSummary; reasons that are not the file's fault
  export_plan       the files to do, output names (contract.OUTPUT_PATH_PATTERN), partial files
  export_worker     one file in a worker: read, judge, de-identify, write (never raises)
  export_pixels     the pixel step of an image at burned-in text risk (a person's boxes or the detector)
  export_last_net   the patient's own identifiers searched in the header bytes before writing
  export_pool       the worker processes: chunks, dead or stuck workers, files redone
  export_place      finished files into place: duplicates, two versions, name clashes, mixed patients
  export_resume     the resume journal (progress.jsonl) and whether a run may resume
  export_decisions  review_decisions.csv in a run: approved images redone, the file rewritten
  export_earlier    an earlier run in DEST: is it ours, remove exactly what it wrote
  export_twins      a file found twice is done once: same bytes -> the first one's outcome
The names other modules, tests and benchmarks import from here are kept (re-exported below).
"""
from __future__ import annotations

import os
from typing import Callable

from . import review_decisions
from .contract import HOSPITAL_SUFFIX, MANIFEST_NAME, PARTIAL_DIR, SOURCE_NOTE, STATE_NAME, SUMMARY_NAME
from .export_decisions import decided_jobs, write_decisions
from .export_earlier import output_is_ours, remove_earlier_output
from .export_last_net import OWN_TAGS, header_leaks, identifier_in_header, needle_search
from .export_model import (DICOMDIR, DISK_FULL, DUPLICATE, FAILED, HELD, REDO_REASONS, SKIPPED, TOO_LARGE_FOR_DISK,
                           UNEXPECTED, WORKER_DIED, WRITTEN, FileResult, RunConfig, RunSummary, os_error_text)
from .export_place import PERSON_CLASH, Placement, person_clash
from .export_plan import NON_DICOM_SUFFIXES, folder_within, output_path, partial_path, plan
from .export_pool import Job, execute
from .export_resume import StateWriter, load_state, source_of, state_matches
from .export_twins import (Changed, Claims, SameBytes, index_of, make_marker_folder, plan_twins, remove_marker_folders,
                           settle, twin_result)
from .export_worker import WORKER_KILL_HOOK, init_worker, person_of, process_file, quiet_library_messages

__all__ = ["DICOMDIR", "DISK_FULL", "DUPLICATE", "FAILED", "HELD", "HOSPITAL_SUFFIX", "KILL_HOOK", "MANIFEST_NAME",
           "NON_DICOM_SUFFIXES", "OWN_TAGS", "PARTIAL_DIR", "PERSON_CLASH", "REDO_REASONS", "SKIPPED", "SOURCE_NOTE",
           "STATE_NAME", "SUMMARY_NAME", "TOO_LARGE_FOR_DISK", "UNEXPECTED", "WORKER_DIED", "WORKER_KILL_HOOK",
           "WRITTEN", "FileResult", "RunConfig", "RunSummary", "folder_within", "output_is_ours", "output_path",
           "partial_path", "person_clash", "person_of", "plan", "process_file", "quiet_library_messages",
           "remove_earlier_output", "run_export", "source_of", "state_matches"]

# The names the one-module export had for these (tests/test_fuzz.py, test_leaks_moments_bytes.py,
# test_export_speedups.py call them so).
_init_worker, _header_leaks, _identifier_in_header, _needle_search = (
    init_worker, header_leaks, identifier_in_header, needle_search)

# Test hook (tests/test_resume.py): "N" kills the whole run (process group) with SIGKILL once the
# N-th result of this run is journaled; "N:placed" once it is in place but not yet journaled.
KILL_HOOK = "DEIDKIT_TEST_KILL_AFTER"


def run_export(config: RunConfig, progress: Callable[[int, int], None] | None = None,
               on_problem: Callable[[FileResult], None] | None = None) -> RunSummary:
    """Process every file of config.source into config.dest; resumable; returns all results.

    Images a person approved in <hospital_dir>/review_decisions.csv are done again with the boxes
    decided; review_decisions.DecisionError (before anything is done) if that file is malformed.
    Raises ValueError if the output or hospital-side folder lies in the export (by any path)."""
    for folder in (config.dest, config.hospital_dir):
        if folder_within(folder, config.source) or folder_within(config.source, folder):
            raise ValueError(f"{folder.name} would be inside the export folder (or the export inside it)")
    config.dest.mkdir(parents=True, exist_ok=True)
    config.hospital_dir.mkdir(parents=True, exist_ok=True)
    (config.hospital_dir / SOURCE_NOTE).write_text(str(config.source), encoding="utf-8", errors="surrogateescape")
    files = plan(config.source, [config.dest, config.hospital_dir, *config.program_files])
    jobs = [(f"F{i + 1:06d}", str(p), p.relative_to(config.source).as_posix()) for i, p in enumerate(files)]
    state_path = config.hospital_dir / STATE_NAME
    done = load_state(state_path, config.fingerprint(), config.dest)
    decisions_path = config.hospital_dir / review_decisions.DECISIONS_NAME
    decisions = review_decisions.read_decisions(decisions_path)
    resuming = bool(done)
    proposals = {r.src: r.proposal for r in done.values() if r.proposal is not None}
    todo: list[Job] = [j for j in jobs if j[2] not in done]
    todo += decided_jobs(jobs, done, decisions)
    results: dict[str, FileResult] = dict(done)
    if progress:
        progress(len(jobs) - len(todo), len(jobs))
    with StateWriter(state_path, config.fingerprint(), fresh=not resuming) as state:
        placement = Placement(config.dest, state, results)
        _run_jobs(todo, config, placement, proposals, (progress, len(jobs)), on_problem)
        placement.hold_mixed_patients()
    for j in jobs:  # only after a full disk: what was not reached is listed and done next time
        if j[2] not in results:
            results[j[2]] = FileResult(ref=j[0], src=j[2], status=FAILED, reason=DISK_FULL)
    _remove_partial_folder(config)
    ordered = [results[j[2]] for j in jobs if j[2] in results]
    return RunSummary(ordered, resumed=len(done),
                      review_lines=write_decisions(decisions_path, decisions, ordered))


def _run_jobs(todo: list[Job], config: RunConfig, placement: Placement, proposals: dict[str, str],
              progress: tuple[Callable[[int, int], None] | None, int],
              on_problem: Callable[[FileResult], None] | None) -> None:
    """Every job through the workers; each result placed, journaled (unless it is to be redone)
    and reported; stops at a full output disk. A file whose bytes another file of the run has
    (export_twins) is processed once: its twins take its outcome after the pool."""
    finisher = _Finisher(placement, proposals, progress, on_problem)
    twins_plan = plan_twins(todo)
    claims = None
    if twins_plan.candidates:
        try:
            claims = Claims(str(make_marker_folder(config.dest / PARTIAL_DIR)), twins_plan.candidates)
        except OSError:
            pass  # no marker folder: every candidate is processed in full (each file says what fails)
    twins = [SameBytes(j[0], j[2], twins_plan.linked[j[0]]) for j in todo if j[0] in twins_plan.linked]
    finisher.waiting = len(twins)
    changed: set[str] = set()
    for item in execute([j for j in todo if j[0] not in twins_plan.linked], config, claims):
        if isinstance(item, SameBytes):
            twins.append(item)
            finisher.waiting += 1
            finisher.show_progress()
        elif isinstance(item, Changed):
            changed.add(item.ref)
        elif finisher.finish(item):
            return  # a full output disk: twins not given an outcome are done next time
    again = _resolve_twins(twins, changed, todo, finisher, config)
    if again is None:
        return
    for item in execute(again, config):  # twins whose outcome needs their own bytes: processed in full
        if isinstance(item, FileResult) and finisher.finish(item):
            return


def _resolve_twins(twins: list[SameBytes], changed: set[str], todo: list[Job], finisher: "_Finisher",
                   config: RunConfig) -> list[Job] | None:
    """Each twin given its owner's outcome (export_twins.settle and twin_result), in source-path
    order. Returns the jobs to process in full; None: stopped at a full output disk."""
    needed = {t.ref for t in twins} | {t.owner for t in twins}
    by_ref = {j[0]: j for j in todo if j[0] in needed}
    results = finisher.placement.results

    def owner_result(ref: str) -> FileResult | None:
        r = results.get(by_ref[ref][2]) if ref in by_ref else None
        return r if r is not None and r.ref == ref else None

    settled, full = settle(twins, changed, owner_result, finisher.placement)
    for twin, owner in settled:
        finisher.waiting -= 1
        result = twin_result(twin, owner, config.hospital_dir)
        if result is None:
            full.add(twin.ref)
        elif finisher.finish(result):
            return None
    finisher.waiting = 0  # the others are processed in full now
    return [by_ref[ref] for ref in sorted(full, key=index_of)]


class _Finisher:
    """Each finished result: placed, journaled (unless it is to be redone) and reported."""

    def __init__(self, placement: Placement, proposals: dict[str, str],
                 progress: tuple[Callable[[int, int], None] | None, int],
                 on_problem: Callable[[FileResult], None] | None) -> None:
        self.placement, self.proposals, self.on_problem = placement, proposals, on_problem
        self.report, self.total = progress
        self.kill = _kill_hook()
        self.finished = 0
        self.waiting = 0  # twins known and not yet given their outcome: counted as done on the progress bar

    def finish(self, result: FileResult) -> bool:
        """Place, journal and report one result; True: the output disk is full (stop)."""
        placement = self.placement
        if result.proposal is None and result.src in self.proposals:
            result.proposal = self.proposals[result.src]  # the tool's proposal, kept for the review counts
        _place(placement, result)
        self.finished += 1
        _maybe_kill(self.kill, self.finished, "placed")
        placement.results[result.src] = result
        if result.reason not in REDO_REASONS:
            placement.state.append(result)
        _maybe_kill(self.kill, self.finished, "journaled")
        if self.on_problem and result.status in (HELD, FAILED):
            self.on_problem(result)
        self.show_progress()
        return result.reason == DISK_FULL  # every further file would fail the same way; stopping keeps the rest intact

    def show_progress(self) -> None:
        """Files done (twins known count as done: theirs is a fingerprint), out of all."""
        if self.report:
            self.report(min(len(self.placement.results) + self.waiting, self.total), self.total)


def _place(placement: Placement, result: FileResult) -> None:
    """placement.place; a file that cannot be moved into place fails (its partial file removed)."""
    try:
        placement.place(result)
    except OSError as e:
        partial_path(placement.dest, result.src).unlink(missing_ok=True)
        result.status, result.reason, result.out = FAILED, os_error_text(e), ""


def _remove_partial_folder(config: RunConfig) -> None:
    partial_dir = config.dest / PARTIAL_DIR
    if partial_dir.exists():
        remove_marker_folders(partial_dir)
        for leftover in partial_dir.iterdir():
            leftover.unlink()
        partial_dir.rmdir()


def _kill_hook() -> tuple[int, str]:
    value = os.environ.get(KILL_HOOK, "")
    if not value:
        return -1, ""
    count, _, when = value.partition(":")
    return int(count), when


def _maybe_kill(hook: tuple[int, str], finished: int, point: str) -> None:
    """The test hook KILL_HOOK at `point` ("placed" or "journaled") after `finished` results."""
    count, when = hook
    if finished == count and (point == "journaled" or when == point):
        _kill_run()


def _kill_run() -> None:
    """Simulate the power button: every process of the run dies at once, nothing is cleaned up."""
    import signal

    if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
