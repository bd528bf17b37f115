"""The delivery contract, written once: what deid_tool writes, what --verify and rename_folders
expect of it, and what the kit's own files look like.

Everything here is data (names, patterns, enums, catalogues) plus small pure functions over it.
Modules that used to define these keep their old names as aliases (export.MANIFEST_NAME is
contract.MANIFEST_NAME), so code written against them keeps working.

Shapes
  Output path   DEST/<PSEUDONYM>/STUDY_<code>/SERIES_<nnnn>_<MOD>_<code>/IMG_<nnnnn>_<code>.dcm
                (<code>: upper-case hex from the keyed name code, deidkit.mapping.Mapper.short_code)
  Pseudonym     <PREFIX>_<10 base32 characters>; PREFIX is 1-8 capital letters/digits starting
                with a letter (guidelines/settings.ini [pseudonyms] prefix; default SUBJ)
"""
from __future__ import annotations

import csv
import enum
import io
import re
from dataclasses import dataclass
from pathlib import Path

# ---- names of every file and folder the kit writes -------------------------------------------

MANIFEST_NAME = "deid_manifest.csv"          # DEST: every written file, size, SHA-256 (outward)
SUMMARY_NAME = "deid_summary.txt"            # DEST: counts and reasons (outward)
OUTWARD_REPORTS = (MANIFEST_NAME, SUMMARY_NAME)
MANIFEST_COLUMNS = ["file", "size", "sha256", "patient", "study", "series", "modality", "sop_class"]
HOSPITAL_SUFFIX = "_HOSPITAL_ONLY"           # <DEST>_HOSPITAL_ONLY, <ROOT>_HOSPITAL_ONLY: never sent
HELD_BACK_NAME = "held_back.csv"             # hospital side: held-back files with original names
HELD_BACK_COLUMNS = ["ref", "status", "original_file", "reason", "output_file"]
LOG_NAME = "run_log.txt"                     # hospital side
STATE_NAME = "progress.jsonl"                # hospital side: resume state
SOURCE_NOTE = "source_path.txt"              # hospital side: which export DEST came from
PARTIAL_DIR = ".deid_partial"                # DEST, only while a run is unfinished
REVIEW_PAGE_NAME = "review.html"             # hospital side (may show PHI)
REVIEW_IMAGES_DIR = "review_images"          # hospital side
REVIEW_DECISIONS_NAME = "review_decisions.csv"  # hospital side: a person's decisions on held images
CROSSWALK_NAME = "crosswalk.csv"             # hospital side: original IDs -> pseudonyms (PHI)
CROSSWALK_COLUMNS = ["pseudonym", "patient_id", "patient_name", "patient_birth_date",
                     "study_folder", "study_instance_uid_new", "accession_number", "study_instance_uid",
                     "study_date", "files"]
KEY_FILE_NAME = "deidkit_site_key.txt"       # the site key (secret, hospital side)
INDEX_NAME = "index.csv"                     # rename_folders: neutral index at the top of ROOT
INDEX_COLUMNS = ["folder", "level", "patient", "study", "series", "modality", "series_number",
                 "dicom_files", "other_files", "subfolders", "files_looking_identified",
                 "identity_warnings", "note"]
RENAME_JOURNAL_NAME = ".rename_folders.journal"    # hidden at the top of ROOT while unfinished
RENAME_PROGRESS_NAME = ".rename_folders.progress"
RENAME_UNDO_NAME = "rename_folders_undo.json"      # <ROOT>_HOSPITAL_ONLY: old names (PHI), for --undo
DEFAULT_OUT_NAME = "DEID_OUTPUT"
CSV_BOM = "\ufeff"  # CSVs people open (held_back.csv, index.csv, crosswalk.csv): Excel reads UTF-8

# ---- pseudonyms and output names ---------------------------------------------------------------

DEFAULT_PSEUDONYM_PREFIX = "SUBJ"
PSEUDONYM_CODE_LENGTH = 10                   # base32 characters after PREFIX_
PSEUDONYM_PREFIX_PATTERN = r"[A-Z][A-Z0-9]{0,7}"
PSEUDONYM_CODE_PATTERN = r"[A-Z2-7]{%d}" % PSEUDONYM_CODE_LENGTH
PSEUDONYM_RE = re.compile(PSEUDONYM_PREFIX_PATTERN + "_" + PSEUDONYM_CODE_PATTERN)
NAME_CODE_LENGTH = 8                         # hex characters of the keyed code in output names
# Patterns accept a longer code too: a later version may lengthen it to avoid clashes.
_CODE = r"[0-9A-F]{%d,32}" % NAME_CODE_LENGTH
STUDY_DIR_RE = re.compile(r"STUDY_" + _CODE)
SERIES_DIR_RE = re.compile(r"SERIES_\d{4}_[A-Z0-9]{1,16}_" + _CODE)
IMAGE_FILE_RE = re.compile(r"IMG_\d{5}_" + _CODE + r"(_\d+)?\.dcm")
OUTPUT_PATH_PATTERN = "{pseudonym}/STUDY_{study}/SERIES_{series_number:04d}_{modality}_{series}/" \
                      "IMG_{instance_number:05d}_{instance}.dcm"
OUTPUT_PATH_RE = re.compile("/".join(p.pattern for p in (PSEUDONYM_RE, STUDY_DIR_RE, SERIES_DIR_RE,
                                                       IMAGE_FILE_RE)))


def is_pseudonym(value: str, prefix: str = "") -> bool:
    """True when value (surrounding spaces ignored) has deid_tool's pseudonym shape.

    Any prefix settings.ini allows is accepted; `prefix` adds the site's own (same rule)."""
    value = value.strip()
    if PSEUDONYM_RE.fullmatch(value):
        return True
    return bool(prefix) and re.fullmatch(re.escape(prefix) + "_" + PSEUDONYM_CODE_PATTERN, value) is not None


def neutral_name_patterns(prefix: str = "") -> list[re.Pattern[str]]:
    """Patterns of every name deid_tool gives a folder or file in DEST (fullmatch them)."""
    own = [re.compile(re.escape(prefix) + "_" + PSEUDONYM_CODE_PATTERN)] if prefix else []
    return [PSEUDONYM_RE, *own, STUDY_DIR_RE, SERIES_DIR_RE, IMAGE_FILE_RE]


# ---- dummy values (action D) -------------------------------------------------------------------

DUMMY_DATE = "19000101"            # DA
DUMMY_DATETIME = "19000101000000"  # DT
DUMMY_TIME = "000000"              # TM

# ---- statuses and severities -------------------------------------------------------------------


class Status(enum.StrEnum):
    """What happened to one source file (FileResult.status). Compares equal to its text."""

    WRITTEN = "written"
    DUPLICATE = "duplicate"
    HELD = "held"
    FAILED = "failed"
    SKIPPED = "skipped"
    DICOMDIR = "dicomdir"


class Severity(enum.StrEnum):
    """How bad one --verify finding is."""

    FAIL = "FAIL"      # PHI found, or something that must never be in a delivery
    REVIEW = "REVIEW"  # a person should look


class Verdict(enum.StrEnum):
    """--verify's verdict on a whole delivery."""

    PASS = "PASS"
    REVIEW = "REVIEW"
    FAIL = "FAIL"


# ---- held-back reasons: id, plain words, what to do -------------------------------------------


class Group(enum.StrEnum):
    """What a person does about a held-back file (the ATTENTION screen groups by this)."""

    EXPORT_AGAIN = "export again from the PACS"
    REVIEW_IMAGES = "review the images"
    REPORTS_STAY = "reports stay at the hospital"
    RUN_AGAIN = "free space or retry, then run again"
    ASK = "ask the research team, with the reference"
    CHECK_EXPORT = "check the export folder"
    NOTHING = "nothing to do"


GROUP_ADVICE: dict[Group, str] = {
    Group.EXPORT_AGAIN: "damaged or incomplete files: export these studies again from the PACS and run again",
    Group.REVIEW_IMAGES: "images that may show patient details in the pixels: look at them in the review page",
    Group.REPORTS_STAY: "reports and documents (they can name anyone in their text): they stay at the hospital",
    Group.RUN_AGAIN: "not done (output disk full, or a process stopped): free space, then run again",
    Group.ASK: "a value could not be placed: ask the research team, giving the reference(s) below",
    Group.CHECK_EXPORT: "links or folders that lead outside the export or cannot be read: check the export folder",
    Group.NOTHING: "not needed for research (not DICOM, DICOMDIR, repeated copies): nothing to do",
}


@dataclass(frozen=True)
class HeldReason:
    """One kind of held-back (or left-out) file. `match` is a regex searched in the reason text
    the engine writes (held_back.csv, column reason); the first entry that matches wins."""

    id: str
    match: str
    text: str       # plain words for a person
    group: Group


HELD_REASONS: tuple[HeldReason, ...] = (
    HeldReason("structured-report", r"^structured report", "a structured report with free text", Group.REPORTS_STAY),
    HeldReason("text-review", r"free text needs review|\[text-review\]",
               "a report whose cleaned text may still name someone", Group.REPORTS_STAY),
    HeldReason("encapsulated-document", r"^encapsulated document", "a PDF or CDA document", Group.REPORTS_STAY),
    HeldReason("burned-in-text", r"^burned-in text|text (still )?(found|detected|everywhere|covers)",
               "an image that may show text burned into the pixels", Group.REVIEW_IMAGES),
    HeldReason("visual-features", r"recognizable visual features|RecognizableVisualFeatures",
               "an image that may show a face", Group.REVIEW_IMAGES),
    # before "too-large": the first entry that matches wins
    HeldReason("disk-full", r"^output disk full", "the output disk was full", Group.RUN_AGAIN),
    HeldReason("too-large-for-disk", r"^output disk refused the file as too large",
               "a file larger than the output disk allows (FAT32: 4 GB): use another disk", Group.RUN_AGAIN),
    HeldReason("process-stopped", r"^the process working on this file stopped",
               "the process working on it stopped (out of memory or a decoder fault)", Group.RUN_AGAIN),
    HeldReason("too-large", r"too large", "an image too large to check here", Group.REVIEW_IMAGES),
    HeldReason("identifier-in-header", r"^an identifier of the patient",
               "a patient identifier we could not place in the header", Group.ASK),
    HeldReason("link-outside", r"^link", "a link (shortcut) that leads outside the export", Group.CHECK_EXPORT),
    HeldReason("dicomdir-outside", r"^DICOMDIR names files outside", "a DICOMDIR that points outside the export",
               Group.CHECK_EXPORT),
    HeldReason("folder-unreadable", r"^folder cannot be read|permission denied|cannot open",
               "a file or folder that cannot be read (permissions?)", Group.CHECK_EXPORT),
    HeldReason("path-too-long", r"^path longer than the system allows",
               "a path longer than the system allows (shorten the folder names above it)", Group.CHECK_EXPORT),
    HeldReason("conflicting-duplicate", r"different bytes|different pixel|^two different files with the same SOP",
               "two different files with the same instance UID", Group.EXPORT_AGAIN),
    HeldReason("mixed-patients", r"^two different patients share one Patient ID",
               "files of two different patients under one Patient ID", Group.EXPORT_AGAIN),
    HeldReason("dicomdir", r"^DICOMDIR left out", "a DICOMDIR (names patients; not needed)", Group.NOTHING),
    HeldReason("duplicate", r"^same instance as", "a second copy of the same image", Group.NOTHING),
    HeldReason("not-dicom", r"^not DICOM \(", "not a DICOM file (not copied)", Group.NOTHING),
    HeldReason("damaged", r"empty file|truncated|corrupt|bogus|unknown transfer syntax|read error|not a DICOM|"
                          r"could not be decoded|no SOP Instance UID|not a regular file|unexpected error",
               "a damaged or incomplete file", Group.EXPORT_AGAIN),
)
UNKNOWN_REASON = HeldReason("other", "", "held back for another reason (see held_back.csv)", Group.ASK)
_REASON_RES = [(re.compile(r.match, re.IGNORECASE), r) for r in HELD_REASONS]


def classify_reason(reason: str) -> HeldReason:
    """The catalogue entry for a reason text written by the engine; UNKNOWN_REASON if none."""
    for pattern, entry in _REASON_RES:
        if pattern.search(reason):
            return entry
    return UNKNOWN_REASON


# ---- the kit's own files (recognised by name AND content) -------------------------------------

PROGRAM_NAMES = ("deid_tool", "rename_folders")
PROGRAM_FILE_NAMES = frozenset(f"{n}{ext}" for n in PROGRAM_NAMES for ext in ("", ".exe", ".py"))
# A PyInstaller one-file program ends with its archive; its table of contents names our tables.
_PYINSTALLER_COOKIE = b"MEI\014\013\012\013\016"
_BUNDLE_MARK = b"guidelines/confidentiality_profile.csv"
_SCRIPT_MARKS = (b"from deidkit.", b"deidkit")
_TAIL = 4 * 1024 * 1024


def kit_file_kind(path: Path, rel: str | None = None) -> str | None:
    """What kit file `path` is, or None when it is not one of ours.

    Recognised by name and content together (a patient's file named index.csv is not ours):
      "program"   deid_tool / rename_folders: our one-file executable (PyInstaller archive whose
                  table of contents holds guidelines/confidentiality_profile.csv) or our script
      "manifest"  deid_manifest.csv at the top, with our header row
      "summary"   deid_summary.txt at the top, starting "De-identified delivery"
      "index"     index.csv at the top, with rename_folders' header row
    `rel` is the path relative to the delivery's top (posix); top-level files only count.
    Never raises: an unreadable file is not ours. Never opens anything but a regular file."""
    name = path.name
    if rel is not None and "/" in rel.strip("/"):
        return None
    try:
        if not path.is_file() or path.is_symlink():
            return None
        if name in PROGRAM_FILE_NAMES:
            return "program" if _is_our_program(path) else None
        if name == MANIFEST_NAME:
            return "manifest" if _first_row(path) == MANIFEST_COLUMNS else None
        if name == INDEX_NAME:
            return "index" if _first_row(path) == INDEX_COLUMNS else None
        if name == SUMMARY_NAME:
            with open(path, "rb") as fh:
                return "summary" if fh.read(64).startswith(b"De-identified delivery") else None
    except OSError:
        return None
    return None


KIT_FOLDERS = {"_internal": "base_library.zip", "deidkit": "contract.py", "guidelines": "confidentiality_profile.csv"}


def kit_folder_kind(path: Path, rel: str | None = None) -> str | None:
    """"internal" (a one-folder build's _internal/), "package" (deidkit/ of a script copied in),
    "guidelines" (the tables beside a script), each at the top only and recognised by a file
    only ours holds; else None. Everything below such a folder is the kit's too."""
    if rel is not None and "/" in rel.strip("/"):
        return None
    marker = KIT_FOLDERS.get(path.name)
    try:
        if marker is None or path.is_symlink() or not path.is_dir() or not (path / marker).is_file():
            return None
    except OSError:
        return None
    return {"_internal": "internal", "deidkit": "package", "guidelines": "guidelines"}[path.name]


def _is_our_program(path: Path) -> bool:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if path.suffix == ".py":
            head = fh.read(4096)
            return all(m in head for m in _SCRIPT_MARKS)
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    if _PYINSTALLER_COOKIE not in tail:
        return False
    # one-file: the tables are inside; one-folder: they sit in _internal/ beside the program
    return _BUNDLE_MARK in tail or (path.parent / "_internal" / _BUNDLE_MARK.decode()).is_file()


def _first_row(path: Path) -> list[str] | None:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return next(csv.reader(io.StringIO(text.splitlines()[0] if text else "")), None)
