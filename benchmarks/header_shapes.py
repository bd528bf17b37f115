"""Header shapes for benchmarks/bench_export.py: heavy synthetic headers and real vendor headers.

heavy  `heavy_header(...)` is a CT slice header shaped like what a real PHI-bearing export holds:
       every Table E.1-1 attribute that can carry a value (deidkit.synth.plant_table_attributes,
       nested sequences with their own nested sequence), vendor private blocks (GE-, Siemens- and
       Philips-like creators, a CSA-like binary blob, some safe-listed attributes, some not), in one
       of three character sets (the fake patients of deidkit.synth: ISO_IR 100, ISO_IR 192,
       ISO 2022 IR 87). About 600 elements and 20 KB of header. `write_heavy_export(root, n)`
       writes n 512x512 16-bit slices into root, deterministically (same n -> same bytes).
real   `build_real_tree(cache, root, per_vendor)` lays out the public dcm_qa data (Siemens with
       CSA: neurolabusc/dcm_qa; GE with large private groups: dcm_qa_ge; Philips enhanced
       multi-frame: dcm_qa_philips_enh, gunzipped) as hard links (or copies) under root, each
       vendor's files repeated until it has per_vendor files (the enhanced ones per_vendor / 5).

Fake PHI only; nothing here is real patient data (the dcm_qa data is public phantom/volunteer
data released by its authors for testing converters).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence

from deidkit import guidelines as gl
from deidkit.synth import PATIENTS, FakePatient, base_dataset, plant_table_attributes, synth_uid
from deidkit.synth import _private_blocks  # noqa: PLC2701 - the synth helper, reused on purpose

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
HEAVY_VERSION = "heavy-1"   # bump when the generator changes (names the cache folder)
SLICES_PER_SERIES = 125

# Attributes whose planted value would make the file something else than a plain CT slice that
# goes out (held back as burned-in risk, or pixels checked): set to what a CT scanner writes.
_PLAIN_CT = {"BurnedInAnnotation": "NO", "RecognizableVisualFeatures": "NO"}


def _det_bytes(seed: str, n: int) -> bytes:
    """n pseudo-random but deterministic bytes (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}|{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _csa_like(patient: FakePatient, size: int = 1200) -> bytes:
    """A Siemens CSA-like blob: "SV10" header, named entries with text values, one naming the
    patient (as real CSA series headers carry the protocol path and sometimes the patient)."""
    parts = [b"SV10\x04\x03\x02\x01", struct.pack("<II", 60, 77)]
    for i in range(20):
        name = f"Param{i:03d}".encode().ljust(64, b"\0")
        value = f"{i * 1.5:.4f}".encode()
        parts.append(name + struct.pack("<I4sII", 1, b"DS\0\0", 77, len(value)) + value.ljust(8, b"\0"))
    parts.append(f"PatientPath {patient.patient_id}".encode())
    data = b"".join(parts)
    data += _det_bytes("csa" + patient.patient_id, max(0, size - len(data)))
    return data + (b"\0" if len(data) % 2 else b"")


def _vendor_private_blocks(ds: Dataset, patient: FakePatient) -> None:
    """GE-, Siemens- and Philips-like private blocks: numbers, codes, text, one binary blob, a
    nested private sequence; some elements are on the Table E.3.10-1 safe list, most are not."""
    acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    for e in range(0x20, 0x38):
        if e in (0x23, 0x24, 0x27):   # safe-listed DS (table speed, mid scan time, rotation speed)
            acq.add_new(e, "DS", f"{e / 7:.3f}")
        elif e % 3 == 0:
            acq.add_new(e, "SS", e)
        elif e % 3 == 1:
            acq.add_new(e, "DS", [f"{e * 0.25:.2f}", "0", "1"])
        else:
            acq.add_new(e, "LO", f"GE ACQ PARAM {e:02X}")
    acq.add_new(0x9E, "LO", "HELIX")   # safe-listed: Internal Pulse Sequence Name
    iden = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    iden.add_new(0x01, "LO", "GE_GENESIS_FF")
    iden.add_new(0x02, "SH", "CT01")
    iden.add_new(0x04, "SH", patient.patient_id[:16])   # GE writes the suite ID / patient fields here
    iden.add_new(0x27, "SL", 1_700_000_000)
    parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    for e in range(0x10, 0x1C):
        parm.add_new(e, "SS" if e % 2 else "DS", e if e % 2 else f"{e / 3:.4f}")
    parm.add_new(0x27, "SH", "1.375:1")  # safe-listed: Scan Pitch Ratio
    csa = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    csa.add_new(0x09, "LO", "20240115")
    csa.add_new(0x10, "OB", _csa_like(patient))
    csa.add_new(0x18, "CS", "MR")
    philips = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
    for e in range(0x01, 0x26):
        philips.add_new(e, "IS" if e in (0x02, 0x08, 0x0A, 0x1D) else "CS" if e in (0x04, 0x06, 0x07, 0x0B, 0x0C,
                        0x0E, 0x10, 0x12, 0x19, 0x1C, 0x1E, 0x1F, 0x21, 0x24) else "DS",
                        "1" if e in (0x02, 0x08, 0x0A, 0x1D) else "N" if e in (0x04, 0x06, 0x07, 0x0B, 0x0C, 0x0E,
                        0x10, 0x12, 0x19, 0x1C, 0x1E, 0x1F, 0x21, 0x24) else f"{e / 4:.2f}")
    item = Dataset()
    item.add_new(0x00100010, "PN", patient.name.split("=")[0])       # a name deep in private data
    item.add_new(0x00181030, "LO", "T1W_3D_TFE")
    philips.add_new(0x5F, "SQ", Sequence([item]))
    mr = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
    for e in range(0x00, 0x10):
        mr.add_new(e, "FL" if e % 2 else "LO", float(e) / 8 if e % 2 else f"PHILIPS MR {e:02X}")


FULL_ITEM_EVERY = 12  # one planted sequence in 12 keeps synth's whole nested item (two levels deep)


def _slim_sequences(ds: Dataset) -> None:
    """synth plants every sequence with the same two-level item (seven elements and a nested
    sequence); real headers have mostly short coded items. Every FULL_ITEM_EVERY-th sequence keeps
    the whole planted item; the others keep its code triplet (Code Meaning still names the
    patient), so the header stays near 20 KB with every table attribute present."""
    sequences = [tag for tag in sorted(ds.keys()) if ds[tag].VR == "SQ"]
    for n, tag in enumerate(sequences):
        if n % FULL_ITEM_EVERY == 0:
            continue
        for item in ds[tag].value:
            for inner in [t for t in item.keys() if t not in (0x00080100, 0x00080102, 0x00080104)]:
                del item[inner]


def heavy_header(patient_index: int, series: int, instance: int, size: int = 512,
                 guidelines: gl.Guidelines | None = None, template: Dataset | None = None) -> Dataset:
    """One heavy CT slice header (no pixel data). With `template` (a header of the same series
    made by this function) only the per-instance attributes change: series share their values,
    as real ones do, and generating 1,000 files stays fast."""
    patient = PATIENTS[patient_index % len(PATIENTS)]
    study_uid = synth_uid("heavy-study", patient.patient_id)
    series_uid = synth_uid("heavy-series", patient.patient_id, series)
    sop_uid = synth_uid("heavy-sop", patient.patient_id, series, instance)
    if template is None:
        guidelines = guidelines or gl.load()
        gl.register_new_attributes(guidelines)
        ds = base_dataset(patient, CT_IMAGE, study_uid, series_uid, sop_uid, "CT", series + 1, instance + 1)
        planted: set[str] = set()
        uids: set[str] = set()
        plant_table_attributes(ds, patient, f"PHI{patient_index}S{series}X", planted, uids, guidelines)
        # planting rewrote the structural UIDs with planted ones; put the series' own back
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        _slim_sequences(ds)
        _private_blocks(ds, patient, planted)
        _vendor_private_blocks(ds, patient)
        for keyword, value in _PLAIN_CT.items():
            setattr(ds, keyword, value)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SliceThickness, ds.KVP = "1.0", "120"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows, ds.Columns = size, size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        for tag in [t for t in ds.keys() if t >> 16 == 0x6000 or t == 0x7FE00010]:
            del ds[tag]   # no overlay or pixels in the header template
    else:
        ds = template
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance + 1
    ds.ImagePositionPatient = [-250.0, -250.0, float(-instance)]
    ds.SliceLocation = f"{-instance:.1f}"
    return ds


def slice_pixels(size: int, variants: int = 4) -> list[bytes]:
    """A few anatomy-like noisy slices (deterministic); files cycle through them."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((yy - size / 2) / (size * 0.42)) ** 2 + ((xx - size / 2) / (size * 0.36)) ** 2 < 1
    return [np.clip(np.where(body, 1000, 0) + rng.normal(0, 40, size=(size, size)), 0, 4095).astype("<u2").tobytes()
            for _ in range(variants)]


def write_heavy_export(root: Path, slices: int, size: int = 512, guidelines: gl.Guidelines | None = None) -> int:
    """Write `slices` heavy CT slices under root (patient folders named like a PACS export);
    series of SLICES_PER_SERIES, two series per patient, patients cycling through the fake ones
    (three character sets). Deterministic. Returns the number of files written."""
    guidelines = guidelines or gl.load()
    pixels = slice_pixels(size)
    template: Dataset | None = None
    current = None
    for i in range(slices):
        series_index, instance = divmod(i, SLICES_PER_SERIES)
        patient_index, series = divmod(series_index, 2)
        if current != series_index:
            template, current = None, series_index
        ds = heavy_header(patient_index, series, instance, size, guidelines, template)
        template = ds
        patient = PATIENTS[patient_index % len(PATIENTS)]
        folder = root / f"{patient.folder} {patient_index}" / f"SE{series + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.PixelData = pixels[i % len(pixels)]
        ds["PixelData"].VR = "OW"
        dcmwrite(folder / f"IM{instance + 1:05d}.dcm", ds, enforce_file_format=True)
        del ds.PixelData
    return slices


def _generator_digest() -> str:
    """Names the cache folder after the code that makes the files (this module and deidkit.synth):
    a changed generator never reuses files an older one wrote."""
    import deidkit.synth

    h = hashlib.sha256()
    for source in (Path(__file__), Path(deidkit.synth.__file__)):
        h.update(source.read_bytes())
    return h.hexdigest()[:10]


def cached_heavy_export(cache: Path, slices: int, size: int = 512) -> Path:
    """The heavy export for `slices` in the cache (generated once; a marker file says it is whole)."""
    root = cache / f"{HEAVY_VERSION}_{_generator_digest()}_{slices}x{size}"
    done = root / ".complete"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        tree = root / "PACS EXPORT"
        write_heavy_export(tree, slices, size)
        done.write_text("ok\n")
    return root / "PACS EXPORT"


# ---- real vendor headers (public dcm_qa data) --------------------------------------------------

REAL_SOURCES = {  # vendor folder -> (dcm_qa repository name, per_vendor divisor)
    "siemens_csa": ("dcm_qa", 1),
    "ge_private": ("dcm_qa_ge", 1),
    "philips_enhanced": ("dcm_qa_philips_enh", 5),
}


def is_dicom_file(path: Path) -> bool:
    try:
        with path.open("rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def real_sources(dcm_qa: Path, name: str, unpacked: Path) -> list[Path]:
    """The DICOM files of one dcm_qa repository extracted under dcm_qa/<name> (its In/ folder);
    .dcm.gz files are gunzipped once into `unpacked` (a damaged archive is skipped)."""
    base = dcm_qa / name / "In"
    if not base.is_dir():
        raise SystemExit(f"{base} is missing: extract the repository there first (fetch github:neurolabusc/{name}; "
                         f"see benchmarks/bench_export.py --help)")
    out = []
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".dcm.gz"):
            if name == "dcm_qa_philips_enh" and path.parent.name != "enh":
                continue  # the classic copies of the same series: the enhanced ones are the point
            target = unpacked / name / path.relative_to(base).with_suffix("")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with gzip.open(path, "rb") as src, open(target.with_suffix(".part"), "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (OSError, EOFError):
                    target.with_suffix(".part").unlink(missing_ok=True)
                    continue
                os.replace(target.with_suffix(".part"), target)
            path = target
        if path.suffix.upper() == ".SR":
            continue  # Siemens protocol reports (SR documents, held back whole): images only
        if is_dicom_file(path):
            out.append(path)
    return out


def build_real_tree(dcm_qa: Path, cache: Path, per_vendor: int) -> Path:
    """An export of real vendor headers under cache: for each vendor, its files repeated (hard
    links, else copies) up to per_vendor (enhanced multi-frame: per_vendor / 5). Repeats are the
    same instances, so deid_tool writes each once and counts the rest as duplicates: the CPU of
    every file is still spent. Returns the tree's root."""
    root = cache / f"real_{per_vendor}" / "REAL EXPORT"
    done = root.parent / ".complete"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    for vendor, (name, divisor) in REAL_SOURCES.items():
        files = real_sources(dcm_qa, name, cache / "unpacked")
        if not files:
            raise SystemExit(f"no DICOM files found for {name} under {dcm_qa}")
        want = max(1, per_vendor // divisor)
        for i in range(want):
            src = files[i % len(files)]
            dst = root / vendor / f"copy{i // len(files):02d}" / f"{i % len(files):05d}.dcm"
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    done.write_text("ok\n")
    return root
