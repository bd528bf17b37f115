"""Where is rendered text in a frame? A numpy-only detector (no OCR: it finds text, never reads it).

Method (measured with benchmarks/bench_pixel_detector.py; it does NOT yet meet the issue's
recall/false-positive targets on that benchmark, see its output):
  1. The frame becomes 8-bit grey (colour: the brightest channel, so blue or yellow text on
     black stays contrasted; 16-bit: a robust window; MONOCHROME1 needs no inversion because
     only contrast matters).
  2. Strong horizontal steps are marked where the step exceeds both an absolute floor and a
     multiple of the local noise (median step of a 32x32 tile), so speckle and noise fall below
     the bar while rendered glyphs, whose strokes jump sharply from background, stay above it.
     Only steps stacked on a step in the row above or below count (glyphs have vertical strokes).
  3. Cells of 4x8 pixels dense in such steps are joined into regions; each region is cut into
     horizontal bands by its row profile and each band into runs by its column profile. A run is
     a text line when it is of text height, wider than tall, dense in steps along its width,
     balanced in rising/falling steps, crosses several horizontal strokes per column, does not
     repeat one column pattern (a ruler's ticks do) and splits into two tight grey classes.
  4. The same runs on the frame halved and quartered, so large fonts look like small ones.
The answer is a list of boxes in pixel coordinates. Pure functions; nothing here reads files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tuned with benchmarks/bench_pixel_detector.py; change only with its figures before and after.
STEP_FLOOR = 20          # grey levels: weaker steps are never text (8-bit scale)
NOISE_FACTOR = 3.0       # a step must exceed this many times the tile's 75th-percentile step
NOISE_QUANTILE = 75
TILE = 32                # noise tile (pixels)
CELL_H, CELL_W = 4, 8    # density cells
CELL_MIN_STEPS = 2       # strong steps a cell needs to count as dense
LINE_MIN_H, LINE_MAX_H = 5, 40   # text line height at one pyramid level (pixels)
LINE_MIN_ASPECT = 1.6    # a text line (>= 3 glyphs) is wider than tall
LINE_MIN_DENSITY = 1.0   # stacked steps per column of the line box
MIN_VERTICAL_RATIO = 0.15  # vertical steps / horizontal steps: glyphs have horizontal strokes
MIN_PATTERN_VARIETY = 0.25  # distinct column patterns / inked columns: ticks repeat, glyphs vary
MIN_CHUNK_SPREAD = 0.5   # share of line chunks (one line-height wide) holding steps
MIN_POLARITY_BALANCE = 0.3  # rising vs falling steps in the line box
MIN_MULTI_CROSSING = 0.2  # share of columns crossing >= 3 horizontal step edges
MIN_FISHER = 1.8         # Otsu class separation / class spreads of the line box
LEVELS = 3               # full, 1/2, 1/4 resolution
REDACTION_MARGIN = 4     # pixels added around each detected box before blanking


@dataclass(frozen=True, order=True)
class Box:
    """A rectangle in pixel coordinates: rows top..bottom-1, columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> int:
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)

    def grown(self, margin: int, rows: int, cols: int) -> "Box":
        return Box(max(0, self.top - margin), max(0, self.left - margin),
                   min(rows, self.bottom + margin), min(cols, self.right + margin))

    def as_list(self) -> list[int]:
        return [self.top, self.left, self.bottom, self.right]


def to_grey8(frame: np.ndarray, bits_stored: int = 8) -> np.ndarray:
    """One frame (rows x cols, or rows x cols x 3 RGB) as uint8 grey for detection and thumbnails.

    Colour takes the brightest channel. More than 8 bits are windowed to the 0.05-99.95
    percentile range of a subsample, so one hot pixel cannot flatten the rest.
    """
    a = frame
    if a.ndim == 3:
        a = a.max(axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    sample = a[::4, ::4]
    lo, hi = np.percentile(sample, (0.05, 99.95))
    if hi <= lo:
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            return np.zeros(a.shape, np.uint8)
    scaled = (a.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _halve(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    a = g[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def _pad_to(g: np.ndarray, multiple: int) -> np.ndarray:
    h, w = g.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        g = np.pad(g, ((0, ph), (0, pw)), mode="edge")
    return g


def _strong_steps(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean maps of strong horizontal and vertical steps (same shape as g, last col/row False)."""
    gi = g.astype(np.int16)
    dx = np.zeros(gi.shape, np.int16)
    dy = np.zeros(gi.shape, np.int16)
    np.abs(gi[:, 1:] - gi[:, :-1], out=dx[:, :-1])
    np.abs(gi[1:, :] - gi[:-1, :], out=dy[:-1, :])
    h, w = gi.shape
    th, tw = h // TILE, w // TILE
    tiles = (dx.reshape(th, TILE, tw, TILE).transpose(0, 2, 1, 3).reshape(th, tw, TILE * TILE))
    # A high quantile of a tile's steps is its noise: text covers well under a quarter of a tile's
    # steps, while speckle's heavy tail needs more than the median to be measured.
    noise = np.percentile(tiles, NOISE_QUANTILE, axis=2)
    thr = np.maximum(STEP_FLOOR, NOISE_FACTOR * noise).astype(np.int16)
    thr_px = np.repeat(np.repeat(thr, TILE, axis=0), TILE, axis=1)
    ex, ey = dx >= thr_px, dy >= thr_px
    # Glyphs are drawn with vertical strokes: keep a horizontal step only where the rows above
    # and below also step (within one column). Noise, speckle and sloped lines rarely stack so.
    near = ex.copy()
    near[:, 1:] |= ex[:, :-1]
    near[:, :-1] |= ex[:, 1:]
    stacked = np.zeros_like(ex)
    stacked[1:-1] = ex[1:-1] & (near[:-2] | near[2:])
    return stacked, ey


def _label_runs(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, left, bottom, right) of 8-connected regions of a small boolean grid."""
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    runs: list[tuple[int, int, int, int]] = []  # (row, start, end, id)
    prev: list[tuple[int, int, int]] = []
    for r in range(mask.shape[0]):
        row = mask[r]
        if not row.any():
            prev = []
            continue
        d = np.diff(np.concatenate(([0], row.view(np.int8), [0])))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        cur = []
        for s, e in zip(starts.tolist(), ends.tolist()):
            rid = len(parent)
            parent.append(rid)
            for ps, pe, pid in prev:
                if ps <= e and pe >= s:  # touching incl. diagonal (end is exclusive)
                    a, b = find(rid), find(pid)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            cur.append((s, e, rid))
            runs.append((r, s, e, rid))
        prev = cur
    boxes: dict[int, list[int]] = {}
    for r, s, e, rid in runs:
        root = find(rid)
        b = boxes.get(root)
        if b is None:
            boxes[root] = [r, s, r + 1, e]
        else:
            b[0], b[1], b[2], b[3] = min(b[0], r), min(b[1], s), max(b[2], r + 1), max(b[3], e)
    return [tuple(b) for b in boxes.values()]


def _segments(on: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs of True in a 1-D array, joining gaps of up to max_gap False values."""
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _fisher(box: np.ndarray) -> float:
    """Two-class separation of a box's grey levels (Otsu split): gap / (spread of both classes).

    Rendered text is one colour on a background: two tight classes far apart. Speckle, noise and
    anatomy give one broad class, so the ratio stays low.
    """
    hist = np.bincount(box.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    total = w0[-1]
    s0 = np.cumsum(hist * levels)
    q0 = np.cumsum(hist * levels * levels)
    w1 = total - w0
    valid = (w0 > 0) & (w1 > 0)
    if not valid.any():
        return 0.0
    m0 = np.where(valid, s0 / np.maximum(w0, 1), 0)
    m1 = np.where(valid, (s0[-1] - s0) / np.maximum(w1, 1), 0)
    between = np.where(valid, w0 * w1 * (m0 - m1) ** 2, -1)
    k = int(np.argmax(between))
    v0 = q0[k] / w0[k] - m0[k] ** 2
    v1 = (q0[-1] - q0[k]) / w1[k] - m1[k] ** 2
    return float(abs(m1[k] - m0[k]) / (np.sqrt(max(v0, 0)) + np.sqrt(max(v1, 0)) + 1.0))


def _is_text_line(g: np.ndarray, ex: np.ndarray, ey: np.ndarray) -> bool:
    h, w = ex.shape
    if not (LINE_MIN_H <= h <= LINE_MAX_H) or w < LINE_MIN_ASPECT * h or w < 12:
        return False
    n = int(ex.sum())
    # Several strokes per glyph on every row of the line; an edge crossing the box gives one.
    if n < LINE_MIN_DENSITY * w or n < 8:
        return False
    if ey.sum() < MIN_VERTICAL_RATIO * n:
        return False
    # Steps spread along the line (glyph after glyph), not bunched (an ECG spike, a marker).
    chunks = w // h
    if chunks >= 2:
        per_chunk = ex[:, : chunks * h].reshape(h, chunks, h).any(axis=(0, 2))
        if per_chunk.mean() < MIN_CHUNK_SPREAD:
            return False
    # Each stroke has two sides: rising and falling steps balance. An edge between two regions
    # (a body outline, a collimator) steps one way only.
    rising = int((ex[:, :-1] & (g[:, 1:] > g[:, :-1])).sum())
    if min(rising, n - rising) < MIN_POLARITY_BALANCE * max(rising, n - rising):
        return False
    # Glyph columns cross several horizontal strokes (e, s, 8, B); a curve or a tick crosses one.
    ycols = ey.sum(axis=0)
    touched = int((ycols > 0).sum())
    if touched == 0 or (ycols >= 3).sum() < MIN_MULTI_CROSSING * touched:
        return False
    inked = ex.any(axis=0)
    k = int(inked.sum())
    if k < 6:
        return False
    # Column patterns as integers (rows as bits, at most 64 rows hashed by folding).
    weights = (np.uint64(1) << (np.arange(h, dtype=np.uint64) % np.uint64(64)))
    patterns = (ex[:, inked].astype(np.uint64) * weights[:, None]).sum(axis=0)
    if len(np.unique(patterns)) < max(4, MIN_PATTERN_VARIETY * k):
        return False
    return _fisher(g) >= MIN_FISHER


def _find_level(g: np.ndarray) -> list[Box]:
    h0, w0 = g.shape
    g = _pad_to(g, TILE)
    ex, ey = _strong_steps(g)
    h, w = g.shape
    cells = ex.reshape(h // CELL_H, CELL_H, w // CELL_W, CELL_W).sum(axis=(1, 3)) >= CELL_MIN_STEPS
    # Close one-cell gaps along rows: spaces between words and wide letters.
    closed = cells.copy()
    closed[:, 1:-1] |= cells[:, :-2] & cells[:, 2:]
    found: list[Box] = []
    for ct, cl, cb, cr in _label_runs(closed):
        y0, y1 = max(0, ct * CELL_H - CELL_H), min(h, cb * CELL_H + CELL_H)
        x0, x1 = max(0, cl * CELL_W - CELL_W), min(w, cr * CELL_W + CELL_W)
        rex = ex[y0:y1, x0:x1]
        rows_on = rex.sum(axis=1) >= 2
        for by0, by1 in _segments(rows_on, 1):
            band = rex[by0:by1]
            cols_on = band.any(axis=0)
            gap = max(4, int(0.9 * (by1 - by0)))
            for bx0, bx1 in _segments(cols_on, gap):
                t, b, lft, rgt = y0 + by0, y0 + by1, x0 + bx0, x0 + bx1
                if _is_text_line(g[t:b, lft:rgt], ex[t:b, lft:rgt], ey[t:b, lft:rgt]):
                    found.append(Box(t, lft, min(b, h0), min(rgt, w0)))
    return found


def find_text(grey: np.ndarray) -> list[Box]:
    """Boxes around rendered text lines in one uint8 grey frame (see the module docstring)."""
    boxes: list[Box] = []
    g = grey
    for level in range(LEVELS):
        if min(g.shape) < 2 * TILE:
            break
        f = 1 << level
        for b in _find_level(g):
            boxes.append(Box(b.top * f, b.left * f, min(grey.shape[0], b.bottom * f),
                             min(grey.shape[1], b.right * f)))
        g = _halve(g)
    return merge_boxes(boxes)


def planes(frame: np.ndarray, bits_stored: int = 8) -> list[np.ndarray]:
    """The grey views text is sought in: one for grey; luma and brightest channel for colour
    (luma keeps hue-on-hue text such as magenta on green, the brightest channel keeps blue or
    yellow text on black)."""
    if frame.ndim != 3:
        return [to_grey8(frame, bits_stored)]
    f = frame.astype(np.float32)
    luma = f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
    if frame.dtype == np.uint8:
        luma8 = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    else:
        luma8 = to_grey8(luma)
    return [luma8, to_grey8(frame, bits_stored)]


def find_text_in_frame(frame: np.ndarray) -> list[Box]:
    """find_text over every plane of a frame (grey, or RGB as luma and brightest channel)."""
    boxes: list[Box] = []
    for plane in planes(frame):
        boxes += find_text(plane)
    return merge_boxes(boxes)


def merge_boxes(boxes: list[Box], join: int = 2) -> list[Box]:
    """Union of overlapping (or nearly touching) boxes, sorted; deterministic."""
    out = sorted(boxes)
    changed = True
    while changed:
        changed = False
        merged: list[Box] = []
        for b in out:
            for i, m in enumerate(merged):
                if (b.top <= m.bottom + join and m.top <= b.bottom + join
                        and b.left <= m.right + join and m.left <= b.right + join):
                    merged[i] = Box(min(b.top, m.top), min(b.left, m.left),
                                    max(b.bottom, m.bottom), max(b.right, m.right))
                    changed = True
                    break
            else:
                merged.append(b)
        out = sorted(merged)
    return out
