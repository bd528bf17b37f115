"""The review decisions file: what a person decided about each image waiting for review.

<DEST>_HOSPITAL_ONLY/review_decisions.csv (hospital side: it names original files), one row per
image, header first:

    ref,decision,boxes,reason,original_file,frames

  ref            neutral reference of the file (F000123), as in held_back.csv
  decision       empty (undecided), "approve" (send with exactly `boxes` blanked; empty boxes =
                 pixels unchanged) or "reject" (keep it back)
  boxes          rectangles to blank, "F:x0,y0,x1,y1;..." where F is the frame number from 0 or
                 "*" for every frame; pixel coordinates, x1 and y1 exclusive. Pre-filled with the
                 tool's proposal; a person (or the review window) may edit it.
  reason, original_file, frames   shown to the person; original_file is read back only to
                 match the row to its file (a name that is not UTF-8 is stored as its own bytes,
                 surrogateescape, so it matches exactly)

Pure text functions plus one reader and one writer; nothing here knows about DICOM.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

DECISIONS_NAME = "review_decisions.csv"
COLUMNS = ("ref", "decision", "boxes", "reason", "original_file", "frames")
APPROVE, REJECT, UNDECIDED = "approve", "reject", ""
REJECTED = "rejected by a person at review"  # start of the held-back reason of a rejected image
ALL_FRAMES = None  # Region.frame for "*"
_REGION_RE = re.compile(r"^\s*(\*|\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")


class DecisionError(ValueError):
    """A row of the decisions file cannot be understood; the message names the ref and the text."""


@dataclass(frozen=True, order=True)
class Region:
    """A rectangle to blank: frame from 0 (None = every frame), pixel columns x0..x1, rows y0..y1
    (x1, y1 exclusive)."""

    frame: int | None
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        """Pixels covered (0 for an empty rectangle)."""
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)

    def on(self, frame: int) -> bool:
        """Whether this region applies to the frame (numbered from 0)."""
        return self.frame is None or self.frame == frame

    def text(self) -> str:
        """'F:x0,y0,x1,y1' as written in the boxes column."""
        return f"{'*' if self.frame is None else self.frame}:{self.x0},{self.y0},{self.x1},{self.y1}"


@dataclass(frozen=True)
class Decision:
    """One row of the decisions file."""

    ref: str
    decision: str = UNDECIDED
    boxes: str = ""
    reason: str = ""
    original_file: str = ""
    frames: int = 1

    @property
    def regions(self) -> list[Region]:
        """The boxes column parsed; DecisionError when it cannot be read."""
        try:
            return parse_boxes(self.boxes)
        except DecisionError as e:
            raise DecisionError(f"{self.ref}: {e}") from None


def parse_boxes(text: str) -> list[Region]:
    """'0:10,20,110,40;*:0,0,64,16' -> [Region, ...]. Empty text -> []. DecisionError if malformed
    (not F:x0,y0,x1,y1, or x1 <= x0 or y1 <= y0)."""
    regions = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        m = _REGION_RE.match(part)
        if not m:
            raise DecisionError(f"box '{part.strip()}' is not like 0:x0,y0,x1,y1 or *:x0,y0,x1,y1")
        frame = None if m.group(1) == "*" else int(m.group(1))
        x0, y0, x1, y1 = (int(m.group(i)) for i in range(2, 6))
        if x1 <= x0 or y1 <= y0:
            raise DecisionError(f"box '{part.strip()}' is empty (x1 must exceed x0 and y1 exceed y0)")
        regions.append(Region(frame, x0, y0, x1, y1))
    return regions


def format_boxes(regions: list[Region]) -> str:
    """Regions as the boxes column (sorted: same regions, same text)."""
    return ";".join(r.text() for r in sorted(set(regions), key=lambda r: (-1 if r.frame is None else r.frame,
                                                                          r.y0, r.x0, r.y1, r.x1)))


def regions_from_frames(boxes_per_frame: list[list[list[int]]]) -> list[Region]:
    """The pixel module's boxes ([frame][box] = [top, left, bottom, right]) as Regions. A box found
    on every frame of a multi-frame image (the same place, give or take a few pixels: overlapping
    by more than half) becomes one '*' region covering all of them, so a person sees one box for
    a cine's burned-in header, not one per frame."""
    frames = [[Region(i, b[1], b[0], b[3], b[2]) for b in boxes] for i, boxes in enumerate(boxes_per_frame)]
    if len(frames) < 2:
        return [r for f in frames for r in f]
    out: list[Region] = []
    for first in list(frames[0]):
        group = [first]
        for other in frames[1:]:
            match = next((r for r in other if _same(Region(None, *_corners(first)), Region(None, *_corners(r)))), None)
            if match is None:
                break
            group.append(match)
        if len(group) < len(frames):
            continue
        for index, r in enumerate(group):
            frames[index].remove(r)
        out.append(Region(None, min(r.x0 for r in group), min(r.y0 for r in group),
                          max(r.x1 for r in group), max(r.y1 for r in group)))
    return out + [r for f in frames for r in f]


def _corners(r: Region) -> tuple[int, int, int, int]:
    return r.x0, r.y0, r.x1, r.y1


def read_decisions(path: Path) -> dict[str, Decision]:
    """ref -> Decision from the file ({} if it does not exist). Decisions are matched without
    case; an unknown decision word raises DecisionError naming the ref. Extra columns are ignored."""
    try:
        # original_file: a name that is not UTF-8 was written with surrogateescape (its bytes)
        text = Path(path).read_text(encoding="utf-8-sig", errors="surrogateescape")
    except FileNotFoundError:
        return {}
    first = text.split("\n", 1)[0]
    # A spreadsheet in a comma-decimal locale saves with semicolons: read that too.
    delimiter = ";" if first.startswith("ref;") or first.startswith('"ref";') else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if reader.fieldnames is None or not {"ref", "decision", "boxes"} <= {f.strip() for f in reader.fieldnames}:
        raise DecisionError(f"{Path(path).name}: the first line must be ref,decision,boxes")
    out: dict[str, Decision] = {}
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k}
        ref = row.get("ref", "")
        if not ref:
            continue
        word = row.get("decision", "").lower()
        word = {"approved": APPROVE, "rejected": REJECT}.get(word, word)
        if word not in (APPROVE, REJECT, UNDECIDED):
            raise DecisionError(f"{ref}: decision '{row['decision']}' is not approve, reject or empty")
        frames = row.get("frames", "1")
        out[ref] = Decision(ref, word, row.get("boxes", ""), row.get("reason", ""), row.get("original_file", ""),
                            int(frames) if frames.isdigit() else 1)
    return out


def decisions_text(rows: list[Decision]) -> str:
    """The file's text, rows sorted by ref (same decisions, same bytes)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in sorted(rows, key=lambda d: d.ref):
        w.writerow([d.ref, d.decision, d.boxes, d.reason, d.original_file, d.frames])
    return buf.getvalue()


def write_decisions(path: Path, rows: list[Decision]) -> None:
    """Write the file atomically (a reader never sees half of it)."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    # original_file as the bytes of its name when it is not UTF-8 (read back by read_decisions)
    with tmp.open("w", encoding="utf-8", errors="surrogateescape", newline="") as fp:
        fp.write(decisions_text(rows))
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)


def merge(previous: dict[str, Decision], waiting: list[Decision]) -> list[Decision]:
    """The rows to write after a run: every earlier row (a person's decision is never lost) with
    its reason refreshed, plus a row for each image newly waiting."""
    rows = dict(previous)
    for d in waiting:
        old = rows.get(d.ref)
        if old is None or (old.original_file and d.original_file and old.original_file != d.original_file):
            rows[d.ref] = d  # a decision about another file is never carried over to this one
        else:
            rows[d.ref] = replace(old, reason=d.reason or old.reason, original_file=d.original_file or old.original_file)
    return list(rows.values())


def _same(a: Region, b: Region, overlap: float = 0.5) -> bool:
    """Two boxes on the same frame(s) that overlap by more than `overlap` of their union."""
    if a.frame != b.frame:
        return False
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    inter = max(0, w) * max(0, h)
    return inter > overlap * (a.area + b.area - inter)


def changes(proposed: list[Region], decided: list[Region]) -> tuple[int, int]:
    """(boxes added, boxes removed) by a person: decided boxes matching no proposed box (the
    detector missed text), proposed boxes matching no decided box (a false alarm). Moving a box
    a little is neither."""
    added = sum(1 for d in decided if not any(_same(d, p) for p in proposed))
    removed = sum(1 for p in proposed if not any(_same(p, d) for d in decided))
    return added, removed


def summary_lines(pairs: list[tuple[str, Decision]]) -> list[str]:
    """Lines for the delivery summary from (proposed boxes, the person's row) pairs: how many
    images were decided, and how often the person changed the proposal (counts only, no PHI)."""
    if not pairs:
        return []
    approved = [(p, d) for p, d in pairs if d.decision == APPROVE]
    rejected = sum(1 for _, d in pairs if d.decision == REJECT)
    added = removed = changed = proposed_total = 0
    for proposed_text, d in approved:
        try:
            proposed, decided = parse_boxes(proposed_text), d.regions
        except DecisionError:
            continue
        a, r = changes(proposed, decided)
        added, removed, changed = added + a, removed + r, changed + (1 if a or r else 0)
        proposed_total += len(proposed)
    waiting = len(pairs) - len(approved) - rejected
    return [
        f"Images reviewed by a person: {len(approved)} approved, {rejected} rejected, {waiting} waiting",
        f"  Proposals changed by the person: {changed} of {len(approved)} approved images; "
        f"boxes added {added} (text the detector missed), boxes removed {removed} of {proposed_total} "
        "proposed (false alarms)",
    ]
