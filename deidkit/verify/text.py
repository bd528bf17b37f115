"""Name rules: what a text value or a file name holds, judged by what the attribute is.

Shapes come from deidkit.sweep.find_generic_phi (the engine's own patterns); this module decides
which shapes count where (issue 17): a person-name rule only in PN values and free text, never in
software versions, model names, private creators or code values; an ID rule never on a Code Value
/ Code Meaning; a date must be a real calendar date; a phone needs phone formatting and no unit;
file names know the usual neutral patterns (IM-0001-0002-0001.dcm, UIDs, IMxxxx).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from pydicom.uid import UID_dictionary

from ..contract import is_pseudonym, neutral_name_patterns
from ..sweep import caret_names_someone, find_generic_phi, mask
from .rules import FAIL, REVIEW

__all__ = ["is_pseudonym", "name_problems", "name_problems_for", "text_hits", "uid_problem", "values_of"]

# Vendor / research UID roots seen in the wild; anything else not under 2.25 is called a site root.
VENDOR_ROOTS = {
    "1.2.840.113619": "GE", "1.3.12.2.1107": "Siemens", "1.3.46.670589": "Philips",
    "1.2.392.200036.9116": "Canon/Toshiba", "1.2.392.200036.9125": "Fujifilm", "1.2.840.113704": "Philips/ADAC",
    "1.2.840.113564": "Agfa", "1.2.276.0.7230010": "OFFIS DCMTK", "1.2.826.0.1.3680043.8.498": "pydicom",
    "1.2.826.0.1.3680043": "Medical Connections", "1.3.6.1.4.1": "IANA enterprise",
}
# Free text in the sense of PS3.15 (text a person typed): every shape counts here.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC"})
FREE_TEXT_KEYWORD = re.compile(r"(Comments?|TextValue|Description|Remarks|Note|Reason|Findings|History|Impressions?)$")
# Coded entries: values from coding schemes (DCM, SCT, LN, ...) are not IDs, dates or names.
CODED_KEYWORDS = frozenset({
    "CodeValue", "LongCodeValue", "URNCodeValue", "CodeMeaning", "CodingSchemeVersion", "CodingSchemeDesignator",
    "ContextIdentifier", "ContextGroupVersion", "ContextGroupExtensionCreatorUID", "MappingResource",
    "MappingResourceName", "ContextGroupLocalVersion", "CodingSchemeName", "CodingSchemeResponsibleOrganization",
    "CodingSchemeIdentificationSequence", "CodingSchemeRegistry", "CodingSchemeExternalID",
    "WaveformChannelNumber", "ChannelLabel", "TemplateIdentifier", "MappingResourceUID",
})
# Vendor text that is never a person: judged only for e-mail shapes.
DEVICE_KEYWORDS = frozenset({
    "SoftwareVersions", "ManufacturerModelName", "Manufacturer", "DeviceSerialNumber", "ReceiveCoilName",
    "TransmitCoilName", "SequenceName", "ProtocolName", "ConvolutionKernel", "FilterType", "ImplementationVersionName",
    "PulseSequenceName", "CoilString", "SequenceVariant", "ScanOptions", "ImageType", "ContrastBolusAgent",
})
UNITS = re.compile(r"\s*(ms|msec|s|sec|mm|cm|m|hz|khz|mhz|%|ml|mg|kg|kv|kvp|ma|mas|deg|°|t|g|mt|bpm|px|x)\b", re.I)


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


def is_class_uid_shape(uid: str) -> bool:
    """A UID shaped like the name of a kind of object (a vendor-private SOP Class such as Philips
    1.3.46.670589.11.0.0.12.1 or GE 1.2.840.113619.4.26), not like an instance's: at most 32
    digits in all and no component of more than 7 digits. Instance UIDs carry timestamps, serial
    numbers or random parts (1.3.12.2.1107.5.2.32.35162.2012021516023981434013893)."""
    parts = uid.strip().rstrip("\0").split(".")
    return all(p.isdigit() and len(p) <= 7 for p in parts) and sum(map(len, parts)) <= 32


def is_calendar_date(piece: str) -> bool:
    """True when piece is a real date between 1900 and next year (YYYYMMDD, Y-M-D, D-M-Y, D Mon Y)."""
    digits = re.findall(r"\d+", piece)
    now = _dt.date.today().year + 1
    candidates = []
    if len(digits) == 1 and len(digits[0]) == 8:
        d = digits[0]
        candidates.append((d[:4], d[4:6], d[6:]))
    elif len(digits) == 3:
        a, b, c = digits
        candidates += [(a, b, c)] if len(a) == 4 else [(c if len(c) == 4 else "20" + c, b, a), (c, a, b)]
    elif len(digits) == 2:  # day and year with a month name
        return 1900 <= int(digits[-1]) <= now if len(digits[-1]) == 4 else False
    for y, m, d in candidates:
        try:
            if 1900 <= int(y) <= now:
                _dt.date(int(y), int(m), int(d))
                return True
        except ValueError:
            continue
    return False


def is_phone(text: str, start: int, end: int) -> bool:
    """Phone formatting: '+', '(', a dash, or a last group of 4+ digits; 7-15 digits; no unit after."""
    piece = text[start:end]
    digits = sum(c.isdigit() for c in piece)
    if not 7 <= digits <= 15 or UNITS.match(text, end):
        return False
    groups = re.findall(r"\d+", piece)
    return "+" in piece or "(" in piece or "-" in piece or len(groups[-1]) >= 4


def name_syntax(piece: str, vocabulary: frozenset[str]) -> bool:
    """LAST^FIRST as Clean Descriptors judges it (sweep.caret_names_someone): 'SMITH^JOHN' and
    'Smith^CT' are names; 'MAR^CT', 'HEAD^Brain', 'FMRIF^QA' (Region^Exam, acronyms) are labels."""
    return caret_names_someone(piece, vocabulary)


def title_name(piece: str, vocabulary: frozenset[str]) -> bool:
    """'Dr. Miller', 'Mrs Roe' are names; 'MR Imaging', 'MS lesion' (modality, disease) are not."""
    m = re.match(r"(\w+)(\.?)\s+(\w+)", piece)
    if not m:
        return False
    title, dot, word = m.groups()
    return not (title.isupper() and not dot) and word.lower() not in vocabulary


def text_hits(text: str, vr: str = "LT", keyword: str = "",
              vocabulary: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(kind, matched text) of PHI shapes in a text value, judged by what the attribute is.

    kind is one of date, email, url, phone, address, id, person_name (deidkit.sweep's kinds)."""
    if keyword in CODED_KEYWORDS:
        return []
    free = vr in FREE_TEXT_VRS or vr == "PN" or bool(FREE_TEXT_KEYWORD.search(keyword))
    device = keyword in DEVICE_KEYWORDS
    out = []
    for f in find_generic_phi(text):
        piece = text[f.start:f.end]
        if device and f.kind != "email":
            continue
        if f.kind == "id":
            digits = re.sub(r"\D", "", piece)
            prefixed = re.match(r"[A-Za-z]{1,4}-0", piece) is not None  # 'RU-00077': a site's ID form
            if not digits or (int(digits) < 100000 and not prefixed) or UNITS.match(text, f.end):
                continue
        elif f.kind == "date" and not is_calendar_date(piece):
            continue
        elif f.kind == "phone" and not is_phone(text, f.start, f.end):
            continue
        elif f.kind == "person_name":
            if not free or ("^" in piece and not name_syntax(piece, vocabulary)):
                continue
            if "^" in piece and f.start > 0 and text[f.start - 1] in "/\\.,-":
                continue  # 'measured,/MAR^CT': a path or a list, not a name
            if "^" not in piece and not title_name(piece, vocabulary):
                continue
        out.append((f.kind, piece))
    return out


# ---- names of files and folders ---------------------------------------------------------------

# File/folder name words that say nothing about a person (besides the descriptor vocabulary).
NEUTRAL_NAME_WORDS = frozenset({
    "dicom", "dicomdir", "dcm", "dic", "ima", "img", "image", "images", "im", "series", "ser", "se",
    "study", "studies", "st", "subj", "subject", "subjects", "patient", "patients", "pat", "pt",
    "anon", "anonymized", "anonymised", "deid", "deidentified", "export", "exports", "data", "files",
    "file", "scan", "scans", "slice", "slices", "frame", "frames", "case", "cases", "site", "batch",
    "delivery", "part", "instance", "instances", "object", "objects", "readme", "manifest",
    "summary", "report", "reports", "csv", "txt", "json", "xml", "html", "zip", "dir", "folder",
    "volume", "vol", "run", "seq", "sequence", "acq", "acquisition", "raw", "output", "input",
    "ct", "mr", "us", "cr", "dx", "mg", "nm", "xa", "rf", "ot", "sc", "sr", "pr", "ko", "seg",
    "rtstruct", "rtplan", "rtdose", "rtimage", "doc", "io", "px", "es", "xc", "sm", "gm", "op",
    "opt", "ivus", "bmd", "hd", "ecg", "au", "reg", "fid", "pdf", "cdrom", "media", "viewer",
    "index", "autorun", "inf", "broken", "empty", "trunc", "truncated", "nopreamble", "thumbs",
    "store", "ds_store", "lock", "log", "tmp", "temp", "backup", "new", "old", "copy", "final",
    "other", "dwi", "bold", "epi", "fmap", "anat", "func", "sub", "ses", "echo", "phase", "mag",
})
NAME_EXTENSIONS = (".dcm", ".dicom", ".ima", ".img", ".dic")
_UID_NAME = re.compile(r"\d+(\.\d+){2,}")
_UID_PART = re.compile(r"(?<![\d.])\d+(\.\d+){3,}(?![\d.])")
_INDEX_NAME = re.compile(r"[A-Za-z]{0,8}[-_]?\d+([-_.]\d+)*")  # IM-0001-0002-0001, IM0001, I10, 00001


def _stem(name: str) -> str:
    for ext in NAME_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def name_problems(name: str, g: Any) -> list[tuple[str, str, str]]:
    """(rule, severity, why) for one file or folder name under Guidelines g; empty when neutral."""
    return name_problems_for(name, g.settings.pseudonym_prefix, getattr(g, "vocabulary", frozenset()))


def name_problems_for(name: str, prefix: str, vocabulary: frozenset[str]) -> list[tuple[str, str, str]]:
    """(rule, severity, why) for one file or folder name; empty when the name is neutral."""
    if any(p.fullmatch(name) for p in neutral_name_patterns(prefix)):
        return []
    stem = _stem(name)
    if _UID_NAME.fullmatch(stem):
        problem = uid_problem(stem)
        return [("paths:uid-in-name", FAIL, f"named by a UID {problem}")] if problem else []
    out: list[tuple[str, str, str]] = []
    for m in _UID_PART.finditer(stem):
        problem = uid_problem(m.group())
        if problem:
            out.append(("paths:uid-in-name", FAIL, f"name holds a UID {problem}"))
            break
    stem = _UID_PART.sub(" ", stem)
    index_like = _INDEX_NAME.fullmatch(stem) is not None
    if re.search(r"[^\W\d_]{2,}\^[^\W\d_]{2,}", stem):
        out.append(("paths:person-name-in-name", FAIL, f"person name syntax in the name: {mask(name)}"))
    spaced = re.sub(r"[_]+", " ", stem)
    for kind, piece in text_hits(spaced, "LO", "", vocabulary):
        if kind == "person_name" or (index_like and kind in ("phone", "id")):
            continue
        severity = FAIL if kind in ("date", "email") else REVIEW
        out.append((f"paths:{kind}-in-name", severity, f"name contains something shaped like {kind}: {mask(piece)}"))
    words = {w.lower() for w in re.findall(r"[^\W\d_]{3,}", stem)}
    odd = sorted(w for w in words if w not in NEUTRAL_NAME_WORDS and w not in vocabulary and w != prefix.lower())
    if odd:
        out.append(("paths:name-like-word", REVIEW,
                    f"name has word(s) that may be a person's name: {', '.join(mask(w) for w in odd[:3])}"))
    return out


def values_of(value: Any) -> list[str]:
    """The non-empty values of an element value as strings (multi-valued or not)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value if str(v) != ""]
    return [str(value)]
