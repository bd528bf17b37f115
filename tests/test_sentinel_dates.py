"""Sentinel dates: a "not set" date moved by the patient's offset would show the offset itself.

A reader who sees 19000101 written as 18980819 knows the shift (500 days) and so every real date
of that patient. Such sentinels are kept as they are (1900-01-01 and before, 2099-12-31 and
after: no real record has them) or removed (a program's epoch that is also a real day: Unix
1970-01-01, DOS 1980-01-01, 2000-01-01 ...), for public and private dates alike, in every VR a
date comes in (DA, DT, seconds since 1970); real dates are still shifted.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from helpers import ct_with_meta, encode, engine_context, read_back_as_file, run_deid
from deidkit import engine, mapping

KEY = b"S" * 32
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _header() -> Dataset:
    """A GE-like CT header with sentinels and real dates, public and private."""
    ds = ct_with_meta("1.2.826.0.1.3680043.9.7311.1.1", "1.2.826.0.1.3680043.9.7311", "1.2.826.0.1.3680043.9.7311.1")
    ds.PatientName, ds.PatientID, ds.Modality, ds.Manufacturer = "DOE^JANE", "PID31337", "CT", "GE MEDICAL SYSTEMS"
    ds.StudyDate, ds.StudyTime = "20240115", "101500"          # real: shifted
    ds.SeriesDate, ds.SeriesTime = "19000101", "000000"         # sentinel: kept
    ds.AcquisitionDate = "99991231"                             # "never": kept
    ds.ContentDate = "19700101"                                 # epoch 0 as a date: removed
    ds.AcquisitionDateTime = "19000101000000.000000"            # sentinel DT: kept, time too
    ge = ds.private_block(0x0023, "GEMS_STDY_01", create=True)  # (0023,xx70) seconds since 1970
    ge.add_new(0x70, "FD", 315532800.0)                         # DOS epoch 1980-01-01 00:00: removed
    toshiba = ds.private_block(0x7005, "TOSHIBA_MEC_CT3", create=True)
    toshiba.add_new(0x24, "DA", "19000101")                     # private DA sentinel
    pet = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
    pet.add_new(0x0D, "DT", "18991230000000")                   # Delphi / OLE epoch as a DT
    pet.add_new(0x39, "DT", "20240115093000")                   # real: shifted
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(range(128))
    return ds


def _moved(value: str, offset: mapping.MomentOffset) -> set[str]:
    """What a plain shift would have written for a sentinel DA/DT (the offset made visible)."""
    day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    out = set()
    for extra in (-1, 0, 1):
        try:
            out.add((day + dt.timedelta(days=offset.days + extra)).strftime("%Y%m%d"))
        except OverflowError:
            pass
    return out


def _value(ds: Dataset, tag: tuple[int, int]) -> str:
    return str(ds[tag].value) if tag in ds else ""


def _check(ds: Dataset, offset: mapping.MomentOffset) -> None:
    text = "\n".join(str(e.value) for e in ds.iterall() if e.VR != "SQ")
    for sentinel in ("19000101", "99991231", "19700101", "18991230"):
        assert not any(moved in text for moved in _moved(sentinel, offset)), sentinel
    assert _value(ds, (0x0008, 0x0020)) not in ("", "20240115")   # real dates still move
    assert _value(ds, (0x0008, 0x0021)) == "19000101"
    assert _value(ds, (0x0008, 0x0031)) == "000000"               # its time: moved, it shows the seconds
    assert _value(ds, (0x0008, 0x0022)) == "99991231"
    assert _value(ds, (0x0008, 0x0023)) == ""                     # 19700101: removed
    assert _value(ds, (0x0008, 0x002A)) in ("", "19000101000000.000000")
    assert (0x0023, 0x1070) not in ds                             # 1980-01-01 00:00 in seconds: removed
    assert _value(ds, (0x7005, 0x1024)) in ("", "19000101")
    assert _value(ds, (0x0009, 0x100D)) in ("", "18991230000000")
    assert _value(ds, (0x0009, 0x1039)) not in ("", "20240115093000")


def test_sentinel_dates_are_never_moved_in_the_engine(guidelines):
    ds = read_back_as_file(_header())
    ctx = engine_context(guidelines, KEY)
    engine.deidentify(ds, ctx)
    _check(ds, ctx.moment_offset)


def test_sentinel_dates_are_never_moved_in_a_written_copy(tmp_path: Path):
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(encode(_header()))
    key = tmp_path / "key.txt"
    assert run_deid(tmp_path / "SRC", tmp_path / "OUT", key) in (0, 1)
    (written,) = sorted((tmp_path / "OUT").rglob("*.dcm"))
    out = dcmread(written)
    site_key, _ = mapping.load_or_create_key(key)
    patient = mapping.patient_key_of("PID31337", "DOE^JANE", "", "1.2.826.0.1.3680043.9.7311")
    _check(out, mapping.Mapper(site_key).moment_offset(patient))


@pytest.mark.parametrize("vr, value, expected", [
    ("DA", "19000101", "19000101"), ("DA", "18991230", "18991230"), ("DA", "00010101", "00010101"),
    ("DA", "99991231", "99991231"), ("DA", "1900.01.01", "1900.01.01"), ("DA", "19700101", None),
    ("DA", "19800101", None), ("DA", "00000000", None), ("DT", "19000101000000", "19000101000000"),
    ("DT", "1900", "1900"), ("DT", "190001", "190001"), ("DT", "20000101120000+0100", None),
    ("DT", "99991231235959", "99991231235959"),
])
def test_shift_value_keeps_or_removes_sentinels(vr, value, expected):
    offset = mapping.MomentOffset(-500, 3600)
    assert mapping.shift_value(vr, value, offset, "120000") == expected


@pytest.mark.parametrize("value, expected", [
    (0.0, 0.0), (-1.0, None), (4294967295.0, None),        # GE "not set": 0 stays, -1 / 0xFFFFFFFF go
    (315532800.0, None), (946684800.0 + 3600, None),        # an epoch's day (1980-01-01, 2000-01-01)
    (1505926604.0, 1505926604.0 - 500 * 86400 + 3600),     # a real moment moves
])
def test_seconds_since_1970_sentinels(value, expected):
    assert mapping.shift_epoch_seconds(value, mapping.MomentOffset(-500, 3600)) == expected


def test_real_dates_near_the_sentinels_still_move():
    offset = mapping.MomentOffset(-500, 0)
    for value in ("19000102", "19691231", "19700102", "20991230", "20240115"):
        assert mapping.shift_value("DA", value, offset) not in (None, value)
