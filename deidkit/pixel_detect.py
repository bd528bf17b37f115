"""Where is rendered text in a frame? A numpy-only detector (no OCR: it finds text, never reads it).

Method (measured with benchmarks/bench_pixel_detector.py; it does NOT yet meet the issue's
recall/false-positive targets on that benchmark, see its output and the figures below):
  1. The frame becomes 8-bit grey (colour: luma and the brightest channel; more than 8 bits:
     windowed between the HOT_PIXELS-th darkest and brightest values, so burned-in text at full
     scale is not clipped away; MONOCHROME1 needs no inversion because only contrast matters).
  2. Strong horizontal steps are marked where the step exceeds both an absolute floor and a
     multiple of the local noise (75th-percentile step of a 32x32 tile). Only steps stacked on a
     step in the row above or below count (glyphs have vertical strokes).
  3. Cells of 4x8 pixels dense in such steps are joined into regions; each region is cut into
     horizontal bands by its row profile and each band into runs by its column profile: the
     candidate lines. Each candidate of text-line size is measured (_line_features: height,
     aspect, step density, rising/falling balance, strokes crossed per column, column-pattern
     variety, two-tone separation, calm above/below, flatness of ink and background, row
     profile) and scored by boosted decision stumps fitted offline on generated frames
     (STUMP_* arrays). Weaker candidates continuing an accepted line on the same rows join it.
  4. The same on the frame halved and quartered, so large fonts look like small ones.
Figures (bench --n 300 --seed 1): recall 86.3% (was 85.3%), false positives 7.7% (was 55%).
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
LEVELS = 3               # full, 1/2, 1/4 resolution
REDACTION_MARGIN = 4     # pixels added around each detected box before blanking
NEIGHBOUR_SLACK = 2.0     # score below the threshold a candidate continuing a found line may have
HOT_PIXELS = 16          # brightest/darkest pixels ignored when windowing more than 8 bits


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

    Colour takes the brightest channel. More than 8 bits are windowed between the HOT_PIXELS-th
    darkest and brightest values, so one hot pixel cannot flatten the rest.
    """
    a = frame
    if a.ndim == 3:
        a = a.max(axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    # Window from the HOT_PIXELS-th darkest to the HOT_PIXELS-th brightest pixel: a few hot
    # pixels cannot flatten the rest, while burned-in text (hundreds of pixels, often at full
    # scale) stays at the top of the window instead of being clipped into the noise.
    flat = a.ravel()
    k = min(HOT_PIXELS, flat.size - 1)
    lo = float(np.partition(flat, k)[k])
    hi = float(np.partition(flat, flat.size - 1 - k)[flat.size - 1 - k])
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


def _flatness(box: np.ndarray) -> tuple[float, float]:
    """Share of the smaller (ink) and larger (background) grey class within 2 levels of its mode.

    Rendered text is drawn in one colour, often on a flat label; speckle and noise are not flat.
    """
    hist = np.bincount(box.ravel(), minlength=256)
    lo, hi = int(box.min()), int(box.max())
    split = (lo + hi) // 2
    shares = []
    for part in (hist[: split + 1], hist[split + 1:]):
        total = int(part.sum())
        if total == 0:
            shares.append((0.0, 0))
            continue
        m = int(np.argmax(part))
        shares.append((float(part[max(0, m - 2):m + 3].sum()) / total, total))
    (s0, n0), (s1, n1) = shares
    return (s0, s1) if n0 <= n1 else (s1, s0)


def _line_features(g: np.ndarray, ex: np.ndarray, ey: np.ndarray, ring: float,
                   level: int) -> np.ndarray | None:
    """Measurements of one candidate line box (None: not even the size of a text line).

    g, ex, ey: the box's grey levels and strong steps; ring: stacked steps per pixel in the
    bands just above and below the box (text sits on a calmer background than its strokes).
    """
    h, w = ex.shape
    if not (LINE_MIN_H <= h <= LINE_MAX_H) or w < LINE_MIN_ASPECT * h or w < 12:
        return None
    n = int(ex.sum())
    if n < 8:
        return None
    # Steps spread along the line (glyph after glyph), not bunched (an ECG spike, a marker).
    chunks = w // h
    if chunks >= 2:
        spread = float(ex[:, : chunks * h].reshape(h, chunks, h).any(axis=(0, 2)).mean())
    else:
        spread = 1.0
    # Each stroke has two sides: rising and falling steps balance. An edge between two regions
    # (a body outline, a collimator) steps one way only.
    rising = int((ex[:, :-1] & (g[:, 1:] > g[:, :-1])).sum())
    balance = min(rising, n - rising) / max(1, max(rising, n - rising))
    # Glyph columns cross several horizontal strokes (e, s, 8, B); a curve or a tick crosses one.
    ycols = ey.sum(axis=0)
    touched = max(1, int((ycols > 0).sum()))
    multi = float((ycols >= 3).sum()) / touched
    inked = ex.any(axis=0)
    k = max(1, int(inked.sum()))
    # Column patterns as integers (rows as bits, at most 64 rows hashed by folding): ticks
    # repeat one pattern, glyphs vary.
    weights = (np.uint64(1) << (np.arange(h, dtype=np.uint64) % np.uint64(64)))
    patterns = (ex[:, inked].astype(np.uint64) * weights[:, None]).sum(axis=0)
    variety = len(np.unique(patterns)) / k
    density = n / w
    ink_flat, back_flat = _flatness(g)
    # Row profile: glyph steps fill the line's middle rows and stop sharply above and below.
    rows = ex.sum(axis=1).astype(np.float64)
    row_peak = float(rows.max()) / max(1.0, float(rows.mean()))
    return np.array([
        1.0, np.log(h), np.log(w / h), np.log(density), np.log1p(ey.sum() / n), spread, balance,
        multi, variety, k / w, min(_fisher(g), 6.0), np.log((ring + 0.01) / (n / (h * w) + 0.01)),
        float(level == 0), float(level == 2), ink_flat, back_flat, row_peak,
    ])


# Boosted decision stumps over _line_features: feature index, split, score if <= split, score
# if above. Fitted offline by `python benchmarks/bench_pixel_detector.py --train` on generated
# frames whose seeds differ from the evaluation seed; regenerate, never hand-edit.
STUMP_FEATURE = np.array([11, 10, 2, 11, 14, 15, 2, 10, 11, 2, 14, 11, 4, 2, 10, 14, 9, 11, 11, 4, 7, 8, 9, 14, 7, 4, 2, 10, 15, 4, 1, 7, 9, 2, 11, 14, 16, 14, 2, 4, 7, 2, 11, 9, 15, 8, 3, 4, 2, 11, 6, 14, 1, 9, 11, 8, 4, 7, 14, 1, 4, 7, 9, 15, 11, 2, 9, 7, 6, 8, 4, 7, 2, 2, 14, 11, 10, 8, 1, 3, 4, 7, 9, 6, 15, 15, 10, 2, 1, 4, 7, 9, 10, 8, 10, 15, 6, 7, 9, 1, 10, 2, 3, 4, 6, 7, 15, 9, 11, 8, 2, 14, 15, 12, 11, 8, 4, 6, 10, 2, 4, 7, 8, 13, 15, 15, 4, 9, 9, 6, 4, 11, 8, 10, 10, 14, 2, 1, 2, 3, 4, 7, 9, 10, 6, 9, 2, 8, 11, 12])
STUMP_SPLIT = np.array([-2.57487, 1.95919, 1.8563, -2.40049, 0.323529, 0.507384, 1.45677, 1.81655, -2.93692, 1.15268, 0.251656, -2.04704, 0.653926, 1.06471, 1.67213, 0.360038, 0.983509, -3.28627, -1.48367, 0.663479, 0.147223, 0.680767, 0.983509, 0.153846, 0.147223, 0.653926, 1.06471, 1.67213, 0.195225, 0.663479, 1.60944, 0.214286, 0.983509, 2.59738, -3.69199, 0.360038, 1.45455, 0.114286, 1.06471, 0.643137, 0.0731448, 2.59738, -4.03396, 0.983509, 0.122449, 0.714286, -0.205642, 0.653926, 2.59738, -1.48367, 0.998434, 0.176471, 2.30259, 0.955556, -3.69199, 0.277778, 0.713957, 0.214286, 0.416667, 1.60944, 0.62253, 0.8, 0.983509, 0.195225, -4.03396, 2.59738, 0.955556, 0.933333, 0.998434, 0.592593, 0.62253, 0.0731448, 2.26176, 1.06471, 0.114286, -3.89192, 2.09414, 0.277778, 2.30259, -0.248896, 0.597837, 0.708333, 0.955556, 0.0416667, 0.0821918, 0.923795, 3.29381, 2.26176, 1.60944, 0.722135, 0.214286, 0.185185, 1.33974, 0.776108, 2.56068, 0.923795, 0.0416667, 0.708333, 0.955556, 2.30259, 3.29381, 2.59738, -0.276253, 0.643137, 0.998434, 0.888889, 0.107452, 0.983509, -4.03396, 0.277778, 1.15268, 0.24, 0.923795, 0, -3.69199, 0.961538, 0.896173, 0.0416667, 3.29381, 2.26176, 0.597837, 0.0731448, 0.571429, 0, 0.923795, 0.195225, 0.653926, 0.555107, 0.931034, 0.0416667, 0.896173, -3.89192, 0.337771, 2.56068, 1.33974, 0.0870714, 0.998529, 2.30259, 2.26176, -0.248896, 0.722135, 0.708333, 0.983509, 1.67213, 0.0416667, 0.185185, 0.530628, 0.961538, -4.03396, 0])
STUMP_LOW = np.array([0.2042, -0.4229, -0.3150, 0.1383, -0.2407, -0.2310, -0.2673, -0.2681, 0.1485, -0.2806, -0.1648, 0.0839, 0.1551, -0.2493, -0.2542, -0.0933, 0.0419, 0.1514, 0.0553, 0.1416, -0.2373, 0.1087, 0.0415, -0.1581, -0.2108, 0.1360, -0.1754, -0.1865, -0.1955, 0.1122, 0.3180, -0.1768, 0.0337, 0.0190, 0.1523, -0.0608, 0.1353, -0.1876, -0.1383, 0.1078, -0.2005, 0.0177, 0.2859, 0.0293, -0.2307, 0.0618, -0.2166, 0.1018, 0.0167, 0.0281, 0.0182, -0.0944, 0.0707, 0.0326, 0.1222, -0.3072, 0.0621, -0.1273, -0.0401, 0.2175, 0.0953, -0.0431, 0.0236, -0.1365, 0.2272, 0.0159, 0.0287, -0.0160, 0.0159, 0.0688, 0.0836, -0.1417, 0.0265, -0.0948, -0.1362, 0.1458, -0.0536, -0.2246, 0.0535, -0.1820, 0.0951, -0.0483, 0.0276, -0.3335, -0.2459, 0.0132, -0.0237, 0.0242, 0.1702, 0.0456, -0.0962, 0.6211, 0.3769, 0.0330, -0.0280, 0.0143, -0.3195, -0.0409, 0.0234, 0.0444, -0.0191, 0.0129, -0.1709, 0.0647, 0.0128, -0.0170, -0.1712, 0.0149, 0.1886, -0.1667, -0.0669, -0.0454, 0.0125, -0.0386, 0.0806, -0.0111, -0.0143, -0.3134, -0.0174, 0.0206, 0.0652, -0.0974, 0.0502, 0.0216, 0.0118, -0.0932, 0.0521, -0.0586, 0.0227, -0.3002, -0.0135, 0.1080, -0.1167, -0.0245, 0.2834, -0.1490, -0.0713, 0.0364, 0.0191, -0.1352, 0.0353, -0.0340, 0.0131, -0.0809, -0.2937, 0.4149, -0.2025, -0.0096, 0.1505, -0.0320])
STUMP_HIGH = np.array([-0.5525, 0.2111, 0.2713, -0.3506, 0.2913, 0.2226, 0.1514, 0.1300, -0.2172, 0.1008, 0.1967, -0.2578, -0.1599, 0.0810, 0.0850, 0.2003, -0.3601, -0.1336, -0.2598, -0.1305, 0.0594, -0.1422, -0.3098, 0.0767, 0.0514, -0.1062, 0.0606, 0.0552, 0.0459, -0.0914, -0.0299, 0.0500, -0.2476, -0.4319, -0.0602, 0.1379, -0.0591, 0.0397, 0.0484, -0.0673, 0.0363, -0.3586, -0.0241, -0.2208, 0.0272, -0.0904, 0.0250, -0.0656, -0.3196, -0.1827, -0.2733, 0.0560, -0.0778, -0.1470, -0.0446, 0.0159, -0.0684, 0.0359, 0.1084, -0.0197, -0.0437, 0.1065, -0.1821, 0.0273, -0.0164, -0.2587, -0.1292, 0.2311, -0.2164, -0.0512, -0.0395, 0.0263, -0.1239, 0.0323, 0.0240, -0.0214, 0.0571, 0.0138, -0.0582, 0.0166, -0.0368, 0.0610, -0.1254, 0.0086, 0.0107, -0.1855, 0.1425, -0.1077, -0.0152, -0.0547, 0.0276, -0.0040, -0.0062, -0.0683, 0.0816, -0.1857, 0.0072, 0.0529, -0.1056, -0.0502, 0.1203, -0.1889, 0.0121, -0.0356, -0.1705, 0.1264, 0.0117, -0.1282, -0.0119, 0.0116, 0.0289, 0.0456, -0.1535, 0.0515, -0.0257, 0.1817, 0.1344, 0.0066, 0.1084, -0.0873, -0.0258, 0.0187, -0.0348, -0.0735, -0.1428, 0.0176, -0.0314, 0.0259, -0.0733, 0.0050, 0.1296, -0.0148, 0.0147, 0.0723, -0.0053, 0.0100, 0.0214, -0.0421, -0.0799, 0.0110, -0.0428, 0.0463, -0.1160, 0.0172, 0.0044, -0.0038, 0.0062, 0.1401, -0.0088, 0.0435])
LINE_THRESHOLD = 1.600


def _is_text_line(g: np.ndarray, ex: np.ndarray, ey: np.ndarray, ring: float = 0.0,
                  level: int = 0) -> bool:
    f = _line_features(g, ex, ey, ring, level)
    return f is not None and line_score(f) > LINE_THRESHOLD


def line_score(features: np.ndarray) -> float:
    """Text-line score of one candidate's features (higher: more like rendered text)."""
    return float(np.where(features[STUMP_FEATURE] <= STUMP_SPLIT, STUMP_LOW, STUMP_HIGH).sum())


def _ring_density(ex: np.ndarray, t: int, lft: int, b: int, rgt: int) -> float:
    """Stacked steps per pixel in bands one box height above and below a box."""
    hh = b - t
    above = ex[max(0, t - hh):t, lft:rgt]
    below = ex[b:b + hh, lft:rgt]
    area = above.size + below.size
    return float(above.sum() + below.sum()) / area if area else 0.0


def _candidates(g: np.ndarray, level: int):
    """(box, features) of every candidate line at one pyramid level."""
    h0, w0 = g.shape
    g = _pad_to(g, TILE)
    ex, ey = _strong_steps(g)
    h, w = g.shape
    cells = ex.reshape(h // CELL_H, CELL_H, w // CELL_W, CELL_W).sum(axis=(1, 3)) >= CELL_MIN_STEPS
    # Close one-cell gaps along rows: spaces between words and wide letters.
    closed = cells.copy()
    closed[:, 1:-1] |= cells[:, :-2] & cells[:, 2:]
    found = []
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
                f = _line_features(g[t:b, lft:rgt], ex[t:b, lft:rgt], ey[t:b, lft:rgt],
                                   _ring_density(ex, t, lft, b, rgt), level)
                if f is not None:
                    found.append((Box(t, lft, min(b, h0), min(rgt, w0)), f))
    return found


def _find_level(g: np.ndarray, level: int = 0) -> list[Box]:
    return [b for b, f in _candidates(g, level) if line_score(f) > LINE_THRESHOLD]


def find_text(grey: np.ndarray) -> list[Box]:
    """Boxes around rendered text lines in one uint8 grey frame (see the module docstring)."""
    scored: list[tuple[Box, float]] = []
    g = grey
    for level in range(LEVELS):
        if min(g.shape) < 2 * TILE:
            break
        f = 1 << level
        for b, feats in _candidates(g, level):
            scored.append((Box(b.top * f, b.left * f, min(grey.shape[0], b.bottom * f),
                               min(grey.shape[1], b.right * f)), line_score(feats)))
        g = _halve(g)
    boxes = [b for b, s in scored if s > LINE_THRESHOLD]
    # A line found in part: weaker candidates continuing it on the same rows belong to it
    # (a word over a busier background, a digit run the classifier doubts on its own).
    weaker = [b for b, s in scored if LINE_THRESHOLD - NEIGHBOUR_SLACK < s <= LINE_THRESHOLD]
    grew = True
    while grew and weaker:
        grew = False
        for c in list(weaker):
            if any(_same_line(c, b) for b in boxes):
                boxes.append(c)
                weaker.remove(c)
                grew = True
    return merge_boxes(boxes)


def _same_line(a: Box, b: Box) -> bool:
    """a continues b's text line: their rows mostly overlap and the gap between is small."""
    ha, hb = a.bottom - a.top, b.bottom - b.top
    overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    gap = max(a.left, b.left) - min(a.right, b.right)
    return overlap >= 0.5 * min(ha, hb) and max(ha, hb) <= 2 * min(ha, hb) and gap <= max(ha, hb)


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
