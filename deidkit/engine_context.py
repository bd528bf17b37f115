"""What the engine works with and hands back, and its small element helpers.

Context (everything but the dataset one file is de-identified with), EngineResult, the counts of
what was done per (action, reason), the VR groups the actions are decided by (PS3.5 6.2), tag
text, reading/emptying/setting element values, and which UIDs are kept or remapped (PS3.15
E.3.9: registered DICOM UIDs and SOP Class UIDs name kinds of things, not patients).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary
from pydicom.valuerep import PersonName

from .guidelines import Guidelines
from .mapping import Mapper, MomentOffset
from .sweep import Identifiers
from .engine_memo import _TextMemo


TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "UR", "PN"}
FREE_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}
BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
DICOM_UID_ROOT = "1.2.840.10008."
# Every UI attribute whose value is a SOP Class (a kind of object): SOP Class UID, Referenced SOP
# Class UID, Media Storage SOP Class UID, Referenced SOP Class UID in File, Related General ...
SOP_CLASS_UID_TAGS = frozenset(tag for tag, entry in DicomDictionary.items()
                               if entry[0] == "UI" and "SOPClass" in entry[4])


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
    # the caller already asked hold_reason_for of this object (deidkit.export_worker, before
    # reading it whole) and it answered None: deidentify does not ask again
    hold_checked: bool = False


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


def uid_is_kept(tag: int, value: str) -> bool:
    """UIDs that name a kind of thing, not a patient or study, are kept as they are: registered
    DICOM UIDs, anything under the DICOM root 1.2.840.10008 (PS3.5 9.1), and the value of any SOP
    Class UID attribute (SOP Class, Referenced / Media Storage / Related General SOP Class UID),
    vendor-private SOP Classes included."""
    return value in UID_dictionary or value.startswith(DICOM_UID_ROOT) or int(tag) in SOP_CLASS_UID_TAGS


def _remap_uid(elem: DataElement, ctx: Context) -> None:
    values = _str_values(elem)
    new = [v if (not v or uid_is_kept(elem.tag, v)) else ctx.mapper.uid(v) for v in values]
    if values and new != values:  # every UID kept: the value stays as it is
        _put(elem, new if len(new) > 1 else new[0])


def _put(elem: DataElement, value: Any) -> None:
    """elem.value = value for a value the engine made (a shifted date, a keyed UID, cleaned
    text), without pydicom's validation of it: with the tool's settings validation only warns,
    and the workers ignore warnings, so it changes nothing but costs a regular expression per
    value. (DataElement.validation_mode is public; the element keeps IGNORE.)"""
    elem.validation_mode = config.IGNORE
    elem.value = value


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
    kind = type(value)
    if kind is str or kind is bytes:  # the usual values: no comparison through Python-level __eq__
        return not value
    if kind is MultiValue:  # compares unequal to "" and b"", and is not a list (as below)
        return False
    return value is None or value == "" or value == b"" or (isinstance(value, (list, Sequence)) and len(value) == 0)


def _str_values(elem: DataElement) -> list[str]:
    value = elem.value
    kind = type(value)
    if kind is str:  # the usual values first, without comparisons through Python-level __eq__
        return [value] if value else []
    if kind is MultiValue and len(value) > 1:  # VM > 1, as below
        return [str(v) for v in value]
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes, PersonName, int, float)):  # one value (VM 1: no VM lookup needed)
        return [str(value)]
    if isinstance(value, (list, tuple)) or (elem.VM > 1 and not isinstance(value, (str, bytes))):
        return [str(v) for v in value]
    return [str(value)]
