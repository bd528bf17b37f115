"""The per-dataset action engine: dataset + guideline table + keyed mapping in, findings out.

`deidentify(ds, context)` applies Table E.1-1 (as resolved by deidkit.guidelines) to every element,
through every nested sequence, to masked groups and private data, then runs the own-identifier
sweep and sets the de-identification attributes. It changes `ds` in place (callers pass a copy
read for the purpose) and does no I/O. Pixel data is not its business (deidkit.pixels).

Where the table is silent the engine fails closed, as README.txt documents:
  person names (PN) are emptied; dates (DA/DT) are shifted like the table's own dates (or emptied);
  UIDs (UI) that are not registered DICOM UIDs are remapped; text inside a sequence that is being
  cleaned is cleaned too; everything else is kept and swept for the patient's own identifiers.
Public text attributes the table does not list follow guidelines/unlisted_text_attributes.csv; free
text in content items and labels goes through deidkit.content / deidkit.text_clean.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import DicomDictionary, keyword_dict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary
from pydicom.valuerep import PersonName

from . import __version__, content, rawkeep
from .csa import clean_csa, clean_ge_protocol, clean_protocol_text
from .guidelines import OPTION_CODES, OPTIONS, Guidelines, Rule, SafePrivate
from .contract import DUMMY_DATE, DUMMY_DATETIME, DUMMY_TIME
from .mapping import Mapper, MomentOffset, patient_key_of, shift_value
from .sweep import Identifiers, clean_descriptor, find_generic_phi, kept_as_term

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
DICOM_UID_ROOT = "1.2.840.10008."
# Every UI attribute whose value is a SOP Class (a kind of object): SOP Class UID, Referenced SOP
# Class UID, Media Storage SOP Class UID, Referenced SOP Class UID in File, Related General ...
SOP_CLASS_UID_TAGS = frozenset(tag for tag, entry in DicomDictionary.items()
                               if entry[0] == "UI" and "SOPClass" in entry[4])
AGE_CAP_YEARS = 90  # HIPAA Safe Harbor: ages of 90 and over are one category, written 090Y


def _date_time_pairs() -> dict[int, int]:
    """Date tag -> its time tag, from pydicom's data dictionary: a DA keyword XDate whose
    keyword with Date -> Time is a TM (Study Date + Study Time, Date of Last Calibration + Time
    of Last Calibration, ...). Shifted together, a time past midnight carries its date."""
    pairs = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr == "DA" and "Date" in keyword:
            time_tag = keyword_dict.get(keyword.replace("Date", "Time"))
            if time_tag is not None and DicomDictionary[time_tag][0] == "TM":
                pairs[tag] = time_tag
    return pairs


DATE_TIME_PAIRS = _date_time_pairs()
_BIRTH_DATE, _BIRTH_TIME = 0x00100030, 0x00100032
_REFERENCE_DATES = (0x00080020, 0x00080021, 0x00080022, 0x00080023)  # Study, Series, Acquisition, Content Date


def _by_tag(item: tuple[int, Any]) -> int:
    """Sort key of a (tag, element) pair of Dataset.items(): the tag as a plain int (BaseTag
    compares in Python)."""
    return item[0].real


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
    moment_offset: MomentOffset = MomentOffset(0, 0)  # days (= date_offset) + seconds, see mapping
    pseudonym: str = ""
    patient_name: str = ""  # the original Patient's Name (PNAME content items naming the patient get the pseudonym)
    findings: list[Finding] = field(default_factory=list)
    dates_shifted: bool = False
    # answers already worked out for these identifiers (set by deidentify; see _TextMemo)
    text_memo: "_TextMemo | None" = field(default=None, repr=False, compare=False)
    # per dataset (id) being walked: date tag -> original values of its paired time (see _pair_times)
    pair_times: dict[int, dict[int, list[str]]] = field(default_factory=dict, repr=False, compare=False)
    age_capped: bool = False
    # top-level tags read_header left as raw bytes (deidkit.rawkeep): the table does nothing to
    # them, so the walk skips them while they are still raw; the sweep still reads them
    raw_kept: frozenset[int] = frozenset()
    raw_nested: bool = False  # items of sequences hold raw elements the table keeps (rawkeep.nested_keeps_raw)
    # what the engine did, counted per (action, reason): no tag, no value (issue 13: no Finding
    # object per element); the hospital-side run log lists the totals (reports.write_action_counts)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class EngineResult:
    """What deidentify did to one dataset: the dataset, findings (the content cleaner's, which
    the review hold reads), hold reason, pseudonym, date offset (days) and the engine's action
    counts per (action, reason)."""
    dataset: Dataset
    findings: list[Finding]
    hold_reason: str | None
    pseudonym: str
    date_offset: int
    counts: dict[tuple[str, str], int] = field(default_factory=dict)


def action_counts(result: EngineResult, pruned: tuple[tuple[int, str], ...] = ()) -> dict[str, int]:
    """What was done to one file's elements as "ACTION reason" -> count (no tag, no value: fit
    for the hospital-side run log): the engine's counts plus the elements dicomio.read_header
    pruned before conversion (deidkit.rawheader: X, with the engine's reasons)."""
    out = {f"{action} {reason}": n for (action, reason), n in sorted(result.counts.items())}
    for _, reason in pruned:
        key = f"X {reason}"
        out[key] = out.get(key, 0) + 1
    return out


def _note(ctx: Context, location: str, action: str, reason: str) -> None:  # noqa: ARG001 (the location is not kept)
    """Count one thing the engine did to an element (ctx.counts); nothing else is kept."""
    key = (action, reason)
    ctx.counts[key] = ctx.counts.get(key, 0) + 1


def tag_text(tag: int) -> str:
    """A tag as "(GGGG,EEEE)", upper-case hex (memoised)."""
    text = _TAG_TEXT.get(tag.real)  # a plain int key: BaseTag compares in Python
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
        # with Clean Structured Content every content item is cleaned (deidkit.content); a
        # document whose text still looks risky is held for review after cleaning
        if "clean_structured_content" not in settings.options and _has_free_text_items(ds):
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
    ctx.patient_name = str(ds.get("PatientName", "") or "")
    ctx.moment_offset = ctx.mapper.moment_offset(patient_key)
    ctx.date_offset = ctx.moment_offset.days
    ctx.identifiers.merge(_identifiers_of(ds, ctx))
    ctx.identifiers.known_words = ctx.guidelines.vocabulary  # never read as a misspelt name
    ctx.text_memo = _text_memo(ctx.identifiers)
    _process_dataset(ds, ctx, "", cleaning=False)
    ctx.pair_times.clear()
    _drop_orphan_overlays(ds, ctx)
    _check_birth_date(ds, ctx)
    _sweep(ds, ctx, "")
    _set_deidentification_attributes(ds, ctx)
    hold = hold or content.review_hold(ctx.findings)
    return EngineResult(ds, ctx.findings, hold, ctx.pseudonym, ctx.date_offset, ctx.counts)


# ---- the walk ----------------------------------------------------------------------------------

# sequences Identifiers.from_dataset reads by keyword (Other Patient IDs, Patient's Insurance Plan Code)
_IDENTIFIER_SEQUENCES = frozenset({0x00101002, 0x00100050})


def _identifiers_of(ds: Dataset, ctx: Context) -> Identifiers:
    """Identifiers.from_dataset(ds), without converting the elements left raw (deidkit.rawkeep):
    they are never what it learns from (no PN, no name, no attribute it reads by keyword).
    When items hold raw elements, the names in sequences are learned as rawheader learns them
    for a pruned sequence (_harvest_names: PN, Patient's Name in another VR, private elements
    named as a person's name: the elements from_dataset's walk learns names from)."""
    if not ctx.raw_kept and not ctx.raw_nested:
        return Identifiers.from_dataset(ds)
    from .rawheader import _harvest_names

    view: dict[Any, Any] = {}
    names: list[str] = []
    for tag, elem in ds.items():
        if type(elem) is RawDataElement and tag.real in ctx.raw_kept:
            continue
        if ctx.raw_nested and isinstance(elem, DataElement) and elem.VR == "SQ" and tag.real not in _IDENTIFIER_SEQUENCES:
            _harvest_names(elem, names)
            continue
        view[tag] = elem
    identifiers = Identifiers.from_dataset(Dataset(view))
    for name in names:
        identifiers.add_name(name)
    return identifiers


def _elements(ds: Dataset, raw_kept: frozenset[int] = frozenset(), skip_raw: bool = False) -> list[DataElement]:
    """list(ds) (every element in tag order, converted) without its per-element __getitem__ when
    every element is converted already (always so for a header read by deidkit.dicomio); the
    raw_kept tags still raw (every raw element with skip_raw: items read with rawkeep's nested
    rule) are left out."""
    elems = [elem for _, elem in sorted(ds.items(), key=_by_tag)]
    plain = [e for e in elems if isinstance(e, DataElement)]
    if len(plain) == len(elems):
        return plain
    if not raw_kept and not skip_raw:
        return list(ds)
    return [e if isinstance(e, DataElement) else ds[e.tag] for e in elems
            if not (isinstance(e, RawDataElement) and (skip_raw or e.tag.real in raw_kept))]


def _process_dataset(ds: Dataset, ctx: Context, prefix: str, cleaning: bool,
                     inherited_creators: dict[tuple[int, int], str] | None = None) -> None:
    has_private = _has_private(ds)
    private_creators = _private_creators(ds) if has_private else {}
    if inherited_creators and has_private:  # items of a private sequence that omit their creator
        private_creators = {**inherited_creators, **private_creators}
    _pair_times(ds, ctx)
    for elem in _elements(ds, ctx.raw_kept if not prefix else frozenset(), skip_raw=bool(prefix) and ctx.raw_nested):
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
        if elem.VR == "AS" and tag in ds:
            _cap_age(ds, ds[tag], ctx, location)
    if has_private:
        _drop_empty_private_creators(ds)


def _apply(ds: Dataset, elem: DataElement, code: str, ctx: Context, location: str, cleaning: bool) -> None:
    tag, vr = elem.tag, elem.VR
    if code == "X":
        del ds[tag]
        _note(ctx, location, "X", "removed")
    elif code == "Z":
        if tag.real in ctx.guidelines.settings_pseudonym_tags():
            _set(ds, tag, vr, ctx.pseudonym)
            _note(ctx, location, "Z", "pseudonym")
        else:
            _empty(ds, elem)
            _note(ctx, location, "Z", "emptied")
    elif code == "D":
        if tag.real in ctx.guidelines.settings_pseudonym_tags() or content.names_the_patient(elem, ctx.patient_name):
            _set(ds, tag, vr, ctx.pseudonym)
        elif vr == "SQ":
            _recurse(elem, ctx, location, cleaning=True)
        else:
            _set_dummy(ds, elem, ctx)
        _note(ctx, location, "D", "replaced")
    elif code == "U":
        if vr == "SQ":
            _recurse(elem, ctx, location, cleaning)
        elif vr == "UI":
            _remap_uid(elem, ctx)
        else:  # a U row whose element came with another VR: fail closed
            del ds[tag]
        _note(ctx, location, "U", "new UID")
    elif code == "K":
        if vr == "SQ":
            _recurse(elem, ctx, location, cleaning)
        elif vr in FREE_TEXT_VRS or vr == "UR":
            # kept by an option, yet free text: a PHI shape (URL, date, phone, ID...) still goes
            # (ID shapes are not judged here: device serial numbers are what an option keeps)
            if any(_phi_shaped(v) for v in _str_values(elem)):
                del ds[tag]
                _note(ctx, location, "X", "kept attribute held PHI-shaped text")
    elif code == "C":
        _clean(ds, elem, ctx, location)
    else:  # pragma: no cover - guidelines validation makes this unreachable
        del ds[tag]


_PHI_SHAPED: dict[str, bool] = {}


def _phi_shaped(text: str) -> bool:
    """find_generic_phi finds a PHI shape other than an ID in text (URL, date, phone ...);
    remembered per distinct short value (a pure function of the text; worker memory, bounded)."""
    hit = _PHI_SHAPED.get(text)
    if hit is None:
        hit = any(f.kind != "id" for f in find_generic_phi(text))
        if len(text) <= _TextMemo.TEXT_LIMIT:
            if len(_PHI_SHAPED) >= _TextMemo.ENTRIES:
                _PHI_SHAPED.clear()
            _PHI_SHAPED[text] = hit
    return hit


def _process_unlisted(ds: Dataset, elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    """Elements the table does not list: see the module docstring."""
    vr = elem.VR
    if vr == "SQ":
        _recurse(elem, ctx, location, cleaning)
    elif vr == "PN":
        if not _is_empty(elem):
            _empty(ds, elem)
            _note(ctx, location, "Z", "person name outside the table")
    elif vr in ("DA", "DT", "TM"):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=True)
    elif vr == "UI":
        if "retain_uids" not in ctx.guidelines.settings.options:
            _remap_uid(elem, ctx)
    elif vr == "UN" and not _is_empty(elem):
        del ds[elem.tag]  # a public element we cannot interpret
        _note(ctx, location, "X", "unknown public element")
    elif vr in FREE_TEXT_VRS:
        # every public text attribute is decided in unlisted_text_attributes.csv (issue 12)
        action = ctx.guidelines.unlisted_text_action(elem.tag)
        if action == "C" and (not cleaning or content.in_content_tree(location)):
            content.clean_text_element(ds, elem, ctx, location, Finding)
        elif action == "C":  # inside a sequence the table cleans: the stricter Clean Descriptors
            _clean_text(ds, elem, ctx, location, fallback="X")
        elif action in ("X", "Z"):
            _apply(ds, elem, action, ctx, location, cleaning)
        elif action is None and cleaning:
            _clean_text(ds, elem, ctx, location, fallback="X")


def _recurse(elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    for i, item in enumerate(elem.value or []):
        _process_dataset(item, ctx, f"{location}[{i}]>", cleaning)


# ---- actions -----------------------------------------------------------------------------------

def _clean(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    vr = elem.VR
    rule = ctx.guidelines.rule_for(elem.tag)
    fallback = _basic_fallback(ctx.guidelines, rule, ctx.sop_class) if rule else "X"
    if rule is not None and "xx" in rule.tag.lower():
        # masked groups are curves and overlays: graphics cannot be cleaned with confidence
        del ds[elem.tag]
        _note(ctx, location, "X", "graphics removed")
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


_FALLBACKS: dict[tuple[int, int, str], tuple[Guidelines, Rule, str]] = {}


def _basic_fallback(guidelines: Guidelines, rule: "Rule", sop_class: str) -> str:
    """guidelines.resolve_basic(rule, sop_class), remembered per (tables, row, SOP Class): it
    parses the row's tag text on every call. Worker memory, bounded."""
    key = (id(guidelines), id(rule), sop_class)
    hit = _FALLBACKS.get(key)
    if hit is not None and hit[0] is guidelines and hit[1] is rule:
        return hit[2]
    code = guidelines.resolve_basic(rule, sop_class)
    if len(_FALLBACKS) >= 4096:
        _FALLBACKS.clear()
    _FALLBACKS[key] = (guidelines, rule, code)
    return code


def _clean_text(ds: Dataset, elem: DataElement, ctx: Context, location: str, fallback: str) -> None:
    values = _str_values(elem)
    if not values:
        return
    if content.uses_free_text_cleaner(elem.tag, location):  # labels and narrative: words kept, identity removed
        content.clean_text_element(ds, elem, ctx, location, Finding)
        return
    memo = ctx.text_memo or _text_memo(ctx.identifiers)
    cleaned = [memo.clean(v, ctx.guidelines.vocabulary, ctx.identifiers) for v in values]
    if all(c == "" for c in cleaned):
        _apply(ds, elem, fallback if fallback in ("X", "Z", "D") else "X", ctx, location, True)
        return
    new = [c for c in cleaned if c] if len(values) > 1 else cleaned
    if new != values:
        _note(ctx, location, "C", "cleaned")
    elem.value = new if len(new) > 1 else new[0]


def _shift_or_drop_date(ds: Dataset, elem: DataElement, ctx: Context, location: str, outside_table: bool) -> None:
    """Move a DA, TM or DT element by the patient's moment offset (mapping.shift_value); a DA
    moves with its paired time (see _pair_times). Unreadable values are emptied."""
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return
    if "retain_long_modified_dates" not in options:
        if outside_table and not _is_empty(elem):
            _empty(ds, elem)
            _note(ctx, location, "Z", "date outside the table")
        return
    values = _str_values(elem)
    times = ctx.pair_times.get(id(ds), {}).get(elem.tag, []) if elem.VR == "DA" else []
    if len(times) != len(values):
        times = [""] * len(values)
    shifted = [shift_value(elem.VR, v, ctx.moment_offset, t) for v, t in zip(values, times, strict=True)]
    if any(s is None for s in shifted):
        _empty(ds, elem)
        _note(ctx, location, "Z", "unparseable date emptied")
        return
    if values:
        elem.value = shifted if len(shifted) > 1 else shifted[0]
        ctx.dates_shifted = True
        _note(ctx, location, "C", "date shifted" if elem.VR != "TM" else "time shifted")


def _pair_times(ds: Dataset, ctx: Context) -> None:
    """Remember, before any element of ds changes, the time of each date that has one in the same
    dataset (DATE_TIME_PAIRS), so the date moves with it. Items of sequences are their own datasets."""
    found: dict[int, list[str]] = {}
    for tag in ds.keys():
        time_tag = DATE_TIME_PAIRS.get(tag.real)
        if time_tag is not None and time_tag in ds:
            time_elem = ds[time_tag]
            if time_elem.VR == "TM":
                found[tag] = _str_values(time_elem)
    if found:
        ctx.pair_times[id(ds)] = found
    else:
        ctx.pair_times.pop(id(ds), None)


def _age_years(value: str) -> float | None:
    """Years an Age String (nnnD/W/M/Y, PS3.5 6.2) stands for; also longer numbers (1100M, 4800W)
    and a bare number (years). None if it holds no number."""
    m = re.match(r"^\s*(\d+)\s*([DWMY]?)", value.upper())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "Y"
    return {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": float(n)}[unit]


def _cap_age(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """Ages of 90 and over become 090Y (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)); an age that
    is no age is emptied (fail closed)."""
    values = _str_values(elem)
    if not values:
        return
    years = [_age_years(v) for v in values]
    if any(y is None for y in years):
        _empty(ds, elem)
        _note(ctx, location, "Z", "unreadable age emptied")
        return
    if any(y >= AGE_CAP_YEARS for y in years):  # type: ignore[operator]
        new = [f"{AGE_CAP_YEARS:03d}Y" if y >= AGE_CAP_YEARS else v for v, y in zip(values, years, strict=True)]  # type: ignore[operator]
        elem.value = new if len(new) > 1 else new[0]
        ctx.age_capped = True
        _note(ctx, location, "C", "age of 90 or over written 090Y")


def _check_birth_date(ds: Dataset, ctx: Context) -> None:
    """A birth date that is still there (a site table keeping or shifting it) must not imply an
    age of 90 or over at this file's dates, nor beside an age capped to 090Y: then it is emptied
    with its time (Patient's Birth Date is Type 2)."""
    birth = ds.get(_BIRTH_DATE)
    if birth is None or _is_empty(birth):
        return
    born = _parse_da(str(birth.value))
    dates = [_parse_da(str(ds[t].value)) for t in _REFERENCE_DATES if t in ds and not _is_empty(ds[t])]
    latest = max((d for d in dates if d is not None), default=None)
    too_old = ctx.age_capped or born is None
    if born is not None and latest is not None:
        years = latest.year - born.year - ((latest.month, latest.day) < (born.month, born.day))
        too_old = too_old or years >= AGE_CAP_YEARS
    if too_old:
        _empty(ds, birth)
        if _BIRTH_TIME in ds:
            del ds[_BIRTH_TIME]
        _note(ctx, tag_text(_BIRTH_DATE), "Z", "birth date implying 90 or over emptied")


def _parse_da(value: str) -> "dt.date | None":
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def uid_is_kept(tag: int, value: str) -> bool:
    """UIDs that name a kind of thing, not a patient or study, are kept as they are: registered
    DICOM UIDs, anything under the DICOM root 1.2.840.10008 (PS3.5 9.1), and the value of any SOP
    Class UID attribute (SOP Class, Referenced / Media Storage / Related General SOP Class UID),
    vendor-private SOP Classes included."""
    return value in UID_dictionary or value.startswith(DICOM_UID_ROOT) or int(tag) in SOP_CLASS_UID_TAGS


def _remap_uid(elem: DataElement, ctx: Context) -> None:
    values = _str_values(elem)
    new = [v if (not v or uid_is_kept(elem.tag, v)) else ctx.mapper.uid(v) for v in values]
    if values:
        elem.value = new if len(new) > 1 else new[0]


def _set_dummy(ds: Dataset, elem: DataElement, ctx: Context) -> None:
    vr = elem.VR
    if vr == "UI":
        _remap_uid(elem, ctx)
        if _is_empty(elem):
            elem.value = ctx.mapper.uid("dummy")
        return
    if vr in ("DA", "DT", "TM"):
        if "retain_long_modified_dates" in ctx.guidelines.settings.options and not _is_empty(elem):
            _shift_or_drop_date(ds, elem, ctx, "", outside_table=False)
            if not _is_empty(elem):
                return
        elem.value = {"DA": DUMMY_DATE, "DT": DUMMY_DATETIME, "TM": DUMMY_TIME}[vr]
        return
    dummies = {"AS": "000Y", "CS": "ANONYMIZED", "AE": "ANONYMIZED", "DS": "0", "IS": "0",
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
    value = elem.value
    return value is None or value == "" or value == b"" or (isinstance(value, (list, Sequence)) and len(value) == 0)


def _str_values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes, PersonName, int, float)):  # one value (VM 1: no VM lookup needed)
        return [str(value)]
    if isinstance(value, (list, tuple)) or (elem.VM > 1 and not isinstance(value, (str, bytes))):
        return [str(v) for v in value]
    return [str(value)]


# ---- private data ------------------------------------------------------------------------------

def _has_private(ds: Dataset) -> bool:
    return any(tag >> 16 & 1 for tag in ds.keys())


def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
    out = {}
    for tag in list(ds.keys()):  # only the creators are looked at (converted)
        if not (tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF):
            continue
        elem = ds[tag]
        if isinstance(elem.value, (str, bytes)):
            value = elem.value.decode("latin-1") if isinstance(elem.value, bytes) else elem.value
            out[(elem.tag.group, elem.tag.element)] = value.strip()
    return out


def _process_private(ds: Dataset, elem: DataElement, ctx: Context, location: str,
                     creators: dict[tuple[int, int], str]) -> None:
    """A private element: kept only as the private tables say (guidelines.private_entry), with
    its disposition applied; deleted when no table keeps it or its value cannot be read as listed.
    Creators are matched as files write them (any case, surrounding spaces, any block 0x10-0xFF),
    at any depth: this runs for the items of every sequence (per-frame functional groups too)."""
    tag = elem.tag
    if 0x0010 <= tag.element <= 0x00FF:
        return  # creators are dropped afterwards if their block is empty
    entry = None
    creator = creators.get((tag.group, tag.element >> 8))
    code = ctx.guidelines.private_rule.code_under(ctx.guidelines.settings.options)
    if code in ("C", "K") and creator is not None and tag.group > 0x0008:
        entry = ctx.guidelines.safe_private_entry(creator, tag.group, tag.element)
        if entry is not None and entry.check in _PROTOCOL_CLEANERS:
            cleaned = _PROTOCOL_CLEANERS[entry.check](elem.value) if isinstance(elem.value, bytes) else None
            if cleaned is None:
                entry = None
            else:
                ds[tag] = DataElement(tag, "OB" if elem.VR == "UN" else elem.VR, cleaned)
                _note(ctx, location, "C", "Siemens protocol header cleaned")
                return
        elif entry is not None and not _private_value_usable(ds, elem, entry.vr):
            entry = None
    if entry is None:
        del ds[tag]
        _note(ctx, location, "X", "private attribute")
        return
    _apply_private(ds, ds[tag], entry, ctx, location, creators)


# vendor protocol headers kept only as deidkit.csa cleans them (research_private.csv check column)
_PROTOCOL_CLEANERS = {"csa": clean_csa, "ascconv": clean_protocol_text, "geprotocol": clean_ge_protocol}


def _apply_private(ds: Dataset, elem: DataElement, entry: SafePrivate, ctx: Context, location: str,
                   creators: dict[tuple[int, int], str] | None = None) -> None:
    """Apply a kept private element's disposition (k keep, h remap UID, o shift date, oi shift a
    date counted in seconds) and its check; what does not fit is deleted (fail closed)."""
    tag, vr, disposition = elem.tag, elem.VR, entry.disposition
    if vr == "SQ":
        if disposition != "k":
            del ds[tag]
            _note(ctx, location, "X", "private sequence with a value disposition")
        else:  # items that omit the private creator (UIH grids) read the sequence's own
            for i, item in enumerate(elem.value or []):
                _process_dataset(item, ctx, f"{location}[{i}]>", True, creators)
        return
    if entry.check == "sequence" or (entry.check == "number" and not _all_numbers(elem)) or (
            entry.check == "token" and not all(_TOKEN.fullmatch(v.strip()) for v in _str_values(elem))):
        del ds[tag]
        _note(ctx, location, "X", "private value is not what the table expects")
        return
    if disposition == "h":
        values = _str_values(elem)
        if vr in BINARY_VRS or not all(_UID_LIKE.fullmatch(v.strip("\0 ")) for v in values):
            del ds[tag]
            _note(ctx, location, "X", "private UID-like value unreadable")
            return
        new = [ctx.mapper.uid(v.strip("\0 ")) for v in values]
        if new:
            elem.value = new if len(new) > 1 else new[0]
        _note(ctx, location, "U", "private UID remapped")
    elif disposition == "o" or vr in ("DA", "DT", "TM"):
        _shift_private_date(ds, elem, ctx, location)
    elif disposition == "oi":
        _shift_private_seconds(ds, elem, ctx, location)
    elif vr == "UI":
        _remap_uid(elem, ctx)
    elif vr == "PN":
        _empty(ds, elem)
    elif vr == "AS":
        _cap_age(ds, elem, ctx, location)
    elif vr in FREE_TEXT_VRS or vr == "UR":
        # kept by the knowledge base, yet text: a PHI shape (URL, date, phone...) still goes
        if any(_phi_shaped(v) for v in _str_values(elem)):
            del ds[tag]
            _note(ctx, location, "X", "kept private attribute held PHI-shaped text")


_UID_LIKE = re.compile(r"[0-9]+(\.[0-9]+)+")
_TOKEN = re.compile(r"[A-Za-z0-9_.*+\-;:>()/]{1,32}")  # one technical code: p2, Tra>Cor(-6.2), +LPH
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _all_numbers(elem: DataElement) -> bool:
    """Every value of the element is a number (a numeric VR, or DS/IS text that parses)."""
    if elem.VR in NUMBER_VRS or elem.VR in ("OF", "OD", "FL", "FD"):
        return True
    if elem.VR in ("DS", "IS") or elem.VR in TEXT_VRS:
        values = _str_values(elem)
        return bool(values) and all(_NUMBER_TEXT.fullmatch(v.strip()) for v in values)
    return False


def _shift_private_date(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """'o': a date or date-time, whatever VR the vendor gave it, shifted like the public dates."""
    options = ctx.guidelines.settings.options
    if elem.VR in ("DA", "DT", "TM") and ({"retain_long_modified_dates", "retain_long_full_dates"} & options):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=False)
        return
    values = _str_values(elem) if elem.VR in TEXT_VRS else None
    if values is not None and "retain_long_full_dates" in options:
        return
    shifted = ([shift_value("DT", v, ctx.moment_offset) for v in values]
               if values and "retain_long_modified_dates" in options else None)
    if not shifted or any(s is None or s == v.strip() for s, v in zip(shifted, values or [], strict=True)):
        del ds[elem.tag]
        _note(ctx, location, "X", "private date removed")
        return
    elem.value = shifted if len(shifted) > 1 else shifted[0]
    ctx.dates_shifted = True
    _note(ctx, location, "C", "private date shifted")


def _shift_private_seconds(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """'oi': a date held as seconds since 1970 (GE), moved by the patient's offset in days."""
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return
    try:
        values = [float(v) for v in _str_values(elem)] if elem.VR not in BINARY_VRS else None
    except ValueError:
        values = None
    if not values or "retain_long_modified_dates" not in options:
        del ds[elem.tag]
        _note(ctx, location, "X", "private date removed")
        return
    delta = ctx.moment_offset.days * 86400 + ctx.moment_offset.seconds
    new = [v + delta for v in values]
    if elem.VR in ("FL", "FD", "OF", "OD"):
        out: list = new
    elif elem.VR == "DS" or elem.VR in TEXT_VRS:
        out = [f"{v:.6g}" if v != int(v) else str(int(v)) for v in new]
    else:
        out = [int(v) for v in new]
    elem.value = out if len(out) > 1 else out[0]
    ctx.dates_shifted = True
    _note(ctx, location, "C", "private date shifted")


def _private_value_usable(ds: Dataset, elem: DataElement, listed_vr: str) -> bool:
    """Keep a listed private value only when we can read it as the VR the list gives."""
    if elem.VR != "UN":
        return True
    vr = listed_vr.split("/")[0] if listed_vr else ""
    if not vr or vr in BINARY_VRS or vr == "SQ":
        return False
    try:
        from pydicom.values import convert_value

        raw = elem.value if isinstance(elem.value, bytes) else b""
        # little endian implicit VR: the value bytes as a private UN element holds them
        value = convert_value(vr, RawDataElement(elem.tag, vr, len(raw), raw, 0, True, True))
    except Exception:  # any parse failure: not usable, so it is removed
        return False
    ds[elem.tag] = DataElement(elem.tag, vr, value)
    return True


def _drop_empty_private_creators(ds: Dataset) -> None:
    tags = [int(t) for t in ds.keys()]  # tags only: no value is converted
    used = {(t >> 16, (t & 0xFFFF) >> 8) for t in tags if t >> 16 & 1 and t & 0xFFFF > 0x00FF}
    for t in tags:
        if t >> 16 & 1 and t & 0xFFFF <= 0x00FF and (t >> 16, t & 0xFFFF) not in used:
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
            _note(ctx, f"({group:04X},xxxx)", "X", "overlay removed")


# ---- last sweep: the patient's own identifiers anywhere that is left ---------------------------

def _sweep(ds: Dataset, ctx: Context, prefix: str, seen: dict[str, bool] | None = None) -> None:
    if seen is None:
        seen = (ctx.text_memo or _text_memo(ctx.identifiers)).found
    raw_kept = ctx.raw_kept if not prefix else frozenset()
    for tag, elem in sorted(ds.items(), key=_by_tag):
        if tag in PIXEL_TAGS or tag >> 16 == 0x0002:
            continue
        if type(elem) is RawDataElement and (tag.real in raw_kept or (prefix and ctx.raw_nested)):
            reason = _sweep_raw(ds, elem, ctx, seen)
        else:
            elem = elem if isinstance(elem, DataElement) else ds[tag]
            if elem.VR == "SQ":
                location = prefix + tag_text(tag)
                for i, item in enumerate(elem.value or []):
                    _sweep(item, ctx, f"{location}[{i}]>", seen)
                continue
            if elem.VR == "UI" or _is_empty(elem):
                continue
            value = elem.value if elem.VR in BINARY_VRS else None
            reason = _sweep_value(tag, elem.VR, value, "\\".join(_str_values(elem)) if value is None else "", ctx, seen)
        if reason:
            del ds[tag]
            _note(ctx, prefix + tag_text(tag), "SWEEP", reason)


def _sweep_raw(ds: Dataset, raw: RawDataElement, ctx: Context, seen: dict[str, bool]) -> str | None:
    """_sweep for a top-level element left raw (deidkit.rawkeep): the same answer, its text
    converted once per distinct value (rawkeep.sweep_view)."""
    vr = raw.VR or ""
    if vr == "UI" or not raw.value:
        return None
    if vr in BINARY_VRS:
        return _sweep_value(raw.tag, vr, raw.value, "", ctx, seen)
    text, empty = rawkeep.sweep_view(raw, ds, _str_values)
    return None if empty else _sweep_value(raw.tag, vr, None, text, ctx, seen)


def _sweep_value(tag: int, vr: str, value: Any, text: str, ctx: Context, seen: dict[str, bool]) -> str | None:
    """Why the sweep removes an element (binary value as bytes, or its text), or None."""
    if value is not None:  # a binary VR
        if isinstance(value, bytes) and len(value) < 1 << 20 and _holds_identifier(
                value.decode("latin-1"), ctx.identifiers, seen):
            return "own identifier in binary value removed"
        return None
    if ctx.pseudonym and text == ctx.pseudonym:
        return None
    if _holds_identifier(text, ctx.identifiers, seen):
        terms = kept_as_term(tag, vr, text, ctx.identifiers, ctx.guidelines.vocabulary)
        if terms:  # a device model or defined term ("MAGNETOM Sola"): removing it would point at the patient
            ctx.identifiers.term_tokens |= terms
            return None
        return "own identifier removed"
    return None


class _TextMemo:
    """Answers of Identifiers.find and clean_descriptor for one set of identifiers.

    Both are pure functions of the identifier sets, the text (and the vocabulary), and the files
    of one series repeat most of their values: each distinct value is worked out once per patient
    instead of once per file. Worker memory only (never written), bounded."""

    TEXT_LIMIT = 256      # longer values are worked out every time (memory stays small)
    ENTRIES = 4096

    def __init__(self) -> None:
        self.found: dict[str, bool] = {}
        self.cleaned: dict[tuple[frozenset[str], str], str] = {}

    def clean(self, text: str, vocabulary: frozenset[str], identifiers: Identifiers) -> str:
        key = (vocabulary, text)
        result = self.cleaned.get(key)
        if result is None:
            result = clean_descriptor(text, vocabulary, identifiers)
            if len(text) <= self.TEXT_LIMIT and len(self.cleaned) < self.ENTRIES:
                self.cleaned[key] = result
        return result


_TEXT_MEMOS: dict[tuple[frozenset[str], frozenset[str], bool], _TextMemo] = {}


def _text_memo(identifiers: Identifiers) -> _TextMemo:
    key = (frozenset(identifiers.name_tokens), frozenset(identifiers.exact), identifiers.patient_name_known)
    memo = _TEXT_MEMOS.get(key)
    if memo is None:
        if len(_TEXT_MEMOS) >= 16:
            _TEXT_MEMOS.clear()
        memo = _TEXT_MEMOS[key] = _TextMemo()
    return memo


def _holds_identifier(text: str, identifiers: Identifiers, seen: dict[str, bool]) -> bool:
    hit = seen.get(text)
    if hit is None:
        hit = bool(identifiers.find(text))
        if len(text) <= _TextMemo.TEXT_LIMIT and len(seen) < _TextMemo.ENTRIES:
            seen[text] = hit
    return hit


# ---- de-identification attributes and file meta ------------------------------------------------

def _set_deidentification_attributes(ds: Dataset, ctx: Context) -> None:
    g = ctx.guidelines
    _set_keyword(ds, 0x00120062, "CS", "YES")  # Patient Identity Removed
    applied = ["basic"] + [o for o in OPTIONS if o in g.settings.options]
    _set_keyword(ds, 0x00120063, "LO", [f"deidkit {__version__}", f"PS3.15 {g.edition} Table E.1-1",  # Method
                                         *applied, f"table sha256 {g.sha256[:16]}"])
    items = []
    for key in applied:
        code, meaning = OPTION_CODES[key]
        # a Dataset made from its elements directly: setting them one by one costs more than the rest
        items.append(Dataset({_CODE_VALUE: DataElement(_CODE_VALUE, "SH", code),
                              _CODING_SCHEME: DataElement(_CODING_SCHEME, "SH", "DCM"),
                              _CODE_MEANING: DataElement(_CODE_MEANING, "LO", meaning)}))
    _set_keyword(ds, 0x00120064, "SQ", Sequence(items))  # De-identification Method Code Sequence
    if ctx.dates_shifted:
        _set_keyword(ds, _LONGITUDINAL, "CS", "MODIFIED")
    elif "retain_long_full_dates" in g.settings.options:
        _set_keyword(ds, _LONGITUDINAL, "CS", "UNMODIFIED")
    elif _LONGITUDINAL in ds:
        _set_keyword(ds, _LONGITUDINAL, "CS", "REMOVED")


_CODE_VALUE, _CODING_SCHEME, _CODE_MEANING = BaseTag(0x00080100), BaseTag(0x00080102), BaseTag(0x00080104)
_LONGITUDINAL = BaseTag(0x00280303)  # Longitudinal Temporal Information Modified


def _set_keyword(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """What `ds.Keyword = value` does (vr is the keyword's dictionary VR), without the keyword lookup."""
    tag = BaseTag(tag)
    if tag not in ds:
        elem = DataElement(tag, vr, value)
    else:
        elem = ds[tag]
        elem.value = value
    ds[tag] = elem


PERSON_REVIEWED = "pixels reviewed by a person"  # a De-identification Method value (--verify reads it)


def add_method_note(ds: Dataset, note: str) -> None:
    """Add `note` (LO, at most 64 characters) once to De-identification Method (0012,0063)."""
    elem = ds.get(0x00120063)
    value = None if elem is None else elem.value
    values = [] if value in (None, "") else [str(value)] if isinstance(value, str) else [str(v) for v in value]
    if note not in values:
        _set_keyword(ds, 0x00120063, "LO", [*values, note])


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
    for tag, vr, value in ((0x00020002, "UI", ds.SOPClassUID), (0x00020003, "UI", ds.SOPInstanceUID),
                           (0x00020010, "UI", transfer_syntax), (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
                           (0x00020013, "SH", IMPLEMENTATION_VERSION)):
        _set_keyword(meta, tag, vr, value)  # Media Storage SOP Class/Instance UID, Transfer Syntax, ...
    return meta

