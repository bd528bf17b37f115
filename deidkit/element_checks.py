"""Checks of the element stream that pydicom reads without complaint (fail closed).

Damaged length fields (a value running past the file's end, or swallowing the elements after
it: PS3.5 6.2, 7.1), VRs of another kind than the data dictionary's (PS3.6), tags out of
ascending order or in groups that have no place in a stored object (PS3.5 7.1), and the forced
conversion of every value (so a corrupt value fails while reading, not while writing). Raises
Unreadable with a neutral reason.
"""
from __future__ import annotations

import functools
import hashlib
import re

from typing import Any

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.hooks import hooks, raw_element_value as _DEFAULT_VALUE_HOOK, raw_element_vr as _DEFAULT_VR_HOOK
from pydicom.uid import UID
from pydicom.valuerep import AMBIGUOUS_VR

from .dicom_types import NestedRule, Unreadable
from .rawindex import RawNode, plain_items
from .memo import remember


def _touch_all_values(ds: Dataset, raw_kept: frozenset[int] = frozenset(), nested: NestedRule | None = None,
                      checked: RawChecked | None = None) -> None:
    """Force pydicom's lazy conversion now so a corrupt value fails here, not while writing;
    the top-level raw_kept tags and the elements of sequence items nested(tag, raw) accepts
    (deidkit.rawkeep) stay raw. checked (only after _check_lengths has checked every raw value
    of ds): collects the elements converted from values whose raw check stands for the
    converted one (see RawChecked), for _check_structure."""
    _convert_plain_elements(ds, raw_kept, checked)
    if not raw_kept and nested is None:
        _touch_item(ds, None)
        return
    _touch_level(ds, lambda tag, raw, owner: tag in raw_kept, nested, checked)


def _touch_item(item: Dataset, nested: NestedRule | None, checked: RawChecked | None = None) -> None:
    """_touch_all_values inside one sequence item (and the items below it)."""
    if nested is None:
        for elem in item.iterall():
            _ = elem.value
        return
    _touch_level(item, nested, nested, checked)


def _touch_level(ds: Dataset, stays_raw: NestedRule, nested: NestedRule | None,
                 checked: RawChecked | None = None) -> None:
    """Convert the elements of one dataset level that stays_raw(tag, raw, ds) does not keep raw,
    and the items of its sequences by the nested rule."""
    store = getattr(ds, "_dict", None)
    encoding: list[Any] = []
    for tag, stored in list(ds.items()):
        if isinstance(stored, DataElement):
            elem = stored
        elif stays_raw(tag.real, stored, ds):
            continue
        else:
            plain = _convert_plain(ds, store, tag, stored, encoding, checked) if isinstance(store, dict) else None
            elem = plain if plain is not None else ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                _touch_item(item, nested, checked)


# Raw elements that Dataset.__getitem__ does more for than convert them: sequences (pixel
# representation handed down), ambiguous VRs (corrected), UN (may be given its dictionary VR,
# possibly one of those), implicit VR (looked up), the character set itself (read in the default
# encoding) and pixel data. (Private tags get their creator attached: _convert_plain does that.)
_NOT_PLAIN_VRS = frozenset(AMBIGUOUS_VR) | {"SQ", "UN"}


def _convert_plain_elements(ds: Dataset, raw_kept: frozenset[int] = frozenset(),
                            checked: RawChecked | None = None) -> None:
    """Convert the top level's plain raw elements as Dataset.__getitem__ does (pydicom's own
    convert_raw_data_element, the same character set), without its bookkeeping: __getitem__ then
    looks the new element up three more times and __setitem__ checks it again, a third of the
    conversion time of a typical header. Everything else is left to ds[tag] (iterall)."""
    store = getattr(ds, "_dict", None)
    if not isinstance(store, dict):
        return
    encoding: list[Any] = []
    for tag, raw in list(store.items()):
        if tag.real not in raw_kept:
            _convert_plain(ds, store, tag, raw, encoding, checked)


def _convert_plain(ds: Dataset, store: dict[Any, Any], tag: Any, raw: Any, encoding: list[Any],
                   checked: RawChecked | None = None) -> DataElement | None:
    """Convert one plain raw element of ds (see _convert_plain_elements) in place and return
    it; None (nothing done) for any other element. encoding: [] on the first call for ds, then
    the character set and its key as __getitem__ computes them (filled here). checked: see
    _touch_all_values."""
    number = tag.real  # plain int comparisons: BaseTag's are Python calls
    if (type(raw) is not RawDataElement or raw.VR is None or raw.VR in _NOT_PLAIN_VRS or raw.value is None
            or number == 0x00080005 or number >= 0x7FE00000):
        return None
    elem = _convert_plain_value(ds, store, tag, raw, encoding)
    if number >> 16 & 1:  # as Dataset.__setitem__ does for a private tag: its block's creator attached
        creator = (number & 0xFFFF0000) | ((number & 0xFFFF) >> 8)
        if creator != number and creator in store:
            elem.private_creator = ds[creator].value
    if checked is not None and raw.is_little_endian and not raw.is_implicit_VR and (
            raw.VR not in _TEXT_VRS_ALL or (raw.value.isascii() and b"\x1b" not in raw.value)):
        checked[id(elem)] = elem
    return elem


def _convert_plain_value(ds: Dataset, store: dict[Any, Any], tag: Any, raw: RawDataElement,
                         encoding: list[Any]) -> DataElement:
    """_convert_plain's conversion (memo of single text values, else pydicom's)."""
    assert raw.VR is not None and raw.value is not None  # _convert_plain's conditions
    if not encoding:  # as __getitem__ computes it for every element
        charset = ds.original_character_set or ds._character_set
        # the memo's key: the character set and pydicom's validation mode (what else the
        # conversion of a text value depends on)
        encoding += [charset, (tuple(charset) if isinstance(charset, list) else charset,
                               pydicom_config.settings.reading_validation_mode)]
    vr, value = raw.VR, raw.value
    if vr not in _MEMO_TEXT_VRS or len(value) > _MEMO_VALUE_LIMIT or not _default_hooks():
        elem = store[tag] = convert_raw_data_element(raw, encoding=encoding[0], ds=ds)
        return elem
    key = (vr, value, encoding[1])
    text = _CONVERTED.get(key)
    if text is None:
        elem = store[tag] = convert_raw_data_element(raw, encoding=encoding[0], ds=ds)
        if type(elem.value) is str or type(elem.value) is UID:  # immutable: safe to hand out again
            remember(_CONVERTED, key, (elem.VR, elem.value), _MEMO_ENTRIES)
        return elem
    # what convert_raw_data_element returns for it: an explicit VR (no UN) is kept as it is
    elem = store[tag] = DataElement(raw.tag, text[0], text[1], raw.value_tell, raw.length == 0xFFFFFFFF,
                                    already_converted=True)
    return elem


# Converted single text values by (VR, bytes, character set): a series repeats most of its
# values (dates, UIDs of the study and series, descriptions), and pydicom's conversion of one
# is the same pure function of those three. Only str and UID results (immutable) are kept;
# multi-valued, person names, numbers and everything else are converted every time. Worker
# memory only, bounded.
_MEMO_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "LO", "SH", "LT", "ST", "UT", "UC", "UR", "UI"})
_MEMO_VALUE_LIMIT = 256
_MEMO_ENTRIES = 65536
_CONVERTED: dict[tuple[str, bytes, Any], tuple[str, Any]] = {}


def _default_hooks() -> bool:
    """pydicom converts raw elements with its own default hooks (nothing registered to change
    conversions): only then is a remembered conversion what it would give."""
    return (hooks.raw_element_value is _DEFAULT_VALUE_HOOK and hooks.raw_element_vr is _DEFAULT_VR_HOOK
            and not hooks.raw_element_kwargs)



def _check_lengths(ds: Dataset, size: int) -> None:
    """A value whose declared length runs past the end of the file means a bogus length: pydicom
    then reads to the end silently, and the rest of the file (names included) would become that
    one value. Checked on the raw elements, before they are converted. A sequence still raw is
    checked from its bytes when they are of the plain shape (rawindex.plain_items: every value
    inside as value_problem says), else converted and its items checked element by element."""
    implicit = bool(getattr(ds, "original_encoding", (False, True))[0])
    _PLAIN_SEQUENCES.clear()  # answers for this header's sequences only (their bytes are held)
    stack = [(ds, _NO_BOUND)]
    while stack:
        current, bound = stack.pop()
        for tag, raw in list(current.items()):
            after = min(bound, int(raw.tag))  # what a damaged length here swallows has higher tags
            if isinstance(raw, RawDataElement):
                if raw.VR == "SQ":
                    if plain_sequence_items(raw, after) is not None:
                        continue  # every value inside checked from the bytes
                    raw = current[tag]  # converted: its items are checked below, as raw elements
                    stack.extend((item, after) for item in raw.value or [] if isinstance(item, Dataset))
                    continue
                if raw.length != 0xFFFFFFFF and raw.value_tell + raw.length > size:
                    raise Unreadable("truncated or bogus length: a value runs past the end of the file")
                if isinstance(raw.value, bytes) and raw.length != 0xFFFFFFFF and len(raw.value) < raw.length:
                    raise Unreadable("truncated or bogus length: a value runs past the end of the file")
                if isinstance(raw.value, bytes) and raw.tag >> 16 != 0x7FE0:
                    vr = raw.VR or _dictionary_vr(raw.tag)
                    problem = _value_problem_memo(vr, raw.value, implicit, after)
                    if problem:
                        raise Unreadable(problem)
            value = getattr(raw, "value", None)
            if isinstance(value, list):  # a sequence: its items are datasets of raw elements
                stack.extend((item, after) for item in value if isinstance(item, Dataset))


def plain_sequence_items(raw: RawDataElement, after: int) -> tuple[tuple[RawNode, ...], ...] | None:
    """The items of a raw sequence (explicit VR little endian, defined length, value in memory)
    from its bytes (rawindex.plain_items), when they are of the plain shape and every value in
    them passes value_problem (each with the bound _check_lengths would give it: the least of
    its tag and its enclosing sequences', the sequence's own being `after`); None otherwise (the
    caller converts it with pydicom, whose items then meet the same checks one by one).
    Remembered for the sequences of the header being read (_check_lengths asks first and empties
    the memo; rawheader's pruning asks again)."""
    value = raw.value
    if (not isinstance(value, bytes) or raw.is_implicit_VR or not raw.is_little_endian
            or raw.length != len(value)):
        return None
    key = id(value)
    hit = _PLAIN_SEQUENCES.get(key)
    if hit is not None and hit[0] is value and hit[1] == after:
        return hit[2]
    items = plain_items(value)
    if items is not None and not _plain_values_pass(value, items, after):
        items = None
    _PLAIN_SEQUENCES[key] = (value, after, items)
    return items


def _plain_values_pass(value: bytes, items: tuple[tuple[RawNode, ...], ...], bound: int) -> bool:
    """Every value in the items passes value_problem with its bound (see plain_sequence_items)."""
    stack = [(item, bound) for item in items]
    while stack:
        item, item_bound = stack.pop()
        for node in item:
            after = min(item_bound, node.tag)
            if node.items is not None:
                stack.extend((sub, after) for sub in node.items)
            elif node.tag >> 16 != 0x7FE0 and _value_problem_memo(node.vr, value[node.start:node.end], False, after):
                return False
    return True


# id(bytes) -> (the bytes, plain_sequence_items' answer): the bytes are held, so the id is theirs;
# emptied by _check_lengths for each header, so it holds at most one header's sequences
_PLAIN_SEQUENCES: dict[int, tuple[bytes, int, tuple[tuple[RawNode, ...], ...] | None]] = {}


# Elements converted from raw values _check_lengths has checked with value_problem, by id (the
# element held, so the id stays its own), whose converted check _converted_value_problem cannot
# find anything the raw one did not: values of the binary and number VRs (the same bytes, or no
# text at all) and text values of plain ASCII without escapes in explicit VR little endian
# (pydicom's conversion only splits them at backslashes and strips padding: no byte the raw
# check did not see, no value longer). tests/test_rawindex.py checks the implication.
RawChecked = dict[int, DataElement]


# value_problem answers for short values: a series repeats most of its values, and the answer is
# a pure function of (VR, bytes, implicit). Worker memory only, bounded.
_PROBLEMS: dict[tuple[str, bytes, bool, int], str | None] = {}
# the bound of a top-level element: every tag may follow
_NO_BOUND = 0xFFFFFFFF
_PROBLEM_VALUE_LIMIT = 256
_DIGEST_FROM = 4096  # (a digest key never equals a value key: those are at most 256 bytes)


def _value_problem_memo(vr: str, value: bytes, implicit: bool, after: int = 0) -> str | None:
    """value_problem, remembered for values of at most _PROBLEM_VALUE_LIMIT bytes, and for
    values of at least _DIGEST_FROM bytes by their SHA-256 (a Siemens CSA series header, ~75 KB
    and the same in every slice of a series, takes 0.7 ms to search for element headers and
    0.06 ms to hash)."""
    key: tuple[str, bytes, bool, int]
    if len(value) >= _DIGEST_FROM:
        key = (vr, b"sha256:" + hashlib.sha256(value).digest(), implicit, after)
    elif len(value) > _PROBLEM_VALUE_LIMIT:
        return value_problem(vr, value, implicit, after)
    else:
        key = (vr, value, implicit, after)
    try:
        return _PROBLEMS[key]
    except KeyError:
        return remember(_PROBLEMS, key, value_problem(vr, value, implicit, after), _MEMO_ENTRIES)


# PS3.5 Table 6.2-1: the longest value (per value of a multi-valued element) each VR allows, in
# characters (bytes for the binary ones). PN: 64 per component group, three groups.
_MAX_VALUE_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
                     "PN": 3 * 64 + 2, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_MULTI_VALUED = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"}
_TEXT_VRS_ALL = set(_MAX_VALUE_LENGTH) | {"UC", "UR", "UT"}
# Bytes no text value holds (ESC, TAB, LF, FF, CR are legal in text; NUL only as padding): an
# element header swallowed by a damaged length field always brings some (its tag's zero bytes).
_BINARY_IN_TEXT = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# An explicit-VR element header of a standard (even) group inside a value: tag, then its VR.
_ELEMENT_HEADER = re.compile(rb"(?s)(?=([\x08\x10\x18\x20\x28\x32\x38\x40\x88]\x00..)"
                             rb"(AE|AS|AT|CS|DA|DS|DT|FD|FL|IS|LO|LT|OB|OW|PN|SH|SL|SQ|SS|ST|TM|UI|UL|UN|US|UT))")
_PATIENT_TAGS_IMPLICIT = (b"\x10\x00\x10\x00", b"\x10\x00\x20\x00", b"\x10\x00\x30\x00")


def value_problem(vr: str, value: bytes, implicit: bool, after: int = 0) -> str | None:
    """Why a raw value cannot be kept as it is, or None. A damaged length field makes a value
    swallow the elements after it (Patient's Name and ID among them) or run longer than its VR
    allows (PS3.5 6.2); then nothing after it can be judged. Checks: text VRs hold no binary
    bytes and no value longer than twice what the VR allows (per value; devices overrun by a
    few characters; values in a multi-byte character set get 4 bytes per character); no value of any VR
    holds what parses as a standard element header (its tag followed by its dictionary VR, or in
    an implicit-VR file the patient's name, ID or birth date tag followed by a length that fits).
    after: a value swallowing what follows it holds only tags above its own and its enclosing
    sequences' (PS3.5 7.1: ascending order), so element headers of tags up to `after` are the
    value's own content (the Siemens CSA header (0029,xx20) embeds (0028,0106) US, (0018,1310) ...);
    0 counts every tag."""
    if vr in _TEXT_VRS_ALL:
        return _text_value_problem(vr, value)
    if len(value) < 8 or vr == "SQ" or value[:4] == b"\xfe\xff\x00\xe0" or (
            vr in ("OB", "OW", "OF", "OD", "OL", "OV") and len(value) > 1 << 20):
        return None  # sequences (also private ones read as UN) hold elements by right
    if _holds_element_header(value, implicit, after):
        return "corrupt: a value holds what reads as further elements (a damaged length field?)"
    return None


def _text_value_problem(vr: str, value: bytes) -> str | None:
    """value_problem for a text VR: no binary bytes, no value longer than twice what the VR allows."""
    body = value.rstrip(b"\0 ") if vr == "UI" else value.rstrip(b"\0")
    if _BINARY_IN_TEXT.search(body):
        return "corrupt: a text value holds binary data (a damaged length field?)"
    limit = _MAX_VALUE_LENGTH.get(vr)
    if limit is not None:
        parts = body.split(b"\\") if vr in _MULTI_VALUED else [body]
        for part in parts:
            # twice the limit (4 bytes a character for multi-byte sets): devices overrun by a
            # few characters (DS of 17+ digits, long LO), which says nothing about the file
            allowed = 2 * limit if part.isascii() and b"\x1b" not in part else 4 * limit + 16
            if len(part.strip(b" ")) > allowed:
                return "corrupt: a value longer than its type allows (a damaged length field?)"
    return None


def _holds_element_header(value: bytes, implicit: bool, after: int = 0) -> bool:
    """True if a value holds what parses as a standard element header: its tag followed by its
    dictionary VR, or (implicit VR) the patient's name, ID or birth date tag with a length that fits."""
    for match in _ELEMENT_HEADER.finditer(value):
        tag = int.from_bytes(match.group(1)[:2], "little") << 16 | int.from_bytes(match.group(1)[2:], "little")
        if tag > after and tag & 0xFFFF and dictionary_has_tag(tag) and \
                match.group(2).decode() in dictionary_VR(tag).split(" or "):
            return True
    if implicit:
        for needle in _PATIENT_TAGS_IMPLICIT:
            if int.from_bytes(needle[:2], "little") << 16 | int.from_bytes(needle[2:], "little") <= after:
                continue
            start = value.find(needle)
            while start != -1:
                if start + 8 <= len(value):
                    length = int.from_bytes(value[start + 4:start + 8], "little")
                    if 0 < length <= len(value) - start - 8 and length < 256:
                        return True
                start = value.find(needle, start + 1)
    return False


_STRING_KIND = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def _vr_kind(vr: str | None) -> str:
    """"text", "number text" (DS, IS), "SQ", "UN" (fits anything) or "binary", for comparing a
    file's VR with the standard's."""
    if not vr or vr == "UN":
        return "UN"
    if vr == "SQ":
        return "SQ"
    if vr in ("DS", "IS"):
        return "number text"
    return "text" if vr in _STRING_KIND else "binary"


def _converted_value_problem(elem: DataElement, implicit: bool, after: int = 0) -> str | None:
    """value_problem for a converted element: text values as the bytes they came from (near
    enough: UTF-8 for non-ASCII), binary values as they are; pixel data and sequences skipped."""
    if elem.tag >> 16 == 0x7FE0 or elem.VR == "SQ":
        return None
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return _value_problem_memo(elem.VR, bytes(value), implicit, after) if elem.VR not in _TEXT_VRS_ALL else None
    if elem.VR not in _TEXT_VRS_ALL or value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return value_problem(elem.VR, text.encode("utf-8", "surrogateescape"), implicit, after)


def _kinds_clash(vr: str | None, tag: int) -> bool:
    """True if an element's VR is of another kind than the standard's: text where it says binary
    or a number, and the other way round (a damaged VR; IS for DS, LO for SH and the like are
    devices' slips and pass); remembered per (VR, tag)."""
    key = (vr, tag)
    hit = _CLASHES.get(key)
    if hit is not None:
        return hit
    kind = _vr_kind(vr)
    clash = kind != "UN" and (standard := _dictionary_kind(tag)) != "UN" and standard != kind
    return remember(_CLASHES, key, clash, 16384)


# _kinds_clash's answers by (VR, tag): asked for every element at every depth, twice.
_CLASHES: dict[tuple[str | None, int], bool] = {}


@functools.lru_cache(maxsize=4096)
def _dictionary_kind(tag: int) -> str:
    """_vr_kind of the standard's VR for a public tag; "UN" when unknown or ambiguous (US or SS ...)."""
    try:
        if not dictionary_has_tag(tag):
            return "UN"
        kinds = {_vr_kind(v.strip()) for v in dictionary_VR(tag).split(" or ")}
    except KeyError:
        return "UN"
    return kinds.pop() if len(kinds) == 1 else "UN"


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag) if dictionary_has_tag(tag) else "UN"
    except KeyError:
        return "UN"


def _check_structure(ds: Dataset, raw_kept: frozenset[int] = frozenset(), nested: NestedRule | None = None,
                     checked: RawChecked | None = None) -> None:
    """Fail closed on a damaged element stream that pydicom reads without complaint.

    A tag changed by damage can turn a patient's name or ID into an element the tables do not
    know; in a real file that shows as tags out of ascending order (pydicom silently sorts them)
    or as groups that have no place in a stored object (command, file meta, odd below 0008; group
    0004 is the DICOMDIR's and Table E.1-1 lists one of its attributes, so it is allowed). Stray
    command, file meta and other groups below 0008 (left by a device in a real CT) are dropped
    instead, as no stored object needs them; group FFFF is damage and holds the file. Every
    value is checked as value_problem says (pydicom converts some elements while reading); the
    top-level raw_kept elements (deidkit.rawkeep) were checked raw by _check_lengths and stay raw,
    and so do the elements of items that _touch_all_values(ds, raw_kept, nested) left raw (it
    runs first and converts every other element: with a nested rule, an element of an item
    still raw here is one the rule keeps raw). An element in checked (filled by
    _touch_all_values after _check_lengths) had its value checked raw, which stands for the
    converted check (RawChecked)."""
    implicit = bool(getattr(ds, "original_encoding", (False, True))[0])
    stack = [(ds, _NO_BOUND)]
    while stack:
        current, bound = stack.pop()
        _drop_stray_groups(current)
        items = list(current.items())  # in the order read from the file
        numbers = [int(tag) for tag, _ in items]  # compared as plain ints: BaseTag compares in Python
        if numbers != sorted(numbers):  # (the tags of one dataset are distinct: sorted means ascending)
            raise Unreadable("corrupt: elements out of order (damaged tags)")
        for (tag, elem), number in zip(items, numbers, strict=True):
            group = number >> 16
            if group == 0xFFFF:
                raise Unreadable("corrupt: element of a group that has no place in a stored object")
            # still raw after _touch_all_values: left raw by it (raw_kept at the top, the nested
            # rule in items; every other raw element at every depth was converted there)
            if type(elem) is RawDataElement and (number in raw_kept if current is ds else nested is not None):
                if not group & 1 and _kinds_clash(elem.VR, number):
                    raise Unreadable("corrupt: an element's type does not fit what the standard says it holds "
                                     "(damaged?)")
                continue
            if not isinstance(elem, DataElement):  # not converted yet: as current[tag] does
                elem = current[tag]
            if not group & 1 and _kinds_clash(elem.VR, number):
                raise Unreadable("corrupt: an element's type does not fit what the standard says it holds "
                                 "(damaged?)")
            after = min(bound, number)  # what a damaged length here swallows has higher tags
            problem = None if checked is not None and checked.get(id(elem)) is elem else _converted_value_problem(
                elem, implicit, after)
            if problem:
                raise Unreadable(problem)
            if elem.VR == "SQ":
                stack.extend((item, after) for item in elem.value or [])


def _drop_stray_groups(current: Dataset) -> None:
    """_check_structure's first step for one dataset: stray command / file meta elements (groups
    below 0008 but 0004) are dropped, never written (pydicom reads the command group apart, so
    their place in the file cannot be told); unless one holds a person name's caret, which says
    damage moved Patient's Name there: then Unreadable (held)."""
    for tag in [t for t in current.keys() if t >> 16 < 0x0008 and t >> 16 != 0x0004]:
        raw = current.get_item(tag)
        value = getattr(raw, "value", b"")
        if isinstance(value, (bytes, str)) and ("^" in value if isinstance(value, str) else b"^" in value):
            raise Unreadable("corrupt: element of a group that has no place in a stored object")
        del current[tag]
