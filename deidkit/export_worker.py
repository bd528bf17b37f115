"""The work on one source file, as a worker process does it: read, judge, de-identify, write
into the partial folder. Never raises for a file: every failure becomes its FileResult.

Order of one file (_process): header read (pruned of what is removed anyway) -> DICOMDIR? ->
hold rules and burned-in risk -> the whole file when pixels are checked or the transfer syntax
cannot be streamed -> engine -> pixel step (export_pixels) -> last net (export_last_net) ->
written, and the source checked unchanged."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from pathlib import Path
from typing import NamedTuple

from pydicom.dataset import Dataset

from . import content, dicomio, engine, pixels, rawkeep, risk
from .export_last_net import header_leaks
from .export_model import DICOMDIR, FAILED, HELD, SKIPPED, UNEXPECTED, WRITTEN, FileResult, os_error_text
from .export_pixels import pixels_may_go
from .export_plan import NON_DICOM_SUFFIXES, output_path, partial_path
from .guidelines import Guidelines, register_new_attributes
from .mapping import Mapper
from .sweep import Identifiers

# Files whose pixels are checked, or whose transfer syntax (deflated, big endian) cannot be streamed,
# are read whole; above this much pixel data they are held instead, so memory stays bounded.
WHOLE_READ_LIMIT = int(os.environ.get("DEIDKIT_WHOLE_READ_LIMIT_MB", "256")) * 1024 * 1024
# Test hook (tests/test_hostile.py): "DIR:F000012,F000040/written,F000077/always" makes the worker
# SIGKILL itself when it starts (or, with "/written", finishes writing) that file, once per file (a
# marker in DIR remembers it), as the OOM killer would; "/always" every time, as an aborting codec;
# "/hang" makes it wait for ever on that file, every time.
WORKER_KILL_HOOK = "DEIDKIT_TEST_KILL_WORKER"
LEAK_HELD = "an identifier of the patient is still in the written header"

_WORKER: dict = {}


def init_worker(guidelines: Guidelines, key: bytes, dest: str, hospital: str, override_dir: str) -> None:
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
    with dicomio.no_cycle_collection():  # (issue 19: 10-20% of a heavy header's CPU)
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
        return _process_path(src, Path(src_str[: len(src_str) - len(rel)]), result, approved, proposed)
    except dicomio.NotDicom as e:
        kind = SKIPPED if src.suffix.lower() in NON_DICOM_SUFFIXES else FAILED
        result.status, result.reason = kind, str(e) if kind == FAILED else "not DICOM (not copied)"
    except dicomio.HeldBack as e:  # the file changed while read, a decompression bomb
        result.status, result.reason = HELD, str(e)
    except dicomio.Unreadable as e:
        result.reason = str(e)
    except OSError as e:
        result.reason = os_error_text(e)
    except Exception:  # a bug or an input we did not foresee: held, never passed through
        result.reason = UNEXPECTED
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # pyo3's, from a codec written in Rust: not an Exception
            raise
        result.reason = "corrupt image data: the image decoder failed on it"
    return result


def _process_path(src: Path, root: Path, result: FileResult, approved: str | None,
                  proposed: str | None) -> FileResult:
    """A link or a folder is listed; anything else is processed as a file."""
    if src.is_symlink():
        return _link_result(src, root, result)
    if src.is_dir():
        result.reason = "folder cannot be read: " + os_error_text(_scandir_error(src))
        return result
    return _process(src, result, root, approved, proposed)


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


def _held(result: FileResult, reason: str) -> FileResult:
    result.status, result.reason = HELD, reason
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
            return _held(result, "DICOMDIR names files outside the export (left out, not followed)")
        result.status, result.reason = DICOMDIR, "DICOMDIR left out (it names patients; the output has none)"
        return result
    ds = header.dataset
    if ds.get("SOPInstanceUID"):  # the keyed UID, also for a file held: labels pointing at it are listed
        result.sop_instance = _WORKER["mapper"].uid(str(ds.SOPInstanceUID))
    assessment = risk.assess(ds, g, layout_matched=bool(pixels.matching_rules(ds, _WORKER["rules"])))
    at_risk = assessment.reason if assessment.at_risk else None
    hold = _hold_before_reading(ds, header, src, g, assessment, at_risk)
    if hold:
        return _held(result, hold)
    full = None
    if at_risk or not header.streamable:
        full = _read_whole(src, header, at_risk, result)
        if full is None:
            return result
        ds = full
    return _deidentify_and_write(src, ds, header, full, result, pruned_names, before,
                                 _PixelStep(assessment, at_risk, approved, proposed))


class _PixelStep(NamedTuple):
    """What the pixel step of an image needs: its risk, and a person's boxes (if any)."""

    assessment: risk.RiskAssessment
    at_risk: str | None   # the risk's reason; None: not at risk
    approved: str | None  # boxes a person approved
    proposed: str | None  # boxes the tool proposed to them


def _hold_before_reading(ds: Dataset, header: dicomio.Header, src: Path, g: Guidelines,
                         assessment: risk.RiskAssessment, at_risk: str | None) -> str | None:
    """Why the file is held from its header alone (hold rules, a risk the settings do not let us
    check, too much to read whole, pixels too large to decode), or None."""
    hold = engine.hold_reason_for(ds, g)
    if hold:
        return hold
    if at_risk and (assessment.action == risk.HOLD or not g.settings.clean_pixel_data):
        return f"burned-in text risk ({at_risk}); pixels not checked"
    if (at_risk or not header.streamable) and dicomio.pixel_bytes(header, src) > WHOLE_READ_LIMIT:
        # checking pixels (or re-encoding) reads the whole file into memory: bounded, fail closed
        what = f"burned-in text risk ({at_risk})" if at_risk else "transfer syntax needs a whole-file read"
        return f"{what}; file too large to check in memory"
    if at_risk:  # its pixels will be decoded: bounded before anything is unpacked
        too_large = dicomio.decode_size_problem(ds)
        if too_large:
            return f"burned-in text risk ({at_risk}): {too_large}"
    return None


def _read_whole(src: Path, header: dicomio.Header, at_risk: str | None, result: FileResult) -> Dataset | None:
    """The whole file, checked to read as its header did; None when result says why not."""
    ds = header.dataset
    full = dicomio.read_full(src)
    read_keys = sorted([*ds.keys(), *(tag for tag, _ in header.pruned)]) if header.pruned else list(ds.keys())
    if [t for t in full.keys() if t < 0x7FE00000] != [t for t in read_keys if t < 0x7FE00000]:
        result.reason = "corrupt: the file reads differently as a whole than its header alone (damaged?)"
        return None
    too_large = dicomio.decode_size_problem(full) if at_risk else None  # now the codec's own headers
    if too_large:
        _held(result, f"burned-in text risk ({at_risk}): {too_large}")
        return None
    return full


def _deidentify_and_write(src: Path, ds: Dataset, header: dicomio.Header, full: Dataset | None,
                          result: FileResult, pruned_names: list[str], before: tuple[int, int, int],
                          pixel_step: _PixelStep) -> FileResult:
    """The engine, the pixel step of an image at risk, then the file written (or held)."""
    assessment, at_risk, approved, proposed = pixel_step
    g: Guidelines = _WORKER["guidelines"]
    result.person = person_of(ds)
    identifiers = Identifiers()
    for name in pruned_names:
        identifiers.add_name(name)
    ctx = engine.Context(guidelines=g, mapper=_WORKER["mapper"], identifiers=identifiers,
                         raw_kept=header.raw_kept if full is None else frozenset(),
                         raw_nested=header.raw_nested and full is None,
                         hold_checked=True)  # _hold_before_reading asked engine.hold_reason_for
    outcome = engine.deidentify(ds, ctx)
    result.actions = engine.action_counts(outcome, header.pruned)
    if outcome.hold_reason:
        return _held(result, outcome.hold_reason)
    if at_risk and not pixels_may_go(ds, result, assessment, approved, proposed, _WORKER["rules"],
                                     g.settings.trust_pixel_detector, _WORKER["hospital"]):
        return result
    if not str(ds.get("SOPInstanceUID", "") or "").strip() or not str(ds.get("SOPClassUID", "") or "").strip():
        result.reason = "corrupt: no usable SOP Instance UID or SOP Class UID (damaged?)"
        return result
    ts = str(ds.file_meta.get("TransferSyntaxUID") or header.transfer_syntax) if full is not None else header.transfer_syntax
    ds.file_meta = engine.new_file_meta(ds, ts)
    out_rel = output_path(ds, outcome.pseudonym, _WORKER["mapper"])
    if not _write(src, ds, header, full, result, identifiers, before):
        return result
    result.status = WRITTEN
    result.out = out_rel
    result.patient = outcome.pseudonym
    result.study, result.series = out_rel.split("/")[1], out_rel.split("/")[2]
    result.modality = str(ds.get("Modality", "") or "")
    result.sop_class = str(ds.get("SOPClassUID", ""))
    result.sop_instance = str(ds.get("SOPInstanceUID", ""))
    result.references = content.referenced_instances(ds)
    return result


def _write(src: Path, ds: Dataset, header: dicomio.Header, full: Dataset | None, result: FileResult,
           identifiers: Identifiers, before: tuple[int, int, int]) -> bool:
    """Write ds into the partial folder after the last net; True: written (size and SHA-256 in
    result). False: result says why not. Raises dicomio.SourceChanged if the source changed."""
    partial = partial_path(_WORKER["dest"], result.src)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        if full is None:
            # the header is checked in memory before anything is written
            try:
                encoded = dicomio.encode_header(ds)
            except Exception:  # a value pydicom cannot write back (text outside the character set, ...)
                result.reason = "corrupt: a value cannot be written back as it was read (damaged?)"
                return False
            if header_leaks(encoded, identifiers, ds):
                _held(result, LEAK_HELD)
                return False
            result.size, result.sha256 = dicomio.write_streamed(encoded, src, header.pixel_span, partial)
        else:
            # every element but the pixel values, as plain bytes (the written file may be deflated)
            if header_leaks(dicomio.header_search_bytes(ds), identifiers, ds):
                _held(result, LEAK_HELD)
                return False
            dicomio.write_whole(ds, partial)
            result.size, result.sha256 = _size_and_hash(partial)
        if dicomio.source_state(src) != before:  # rewritten while judged and copied: what was judged is gone
            raise dicomio.SourceChanged()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True


def person_of(ds: Dataset) -> str:
    """Who the original file says the patient is, as three short hashes "family|sex|birth date"
    (an empty part where the header has none). Files of one Patient ID whose persons differ
    (export_place.person_clash) are two people the export mixed up."""
    def part(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12] if value else ""

    name = str(ds.get("PatientName", "") or "")
    family = re.sub(r"[^A-Z]", "", name.split("^")[0].upper()) if name.isascii() else name.split("^")[0].strip().upper()
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    birth = re.sub(r"\D", "", str(ds.get("PatientBirthDate", "") or ""))
    return "|".join((part(family), sex if sex in ("M", "F") else "", part(birth)))


def _size_and_hash(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fp:
        while chunk := fp.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


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
