"""What the review window shows and changes, without any window: the model behind
deidkit.review_window (the view). Reads and writes <DEST>_HOSPITAL_ONLY/review_decisions.csv,
the same file a person may edit by hand; every change is saved at once (nothing to "save as").

Coordinates are image pixels (x = column, y = row, exclusive ends), frames numbered from 0,
as in the decisions file. Hospital side only: the images shown may carry PHI.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .review_decisions import (APPROVE, DECISIONS_NAME, REJECT, UNDECIDED, Decision, DecisionError, Region,
                               format_boxes, parse_boxes, read_decisions, write_decisions)

SOURCE_NOTE = "source_path.txt"  # written by deidkit.export beside the decisions file
MIN_SIDE = 3                     # a drawn box smaller than this (pixels) is taken as a click
CACHE_ITEMS = 32                 # images whose decoded frames stay in memory (bounded memory)


@dataclass
class ReviewItem:
    """One image waiting for (or given) a person's decision."""

    decision: Decision
    regions: list[Region]
    proposed: list[Region]
    frames_cache: list[np.ndarray] | None = field(default=None, repr=False)
    error: str = ""

    @property
    def ref(self) -> str:
        """The neutral reference of the held image (its decision row key)."""
        return self.decision.ref

    @property
    def state(self) -> str:
        """'approve', 'reject' or '' (undecided)."""
        return self.decision.decision


class ReviewModel:
    """The decisions of one output folder, with the original images to show.

    hospital_dir  <DEST>_HOSPITAL_ONLY (holds review_decisions.csv and source_path.txt)
    source        the export the images come from (default: the one named in source_path.txt)
    Raises FileNotFoundError when there is no decisions file, DecisionError when it is malformed.
    """

    def __init__(self, hospital_dir: Path, source: Path | None = None) -> None:
        self.hospital_dir = Path(hospital_dir)
        self.path = self.hospital_dir / DECISIONS_NAME
        if not self.path.is_file():
            raise FileNotFoundError(f"no {DECISIONS_NAME} in {self.hospital_dir}")
        if source is None:
            note = self.hospital_dir / SOURCE_NOTE
            source = (Path(note.read_text(encoding="utf-8", errors="surrogateescape").strip()) if note.is_file()
                      else self.hospital_dir)
        self.source = Path(source)
        self._cached: list[ReviewItem] = []
        self.items: list[ReviewItem] = []
        for d in sorted(read_decisions(self.path).values(), key=lambda d: d.ref):
            try:
                regions = parse_boxes(d.boxes)
                error = ""
            except DecisionError as e:
                regions, error = [], str(e)
            self.items.append(ReviewItem(d, list(regions), list(regions), error=error))

    # ---- what is shown ---------------------------------------------------------------------
    def pending(self) -> list[ReviewItem]:
        """Items nobody has decided yet."""
        return [i for i in self.items if i.state == UNDECIDED]

    def page(self, number: int, per_page: int) -> list[ReviewItem]:
        """The items on page `number` (from 0) of pages of `per_page`."""
        return self.items[number * per_page:(number + 1) * per_page]

    def pages(self, per_page: int) -> int:
        """How many grid pages of per_page items there are (at least 1)."""
        return max(1, -(-len(self.items) // per_page))

    def frames(self, item: ReviewItem) -> list[np.ndarray]:
        """The item's frames as shown (uint8 grey or RGB), read from the original once; [] and
        item.error set when it cannot be read."""
        if item.frames_cache is None:
            import pydicom

            from .pixels import PixelError, display_frames

            try:
                ds = pydicom.dcmread(self.source / item.decision.original_file, force=True)
                item.frames_cache = display_frames(ds)
            except (OSError, PixelError, ValueError, AttributeError) as e:
                item.frames_cache, item.error = [], (
                    "cannot show: the export was moved or deleted" if isinstance(e, FileNotFoundError)
                    else f"cannot show the image ({type(e).__name__})")
            self._cached.append(item)
            while len(self._cached) > CACHE_ITEMS:
                self._cached.pop(0).frames_cache = None
        return item.frames_cache

    def frame_to_show(self, item: ReviewItem) -> int:
        """The frame a thumbnail shows: the first with a box, else 0."""
        numbered = [r.frame for r in item.regions if r.frame is not None]
        return min(numbered) if numbered else 0

    def regions_on(self, item: ReviewItem, frame: int) -> list[Region]:
        """The item regions that apply to frame (0-based), in drawing order."""
        return [r for r in item.regions if r.on(frame)]

    # ---- what a person does ----------------------------------------------------------------
    def decide(self, item: ReviewItem, decision: str) -> None:
        """Approve (send with the boxes as they are now) or reject; saved at once."""
        if decision not in (APPROVE, REJECT, UNDECIDED):
            raise ValueError(f"decision must be approve, reject or empty, not {decision!r}")
        item.decision = replace(item.decision, decision=decision, boxes=format_boxes(item.regions))
        self.save()

    def approve_all(self, items: list[ReviewItem]) -> int:
        """Approve every undecided item of a page (decided ones are left alone); returns how many."""
        n = 0
        for item in items:
            if item.state == UNDECIDED and not item.error:
                item.decision = replace(item.decision, decision=APPROVE, boxes=format_boxes(item.regions))
                n += 1
        self.save()
        return n

    def region_at(self, item: ReviewItem, frame: int, x: int, y: int) -> Region | None:
        """The smallest box on this frame containing the point, or None."""
        hits = [r for r in self.regions_on(item, frame) if r.x0 <= x < r.x1 and r.y0 <= y < r.y1]
        return min(hits, key=lambda r: r.area) if hits else None

    def add_region(self, item: ReviewItem, frame: int | None, x0: int, y0: int, x1: int, y1: int) -> Region | None:
        """A box the person drew (corners in any order, clipped to the image); None if too small."""
        shape = self._shape(item)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if shape is not None:
            x0, x1 = max(0, x0), min(shape[1], x1)
            y0, y1 = max(0, y0), min(shape[0], y1)
        if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
            return None
        region = Region(frame, x0, y0, x1, y1)
        item.regions.append(region)
        self._changed(item)
        return region

    def move_region(self, item: ReviewItem, region: Region, dx: int, dy: int) -> Region | None:
        """Drag a box: moved by (dx, dy); dragged (mostly) off the image, it is removed (None)."""
        item.regions.remove(region)
        moved = Region(region.frame, region.x0 + dx, region.y0 + dy, region.x1 + dx, region.y1 + dy)
        shape = self._shape(item)
        if shape is not None:
            cx, cy = (moved.x0 + moved.x1) / 2, (moved.y0 + moved.y1) / 2
            if not (0 <= cx < shape[1] and 0 <= cy < shape[0]):
                self._changed(item)
                return None
            moved = Region(moved.frame, max(0, moved.x0), max(0, moved.y0), min(shape[1], moved.x1),
                           min(shape[0], moved.y1))
        item.regions.append(moved)
        self._changed(item)
        return moved

    def remove_region(self, item: ReviewItem, region: Region) -> None:
        """Delete one region of the item; saved at once."""
        item.regions.remove(region)
        self._changed(item)

    def _shape(self, item: ReviewItem) -> tuple[int, int] | None:
        frames = self.frames(item)
        return frames[0].shape[:2] if frames else None

    def _changed(self, item: ReviewItem) -> None:
        """Boxes changed: the row keeps its decision word only if it was undecided; saved at once."""
        item.decision = replace(item.decision, boxes=format_boxes(item.regions))
        self.save()

    def save(self) -> None:
        """Write review_decisions.csv (atomically), every row, decided or not."""
        write_decisions(self.path, [i.decision for i in self.items])

    def counts(self) -> tuple[int, int, int]:
        """(approved, rejected, undecided)."""
        states = [i.state for i in self.items]
        return states.count(APPROVE), states.count(REJECT), states.count(UNDECIDED)
