"""The benchmark's heavy header shape (benchmarks/header_shapes.py) is what issue 19 promises:
every Table E.1-1 attribute that can hold a value, >= 500 elements, nested sequences, vendor
private blocks, three character sets, about 20-35 KB of header, and the same bytes every time."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import header_shapes  # noqa: E402

from deidkit.synth import PATIENTS  # noqa: E402

SIZE = 32  # small pixels: the header is the point


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> list[Path]:
    """Two series of patient 0 would need 250 files: shrink the series so 8 files cover the 4 fake
    patients (three character sets), written through the generator's own export writer."""
    root = tmp_path_factory.mktemp("heavy") / "PACS EXPORT"
    return _write_small_heavy_export(root)


def _write_small_heavy_export(root: Path) -> list[Path]:
    """write_heavy_export with one slice a series: 8 files; the files written, sorted."""
    old = header_shapes.SLICES_PER_SERIES
    header_shapes.SLICES_PER_SERIES = 1
    try:
        header_shapes.write_heavy_export(root, 8, size=SIZE)
    finally:
        header_shapes.SLICES_PER_SERIES = old
    return sorted(p for p in root.rglob("*") if p.is_file())


def _depth(ds, level: int = 0) -> int:
    deepest = level
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                deepest = max(deepest, _depth(item, level + 1))
    return deepest


def test_heavy_header_has_the_promised_shape(written, guidelines):
    assert len(written) == 8
    charsets = set()
    for path in written:
        ds = dcmread(path, stop_before_pixels=True)
        elements = list(ds.iterall())
        assert len(elements) >= 500, len(elements)
        assert len(ds) >= 500  # at the top level alone: every table attribute sits there
        header_bytes = path.stat().st_size - SIZE * SIZE * 2
        assert 15_000 <= header_bytes <= 40_000, header_bytes
        # nested sequences, two levels deep, and many sequences
        assert sum(1 for e in ds if e.VR == "SQ") >= 50
        assert _depth(ds) >= 2
        # private blocks of the three vendors' kinds, with their creators
        creators = {str(e.value) for e in ds if e.tag.is_private and 0x10 <= e.tag.element <= 0xFF}
        assert {"GEMS_ACQU_01", "GEMS_PARM_01", "SIEMENS CSA HEADER", "Philips Imaging DD 001",
                "Philips MR Imaging DD 001"} <= creators
        assert sum(1 for e in ds if e.tag.is_private) >= 80
        assert any(e.VR == "SQ" for e in ds if e.tag.is_private)
        # every Table E.1-1 attribute with a VR is there (structural ones with their own values;
        # Ethnic Group is retained empty by synth, so it is left out; file meta is rebuilt anyway)
        planted = [tag for tag, rule in guidelines.rules.items()
                   if rule.vr and tag >> 16 not in (0x0000, 0x0002) and tag != 0x00102160]
        assert len(planted) >= 600
        missing = [f"{t:08X}" for t in planted if t not in ds]
        # Digital Signatures Sequence and Data Set Trailing Padding come after the pixel data (tag
        # order), where a header read stops; the rest must all be there
        assert missing == [] or set(missing) <= {"FFFAFFFA", "FFFCFFFC"}, missing
        # a plain CT slice that goes out: no burned-in flag that would send it to the pixel check
        assert ds.BurnedInAnnotation == "NO" and ds.Modality == "CT"
        charsets.add(str(ds.SpecificCharacterSet))
    assert len(charsets) == 3, charsets  # ISO_IR 100, ISO_IR 192, ISO 2022 IR 87 (the synth patients)


def test_heavy_header_plants_patient_values(written):
    """The header carries the fake patient's identifiers (what the tool must remove), also in
    private data and nested items."""
    ds = dcmread(written[0], stop_before_pixels=True)
    patient = PATIENTS[0]
    assert str(ds.PatientID) == patient.patient_id
    data = written[0].read_bytes()
    assert data.count(patient.patient_id.encode()) >= 5
    block = ds.private_block(0x2001, "Philips Imaging DD 001")
    item = block[0x5F].value[0]
    assert patient.name_parts()[0] in str(item.PatientName)


def test_heavy_export_is_deterministic(tmp_path, written):
    """Same arguments, same bytes, also in another folder (no time, no randomness)."""
    root = tmp_path / "again"
    again = _write_small_heavy_export(root)
    assert [p.relative_to(root) for p in again] == [p.relative_to(written[0].parents[2]) for p in written]
    for a, b in zip(written, again, strict=True):
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_series_share_values_but_not_instances():
    """Within a series only per-instance attributes differ (template reuse); instances differ."""
    first = header_shapes.heavy_header(1, 0, 0, size=SIZE)
    import copy
    first_copy = copy.deepcopy(first)
    second = header_shapes.heavy_header(1, 0, 1, size=SIZE, template=first)
    assert second.SOPInstanceUID != first_copy.SOPInstanceUID
    assert second.file_meta.MediaStorageSOPInstanceUID == second.SOPInstanceUID
    differing = {e.keyword for e in first_copy if e.tag in second and second[e.tag].value != e.value}
    assert differing <= {"SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation"}, differing
