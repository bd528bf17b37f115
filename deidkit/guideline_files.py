"""The guideline files' formats: their names, the codes and options they use, the row types, and
the parsers that read and validate each file's text (raising GuidelineError naming the file and
line). Loading (which copy of each file, the hash) and the Guidelines questions stay in
deidkit.guidelines, which re-exports these names.
"""
from __future__ import annotations

import configparser
import csv
import io
import re
from dataclasses import dataclass

PROFILE_FILE = "confidentiality_profile.csv"
SAFE_PRIVATE_FILE = "safe_private.csv"
TYPES_FILE = "attribute_types.csv"
SETTINGS_FILE = "settings.ini"
VOCABULARY_FILE = "descriptor_vocabulary.txt"
PIXEL_RULES_FILE = "pixel_redaction_rules.csv"  # parsed by deidkit.pixels; hashed and bundled here
PRIVATE_KB_FILE = "private_tag_kb.csv"
RESEARCH_PRIVATE_FILE = "research_private.csv"
# Private dispositions (TCIA's codes): k keep, h remap a UID-like value with the keyed UID mapping,
# o shift a date / date-time by the patient's offset, oi shift a date held as a number of seconds,
# d delete. Every disposition but d keeps the element (changed as said).
PRIVATE_DISPOSITIONS = {"k", "h", "o", "oi", "d"}
PRIVATE_KEEPS = frozenset({"k", "h", "o", "oi"})
PRIVATE_CHECKS = {"", "number", "token", "sequence", "csa", "ascconv", "geprotocol", "geuserdata", "physio"}  # csa/ascconv: kept only as deidkit.csa cleans it
UNLISTED_TEXT_FILE = "unlisted_text_attributes.csv"
RISK_FILE = "burned_in_risk.csv"
GUIDELINE_FILES = (PROFILE_FILE, SAFE_PRIVATE_FILE, TYPES_FILE, SETTINGS_FILE, VOCABULARY_FILE, PIXEL_RULES_FILE,
                   RISK_FILE, UNLISTED_TEXT_FILE, PRIVATE_KB_FILE, RESEARCH_PRIVATE_FILE)
UNLISTED_ACTIONS = {"K", "C", "X", "Z"}
RISK_MATCHES = ("flag", "sop_class", "modality", "image_type")
RISK_ACTIONS = ("check", "hold", "labels")

OPTIONS = (
    "retain_safe_private", "retain_uids", "retain_device_identity", "retain_institution_identity",
    "retain_patient_characteristics", "retain_long_full_dates", "retain_long_modified_dates",
    "clean_descriptors", "clean_structured_content", "clean_graphics",
)
# PS3.16 CID 7050 De-identification Method codes (scheme DCM).
OPTION_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_long_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_long_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}
BASIC_CODES = {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
OPTION_VALUES = {"", "K", "C"}
# How protective a single code is when two enabled options disagree (higher wins).
PROTECTION = {"X": 5, "Z": 4, "D": 3, "U": 3, "C": 2, "K": 1}
VALID_VRS = {
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
    "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
    "UT", "UV",
}
_TAG_RE = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")
PRIVATE_TAG_TEXT = "(gggg,eeee)"


class GuidelineError(ValueError):
    """A guideline file is missing or malformed; the message names file and line."""


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str
    name: str
    keyword: str
    vr: str
    basic: str
    options: dict[str, str]
    retired: bool

    def code_under(self, enabled: frozenset[str]) -> str:
        """The table's code for this row under the enabled options (may still be combined)."""
        codes = [self.options[o] for o in OPTIONS if o in enabled and self.options.get(o)]
        if not codes:
            return self.basic
        return max(codes, key=lambda c: PROTECTION[c])


@dataclass(frozen=True)
class SafePrivate:
    """One private element the guidelines know: creator + group + element byte in its block."""

    private_creator: str
    group: int
    element_byte: int
    name: str
    vr: str
    disposition: str = "k"  # k, h, o, oi or d (PRIVATE_DISPOSITIONS)
    source: str = "E.3.10-1"
    check: str = ""         # "number": every value must read as a number, else it is deleted

    @property
    def kept(self) -> bool:
        """True when the disposition keeps the element (every one but d)."""
        return self.disposition in PRIVATE_KEEPS


@dataclass(frozen=True)
class UnlistedText:
    """One row of unlisted_text_attributes.csv: a public text attribute Table E.1-1 does not list."""

    keyword: str
    vr: str
    action: str   # K keep, C clean (deidkit.text_clean), X remove, Z empty
    kept_by: str  # option under which an X row is kept ("" none)
    reason: str

    def code_under(self, enabled: frozenset[str]) -> str:
        """The action code with these options enabled (K when the option that keeps an X row is on)."""
        return "K" if self.kept_by and self.kept_by in enabled else self.action


@dataclass(frozen=True)
class RiskRule:
    """One row of burned_in_risk.csv: images matching it may carry burned-in text.

    match is one of RISK_MATCHES; for "flag" the value is (keyword, VALUE), else the upper-cased
    text to compare (SOP Class UID, Modality, one Image Type value)."""

    match: str
    value: str
    keyword: str             # the attribute compared (pydicom keyword)
    action: str              # "check" (detector looks, person sees proposals), "hold", or "labels"
                             # (frames are labels, e.g. segment masks: only flag rows apply)
    person_must_see: bool    # listed for a person even when the detector finds no text
    reason: str              # plain words shown to the person
    line: int


@dataclass(frozen=True)
class Settings:
    """The site settings of settings.ini: options, pixel cleaning, pseudonyms, date shift range, what is held."""
    options: frozenset[str]
    clean_pixel_data: bool = True
    trust_pixel_detector: bool = False
    pseudonym_prefix: str = "SUBJ"
    pseudonym_tags: tuple[int, ...] = (0x00100010, 0x00100020)
    min_shift_days: int = 365
    max_shift_days: int = 3650
    hold_structured_reports: bool = True
    hold_encapsulated_documents: bool = True

def resolve_combined(code: str, module_type: str | None) -> str:
    """Pick one code from a combined one (PS3.15 E.1.1).

    Type 1 needs a value (D), Type 2 may be empty (Z), Type 3 may go (X). Where the Type is not
    known we take Z when offered (valid whether the attribute is Type 2 or 3 and leaks nothing),
    else X. X/Z/U* keeps the sequence with its UIDs remapped (U), which keeps references valid.
    """
    if "/" not in code:
        return code
    parts = code.split("/")
    if "U*" in parts:
        return "U"
    if module_type is not None:
        wanted = {"1": "D", "2": "Z", "3": "X"}.get(module_type[0])
        if wanted in parts:
            return wanted
        if wanted == "X" and "Z" in parts:
            return "Z"
    if "Z" in parts:
        return "Z"
    return "X" if "X" in parts else parts[-1]


def parse_tag(text: str) -> tuple[int, int] | None:
    """'(0010,0010)' -> (mask, value); x digits are wildcards. None if not a tag."""
    m = _TAG_RE.match(text.strip())
    if not m:
        return None
    digits = m.group(1) + m.group(2)
    mask = int("".join("0" if c in "xX" else "F" for c in digits), 16)
    value = int("".join("0" if c in "xX" else c for c in digits), 16)
    return mask, value


def _csv_rows(text: str, name: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows of a CSV whose leading '#' lines are comments, with their 1-based line numbers."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    reader = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    if reader.fieldnames is None:
        raise GuidelineError(f"{name}: no header row")
    rows = []
    for i, row in enumerate(reader):
        if not any((v or "").strip() for v in row.values()):
            continue
        rows.append((start + 2 + i, {k: (v or "").strip() for k, v in row.items() if k}))
    return list(reader.fieldnames), rows


def _edition(text: str, name: str) -> str:
    m = re.search(r"^#\s*edition:\s*(\S+)", text, re.M)
    if not m:
        raise GuidelineError(f"{name}: missing '# edition: ...' line at the top")
    return m.group(1)


def _profile_rule(row: dict[str, str], where: str) -> Rule:
    """One row of the profile table as a Rule; GuidelineError (where: file and line) if wrong."""
    basic = row["basic"].upper()
    if basic not in BASIC_CODES:
        raise GuidelineError(f"{where}: action '{row['basic']}' is not one of {sorted(BASIC_CODES)}")
    options = {o: row[o].upper() for o in OPTIONS}
    for o, v in options.items():
        if v not in OPTION_VALUES:
            raise GuidelineError(f"{where}: column {o} holds '{v}'; only K, C or empty")
    vr = row["vr"].upper()
    if vr and vr not in VALID_VRS:
        raise GuidelineError(f"{where}: VR '{vr}' is not a DICOM VR")
    return Rule(row["tag"], row["name"], row.get("keyword", ""), vr, basic, options,
                row.get("retired", "N").upper() == "Y")


def parse_profile(text: str, name: str = PROFILE_FILE) -> tuple[str, dict[int, Rule], tuple, Rule]:
    """The profile table (Table E.1-1 as CSV): edition, rules by tag, masked rules, the private rule; GuidelineError names the line."""
    edition = _edition(text, name)
    fields, rows = _csv_rows(text, name)
    required = {"tag", "name", "vr", "basic", *OPTIONS}
    missing = required - set(fields)
    if missing:
        raise GuidelineError(f"{name}: missing columns {', '.join(sorted(missing))}")
    exact: dict[int, Rule] = {}
    masked: list[tuple[int, int, Rule]] = []
    private_rule = None
    for line, row in rows:
        where = f"{name} line {line}"
        rule = _profile_rule(row, where)
        if row["tag"].lower() == PRIVATE_TAG_TEXT:
            private_rule = rule
            continue
        parsed = parse_tag(row["tag"])
        if parsed is None:
            raise GuidelineError(f"{where}: tag '{row['tag']}' is not like (0010,0010) or (60xx,3000)")
        mask, value = parsed
        if mask == 0xFFFFFFFF:
            if value in exact:
                raise GuidelineError(f"{where}: tag {row['tag']} is listed twice")
            exact[value] = rule
        else:
            masked.append((mask, value, rule))
    if private_rule is None:
        raise GuidelineError(f"{name}: no row for private attributes {PRIVATE_TAG_TEXT}")
    if len(exact) < 100:
        raise GuidelineError(f"{name}: only {len(exact)} attributes; is this the right file?")
    return edition, exact, tuple(masked), private_rule


def parse_safe_private(text: str, name: str = SAFE_PRIVATE_FILE) -> dict[tuple[str, int, int], SafePrivate]:
    """The safe private table (E.3.10-1 as CSV) keyed by (creator lower case, group, element byte); GuidelineError names the line."""
    fields, rows = _csv_rows(text, name)
    if not {"private_creator", "tag", "vr"} <= set(fields):
        raise GuidelineError(f"{name}: needs columns private_creator, tag, vr")
    out = {}
    for line, row in rows:
        m = re.match(r"^\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)$", row["tag"])
        if not m or int(m.group(1), 16) % 2 == 0:
            raise GuidelineError(f"{name} line {line}: tag '{row['tag']}' is not a private tag like (0019,xx0C)")
        vr = row["vr"].upper()
        if vr and not set(vr.split("/")) <= VALID_VRS:
            raise GuidelineError(f"{name} line {line}: VR '{vr}' is not a DICOM VR")
        group, elem = int(m.group(1), 16), int(m.group(2), 16)
        out[(row["private_creator"].lower(), group, elem)] = SafePrivate(
            row["private_creator"], group, elem, row.get("name", ""), vr)
    return out


def _check_vr_problem(check: str, vr: str) -> str | None:
    """Why a private table row's check cannot apply to its VR, or None when it can."""
    if check == "number" and vr and not set(vr.split("/")) <= NUMERIC_VRS | {"SH", "LO"}:
        return f"check number needs a numeric VR (or SH/LO holding numbers), not '{vr}'"
    if check == "sequence" and vr != "SQ":
        return "check sequence needs VR SQ"
    if check == "token" and vr not in ("CS", "SH", "LO"):
        return "check token needs VR CS, SH or LO"
    if check in ("csa", "ascconv", "geprotocol", "geuserdata", "physio") and vr not in ("OB", "OW", "UN"):
        return f"check {check} needs VR OB, OW or UN"
    return None


def parse_private_table(text: str, name: str) -> dict[tuple[str, int, int], SafePrivate]:
    """private_tag_kb.csv / research_private.csv: private_creator, tag (gggg,xxEE), name, vr,
    disposition (k h o oi d), optional check (number, sequence), source/reason."""
    fields, rows = _csv_rows(text, name)
    if not {"private_creator", "tag", "vr", "disposition"} <= set(fields):
        raise GuidelineError(f"{name}: needs columns private_creator, tag, vr, disposition")
    out = {}
    for line, row in rows:
        where = f"{name} line {line}"
        m = re.match(r"^\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)$", row["tag"])
        if not m or int(m.group(1), 16) % 2 == 0 or int(m.group(1), 16) <= 0x0008:
            raise GuidelineError(f"{where}: tag '{row['tag']}' is not a private tag like (0019,xx0C)")
        if not row["private_creator"]:
            raise GuidelineError(f"{where}: private_creator is empty")
        vr = row["vr"].upper()
        if vr and not set(vr.split("/")) <= VALID_VRS:
            raise GuidelineError(f"{where}: VR '{vr}' is not a DICOM VR")
        disposition = row["disposition"].lower()
        if disposition not in PRIVATE_DISPOSITIONS:
            raise GuidelineError(f"{where}: disposition '{row['disposition']}' is not one of k, h, o, oi, d")
        check = row.get("check", "").lower()
        if check not in PRIVATE_CHECKS:
            raise GuidelineError(f"{where}: check '{check}' is not one of number, token, sequence, csa, ascconv, geprotocol, geuserdata, physio or empty")
        problem = _check_vr_problem(check, vr)
        if problem:
            raise GuidelineError(f"{where}: {problem}")
        if name == RESEARCH_PRIVATE_FILE and not row.get("reason"):
            raise GuidelineError(f"{where}: every row needs a reason")
        group, elem = int(m.group(1), 16), int(m.group(2), 16)
        key = (row["private_creator"].lower(), group, elem)
        if key in out:
            raise GuidelineError(f"{where}: {row['private_creator']} {row['tag']} is listed twice")
        out[key] = SafePrivate(row["private_creator"], group, elem, row.get("name", ""), vr, disposition,
                               row.get("source") or name, check)
    return out


NUMERIC_VRS = {"DS", "IS", "FL", "FD", "US", "SS", "UL", "SL", "UV", "SV", "OF", "OD"}


def merge_private_tables(kb: dict, safe: dict, research: dict) -> dict[tuple[str, int, int], SafePrivate]:
    """The private part of the guidelines: the knowledge base, E.3.10-1 on top (it wins where
    they differ), our research table on top of both. Elements on none of them are deleted."""
    merged = dict(kb)
    merged.update(safe)
    merged.update(research)
    return merged


def parse_types(text: str, name: str = TYPES_FILE) -> dict[int, tuple]:
    """attribute_types.csv: per tag, (PS3.3 Type, SOP Class UID prefixes) pairs; GuidelineError names the line."""
    _, rows = _csv_rows(text, name)
    out: dict[int, list] = {}
    for line, row in rows:
        parsed = parse_tag(row.get("tag", ""))
        attr_type = row.get("type", "")
        if parsed is None or parsed[0] != 0xFFFFFFFF or attr_type[:1] not in {"1", "2", "3"}:
            raise GuidelineError(f"{name} line {line}: needs a tag like (0010,0020) and a type 1, 2 or 3")
        iods = tuple(p.strip() for p in row.get("iods", "*").split("|") if p.strip()) or ("*",)
        out.setdefault(parsed[1], []).append((attr_type, iods))
    return {k: tuple(v) for k, v in out.items()}


def parse_unlisted_text(text: str, name: str = UNLISTED_TEXT_FILE) -> dict[int, UnlistedText]:
    """unlisted_text_attributes.csv by tag; GuidelineError names the line."""
    _, rows = _csv_rows(text, name)
    out = {}
    for line, row in rows:
        parsed = parse_tag(row.get("tag", ""))
        action, kept_by = row.get("action", ""), row.get("kept_by", "")
        if parsed is None or parsed[0] != 0xFFFFFFFF or parsed[1] >> 16 & 1:
            raise GuidelineError(f"{name} line {line}: needs a public tag like (3002,0020)")
        if action not in UNLISTED_ACTIONS or (kept_by and kept_by not in OPTIONS):
            raise GuidelineError(f"{name} line {line}: action must be K, C, X or Z; kept_by an option name or empty")
        out[parsed[1]] = UnlistedText(row.get("keyword", ""), row.get("vr", ""), action, kept_by, row.get("reason", ""))
    return out


def _pseudonym_settings(cp: configparser.ConfigParser, name: str) -> tuple[str, list[int]]:
    """[pseudonyms] prefix and the tags of its attributes; GuidelineError names what is wrong."""
    from pydicom.datadict import tag_for_keyword

    tags = []
    for keyword in cp.get("pseudonyms", "attributes", fallback="PatientName, PatientID").split(","):
        tag = tag_for_keyword(keyword.strip())
        if tag is None:
            raise GuidelineError(f"{name}: [pseudonyms] attributes: '{keyword.strip()}' is not a DICOM keyword")
        tags.append(tag)
    prefix = cp.get("pseudonyms", "prefix", fallback="SUBJ").strip()
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", prefix):
        raise GuidelineError(f"{name}: [pseudonyms] prefix must be 1-8 capital letters/digits")
    return prefix, tags


def parse_settings(text: str, name: str = SETTINGS_FILE) -> Settings:
    """settings.ini as Settings; GuidelineError names the setting that is wrong."""
    cp = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    try:
        cp.read_string(text, source=name)
    except configparser.Error as e:
        raise GuidelineError(f"{name}: {e}".splitlines()[0]) from None

    def flag(section: str, key: str, default: bool) -> bool:
        try:
            return cp.getboolean(section, key, fallback=default)
        except ValueError:
            raise GuidelineError(f"{name}: [{section}] {key} must be yes or no") from None

    def number(section: str, key: str, default: int) -> int:
        try:
            return cp.getint(section, key, fallback=default)
        except ValueError:
            raise GuidelineError(f"{name}: [{section}] {key} must be a whole number") from None

    if cp.has_section("profile"):
        unknown = set(cp["profile"]) - set(OPTIONS) - {"clean_pixel_data"}
        if unknown:
            raise GuidelineError(f"{name}: [profile] has unknown option(s) {', '.join(sorted(unknown))}")
    enabled = frozenset(o for o in OPTIONS if flag("profile", o, False))
    if {"retain_long_full_dates", "retain_long_modified_dates"} <= enabled:
        raise GuidelineError(f"{name}: choose one of retain_long_full_dates and retain_long_modified_dates")
    lo, hi = number("dates", "min_shift_days", 365), number("dates", "max_shift_days", 3650)
    if not 1 <= lo <= hi <= 36500:
        raise GuidelineError(f"{name}: [dates] needs 1 <= min_shift_days <= max_shift_days <= 36500")
    prefix, tags = _pseudonym_settings(cp, name)
    return Settings(
        options=enabled,
        clean_pixel_data=flag("profile", "clean_pixel_data", True),
        trust_pixel_detector=flag("pixels", "trust_detector", False),
        pseudonym_prefix=prefix,
        pseudonym_tags=tuple(tags),
        min_shift_days=lo, max_shift_days=hi,
        hold_structured_reports=flag("held_back", "hold_structured_reports", True),
        hold_encapsulated_documents=flag("held_back", "hold_encapsulated_documents", True),
    )


_RISK_KEYWORDS = {"sop_class": "SOPClassUID", "modality": "Modality", "image_type": "ImageType"}


def parse_burned_in_risk(text: str, name: str = RISK_FILE) -> tuple[RiskRule, ...]:
    """Rows of burned_in_risk.csv in file order; GuidelineError names file and line when wrong."""
    from pydicom.datadict import tag_for_keyword

    fields, rows = _csv_rows(text, name)
    needed = {"match", "value", "action", "person_must_see", "reason"}
    if not needed <= set(fields):
        raise GuidelineError(f"{name}: needs columns {', '.join(sorted(needed))}")
    out = []
    seen = set()
    for line, row in rows:
        where = f"{name} line {line}"
        match, value = row["match"].lower(), row["value"].strip()
        if match not in RISK_MATCHES:
            raise GuidelineError(f"{where}: match '{row['match']}' is not one of {', '.join(RISK_MATCHES)}")
        action = row["action"].lower()
        if action not in RISK_ACTIONS:
            raise GuidelineError(f"{where}: action '{row['action']}' is not one of {', '.join(RISK_ACTIONS)}")
        must_see = row["person_must_see"].lower()
        if must_see not in ("yes", "no"):
            raise GuidelineError(f"{where}: person_must_see must be yes or no")
        if not value or not row["reason"]:
            raise GuidelineError(f"{where}: value and reason must not be empty")
        if match == "flag":
            keyword, sep, wanted = value.partition("=")
            if not sep or tag_for_keyword(keyword.strip()) is None or not wanted.strip():
                raise GuidelineError(f"{where}: flag '{value}' is not like BurnedInAnnotation=YES")
            keyword, value = keyword.strip(), wanted.strip().upper()
        else:
            keyword = _RISK_KEYWORDS[match]
            value = value.upper()
            if match == "sop_class" and not re.fullmatch(r"[0-9]+(\.[0-9]+)+", value):
                raise GuidelineError(f"{where}: '{value}' is not a SOP Class UID")
        if (keyword, value) in seen:
            raise GuidelineError(f"{where}: {keyword} {value} is listed twice")
        seen.add((keyword, value))
        out.append(RiskRule(match, value, keyword, action, must_see == "yes", row["reason"], line))
    if not out:
        raise GuidelineError(f"{name}: no rules; is this the right file?")
    return tuple(out)


def parse_vocabulary(text: str) -> frozenset[str]:
    """The imaging vocabulary: one lower-case word a line, # comments skipped."""
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))
