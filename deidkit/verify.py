"""`deid_tool --verify DIR`: the receiving side's double check of a delivery. Read-only.

Every file is judged by the same guideline table the engine applies (deidkit.guidelines), under
the profile the file declares in De-identification Method (Code Sequence), or the site default.
One finding per thing a person should know, with any suspicious value masked:
  FAIL    PHI found (or something that must never be in a delivery, e.g. non-safe private data)
  REVIEW  a person should look (heuristic hits, non-DICOM or unreadable files, completeness)
Nothing is written inside DIR; the findings CSV and the HTML summary go beside it.

Flow: walk the tree -> check every file in parallel (headers only, pixels only for images at
burned-in text risk, SHA-256 only when the delivery carries deid_manifest.csv) -> cross-checks
over the whole delivery (values seen as a patient's identity in one file and found in another,
in non-DICOM files or in file/folder names) -> verdict, CSV, HTML.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import os
import re
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID_dictionary

from . import console
from . import guidelines as gl
from .sweep import Identifiers, date_spellings, find_generic_phi, fold, mask

FAIL, REVIEW = "FAIL", "REVIEW"
CSV_HEADER = ("file", "location", "rule", "severity", "detail")
MANIFEST_NAME = "deid_manifest.csv"
SUMMARY_NAME = "deid_summary.txt"
OWN_REPORTS = (MANIFEST_NAME, SUMMARY_NAME)
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DEFER_SIZE = 64 * 1024          # values larger than this are not read (pixel data, big blobs)
NON_DICOM_SCAN_BYTES = 1 << 20  # how much of a non-DICOM file is searched for identities
MAX_TEXTS_PER_FILE = 2000       # kept text values per file for the cross-check (bounded memory)
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}
BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "DS", "IS", "AT", "US or SS", "US or OW"}
# Our own declaration; its values (edition, table hash) are not free text to judge.
DECLARATION_TAGS = {0x00120062, 0x00120063, 0x00120064}
# Identity attributes whose values (when they fail a rule) are searched for everywhere else.
ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "IssuerOfPatientID",
               "MedicalRecordLocator", "PatientInsurancePlanCodeSequence")
ADDRESS_WORDS = ("Address", "Telephone", "Telecom", "E-mail", "Residence", "Country")
ID_WORDS = (" ID", "ID ", "Number", "Identifier", "Accession", "Locator")
# Images at burned-in text risk by metadata when deidkit.pixels is not there to say.
RISK_MODALITIES = {"US", "ES", "XC", "SC", "OT", "GM", "SM", "DOC", "IVUS", "OP", "OPT", "XA", "RF", "DG"}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# Vendor / research UID roots seen in the wild; anything else not under 2.25 is called a site root.
VENDOR_ROOTS = {
    "1.2.840.113619": "GE", "1.3.12.2.1107": "Siemens", "1.3.46.670589": "Philips",
    "1.2.392.200036.9116": "Canon/Toshiba", "1.2.392.200036.9125": "Fujifilm", "1.2.840.113704": "Philips/ADAC",
    "1.2.840.113564": "Agfa", "1.2.276.0.7230010": "OFFIS DCMTK", "1.2.826.0.1.3680043.8.498": "pydicom",
    "1.2.826.0.1.3680043": "Medical Connections", "1.3.6.1.4.1": "IANA enterprise",
}
# File/folder name words that say nothing about a person (besides the descriptor vocabulary).
NEUTRAL_NAME_WORDS = {
    "dicom", "dicomdir", "dcm", "dic", "ima", "img", "image", "images", "im", "series", "ser", "se",
    "study", "studies", "st", "subj", "subject", "subjects", "patient", "patients", "pat", "pt",
    "anon", "anonymized", "anonymised", "deid", "deidentified", "export", "exports", "data", "files",
    "file", "scan", "scans", "slice", "slices", "frame", "frames", "case", "cases", "site", "batch",
    "delivery", "part", "instance", "instances", "object", "objects", "readme", "manifest",
    "summary", "report", "reports", "csv", "txt", "json", "xml", "html", "zip", "dir", "folder",
    "volume", "vol", "run", "seq", "sequence", "acq", "acquisition", "raw", "output", "input",
    "ct", "mr", "us", "cr", "dx", "mg", "pt", "nm", "xa", "rf", "ot", "sc", "sr", "pr", "ko", "seg",
    "rtstruct", "rtplan", "rtdose", "rtimage", "doc", "io", "px", "es", "xc", "sm", "gm", "op",
    "opt", "ivus", "bmd", "hd", "ecg", "au", "reg", "fid", "pdf", "cdrom", "media", "viewer",
    "index", "autorun", "inf", "broken", "empty", "trunc", "truncated", "nopreamble", "thumbs",
    "store", "ds_store", "lock", "log", "tmp", "temp", "backup", "new", "old", "copy", "final",
}
NAME_EXTENSIONS = {".dcm", ".dicom", ".ima", ".img", ".dic"}


@dataclass(frozen=True, order=True)
class Finding:
    """One row of the findings file. `detail` never holds an unmasked suspicious value."""

    file: str       # relative to DIR with '/', '.' for the delivery itself
    location: str   # tag path, 'pixels', 'name' or 'file'
    rule: str       # '<category>:<check>', e.g. 'dates:attribute-not-emptied'
    severity: str   # FAIL or REVIEW
    detail: str

    @property
    def category(self) -> str:
        return self.rule.split(":", 1)[0]

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.file, self.location, self.rule, self.severity, self.detail)


@dataclass
class FileResult:
    """What checking one file found; identity values stay in memory for the cross-checks only."""

    rel: str
    kind: str = "dicom"  # dicom, dicomdir, non-dicom, unreadable, own-report
    findings: list[Finding] = field(default_factory=list)
    leaked_names: list[str] = field(default_factory=list)   # PN values that are not pseudonyms
    leaked_ids: list[str] = field(default_factory=list)     # IDs and dates that failed a rule
    texts: list[tuple[str, str]] = field(default_factory=list)  # (location, value) kept text
    size: int = 0
    sha256: str = ""
    study: str = ""      # Study Instance UID, to see one study split over two patients
    patient: str = ""    # Patient ID as delivered


@dataclass(frozen=True)
class Verdict:
    status: str  # PASS, REVIEW, FAIL
    findings: tuple[Finding, ...]
    files_checked: int
    dicom_files: int

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "PASS" else 1


# ---- small pure helpers -----------------------------------------------------------------------

def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# deid_tool's PREFIX_ + 10 base32 characters (deidkit.mapping.patient_pseudonym). The sender's
# prefix is their site setting, so any prefix settings.ini allows is accepted, not only ours.
PSEUDONYM_RE = re.compile(r"[A-Z][A-Z0-9]{0,7}_[A-Z2-7]{10}")


def is_pseudonym(value: str, prefix: str = "") -> bool:
    value = value.strip()
    return PSEUDONYM_RE.fullmatch(value) is not None or (
        bool(prefix) and re.fullmatch(re.escape(prefix) + r"_[A-Z2-7]{10}", value) is not None)


def uid_problem(uid: str) -> str | None:
    """None for a remapped (2.25) or registered DICOM UID; else which root it sits under."""
    uid = uid.strip().rstrip("\0")
    if not uid or uid.startswith("2.25.") or uid in UID_dictionary or uid.startswith("1.2.840.10008."):
        return None
    for root, owner in sorted(VENDOR_ROOTS.items(), key=lambda kv: -len(kv[0])):
        if uid.startswith(root + "."):
            return f"under the {owner} root {root}"
    first = ".".join(uid.split(".")[:2])
    return f"under a site or vendor root {first}.* (not remapped to 2.25)"


def category_of(tag: int, vr: str) -> str:
    """What kind of PHI an attribute holds, for the findings' category."""
    name = pydicom.datadict.dictionary_description(tag) if pydicom.datadict.dictionary_has_tag(tag) else ""
    if vr == "PN":
        return "names"
    if vr in ("DA", "DT", "TM"):
        return "dates"
    if vr == "UI":
        return "uids"
    if any(w in name for w in ADDRESS_WORDS):
        return "addresses"
    if any(w in f" {name} " for w in ID_WORDS):
        return "ids"
    if vr == "SQ":
        return "sequences"
    return "text"


GENERIC_CATEGORY = {"date": "dates", "email": "addresses", "url": "addresses", "phone": "addresses",
                    "address": "addresses", "id": "ids", "person_name": "names"}
STRONG_KINDS = {"email", "person_name"}  # FAIL wherever they are


def text_hits(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) of PHI shapes in free text; small index numbers are not IDs."""
    out = []
    for f in find_generic_phi(text):
        piece = text[f.start:f.end]
        if f.kind == "id":
            digits = re.sub(r"\D", "", piece)
            if not digits or int(digits) < 100000:
                continue
        out.append((f.kind, piece))
    return out


def _values(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value if str(v) != ""]
    return [str(value)]


def _has_data(elem) -> bool:
    """True when an element carries a value (not only padding)."""
    if isinstance(elem, RawDataElement):
        return bool(elem.length) and elem.length != 0
    value = elem.value
    if elem.VR == "SQ":
        return bool(value) and len(value) > 0
    if value is None:
        return False
    if isinstance(value, bytes):
        return value.strip(b"\0 ") != b""
    if isinstance(value, (int, float)):
        return True
    return any(v.strip("\0 ") for v in _values(value))


def declared_options(ds: Dataset) -> frozenset[str] | None:
    """Options the file says it was de-identified with (codes first), or None if it says nothing."""
    by_code = {code: name for name, (code, _) in gl.OPTION_CODES.items()}
    seq = ds.get(0x00120064)
    codes = []
    if seq is not None and seq.VR == "SQ":
        codes = [str(item.get("CodeValue", "")) for item in seq.value or []]
    if codes:
        return frozenset(by_code[c] for c in codes if c in by_code and by_code[c] in gl.OPTIONS)
    method = ds.get(0x00120063)
    if method is not None and method.value:
        names = {v.strip().lower() for v in _values(method.value)}
        return frozenset(o for o in gl.OPTIONS if o in names)
    return None


# ---- per-file check (runs in worker processes) ------------------------------------------------

_GUIDELINES: gl.Guidelines | None = None
_VIEWS: dict[frozenset[str], gl.Guidelines] = {}


def _init_worker(guidelines: gl.Guidelines) -> None:
    global _GUIDELINES
    _GUIDELINES = guidelines
    _VIEWS.clear()
    gl.register_new_attributes(guidelines)


def view_for(base: gl.Guidelines, options: frozenset[str] | None) -> gl.Guidelines:
    """The guideline table as the engine applied it under the declared options."""
    if options is None:
        return base
    view = _VIEWS.get(options)
    if view is None:
        view = dataclasses.replace(base, settings=dataclasses.replace(base.settings, options=options))
        _VIEWS[options] = view
    return view


class _Checker:
    """Walks one dataset; collects findings, leaked identity values and kept text."""

    def __init__(self, rel: str, g: gl.Guidelines, sop_class: str, in_dicomdir: bool) -> None:
        self.rel, self.g, self.sop_class, self.in_dicomdir = rel, g, sop_class, in_dicomdir
        self.prefix = g.settings.pseudonym_prefix
        self.pseudonym_tags = set(getattr(g.settings, "pseudonym_tags", (0x00100010, 0x00100020)))
        self.options = g.settings.options
        self.result = FileResult(rel)

    def add(self, location: str, rule: str, severity: str, detail: str) -> None:
        if self.in_dicomdir and rule.split(":")[0] in ("names", "ids", "dates", "addresses"):
            rule = rule.split(":")[0] + ":dicomdir-record"
        self.result.findings.append(Finding(self.rel, location, rule, severity, detail))

    def leak(self, tag: int, vr: str, values: list[str]) -> None:
        """Remember a value that failed, so the cross-check can look for it elsewhere."""
        keyword = pydicom.datadict.keyword_for_tag(tag) if pydicom.datadict.dictionary_has_tag(tag) else ""
        for v in values:
            if vr == "PN":
                self.result.leaked_names.append(v)
            elif vr == "DA" and re.fullmatch(r"\d{8}", v.strip()) and v.strip() != "19000101":
                self.result.leaked_ids.append(v.strip())
            elif keyword in ID_KEYWORDS:
                self.result.leaked_ids.append(v)

    def walk(self, ds: Dataset, prefix: str = "") -> None:
        creators = {}
        for tag in ds.keys():
            if tag.is_private and 0x0010 <= tag.element <= 0x00FF:
                elem = ds.get_item(tag, keep_deferred=True)
                value = elem.value if not isinstance(elem, RawDataElement) else elem.value or b""
                if isinstance(value, bytes):
                    value = value.decode("latin-1", "replace")
                creators[(tag.group, tag.element)] = str(value).strip()
        for tag in list(ds.keys()):
            if tag in PIXEL_TAGS or tag.group == 0x0002:
                continue
            location = prefix + tag_text(tag)
            raw = ds.get_item(tag, keep_deferred=True)
            deferred = isinstance(raw, RawDataElement) and raw.value is None and (raw.length or 0) > 0
            if tag.is_private:
                if 0x0010 <= tag.element <= 0x00FF:
                    continue
                self.private(ds, tag, raw, deferred, creators.get((tag.group, tag.element >> 8)), location)
                continue
            if deferred:  # a large value we do not read: only its presence matters
                self.public_binary(tag, raw.VR, location)
                continue
            if isinstance(raw, RawDataElement):
                vr = raw.VR or (pydicom.datadict.dictionary_VR(tag) if pydicom.datadict.dictionary_has_tag(tag) else "UN")
                if vr in NUMBER_VRS:  # numbers hold no text: only presence matters, no need to decode
                    if raw.length:
                        self.public_binary(tag, vr, location)
                    continue
            try:
                elem = ds[tag]
            except Exception as e:  # noqa: BLE001 - a broken element is a finding, not a crash
                self.add(location, "files:unreadable-element", REVIEW, f"element cannot be decoded ({type(e).__name__})")
                continue
            self.public(tag, elem, location)

    # -- private data --
    def private(self, ds: Dataset, tag, raw, deferred: bool, creator: str | None, location: str) -> None:
        has_data = deferred or _has_data(raw if isinstance(raw, RawDataElement) else ds[tag])
        if not has_data:
            return
        who = f"private creator '{creator}'" if creator else "no private creator"
        code = self.g.private_rule.code_under(self.options)
        if code not in ("C", "K"):
            self.add(location, "private:kept-without-option", FAIL,
                     f"private attribute ({who}) kept, but the declared profile removes all private data")
            return
        entry = self.g.safe_private_entry(creator, tag.group, tag.element) if creator else None
        if entry is None:
            self.add(location, "private:not-safe-listed", FAIL,
                     f"private attribute ({who}) not on the safe list (PS3.15 Table E.3.10-1)")

    # -- public data --
    def public_binary(self, tag: int, vr: str, location: str) -> None:
        code = self.g.action_for(tag, self.sop_class)
        if code in ("X", "Z"):
            self.add(location, f"{category_of(tag, vr)}:attribute-not-{'removed' if code == 'X' else 'emptied'}", FAIL,
                     f"{_describe(tag)}: table says {code}, holds {vr} data")

    def public(self, tag: int, elem, location: str) -> None:
        vr = elem.VR
        if tag in DECLARATION_TAGS:
            return
        code = self.g.action_for(tag, self.sop_class)
        values = [] if vr == "SQ" or vr in BINARY_VRS else _values(elem.value)
        cat = category_of(tag, vr)
        shown = mask("\\".join(values)) if values else f"{vr} data"
        has_data = _has_data(elem)
        if code == "X" and has_data:
            self.add(location, f"{cat}:attribute-not-removed", FAIL, f"{_describe(tag)}: table says X (remove), holds {shown}")
            self.leak(tag, vr, values)
            return
        if code == "Z" and has_data:
            if tag in self.pseudonym_tags and all(is_pseudonym(v, self.prefix) for v in values):
                return
            self.add(location, f"{cat}:attribute-not-emptied", FAIL, f"{_describe(tag)}: table says Z (empty), holds {shown}")
            self.leak(tag, vr, values)
            return
        if vr == "SQ":
            for i, item in enumerate(elem.value or []):
                self.walk(item, f"{location}[{i}]>")
            return
        if not has_data:
            return
        if vr == "UI":
            self.uid(tag, values, code, location)
            return
        if code == "D":
            self.dummy(tag, vr, values, location, cat)
            return
        if code == "U":  # a U row holding something other than a UID
            self.add(location, f"{cat}:uid-not-remapped", FAIL, f"{_describe(tag)}: table says U, holds {vr} {shown}")
            return
        if vr == "PN":
            self.person_name(tag, values, location, code)
            return
        if vr in ("DA", "DT") and code is None:
            self.unlisted_date(tag, values, location)
            return
        if vr in TEXT_VRS:
            self.free_text(tag, values, location, cleaned=(code == "C"))

    def uid(self, tag: int, values: list[str], code: str | None, location: str) -> None:
        if "retain_uids" in self.options:
            return
        for v in values:
            problem = uid_problem(v)
            if problem:
                severity = FAIL if code in ("U", "D", None) else REVIEW
                self.add(location, "uids:uid-not-remapped", severity, f"{_describe(tag)}: UID {problem}")
                return

    def dummy(self, tag: int, vr: str, values: list[str], location: str, cat: str) -> None:
        if tag in self.pseudonym_tags and all(is_pseudonym(v, self.prefix) for v in values):
            return
        if vr == "PN":
            self.person_name(tag, values, location, "D")
            return
        if vr in ("DA", "DT", "TM", "AS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "AT"):
            return  # dummies of these VRs are shaped like real ones; dates are judged as dates below
        for v in values:
            hits = [] if v.strip().upper() in ("ANONYMIZED", "URN:DEID") else text_hits(v)
            if hits:
                kinds = sorted({k for k, _ in hits})
                self.add(location, f"{GENERIC_CATEGORY[kinds[0]]}:dummy-looks-real", FAIL,
                         f"{_describe(tag)}: table says D (dummy), holds a value shaped like {', '.join(kinds)}: {mask(v)}")
                self.leak(tag, vr, [v])
                return
        self.keep_text(location, values)

    def person_name(self, tag: int, values: list[str], location: str, code: str | None) -> None:
        real = [v for v in values if not is_pseudonym(v, self.prefix) and v.strip().upper() != "ANONYMIZED"]
        if not real:
            return
        why = "outside the table (engine empties these)" if code is None else f"table says {code}"
        self.add(location, "names:person-name", FAIL, f"{_describe(tag)}: {why}, holds a person name {mask(real[0])}")
        self.leak(tag, "PN", real)

    def unlisted_date(self, tag: int, values: list[str], location: str) -> None:
        if "retain_long_modified_dates" in self.options or "retain_long_full_dates" in self.options:
            return
        self.add(location, "dates:date-kept", FAIL, f"{_describe(tag)}: a date kept without a date option: {mask(values[0])}")
        self.leak(tag, "DA", values)

    def free_text(self, tag: int, values: list[str], location: str, cleaned: bool) -> None:
        for v in values:
            seen = set()
            for kind, piece in text_hits(v):
                if kind in seen:
                    continue
                seen.add(kind)
                if kind in STRONG_KINDS:
                    severity = FAIL
                elif kind == "date":
                    severity = FAIL if cleaned else REVIEW
                else:
                    severity = REVIEW
                how = "cleaned text" if cleaned else "free text"
                self.add(location, f"{GENERIC_CATEGORY[kind]}:{kind.replace('_', '-')}-in-text", severity,
                         f"{_describe(tag)}: {how} contains something shaped like {kind.replace('_', ' ')}: {mask(piece)}")
                if kind == "person_name":
                    self.result.leaked_names.append(piece)
        self.keep_text(location, values)

    def keep_text(self, location: str, values: list[str]) -> None:
        if len(self.result.texts) < MAX_TEXTS_PER_FILE:
            self.result.texts.extend((location, v) for v in values if len(v.strip()) >= 2)


def _describe(tag: int) -> str:
    if pydicom.datadict.dictionary_has_tag(tag):
        return pydicom.datadict.dictionary_description(tag)
    return "attribute"


def _file_meta_findings(checker: _Checker, ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if not meta:
        return
    for tag, label in ((0x00020003, "Media Storage SOP Instance UID"), (0x00020012, "Implementation Class UID")):
        value = str(meta.get(tag).value or "") if tag in meta else ""
        problem = uid_problem(value) if value and "retain_uids" not in checker.options else None
        if problem:
            sev = FAIL if tag == 0x00020003 else REVIEW
            checker.add(tag_text(tag), "uids:uid-not-remapped", sev, f"{label}: UID {problem}")
    if 0x00020016 in meta and str(meta[0x00020016].value or "").strip():
        checker.add("(0002,0016)", "text:source-ae-title", REVIEW,
                    f"Source Application Entity Title names the sending system: {mask(str(meta[0x00020016].value))}")
    if 0x00020102 in meta and meta[0x00020102].value:
        checker.add("(0002,0102)", "private:file-meta-private-information", FAIL, "Private Information in the file meta")


def _burned_in(checker: _Checker, ds: Dataset, path: Path) -> None:
    """Images at burned-in text risk: the pixel module's judgement, or metadata rules; then look."""
    if not any(t in ds for t in PIXEL_TAGS):
        return
    try:
        from . import pixels  # type: ignore[attr-defined]
    except ImportError:
        pixels = None
    reason = None
    if pixels is not None:
        try:
            reason = pixels.burned_in_risk(ds)
        except Exception:  # noqa: BLE001 - the pixel module failing must not hide the risk
            reason = metadata_risk(ds)
    else:
        reason = metadata_risk(ds)
    if not reason:
        return
    boxes, why_not = look_for_text(path, pixels)
    if boxes is None:
        checker.add("pixels", "burned-in:at-risk-unchecked", REVIEW,
                    f"image at burned-in text risk ({reason}); pixels not checked: {why_not}")
    elif boxes:
        where = "; ".join(f"rows {b[0]}-{b[2]}, cols {b[1]}-{b[3]}" for b in boxes[:3])
        checker.add("pixels", "burned-in:text-in-pixels", FAIL,
                    f"text found in the pixels ({reason}): {len(boxes)} region(s), {where}")


def metadata_risk(ds: Dataset) -> str | None:
    """Why an image may carry burned-in text, from its header alone (None if no reason)."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "Burned In Annotation is YES"
    modality = str(ds.get("Modality", "")).upper()
    if modality in RISK_MODALITIES:
        return f"modality {modality}"
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture"
    image_type = [str(v).upper() for v in _values(ds.get("ImageType", "") and ds.ImageType)]
    if "SECONDARY" in image_type or "SCREEN SAVE" in " ".join(image_type):
        return "secondary image type"
    return None


def look_for_text(path: Path, pixels=None) -> tuple[list[list[int]] | None, str]:
    """(text boxes, '') for an image at risk, or (None, why it could not be looked at).

    With deidkit.pixels present its clean_pixels (without layout rules) is the detector, so the
    verdict matches what deid_tool does; before that, pixel_detect on a few frames."""
    try:
        full = pydicom.dcmread(path, force=True)
    except Exception as e:  # noqa: BLE001
        return None, f"cannot be read ({type(e).__name__})"
    if pixels is not None and hasattr(pixels, "clean_pixels"):
        try:
            outcome = pixels.clean_pixels(full, [])
        except Exception as e:  # noqa: BLE001
            return None, f"pixel check failed ({type(e).__name__})"
        boxes = [b for frame in outcome.boxes for b in frame]
        if outcome.status == "hold" and not boxes and not outcome.reason.startswith("text"):
            return None, outcome.reason
        if outcome.status == "hold" and not boxes:
            return [[0, 0, int(full.get("Rows", 0) or 0), int(full.get("Columns", 0) or 0)]], ""
        return boxes, ""
    try:
        from .pixel_detect import find_text, to_grey8
    except ImportError:
        return None, "no pixel detector in this build"
    try:
        arr = full.pixel_array
        frames = int(full.get("NumberOfFrames", 1) or 1)
        samples = int(full.get("SamplesPerPixel", 1) or 1)
        bits = int(full.get("BitsStored", 8) or 8)
        planes = [arr[i] for i in sorted({0, frames // 2, frames - 1})] if frames > 1 else [arr]
        boxes = []
        for plane in planes:
            if samples == 1 and plane.ndim != 2:
                continue
            boxes += [b.as_list() for b in find_text(to_grey8(plane, bits))]
        return boxes, ""
    except Exception as e:  # noqa: BLE001 - undecodable pixels: say so, do not crash
        return None, f"pixel data could not be decoded ({type(e).__name__})"


def _truncated(ds: Dataset, size: int) -> str | None:
    """Why the file looks cut short, or None. Call before any element is converted.

    pydicom stops quietly where the bytes run out, so the last element read (pixel data when
    deferred) is compared with the file size; an image without pixel data was cut between
    elements."""
    keys = list(ds.keys())
    if keys:
        raw = ds.get_item(keys[-1], keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.length not in (None, 0xFFFFFFFF):
            if raw.value_tell + raw.length > size:
                return f"the last element {tag_text(keys[-1])} runs past the end of the file"
    if 0x00280010 in ds and not any(t in ds for t in PIXEL_TAGS):
        return "an image without pixel data"
    return None


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) >= 132 and head[128:132] == b"DICM"


def _read_header(path: Path) -> Dataset:
    """Header with large values left on disk. Files without preamble are accepted if they parse
    as a dataset with a SOP Class; anything else raises InvalidDicomError."""
    if _is_dicom(path):
        return pydicom.dcmread(path, defer_size=DEFER_SIZE)
    ds = pydicom.dcmread(path, force=True, defer_size=DEFER_SIZE)
    keys = list(ds.keys())
    if not keys or 0x00080016 not in ds or keys[0] < 0x00080000 or any(k.group == 0 or k.group > 0xFFFE for k in keys):
        raise InvalidDicomError("not DICOM")
    str(ds.SOPClassUID)
    return ds


def check_file(path: Path, rel: str, want_hash: bool, guidelines: gl.Guidelines | None = None) -> FileResult:
    """Everything that can be said about one file on its own. Never raises for bad input."""
    g = guidelines or _GUIDELINES
    assert g is not None
    result = FileResult(rel)
    try:
        result.size = path.stat().st_size
        if want_hash:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            result.sha256 = digest.hexdigest()
    except OSError as e:
        result.kind = "unreadable"
        result.findings.append(Finding(rel, "file", "files:unreadable", REVIEW, f"cannot be read ({e.strerror or e})"))
        return result
    if "/" not in rel and rel in OWN_REPORTS:
        result.kind = "own-report"
        return result
    if result.size == 0:
        result.kind = "unreadable"
        result.findings.append(Finding(rel, "file", "files:unreadable", REVIEW, "empty file (0 bytes)"))
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on odd values are not findings
            ds = _read_header(path)
    except InvalidDicomError:
        result.kind = "non-dicom"
        result.findings.append(Finding(rel, "file", "files:non-dicom", REVIEW,
                                       f"not a DICOM file ({result.size} bytes); a person should check its content"))
        return result
    except Exception as e:  # noqa: BLE001 - truncated or corrupt: one clear line, go on
        result.kind = "unreadable"
        kind = "truncated" if isinstance(e, (EOFError, OSError)) else "cannot be parsed"
        result.findings.append(Finding(rel, "file", "files:unreadable", REVIEW, f"DICOM file {kind} ({type(e).__name__})"))
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _check_dataset(ds, path, rel, g, result)
    except Exception as e:  # noqa: BLE001
        result.kind = "unreadable"
        result.findings.append(Finding(rel, "file", "files:unreadable", REVIEW,
                                       f"DICOM file cannot be checked to the end ({type(e).__name__})"))
        return result


def _check_dataset(ds: Dataset, path: Path, rel: str, g: gl.Guidelines, result: FileResult) -> FileResult:
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    is_dicomdir = sop_class == MEDIA_STORAGE_DIRECTORY or 0x00041220 in ds
    options = None if is_dicomdir else declared_options(ds)
    checker = _Checker(rel, view_for(g, options), sop_class, is_dicomdir)
    checker.result = result
    result.kind = "dicomdir" if is_dicomdir else "dicom"
    cut = _truncated(ds, result.size)
    if cut:
        checker.add("file", "files:unreadable", REVIEW, f"DICOM file truncated: {cut}")
    if not is_dicomdir:
        removed = str(ds.get("PatientIdentityRemoved", "") or "").strip().upper()
        if removed != "YES":
            checker.add("(0012,0062)", "identity:patient-identity-removed-missing", FAIL,
                        "Patient Identity Removed is " + ("missing" if not removed else f"'{removed}'")
                        + ": the file does not say it was de-identified")
        for option in ("retain_uids", "retain_device_identity", "retain_institution_identity", "retain_long_full_dates"):
            if options and option in options:
                checker.add("(0012,0064)", "identity:profile-retains-identity", REVIEW,
                            f"the file declares {gl.OPTION_CODES[option][1]}: such values are accepted as kept")
    _file_meta_findings(checker, ds)
    result.study = str(ds.get("StudyInstanceUID", "") or "")
    result.patient = str(ds.get("PatientID", "") or "")
    checker.walk(ds)
    if is_dicomdir:
        _dicomdir_file_ids(checker, ds)
    else:
        if not any(f.severity == FAIL for f in result.findings):  # a second opinion, not a repeat
            _identity_warnings(checker, ds)
        _burned_in(checker, ds, path)
    return result


def _dicomdir_file_ids(checker: _Checker, ds: Dataset) -> None:
    for i, record in enumerate(ds.get("DirectoryRecordSequence", []) or []):
        parts = _values(record.get("ReferencedFileID", "") and record.ReferencedFileID)
        for part in parts:
            for rule, severity, why in name_problems(part, checker.g):
                checker.add(f"(0004,1220)[{i}]>(0004,1500)", "names:dicomdir-record" if rule.startswith("names") else rule,
                            severity, f"DICOMDIR file reference: {why}")


def _identity_warnings(checker: _Checker, ds: Dataset) -> None:
    try:
        from .identity_check import identity_warnings  # type: ignore[attr-defined]
    except ImportError:
        return
    try:
        reasons = identity_warnings(ds)
    except Exception:  # noqa: BLE001
        return
    for reason in reasons:
        checker.add("header", "identity:identity-check", REVIEW, str(reason))


# ---- names of files and folders ---------------------------------------------------------------

def _neutral_patterns(prefix: str) -> list[re.Pattern]:
    return [re.compile(p) for p in (
        PSEUDONYM_RE.pattern, re.escape(prefix) + r"_[A-Z2-7]{10}",
        r"STUDY_[0-9A-F]{8}",
        r"SERIES_\d{4}_[A-Z0-9]{1,16}_[0-9A-F]{8}",
        r"IMG_\d{5}_[0-9A-F]{8}\.dcm",
    )]


_UID_NAME = re.compile(r"\d+(\.\d+){2,}")


def name_problems(name: str, g: gl.Guidelines) -> list[tuple[str, str, str]]:
    """(rule, severity, why) for one file or folder name; empty when the name is neutral."""
    prefix = g.settings.pseudonym_prefix
    if any(p.fullmatch(name) for p in _neutral_patterns(prefix)):
        return []
    stem = name
    for ext in NAME_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    if _UID_NAME.fullmatch(stem):
        problem = uid_problem(stem)
        return [("paths:uid-in-name", FAIL, f"named by a UID {problem}")] if problem else []
    out = []
    spaced = re.sub(r"[_]+", " ", stem)
    if re.search(r"[^\W\d_]{2,}\^[^\W\d_]{2,}", stem):
        out.append(("paths:person-name-in-name", FAIL, f"person name syntax in the name: {mask(name)}"))
    for kind, piece in text_hits(spaced):
        if kind == "person_name":
            continue
        severity = FAIL if kind in ("date", "email") else REVIEW
        out.append((f"paths:{kind}-in-name", severity, f"name contains something shaped like {kind}: {mask(piece)}"))
    words = {w.lower() for w in re.findall(r"[^\W\d_]{3,}", stem)}
    vocabulary = getattr(g, "vocabulary", frozenset())
    odd = sorted(w for w in words if w not in NEUTRAL_NAME_WORDS and w not in vocabulary and w != prefix.lower())
    if odd:
        out.append(("paths:name-like-word", REVIEW, f"name has word(s) that may be a person's name: {', '.join(mask(w) for w in odd[:3])}"))
    return out


# ---- the whole delivery ------------------------------------------------------------------------

def list_tree(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(files, folders, links) under root, sorted; links are not followed."""
    files, folders, links = [], [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            p = base / d
            if p.is_symlink():
                links.append(p)
                dirnames.remove(d)
            else:
                folders.append(p)
        for f in filenames:
            p = base / f
            (links if p.is_symlink() else files).append(p)
    return sorted(files), sorted(folders), sorted(links)


def rel_of(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_manifest(path: Path) -> tuple[dict[str, dict[str, str]], str | None]:
    """Rows of deid_manifest.csv by file; (rows, problem) where problem says why it is unusable."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "size", "sha256"} <= set(reader.fieldnames):
                return {}, "deid_manifest.csv lacks the columns file, size, sha256"
            return {row["file"]: row for row in reader if row.get("file")}, None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return {}, f"deid_manifest.csv cannot be read ({type(e).__name__})"


def verify(root: Path, guidelines: gl.Guidelines, jobs: int = 0, show_progress: bool = True) -> Verdict:
    """Check a delivery; pure with respect to root (reads only)."""
    files, folders, links = list_tree(root)
    findings: list[Finding] = []
    for link in links:
        findings.append(Finding(rel_of(link, root), "file", "files:link", REVIEW, "symbolic link, not followed"))
    manifest_path = root / MANIFEST_NAME
    manifest: dict[str, dict[str, str]] = {}
    if manifest_path.is_file():
        manifest, problem = read_manifest(manifest_path)
        if problem:
            findings.append(Finding(MANIFEST_NAME, "file", "completeness:manifest-unreadable", REVIEW, problem))
    want_hash = bool(manifest)
    results = _check_all(files, root, guidelines, want_hash, jobs, show_progress)
    for r in results:
        findings += r.findings
    findings += _cross_checks(root, results, folders, files, guidelines)
    if manifest:
        findings += _completeness(results, manifest, guidelines.settings.pseudonym_prefix)
    findings = _dedupe_profile(findings)
    findings.sort(key=lambda f: (f.file, f.location, f.rule, f.detail))
    status = "FAIL" if any(f.severity == FAIL for f in findings) else ("REVIEW" if findings else "PASS")
    dicom = sum(1 for r in results if r.kind in ("dicom", "dicomdir"))
    return Verdict(status, tuple(findings), len(results), dicom)


def _check_all(files: list[Path], root: Path, g: gl.Guidelines, want_hash: bool, jobs: int,
               show_progress: bool) -> list[FileResult]:
    rels = [rel_of(p, root) for p in files]
    progress = console.Progress(len(files), "Checking") if show_progress else None
    jobs = jobs or min(os.cpu_count() or 1, 8)
    out: list[FileResult] = []
    if jobs <= 1 or len(files) < 16:
        _init_worker(g)
        for p, rel in zip(files, rels):
            out.append(check_file(p, rel, want_hash, g))
            if progress:
                progress.advance()
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(g,)) as pool:
            chunk = max(1, min(64, len(files) // (jobs * 8) or 1))
            for r in pool.map(check_file, files, rels, [want_hash] * len(files), chunksize=chunk):
                out.append(r)
                if progress:
                    progress.advance()
    if progress:
        progress.close()
    return out


def delivery_identifiers(results: list[FileResult]) -> Identifiers:
    """Names, IDs and dates that some file leaked, as the engine's sweep would look for them."""
    ids = Identifiers()
    for r in results:
        for name in r.leaked_names:
            ids.add_name(name)
        for value in r.leaked_ids:
            if re.fullmatch(r"\d{8}", value):
                ids.exact |= {fold(s) for s in date_spellings(value)}
            else:
                ids.add_exact(value)
    return ids


def _cross_checks(root: Path, results: list[FileResult], folders: list[Path], files: list[Path],
                  g: gl.Guidelines) -> list[Finding]:
    """Values seen as identity in one file, found in another; names of files and folders."""
    ids = delivery_identifiers(results)
    out: list[Finding] = []
    flagged = {(f.file, f.location) for r in results for f in r.findings}
    for r in results:
        for location, value in r.texts:
            if (r.rel, location) in flagged:
                continue
            hits = ids.find(value)
            if hits:
                cat = "names" if "name" in hits else "ids"
                out.append(Finding(r.rel, location, f"{cat}:known-identity", FAIL,
                                   f"holds {'a name' if hits[0] == 'name' else 'an identifier'} seen as a patient's identity elsewhere in the delivery: {mask(value)}"))
                flagged.add((r.rel, location))
        if r.kind in ("non-dicom", "own-report"):
            out += _scan_content(root / r.rel, r.rel, ids, own=(r.kind == "own-report"))
    out += _split_studies(results)
    for path in folders + files:
        rel = rel_of(path, root)
        if "/" not in rel and rel in OWN_REPORTS:
            continue
        name = path.name
        problems = name_problems(name, g)
        if ids.find(re.sub(r"[_^]+", " ", name)):
            problems.append(("paths:header-value-in-name", FAIL, f"name holds a value seen in a header: {mask(name)}"))
        for rule, severity, why in problems:
            out.append(Finding(rel, "name", rule, severity, why))
    return out


def _split_studies(results: list[FileResult]) -> list[Finding]:
    """One study under two patient IDs: pseudonyms are inconsistent (or files were mixed up)."""
    patients: dict[str, dict[str, str]] = {}
    for r in results:
        if r.kind == "dicom" and r.study:
            patients.setdefault(r.study, {}).setdefault(r.patient, r.rel)
    out = []
    for study, by_patient in sorted(patients.items()):
        if len(by_patient) > 1:
            first = sorted(by_patient.values())[0]
            out.append(Finding(first, "(0020,000D)", "identity:study-split-over-patients", REVIEW,
                               f"this file's study appears under {len(by_patient)} different Patient IDs "
                               "in the delivery (inconsistent pseudonyms, or files mixed up)"))
    return out


def _scan_content(path: Path, rel: str, ids: Identifiers, own: bool) -> list[Finding]:
    try:
        with open(path, "rb") as f:
            data = f.read(NON_DICOM_SCAN_BYTES)
    except OSError:
        return []
    text = data.decode("utf-8", "replace")
    out = []
    hits = ids.find(text)
    if hits:
        out.append(Finding(rel, "file", f"{'names' if 'name' in hits else 'ids'}:known-identity", FAIL,
                           f"content holds {'a name' if hits[0] == 'name' else 'an identifier'} seen as a patient's identity elsewhere in the delivery"))
    if re.search(r"[^\W\d_]{2,}\^[^\W\d_]{2,}", text):
        out.append(Finding(rel, "file", "names:person-name-in-content", FAIL, "content holds person name syntax (LAST^FIRST)"))
    if own:
        for kind, piece in text_hits(text):
            if kind in STRONG_KINDS:
                out.append(Finding(rel, "file", f"{GENERIC_CATEGORY[kind]}:{kind.replace('_', '-')}-in-text", FAIL,
                                   f"deid_tool's own report holds something shaped like {kind}: {mask(piece)}"))
                break
    return out


def _completeness(results: list[FileResult], manifest: dict[str, dict[str, str]], prefix: str) -> list[Finding]:
    out = []
    for rel, row in sorted(manifest.items()):
        patient = (row.get("patient") or "").strip()
        if patient and not is_pseudonym(patient, prefix):
            out.append(Finding(MANIFEST_NAME, "file", "names:manifest-patient", FAIL,
                               f"deid_manifest.csv names a patient that is not a pseudonym: {mask(patient)}"))
            break
    on_disk = {r.rel: r for r in results}
    for rel, row in sorted(manifest.items()):
        r = on_disk.get(rel)
        if r is None:
            out.append(Finding(rel, "file", "completeness:missing", REVIEW, "listed in deid_manifest.csv, not in the delivery"))
            continue
        try:
            size = int(row.get("size", "") or -1)
        except ValueError:
            size = -1
        if size != r.size or (row.get("sha256", "").lower() != r.sha256):
            what = "size" if size != r.size else "SHA-256"
            out.append(Finding(rel, "file", "completeness:altered", REVIEW,
                               f"{what} differs from deid_manifest.csv: the file changed after de-identification"))
    for rel, r in sorted(on_disk.items()):
        if rel not in manifest and not ("/" not in rel and rel in OWN_REPORTS):
            out.append(Finding(rel, "file", "completeness:extra", REVIEW, "in the delivery but not in deid_manifest.csv"))
    return out


def _dedupe_profile(findings: list[Finding]) -> list[Finding]:
    """A declared retention option is a delivery-wide fact: one row, with a count."""
    seen: dict[str, list[Finding]] = {}
    rest = []
    for f in findings:
        if f.rule == "identity:profile-retains-identity":
            seen.setdefault(f.detail, []).append(f)
        else:
            rest.append(f)
    for detail, group in seen.items():
        first = min(group)
        rest.append(dataclasses.replace(first, detail=f"{detail} ({len(group)} file(s))"))
    return rest


# ---- reports and command line ------------------------------------------------------------------

def write_findings_csv(path: Path, findings: tuple[Finding, ...] | list[Finding]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for finding in findings:
            w.writerow(finding.row())
    os.replace(tmp, path)


CATEGORY_WORDS = {
    "names": "person names", "ids": "IDs", "dates": "dates", "addresses": "addresses / contact data",
    "private": "private data", "paths": "file or folder names", "burned-in": "burned-in text",
    "uids": "original UIDs", "text": "free text", "sequences": "sequence contents",
    "identity": "de-identification declaration", "files": "non-DICOM or unreadable files",
    "completeness": "completeness against the manifest",
}


def summary_lines(v: Verdict) -> list[str]:
    lines = [f"{v.files_checked} file(s) checked, {v.dicom_files} DICOM."]
    by_cat = Counter((f.category, f.severity) for f in v.findings)
    for (cat, sev), n in sorted(by_cat.items(), key=lambda kv: (kv[0][1] != FAIL, kv[0][0])):
        lines.append(f"{sev:6} {CATEGORY_WORDS.get(cat, cat)}: {n} finding(s)")
    return lines


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deid_tool --verify", description="Check a de-identified delivery (read-only).")
    p.add_argument("--verify", dest="dir", metavar="DIR", required=True, help="the delivered folder")
    p.add_argument("--report", metavar="PATH", help="HTML summary (default: beside DIR)")
    p.add_argument("--findings", metavar="PATH", help="findings CSV (default: beside DIR)")
    p.add_argument("--jobs", "--workers", dest="jobs", type=int, default=0,
                   help="parallel processes (default: one per core, up to 8)")
    p.add_argument("--yes", action="store_true", help=argparse.SUPPRESS)  # deid_tool's; nothing is asked
    p.add_argument("--guidelines", metavar="DIR", help="folder with guideline files overriding the bundled ones")
    return p


def main(argv: list[str]) -> int:
    """`--verify DIR [--report PATH] [--findings PATH]`: 0 PASS, 1 REVIEW or FAIL, 2 usage error."""
    parser = build_parser()
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    root = Path(args.dir)
    if not root.is_dir():
        console.error(f"{root} is not a folder", "give the delivered folder after --verify")
        return 2
    root = root.resolve()
    if root.parent == root:
        console.error("cannot verify a drive root", "give the delivered folder itself")
        return 2
    report = Path(args.report) if args.report else root.parent / f"{root.name}_verify_report.html"
    findings_path = Path(args.findings) if args.findings else root.parent / f"{root.name}_verify_findings.csv"
    for label, path in (("--report", report), ("--findings", findings_path)):
        if _inside(path, root):
            console.error(f"{label} {path} is inside the delivery", "nothing may be written inside DIR; choose a path outside it")
            return 2
    try:
        g = gl.load(Path(args.guidelines) if args.guidelines else None)
    except gl.GuidelineError as e:
        console.error(str(e), "fix or remove the guideline file named")
        return 2
    console.say(f"Verifying {root} against {g.describe()} (read-only).")
    v = verify(root, g, jobs=args.jobs)
    try:
        write_findings_csv(findings_path, v.findings)
        from .verify_report import write_html
        write_html(report, root.name, v, summary_lines(v), CATEGORY_WORDS)
    except OSError as e:
        console.error(f"cannot write the report ({e.strerror or e})", "choose --report/--findings in a writable folder")
        return 2
    words = {"PASS": "PASS: nothing suspicious found.",
             "REVIEW": "REVIEW: nothing that is certainly PHI, but a person should look at the findings.",
             "FAIL": "FAIL: PHI found. Do not take this delivery into the library; tell the sender."}
    console.verdict(words[v.status], summary_lines(v) + [f"Findings: {findings_path}", f"Summary:  {report}"],
                    ok=v.status == "PASS")
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main(["--verify", *sys.argv[1:]] if sys.argv[1:2] and sys.argv[1] != "--verify" else sys.argv[1:]))
