"""Free text in content items, labels and unlisted attributes: the engine's one call into
deidkit.text_clean, and what it means for holding a file.

Content trees (PS3.3 C.17.3, SR documents, Key Object Selection, Acquisition / Protocol Context
items anywhere) are walked by the engine like every sequence; per value type:
  CODE, NUM, SCOORD/SCOORD3D, TCOORD, IMAGE/COMPOSITE/WAVEFORM references, CONTAINER: kept, their
      UIDs remapped with the same keyed UIDs as every file (so references resolve);
  UIDREF: UID (0040,A124) remapped; DATE/TIME/DATETIME: shifted by the table's C action;
  PNAME: Person Name (0040,A123): the patient's own name becomes the pseudonym, anyone else's a
      dummy (D);
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
DUMMY = "ANONYMIZED"
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}


# Dates written in text are removed: a shifted date in prose cannot be told from a missed one by
# --verify (it reports every date in text for review). Set True to shift the unambiguous spellings
# by the patient's offset instead (text_clean.shift_text_date, the one place that shifts them).
SHIFT_DATES_IN_TEXT = False


def date_offset_for_text(ctx: Any) -> int | None:
    """Days to shift dates written in text: None (remove them) unless SHIFT_DATES_IN_TEXT; then
    the patient's offset under Modified Dates, 0 under Full Dates."""
    if not SHIFT_DATES_IN_TEXT:
        return None
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return 0
    if "retain_long_modified_dates" in options:
        return ctx.date_offset
    return None


# Sequences that hold content items (PS3.3 C.17.3, C.4.10 Acquisition Context, Protocol Context of
# Performed Protocol Code Sequence) and the concept codes inside them.
CONTENT_SEQUENCES = ("(0040,A730)", "(0040,0555)", "(0040,0440)", "(0040,A043)", "(0040,A168)")


def in_content_tree(location: str) -> bool:
    """Whether an element (engine location path) sits in a content tree, where free text is
    cleaned word by word; elsewhere inside a sequence being cleaned the stricter Clean
    Descriptors applies."""
    return any(seq in location for seq in CONTENT_SEQUENCES)


def uses_free_text_cleaner(tag: int, location: str = "") -> bool:
    """Labels, and narrative text in content trees, are cleaned by text_clean (words kept)."""
    return tag in LABEL_TAGS or (tag in NARRATIVE_TAGS and in_content_tree(location))


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
    option = _observer_option(ds) if narrative else None
    if option is not None:
        if option in ctx.guidelines.settings.options:
            return  # kept by the option, like the header's institution / device attributes (swept)
        elem.value = DUMMY  # Text Value is Type 1 in its item: a dummy keeps the tree valid
        ctx.findings.append(finding(location, "D", "observer context: organisation, location or device identity"))
        return
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
        if elem.tag in LABEL_TAGS or elem.tag in NARRATIVE_TAGS:  # Type 1 or 2 mostly: keep them valid
            elem.value = DUMMY
            ctx.findings.append(finding(location, "D", "free text: nothing left after cleaning"))
        else:
            del ds[elem.tag]
            ctx.findings.append(finding(location, "X", "free text: nothing left after cleaning"))
        return
    new = [t for t in new if t.strip()] if len(new) > 1 else new
    if new != [str(v) for v in values]:
        ctx.findings.append(finding(location, "C", "free text cleaned"))
        elem.value = new if len(new) > 1 else new[0]
    if review:
        ctx.findings.append(finding(location, REVIEW_ACTION, "text may still name someone"))


# Observer context (PS3.16 TID 1003 / 1004) TEXT items, by concept (DCM code): removed unless the
# option that keeps that identity is on; manufacturer and model stay (research value).
OBSERVER_TEXT = {
    "121009": "retain_institution_identity",  # Person Observer's Organization Name
    "121017": "retain_institution_identity",  # Device Observer Physical Location During Observation
    "121013": "retain_device_identity",       # Device Observer Name
    "121016": "retain_device_identity",       # Device Observer Serial Number
}


def _observer_option(item: Dataset) -> str | None:
    """The option keeping this TEXT item when it is observer context, else None."""
    for code in item.get("ConceptNameCodeSequence") or []:
        if str(code.get("CodingSchemeDesignator", "")).strip() == "DCM":
            return OBSERVER_TEXT.get(str(code.get("CodeValue", "")).strip())
    return None


def names_the_patient(elem: DataElement, patient_name: str) -> bool:
    """A PNAME content item's Person Name (0040,A123) that is the patient's own name (same family
    name and a given name or the same whole name): it gets the pseudonym, anyone else a dummy."""
    if elem.tag != 0x0040A123 or not patient_name or elem.value in (None, ""):
        return False
    from .sweep import fold

    def parts(name: str) -> list[str]:
        return [fold(p.strip()) for p in str(name).split("=")[0].split("^")]

    mine, theirs = parts(patient_name), parts(elem.value)
    return bool(mine[0]) and mine[0] == theirs[0] and (len(mine) < 2 or len(theirs) < 2 or mine[1] == theirs[1])


def text_for_review(ds: Dataset, vocabulary: frozenset[str]) -> list[tuple[str, str]]:
    """For the review of a held document (#11): (location, cleaned text with the suspicious
    spans marked [[like this]]) for every TEXT item of a dataset the engine has de-identified.
    Approving sends the cleaned text as it stands (the marks are not written)."""
    from .text_clean import _review_spans, mark_spans

    out: list[tuple[str, str]] = []

    def walk(item: Dataset, prefix: str) -> None:
        for elem in item:
            location = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.VR == "SQ":
                for i, child in enumerate(elem.value or []):
                    walk(child, f"{location}[{i}]>")
            elif elem.tag in NARRATIVE_TAGS and isinstance(elem.value, str) and in_content_tree(location):
                spans = _review_spans(elem.value, vocabulary)
                if spans:
                    out.append((location, mark_spans(elem.value, spans)))
    walk(ds, "")
    return out


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


# ---- references across a delivery ---------------------------------------------------------------

# SOP Classes whose value is what they point at: SR family and KO, SEG, RT, presentation states,
# parametric maps, real-world value maps, microscopy annotations.
LABEL_CLASS_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88.", "1.2.840.10008.5.1.4.1.1.66.", "1.2.840.10008.5.1.4.1.1.481.",
                        "1.2.840.10008.5.1.4.1.1.11.", "1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.67",
                        "1.2.840.10008.5.1.4.1.1.91.")
_REFERENCED_SOP_INSTANCE = 0x00081155


def referenced_instances(ds: Dataset) -> list[str]:
    """Referenced SOP Instance UIDs anywhere in a (de-identified) label object; [] for others."""
    if not str(ds.get("SOPClassUID", "")).startswith(LABEL_CLASS_PREFIXES):
        return []
    found: set[str] = set()

    def walk(item: Dataset) -> None:
        for elem in item:
            if elem.VR == "SQ":
                for child in elem.value or []:
                    walk(child)
            elif elem.tag == _REFERENCED_SOP_INSTANCE and elem.value:
                values = elem.value if isinstance(elem.value, (list, tuple)) else [elem.value]
                found.update(str(v) for v in values)
    walk(ds)
    return sorted(found)


def labels_missing_references(results: list) -> list[tuple[str, int]]:
    """(output file, number of references to held-back or failed instances) for each delivered
    label object pointing at an instance of the export that did not go out (issue 15)."""
    not_delivered = {r.sop_instance for r in results if r.status in ("held", "failed") and r.sop_instance}
    delivered = {r.sop_instance for r in results if r.status == "written"}
    out = []
    for r in results:
        if r.status == "written" and r.references:
            missing = [u for u in r.references if u in not_delivered and u not in delivered]
            if missing:
                out.append((r.out, len(missing)))
    return sorted(out)
