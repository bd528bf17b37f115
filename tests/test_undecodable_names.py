"""File and folder names that are not UTF-8 (Linux: bytes written in another encoding, which
Python reads as lone surrogates): deid_tool runs, resumes and applies a person's decision for
them; --verify and rename_folders name them as \\xNN in one clear line; nothing crashes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deidkit import verify
from deidkit.cli import rename_folders as cli_rename
from deidkit.review_decisions import DECISIONS_NAME
from deidkit.synth import make_export
from helpers import journal_sources, run_deid_program

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.platform == "win32" or sys.getfilesystemencoding() != "utf-8",
                                reason="names that are not UTF-8 exist on POSIX file systems")


def undecodable_export(base: Path) -> Path:
    """make_export in a folder whose own name is not UTF-8, with the ultrasound image (burned-in
    text risk, waits for a person) moved to b'\\xc4US\\xff/M\\xfcller\\xff.dcm' and a CT image
    to b'Pati\\xe9nt\\xff/x\\xfe.dcm'."""
    root = base / os.fsdecode(b"EXPORT \xe9")
    make_export(root, instances_per_series=4, image_size=32, include_problems=False)
    broot = os.fsencode(root)
    patient = min(p for p in os.listdir(broot) if b"DOE" in p)
    os.rename(broot + b"/" + patient + b"/US", broot + b"/" + patient + b"/\xc4US\xff")
    os.rename(broot + b"/" + patient + b"/\xc4US\xff/US0001", broot + b"/" + patient + b"/\xc4US\xff/M\xfcller\xff.dcm")
    ct = next(Path(d) / f for d, _, files in os.walk(root) for f in files if "CT" in d and "PR" not in d)
    os.mkdir(broot + b"/Pati\xe9nt\xff")
    os.rename(os.fsencode(ct), broot + b"/Pati\xe9nt\xff/x\xfe.dcm")
    return root


def run_tool(source: Path, out: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    return run_deid_program(source, out, out.parent / "site.key", kill)


def test_a_run_with_names_that_are_not_utf8_finishes_resumes_and_applies_decisions(tmp_path):
    source = undecodable_export(tmp_path)
    out, hospital = tmp_path / "OUT", tmp_path / "OUT_HOSPITAL_ONLY"
    killed = run_tool(source, out, kill="20")  # killed after 20 results: the rest is resumed
    assert killed.returncode != 0 and b"Traceback" not in killed.stderr
    before = journal_sources(hospital)
    done = run_tool(source, out)
    assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()  # the US image waits
    assert b"Traceback" not in done.stdout + done.stderr
    sources = journal_sources(hospital)
    assert len(sources) == len(set(sources)), "a file journaled before the kill was done again"
    assert sources[:len(before)] == before
    odd = sorted(s.split("/", 1)[1] if s.startswith("DOE") else s for s in sources if "\udcff" in s)
    assert odd == [os.fsdecode(b"Pati\xe9nt\xff/x\xfe.dcm"), os.fsdecode(b"\xc4US\xff/M\xfcller\xff.dcm")]
    held = (hospital / "held_back.csv").read_text(encoding="utf-8-sig")
    assert "\\xc4US\\xff/M\\xfcller\\xff.dcm" in held  # the bytes, readable, one way everywhere
    # a person approves the waiting image by its exact name: the next run sends it
    path = hospital / DECISIONS_NAME
    text = path.read_bytes()
    assert b"\xc4US\xff/M\xfcller\xff.dcm" in text  # the name's own bytes, read back exactly
    lines = text.split(b"\n")
    # (its 64 x 64 frame is mostly text: the text finder cannot judge it and proposes no box; the
    # person blanks the whole frame)
    lines = [ln.replace(b",,,", b',approve,"0:0,0,64,64",', 1) if b"M\xfcller" in ln else ln for ln in lines]
    path.write_bytes(b"\n".join(lines))
    again = run_tool(source, out)
    assert again.returncode == 1 and b"Traceback" not in again.stdout + again.stderr  # documents stay held
    with (hospital / "held_back.csv").open(encoding="utf-8-sig", newline="") as fp:
        rows = {r["original_file"]: r for r in csv.DictReader(fp)}
    (row,) = [r for k, r in rows.items() if k.endswith("M\\xfcller\\xff.dcm")]
    assert row["status"] == "written" and row["reason"].startswith("approved by a person")
    assert verify.main(["--verify", str(out), "--findings", str(tmp_path / "f.csv"),
                        "--report", str(tmp_path / "r.html")]) == 0


def test_verify_names_a_name_that_is_not_utf8(tmp_path):
    source = undecodable_export(tmp_path)
    out = tmp_path / "OUT"
    run_tool(source, out)
    (out / os.fsdecode(b"notes \xe9\xff.txt")).write_bytes(b"x")
    findings = tmp_path / "f.csv"
    code = verify.main(["--verify", str(out), "--findings", str(findings), "--report", str(tmp_path / "r.html")])
    assert code != 0
    text = findings.read_text(encoding="utf-8")
    assert "notes \\xe9\\xff.txt" in text
    assert "\\xe9\\xff" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_rename_folders_refuses_such_a_tree_before_changing_anything_and_names_it(tmp_path, capsys):
    source = undecodable_export(tmp_path)
    before = sorted(os.fsencode(Path(d) / f) for d, _, files in os.walk(source) for f in files)
    code = cli_rename.main([str(source), "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "Nothing was renamed" in err and "\\xc4US\\xff" in err
    assert sorted(os.fsencode(Path(d) / f) for d, _, files in os.walk(source) for f in files) == before
