"""Elements the engine keeps as they are, left as their raw bytes (issue 19, docs/throughput_design.md
step 3 "K ... keep raw, no conversion" and step 5 "write kept elements by copying their raw bytes").
Decided in rawheader.prune_removed's one pass over the raw top level (plan_header).

After deidkit.rawheader has pruned what the engine removes whatever it holds, most of what is
left in a real header is numbers, codes and vendor-private values the tables keep unchanged.
`plan_header` names the top-level ones whose fate does not depend on their value, so that
read_header leaves them as pydicom RawDataElements (no conversion), the engine's table walk
skips them (engine.Context.raw_kept), the sweep reads them through a per-worker memo of
(VR, character set, bytes) -> text (sweep_view, converted by pydicom's own
convert_raw_data_element on a miss, never stored back), and the header encoder writes their
bytes as they came (dicomio._raw_element_bytes: same transfer syntax, VR and even length).

An element stays raw only when all of these hold (anything else goes the usual way):
- explicit VR written in the file, not UN, SQ or an ambiguous VR, defined and even length,
  value in memory, a fixed-size VR whose length is a multiple of its size, text only when it
  is ASCII without escape sequences (every character set reads it the same way; anything else
  is converted and re-encoded as before, so a value that cannot be written back still fails);
- public: not a protected attribute (rawheader.PROTECTED_KEYWORDS, the date/time pairs, the
  risk table's), not group 0002/0028 or a curve/overlay group, not a group length, and
    - not in the table: CS, AE, DS, IS, AT, binary numbers, OB/OW/OF/OD/OL/OV, and free text
      (LO, SH, ST, LT, UT, UC) that unlisted_text_attributes.csv does not clean or remove;
    - K: the same but free text (kept text is still checked for PHI shapes);
    - C (not a masked group): DS, IS, AT and binary numbers (numbers carry no free text);
- private: a block a private table keeps the element for (disposition k, no check), and a VR
  that needs no action (not UI, PN, AS, dates, free text, UR);
- inside sequence items (nested_keeps_raw, engine.Context.raw_nested): the same rules but
  never free text (items of a cleaned sequence have their text cleaned), private elements only
  under a creator written in the item itself; the
  names Identifiers.from_dataset learns from sequences are then learned as for a pruned
  sequence (rawheader._harvest_names), so no raw element is converted for it.
The sweep (engine._sweep) still reads every one of them, and the last net searches the written
bytes. DEIDKIT_RAW_KEEP=0 in the environment (or RAW_KEEP = False) turns this off: every value
is converted and re-encoded as before (the differential test compares both).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.valuerep import AMBIGUOUS_VR

from .guidelines import Guidelines, SafePrivate
from .memo import remember

RAW_KEEP = os.environ.get("DEIDKIT_RAW_KEEP", "1") != "0"

_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8, "AT": 4,
                 "OF": 4, "OD": 8, "OL": 4, "OV": 8, "OW": 2}
_PLAIN = frozenset({"CS", "AE", "DS", "IS", "OB", *_NUMBER_SIZES})
_FREE_TEXT = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
_NUMBERS_ONLY = frozenset({"DS", "IS", "AT", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})
_PRIVATE_NO_ACTION = frozenset({"CS", "AE", "DS", "IS", "OB", *_NUMBER_SIZES})
_UNDEFINED = 0xFFFFFFFF
_NOT_RAW = frozenset(AMBIGUOUS_VR) | {"UN", "SQ"}
_TEXT = frozenset({"CS", "AE", "DS", "IS"}) | _FREE_TEXT


def raw_shape_ok(raw: Any) -> bool:
    """The element is a RawDataElement whose bytes can be copied as they are (see the module
    docstring: explicit VR, defined even length, value in memory, whole fixed-size values)."""
    if type(raw) is not RawDataElement:
        return False
    vr, length, value = raw.VR, raw.length, raw.value
    if vr is None or vr in _NOT_RAW or length == _UNDEFINED or length % 2 or not isinstance(value, bytes):
        return False
    if len(value) != length:
        return False
    if vr in _TEXT:  # text kept as bytes only when every character set reads it the same: ASCII, no escapes
        return value.isascii() and b"\x1b" not in value
    size = _NUMBER_SIZES.get(vr)
    return size is None or length % size == 0


def public_keeps_raw(guidelines: Guidelines, tag: int, vr: str, code: str | None) -> bool:
    """The engine does nothing to this public element (table code `code` for the file's SOP
    Class) but sweep it (module docstring rules)."""
    if code is None:
        if vr in _PLAIN:
            return True
        return vr in _FREE_TEXT and guidelines.unlisted_text_action(tag) in (None, "K")
    if code == "K":
        return vr in _PLAIN
    if code == "C":
        rule = guidelines.rule_for(tag)
        return vr in _NUMBERS_ONLY and rule is not None and "xx" not in rule.tag.lower()
    return False


_NESTED_PLANS: dict[tuple[int, str], tuple[Guidelines, dict[tuple[int, str], bool]]] = {}


def nested_keeps_raw(guidelines: Guidelines, sop_class: str) -> Callable[[int, Any, Dataset], bool]:
    """For elements inside sequence items: (tag, raw, item) -> leave raw. Public elements of the
    VRs the engine never changes at any depth (numbers, DS, IS, AT, CS, AE, binary; not free
    text, which items of a cleaned sequence clean), with the same table rules as the top level
    (public_keeps_raw); private elements as at the top level (private_keeps_raw), with a
    creator in the item itself; decisions remembered per (tables, SOP Class, tag, VR)."""
    entry = _NESTED_PLANS.get((id(guidelines), sop_class))
    if entry is None or entry[0] is not guidelines:
        if len(_NESTED_PLANS) >= 64:
            _NESTED_PLANS.clear()
        entry = _NESTED_PLANS[(id(guidelines), sop_class)] = (guidelines, {})
    decided = entry[1]
    keep_private = guidelines.private_rule.code_under(guidelines.settings.options) in ("C", "K")
    last: list[Any] = [None, {}]  # the item whose creators were read last, and its creators
    # (creator, tag, VR) -> the private table keeps it with no value action (private_keeps_raw
    # but for raw_shape_ok, which keeps asks first); bounded
    kept_private: dict[tuple[str, int, str], bool] = {}

    def private(tag: int, raw: Any, item: Dataset) -> bool:
        if not keep_private or tag & 0xFFFF <= 0x00FF or tag >> 16 <= 0x0008 or raw.VR not in _PRIVATE_NO_ACTION:
            return False
        if last[0] is not item:
            last[0], last[1] = item, _item_creators(item)
        creator = last[1].get((tag >> 16, (tag & 0xFFFF) >> 8))
        if creator is None:
            return False
        key = (creator, tag, raw.VR)
        answer = kept_private.get(key)
        if answer is None:
            found = guidelines.safe_private_entry(creator, tag >> 16, tag & 0xFFFF)
            answer = remember(kept_private, key, found is not None and found.disposition == "k" and not found.check,
                              16384)
        return answer

    def keeps(tag: int, raw: Any, item: Dataset) -> bool:
        if tag >> 16 & 1:
            return raw_shape_ok(raw) and private(tag, raw, item)
        key = (tag, raw.VR)
        answer = decided.get(key)
        if answer is None:
            if type(raw) is not RawDataElement:
                return False
            group = tag >> 16
            answer = (group >= 0x0008 and not 0x5000 <= group < 0x6100 and group < 0x7F00 and tag & 0xFFFF != 0
                      and raw.VR not in _FREE_TEXT
                      and public_keeps_raw(guidelines, tag, raw.VR or "", guidelines.action_for(tag, sop_class)))
            remember(decided, key, answer, 16384)
        return answer and raw_shape_ok(raw)

    return keeps


def _item_creators(item: Dataset) -> dict[tuple[int, int], str]:
    """The private creators of one item as the engine reads them (engine._private_creators)."""
    out = {}
    for tag in list(item.keys()):
        if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            value = item[tag].value
            if isinstance(value, (str, bytes)):
                out[(tag >> 16, tag & 0xFFFF)] = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    return out


def private_keeps_raw(entry: SafePrivate, raw: Any) -> bool:
    """A private element a private table keeps (entry) with no value action: disposition k, no
    check, a VR that needs none, and bytes that can be copied (raw_shape_ok)."""
    return entry.disposition == "k" and not entry.check and raw_shape_ok(raw) and raw.VR in _PRIVATE_NO_ACTION


# (VR, character set, value) -> the text the sweep reads ("" for an empty value): a series
# repeats most kept values, so each distinct one is converted once per worker. Bounded.
_TEXT_MEMO: dict[tuple[str, Any, bytes], tuple[str, bool]] = {}
_TEXT_MEMO_ENTRIES = 65536
_TEXT_MEMO_VALUE_LIMIT = 1024


def converted(raw: RawDataElement, ds: Dataset) -> DataElement:
    """The DataElement pydicom makes of raw in ds (as Dataset.__getitem__ converts it), not stored."""
    encoding = ds.original_character_set or ds._character_set
    return convert_raw_data_element(raw, encoding=encoding, ds=ds)


def sweep_view(raw: RawDataElement, ds: Dataset, str_values: Any) -> tuple[str, bool]:
    """(text, is_empty) of a raw element as engine._sweep reads a converted one: the values
    joined by backslashes (str_values(elem)); memoised by (VR, character set, bytes)."""
    value = raw.value if isinstance(raw.value, bytes) else b""
    charset = ds.original_character_set
    key_charset = tuple(charset) if isinstance(charset, list) else charset
    key = (raw.VR or "", key_charset, value)
    hit = _TEXT_MEMO.get(key)
    if hit is not None:
        return hit
    elem = converted(raw, ds)
    v = elem.value
    empty = v is None or v == "" or v == b"" or (isinstance(v, list) and len(v) == 0)
    result = ("" if empty else "\\".join(str_values(elem)), empty)
    if len(value) <= _TEXT_MEMO_VALUE_LIMIT:
        remember(_TEXT_MEMO, key, result, _TEXT_MEMO_ENTRIES)
    return result


def plan_header(ds: Dataset, guidelines: Guidelines, names: list[str] | None = None
                ) -> tuple[list[tuple[int, str]], frozenset[int], Callable[[int, Any, Dataset], bool] | None]:
    """The export's step between the raw checks and conversion in dicomio.read_header: prune
    what the engine removes whatever it holds (rawheader.prune_removed, names learned into
    names), naming in the same pass the top-level elements to leave raw; with the rule for
    elements inside sequence items (nested_keeps_raw; None when RAW_KEEP is off)."""
    from . import rawheader

    raw_kept: list[int] = []
    if not RAW_KEEP:
        return rawheader.prune_removed(ds, guidelines, names), frozenset(), None
    with rawheader.collecting_raw_kept(raw_kept):
        pruned = rawheader.prune_removed(ds, guidelines, names)
    nested = nested_keeps_raw(guidelines, str(ds.get("SOPClassUID", "") or "")) if 0x00080016 in ds else None
    return pruned, frozenset(raw_kept), nested
