"""The per-dataset action engine: dataset + guideline table + keyed mapping in, findings out.

`deidentify(ds, context)` applies Table E.1-1 (as resolved by deidkit.guidelines) to every element,
through every nested sequence, to masked groups and private data, then runs the own-identifier
sweep and sets the de-identification attributes. It changes `ds` in place (callers pass a copy
read for the purpose) and does no I/O. Pixel data is not its business (deidkit.pixels).

Where the table is silent the engine fails closed, as README.txt documents:
  person names (PN) are emptied; dates (DA/DT) are shifted like the table's own dates (or emptied);
  UIDs (UI) that are not registered DICOM UIDs are remapped; text inside a sequence that is being
  cleaned is cleaned too; everything else is kept and swept for the patient's own identifiers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from . import __version__
from .guidelines import OPTION_CODES, OPTIONS, Guidelines
from .mapping import Mapper, patient_key_of, shift_da, shift_dt
from .sweep import Identifiers, clean_descriptor, find_generic_phi

IMPLEMENTATION_CLASS_UID = "2.25.118750309125961335283633787036497431621"
IMPLEMENTATION_VERSION = "DEIDKIT_" + __version__.replace(".", "_")
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "UR", "PN"}
FREE_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}
BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
OVERLAY_GROUPS = range(0x6000, 0x6020, 2)
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}


@dataclass(frozen=True)
class Finding:
    """Something the engine did or decided about one element. Never holds a value (PHI)."""

    location: str  # tag path, e.g. (0040,0275)[0]>(0032,1060)
    action: str    # X, Z, D, K, C, U, or SWEEP
    reason: str


@dataclass
class Context:
    """What one dataset is de-identified with (everything but the dataset itself)."""

    guidelines: Guidelines
    mapper: Mapper
    identifiers: Identifiers = field(default_factory=Identifiers)
    sop_class: str = ""
    date_offset: int = 0
    pseudonym: str = ""
    findings: list[Finding] = field(default_factory=list)
    dates_shifted: bool = False


@dataclass
class EngineResult:
    dataset: Dataset
    findings: list[Finding]
    hold_reason: str | None
    pseudonym: str
    date_offset: int


def tag_text(tag: int) -> str:
    text = _TAG_TEXT.get(tag)
    if text is None:
        text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if len(_TAG_TEXT) < 65536:
            _TAG_TEXT[int(tag)] = text
    return text


_TAG_TEXT: dict[int, str] = {}


def hold_reason_for(ds: Dataset, guidelines: Guidelines) -> str | None:
    """Objects held back whole, whatever their header (fail closed on free-text documents)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    settings = guidelines.settings
    if sop_class.startswith(DOCUMENT_PREFIX) and settings.hold_encapsulated_documents:
        return "encapsulated document (PDF/CDA): free text cannot be checked"
    if sop_class.startswith(SR_PREFIX) and settings.hold_structured_reports:
        if "clean_structured_content" not in settings.options or _has_free_text_items(ds):
            return "structured report with free text"
    return None


def _has_free_text_items(ds: Dataset) -> bool:
    for elem in ds.iterall():
        if elem.tag == 0x0040A040 and str(elem.value).upper() in ("TEXT", "PNAME"):
            return True
    return False


def deidentify(ds: Dataset, ctx: Context) -> EngineResult:
    """Apply the guideline table to ds in place; returns the findings and any hold reason."""
    ctx.sop_class = str(ds.get("SOPClassUID", ""))
    hold = hold_reason_for(ds, ctx.guidelines)
    patient_key = patient_key_of(str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""), str(ds.get("PatientBirthDate", "") or ""),
                                 str(ds.get("StudyInstanceUID", "") or ""))
    ctx.pseudonym = ctx.mapper.patient_pseudonym(patient_key)
    ctx.date_offset = ctx.mapper.date_offset_days(patient_key)
    ctx.identifiers.merge(Identifiers.from_dataset(ds))
    _process_dataset(ds, ctx, "", cleaning=False)
    _drop_orphan_overlays(ds, ctx)
    _sweep(ds, ctx, "")
    _set_deidentification_attributes(ds, ctx)
    return EngineResult(ds, ctx.findings, hold, ctx.pseudonym, ctx.date_offset)


# ---- the walk ----------------------------------------------------------------------------------

def _process_dataset(ds: Dataset, ctx: Context, prefix: str, cleaning: bool) -> None:
    has_private = _has_private(ds)
    private_creators = _private_creators(ds) if has_private else {}
    for elem in list(ds):
        tag = elem.tag
        location = prefix + tag_text(tag)
        if tag.group == 0x0002 or tag in PIXEL_TAGS:
            continue
        if tag.is_private:
            _process_private(ds, elem, ctx, location, private_creators)
            continue
        if tag.element == 0x0000:  # group lengths are recomputed or omitted on write
            del ds[tag]
            continue
        code = ctx.guidelines.action_for(tag, ctx.sop_class)
        if code is None:
            _process_unlisted(ds, elem, ctx, location, cleaning)
        else:
            _apply(ds, elem, code, ctx, location, cleaning)
    if has_private:
        _drop_empty_private_creators(ds)


def _apply(ds: Dataset, elem: DataElement, code: str, ctx: Context, location: str, cleaning: bool) -> None:
    tag, vr = elem.tag, elem.VR
    if code == "X":
        del ds[tag]
        ctx.findings.append(Finding(location, "X", "removed"))
    elif code == "Z":
        if tag in ctx.guidelines.settings_pseudonym_tags():
            _set(ds, tag, vr, ctx.pseudonym)
            ctx.findings.append(Finding(location, "Z", "pseudonym"))
        else:
            _empty(ds, elem)
            ctx.findings.append(Finding(location, "Z", "emptied"))
    elif code == "D":
        if tag in ctx.guidelines.settings_pseudonym_tags():
            _set(ds, tag, vr, ctx.pseudonym)
        elif vr == "SQ":
            _recurse(elem, ctx, location, cleaning=True)
        else:
            _set_dummy(ds, elem, ctx)
        ctx.findings.append(Finding(location, "D", "replaced"))
    elif code == "U":
        if vr == "SQ":
            _recurse(elem, ctx, location, cleaning)
        elif vr == "UI":
            _remap_uid(elem, ctx)
        else:  # a U row whose element came with another VR: fail closed
            del ds[tag]
        ctx.findings.append(Finding(location, "U", "new UID"))
    elif code == "K":
        if vr == "SQ":
            _recurse(elem, ctx, location, cleaning)
        elif vr in FREE_TEXT_VRS or vr == "UR":
            # kept by an option, yet free text: a PHI shape (URL, date, phone, ID...) still goes
            # (ID shapes are not judged here: device serial numbers are what an option keeps)
            if any(f.kind != "id" for v in _str_values(elem) for f in find_generic_phi(v)):
                del ds[tag]
                ctx.findings.append(Finding(location, "X", "kept attribute held PHI-shaped text"))
    elif code == "C":
        _clean(ds, elem, ctx, location)
    else:  # pragma: no cover - guidelines validation makes this unreachable
        del ds[tag]


def _process_unlisted(ds: Dataset, elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    """Elements the table does not list: see the module docstring."""
    vr = elem.VR
    if vr == "SQ":
        _recurse(elem, ctx, location, cleaning)
    elif vr == "PN":
        if not _is_empty(elem):
            _empty(ds, elem)
            ctx.findings.append(Finding(location, "Z", "person name outside the table"))
    elif vr in ("DA", "DT"):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=True)
    elif vr == "UI":
        if "retain_uids" not in ctx.guidelines.settings.options:
            _remap_uid(elem, ctx)
    elif vr == "UN" and not _is_empty(elem):
        del ds[elem.tag]  # a public element we cannot interpret
        ctx.findings.append(Finding(location, "X", "unknown public element"))
    elif cleaning and vr in FREE_TEXT_VRS:
        _clean_text(ds, elem, ctx, location, fallback="X")


def _recurse(elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    for i, item in enumerate(elem.value or []):
        _process_dataset(item, ctx, f"{location}[{i}]>", cleaning)


# ---- actions -----------------------------------------------------------------------------------

def _clean(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    vr = elem.VR
    rule = ctx.guidelines.rule_for(elem.tag)
    fallback = ctx.guidelines.resolve_basic(rule, ctx.sop_class) if rule else "X"
    if rule is not None and "xx" in rule.tag.lower():
        # masked groups are curves and overlays: graphics cannot be cleaned with confidence
        del ds[elem.tag]
        ctx.findings.append(Finding(location, "X", "graphics removed"))
    elif vr in ("DA", "DT", "TM"):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=False)
    elif vr == "SQ":
        _recurse(elem, ctx, location, cleaning=True)
    elif vr in FREE_TEXT_VRS or vr in ("PN", "CS", "UR"):
        _clean_text(ds, elem, ctx, location, fallback)
    elif vr in BINARY_VRS:  # binary cannot be cleaned with confidence
        _apply(ds, elem, fallback if fallback != "C" else "X", ctx, location, True)
    elif elem.tag == 0x00080201:  # timezone offset: keep (no identity in it)
        return
    # numbers and codes (CS, DS, IS, AS ...) carry no free text: keep, the sweep still checks them


def _clean_text(ds: Dataset, elem: DataElement, ctx: Context, location: str, fallback: str) -> None:
    values = _str_values(elem)
    if not values:
        return
    cleaned = [clean_descriptor(v, ctx.guidelines.vocabulary, ctx.identifiers) for v in values]
    if all(c == "" for c in cleaned):
        _apply(ds, elem, fallback if fallback in ("X", "Z", "D") else "X", ctx, location, True)
        return
    new = [c for c in cleaned if c] if len(values) > 1 else cleaned
    if new != values:
        ctx.findings.append(Finding(location, "C", "cleaned"))
    elem.value = new if len(new) > 1 else new[0]


def _shift_or_drop_date(ds: Dataset, elem: DataElement, ctx: Context, location: str, outside_table: bool) -> None:
    options = ctx.guidelines.settings.options
    if elem.VR == "TM":
        return  # times of day are kept; only dates move
    if "retain_long_full_dates" in options:
        return
    if "retain_long_modified_dates" not in options:
        if outside_table and not _is_empty(elem):
            _empty(ds, elem)
            ctx.findings.append(Finding(location, "Z", "date outside the table"))
        return
    shift = shift_da if elem.VR == "DA" else shift_dt
    values = _str_values(elem)
    shifted = [shift(v, ctx.date_offset) for v in values]
    if any(s is None for s in shifted):
        _empty(ds, elem)
        ctx.findings.append(Finding(location, "Z", "unparseable date emptied"))
        return
    if values:
        elem.value = shifted if len(shifted) > 1 else shifted[0]
        ctx.dates_shifted = True
        ctx.findings.append(Finding(location, "C", "date shifted"))


def _remap_uid(elem: DataElement, ctx: Context) -> None:
    values = _str_values(elem)
    new = [v if (not v or v in UID_dictionary) else ctx.mapper.uid(v) for v in values]
    if values:
        elem.value = new if len(new) > 1 else new[0]


def _set_dummy(ds: Dataset, elem: DataElement, ctx: Context) -> None:
    vr = elem.VR
    if vr == "UI":
        _remap_uid(elem, ctx)
        if _is_empty(elem):
            elem.value = ctx.mapper.uid("dummy")
        return
    if vr in ("DA", "DT"):
        if "retain_long_modified_dates" in ctx.guidelines.settings.options and not _is_empty(elem):
            _shift_or_drop_date(ds, elem, ctx, "", outside_table=False)
            if not _is_empty(elem):
                return
        elem.value = "19000101" if vr == "DA" else "19000101000000"
        return
    dummies = {"TM": "000000", "AS": "000Y", "CS": "ANONYMIZED", "AE": "ANONYMIZED", "DS": "0", "IS": "0",
               "UR": "urn:deid", "PN": "ANONYMIZED"}
    if vr in dummies:
        elem.value = dummies[vr]
    elif vr in FREE_TEXT_VRS:
        elem.value = "ANONYMIZED"
    elif vr in NUMBER_VRS:
        elem.value = 0
    elif vr in BINARY_VRS:
        elem.value = b"\0\0"
    elif vr == "AT":
        elem.value = 0
    else:
        del ds[elem.tag]


def _empty(ds: Dataset, elem: DataElement) -> None:
    if elem.VR == "SQ":
        elem.value = Sequence()
    elif elem.VR in TEXT_VRS or elem.VR in ("DA", "DT", "TM", "DS", "IS", "AS", "UI"):
        elem.value = ""
    else:
        elem.value = None


def _set(ds: Dataset, tag: BaseTag, vr: str, value: str) -> None:
    ds[tag] = DataElement(tag, vr, value)


def _is_empty(elem: DataElement) -> bool:
    return elem.value is None or elem.value == "" or elem.value == b"" or (
        isinstance(elem.value, (list, Sequence)) and len(elem.value) == 0)


def _str_values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or (elem.VM > 1 and not isinstance(value, (str, bytes))):
        return [str(v) for v in value]
    return [str(value)]


# ---- private data ------------------------------------------------------------------------------

def _has_private(ds: Dataset) -> bool:
    return any(tag >> 16 & 1 for tag in ds.keys())


def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
    out = {}
    for elem in ds:
        if elem.tag.is_private and 0x0010 <= elem.tag.element <= 0x00FF and isinstance(elem.value, (str, bytes)):
            value = elem.value.decode("latin-1") if isinstance(elem.value, bytes) else elem.value
            out[(elem.tag.group, elem.tag.element)] = value.strip()
    return out


def _process_private(ds: Dataset, elem: DataElement, ctx: Context, location: str,
                     creators: dict[tuple[int, int], str]) -> None:
    tag = elem.tag
    if 0x0010 <= tag.element <= 0x00FF:
        return  # creators are dropped afterwards if their block is empty
    keep = False
    creator = creators.get((tag.group, tag.element >> 8))
    code = ctx.guidelines.private_rule.code_under(ctx.guidelines.settings.options)
    if code in ("C", "K") and creator is not None and tag.group > 0x0008:
        entry = ctx.guidelines.safe_private_entry(creator, tag.group, tag.element)
        keep = entry is not None and _private_value_usable(ds, elem, entry.vr)
    if not keep:
        del ds[tag]
        ctx.findings.append(Finding(location, "X", "private attribute"))
        return
    if elem.VR == "SQ":
        _recurse(elem, ctx, location, cleaning=True)
    elif elem.VR in ("DA", "DT"):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=False)
    elif elem.VR == "UI":
        _remap_uid(elem, ctx)
    elif elem.VR == "PN":
        _empty(ds, elem)


def _private_value_usable(ds: Dataset, elem: DataElement, listed_vr: str) -> bool:
    """Keep a safe-listed private value only when we can read it as the VR the list gives."""
    if elem.VR != "UN":
        return True
    vr = listed_vr.split("/")[0] if listed_vr else ""
    if not vr or vr in BINARY_VRS or vr == "SQ":
        return False
    try:
        from pydicom.values import convert_value

        raw = elem.value if isinstance(elem.value, bytes) else b""
        value = convert_value(vr, _RawForConvert(elem.tag, vr, raw))
    except Exception:  # any parse failure: not usable, so it is removed
        return False
    ds[elem.tag] = DataElement(elem.tag, vr, value)
    return True


class _RawForConvert:
    """The minimal raw-element shape pydicom.values.convert_value reads."""

    def __init__(self, tag: BaseTag, vr: str, value: bytes) -> None:
        self.tag, self.VR, self.value, self.length = tag, vr, value, len(value)
        self.is_little_endian, self.is_implicit_VR = True, True
        self.value_tell = 0
        self.is_undefined_length = False


def _drop_empty_private_creators(ds: Dataset) -> None:
    used = {(e.tag.group, e.tag.element >> 8) for e in ds if e.tag.is_private and e.tag.element > 0x00FF}
    for elem in list(ds):
        t = elem.tag
        if t.is_private and t.element <= 0x00FF and (t.group, t.element) not in used:
            del ds[t]


def _drop_orphan_overlays(ds: Dataset, ctx: Context) -> None:
    """An overlay whose data was removed is dropped whole (rows/columns without data are invalid)."""
    by_group: dict[int, list[int]] = {}
    for tag in sorted(ds.keys()):  # one pass over the tags, not one per overlay group
        if 0x6000 <= tag >> 16 < 0x6020:
            by_group.setdefault(tag >> 16, []).append(tag)
    for group in OVERLAY_GROUPS:
        tags = by_group.get(group)
        if tags and (group << 16 | 0x3000) not in ds:
            for t in tags:
                del ds[t]
            ctx.findings.append(Finding(f"({group:04X},xxxx)", "X", "overlay removed"))


# ---- last sweep: the patient's own identifiers anywhere that is left ---------------------------

def _sweep(ds: Dataset, ctx: Context, prefix: str) -> None:
    for elem in list(ds):
        tag = elem.tag
        if tag in PIXEL_TAGS or tag >> 16 == 0x0002:
            continue
        vr = elem.VR
        if vr == "SQ":
            location = prefix + tag_text(tag)
            for i, item in enumerate(elem.value or []):
                _sweep(item, ctx, f"{location}[{i}]>")
            continue
        if vr == "UI" or _is_empty(elem):
            continue
        if vr in BINARY_VRS:
            if isinstance(elem.value, bytes) and len(elem.value) < 1 << 20:
                text = elem.value.decode("latin-1")
                if ctx.identifiers.find(text):
                    del ds[tag]
                    ctx.findings.append(Finding(prefix + tag_text(tag), "SWEEP", "own identifier in binary value removed"))
            continue
        text = "\\".join(_str_values(elem))
        if ctx.pseudonym and text == ctx.pseudonym:
            continue
        if ctx.identifiers.find(text):
            del ds[tag]
            ctx.findings.append(Finding(prefix + tag_text(tag), "SWEEP", "own identifier removed"))


# ---- de-identification attributes and file meta ------------------------------------------------

def _set_deidentification_attributes(ds: Dataset, ctx: Context) -> None:
    g = ctx.guidelines
    ds.PatientIdentityRemoved = "YES"
    applied = ["basic"] + [o for o in OPTIONS if o in g.settings.options]
    ds.DeidentificationMethod = [f"deidkit {__version__}", f"PS3.15 {g.edition} Table E.1-1",
                                 *applied, f"table sha256 {g.sha256[:16]}"]
    items = []
    for key in applied:
        code, meaning = OPTION_CODES[key]
        item = Dataset()  # elements made directly: keyword lookups cost more than the rest here
        item[0x00080100] = DataElement(0x00080100, "SH", code)        # Code Value
        item[0x00080102] = DataElement(0x00080102, "SH", "DCM")       # Coding Scheme Designator
        item[0x00080104] = DataElement(0x00080104, "LO", meaning)     # Code Meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    if ctx.dates_shifted:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    elif "retain_long_full_dates" in g.settings.options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif "LongitudinalTemporalInformationModified" in ds:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def add_clean_pixel_code(ds: Dataset) -> None:
    """Record the Clean Pixel Data Option (CID 7050 113101) once pixels were checked."""
    code, meaning = OPTION_CODES["clean_pixel_data"]
    seq = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if any(getattr(i, "CodeValue", "") == code for i in seq):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
    seq.append(item)
    ds.DeidentificationMethodCodeSequence = seq


def new_file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    """File meta rebuilt from scratch: no source AE title, consistent Media Storage UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta

