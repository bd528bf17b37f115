"""Clean Descriptors (PS3.15 E.3.5): `clean_descriptor(text, vocabulary, identifiers)` removes what
identifies from a descriptor and keeps the rest as written; `caret_names_someone(chunk, vocabulary)`
says whether it reads 'A^B' as a person's name. Re-exported by deidkit.sweep.
"""
from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from typing import Protocol

from .phi_shapes import find_generic_phi


class PatientIdentifiers(Protocol):
    """What Clean Descriptors reads of a patient's identifiers (deidkit.sweep.Identifiers)."""

    @property
    def name_tokens(self) -> AbstractSet[str]:
        """Folded name parts."""

    @property
    def patient_name_known(self) -> bool:
        """Whether the header named the patient."""

    def find(self, text: str) -> list[str]:
        """The identifiers a text still contains."""



# ---- Clean Descriptors -----------------------------------------------------------------------

# ---- strict form: known words only ----

_NUMBER_RE = re.compile(r"\d{1,3}([.,]\d{1,4})?(%|x)?", re.I)
_TECH_RE = re.compile(r"(?=.*\d)[a-z0-9*]{1,6}", re.I)  # kernels and codes: B70f, T2*, 3D, FC13
_PART_SPLIT = re.compile(r"[/+\-_.:()\[\]^,;=#&]+")


def _safe_piece(piece: str, vocabulary: frozenset[str]) -> tuple[bool, bool]:
    """(acceptable, is a vocabulary word) for one piece of a descriptor."""
    low = piece.lower()
    if low in vocabulary:
        return True, True
    if _NUMBER_RE.fullmatch(piece):
        return True, False
    if _TECH_RE.fullmatch(piece) and sum(c.isdigit() for c in piece) < 4:
        return True, False
    m = re.fullmatch(r"(\d{1,3}(?:[.,]\d{1,4})?)([a-z]+)", low)
    if m and m.group(2) in vocabulary:
        return True, True
    return False, False


def _clean_descriptor_strict(text: str, vocabulary: frozenset[str], identifiers: PatientIdentifiers | None = None) -> str:
    """Keep only known-safe words, short numbers and technical codes; '' if no word is left
    (used when the patient's own name is not known, so no name can be recognised).

    Works on whitespace-separated chunks so 'W/O' or '1.25mm' stay as written; a chunk with any
    unknown piece goes whole. A patient's own identifier goes even if the vocabulary has it.
    """
    # dates, phones, IDs... go before any word is judged
    text = _blank(text, [(found.start, found.end) for found in find_generic_phi(text)])
    kept: list[str] = []
    has_word = False
    for chunk in text.split():
        if identifiers is not None and identifiers.find(chunk):
            continue
        ok, word = _safe_piece(chunk, vocabulary)
        if not ok:
            pieces = [p for p in _PART_SPLIT.split(chunk) if p]
            verdicts = [_safe_piece(p, vocabulary) for p in pieces]
            ok = bool(pieces) and all(v[0] for v in verdicts)
            word = any(v[1] for v in verdicts)
            if not pieces and len(chunk) <= 2:  # lone punctuation such as '-' or '/'
                ok = True
        if ok:
            kept.append(chunk)
            has_word = has_word or word
    return " ".join(kept).strip(" -/.,:") if has_word else ""


_TITLE_RE = re.compile(  # a title before a name; all-caps "MR" without a dot is the modality
    r"\b(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof|Drs)\.?|(?:DR|MRS|MS|PROF|MISS)\.?|MR\.)\s+([^\W\d_][\w'-]*)")
_NAME_WORD = re.compile(r"[A-Z][a-z]+(?:['-][A-Z][a-z]+)?")      # Smith, O'Neil, Smith-Jones
_INITIAL = re.compile(r"[A-Z]\.")                                   # J.
_SPLIT_KEEP = re.compile(r"(\s+)")
_LONG_DIGITS = re.compile(r"\d{5,}")
_PIECES = re.compile(r"[\W_]+")
# a matrix or voxel size (30x30x36, 256x256, 2x2x2mm): dimensions, not an ID, however many digits
_DIMENSIONS = re.compile(r"(?:[1-9]\d{0,3}|0)(?:\.\d{1,3})?(?:x(?:[1-9]\d{0,3}|0)(?:\.\d{1,3})?){1,3}(?:mm|cm|um)?", re.I)
# acquisition parameters written into protocol names (TR2000ms, FA90TR2500, PLD1800, 1200meas,
# 10000ms): each number (at most 5 digits) named by a known parameter before it or a unit after it
_PARAMETER = re.compile(r"(?:(?:TR|TE|TI|TA|FA|PLD|LD|BW|ETL|TD|TF|MB|SMS|b)(?:[1-9]\d{0,4}|0)(?:\.\d{1,3})?"
                        r"(?:ms|us|s|mm|deg|hz)?|(?:[1-9]\d{0,4}|0)(?:\.\d{1,3})?"
                        r"(?:ms|us|mm|deg|hz|meas|meass|slices|slice|sl|dirs|dir|vols|vol|reps|measurements))+", re.I)


def _clean_caret_chunk(chunk: str, vocabulary: frozenset[str]) -> str:
    """'A^B' is a person name in DICOM syntax (SMITH^JOHN) or Siemens' Region^Exam (HEAD^Brain,
    Research^MCBI_TESTING). Parts that are alphabetic words not in the vocabulary go when written
    as a name (Smith) or when every part looks like one (SMITH^JOHN); the rest stays."""
    parts = chunk.split("^")
    unknown = [p.isalpha() and p.lower() not in vocabulary for p in parts]
    all_names = all(u or not p for u, p in zip(unknown, parts, strict=True))
    kept = [p for p, u in zip(parts, unknown, strict=True) if not (u and (all_names or _NAME_WORD.fullmatch(p)))]
    return "^".join(p for p in kept if p)


def _blank_phi_spans(text: str, vocabulary: frozenset[str]) -> tuple[str, bool]:
    """text with generic PHI (not names) and titles before a name blanked; True if any was."""
    found_phi = False
    spans = [(f.start, f.end) for f in find_generic_phi(text) if f.kind != "person_name"]
    for m in _TITLE_RE.finditer(text):
        if m.group(1).lower() not in vocabulary:
            spans.append((m.start(), m.end()))
    if spans:
        text, found_phi = _blank(text, spans), True
    return text, found_phi


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """text with each span (start, end) replaced by one space; overlapping or touching spans (a
    date that is also ID-shaped: '20200630') are merged first, so no cut lands inside a word."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + " " + text[end:]
    return text


def _id_like(piece: str) -> bool:
    """An ID, accession number or compact date: five digits in a row, or 7+ characters with 4+
    digits; not a matrix size (30x30x36) or acquisition parameters (TR2000ms, 1200meas)."""
    if _DIMENSIONS.fullmatch(piece) or _PARAMETER.fullmatch(piece):
        return False
    return bool(_LONG_DIGITS.search(piece)) or (len(piece) >= 7 and sum(c.isdigit() for c in piece) >= 4)


def _identifying_chunks(chunks: list[str], identifiers: PatientIdentifiers | None) -> list[bool]:
    """Per chunk: True when it holds one of the patient's identifiers, or an ID, accession number
    or date (five digits in a row, or a piece of 7+ characters with 4+ digits)."""
    drop = [False] * len(chunks)
    for i, chunk in enumerate(chunks):
        if identifiers is not None and identifiers.find(chunk):
            drop[i] = True
        elif any(_id_like(piece) for piece in _PIECES.split(chunk)):  # an ID, accession or date
            drop[i] = True
    return drop


def caret_names_someone(chunk: str, vocabulary: frozenset[str]) -> bool:
    """Whether Clean Descriptors reads 'A^B' as naming a person (it would remove a part of it):
    SMITH^JOHN, Smith^CT yes; HEAD^Brain, Research^MCBI (Siemens Region^Exam) no. --verify asks
    this too, so deid_tool's own output is judged as it was cleaned."""
    return _clean_caret_chunk(chunk, vocabulary) != chunk


def clean_descriptor(text: str, vocabulary: frozenset[str], identifiers: PatientIdentifiers | None = None) -> str:
    """Clean Descriptors (PS3.15 E.3.5): remove what identifies, keep the rest as written.

    Removed: PHI shapes (dates, phone numbers, e-mail, URLs, postal addresses, ID-like numbers),
    person names in DICOM syntax (SMITH^JOHN; Siemens' Region^Exam such as HEAD^Brain stays), a title with the name after it ("Dr Smith"; all-caps "MR"
    without a dot is the modality), the patient's own identifiers (any chunk holding one), runs of
    two or more capitalised words none of which is a known imaging word ("John Smith"), any chunk
    with five digits in a row or a part of seven characters with four digits (IDs such as
    PHI1X0040A730, accession numbers, compact dates), a
    capitalised word with an initial ("Smith J."), and, when something identifying was found, any
    remaining capitalised unknown word (a name beside a date is likely). Kept: protocol words,
    abbreviations, sequence names and technical tokens ("t1_mprage_sag_p2_iso", "ep2d_bold_moco",
    "Axial EPI-FMRI (Interleaved I to S)", "MR BRAIN T1 AX"). Returns '' when nothing with a letter
    or digit is left. vocabulary: known imaging words (lower case), never read as names.
    When the patient's name is not known (no identifiers, or a header without Patient's Name) the
    strict form runs instead: only vocabulary words, short numbers and technical codes stay.
    """
    if identifiers is None or not identifiers.name_tokens or not identifiers.patient_name_known:
        # without the patient's name nothing tells a surname from a protocol word: known words only
        return _clean_descriptor_strict(text, vocabulary, identifiers)
    text, found_phi = _blank_phi_spans(text, vocabulary)
    chunks = [_clean_caret_chunk(c, vocabulary) if "^" in c else c for c in text.split()]
    chunks = [c for c in chunks if c]
    drop = _identifying_chunks(chunks, identifiers)
    found_phi = found_phi or any(drop)

    def unknown_name(i: int) -> bool:
        c = chunks[i].strip(",;:()")
        low = c.lower()
        return bool(_NAME_WORD.fullmatch(c)) and low not in vocabulary and not (
            low.endswith("s") and low[:-1] in vocabulary)  # plurals: Sequences

    for i in range(len(chunks)):
        if not unknown_name(i):
            continue
        run_next = i + 1 < len(chunks) and unknown_name(i + 1)
        run_prev = i > 0 and unknown_name(i - 1)
        initial = (i + 1 < len(chunks) and _INITIAL.fullmatch(chunks[i + 1].strip(",;"))) or \
                  (chunks[i].endswith(",") and i + 1 < len(chunks) and re.fullmatch(r"[A-Z]\.?", chunks[i + 1]))
        if run_next or run_prev or initial:
            drop[i] = True
            if initial:
                drop[i + 1] = True
    if found_phi:
        for i in range(len(chunks)):
            if unknown_name(i):
                drop[i] = True
    kept = " ".join(c for c, d in zip(chunks, drop, strict=True) if not d)
    kept = re.sub(r"\(\s*\)|\[\s*\]", " ", kept)
    kept = " ".join(kept.split()).strip(" -/.,:;")
    return kept if re.search(r"[^\W_]", kept) else ""
