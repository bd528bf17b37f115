"""Sequences read from their raw bytes (deidkit.rawindex, issue 19): the items pydicom would
parse, only for the plain shape (anything else is left to pydicom); sequences stay raw through
the padding search, the damage checks and the pruning of removed sequences, with the same
findings as when pydicom converts them; and plain text values converted once per worker give
the elements pydicom gives."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from deidkit import dicomio, element_checks, rawheader, rawindex, rawkeep
from deidkit import guidelines as gl
from helpers import ct_with_meta, encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _sequence_bytes(items: list[Dataset]) -> bytes:
    """The value of a sequence of these items as pydicom writes it (explicit VR LE, defined lengths)."""
    holder = Dataset()
    holder.ReferencedImageSequence = Sequence(items)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, holder)
    data = fp.getvalue()
    assert data[4:6] == b"SQ"
    length = struct.unpack_from("<I", data, 8)[0]
    return data[12:12 + length]


def _nested_items() -> list[Dataset]:
    inner = _item(CodeValue="T-D0050", CodingSchemeDesignator="SRT", CodeMeaning="Chest")
    first = _item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2", ReferencedSOPInstanceUID="1.2.3.4",
                  ReferencedFrameNumber=[1, 2], PersonName="DOE^JOHN")
    first.PurposeOfReferenceCodeSequence = Sequence([inner])
    second = _item(ReferencedSOPInstanceUID="1.2.3.5", Rows=16)
    return [first, second]


def test_plain_items_are_what_pydicom_parses():
    data = _sequence_bytes(_nested_items())
    items = rawindex.plain_items(data)
    assert items is not None and len(items) == 2
    parsed = convert_raw_data_element(RawDataElement(BaseTag(0x00081140), "SQ", len(data), data, 0, False, True))

    def compare(nodes: tuple[rawindex.RawNode, ...], ds: Dataset) -> None:
        assert [n.tag for n in nodes] == [int(t) for t in ds.keys()]
        for node in nodes:
            raw = ds.get_item(node.tag)
            assert node.vr == raw.VR
            if node.items is None:
                assert data[node.start:node.end] == raw.value
            else:
                assert len(node.items) == len(ds[node.tag].value)
                for sub, sub_ds in zip(node.items, ds[node.tag].value, strict=True):
                    compare(sub, sub_ds)

    for nodes, ds in zip(items, parsed.value, strict=True):
        compare(nodes, ds)
    assert [n.tag for n in rawindex.walk(items)][:2] == [0x00081150, 0x00081155]
    assert rawindex.holds_tag(data, 0x00080100) and not rawindex.holds_tag(data, 0xFFFCFFFC)


@pytest.mark.parametrize("damage", ["undefined item", "UN", "unknown VR", "descending", "group 0002",
                                    "cut short", "character set", "overruns item"])
def test_other_shapes_are_left_to_pydicom(damage: str):
    data = bytearray(_sequence_bytes(_nested_items()))
    first_tag = 8  # the value starts with the first item's header; then its first element, (0008,1150)
    if damage == "undefined item":
        data[4:8] = b"\xff\xff\xff\xff"
    elif damage == "UN":
        data[first_tag + 4:first_tag + 6] = b"UN"
    elif damage == "unknown VR":
        data[first_tag + 4:first_tag + 6] = b"ZZ"
    elif damage == "descending":
        data[first_tag:first_tag + 4] = struct.pack("<HH", 0x0008, 0x1156)  # then (0008,1155): descending
    elif damage == "group 0002":
        data[first_tag:first_tag + 4] = struct.pack("<HH", 0x0002, 0x0010)
    elif damage == "cut short":
        data = data[:-3]
    elif damage == "character set":
        data[first_tag:first_tag + 4] = struct.pack("<HH", 0x0008, 0x0005)
    elif damage == "overruns item":
        length = struct.unpack_from("<H", data, first_tag + 6)[0]
        data[first_tag + 6:first_tag + 8] = struct.pack("<H", length + 400)
    assert rawindex.plain_items(bytes(data)) is None


def _file_with_sequences(tmp_path: Path, padding_inside: bool = False, text: bytes | None = None) -> Path:
    ds = ct_with_meta("1.2.826.0.1.3680043.9.7124.1.1", "1.2.826.0.1.3680043.9.7124", "1.2.826.0.1.3680043.9.7124.1")
    ds.PatientName, ds.PatientID = "WOLLSTONECRAFT^ISOLDE", "PID55321"
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = "CT", 4, 4, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(32)
    ds.ReferencedImageSequence = Sequence(_nested_items())  # U: kept and walked
    # removed whole (X): the name in it is learned before it goes
    ds.ReferencedPatientSequence = Sequence([_item(PatientName="OTHERNAME^PERCIVAL", PatientID="PID55321")])
    if padding_inside:
        ds.ReferencedImageSequence[1].add_new(0xFFFCFFFC, "OB", b"\0" * 8)
    if text is not None:
        ds.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeMeaning = "placeholder"
    path = tmp_path / "IM1.dcm"
    data = encode(ds)
    if text is not None:
        data = data.replace(b"placeholder ", text)
    path.write_bytes(data)
    return path


def _read(path: Path, names: list[str]) -> dicomio.Header:
    g = gl.load()
    gl.register_new_attributes(g)
    with dicomio.pruning(lambda ds: rawkeep.plan_header(ds, g, names)):
        return dicomio.read_header(path)


def test_sequences_stay_raw_through_the_padding_search_and_padding_inside_still_goes(tmp_path):
    ds = dcmread(_file_with_sequences(tmp_path), stop_before_pixels=True)
    dicomio.drop_trailing_padding(ds)
    assert type(ds.get_item(0x00081140)) is RawDataElement  # no (FFFC,FFFC) bytes: not converted
    path = _file_with_sequences(tmp_path, padding_inside=True)
    ds = dcmread(path, stop_before_pixels=True)
    assert b"\xfc\xff\xfc\xff" in ds.get_item(0x00081140).value
    dicomio.drop_trailing_padding(ds)
    assert all(0xFFFCFFFC not in item for item in ds.ReferencedImageSequence)
    header = _read(path, [])
    assert all(0xFFFCFFFC not in item for item in header.dataset.ReferencedImageSequence)


def test_a_removed_raw_sequence_gives_the_names_pydicom_would(tmp_path, monkeypatch):
    path = _file_with_sequences(tmp_path)
    names: list[str] = []
    header = _read(path, names)
    assert (0x00081120, "removed") in header.pruned and 0x00081120 not in header.dataset
    assert names == ["OTHERNAME^PERCIVAL"]
    # the same answer when the bytes are not indexed (pydicom converts the sequence)
    monkeypatch.setattr(element_checks, "plain_items", lambda *a, **k: None)
    element_checks._PLAIN_SEQUENCES.clear()
    names_converted: list[str] = []
    header2 = _read(path, names_converted)
    assert names_converted == names and header2.pruned == header.pruned
    assert encode_of(header2) == encode_of(header)


def encode_of(header: dicomio.Header) -> bytes:
    return dicomio.encode_header(header.dataset)


@pytest.mark.parametrize("text", [b"CHEST\x01\x02\x03WXYZ", b"\x10\x00\x10\x00PN\x04\x00DOE^"])
def test_damage_inside_a_raw_sequence_still_holds_the_file(tmp_path, text):
    assert len(text) == len(b"placeholder ")  # the value's length field stays right: only its content is damaged
    path = _file_with_sequences(tmp_path, text=text)
    with pytest.raises(dicomio.Unreadable, match="corrupt"):
        _read(path, [])
    with pytest.raises(dicomio.Unreadable, match="corrupt"):
        dicomio.read_header(path)  # --verify's reading too


def test_a_length_running_past_its_item_holds_the_file(tmp_path):
    path = _file_with_sequences(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x08\x00\x04\x01LO")  # Code Meaning inside the nested item
    length = struct.unpack_from("<H", data, at + 6)[0]
    data[at + 6:at + 8] = struct.pack("<H", length + 60)
    path.write_bytes(bytes(data))
    with pytest.raises(dicomio.Unreadable):
        _read(path, [])


def test_converted_once_per_worker_is_what_pydicom_converts():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.set_original_encoding(False, True, ["iso8859"])
    values = [(0x00080020, "DA", b"20240115"), (0x00081030, "LO", b"CT CHEST "), (0x00080018, "UI", b"1.2.3.4\0"),
              (0x00080008, "CS", b"ORIGINAL\\PRIMARY"), (0x00081030, "LO", b""), (0x00321060, "LO", b"A\\B ")]
    element_checks._CONVERTED.clear()
    for _ in range(2):  # the second round answers from the memo
        for tag, vr, value in values:
            raw = RawDataElement(BaseTag(tag), vr, len(value), value, 100, False, True)
            expected = convert_raw_data_element(raw, encoding=["iso8859"], ds=ds)
            store: dict = {BaseTag(tag): raw}
            got = element_checks._convert_plain(ds, store, BaseTag(tag), raw, [])
            assert isinstance(got, DataElement) and store[BaseTag(tag)] is got
            assert (got.tag, got.VR, got.value, got.file_tell, got.is_undefined_length) == (
                expected.tag, expected.VR, expected.value, expected.file_tell, expected.is_undefined_length)
            assert type(got.value) is type(expected.value)
    # only immutable single values are remembered: a multi-valued one is a new object each time
    assert all(type(v[1]) is not list and not hasattr(v[1], "append") for v in element_checks._CONVERTED.values())
    remembered = {key[:2] for key in element_checks._CONVERTED}
    assert ("CS", b"ORIGINAL\\PRIMARY") not in remembered and ("LO", b"A\\B ") not in remembered
    assert ("DA", b"20240115") in remembered and ("UI", b"1.2.3.4\0") in remembered


def test_a_file_read_with_sequences_raw_writes_the_same_bytes_as_converted(tmp_path, monkeypatch):
    path = _file_with_sequences(tmp_path)
    header = _read(path, [])
    fast = encode_of(header)
    # every sequence converted up front, as before (no index, no padding shortcut)
    monkeypatch.setattr(element_checks, "plain_items", lambda *a, **k: None)
    monkeypatch.setattr("deidkit.pixel_plan.holds_tag", lambda *a: True)
    element_checks._PLAIN_SEQUENCES.clear()
    assert encode_of(_read(path, [])) == fast
    assert rawheader  # the pruning module is the one read_header's prune step uses


def test_item_buffers_come_back_empty():
    from deidkit import header_encoder

    body = header_encoder._item_buffer(False)
    body.write(b"left over from an item that failed half way")
    header_encoder._release(body)
    again = header_encoder._item_buffer(False)
    assert again.tell() == 0 and again.getvalue() == b"" and again.is_little_endian and not again.is_implicit_VR
    header_encoder._release(again)


_ASCII_TEXT_VRS = ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vr=st.sampled_from(_ASCII_TEXT_VRS),
       value=st.lists(st.sampled_from([b"A", b"1", b".", b" ", b"\\", b"\0", b"^", b"-", b"\x01", b"\t", b"Z" * 30,
                                       b"9" * 17, b"e", b"+", b"=", b"\x7f"]), max_size=24).map(b"".join))
def test_a_raw_check_that_passes_stands_for_the_converted_one(vr, value):
    """element_checks.RawChecked: for plain ASCII (no escapes), what passes value_problem raw
    passes it converted too, so _check_structure may skip the second check."""
    if len(value) % 2:
        value += b" "
    raw = RawDataElement(BaseTag(0x00081030), vr, len(value), value, 0, False, True)
    if element_checks.value_problem(vr, value, False) is not None:
        return
    try:
        elem = convert_raw_data_element(raw, encoding=["iso8859"])
    except Exception:
        return  # conversion itself fails: read_header holds the file either way
    assert element_checks._converted_value_problem(elem, False) is None


def test_large_values_are_judged_once_by_digest_and_still_judged():
    clean = bytes(range(0x20, 0x7F)) * 100  # ~9.5 KB of binary-looking but harmless bytes
    damaged = clean[:5000] + b"\x10\x00\x10\x00PN\x08\x00" + clean[5008:]  # Patient's Name's header inside
    assert len(damaged) == len(clean) >= element_checks._DIGEST_FROM
    for _ in range(2):  # the second answers come from the memo
        assert element_checks._value_problem_memo("OB", clean, False) is None
        assert element_checks._value_problem_memo("OB", damaged, False) == element_checks.value_problem(
            "OB", damaged, False) is not None
