"""Per-element checks: one dataset walked against the guideline table, under the declared profile.

Every decision asks what the attribute is (pydicom's data dictionary: VR and keyword) and what the
table says about it (Guidelines.action_for); kept-private and free-text decisions go through
`private_kept` and `is_free_text`, which ask the guideline loader first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_description, dictionary_has_tag, dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from .. import content
from .. import guidelines as gl
from ..engine import SOP_CLASS_UID_TAGS
from ..sweep import Identifiers, mask
from ..text_clean import clean_free_text
from .rules import FAIL, REVIEW, Finding, make
from .text import (FREE_TEXT_KEYWORD, FREE_TEXT_VRS, is_class_uid_shape, is_pseudonym, text_hits, uid_problem,
                   values_of)

PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "DS", "IS", "AT", "US or SS", "US or OW"})
DECLARATION_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064})  # our declaration: not free text
ID_KEYWORDS = frozenset({"PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "IssuerOfPatientID",
                         "MedicalRecordLocator"})
ADDRESS_WORDS = ("Address", "Telephone", "Telecom", "E-mail", "Residence", "Country")
ID_WORDS = (" ID", "ID ", "Number", "Identifier", "Accession", "Locator")
DEVICE_WORDS = ("Station", "Device", "AE Title", "Application Entity", "Machine Name")
# Dummies deid_tool and other de-identifiers write for D (PS3.15 E.1.1 "a dummy value").
KNOWN_DUMMIES = frozenset({"", "ANONYMIZED", "ANONYMOUS", "ANON", "REMOVED", "DUMMY", "UNKNOWN", "NONE", "N/A",
                           "NA", "URN:DEID", "0", "DEIDENTIFIED", "DE-IDENTIFIED", "NOT PROVIDED"})
DUMMY_DATES = re.compile(r"(19000101|00000000|000000(\.0*)?|19000101000000(\.0*)?([+-]\d{4})?|0+)")
PRINTABLE_RUN = re.compile(rb"[A-Za-z][\x20-\x7e]{5,}")
MAX_TEXTS_PER_FILE = 2000  # kept text values per file for the cross-check (bounded memory)


def tag_text(tag: int) -> str:
    """A tag as "(GGGG,EEEE)", upper-case hex."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def describe(tag: int) -> str:
    """The dictionary name of a tag, or "attribute" for one pydicom does not know."""
    return dictionary_description(tag) if dictionary_has_tag(tag) else "attribute"


def keyword_of(tag: int) -> str:
    """The pydicom keyword of a tag, or "" for one pydicom does not know."""
    return (keyword_for_tag(tag) or "") if dictionary_has_tag(tag) else ""


def dictionary_vr(tag: int, fallback: str) -> str:
    """The VR the standard gives the attribute (its meaning), else the one written."""
    if dictionary_has_tag(tag):
        vr = dictionary_VR(tag)
        return vr if vr in ("PN", "DA", "DT", "TM", "UI", "AE", "AS") else fallback
    return fallback


def category_of(tag: int, vr: str) -> str:
    """What kind of PHI an attribute holds (a rules.ELEMENT_CATEGORIES value), by what it is."""
    vr = dictionary_vr(tag, vr)
    name = describe(tag)
    if vr == "PN":
        return "names"
    if vr in ("DA", "DT", "TM", "AS"):
        return "dates"
    if vr == "UI":
        return "uids"
    if vr == "AE" or any(w in name for w in DEVICE_WORDS):
        return "devices"
    if any(w in name for w in ADDRESS_WORDS):
        return "addresses"
    if any(w in f" {name} " for w in ID_WORDS):
        return "ids"
    if vr == "SQ":
        return "sequences"
    return "text"


def has_data(elem: Any) -> bool:
    """True when an element carries a value (not only padding)."""
    if isinstance(elem, RawDataElement):
        return bool(elem.length)
    value = elem.value
    if elem.VR == "SQ":
        return bool(value) and len(value) > 0
    if value is None:
        return False
    if isinstance(value, bytes):
        return value.strip(b"\0 ") != b""
    if isinstance(value, (int, float)):
        return True
    return any(v.strip("\0 ") for v in values_of(value))


def action_of(g: gl.Guidelines, tag: int, sop_class: str) -> str | None:
    """The code the engine applies to a public attribute: Table E.1-1's, else the loader's table of
    unlisted text attributes when it has one (unlisted_text_action), else None (kept by omission)."""
    code = g.action_for(tag, sop_class)
    if code is None:
        ask = getattr(g, "unlisted_text_action", None)
        if callable(ask):
            code = ask(tag)
    return code


def uses_text_cleaner(g: gl.Guidelines, tag: int, location: str) -> bool:
    """Whether deid_tool cleans this text with deidkit.text_clean (labels, narrative text in
    content trees, unlisted text attributes whose action is C), so verify asks the same cleaner."""
    if content.uses_free_text_cleaner(tag, location):
        return True
    ask = getattr(g, "unlisted_text_action", None)
    return callable(ask) and g.rule_for(tag) is None and ask(tag) == "C"


def is_free_text(g: gl.Guidelines, tag: int, vr: str) -> bool:
    """Whether an attribute is judged like the table's free text: for an unlisted attribute the
    loader's unlisted text table when it has one (C = cleaned like free text), else the VR and
    keyword."""
    ask = getattr(g, "unlisted_text_action", None)
    if callable(ask) and g.rule_for(tag) is None:
        code = ask(tag)
        if code is not None:
            return bool(code == "C")
    return vr in FREE_TEXT_VRS or bool(FREE_TEXT_KEYWORD.search(keyword_of(tag)))


def private_kept(g: gl.Guidelines, creator: str, group: int, element: int) -> bool:
    """Whether the guideline tables keep this private element (the knowledge base, else E.3.10-1)."""
    ask = getattr(g, "private_kept", None)
    if callable(ask):
        return bool(ask(creator, group, element))
    return g.safe_private_entry(creator, group, element) is not None


@dataclass
class FileResult:
    """What checking one file found; identity values stay in memory for the cross-checks only."""

    rel: str
    kind: str = "dicom"  # dicom, dicomdir, non-dicom, unreadable, kit-file, special
    findings: list[Finding] = field(default_factory=list)
    leaked_names: list[str] = field(default_factory=list)   # PN values that are not pseudonyms
    leaked_ids: list[str] = field(default_factory=list)     # IDs and dates that failed a rule
    texts: list[tuple[str, str]] = field(default_factory=list)  # (location, value) kept text
    size: int = 0
    sha256: str = ""
    study: str = ""      # Study Instance UID, to see one study split over two patients
    patient: str = ""    # Patient ID as delivered
    profile: str = ""    # the options the file declares, as text ('' when it declares none)


class Checker:
    """Walks one dataset; collects findings, leaked identity values and kept text."""

    def __init__(self, result: FileResult, g: gl.Guidelines, sop_class: str, in_dicomdir: bool,
                 declared: bool = True) -> None:
        self.rel, self.g, self.sop_class, self.in_dicomdir = result.rel, g, sop_class, in_dicomdir
        self.declared = declared  # False: the file names no profile; private data is judged by the kept list
        self.prefix = g.settings.pseudonym_prefix
        self.pseudonym_tags = set(g.settings.pseudonym_tags)
        self.options = g.settings.options
        self.result = result
        self.skip: frozenset[int] = frozenset()  # top-level tags that are bytes after the dataset

    def add(self, location: str, rule: str, severity: str, detail: str) -> None:
        """Record one finding for this file (a PHI rule inside a DICOMDIR record is a FAIL of its own)."""
        if self.in_dicomdir and rule.split(":")[0] in ("names", "ids", "dates", "addresses"):
            rule = rule.split(":")[0] + ":dicomdir-record"
            severity = FAIL
        self.result.findings.append(make(self.rel, location, rule, severity, detail))

    def leak(self, tag: int, vr: str, values: list[str]) -> None:
        """Remember a value that failed, so the cross-check can look for it elsewhere."""
        for v in values:
            if vr == "PN":
                self.result.leaked_names.append(v)
            elif vr == "DA" and re.fullmatch(r"\d{8}", v.strip()) and v.strip() != "19000101":
                self.result.leaked_ids.append(v.strip())
            elif keyword_of(tag) in ID_KEYWORDS:
                self.result.leaked_ids.append(v)

    def walk(self, ds: Dataset, prefix: str = "", inherited: dict[tuple[int, int], str] | None = None) -> None:
        """Judge every element of ds; `inherited`: the private creators of the sequence ds sits in
        (an item of a private sequence without its own creator reads its sequence's)."""
        creators = {**(inherited or {}), **_creators(ds)}
        selected = _selected_attribute(ds)
        for tag in list(ds.keys()):
            if tag in PIXEL_TAGS or tag.group == 0x0002 or (not prefix and tag in self.skip):
                continue
            location = prefix + tag_text(tag)
            raw = ds.get_item(tag, keep_deferred=True)
            deferred = isinstance(raw, RawDataElement) and raw.value is None and (raw.length or 0) > 0
            if tag.is_private:
                if not 0x0010 <= tag.element <= 0x00FF:
                    self.private(ds, tag, raw, deferred, creators, location)
                continue
            if deferred:  # a large value we do not read: only its presence matters
                self.public_binary(tag, raw.VR, location)
                continue
            if isinstance(raw, RawDataElement):
                vr = raw.VR or (dictionary_VR(tag) if dictionary_has_tag(tag) else "UN")
                if vr in NUMBER_VRS:  # numbers hold no text: only presence matters
                    if raw.length:
                        self.public_binary(tag, vr, location)
                    continue
            try:
                elem = ds[tag]
            except Exception as e:  # noqa: BLE001 - a broken element is a finding, not a crash
                self.add(location, "files:unreadable-element", REVIEW, f"element cannot be decoded ({type(e).__name__})")
                continue
            self.public(tag, elem, location, selected if keyword_of(tag).startswith("Selector") else None)

    # -- private data --
    def private(self, ds: Dataset, tag: Any, raw: Any, deferred: bool, creators: dict[tuple[int, int], str],
                location: str) -> None:
        """A private element: kept only under the option and on the kept list; a kept private
        sequence's items are judged like any dataset."""
        elem = raw if isinstance(raw, RawDataElement) else ds[tag]
        if not (deferred or has_data(elem)):
            return
        creator = creators.get((tag.group, tag.element >> 8))
        who = f"private creator '{creator}'" if creator else "no private creator"
        code = self.g.private_rule.code_under(self.options)
        if code not in ("C", "K") and self.declared:
            self.add(location, "private:kept-without-option", FAIL,
                     f"private attribute ({who}) kept, but the declared profile removes all private data")
        elif not (creator and private_kept(self.g, creator, tag.group, tag.element)):
            self.add(location, "private:not-safe-listed", FAIL,
                     f"private attribute ({who}) not on the kept list (PS3.15 Table E.3.10-1)")
        elif not deferred and ds[tag].VR == "SQ":
            for i, item in enumerate(ds[tag].value or []):
                self.walk(item, f"{location}[{i}]>", creators)

    # -- public data --
    def public_binary(self, tag: int, vr: str, location: str) -> None:
        """Check a binary-VR standard attribute against its table action (X or Z present is a FAIL)."""
        code = action_of(self.g, tag, self.sop_class)
        if code in ("X", "Z"):
            self.add(location, self._removal_rule(tag, vr, code), FAIL,
                     f"{describe(tag)}: table says {code}, holds {vr} data")

    def _removal_rule(self, tag: int, vr: str, code: str) -> str:
        if tag & 0xFF00FFFF == 0x60003000:
            return "sequences:overlay-data"
        if tag == 0xFFFCFFFC:
            return "bytes:trailing-bytes"
        return f"{category_of(tag, vr)}:attribute-not-{'removed' if code == 'X' else 'emptied'}"

    def public(self, tag: int, elem: Any, location: str, selected: int | None = None) -> None:
        """Judge one public element; a Selector xx Value is judged also as the attribute it selects."""
        vr = elem.VR
        if tag in DECLARATION_TAGS:
            return
        code = action_of(self.g, tag, self.sop_class)
        if selected is not None and keyword_of(tag).endswith("Value"):
            other = action_of(self.g, selected, self.sop_class)
            if other and gl.PROTECTION.get(other, 0) > gl.PROTECTION.get(code or "K", 0):
                code = other
        values = [] if vr == "SQ" or vr in BINARY_VRS else values_of(elem.value)
        data = has_data(elem)
        if data and tag == 0x00101010:
            self.age(values, location)
        if data and dictionary_vr(tag, vr) == "PN" and vr != "PN" and vr not in BINARY_VRS:
            if self.wrong_vr_name(tag, vr, values, location, code):
                return
        if code in ("X", "Z") and data:
            self.removed_but_present(tag, vr, code, values, location)
            return
        if vr == "SQ":
            for i, item in enumerate(elem.value or []):
                self.walk(item, f"{location}[{i}]>")
            return
        if data:
            self.kept_value(tag, elem, vr, code, values, location)

    def removed_but_present(self, tag: int, vr: str, code: str, values: list[str], location: str) -> None:
        """An attribute the table removes (X) or empties (Z) still has a value: FAIL, values kept as leaks."""
        if code == "Z" and tag in self.pseudonym_tags and all(is_pseudonym(v, self.prefix) for v in values):
            return
        shown = mask("\\".join(values)) if values else f"{vr} data"
        what = "X (remove)" if code == "X" else "Z (empty)"
        self.add(location, self._removal_rule(tag, vr, code), FAIL, f"{describe(tag)}: table says {what}, holds {shown}")
        self.leak(tag, dictionary_vr(tag, vr), values)

    def kept_value(self, tag: int, elem: Any, vr: str, code: str | None, values: list[str], location: str) -> None:
        """Check a value that stays, by VR and table action (UIDs, dummies, names, dates, AE titles, text)."""
        if vr == "UI":
            self.uid(tag, values, code, location)
        elif code == "D":
            self.dummy(tag, vr, elem.value, values, location)
        elif code == "U":  # a U row holding something other than a UID
            self.add(location, "text:uid-not-remapped", FAIL, f"{describe(tag)}: table says U, holds {vr} {mask(values[0]) if values else ''}")
        elif vr == "PN":
            self.person_name(tag, values, location, code)
        elif vr in ("DA", "DT", "TM") and code is None:
            self.unlisted_date(tag, vr, values, location)
        elif vr == "AE" and code is None and "retain_device_identity" not in self.options:
            self.add(location, "devices:ae-title-kept", FAIL, f"{describe(tag)}: an AE title kept: {mask(values[0])}")
        elif vr in TEXT_VRS and code != "K":
            self.free_text(tag, vr, values, location, cleaned=(code == "C"))
        elif vr in TEXT_VRS:
            self.keep_text(location, values)

    def age(self, values: list[str], location: str) -> None:
        """Patient Age over 89 years (other than the 090Y aggregate) is a FAIL."""
        m = re.fullmatch(r"0*(\d+)([DWMY])", values[0].strip()) if values else None
        if m:
            years = int(m.group(1)) / {"D": 365.25, "W": 52.18, "M": 12, "Y": 1}[m.group(2)]
            if years >= 90 and values[0].strip() != "090Y":  # 090Y is the aggregate deid_tool writes
                self.add(location, "dates:age-over-89", FAIL, f"Patient's Age {mask(values[0], keep=0)} is over 89 years")

    def wrong_vr_name(self, tag: int, vr: str, values: list[str], location: str, code: str | None) -> bool:
        """A patient name stored under a non-PN VR; True (and a FAIL) when a real-looking one is there."""
        real = [v for v in values if not is_pseudonym(v, self.prefix) and v.strip().upper() not in KNOWN_DUMMIES]
        if not real or code == "K":
            return False
        self.add(location, "names:patient-name-wrong-vr", FAIL,
                 f"{describe(tag)} written as {vr}, holds a name {mask(real[0])}")
        self.leak(tag, "PN", real)
        return True

    def uid(self, tag: int, values: list[str], code: str | None, location: str) -> None:
        """A UID that looks like an original one (not remapped) is a finding, unless the profile keeps UIDs."""
        if "retain_uids" in self.options:
            return
        # deid_tool keeps the value of every SOP Class UID attribute as it is (engine.uid_is_kept:
        # a kind of object, vendor-private classes included): kept by rule, so REVIEW, not FAIL
        class_attribute = int(tag) in SOP_CLASS_UID_TAGS
        kept = code not in ("U", "D", None) or class_attribute
        for v in values:
            if class_attribute and is_class_uid_shape(v):
                continue  # a kind of object (vendor-private SOP Classes included): nothing to review
            problem = uid_problem(v)
            if problem:
                severity = REVIEW if kept else FAIL
                self.add(location, "uids:uid-not-remapped", severity, f"{describe(tag)}: UID {problem}")
                return

    def dummy(self, tag: int, vr: str, value: Any, values: list[str], location: str) -> None:
        """A D (dummy) value must look like a dummy for its VR: readable binary or real dates are findings."""
        cat = category_of(tag, vr)
        if tag in self.pseudonym_tags and all(is_pseudonym(v, self.prefix) for v in values):
            return
        if vr == "PN":
            self.person_name(tag, values, location, "D")
        elif vr in BINARY_VRS:
            if isinstance(value, bytes) and PRINTABLE_RUN.search(value):
                self.add(location, f"{cat}:dummy-looks-real", FAIL, f"{describe(tag)}: table says D, holds readable text in {vr} data")
        elif vr in ("DA", "DT", "TM"):
            if not all(DUMMY_DATES.fullmatch(v.strip()) for v in values):
                self.add(location, f"{cat}:dummy-not-recognised", REVIEW, f"{describe(tag)}: table says D, holds {mask(values[0])}")
                self.leak(tag, vr, values)
        elif vr in NUMBER_VRS or vr == "AS":
            return  # dummies of these VRs are shaped like real ones
        else:
            self.dummy_text(tag, vr, values, location, cat)

    def dummy_text(self, tag: int, vr: str, values: list[str], location: str, cat: str) -> None:
        """A text dummy that holds what looks like identifying text is a finding."""
        for v in values:
            if v.strip().upper() in KNOWN_DUMMIES or is_pseudonym(v, self.prefix):
                continue
            hits = text_hits(v, "LT", keyword_of(tag), self.g.vocabulary)
            if hits:
                kinds = sorted({k for k, _ in hits})
                self.add(location, f"{cat}:dummy-looks-real", FAIL,
                         f"{describe(tag)}: table says D (dummy), holds a value shaped like {', '.join(kinds)}: {mask(v)}")
            else:
                self.add(location, f"{cat}:dummy-not-recognised", REVIEW,
                         f"{describe(tag)}: table says D (dummy), holds {mask(v)}")
            self.leak(tag, vr, [v])
            return
        self.keep_text(location, values)

    def person_name(self, tag: int, values: list[str], location: str, code: str | None) -> None:
        """A person name that is neither a pseudonym nor a known dummy is a leak (unless kept, K)."""
        if code == "K":
            return
        real = [v for v in values if not is_pseudonym(v, self.prefix) and v.strip().upper() not in KNOWN_DUMMIES]
        if not real:
            return
        why = "outside the table (engine empties these)" if code is None else f"table says {code}"
        self.add(location, "names:person-name", FAIL, f"{describe(tag)}: {why}, holds a person name {mask(real[0])}")
        self.leak(tag, "PN", real)

    def unlisted_date(self, tag: int, vr: str, values: list[str], location: str) -> None:
        """A date or time the table does not list must be a dummy, unless the profile keeps dates."""
        if "retain_long_modified_dates" in self.options or "retain_long_full_dates" in self.options:
            return
        if all(DUMMY_DATES.fullmatch(v.strip()) for v in values):
            return
        self.add(location, "dates:date-kept", FAIL, f"{describe(tag)}: a {vr} kept without a date option: {mask(values[0])}")
        self.leak(tag, vr, values)

    def free_text(self, tag: int, vr: str, values: list[str], location: str, cleaned: bool) -> None:
        """Text values are searched for names, dates, IDs and addresses; what is found is a finding."""
        free = is_free_text(self.g, tag, vr)
        for v in values:
            seen: set[str] = set()
            for kind, piece in text_hits(v, vr if free else "LO", keyword_of(tag), self.g.vocabulary):
                if kind in seen:
                    continue
                seen.add(kind)
                severity = _text_severity(kind, cleaned)
                how = "cleaned text" if cleaned else ("free text" if free else "text")
                self.add(location, f"{_KIND_CATEGORY[kind]}:{kind.replace('_', '-')}-in-text", severity,
                         f"{describe(tag)}: {how} contains something shaped like {kind.replace('_', ' ')}: {mask(piece)}")
            if not seen and uses_text_cleaner(self.g, tag, location):
                self.cleaner_opinion(tag, v, location)
        self.keep_text(location, values)

    def cleaner_opinion(self, tag: int, value: str, location: str) -> None:
        """Free text the sender's own cleaner (deidkit.text_clean) would still change, or where it
        sees a name in narrative text: a person should look."""
        out = clean_free_text(value, Identifiers(), None, self.g.vocabulary, narrative=tag in content.NARRATIVE_TAGS)
        if out.removed:
            self.add(location, "text:cleaner-would-remove", REVIEW,
                     f"{describe(tag)}: the free-text cleaner would still remove {out.removed} span(s): {mask(value)}")
        elif out.review:
            start, end = out.review[0]
            self.add(location, "names:name-in-narrative", REVIEW,
                     f"{describe(tag)}: narrative text holds what looks like a name: {mask(out.text[start:end])}")

    def keep_text(self, location: str, values: list[str]) -> None:
        """Keep text values (at most MAX_TEXTS_PER_FILE) for the whole-delivery identity checks."""
        if len(self.result.texts) < MAX_TEXTS_PER_FILE:
            self.result.texts.extend((location, v) for v in values if len(v.strip()) >= 2)


_KIND_CATEGORY = {"date": "dates", "email": "addresses", "url": "addresses", "phone": "addresses",
                  "address": "addresses", "id": "ids", "person_name": "names"}


def _text_severity(kind: str, cleaned: bool) -> str:
    if kind in ("email", "person_name"):
        return FAIL
    if kind == "date":
        return FAIL if cleaned else REVIEW
    return REVIEW


def _selected_attribute(ds: Dataset) -> int | None:
    """The tag a Selector Attribute (0072,0026) in this item names, if any (PS3.3 C.23.2)."""
    elem = ds.get(0x00720026)
    try:
        return int(elem.value) if elem is not None and elem.value is not None else None
    except (TypeError, ValueError):
        return None


def _creators(ds: Dataset) -> dict[tuple[int, int], str]:
    """(group, block) -> private creator text of one dataset level."""
    creators = {}
    for tag in ds.keys():
        if tag.is_private and 0x0010 <= tag.element <= 0x00FF:
            elem = ds.get_item(tag, keep_deferred=True)
            value = elem.value if elem.value is not None else b""
            if isinstance(value, bytes):
                value = value.decode("latin-1", "replace")
            creators[(tag.group, tag.element)] = str(value).strip("\0 ")
    return creators
