"""Elements removed before their values are converted (deidkit.rawheader, issue 19): the output
is byte for byte what the unpruned path writes, names in a removed sequence are still learned,
and nothing but the export prunes (--verify reads every element)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import find_leaks
from helpers import ct_with_meta, encode, run_deid, tree
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deidkit import dicomio, rawheader

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
FAMILY, GIVEN, PATIENT_ID = "QUILLFEATHER", "ROSALIND", "PID77123"
# a second person's family name that appears only in a removed sequence and in a kept text
OTHER = "ZANZIBARIAN"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def ct(n: int, ts: str = ExplicitVRLittleEndian, description: str = "AXIAL HEAD") -> Dataset:
    ds = ct_with_meta(f"1.2.826.0.1.3680043.9.7123.1.{n}", "1.2.826.0.1.3680043.9.7123", "1.2.826.0.1.3680043.9.7123.1",
                      ts)
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = f"{FAMILY}^{GIVEN}", PATIENT_ID, "F", "19700101"
    ds.Modality, ds.ImageType, ds.Manufacturer = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], "ACME"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240115", "101500", "1", "ACC991"
    ds.SeriesNumber, ds.InstanceNumber = 1, n
    ds.SeriesDescription = description
    # X in Table E.1-1: removed whatever they hold
    ds.InstitutionName, ds.InstitutionAddress = "ST ELSEWHERE", "1 MAIN ST"
    ds.DeviceSerialNumber, ds.GantryID = "SN12345", "G1"
    author = Dataset()
    author.PersonName = f"{OTHER}^PERCIVAL"
    author.InstitutionName = "ST ELSEWHERE"
    ds.AuthorObserverSequence = Sequence([author])
    # private blocks: one no table keeps, one the knowledge base keeps (GE study block)
    block = ds.private_block(0x0029, "ACME PRIVATE 1", create=True)
    block.add_new(0x01, "LO", "PRIVATE TEXT")
    block.add_new(0x02, "US", 7)
    ge = ds.private_block(0x0023, "GEMS_STDY_01", create=True)
    ge.add_new(0x74, "SL", 0)
    ge.add_new(0x7D, "SS", 0)
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(256, dtype=np.uint16) * (n + 1) % 4096).astype("<u2").tobytes()
    return ds


run = run_deid


def _export(root: Path) -> Path:
    files = {"IM1.dcm": encode(ct(1)), "IM2.dcm": encode(ct(2, ImplicitVRLittleEndian)),
             "IM3.dcm": encode(ct(3, description=f"{OTHER} PROTOCOL"))}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_pruned_output_is_byte_identical_to_the_unpruned_path(tmp_path, monkeypatch, synth_export):
    source = tmp_path / "EXPORT"
    shutil.copytree(synth_export.root, source / "synth")
    _export(source / "own")
    key = tmp_path / "k" / "key.txt"
    calls = []
    real = rawheader.prune_removed

    def counting(ds, guidelines, names=None):
        pruned = real(ds, guidelines, names)
        calls.append(len(pruned))
        return pruned

    monkeypatch.setattr(rawheader, "prune_removed", counting)
    status = run(source, tmp_path / "PRUNED", key)
    assert sum(calls) > 0  # something was pruned, so the comparison says something
    monkeypatch.setattr(rawheader, "prune_removed", lambda ds, guidelines, names=None: [])
    assert run(source, tmp_path / "PLAIN", key) == status
    pruned, plain = tree(tmp_path / "PRUNED"), tree(tmp_path / "PLAIN")
    assert pruned.keys() == plain.keys() and len(pruned) > 10
    assert [k for k in pruned if pruned[k] != plain[k]] == []


def test_a_name_only_in_a_removed_sequence_is_still_learned(tmp_path, monkeypatch):
    source = _export(tmp_path / "EXPORT")
    assert run(source, tmp_path / "OUT", tmp_path / "k" / "key.txt") in (0, 1)
    assert not find_leaks(tmp_path / "OUT", {FAMILY, GIVEN, PATIENT_ID, OTHER})
    # the same run without learning from the pruned sequence lets the name out: the test bites
    monkeypatch.setattr(rawheader, "_harvest_names", lambda seq, names: None)
    run(source, tmp_path / "OUT2", tmp_path / "k" / "key.txt")
    assert find_leaks(tmp_path / "OUT2", {OTHER})


def test_only_the_export_prunes(tmp_path):
    path = tmp_path / "IM1.dcm"
    path.write_bytes(encode(ct(1)))
    plain = dicomio.read_header(path)
    assert plain.pruned == ()
    assert 0x00080080 in plain.dataset and 0x00291001 in plain.dataset and 0x0040A078 in plain.dataset
    names: list[str] = []
    from deidkit import guidelines as gl

    g = gl.load()
    gl.register_new_attributes(g)
    with dicomio.pruning(lambda ds: rawheader.prune_removed(ds, g, names)):
        header = dicomio.read_header(path)
    removed = {tag for tag, _ in header.pruned}
    assert {0x00080080, 0x00080081, 0x00181000, 0x00181008, 0x0040A078, 0x00291001, 0x00291002} <= removed
    assert 0x00231074 not in removed and 0x00231074 in header.dataset  # kept by the knowledge base
    assert 0x00100010 in header.dataset and names == [f"{OTHER}^PERCIVAL"]
    assert 0x00080080 in dicomio.read_header(path).dataset  # outside the block: nothing pruned


def test_damage_in_a_pruned_element_still_holds_the_file(tmp_path):
    data = bytearray(encode(ct(1)))
    # the tag of Institution Name (X) turned into Station Name (X), before Institution Address
    at = data.find(b"\x08\x00\x80\x00LO")
    data[at:at + 4] = b"\x08\x00\x10\x10"  # (0008,1010) then (0008,0081): out of order
    path = tmp_path / "IM1.dcm"
    path.write_bytes(bytes(data))
    from deidkit import guidelines as gl

    g = gl.load()
    with dicomio.pruning(lambda ds: rawheader.prune_removed(ds, g, [])), pytest.raises(dicomio.Unreadable):
        dicomio.read_header(path)
