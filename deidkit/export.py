"""The export walk: plan the files, process them in parallel, place outputs, resume, report.

Layout of what one run writes:
  DEST/                         what may be sent: de-identified DICOM + manifest + summary (no PHI)
    SUBJ_<code>/STUDY_<code>/SERIES_<nnnn>_<MOD>_<code>/IMG_<nnnnn>_<code>.dcm
    deid_manifest.csv, deid_summary.txt
  <DEST>_HOSPITAL_ONLY/         never sent: names original files
    held_back.csv, run_log.txt, progress.jsonl (resume state), review.html (+ thumbnails)
"""
from __future__ import annotations

import errno
import functools
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

from pydicom.dataset import Dataset

from . import dicomio, engine, pixels, review_decisions, risk
from .guidelines import Guidelines, register_new_attributes
from .mapping import Mapper
from . import content
from .sweep import Identifiers

from .contract import HOSPITAL_SUFFIX, MANIFEST_NAME, PARTIAL_DIR, STATE_NAME, SUMMARY_NAME  # noqa: E402,F401
from .contract import Status  # noqa: E402
# Files whose pixels are checked, or whose transfer syntax (deflated, big endian) cannot be streamed,
# are read whole; above this much pixel data they are held instead, so memory stays bounded.
WHOLE_READ_LIMIT = int(os.environ.get("DEIDKIT_WHOLE_READ_LIMIT_MB", "256")) * 1024 * 1024
# Test hook (tests/test_resume.py): "N" kills the whole run (process group) with SIGKILL once the
# N-th result of this run is journaled; "N:placed" once it is in place but not yet journaled.
KILL_HOOK = "DEIDKIT_TEST_KILL_AFTER"
from .contract import SOURCE_NOTE  # noqa: E402
# Files with these endings are treated as not meant to be DICOM (viewer, report, preview files).
NON_DICOM_SUFFIXES = {".pdf", ".htm", ".html", ".txt", ".xml", ".inf", ".exe", ".dll", ".ini", ".jpg",
                      ".jpeg", ".png", ".gif", ".bmp", ".js", ".css", ".json", ".csv", ".doc", ".docx",
                      ".rtf", ".zip", ".cfg", ".log", ".db", ".ico", ".mp4", ".avi", ".xls", ".xlsx",
                      ".bat", ".sh", ".app", ".dmg", ".msi", ".jar", ".class", ".md", ".lnk"}

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


@dataclass
class RunConfig:
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
                              .encode()).hexdigest()


@dataclass
class RunSummary:
    results: list[FileResult]
    resumed: int = 0
    review_lines: list[str] = field(default_factory=list)  # what people decided (counts, no PHI)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def needs_review(self) -> list[FileResult]:
        return [r for r in self.results if r.status in (HELD, FAILED)]


# ---- planning ----------------------------------------------------------------------------------

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
        keep = []
        for d in sorted(dirnames):
            path = here / d
            if os.path.normcase(str(path)) in excluded or os.path.normcase(str(path.resolve())) in excluded:
                continue
            if path.is_symlink():
                found.append(path)
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink():
                found.append(path)
            elif os.path.normcase(str(path.resolve())) not in excluded:
                found.append(path)
    unique = {p.relative_to(source).as_posix(): p for p in found if p != source}
    return [unique[k] for k in sorted(unique)]


# ---- per-file work (runs in worker processes) -------------------------------------------------

_WORKER: dict = {}


def _init_worker(guidelines: Guidelines, key: bytes, dest: str, hospital: str, override_dir: str) -> None:
    """Set up a worker. Never raises: a Pool whose initializer fails respawns workers forever."""
    try:
        _setup_worker(guidelines, key, dest, hospital, override_dir)
    except Exception as e:  # every file of this worker then fails with this neutral reason
        _WORKER.clear()
        _WORKER["setup_error"] = f"worker setup failed ({type(e).__name__})"


def _setup_worker(guidelines: Guidelines, key: bytes, dest: str, hospital: str, override_dir: str) -> None:
    register_new_attributes(guidelines)
    s = guidelines.settings
    _WORKER.update(
        guidelines=guidelines,
        mapper=Mapper(key, s.pseudonym_prefix, s.min_shift_days, s.max_shift_days),
        dest=Path(dest), hospital=Path(hospital),
        rules=pixels.load_redaction_rules(pixels.redaction_rules_path(Path(override_dir) if override_dir else None)),
    )


def process_file(job: tuple[str, ...]) -> FileResult:
    """De-identify one file into the partial folder. Never raises: failures become results.

    job = (ref, source path, path relative to SOURCE[, boxes a person approved])."""
    ref, src_str, rel = job[:3]
    approved = job[3] if len(job) > 3 else None
    src = Path(src_str)
    result = FileResult(ref=ref, src=rel, status=FAILED)
    if "setup_error" in _WORKER:
        result.reason = _WORKER["setup_error"]
        return result
    try:
        root = Path(src_str[: len(src_str) - len(rel)])
        if src.is_symlink():
            return _link_result(src, root, result)
        if src.is_dir():
            result.reason = "folder cannot be read: " + _os_error_text(_scandir_error(src))
            return result
        return _process(src, result, root, approved)
    except dicomio.NotDicom as e:
        kind = SKIPPED if src.suffix.lower() in NON_DICOM_SUFFIXES else FAILED
        result.status, result.reason = kind, str(e) if kind == FAILED else "not DICOM (not copied)"
    except dicomio.Unreadable as e:
        result.reason = str(e)
    except OSError as e:
        result.reason = _os_error_text(e)
    except Exception as e:  # a bug or an input we did not foresee: held, never passed through
        result.reason = f"unexpected error ({type(e).__name__}); held for review"
    return result


# Errors of the output disk, not of the file: such results are not journaled, so a later run
# (after space is freed) does those files again.
DISK_FULL = "output disk full: not done (free space, then run again: it resumes)"
TOO_LARGE_FOR_DISK = "output disk refused the file as too large (FAT32 disks hold at most 4 GB per file)"
_OUTPUT_ERRNOS = {errno.ENOSPC: DISK_FULL, getattr(errno, "EDQUOT", -1): DISK_FULL, errno.EFBIG: TOO_LARGE_FOR_DISK}
REDO_REASONS = {DISK_FULL, TOO_LARGE_FOR_DISK}


def _os_error_text(e: OSError | None) -> str:
    if e is None:
        return "file system error"
    if e.errno in _OUTPUT_ERRNOS:
        return _OUTPUT_ERRNOS[e.errno]
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"file system error ({e.strerror or type(e).__name__})"


def _scandir_error(folder: Path) -> OSError | None:
    try:
        with os.scandir(folder):
            return None
    except OSError as e:
        return e


def _link_result(link: Path, source: Path, result: FileResult) -> FileResult:
    """Links are never followed: one inside the export is done at its target; others are listed."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # broken link or link loop (RuntimeError before Python 3.13)
        result.status, result.reason = HELD, "link that leads nowhere or to itself (not followed)"
        return result
    inside = source.resolve()
    if target == inside or inside in target.parents:
        result.status, result.reason = SKIPPED, "link to another place in the export (done there)"
    else:
        result.status, result.reason = HELD, "link to something outside the export (not followed, not copied)"
    return result


def _process(src: Path, result: FileResult, root: Path, approved: str | None = None) -> FileResult:
    g: Guidelines = _WORKER["guidelines"]
    header = dicomio.read_header(src)
    if dicomio.is_dicomdir(header.dataset):
        if dicomio.dicomdir_points_outside(header.dataset, src.parent, root):
            result.status, result.reason = HELD, "DICOMDIR names files outside the export (left out, not followed)"
        else:
            result.status, result.reason = DICOMDIR, "DICOMDIR left out (it names patients; the output has none)"
        return result
    ds = header.dataset
    if ds.get("SOPInstanceUID"):  # the keyed UID, also for a file held: labels pointing at it are listed
        result.sop_instance = _WORKER["mapper"].uid(str(ds.SOPInstanceUID))
    assessment = risk.assess(ds, g, layout_matched=bool(pixels.matching_rules(ds, _WORKER["rules"])))
    at_risk = assessment.reason if assessment.at_risk else None
    hold = engine.hold_reason_for(ds, g)
    if hold:
        result.status, result.reason = HELD, hold
        return result
    if at_risk and (assessment.action == risk.HOLD or not g.settings.clean_pixel_data):
        result.status, result.reason = HELD, f"burned-in text risk ({at_risk}); pixels not checked"
        return result
    full = None
    if (at_risk or not header.streamable) and dicomio.pixel_bytes(header, src) > WHOLE_READ_LIMIT:
        # checking pixels (or re-encoding) reads the whole file into memory: bounded, fail closed
        what = f"burned-in text risk ({at_risk})" if at_risk else "transfer syntax needs a whole-file read"
        result.status, result.reason = HELD, f"{what}; file too large to check in memory"
        return result
    if at_risk or not header.streamable:
        full = dicomio.read_full(src)
        ds = full
    identifiers = Identifiers()
    ctx = engine.Context(guidelines=g, mapper=_WORKER["mapper"], identifiers=identifiers)
    outcome = engine.deidentify(ds, ctx)
    if outcome.hold_reason:
        result.status, result.reason = HELD, outcome.hold_reason
        return result
    if at_risk and not _pixels_may_go(ds, result, assessment, approved):
        return result
    ts = str(ds.file_meta.TransferSyntaxUID) if full is not None else header.transfer_syntax
    ds.file_meta = engine.new_file_meta(ds, ts)
    out_rel = output_path(ds, outcome.pseudonym, _WORKER["mapper"])
    partial = partial_path(_WORKER["dest"], result.src)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        if full is None:
            # the header is checked in memory before anything is written
            encoded = dicomio.encode_header(ds)
            if _header_leaks(encoded, identifiers, ds):
                result.status, result.reason = HELD, "an identifier of the patient is still in the written header"
                return result
            result.size, result.sha256 = dicomio.write_streamed(encoded, src, header.pixel_span, partial)
        else:
            # every element but the pixel values, as plain bytes (the written file may be deflated)
            if _header_leaks(dicomio.header_search_bytes(ds), identifiers, ds):
                result.status, result.reason = HELD, "an identifier of the patient is still in the written header"
                return result
            dicomio.write_whole(ds, partial)
            result.size, result.sha256 = _size_and_hash(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result.status = WRITTEN
    result.out = out_rel
    result.patient = outcome.pseudonym
    result.study, result.series = out_rel.split("/")[1], out_rel.split("/")[2]
    result.modality = str(ds.get("Modality", "") or "")
    result.sop_class = str(ds.get("SOPClassUID", ""))
    result.sop_instance = str(ds.get("SOPInstanceUID", ""))
    result.references = content.referenced_instances(ds)
    return result


def _pixels_may_go(ds: Dataset, result: FileResult, assessment: "risk.RiskAssessment",
                   approved: str | None) -> bool:
    """The pixel step of an image at risk: apply a person's approved boxes, or run the detector and
    decide by rule. True: ds is ready to write (pixels blanked and re-encoded as needed, Burned In
    Annotation NO, Clean Pixel Data code added). False: held; result says why, and result.proposal
    holds the boxes proposed to a person when the pixels could be looked at."""
    original_ts = str(ds.file_meta.TransferSyntaxUID)
    if approved is not None:
        try:
            blanked = pixels.apply_regions(ds, review_decisions.parse_boxes(approved))
        except (review_decisions.DecisionError, pixels.PixelError) as e:
            result.status, result.reason = HELD, f"burned-in text risk ({assessment.reason}): approved, but {e}"
            result.proposal = approved
            return False
        result.reason = f"approved by a person ({blanked} region(s) blanked)" if blanked else "approved by a person"
    else:
        rules = _WORKER["rules"]
        outcome = pixels.clean_pixels(ds, rules)
        send, why = pixels.release_decision(outcome, bool(pixels.matching_rules(ds, rules)),
                                            _WORKER["guidelines"].settings.trust_pixel_detector,
                                            assessment.person_must_see)
        result.thumbnails = _save_thumbnails(result.ref, outcome)
        result.frames = int(ds.get("NumberOfFrames", 1) or 1)
        if not send:
            result.status, result.reason = HELD, f"burned-in text risk ({assessment.reason}): {why}"
            if outcome.boxes or outcome.status != "hold":  # the pixels were seen: a person can decide
                result.proposal = review_decisions.format_boxes(review_decisions.regions_from_frames(outcome.boxes))
            return False
        ds.BurnedInAnnotation = "NO"
        result.reason = why
    pixels.encode_like(ds, original_ts)
    engine.add_clean_pixel_code(ds)
    return True


def _save_thumbnails(ref: str, outcome) -> list[str]:
    """Review images go to the hospital-side folder (they may show PHI)."""
    saved = []
    folder = _WORKER["hospital"] / "review_images"
    for label, png in (("before", outcome.before_png), ("after", outcome.after_png)):
        if png:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ref}_{label}.png"
            path.write_bytes(png)
            saved.append(path.name)
    return saved


def partial_path(dest: Path, src_rel: str) -> Path:
    """Where a file is written before it is moved into place (never a half file at its place)."""
    return dest / PARTIAL_DIR / (hashlib.sha256(src_rel.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".part")


def output_path(ds: Dataset, pseudonym: str, mapper: Mapper) -> str:
    """Neutral, naturally sorting output path from de-identified values only."""
    study = str(ds.get("StudyInstanceUID", "") or "")
    series = str(ds.get("SeriesInstanceUID", "") or "")
    sop = str(ds.get("SOPInstanceUID", "") or "")
    modality = re.sub(r"[^A-Z0-9]", "", str(ds.get("Modality", "") or "").upper())[:8] or "NA"
    series_no = _small_number(ds.get("SeriesNumber"), 9999)
    instance_no = _small_number(ds.get("InstanceNumber"), 99999)
    return (f"{pseudonym}/STUDY_{mapper.short_code(study)}/SERIES_{series_no:04d}_{modality}_{mapper.short_code(series)}"
            f"/IMG_{instance_no:05d}_{mapper.short_code(sop)}.dcm")


def _small_number(value, limit: int) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return n if 0 <= n <= limit else 0


# What the tool itself writes into every header (De-identification Method and its codes, Patient
# Identity Removed, Longitudinal Temporal Information Modified; the file meta's implementation
# name): their words ("Basic", "Profile", "Longitudinal", "Patient", "DEIDKIT") are not the patient's.
OWN_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})


def _header_leaks(data: bytes, identifiers: Identifiers, ds: Dataset) -> bool:
    """Last net: is one of the patient's own identifiers in the header bytes (all of them)?

    A hit is searched again in the element values without the tool's own attributes (OWN_TAGS,
    file meta), so a patient named Long, Basic or Patient is not held for the tool's words."""
    if not _identifier_in_header(data, identifiers, ds):
        return False
    return _identifier_in_header(dicomio.header_search_bytes(ds, leave_out=OWN_TAGS), identifiers, ds)


def _identifier_in_header(data: bytes, identifiers: Identifiers, ds: Dataset) -> bool:
    """Search header bytes for the patient's own identifiers, in the file's character sets."""
    encodings = ["ascii", "latin-1", "utf-8"]
    charset = ds.get("SpecificCharacterSet")
    if charset:
        from pydicom.charset import convert_encodings

        values = charset if isinstance(charset, (list, tuple)) else [charset]
        try:
            encodings += [e for e in convert_encodings(list(values)) if e not in encodings]
        except Exception:
            pass
    patterns, others = _needle_search(tuple(identifiers.encoded_needles(encodings)))
    if patterns:
        lowered = data.lower()  # ASCII letters only, as re.IGNORECASE on bytes
        if any(pattern.search(lowered) for pattern in patterns):
            return True
    return any(needle in data for needle in others)


@functools.lru_cache(maxsize=256)
def _needle_search(needles: tuple[bytes, ...]) -> tuple[tuple[re.Pattern, ...], tuple[bytes, ...]]:
    """(one search per ASCII needle, for the lower-cased header; the other needles as they are).

    Each ASCII needle matches as a whole word in any case: no ASCII letter or digit either side.
    The pattern starts with the needle itself, so re finds candidates with its fast literal scan,
    and looks behind over the needle for the left boundary. One alternation of all needles with a
    leading lookbehind (what this replaced) tried every needle at every position: ten times slower
    on a typical header, the same answers (tests/test_export_speedups.py). The files of one patient
    share their needles: compiled once per patient, not per file."""
    ascii_needles = sorted({n.lower() for n in needles if n.isascii()})
    patterns = tuple(re.compile(re.escape(n) + rb"(?<![a-z0-9]" + re.escape(n) + rb")(?![a-z0-9])")
                     for n in ascii_needles)
    return patterns, tuple(n for n in needles if not n.isascii())


def _size_and_hash(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fp:
        while chunk := fp.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


# ---- the run -----------------------------------------------------------------------------------

def run_export(config: RunConfig, progress: Callable[[int, int], None] | None = None,
               on_problem: Callable[[FileResult], None] | None = None) -> RunSummary:
    """Process every file of config.source into config.dest; resumable; returns all results.

    Images a person approved in <hospital_dir>/review_decisions.csv are done again with the boxes
    decided; review_decisions.DecisionError (before anything is done) if that file is malformed."""
    config.dest.mkdir(parents=True, exist_ok=True)
    config.hospital_dir.mkdir(parents=True, exist_ok=True)
    (config.hospital_dir / SOURCE_NOTE).write_text(str(config.source), encoding="utf-8")
    files = plan(config.source, [config.dest, config.hospital_dir, *config.program_files])
    jobs = [(f"F{i + 1:06d}", str(p), p.relative_to(config.source).as_posix()) for i, p in enumerate(files)]
    state_path = config.hospital_dir / STATE_NAME
    done = _load_state(state_path, config.fingerprint(), config.dest)
    decisions_path = config.hospital_dir / review_decisions.DECISIONS_NAME
    decisions = review_decisions.read_decisions(decisions_path)
    resuming = bool(done)
    proposals = {r.src: r.proposal for r in done.values() if r.proposal is not None}
    todo: list[tuple[str, ...]] = [j for j in jobs if j[2] not in done]
    todo += _decided_jobs(jobs, done, decisions)
    placed: dict[str, FileResult] = {r.out: r for r in done.values() if r.status == WRITTEN}
    results: dict[str, FileResult] = dict(done)
    if progress:
        progress(len(jobs) - len(todo), len(jobs))
    kill_after, kill_when = _kill_hook()
    finished = 0
    with _StateWriter(state_path, config.fingerprint(), fresh=not resuming) as state:
        for result in _execute(todo, config):
            if result.proposal is None and result.src in proposals:
                result.proposal = proposals[result.src]  # the tool's proposal, kept for the review counts
            try:
                _place(result, placed, results, config.dest, state)
            except OSError as e:
                partial_path(config.dest, result.src).unlink(missing_ok=True)
                result.status, result.reason, result.out = FAILED, _os_error_text(e), ""
            finished += 1
            if finished == kill_after and kill_when == "placed":
                _kill_run()
            results[result.src] = result
            if result.reason not in REDO_REASONS:
                state.append(result)
            if finished == kill_after:
                _kill_run()
            if on_problem and result.status in (HELD, FAILED):
                on_problem(result)
            if progress:
                progress(len(results), len(jobs))
            if result.reason == DISK_FULL:
                break  # every further file would fail the same way; stopping keeps the rest intact
    for j in jobs:  # only after a full disk: what was not reached is listed and done next time
        if j[2] not in results:
            results[j[2]] = FileResult(ref=j[0], src=j[2], status=FAILED, reason=DISK_FULL)
    partial_dir = config.dest / PARTIAL_DIR
    if partial_dir.exists():
        for leftover in partial_dir.iterdir():
            leftover.unlink()
        partial_dir.rmdir()
    ordered = [results[j[2]] for j in jobs if j[2] in results]
    return RunSummary(ordered, resumed=len(done),
                      review_lines=_write_decisions(decisions_path, decisions, ordered))


def _decision_for(r: FileResult, decisions: dict[str, "review_decisions.Decision"]):
    """The person's row for a result, when it names the same original file (or none)."""
    d = decisions.get(r.ref)
    if d is None or (d.original_file and d.original_file != r.src):
        return None  # the export changed since the row was written: never apply it to another file
    return d


def _decided_jobs(jobs: list[tuple[str, str, str]], done: dict[str, FileResult],
                  decisions: dict[str, "review_decisions.Decision"]) -> list[tuple[str, ...]]:
    """Jobs again for images waiting for review that a person approved (with the boxes decided);
    rejected ones get their reason updated in place (they stay held)."""
    again: list[tuple[str, ...]] = []
    for job in jobs:
        r = done.get(job[2])
        if r is None or r.status != HELD or r.proposal is None:
            continue
        d = _decision_for(r, decisions)
        if d is None:
            continue
        if d.decision == review_decisions.APPROVE:
            again.append((*job, d.boxes))
            del done[job[2]]
        elif d.decision == review_decisions.REJECT and not r.reason.startswith(review_decisions.REJECTED):
            r.reason = f"{review_decisions.REJECTED}: {r.reason}"
    return again


def _write_decisions(path: Path, previous: dict[str, "review_decisions.Decision"],
                     results: list[FileResult]) -> list[str]:
    """review_decisions.csv after a run (earlier decisions kept, new waiting images added);
    returns the summary's lines on what people decided."""
    waiting = [review_decisions.Decision(r.ref, "", r.proposal or "", r.reason, r.src, r.frames or 1)
               for r in results if r.status == HELD and r.proposal is not None]
    rows = review_decisions.merge(previous, waiting)
    if rows or path.exists():
        review_decisions.write_decisions(path, rows)
    decided = {d.ref: d for d in rows}
    pairs = [(r.proposal or "", decided[r.ref]) for r in results
             if r.proposal is not None and r.ref in decided and _decision_for(r, decided) is not None]
    return review_decisions.summary_lines(pairs)


def _kill_hook() -> tuple[int, str]:
    value = os.environ.get(KILL_HOOK, "")
    if not value:
        return -1, ""
    count, _, when = value.partition(":")
    return int(count), when


def _kill_run() -> None:
    """Simulate the power button: every process of the run dies at once, nothing is cleaned up."""
    import signal

    if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _execute(jobs: list[tuple[str, str, str]], config: RunConfig) -> Iterator[FileResult]:
    args = (config.guidelines, config.key, str(config.dest), str(config.hospital_dir),
            str(config.override_dir or ""))
    workers = config.workers or min((os.cpu_count() or 1) + 1, 9)  # one extra process overlaps disk waits
    if workers <= 1 or len(jobs) < 16:
        _init_worker(*args)
        for job in jobs:
            yield process_file(job)
        return
    # Results travel in chunks: each message costs the parent (which places and journals every
    # file) about as much as placing a file; 16 per chunk cut its CPU by two thirds against 4,
    # while every worker still gets several chunks (even load, steady progress) on smaller runs.
    chunksize = max(4, min(16, len(jobs) // (workers * 4)))
    ctx = multiprocessing.get_context("spawn" if sys.platform == "win32" else None)
    with ctx.Pool(workers, initializer=_init_worker, initargs=args) as pool:
        yield from pool.imap_unordered(process_file, jobs, chunksize=chunksize)


def _place(result: FileResult, placed: dict[str, FileResult], results: dict[str, FileResult],
           dest: Path, state: "_StateWriter") -> None:
    """Move a finished file from the partial folder to its place; settle duplicates by source order."""
    if result.status != WRITTEN:
        return
    partial = partial_path(dest, result.src)
    final = dest / result.out
    holder = placed.get(result.out)
    if holder is not None:
        if holder.sha256 == result.sha256 or holder.src < result.src:
            partial.unlink(missing_ok=True)
            result.status = DUPLICATE
            result.reason = f"same instance as {holder.ref}" + ("" if holder.sha256 == result.sha256 else " (different bytes)")
            return
        holder.status, holder.reason = DUPLICATE, f"same instance as {result.ref} (different bytes)"
        results[holder.src] = holder
        state.append(holder)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    placed[result.out] = result


_RESULT_FIELDS = tuple(f.name for f in fields(FileResult))


class _StateWriter:
    """Append-only resume journal (hospital side): one JSON line per finished file.

    Each line is handed to the OS at once (a killed process loses nothing); it is forced to disk
    at most every FSYNC_INTERVAL seconds, because an fsync per file costs more than the file's
    work on an ordinary disk. After a power cut the lines not yet on disk are simply redone, and
    _load_state redoes any output whose size does not match its line.
    """

    FSYNC_INTERVAL = 2.0

    def __init__(self, path: Path, fingerprint: str, fresh: bool) -> None:
        self.path, self.fingerprint, self.fresh = path, fingerprint, fresh
        self.last_sync = time.monotonic()

    def __enter__(self) -> "_StateWriter":
        if self.fresh:
            self.fp = self.path.open("w", encoding="utf-8")
            self.fp.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")
        else:
            self.fp = self.path.open("a", encoding="utf-8")
        return self

    def append(self, result: FileResult) -> None:
        # the fields one level deep: asdict's recursive copy costs three times the json encoding
        self.fp.write(json.dumps({name: getattr(result, name) for name in _RESULT_FIELDS}, ensure_ascii=False) + "\n")
        self.fp.flush()
        if time.monotonic() - self.last_sync >= self.FSYNC_INTERVAL:
            os.fsync(self.fp.fileno())
            self.last_sync = time.monotonic()

    def __exit__(self, *exc) -> None:
        self.fp.flush()
        os.fsync(self.fp.fileno())
        self.fp.close()


def _load_state(path: Path, fingerprint: str, dest: Path) -> dict[str, FileResult]:
    """Results of an earlier, interrupted run of the same job whose outputs are still in place."""
    if not path.exists():
        return {}
    results: dict[str, FileResult] = {}
    with path.open(encoding="utf-8") as fp:
        first = fp.readline()
        try:
            if json.loads(first).get("fingerprint") != fingerprint:
                return {}
        except (ValueError, AttributeError):
            return {}
        for line in fp:
            try:
                r = FileResult(**json.loads(line))
            except (ValueError, TypeError):
                break  # a line cut by the kill: everything after it is redone
            results[r.src] = r
    for src, r in list(results.items()):
        if r.status == WRITTEN and not _in_place(dest / r.out, r.size):
            del results[src]
    return results


def _in_place(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def output_is_ours(dest: Path) -> bool:
    return (dest / MANIFEST_NAME).is_file() or (dest / PARTIAL_DIR).is_dir()


def state_matches(config: RunConfig) -> bool:
    path = config.hospital_dir / STATE_NAME
    if not path.exists():
        return False
    try:
        with path.open(encoding="utf-8") as fp:
            return json.loads(fp.readline()).get("fingerprint") == config.fingerprint()
    except (OSError, ValueError, AttributeError):
        return False


def source_of(hospital_dir: Path) -> Path | None:
    """The export an earlier run into this output came from (read from its hospital-side note)."""
    try:
        return Path((hospital_dir / SOURCE_NOTE).read_text(encoding="utf-8").strip())
    except OSError:
        return None
