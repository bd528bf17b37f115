"""Known screen layouts (guidelines/pixel_redaction_rules.csv): manufacturer, model and image
size -> rectangles to blank (CTP pixel anonymizer style). Read, validated, matched to a header."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pydicom

from .guidelines import PIXEL_RULES_FILE, GuidelineError, bundled_dir
from .pixel_detect import Box

RULES_FILE = PIXEL_RULES_FILE  # one name, defined with the other guideline files


def header_text(ds: pydicom.Dataset, keyword: str) -> str:
    """The attribute's value as upper-case text without surrounding spaces ("" when absent)."""
    value = ds.get(keyword, "")
    return str(value).strip().upper() if value is not None else ""


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
        """True when this rule covers an image of this manufacturer, model name and size (upper case)."""
        return (self.manufacturer in manufacturer and self.model in model
                and self.rows in (None, rows) and self.columns in (None, columns))


def redaction_rules_path(override_dir: Path | None = None) -> Path:
    """The layout table to use: a copy in override_dir (next to the program) wins over the bundle."""
    if override_dir is not None and (override_dir / RULES_FILE).is_file():
        return override_dir / RULES_FILE
    return bundled_dir() / RULES_FILE


def parse_redaction_rules(text: str, name: str = RULES_FILE) -> list[LayoutRule]:
    """The layout rules in a layout table text (CSV after comment lines); GuidelineError names the line."""
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
        size: list[int | None] = []
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
    """The layout rules that cover this image (none when Manufacturer is empty)."""
    manufacturer, model = header_text(ds, "Manufacturer"), header_text(ds, "ManufacturerModelName")
    if not manufacturer:
        return []
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):  # damaged (two values, text): no layout; the pixel step says why
        return []
    return [r for r in rules if r.matches(manufacturer, model, rows, cols)]


# ---- cleaning -------------------------------------------------------------------------------
