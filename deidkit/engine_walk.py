"""The table walk: every element of a dataset, through every nested sequence, by its row.

Applies the action codes of PS3.15 Table E.1-1 (X, Z, D, K, C, U as deidkit.guidelines resolves
them for the SOP class) and, where the table is silent, the fail-closed rules of the engine's
module docstring; private elements go to deidkit.engine_private, dates and ages to
deidkit.engine_dates, free text to deidkit.content. Overlays whose data went are dropped whole.
"""
from __future__ import annotations

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from . import content
from .guidelines import Guidelines, Rule
from .contract import DUMMY_DATE, DUMMY_DATETIME, DUMMY_TIME
from .engine_context import (BINARY_VRS, FREE_TEXT_VRS, NUMBER_VRS, PIXEL_TAGS, Context, Finding, _by_tag, _empty, _is_empty, _note, _put, _remap_uid,
                             _set, _str_values, tag_text)
from .engine_dates import _PAIRED_DATES, _cap_age, _pair_times, _shift_or_drop_date
from .engine_memo import _phi_shaped, _text_memo
from .engine_private import _apply_private, _drop_empty_private_creators, _has_private, _kept_entry, _private_creators


OVERLAY_GROUPS = range(0x6000, 0x6020, 2)


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
    if prefix and ctx.raw_nested and _all_kept_raw(ds):
        ctx.pair_times.pop(id(ds), None)  # all the walk below would do to such an item
        return
    has_private = _has_private(ds)
    private_creators = _private_creators(ds) if has_private else {}
    if inherited_creators and has_private:  # items of a private sequence that omit their creator
        private_creators = {**inherited_creators, **private_creators}
    _pair_times(ds, ctx)
    action_for, sop_class = ctx.guidelines.action_for, ctx.sop_class
    for elem in _elements(ds, ctx.raw_kept if not prefix else frozenset(), skip_raw=bool(prefix) and ctx.raw_nested):
        tag = elem.tag
        number = tag.real  # plain int arithmetic: BaseTag's properties are Python calls
        if number >> 16 == 0x0002 or number in PIXEL_TAGS:
            continue
        location = prefix + tag_text(tag)
        if number >> 16 & 1:
            _process_private(ds, elem, ctx, location, private_creators)
            continue
        if not number & 0xFFFF:  # group lengths are recomputed or omitted on write
            del ds[tag]
            continue
        code = action_for(tag, sop_class)
        if code == "X":  # _apply's X inline: most rows of a header full of identifiers
            del ds[tag]
            _note(ctx, location, "X", "removed")
            continue
        if code is None:
            _process_unlisted(ds, elem, ctx, location, cleaning)
        else:
            _apply(ds, elem, code, ctx, location, cleaning)
        if elem.VR == "AS" and tag in ds:
            _cap_age(ds, ds[tag], ctx, location)
    if has_private:
        _drop_empty_private_creators(ds)


def _all_kept_raw(item: Dataset) -> bool:
    """The walk has nothing to do in this sequence item: every element is still raw (deidkit.
    rawkeep: the table keeps it as it is) but for private creators already converted whose
    block holds elements (the walk passes over those and drops only creators of empty blocks),
    and no date has a paired time (_pair_times would convert the time). Per-frame functional
    group items of enhanced multi-frame objects are mostly such items."""
    if item.keys() & _PAIRED_DATES:
        return False
    creators: list[tuple[int, int]] = []
    used: set[tuple[int, int]] = set()
    for tag, elem in item.items():
        number = tag.real
        if number >> 16 & 1:
            if number & 0xFFFF <= 0x00FF:
                if number & 0xFFFF < 0x0010 or type(elem) is not DataElement:
                    return False  # not a creator (the walk removes it), or a raw one (it converts those)
                creators.append((number >> 16, number & 0xFFFF))
                continue
            used.add((number >> 16, (number & 0xFFFF) >> 8))
        if type(elem) is not RawDataElement:
            return False
    return all(c in used for c in creators)


def _process_private(ds: Dataset, elem: DataElement, ctx: Context, location: str,
                     creators: dict[tuple[int, int], str]) -> None:
    """A private element: kept only as the private tables say (engine_private), with its
    disposition applied; the items of a private sequence kept whole are walked like any item,
    with the sequence's creators (items that omit the private creator, UIH grids, read them)."""
    entry = _kept_entry(ds, elem, ctx, location, creators)
    if entry is None:
        return
    elem = ds[elem.tag]
    if elem.VR == "SQ" and entry.disposition == "k":
        for i, item in enumerate(elem.value or []):
            _process_dataset(item, ctx, f"{location}[{i}]>", True, creators)
        return
    _apply_private(ds, elem, entry, ctx, location)


def _apply(ds: Dataset, elem: DataElement, code: str, ctx: Context, location: str, cleaning: bool) -> None:
    """Apply one action code of Table E.1-1 (PS3.15 E.1: X remove, Z empty, D dummy, U new UID,
    K keep, C clean) to elem of ds, in place."""
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
        _replace(ds, elem, ctx, location)
    elif code == "U":
        if vr == "SQ":
            _recurse(elem, ctx, location, cleaning)
        elif vr == "UI":
            _remap_uid(elem, ctx)
        else:  # a U row whose element came with another VR: fail closed
            del ds[tag]
        _note(ctx, location, "U", "new UID")
    elif code == "K":
        _keep(ds, elem, ctx, location, cleaning)
    elif code == "C":
        _clean(ds, elem, ctx, location)
    else:  # pragma: no cover - guidelines validation makes this unreachable
        del ds[tag]


def _replace(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """D: the patient's pseudonym where the element names the patient, the items of a sequence
    cleaned, else a dummy value of its VR."""
    tag, vr = elem.tag, elem.VR
    if tag.real in ctx.guidelines.settings_pseudonym_tags() or content.names_the_patient(elem, ctx.patient_name):
        _set(ds, tag, vr, ctx.pseudonym)
    elif vr == "SQ":
        _recurse(elem, ctx, location, cleaning=True)
    else:
        _set_dummy(ds, elem, ctx)
    _note(ctx, location, "D", "replaced")


def _keep(ds: Dataset, elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    """K: kept; the items of a sequence walked, free text still removed when PHI-shaped."""
    vr = elem.VR
    if vr == "SQ":
        _recurse(elem, ctx, location, cleaning)
    elif vr in FREE_TEXT_VRS or vr == "UR":
        # kept by an option, yet free text: a PHI shape (URL, date, phone, ID...) still goes
        # (ID shapes are not judged here: device serial numbers are what an option keeps)
        if any(_phi_shaped(v) for v in _str_values(elem)):
            del ds[elem.tag]
            _note(ctx, location, "X", "kept attribute held PHI-shaped text")


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
        _process_unlisted_text(ds, elem, ctx, location, cleaning)


def _process_unlisted_text(ds: Dataset, elem: DataElement, ctx: Context, location: str, cleaning: bool) -> None:
    """A public text attribute the table does not list: as unlisted_text_attributes.csv decides
    (issue 12); cleaned where no row decides it inside a sequence the table cleans."""
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
    fallback, masked = _clean_plan(ctx.guidelines, elem.tag.real, ctx.sop_class)
    if masked:
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
_CLEAN_PLANS: dict[tuple[int, int, str], tuple[Guidelines, str, bool]] = {}


def _clean_plan(guidelines: Guidelines, tag: int, sop_class: str) -> tuple[str, bool]:
    """What C does with a public tag, decided once per (tables, tag, SOP Class): the Basic
    Profile's fallback code of its row ("X" without a row) and whether the row is a masked group
    (curves, overlays: removed whole). Worker memory, bounded."""
    key = (id(guidelines), tag, sop_class)
    hit = _CLEAN_PLANS.get(key)
    if hit is not None and hit[0] is guidelines:
        return hit[1], hit[2]
    rule = guidelines.rule_for(tag)
    fallback = _basic_fallback(guidelines, rule, sop_class) if rule else "X"
    masked = rule is not None and "xx" in rule.tag.lower()
    if len(_CLEAN_PLANS) >= 16384:
        _CLEAN_PLANS.clear()
    _CLEAN_PLANS[key] = (guidelines, fallback, masked)
    return fallback, masked


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
    elif _plain_text(elem):  # unchanged text: setting it again would only validate it again
        return
    _put(elem, new if len(new) > 1 else new[0])


def _plain_text(elem: DataElement) -> bool:
    """The value is plain text (str, or a MultiValue of str): setting the same text back leaves
    it exactly as it is. Not person names (PersonName keeps its original bytes until set)."""
    value = elem.value
    return elem.VR != "PN" and (type(value) is str or (isinstance(value, MultiValue) and all(type(v) is str for v in value)))


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


def _drop_orphan_overlays(ds: Dataset, ctx: Context) -> None:
    """An overlay whose data was removed is dropped whole (rows/columns without data are invalid)."""
    by_group: dict[int, list[int]] = {}
    for tag in ds.keys():  # one pass over the tags, not one per overlay group (plain ints: no sort needed)
        number = tag.real
        if 0x6000 <= number >> 16 < 0x6020:
            by_group.setdefault(number >> 16, []).append(number)
    for group in OVERLAY_GROUPS:
        tags = by_group.get(group)
        if tags and (group << 16 | 0x3000) not in ds:
            for t in tags:
                del ds[t]
            _note(ctx, f"({group:04X},xxxx)", "X", "overlay removed")
