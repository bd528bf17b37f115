"""Issue 12, kinds 1, 2, 4 and 6: times of day, ages over 89, bytes outside the data elements and
the last safety net's blind spots. Every input is generated here with pydicom (made-up patients).

Kind 1: one keyed per-patient offset of days and seconds moves DA+TM pairs together (a 23:50
scan rolls into the next day), DT whole (precision and UTC offset kept), a TM alone modulo one
day; intervals between moments of one patient stay exact, in sequences too.
Kind 2: Patient's Age of 90 or over in any unit goes out as 090Y; no birth date implying more.
Kind 4: zero preamble; native Pixel Data cut to its frames; encapsulated fragments checked;
trailing bytes and Data Set Trailing Padding dropped.
Kind 6: the last header search sees every element (not only up to the first e0 7f 10 00) and
not the tool's own De-identification Method words.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from conftest import find_leaks
from helpers import ct_with_meta, encode
from deidkit import cli_deid, dicomio, engine, export
from deidkit import guidelines as gl
from deidkit.mapping import Mapper, MomentOffset, patient_key_of, shift_value
from deidkit.sweep import Identifiers

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
FAMILY = "QUIMBLEWORTH"
PATIENT_ID = "PID40417"
UID_ROOT = "1.2.826.0.1.3680043.9.7777.12"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def ct(n: int, name: str = f"{FAMILY}^HORTENSE", pid: str = PATIENT_ID, ts: str = ExplicitVRLittleEndian,
       rows: int = 16, columns: int = 16, bits: int = 16) -> Dataset:
    ds = ct_with_meta(f"{UID_ROOT}.{pid[-3:]}.5.{n}", f"{UID_ROOT}.{pid[-3:]}", f"{UID_ROOT}.{pid[-3:]}.1", ts)
    ds.PatientName, ds.PatientID = name, pid
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate, ds.StudyTime = "20240115", "235000"
    ds.SeriesNumber, ds.InstanceNumber = 1, n
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, min(bits, 12), min(bits, 12) - 1, 0
    if bits == 16:
        ds.PixelData = (np.arange(rows * columns, dtype=np.uint16) * 7 % 4096).astype("<u2").tobytes()
    else:
        ds.PixelData = bytes((i * 13) % 256 for i in range((rows * columns * bits + 7) // 8))
    return ds


def with_pixel_value(data: bytes, value: bytes) -> bytes:
    """The encoded file with its (explicit VR, last) native Pixel Data value replaced by value."""
    pos = data.rfind(b"\xe0\x7f\x10\x00")
    vr = data[pos + 4:pos + 6]
    assert vr in (b"OB", b"OW")
    return data[:pos] + b"\xe0\x7f\x10\x00" + vr + b"\0\0" + struct.pack("<I", len(value)) + value


def _ctx(g: gl.Guidelines, key: bytes = b"k" * 32) -> engine.Context:
    s = g.settings
    return engine.Context(guidelines=g, mapper=Mapper(key, s.pseudonym_prefix, s.min_shift_days, s.max_shift_days))


def _moment(date: str, time: str) -> dt.datetime:
    return dt.datetime.strptime(date + time[:6].ljust(6, "0"), "%Y%m%d%H%M%S")


def _key_rolling_over(seconds_at_least: int) -> bytes:
    """A site key whose offset for the test patient moves 23:50 past midnight (found, not assumed)."""
    for i in range(100):
        key = b"%02d" % i * 16
        if Mapper(key).time_offset_seconds(patient_key_of(PATIENT_ID, "", "", "")) >= seconds_at_least:
            return key
    raise AssertionError("no key found")  # pragma: no cover - 100 tries at 99% each


# ---- kind 1: times of day ---------------------------------------------------------------------

def test_shift_value_moves_a_2350_scan_into_the_next_day():
    offset = MomentOffset(days=-400, seconds=1800)
    assert shift_value("TM", "235000", offset) == "002000"
    assert shift_value("DA", "20240115", offset, time_of_date="235000") == "20221212"  # -400 days + 1 carried
    assert shift_value("DA", "20240115", offset) == "20221211"                         # a date alone: days only
    assert shift_value("DA", "20240115", offset, time_of_date="101500") == "20221211"  # no carry before midnight
    # precision kept: HH, HHMM, HHMMSS.FFFFFF, legacy HH:MM:SS, ranges
    assert shift_value("TM", "23", offset) == "23"
    assert shift_value("TM", "2350", offset) == "0020"
    assert shift_value("TM", "235012.123456", offset) == "002012.123456"
    assert shift_value("TM", "10:15:00", offset) == "104500"
    assert shift_value("TM", "0800-0900", offset) == "0830-0930"
    assert shift_value("TM", "", offset) == ""
    assert shift_value("TM", "25", offset) is None and shift_value("TM", "noon", offset) is None


def test_shift_value_moves_dt_whole_keeping_precision_and_utc_offset():
    offset = MomentOffset(days=-400, seconds=1800)
    assert shift_value("DT", "202401152350+0100", offset) == "202212120020+0100"         # minutes, +0100
    assert shift_value("DT", "20240115235012.5-0500", offset) == "20221212002012.5-0500"
    assert shift_value("DT", "2024011523", offset) == "2022121123"                       # hours: 23:30 -> "23"
    assert shift_value("DT", "20240115", offset) == "20221211"                           # a date: days only
    assert shift_value("DT", "202401", offset) != "202401" and len(shift_value("DT", "202401", offset)) == 6
    assert shift_value("DT", "2024", offset) == "2023"
    with pytest.raises(ValueError):
        shift_value("LO", "x", offset)


def test_pairs_come_from_the_data_dictionary():
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    pairs = {keyword_for_tag(d): keyword_for_tag(t) for d, t in engine.DATE_TIME_PAIRS.items()}
    for date, time in (("StudyDate", "StudyTime"), ("AcquisitionDate", "AcquisitionTime"),
                       ("PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"),
                       ("AdmittingDate", "AdmittingTime"), ("DateOfLastCalibration", "TimeOfLastCalibration")):
        assert pairs[date] == time
    assert len(pairs) > 40 and tag_for_keyword("StudyDate") in engine.DATE_TIME_PAIRS


def test_engine_moves_every_moment_of_a_patient_by_one_offset(guidelines):
    key = _key_rolling_over(600)
    ds = ct(1)
    ds.AcquisitionDate, ds.AcquisitionTime = "20240115", "235500.250"
    ds.ContentDate, ds.ContentTime = "20240116", "000500"
    ds.AcquisitionDateTime = "20240115235500.25+0100"
    ds.SecondaryReviewTime = "120000"  # a TM the table does not list, without its date
    ds.StudyUpdateDateTime = "202401152350"  # a DT the table does not list
    item = Dataset()
    item.StudyDate, item.StudyTime = "20240114", "233000"
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    ds.AnatomicRegionsInStudyCodeSequence = Sequence([item])
    original = {k: ds[k].value for k in ("StudyTime", "AcquisitionTime", "ContentTime")}
    ctx = _ctx(guidelines, key)
    engine.deidentify(ds, ctx)
    off = ctx.moment_offset
    assert off.days == ctx.date_offset and 600 <= off.seconds < 86400
    delta = dt.timedelta(days=off.days, seconds=off.seconds)
    for date_kw, time_kw in (("StudyDate", "StudyTime"), ("AcquisitionDate", "AcquisitionTime"),
                             ("ContentDate", "ContentTime")):
        before = _moment({"StudyDate": "20240115", "AcquisitionDate": "20240115", "ContentDate": "20240116"}[date_kw],
                         original[time_kw])
        assert _moment(ds[date_kw].value, ds[time_kw].value) == before + delta, date_kw
    assert ds.StudyDate != "20240115" and ds.StudyTime != "235000"
    assert ds.AcquisitionTime.endswith(".250")                       # fraction kept
    # the 23:50 scan rolled into the next day: date moved by days + 1
    assert ds.StudyDate == (dt.date(2024, 1, 15) + dt.timedelta(days=off.days + 1)).strftime("%Y%m%d")
    # intervals between moments stay exact (Study -> Content: 15 minutes)
    assert _moment(ds.ContentDate, ds.ContentTime) - _moment(ds.StudyDate, ds.StudyTime) == dt.timedelta(minutes=15)
    shifted_dt = dt.datetime.strptime(ds.AcquisitionDateTime[:14], "%Y%m%d%H%M%S")
    assert shifted_dt == dt.datetime(2024, 1, 15, 23, 55) + delta
    assert ds.AcquisitionDateTime.endswith(".25+0100")
    assert ds.StudyUpdateDateTime == (dt.datetime(2024, 1, 15, 23, 50) + delta).strftime("%Y%m%d%H%M")
    assert ds.SecondaryReviewTime == (dt.datetime(2000, 1, 1, 12) + dt.timedelta(seconds=off.seconds)).strftime("%H%M%S")
    inner = ds.AnatomicRegionsInStudyCodeSequence[0]                 # pairs inside items too
    assert _moment(inner.StudyDate, inner.StudyTime) == dt.datetime(2024, 1, 14, 23, 30) + delta


def test_same_key_same_offset_other_patient_other_offset(guidelines):
    a, b = Mapper(b"s" * 32), Mapper(b"s" * 32)
    assert a.moment_offset("id:1") == b.moment_offset("id:1")
    assert len({a.moment_offset(f"id:{i}") for i in range(20)}) == 20
    assert a.moment_offset("id:1").days == a.date_offset_days("id:1")  # dates alone move as before


def test_private_moments_of_safe_listed_attributes_are_shifted(tmp_path):
    """A site's safe list keeping private DA/TM/DT values: they move by the same offset, also when
    they arrive as UN (implicit VR) and are read as the VR the list gives."""
    override = tmp_path / "gl"
    override.mkdir()
    text = (gl.bundled_dir() / "safe_private.csv").read_text(encoding="utf-8")
    text += ("ACME TIMES 1.0,\"(0029,xx10)\",Scan start time,TM,1,test\n"
             "ACME TIMES 1.0,\"(0029,xx11)\",Scan start date,DA,1,test\n"
             "ACME TIMES 1.0,\"(0029,xx12)\",Scan start,DT,1,test\n")
    (override / "safe_private.csv").write_text(text, encoding="utf-8")
    g = gl.load(override)
    ds = ct(6)
    block = ds.private_block(0x0029, "ACME TIMES 1.0", create=True)
    block.add_new(0x10, "TM", "235000")
    block.add_new(0x11, "UN", b"20240115")   # arrives unreadable: read as DA by the list
    block.add_new(0x12, "DT", "20240115235000")
    ctx = _ctx(g)
    engine.deidentify(ds, ctx)
    delta = dt.timedelta(days=ctx.moment_offset.days, seconds=ctx.moment_offset.seconds)
    block = ds.private_block(0x0029, "ACME TIMES 1.0")
    assert block[0x10].value == (dt.datetime(2024, 1, 15, 23, 50) + delta).strftime("%H%M%S")
    assert block[0x11].value == (dt.date(2024, 1, 15) + dt.timedelta(days=ctx.moment_offset.days)).strftime("%Y%m%d")
    assert block[0x12].value == (dt.datetime(2024, 1, 15, 23, 50) + delta).strftime("%Y%m%d%H%M%S")


# ---- kind 2: ages over 89 ---------------------------------------------------------------------

@pytest.mark.parametrize("age, out", [("092Y", "090Y"), ("090Y", "090Y"), ("1100M", "090Y"), ("4800W", "090Y"),
                                      ("33000D", "090Y"), ("92", "090Y"), ("089Y", "089Y"), ("061Y", "061Y"),
                                      ("011M", "011M"), ("999W", "999W")])
def test_patient_age_of_90_or_over_goes_out_as_090Y(guidelines, age, out):
    ds = ct(2)
    ds.PatientAge = age
    engine.deidentify(ds, _ctx(guidelines))
    assert ds.PatientAge == out


def test_birth_date_implying_90_or_more_is_not_kept(tmp_path):
    """A site table that shifts the birth date (C under Modified Dates): a birth date giving 92 years
    at the study is emptied; one giving 70 is shifted like every other date."""
    override = tmp_path / "gl"
    override.mkdir()
    src = gl.bundled_dir() / "confidentiality_profile.csv"
    lines = src.read_text(encoding="utf-8").splitlines()
    lines = [l.replace(",PatientBirthDate,DA,Z,,,,,,,,", ",PatientBirthDate,DA,Z,,,,,,,C,") for l in lines]
    assert any(",PatientBirthDate,DA,Z,,,,,,,C," in l for l in lines)
    (override / "confidentiality_profile.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    g = gl.load(override)
    old, young = ct(3), ct(4, pid="PID40999")
    old.PatientBirthDate, old.PatientAge = "19311201", "092Y"
    young.PatientBirthDate, young.PatientAge = "19531201", "070Y"
    engine.deidentify(old, _ctx(g))
    engine.deidentify(young, _ctx(g))
    assert old.PatientAge == "090Y" and old.PatientBirthDate == ""
    assert young.PatientBirthDate not in ("", "19531201") and young.PatientAge == "070Y"
    # without an age, the dates alone decide
    older = ct(5)
    older.PatientBirthDate = "19300101"
    engine.deidentify(older, _ctx(g))
    assert older.PatientBirthDate == ""


# ---- kind 4 + 6: bytes outside the elements, through a real run ---------------------------------

def _jpeg_of_odd_length() -> bytes:
    from PIL import Image

    for size in range(8, 64):
        arr = (np.arange(size * size).reshape(size, size) * 5 % 256).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        if len(data) % 2 and data.endswith(b"\xff\xd9"):
            return data, size
    raise AssertionError("no odd-length JPEG")  # pragma: no cover


def _jpeg_ct(n: int, fragment_tail: bytes) -> bytes:
    jpeg, size = _jpeg_of_odd_length()
    ds = ct(n, ts=JPEGBaseline8Bit, rows=size, columns=size, bits=8)
    ds.BitsStored, ds.HighBit = 8, 7
    ds.PixelData = encapsulate([jpeg + fragment_tail])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return encode(ds)


LEFTOVER = f"PATIENT {FAMILY}^HORTENSE ID {PATIENT_ID} ST GODRIC HOSPITAL".encode().ljust(96, b" ")


def _inputs(root: Path) -> dict[str, bytes]:
    """file name -> original bytes of each input of the run (all of one made-up patient)."""
    files = {}
    # preamble with an executable header and text (CVE-2019-11687) and the AE title
    data = bytearray(encode(ct(10)))
    data[:128] = (b"MZ\x90\x00" + f"STORESCU {FAMILY} {PATIENT_ID}".encode()).ljust(128, b"\x00")
    files["mz_preamble.dcm"] = bytes(data)
    # a CT whose 512-byte pixel value is followed by 96 bytes of leftover header text
    base = ct(11)
    files["pixel_leftover.dcm"] = with_pixel_value(encode(base), base.PixelData + LEFTOVER)
    # implicit VR: the same, the element header written differently
    base = ct(12, ts=ImplicitVRLittleEndian)
    enc = encode(base)
    pos = enc.rfind(b"\xe0\x7f\x10\x00")
    files["pixel_leftover_implicit.dcm"] = enc[:pos] + b"\xe0\x7f\x10\x00" + struct.pack("<I", 512 + 96) \
        + base.PixelData + LEFTOVER
    # Bits Allocated 1, 3 frames of 5x5: 75 bits = 10 bytes, then leftovers
    one = ct(13, rows=5, columns=5, bits=1)
    one.BitsStored, one.HighBit, one.NumberOfFrames = 1, 0, 3
    one.PixelData = bytes(range(1, 11))
    files["bits1_leftover.dcm"] = with_pixel_value(encode(one), one.PixelData + LEFTOVER)
    # 8-bit 3x3: 9 bytes, pad byte then leftovers; the pad goes out as zero
    odd = ct(14, rows=3, columns=3, bits=8)
    odd.BitsStored, odd.HighBit = 8, 7
    files["odd_leftover.dcm"] = with_pixel_value(encode(odd), odd.PixelData + b"Q" + LEFTOVER[:-1])
    # trailing bytes after the dataset, and Data Set Trailing Padding holding text
    files["trailing_bytes.dcm"] = encode(ct(15)) + LEFTOVER
    files["trailing_padding.dcm"] = encode(ct(16)) + struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, 96) + LEFTOVER
    # deflated (read and written whole) with leftover pixel bytes and a palette LUT holding e0 7f 10 00
    whole = ct(17, ts=DeflatedExplicitVRLittleEndian)
    whole.PixelData = whole.PixelData + LEFTOVER
    whole.RedPaletteColorLookupTableData = b"\x00\x01\xe0\x7f\x10\x00\x02\x03"
    files["deflated_leftover.dcm"] = encode(whole)
    # encapsulated JPEG: a pad byte that is not zero is written as zero; text after EOI holds the file
    files["jpeg_pad.dcm"] = _jpeg_ct(18, b"\x07")
    files["jpeg_after_eoi.dcm"] = _jpeg_ct(19, b"\x00" + LEFTOVER + b"\x00")
    # a patient called Long (Basic, Profile, Patient): the tool's own words are not theirs
    for i, name in enumerate(("LONG^BASIC", "PATIENT^PROFILE", "MODIFIED^RETAIN")):
        files[f"named_{i}.dcm"] = encode(ct(20 + i, name=name, pid=f"PID5{i}777"))
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("leaks")
    root = base / "EXPORT"
    root.mkdir()
    files = _inputs(root)
    out = base / "OUT"
    code = cli_deid.main([str(root), "--out", str(out), "--yes", "--key", str(base / "site.key"), "--workers", "1"])
    with (base / "OUT_HOSPITAL_ONLY" / "held_back.csv").open(encoding="utf-8") as fp:
        held = {row["original_file"]: row for row in csv.DictReader(fp)}
    manifest = list(csv.DictReader((out / export.MANIFEST_NAME).open(encoding="utf-8")))
    written = {}
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        written[int(ds.InstanceNumber)] = (path, ds)
    return base, root, out, code, held, manifest, written, files


def _out(run, n: int):
    return run[6][n]


def test_nothing_of_the_patient_in_any_output_byte(run):
    base, root, out, *_ = run
    assert find_leaks(out, {FAMILY, PATIENT_ID, "HORTENSE", "GODRIC", "STORESCU"}) == []


def test_preamble_is_always_zero(run):
    for path, _ in run[6].values():
        assert path.read_bytes()[:128] == b"\0" * 128


@pytest.mark.parametrize("n, length, value", [(11, 512, None), (12, 512, None), (13, 10, bytes(range(1, 11))),
                                              (17, 512, None)])
def test_native_pixel_data_is_cut_to_its_frames(run, n, length, value):
    path, ds = _out(run, n)
    assert len(ds.PixelData) == length
    expected = value if value is not None else ct(n).PixelData
    assert ds.PixelData == expected
    assert LEFTOVER[:20] not in path.read_bytes()


def test_odd_pixel_length_gets_a_zero_pad_byte(run):
    path, ds = _out(run, 14)
    assert ds.PixelData == ct(14, rows=3, columns=3, bits=8).PixelData + b"\0"
    assert path.read_bytes().endswith(ct(14, rows=3, columns=3, bits=8).PixelData + b"\0")


def test_trailing_bytes_and_padding_are_dropped(run):
    for n in (15, 16):
        path, ds = _out(run, n)
        data = path.read_bytes()
        assert data.endswith(ct(n).PixelData), n
        assert 0xFFFCFFFC not in ds


def test_encapsulated_pad_byte_zeroed_and_text_after_eoi_held(run):
    path, ds = _out(run, 18)
    from pydicom.encaps import generate_fragments

    fragment = list(generate_fragments(ds.PixelData))[-1]  # after the offset table
    assert fragment.endswith(b"\xff\xd9\x00")
    assert ds.pixel_array.shape == (ds.Rows, ds.Columns)  # still decodes
    assert 19 not in run[6]
    held_text = (run[0] / "OUT_HOSPITAL_ONLY" / "held_back.csv").read_text(encoding="utf-8")
    assert "jpeg_after_eoi.dcm" in held_text and "end-of-image" in held_text


def test_patient_called_long_is_not_held_for_the_tools_words(run):
    for n in (20, 21, 22):
        path, ds = _out(run, n)
        assert "Basic" in " ".join(ds.DeidentificationMethod) or "basic" in " ".join(ds.DeidentificationMethod)


def test_second_run_is_byte_identical(run, tmp_path):
    base, root, out, *_ = run
    again = tmp_path / "AGAIN"
    cli_deid.main([str(root), "--out", str(again), "--yes", "--key", str(base / "site.key"), "--workers", "1"])
    first = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.dcm")}
    second = {p.relative_to(again).as_posix(): p.read_bytes() for p in again.rglob("*.dcm")}
    assert first == second and len(first) == 12


def test_times_in_the_output_are_shifted(run):
    _, ds = _out(run, 11)
    assert ds.StudyTime != "235000" and ds.StudyDate != "20240115"


# ---- kind 6: the last net itself ----------------------------------------------------------------

def _ids(name: str, pid: str) -> Identifiers:
    ids = Identifiers()
    ids.add_name(name)
    ids.add_exact(pid)
    return ids


def test_header_search_sees_elements_after_a_lut_holding_pixel_tag_bytes():
    ds = ct(30, name="DOE^JANE", pid="PID00000")
    ds.RedPaletteColorLookupTableData = b"\x00\x01\xe0\x7f\x10\x00\x02\x03"
    ds.StudyComments = f"seen by {FAMILY}"   # (0032,4000): after the LUT in tag order
    data = dicomio.header_search_bytes(ds)
    assert 0 < data.find(b"\xe0\x7f\x10\x00") < data.find(FAMILY.encode())
    assert export._header_leaks(data, _ids(f"{FAMILY}^HORTENSE", PATIENT_ID), ds)
    del ds.StudyComments
    ds.PixelData = FAMILY.encode() * 2   # pixel values are not header text
    assert not export._header_leaks(dicomio.header_search_bytes(ds), _ids(f"{FAMILY}^HORTENSE", PATIENT_ID), ds)


def test_header_search_ignores_the_tools_own_words_but_not_the_patients(guidelines):
    ds = ct(31, name="LONG^BASIC", pid="PID51777")
    ids = Identifiers()
    ctx = _ctx(guidelines)
    ctx.identifiers = ids
    engine.deidentify(ds, ctx)
    ds.file_meta = engine.new_file_meta(ds, ExplicitVRLittleEndian)
    encoded = dicomio.encode_header(ds)
    assert b"Long" in encoded or b"long" in encoded.lower()    # the tool's words are there
    assert export._identifier_in_header(encoded, ids, ds)      # and the plain byte search hits them
    assert not export._header_leaks(encoded, ids, ds)          # the last net does not hold the file
    ds.ImageComments = "Long"                                  # the patient's name in a value is found
    assert export._header_leaks(dicomio.encode_header(ds), ids, ds)


# ---- kind 4: the encapsulated item checks on their own ---------------------------------------------

def _items(*fragments: bytes, bot: bytes = b"") -> bytes:
    out = struct.pack("<HHI", 0xFFFE, 0xE000, len(bot)) + bot
    for f in fragments:
        out += struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f
    return out + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _check(data: bytes, ts: str = JPEGBaseline8Bit, frame_pixels: int = 8) -> list[int]:
    return dicomio.check_fragments(lambda o, n: data[o:o + n], len(data), ts, frame_pixels)


def test_fragment_checks_accept_frames_split_over_fragments():
    jpeg, _ = _jpeg_of_odd_length()
    a, b = jpeg + b"\0", jpeg[:40]
    rest = jpeg[40:] + b"\0"
    assert _check(_items(a, b, rest, a)) == []                                     # 3 frames, one split in two
    assert _check(_items(a, a, bot=struct.pack("<2I", 0, 8 + len(a)))) == []       # with an offset table
    data = _items(a[:-1] + b"\x07", a)
    assert _check(data) == [16 + len(a) - 1]                                       # the non-zero pad byte


@pytest.mark.parametrize("fragments, bot, why", [
    ((b"\xff\xd8" + b"\1" * 10 + b"\xff\xd9" + b"DOE^JOHN", ), b"", "end-of-image"),          # text after EOI
    ((b"\xff\xd8\1\1\xff\xd9" + b"XX" * 5, b"\xff\xd8\1\1\xff\xd9"), b"", "end-of-image"),   # in a middle frame
    ((b"DOE^JOHN\xff\xd8\1\1\xff\xd9", ), b"", "does not start"),                            # text before SOI
    ((b"\xff\xd8\1\1\xff\xd9", ), b"\0\0\0\0\1\1", "multiple of 4"),                         # offset table
    ((b"\xff\xd8\1\1\xff\xd9", ), b"DOE^", "does not point"),                                # table of text
])
def test_fragment_checks_refuse_bytes_not_accounted_for(fragments, bot, why):
    with pytest.raises(dicomio.Unreadable, match=why):
        _check(_items(*fragments, bot=bot))


def test_fragment_checks_leave_other_codecs_alone():
    assert _check(_items(b"anything at all!"), "1.2.840.10008.1.2.8.1") == []  # Deflated Image Frame Compression


@pytest.mark.parametrize("rows, columns, bits, samples, frames, photometric, expected", [
    (512, 512, 16, 1, 1, "MONOCHROME2", 524288), (5, 5, 1, 1, 3, "MONOCHROME2", 10), (3, 3, 8, 1, 1, "MONOCHROME2", 9),
    (4, 4, 8, 3, 2, "RGB", 96), (4, 4, 8, 3, 1, "YBR_FULL_422", 32), (4, 4, 12, 1, 1, "MONOCHROME2", 24),
])
def test_expected_pixel_length(rows, columns, bits, samples, frames, photometric, expected):
    ds = Dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = rows, columns, bits, samples
    ds.NumberOfFrames, ds.PhotometricInterpretation = frames, photometric
    assert dicomio.expected_pixel_length(ds) == expected
    del ds.Rows
    with pytest.raises(dicomio.Unreadable):
        dicomio.expected_pixel_length(ds)


def test_pixel_plans_keep_every_image_of_pydicoms_own_test_files(tmp_path):
    """Real files from other tools (pydicom's bundled test data; nothing downloaded): what the plan
    writes decodes to the same pixels, for streamed and whole reads; padded values are cut."""
    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "test_files"
    checked, cut, refused = 0, 0, set()
    for path in sorted(folder.glob("*.dcm")):
        try:
            original = pydicom.dcmread(path)
            expected = original.pixel_array
        except Exception:
            continue  # broken on purpose, or a codec this machine lacks
        try:
            header = dicomio.read_header(path)
        except dicomio.Unreadable:
            refused.add(path.name)
            continue
        if header.pixel_span is None:
            if header.streamable or "PixelData" not in original:
                continue
            written = dicomio.read_full(path)
        else:
            tmp = tmp_path / path.name
            dicomio.write_streamed(path.read_bytes()[:header.pixel_span.start], path, header.pixel_span, tmp)
            written = pydicom.dcmread(tmp)
            cut += tmp.stat().st_size < path.stat().st_size
        assert np.array_equal(written.pixel_array, expected), path.name
        checked += 1
    assert checked >= 30 and cut >= 1  # MR_small_padded.dcm carries 128 bytes beyond its frame
    # refused for reasons of their own (no file meta, bogus Number of Frames "1A", an item length
    # past the end of the file), none for pixel bytes they account for
    assert refused <= {"badVR.dcm", "SC_rgb_jpeg.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "no_meta.dcm",
                       "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm", "UN_sequence.dcm"}, refused


def test_leftovers_that_end_like_a_jpeg_are_found_by_parsing_the_codestream():
    """An encoder reusing its buffer leaves the end of an older image after the EOI: the fragment
    still ends in FF D9, so only following the codestream's markers finds where the image ends."""
    jpeg, _ = _jpeg_of_odd_length()
    assert dicomio._codestream_end(jpeg) == len(jpeg)
    leftover = jpeg + b"\0" + f"{FAMILY}^HORTENSE".encode() + jpeg[-40:]
    with pytest.raises(dicomio.Unreadable, match="end-of-image"):
        _check(_items(leftover))
    assert _check(_items(jpeg + b"\0" * 7)) == []          # zeros after the image carry nothing


def test_rle_segments_must_end_where_their_pixels_end():
    from pydicom.uid import RLELossless

    header = struct.pack("<16I", 1, 64, *([0] * 14))
    segment = b"\x03\x01\x02\x03\x04" + b"\xfd\x09"        # 4 literal bytes, then a run of 4: 8 pixels
    assert _check(_items(header + segment + b"\0"), RLELossless) == []
    assert _check(_items(header + segment + b"\x05"), RLELossless) == [16 + 64 + len(segment)]  # pad zeroed
    with pytest.raises(dicomio.Unreadable, match="RLE"):
        dicomio.check_fragments(lambda o, n: _items(header + segment + b"DOE^JOHN")[o:o + n],
                                len(_items(header + segment + b"DOE^JOHN")), RLELossless, 8)
    with pytest.raises(dicomio.Unreadable, match="RLE"):   # a segment that does not make its pixels
        dicomio.check_fragments(lambda o, n: _items(header + b"\x03\x01")[o:o + n],
                                len(_items(header + b"\x03\x01")), RLELossless, 8)
