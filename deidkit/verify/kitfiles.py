"""The kit's own programs and files in a delivery (issue 18 item 1): recognised by name AND
content, never findings, listed in the report with where they go."""
from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

MANIFEST_NAME = "deid_manifest.csv"
SUMMARY_NAME = "deid_summary.txt"
INDEX_NAME = "index.csv"
PROGRAM_NAMES = ("deid_tool", "rename_folders")
MANIFEST_COLUMNS = ("file", "size", "sha256")
INDEX_COLUMNS = ("folder", "level", "patient", "study", "series", "modality")
PROGRAM_MARKERS = (b"deidkit", b"confidentiality_profile.csv")
EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")
MAX_PROGRAM_BYTES = 512 << 20

KIT_FOLDERS = {"_internal": "base_library.zip", "deidkit": "guidelines.py", "guidelines": "confidentiality_profile.csv"}

NOTES = {
    "manifest": "deid_tool's manifest of this delivery: it travels with the delivery (used for completeness)",
    "summary": "deid_tool's summary (counts, no names): it travels with the delivery",
    "index": "rename_folders' index of neutral folder names: not part of the images; keep it on the hospital "
             "side or send it only if agreed",
    "program": "a DeidKit program: not part of the delivery; remove it before sending (it stays on the "
               "hospital side)",
    "folder": "a DeidKit program folder (one-folder build, package or guideline tables): not part of the "
              "delivery; remove it before sending",
}


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _csv_header(path: Path) -> tuple[str, ...]:
    text = _head(path, 4096).decode("utf-8-sig", "replace")
    row = next(csv.reader(io.StringIO(text)), [])
    return tuple(c.strip() for c in row)


def _holds_marker(path: Path) -> bool:
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            if any(m in tail + block for m in PROGRAM_MARKERS):
                return True
            tail = block[-64:]
    return False


def kit_file_kind(path: Path, rel: str) -> str | None:
    """'manifest', 'summary', 'index' or 'program' when the file is one of the kit's own, judged by
    its name and its content; None otherwise (also for anything that cannot be read)."""
    name = path.name
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return None
        if name == MANIFEST_NAME and "/" not in rel:
            return "manifest" if _csv_header(path)[:3] == MANIFEST_COLUMNS else None
        if name == SUMMARY_NAME and "/" not in rel:
            return "summary" if b"deid" in _head(path, 1000).lower() else None
        if name == INDEX_NAME:
            return "index" if _csv_header(path)[:len(INDEX_COLUMNS)] == INDEX_COLUMNS else None
        stem, _, ext = name.partition(".")
        if stem in PROGRAM_NAMES and ext in ("", "exe", "py") and st.st_size <= MAX_PROGRAM_BYTES:
            head = _head(path, 4)
            if ext == "py" or head.startswith(EXECUTABLE_MAGIC):
                return "program" if _holds_marker(path) else None
    except OSError:
        return None
    return None


def kit_folder(path: Path) -> bool:
    """True for a top-level folder of the kit's own (recognised by a file only the kit holds)."""
    marker = KIT_FOLDERS.get(path.name)
    try:
        return marker is not None and not path.is_symlink() and (path / marker).is_file()
    except OSError:
        return False


def kit_file_note(path: Path, rel: str) -> str | None:
    """What a kit file is and where it goes, or None when the file is not one of the kit's."""
    kind = kit_file_kind(path, rel)
    return NOTES[kind] if kind else None
