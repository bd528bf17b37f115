"""The catalogue of every --verify rule (id, category, severity, meaning): the one place they are
listed. A finding can only be made with a rule id from here (`make` raises KeyError otherwise), so
`deid_tool --verify --list-rules`, README.txt's "Verify rules" section and the findings agree.

Severity (issue 17): FAIL = an identifying value is there; REVIEW = a person should look (an image
at risk not yet looked at, an ambiguous text, a delivery-level doubt). A value the profile the
files declare keeps is neither: no finding at all. A few rules are "FAIL/REVIEW": the meaning says
when each applies.
"""
from __future__ import annotations

from dataclasses import dataclass

FAIL, REVIEW = "FAIL", "REVIEW"
CSV_HEADER = ("file", "location", "rule", "severity", "detail")


@dataclass(frozen=True)
class VerifyRule:
    """One rule of the catalogue. id is '<category>:<check>'."""

    id: str
    severity: str   # FAIL, REVIEW or FAIL/REVIEW
    meaning: str

    @property
    def category(self) -> str:
        """The rule category: the part of the id before the colon."""
        return self.id.split(":", 1)[0]


CATEGORY_WORDS = {
    "names": "person names", "ids": "IDs", "dates": "dates and times", "addresses": "addresses / contact data",
    "private": "private data", "paths": "file or folder names", "burned-in": "burned-in text",
    "uids": "original UIDs", "text": "free text", "sequences": "sequence contents", "devices": "device identity",
    "bytes": "bytes outside the data elements", "identity": "de-identification declaration",
    "files": "non-DICOM, special or unreadable files", "completeness": "completeness against the manifest",
}

# Attribute categories an element rule is reported under (what the attribute is, by its dictionary
# VR and keyword): see elements.category_of.
ELEMENT_CATEGORIES = ("names", "ids", "dates", "addresses", "uids", "devices", "sequences", "text")

_TABLE = [
    # -- what Table E.1-1 says about an attribute, per category --
    *[(f"{c}:attribute-not-removed", FAIL, f"an attribute of kind '{CATEGORY_WORDS[c]}' the table removes (X) still holds data")
      for c in ELEMENT_CATEGORIES],
    *[(f"{c}:attribute-not-emptied", FAIL, f"an attribute of kind '{CATEGORY_WORDS[c]}' the table empties (Z) still holds data")
      for c in ELEMENT_CATEGORIES],
    *[(f"{c}:dummy-looks-real", FAIL, f"an attribute of kind '{CATEGORY_WORDS[c]}' the table replaces by a dummy (D) holds "
       "a value shaped like real data (a name, ID, date, phone, printable text in binary data)")
      for c in ELEMENT_CATEGORIES],
    *[(f"{c}:dummy-not-recognised", REVIEW, f"an attribute of kind '{CATEGORY_WORDS[c]}' the table replaces by a dummy (D) "
       "holds a value that is not a known dummy: a person should check it is not the original")
      for c in ELEMENT_CATEGORIES],
    ("uids:uid-not-remapped", "FAIL/REVIEW", "a UID under a site or vendor root, not remapped (FAIL where the table "
     "remaps or removes it; REVIEW where it keeps it, e.g. a coding scheme UID)"),
    ("text:uid-not-remapped", FAIL, "an attribute the table remaps (U) holds something other than a UID"),
    ("names:person-name", FAIL, "a person name (PN) that is not a pseudonym, in an attribute the table does not keep"),
    ("names:patient-name-wrong-vr", FAIL, "Patient's Name (or another person-name attribute) written with a VR "
     "other than PN and holding a name"),
    ("dates:date-kept", FAIL, "a date or time outside the table kept without a date option declared"),
    ("dates:age-over-89", FAIL, "Patient's Age over 89 years other than the aggregate 090Y (HIPAA Safe Harbor "
     "aggregates ages of 90 and over)"),
    ("devices:ae-title-kept", FAIL, "an Application Entity title (names a sending system) outside the table, "
     "kept without Retain Device Identity"),
    # -- shapes in free text (LT, ST, UT, UC, text values, comments; LO/SH only for shapes that
    #    cannot be vendor text) --
    ("dates:date-in-text", "FAIL/REVIEW", "a real calendar date in free text (FAIL in text the profile cleans, "
     "REVIEW elsewhere)"),
    ("addresses:email-in-text", FAIL, "an e-mail address in text"),
    ("addresses:url-in-text", REVIEW, "a web address in text"),
    ("addresses:phone-in-text", REVIEW, "a phone-number-shaped value in text (phone formatting, no unit)"),
    ("addresses:address-in-text", REVIEW, "a postal-address-shaped value in text"),
    ("ids:id-in-text", REVIEW, "an ID-shaped number (6+ digits) in text that is not a code value"),
    ("names:person-name-in-text", FAIL, "person name syntax (LAST^FIRST, Dr. Name) in free text"),
    ("text:cleaner-would-remove", REVIEW, "free text that deid_tool's free-text cleaner (deidkit.text_clean) would "
     "still change: a title and name, an institution, a code-like identifier"),
    ("names:name-in-narrative", REVIEW, "narrative free text with capitalised words mid-sentence that look like a "
     "name (the cleaner's review)"),
    # -- private data --
    ("private:kept-without-option", FAIL, "private data kept although the declared profile removes all of it"),
    ("private:not-safe-listed", FAIL, "a private element outside the kept list (PS3.15 E.3.10-1 / knowledge base)"),
    ("private:file-meta-private-information", FAIL, "Private Information (0002,0102) in the file meta"),
    ("devices:source-ae-title", REVIEW, "Source/Sending Application Entity Title in the file meta names the sending system"),
    # -- bytes outside the data elements (issue 12 kind 4) --
    ("bytes:preamble-not-zero", "FAIL/REVIEW", "the 128-byte preamble is not zero (FAIL when it holds text or an "
     "executable header, REVIEW otherwise)"),
    ("bytes:pixel-data-padding", "FAIL/REVIEW", "native Pixel Data longer than its frames need (FAIL when the "
     "extra bytes hold text, REVIEW otherwise)"),
    ("bytes:trailing-bytes", "FAIL/REVIEW", "bytes after the end of the dataset or Data Set Trailing Padding with "
     "data (FAIL when they hold text)"),
    ("sequences:overlay-data", FAIL, "overlay bit planes (60xx,3000) kept: they can carry burned-in text"),
    # -- pixels --
    ("burned-in:text-in-pixels", FAIL, "text found in the pixels of an image at burned-in text risk"),
    ("burned-in:at-risk-unchecked", REVIEW, "image at burned-in text risk whose pixels could not be looked at"),
    # -- DICOMDIR --
    *[(f"{c}:dicomdir-record", FAIL, f"a DICOMDIR record holds {CATEGORY_WORDS[c]}")
      for c in ("names", "ids", "dates", "addresses")],
    # -- names of files and folders --
    ("paths:uid-in-name", FAIL, "a file or folder named by an original (not remapped) UID"),
    ("paths:person-name-in-name", FAIL, "person name syntax in a file or folder name"),
    ("paths:date-in-name", FAIL, "a real calendar date in a file or folder name"),
    ("paths:email-in-name", FAIL, "an e-mail address in a file or folder name"),
    ("paths:phone-in-name", REVIEW, "a phone-number-shaped value in a file or folder name"),
    ("paths:id-in-name", REVIEW, "an ID-shaped number in a file or folder name"),
    ("paths:url-in-name", REVIEW, "a web address in a file or folder name"),
    ("paths:address-in-name", REVIEW, "an address-shaped value in a file or folder name"),
    ("paths:name-like-word", REVIEW, "a word in a file or folder name that is neither neutral nor a descriptor"),
    ("paths:header-value-in-name", FAIL, "a file or folder name holds a value seen as a patient's identity"),
    # -- the whole delivery --
    ("names:known-identity", FAIL, "text holds a name seen as a patient's identity elsewhere in the delivery"),
    ("ids:known-identity", FAIL, "text holds an ID or date seen as a patient's identity elsewhere in the delivery"),
    ("names:person-name-in-content", FAIL, "a non-DICOM file holds person name syntax (LAST^FIRST)"),
    ("names:manifest-patient", FAIL, "deid_manifest.csv names a patient that is not a pseudonym"),
    ("identity:patient-identity-removed-missing", REVIEW, "Patient Identity Removed is not YES: the file does not "
     "say it was de-identified (it is judged by the Basic Profile with no option; what it still holds is FAIL)"),
    ("identity:identity-check", REVIEW, "Patient's Name/ID do not look like pseudonyms (second opinion)"),
    ("identity:study-split-over-patients", REVIEW, "one study appears under two Patient IDs"),
    ("files:non-dicom", REVIEW, "a file that is not DICOM and not one of the kit's own files"),
    ("files:unreadable", REVIEW, "an empty, truncated or unparsable file, or one that cannot be opened"),
    ("files:unreadable-element", REVIEW, "an element that cannot be decoded"),
    ("files:link", REVIEW, "a symbolic link (not followed)"),
    ("files:not-regular-file", REVIEW, "a special file (FIFO, device, socket): listed, never opened"),
    ("files:path-too-long", REVIEW, "a file or folder whose path is longer than the system allows: listed, not read"),
    ("completeness:manifest-unreadable", REVIEW, "deid_manifest.csv cannot be read or lacks its columns"),
    ("completeness:missing", REVIEW, "listed in deid_manifest.csv, not in the delivery"),
    ("completeness:altered", REVIEW, "size or SHA-256 differs from deid_manifest.csv"),
    ("completeness:extra", REVIEW, "in the delivery but not in deid_manifest.csv"),
]

CATALOGUE: dict[str, VerifyRule] = {rid: VerifyRule(rid, sev, meaning) for rid, sev, meaning in _TABLE}
assert len(CATALOGUE) == len(_TABLE), "duplicate rule id in the verify catalogue"


@dataclass(frozen=True, order=True)
class Finding:
    """One row of the findings file. `detail` never holds an unmasked suspicious value."""

    file: str       # relative to DIR with '/', '.' for the delivery itself
    location: str   # tag path, 'pixels', 'name', 'file', 'preamble', 'bytes'
    rule: str       # an id of CATALOGUE, e.g. 'dates:attribute-not-emptied'
    severity: str   # FAIL or REVIEW
    detail: str

    @property
    def category(self) -> str:
        """The category of the finding rule: the part before the colon."""
        return self.rule.split(":", 1)[0]

    def row(self) -> tuple[str, str, str, str, str]:
        """The finding as a findings CSV row: file, location, rule, severity, detail."""
        return (self.file, self.location, self.rule, self.severity, self.detail)


def make(file: str, location: str, rule: str, severity: str, detail: str) -> Finding:
    """A Finding; raises KeyError for a rule id not in CATALOGUE, ValueError for a severity the
    rule does not allow."""
    allowed = CATALOGUE[rule].severity.split("/")
    if severity not in allowed:
        raise ValueError(f"rule {rule} is {CATALOGUE[rule].severity}, not {severity}")
    return Finding(file, location, rule, severity, detail)


def catalogue_lines() -> list[str]:
    """The catalogue as text, one rule a line: 'id  SEVERITY  meaning' (README's "Verify rules")."""
    width = max(len(r) for r in CATALOGUE)
    return [f"{r.id:<{width}}  {r.severity:<11}  {r.meaning}" for r in sorted(CATALOGUE.values(), key=lambda r: r.id)]
