"""Elements the engine removes whatever they hold, dropped before their values are converted
(issue 19, docs/throughput_design.md step 3 "X: skip the bytes").

Reading a header converts every raw element into a Python value (dicomio._touch_all_values),
then the engine deletes most of them again: Table E.1-1 X attributes and private elements no
private table keeps. `prune_removed` deletes those from the top level of a freshly read dataset
while they are still raw (pydicom's RawDataElement: tag, VR, bytes), so they are never
converted, looked up or walked. Only elements whose removal does not depend on their value are
pruned, and only those no earlier step reads:

- a public element whose resolved action (Guidelines.action_for, for this SOP class and the
  site's options) is X, unless it is a person name (PN), of undefined length, of group 0028 (pixel description), an overlay/curve group, or one of the
  attributes the patient's identifiers are learned from (sweep.Identifiers.from_dataset), the
  date/time pairs the engine reads before it removes anything, the risk table's attributes and
  the few the export reads before the engine (PROTECTED_KEYWORDS);
- a public sequence whose action is X (not in structured reports or documents, whose hold
  decision reads every item), after the names Identifiers.from_dataset would learn from its
  items have been read (converting only those elements) and its items' tag order, groups and
  VR kinds checked;
- a private data element (not a creator) of a block no private table keeps it for
  (Guidelines.safe_private_entry, under the private rule's code), unless it is or may become a
  sequence or the private dictionary names it as a person's name (sweep._names_a_person).

Everything else (and every element of a sequence) goes the usual way. Damage is still found:
the raw checks (dicomio._check_lengths) run before pruning, and here the top-level tag order and
each pruned element's VR kind are checked as dicomio._check_structure checks them, raising
dicomio.Unreadable with the same messages. What the engine would have recorded for a pruned
element is returned as (tag, reason) so the caller can account for it.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from pydicom.datadict import (
    dictionary_has_tag,
    dictionary_VR,
    private_dictionary_description,
    private_dictionary_VR,
    tag_for_keyword,
)
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from . import dicomio, element_checks, rawkeep
from .engine import DOCUMENT_PREFIX, SR_PREFIX
from .guidelines import Guidelines
from .memo import remember
from .sweep import _names_a_person, _text_values

# attributes read before the engine removes anything (Identifiers.from_dataset, person_of,
# engine.deidentify's patient key, hold_reason_for, the output path, the character set)
PROTECTED_KEYWORDS = (
    "PatientName", "OtherPatientNames", "PatientID", "IssuerOfPatientID", "AccessionNumber", "StudyID",
    "MedicalRecordLocator", "PatientInsurancePlanCodeSequence", "OtherPatientIDsSequence", "OtherPatientIDs",
    "PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "PatientMotherBirthName", "RegionOfResidence", "MilitaryRank", "PatientSex",
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "InstanceNumber",
    "SpecificCharacterSet", "Modality", "ImageType", "BurnedInAnnotation", "Manufacturer",
    "ManufacturerModelName", "DirectoryRecordSequence", "DeidentificationMethodCodeSequence",
)
# set by collecting_raw_kept (rawkeep.plan_header): the list prune_removed appends raw-kept tags to
_RAW_KEPT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("deidkit_raw_kept", default=None)


@contextlib.contextmanager
def collecting_raw_kept(into: list[int]) -> Iterator[None]:
    """prune_removed calls inside this block append the tags to leave raw to `into`."""
    token = _RAW_KEPT.set(into)
    try:
        yield
    finally:
        _RAW_KEPT.reset(token)


_NAME_VRS = ("LO", "SH", "UN", "PN", "UC", "LT", "ST")  # the VRs sweep._names_a_person reads a private name from
_PERSON_WORDS = ("patient", "person", "physician", "operator")
_UNDEFINED = 0xFFFFFFFF


@functools.lru_cache(maxsize=16)
def _protected_tags(risk_keywords: tuple[str, ...]) -> frozenset[int]:
    from .engine import _REFERENCE_DATES, DATE_TIME_PAIRS

    tags = {tag_for_keyword(k) for k in PROTECTED_KEYWORDS}
    tags.update(tag_for_keyword(k) for k in risk_keywords)
    tags.update(DATE_TIME_PAIRS)
    tags.update(DATE_TIME_PAIRS.values())
    tags.update(_REFERENCE_DATES)
    return frozenset(t for t in tags if t is not None)


def _public_vr(tag: int, raw_vr: str | None) -> str:
    """The VR pydicom will give the element (hooks.raw_element_vr): the dictionary's for implicit
    VR and for UN (replace_un_with_known_vr); an ambiguous one as written in the dictionary."""
    if raw_vr is not None and raw_vr != "UN":
        return raw_vr
    try:
        return dictionary_VR(tag) if dictionary_has_tag(tag) else (raw_vr or "UN")
    except KeyError:
        return raw_vr or "UN"


@functools.lru_cache(maxsize=65536)
def _private_entry_says_keep(tag: int, creator: str | None) -> bool:
    """The private dictionary calls the element a sequence or a person's name (any spelling of
    its creator that pydicom or the engine may use)."""
    if not creator:
        return False
    for spelling in {creator, creator.strip()}:
        try:
            vr = private_dictionary_VR(tag, spelling)
        except KeyError:
            continue
        if "SQ" in vr:
            return True
        try:
            name = private_dictionary_description(tag, spelling).lower()
        except KeyError:
            continue
        if "name" in name and any(w in name for w in _PERSON_WORDS):
            return True
    return False


@dataclass
class _Pruning:
    """What one prune_removed pass reads for every element: the file's rules in force."""

    guidelines: Guidelines
    sop_class: str
    protected: frozenset[int]
    keep_private_tables: bool
    sequences_prunable: bool
    names: list[str]
    raw_kept: list[int] | None
    creators: dict[tuple[int, int], str] = field(default_factory=dict)
    public_plan: dict[tuple[int, str | None], int] = field(default_factory=dict)


def prune_removed(ds: Dataset, guidelines: Guidelines,
                  names: list[str] | None = None) -> list[tuple[int, str]]:
    """Delete from ds's top level the raw elements the engine removes whatever their value (see
    the module docstring); returns (tag, reason) for each, in tag order. The person names a
    pruned sequence holds (what sweep.Identifiers.from_dataset would learn from it) are appended
    to names (a sequence is pruned only when names is given). Raises
    dicomio.Unreadable (as _check_structure would) for tags out of order or a pruned element
    whose VR is of another kind than the standard's. ds must be as dicomio.read_header has it
    before conversion; elements already converted are left alone. Inside rawkeep.plan_header
    (collecting_raw_kept), the same pass also lists the top-level tags deidkit.rawkeep leaves
    as raw bytes (rawkeep's rules)."""
    elements, numbers = _elements_in_order(ds)
    if 0x00080016 not in ds:
        return []
    pruning = _pruning_for(ds, guidelines, names)
    pruned: list[tuple[int, str]] = []
    for number in numbers:
        reason = _prune_reason(ds, pruning, number, elements[number])
        if reason is not None:
            del ds[elements[number].tag]  # a BaseTag: pydicom's quick way (no Tag() of an int)
            pruned.append((number, reason))
    return pruned


def _elements_in_order(ds: Dataset) -> tuple[dict[int, DataElement | RawDataElement], list[int]]:
    """ds's elements by plain int tag, and the tags judged (groups 0004 and 0008 up); raises
    dicomio.Unreadable when those are out of order."""
    # as _check_structure: stray groups below 0008 (but 0004) are dropped there, not judged by order
    elements = {int(t): e for t, e in ds.items()}  # plain int keys: BaseTag compares in Python
    numbers = [t for t in elements if t >> 16 >= 0x0008 or t >> 16 == 0x0004]
    if numbers != sorted(numbers):  # (distinct tags: sorted means ascending)
        raise dicomio.Unreadable("corrupt: elements out of order (damaged tags)")
    return elements, numbers


def _pruning_for(ds: Dataset, guidelines: Guidelines, names: list[str] | None) -> _Pruning:
    """The rules one pass applies to ds (a sequence is pruned only when names is given)."""
    if names is None:
        names = []
        sequences_allowed = False
    else:
        sequences_allowed = True
    sop_class = str(ds.get("SOPClassUID", "") or "")
    private_code = guidelines.private_rule.code_under(guidelines.settings.options)
    # a structured report's or document's hold decision reads every item (hold_reason_for)
    sequences_prunable = sequences_allowed and not sop_class.startswith((SR_PREFIX, DOCUMENT_PREFIX))
    return _Pruning(guidelines=guidelines, sop_class=sop_class,
                    protected=_protected_tags(tuple(r.keyword for r in guidelines.burned_in_risk)),
                    keep_private_tables=private_code in ("C", "K"), sequences_prunable=sequences_prunable,
                    names=names, raw_kept=_RAW_KEPT.get(), public_plan=_public_plan(guidelines, sop_class))


def _prune_reason(ds: Dataset, pruning: _Pruning, number: int, raw: DataElement | RawDataElement) -> str | None:
    """Why the top-level element number goes ("removed", "private attribute"), or None when it
    stays; private creators are read into pruning.creators, a pruned sequence's names harvested."""
    group, element = number >> 16, number & 0xFFFF
    if group < 0x0008 or group >= 0x5000 and (group < 0x6100 or group >= 0x7F00):
        return None  # file meta, command, stray groups, curves, overlays, pixel data, FFFx
    if group & 1 and element <= 0x00FF:
        if 0x0010 <= element:  # a private creator: read (as the engine does), never pruned
            value = ds[number].value
            if isinstance(value, (str, bytes)):
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                pruning.creators[(group, element)] = text
        return None
    if (raw.VR == "SQ" and not group & 1 and pruning.sequences_prunable
            and number not in pruning.protected and pruning.guidelines.action_for(number, pruning.sop_class) == "X"):
        # Identifiers.from_dataset reads nested names: learned first (from the raw bytes when
        # they are of the plain shape, else from the sequence converted by pydicom)
        _harvest_names(RawSequence(ds, raw) if isinstance(raw, RawDataElement) else raw, pruning.names)
        return "removed"
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes) or raw.length == _UNDEFINED:
        return None
    if group & 1:
        return _private_reason(pruning, number, raw)
    return _public_reason(pruning, number, raw)


def _private_reason(pruning: _Pruning, number: int, raw: RawDataElement) -> str | None:
    """The reason "private attribute" for a raw private element no private table keeps, else None (noting
    the ones rawkeep leaves as raw bytes)."""
    group, element = number >> 16, number & 0xFFFF
    creator = pruning.creators.get((group, element >> 8))
    if raw.VR == "SQ" or _private_entry_says_keep(number, creator):
        return None
    entry = pruning.guidelines.safe_private_entry(creator.strip(), group, element) if (
        pruning.keep_private_tables and creator is not None and group > 0x0008) else None
    if entry is not None:
        if pruning.raw_kept is not None and rawkeep.private_keeps_raw(entry, raw):
            pruning.raw_kept.append(number)
        return None
    return "private attribute"


def _public_reason(pruning: _Pruning, number: int, raw: RawDataElement) -> str | None:
    """The reason "removed" for a raw public element the profile removes (X) whatever its value, else None
    (noting the ones rawkeep leaves as raw bytes); raises dicomio.Unreadable for one whose VR is
    of another kind than the standard's. What does not depend on the value is decided once per
    (tag, VR) for the file's rules (_public_decision)."""
    key = (number, raw.VR)
    decided = pruning.public_plan.get(key)
    if decided is None:
        if len(pruning.public_plan) >= 65536:
            pruning.public_plan.clear()
        decided = pruning.public_plan[key] = _public_decision(pruning, number, raw.VR)
    if decided == _RAW_CANDIDATE:
        if pruning.raw_kept is not None and rawkeep.raw_shape_ok(raw):
            pruning.raw_kept.append(number)
        return None
    if decided == _KINDS_CLASH:
        raise dicomio.Unreadable("corrupt: an element's type does not fit what the standard says it holds "
                                 "(damaged?)")
    return "removed" if decided == _REMOVED else None


# _public_decision's answers: stays (converted), stays raw if its bytes allow (rawkeep), removed,
# damaged (a VR of another kind than the standard's where the profile removes it)
_STAYS, _RAW_CANDIDATE, _REMOVED, _KINDS_CLASH = 0, 1, 2, 3
# (id of the tables, SOP Class) -> (the tables, {(tag, VR as read): answer}): worker memory
_PUBLIC_PLANS: dict[tuple[int, str], tuple[Guidelines, dict[tuple[int, str | None], int]]] = {}


def _public_plan(guidelines: Guidelines, sop_class: str) -> dict[tuple[int, str | None], int]:
    """The remembered _public_decision answers for these tables and SOP Class."""
    key = (id(guidelines), sop_class)
    entry = _PUBLIC_PLANS.get(key)
    if entry is None or entry[0] is not guidelines:
        if len(_PUBLIC_PLANS) >= 64:
            _PUBLIC_PLANS.clear()
        entry = _PUBLIC_PLANS[key] = (guidelines, {})
    return entry[1]


def _public_decision(pruning: _Pruning, number: int, raw_vr: str | None) -> int:
    """What _public_reason does with a raw public element of this tag and VR, its value aside."""
    element = number & 0xFFFF
    if element == 0x0000 or number >> 16 == 0x0028 or number in pruning.protected:
        return _STAYS
    vr = _public_vr(number, raw_vr)
    if "PN" in vr or "SQ" in vr or " or " in vr:
        return _STAYS
    code = pruning.guidelines.action_for(number, pruning.sop_class)
    if code != "X":
        return _RAW_CANDIDATE if rawkeep.public_keeps_raw(pruning.guidelines, number, raw_vr or "", code) else _STAYS
    return _KINDS_CLASH if dicomio._kinds_clash(raw_vr, number) else _REMOVED


def _harvest_raw_names(ds: Dataset, raw: RawDataElement, names: list[str]) -> bool:
    """_harvest_names for a sequence still raw, read from its bytes (element_checks.
    plain_sequence_items: plain shape, every value checked): the same names in the same order,
    converting only the elements that can hold one, as _harvest_names converts them. False
    (names untouched) when the bytes are not of the plain shape or the items hold anything
    _harvest_names would refuse (a VR of another kind than the standard's) or a private element
    that may name a person (whose reading needs its creator): the caller converts the sequence
    and calls _harvest_names."""
    items = element_checks.plain_sequence_items(raw, int(raw.tag))  # a top-level sequence's bound: its tag
    if items is None:
        return False
    value = raw.value
    assert isinstance(value, bytes)  # plain_sequence_items answers only for values in memory
    encoding = ds.original_character_set or ds._character_set  # what Dataset.__getitem__ uses
    found: list[str] = []
    stack = list(items)
    while stack:
        item = stack.pop()
        for node in item:
            number, vr = node.tag, node.vr
            if not number >> 16 & 1 and dicomio._kinds_clash(vr, number):
                return False
            if node.items is not None:
                stack.extend(node.items)
                continue
            if number >> 16 & 1:
                if number & 0xFFFF <= 0x00FF or vr not in _NAME_VRS:
                    continue  # a creator, or a value of a VR _names_a_person never reads
                return False
            if vr != "PN" and number not in (0x00100010, 0x00101001):
                continue
            part = RawDataElement(BaseTag(number), vr, node.end - node.start, value[node.start:node.end],
                                  raw.value_tell + node.start, False, True)
            elem = convert_raw_data_element(part, encoding=encoding, ds=None)
            if elem.value in (None, "", b""):
                continue
            found.extend(_text_values(elem))  # a PN, Patient's Name or Other Patient Names
    names.extend(found)
    return True


# (tag, VR as read) -> (its VR is of another kind than the standard's: dicomio._kinds_clash,
# _harvest_names must look at it: a PN or SQ as pydicom will type it, Patient's Name / Other
# Patient Names in another VR) for a public element; bounded
_PUBLIC_LOOK: dict[tuple[int, str | None], tuple[bool, bool]] = {}


def _public_look(number: int, vr: str | None) -> tuple[bool, bool]:
    """_harvest_names' two questions about a public element, remembered per (tag, VR)."""
    key = (number, vr)
    hit = _PUBLIC_LOOK.get(key)
    if hit is None:
        public = _public_vr(number, vr)
        hit = remember(_PUBLIC_LOOK, key, (dicomio._kinds_clash(vr, number), "PN" in public or "SQ" in public
                                           or number in (0x00100010, 0x00101001)), 16384)
    return hit


class RawSequence(NamedTuple):
    """A top-level sequence still raw (pydicom's RawDataElement) and the dataset it is in."""

    ds: Dataset
    raw: RawDataElement


def _harvest_names(seq: DataElement | RawSequence, names: list[str]) -> None:  # noqa: C901 (_check_structure's checks in order)
    """The names Identifiers.from_dataset learns from a sequence's items (PN elements, Patient's
    Name in another VR, private elements named as a person's name), converting only those; and
    the checks dicomio._check_structure makes on items that need no value (tag order, groups
    that have no place in a stored object, VR kinds). Raises dicomio.Unreadable as it does.
    A sequence still raw is read from its bytes (_harvest_raw_names) when it can be, else
    converted by pydicom first."""
    if isinstance(seq, RawSequence):
        if _harvest_raw_names(seq.ds, seq.raw, names):
            return
        seq = seq.ds[seq.raw.tag]
    stack = [item for item in seq.value or [] if isinstance(item, Dataset)]
    while stack:
        item = stack.pop()
        # (tag as a plain int, element as stored): what get_item gives for values in memory,
        # which every value of an item is
        entries = [(t.real, e) for t, e in item.items()]
        strays = [e for t, e in entries if t < 0x00080000 and t >> 16 != 0x0004]
        for stored in strays:
            value = getattr(stored, "value", b"")
            if isinstance(value, (bytes, str)) and ("^" in value if isinstance(value, str) else b"^" in value):
                raise dicomio.Unreadable("corrupt: element of a group that has no place in a stored object")
        if strays:
            entries = [(t, e) for t, e in entries if t >= 0x00080000 or t >> 16 == 0x0004]
        numbers = [t for t, _ in entries]
        if numbers != sorted(numbers):  # (tags of one item are distinct: sorted means ascending)
            raise dicomio.Unreadable("corrupt: elements out of order (damaged tags)")
        for number, raw in entries:
            group = number >> 16
            if group == 0xFFFF:
                raise dicomio.Unreadable("corrupt: element of a group that has no place in a stored object")
            if type(raw) is RawDataElement and raw.value is None and raw.length != 0:
                raw = item.get_item(number)  # a deferred value (never in an item read from a file)
            vr = getattr(raw, "VR", None)
            may_name = False
            if not group & 1:
                clash, may_name = _public_look(number, vr)
                if clash:
                    raise dicomio.Unreadable("corrupt: an element's type does not fit what the standard says it "
                                             "holds (damaged?)")
            if type(raw) is DataElement and raw.VR == "SQ":
                stack.extend(i for i in raw.value or [] if isinstance(i, Dataset))
                continue
            if group & 1:
                if (number & 0xFFFF) <= 0x00FF or (isinstance(raw, RawDataElement) and raw.VR is not None
                                                   and raw.VR not in _NAME_VRS):
                    continue  # a creator, or a raw value of a VR _names_a_person never reads
            elif not may_name:
                continue
            elem = item[number]  # converted as Dataset.iterall would
            if elem.VR == "SQ":
                stack.extend(i for i in elem.value or [] if isinstance(i, Dataset))
                continue
            if elem.value in (None, "", b""):
                continue
            if elem.VR == "PN" or _names_a_person(elem):
                names.extend(_text_values(elem))
