"""Per-file CPU of enhanced multi-frame and heavy headers (issue 19, branch frames): the header
read whole into memory, remembered table and dictionary answers, the padding search on bytes, the
encoder's single plain-tree check. Each must give exactly what the slower way gives, fail closed
as before, and no remembered answer may depend on anything but its key."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from helpers import ct_with_meta
from deidkit import dicomio, element_checks, header_encoder, rawheader, rawkeep
from deidkit.synth import make_export


def _enhanced(tmp_path: Path, name: str, ts: str = ExplicitVRLittleEndian, frames: int = 4,
              padding_in: int | None = None, bad_vr_in: int | None = None) -> Path:
    """A small enhanced-CT-like file: a per-frame functional groups sequence of undefined length
    whose items hold nested undefined-length sequences (as Philips writes them), a vendor private
    block in every item; (FFFC,FFFC) or a damaged VR in the item padding_in / bad_vr_in."""
    ds = ct_with_meta("1.2.826.0.1.3680043.99.7.1", "1.2.826.0.1.3680043.99.7", "1.2.826.0.1.3680043.99.7.2", ts)
    ds.PatientName, ds.PatientID, ds.Modality = "DOE^JOHN", "MRN7", "CT"
    items = []
    for i in range(frames):
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = i + 1
        content.FrameAcquisitionDateTime = f"2024011512000{i}"
        item.FrameContentSequence = Sequence([content])
        measures = Dataset()
        measures.PixelSpacing = [0.5, 0.5]
        measures.SliceThickness = "1.0"
        if bad_vr_in == i:
            del measures.SliceThickness
            measures.add_new(0x00180050, "UL", 7)  # a number text as binary: damaged VR
        item.PixelMeasuresSequence = Sequence([measures])
        item.add_new(0x00150010, "LO", "GEMS_PETD_01")
        item.add_new(0x00151021, "FL", 0.25)
        if padding_in == i:
            item.add_new(0xFFFCFFFC, "OB", b"DOE JOHN")
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", frames
    ds.PixelData = b"\0\1" * 4 * frames
    path = tmp_path / name
    dcmwrite(path, ds, enforce_file_format=True)  # pydicom writes these sequences with undefined length
    return path


def _export_read(path: Path, guidelines) -> dicomio.Header:
    """read_header as the export calls it (pruning, raw-keep rules)."""
    names: list[str] = []
    with dicomio.pruning(lambda ds: rawkeep.plan_header(ds, guidelines, names)):
        return dicomio.read_header(path)


def test_padding_in_undefined_length_items_is_dropped(tmp_path, guidelines):
    # (explicit VR: in implicit VR, drop_trailing_padding passes over raw sequences, whose VR is
    # not known yet; the engine's walk and the sweep deal with the element there, as before)
    path = _enhanced(tmp_path, "pad.dcm", padding_in=2)
    assert b"\xfc\xff\xfc\xff" in path.read_bytes()
    header = _export_read(path, guidelines)
    assert all(0xFFFCFFFC not in item for item in header.dataset.PerFrameFunctionalGroupsSequence)
    assert b"DOE JOHN" not in dicomio.encode_header(header.dataset)


def test_damaged_vr_in_a_later_item_is_held_after_good_ones_were_remembered(tmp_path, guidelines):
    good = _enhanced(tmp_path, "good.dcm")
    bad = _enhanced(tmp_path, "bad.dcm", bad_vr_in=3)
    _export_read(good, guidelines)  # (0018,0050) DS remembered as no clash
    with pytest.raises(dicomio.Unreadable, match="type does not fit"):
        _export_read(bad, guidelines)
    _export_read(good, guidelines)  # and the clash remembered for UL does not hold the good one
    assert element_checks._kinds_clash("UL", 0x00180050) and not element_checks._kinds_clash("DS", 0x00180050)
    assert rawheader._public_look(0x00180050, "UL")[0] and not rawheader._public_look(0x00180050, "DS")[0]


def test_private_raw_keep_answer_is_per_creator(guidelines):
    keeps = rawkeep.nested_keeps_raw(guidelines, "1.2.840.10008.5.1.4.1.1.2.1")
    raw = RawDataElement(0x00151021, "FL", 4, b"\0\0\x80>", 0, False, True)

    def item(creator: str) -> Dataset:
        ds = Dataset()
        ds.add_new(0x00150010, "LO", creator)
        ds[0x00151021] = raw
        return ds

    safe, other = item("GEMS_PETD_01"), item("SOME OTHER VENDOR")
    assert keeps(0x00151021, raw, safe)  # on the safe private list, disposition k, no check
    assert not keeps(0x00151021, raw, other)  # the same tag under another creator: not kept raw
    assert keeps(0x00151021, raw, item("GEMS_PETD_01"))
    odd = RawDataElement(0x00151021, "FL", 3, b"\0\0\x80", 0, False, True)
    assert not keeps(0x00151021, odd, safe)  # a remembered table answer never passes a bad shape


def test_header_read_whole_gives_what_the_file_read_gives(tmp_path, guidelines, monkeypatch):
    export = make_export(tmp_path / "src")
    files = sorted(p for p in export.root.rglob("*") if p.is_file())
    files.append(_enhanced(tmp_path, "enh.dcm"))
    files.append(_enhanced(tmp_path, "enh_pad.dcm", padding_in=0))
    outcomes = {}
    for whole in (True, False):
        monkeypatch.setattr(dicomio, "WHOLE_READ_SIZE", dicomio.DEFER_SIZE if whole else -1)
        seen = []
        for f in files:
            try:
                header = _export_read(f, guidelines)
            except (dicomio.NotDicom, dicomio.HeldBack, dicomio.Unreadable) as e:
                seen.append((type(e).__name__, str(e)))
                continue
            span = header.pixel_span
            seen.append((dicomio.encode_header(header.dataset), header.transfer_syntax, header.pruned,
                         header.raw_kept, None if span is None else (span.start, span.end, span.judged,
                                                                     span.segments)))
        outcomes[whole] = seen
    assert outcomes[True] == outcomes[False]
    assert any(isinstance(o[0], bytes) for o in outcomes[True])


def test_nested_items_encoded_as_dcmwrite_writes_them(tmp_path, monkeypatch):
    """Items checked plain once at the top are not checked again below: same bytes as dcmwrite,
    and an item that is not plain deep down still goes to pydicom (a raw value of odd length, an
    item with its own character set)."""
    path = _enhanced(tmp_path, "enh.dcm")
    ds = dicomio.read_header(path).dataset
    deep = ds.PerFrameFunctionalGroupsSequence[1].PixelMeasuresSequence[0]
    deep[0x00181030] = RawDataElement(0x00181030, "LO", 3, b"ABC", 0, False, True)  # odd length: not copied raw
    ds.PerFrameFunctionalGroupsSequence[2].SpecificCharacterSet = "ISO_IR 100"
    fast = dicomio.encode_header(copy.deepcopy(ds))
    monkeypatch.setattr(header_encoder, "FAST_HEADER_ENCODER", False)
    slow = dicomio.encode_header(copy.deepcopy(ds))  # dcmwrite itself
    assert fast == slow
    assert header_encoder._encodings_of("ISO_IR 100") == header_encoder._encodings_of(["ISO_IR 100"]) == ["latin_1"]
    header_encoder._encodings_of("ISO_IR 100").append("changed")  # callers own their list
    assert header_encoder._encodings_of("ISO_IR 100") == ["latin_1"]


def test_private_values_converted_as_pydicom_converts_them(tmp_path):
    """Private elements converted without Dataset.__getitem__ get the same value, VR and private
    creator as pydicom gives them (at the top level and in items; a tag without a creator too)."""
    from pydicom import dcmread

    path = _enhanced(tmp_path, "enh.dcm")
    ds = dcmread(path)
    ds.add_new(0x00190010, "LO", "SOME VENDOR")
    ds.add_new(0x00191001, "LO", "a value")
    ds.add_new(0x00191002, "DS", "1.5")
    ds.add_new(0x00211005, "SH", "no creator")
    ds.PerFrameFunctionalGroupsSequence[0].add_new(0x00151022, "LO", "item value")
    dcmwrite(path, ds, enforce_file_format=True)

    def elements(d: Dataset) -> list[tuple]:
        out = []
        for elem in d.iterall():  # every element converted by pydicom's own __getitem__
            if elem.tag >> 16 & 1 and elem.VR != "SQ":
                out.append((int(elem.tag), elem.VR, elem.value, elem.private_creator))
        return out

    ours = dcmread(path, stop_before_pixels=True)
    element_checks._touch_all_values(ours)
    for d in [ours, *ours.PerFrameFunctionalGroupsSequence]:
        for tag in list(d.keys()):
            if tag >> 16 & 1:
                assert type(d.get_item(tag)) is not RawDataElement  # converted by _touch_all_values
    expected = elements(dcmread(path, stop_before_pixels=True))
    assert elements(ours) == expected
    assert (0x00191001, "LO", "a value", "SOME VENDOR") in expected and (0x00211005, "SH", "no creator", None) in expected
