"""A file found twice is done once (issue 19): a file whose bytes are identical to another file
of the same run is not parsed; it takes the outcome of the one that was processed.

Real exports hold the same instance twice (a study exported twice, two folders of one PACS
export, a DICOMDIR tree beside a flat copy). Before, every copy cost a full de-identification
before placing found "the same SOP Instance UID with the same bytes" and dropped it.

Three steps, each where its data is:
  main process, before the pool  plan_twins: which jobs are candidates (a regular file whose size
                                  another job shares; a size met once costs nothing more), and
                                  which are hard links of an earlier job (the same file: never
                                  dispatched)
  worker, before parsing         process_job: a candidate is fingerprinted (SHA-256 of its whole
                                  bytes, read in chunks) and claimed with an O_CREAT|O_EXCL marker
                                  named by the fingerprint in a run-scoped folder of the partial
                                  folder, holding the owner's reference. A marker holding the
                                  job's own reference (a chunk retried after a dead worker): go on.
                                  A marker of an EARLIER job (by reference, i.e. by source path):
                                  SameBytes, not parsed. A marker of a later job: processed in
                                  full, so the first file by path is always processed and the
                                  outcome does not depend on which worker came first.
  main process, after the pool   settle and twin_result: the twin takes the owner's outcome as
                                  if it had been processed itself (a written owner: the twin is
                                  placed as the same written file, so placing makes it a
                                  DUPLICATE as it did before; held or failed: the same status and
                                  reason, its own line naming its own original, its own copy of
                                  the review images). Where that cannot be known without the
                                  twin's own bytes (see settle), it is processed in full.
Besides the bytes, two things decide an outcome, so twins must share them (same_outcome_key):
a name ending as a non-DICOM file (skipped, where another file that is not DICOM fails) and a
review decision (approved and proposed boxes in the job). A DICOMDIR is judged by where the
files it names are: its copies are processed in full. Markers of an earlier (killed) run are
in another folder: they never make a file skipped without an outcome.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import time
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

from .contract import REVIEW_IMAGES_DIR
from .export_model import DICOMDIR, DUPLICATE, HELD, WRITTEN, FileResult
from .export_place import TWO_VERSIONS, Placement
from .export_plan import NON_DICOM_SUFFIXES
from .export_worker import process_file

Job = tuple[str, ...]  # as export_pool.Job: (ref, source path, path relative to SOURCE[, approved[, proposed]])
MARKER_PREFIX = "same_bytes_"  # the run-scoped marker folder in the partial folder: same_bytes_<token>
_CHUNK = 1 << 20  # bytes read at a time for the fingerprint (memory stays bounded for any file size)
_MARKER_NAME = re.compile(r"[0-9a-f]{64}")
_EMPTY_MARKER_WAITS = 200  # a marker just made and not yet written by its owner: looked at again


class SameBytes(NamedTuple):
    """A job not processed: its bytes (and review decision) are those of job `owner` of this run."""

    ref: str    # neutral reference of the twin
    src: str    # its original path relative to SOURCE (hospital side)
    owner: str  # reference of the job that was (or is being) processed


class Changed(NamedTuple):
    """The file of owner `ref` changed between its fingerprint and the end of its processing:
    its outcome is not the outcome of the bytes its twins have, so they are processed in full."""

    ref: str


Outcome = FileResult | SameBytes | Changed


@dataclasses.dataclass(frozen=True)
class TwinPlan:
    """Which jobs of a run may be twins: `candidates` (references fingerprinted in the worker) and
    `linked` (reference of a hard link -> reference of the first job on the same file)."""

    candidates: frozenset[str] = frozenset()
    linked: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a worker needs to claim fingerprints: the run's marker folder and the candidates."""

    folder: str
    candidates: frozenset[str]


def index_of(ref: str) -> int:
    """The number of a neutral reference ("F000123" -> 123): the job's place in source-path order."""
    return int(ref[1:])


def plan_twins(jobs: list[Job]) -> TwinPlan:
    """Candidates and hard links among `jobs`, from one lstat per job (no file is opened).

    A job that is not a regular file (a link, a folder, a file gone) is never a candidate: it is
    processed as before. Hard links: the first job on a (device, inode) is the owner of the
    later ones with the same review decision; only the owners' sizes are counted."""
    sizes: dict[int, int] = {}
    first_on: dict[tuple, str] = {}
    linked: dict[str, str] = {}
    heads: list[tuple[str, int]] = []
    for job in jobs:
        try:
            st = os.lstat(job[1])
        except (OSError, ValueError):
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if st.st_ino and st.st_nlink > 1:  # size and time too: a share whose inode numbers are not unique
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, *same_outcome_key(job))
            owner = first_on.setdefault(key, job[0])
            if owner != job[0]:
                linked[job[0]] = owner
                continue
        heads.append((job[0], st.st_size))
        sizes[st.st_size] = sizes.get(st.st_size, 0) + 1
    return TwinPlan(frozenset(ref for ref, size in heads if sizes[size] > 1), linked)


def same_outcome_key(job: Job) -> tuple[str, ...]:
    """What besides the bytes decides a job's outcome: whether its name ends as a non-DICOM file
    (such a file is skipped, another one that is not DICOM fails) and its review decision
    (approved and proposed boxes). Twins have the same key."""
    name_kind = "non-dicom-name" if PurePosixPath(job[2]).suffix.lower() in NON_DICOM_SUFFIXES else "name"
    return (name_kind, *job[3:])


def fingerprint(path: str, key: tuple[str, ...] = ()) -> str:
    """SHA-256 (hex) of a file's whole bytes, read in chunks, with `key` (same_outcome_key)
    appended: the marker name of a claim. Raises OSError."""
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(_CHUNK):
            h.update(chunk)
    if key:
        h.update(b"\0key\0" + "\0".join(key).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def claim(job: Job, folder: str) -> str | None:
    """The reference of an earlier job of this run with the same bytes, or None: process this job
    (first to claim, its own claim again after a dead worker, a later job's claim, or anything
    unexpected: a file that cannot be read or a marker that cannot be made)."""
    ref = job[0]
    try:
        marker = os.path.join(folder, fingerprint(job[1], same_outcome_key(job)))
    except (OSError, ValueError):
        return None  # the processing reports what is wrong with the file
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0))
    except FileExistsError:
        owner = _marker_owner(marker)
        return owner if owner and owner != ref and index_of(owner) < index_of(ref) else None
    except OSError:
        return None
    try:
        os.write(fd, ref.encode("ascii"))
    finally:
        os.close(fd)
    return None


def _marker_owner(marker: str) -> str:
    """The reference in a marker; "" if it stays empty (its owner was killed before writing it)."""
    for _ in range(_EMPTY_MARKER_WAITS):
        try:
            with open(marker, "rb") as fp:
                text = fp.read(64).decode("ascii", "replace")
        except OSError:
            return ""
        if text:
            return text if text[:1] == "F" and text[1:].isdigit() else ""
        time.sleep(0.005)
    return ""


def process_job(job: Job, claims: Claims | None) -> list[Outcome]:
    """One job in a worker: a candidate is claimed first (SameBytes if an earlier job has its
    bytes), then processed by export_worker.process_file (never raises for a file). An owner
    whose file changed during its processing also returns Changed."""
    if claims is None or job[0] not in claims.candidates:
        return [process_file(job)]
    before = _state(job[1])
    owner = claim(job, claims.folder)
    if owner is not None:
        return [SameBytes(job[0], job[2], owner)]
    result = process_file(job)
    if before is None or _state(job[1]) != before:
        return [result, Changed(job[0])]
    return [result]


def _state(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def make_marker_folder(partial_dir: Path) -> Path:
    """A new run-scoped marker folder in the partial folder (markers of earlier runs are elsewhere)."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    while True:
        folder = partial_dir / (MARKER_PREFIX + os.urandom(6).hex())
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def remove_marker_folders(partial_dir: Path) -> None:
    """Remove the marker folders (this run's and those of killed runs) from the partial folder:
    only markers as claim() names them, then the folders left empty (never another file).
    Raises OSError if one cannot be removed."""
    if not partial_dir.is_dir() or partial_dir.is_symlink():
        return
    for folder in partial_dir.iterdir():
        if not folder.name.startswith(MARKER_PREFIX) or not folder.is_dir() or folder.is_symlink():
            continue
        for marker in folder.iterdir():
            if _MARKER_NAME.fullmatch(marker.name) and marker.is_file() and not marker.is_symlink():
                marker.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def settle(twins: list[SameBytes], changed: set[str], owner_result: Callable[[str], FileResult | None],
           placement: Placement) -> tuple[list[tuple[SameBytes, FileResult]], set[str]]:
    """Which twins take their owner's outcome, and which are processed in full (references).

    In source-path order; a twin of a twin (a hard link of a copy) goes back to the one that was
    processed. Processed in full: the owner has no outcome of this run, its file changed, it is a
    DICOMDIR (judged by where the files it names are), or the twin would be the file its instance
    keeps (two versions of one SOP Instance UID, the twin first by path: its own bytes are to be
    placed); then also every twin of an instance with two versions, so placing stays order-free.
    Returns ([(twin, the result of the file processed)], references to process in full)."""
    root: dict[str, FileResult | None] = {}
    full: set[str] = set()
    for twin in sorted(twins, key=lambda t: index_of(t.ref)):
        owner = root[twin.owner] if twin.owner in root else owner_result(twin.owner)
        root[twin.ref] = owner
        if owner is None or twin.owner in full or owner.ref in changed or not _settled(owner, twin.src, placement):
            full.add(twin.ref)
    unsettled = {r.sop_instance for ref, r in root.items() if ref in full and r is not None and r.sop_instance}
    settled = []
    for twin in sorted(twins, key=lambda t: index_of(t.ref)):
        owner = root[twin.ref]
        if twin.owner in full or owner is None or owner.sop_instance in unsettled:
            full.add(twin.ref)
        elif twin.ref not in full:
            settled.append((twin, owner))
    return settled, full


def _was_written(owner: FileResult) -> bool:
    """The owner was written (placing may have made it a duplicate or a second version since)."""
    return owner.status in (WRITTEN, DUPLICATE) or (owner.status == HELD and owner.reason.startswith(TWO_VERSIONS))


def _settled(owner: FileResult, twin_src: str, placement: Placement) -> bool:
    """True: the owner's outcome is the twin's (see settle)."""
    if owner.status == DICOMDIR or owner.reason.startswith("DICOMDIR"):
        return False
    if not _was_written(owner):
        return True
    placed = placement.by_sop.get(owner.sop_instance) if owner.sop_instance and owner.sha256 else None
    return placed is not None and (placed.sha256 == owner.sha256 or placed.src < twin_src)


def twin_result(twin: SameBytes, owner: FileResult, hospital_dir: Path) -> FileResult | None:
    """The result the twin would have had if processed itself: the owner's outcome under the
    twin's own reference and original path. A written owner: the twin comes back WRITTEN, as the
    same written file, for the caller to place like any other (placing makes it a DUPLICATE, or
    holds it as a second version of an instance, as before; nothing is moved). None: the owner's
    review images cannot be copied for it (process it in full)."""
    result = _copy(owner, twin, hospital_dir)
    if result is not None and _was_written(owner):
        result.status, result.reason = WRITTEN, ""
    return result


def _copy(owner: FileResult, twin: SameBytes, hospital_dir: Path) -> FileResult | None:
    """The owner's result with the twin's reference and original; its review images copied under
    the twin's reference (as the twin's own processing would have saved them). None: cannot."""
    thumbnails = []
    folder = hospital_dir / REVIEW_IMAGES_DIR
    for name in owner.thumbnails:
        if not name.startswith(owner.ref + "_"):
            return None
        new = twin.ref + name[len(owner.ref):]
        try:
            shutil.copyfile(folder / name, folder / new)
        except OSError:
            return None
        thumbnails.append(new)
    return dataclasses.replace(owner, ref=twin.ref, src=twin.src, thumbnails=thumbnails,
                               references=list(owner.references), actions=dict(owner.actions))
