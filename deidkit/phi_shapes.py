"""Generic PHI shapes in free text (dates, phone numbers, e-mail, URLs, postal addresses, ID-like
numbers, person-name syntax): `find_generic_phi(text)` and its patterns. Shared by the engine's
text cleaning, Clean Descriptors and --verify (re-exported by deidkit.sweep).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december"]


_GENERIC = [
    ("date", re.compile(r"\b(19|20)\d{2}[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12]\d|3[01])\b")),
    ("date", re.compile(r"\b(0?[1-9]|[12]\d|3[01])[-/.](0?[1-9]|1[0-2])[-/.](19|20)?\d{2}\b")),
    ("date", re.compile(r"\b(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b")),
    ("date", re.compile(r"\b\d{1,2}\s*(" + "|".join(_MONTH_NAMES + _MONTHS) + r")[a-z]*\.?\s*,?\s*(19|20)\d{2}\b", re.I)),
    ("date", re.compile(r"\b(" + "|".join(_MONTH_NAMES + _MONTHS) + r")[a-z]*\.?\s+\d{1,2},?\s+(19|20)\d{2}\b", re.I)),
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")),
    ("url", re.compile(r"\b(https?://|www\.)\S+", re.I)),
    ("phone", re.compile(r"(?<![\w.])(\+\d{1,3}[\s-]?)?(\(?\d{2,5}\)?[\s-]){1,3}\d{3,8}(?![\w.])")),
    ("address", re.compile(r"\b\d{1,5}\s+\w+(\s\w+)?\s+(street|st|road|rd|avenue|ave|lane|ln|drive|dr|blvd|"
                           r"boulevard|way|court|ct|place|pl|square|sq)\b\.?", re.I)),
    ("address", re.compile(r"\b\w+(strasse|straße|str\.|weg|allee|platz|gasse|laan|straat|vej|gatan|"
                           r"rue|via|calle|ulica)\b\.?\s*\d{1,4}", re.I)),
    ("address", re.compile(r"(ул\.|улица|пр\.|проспект)\s*\w+", re.I)),
    ("id", re.compile(r"\b(?=[A-Z0-9-]*\d)[A-Z]{0,4}[-]?\d{5,}[A-Z]?\b", re.I)),
    ("person_name", re.compile(r"\b[^\W\d_]{2,}\^[^\W\d_]{2,}")),
    # a title and a word without digits ("MR XA30" is a modality and a software version); all-caps
    # "MR" without a dot is the modality ("MR HEAD", "MR BRAIN T1 AX"), as in descriptors._TITLE_RE
    ("person_name", re.compile(r"\b(?-i:(?!MR\s))(dr|mr|mrs|ms|prof)\.?\s+[A-Z][a-z]+(?![\d_])", re.I)),
]


@dataclass(frozen=True)
class TextFinding:
    """One span of generic PHI found in text: kind, start and end offsets (end exclusive)."""
    kind: str   # date, email, url, phone, address, id, person_name
    start: int
    end: int


# a decimal number's integer part just before its fractional digits: "3." in "3.000000", "12," in
# "12,345678" (0, or 1-3 digits without a leading zero: "030.1234567" is a phone number, not a decimal)
_DECIMAL_HEAD = re.compile(r"(?:^|[^\w.,])(?:0|[1-9]\d{0,2})[.,]$")


def find_generic_phi(text: str) -> list[TextFinding]:
    """PHI-shaped spans in free text. Conservative: used to decide what must not stay."""
    found = []
    for kind, pattern in _GENERIC:
        for m in pattern.finditer(text):
            if kind == "phone" and sum(c.isdigit() for c in m.group()) < 7:
                continue  # "512 512" is a matrix, not a phone number
            if kind == "id" and m.group().isdigit() and _DECIMAL_HEAD.search(text, 0, m.start()):
                continue  # the fractional digits of a measurement (3.000000 T, 12.345678 ml), not an ID
            found.append(TextFinding(kind, m.start(), m.end()))
    return sorted(found, key=lambda f: (f.start, f.kind))
