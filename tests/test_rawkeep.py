"""Elements the tables keep as they are stay raw bytes (deidkit.rawkeep, issue 19): the same
hold decisions and, element by element, the same output as the path that converts and
re-encodes every value (RAW_KEEP off), except kept values whose padding pydicom normalised;
kept raw elements are still swept for the patient's identifiers and still checked for damage."""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import find_leaks
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deidkit import cli_deid, dicomio, engine_sweep, rawkeep
from deidkit import guidelines as gl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import header_shapes  # noqa: E402

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
FAMILY, GIVEN, PATIENT_ID = "WOLLSTONECRAFT", "ISOLDE", "PID55321"
DCM_QA = Path("/work/cache/dcm_qa")
ENHANCED_CACHE = Path("/work/cache/deidkit_bench/unpacked/dcm_qa_philips_enh")
# kept values whose bytes pydicom re-encodes differently (padding, number spelling): the only
# differences the raw path may make, compared after stripping spaces and NULs per value
NORMALISED_VRS = {"DS", "IS", "CS", "AE", "LO", "SH", "ST", "LT", "UT", "UC"}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def ct(n: int, ts: str = ExplicitVRLittleEndian, body_part: str = "CHEST", grid: str = "FOCUSED") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.7124.1.{n}"
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7124", "1.2.826.0.1.3680043.9.7124.1"
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = f"{FAMILY}^{GIVEN}", PATIENT_ID, "F", "19700101"
    ds.Modality, ds.ImageType, ds.Manufacturer = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], "ACME"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240115", "101500", "1", "ACC992"
    ds.SeriesNumber, ds.InstanceNumber = 1, n
    ds.BodyPartExamined, ds.GridID = body_part, grid  # not in the table: kept raw, swept
    ds.SliceThickness, ds.KVP = "1.25", "120"
    ge = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    ge.add_new(0x1C, "SS", 3)
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(256, dtype=np.uint16) * (n + 1) % 4096).astype("<u2").tobytes()
    return ds


def encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def run(source: Path, out: Path, key: Path) -> int:
    return cli_deid.main([str(source), "--out", str(out), "--yes", "--key", str(key), "--workers", "1"])


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def held(out: Path) -> list[tuple[str, ...]]:
    path = out.with_name(out.name + "_HOSPITAL_ONLY") / "held_back.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8-sig", newline="") as fp:
        return sorted(tuple(row) for row in csv.reader(fp))


def _element_bytes(ds: Dataset) -> dict[int, tuple[str, bytes]]:
    out = {}
    for tag in ds.keys():
        raw = ds.get_item(tag)
        out[int(tag)] = (raw.VR, raw.value if isinstance(raw.value, bytes) else b"")
    return out


def _normalised(vr: str, value: bytes) -> list[str]:
    return [v.strip(" \0") for v in value.decode("latin-1").split("\\")]


def element_differences(a: bytes, b: bytes) -> list[str]:
    """Top-level elements whose bytes differ other than by the listed normalisation."""
    da, db = dcmread(io.BytesIO(a), force=True), dcmread(io.BytesIO(b), force=True)
    ea, eb = _element_bytes(da), _element_bytes(db)
    if ea.keys() != eb.keys():
        return [f"tags differ: {sorted(ea.keys() ^ eb.keys())}"]
    bad = []
    for tag, (vr, value) in ea.items():
        other_vr, other = eb[tag]
        if (vr, value) == (other_vr, other):
            continue
        if vr != other_vr or vr not in NORMALISED_VRS or _normalised(vr, value) != _normalised(vr, other):
            bad.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr}")
    return bad


def _dcm_qa_sample(limit: int = 2) -> list[Path]:
    out = []
    for name in ("dcm_qa_ge", "dcm_qa"):
        base = DCM_QA / name / "In"
        if base.is_dir():
            out += [p for p in sorted(base.rglob("*")) if p.is_file() and header_shapes.is_dicom_file(p)][:limit]
    enhanced = ENHANCED_CACHE / "enh"  # gunzipped by benchmarks/bench_export.py --shape real
    if enhanced.is_dir():  # the smallest Philips enhanced multi-frame file: thousands of nested elements
        out += sorted((p for p in enhanced.glob("*.dcm") if header_shapes.is_dicom_file(p)), key=lambda p: p.stat().st_size)[:1]
    return out


@pytest.fixture(scope="module")
def mixed_export(tmp_path_factory, synth_export) -> Path:
    """The synthetic export, our own CTs (explicit and implicit VR), four heavy-shape slices and,
    when the cache has them, a few public dcm_qa files (GE, Siemens, a Philips enhanced one)."""
    root = tmp_path_factory.mktemp("rawkeep") / "EXPORT"
    shutil.copytree(synth_export.root, root / "synth")
    for n, ts in ((1, ExplicitVRLittleEndian), (2, ImplicitVRLittleEndian), (3, ExplicitVRLittleEndian)):
        (root / "own").mkdir(parents=True, exist_ok=True)
        data = encode(ct(n, ts))
        if n == 3:  # a code NUL-padded as some devices write it: kept byte for byte, not re-padded
            assert data.count(b"CHEST ") == 1
            data = data.replace(b"CHEST ", b"CHEST\0")
        (root / "own" / f"IM{n}.dcm").write_bytes(data)
    old = header_shapes.SLICES_PER_SERIES
    header_shapes.SLICES_PER_SERIES = 1
    try:
        header_shapes.write_heavy_export(root / "heavy", 4, size=16)
    finally:
        header_shapes.SLICES_PER_SERIES = old
    for i, path in enumerate(_dcm_qa_sample()):
        (root / "dcm_qa").mkdir(exist_ok=True)
        shutil.copyfile(path, root / "dcm_qa" / f"{i:03d}.dcm")
    return root


def test_raw_path_matches_the_converting_path_element_by_element(tmp_path, monkeypatch, mixed_export):
    key = tmp_path / "k" / "key.txt"
    kept = []
    real = rawkeep.plan_header

    def counting(ds, guidelines, names=None):
        pruned, tags, nested = real(ds, guidelines, names)
        kept.append(len(tags))
        return pruned, tags, nested

    monkeypatch.setattr(rawkeep, "plan_header", counting)
    status = run(mixed_export, tmp_path / "RAW", key)
    assert sum(kept) > 50  # elements were kept raw, so the comparison says something
    monkeypatch.setattr(rawkeep, "RAW_KEEP", False)
    assert run(mixed_export, tmp_path / "CONVERTED", key) == status
    assert held(tmp_path / "RAW") == held(tmp_path / "CONVERTED")  # the same hold decisions
    raw, converted = tree(tmp_path / "RAW"), tree(tmp_path / "CONVERTED")
    assert raw.keys() == converted.keys() and len(raw) > 15
    differing = [k for k in raw if raw[k] != converted[k] and k.endswith(".dcm")]
    assert len(differing) == 1  # only the NUL-padded Body Part Examined, kept as it came
    for k in differing:
        assert element_differences(raw[k], converted[k]) == [], k
    assert dcmread(io.BytesIO(raw[differing[0]]), force=True).get_item(0x00180015).value == b"CHEST\0"
    assert dcmread(io.BytesIO(converted[differing[0]]), force=True).get_item(0x00180015).value == b"CHEST "


def test_raw_output_is_byte_identical_across_reruns(tmp_path):
    source = tmp_path / "EXPORT"
    source.mkdir()
    for n in range(1, 4):
        (source / f"IM{n}.dcm").write_bytes(encode(ct(n)))
    key = tmp_path / "k" / "key.txt"
    run(source, tmp_path / "A", key)
    run(source, tmp_path / "B", key)
    assert tree(tmp_path / "A") == tree(tmp_path / "B")


def test_a_kept_raw_value_naming_the_patient_is_swept(tmp_path, monkeypatch):
    source = tmp_path / "EXPORT"
    source.mkdir()
    (source / "IM1.dcm").write_bytes(encode(ct(1, body_part=FAMILY, grid=f"GRID {PATIENT_ID}")))
    g = gl.load()
    gl.register_new_attributes(g)
    with dicomio.pruning(lambda ds: rawkeep.plan_header(ds, g, [])):
        header = dicomio.read_header(source / "IM1.dcm")
    assert {0x00180015, 0x00181006, 0x00180050} <= header.raw_kept  # left raw: the sweep must read them
    key = tmp_path / "k" / "key.txt"
    assert run(source, tmp_path / "OUT", key) in (0, 1)
    assert not find_leaks(tmp_path / "OUT", {FAMILY, PATIENT_ID})
    out = dcmread(next((tmp_path / "OUT").rglob("*.dcm")))
    assert "BodyPartExamined" not in out and "GridID" not in out
    # without the sweep of raw elements only the last net (the written-bytes search) stops them:
    # the file is held instead of written cleaned, so the test bites
    monkeypatch.setattr(engine_sweep, "_sweep_raw", lambda ds, raw, ctx, seen: None)
    assert run(source, tmp_path / "OUT2", key) == 1
    assert not list((tmp_path / "OUT2").rglob("*.dcm"))
    assert any("still in the written header" in " ".join(row) for row in held(tmp_path / "OUT2"))


def test_damage_in_a_raw_kept_element_still_holds_the_file(tmp_path):
    ds = ct(1)
    ds.add_new(0x00080304, "CS", "AB")  # Nonidentifying Private Elements is US: a damaged VR
    path = tmp_path / "IM1.dcm"
    path.write_bytes(encode(ds))
    g = gl.load()
    with pytest.raises(dicomio.Unreadable, match="type does not fit"):
        with dicomio.pruning(lambda d: rawkeep.plan_header(d, g, [])):
            dicomio.read_header(path)


def test_only_the_export_keeps_raw(tmp_path):
    path = tmp_path / "IM1.dcm"
    path.write_bytes(encode(ct(1)))
    header = dicomio.read_header(path)  # --verify and every other reader: every value converted
    assert header.raw_kept == frozenset()
    assert all(type(header.dataset.get_item(t)).__name__ == "DataElement" for t in header.dataset.keys())


def test_the_run_log_counts_actions_without_phi(tmp_path):
    source = tmp_path / "EXPORT"
    source.mkdir()
    for n in range(1, 3):
        (source / f"IM{n}.dcm").write_bytes(encode(ct(n)))
    run(source, tmp_path / "OUT", tmp_path / "k" / "key.txt")
    log = (tmp_path / "OUT_HOSPITAL_ONLY" / "run_log.txt").read_text(encoding="utf-8")
    counts = log.split("Elements changed, by action and reason (all files):", 1)[1]
    assert "U new UID" in counts and "Z pseudonym" in counts and "Z emptied" in counts
    assert "C date shifted" in counts and "(00" not in counts  # counts only: no tag, no value
    for secret in (FAMILY, GIVEN, PATIENT_ID, "ACC992"):
        assert secret not in counts
