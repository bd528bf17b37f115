"""A person's decisions on images that waited for them (review_decisions.csv) in a run: approved
images done again with their boxes, rejected ones marked, the file rewritten with new waiting
images, and the summary's lines on what people decided."""
from __future__ import annotations

from pathlib import Path

from . import review_decisions
from .export_model import HELD, FileResult
from .review_decisions import Decision


def decision_for(r: FileResult, decisions: dict[str, Decision]) -> Decision | None:
    """The person's row for a result, when it names the same original file (or none)."""
    d = decisions.get(r.ref)
    if d is None or (d.original_file and d.original_file != r.src):
        return None  # the export changed since the row was written: never apply it to another file
    return d


def decided_jobs(jobs: list[tuple[str, str, str]], done: dict[str, FileResult],
                 decisions: dict[str, Decision]) -> list[tuple[str, ...]]:
    """Jobs again for images waiting for review that a person approved (with the boxes decided,
    then the boxes the tool proposed); those leave `done`. Rejected ones get their reason updated
    in place (they stay held)."""
    again: list[tuple[str, ...]] = []
    for job in jobs:
        r = done.get(job[2])
        if r is None or r.status != HELD or r.proposal is None:
            continue
        d = decision_for(r, decisions)
        if d is None:
            continue
        if d.decision == review_decisions.APPROVE:
            again.append((*job, d.boxes, r.proposal))
            del done[job[2]]
        elif d.decision == review_decisions.REJECT and not r.reason.startswith(review_decisions.REJECTED):
            r.reason = f"{review_decisions.REJECTED}: {r.reason}"
    return again


def write_decisions(path: Path, previous: dict[str, Decision], results: list[FileResult]) -> list[str]:
    """review_decisions.csv after a run (earlier decisions kept, new waiting images added);
    returns the summary's lines on what people decided."""
    waiting = [Decision(r.ref, "", r.proposal or "", r.reason, r.src, r.frames or 1)
               for r in results if r.status == HELD and r.proposal is not None]
    rows = review_decisions.merge(previous, waiting)
    if rows or path.exists():
        review_decisions.write_decisions(path, rows)
    decided = {d.ref: d for d in rows}
    pairs = [(r.proposal or "", decided[r.ref]) for r in results
             if r.proposal is not None and r.ref in decided and decision_for(r, decided) is not None]
    return review_decisions.summary_lines(pairs)
