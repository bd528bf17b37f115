"""The one free-text cleaner: content items, labels and free-text attributes the table does not list.

Used for TEXT content items and concept-name free text (PS3.3 C.17.3 / C.18), labels (Segment
Label, ROI Name, annotation text) and the public text attributes of
guidelines/unlisted_text_attributes.csv whose action is C. Unlike Clean Descriptors (which keeps
only known imaging words) it keeps the words and removes what identifies:
  - this patient's own identifiers (name parts in any form deidkit.sweep matches, IDs, accession
    number, birth date ...) and every person name found in the dataset (every PN value of the
    original header is learned by `Identifiers.from_dataset`: physicians, operators, observers);
  - person names after a title or role word ("Dr. Hansen", "nurse Jensen", "MrQuistgaard");
  - institution names ("Odense University Hospital", "Rigshospitalet");
  - dates written in text: ISO and YYYYMMDD forms are shifted by the patient's offset
    (`shift_text_date`, the one place that calls the date shift), other spellings removed;
  - phone numbers, e-mail and web addresses, postal addresses, ID-like numbers (accession numbers)
    and code-like strings that switch between letters and digits three times or more.
`clean_free_text` is pure and memoised; `CleanedText.review` lists what still looks like a name in
narrative text (capitalised words mid-sentence that are not imaging words), which the engine
turns into the held-back reason REVIEW_REASON.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .mapping import shift_da
from .sweep import Identifiers, find_generic_phi, matcher_spans

if TYPE_CHECKING:
    from .sweep import _Matcher

# Held-back reason (id "text-review") for narrative text that still looks risky after cleaning.
REVIEW_REASON_ID = "text-review"
REVIEW_REASON = "free text needs review [text-review]: cleaned, but a word may still name someone"

# Labels: cleaned like TEXT (words kept) rather than reduced to the descriptor vocabulary.
LABEL_TAGS = frozenset({
    0x30060026,  # ROI Name
    0x30060085,  # ROI Observation Label
    0x30060002,  # Structure Set Label
    0x30060004,  # Structure Set Name
    0x00620005,  # Segment Label
    0x00620006,  # Segment Description
    0x00700006,  # Unformatted Text Value (annotation text)
    0x00700080,  # Content Label
    0x006A0005,  # Annotation Group Label
    0x30100033,  # User Content Label
})
# Attributes whose text is narrative: what is left is checked for names (review).
NARRATIVE_TAGS = frozenset({0x0040A160})  # Text Value of TEXT content items

_TITLES = (r"dr|drs|mr|mrs|ms|miss|mx|prof|professor|doctor|nurse|sister|technician|technologist|tech|"
           r"radiographer|radiologist|physician|surgeon|resident|fellow|attending|consultant|midwife|"
           r"herr|frau|fr|hr|mme|mlle|sig|sra|sr|dott|dottssa|pt|patient|mother|father|husband|wife|son|"
           r"daughter|by|per|signed|dictated|reviewed|reported|transcribed|cc|attn|contact")
_TITLE_NAME = re.compile(r"\b(?i:" + _TITLES + r")\b\.?:?\s+((?:[A-ZÀ-ÖØ-Þ][\w'’-]*\.?\s*){1,3})")
_INSTITUTION_WORDS = (r"hospital|hospitals|clinic|clinics|klinik|klinikum|kliniken|hôpital|hopital|ospedale|hospitalet|"
                      r"sygehus|sjukhus|sykehus|krankenhaus|ziekenhuis|universitätsklinikum|university|universitet|"
                      r"universität|universite|université|college|institute|institut|infirmary|medical center|"
                      r"medical centre|health centre|health center|healthcare|practice|surgery centre|imaging center")
_INSTITUTION = re.compile(
    r"((?:\b(?i:st\.?|saint|the)\s+)?(?:\b[A-ZÀ-ÖØ-Þ][\w'’.-]*\s+){0,3}\b(?i:" + _INSTITUTION_WORDS + r")\b"
    r"(?:\s+(?i:of|for|de|di|der)\s+[A-ZÀ-ÖØ-Þ][\w'’-]*)?(?:\s+[A-ZÀ-ÖØ-Þ][\w'’-]*){0,2})")
_INSTITUTION_SUFFIX = re.compile(r"\b\w{3,}(?:hospitalet|sygehus|sjukhuset|klinikum|krankenhaus|kliniken|ziekenhuis)\b", re.I)
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s-]?)?(?:\(?\d{2,5}\)?[\s-]){1,4}\d{2,8}(?!\w)")
_CODE_LIKE = re.compile(r"(?<![\w-])[A-Za-z0-9]{6,}(?![\w-])")
_TRANSITION = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")
# Common words that are capitalised mid-sentence without being names (the vocabulary has the
# imaging words); a capitalised word outside both is what review shows.
_COMMON = frozenset("""
a an and are as at be by for from has have in is it no not of on or the to was were with without
i ii iii iv v vi vii viii ix x left right bilateral impression findings conclusion history comparison
technique indication clinical report addendum note see also normal abnormal unremarkable stable new
prior previous follow up recommend recommended recommendation mm cm ml mg kg hu suv dicom
monday tuesday wednesday thursday friday saturday sunday january february march april may june
july august september october november december
emergency department dept radiology oncology cardiology neurology neurosurgery urology gynecology
gynaecology obstetrics pediatrics paediatrics surgery orthopedics orthopaedics pathology hematology
haematology nephrology gastroenterology pulmonology dermatology psychiatry anesthesia anaesthesia
anesthesiology intensive care unit icu ward outpatient inpatient nuclear medicine internal general
medical imaging diagnostic interventional service team board tumor tumour multidisciplinary mdt
english danish german french spanish patient physician doctor nurse radiologist technologist
please note attention warning caution urgent critical result results final preliminary amended
""".split())


@dataclass(frozen=True)
class CleanedText:
    """The cleaned text, how many spans were taken out, and the spans (start, end) of the cleaned
    text that still look like a name (for review; empty for text that is not narrative)."""

    text: str
    removed: int
    review: tuple[tuple[int, int], ...] = ()


def shift_text_date(written: str, days: int | None) -> str:
    """A date written in text, shifted by `days` when it is unambiguous (ISO 2020-03-04,
    2020/03/04, 2020.03.04, 20200304), written back in the same form; '' otherwise (removed).
    The one place text dates are shifted: switch here when the offset gains a time of day."""
    if days is None:
        return ""
    m = re.fullmatch(r"((?:19|20)\d{2})([-/.]?)(\d{1,2})\2(\d{1,2})", written.strip())
    if not m:
        return ""
    year, sep, month, day = m.groups()
    shifted = shift_da(f"{year}{int(month):02d}{int(day):02d}", days)
    if not shifted:
        return ""
    return sep.join((shifted[:4], shifted[4:6], shifted[6:])) if sep else shifted


def clean_free_text(text: str, identifiers: Identifiers, date_offset: int | None,
                    vocabulary: frozenset[str], narrative: bool = False) -> CleanedText:
    """Remove identifying spans from free text (see the module docstring); keep every other word.

    date_offset: days to shift dates written in text (None: remove them). narrative: also list
    what still looks like a name (capitalised non-imaging words mid-sentence) in `review`."""
    if not text or not text.strip():
        return CleanedText(text, 0)
    return _clean_cached(text, identifiers._matcher(), date_offset, vocabulary, narrative)


@functools.lru_cache(maxsize=8192)
def _clean_cached(text: str, matcher: _Matcher, date_offset: int | None, vocabulary: frozenset[str],
                  narrative: bool) -> CleanedText:
    replacements = (_identifier_spans(text, matcher, date_offset, vocabulary)
                    + _pattern_spans(text, vocabulary))
    if not replacements:
        cleaned, removed = text, 0
    else:
        cleaned, removed = _apply(text, replacements)
    review = _review_spans(cleaned, vocabulary) if narrative else ()
    return CleanedText(cleaned, removed, review)


def _identifier_spans(text: str, matcher: _Matcher, date_offset: int | None,
                      vocabulary: frozenset[str]) -> list[tuple[int, int, str]]:
    """(start, end, new text) for this file's identifiers and generic PHI (dates shifted)."""
    replacements: list[tuple[int, int, str]] = []  # (start, end, new text)
    for start, end, kind in matcher_spans(matcher, text):
        if kind == "name":
            start, end = _whole_word(text, start, end)
            if _term_use(text, start, end, vocabulary, matcher):
                continue
        replacements.append((start, end, ""))
    for found in find_generic_phi(text):
        new = shift_text_date(text[found.start:found.end], date_offset) if found.kind == "date" else ""
        replacements.append((found.start, found.end, new))
    return replacements


def _pattern_spans(text: str, vocabulary: frozenset[str]) -> list[tuple[int, int, str]]:
    """(start, end, "") for names after titles, institutions, phone numbers and code-like words."""
    replacements: list[tuple[int, int, str]] = []
    for m in _TITLE_NAME.finditer(text):
        for w in _WORD.finditer(m.group(1)):
            word = w.group()
            if any(c.isdigit() for c in word):
                break  # "MR XA30", "Dr 3": a version or code, not a name (names have no digits)
            if word[0].isupper() and word.lower().strip(".'’-") not in vocabulary and word.lower() not in _COMMON:
                replacements.append((m.start(1) + w.start(), m.start(1) + w.end(), ""))
    for m in _INSTITUTION.finditer(text):
        phrase = m.group(1)
        if any(c.isupper() for c in phrase):
            replacements.append((m.start(1), m.end(1), ""))
    for m in _INSTITUTION_SUFFIX.finditer(text):
        replacements.append((m.start(), m.end(), ""))
    for m in _PHONE.finditer(text):  # also at the end of a sentence ("... tel. +45 3545 1234.")
        if sum(c.isdigit() for c in m.group()) >= 7:
            replacements.append((m.start(), m.end(), ""))
    for m in _CODE_LIKE.finditer(text):
        if len(_TRANSITION.findall(m.group())) >= 3:  # "PHI2X0040A730T", "AB12CD34": an identifier
            replacements.append((m.start(), m.end(), ""))
    return replacements


def _whole_word(text: str, start: int, end: int) -> tuple[int, int]:
    """A name hit widened to the whole word around it ("Quistgaards", "MrQuistgaard" keeps Mr)."""
    while end < len(text) and (text[end].isalpha()) and not (text[end - 1].islower() and text[end].isupper()):
        end += 1
    while start > 0 and text[start - 1].isalpha() and not (text[start - 1].islower() and text[start].isupper()):
        start -= 1
    return start, end


def _term_use(text: str, start: int, end: int, vocabulary: frozenset[str], matcher: _Matcher) -> bool:
    """A name part that is also an imaging word ("Foot", "Long") used as that word: kept, unless a
    title or another name part stands next to it (then it is the person)."""
    word = text[start:end]
    if word.lower() not in vocabulary:
        return False
    before = text[max(0, start - 24):start]
    after = text[end:end + 24]
    if re.search(r"\b(?:" + _TITLES + r")\.?\s*$", before, re.I):
        return False
    neighbours = re.findall(r"[^\W\d_]+", before)[-1:] + re.findall(r"[^\W\d_]+", after)[:1]
    return not any(matcher_spans(matcher, n) and n.lower() not in vocabulary for n in neighbours)


def _apply(text: str, replacements: list[tuple[int, int, str]]) -> tuple[str, int]:
    """Apply non-overlapping replacements (overlaps merge into one removal)."""
    merged: list[list] = []
    for start, end, new in sorted(replacements, key=lambda r: (r[0], -r[1])):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            if end > last[1]:
                last[1], last[2] = end, ""
            elif new == "" and (start, end) != (last[0], last[1]):
                last[2] = last[2] if last[2] else ""
            continue
        merged.append([start, end, new])
    out = []
    pos = 0
    for start, end, new in merged:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    cleaned = re.sub(r"\(\s*\)", "", "".join(out))
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    cleaned = re.sub(r" +([,.;:])", r"\1", cleaned)
    return cleaned.strip(" \t,;:-^_/"), len(merged)


def _review_spans(text: str, vocabulary: frozenset[str]) -> tuple[tuple[int, int], ...]:
    """Capitalised words mid-sentence that are neither imaging words nor common words."""
    spans: list[tuple[int, int]] = []
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or len(word) < 2:
            continue
        if spans and re.fullmatch(r"\s+", text[spans[-1][1]:m.start()]):
            spans.append((m.start(), m.end()))  # the rest of a flagged name ("Karina Blixenfeldt")
            continue
        if len(word) < 3:
            continue
        low = word.lower().strip("'’-")
        if word.isupper() or any(w in vocabulary or w in _COMMON for w in (low, low[:-1], low[:-2])):
            continue  # codes and acronyms; imaging and common words, also in the plural
        if _in_technical_token(text, m.start(), m.end()):
            continue  # part of a path or placeholder ("%SiemensSeq%\\AALScout"): technical
        before = text[:m.start()]
        if not before.strip() or _SENTENCE_END.search(before):
            continue  # first word of a sentence
        previous = _WORD.findall(before)[-1:] or [""]
        if previous[0][:1].isupper() and not re.search(r"\b(?i:" + _TITLES + r")\.?\s*$", before):
            continue  # inside a Title Case heading ("Planar ROI Measurements"); a name after a
            # lower-case word ("seen by Karen") or a title is what stands out
        spans.append((m.start(), m.end()))
    return tuple(spans)


_TECHNICAL_MARKS = re.compile(r"[%\\]")  # Windows-style paths and %placeholders%: never in a name


def _in_technical_token(text: str, start: int, end: int) -> bool:
    """Whether the word text[start:end] sits in a space-free token holding a path separator or a
    %placeholder% mark (a sequence path such as %SiemensSeq%\\ep2d_bold), or underscores and digits
    together (a protocol name such as 58PF_noPAT_ES0p59_BW2222_AP)."""
    left = text.rfind(" ", 0, start) + 1
    right = text.find(" ", end)
    token = text[left:right if right >= 0 else len(text)]
    return bool(_TECHNICAL_MARKS.search(token)) or ("_" in token and any(c.isdigit() for c in token))


def mark_spans(text: str, spans: tuple[tuple[int, int], ...], left: str = "[[", right: str = "]]") -> str:
    """The text with the suspicious spans marked, for the review page (hospital side only)."""
    out, pos = [], 0
    for start, end in spans:
        out += [text[pos:start], left, text[start:end], right]
        pos = end
    out.append(text[pos:])
    return "".join(out)
