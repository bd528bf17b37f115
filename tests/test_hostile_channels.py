"""Channels the mutation fuzzer does not write into: text inside encapsulated pixel data.

A JPEG codestream can carry comments (COM) and application segments (APP1 Exif with dates and a
camera owner, APP13 IPTC with names ...); a JPEG 2000 codestream can carry COM segments in its
main and tile-part headers. No decoder needs them: their payload goes out as zeros (same length,
same pixels); the segments decoders need (JFIF APP0, Adobe APP14) stay as they are.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000, JPEGBaseline8Bit

from conftest import find_leaks
from helpers import ct_with_meta, encode, run_deid

FAMILY, GIVEN, PATIENT_ID = "ZEBRAFINCH", "OTTOLINE", "PID77123"
TEXT = f"{GIVEN} {FAMILY} {PATIENT_ID} 2024:01:15 10:15:00".encode()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _segment(marker: bytes, payload: bytes) -> bytes:
    return marker + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_with_text(gray: np.ndarray) -> bytes:
    """A baseline JPEG (Pillow: SOI, APP0 JFIF ...) with COM, APP1 Exif, APP13 and APP14 Adobe after SOI."""
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    extra = (_segment(b"\xff\xfe", TEXT) + _segment(b"\xff\xe1", b"Exif\0\0" + TEXT)
             + _segment(b"\xff\xed", b"Photoshop 3.0\0" + TEXT)
             + _segment(b"\xff\xee", b"Adobe\0\x64\0\0\0\0\0"))
    at = 2 + 2 + int.from_bytes(data[4:6], "big")  # after SOI and APP0 JFIF
    return data[:at] + extra + data[at:]


def _image(ts: str, frames: list[bytes], rows: int, cols: int, bits: int = 8) -> bytes:
    ds = ct_with_meta("1.2.826.0.1.3680043.9.5511.1.1", "1.2.826.0.1.3680043.9.5511", "1.2.826.0.1.3680043.9.5511.1", ts)
    ds.PatientName, ds.PatientID, ds.Modality, ds.Manufacturer = f"{FAMILY}^{GIVEN}", PATIENT_ID, "CT", "ACME"
    ds.StudyDate, ds.StudyTime = "20240115", "101500"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = encapsulate(frames)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    return encode(ds)


def _run(tmp_path: Path, data: bytes) -> pydicom.Dataset:
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(data)
    run_deid(tmp_path / "SRC", tmp_path / "OUT", tmp_path / "key.txt")
    assert find_leaks(tmp_path / "OUT", {FAMILY, GIVEN, PATIENT_ID}) == []
    (written,) = sorted((tmp_path / "OUT").rglob("*.dcm"))
    return pydicom.dcmread(written)


def test_jpeg_comment_and_application_segments_go_out_as_zeros_same_pixels(tmp_path):
    gray = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 7 % 251).astype(np.uint8)
    frames = [_jpeg_with_text(gray), _jpeg_with_text(gray[::-1].copy())]
    source = pydicom.dcmread(io.BytesIO(_image(JPEGBaseline8Bit, frames, 32, 32)))
    out = _run(tmp_path, _image(JPEGBaseline8Bit, frames, 32, 32))
    written = list(generate_frames(out.PixelData, number_of_frames=2))
    assert [len(f) for f in written] == [len(f) + len(f) % 2 for f in frames]  # lengths stay: offsets stay valid
    for frame in written:
        assert b"JFIF\0" in frame and b"Adobe" in frame              # what decoders need stays
        assert b"Exif" not in frame and b"Photoshop" not in frame
    assert np.array_equal(out.pixel_array, source.pixel_array)


def _j2k_with_comments(codestream: bytes) -> bytes:
    """codestream with a COM segment after SIZ (main header) and one in its first tile-part header."""
    siz_end = 2 + 2 + int.from_bytes(codestream[4:6], "big")
    com = _segment(b"\xff\x64", b"\x00\x01" + TEXT)  # Rcom 1: Latin text
    data = codestream[:siz_end] + com + codestream[siz_end:]
    sot = data.index(b"\xff\x90")
    psot = int.from_bytes(data[sot + 6:sot + 10], "big")
    at = sot + 12
    data = data[:at] + com + data[at:]
    if psot:
        data = data[:sot + 6] + struct.pack(">I", psot + len(com)) + data[sot + 10:]
    return data


def test_jpeg2000_comments_in_main_and_tile_part_headers_go_out_as_zeros_same_pixels(tmp_path):
    shipped = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "JPEG2000.dcm")
    (codestream,) = list(generate_frames(shipped.PixelData, number_of_frames=1))
    frame = _j2k_with_comments(codestream)
    data = _image(JPEG2000, [frame], shipped.Rows, shipped.Columns, shipped.BitsAllocated)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = shipped.BitsStored, shipped.HighBit, shipped.PixelRepresentation
    buf = io.BytesIO()
    ds.save_as(buf)
    out = _run(tmp_path, buf.getvalue())
    (written,) = list(generate_frames(out.PixelData, number_of_frames=1))
    assert len(written) == len(frame) + len(frame) % 2
    assert np.array_equal(out.pixel_array, shipped.pixel_array)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 8) + kind + payload


def test_jp2_boxes_with_text_go_out_as_zeros_same_pixels(tmp_path):
    shipped = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "JPEG2000.dcm")
    (codestream,) = list(generate_frames(shipped.PixelData, number_of_frames=1))
    rows, cols, bits = shipped.Rows, shipped.Columns, shipped.BitsStored
    ihdr = _box(b"ihdr", struct.pack(">IIHBBBB", rows, cols, 1, bits - 1, 7, 0, 0))
    colr = _box(b"colr", struct.pack(">BBBI", 1, 0, 0, 17))
    frame = (_box(b"jP  ", b"\r\n\x87\n") + _box(b"ftyp", b"jp2 \0\0\0\0jp2 ") + _box(b"jp2h", ihdr + colr)
             + _box(b"xml ", b"<patient>" + TEXT + b"</patient>") + _box(b"uuid", bytes(16) + TEXT)
             + _box(b"jp2c", codestream))
    ds = pydicom.dcmread(io.BytesIO(_image(JPEG2000, [frame], rows, cols, shipped.BitsAllocated)))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, shipped.HighBit, shipped.PixelRepresentation
    buf = io.BytesIO()
    ds.save_as(buf)
    out = _run(tmp_path, buf.getvalue())
    (written,) = list(generate_frames(out.PixelData, number_of_frames=1))
    assert len(written) == len(frame) + len(frame) % 2 and b"jp2h" in written and b"ihdr" in written
    assert np.array_equal(out.pixel_array, shipped.pixel_array)
