"""Helpers shared by the tests (not fixtures: those are in conftest.py): file builders, runs of
deid_tool in this process or as a program, and readers of what a run wrote."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from deidkit import cli_deid, engine
from deidkit import guidelines as gl
from deidkit.contract import HELD_BACK_NAME, HOSPITAL_SUFFIX, STATE_NAME
from deidkit.export import KILL_HOOK
from deidkit.mapping import Mapper

ROOT = Path(__file__).resolve().parents[1]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


# ---- datasets and files ------------------------------------------------------------------------

def engine_context(guidelines: gl.Guidelines, key: bytes, **options: bool) -> engine.Context:
    """An engine context with the site key `key` and options switched on (True) or off (False)."""
    g = guidelines
    if options:
        enabled = set(g.settings.options)
        for name, on in options.items():
            (enabled.add if on else enabled.discard)(name)
        g = dataclasses.replace(g, settings=dataclasses.replace(g.settings, options=frozenset(enabled)))
    return engine.Context(guidelines=g, mapper=Mapper(key))


def ct_with_meta(sop_instance: str, study: str, series: str, ts: str = ExplicitVRLittleEndian) -> Dataset:
    """A CT Image dataset with its file meta: SOP Class and Instance UIDs, Study and Series
    Instance UIDs, the transfer syntax; the caller adds the rest."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, sop_instance
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    return ds


def encode(ds: Dataset, **kwargs: object) -> bytes:
    """ds as the bytes of a file (a DICOM file with its meta, unless dcmwrite options are given)."""
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=not kwargs, **kwargs)
    return buf.getvalue()


def read_back_as_file(ds: Dataset) -> Dataset:
    """ds written without file meta checks (explicit VR little endian) and read back, so its
    values are what a file gives, as deid_tool sees them."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=False)
    buf.seek(0)
    return dcmread(buf, force=True)


def tree(root: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- running deid_tool ---------------------------------------------------------------------------

def run_deid(source: Path, out: Path, key: Path, *extra: str) -> int:
    """deid_tool in this process, one worker, no questions; its exit status."""
    return cli_deid.main([str(source), "--out", str(out), "--yes", "--key", str(key), "--workers", "1", *extra])


def run_deid_program(source: Path, out: Path, key: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    """deid_tool.py as its own program (two workers, its own process group), with the test hook
    KILL_HOOK set to `kill` (or unset)."""
    env = {k: v for k, v in os.environ.items() if k != KILL_HOOK}
    if kill:
        env[KILL_HOOK] = kill
    return subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(source), "--out", str(out), "--yes",
                           "--key", str(key), "--workers", "2"],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=300, start_new_session=True,
                          check=False)  # its own process group: the kill hits only the run


def hospital_of(out: Path) -> Path:
    """The hospital-side folder of the output folder `out`."""
    return out.with_name(out.name + HOSPITAL_SUFFIX)


def held_back(out: Path) -> dict[str, dict]:
    """held_back.csv of the run into `out`: original file -> its row."""
    rows = csv.DictReader((hospital_of(out) / HELD_BACK_NAME).open(encoding="utf-8"))
    return {r["original_file"]: r for r in rows}


def journal_sources(hospital: Path) -> list[str]:
    """The source files the resume journal in `hospital` lists, in its order."""
    lines = (hospital / STATE_NAME).read_text(encoding="utf-8").splitlines()[1:]
    return [json.loads(line)["src"] for line in lines]


# ---- a program in a terminal (POSIX) -------------------------------------------------------------

def run_in_terminal(cmd: list[str], cwd: Path, env: dict[str, str], answers: dict[bytes, bytes],
                    timeout: float, label: str) -> tuple[int, bytes]:
    """Run cmd under a pseudo-terminal, as a person at a terminal would: answer each prompt in
    `answers` (prompt -> keys) once per time it appears, press Enter at "Press Enter". Returns
    (the raw wait status, everything shown). A program that does not end in time + 30 s is
    killed and the test fails, naming `label`."""
    import pty
    import select
    import time

    import pytest

    pid, fd = pty.fork()
    if pid == 0:  # child: the terminal is ours
        try:
            os.chdir(cwd)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    seen = b""
    answered = {p: 0 for p in answers}
    pressed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # Linux: EIO once the child has closed the terminal
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
            for prompt, keys in answers.items():
                if seen.count(prompt) > answered[prompt]:
                    answered[prompt] += 1
                    os.write(fd, keys)
            if b"Press Enter" in seen and not pressed:  # ... reads the verdict, presses Enter
                pressed = True
                os.write(fd, b"\n")
        status = 0
        done = 0
        while done == 0 and time.monotonic() < deadline + 30:  # the terminal closes before a
            done, status = os.waitpid(pid, os.WNOHANG)         # one-file program has cleaned up
            time.sleep(0.05)
        if done == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"{label} did not end:\n{seen.decode(errors='replace')[-3000:]}")
    finally:
        os.close(fd)
    return status, seen


def csa_header(tags: list[tuple[str, str, list[bytes]]]) -> bytes:
    """A Siemens CSA header (SV10, the layout nibabel reads) holding tags of (name, VR, item values)."""
    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77))
    for name, vr, items in tags:
        out += struct.pack("<64si4s3i", name.encode(), len(items) or 1, vr.encode(), 0, len(items), 77)
        for value in items:
            out += struct.pack("<4i", len(value), len(value), 77, len(value)) + value + b"\0" * (-len(value) % 4)
    return bytes(out)
