"""Bad input never stops a run and is never passed through (issue 7).

Every bad file is built here with pydicom or raw bytes next to good files carrying a planted
name. One run over the lot must: go on to the end, write the good and the legal-but-unusual files
de-identified, write nothing from the bad ones, list each bad one in held_back.csv (hospital side)
with a one-line neutral reason that the outward summary repeats, and exit with status 1.
"""
from __future__ import annotations

import csv
import errno
import os
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.fileset import FileSet
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

from conftest import find_leaks
from helpers import ct_with_meta, encode, held_back, run_deid
from deidkit import cli_deid, dicomio

FAMILY = "ZEBRAFINCH"
PATIENT_ID = "PID77123"
SECRETS = {FAMILY, PATIENT_ID, "OTTOLINE"}
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on broken input


def ct(n: int, ts: str = ExplicitVRLittleEndian) -> Dataset:
    ds = ct_with_meta(f"1.2.826.0.1.3680043.9.7777.5.{n}", "1.2.826.0.1.3680043.9.7777.5",
                      "1.2.826.0.1.3680043.9.7777.5.0", ts)
    ds.PatientName = f"{FAMILY}^OTTOLINE"
    ds.PatientID = PATIENT_ID
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240115", "101500", "1", ""
    ds.SeriesNumber, ds.InstanceNumber = 1, n
    ds.ImageComments = f"seen {FAMILY} today"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    dtype = ">u2" if ts == ExplicitVRBigEndian else "<u2"
    ds.PixelData = (np.arange(256, dtype=np.uint16) * n % 4096).astype(dtype).tobytes()
    return ds


def element_offset(data: bytes, tag: int) -> int:
    """Offset of an explicit-VR little-endian element's tag in encoded bytes."""
    needle = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    pos = data.find(needle, 132)
    assert pos > 0
    return pos


def with_length(data: bytes, tag: int, length: int, long_form: bool) -> bytes:
    pos = element_offset(data, tag)
    out = bytearray(data)
    if long_form:
        out[pos + 8:pos + 12] = struct.pack("<I", length)
    else:
        out[pos + 6:pos + 8] = struct.pack("<H", length)
    return bytes(out)


# ---- the export: good files, legal-but-unusual files, bad files -------------------------------

def _undefined_lengths() -> Dataset:
    ds = ct(30)
    item = Dataset()
    item.PatientName = f"{FAMILY}^OTTOLINE"
    item.PatientID = PATIENT_ID
    ds.OtherPatientIDsSequence = Sequence([item])
    nested = Dataset()
    nested.ReferencedSOPClassUID = CT_IMAGE
    nested.ReferencedSOPInstanceUID = ct(1).SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([nested])
    for keyword in ("OtherPatientIDsSequence", "ReferencedImageSequence"):
        ds[keyword].is_undefined_length = True
        for it in ds[keyword].value:
            it.is_undefined_length_sequence_item = True
    return ds


def _huge_values() -> Dataset:
    ds = ct(31)
    block = ds.private_block(0x0029, "ACME BIG 1.0", create=True)
    block.add_new(0x10, "OB", (f"{FAMILY} ".encode() * 800_000)[: 6 * 1024 * 1024])  # above DEFER_SIZE
    ds.add_new(0x00324000, "LT", f"{FAMILY} " * 900)  # Study Comments, 10 kB of text
    return ds


# name -> builder(folder) writing that one file; outcome "written" means de-identified and out
UNUSUAL = {
    "no_preamble": lambda p: p.write_bytes(encode(_without_meta(ct(20)), implicit_vr=True, little_endian=True)),
    "deflated.dcm": lambda p: p.write_bytes(encode(ct(21, DeflatedExplicitVRLittleEndian))),
    "big_endian.dcm": lambda p: p.write_bytes(encode(ct(22, ExplicitVRBigEndian))),
    "implicit.dcm": lambda p: p.write_bytes(encode(ct(23, ImplicitVRLittleEndian))),
    "undefined_lengths.dcm": lambda p: p.write_bytes(encode(_undefined_lengths())),
    "huge_values.dcm": lambda p: p.write_bytes(encode(_huge_values())),
}


def _without_meta(ds: Dataset) -> Dataset:
    del ds.file_meta
    return ds


def _good_bytes(n: int = 40) -> bytes:
    return encode(ct(n))


BAD = {
    "empty.dcm": lambda p: p.write_bytes(b""),
    "truncated_header.dcm": lambda p: p.write_bytes(_good_bytes()[:300]),
    "truncated_pixels.dcm": lambda p: p.write_bytes(_good_bytes()[:-100]),
    "cut_in_pixel_header.dcm": lambda p: p.write_bytes(_good_bytes()[:element_offset(_good_bytes(), 0x7FE00010) + 6]),
    "bogus_length_name.dcm": lambda p: p.write_bytes(with_length(_good_bytes(), 0x00100010, 0xFFF0, False)),
    "bogus_length_pixels.dcm": lambda p: p.write_bytes(with_length(_good_bytes(), 0x7FE00010, 0x7FFFFFF0, True)),
    "bogus_length_sequence.dcm": lambda p: p.write_bytes(_bogus_sequence_length()),
    "huge_declared_value.dcm": lambda p: p.write_bytes(_huge_declared_value()),
    "not_dicom.dcm": lambda p: p.write_bytes(b"%PDF-1.4\n" + FAMILY.encode() + b"\n%%EOF\n" * 20),
    "preamble_then_garbage.dcm": lambda p: p.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 2),
    "preamble_only.dcm": lambda p: p.write_bytes(b"\0" * 128 + b"DICM"),
    "unknown_transfer_syntax.dcm": lambda p: p.write_bytes(_unknown_transfer_syntax()),
}


def _bogus_sequence_length() -> bytes:
    ds = ct(41)
    item = Dataset()
    item.PatientName = f"{FAMILY}^OTTOLINE"
    ds.OtherPatientIDsSequence = Sequence([item])
    return with_length(encode(ds), 0x00101002, 0x40000000, True)


def _huge_declared_value() -> bytes:
    """An OB value declaring 3 GB in a 1 kB file, before the pixel data."""
    ds = ct(42)
    block = ds.private_block(0x0029, "ACME BIG 1.0", create=True)
    block.add_new(0x10, "OB", b"abcd")
    return with_length(encode(ds), 0x00291010, 0xC0000000, True)


def _unknown_transfer_syntax() -> bytes:
    ds = ct(43)
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.9.7777.99"  # a private one
    from io import BytesIO

    buf = BytesIO()
    dcmwrite(buf, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buf.getvalue()


def _dicomdir_pointing_outside(root: Path) -> Path:
    """A media subtree whose DICOMDIR names a file two levels above the export."""
    media = root / "MEDIA"
    fs = FileSet()
    fs.add(ct(50))
    fs.write(media)
    dicomdir = pydicom.dcmread(media / "DICOMDIR")
    for record in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            record.ReferencedFileID = ["..", "..", "OUTSIDE", "SECRET.dcm"]
    dicomdir.save_as(media / "DICOMDIR")
    return media / "DICOMDIR"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("robust")
    root = base / "EXPORT"
    (root / "GOOD").mkdir(parents=True)
    for n in range(1, 6):
        (root / "GOOD" / f"IM{n}.dcm").write_bytes(encode(ct(n)))
    (base / "OUTSIDE").mkdir()
    (base / "OUTSIDE" / "SECRET.dcm").write_bytes(encode(ct(60)))  # a DICOMDIR points here
    for folder, builders in (("UNUSUAL", UNUSUAL), ("BAD", BAD)):
        (root / folder).mkdir()
        for name, build in builders.items():
            build(root / folder / name)
    dicomdir = _dicomdir_pointing_outside(root)
    links = root / "LINKS"
    links.mkdir()
    (links / "loop").symlink_to("..", target_is_directory=True)         # a folder loop
    (links / "self.dcm").symlink_to(links / "self.dcm")                  # a link to itself
    (links / "outside.dcm").symlink_to(base / "OUTSIDE" / "SECRET.dcm")  # leads out of the export
    (links / "inside.dcm").symlink_to(root / "GOOD" / "IM1.dcm")         # done at its target
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "BAD" / "named_pipe.dcm")  # opening it would block forever
    out = base / "OUT"
    code = cli_deid.main([str(root), "--out", str(out), "--yes", "--key", str(base / "site.key"),
                          "--workers", "2"])
    held = list(csv.DictReader((base / "OUT_HOSPITAL_ONLY" / "held_back.csv").open(encoding="utf-8")))
    return {"root": root, "out": out, "code": code, "held": {r["original_file"]: r for r in held},
            "dicomdir": dicomdir.relative_to(root).as_posix()}


def _row(export: dict, rel: str) -> dict:
    assert rel in export["held"], f"{rel} is not listed in held_back.csv"
    return export["held"][rel]


def test_run_goes_on_and_exit_status_says_review_is_needed(export):
    assert export["code"] == 1
    written = sorted(export["out"].rglob("*.dcm"))
    # 5 good + the media file + every legal-but-unusual file; nothing from a bad file, a link or
    # outside the tree
    assert len(written) == 5 + 1 + len(UNUSUAL)
    assert not (export["out"] / ".deid_partial").exists()


@pytest.mark.parametrize("name", sorted(BAD) + ["named_pipe.dcm"])
def test_bad_file_is_listed_with_one_neutral_line_and_not_written(export, name):
    if name == "named_pipe.dcm" and not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    row = _row(export, f"BAD/{name}")
    assert row["status"] == "failed" and row["output_file"] == ""
    reason = row["reason"]
    assert reason and "\n" not in reason and len(reason) < 120
    assert FAMILY.lower() not in reason.lower() and name not in reason
    summary = (export["out"] / "deid_summary.txt").read_text(encoding="utf-8")
    assert f"x {reason}" in summary


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_but_legal_file_is_written_de_identified(export, name):
    src = export["root"] / "UNUSUAL" / name
    assert f"UNUSUAL/{name}" not in export["held"] or export["held"][f"UNUSUAL/{name}"]["status"] == "written"
    original = pydicom.dcmread(src, force=True)
    matches = [p for p in export["out"].rglob("*.dcm")
               if int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) == int(original.InstanceNumber)]
    assert len(matches) == 1
    written = pydicom.dcmread(matches[0])
    assert str(written.PatientName).startswith("SUBJ_")
    assert "OtherPatientIDsSequence" not in written or all(
        str(i.get("PatientName", "")) == "" for i in written.OtherPatientIDsSequence)
    if "TransferSyntaxUID" not in getattr(original, "file_meta", {}):
        original.file_meta = FileMetaDataset()
        original.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert np.array_equal(written.pixel_array, original.pixel_array)


def test_nothing_of_the_planted_patient_or_the_source_names_goes_out(export):
    assert find_leaks(export["out"], SECRETS) == []
    names = {n.rsplit(".", 1)[0] for n in [*BAD, *UNUSUAL] if "_" in n} | {"SECRET", "LINKS/", "MEDIA/"}
    outward = "".join(p.read_text(encoding="utf-8") for p in export["out"].glob("*.*") if p.suffix != ".dcm")
    assert not [n for n in names if n.lower() in outward.lower()]


def test_dicomdir_naming_files_outside_the_export_is_held_and_not_followed(export):
    row = _row(export, export["dicomdir"])
    assert row["status"] == "held" and "outside the export" in row["reason"]
    assert not any(r["original_file"].startswith("..") for r in export["held"].values())


def test_links_are_never_followed_out_of_the_tree_and_each_gets_a_line(export):
    assert _row(export, "LINKS/loop")["status"] == "skipped"       # its target is the export itself
    assert _row(export, "LINKS/inside.dcm")["status"] == "skipped"
    assert _row(export, "LINKS/self.dcm")["status"] == "held"
    outside = _row(export, "LINKS/outside.dcm")
    assert outside["status"] == "held" and "outside the export" in outside["reason"]
    assert not any("LINKS/loop/" in k for k in export["held"])


# ---- unreadable files and folders, a full output disk (simulated: tests may run as root) -----------

def _small_export(root: Path, n: int = 6) -> Path:
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(1, n + 1):
        (root / ("A" if i % 2 else "B") / f"IM{i}.dcm").write_bytes(encode(ct(i)))
    return root


_run, _held = run_deid, held_back


def test_unreadable_file_and_folder_are_listed(tmp_path, monkeypatch):
    root = _small_export(tmp_path / "EXPORT")
    denied_file, denied_folder = root / "A" / "IM1.dcm", root / "B"
    real_open, real_scandir = Path.open, os.scandir

    def open_(self, *args, **kwargs):
        if self == denied_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    def scandir(path="."):
        if Path(path) == denied_folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(os, "scandir", scandir)
    code = _run(root, tmp_path / "OUT", tmp_path / "k")
    held = _held(tmp_path / "OUT")
    assert code == 1
    assert held["A/IM1.dcm"]["status"] == "failed" and "permission denied" in held["A/IM1.dcm"]["reason"]
    assert held["B"]["status"] == "failed" and held["B"]["reason"].startswith("folder cannot be read")
    assert len(list((tmp_path / "OUT").rglob("*.dcm"))) == 2  # A/IM3, A/IM5


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_by_permissions(tmp_path):
    root = _small_export(tmp_path / "EXPORT")
    (root / "A" / "IM1.dcm").chmod(0)
    try:
        code = _run(root, tmp_path / "OUT", tmp_path / "k")
    finally:
        (root / "A" / "IM1.dcm").chmod(0o644)
    assert code == 1 and "permission denied" in _held(tmp_path / "OUT")["A/IM1.dcm"]["reason"]


def test_full_output_disk_stops_cleanly_and_the_next_run_finishes_the_job(tmp_path, monkeypatch):
    root = _small_export(tmp_path / "EXPORT", n=8)
    reference = tmp_path / "REF"
    assert _run(root, reference, tmp_path / "k") == 0
    real_write = dicomio.write_streamed
    calls = []

    def write_until_full(header, src, span, dst):
        calls.append(dst)
        if len(calls) > 3:
            with open(dst, "wb") as fp:  # a partial file is left behind, as a real full disk does
                fp.write(header[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(header, src, span, dst)

    monkeypatch.setattr(dicomio, "write_streamed", write_until_full)
    out = tmp_path / "OUT"
    assert _run(root, out, tmp_path / "k") == 1
    held = _held(out)
    full = [r for r in held.values() if "disk full" in r["reason"]]
    assert len(full) == 5 and all(r["status"] == "failed" for r in full)
    assert len(calls) == 4  # it stopped at the first full-disk error
    assert not (out / ".deid_partial").exists()
    summary = (out / "deid_summary.txt").read_text(encoding="utf-8")
    assert "output disk full" in summary
    monkeypatch.setattr(dicomio, "write_streamed", real_write)
    assert _run(root, out, tmp_path / "k") == 0  # space freed: it resumes and finishes
    assert _tree(out) == _tree(reference)


def test_file_too_large_for_the_output_file_system_is_listed_and_the_run_goes_on(tmp_path, monkeypatch):
    root = _small_export(tmp_path / "EXPORT")
    real_write = dicomio.write_streamed

    def refuse_one(header, src, span, dst):
        if Path(src).name == "IM2.dcm":
            raise OSError(errno.EFBIG, "File too large")
        return real_write(header, src, span, dst)

    monkeypatch.setattr(dicomio, "write_streamed", refuse_one)
    assert _run(root, tmp_path / "OUT", tmp_path / "k") == 1
    assert "too large" in _held(tmp_path / "OUT")["B/IM2.dcm"]["reason"]
    assert len(list((tmp_path / "OUT").rglob("*.dcm"))) == 5


def test_file_too_big_to_check_pixels_in_memory_is_held_not_read(tmp_path, monkeypatch):
    from deidkit import export_worker as export_module

    root = tmp_path / "EXPORT"
    root.mkdir()
    ds = ct(70)
    ds.Modality = "US"  # pixels would be checked for burned-in text
    (root / "US.dcm").write_bytes(encode(ds))
    monkeypatch.setattr(export_module, "WHOLE_READ_LIMIT", 100)
    monkeypatch.setattr(dicomio, "read_full", lambda path: pytest.fail("the whole file was read"))
    assert _run(root, tmp_path / "OUT", tmp_path / "k") == 1
    assert "too large to check in memory" in _held(tmp_path / "OUT")["US.dcm"]["reason"]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- offline: neither tool opens a network connection, in any of its processes ---------------------

SITECUSTOMIZE = '''
import os, socket

_log = os.environ["DEIDKIT_NET_LOG"]
with open(_log + ".loaded", "a") as fp:
    fp.write(f"{os.getpid()}\\n")


def _refuse(what):
    with open(_log, "a") as fp:
        fp.write(f"{os.getpid()} {what}\\n")
    raise OSError("network use blocked by the offline test")


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def _local(sock):
    return getattr(socket, "AF_UNIX", None) == sock.family  # multiprocessing's own pipes are fine


def connect(self, address):
    return _connect(self, address) if _local(self) else _refuse(f"connect {address!r}")


def connect_ex(self, address):
    return _connect_ex(self, address) if _local(self) else _refuse(f"connect_ex {address!r}")


def sendto(self, *args):
    return _sendto(self, *args) if _local(self) else _refuse("sendto")


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo = lambda *a, **k: _refuse(f"getaddrinfo {a[:2]!r}")
socket.gethostbyname = lambda *a, **k: _refuse(f"gethostbyname {a[:1]!r}")
'''


def _offline_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = tmp_path / "network.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               DEIDKIT_NET_LOG=str(log))
    return env, log


def _script(name: str, *args: str, env: dict[str, str]) -> int:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, str(root / name), *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=300).returncode


def test_the_network_blocker_itself_catches_a_connection(tmp_path):
    env, log = _offline_env(tmp_path)
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 9), timeout=1)"],
                   env=env, capture_output=True, timeout=60)
    assert "192.0.2.1" in log.read_text()


def test_neither_tool_opens_a_network_connection(tmp_path):
    from deidkit.synth import make_export

    env, log = _offline_env(tmp_path)
    source = make_export(tmp_path / "EXPORT", instances_per_series=3).root
    out = tmp_path / "OUT"
    assert _script("deid_tool.py", str(source), "--out", str(out), "--yes", "--key", str(tmp_path / "k"),
                   "--workers", "2", env=env) == 1
    assert len(list(out.rglob("*.dcm"))) > 16  # enough files for the worker pool to be used
    assert _script("deid_tool.py", "--verify", str(out), env=env) in (0, 1)
    assert _script("rename_folders.py", str(out), "--yes", env=env) in (0, 1)
    loaded = (tmp_path / "network.log.loaded").read_text().split()
    assert len(loaded) >= 3  # the blocker was in place in every run
    assert not log.exists(), log.read_text()
