"""What a run works on and where each output goes: the files below the export, the neutral
output path of a de-identified dataset (contract.OUTPUT_PATH_PATTERN), the partial file a
worker writes first, and whether two folders overlap."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pydicom.dataset import Dataset

from .contract import OUTPUT_PATH_PATTERN, PARTIAL_DIR
from .mapping import Mapper

# Files with these endings are treated as not meant to be DICOM (viewer, report, preview files).
NON_DICOM_SUFFIXES = {".pdf", ".htm", ".html", ".txt", ".xml", ".inf", ".exe", ".dll", ".ini", ".jpg",
                      ".jpeg", ".png", ".gif", ".bmp", ".js", ".css", ".json", ".csv", ".doc", ".docx",
                      ".rtf", ".zip", ".cfg", ".log", ".db", ".ico", ".mp4", ".avi", ".xls", ".xlsx",
                      ".bat", ".sh", ".app", ".dmg", ".msi", ".jar", ".class", ".md", ".lnk"}


def plan(source: Path, exclude: list[Path]) -> list[Path]:
    """Every file below source, sorted, skipping our own folders.

    Links are not followed (a link loop cannot trap the walk) but are listed, as are folders that
    cannot be read: each then gets its own line in the results instead of vanishing silently."""
    excluded = {os.path.normcase(os.path.abspath(p)) for p in exclude}
    excluded |= {os.path.normcase(str(p.resolve())) for p in exclude}
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        if error.filename:
            found.append(Path(error.filename))

    for dirpath, dirnames, filenames in os.walk(source, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = _folders_to_walk(here, dirnames, excluded, found)
        found += _files_to_list(here, filenames, excluded)
    unique = {p.relative_to(source).as_posix(): p for p in found if p != source}
    return [unique[k] for k in sorted(unique)]


def _folders_to_walk(here: Path, dirnames: list[str], excluded: set[str], found: list[Path]) -> list[str]:
    """The subfolders to walk into (sorted); links and folders that cannot be looked at are added
    to `found` instead (listed with their reason); excluded folders are neither."""
    keep = []
    for d in sorted(dirnames):
        path = here / d
        if os.path.normcase(str(path)) in excluded or _resolved(path) in excluded:
            continue
        if _is_link(path) is not False:
            found.append(path)  # a link, or a folder that cannot be looked at: listed with its reason
        else:
            keep.append(d)
    return keep


def _files_to_list(here: Path, filenames: list[str], excluded: set[str]) -> list[Path]:
    """The files of one folder to list (sorted): links always, others unless excluded."""
    listed = []
    for name in sorted(filenames):
        path = here / name
        if _is_link(path) is not False or _resolved(path) not in excluded:
            listed.append(path)
    return listed


def _is_link(path: Path) -> bool | None:
    """None: cannot even be looked at (a path too long)."""
    try:
        return path.is_symlink()
    except OSError:
        return None


def _resolved(path: Path) -> str:
    try:
        return os.path.normcase(str(path.resolve()))
    except (OSError, RuntimeError):
        return os.path.normcase(str(path))


def partial_path(dest: Path, src_rel: str) -> Path:
    """Where a file is written before it is moved into place (never a half file at its place)."""
    return dest / PARTIAL_DIR / (hashlib.sha256(src_rel.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".part")


def output_path(ds: Dataset, pseudonym: str, mapper: Mapper) -> str:
    """Neutral, naturally sorting output path (contract.OUTPUT_PATH_PATTERN) from de-identified
    values only: posix, relative to DEST."""
    modality = re.sub(r"[^A-Z0-9]", "", str(ds.get("Modality", "") or "").upper())[:8] or "NA"
    return OUTPUT_PATH_PATTERN.format(
        pseudonym=pseudonym,
        study=mapper.short_code(str(ds.get("StudyInstanceUID", "") or "")),
        series_number=_small_number(ds.get("SeriesNumber"), 9999),
        modality=modality,
        series=mapper.short_code(str(ds.get("SeriesInstanceUID", "") or "")),
        instance_number=_small_number(ds.get("InstanceNumber"), 99999),
        instance=mapper.short_code(str(ds.get("SOPInstanceUID", "") or "")))


def _small_number(value: object, limit: int) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return n if 0 <= n <= limit else 0


def folder_within(inner: Path, outer: Path) -> bool:
    """True if folder `inner` is `outer` or lies below it, by any path: links resolved, case folded
    where the system folds it, and the same folder reached by another name (a bind mount, a
    differently spelled share) recognised by its file-system identity. `inner` need not exist."""
    try:
        a, b = inner.resolve(), outer.resolve()
    except (OSError, RuntimeError):
        a, b = Path(os.path.abspath(inner)), Path(os.path.abspath(outer))
    if os.path.normcase(str(a)) == os.path.normcase(str(b)):
        return True
    if any(os.path.normcase(str(p)) == os.path.normcase(str(b)) for p in a.parents):
        return True
    try:
        target = b.stat()
    except OSError:
        return False
    for p in (a, *a.parents):
        try:
            st = p.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino) and st.st_ino:
            return True
    return False
