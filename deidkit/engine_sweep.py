"""The last sweep: the patient's own identifiers anywhere the table walk left them.

Every element left (at every depth, raw ones included) is searched for the patient's names and
IDs (deidkit.sweep.Identifiers); one that holds them is removed, unless it is a device model or
defined term that only shares a word with them.
"""
from __future__ import annotations

import re

from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from . import rawkeep
from .sweep import kept_as_term, short_numbers
from .engine_context import (BINARY_VRS, PIXEL_TAGS, Context, _is_empty, _note, _str_values, tag_text)
from .engine_memo import _TextMemo, _binary_holds_identifier, _holds_identifier, _text_memo


# ---- last sweep: the patient's own identifiers anywhere that is left ---------------------------

def _sweep(ds: Dataset, ctx: Context, prefix: str, seen: dict[str, bool] | None = None) -> None:
    memo = ctx.text_memo or _text_memo(ctx.identifiers)
    if seen is None:
        seen = memo.found
    raw_kept = ctx.raw_kept if not prefix else frozenset()
    nested_raw = bool(prefix) and ctx.raw_nested
    charset: Any = _UNREAD
    # in any order (no answer depends on another element's): no sort per item of every sequence
    for tag, elem in list(ds.items()):
        number = tag.real  # plain int arithmetic: BaseTag's operators are Python calls
        if number in PIXEL_TAGS or number >> 16 == 0x0002:
            continue
        if type(elem) is RawDataElement and (nested_raw or number in raw_kept):
            if charset is _UNREAD:  # the key _sweep_raw remembers clear values by, read once per dataset
                charset = _charset_key(ds)
            if type(elem.value) is bytes and (elem.VR or "", charset, elem.value) in memo.raw_clear:
                continue  # known to hold none of these identifiers (only _sweep_raw's None answers are there)
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


_UNREAD = object()


def _charset_key(ds: Dataset) -> Any:
    """The dataset's character set (pydicom's original_character_set: a str or a list of Python
    encodings) as part of a memo key: hashable, whatever a damaged file made of it."""
    charset = ds.original_character_set
    if charset is None or type(charset) is str:
        return charset
    try:
        return tuple(str(c) for c in charset)
    except TypeError:  # not iterable
        return repr(charset)


def _sweep_raw(ds: Dataset, raw: RawDataElement, ctx: Context, seen: dict[str, bool]) -> str | None:
    """_sweep for a top-level element left raw (deidkit.rawkeep): the same answer, its text
    converted once per distinct value (rawkeep.sweep_view)."""
    vr = raw.VR or ""
    if vr == "UI" or not raw.value:
        return None
    if vr in BINARY_VRS:
        return _sweep_value(raw.tag, vr, raw.value, "", ctx, seen)
    clear = (ctx.text_memo or _text_memo(ctx.identifiers)).raw_clear
    key = (vr, _charset_key(ds), raw.value)
    if type(raw.value) is bytes and key in clear:
        return None
    text, empty = rawkeep.sweep_view(raw, ds, _str_values)
    if empty:
        return None
    reason = _sweep_value(raw.tag, vr, None, text, ctx, seen)
    if reason is None and type(raw.value) is bytes and len(raw.value) <= _TextMemo.TEXT_LIMIT and not _holds_identifier(
            text, ctx.identifiers, seen) and len(clear) < _TextMemo.ENTRIES:
        clear.add(key)  # holds none of this patient's identifiers: the answer is None, with no side effect
    return reason


_CONTROL_RUNS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def binary_as_text(value: bytes) -> str:
    """A binary value as the text the sweep searches: Latin-1, each run of control bytes (binary
    numbers, NUL padding) one space. No name holds a control character, so a run only ever
    separates words, as a space does; the text to search is far shorter (a Siemens CSA header)."""
    return _CONTROL_RUNS.sub(" ", value.decode("latin-1"))


def _sweep_value(tag: int, vr: str, value: Any, text: str, ctx: Context, seen: dict[str, bool]) -> str | None:
    """Why the sweep removes an element (binary value as bytes, or its text), or None."""
    if value is not None:  # a binary VR
        if isinstance(value, bytes) and len(value) < 1 << 20 and _binary_holds_identifier(
                value, binary_as_text, ctx.identifiers, seen):
            return "own identifier in binary value removed"
        return None
    if ctx.pseudonym and text == ctx.pseudonym:
        return None
    if vr in ("IS", "DS") and short_numbers(text):
        return None
    if _holds_identifier(text, ctx.identifiers, seen):
        terms = _kept_as_term(tag, vr, text, ctx)
        if terms:  # a device model or defined term ("MAGNETOM Sola"): removing it would point at the patient
            ctx.identifiers.term_tokens |= terms
            return None
        return "own identifier removed"
    return None


def _kept_as_term(tag: int, vr: str, text: str, ctx: Context) -> frozenset[str]:
    """sweep.kept_as_term for this file's identifiers, remembered per (tag, VR, text) with the
    other answers for the same identifiers (engine_memo._TextMemo): the per-frame items of an
    enhanced multi-frame object repeat the same terms thousands of times. A pure function of
    its arguments; the caller only adds what it returns to the identifiers' term tokens."""
    memo = ctx.text_memo or _text_memo(ctx.identifiers)
    key = (int(tag), vr, text, ctx.guidelines.vocabulary)
    hit = memo.terms.get(key)
    if hit is None:
        hit = frozenset(kept_as_term(tag, vr, text, ctx.identifiers, ctx.guidelines.vocabulary))
        if len(text) <= _TextMemo.TEXT_LIMIT and len(memo.terms) < _TextMemo.ENTRIES:
            memo.terms[key] = hit
    return hit
