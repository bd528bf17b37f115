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
from typing import Any, Callable, Iterator

from pydicom.dataset import Dataset

from . import dicomio, engine, pixels, program, rawkeep, review_decisions, risk
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

    def is_link(path: Path) -> bool | None:  # None: cannot even be looked at (a path too long)
        try:
            return path.is_symlink()
        except OSError:
            return None

    def resolved(path: Path) -> str:
        try:
            return os.path.normcase(str(path.resolve()))
        except (OSError, RuntimeError):
            return os.path.normcase(str(path))

    for dirpath, dirnames, filenames in os.walk(source, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            path = here / d
            if os.path.normcase(str(path)) in excluded or resolved(path) in excluded:
                continue
            if is_link(path) is not False:
                found.append(path)  # a link, or a folder that cannot be looked at: listed with its reason
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            if is_link(path) is not False:
                found.append(path)
            elif resolved(path) not in excluded:
                found.append(path)
    unique = {p.relative_to(source).as_posix(): p for p in found if p != source}
    return [unique[k] for k in sorted(unique)]


# ---- per-file work (runs in worker processes) -------------------------------------------------

_WORKER: dict = {}


def _init_worker(guidelines: Guidelines, key: bytes, dest: str, hospital: str, override_dir: str) -> None:
    """Set up a worker. Never raises: a Pool whose initializer fails respawns workers forever."""
    quiet_library_messages()
    try:
        _setup_worker(guidelines, key, dest, hospital, override_dir)
    except Exception:  # every file of this worker then fails with this neutral reason
        _WORKER.clear()
        _WORKER["setup_error"] = "the program could not start its work (a damaged installation or guideline file?)"


def quiet_library_messages() -> None:
    """pydicom's warnings and log lines about odd input are not for the clerk's screen: a worker
    started with "spawn" (Windows, macOS, the frozen program) inherits no filters from the main
    process, so each worker sets them here. Bad input is reported through results instead."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logger = logging.getLogger("pydicom")
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


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

    job = (ref, source path, path relative to SOURCE[, boxes a person approved[, boxes the tool
    proposed]])."""
    ref = job[0]
    _worker_kill_hook(ref, "start")
    result = _process_file(job)
    _worker_kill_hook(ref, "written")
    result.reason = _EXCEPTION_NOTE.sub("", result.reason)  # a clerk reads it: no "(ValueError)"
    return result


_EXCEPTION_NOTE = re.compile(r" ?\((?:[A-Za-z_.]*(?:Error|Exception|Warning)|[A-Z][A-Za-z]*Error: [^)]*)\)")


def _process_file(job: tuple[str, ...]) -> FileResult:
    ref, src_str, rel = job[:3]
    approved = job[3] if len(job) > 3 else None
    proposed = job[4] if len(job) > 4 else None
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
        return _process(src, result, root, approved, proposed)
    except dicomio.NotDicom as e:
        kind = SKIPPED if src.suffix.lower() in NON_DICOM_SUFFIXES else FAILED
        result.status, result.reason = kind, str(e) if kind == FAILED else "not DICOM (not copied)"
    except dicomio.HeldBack as e:  # the file changed while read, a decompression bomb
        result.status, result.reason = HELD, str(e)
    except dicomio.Unreadable as e:
        result.reason = str(e)
    except OSError as e:
        result.reason = _os_error_text(e)
    except Exception:  # a bug or an input we did not foresee: held, never passed through
        result.reason = UNEXPECTED
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # pyo3's, from a codec written in Rust: not an Exception
            raise
        result.reason = "corrupt image data: the image decoder failed on it"
    return result


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


def _os_error_text(e: OSError | None) -> str:
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


def _process(src: Path, result: FileResult, root: Path, approved: str | None = None,
             proposed: str | None = None) -> FileResult:
    g: Guidelines = _WORKER["guidelines"]
    before = dicomio.source_state(src)
    pruned_names: list[str] = []  # names in sequences pruned unread: learned as the engine would
    with dicomio.pruning(functools.partial(rawkeep.plan_header, guidelines=g, names=pruned_names)):
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
    if at_risk:  # its pixels will be decoded: bounded before anything is unpacked
        too_large = dicomio.decode_size_problem(ds)
        if too_large:
            result.status, result.reason = HELD, f"burned-in text risk ({at_risk}): {too_large}"
            return result
    if at_risk or not header.streamable:
        full = dicomio.read_full(src)
        read_keys = sorted([*ds.keys(), *(tag for tag, _ in header.pruned)]) if header.pruned else list(ds.keys())
        if [t for t in full.keys() if t < 0x7FE00000] != [t for t in read_keys if t < 0x7FE00000]:
            result.reason = "corrupt: the file reads differently as a whole than its header alone (damaged?)"
            return result
        ds = full
        too_large = dicomio.decode_size_problem(ds) if at_risk else None  # now the codec's own headers
        if too_large:
            result.status, result.reason = HELD, f"burned-in text risk ({at_risk}): {too_large}"
            return result
    result.person = person_of(ds)
    identifiers = Identifiers()
    for name in pruned_names:
        identifiers.add_name(name)
    ctx = engine.Context(guidelines=g, mapper=_WORKER["mapper"], identifiers=identifiers,
                         raw_kept=header.raw_kept if full is None else frozenset(),
                         raw_nested=header.raw_nested and full is None)
    outcome = engine.deidentify(ds, ctx)
    result.actions = engine.action_counts(outcome, header.pruned)
    if outcome.hold_reason:
        result.status, result.reason = HELD, outcome.hold_reason
        return result
    if at_risk and not _pixels_may_go(ds, result, assessment, approved, proposed):
        return result
    if not str(ds.get("SOPInstanceUID", "") or "").strip() or not str(ds.get("SOPClassUID", "") or "").strip():
        result.reason = "corrupt: no usable SOP Instance UID or SOP Class UID (damaged?)"
        return result
    ts = str(ds.file_meta.get("TransferSyntaxUID") or header.transfer_syntax) if full is not None else header.transfer_syntax
    ds.file_meta = engine.new_file_meta(ds, ts)
    out_rel = output_path(ds, outcome.pseudonym, _WORKER["mapper"])
    partial = partial_path(_WORKER["dest"], result.src)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        if full is None:
            # the header is checked in memory before anything is written
            try:
                encoded = dicomio.encode_header(ds)
            except Exception:  # a value pydicom cannot write back (text outside the character set, ...)
                result.reason = "corrupt: a value cannot be written back as it was read (damaged?)"
                return result
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
        if dicomio.source_state(src) != before:  # rewritten while judged and copied: what was judged is gone
            raise dicomio.SourceChanged()
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


def person_of(ds: Dataset) -> str:
    """Who the original file says the patient is, as three short hashes "family|sex|birth date"
    (an empty part where the header has none). Files of one Patient ID whose persons differ
    (person_clash) are two people the export mixed up."""
    def part(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12] if value else ""

    name = str(ds.get("PatientName", "") or "")
    family = re.sub(r"[^A-Z]", "", name.split("^")[0].upper()) if name.isascii() else name.split("^")[0].strip().upper()
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    birth = re.sub(r"\D", "", str(ds.get("PatientBirthDate", "") or ""))
    return "|".join((part(family), sex if sex in ("M", "F") else "", part(birth)))


def person_clash(a: str, b: str) -> bool:
    """True if two person_of values cannot be one person: two of family name, sex and birth date
    given in both and different. One alone is how one person's records differ in real exports
    (a married name, a corrected birth date, a typing slip): not a second person."""
    return sum(1 for x, y in zip(a.split("|"), b.split("|"), strict=False) if x and y and x != y) >= 2


PERSON_CLASH = ("two different patients share one Patient ID (different name, sex or birth date): "
                "held so they are not merged; correct the IDs in the export, then run again")


def _hold_mixed_patients(results: dict[str, FileResult], dest: Path, state: "_StateWriter") -> None:
    """Hold every written file of a pseudonym whose files name more than one person (order-free)."""
    persons: dict[str, list[str]] = {}
    for r in results.values():
        if r.patient and r.person and (r.status == WRITTEN or r.reason == PERSON_CLASH):
            persons.setdefault(r.patient, []).append(r.person)
    mixed = set()
    for patient, found in persons.items():
        # one person if every version is linked to the others by a chain of versions that differ
        # in at most one detail (a married name here, a corrected birth date there)
        distinct = sorted(set(found))[:256]
        group = list(range(len(distinct)))

        def root(i: int, group: list[int] = group) -> int:
            while group[i] != i:
                i = group[i]
            return i

        for i, a in enumerate(distinct):
            for j in range(i + 1, len(distinct)):
                if not person_clash(a, distinct[j]):
                    group[root(j)] = root(i)
        if len({root(i) for i in range(len(distinct))}) > 1:
            mixed.add(patient)
    for src in sorted(results):
        r = results[src]
        if r.status == WRITTEN and r.patient in mixed:
            (dest / r.out).unlink(missing_ok=True)  # first: a kill before the journal line redoes it
            r.status, r.reason, r.out = HELD, PERSON_CLASH, ""
            state.append(r)


def _pixels_may_go(ds: Dataset, result: FileResult, assessment: "risk.RiskAssessment",
                   approved: str | None, proposed: str | None = None) -> bool:
    """The pixel step of an image at risk: apply a person's approved boxes, or run the detector and
    decide by rule. True: ds is ready to write (pixels blanked and re-encoded as needed, Burned In
    Annotation NO, Clean Pixel Data code added). False: held; result says why, and result.proposal
    holds the boxes proposed to a person when the pixels could be looked at.

    A person's approval of exactly the tool's (non-empty) proposal is held again when the final
    look still finds text outside the boxes (the tool found more the person has not seen). When the
    person changed the boxes, or the proposal was empty, their decision stands: exactly their boxes
    are blanked. Every approved image sent says so in De-identification Method (0012,0063)
    (engine.PERSON_REVIEWED), which --verify reads."""
    original_ts = str(ds.file_meta.get("TransferSyntaxUID") or dicomio.transfer_syntax_of(ds))
    if approved is not None:
        try:
            regions = review_decisions.parse_boxes(approved)
            blanked = pixels.apply_regions(ds, regions)
            # the look --verify takes: text still seen beyond the person's boxes keeps it here
            left = pixels.text_left(ds)
        except (review_decisions.DecisionError, pixels.PixelError) as e:
            result.status, result.reason = HELD, f"burned-in text risk ({assessment.reason}): approved, but {e}"
            result.proposal = approved
            return False
        if any(left) and not _person_decision_stands(approved, proposed):
            where = "; ".join(f"frame {i + 1} rows {b[0]}-{b[2]}, cols {b[1]}-{b[3]}"
                              for i, boxes in enumerate(left) for b in boxes[:3])
            result.status = HELD
            result.reason = (f"burned-in text risk ({assessment.reason}): approved, but text is still found "
                             f"outside the approved boxes ({where}): widen the boxes or reject, and run again")
            grown = [[pixels.Box(*b).grown(pixels.REDACTION_MARGIN, int(ds.Rows), int(ds.Columns)).as_list()
                      for b in boxes] for boxes in left]
            result.proposal = review_decisions.format_boxes(regions + review_decisions.regions_from_frames(grown))
            return False
        result.reason = f"approved by a person ({blanked} region(s) blanked)" if blanked else "approved by a person"
        engine.add_method_note(ds, engine.PERSON_REVIEWED)
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
            if outcome.boxes or outcome.status != "hold" or outcome.for_person:  # a person can decide
                result.proposal = review_decisions.format_boxes(review_decisions.regions_from_frames(outcome.boxes))
            return False
        ds.BurnedInAnnotation = "NO"
        result.reason = why
    pixels.encode_like(ds, original_ts)
    engine.add_clean_pixel_code(ds)
    return True


def _person_decision_stands(approved: str, proposed: str | None) -> bool:
    """Did the person change the tool's proposal (boxes removed, moved or added), or was there no
    proposal (an image the detector cannot judge)? Then their boxes are final. Unknown proposal:
    False (fail closed)."""
    if proposed is None:
        return False
    try:
        tool = review_decisions.format_boxes(review_decisions.parse_boxes(proposed))
    except review_decisions.DecisionError:
        return False
    return not tool or tool != review_decisions.format_boxes(review_decisions.parse_boxes(approved))


def _save_thumbnails(ref: str, outcome: pixels.PixelOutcome) -> list[str]:
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


def _small_number(value: object, limit: int) -> int:
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
    decided; review_decisions.DecisionError (before anything is done) if that file is malformed.
    Raises ValueError if the output or hospital-side folder lies in the export (by any path)."""
    for folder in (config.dest, config.hospital_dir):
        if folder_within(folder, config.source) or folder_within(config.source, folder):
            raise ValueError(f"{folder.name} would be inside the export folder (or the export inside it)")
    config.dest.mkdir(parents=True, exist_ok=True)
    config.hospital_dir.mkdir(parents=True, exist_ok=True)
    (config.hospital_dir / SOURCE_NOTE).write_text(str(config.source), encoding="utf-8", errors="surrogateescape")
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
    by_sop = {r.sop_instance: r for r in placed.values() if r.sop_instance}
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
                _place(result, placed, results, config.dest, state, by_sop)
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
        _hold_mixed_patients(results, config.dest, state)
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


def _decision_for(r: FileResult, decisions: dict[str, "review_decisions.Decision"]) -> "review_decisions.Decision | None":
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
            again.append((*job, d.boxes, r.proposal))
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


# A pool in which no file at all has finished for this long is taken as stuck (a decoder in an
# endless loop): its workers are ended and their files redone one by one, as after a dead worker.
WORKER_SILENCE_LIMIT = float(os.environ.get("DEIDKIT_WORKER_SILENCE_LIMIT_S", "1800"))
# Test hook (tests/test_hostile.py): "DIR:F000012,F000040/written,F000077/always" makes the worker
# SIGKILL itself when it starts (or, with "/written", finishes writing) that file, once per file (a
# marker in DIR remembers it), as the OOM killer would; "/always" every time, as an aborting codec;
# "/hang" makes it wait for ever on that file, every time.
WORKER_KILL_HOOK = "DEIDKIT_TEST_KILL_WORKER"


def _execute(jobs: list[tuple[str, ...]], config: RunConfig) -> Iterator[FileResult]:
    """Results of every job, in the order they finish. A worker that dies (SIGKILL, the OOM
    killer, a codec that aborts) breaks the pool: its files and every other file then in flight
    are done again in a new pool; a file that also kills a worker working on it alone gets the
    result WORKER_DIED (not journaled: the next run tries it again). Never waits for ever."""
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
    chunks = [jobs[i:i + chunksize] for i in range(0, len(jobs), chunksize)]
    lost: list[tuple[str, ...]] = []
    yield from _run_pool(chunks, workers, args, lost)
    # After a broken pool: the files in flight again, one at a time in a one-worker pool, so the
    # file a dying worker was on is known for certain. One death can be chance (the OOM killer
    # picks a process, not a file): a file is given up only after its worker died twice.
    deaths: dict[str, int] = {}
    while lost:
        retry, lost = lost, []
        suspects: list[tuple[str, ...]] = []
        yield from _run_pool([[job] for job in retry], 1, args, suspects)
        if suspects:
            job = suspects[0]  # the one the lone worker was on when it died
            deaths[job[0]] = deaths.get(job[0], 0) + 1
            if deaths[job[0]] >= 2:
                yield FileResult(ref=job[0], src=job[2], status=FAILED, reason=WORKER_DIED)
                suspects = suspects[1:]
        lost = suspects


def _run_pool(chunks: list[list[tuple[str, ...]]], workers: int, args: tuple,
              lost: list[tuple[str, ...]]) -> Iterator[FileResult]:
    """Run chunks in a process pool, yielding results as chunks finish; at most a few chunks per
    worker are in flight. If the pool breaks, the jobs not finished are added to `lost` (the
    in-flight ones first, in submission order) and the generator ends."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # DEIDKIT_START_METHOD (tests, troubleshooting): "spawn" as on Windows, macOS and the frozen program
    ctx = multiprocessing.get_context(os.environ.get("DEIDKIT_START_METHOD") or ("spawn" if sys.platform == "win32" else None))
    pending = list(reversed(chunks))
    in_flight: dict = {}
    limit = workers * 3 if workers > 1 else 1
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker, initargs=args)
    try:
        while pending or in_flight:
            broken = False
            while pending and len(in_flight) < limit:
                chunk = pending.pop()
                try:
                    in_flight[pool.submit(_process_chunk, chunk)] = chunk
                except BrokenProcessPool:
                    pending.append(chunk)
                    broken = True
                    break
            if not broken:
                done, _ = wait(in_flight, timeout=WORKER_SILENCE_LIMIT, return_when=FIRST_COMPLETED)
                if not done:  # no file finished for that long: a worker is stuck; ended like a dead one
                    for process in list(getattr(pool, "_processes", {}).values()):
                        process.kill()
                    wait(in_flight, return_when=FIRST_COMPLETED)
                broken = any(f.exception() is not None for f in done) or not done
            order = sorted(in_flight, key=lambda f: in_flight[f][0][0])
            for future in order:
                if not future.done() or (broken and future.exception() is not None):
                    continue
                chunk = in_flight.pop(future)
                error = future.exception()
                if error is not None:  # not a broken pool: a bug in the chunk loop itself
                    raise error
                yield from future.result()
            if broken:
                for future in order:
                    if future in in_flight:
                        lost.extend(in_flight.pop(future))
                for chunk in reversed(pending):
                    lost.extend(chunk)
                return
    except KeyboardInterrupt:  # Ctrl-C: the workers ignore it; end them now, not after their chunk
        program.end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _init_pool_worker(*args: Any) -> None:
    """_init_worker in a pool process, which leaves Ctrl-C to the main process."""
    program.ignore_interrupt()
    _init_worker(*args)


def _process_chunk(chunk: list[tuple[str, ...]]) -> list[FileResult]:
    return [process_file(job) for job in chunk]


def _worker_kill_hook(ref: str, when: str) -> None:
    """The test hook WORKER_KILL_HOOK (see there); does nothing unless it names this file."""
    value = os.environ.get(WORKER_KILL_HOOK, "")
    if not value:
        return
    folder, _, names = value.rpartition(":")
    for name in names.split(","):
        target, _, point = name.partition("/")
        if target == ref and point == "always" and when == "start":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if target == ref and point == "hang" and when == "start":
            while True:  # as a decoder in an endless loop
                time.sleep(1)
        if target == ref and (point or "start") == when:
            try:
                os.close(os.open(os.path.join(folder, f"killed_{ref}_{when}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def _place(result: FileResult, placed: dict[str, FileResult], results: dict[str, FileResult],
           dest: Path, state: "_StateWriter", by_sop: dict[str, FileResult]) -> None:
    """Move a finished file from the partial folder to its place; settle duplicates and name clashes.

    Whatever order the workers finish in, the outcome is the same:
    - the same SOP Instance UID with the same bytes: a duplicate, dropped quietly;
    - the same SOP Instance UID with other content: the first by source path goes out, the other
      is held for a person (the export holds two versions of one image);
    - two different instances whose names share the 8-digit code (about 1 in 4 billion a pair):
      the smaller SOP Instance UID keeps the name, the other gets a second code from its own UID."""
    if result.status != WRITTEN:
        return
    partial = partial_path(dest, result.src)
    twin = by_sop.get(result.sop_instance) if result.sop_instance else None
    if twin is not None:
        if twin.sha256 == result.sha256:
            partial.unlink(missing_ok=True)
            result.status, result.reason, result.out = DUPLICATE, f"same instance as {twin.ref}", ""
            return
        keeper, other = (twin, result) if twin.src < result.src else (result, twin)
        other.status, other.reason = HELD, (f"two different files with the same SOP Instance UID ({keeper.ref} and "
                                            f"{other.ref}): {keeper.ref} was sent, this one held for a person to choose")
        if other is result:
            partial.unlink(missing_ok=True)
            result.out = ""
            return
        old_out = twin.out
        (dest / old_out).unlink(missing_ok=True)  # removed first: a kill before the journal line redoes it
        twin.out = ""
        results[twin.src] = twin
        state.append(twin)
        del placed[old_out]
        by_sop.pop(twin.sop_instance, None)
    holder = placed.get(result.out)
    if holder is not None:  # a different instance under the same name: a clash of the short code
        if holder.sop_instance < result.sop_instance:
            result.out = _second_name(result)
        else:
            moved = _second_name(holder)
            if moved in placed:
                raise _NameClash()
            old_out, holder.out = holder.out, moved
            results[holder.src] = holder
            state.append(holder)  # journaled first: a kill before the move redoes the holder
            (dest / moved).parent.mkdir(parents=True, exist_ok=True)
            os.replace(dest / old_out, dest / moved)
            del placed[old_out]
            placed[moved] = holder
            by_sop[holder.sop_instance] = holder
        if result.out in placed:
            raise _NameClash()
    final = dest / result.out
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    placed[result.out] = result
    by_sop[result.sop_instance] = result


class _NameClash(OSError):
    """Two instances clash even in their second code (never seen: 64 bits of two hashes)."""

    def __init__(self) -> None:
        super().__init__(errno.EEXIST, "two images would get the same output name")


def _second_name(r: FileResult) -> str:
    """The output name with a second code, from the (de-identified) SOP Instance UID."""
    digest = hashlib.sha256(b"deidkit-second-name\0" + r.sop_instance.encode()).hexdigest()
    code = f"{int(digest[:16], 16) % 10 ** 9:09d}"  # digits: contract.IMAGE_FILE_RE's "_<n>" suffix
    return r.out[: -len(".dcm")] + f"_{code}.dcm"


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
        self.fp.write(json.dumps({name: getattr(result, name) for name in _RESULT_FIELDS}, ensure_ascii=True) + "\n")
        self.fp.flush()
        if time.monotonic() - self.last_sync >= self.FSYNC_INTERVAL:
            os.fsync(self.fp.fileno())
            self.last_sync = time.monotonic()

    def __exit__(self, *exc: object) -> None:
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


# What a run writes into DEST, by name: output images (output_path), the two reports, the partial
# folder. Only such files are removed when an earlier run is replaced.
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9_]+/STUDY_[0-9A-F]+/SERIES_\d{4}_[A-Z0-9]+_[0-9A-F]+/IMG_\d{5}_[0-9A-F]+(_[0-9A-F]+)?\.dcm$")


def remove_earlier_output(dest: Path, hospital_dir: Path) -> list[str]:
    """Remove what an earlier run wrote into dest: the files its manifest or its journal lists (and
    only if named as this kit names them), its reports and partial folder, then the folders left
    empty. Returns the files left (relative, sorted): files the kit did not write are never
    removed. The journal of the earlier run is removed too (the new run starts fresh).

    Raises OSError if a file the kit wrote cannot be removed."""
    import csv

    ours: set[str] = set()
    manifest = dest / MANIFEST_NAME
    if manifest.is_file():
        with manifest.open(encoding="utf-8", errors="replace", newline="") as fp:
            ours |= {row.get("file", "") for row in csv.DictReader(fp)}
    state = hospital_dir / STATE_NAME
    if state.is_file():
        with state.open(encoding="utf-8", errors="replace") as fp:
            for line in fp:
                try:
                    ours.add(str(json.loads(line).get("out", "")))
                except (ValueError, AttributeError):
                    continue
    for rel in sorted(ours):
        if _OUTPUT_NAME.match(rel) and ".." not in rel.split("/"):
            path = dest / rel
            if path.is_file() and not path.is_symlink():
                path.unlink()
    for name in (MANIFEST_NAME, SUMMARY_NAME, MANIFEST_NAME + ".tmp", SUMMARY_NAME + ".tmp"):
        if (dest / name).is_file():
            (dest / name).unlink()
    partial = dest / PARTIAL_DIR
    if partial.is_dir() and not partial.is_symlink():
        for leftover in partial.iterdir():
            if leftover.name.endswith(".part") and leftover.is_file():
                leftover.unlink()
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        if Path(dirpath) != dest and not os.listdir(dirpath):
            os.rmdir(dirpath)
    if state.is_file():
        state.unlink()
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir() or p.is_symlink())


def output_is_ours(dest: Path) -> bool:
    """True when dest holds a delivery (manifest) or a partial run of deid_tool."""
    return (dest / MANIFEST_NAME).is_file() or (dest / PARTIAL_DIR).is_dir()


def state_matches(config: RunConfig) -> bool:
    """True when the run state beside the output was written with this configuration (same fingerprint): the run may resume."""
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
        return Path((hospital_dir / SOURCE_NOTE).read_text(encoding="utf-8", errors="surrogateescape").strip())
    except OSError:
        return None
