"""Where is rendered text in a frame? It finds text, never reads it (no OCR), with numpy only.

A small convolutional network labels every 4x4-pixel cell of a frame as text or not; cells over
the seed threshold, grown through their neighbours over the grow threshold (a line's height up
and down, along the line as far as it goes), become boxes.
  input     two uint8 planes (grey twice; colour as luma and brightest channel, so yellow-on-grey
            and blue-on-black text both show), more than 8 bits windowed by to_grey8
  network   NETWORK_LAYERS: 2x2 space-to-depth, 3x3 conv, 2x2 max pool, then 3x3 convs dilated
            1, 2, 4, 8 (about 60 pixels of context each way: a line of glyphs, not one stroke),
            ReLU, and a 1x1 head: one logit per cell. 20k weights in text_detector.npz.
  training  tools/train_text_detector.py on generated frames (every system font, Pillow's and a
            5x7 bitmap font, 7-56 px, several lines, low contrast, inverted, boxed, coloured,
            16-bit, palette colours, over black, noise, anatomy, ultrasound speckle, rulers,
            markers, ECG traces, blank rectangles as redaction leaves them; parametric maps as
            this module looks at them: small ADC/FA/trace/perfusion maps enlarged on their
            canvas and mosaics of them, with and without 5x7 labels); the thresholds are set on
            other seeds than the benchmark's.
Measured with benchmarks/bench_pixel_detector.py (see README.txt for the figures).
Big frames are run in tiles with a halo wider than the network's reach, so the answer is the
whole frame's (up to float rounding) and memory stays bounded. Frames under SMALL_FRAME pixels a
side (parametric maps, 64x64 EPI) are looked at enlarged twice and centred on a black canvas:
edge to edge, their texture read as text over most of the frame (issue 16); canvas_view says
how, and training shows the network small maps the same way (a map's jagged masked rim, bright
orbits and folded cortex, 2-4 pixels wide, were glyph strokes to a network that had never seen
one). A group of text
cells is boxed line band by line band (BAND_OVERLAP), and boxes are merged only when their union
adds little (MERGE_SLACK), so an ultrasound screen's header and label column do not become one
rectangle over the image. Pure functions; nothing here reads DICOM.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

CELL = 4                 # pixels per output cell side
REDACTION_MARGIN = 4     # pixels added around each detected box before blanking
HOT_PIXELS = 16          # brightest/darkest pixels ignored when windowing more than 8 bits
NETWORK_FILE = "text_detector.npz"
# The file holds a second network of the same layers for frames under SMALL_FRAME (keys prefixed
# so): the first one fine-tuned on parametric maps as they are looked at on their canvas (issue 16).
# Frames of SMALL_FRAME and more keep the first network: its figures on them do not move.
SMALL_PREFIX = "small_"
# (kind, output channels, dilation) after the 2x2 space-to-depth of the two input planes.
NETWORK_LAYERS = [("conv", 16, 1), ("pool", 0, 0), ("conv", 24, 1), ("conv", 24, 2),
                  ("conv", 24, 4), ("conv", 24, 8), ("head", 1, 0)]
TILE = 512               # pixels per tile side for big frames
HALO = 64                # pixels of context around a tile: more than the network's reach (~63)
GROW_REACH_CELLS = (3, 64)  # how far (rows, columns of cells) a box may grow from its seed cells
# Small frames: the network learnt on 256-pixel crops of 512-pixel frames. A 64x64 map is all
# edge to it (its reach, ~63 pixels, runs off every side) and its anatomy is glyph-sized, so
# texture looked like text over most of it. A frame with a side under SMALL_FRAME is looked at
# centred on a black canvas that big, enlarged twice (bilinear) first when a side is under
# ENLARGE_BELOW: 5x7 glyphs become 10x14, well inside the trained sizes (7-56 pixels), and pixel
# noise is no longer glyph-grained (noise maps of 128-250 px, not enlarged, were "text" over
# 20-45% of the frame in 2 of 3 cases; enlarged, in 1 of 12).
SMALL_FRAME = 256        # pixels
ENLARGE_BELOW = 256      # pixels
MIN_GLYPH = 5            # pixels: the smallest readable glyph (5x7 font); a narrower frame holds none
# Under MIN_JUDGED pixels a side, one to three glyphs fill the frame and the network, even on its
# canvas, misses some (measured on 5x7 text over black, noise and anatomy: 12-24 px frames 57 of
# 84 found, 32 px 21 of 24, 40-96 px all): deidkit.pixels holds such frames for a person.
MIN_JUDGED = 32          # pixels
# A group of text cells is boxed line band by line band: consecutive cell rows stay in one band
# while their extents overlap by BAND_OVERLAP of their union, so an L-shaped group (a header
# line touching a column of labels) gives two boxes, not the rectangle around both (the empty
# middle of an ultrasound screen). Boxes are merged only when their union adds little:
# MERGE_SLACK times the area they cover.
BAND_OVERLAP = 0.5
MERGE_SLACK = 1.25


@dataclass(frozen=True, order=True)
class Box:
    """A rectangle in pixel coordinates: rows top..bottom-1, columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> int:
        """Area in pixels (0 for an empty box)."""
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)

    def grown(self, margin: int, rows: int, cols: int) -> "Box":
        """This box grown by margin pixels on every side, clipped to a rows x cols image."""
        return Box(max(0, self.top - margin), max(0, self.left - margin),
                   min(rows, self.bottom + margin), min(cols, self.right + margin))

    def as_list(self) -> list[int]:
        """[top, left, bottom, right] in pixels."""
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


def _components(mask: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """8-connected regions of a small boolean grid, each as its runs (row, start, end exclusive)."""
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
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
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
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for r, s, e, rid in runs:
        groups.setdefault(find(rid), []).append((r, s, e))
    return list(groups.values())


def _bands(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes (top, left, bottom, right; cells) around one region's runs, one per band of
    consecutive rows whose extents overlap by BAND_OVERLAP of their union (see above)."""
    extent: dict[int, tuple[int, int]] = {}
    for r, s, e in runs:
        lo, hi = extent.get(r, (s, e))
        extent[r] = (min(lo, s), max(hi, e))
    bands: list[list[int]] = []
    for r in sorted(extent):
        s, e = extent[r]
        if bands and bands[-1][2] == r:
            band = bands[-1]
            if min(e, band[3]) - max(s, band[1]) >= BAND_OVERLAP * (max(e, band[3]) - min(s, band[1])):
                band[1], band[2], band[3] = min(s, band[1]), r + 1, max(e, band[3])
                continue
        bands.append([r, s, r + 1, e])
    return [(b[0], b[1], b[2], b[3]) for b in bands]


@dataclass(frozen=True, eq=False)
class Network:
    """The detector's weights, one (taps x in, out) matrix per layer, and its seed and grow
    thresholds. grey_first: the first layer for a grey frame, whose two planes are equal, so the
    weights of both planes act as one (half the work, the same answer up to float rounding)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    seed_threshold: float
    grow_threshold: float
    grey_first: np.ndarray
    small: "Network | None" = None  # the one for frames under SMALL_FRAME, when the file holds one


def _read_network(data: Any, prefix: str) -> Network:
    """The layers and thresholds stored under prefix ("" or SMALL_PREFIX) in an opened .npz."""
    n = sum(1 for k in data.files if k.startswith(prefix + "w"))
    seed, grow = (float(v) for v in data[prefix + "thresholds"])
    return Network(tuple(data[f"{prefix}w{i}"] for i in range(n)), tuple(data[f"{prefix}b{i}"] for i in range(n)),
                   seed, grow, _planes_as_one(data[prefix + "w0"]))


def _planes_as_one(w: np.ndarray) -> np.ndarray:
    per_tap = w.reshape(9, 2, 4, w.shape[1])  # taps, planes, 2x2 positions, out
    return np.ascontiguousarray((per_tap[:, 0] + per_tap[:, 1]).reshape(36, w.shape[1]))


def load_network(path: Path | None = None) -> Network:
    """The network from an .npz written by tools/train_text_detector.py (default: the bundled one),
    with its small-frame network (keys prefixed SMALL_PREFIX) when the file holds one."""
    if path is None:
        return _bundled_network()
    with np.load(path) as data:
        small = _read_network(data, SMALL_PREFIX) if SMALL_PREFIX + "thresholds" in data.files else None
        return replace(_read_network(data, ""), small=small)


@lru_cache(maxsize=1)
def _bundled_network() -> Network:
    return load_network(Path(__file__).with_name(NETWORK_FILE))


def network_planes(frame: np.ndarray, bits_stored: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The two uint8 planes the network reads: grey twice, or colour as luma and brightest channel."""
    views = planes(frame, bits_stored)
    return (views[0], views[-1])


def _conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """3x3 convolution with zero padding (as in training), then ReLU; x is rows x cols x channels.

    The padded input is flattened row by row, so each of the nine taps is one contiguous slice
    times a small matrix (no gathered copy of the input); the padding columns computed on the
    way are dropped at the end.
    """
    h, wd, c = x.shape
    d = dilation
    width = wd + 2 * d
    padded = np.zeros((h + 2 * d + 1, width, c), np.float32)  # a spare row: the last tap runs past
    padded[d:d + h, d:d + wd] = x
    flat = padded.reshape(-1, c)
    taps = w.reshape(9, c, -1)
    n = h * width
    y = flat[:n] @ taps[0]
    for k in range(1, 9):
        dy, dx = divmod(k, 3)
        start = dy * d * width + dx * d
        y += flat[start:start + n] @ taps[k]
    y = y.reshape(h, width, -1)[:, :wd] + b
    np.maximum(y, 0, out=y)
    return y


def _logits(x: np.ndarray, net: Network) -> np.ndarray:
    """Network output (rows/4 x cols/4 logits) for planes x (rows x cols x 2, float32 0..1;
    rows x cols x 1 for a grey frame, whose two planes are the same)."""
    h, w, c = x.shape
    x = x.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 4, 1, 3).reshape(h // 2, w // 2, 4 * c)
    layer = 0
    for kind, _, dilation in NETWORK_LAYERS:
        if kind == "pool":
            x = np.maximum(np.maximum(x[0::2, 0::2], x[1::2, 0::2]), np.maximum(x[0::2, 1::2], x[1::2, 1::2]))
        elif kind == "conv":
            weights = net.grey_first if layer == 0 and c == 1 else net.weights[layer]
            x = _conv3x3(x, weights, net.biases[layer], dilation)
            layer += 1
        else:
            hh, ww, cc = x.shape
            x = (x.reshape(hh * ww, cc) @ net.weights[layer] + net.biases[layer]).reshape(hh, ww)
    return x


def text_probability(frame: np.ndarray, net: Network | None = None, bits_stored: int = 8) -> np.ndarray:
    """Probability of text per 4x4 cell of a frame (grey, or RGB): ceil(rows/4) x ceil(cols/4)."""
    return _planes_probability(*network_planes(frame, bits_stored), net or _bundled_network())


def _planes_probability(a: np.ndarray, b: np.ndarray, net: Network) -> np.ndarray:
    """text_probability of the two uint8 planes the network reads (b is a: a grey frame)."""
    rows, cols = a.shape
    pr, pc = (-rows) % CELL, (-cols) % CELL
    x = a[:, :, None] if b is a else np.stack([a, b], axis=2)
    if pr or pc:
        x = np.pad(x, ((0, pr), (0, pc), (0, 0)), mode="edge")
    x = x.astype(np.float32) * np.float32(1 / 255)
    h, w = x.shape[:2]
    out = np.empty((h // CELL, w // CELL), np.float32)
    # Tiles with a halo wider than the network's reach give the whole-frame answer (up to float
    # rounding: matrix products of other sizes add in another order).
    for t in range(0, h, TILE):
        for l in range(0, w, TILE):
            t0, l0 = max(0, t - HALO), max(0, l - HALO)
            t1, l1 = min(h, t + TILE + HALO), min(w, l + TILE + HALO)
            logits = _logits(x[t0:t1, l0:l1], net)
            ct, cl = (t - t0) // CELL, (l - l0) // CELL
            rows_c, cols_c = min(TILE, h - t) // CELL, min(TILE, w - l) // CELL
            out[t // CELL:t // CELL + rows_c, l // CELL:l // CELL + cols_c] = logits[ct:ct + rows_c, cl:cl + cols_c]
    return cast(np.ndarray, 1 / (1 + np.exp(-out)))


def boxes_from_probability(p: np.ndarray, shape: tuple[int, int], net: Network | None = None,
                           blanked: np.ndarray | None = None) -> list[Box]:
    """Boxes (pixels) around groups of cells over the grow threshold that hold a cell over the seed
    threshold. blanked: pixels already blanked (rows x cols) when a redacted frame is looked at
    again: their cells hold nothing, and the straight edge of a blank rectangle is not text, so
    the cells next to them may join a box but not start one."""
    net = net or _bundled_network()
    rows, cols = shape
    seeds = p > net.seed_threshold
    grow = p > net.grow_threshold
    if blanked is not None and blanked.any():
        inside = _cells_touched(blanked, p.shape)
        grow &= ~inside
        seeds &= ~_dilated(inside, 1, 1)
    # Growing reaches only so far from a seed (a line's height up and down, a few glyphs along):
    # weak cells touching each other across a busy frame cannot chain into one huge box.
    grow &= _dilated(seeds, GROW_REACH_CELLS[0], GROW_REACH_CELLS[1])
    boxes = []
    for runs in _components(grow):
        if any(seeds[r, s:e].any() for r, s, e in runs):
            boxes += [Box(ct * CELL, cl * CELL, min(rows, cb * CELL), min(cols, cr * CELL))
                      for ct, cl, cb, cr in _bands(runs)]
    return merge_boxes(boxes)


def _dilated(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """mask grown by up to rows cells up and down and cols cells left and right (a rectangle
    around every True cell), in time independent of how many cells are True."""
    return _spread(_spread(mask, cols, axis=1), rows, axis=0)


def _spread(mask: np.ndarray, k: int, axis: int) -> np.ndarray:
    """True wherever a True lies within k cells along axis (window sums of a running total)."""
    n = mask.shape[axis]
    run = np.cumsum(mask, axis=axis, dtype=np.int32)
    run = np.concatenate([np.zeros_like(run.take([0], axis=axis)), run], axis=axis)
    hi = np.minimum(np.arange(n) + k + 1, n)
    lo = np.maximum(np.arange(n) - k, 0)
    return (run.take(hi, axis=axis) - run.take(lo, axis=axis)) > 0


def _cells_touched(mask: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
    """Cells (of CELL x CELL pixels) holding any True pixel of mask."""
    padded = np.zeros((cells[0] * CELL, cells[1] * CELL), bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    return cast(np.ndarray, padded.reshape(cells[0], CELL, cells[1], CELL).any(axis=(1, 3)))


BLANK_THIN = 3            # pixels: a blanked rectangle is at least this high (or wide)
BLANK_EDGE_RUN = 16       # pixels: a blanked rectangle's cut edge is straight for at least this long
BLANK_EDGE_FILL = 0.75    # share of such a run that must border non-blank pixels


def blank_edges(frame: np.ndarray, blank: Any) -> np.ndarray:
    """Pixels (bool, rows x cols) on the cut edges of blanked rectangles, found from the pixels alone.

    Redaction leaves axis-aligned rectangles of exactly one value (blank: the frame's black as
    displayed; RGB frames: every channel equal to blank). A pixel is on a cut edge when it lies in
    a blank strip BLANK_THIN across by BLANK_EDGE_RUN along the edge and borders, straight across,
    a pixel that is not blank, along a straight row or column of such pixels BLANK_EDGE_RUN long
    (at least BLANK_EDGE_FILL of it): so a box only a few pixels high (a person's box over one
    line) is recognised along its long sides. The detector sees such a straight edge through
    anatomy as text; glyphs on a black background give short, broken edges and are not marked.
    deid_tool's looks after blanking and --verify both pass this to find_text_in_frame (see
    edge_aware_look in pixels.py).
    """
    flat = frame == blank
    is_blank = flat.all(axis=2) if flat.ndim == 3 else flat
    rows, cols = is_blank.shape
    out = np.zeros((rows, cols), bool)
    if min(rows, cols) < BLANK_THIN or max(rows, cols) < BLANK_EDGE_RUN or not is_blank.any():
        return out
    run = np.zeros((rows + 1, cols + 1), np.int32)
    run[1:, 1:] = np.cumsum(np.cumsum(is_blank, axis=0, dtype=np.int32), axis=1)
    for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
        along = 1 - axis
        # pixels inside a blank strip BLANK_THIN across the edge and BLANK_EDGE_RUN along it
        kr, kc = (BLANK_THIN, BLANK_EDGE_RUN) if axis == 0 else (BLANK_EDGE_RUN, BLANK_THIN)
        if rows < kr or cols < kc:
            continue
        full = (run[kr:, kc:] - run[:-kr, kc:] - run[kr:, :-kc] + run[:-kr, :-kc]) == kr * kc
        solid = np.zeros((rows, cols), bool)
        solid[:rows - kr + 1, :cols - kc + 1] = full
        solid = _spread_forward(_spread_forward(solid, kr - 1, 0), kc - 1, 1)
        across = ~np.roll(is_blank, -step, axis=axis)  # the neighbour straight across is not blank
        edge = solid & across
        # the wrapped-around row or column has no neighbour
        if axis == 0:
            edge[-1 if step == 1 else 0, :] = False
        else:
            edge[:, -1 if step == 1 else 0] = False
        n = edge.shape[along]
        c = np.cumsum(edge, axis=along, dtype=np.int32)
        c = np.concatenate([np.zeros_like(c.take([0], axis=along)), c], axis=along)
        starts = np.arange(n - BLANK_EDGE_RUN + 1)
        window = c.take(starts + BLANK_EDGE_RUN, axis=along) - c.take(starts, axis=along)
        good = window >= BLANK_EDGE_FILL * BLANK_EDGE_RUN  # windows that start here
        covered = np.zeros_like(edge)
        sl = [slice(None), slice(None)]
        sl[along] = slice(0, n - BLANK_EDGE_RUN + 1)
        covered[tuple(sl)] = good
        out |= _spread_forward(covered, BLANK_EDGE_RUN - 1, along) & edge
    return out


def _spread_forward(mask: np.ndarray, k: int, axis: int) -> np.ndarray:
    """True wherever a True lies up to k pixels before along axis (mask grown forward by k)."""
    n = mask.shape[axis]
    run = np.cumsum(mask, axis=axis, dtype=np.int32)
    run = np.concatenate([np.zeros_like(run.take([0], axis=axis)), run], axis=axis)
    hi = np.arange(n) + 1
    lo = np.maximum(np.arange(n) - k, 0)
    return (run.take(hi, axis=axis) - run.take(lo, axis=axis)) > 0


def find_text_in_frame(frame: np.ndarray, net: Network | None = None,
                       blanked: np.ndarray | None = None) -> list[Box]:
    """Boxes around rendered text in one frame (uint8/uint16 grey, or RGB); blanked: pixels
    already blanked, when a redacted frame is looked at again (see boxes_from_probability).
    A frame with a side under SMALL_FRAME is looked at on a canvas (see SMALL_FRAME), by net's
    small-frame network when it has one (SMALL_PREFIX); one with a side under MIN_GLYPH pixels
    cannot show a readable glyph and has none."""
    net = net or _bundled_network()
    rows, cols = frame.shape[:2]
    if min(rows, cols) < MIN_GLYPH:
        return []
    if min(rows, cols) >= SMALL_FRAME:
        return boxes_from_probability(text_probability(frame, net), (rows, cols), net, blanked)
    view = canvas_view(rows, cols)
    a, b = network_planes(frame)
    placed = [view.place(v) for v in ((a,) if b is a else (a, b))]
    seen_blanked = None if blanked is None else view.place(blanked.astype(bool))
    small = net.small or net
    found = boxes_from_probability(_planes_probability(placed[0], placed[-1], small), view.canvas, small, seen_blanked)
    scale, top, left, h, w = view.scale, view.top, view.left, rows * view.scale, cols * view.scale
    out = []
    for box in found:  # back to the frame's pixels: clipped to it, outward to whole pixels
        t, l = max(0, box.top - top), max(0, box.left - left)
        bm, r = min(h, box.bottom - top), min(w, box.right - left)
        if bm > t and r > l:
            out.append(Box(t // scale, l // scale, -(-bm // scale), -(-r // scale)))
    return merge_boxes(out)


@dataclass(frozen=True)
class CanvasView:
    """How a frame with a side under SMALL_FRAME is looked at: enlarged scale times and placed at
    (top, left) on a black canvas of canvas (rows, cols) pixels (tools/train_text_detector.py
    shows the network small maps the same way)."""

    scale: int
    canvas: tuple[int, int]
    top: int
    left: int

    def place(self, plane: np.ndarray) -> np.ndarray:
        """A uint8 plane (enlarged bilinear) or a bool mask (enlarged by repetition) on the canvas."""
        if plane.dtype == bool:
            big = np.repeat(np.repeat(plane, self.scale, axis=0), self.scale, axis=1)
        else:
            big = _enlarged(plane, self.scale)
        return _on_canvas(big, self.canvas, self.top, self.left)


def canvas_view(rows: int, cols: int) -> CanvasView:
    """The canvas a rows x cols frame with a side under SMALL_FRAME is looked at on (see SMALL_FRAME)."""
    scale = 2 if min(rows, cols) < ENLARGE_BELOW else 1
    h, w = rows * scale, cols * scale
    canvas = (max(SMALL_FRAME, h + (-h) % CELL), max(SMALL_FRAME, w + (-w) % CELL))
    return CanvasView(scale, canvas, (canvas[0] - h) // 2, (canvas[1] - w) // 2)


def _enlarged(plane: np.ndarray, scale: int) -> np.ndarray:
    """A uint8 plane enlarged scale (1 or 2) times, bilinear with pixel centres kept (edges held)."""
    if scale == 1:
        return plane
    x = plane.astype(np.float32)
    for axis in (0, 1):
        n = x.shape[axis]
        before = x.take(np.maximum(np.arange(n) - 1, 0), axis=axis)
        after = x.take(np.minimum(np.arange(n) + 1, n - 1), axis=axis)
        pair = np.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], axis=axis + 1)
        x = pair.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _on_canvas(plane: np.ndarray, canvas: tuple[int, int], top: int, left: int) -> np.ndarray:
    """plane placed at (top, left) on a zero (black, or False) canvas of canvas (rows, cols)."""
    out = np.zeros(canvas, plane.dtype)
    out[top:top + plane.shape[0], left:left + plane.shape[1]] = plane
    return out


def find_text(grey: np.ndarray) -> list[Box]:
    """Boxes around rendered text in one uint8 grey frame."""
    return find_text_in_frame(grey)


def merge_boxes(boxes: list[Box], join: int = 2) -> list[Box]:
    """Overlapping (or nearly touching) boxes joined into the box around both when it adds little
    (at most MERGE_SLACK times the area the two cover); sorted; deterministic."""
    out = sorted(set(boxes))
    changed = True
    while changed:
        changed = False
        merged: list[Box] = []
        for b in out:
            for i, m in enumerate(merged):
                if (b.top <= m.bottom + join and m.top <= b.bottom + join
                        and b.left <= m.right + join and m.left <= b.right + join):
                    union = Box(min(b.top, m.top), min(b.left, m.left),
                                max(b.bottom, m.bottom), max(b.right, m.right))
                    both = Box(max(b.top, m.top), max(b.left, m.left),
                               min(b.bottom, m.bottom), min(b.right, m.right))
                    if union.area > MERGE_SLACK * (b.area + m.area - both.area):
                        continue
                    merged[i] = union
                    changed = True
                    break
            else:
                merged.append(b)
        out = sorted(set(merged))
    return out
