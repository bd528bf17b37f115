"""Remembered answers of the engine's text checks, per set of identifiers (worker memory).

Identifiers.find, clean_descriptor and find_generic_phi are pure functions of the text and the
identifiers (and the vocabulary); the files of one series repeat most of their values, so each
distinct value is worked out once per patient instead of once per file. Never written, bounded.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

from .sweep import Identifiers, clean_descriptor, find_generic_phi
from .memo import remember


_PHI_SHAPED: dict[str, bool] = {}


def _phi_shaped(text: str) -> bool:
    """find_generic_phi finds a PHI shape other than an ID in text (URL, date, phone ...);
    remembered per distinct short value (a pure function of the text; worker memory, bounded)."""
    hit = _PHI_SHAPED.get(text)
    if hit is None:
        hit = any(f.kind != "id" for f in find_generic_phi(text))
        if len(text) <= _TextMemo.TEXT_LIMIT:
            remember(_PHI_SHAPED, text, hit, _TextMemo.ENTRIES)
    return hit


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
        # raw values (VR, character set, bytes) the sweep found to hold none of these identifiers
        self.raw_clear: set[tuple[str, Any, bytes]] = set()
        # (tag, VR, text, vocabulary) -> the name parts sweep.kept_as_term lets a value keep
        self.terms: dict[tuple[int, str, str, frozenset[str]], frozenset[str]] = {}

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
        memo = remember(_TEXT_MEMOS, key, _TextMemo(), 16)
    return memo


def _holds_identifier(text: str, identifiers: Identifiers, seen: dict[str, bool]) -> bool:
    """identifiers.find(text) answered once per distinct text and patient. A long text (a vendor
    header repeated in every file of a series) is remembered by its digest: a short key that
    could only equal another text made of NULs, "long" and hex digits, which names nobody."""
    key = text if len(text) <= _TextMemo.TEXT_LIMIT else _long_key(text)
    hit = seen.get(key)
    if hit is None:
        hit = bool(identifiers.find(text))
        if len(seen) < _TextMemo.ENTRIES:
            seen[key] = hit
    return hit


def _binary_holds_identifier(value: bytes, as_text: Callable[[bytes], str], identifiers: Identifiers,
                             seen: dict[str, bool]) -> bool:
    """_holds_identifier(as_text(value), ...) for a binary value (a CSA header, as the sweep reads
    it), a long one remembered by the digest of its bytes: the text view (a decode and a regular-
    expression pass over tens of KB) is built only when the answer is not known yet. The key
    cannot equal a text key: as_text turns NULs into spaces, and _long_key's prefix differs."""
    if len(value) <= _TextMemo.TEXT_LIMIT:
        return _holds_identifier(as_text(value), identifiers, seen)
    key = "\0\0bin\0" + hashlib.blake2b(value, digest_size=16).hexdigest()
    hit = seen.get(key)
    if hit is None:
        hit = bool(identifiers.find(as_text(value)))
        if len(seen) < _TextMemo.ENTRIES:
            seen[key] = hit
    return hit


def _long_key(text: str) -> str:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"\0\0long\0{digest}"


class _BlobMemo:
    """Cleaned vendor protocol headers (Siemens CSA image/series headers, ASCCONV text, GE
    protocol blocks: deidkit.csa), remembered per (cleaner, length, BLAKE2b-128 digest of the
    original bytes, patient): every slice of a series repeats the same series header, whose
    cleaning runs ~1,500 regular-expression searches.

    The cleaners are pure functions of the bytes; the patient (the caller's pseudonym) is in the
    key anyway, so no answer is ever handed to another patient's file (and a cleaner that came to
    depend on the patient's identifiers would stay right). Bounded: at most ENTRIES answers and
    BYTES bytes of cleaned values (cleared whole when full, as the other memos; worker memory,
    never written). Deterministic: a hit is the bytes a fresh cleaning returns."""

    ENTRIES = 256
    BYTES = 16 << 20

    def __init__(self) -> None:
        self.answers: dict[tuple[str, int, bytes, str], bytes | None] = {}
        self.size = 0

    def clean(self, check: str, cleaner: Callable[[bytes], bytes | None], data: bytes, patient: str) -> bytes | None:
        """cleaner(data) for the named check (a key of engine_private._PROTOCOL_CLEANERS)."""
        key = (check, len(data), hashlib.blake2b(data, digest_size=16).digest(), patient)
        if key in self.answers:
            return self.answers[key]
        cleaned = cleaner(data)
        cost = len(cleaned) if cleaned is not None else 0
        if len(self.answers) >= self.ENTRIES or self.size + cost > self.BYTES:
            self.answers.clear()
            self.size = 0
        if cost <= self.BYTES:
            self.answers[key] = cleaned
            self.size += cost
        return cleaned


_BLOB_MEMO = _BlobMemo()
