"""Burned-in text in the pixels (Clean Pixel Data option): risk rules, layout rules, redaction.

Three steps, each a pure function over a pydicom Dataset (nothing here reads or writes files
except load_redaction_rules):
  burned_in_risk(ds)        metadata says the image may carry text -> a short neutral reason
  load_redaction_rules(p)   guidelines/pixel_redaction_rules.csv: known screen layouts
  clean_pixels(ds, rules)   decode every frame, blank layout rectangles and detected text, check
                            again, and say "clean" (pixels untouched), "redacted" (PixelData
                            replaced, uncompressed) or "hold" (not confident: do not send).
When is detection not confident ("hold")? Recognizable Visual Features YES (a face is not text);
float pixel data; a decode failure or a transfer syntax without a decoder; detected text boxes
covering more than MAX_TEXT_FRACTION of a frame or more than MAX_BOXES boxes (text everywhere:
a document or a screenshot, blanking would leave nothing worth sending); text still detected
after blanking.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from . import pixel_detect
from .guidelines import PIXEL_RULES_FILE, GuidelineError, bundled_dir
from .pixel_detect import REDACTION_MARGIN, Box
from .review_page import thumbnail_png

RULES_FILE = PIXEL_RULES_FILE  # one name, defined with the other guideline files
MAX_TEXT_FRACTION = 0.25   # of a frame's area under detected boxes; beyond it, hold
MAX_BOXES = 80             # detected boxes in one frame; beyond it, hold
REDETECT_PASSES = 3        # blank-and-look-again rounds before a frame is held

# SOP Classes whose images are screens, photos or captures (PS3.4 B.5).
_RISK_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit SC",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte SC",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word SC",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color SC",
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "Enhanced XA",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit",
}
# Labels and computed maps: their frames are segment masks, parameter values or dose grids made
# by software from other images, not captures of a screen; "DERIVED" does not put them at risk
# (issue 15). Segmentation, Label Map Segmentation, Heightmap Segmentation, Parametric Map, RT Dose.
LABEL_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7", "1.2.840.10008.5.1.4.1.1.66.8",
    "1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.481.2",
})
_RISK_MODALITIES = {"US", "IVUS", "SC", "OT", "XA", "RF", "ES", "XC", "GM", "OP", "DOC", "SM"}
_RISK_IMAGE_TYPES = ("SECONDARY", "SCREEN SAVE", "DERIVED")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# ---- risk from metadata -------------------------------------------------------------------

def _is_image(ds: pydicom.Dataset) -> bool:
    return "Rows" in ds or any(k in ds for k in _PIXEL_KEYWORDS)


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip().upper() if value is not None else ""


def burned_in_risk(ds: pydicom.Dataset, rules: list["LayoutRule"] | None = None) -> str | None:
    """A short neutral reason if the metadata says the image may show burned-in text, else None.

    Works on headers read with stop_before_pixels. The flag Burned In Annotation NO does not
    clear a risky modality or SOP Class (public samples ship text with the flag absent or wrong).
    """
    if not _is_image(ds):
        return None
    if _text(ds, "BurnedInAnnotation") == "YES":
        return "BurnedInAnnotation YES"
    if str(ds.get("SOPClassUID", "")).strip() in LABEL_SOP_CLASSES:
        return None  # masks, maps and doses computed from images: no screen to burn text into
    if _text(ds, "RecognizableVisualFeatures") == "YES":
        return "RecognizableVisualFeatures YES"
    sop = str(ds.get("SOPClassUID", "")).strip()
    if sop in _RISK_SOP_CLASSES:
        return f"SOP class {_RISK_SOP_CLASSES[sop]}"
    modality = _text(ds, "Modality")
    if modality in _RISK_MODALITIES:
        return f"modality {modality}"
    image_type = [str(v).strip().upper() for v in (ds.get("ImageType") or [])]
    for wanted in _RISK_IMAGE_TYPES:
        if wanted in image_type:
            return f"ImageType {wanted}"
    if rules and matching_rules(ds, rules):
        return "known screen layout"
    return None


# ---- layout rules (guidelines/pixel_redaction_rules.csv) -------------------------------------

@dataclass(frozen=True)
class LayoutRule:
    """Rectangles to blank on images of one manufacturer/model/size (CTP pixel anonymizer style)."""

    manufacturer: str        # case-insensitive substring of Manufacturer
    model: str               # case-insensitive substring of ManufacturerModelName; "" = any
    rows: int | None         # None = any
    columns: int | None
    rectangles: tuple[Box, ...]
    line: int

    def matches(self, manufacturer: str, model: str, rows: int, columns: int) -> bool:
        return (self.manufacturer in manufacturer and self.model in model
                and self.rows in (None, rows) and self.columns in (None, columns))


def redaction_rules_path(override_dir: Path | None = None) -> Path:
    """The layout table to use: a copy in override_dir (next to the program) wins over the bundle."""
    if override_dir is not None and (override_dir / RULES_FILE).is_file():
        return override_dir / RULES_FILE
    return bundled_dir() / RULES_FILE


def parse_redaction_rules(text: str, name: str = RULES_FILE) -> list[LayoutRule]:
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    reader = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    needed = {"manufacturer", "model", "rows", "columns", "rectangles"}
    if reader.fieldnames is None or not needed <= {f.strip() for f in reader.fieldnames}:
        raise GuidelineError(f"{name}: needs columns {', '.join(sorted(needed))}")
    rules = []
    for i, raw in enumerate(reader):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        line = start + 2 + i
        if not any(row.values()) or row.get("manufacturer", "").startswith("#"):
            continue
        where = f"{name} line {line}"
        if not row["manufacturer"]:
            raise GuidelineError(f"{where}: manufacturer is empty")
        size = []
        for key in ("rows", "columns"):
            v = row[key]
            if v in ("", "*"):
                size.append(None)
            elif v.isdigit() and int(v) > 0:
                size.append(int(v))
            else:
                raise GuidelineError(f"{where}: {key} must be a whole number or empty")
        rects = []
        for part in row["rectangles"].split(";"):
            nums = [p.strip() for p in part.split(",")]
            if len(nums) != 4 or not all(n.isdigit() for n in nums) or int(nums[2]) == 0 or int(nums[3]) == 0:
                raise GuidelineError(f"{where}: rectangle '{part.strip()}' is not x,y,width,height")
            x, y, w, h = map(int, nums)
            rects.append(Box(y, x, y + h, x + w))
        rules.append(LayoutRule(row["manufacturer"].upper(), row["model"].upper(), size[0], size[1],
                                tuple(rects), line))
    return rules


def load_redaction_rules(path: Path) -> list[LayoutRule]:
    """Read and validate the layout table; GuidelineError names file and line when it is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise GuidelineError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_redaction_rules(text, Path(path).name)


def matching_rules(ds: pydicom.Dataset, rules: list[LayoutRule]) -> list[LayoutRule]:
    manufacturer, model = _text(ds, "Manufacturer"), _text(ds, "ManufacturerModelName")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if not manufacturer:
        return []
    return [r for r in rules if r.matches(manufacturer, model, rows, cols)]


# ---- cleaning -------------------------------------------------------------------------------

@dataclass
class PixelOutcome:
    status: str                                  # "clean", "redacted" or "hold"
    reason: str                                  # neutral, no PHI
    boxes: list[list[list[int]]] = field(default_factory=list)  # per frame: [top, left, bottom, right]
    before_png: bytes | None = None              # thumbnail of the frame with most text (may show PHI)
    after_png: bytes | None = None               # the same frame after blanking (redacted only)


def _hold(reason: str, before: bytes | None = None, boxes=None) -> PixelOutcome:
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
    grey = pixel_detect.to_grey8(frame)
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _blank_value(frame: np.ndarray, photometric: str, palette_rgb: np.ndarray | None):
    """Black as displayed: the darkest palette entry, the frame's minimum (maximum for MONOCHROME1)."""
    if palette_rgb is not None:
        return int(np.argmin(palette_rgb.astype(np.int32).sum(axis=1)))
    if frame.ndim == 3:
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


def clean_pixels(ds: pydicom.Dataset, rules: list[LayoutRule]) -> PixelOutcome:
    """Blank known layouts and detected text on every frame; see the module docstring."""
    if _text(ds, "RecognizableVisualFeatures") == "YES":
        return _hold("recognizable visual features (not text) cannot be redacted")
    if "PixelData" not in ds:
        return _hold("no integer pixel data to check")
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None:
        return _hold("transfer syntax unknown")
    photometric = _text(ds, "PhotometricInterpretation")
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(ts)
        if not decoder.is_available:
            return _hold(f"no decoder for transfer syntax {ts}")
        palette = _palette(ds)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
        rect_boxes = [b for r in matching_rules(ds, rules) for b in r.rectangles]
        out = bytearray()
        all_boxes: list[list[list[int]]] = []
        changed = False
        best = (-1, None, None)  # (text area, before png, after png)
        first_thumb = None
        out_photometric = photometric
        frames = decoder.iter_array(ds, as_rgb=True)
        for index, (frame, meta) in enumerate(frames):
            out_photometric = str(meta.get("photometric_interpretation", photometric))
            display = _display(frame, out_photometric, palette)
            if index == 0:
                first_thumb = _thumb(display, [])  # shown on the review page if the image is held
            layout = [b for b in (Box(max(0, r.top), max(0, r.left), min(rows, r.bottom), min(cols, r.right))
                                  for r in rect_boxes) if b.area > 0]
            work = frame.copy() if layout else frame
            blank = _blank_value(frame, out_photometric, palette)
            for b in layout:
                work[b.top:b.bottom, b.left:b.right] = blank
            covered = np.zeros((rows, cols), bool)
            for b in layout:
                covered[b.top:b.bottom, b.left:b.right] = True
            found = pixel_detect.find_text_in_frame(_display(work, out_photometric, palette) if layout else display,
                                                    blanked=covered)
            # Blank, look again, blank what appears (text hidden by a neighbour's line); a frame
            # still showing text after REDETECT_PASSES is held.
            grown: list[Box] = []
            for _ in range(REDETECT_PASSES):
                if not found:
                    break
                if len(grown) + len(found) > MAX_BOXES:
                    return _hold(f"text everywhere on frame {index + 1}", _thumb(display, grown + found))
                new = [b.grown(REDACTION_MARGIN, rows, cols) for b in found]
                for b in new:
                    covered[b.top:b.bottom, b.left:b.right] = True
                grown += new
                if covered.mean() > MAX_TEXT_FRACTION:  # (layout rectangles count as covered too)
                    return _hold(f"text covers {100 * covered.mean():.0f}% of frame {index + 1}",
                                 _thumb(display, grown))
                if work is frame:
                    work = frame.copy()
                for b in new:
                    work[b.top:b.bottom, b.left:b.right] = blank
                found = pixel_detect.find_text_in_frame(_display(work, out_photometric, palette), blanked=covered)
            if (grown or layout) and not found:
                # The last look is at the whole blanked frame, as --verify will look at it: what
                # goes out must pass the receiving side's check too.
                found = pixel_detect.find_text_in_frame(_display(work, out_photometric, palette))
            if found:
                return _hold(f"text still detected after blanking on frame {index + 1}",
                             _thumb(display, grown + found))
            boxes_here = layout + grown
            all_boxes.append([b.as_list() for b in boxes_here])
            if boxes_here:
                changed = True
                area = sum(b.area for b in boxes_here)
                if area > best[0]:
                    best = (area, _thumb(display, boxes_here),
                            _thumb(_display(work, out_photometric, palette), []))
            out += np.ascontiguousarray(work).tobytes()
            if index + 1 >= n_frames:
                break
    except Exception as e:  # a codec error is not worth a crash: the image is held, named by the caller
        return _hold(f"pixel data could not be decoded ({type(e).__name__})")
    if not changed:
        return PixelOutcome("clean", "no burned-in text detected", all_boxes, first_thumb)
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
        return _hold(f"text found but {ds.get('BitsAllocated')}-bit pixel data cannot be rewritten",
                     best[1], all_boxes)
    _replace_pixel_data(ds, bytes(out), out_photometric, frame)
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
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.PhotometricInterpretation = photometric
    if sample.ndim == 3:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.BurnedInAnnotation = "NO"


def release_decision(outcome: PixelOutcome, layout_matched: bool, trust_detector: bool) -> tuple[bool, str]:
    """May an image at risk go out after clean_pixels? (send, neutral reason). Fail closed.

    A known screen layout that was blanked, with no text found afterwards, is confident. The
    detector alone is trusted only when the site says so (settings.ini [pixels] trust_detector).
    """
    if outcome.status == "hold":
        return False, outcome.reason
    if layout_matched:
        return True, "known screen layout blanked" if outcome.status == "redacted" else "known screen layout"
    if trust_detector:
        return True, "detected text blanked" if outcome.status == "redacted" else "no text found"
    if outcome.status == "redacted":
        return False, "text found and blanked by the detector; not yet trusted to send unreviewed"
    return False, "at risk, no known screen layout; detector not yet trusted to clear it"
