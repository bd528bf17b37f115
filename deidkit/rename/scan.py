"""rename_folders, step 1: walk the tree without following links and read the headers into
neutral facts (hashes, numbers, modality; never header text). Special files are never opened."""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread

from ..identity_check import identity_warnings
from ..journal import long_path

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Defined terms of Modality (0008,0060), PS3.3 C.7.3.1.1.1; anything else is written as OT.
MODALITIES = frozenset(
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID GM "
    "HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS "
    "OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN "
    "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC".split())


@dataclass
class Facts:
    """What naming needs from one header. Identity keys are hashes, so no PHI is carried."""
    patient: str
    study: str
    series: str
    study_order: tuple
    series_number: int | None
    instance_number: int | None
    instance_key: str
    modality: str
    warnings: tuple[str, ...]


@dataclass
class Node:
    """One folder, file or link of the scanned tree: name, kind, DICOM facts, children."""
    name: str
    kind: str                      # dir, dicom, other, link, dicomdir
    facts: Facts | None = None
    children: list["Node"] = field(default_factory=list)
    unreadable: bool = False


def _h(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def _int(value: object) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 10**9 else None


def read_facts(path: str) -> Facts | str | None:
    """Facts of a DICOM file; "dicomdir" for a media directory; None when not readable DICOM."""
    try:
        ds = dcmread(long_path(path), stop_before_pixels=True, force=False, defer_size="2 KB")
    except Exception:  # noqa: BLE001 - anything unreadable is treated as non-DICOM
        return None
    try:
        meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if meta_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
            return "dicomdir"
        get = lambda kw: str(ds.get(kw, "") or "")  # noqa: E731
        modality = get("Modality").strip().upper()
        patient = _h(get("PatientID"), get("PatientName"))
        study_uid = get("StudyInstanceUID")
        return Facts(
            patient=patient,
            study=_h(patient, study_uid),
            series=_h(patient, study_uid, get("SeriesInstanceUID")),
            study_order=(get("StudyDate"), get("StudyTime"), _h(study_uid)),
            series_number=_int(ds.get("SeriesNumber")),
            instance_number=_int(ds.get("InstanceNumber")),
            instance_key=_h(get("SOPInstanceUID")),
            modality=modality if modality in MODALITIES else "OT",
            warnings=tuple(identity_warnings(ds)),
        )
    except Exception:  # noqa: BLE001 - a header pydicom cannot interpret: non-DICOM, reviewed
        return None


def _is_link(entry: os.DirEntry) -> bool:
    if entry.is_symlink():
        return True
    is_junction = getattr(entry, "is_junction", None)  # Python 3.12+: Windows junctions
    return bool(is_junction and is_junction())


def _is_regular(entry: os.DirEntry) -> bool:
    """A regular file (not a FIFO, device or socket, which would block or never end if read)."""
    try:
        return stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return True  # it vanished or cannot be stat'ed: reading it fails fast and says so


def scan(root: Path, exclude: set[Path], progress: Callable[[int, int], None] | bool | None = None) -> Node:
    """Walk the tree below root without following links, leaving out the paths in exclude; read
    the header of every regular file. progress(done, total) is called after each header (a bool
    is accepted for older callers and means no callback). Unreadable folders are marked, never
    raised."""
    top = Node(name="", kind="dir")
    files: list[tuple[Node, str]] = []
    stack = [(top, os.fspath(root))]
    while stack:
        node, path = stack.pop()
        try:
            with os.scandir(long_path(path)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            node.unreadable = True  # renamed itself, but its contents cannot be: reviewed
            continue
        for entry in entries:
            full = os.path.join(path, entry.name)
            if Path(full) in exclude:
                continue
            if _is_link(entry):
                node.children.append(Node(entry.name, "link"))
            elif entry.is_dir(follow_symlinks=False):
                child = Node(entry.name, "dir")
                node.children.append(child)
                stack.append((child, full))
            elif not _is_regular(entry):
                node.children.append(Node(entry.name, "special"))  # FIFO, device, socket: never opened
            else:
                child = Node(entry.name, "other")
                node.children.append(child)
                files.append((child, full))
    report = progress if callable(progress) else None
    for done, (node, full) in enumerate(files, 1):
        facts = read_facts(full)
        if node.name.upper() == "DICOMDIR" or facts == "dicomdir":
            node.kind = "dicomdir"
        elif isinstance(facts, Facts):
            node.kind, node.facts = "dicom", facts
        if report:
            report(done, len(files))
    return top


