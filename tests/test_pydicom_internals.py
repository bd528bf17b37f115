"""The fast header encoder (dicomio.encode_header) mirrors pydicom internals: fail loudly on change.

encode_header writes the common elements itself, byte for byte as pydicom's writers do, and reads
pydicom attributes that are not public API (Dataset._character_set, original_encoding and
original_character_set, is_undefined_length_sequence_item, DicomBytesIO's encoding flags). It is
checked byte for byte against dcmwrite (tests/test_export_speedups.py), but only on the pydicom
release it was written against. A pydicom upgrade that touches any of the functions it mirrors
fails here, by name, before it can change a byte of a delivery:

- the fingerprints below are of the source of exactly the pydicom functions the encoder imitates;
- a pydicom outside dicomio.FAST_ENCODER_PYDICOM makes encode_header switch itself back to
  dcmwrite (correct, only slower), and this test says so.

After an upgrade: read the changed functions beside dicomio's fast path, run
tests/test_export_speedups.py, then update FAST_ENCODER_PYDICOM and the fingerprints here.
"""
from __future__ import annotations

import hashlib
import inspect
import io

import pydicom
import pytest
from pydicom import charset, dataelem, dataset, filebase, filereader, filewriter
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deidkit import dicomio, engine, header_encoder

# sha256 (first 16 hex digits) of inspect.getsource of each pydicom function the encoder mirrors.
MIRRORED = {
    "filewriter.write_dataset": (filewriter.write_dataset, "0465ff6207d73d18"),
    "filewriter.write_data_element": (filewriter.write_data_element, "f65286b7574621a1"),
    "filewriter.write_sequence": (filewriter.write_sequence, "aac0ff3901b560bf"),
    "filewriter.write_sequence_item": (filewriter.write_sequence_item, "1da8721102adf204"),
    "filewriter.write_string": (filewriter.write_string, "9ecae4492274eeb0"),
    "filewriter.write_text": (filewriter.write_text, "4632a71d4f4d2d82"),
    "filewriter.write_UI": (filewriter.write_UI, "b262677d7020f8a9"),
    "filewriter.write_number_string": (filewriter.write_number_string, "eaf209f224fe62cb"),
    "filewriter.write_numbers": (filewriter.write_numbers, "e46ed12c77694cc1"),
    "filewriter.write_DA": (filewriter.write_DA, "21bc3b6cd2cfd22c"),
    "filewriter.write_DT": (filewriter.write_DT, "2f3153230e3ab993"),
    "filewriter.write_TM": (filewriter.write_TM, "1ecebcd50a812e5b"),
    "filewriter.write_file_meta_info": (filewriter.write_file_meta_info, "0568f3155349513b"),
    "filewriter.dcmwrite": (filewriter.dcmwrite, "a07fce6130cb5daf"),
    "filereader.read_sequence_item": (filereader.read_sequence_item, "7ec24b7ad0ea31c6"),
    "dataset.Dataset.original_encoding": (dataset.Dataset.original_encoding.fget, "5d7ae996d6efe367"),
    "dataset.Dataset.original_character_set": (dataset.Dataset.original_character_set.fget, "b02ec01278d622a9"),
    "dataset.Dataset._character_set": (dataset.Dataset._character_set.fget, "0b29768cee1fbc45"),
    "dataelem.DataElement.value": (dataelem.DataElement.value.fset, "89011a49e9e78a03"),
    "charset.convert_encodings": (charset.convert_encodings, "6409459a5ec69a48"),
}


def _fingerprint(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()[:16]


def test_pydicom_is_the_release_the_fast_encoder_was_checked_on():
    assert pydicom.__version__.startswith(dicomio.FAST_ENCODER_PYDICOM), (
        f"pydicom {pydicom.__version__}: dicomio.encode_header has switched back to dcmwrite (slower). "
        "Check the fast path against this release (see this file's docstring), then update "
        "dicomio.FAST_ENCODER_PYDICOM.")
    assert dicomio.FAST_HEADER_ENCODER


@pytest.mark.parametrize("name", sorted(MIRRORED))
def test_the_pydicom_functions_the_fast_encoder_mirrors_are_unchanged(name):
    function, expected = MIRRORED[name]
    assert _fingerprint(function) == expected, (
        f"pydicom {pydicom.__version__} changed {name}, which dicomio's fast header encoder "
        "imitates: compare it with dicomio._write_dataset/_fast_value/_write_sequence/"
        "_own_file_meta_bytes, run tests/test_export_speedups.py, then update the fingerprint.")


def _read_back(ds: Dataset, transfer_syntax: str) -> Dataset:
    ds.file_meta = engine.new_file_meta(ds, transfer_syntax)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def _sample(charset_value: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = charset_value
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.7777.1"
    ds.Modality = "OT"
    ds.StudyDescription = "CHEST"
    ds.Rows, ds.Columns = 4, 4
    ds.SliceThickness = "1.5"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113100", "DCM", "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([item])
    return ds


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_attributes_the_fast_encoder_reads_still_mean_the_same(transfer_syntax):
    ds = _read_back(_sample("ISO_IR 100"), transfer_syntax)
    assert ds.original_encoding == (transfer_syntax == ImplicitVRLittleEndian, True)
    assert ds.original_character_set == ds._character_set == ["latin_1"]
    ds.SpecificCharacterSet = "ISO_IR 192"  # what the file says now differs from what was read
    assert ds._character_set != ds.original_character_set == ["latin_1"]
    item = ds.DeidentificationMethodCodeSequence[0]
    assert item.is_undefined_length_sequence_item is False
    fp = filebase.DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    assert (fp.is_implicit_VR, fp.is_little_endian) == (True, True)


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_fast_path_is_taken_and_equals_dcmwrite(transfer_syntax, monkeypatch):
    ds = _read_back(_sample("ISO_IR 100"), transfer_syntax)
    expected = io.BytesIO()
    dcmwrite(expected, ds, enforce_file_format=True)

    def no_dcmwrite(*args: object, **kwargs: object) -> None:
        raise AssertionError("encode_header fell back to dcmwrite for the usual case")

    monkeypatch.setattr(header_encoder, "dcmwrite", no_dcmwrite)
    assert dicomio.encode_header(ds) == expected.getvalue()


def test_the_switch_back_to_dcmwrite_gives_the_same_bytes(monkeypatch):
    ds = _read_back(_sample("ISO_IR 100"), ExplicitVRLittleEndian)
    fast = dicomio.encode_header(ds)
    calls = []
    real = dicomio.dcmwrite

    def spy(*args: object, **kwargs: object) -> None:
        calls.append(1)
        real(*args, **kwargs)

    monkeypatch.setattr(header_encoder, "dcmwrite", spy)
    monkeypatch.setattr(header_encoder, "FAST_HEADER_ENCODER", False)
    assert dicomio.encode_header(ds) == fast
    assert calls == [1]
