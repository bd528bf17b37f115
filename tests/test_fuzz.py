"""Property-based fuzzing of the per-file path (issue 7).

A real-shaped CT file with a planted patient is mutated at the byte level: bytes flipped, element
lengths set to odd/huge/undefined/off-by-some values, VRs swapped, the file cut or spliced. Each
mutant goes through deidkit.export.process_file, the exact function pool workers run. Properties:
no exception escapes, no example takes long (hypothesis deadline), and whatever is written holds
none of the planted patient's identifiers in any case or encoding.

CI runs DEIDKIT_FUZZ_EXAMPLES examples (default 1500, about 10-20 s); set it higher locally.
"""
from __future__ import annotations

import os
import struct
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from deidkit import export
from deidkit import guidelines as gl

FAMILY, GIVEN, PATIENT_ID = "ZEBRAFINCH", "OTTOLINE", "PID77123"
EXAMPLES = int(os.environ.get("DEIDKIT_FUZZ_EXAMPLES", "1500"))
VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
       b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
       b"UR", b"US", b"UT", b"UV", b"\0\0", b"ZZ"]
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on broken input


def seed_file() -> bytes:
    """A CT image holding the patient in the usual places, in nested undefined-length items and
    in private data, with real-sized (small) pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.8.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "HOSP_PACS"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240115", "101500", "ACC4711"
    ds.Modality, ds.Manufacturer = "CT", "SIEMENS"
    ds.InstitutionName = "St. Example General Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDescription = f"CT CHEST {FAMILY}"
    ds.PatientName = f"{FAMILY}^{GIVEN}"
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate, ds.PatientSex = "19610203", "F"
    ds.OtherPatientNames = f"{FAMILY}^{GIVEN}^B"
    item = Dataset()
    item.PatientID = PATIENT_ID
    item.IssuerOfPatientID = f"{FAMILY} clinic"
    ds.OtherPatientIDsSequence = Sequence([item])
    ds.OtherPatientIDsSequence.is_undefined_length = True
    ds.OtherPatientIDsSequence[0].is_undefined_length_sequence_item = True
    ref = Dataset()
    ref.ReferencedSOPClassUID = meta.MediaStorageSOPClassUID
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.8.2"
    ds.ReferencedImageSequence = Sequence([ref])
    block = ds.private_block(0x0029, "ACME PHI STORE 1.0", create=True)
    block.add_new(0x10, "LO", f"{FAMILY}^{GIVEN}")
    block.add_new(0x11, "OB", f"CSA {PATIENT_ID} {FAMILY}".encode())
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7777.8"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7777.8.0"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.ImageComments = f"Patient {FAMILY} {GIVEN} ID {PATIENT_ID}"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(64, dtype="<u2").tobytes()
    from io import BytesIO

    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def element_headers(data: bytes) -> list[tuple[int, bool]]:
    """(offset, has 4-byte length) of every element header in an explicit VR little endian file,
    inside sequences and items too."""
    headers, pos = [], 132
    while pos + 8 <= len(data):
        group, _ = struct.unpack_from("<HH", data, pos)
        if group == 0xFFFE:  # item or delimiter: tag + 4-byte length, no VR; step inside items
            headers.append((pos, True))
            pos += 8
            continue
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            length = struct.unpack_from("<I", data, pos + 8)[0]
            headers.append((pos, True))
            pos += 12 if (vr == b"SQ" or length == 0xFFFFFFFF) else 12 + length
        else:
            headers.append((pos, False))
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return headers


SEED = seed_file()
HEADERS = element_headers(SEED)


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["byte", "length", "vr", "cut", "splice", "tag"]))
    offset, long_length = draw(st.sampled_from(HEADERS))
    if kind == "byte":
        return ("byte", draw(st.integers(0, len(SEED) - 1)), draw(st.integers(0, 255)))
    if kind == "length":
        limit = 0xFFFFFFFF if long_length else 0xFFFF
        special = [0, 1, 2, 3, 7, limit, limit - 1, limit // 2, len(SEED), len(SEED) - offset]
        value = draw(st.one_of(st.sampled_from(special), st.integers(0, limit), st.integers(0, 64)))
        return ("length", offset, long_length, min(value, limit))
    if kind == "vr":
        return ("vr", offset, draw(st.sampled_from(VRS)))
    if kind == "tag":
        return ("tag", offset, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))
    if kind == "cut":
        return ("cut", draw(st.integers(0, len(SEED))))
    return ("splice", draw(st.integers(132, len(SEED))), draw(st.binary(min_size=1, max_size=16)))


def apply(data: bytes, mutations: list[tuple]) -> bytes:
    out = bytearray(data)
    for m in mutations:
        kind = m[0]
        if kind == "byte" and m[1] < len(out):
            out[m[1]] = m[2]
        elif kind == "length" and m[1] + 12 <= len(out):
            if m[2]:
                out[m[1] + 8:m[1] + 12] = struct.pack("<I", m[3])
            else:
                out[m[1] + 6:m[1] + 8] = struct.pack("<H", m[3])
        elif kind == "vr" and m[1] + 6 <= len(out):
            out[m[1] + 4:m[1] + 6] = m[2]
        elif kind == "tag" and m[1] + 4 <= len(out):
            out[m[1]:m[1] + 4] = struct.pack("<HH", m[2], m[3])
        elif kind == "cut":
            del out[m[1]:]
        elif kind == "splice":
            out[m[1]:m[1]] = m[2]
    return bytes(out)


def planted_forms() -> set[bytes]:
    forms = set()
    for secret in (FAMILY, GIVEN, PATIENT_ID):
        for variant in (secret, secret.lower(), secret.title()):
            for enc in ("ascii", "utf-16-le"):
                forms.add(variant.encode(enc))
    return forms


FORMS = planted_forms()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """The state a pool worker holds, set up once, and the folders it writes to."""
    base = tmp_path_factory.mktemp("fuzz")
    g = gl.load()
    export._init_worker(g, b"fuzz-key-0123456789abcdef0123456", str(base / "OUT"), str(base / "HOSP"), "")
    (base / "SRC").mkdir()
    return base


def test_the_seed_itself_goes_through_clean(worker):
    result = _through(worker, SEED)
    assert result.status == export.WRITTEN
    assert len(HEADERS) > 40


@settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), derandomize=os.environ.get("DEIDKIT_FUZZ_RANDOM") is None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation(), min_size=1, max_size=4))
def test_no_mutant_crashes_hangs_or_lets_the_planted_patient_out(worker, mutations):
    result = _through(worker, apply(SEED, mutations))
    assert isinstance(result, export.FileResult)
    assert result.status in (export.WRITTEN, export.FAILED, export.HELD, export.SKIPPED, export.DICOMDIR)
    assert "\n" not in result.reason


def _through(base: Path, data: bytes) -> export.FileResult:
    src = base / "SRC" / "IM0001.dcm"
    src.write_bytes(data)
    result = export.process_file(("F000001", str(src), "IM0001.dcm"))
    partial = export.partial_path(base / "OUT", "IM0001.dcm")
    if result.status == export.WRITTEN:
        written = partial.read_bytes()
        partial.unlink()
        leaked = [f for f in FORMS if f in written or f.lower() in written.lower()]
        assert not leaked, f"planted identifiers written: {leaked}"
    else:
        assert not partial.exists(), "a file that was not written left a partial file"
    for secret in (FAMILY, GIVEN, PATIENT_ID):
        assert secret.lower() not in result.reason.lower()
    return result


# ---- mutants of real-shaped files: pydicom's shipped test files and a synthetic export (issue 20) ----

CASES = int(os.environ.get("DEIDKIT_FUZZ_CASES", "400"))


@pytest.fixture(scope="module")
def real_shaped(tmp_path_factory):
    """benchmarks/fuzz_export.py's engine, its seeds checked unmutated (none may leak)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_export", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "fuzz_export.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_export"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.Fuzzer(tmp_path_factory.mktemp("fuzz_real"), seed=20)


def test_real_shaped_seeds_are_many_and_none_leaks(real_shaped):
    assert real_shaped.clean_seeds >= 100  # pydicom's test files and the synthetic export's files
    assert real_shaped.tally.pass_throughs == 0 and real_shaped.tally.tracebacks == 0, real_shaped.tally.failures


def test_mutants_of_real_shaped_files_never_crash_hang_or_let_the_planted_patient_out(real_shaped):
    tally = real_shaped.run(CASES)
    assert tally.cases >= CASES
    assert tally.bad == 0, "\n".join(tally.failures[:20])
    assert tally.statuses.get(export.WRITTEN, 0) > 0 and tally.statuses.get(export.FAILED, 0) > 0
