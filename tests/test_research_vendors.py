"""Research value kept, vendor by vendor (issue 16, second round): GE User Defined Data, ...

Files are generated with pydicom. Tests on the public dcm2niix QA data (BSD, neurolabusc/dcm_qa_*)
skip when it is not extracted under DCM_QA (never part of the repository).
"""
from __future__ import annotations

import os
import struct
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from deidkit import engine
from deidkit.csa import clean_ge_user_data
from helpers import engine_context, read_back_as_file

KEY = b"v" * 32
DCM_QA = Path(os.environ.get("DEIDKIT_DCM_QA", "/work/cache/dcm_qa"))


def _ctx(g, **options):
    return engine_context(g, KEY, **options)


def _mr(manufacturer: str = "GE MEDICAL SYSTEMS") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.7.2.3"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.7"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.7.2"
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "MRN1234567"
    ds.StudyDate = "20240115"
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    return ds


# ---- GE User Defined Data (0043,xx2A) ------------------------------------------------------------

def _polarity_as_dcm2niix_reads_it(blob: bytes) -> tuple | None:
    """What dcm2niix (console/nii_dicom.cpp, kUserDefineDataGE) takes from the blob: (EPI flag,
    phase polarity flag, view order), or None when it reads nothing. Written independently of
    deidkit.csa so the test can catch a wrong offset there."""
    if len(blob) < 916:
        return None
    off = blob[24] | blob[25] << 8
    if len(blob) < off + 916:
        return None
    version = struct.unpack_from("<f", blob, off)[0]
    if not 5.0 <= version <= 40.0:
        return None
    hdr, kydir = off, 0x394
    if version >= 25.002:
        hdr, kydir = off + 0x4C, 0x394 - 0x8C
    epi = struct.unpack_from("<H", blob, hdr + 0x3A)[0] & 0x800
    if not epi:
        return (0, None, None)
    return (epi, struct.unpack_from("<H", blob, hdr + 0x30)[0] & 4, struct.unpack_from("<H", blob, hdr + kydir)[0] == 2)


def _ge_user_data(version: float, hdr_offset: int = 3244, size: int = 7480, flipped: bool = True,
                  bottom_up: bool = False) -> bytes:
    """A GE User Defined Data blob with scanner text everywhere the reader does not look."""
    filler = b"DOE^JOHN 19610203 MRN1234567 Springfield General 555-0142 "
    blob = bytearray((filler * (size // len(filler) + 1))[:size])
    struct.pack_into("<H", blob, 24, hdr_offset)
    struct.pack_into("<f", blob, hdr_offset, version)
    hdr, kydir = (hdr_offset + 0x4C, 0x308) if version >= 25.002 else (hdr_offset, 0x394)
    struct.pack_into("<H", blob, hdr + 0x3A, 0x0800 | 0x0013)
    struct.pack_into("<H", blob, hdr + 0x30, 0x0004 if flipped else 0x0001)
    struct.pack_into("<i", blob, hdr + kydir, 2 if bottom_up else 0)
    return bytes(blob)


@pytest.mark.parametrize("version, hdr_offset, size", [(28.0, 3244, 7480), (28.003, 3244, 7480),
                                                       (24.0, 100, 1100), (11.0, 0, 920)])
@pytest.mark.parametrize("flipped, bottom_up", [(True, False), (False, False), (False, True)])
def test_ge_user_data_keeps_what_dcm2niix_reads_and_zeroes_the_rest(version, hdr_offset, size, flipped, bottom_up):
    blob = _ge_user_data(version, hdr_offset, size, flipped, bottom_up)
    cleaned = clean_ge_user_data(blob)
    assert cleaned is not None and len(cleaned) == len(blob)
    assert _polarity_as_dcm2niix_reads_it(cleaned) == _polarity_as_dcm2niix_reads_it(blob)
    assert _polarity_as_dcm2niix_reads_it(cleaned)[0] == 0x800
    assert b"DOE" not in cleaned and b"MRN" not in cleaned and b"555" not in cleaned
    assert sum(1 for b in cleaned if b) <= 16  # a handful of numeric bytes, nothing else
    assert clean_ge_user_data(blob) == cleaned  # deterministic


@pytest.mark.parametrize("blob", [
    b"", b"\0" * 127,                                                   # shorter than any GE header
    _ge_user_data(28.0)[:3244 + 915],                                   # header struct cut short
    _ge_user_data(28.0)[:24] + struct.pack("<H", 7000) + _ge_user_data(28.0)[26:],  # struct past the end
    _ge_user_data(float("nan")), _ge_user_data(4.0), _ge_user_data(41.0),  # version not a header version
    b"DOE^JOHN " * 900,                                                  # plain text, no layout
])
def test_ge_user_data_without_the_layout_is_not_kept(blob):
    assert clean_ge_user_data(blob) is None


@pytest.mark.parametrize("block", [0x10, 0x13])
def test_ge_user_data_in_a_file_cleaned_or_deleted(guidelines, block):
    ds = _mr()
    blob = _ge_user_data(28.0)
    ds.add_new(0x00430000 | block, "LO", "GEMS_PARM_01 ")
    ds.add_new(0x00430000 | block << 8 | 0x2A, "OB", blob)
    ds.add_new(0x00450010, "LO", "GEMS_PARM_01")  # same creator, other group: not this element
    ds.add_new(0x0045102A, "OB", blob)
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    kept = ds[0x00430000 | block << 8 | 0x2A].value
    assert len(kept) == len(blob) and b"DOE" not in kept
    assert _polarity_as_dcm2niix_reads_it(kept) == _polarity_as_dcm2niix_reads_it(blob)
    assert 0x0045102A not in ds

    bad = _mr()
    bad.add_new(0x00430010, "LO", "GEMS_PARM_01")
    bad.add_new(0x0043102A, "OB", b"DOE^JOHN" * 200)
    bad = read_back_as_file(bad)
    engine.deidentify(bad, _ctx(guidelines))
    assert 0x0043102A not in bad

    off = read_back_as_file(_mr())
    off.add_new(0x00430010, "LO", "GEMS_PARM_01")
    off.add_new(0x0043102A, "OB", blob)
    engine.deidentify(off, _ctx(guidelines, retain_safe_private=False))
    assert 0x0043102A not in off


def _ge_qa_files() -> list[Path]:
    root = DCM_QA / "dcm_qa_ge" / "In"
    if not root.is_dir():
        return []
    firsts = (sorted(f for f in p.iterdir() if f.is_file())[:1] for p in sorted(root.rglob("*")) if p.is_dir())
    return [f for first in firsts for f in first]


@pytest.mark.skipif(not _ge_qa_files(), reason="dcm_qa_ge not extracted under DEIDKIT_DCM_QA")
def test_ge_user_data_of_the_qa_scanners_reads_the_same():
    seen = 0
    for path in _ge_qa_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # the QA folders hold a few notes and scripts
        for elem in ds:
            if elem.tag.group == 0x0043 and elem.tag.element & 0xFF == 0x2A:
                cleaned = clean_ge_user_data(elem.value)
                assert cleaned is not None, path.parent.name
                assert _polarity_as_dcm2niix_reads_it(cleaned) == _polarity_as_dcm2niix_reads_it(elem.value)
                seen += 1
    assert seen >= 20


# ---- damaged files: the message says what failed --------------------------------------------------

def test_sequence_breaking_off_is_named_as_damage_not_as_a_disk_error(tmp_path):
    """A Philips ExamCard of dcm_qa_philips_enh ends inside an undefined-length sequence: pydicom
    raises OSError without an errno ("No tag to read"), which is damage, not a failing disk."""
    from pydicom.sequence import Sequence

    from deidkit import dicomio
    from deidkit.contract import classify_reason
    ds = _mr()
    item = Dataset()
    item.CodeValue = "X"
    item.is_undefined_length_sequence_item = True
    ds.ReferencedImageSequence = Sequence([item, item])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    whole = tmp_path / "whole.dcm"
    ds.save_as(whole, enforce_file_format=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:data.rfind(b"\xfe\xff\x0d\xe0") + 8])  # after the last item, before the delimiter
    with pytest.raises(dicomio.Unreadable) as caught:
        dicomio.read_header(cut)
    message = str(caught.value)
    assert "read error" not in message and "sequence item" in message and "\n" not in message
    assert classify_reason(message).id == "damaged"


# ---- text of vendor protocol reports (Siemens PhoenixZIPReport SR) -------------------------------

@pytest.mark.parametrize("text", ["syngo MR XA30", "syngo MR E11", "MR XA20A", "Dr 3 channel coil"])
def test_title_before_a_code_is_not_a_name(guidelines, text):
    """"MR XA30" is a modality and a software version: a word with digits is no name."""
    from deidkit.sweep import Identifiers
    from deidkit.text_clean import clean_free_text
    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    assert clean_free_text(text, ids, None, guidelines.vocabulary, narrative=True).text == text


@pytest.mark.parametrize("text", ["%SiemensSeq%\\AALScout", "%CustomerSeq%\\cmrr_mbep2d_bold", "C:\\MedCom\\Seq\\Tfl",
                                  "58PF_noPAT_noPOS_PEres100_ES0p59_BW2222_AP", "run T1_MPRAGE_Sag_2"])
def test_sequence_paths_are_technical_not_names_to_review(guidelines, text):
    from deidkit.sweep import Identifiers
    from deidkit.text_clean import clean_free_text
    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    cleaned = clean_free_text(text, ids, None, guidelines.vocabulary, narrative=True)
    assert cleaned.text == text and cleaned.review == ()


@pytest.mark.parametrize("text, gone", [("seen by Mr Hansen today", "Hansen"), ("MR Hansen", "Hansen"),
                                        ("reviewed by Dr. Karlsen", "Karlsen")])
def test_titles_before_names_still_remove_the_name(guidelines, text, gone):
    from deidkit.sweep import Identifiers
    from deidkit.text_clean import clean_free_text
    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    assert gone not in clean_free_text(text, ids, None, guidelines.vocabulary, narrative=True).text


def test_a_name_beside_a_path_is_still_reviewed(guidelines):
    from deidkit.sweep import Identifiers
    from deidkit.text_clean import clean_free_text
    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    cleaned = clean_free_text("sequence %CustomerSeq%\\ep2d copied for Karen", ids, None, guidelines.vocabulary,
                              narrative=True)
    assert [cleaned.text[a:b] for a, b in cleaned.review] == ["Karen"]


def test_phoenix_report_sr_with_technical_text_is_not_held(guidelines):
    """The Siemens PhoenixZIPReport (an Enhanced SR of protocol parameters) goes out with its text."""
    from pydicom.sequence import Sequence

    def text_item(meaning: str, value: str) -> Dataset:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "TEXT"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "A-90", "99SMS_CTMR", meaning
        item.ConceptNameCodeSequence = Sequence([code])
        item.TextValue = value
        return item

    ds = _mr("Siemens Healthineers")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    values = {"System Type": "MAGNETOM Prisma Fit", "Software Version": "syngo MR XA30",
              "Protocol Name": "AAHead_Scout", "Sequence Name": "%SiemensSeq%\\AALScout",
              "Resolution Matrix": "160 x 160"}
    ds.ContentSequence = Sequence([text_item(k, v) for k, v in values.items()])
    ds = read_back_as_file(ds)
    result = engine.deidentify(ds, _ctx(guidelines))
    assert result.hold_reason is None
    assert [str(item.TextValue) for item in result.dataset.ContentSequence] == list(values.values())


# ---- 'oi' (a date in seconds since 1970) applied to values that are no date -------------------------

@pytest.mark.parametrize("vr, value", [("FD", 0.0), ("SL", 0), ("DS", "0"), ("DS", "0.0")])
def test_unset_seconds_date_stays_zero_and_does_not_reveal_the_offset(guidelines, vr, value):
    """GEMS_STDY_01 (0023,xx70) Start Time Secs In First Axial is 0.0 in GE exports where it is not
    set: shifted, it would carry the patient's offset itself."""
    ds = _mr()
    ds.add_new(0x00230010, "LO", "GEMS_STDY_01")
    ds.add_new(0x00231070, vr, value)
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert float(ds[0x00231070].value) == 0.0


@pytest.mark.parametrize("value", [12.5, 86_400.0, -3600.0, 5_000_000_000.0])
def test_seconds_date_outside_any_scan_date_is_removed_not_shifted(guidelines, value):
    ds = _mr()
    ds.add_new(0x00230010, "LO", "GEMS_STDY_01")
    ds.add_new(0x00231070, "FD", value)
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert 0x00231070 not in ds


@pytest.mark.parametrize("vr, value", [("FD", 1505926604.25), ("DS", "1505926604.25"), ("DS", "1505926604")])
def test_seconds_date_shifted_exactly(guidelines, vr, value):
    """A real moment moves by the patient's offset to the second (the DS text was cut to 6
    significant digits before: 1.50593e+09, hours away)."""
    ds = _mr()
    ds.add_new(0x00230010, "LO", "GEMS_STDY_01")
    ds.add_new(0x00231070, vr, value)
    ds = read_back_as_file(ds)
    ctx = _ctx(guidelines)
    engine.deidentify(ds, ctx)
    delta = ctx.moment_offset.days * 86400 + ctx.moment_offset.seconds
    assert delta != 0
    assert float(ds[0x00231070].value) == pytest.approx(float(value) + delta, abs=1e-3)


# ---- the utility benchmark's check that slice times keep their intervals ---------------------------

def _timed_file(folder: Path, name: str, times: list[str], datetimes: list[str]) -> str:
    from pydicom.sequence import Sequence
    ds = _mr("UIH")
    ds.AcquisitionTime = times[0]
    items = []
    for tm, dt in zip(times, datetimes, strict=True):
        item = Dataset()
        item.AcquisitionTime, item.AcquisitionDateTime = tm, dt
        items.append(item)
    ds.add_new(0x00650010, "LO", "Image Private Header")
    ds.add_new(0x00651051, "SQ", Sequence(items))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def test_benchmark_tells_kept_slice_intervals_from_changed_ones(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_utility
    orig = [_timed_file(tmp_path, "a.dcm", ["135718.843000", "135715.917000"],
                        ["20180925135718.843000", "20180925135715.917000"])]
    # shifted across midnight, fractions and intervals kept
    same = [_timed_file(tmp_path, "b.dcm", ["000001.843000", "235958.917000"],
                        ["20111225000001.843000", "20111224235958.917000"])]
    # one fraction rounded to 1/64 s as a 32-bit float would
    moved = [_timed_file(tmp_path, "c.dcm", ["000001.843750", "235958.917000"],
                         ["20111225000001.843750", "20111224235958.917000"])]
    assert bench_utility.acquisition_intervals_identical(orig, same)
    assert not bench_utility.acquisition_intervals_identical(orig, moved)


def test_geuserdata_check_needs_a_binary_vr_and_the_bundled_row_uses_it(guidelines):
    from deidkit import guidelines as gl
    with pytest.raises(gl.GuidelineError, match="check geuserdata needs VR OB"):
        gl.parse_private_table("private_creator,tag,name,vr,disposition,check,reason\n"
                               'GEMS_PARM_01,"(0043,xx2A)",x,FD,k,geuserdata,r\n', gl.RESEARCH_PRIVATE_FILE)
    entry = guidelines.safe_private_entry("GEMS_PARM_01", 0x0043, 0x102A)
    assert entry is not None and entry.check == "geuserdata" and entry.disposition == "k"


def test_ge_user_data_in_an_implicit_vr_file(guidelines):
    """Implicit VR: the reader may give the blob as UN; it is cleaned the same way and written as OB."""
    ds = _mr()
    blob = _ge_user_data(28.0, flipped=False, bottom_up=True)
    ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
    ds.add_new(0x0043102A, "OB", blob)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    buf = BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    buf.seek(0)
    ds = pydicom.dcmread(buf, force=True)
    engine.deidentify(ds, _ctx(guidelines))
    kept = ds[0x0043102A]
    assert kept.VR in ("OB", "UN") and len(kept.value) == len(blob) and b"DOE" not in kept.value
    assert _polarity_as_dcm2niix_reads_it(kept.value) == _polarity_as_dcm2niix_reads_it(blob) == (0x800, 0, True)


# ---- a short numeric ID is a number, not any digits that contain it -------------------------------

@pytest.mark.parametrize("text, found", [
    ("131116.761000", False), ("20140324131116.761000", False), ("11160", False),   # digits around it
    ("1116", True), ("study 1116", True), ("ID1116", True), ("1116.5", True), ("S1116B", True),
])
def test_short_numeric_identifier_is_matched_as_a_number(text, found):
    """dcm_qa_uih: Study ID 1116; a slice's Acquisition Time shifted to 13:11:16.761 was removed
    as if it held the Study ID (dcm2niix then lost the slice timing of that series)."""
    from deidkit.sweep import Identifiers
    ids = Identifiers()
    ids.add_exact("1116")
    assert bool(ids.find(text)) is found


def test_shifted_times_holding_the_study_id_digits_are_kept(guidelines):
    from pydicom.sequence import Sequence
    ds = _mr("UIH")
    ds.StudyID = "1116"
    items = []
    for frac in ("761000", "468000", "176000"):
        item = Dataset()
        item.AcquisitionTime = f"131116.{frac}"
        items.append(item)
    ds.add_new(0x00650010, "LO", "Image Private Header")
    ds.add_new(0x00651051, "SQ", Sequence(items))
    ds.AcquisitionTime = "131116.761000"
    ds = read_back_as_file(ds)
    ctx = _ctx(guidelines, retain_long_modified_dates=False, retain_long_full_dates=True)
    engine.deidentify(ds, ctx)
    assert [str(i.AcquisitionTime) for i in ds[0x00651051].value] == ["131116.761000", "131116.468000", "131116.176000"]
    assert "StudyID" not in ds or str(ds.StudyID) != "1116"


# ---- objects that carry Rows but no pixel data (research4: dcm_qa_spec, dcm_qa_cs_dl) -------------

MR_SPECTROSCOPY, RAW_DATA = "1.2.840.10008.5.1.4.1.1.4.2", "1.2.840.10008.5.1.4.1.1.66"


def _rows_no_pixels(sop_class: str, data: bytes | None) -> Dataset:
    """A Siemens-like MR Spectroscopy / Philips-like Raw Data object: Rows and Columns, no Pixel Data;
    `data` as Spectroscopy Data (OF) when given."""
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _mr("Siemens Healthineers")
    ds.SOPClassUID = sop_class
    ds.Rows, ds.Columns, ds.NumberOfFrames = 1, 1, 1
    ds.SeriesDescription, ds.ProtocolName = "svs_se_ave", "svs_se"
    if data is not None:
        ds.DataPointRows, ds.DataPointColumns = 1, len(data) // 8
        ds.add_new(0x56000020, "OF", data)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


_FID = struct.pack("<16f", *[float(i) * 1.5 - 7 for i in range(16)])


@pytest.mark.parametrize("sop_class, data", [(MR_SPECTROSCOPY, _FID), (RAW_DATA, None), (RAW_DATA, _FID),
                                             ("1.3.46.670589.11.0.0.12.2", None)],
                         ids=["spectroscopy", "raw-data", "raw-data-with-values", "philips-series-data"])
def test_objects_without_pixel_data_by_nature_are_deidentified_not_held(tmp_path, sop_class, data):
    """MR Spectroscopy and Raw Data write Rows/Columns but never Pixel Data: they were held as
    'truncated: image without pixel data'. They go out de-identified, their data unchanged, and
    --verify does not call them truncated."""
    from deidkit import verify
    from helpers import run_deid

    src = tmp_path / "src"
    src.mkdir()
    _rows_no_pixels(sop_class, data).save_as(src / "a.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    run_deid(src, out, tmp_path / "key")
    written = sorted(out.rglob("IMG_*.dcm"))
    assert len(written) == 1
    ds = pydicom.dcmread(written[0])
    assert str(ds.PatientName) != "DOE^JOHN" and ds.SOPClassUID == sop_class
    assert (ds[0x56000020].value if data is not None else None) == data
    assert ds.SeriesDescription == "svs_se_ave"
    findings = verify.check_file(written[0], written[0].name, False, verify_guidelines()).findings
    assert not [f for f in findings if f.rule == "files:unreadable"], findings


def verify_guidelines():
    from deidkit import guidelines as gl

    g = gl.load()
    gl.register_new_attributes(g)
    return g


@pytest.mark.parametrize("sop_class, reason", [
    (MR_SPECTROSCOPY, "truncated: spectroscopy without its data"),
    ("1.2.840.10008.5.1.4.1.1.4", "truncated: image without pixel data"),  # MR Image
    ("1.2.826.0.1.3680043.99.5.1", "truncated: image without pixel data"),  # an unknown class with Rows
])
def test_objects_cut_before_their_data_are_still_held(tmp_path, sop_class, reason):
    """A spectroscopy object without Spectroscopy Data, an image (or an unknown class with Rows)
    without Pixel Data: cut short, held with that reason; --verify reports it for review."""
    from deidkit import verify
    from helpers import held_back, run_deid

    src = tmp_path / "src"
    src.mkdir()
    _rows_no_pixels(sop_class, None).save_as(src / "a.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    run_deid(src, out, tmp_path / "key")
    assert not list(out.rglob("IMG_*.dcm"))
    assert [row["reason"] for row in held_back(out).values()] == [reason]
    findings = verify.check_file(src / "a.dcm", "a.dcm", False, verify_guidelines()).findings
    assert [f.detail for f in findings if f.rule == "files:unreadable"] == ["DICOM file " + reason]


# ---- "MR" is a modality, not a title (research4) ----------------------------------------------------

MODALITY_TEXTS = ["MR HEAD", "MR BRAIN T1 AX", "MR HEAD WITHOUT CONTRAST", "MR LUMBAR SPINE W/O",
                  "MR BRAIN AND MR SPINE"]


@pytest.mark.parametrize("text", MODALITY_TEXTS)
def test_modality_and_body_part_is_not_a_title_and_name(guidelines, text):
    """All-caps "MR" without a dot before a body part is the modality: free text, descriptors (also
    when the patient's name is not known) and --verify's shapes keep it, word for word."""
    from deidkit.descriptors import _clean_descriptor_strict
    from deidkit.phi_shapes import find_generic_phi
    from deidkit.sweep import Identifiers, clean_descriptor
    from deidkit.text_clean import clean_free_text
    from deidkit.verify.text import text_hits

    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    assert clean_free_text(text, ids, None, guidelines.vocabulary, narrative=True).text == text
    assert clean_descriptor(text, guidelines.vocabulary) == text
    assert _clean_descriptor_strict(text, guidelines.vocabulary) == text
    assert [f.kind for f in find_generic_phi(text)] == []
    assert text_hits(text, "LT", "ImageComments", guidelines.vocabulary) == []


@pytest.mark.parametrize("text, gone", [("seen by MR HANSEN", "HANSEN"), ("MR. SMITH", "SMITH"),
                                        ("Mr Smith", "Smith"), ("mr. karlsen", "karlsen"),
                                        ("MR HEAD, MR. HANSEN", "HANSEN")])
def test_a_name_after_mr_is_still_removed(guidelines, text, gone):
    from deidkit.sweep import Identifiers, clean_descriptor
    from deidkit.text_clean import clean_free_text

    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYB")
    assert gone not in clean_free_text(text, ids, None, guidelines.vocabulary, narrative=True).text
    assert gone not in clean_descriptor(text, guidelines.vocabulary)


def test_modality_text_in_a_report_and_descriptors_goes_out_unchanged(guidelines):
    """End to end: an SR text item, Study Description and Image Comments saying "MR HEAD"."""
    from pydicom.sequence import Sequence

    ds = _mr()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.Modality, ds.ValueType = "SR", "CONTAINER"
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = Sequence([code])
    item.TextValue = "MR HEAD WITHOUT CONTRAST"
    ds.ContentSequence = Sequence([item])
    ds.StudyDescription, ds.ImageComments = "MR HEAD", "MR BRAIN T1 AX"
    result = engine.deidentify(read_back_as_file(ds), _ctx(guidelines))
    out = result.dataset
    assert str(out.ContentSequence[0].TextValue) == "MR HEAD WITHOUT CONTRAST"
    assert out.StudyDescription == "MR HEAD"
    assert out.ImageComments == "MR BRAIN T1 AX"
    assert result.hold_reason is None


# ---- a private element written as PN that its dictionary calls a label (research4: Philips) -------

def _with_private_pn(values: list[str], creator: str = "Philips MR Imaging DD 002", group: int = 0x2005,
                     element: int = 0x37) -> Dataset:
    """A Philips-like MR whose private sequence (gggg,xx32) holds items with (gggg,xxEE) written as PN,
    as Philips writes its Blob Name (2005,xx37) 'PDF_EXAM_PARS' and Type Name (2005,xx39) 'IEEE_PDF'."""
    from pydicom.sequence import Sequence

    ds = _mr("Philips")
    ds.PatientName = "QXPATIENT^ZYB"
    items = []
    for value in values:
        item = Dataset()
        item.private_block(group, creator, create=True).add_new(element, "PN", value)
        items.append(item)
    ds.private_block(group, creator, create=True).add_new(0x32, "SQ", Sequence(items))
    ds.ProtocolName = "ExamCard"
    ds.SeriesDescription = "pCASL control scan PDF"
    return ds


def test_private_pn_labels_are_not_read_as_person_names(guidelines):
    """Philips (2005,xx37) Blob Name is LO in the private dictionary though written as PN: its
    words (ExamCardBlob, PDF_CONTROL_SCAN_PARS) are not the names of a person to remove elsewhere."""
    from deidkit.sweep import Identifiers

    ds = _with_private_pn(["ExamCardBlob", "PDF_CONTROL_SCAN_PARS", "IEEE_PDF"])
    assert Identifiers.from_dataset(read_back_as_file(ds)).name_tokens == {"qxpatient", "zyb", "qxpatientzyb"}
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    assert (out.ProtocolName, out.SeriesDescription) == ("ExamCard", "pCASL control scan PDF")


@pytest.mark.parametrize("creator, group, element", [
    ("ACME PRIVATE 1.0", 0x2011, 0x10),            # creator not in the dictionary
    ("Philips MR Imaging DD 002", 0x2005, 0x10),   # creator known, element not
    ("GEMS_DL_STUDY_01", 0x0015, 0x88),            # the dictionary says PN: Default Operator Name
])
def test_private_pn_of_unknown_or_person_meaning_is_still_a_name(guidelines, creator, group, element):
    """A private PN element the dictionary does not know, or knows as PN, still names someone:
    that name goes from the descriptors."""
    from deidkit.sweep import Identifiers

    ds = _with_private_pn(["HANSEN^KARL"], creator, group, element)
    ds.SeriesDescription = "Hansen protocol"
    assert "hansen" in Identifiers.from_dataset(read_back_as_file(ds)).name_tokens
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    assert "Hansen" not in str(out.get("SeriesDescription", ""))


# ---- a value embedding element headers of lower tags is content, not a damaged length (research4) --

def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element (short form) as bytes."""
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


# what the Siemens CSA Series Header (0029,1020) of dcm_qa_table embeds: (0028,0106) US, (0018,1310) US
_EMBEDDED_LOWER = (b"SV10\x04\x03\x02\x01" + b"\x00" * 24 + _element(0x28, 0x106, b"US", b"\x00\x00")
                   + _element(0x28, 0x107, b"US", b"\x4b\x02") + _element(0x18, 0x1310, b"US", b"\0@\0@\0\0\0\0")
                   + b"MeasurementCriticalAspect" + b"\x00" * 16)
# what a length damaged at (0029,1020) swallows: the elements after it, higher tags (Patient's Name
# would only follow a lower tag, so the swallowed stream here is (0032,1032) Requesting Physician)
_EMBEDDED_HIGHER = b"\x01\x02" + _element(0x32, 0x1032, b"PN", b"HANSEN^KARL ") + b"\x00" * 8


def test_value_problem_counts_only_tags_that_could_follow():
    from deidkit.element_checks import value_problem

    csa_series_header = 0x00291020
    assert value_problem("OB", _EMBEDDED_LOWER, False, csa_series_header) is None
    assert value_problem("OB", _EMBEDDED_LOWER, False)  # without a place: every tag counts, as before
    assert value_problem("OB", _EMBEDDED_HIGHER, False, csa_series_header)
    assert value_problem("OB", _EMBEDDED_LOWER, False, 0x00081140)  # inside an item of (0008,1140)


@pytest.mark.parametrize("nested, held", [(False, False), (True, True)])
def test_private_blob_embedding_lower_elements_is_not_held_as_damaged(tmp_path, nested, held):
    """dcm_qa_table's Siemens field maps (0029,1020 embeds (0028,0106) US ...) were held as 'a value
    holds what reads as further elements'. At the top level those tags cannot follow (0029,1020): the
    file goes out. Inside an item of Referenced Image Sequence (0008,1140), (0018,1310) could be a
    swallowed element of the data set after that sequence: held, as before."""
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian
    from helpers import held_back, run_deid

    ds = _mr("Siemens")
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(32)
    target = Dataset()
    if nested:
        ds.ReferencedImageSequence = Sequence([target])
    else:
        target = ds
    target.private_block(0x0029, "ACME BLOB 1.0", create=True).add_new(0x20, "OB", _EMBEDDED_LOWER)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    src = tmp_path / "src"
    src.mkdir()
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    run_deid(src, out, tmp_path / "key")
    assert len(list(out.rglob("IMG_*.dcm"))) == (0 if held else 1)
    reasons = [row["reason"] for row in held_back(out).values()]
    assert reasons == (["corrupt: a value holds what reads as further elements (a damaged length field?)"]
                       if held else [])


# ---- Siemens coil strings with a comma (research4: dcm_qa_frag, XA classic MR) ----------------------

@pytest.mark.parametrize("coils", ["HC1-7;NC1,2", "HEA;HEP", "BO1,2;SP3-5", "A32"])
def test_coil_string_for_conversion_keeps_its_commas(coils):
    """dcm2niix reads ReceiveCoilActiveElements from sCoilStringForConversion in the ASCCONV of
    (0021,xx19); 'HC1-7;NC1,2' (head/neck coil elements) was dropped for its comma."""
    from deidkit.csa import clean_protocol_text

    text = ('<XProtocol> { <Name> "PhoenixMetaProtocol" "Dr Hansen" }\n### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData'
            f' ###\nsCoilSelectMeas.sCoilStringForConversion\t = \t""{coils}""\n'
            'sPatient.tPatientName\t = \t""HANSEN^KARL""\ntProtocolName\t = \t""Hansen, Karl""\n'
            'adFlipAngleDegree[0]\t = \t9.0\n### ASCCONV END ###\n')
    cleaned = clean_protocol_text(text.encode("latin-1"))
    assert cleaned is not None
    lines = cleaned.decode("latin-1").rstrip("\0").splitlines()
    assert f'sCoilSelectMeas.sCoilStringForConversion\t = \t""{coils}""' in lines
    assert "adFlipAngleDegree[0]\t = \t9.0" in lines
    assert b"Hansen" not in cleaned and b"HANSEN" not in cleaned


# ---- deep-learning / compressed-sensing reconstruction flags (research4: dcm_qa_cs_dl) -------------

@pytest.mark.parametrize("manufacturer, creator, group, element, vr, value, kept", [
    ("Philips", "Philips MR Imaging DD 008", 0x2005, 0x10, "CS", "CS_SENSE_AI", True),
    ("Philips", "Philips MR Imaging DD 008", 0x2005, 0x10, "CS", "DR SMITH", False),  # not one code
    ("GE MEDICAL SYSTEMS", "GEMS_PARM_01", 0x0043, 0xCA, "LO", "0.75\\High", True),
    ("GE MEDICAL SYSTEMS", "GEMS_PARM_01", 0x0043, 0xCA, "LO", "seen by Dr Hansen", False),
])
def test_deep_learning_reconstruction_flags_are_kept_as_codes(guidelines, manufacturer, creator, group, element,
                                                                vr, value, kept):
    """dcm2niix's DeepLearning / DeepLearningDetails come from Philips (2005,xx10) of DD 008 and GE
    (0043,xxCA) AIR Recon DL; neither list keeps them: research_private.csv does, as one code per value."""
    ds = _mr(manufacturer)
    ds.private_block(group, creator, create=True).add_new(element, vr, value)
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    block = out.private_block(group, creator) if (group << 16 | 0x10) in out else None
    tag = block.get_tag(element) if block is not None else None
    got = out[tag].value if tag is not None and tag in out else None
    if kept:
        assert got is not None and [str(v) for v in (got if not isinstance(got, str) else [got])] == value.split("\\")
    else:
        assert got is None


# ---- what dcm2niix reads and the knowledge base drops, per vendor (research4) -----------------------

@pytest.mark.parametrize("manufacturer, creator, group, element, vr, value, kept", [
    ("Philips", "Philips MR Imaging DD 006", 0x2005, 0x96, "IS", "7", True),    # DWI volume number
    ("Philips", "Philips MR Imaging DD 006", 0x2005, 0x96, "LO", "HANSEN", False),  # not a number
    ("GE MEDICAL SYSTEMS", "GEMS_PARM_01", 0x0043, 0xA3, "CS", "PSEUDOCONTINUOUS", True),  # ASL type
    ("GE MEDICAL SYSTEMS", "GEMS_PARM_01", 0x0043, 0xA5, "IS", "1450000", True),  # label duration
    ("GE MEDICAL SYSTEMS", "GEMS_PARM_01", 0x0043, 0xA4, "LO", "3D pulsed continuous ASL", False),  # free text
    ("UIH", "Image Private Header", 0x0065, 0x58, "IS", "1", True),  # phase-encoding polarity
])
def test_converter_parameters_the_knowledge_base_drops_are_kept(guidelines, manufacturer, creator, group, element,
                                                                 vr, value, kept):
    """dcm2niix reads these (console/nii_dicom.cpp kMRImageDiffVolumeNumber, kASLContrastTechniqueGE,
    kDurationLabelPulseGE, kPhaseEncodingDirectionPositiveUIH); the TCIA base deletes or does not list
    them. Kept by research_private.csv as a number or one code; anything else still goes. The block is
    placed where the vendor does not put it (0x40) to show the creator, not the tag, decides."""
    ds = _mr(manufacturer)
    ds.private_block(group, "ACME FILLER", create=True).add_new(0x01, "LO", "x")  # takes block 0x10
    for filler in range(0x11, 0x40):
        ds[group << 16 | filler] = pydicom.DataElement(group << 16 | filler, "LO", f"FILLER {filler}")
    ds.private_block(group, creator, create=True).add_new(element, vr, value)
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    values = [str(e.value) for e in out if e.tag.group == group and e.tag.element > 0xFF
              and e.tag.element & 0xFF == element and e.private_creator == creator]
    assert values == ([value] if kept else [])


def test_benchmark_counts_objects_without_pixels_apart(tmp_path):
    """bench_utility: MR Spectroscopy, Raw Data and a Philips private series-data object (Rows, no
    pixels) are no series to convert; they are listed by kind, images by series."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_utility
    from collections import defaultdict

    image = _rows_no_pixels("1.2.840.10008.5.1.4.1.1.4", None)
    image.PixelData = bytes(2)
    image.BitsAllocated, image.SamplesPerPixel = 16, 1
    for name, ds in (("img.dcm", image), ("mrs.dcm", _rows_no_pixels(MR_SPECTROSCOPY, _FID)),
                     ("raw.dcm", _rows_no_pixels(RAW_DATA, None)),
                     ("xx.dcm", _rows_no_pixels("1.3.46.670589.11.0.0.12.2", None))):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.99.7.2.{ord(name[0])}"
        ds.save_as(tmp_path / name, enforce_file_format=True)
    others: dict = defaultdict(list)
    series = bench_utility.series_of(tmp_path, others)
    assert [p.name for files in series.values() for p in files] == ["img.dcm"]
    assert {k: [p.name for p in v] for k, v in others.items()} == {
        "MR Spectroscopy Storage": ["mrs.dcm"], "Raw Data Storage": ["raw.dcm"],
        "vendor-private class 1.3.46.670589.11.0.0.*": ["xx.dcm"]}
    assert bench_utility.vendor_of(tmp_path / "img.dcm") == "SIEMENS"


# ---- Clean Descriptors never cuts inside a word (research4: dcm_qa_agfa) ----------------------------

@pytest.mark.parametrize("text", [
    "20200630 Wekelijkse QC dinsdag 64ch Siemens fles",   # a date that is also ID-shaped: two findings
    "QC 20200630 weekly T1 mprage", "t2_tse 2020-06-30 20200630 tra", "DWI 5550142 20200630 b1000 trace",
    "ep2d_bold 19690714 run1", "20200630"])
@pytest.mark.parametrize("strict", [False, True])
def test_descriptor_cleaning_removes_whole_words_only(guidelines, text, strict):
    """'20200630 Wekelijkse QC ...' (Agfa QC study) became 'jkse QC ...': the date and ID findings of
    the same digits were cut one after the other, the second one from the shortened text. Whatever
    goes, every word left is a word of the original."""
    from deidkit.descriptors import _clean_descriptor_strict
    from deidkit.sweep import Identifiers, clean_descriptor

    ids = Identifiers()
    ids.add_name("QXPATIENT^ZYQVW")
    ids.patient_name_known = True
    cleaned = _clean_descriptor_strict(text, guidelines.vocabulary) if strict else \
        clean_descriptor(text, guidelines.vocabulary, ids)
    assert set(cleaned.split()) <= set(text.split()), cleaned
    assert not any(w.isdigit() and len(w) >= 7 for w in cleaned.split())  # dates and IDs went


# ---- Siemens ASCCONV strings as every syngo version writes them (dcm_qa_stc VB12, dcm_qa_fmap E11) ----

def _csa_series_header(protocol: bytes) -> bytes:
    """A CSA series header (SV10) holding one MrPhoenixProtocol item."""
    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<2I", 1, 77))
    out += struct.pack("<64si4s3i", b"MrPhoenixProtocol", 1, b"UN", 0, 1, 77)
    value = protocol + b"\0"
    out += struct.pack("<4i", len(value), len(value), 77, len(value)) + value + b"\0" * (-len(value) % 4)
    return bytes(out)


def _ascconv_strings(text: str) -> dict[str, str]:
    """key -> string value of the ASCCONV lines dcm2niix reads with readKeyStr (between the quotes)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and '"' in value:
            out[key.strip()] = value.strip().strip('"')
    return out


@pytest.mark.parametrize("quote", ['"', '""'])  # syngo VB12/VB13 quote once; VB15 and later twice
def test_ascconv_technical_strings_kept_in_both_quotings_and_names_still_go(guidelines, quote):
    """dcm2niix reads the receive coil (ReceiveCoilName), its elements (ReceiveCoilActiveElements:
    'HE1-4;NE1,2', commas included), the software baseline (ConsistencyInfo) and the sequence file
    (PulseSequenceDetails, BidsGuess) from these strings; they went for VB12 quoting and for commas."""
    q = quote.encode()
    protocol = (b'<XProtocol> { <ParamString."Operator"> { "Dr Who" } }\n'
                b"### ASCCONV BEGIN ###\n"
                b"tSequenceFileName = " + q + b"%SiemensSeq%\\ep2d_bold" + q + b"\n"
                b"tProtocolName = " + q + b"DOE JOHN 19610203" + q + b"\n"
                b"sProtConsistencyInfo.tBaselineString = " + q + b"N4_VB12T_LATEST_20050804" + q + b"\n"
                b"asCoilSelectMeas[0].asList[0].sCoilElementID.tCoilID = " + q + b"HeadMatrix" + q + b"\n"
                b"sCoilSelectMeas.sCoilStringForConversion = " + q + b"HE1-4;NE1,2" + q + b"\n"
                b"sWipMemBlock.tFree = " + q + b"scanned by jsmith, Springfield" + q + b"\n"
                b"sPat.lAccelFactPE = 2\n"
                b"### ASCCONV END ###\n")
    ds = _siemens_protocol_deidentified(protocol, guidelines)
    from deidkit.csa import parse_csa
    text = parse_csa(ds[0x00291020].value)[1][0]["items"][0][3].split(b"\0")[0].decode("latin-1")
    strings = _ascconv_strings(text)
    assert strings["tSequenceFileName"] == "%SiemensSeq%\\ep2d_bold"
    assert strings["sProtConsistencyInfo.tBaselineString"] == "N4_VB12T_LATEST_20050804"
    assert strings["asCoilSelectMeas[0].asList[0].sCoilElementID.tCoilID"] == "HeadMatrix"
    assert strings["sCoilSelectMeas.sCoilStringForConversion"] == "HE1-4;NE1,2"
    assert "sPat.lAccelFactPE\t = \t2" in text
    for gone in ("DOE", "19610203", "jsmith", "Springfield", "Who", "tProtocolName", "tFree"):
        assert gone not in text


def _siemens_protocol_deidentified(protocol: bytes, guidelines) -> Dataset:
    """A Siemens MR whose CSA series header holds `protocol`, read back as from a file and
    de-identified."""
    ds = _mr("SIEMENS")
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291020, "OB", _csa_series_header(protocol))
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    return ds


@pytest.mark.parametrize("value", ['""HEAD"', '"HEAD""', '"a" "b"', '"x<y>"', '"Call 555-0142"', "HEAD",
                                   '"Smith, John"', '""Doe,Jane""'])
def test_ascconv_string_with_odd_quoting_or_phi_is_not_kept(value):
    from deidkit.csa import clean_ascconv
    text = f"### ASCCONV BEGIN ###\nasCoilSelectMeas[0].asList[0].sCoilElementID.tCoilID = {value}\n### ASCCONV END ###\n"
    assert "tCoilID" not in clean_ascconv(text)


def test_patients_own_name_in_a_kept_ascconv_string_goes(guidelines):
    protocol = (b"### ASCCONV BEGIN ###\nasCoilSelectMeas[0].asList[0].sCoilElementID.tCoilID = \"DOE JOHN\"\n"
                b"sPat.lAccelFactPE = 2\n### ASCCONV END ###\n")
    ds = _siemens_protocol_deidentified(protocol, guidelines)
    assert 0x00291020 not in ds or b"DOE" not in ds[0x00291020].value


# ---- Clean Descriptors: matrix sizes and acquisition parameters are not IDs --------------------------
# (dcm_qa_stc "fMRIcontin_30x30x36" was emptied: 8 characters with 6 digits read as an ID; so were
# protocol names such as "ep2d_bold_TR2000ms" or "pcasl_LD1800_PLD2000")

@pytest.mark.parametrize("text", ["fMRIcontin_30x30x36", "ep2d_bold 64x64x36", "t1_mprage_1x1x1mm",
                                  "DTI_1.5x1.5x3mm_b1000", "FLAIR 1024x1024", "ep2d_bold_TR2000ms",
                                  "resting_1200meas", "FA90TR2500", "MB3_TR1500ms", "pcasl_LD1800_PLD2000",
                                  "epi_3mm_10000ms", "spcR_1mm_iso_192slices", "MPRAGE TI900 TR2300"])
def test_descriptor_with_dimensions_or_parameters_is_kept(guidelines, text):
    ds = _mr("SIEMENS")
    ds.SeriesDescription = ds.ProtocolName = text
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert str(ds.SeriesDescription) == text and str(ds.ProtocolName) == text


@pytest.mark.parametrize("text, gone", [("fMRI 1961x0203", "1961x0203"), ("fMRI MRN1234567", "MRN1234567"),
                                         ("fMRI PHI1X0040A730", "PHI1X0040A730"), ("t1 19610203", "19610203"),
                                         ("bold TR1234567", "1234567"), ("bold 20230115ms", "20230115"),
                                         ("dwi b20230115", "20230115"), ("t2 S1234567", "S1234567")])
def test_descriptor_ids_beside_dimensions_still_go(guidelines, text, gone):
    ds = _mr("SIEMENS")
    ds.SeriesDescription = text
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert gone not in str(ds.get("SeriesDescription", ""))


# ---- the utility benchmark: a multiband factor dcm2niix derives from rounded slice times ---------------

def _sidecar(folder: Path, name: str, **fields) -> dict[str, Path]:
    import json
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(fields))
    return {name: folder / name}


def test_benchmark_tells_a_multiband_factor_from_slice_time_ties(tmp_path):
    """dcm_qa_fmap (Siemens E11 gre_field_mapping): two rounded slice times tie at 0, dcm2niix writes
    MultibandAccelerationFactor 2; after the time shift no tie, no factor. A declared factor that
    changes, or one that is not the count of ties, is a real difference."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_utility
    tie = _sidecar(tmp_path / "a", "v.json", SliceTiming=[0.2, 0, 0.1, 0], MultibandAccelerationFactor=2)
    none = _sidecar(tmp_path / "b", "v.json", SliceTiming=[0.2, 0, 0.1, 0.01])
    declared = _sidecar(tmp_path / "c", "v.json", SliceTiming=[0.2, 0, 0.1, 0.01], MultibandAccelerationFactor=4)
    three = _sidecar(tmp_path / "d", "v.json", SliceTiming=[0.2, 0, 0.1, 0], MultibandAccelerationFactor=3)
    assert bench_utility.multiband_from_slice_time_ties(tie, none)
    assert not bench_utility.multiband_from_slice_time_ties(tie, declared)
    assert not bench_utility.multiband_from_slice_time_ties(three, none)
    assert not bench_utility.multiband_from_slice_time_ties(tie, tie)  # nothing differs: nothing to explain


# ---- research5: a number equal to a short Study ID is the attribute's own number ---------------------

def _ge_slice(instance: int, study_id: str) -> Dataset:
    """A GE-like MR slice of a study whose Study ID is `study_id` (dcm_qa_polar: Study ID 160)."""
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _mr()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.7.2.{instance}"
    ds.StudyID, ds.AccessionNumber = study_id, ""
    ds.InstanceNumber, ds.AcquisitionNumber = instance, 1
    ds.ReconstructionDiameter, ds.SliceLocation = "160.000000", f"{instance - 100.25:.2f}"
    ds.TriggerTime, ds.ImagesInAcquisition = str(instance * 123), 240
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = struct.pack("<64h", *range(instance, instance + 64))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


@pytest.mark.parametrize("study_id", ["160", "1116", "00160"])
def test_numbers_equal_to_a_short_study_id_are_kept(tmp_path, study_id):
    """dcm_qa_polar (GE epi_pepolar, Study ID 160): Instance Number 160 was removed as 'own
    identifier', so dcm2niix put that slice in the wrong volume (data values, TriggerDelayTime
    differed). A number of 5 digits or fewer in an IS/DS attribute is that attribute's number."""
    from helpers import held_back, run_deid

    src = tmp_path / "src"
    src.mkdir()
    number = int(study_id)
    for instance in (number - 1, number, number + 1):
        _ge_slice(instance, study_id).save_as(src / f"{instance}.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    run_deid(src, out, tmp_path / "key")
    assert not [r for r in held_back(out).values() if r["status"] != "skipped"]
    written = [pydicom.dcmread(p) for p in sorted(out.rglob("IMG_*.dcm"))]
    assert sorted(int(d.InstanceNumber) for d in written) == [number - 1, number, number + 1]
    assert {str(d.ReconstructionDiameter) for d in written} == {"160.000000"}
    assert all(str(d.get("StudyID", "")) != study_id for d in written)


@pytest.mark.parametrize("value", ["1234567", "1234567.0", "19610203"])
def test_a_long_number_holding_the_patients_id_or_birth_date_still_goes(guidelines, value):
    """Patient ID MRN1234567 and birth date 19610203 written as numbers are still found."""
    ds = _mr()
    ds.PatientBirthDate = "19610203"
    ds.add_new(0x00191010, "DS", value)  # unlisted private: the table drops it; also a public one below
    ds.ImagesInAcquisition = value.split(".")[0]
    ds = read_back_as_file(ds)
    engine.deidentify(ds, _ctx(guidelines))
    assert "ImagesInAcquisition" not in ds


@pytest.mark.parametrize("value, kept", [
    ("960.5\\400\\-128.45\\\\-9999\\-9999", True),   # dcm_qa_trt: one value left empty
    ("960.5\\400\\17.9108\\0\\-9999\\-9999", True),
    ("\\\\", False),                                  # no number at all
    ("960.5\\HANSEN\\17.9", False),                   # a word among numbers
])
def test_number_lists_with_an_empty_value_are_kept(guidelines, value, kept):
    """GE Table Position Information (0043,xxB2, research_private.csv check number): dcm2niix reads
    its third number as the BIDS TablePosition; the list has an empty fifth-from-last value on the
    dcm_qa_trt scanner, and the number check deleted the whole element."""
    ds = _mr()
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0xB2, "LO", value)
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    block = out.private_block(0x0043, "GEMS_PARM_01") if 0x00430010 in out else None
    got = out.get(block.get_tag(0xB2)) if block is not None else None
    assert (got is not None and "\\".join(str(v) for v in got.value) == value) is kept


# ---- research5: an earlier de-identification is part of the object's history (dcm_qa_deident) -------

def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _refaced(methods: list[str], codes: list[tuple[str, str, str]]) -> Dataset:
    """A GE MR an earlier tool de-identified (dcm_qa_deident: mri_reface replaced the face)."""
    from pydicom.sequence import Sequence

    ds = _mr()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = methods
    ds.DeidentificationMethodCodeSequence = Sequence([_code(*c) for c in codes])
    return ds


def test_an_earlier_deidentification_tool_and_face_removal_are_kept(guidelines):
    """dcm_qa_deident (dcm2niix's test that a converter keeps it): the refacing an earlier tool did
    (mri_reface 0.3.4, CID 7050 113102) was replaced by this tool's own declaration."""
    from deidkit.verify import declared_options

    ds = _refaced(["mri_reface 0.3.4", "Per DICOM PS 3.15 AnnexE. Details in 0012,0064"],
                  [("113102", "DCM", "Clean Recognizable Visual Features Option"),
                   ("replace_recognizable", "mri_reface", "Replace face, ears, and artifacts in air"),
                   ("113106", "DCM", "Retain Longitudinal Temporal Information Full Dates Option"),
                   ("113110", "DCM", "Retain UIDs Option")])
    ctx = _ctx(guidelines)
    out = engine.deidentify(read_back_as_file(ds), ctx).dataset
    methods = [str(v) for v in out.DeidentificationMethod]
    assert methods[0] == "mri_reface 0.3.4" and methods[1].startswith("deidkit ")
    codes = [str(i.CodeValue) for i in out.DeidentificationMethodCodeSequence]
    assert codes[0] == "113102" and codes.count("113102") == 1
    assert "113106" not in codes and "113110" not in codes  # an earlier run's options are not this run's
    # --verify reads the options this run applied, not the earlier tool's
    assert declared_options(out) == frozenset(o for o in ctx.guidelines.settings.options
                                              if o in guidelines.settings.options)


@pytest.mark.parametrize("earlier", ["anonymized by DOE^JOHN", "Smith 2.0", "doe_john 1.0", "tool 20240115",
                                     "MRN1234567", "john_doe", "pixels reviewed by a person", "retain_uids",
                                     "deidkit 0.0.1"])
def test_earlier_method_values_that_could_name_someone_go(guidelines, earlier):
    """Only a tool's name and version stays: these attributes are the tool's declaration, which
    the last net and --verify do not read as free text."""
    out = engine.deidentify(read_back_as_file(_refaced([earlier], [])), _ctx(guidelines)).dataset
    methods = [str(v) for v in out.DeidentificationMethod]
    assert methods[0].startswith("deidkit ") and earlier not in methods[1:]


# ---- research5: Siemens physiological logs in DICOM (dcm_qa_physio) --------------------------------

PHYSIO_UUID, PHYSIO_FIRST = "6b7c1d2e-9f30-4a51-b6c2-0d1e2f3a4b5c", 15_639_000  # ticks: 10:51:37.5


def _physio_log(kind: str, body: list[str]) -> str:
    head = [f"UUID        = {PHYSIO_UUID}", "ScanDate    = 20260603_135513", "LogVersion  = EJA_1",
            f"LogDataType = {kind}"]
    return "\n".join(head + body) + "\n"


def _physio_logs(first: int = PHYSIO_FIRST, extra: str = "") -> list[tuple[str, str]]:
    """The three logs of a CMRR/Siemens PhysioLog (EJA_1): slice timing, pulse and respiration,
    each sample at its clock tick (2.5 ms since midnight)."""
    info = _physio_log("ACQUISITION_INFO", [
        "NumSlices   = 2", "NumVolumes  = 3", "NumEchoes   = 1", f"FirstTime   = {first}",
        f"LastTime    = {first + 2399}", "", "VOLUME   SLICE   ACQ_START_TICS  ACQ_FINISH_TICS  ECHO"] + [
        f"{v:6d}  {s:6d}  {first + 800 * v + 400 * s:14d}  {first + 800 * v + 400 * s + 300:15d}  {0:4d}"
        for v in range(3) for s in range(2)])
    puls = _physio_log("PULS", ["SampleTime  = 2", "", "ACQ_TIME_TICS  CHANNEL  VALUE  SIGNAL"] + [
        f"{first + t:13d}  PULS  {2000 + (t * 37) % 900:5d}" + ("  PULS_TRIGGER" if t % 200 == 2 else "")
        for t in range(0, 2400, 2)] + ([extra] if extra else []))
    resp = _physio_log("RESP", ["SampleTime  = 8", "", "ACQ_TIME_TICS  CHANNEL  VALUE  SIGNAL"] + [
        f"{first + t:13d}  RESP  {1500 + (t * 11) % 700:5d}" for t in range(0, 2400, 8)])
    return [("Info", info), ("PULS", puls), ("RESP", resp)]


def _physio_blob(logs: list[tuple[str, str]], rows: int) -> bytes:
    out = b""
    for kind, text in logs:
        name, data = f"Physio_20260603_135513_{PHYSIO_UUID}_{kind}.log".encode(), text.encode()
        chunk = bytearray(rows * 1024)
        struct.pack_into("<LL", chunk, 0, len(data), len(name))
        chunk[8:8 + len(name)] = name
        chunk[1024:1024 + len(data)] = data
        out += bytes(chunk)
    return out


def _physio(rows: int = 48, creator: str = "SIEMENS CSA NON-IMAGE", **log_options) -> Dataset:
    """A Siemens XA physio object as the scanner exports it (dcm_qa_physio): CSA Non-Image class,
    Image Type ...RAWDATA\\PHYSIO, the logs in (7FE1,xx10) in chunks of Acquisition Number x 1 KB."""
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _mr("Siemens Healthineers")
    ds.SOPClassUID, ds.SOPInstanceUID = "1.3.12.2.1107.5.9.1", "1.2.826.0.1.3680043.99.7.3.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.7.3"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20260603"
    ds.StudyTime, ds.AcquisitionTime = "134500", "135513.100000"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RAWDATA", "PHYSIO"]
    ds.SeriesDescription = ds.ProtocolName = "func-bold_task-rest_run-1_PhysioLog"
    ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 7, 1, rows
    ds.private_block(0x7FE1, creator, create=True).add_new(0x10, "OB", _physio_blob(_physio_logs(**log_options), 48))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _physio_texts(blob: bytes, rows: int = 48) -> list[tuple[str, str]]:
    """(file name, text) per chunk, read as bidscoin/CMRR readers do (written apart from deidkit.csa)."""
    out = []
    for start in range(0, len(blob), rows * 1024):
        datalen, namelen = struct.unpack_from("<LL", blob, start)
        out.append((blob[start + 8:start + 8 + namelen].decode(), blob[start + 1024:start + 1024 + datalen].decode()))
    return out


def _physio_after(guidelines, ds: Dataset, creator: str = "SIEMENS CSA NON-IMAGE",
                  **options) -> tuple[Dataset, list[tuple[str, str]] | None]:
    ctx = _ctx(guidelines, **options)
    out = engine.deidentify(read_back_as_file(ds), ctx).dataset
    block = out.private_block(0x7FE1, creator) if 0x7FE10010 in out else None
    tag = block.get_tag(0x10) if block is not None else None
    return out, (_physio_texts(out[tag].value) if tag is not None and tag in out else None)


def _columns(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.split() and line.split()[0].isdigit()]


@pytest.mark.parametrize("creator", ["SIEMENS CSA NON-IMAGE", "SIEMENS MR IMA"])
def test_physio_log_keeps_its_waveform_with_moments_shifted_and_uuid_replaced(guidelines, creator):
    """dcm_qa_physio: the log (7FE1,xx10) was deleted (no table lists it): the physio series lost
    its cardiac and respiratory recording. Kept now: ScanDate and every tick move by the patient's
    offset (the same as Acquisition Time), the UUID is a keyed one, waveforms and channels unchanged."""
    from datetime import datetime

    before = _physio_texts(_physio(creator=creator)[0x7FE11010].value)
    out, after = _physio_after(guidelines, _physio(creator=creator), creator)
    assert after is not None and len(after) == 3
    moved = datetime.strptime(str(out.AcquisitionDate) + str(out.AcquisitionTime).split(".")[0], "%Y%m%d%H%M%S") - \
        datetime(2026, 6, 3, 13, 55, 13)
    for (_, text0), (name1, text1) in zip(before, after, strict=True):
        assert PHYSIO_UUID not in name1 + text1 and "20260603" not in name1 + text1 and str(PHYSIO_FIRST) not in text1
        new_uuid = text1.split("UUID", 1)[1].split("=", 1)[1].split()[0]
        assert new_uuid in name1 and all(new_uuid in t for _, t in after)  # one keyed UUID everywhere
        scan = datetime.strptime(text1.split("ScanDate", 1)[1].split("=", 1)[1].split()[0], "%Y%m%d_%H%M%S")
        assert scan - datetime(2026, 6, 3, 13, 55, 13) == moved
        rows0, rows1 = _columns(text0), _columns(text1)
        assert len(rows0) == len(rows1) > 0
        ticks = [2, 3] if "ACQUISITION_INFO" in text0 else [0]
        shift = {(int(r1[i]) - int(r0[i])) for r0, r1 in zip(rows0, rows1, strict=True) for i in ticks}
        assert len(shift) == 1 and shift.pop() % (86_400 * 400) == (moved.total_seconds() % 86_400) * 400
        assert [[v for i, v in enumerate(r) if i not in ticks] for r in rows0] == \
            [[v for i, v in enumerate(r) if i not in ticks] for r in rows1]  # waveform, channels, triggers


def test_physio_log_converts_to_the_same_bids_physio_files(tmp_path):
    """dcm2niix (requirements-dev.txt) writes the same cardiac/respiratory TSV and sidecar from the
    de-identified object as from the original (its StartTime is relative: shifted ticks keep it)."""
    import gzip
    import shutil
    import subprocess
    import sys

    from helpers import run_deid

    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(exe).exists():
        pytest.skip("dcm2niix not installed (requirements-dev.txt)")
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    _physio().save_as(src / "physio.dcm", enforce_file_format=True)
    run_deid(src, out, tmp_path / "key")
    written = list(out.rglob("IMG_*.dcm"))
    assert len(written) == 1
    converted = {}
    for side, folder in (("orig", src), ("deid", written[0].parent)):
        dest = tmp_path / side
        dest.mkdir()
        subprocess.run([exe, "-b", "y", "-z", "n", "-f", "v", "-o", str(dest), str(folder)], capture_output=True,
                       check=False, timeout=60)
        converted[side] = {p.name: (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
                           for p in dest.iterdir()}
    assert len(converted["orig"]) == 4 and converted["orig"] == converted["deid"]


@pytest.mark.parametrize("change, kept", [
    ({"extra": "# recorded by nurse Hansen"}, True),     # a comment: dropped, the log kept
    ({"extra": "Operator: Hansen"}, False),              # free text: the whole log goes
    ({"extra": "PatientName = DOE"}, False),             # a key the format does not have
    ({"rows": 40}, False),                               # chunks not of Acquisition Number x 1 KB
])
def test_physio_log_of_another_shape_goes(guidelines, change, kept):
    out, after = _physio_after(guidelines, _physio(**change))
    assert (after is not None) is kept
    assert after is None or not any("Hansen" in t or "nurse" in t for _, t in after)


def test_physio_ticks_after_the_shifted_midnight_move_back_one_day_together(guidelines):
    """A recording the shift moves past midnight keeps its intervals: all its ticks move back one
    day's ticks together (never one by one modulo a day, which would tear the recording apart)."""
    near_midnight = 86_400 * 400 - 1200
    out, after = _physio_after(guidelines, _physio(first=near_midnight))
    assert after is not None
    ticks = [int(r[0]) for r in _columns(after[1][1])]
    assert ticks == sorted(ticks) and ticks[-1] - ticks[0] == 2398 and 0 <= ticks[0] < 86_400 * 400


@pytest.mark.parametrize("options, kept_as_is", [({"retain_long_full_dates": True, "retain_long_modified_dates": False}, True),
                                                ({"retain_long_full_dates": False, "retain_long_modified_dates": False}, None)])
def test_physio_log_follows_the_date_options(guidelines, options, kept_as_is):
    """Full Dates: the moments stay as they are (the UUID is still replaced); no date option: the
    log's moments cannot go out, so the log goes."""
    out, after = _physio_after(guidelines, _physio(), **options)
    if kept_as_is is None:
        assert after is None
    else:
        assert after is not None and "20260603_135513" in after[0][1] and PHYSIO_UUID not in after[0][1]


@pytest.mark.parametrize("extra, kept", [("", True), ("Operator: Hansen", False)])
def test_physio_log_in_spectroscopy_data_is_cleaned_or_removed(guidelines, extra, kept):
    """Siemens XA30 writes the physio log into Spectroscopy Data (5600,0020) of an MR Spectroscopy
    object (bidscoin's "XA30 bug"): its real ScanDate and ticks went out unchanged (the sweep looks
    for names and IDs, not moments). Cleaned like (7FE1,xx10), or removed when it cannot be."""
    ds = _physio(extra=extra)
    blob = ds[0x7FE11010].value
    del ds[0x7FE11010], ds[0x7FE10010]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MR_SPECTROSCOPY
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RAWDATA", "NONE"]
    ds.add_new(0x56000020, "OF", blob)
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    data = out[0x56000020].value if 0x56000020 in out else None
    assert (data is not None) is kept
    if data is not None:
        texts = _physio_texts(data)
        assert len(texts) == 3 and len(data) == len(blob)
        assert not any(PHYSIO_UUID in n + t or "20260603" in n + t or str(PHYSIO_FIRST) in t for n, t in texts)
        assert [r[1:] for r in _columns(texts[1][1])] == [r[1:] for r in _columns(_physio_texts(blob)[1][1])]


def test_real_spectroscopy_data_is_left_alone(guidelines):
    ds = _rows_no_pixels(MR_SPECTROSCOPY, _FID)
    out = engine.deidentify(read_back_as_file(ds), _ctx(guidelines)).dataset
    assert out[0x56000020].value == _FID


# ---- research5: a vendor's binary record of the patient holds defined terms too ---------------------

def test_defined_terms_in_a_binary_patient_record_are_no_name(tmp_path):
    """pydicom-data J2K_pixelrep_mismatch (Hitachi CT): HMC - CT - ID (0009,xx00) 'Image ID
    Information Patient Name ID' is a binary record of ID, dates, model and position; read whole
    as a name, its 'HFS' and 'Supria' removed Patient Position and Manufacturer's Model Name. The
    name in it is still learned (and the record itself deleted). Run as deid_tool runs (elements
    left raw by the fast read path, engine._identifiers_of)."""
    from helpers import run_deid

    ds = _ge_slice(7, "4900")
    ds.Manufacturer, ds.ManufacturerModelName, ds.PatientPosition = "Hitachi", "Supria", "HFS"
    ds.PatientName = ""
    record = (b"\0\0\0\x0011228" + b"\0" * 11 + b"20191019HDL10005Supria               N  " + b"\0" * 8 +
              b"00020000\0\0\0\0HANSEN^GRETE                HFS  ")
    ds.private_block(0x0009, "HMC - CT - ID", create=True).add_new(0x00, "UN", record)
    ds.ImageComments = "seen by Hansen"
    src, out_dir = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    ds.save_as(src / "ct.dcm", enforce_file_format=True)
    run_deid(src, out_dir, tmp_path / "key")
    written = list(out_dir.rglob("IMG_*.dcm"))
    assert len(written) == 1
    out = pydicom.dcmread(written[0])
    assert str(out.PatientPosition) == "HFS" and str(out.ManufacturerModelName) == "Supria"
    assert "ImageComments" not in out or "Hansen" not in str(out.ImageComments)
    assert 0x00091100 not in out
