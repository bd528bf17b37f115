"""Free text in content items, labels and unlisted attributes: the engine's one call into
deidkit.text_clean, and what it means for holding a file.

Content trees (PS3.3 C.17.3, SR documents, Key Object Selection, Acquisition / Protocol Context
items anywhere) are walked by the engine like every sequence; per value type:
  CODE, NUM, SCOORD/SCOORD3D, TCOORD, IMAGE/COMPOSITE/WAVEFORM references, CONTAINER: kept, their
      UIDs remapped with the same keyed UIDs as every file (so references resolve);
  UIDREF: UID (0040,A124) remapped; DATE/TIME/DATETIME: shifted by the table's C action;
  PNAME: Person Name (0040,A123) replaced by a dummy (D);
  TEXT: Text Value (0040,A160), and the free text of concept names (Code Meaning): cleaned here.
A TEXT item of an SR document that still looks like it names someone after cleaning holds the
file for review (text_clean.REVIEW_REASON, id "text-review"); elsewhere the suspicious words are
removed (an image is not held for a word in its acquisition context).
"""
from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .text_clean import LABEL_TAGS, NARRATIVE_TAGS, REVIEW_REASON, clean_free_text

REVIEW_ACTION = "REVIEW"
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}


def date_offset_for_text(ctx: Any) -> int | None:
    """Days to shift dates written in text: the patient's offset under Modified Dates, 0 under Full
    Dates, None (remove them) otherwise."""
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return 0
    if "retain_long_modified_dates" in options:
        return ctx.date_offset
    return None


def uses_free_text_cleaner(tag: int) -> bool:
    """Labels and narrative text are cleaned by text_clean (words kept), not Clean Descriptors."""
    return tag in LABEL_TAGS or tag in NARRATIVE_TAGS


def clean_text_element(ds: Dataset, elem: DataElement, ctx: Any, location: str, finding: type) -> None:
    """Clean one free-text element in place (removed when nothing is left). ctx is an
    engine.Context; finding is engine.Finding (passed in: no import cycle)."""
    value = elem.value
    if value is None or value == "":
        return
    values = list(value) if isinstance(value, (list, tuple)) or (elem.VM > 1 and not isinstance(value, str)) else [value]
    if any(isinstance(v, bytes) for v in values):
        del ds[elem.tag]
        ctx.findings.append(finding(location, "X", "undecodable free text removed"))
        return
    narrative = elem.tag in NARRATIVE_TAGS
    in_document = ctx.sop_class.startswith(SR_PREFIX)
    offset = date_offset_for_text(ctx)
    new = []
    review = False
    for v in values:
        result = clean_free_text(str(v), ctx.identifiers, offset, ctx.guidelines.vocabulary, narrative=narrative)
        text = result.text
        if result.review:
            if in_document:
                review = True
            else:
                text = _drop_spans(text, result.review)
        new.append(text)
    if all(not t.strip() for t in new):
        del ds[elem.tag]
        ctx.findings.append(finding(location, "X", "free text: nothing left after cleaning"))
        return
    new = [t for t in new if t.strip()] if len(new) > 1 else new
    if new != [str(v) for v in values]:
        ctx.findings.append(finding(location, "C", "free text cleaned"))
        elem.value = new if len(new) > 1 else new[0]
    if review:
        ctx.findings.append(finding(location, REVIEW_ACTION, "text may still name someone"))


def review_hold(findings: list) -> str | None:
    """The held-back reason when a document's text needs a person's review, else None."""
    return REVIEW_REASON if any(f.action == REVIEW_ACTION for f in findings) else None


def _drop_spans(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    out, pos = [], 0
    for start, end in spans:
        out.append(text[pos:start])
        pos = end
    out.append(text[pos:])
    return " ".join("".join(out).split())
