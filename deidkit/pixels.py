"""Burned-in text in the pixels (Clean Pixel Data option): layout rules, detection, redaction.

Pure functions over a pydicom Dataset (nothing here reads or writes files except
load_redaction_rules):
  burned_in_risk(ds)        metadata says the image may carry text -> a short neutral reason
                            (deidkit.risk.assess over guidelines/burned_in_risk.csv)
  load_redaction_rules(p)   guidelines/pixel_redaction_rules.csv: known screen layouts
                            (deidkit.pixel_layouts; its names are re-exported here)
  clean_pixels(ds, rules)   decode every frame (integer, float or double data), blank layout
                            rectangles and detected text, check again, and say "clean" (pixels
                            untouched), "redacted" (PixelData replaced, uncompressed) or "hold"
                            (not confident); its boxes are what a person is proposed to blank.
  release_decision(...)     may it go out without a person (layout, cleared by rule, trusted)?
  apply_regions(ds, r)      blank exactly the rectangles a person approved (review_decisions.csv)
  encode_like(ds, ts)       re-encode blanked pixels in their lossless family (RLE, JPEG-LS, J2K)
  display_frames(ds)        frames as a viewer shows them (the review window)
  decoded_frames(ds, ts)    the one walk over decoded frames that all of the above use
When is detection not confident ("hold")? Recognizable Visual Features YES (a face is not text);
a decode failure or a transfer syntax without a decoder; text still detected after blanking.
Such images still get proposals when their pixels could be seen: a person decides. Detected
"text" covering more than MAX_TEXT_FRACTION of a frame is held with its boxes proposed; over more
than CANNOT_JUDGE_FRACTION (most of it) or in more than MAX_BOXES boxes it means the detector
cannot judge the image (texture, noise: parametric maps; annotation never covers most of
a frame): held for a person with no proposed boxes (CANNOT_JUDGE), never blanked by rule.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, cast

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from . import pixel_detect
from . import risk
from .guidelines import Guidelines
from .pixel_detect import REDACTION_MARGIN, Box
from .pixel_layouts import header_text as _text
from .pixel_layouts import (  # the layout table (deidkit.pixel_layouts), by the names callers know here
    RULES_FILE as RULES_FILE, LayoutRule as LayoutRule, load_redaction_rules as load_redaction_rules,
    matching_rules as matching_rules, parse_redaction_rules as parse_redaction_rules,
    redaction_rules_path as redaction_rules_path)
from .review_page import thumbnail_png

MAX_TEXT_FRACTION = 0.25   # of a frame's area under detected boxes; beyond it, hold
MAX_BOXES = 80             # detected boxes in one frame; beyond it, hold
REDETECT_PASSES = 3        # blank-and-look-again rounds before a frame is held
# Burned-in annotation never covers most of a frame: "text" over more than CANNOT_JUDGE_FRACTION
# of it, or more than MAX_BOXES boxes, means the detector cannot judge the image (noise, texture:
# parametric maps), not text to blank. Between MAX_TEXT_FRACTION and it (a small frame's header
# lines can cover 40%): held with the boxes proposed; a person may change them (export).
CANNOT_JUDGE_FRACTION = 0.5
CANNOT_JUDGE = ("the text finder cannot judge this image (text-like texture over most of the frame, or a "
                f"frame under {pixel_detect.MIN_JUDGED} pixels): a person must look")



# ---- risk from metadata (the one table: guidelines/burned_in_risk.csv, deidkit.risk) ---------

def burned_in_risk(ds: pydicom.Dataset, rules: list["LayoutRule"] | None = None,
                   guidelines: Guidelines | None = None) -> str | None:
    """A short neutral reason if the header says the image may show burned-in text, else None.

    The reason of deidkit.risk.assess (burned_in_risk.csv; the bundled table when guidelines is
    None); a matching known screen layout (rules) is a risk too. Works on headers read with
    stop_before_pixels.
    """
    found = risk.assess(ds, guidelines, layout_matched=bool(rules and matching_rules(ds, rules)))
    return found.reason if found.at_risk else None


@dataclass
class PixelOutcome:
    """What clean_pixels decided for one image: status, neutral reason, boxes and thumbnails."""
    status: str                                  # "clean", "redacted" or "hold"
    reason: str                                  # neutral, no PHI
    boxes: list[list[list[int]]] = field(default_factory=list)  # per frame: [top, left, bottom, right]
    before_png: bytes | None = None              # thumbnail of the frame with most text (may show PHI)
    after_png: bytes | None = None               # the same frame after blanking (redacted only)
    for_person: bool = False                     # hold that waits for a person even with no boxes


def _pixel_keyword(ds: pydicom.Dataset) -> str | None:
    """Which pixel data element the dataset has (integer, float or double), or None."""
    return next((k for k in risk.PIXEL_KEYWORDS if k in ds), None)


def _hold(reason: str, before: bytes | None = None,
          boxes: list[list[list[int]]] | None = None) -> PixelOutcome:
    return PixelOutcome("hold", reason, boxes or [], before, None)


def _display(frame: np.ndarray, photometric: str, palette_rgb: np.ndarray | None) -> np.ndarray:
    """What a viewer shows, for detection and thumbnails: uint8 grey or uint8 RGB."""
    if palette_rgb is not None:
        rgb = palette_rgb[np.clip(frame, 0, len(palette_rgb) - 1)]
        return rgb
    if frame.ndim == 3:
        if frame.dtype != np.uint8:
            return pixel_detect.to_grey8(frame)
        return frame
    if frame.dtype.kind == "f":  # float/double data (parametric maps): windowed like 16-bit
        frame = np.nan_to_num(frame, nan=0.0, posinf=0.0, neginf=0.0)
    grey = pixel_detect.to_grey8(frame)
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _blank_value(frame: np.ndarray, photometric: str, palette_rgb: np.ndarray | None) -> Any:
    """Black as displayed: the darkest palette entry, the frame's minimum (maximum for MONOCHROME1)."""
    if palette_rgb is not None:
        return int(np.argmin(palette_rgb.astype(np.int32).sum(axis=1)))
    if frame.ndim == 3:
        return 0
    if frame.dtype.kind == "f":
        frame = frame[np.isfinite(frame)] if not np.isfinite(frame).all() else frame
        if frame.size == 0:
            return 0
    return frame.max() if photometric == "MONOCHROME1" else frame.min()


def _palette(ds: pydicom.Dataset) -> np.ndarray | None:
    if _text(ds, "PhotometricInterpretation") != "PALETTE COLOR":
        return None
    from pydicom.pixels import apply_color_lut

    n = 1 << min(int(ds.get("BitsStored", 8)), 16)
    lut = apply_color_lut(np.arange(n, dtype=np.uint16 if n > 256 else np.uint8), ds)
    if lut.dtype != np.uint8:
        lut = (lut >> 8).astype(np.uint8)
    return lut


def _thumb(display: np.ndarray, boxes: list[Box]) -> bytes:
    return thumbnail_png(display, outline=boxes)


@dataclass
class _FrameResult:
    work: np.ndarray              # the frame with layout rectangles and found text blanked
    boxes: list[Box]              # rectangles blanked (layout first, then grown text boxes)
    left: list[Box]               # text still found after blanking (frame held)
    hold: str = ""                # why this frame cannot be cleaned by rule ("" if it can)
    cannot_judge: bool = False    # "text" over most of the frame: the detector cannot judge it


def _clean_frame(frame: np.ndarray, index: int, photometric: str, palette: np.ndarray | None,
                 layout: list[Box]) -> _FrameResult:
    """Blank layout rectangles, then find text, blank it, look again (REDETECT_PASSES rounds).
    A frame under pixel_detect.MIN_JUDGED pixels a side (but wide enough for a glyph) cannot be
    judged: the text finder misses some of the few glyphs it holds."""
    if pixel_detect.MIN_GLYPH <= min(frame.shape[:2]) < pixel_detect.MIN_JUDGED:
        return _FrameResult(frame, list(layout), [], f"{CANNOT_JUDGE} (frame {index + 1})", True)
    return _blank_and_look_again(frame, index, photometric, palette, layout)


def _blank_and_look_again(frame: np.ndarray, index: int, photometric: str, palette: np.ndarray | None,
                          layout: list[Box]) -> _FrameResult:
    """Blank layout rectangles, then find text, blank it, look again (REDETECT_PASSES rounds)."""
    rows, cols = frame.shape[:2]
    work = frame.copy() if layout else frame
    blank = _blank_value(frame, photometric, palette)
    covered = np.zeros((rows, cols), bool)
    for b in layout:
        work[b.top:b.bottom, b.left:b.right] = blank
        covered[b.top:b.bottom, b.left:b.right] = True
    found = edge_aware_look(work, photometric, palette, blank, covered)
    # Blank, look again, blank what appears (text hidden by a neighbour's line); a frame still
    # showing text after REDETECT_PASSES is held (its boxes are still proposed to a person).
    grown: list[Box] = []
    for _ in range(REDETECT_PASSES):
        if not found:
            break
        if len(grown) + len(found) > MAX_BOXES:
            return _FrameResult(work, layout + grown, [], f"{CANNOT_JUDGE} (frame {index + 1})", True)
        new = [b.grown(REDACTION_MARGIN, rows, cols) for b in found]
        for b in new:
            covered[b.top:b.bottom, b.left:b.right] = True
        grown += new
        if work is frame:
            work = frame.copy()
        for b in new:
            work[b.top:b.bottom, b.left:b.right] = blank
        if covered.mean() > CANNOT_JUDGE_FRACTION:  # (layout rectangles count as covered too)
            return _FrameResult(work, layout + grown, [], f"{CANNOT_JUDGE} (frame {index + 1})", True)
        if covered.mean() > MAX_TEXT_FRACTION:
            return _FrameResult(work, layout + grown, [],
                                f"text covers {100 * covered.mean():.0f}% of frame {index + 1}")
        found = edge_aware_look(work, photometric, palette, blank, covered)
    if (grown or layout) and not found:
        # The last look is at the whole blanked frame, as --verify will look at it (blanked
        # rectangles found from the pixels alone): what goes out must pass its check too.
        found = edge_aware_look(work, photometric, palette, blank)
    if found:
        return _FrameResult(work, layout + grown, found, f"text still detected after blanking on frame {index + 1}")
    return _FrameResult(work, layout + grown, [])


def _pixels_to_read(ds: pydicom.Dataset) -> tuple[Any, str]:
    """(transfer syntax UID, "") when clean_pixels can look at the pixels, else (None, why not)."""
    if _text(ds, "RecognizableVisualFeatures") == "YES":
        return None, "recognizable visual features (not text) cannot be redacted"
    if _pixel_keyword(ds) is None:
        return None, "no pixel data to check"
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None:
        return None, "transfer syntax unknown"
    return ts, ""


def edge_aware_look(frame: np.ndarray, photometric: str, palette: np.ndarray | None, blank: Any,
                    covered: np.ndarray | None = None) -> list[Box]:
    """Text boxes in one decoded frame, ignoring the straight cut edges of rectangles blanked to
    `blank` (found from the pixels: pixel_detect.blank_edges), plus `covered` (rows x cols, pixels
    this run blanked). The one look used after blanking by deid_tool (detector-blanked and
    person-approved images) and, through clean_pixels, by --verify, so both give one verdict.
    Text beside a blanked rectangle is still found (only edge cells cannot start a box)."""
    edges = pixel_detect.blank_edges(frame, blank)
    if covered is not None:
        edges |= covered
    return pixel_detect.find_text_in_frame(_display(frame, photometric, palette), blanked=edges)


def text_left(ds: pydicom.Dataset) -> list[list[list[int]]]:
    """What --verify will find in ds's pixels after a person's boxes were blanked: per frame, the
    text boxes [top, left, bottom, right] (exclusive ends) edge_aware_look still sees. Raises
    PixelError when the pixel data cannot be decoded."""
    ts = _transfer_syntax(ds)
    with _decode_errors():
        frames = decoded_frames(ds, ts)
        palette = _palette(ds)
        out: list[list[list[int]]] = []
        for frame, photometric in frames:
            blank = _blank_value(frame, photometric, palette)
            out.append([b.as_list() for b in edge_aware_look(frame, photometric, palette, blank)])
    return out


def _transfer_syntax(ds: pydicom.Dataset) -> Any:
    """ds's Transfer Syntax UID. Raises PixelError when it has none or no pixel data element."""
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or _pixel_keyword(ds) is None:
        raise PixelError("no pixel data or transfer syntax unknown")
    return ts


def decoded_frames(ds: pydicom.Dataset, ts: Any) -> Iterator[tuple[np.ndarray, str]]:
    """The frames of ds as pydicom decodes them (colour as RGB; integer, float or double data),
    each with the Photometric Interpretation it has as decoded, at most Number of Frames (0028,0008).

    The decoder is found at once: PixelError "no decoder for transfer syntax ..." when pydicom has
    none available for ts. pydicom's own errors (a transfer syntax it does not know, a codec
    failing on a frame) propagate as they are: each caller words them (_decode_errors, or a hold)."""
    from pydicom.pixels import get_decoder

    decoder = get_decoder(ts)
    if not decoder.is_available:
        raise PixelError(f"no decoder for transfer syntax {ts}")
    return _frames(ds, decoder)


def _frames(ds: pydicom.Dataset, decoder: Any) -> Iterator[tuple[np.ndarray, str]]:
    photometric = _text(ds, "PhotometricInterpretation")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    for index, (frame, meta) in enumerate(decoder.iter_array(ds, as_rgb=True)):
        photometric = str(meta.get("photometric_interpretation", photometric))
        yield frame, photometric
        if index + 1 >= n_frames:
            break


@contextmanager
def _decode_errors() -> Iterator[None]:
    """PixelError passes as it is; any other error (a codec's) becomes PixelError with a neutral reason."""
    try:
        yield
    except PixelError:
        raise
    except Exception as e:  # noqa: BLE001 - a codec error: the caller holds the image, neutral reason
        raise PixelError(f"pixel data could not be decoded ({type(e).__name__})") from None


@dataclass
class _Look:
    """What clean_pixels gathers over the frames of one image."""
    photometric: str                                      # as decoded (the last frame's)
    all_boxes: list[list[list[int]]] = field(default_factory=list)
    best: tuple[int, bytes | None, bytes | None] = (-1, None, None)  # (text area, before png, after png)
    first_thumb: bytes | None = None
    hold_reason: str = ""
    cannot_judge: bool = False
    out: bytearray = field(default_factory=bytearray)     # blanked frames (while none is held)
    frame: np.ndarray | None = None                       # the last frame decoded

    def add(self, index: int, frame: np.ndarray, done: _FrameResult, palette: np.ndarray | None,
            rows: int, cols: int) -> None:
        """One frame looked at (done: _clean_frame's result for it)."""
        self.frame = frame
        if index == 0:
            self.first_thumb = _thumb(_display(frame, self.photometric, palette), [])
        # text still seen after blanking is proposed with the same margin as the rest
        boxes_here = done.boxes + [b.grown(REDACTION_MARGIN, rows, cols) for b in done.left]
        self.all_boxes.append([b.as_list() for b in boxes_here])
        self.hold_reason = self.hold_reason or done.hold
        self.cannot_judge = self.cannot_judge or done.cannot_judge
        area = sum(b.area for b in boxes_here)
        if boxes_here and area > self.best[0]:
            self.best = (area, _thumb(_display(frame, self.photometric, palette), boxes_here),
                         _thumb(_display(done.work, self.photometric, palette), []))
        if not self.hold_reason:
            self.out += np.ascontiguousarray(done.work).tobytes()


def clean_pixels(ds: pydicom.Dataset, rules: list[LayoutRule]) -> PixelOutcome:
    """Blank known layouts and detected text on every frame; see the module docstring.

    Every frame is looked at even when one is held, so `boxes` (per frame, [top, left, bottom,
    right], exclusive ends) is the whole proposal a person reviews. Integer, float and double
    pixel data (parametric maps: windowed like 16-bit) are looked at.
    """
    ts, not_readable = _pixels_to_read(ds)
    if ts is None:
        return _hold(not_readable)
    look = _Look(_text(ds, "PhotometricInterpretation"))
    try:
        frames = decoded_frames(ds, ts)
        palette = _palette(ds)
        rows, cols = int(ds.Rows), int(ds.Columns)
        rect_boxes = [b for r in matching_rules(ds, rules) for b in r.rectangles]
        layout = [b for b in (Box(max(0, r.top), max(0, r.left), min(rows, r.bottom), min(cols, r.right))
                              for r in rect_boxes) if b.area > 0]
        for index, (frame, photometric) in enumerate(frames):
            look.photometric = photometric
            look.add(index, frame, _clean_frame(frame, index, photometric, palette, layout), palette, rows, cols)
    except PixelError as e:  # no decoder available for the transfer syntax
        return _hold(str(e))
    except Exception as e:  # a codec error is not worth a crash: the image is held, named by the caller
        return _hold(f"pixel data could not be decoded ({type(e).__name__})")
    if look.cannot_judge:  # no proposal: boxes over texture would only hide the image from the person
        return PixelOutcome("hold", CANNOT_JUDGE, [], look.first_thumb, None, for_person=True)
    if look.hold_reason:
        return _hold(look.hold_reason, look.best[1] or look.first_thumb, look.all_boxes)
    return _redacted_outcome(ds, bytes(look.out), look.photometric, look.frame, look.all_boxes, look.first_thumb,
                             look.best)


def _redacted_outcome(ds: pydicom.Dataset, data: bytes, photometric: str, frame: np.ndarray | None,
                      all_boxes: list[list[list[int]]], first_thumb: bytes | None,
                      best: tuple[int, bytes | None, bytes | None]) -> PixelOutcome:
    """The outcome once every frame was looked at and none is held: clean, or blanked in place."""
    if not any(all_boxes):
        return PixelOutcome("clean", "no burned-in text detected", all_boxes, first_thumb)
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32, 64):
        return _hold(f"text found but {ds.get('BitsAllocated')}-bit pixel data cannot be rewritten",
                     best[1], all_boxes)
    _replace_pixel_data(ds, data, photometric, cast(np.ndarray, frame))  # frames were read
    n_text = sum(len(b) for b in all_boxes)
    return PixelOutcome("redacted", f"{n_text} region(s) blanked on {sum(1 for b in all_boxes if b)} frame(s)",
                        all_boxes, best[1], best[2])


def _replace_pixel_data(ds: pydicom.Dataset, data: bytes, photometric: str, sample: np.ndarray) -> None:
    """Store decoded frames uncompressed, with attributes that describe them."""
    if len(data) % 2:
        data += b"\0"
    for tag in (0x7FE00001, 0x7FE00002):  # extended offset table belongs to the old encoding
        if tag in ds:
            del ds[tag]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    keyword = _pixel_keyword(ds) or "PixelData"
    setattr(ds, keyword, data)
    if keyword == "PixelData":
        ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds[keyword].is_undefined_length = False
    ds.PhotometricInterpretation = photometric
    if sample.ndim == 3:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.BurnedInAnnotation = "NO"


def release_decision(outcome: PixelOutcome, layout_matched: bool, trust_detector: bool,
                     person_must_see: bool = False) -> tuple[bool, str]:
    """May an image at risk go out after clean_pixels without a person? (send, neutral reason).

    A known screen layout that was blanked, with no text found afterwards, is confident. An image
    the detector finds clean goes out when the risk table says a person need not see its kind
    (burned_in_risk.csv person_must_see = no): the detector cleared it by rule. The detector's
    own blanking is trusted only when the site says so (settings.ini [pixels] trust_detector);
    otherwise the image waits for a person (review_decisions.csv). Fail closed.
    """
    if outcome.status == "hold":
        return False, outcome.reason
    if layout_matched:
        return True, "known screen layout blanked" if outcome.status == "redacted" else "known screen layout"
    if trust_detector:
        return True, "detected text blanked" if outcome.status == "redacted" else "no text found"
    if outcome.status == "clean" and not person_must_see:
        return True, "no text found (cleared by rule)"
    if outcome.status == "redacted":
        return False, "text found; waiting for a person to confirm the boxes"
    return False, "no text found; a person must see this kind of image"


# ---- a person's decision applied; the output's encoding ----------------------------------------

class PixelError(ValueError):
    """The pixel data cannot be decoded or rewritten (the message is neutral: no PHI)."""


def _blank_regions(frame: np.ndarray, regions: list, blank: Any, rows: int, cols: int) -> int:
    """Set each region (clipped to rows x cols) of frame to blank, in place; how many were not empty."""
    done = 0
    for r in regions:
        y0, y1, x0, x1 = max(0, r.y0), min(rows, r.y1), max(0, r.x0), min(cols, r.x1)
        if y1 > y0 and x1 > x0:
            frame[y0:y1, x0:x1] = blank
            done += 1
    return done


def apply_regions(ds: pydicom.Dataset, regions: list) -> int:
    """Blank exactly the given rectangles (deidkit.review_decisions.Region: frame from 0 or None
    for every frame; x0..x1 columns, y0..y1 rows, exclusive ends; clipped to the image) with black
    as displayed, on every frame they apply to. With no regions the pixels are left as they are.
    The pixel data is then stored uncompressed (see encode_like) and Burned In Annotation set to
    NO. Returns the number of rectangles blanked. Raises PixelError if it cannot decode or rewrite.
    """
    ds.BurnedInAnnotation = "NO"
    if not regions:
        return 0
    ts = _transfer_syntax(ds)
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32, 64):
        raise PixelError(f"{ds.get('BitsAllocated')}-bit pixel data cannot be rewritten")
    with _decode_errors():
        frames = decoded_frames(ds, ts)
        palette = _palette(ds)
        rows, cols = int(ds.Rows), int(ds.Columns)
        out = bytearray()
        done = 0
        frame = None
        photometric = _text(ds, "PhotometricInterpretation")
        for index, (frame, photometric) in enumerate(frames):
            here = [r for r in regions if r.on(index)]
            if here:
                frame = frame.copy()
                done += _blank_regions(frame, here, _blank_value(frame, photometric, palette), rows, cols)
            out += np.ascontiguousarray(frame).tobytes()
    if frame is None:
        raise PixelError("no frames in the pixel data")
    _replace_pixel_data(ds, bytes(out), photometric, frame)
    return done


# Lossless encodings worth keeping: pixels blanked and encoded again lose nothing else.
LOSSLESS_REENCODE = ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90")


def encode_like(ds: pydicom.Dataset, original_ts: str) -> str:
    """After apply_regions/clean_pixels stored the pixels uncompressed: encode them again in the
    original's transfer syntax when that is lossless to re-encode (RLE Lossless, JPEG-LS Lossless,
    JPEG 2000 Lossless) and an encoder is there; lossy and other originals stay uncompressed
    (Explicit VR Little Endian). Returns the transfer syntax UID the dataset now has. Never raises:
    an encoder failure leaves the dataset uncompressed."""
    current = str(ds.file_meta.TransferSyntaxUID)
    if original_ts not in LOSSLESS_REENCODE or current == original_ts or "PixelData" not in ds:
        return current
    if current != str(ExplicitVRLittleEndian) or _text(ds, "PhotometricInterpretation") == "YBR_FULL":
        return current
    try:
        ds.compress(original_ts, generate_instance_uid=False)
    except Exception:  # noqa: BLE001 - no encoder or an unsupported layout: uncompressed is correct too
        return str(ds.file_meta.TransferSyntaxUID)
    return original_ts


def display_frames(ds: pydicom.Dataset, limit: int | None = None) -> list[np.ndarray]:
    """Every frame (or the first `limit`) as a viewer shows it: uint8 grey (rows x cols) or RGB
    (rows x cols x 3), MONOCHROME1 inverted, palettes applied, more than 8 bits and float data
    windowed. For the review window (hospital side: the pixels may show PHI). Raises PixelError
    when the pixel data cannot be decoded."""
    ts = _transfer_syntax(ds)
    with _decode_errors():
        frames = decoded_frames(ds, ts)
        palette = _palette(ds)
        out = []
        for frame, photometric in frames:
            out.append(_display(frame, photometric, palette))
            if limit is not None and len(out) >= limit:
                break
    return out
