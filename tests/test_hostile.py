"""Hostile and unlucky input (issue 20): nothing lost, nothing hangs, nothing injected.

Each test builds its input with pydicom or raw bytes (made-up patients only) and runs deid_tool
on it, in-process (--workers 1) or as the program (worker processes, kills).
"""
from __future__ import annotations

import csv
import io
import os
import re
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         JPEGBaseline8Bit, RLELossless)

from conftest import find_leaks
from helpers import ct_with_meta, encode, held_back, run_deid, tree
from deidkit import cli_deid, console, dicomio, export, mapping, safe_text
from deidkit.review_page import ReviewEntry, render_review_page

ROOT = Path(__file__).resolve().parents[1]
FAMILY, GIVEN, PATIENT_ID = "QUISTGAARD", "ELVIRA", "PID40404"
SECRETS = {FAMILY, GIVEN, PATIENT_ID}
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def ct(n: int, ts: str = ExplicitVRLittleEndian, *, series: int = 1, instance: int | None = None,
       name: str = f"{FAMILY}^{GIVEN}", patient_id: str = PATIENT_ID, sex: str = "F", birth: str = "19700101",
       pixel_seed: int | None = None) -> Dataset:
    ds = ct_with_meta(f"1.2.826.0.1.3680043.9.4040.{series}.{n}", "1.2.826.0.1.3680043.9.4040",
                      f"1.2.826.0.1.3680043.9.4040.{series}", ts)
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = name, patient_id, sex, birth
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer = "ACME"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240115", "101500", "1", ""
    ds.SeriesNumber, ds.InstanceNumber = series, n if instance is None else instance
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    dtype = ">u2" if ts == ExplicitVRBigEndian else "<u2"
    seed = n if pixel_seed is None else pixel_seed
    ds.PixelData = (np.arange(256, dtype=np.uint16) * (seed + 1) % 4096).astype(dtype).tobytes()
    return ds


run, held = run_deid, held_back


def outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def export_of(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# ---- 1. nothing of an earlier output is lost without being asked ------------------------------------

def test_an_earlier_output_is_replaced_only_when_told_and_only_the_kits_files(tmp_path, monkeypatch):
    source = export_of(tmp_path / "EXPORT", {f"A/IM{i}.dcm": encode(ct(i)) for i in range(1, 5)})
    out = tmp_path / "OUT"
    assert run(source, out, tmp_path / "k1") == 0
    first = tree(out)
    # another key: the earlier output is not this job's; a script that does not say --replace changes nothing
    assert run(source, out, tmp_path / "k2") == 2
    assert tree(out) == first
    # a person at the terminal who answers "n" to the replace question: nothing changes either
    monkeypatch.setattr(console, "is_interactive", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert cli_deid.main([str(source), "--out", str(out), "--key", str(tmp_path / "k2"), "--workers", "1"]) == 2
    assert tree(out) == first
    monkeypatch.setattr(console, "is_interactive", lambda: False)
    # a person's own notes in the output folder are never deleted: the replace stops and says so
    (out / "my notes.txt").write_text("call Dr. X", encoding="utf-8")
    (out / "SUBJ_MINE").mkdir()
    (out / "SUBJ_MINE" / "keep.dcm").write_bytes(b"mine")
    assert run(source, out, tmp_path / "k2", "--replace") == 2
    assert (out / "my notes.txt").read_text(encoding="utf-8") == "call Dr. X"
    assert (out / "SUBJ_MINE" / "keep.dcm").read_bytes() == b"mine"
    (out / "my notes.txt").unlink()
    (out / "SUBJ_MINE" / "keep.dcm").unlink()
    (out / "SUBJ_MINE").rmdir()
    # told: replaced, the same as a fresh run with that key
    assert run(source, out, tmp_path / "k2", "--replace") == 0
    fresh = tmp_path / "FRESH"
    assert run(source, fresh, tmp_path / "k2") == 0
    assert tree(out) == tree(fresh) != first


def test_the_question_comes_before_anything_is_removed(tmp_path, monkeypatch):
    source = export_of(tmp_path / "EXPORT", {"IM1.dcm": encode(ct(1))})
    out = tmp_path / "OUT"
    assert run(source, out, tmp_path / "k1") == 0
    first = tree(out)
    monkeypatch.setattr(console, "is_interactive", lambda: True)
    answers = iter(["y", "n"])  # yes, replace ... but then "Start?" no
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert cli_deid.main([str(source), "--out", str(out), "--key", str(tmp_path / "k2"), "--workers", "1"]) == 2
    assert tree(out) == first


# ---- 2. names never collide; duplicates settled ----------------------------------------------------

def test_images_whose_short_codes_clash_all_go_out_with_distinct_names_in_any_order(tmp_path, monkeypatch):
    # every code the same: every image of the series (all Instance Number 1) clashes with every other
    monkeypatch.setattr(mapping.Mapper, "short_code", lambda self, value, length=8: "ABCD0123"[:length])
    files = {f"S/IM{i}.dcm": encode(ct(i, instance=1)) for i in range(1, 7)}
    a = export_of(tmp_path / "A" / "EXPORT", files)
    b = export_of(tmp_path / "B" / "EXPORT", {f"S/IM{7 - int(k[4:-4])}.dcm": v for k, v in files.items()})  # reverse order
    assert run(a, tmp_path / "A" / "OUT", tmp_path / "k") == 0
    assert run(b, tmp_path / "B" / "OUT", tmp_path / "k") == 0
    names = [p.name for p in outputs(tmp_path / "A" / "OUT")]
    assert len(names) == len(set(names)) == 6
    sops = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in outputs(tmp_path / "A" / "OUT")}
    assert len(sops) == 6
    assert tree(tmp_path / "A" / "OUT") == tree(tmp_path / "B" / "OUT")  # the same names whatever the order


def test_identical_duplicate_is_dropped_quietly_and_a_conflicting_one_is_held(tmp_path):
    same = encode(ct(1))
    source = export_of(tmp_path / "EXPORT", {"A/IM1.dcm": same, "B/IM1_copy.dcm": same, "A/IM2.dcm": encode(ct(2))})
    out = tmp_path / "OUT"
    assert run(source, out, tmp_path / "k") == 0  # a plain copy needs nobody
    assert len(outputs(out)) == 2
    assert held(out)["B/IM1_copy.dcm"]["status"] == "duplicate"
    # the same SOP Instance UID with other pixels (and another instance number: another name)
    other = export_of(tmp_path / "EXPORT2", {"A/IM1.dcm": same, "B/IM9.dcm": encode(ct(1, instance=9, pixel_seed=77))})
    out2 = tmp_path / "OUT2"
    assert run(other, out2, tmp_path / "k") == 1
    rows = held(out2)
    assert rows["B/IM9.dcm"]["status"] == "held" and "same SOP Instance UID" in rows["B/IM9.dcm"]["reason"]
    assert len(outputs(out2)) == 1


# ---- 3. two people under one Patient ID -------------------------------------------------------------

def test_two_patients_sharing_a_patient_id_are_held_not_merged(tmp_path):
    files = {"P1/IM1.dcm": encode(ct(1)), "P1/IM2.dcm": encode(ct(2)),
             "P2/IM1.dcm": encode(ct(1, series=2, name="NORDLUND^TOVE", sex="M", birth="19881224")),
             "P3/IM1.dcm": encode(ct(1, series=3, name="OTHER^PERSON", sex="F", birth="19500505", patient_id="X9"))}
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", files), out, tmp_path / "k") == 1
    rows = held(out)
    for rel in ("P1/IM1.dcm", "P1/IM2.dcm", "P2/IM1.dcm"):
        assert rows[rel]["status"] == "held" and "share one Patient ID" in rows[rel]["reason"]
    assert len(outputs(out)) == 1  # only the unrelated patient goes out
    assert "share one Patient ID" in (out / "deid_summary.txt").read_text(encoding="utf-8")


def test_one_patient_whose_records_differ_in_one_detail_stays_one_subject(tmp_path):
    files = {"IM1.dcm": encode(ct(1)), "IM2.dcm": encode(ct(2, birth="19700110")),  # a corrected birth date
             "IM3.dcm": encode(ct(3, name=f"{FAMILY}-BERG^{GIVEN}"))}  # a married name
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", files), out, tmp_path / "k") == 0
    assert len({p.parts[-4] for p in outputs(out)}) == 1 and len(outputs(out)) == 3


# ---- 4. the export is never written into ------------------------------------------------------------

def test_export_named_like_the_hospital_folder_is_refused(tmp_path):
    source = export_of(tmp_path / "OUT_HOSPITAL_ONLY", {"IM1.dcm": encode(ct(1))})
    before = tree(source)
    assert run(source, tmp_path / "OUT", tmp_path / "k") == 2
    assert tree(source) == before and not (tmp_path / "OUT").exists()


def test_default_output_beside_an_export_named_like_its_hospital_folder_takes_the_next_name(tmp_path):
    source = export_of(tmp_path / "DEID_OUTPUT_HOSPITAL_ONLY", {"IM1.dcm": encode(ct(1))})
    before = tree(source)
    assert cli_deid.main([str(source), "--yes", "--key", str(tmp_path / "k"), "--workers", "1"]) == 0
    assert tree(source) == before
    assert len(outputs(tmp_path / "DEID_OUTPUT_2")) == 1 and (tmp_path / "DEID_OUTPUT_2_HOSPITAL_ONLY").is_dir()


def test_hospital_folder_reaching_into_the_export_by_a_link_is_refused(tmp_path):
    source = export_of(tmp_path / "EXPORT", {"IM1.dcm": encode(ct(1))})
    (source / "inner").mkdir()
    (tmp_path / "OUT_HOSPITAL_ONLY").symlink_to(source / "inner", target_is_directory=True)
    before = tree(source)
    assert run(source, tmp_path / "OUT", tmp_path / "k") == 2
    assert tree(source) == before
    with pytest.raises(ValueError):  # the library refuses it too, whoever calls it
        export.run_export(export.RunConfig(source=source, dest=tmp_path / "OUT", hospital_dir=tmp_path / "OUT_HOSPITAL_ONLY",
                                           guidelines=__import__("deidkit.guidelines").guidelines.load(), key=b"k" * 32))


# ---- 5. a file that changes while it is read --------------------------------------------------------

@pytest.mark.parametrize("same_size_and_time", [False, True])
def test_file_rewritten_between_judging_and_copying_is_held(tmp_path, monkeypatch, same_size_and_time):
    first = encode(ct(1, name="ANONYMOUSX"))
    second = encode(ct(1, name=FAMILY))  # the same length: rewritten in place, with the old time if asked
    assert len(second) == len(first)
    source = export_of(tmp_path / "EXPORT", {"IM1.dcm": first, "IM2.dcm": encode(ct(2))})
    victim = source / "IM1.dcm"
    real = dicomio.read_header

    def read_then_rewrite(path):
        header = real(path)
        if path == victim:
            st = victim.stat()
            victim.write_bytes(second if same_size_and_time else second + b"\0" * 64)
            if same_size_and_time:
                os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
        return header

    monkeypatch.setattr(dicomio, "read_header", read_then_rewrite)
    out = tmp_path / "OUT"
    assert run(source, out, tmp_path / "k") == 1
    row = held(out)["IM1.dcm"]
    assert row["status"] == "held" and "changed while it was read" in row["reason"]
    assert len(outputs(out)) == 1 and not find_leaks(out, SECRETS)


# ---- 6. damaged length fields -----------------------------------------------------------------------

def _set_length(data: bytes, tag: int, length: int) -> bytes:
    pos = data.find(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
    assert pos > 0
    out = bytearray(data)
    vr = data[pos + 4:pos + 6]
    if vr in (b"OB", b"OW", b"UN", b"UT", b"UC", b"SQ"):
        out[pos + 8:pos + 12] = struct.pack("<I", length)
    else:
        out[pos + 6:pos + 8] = struct.pack("<H", length)
    return bytes(out)


def _swallowing(tag: int, extra: int) -> bytes:
    """A kept element before Patient's Name whose length now runs over the patient elements."""
    ds = ct(1)
    ds.ImageComments = "ok"
    data = encode(ds)
    pos = data.find(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
    target = data.find(struct.pack("<HH", 0x0010, 0x0040), 132)  # through Patient's Sex
    old = struct.unpack("<H", data[pos + 6:pos + 8])[0]
    return _set_length(data, tag, target - (pos + 8) + extra if extra >= 0 else old)


@pytest.mark.parametrize("tag", [0x00080070, 0x00080060, 0x00200010, 0x00080008])
@pytest.mark.parametrize("extra", [0, 8, 10])
def test_kept_value_swallowing_the_patient_elements_is_held(tmp_path, tag, extra):
    if tag >> 16 > 0x0010:  # after the patient group: swallow what follows it instead
        ds = ct(1)
        ds.ImageComments = f"{FAMILY} {PATIENT_ID}"
        data = encode(ds)
        pos = data.find(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
        data = _set_length(data, tag, data.find(b"\x20\x00\x00\x40", 132) - (pos + 8) + 24 + extra)
    else:
        data = _swallowing(tag, extra)
    out = tmp_path / "OUT"
    run(export_of(tmp_path / "EXPORT", {"IM1.dcm": data, "IM2.dcm": encode(ct(2))}), out, tmp_path / "k")
    assert held(out)["IM1.dcm"]["status"] in ("held", "failed")
    assert not find_leaks(out, SECRETS)
    assert not [r for r in held(out).values() if EXCEPTION_NAME.search(r["reason"])]


def test_value_far_longer_than_its_vr_allows_is_held(tmp_path):
    ds = ct(1)
    ds.add_new(0x00081090, "LO", "MODEL " * 40)  # 240 characters where 64 are allowed
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": encode(ds)}), out, tmp_path / "k") == 1
    assert "longer than its type allows" in held(out)["IM1.dcm"]["reason"]


def test_binary_value_holding_element_headers_is_held():
    inner = encode(ct(1))[132:]
    assert dicomio.value_problem("OB", b"\x01\x02" + inner[200:400], implicit=False)
    assert dicomio.value_problem("UN", b"\0" * 4 + struct.pack("<HHI", 0x10, 0x10, 6) + b"A^B^C ", implicit=True)
    assert dicomio.value_problem("LO", b"ACME\x10\x00\x10\x00PN\x06\x00A^B^C ", implicit=False)
    assert dicomio.value_problem("OB", bytes(range(256)) * 4, implicit=False) is None  # plain binary is fine
    assert dicomio.value_problem("DS", b"0.48828125000000001", implicit=False) is None  # a device's overrun


# ---- 8. decompression bombs -------------------------------------------------------------------------

def _us(ts: str, pixel: bytes, rows: int, cols: int, frames: int) -> bytes:
    ds = ct(1, ts)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US_IMAGE
    ds.Modality = "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = pixel
    ds["PixelData"].VR = "OB"
    return encode(ds)


def _jpeg_claiming(rows: int, cols: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, rows, cols, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 900 + b"\xff\xd9"


@pytest.mark.parametrize("kind", ["rle_frames", "jpeg_declared", "jpeg_codec_only"])
def test_decompression_bomb_is_held_with_one_line_before_decoding(tmp_path, kind):
    if kind == "rle_frames":  # 838 bytes declaring 65535 x 65535 x 1,000,000 frames
        rle = struct.pack("<16I", 1, 64, *([0] * 14)) + b"\xff\x00" * 8
        data = _us(RLELossless, encapsulate([rle]), 65535, 65535, 1_000_000)
    elif kind == "jpeg_declared":
        data = _us(JPEGBaseline8Bit, encapsulate([_jpeg_claiming(16384, 16384)]), 16384, 16384, 1)
    else:  # the DICOM header says 64 x 64; the JPEG inside says 65535 x 65535
        data = _us(JPEGBaseline8Bit, encapsulate([_jpeg_claiming(65535, 65535)]), 64, 64, 1)
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"US1.dcm": data}), out, tmp_path / "k") == 1
    row = held(out)["US1.dcm"]
    assert "\n" not in row["reason"] and not EXCEPTION_NAME.search(row["reason"])
    if kind == "rle_frames":  # the RLE segments cannot make the declared frame: refused while located
        assert row["status"] in ("held", "failed")
    else:
        assert row["status"] == "held" and "held, not decoded" in row["reason"]


def test_deflate_bomb_is_stopped_before_it_is_unpacked(tmp_path, monkeypatch):
    ds = ct(1, DeflatedExplicitVRLittleEndian)
    ds.add_new(0x00091010, "LO", "ACME 1.0")
    ds.add_new(0x00091011, "OB", b"\0" * (3 << 20))  # 3 MB of zeros: a few kB deflated
    data = encode(ds)
    assert len(data) < 100_000
    monkeypatch.setattr(dicomio, "DECODE_TOTAL_LIMIT", 1 << 20)
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": data}), out, tmp_path / "k") == 1
    assert "unpacks to more than 1 MB" in held(out)["IM1.dcm"]["reason"]


# ---- 9. a dead worker never hangs the run -----------------------------------------------------------

def _tool(source: Path, out: Path, key: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEIDKIT_TEST_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(source), "--out", str(out), "--yes",
                           "--key", str(key), "--workers", "2"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=600, start_new_session=True)


@pytest.fixture(scope="module")
def big_export(tmp_path_factory):
    """2,000 small files: 4 patients x 5 series x 100 instances."""
    root = tmp_path_factory.mktemp("big") / "EXPORT"
    for p in range(4):
        for s in range(5):
            folder = root / f"P{p}" / f"S{s}"
            folder.mkdir(parents=True)
            # one encoding per series; each file's SOP Instance UID and Instance Number patched in
            ds = ct(88888, series=10 * p + s + 1, instance=99999, pixel_seed=s, name=f"FAM{p}^GIV{p}", patient_id=f"ID{p}",
                    birth=f"19{60 + p}0101")
            ds.Rows = ds.Columns = 4
            ds.PixelData = ds.PixelData[:32]
            template = encode(ds)
            assert template.count(b"88888") == 2 and template.count(b"99999") == 1
            for i in range(100):
                data = template.replace(b"88888", f"{i + 1:05d}".encode()).replace(b"99999", f"{i + 1:05d}".encode())
                (folder / f"IM{i:03d}.dcm").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def big_reference(big_export, tmp_path_factory):
    base = tmp_path_factory.mktemp("bigref")
    proc = _tool(big_export, base / "OUT", base / "k")
    assert proc.returncode == 0, proc.stderr.decode()
    return base


def test_worker_killed_at_24_points_the_run_finishes_and_equals_an_uninterrupted_one(big_export, big_reference,
                                                                                     tmp_path):
    points = [f"F{n:06d}" + ("/written" if n % 2 else "") for n in range(37, 2000, 83)]
    assert len(points) >= 20
    (tmp_path / "marks").mkdir()
    proc = _tool(big_export, tmp_path / "OUT", big_reference / "k",
                 {export.WORKER_KILL_HOOK: f"{tmp_path / 'marks'}:{','.join(points)}"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(list((tmp_path / "marks").iterdir())) == len(points)  # every kill happened
    assert tree(tmp_path / "OUT") == tree(big_reference / "OUT")
    assert not list((tmp_path / "OUT").rglob("*.part"))


def test_worker_and_whole_run_killed_then_rerun_equals_an_uninterrupted_one(big_export, big_reference, tmp_path):
    (tmp_path / "marks").mkdir()
    env = {export.WORKER_KILL_HOOK: f"{tmp_path / 'marks'}:F000100,F000300/written,F000700",
           export.KILL_HOOK: "900"}
    assert _tool(big_export, tmp_path / "OUT", big_reference / "k", env).returncode == -signal.SIGKILL
    proc = _tool(big_export, tmp_path / "OUT", big_reference / "k")
    assert proc.returncode == 0
    assert tree(tmp_path / "OUT") == tree(big_reference / "OUT")


def test_a_file_that_kills_every_worker_is_listed_and_retried_next_time(tmp_path):
    source = export_of(tmp_path / "EXPORT", {f"IM{i:02d}.dcm": encode(ct(i)) for i in range(1, 25)})
    (tmp_path / "marks").mkdir()
    proc = _tool(source, tmp_path / "OUT", tmp_path / "k",
                 {export.WORKER_KILL_HOOK: f"{tmp_path / 'marks'}:F000005/always"})
    assert proc.returncode == 1
    row = held(tmp_path / "OUT")["IM05.dcm"]
    assert row["status"] == "failed" and "stopped or got stuck" in row["reason"]
    assert len(outputs(tmp_path / "OUT")) == 23
    assert _tool(source, tmp_path / "OUT", tmp_path / "k").returncode == 0  # not journaled: done this time
    assert len(outputs(tmp_path / "OUT")) == 24


def test_a_worker_stuck_on_a_file_is_ended_and_the_run_finishes(tmp_path):
    source = export_of(tmp_path / "EXPORT", {f"IM{i:02d}.dcm": encode(ct(i)) for i in range(1, 25)})
    (tmp_path / "marks").mkdir()
    proc = _tool(source, tmp_path / "OUT", tmp_path / "k",
                 {export.WORKER_KILL_HOOK: f"{tmp_path / 'marks'}:F000007/hang", "DEIDKIT_WORKER_SILENCE_LIMIT_S": "2"})
    assert proc.returncode == 1
    row = held(tmp_path / "OUT")["IM07.dcm"]
    assert row["status"] == "failed" and "stopped or got stuck" in row["reason"]
    assert len(outputs(tmp_path / "OUT")) == 23


# ---- 11. a path longer than the system allows -------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX path limits")
def test_path_longer_than_the_system_allows_is_listed_and_the_rest_done(tmp_path):
    source = export_of(tmp_path / "EXPORT", {"IM1.dcm": encode(ct(1))})
    here = os.getcwd()
    try:
        os.chdir(source)
        for _ in range(20):  # 20 x 250 characters: beyond PATH_MAX (4096)
            os.mkdir("D" * 250)
            os.chdir("D" * 250)
        Path("IM2.dcm").write_bytes(encode(ct(2)))
    finally:
        os.chdir(here)
    out = tmp_path / "OUT"
    assert run(source, out, tmp_path / "k") == 1
    rows = [r for r in held(out).values() if "longer than the system allows" in r["reason"]]
    assert len(rows) == 1 and "free space" not in rows[0]["reason"]
    assert len(outputs(out)) == 1


# ---- 13. odd but readable files ---------------------------------------------------------------------

def test_big_endian_without_file_meta_is_read_and_written(tmp_path):
    ds = ct(1, ExplicitVRBigEndian)
    del ds.file_meta
    data = encode(ds, implicit_vr=False, little_endian=False)
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": data}), out, tmp_path / "k") == 0
    written = pydicom.dcmread(outputs(out)[0])
    assert written.Modality == "CT" and written.PatientName != f"{FAMILY}^{GIVEN}"


@pytest.mark.parametrize("tag, vr, value", [(0x00000000, "UL", 4), (0x00000100, "US", 1),
                                            (0x00020010, "UI", "1.2.840.10008.1.2.1"), (0x00010001, "LO", "x")])
def test_stray_command_or_meta_element_is_dropped_not_held(tmp_path, tag, vr, value):
    data = encode(ct(1))
    meta_end = 132 + 12 + struct.unpack("<I", data[140:144])[0]
    raw = struct.pack("<I", value) if vr == "UL" else struct.pack("<H", value) if vr == "US" else value.encode()
    raw += b"\0" if len(raw) % 2 else b""
    element = struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(raw)) + raw
    data = data[:meta_end] + element + data[meta_end:]  # in its place: before group 0008
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": data}), out, tmp_path / "k") == 0
    written = pydicom.dcmread(outputs(out)[0])
    assert all(t.group >= 8 for t in written.keys())


def test_no_reason_anywhere_names_a_python_exception(tmp_path):
    files = {"bad1.dcm": b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"1" * 30,
             "bad2.dcm": encode(ct(1))[:300], "bad3.dcm": encode(ct(2))[:-7],
             "bad4.dcm": b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + b"\x08\x00\x16\x00UI\xff\x7f" + b"1."}
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", files), out, tmp_path / "k") == 1
    reasons = [r["reason"] for r in held(out).values()]
    assert len(reasons) == 4 and not [r for r in reasons if EXCEPTION_NAME.search(r)]


# ---- 14. spawned workers keep pydicom's warnings off the screen -------------------------------------

def test_spawned_workers_print_no_library_warnings(tmp_path):
    files = {}
    for i in range(1, 21):
        ds = ct(i)
        ds.StationName = "S" * 20  # longer than SH allows: pydicom warns about it when it reads it
        files[f"IM{i:02d}.dcm"] = encode(ds)
    source = export_of(tmp_path / "EXPORT", files)
    proc = _tool(source, tmp_path / "OUT", tmp_path / "k", {"DEIDKIT_START_METHOD": "spawn"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    text = (proc.stdout + proc.stderr).decode()
    assert "Warning" not in text and ".py:" not in text


# ---- 15. nothing injected into what people open ------------------------------------------------------

def test_csv_cell_and_console_text_neutralise_formulas_and_control_characters():
    for bad in ('=HYPERLINK("http://x")', "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "\tx", "\r=1"):
        cell = safe_text.csv_cell(bad)
        assert cell.startswith("'") and not re.search(r"[\x00-\x1f]", cell)
    assert safe_text.csv_cell("SUBJ_ABC") == "SUBJ_ABC" and safe_text.csv_cell(1234) == "1234"
    text = safe_text.console_text("a\x1b[2Jb\x1b]0;owned\x07c\nOK: Finished\u202e")
    assert "\x1b" not in text and "\n" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text
    assert safe_text.console_text("name\udcff") == "name\\xff"  # the byte of a name that is not UTF-8
    assert safe_text.console_text("name\ud800") == "name?"
    assert "<script>" not in safe_text.html_text("<script>alert(1)</script>")
    escaped = safe_text.html_text('"><img src=x onerror=alert(1)>')
    assert "<img" not in escaped and '"' not in escaped and escaped.startswith("&quot;&gt;")


def test_every_csv_and_console_line_of_a_hostile_export_is_neutralised(tmp_path, capsys):
    hostile_value = "=HYPERLINK(\"http://evil\")\x1b[2J\x1b]0;owned\x07"
    files = {"=HYPERLINK(\"x\").dcm": b"not dicom at all, but named like a formula",
             "@SUM(A1)/\x1b[2Jbroken.dcm": encode(ct(1))[:200],
             "+cmd|calc.dcm": encode(ct(2))}
    ds = ct(3)
    ds.Modality = "@SUM(A1)"
    ds.Manufacturer = hostile_value[:40]
    files["ok.dcm"] = encode(ds)
    source = export_of(tmp_path / "EXPORT", files)
    out = tmp_path / "OUT"
    run(source, out, tmp_path / "k")
    hospital = out.with_name(out.name + "_HOSPITAL_ONLY")
    for path in (out / "deid_manifest.csv", hospital / "held_back.csv"):
        text = path.read_text(encoding="utf-8")
        assert "\x1b" not in text and "\x07" not in text
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                assert not cell.startswith(safe_text.FORMULA_LEAD), (path.name, cell)
    for path in (out / "deid_summary.txt", hospital / "run_log.txt"):
        assert "\x1b" not in path.read_text(encoding="utf-8")
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err and "\x07" not in printed.out + printed.err


def test_review_page_escapes_hostile_text():
    page = render_review_page([ReviewEntry("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "hold",
                                           None)])
    assert "<script>alert" not in page and "<img src=x onerror" not in page


# ---- 16. the site key is never readable by others ---------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_site_key_is_private_from_its_first_byte(tmp_path, monkeypatch):
    old = os.umask(0)
    try:
        path = tmp_path / "keys" / "site_key.txt"
        path.parent.mkdir()
        leftover = path.with_name(path.name + ".tmp")
        leftover.write_text("half a key from a killed run")
        os.chmod(leftover, 0o644)
        seen = []
        real_replace = os.replace

        def replace(a, b):  # the moment before the rename: the temporary file is already private
            seen.append(stat.S_IMODE(os.stat(a).st_mode))
            return real_replace(a, b)

        monkeypatch.setattr(os, "replace", replace)
        key, created = mapping.load_or_create_key(path)
        assert created and len(key) == 32 and seen == [0o600]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert mapping.load_or_create_key(path) == (key, False)
    finally:
        os.umask(old)


def test_value_that_cannot_be_written_back_fails_with_a_neutral_line(tmp_path):
    ds = ct(1)
    ds.SpecificCharacterSet = ["ISO 2022 IR 13", "ISO 2022 IR 87"]
    ds.SliceThickness = "1.0"
    data = encode(ds)
    pos = data.find(b"\x18\x00\x50\x00DS")
    data = data[:pos + 8] + b"1\xff" + data[pos + 10:]  # a damaged byte in a number, same length
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": data, "IM2.dcm": encode(ct(2))}), out, tmp_path / "k") == 1
    row = held(out)["IM1.dcm"]
    assert row["status"] == "failed" and "program met something" not in row["reason"]
    assert not EXCEPTION_NAME.search(row["reason"]) and len(outputs(out)) == 1


@pytest.mark.parametrize("vr", [b"ZZ", b"\x4f\xe4", b"LO"])
def test_pixel_data_element_with_a_damaged_vr_is_not_written(tmp_path, vr):
    data = bytearray(encode(ct(1)))
    pos = data.rfind(b"\xe0\x7f\x10\x00OW")
    data[pos + 4:pos + 6] = vr
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {"IM1.dcm": bytes(data)}), out, tmp_path / "k") == 1
    assert held(out)["IM1.dcm"]["status"] == "failed" and not outputs(out)


def test_second_names_are_the_contracts_image_names(tmp_path, monkeypatch):
    from deidkit import contract

    monkeypatch.setattr(mapping.Mapper, "short_code", lambda self, value, length=8: "ABCD0123"[:length])
    out = tmp_path / "OUT"
    assert run(export_of(tmp_path / "EXPORT", {f"IM{i}.dcm": encode(ct(i, instance=1)) for i in range(1, 4)}),
               out, tmp_path / "k") == 0
    names = [p.name for p in outputs(out)]
    assert len(names) == 3 and all(contract.IMAGE_FILE_RE.fullmatch(n) for n in names)


# ---- damage that hides the name from the sweep (found by benchmarks/fuzz_export.py) ----------------

def _export_named(tmp_path: Path, damaged_name: str) -> None:
    """One CT whose Patient's Name is damaged_name and whose comment spells the name right."""
    ds = ct(1, name=damaged_name)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageComments = f"Patient {FAMILY} {GIVEN} ID {PATIENT_ID}"
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(encode(ds))
    run_deid(tmp_path / "SRC", tmp_path / "OUT", tmp_path / "key.txt")


@pytest.mark.parametrize("damaged_name", [
    f"{FAMILY}M{GIVEN}",              # the caret became a letter: one run of letters
    f"{FAMILY}^{GIVEN[:4]}\xa8\xba!_",  # the end of the given name damaged
    f"{FAMILY}^{GIVEN[0]}4{GIVEN[2:]}",  # a letter became a digit
    f"{FAMILY[:3]}X{FAMILY[4:]}^{GIVEN}",  # a letter changed
    # the end of a part overwritten with printable junk (fuzz_export seed 79: "OTTOLw;RS", "OTTOLðSÙ-")
    f"{FAMILY}^{GIVEN[:5]}wq;RS",       # letters then a symbol: junk letters glued to the stem
    f"{FAMILY}^{GIVEN[:5]}\xf0S\xd9-",   # a lower-case letter after upper-case ones, then accents
    f"{FAMILY[:6]}q#x^{GIVEN}",         # the family name, junk in both cases
    f"{FAMILY[:5]}~{FAMILY[6:]}^{GIVEN}",  # a symbol in the middle of a part
    f"{FAMILY.title()[:6]}Qz@^{GIVEN.title()}",  # Title case broken by an upper-case letter
    f"{FAMILY}^{GIVEN[:4]}%s+" % "k",  # four letters left of the given name
])
def test_a_damaged_patient_name_still_finds_the_name_written_elsewhere(tmp_path, damaged_name):
    _export_named(tmp_path, damaged_name)
    assert list((tmp_path / "OUT").rglob("*.dcm")), "the file should go out, without the name"
    assert find_leaks(tmp_path / "OUT", {FAMILY, GIVEN, PATIENT_ID}) == []


def test_a_number_whose_length_swallows_a_name_in_a_big_endian_file_is_not_written(tmp_path):
    ds = ct(1, ExplicitVRBigEndian)
    block = ds.private_block(0x0029, "ACME PHI STORE 1.0", create=True)
    block.add_new(0x10, "LO", f"{FAMILY}^{GIVEN}")
    data = bytearray(encode(ds))
    # Bits Stored (0028,0101) US, big endian: its 2-byte length made to cover everything up to the
    # private block's value, so the name sits inside the number's value
    at = data.index(b"\x00\x28\x01\x01US")
    private = data.index(b"\x00\x29\x10\x10LO")
    end = private + 8 + struct.unpack(">H", data[private + 6:private + 8])[0]
    data[at + 6:at + 8] = struct.pack(">H", end - (at + 8))
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(bytes(data))
    run_deid(tmp_path / "SRC", tmp_path / "OUT", tmp_path / "key.txt")
    assert find_leaks(tmp_path / "OUT", {FAMILY, GIVEN}) == []


@pytest.mark.parametrize("damaged_name", [
    f"{FAMILY}^{GIVEN[:2]}#${GIVEN[4:]}",    # symbols after two letters: no stem of the name is left
    f"{FAMILY[0]};{FAMILY[2:]}^{GIVEN}",     # the family name, damaged at its second letter
    f"{FAMILY}^{GIVEN[:3]}\xa7{GIVEN[4:]}",   # a section sign after three letters
    f"{FAMILY}^{GIVEN[0]}\xbd{GIVEN[2:]}",    # fuzz_export seed 84: "O½TOLINE" (½ folds to 1⁄2)
])
def test_a_patient_name_damaged_before_its_fourth_letter_by_a_symbol_holds_the_file(tmp_path, damaged_name):
    """Learning cannot recover such a name (fewer than 4 letters before the damage): held."""
    _export_named(tmp_path, damaged_name)
    assert not list((tmp_path / "OUT").rglob("*.dcm"))
    assert "name holds characters no name has" in next(iter(held_back(tmp_path / "OUT").values()))["reason"]


@pytest.mark.parametrize("real_name", ["O'BRIEN^MARY ANNE", "Smith-Jones^Mary", "ST. JOHN^PIERRE",
                                       "McDONALD^FRANÇOIS", "DeLONG^Hernández", "MacLEOD^BJÖRK",
                                       "O\xb4NEILL^SEAN", "D`ARCY^JO", "DOE, JANE (TWIN A)", "TRAUMA #12",
                                       "*DOE^JOHN^^DR.^JR.", 'JOHN "JACK" SMITH 2',
                                       # names of the public dcm2niix QA data (an underscore for a space)
                                       "stc_test", "d2n_Philips_3T_R571", "PF_PAT_POS_BW_INTERP_test"])
def test_real_names_with_apostrophes_hyphens_accents_and_capitals_go_out(tmp_path, real_name):
    """The damage rules hold nothing a real name has, and take no imaging word for the name."""
    ds = ct(1, name=real_name)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SeriesDescription = "hernia mac ct"  # words starting as a name part does
    ds.ImageComments = f"Patient {real_name.replace('^', ' ')} ID {PATIENT_ID}"
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(encode(ds))
    assert run_deid(tmp_path / "SRC", tmp_path / "OUT", tmp_path / "key.txt") == 0
    (written,) = outputs(tmp_path / "OUT")
    out = pydicom.dcmread(written)
    assert out.SeriesDescription == "hernia mac ct"
    parts = [p for p in re.split(r"[\^ .'\-]+", real_name) if len(p) >= 5]  # MARY is in SUMMARY
    assert find_leaks(tmp_path / "OUT", set(parts) | {PATIENT_ID}) == []


@pytest.mark.parametrize("damaged_name", [f"{FAMILY}^{GIVEN[:5]}\xe0}}\x1b\xdf", f"{FAMILY}^{GIVEN[:5]}X\xe6\xe5\x9a"])
def test_a_patient_name_with_control_characters_holds_the_file_as_damaged(tmp_path, damaged_name):
    _export_named(tmp_path, damaged_name)
    assert not list((tmp_path / "OUT").rglob("*.dcm"))
    assert "name holds characters no name has" in next(iter(held_back(tmp_path / "OUT").values()))["reason"]


@pytest.mark.parametrize("rows", [[16, 16], [16, 0x5A45, 0x4245]])
def test_rows_holding_two_values_is_a_clear_line_not_a_program_error(tmp_path, rows):
    """fuzz_export seed 84: a length field made Rows (US) swallow the next bytes (VM 2 and more);
    the layout table's lookup met a list where a number was expected (a big endian file: read
    whole, so its pixel data is not sized before the lookup)."""
    ds = ct(1, ExplicitVRBigEndian)
    ds.Rows = rows
    (tmp_path / "SRC").mkdir()
    (tmp_path / "SRC" / "a.dcm").write_bytes(encode(ds))
    run_deid(tmp_path / "SRC", tmp_path / "OUT", tmp_path / "key.txt")
    reasons = [row["reason"] for row in held_back(tmp_path / "OUT").values()]
    assert reasons and all(export.UNEXPECTED not in r for r in reasons)
    assert find_leaks(tmp_path / "OUT", SECRETS) == []
