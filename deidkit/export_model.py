"""The data of one deid_tool run: its configuration, one result per source file, the summary,
and the reasons that are not the file's fault (disk full, a dead worker, a bug).

Shapes only (dataclasses and constants); no file is read or written here."""
from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .contract import Status
from .guidelines import Guidelines

WRITTEN, DUPLICATE, HELD, FAILED, SKIPPED, DICOMDIR = (Status.WRITTEN, Status.DUPLICATE, Status.HELD, Status.FAILED,
                                                      Status.SKIPPED, Status.DICOMDIR)


@dataclass
class FileResult:
    """The outcome for one source file. `src` names the original: hospital side only."""

    ref: str                 # neutral reference, F000001
    src: str                 # original path relative to SOURCE (PHI: hospital side only)
    status: str
    reason: str = ""
    out: str = ""            # output path relative to DEST
    size: int = 0
    sha256: str = ""
    patient: str = ""
    study: str = ""
    series: str = ""
    modality: str = ""
    sop_class: str = ""
    sop_instance: str = ""
    thumbnails: list[str] = field(default_factory=list)  # review images, hospital side
    proposal: str | None = None  # boxes proposed to a person (review_decisions.csv); None: not for review
    frames: int = 0              # frames of an image whose pixels were looked at
    references: list[str] = field(default_factory=list)  # instances a delivered label object points at
    person: str = ""         # hashed family name | sex | birth date of the original (person_of); hospital side
    actions: dict[str, int] = field(default_factory=dict)  # "X removed" -> elements (engine.action_counts; no PHI)


@dataclass
class RunConfig:
    """Everything one deid_tool run needs: source, destination, hospital-side folder, guidelines, key."""
    source: Path
    dest: Path
    hospital_dir: Path
    guidelines: Guidelines
    key: bytes
    workers: int = 0
    program_files: tuple[Path, ...] = ()  # the tool itself and its key file: not part of the export
    override_dir: Path | None = None      # where guideline files next to the program were found

    def fingerprint(self) -> str:
        """What must match for a run to resume another: same source, output, table and key."""
        key_id = hashlib.sha256(b"deidkit-key-id\0" + self.key).hexdigest()[:16]
        return hashlib.sha256("|".join([str(self.source), str(self.dest), self.guidelines.sha256, key_id])
                              .encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class RunSummary:
    """What a run did: one FileResult per file, and counts for the verdict."""
    results: list[FileResult]
    resumed: int = 0
    review_lines: list[str] = field(default_factory=list)  # what people decided (counts, no PHI)

    def count(self, status: str) -> int:
        """How many files ended with this status."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def needs_review(self) -> list[FileResult]:
        """The files held back or failed (a person must look at them)."""
        return [r for r in self.results if r.status in (HELD, FAILED)]


UNEXPECTED = ("the program met something in this file it does not handle; held for review "
              "(please report it with the reference)")


# Errors of the output disk, not of the file: such results are not journaled, so a later run
# (after space is freed) does those files again.
DISK_FULL = "output disk full: not done (free space, then run again: it resumes)"
TOO_LARGE_FOR_DISK = "output disk refused the file as too large (FAT32 disks hold at most 4 GB per file)"
_OUTPUT_ERRNOS = {errno.ENOSPC: DISK_FULL, getattr(errno, "EDQUOT", -1): DISK_FULL, errno.EFBIG: TOO_LARGE_FOR_DISK}
WORKER_DIED = ("the process working on this file stopped or got stuck (out of memory, or a fault in an "
               "image decoder): not copied; run again to retry it")
REDO_REASONS = {DISK_FULL, TOO_LARGE_FOR_DISK, WORKER_DIED}


def os_error_text(e: OSError | None) -> str:
    """A clerk's words for a file-system error (no exception name); None: "file system error"."""
    if e is None:
        return "file system error"
    if e.errno in _OUTPUT_ERRNOS:
        return _OUTPUT_ERRNOS[e.errno]
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ENAMETOOLONG:
        return ("path longer than the system allows: not read (shorten the folder names above it, "
                "then run again)")
    return f"file system error ({e.strerror or 'the system gave no reason'})"
