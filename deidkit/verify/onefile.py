"""The one-file check: a pure function of one file and its context (the guideline table, whether
a manifest asks for hashes). Never raises for bad input; runs in worker processes or on Dask.

Reads what deid_tool writes and pydicom reads: every transfer syntax including deflated and the
compressed ones (pixels decoded only for images at burned-in text risk). Also judges the bytes
outside the data elements: the preamble, native Pixel Data longer than its frames, bytes after
the dataset (issue 12 kind 4).
"""
from __future__ import annotations

import dataclasses
import hashlib
import stat
import warnings
from pathlib import Path
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .. import guidelines as gl
from .. import risk
from ..dicom_types import missing_bulk_data
from ..sweep import mask
from .elements import PIXEL_TAGS, PRINTABLE_RUN, Checker, FileResult, tag_text, values_of
from .rules import FAIL, REVIEW, make
from .text import name_problems, uid_problem

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DEFER_SIZE = 64 * 1024          # values larger than this are not read (pixel data, big blobs)
EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa", b"\xcf\xfa\xed\xfe", b"#!")
_VIEWS: dict[tuple[str, frozenset[str]], gl.Guidelines] = {}


def declared_options(ds: Dataset) -> frozenset[str] | None:
    """Options the file says it was de-identified with (codes first), or None if it says nothing."""
    by_code = {code: name for name, (code, _) in gl.OPTION_CODES.items()}
    seq = ds.get(0x00120064)
    codes = []
    if seq is not None and seq.VR == "SQ":
        codes = [str(item.get("CodeValue", "")) for item in seq.value or []]
    if codes:
        return frozenset(by_code[c] for c in codes if c in by_code and by_code[c] in gl.OPTIONS)
    method = ds.get(0x00120063)
    if method is not None and method.value:
        names = {v.strip().lower() for v in values_of(method.value)}
        return frozenset(o for o in gl.OPTIONS if o in names)
    return None


def view_for(base: gl.Guidelines, options: frozenset[str]) -> gl.Guidelines:
    """The guideline table as the engine applied it under the declared options."""
    key = (base.sha256, options)
    view = _VIEWS.get(key)
    if view is None:
        view = dataclasses.replace(base, settings=dataclasses.replace(base.settings, options=options))
        _VIEWS[key] = view
    return view


def check_file(path: Path, rel: str, want_hash: bool, g: gl.Guidelines) -> FileResult:
    """Everything that can be said about one file on its own. Never raises for bad input."""
    result = FileResult(rel)
    try:
        st = path.lstat()
        result.size = st.st_size
        if not stat.S_ISREG(st.st_mode):
            result.kind = "special"
            result.findings.append(make(rel, "file", "files:not-regular-file", REVIEW,
                                        "not a regular file (FIFO, device or socket): listed, never opened"))
            return result
        if want_hash:
            result.sha256 = _sha256(path)
    except OSError as e:
        result.kind = "unreadable"
        rule = "files:path-too-long" if e.errno == 36 else "files:unreadable"
        result.findings.append(make(rel, "file", rule, REVIEW, f"cannot be read ({e.strerror or e})"))
        return result
    if result.size == 0:
        result.kind = "unreadable"
        result.findings.append(make(rel, "file", "files:unreadable", REVIEW, "empty file (0 bytes)"))
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's notes on odd values are not findings
        ds = _read(path, rel, result)
        if ds is None:
            return result
        try:
            return _check_dataset(ds, path, g, result)
        except Exception as e:  # noqa: BLE001 - one clear line, go on
            result.kind = "unreadable"
            result.findings.append(make(rel, "file", "files:unreadable", REVIEW,
                                        f"DICOM file cannot be checked to the end ({type(e).__name__})"))
            return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path, rel: str, result: FileResult) -> Dataset | None:
    try:
        return _read_header(path)
    except InvalidDicomError:
        result.kind = "non-dicom"
        result.findings.append(make(rel, "file", "files:non-dicom", REVIEW,
                                    f"not a DICOM file ({result.size} bytes); a person should check its content"))
    except Exception as e:  # noqa: BLE001 - truncated or corrupt: one clear line, go on
        result.kind = "unreadable"
        kind = "truncated" if isinstance(e, (EOFError, OSError)) else "cannot be parsed"
        result.findings.append(make(rel, "file", "files:unreadable", REVIEW, f"DICOM file {kind} ({type(e).__name__})"))
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(132)


def _read_header(path: Path) -> Dataset:
    """Header with large values left on disk. Files without preamble are accepted if they parse
    as a dataset with a SOP Class; anything else raises InvalidDicomError."""
    head = _head(path)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return pydicom.dcmread(path, defer_size=DEFER_SIZE)
    ds = pydicom.dcmread(path, force=True, defer_size=DEFER_SIZE)
    keys = list(ds.keys())
    if not keys or 0x00080016 not in ds or keys[0] < 0x00080000 or any(k.group == 0 or k.group > 0xFFFE for k in keys):
        raise InvalidDicomError("not DICOM")
    str(ds.SOPClassUID)
    return ds


def _check_dataset(ds: Dataset, path: Path, g: gl.Guidelines, result: FileResult) -> FileResult:
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    is_dicomdir = sop_class == MEDIA_STORAGE_DIRECTORY or 0x00041220 in ds
    removed = str(ds.get("PatientIdentityRemoved", "") or "").strip().upper()
    declared = None if is_dicomdir else declared_options(ds)
    # a file that does not say it was de-identified keeps nothing by a profile: Basic, no option
    options = declared if (declared is not None and removed == "YES") else frozenset()
    checker = Checker(result, view_for(g, options), sop_class, is_dicomdir, declared is not None and removed == "YES")
    result.kind = "dicomdir" if is_dicomdir else "dicom"
    result.profile = ("Basic Profile" + "".join(f" + {o}" for o in gl.OPTIONS if o in options)
                      if declared is not None and removed == "YES" else "")
    _bytes_outside(checker, ds, path, result.size)
    if not is_dicomdir:
        _declaration(checker, removed)
    _file_meta_findings(checker, ds)
    result.study = str(ds.get("StudyInstanceUID", "") or "")
    result.patient = str(ds.get("PatientID", "") or "")
    checker.walk(ds)
    if is_dicomdir:
        _dicomdir_file_ids(checker, ds)
    else:
        if not any(f.severity == FAIL for f in result.findings):  # a second opinion, not a repeat
            _identity_warnings(checker, ds)
        _burned_in(checker, ds, path, g)
    return result


def _declaration(checker: Checker, removed: str) -> None:
    """A file that does not say it was de-identified. (What a declared option keeps is no finding:
    the record names the declared profile.)"""
    if removed != "YES":
        checker.add("(0012,0062)", "identity:patient-identity-removed-missing", REVIEW,
                    "Patient Identity Removed is " + ("missing" if not removed else f"'{mask(removed)}'")
                    + ": the file does not say it was de-identified")


# ---- bytes outside the data elements -------------------------------------------------------------

def _bytes_outside(checker: Checker, ds: Dataset, path: Path, size: int) -> None:
    head = _head(path)
    if len(head) >= 132 and head[128:132] == b"DICM" and head[:128].strip(b"\0"):
        texty = head.startswith(EXECUTABLE_MAGIC) or PRINTABLE_RUN.search(head[:128]) is not None
        checker.add("preamble", "bytes:preamble-not-zero", FAIL if texty else REVIEW,
                    "the 128-byte preamble is not zero" + (" and holds text or an executable header" if texty else ""))
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts == DeflatedExplicitVRLittleEndian:
        return  # positions are in the inflated stream: nothing to compare with the file size
    after, start = trailing_elements(ds)
    checker.skip = after
    if after:  # bytes after the dataset that pydicom read as elements of no meaning
        _extra_bytes(checker, path, start, size - start, "bytes", "bytes:trailing-bytes", "byte(s) after the dataset")
    keys = [k for k in ds.keys() if k not in after]
    last = ds.get_item(keys[-1], keep_deferred=True) if keys else None
    if not after and isinstance(last, RawDataElement) and last.length not in (None, 0xFFFFFFFF):
        end = last.value_tell + last.length
        if end > size:
            checker.add("file", "files:unreadable", REVIEW,
                        f"DICOM file truncated: the last element {tag_text(keys[-1])} runs past the end of the file")
        elif end < size:
            _extra_bytes(checker, path, end, size - end, "bytes", "bytes:trailing-bytes", "byte(s) after the dataset")
    cut_short = missing_bulk_data(ds)
    if cut_short:
        checker.add("file", "files:unreadable", REVIEW, "DICOM file " + cut_short)
    if ts is not None and not ts.is_compressed:
        _pixel_padding(checker, ds, path)


def trailing_elements(ds: Dataset) -> tuple[frozenset[int], int]:
    """Top-level elements that are really bytes after the dataset, and where they start: in file
    order, the first element whose tag is not above the one before it, or anything after Pixel
    Data other than the signature and padding (PS3.5 7.1: elements come in ascending order)."""
    placed: list[tuple[int, int]] = []
    for key in ds.keys():
        raw = ds.get_item(key, keep_deferred=True)
        if isinstance(raw, RawDataElement):
            placed.append((raw.value_tell, int(key)))
    placed.sort()
    previous, pixels_seen = -1, False
    for i, (tell, tag) in enumerate(placed):
        if tag <= previous or (pixels_seen and tag not in (0xFFFAFFFA, 0xFFFCFFFC)):
            return frozenset(t for _, t in placed[i:]), max(0, tell - 12)
        previous, pixels_seen = tag, pixels_seen or tag == 0x7FE00010
    return frozenset(), 0


def _extra_bytes(checker: Checker, path: Path, offset: int, length: int, location: str, rule: str, what: str) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        extra = f.read(min(length, 1 << 20))
    if not extra.strip(b"\0 "):
        return
    texty = PRINTABLE_RUN.search(extra) is not None
    checker.add(location, rule, FAIL if texty else REVIEW,
                f"{length} {what}" + (", holding readable text" if texty else ""))


def _pixel_padding(checker: Checker, ds: Dataset, path: Path) -> None:
    raw = ds.get_item(0x7FE00010, keep_deferred=True) if 0x7FE00010 in ds else None
    if not isinstance(raw, RawDataElement) or raw.length in (None, 0xFFFFFFFF):
        return
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("BitsAllocated", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return
    need = (rows * cols * samples * frames * bits + 7) // 8
    need += need % 2
    if need and raw.length > need:
        _extra_bytes(checker, path, raw.value_tell + need, raw.length - need, "pixels",
                     "bytes:pixel-data-padding", "byte(s) of Pixel Data beyond its frames")


# ---- file meta, DICOMDIR, identity, pixels ------------------------------------------------------

def _file_meta_findings(checker: Checker, ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if not meta:
        return
    for tag, label in ((0x00020003, "Media Storage SOP Instance UID"), (0x00020012, "Implementation Class UID")):
        value = str(meta.get(tag).value or "") if tag in meta else ""
        problem = uid_problem(value) if value and "retain_uids" not in checker.options else None
        if problem:
            sev = FAIL if tag == 0x00020003 else REVIEW
            checker.add(tag_text(tag), "uids:uid-not-remapped", sev, f"{label}: UID {problem}")
    for tag in (0x00020016, 0x00020017, 0x00020018):
        if tag in meta and str(meta[tag].value or "").strip() and "retain_device_identity" not in checker.options:
            checker.add(tag_text(tag), "devices:source-ae-title", REVIEW,
                        f"{meta[tag].name} names a system: {mask(str(meta[tag].value))}")
    if 0x00020102 in meta and meta[0x00020102].value:
        checker.add("(0002,0102)", "private:file-meta-private-information", FAIL, "Private Information in the file meta")


def _dicomdir_file_ids(checker: Checker, ds: Dataset) -> None:
    for i, record in enumerate(ds.get("DirectoryRecordSequence", []) or []):
        parts = values_of(record.get("ReferencedFileID", "") and record.ReferencedFileID)
        for part in parts:
            for rule, severity, why in name_problems(part, checker.g):
                checker.add(f"(0004,1220)[{i}]>(0004,1500)", rule, severity, f"DICOMDIR file reference: {why}")


def _identity_warnings(checker: Checker, ds: Dataset) -> None:
    from ..identity_check import identity_warnings

    try:
        reasons = identity_warnings(ds)
    except Exception:  # noqa: BLE001
        return
    for reason in reasons:
        checker.add("header", "identity:identity-check", REVIEW, str(reason))


def risk_reason(ds: Dataset, g: gl.Guidelines) -> str | None:
    """Why an image may carry burned-in text: the one risk table deid_tool applies
    (guidelines/burned_in_risk.csv through deidkit.risk), or None."""
    assessment = risk.assess(ds, g)
    return (assessment.reason or "the risk table names it") if assessment.at_risk else None


def _burned_in(checker: Checker, ds: Dataset, path: Path, g: gl.Guidelines) -> None:
    if not any(t in ds for t in PIXEL_TAGS):
        return
    try:
        reason = risk_reason(ds, g)
    except Exception:  # noqa: BLE001 - the risk rules failing must not hide the risk
        reason = "risk rules could not judge the header"
    if not reason:
        return
    boxes, why_not = look_for_text(path)
    if boxes is None:
        checker.add("pixels", "burned-in:at-risk-unchecked", REVIEW,
                    f"image at burned-in text risk ({reason}); pixels not checked: {why_not}")
    elif boxes:
        where = "; ".join(f"rows {b[0]}-{b[2]}, cols {b[1]}-{b[3]}" for b in boxes[:3])
        if _person_reviewed(ds):  # a person released these pixels (deid_tool review_decisions.csv)
            checker.add("pixels", "burned-in:text-in-reviewed-pixels", REVIEW,
                        f"text found in pixels a person reviewed ({reason}): {len(boxes)} region(s), {where}")
        else:
            checker.add("pixels", "burned-in:text-in-pixels", FAIL,
                        f"text found in the pixels ({reason}): {len(boxes)} region(s), {where}")


def _person_reviewed(ds: Dataset) -> bool:
    """De-identification Method (0012,0063) says a person reviewed the pixels (engine.PERSON_REVIEWED)."""
    from ..engine import PERSON_REVIEWED

    method = ds.get(0x00120063)
    return method is not None and bool(method.value) and any(
        v.strip().lower() == PERSON_REVIEWED for v in values_of(method.value))


def look_for_text(path: Path) -> tuple[list[list[int]] | None, str]:
    """(text boxes, '') for an image at risk, or (None, why it could not be looked at).

    deidkit.pixels.clean_pixels (without layout rules) is the detector, so the verdict matches
    what deid_tool does ("text" the detector cannot judge, over most of a frame, is the whole frame:
    only a person can release such an image, and says so, see burned-in:text-in-reviewed-pixels):
    the straight edges of rectangles blanked earlier (found from the pixels,
    pixels.edge_aware_look) are not text. Any transfer syntax pydicom can decode is read."""
    from .. import pixels

    try:
        full = pydicom.dcmread(path, force=True)
        outcome = pixels.clean_pixels(full, [])
    except Exception as e:  # noqa: BLE001 - undecodable pixels: say so, do not crash
        return None, f"pixel check failed ({type(e).__name__})"
    boxes = [list(b) for frame in outcome.boxes for b in frame]
    if outcome.status == "hold" and not boxes and not outcome.for_person and not outcome.reason.startswith("text"):
        return None, outcome.reason
    if outcome.status == "hold" and not boxes:
        return [[0, 0, int(full.get("Rows", 0) or 0), int(full.get("Columns", 0) or 0)]], ""
    return boxes, ""
