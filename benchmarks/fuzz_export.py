"""Mutation fuzzer over real-shaped DICOM files: deid_tool's per-file path under damage (issue 20).

    python benchmarks/fuzz_export.py [--cases 100000] [--minutes 0] [--seed 20] [--keep-failures DIR]

Seeds: every DICOM file pydicom ships in its installed package (pydicom/data/test_files, read
from disk: nothing is downloaded) and every file of a synthetic export (deidkit/synth.py), each
with a planted patient (name, ID, birth date, a comment, a nested item, a private element) put
into its header. Each case takes one seed and applies 1-3 random mutations with a fixed seed:
byte flips (mostly in the header), a cut, a length field set to a special or random value, a
tag or a VR changed, random bytes spliced in. The mutant goes through
deidkit.export.process_file, the exact function the worker processes run.

Counted, and printed at the end:
  tracebacks     an exception escaped process_file, or it reported "the program met something
                 in this file it does not handle" (a caught exception: a bug to look at)
  hangs          a case taking more than 30 s (stopped by an alarm)
  pass-throughs  a written output holding any byte form of the planted name, ID or given name
                 (anywhere: header, private data, pixel data, trailing bytes)
  damaged        a written output pydicom cannot read back
  exception names in reasons (never allowed)
plus the outcome counts (written / held / failed / skipped) and cases per second. Exit status 1
if any of the first five is not zero. --keep-failures DIR saves each bad mutant there.
The CI test (tests/test_fuzz.py) runs the same engine for a bounded number of cases.
"""
from __future__ import annotations

import argparse
import io
import random
import re
import signal
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FAMILY, GIVEN, PATIENT_ID = "ZEBRAFINCH", "OTTOLINE", "PID77123"
HANG_SECONDS = 30
SEED_PIXELS = 16 * 512 * 512  # seeds with more pixels in all frames are not mutated (_check_seeds)
MAX_SEED_BYTES = 400_000
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OW", b"PN",
        b"SH", b"SQ", b"SS", b"ST", b"TM", b"UC", b"UI", b"UL", b"UN", b"US", b"UT", b"\0\0", b"ZZ"]
_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")


def _pixel_count(data: bytes) -> int:
    """Rows x Columns x Number of Frames of a DICOM file's bytes (0 when it does not say)."""
    import io

    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        frames = int(str(ds.get("NumberOfFrames", 1) or 1))
        return int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * max(frames, 1)
    except Exception:
        return 0


def planted_forms() -> tuple[bytes, ...]:
    """The planted identifiers as they could appear in bytes (compared lower-cased)."""
    forms = set()
    for secret in (FAMILY, GIVEN, PATIENT_ID):
        for enc in ("ascii", "utf-16-le", "utf-16-be"):
            forms.add(secret.lower().encode(enc))
    return tuple(sorted(forms))


FORMS = planted_forms()


def plant(data: bytes) -> bytes | None:
    """The file with the planted patient in its header, same transfer syntax; None if pydicom
    cannot read or write it."""
    import warnings

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    warnings.filterwarnings("ignore")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            return None
        if int(ds.get("NumberOfFrames", 1) or 1) > 8:
            return None  # long multi-frame images: seconds of text finding each, nothing for damage
        ds.PatientName = f"{FAMILY}^{GIVEN}"
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = "19610203"
        ds.ImageComments = f"Patient {FAMILY} {GIVEN} ID {PATIENT_ID}"
        item = Dataset()
        item.PatientID = PATIENT_ID
        item.IssuerOfPatientID = f"{FAMILY} clinic"
        ds.OtherPatientIDsSequence = Sequence([item])
        block = ds.private_block(0x0029, "ACME PHI STORE 1.0", create=True)
        block.add_new(0x10, "LO", f"{FAMILY}^{GIVEN}")
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        if "TransferSyntaxUID" not in meta:
            implicit, little = getattr(ds, "original_encoding", (True, True))
            meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta = meta
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - a seed pydicom cannot round-trip is simply not used
        return None


def seed_files(workdir: Path) -> list[tuple[str, bytes]]:
    """(name, planted bytes) of pydicom's shipped test files and a synthetic export's files."""
    import pydicom

    from deidkit.synth import make_export

    sources: list[tuple[str, bytes]] = []
    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    for path in sorted(test_files.rglob("*")):
        if path.is_file() and path.stat().st_size <= MAX_SEED_BYTES and path.suffix.lower() in ("", ".dcm"):
            sources.append((f"pydicom/{path.name}", path.read_bytes()))
    synth = make_export(workdir / "synth_export", instances_per_series=2, image_size=32)
    for path in sorted(p for p in synth.root.rglob("*") if p.is_file()):
        sources.append((f"synth/{path.relative_to(synth.root).as_posix()}", path.read_bytes()))
    seeds = []
    for name, data in sources:
        planted = plant(data)
        if planted is not None:
            seeds.append((name, planted))
    return seeds


def element_headers(data: bytes) -> list[tuple[int, int]]:
    """(offset, length-field size 2 or 4) of element headers found by walking the file meta and a
    little-endian dataset (explicit or implicit VR, stepping into sequences and items)."""
    headers: list[tuple[int, int]] = []
    if len(data) < 144 or data[128:132] != b"DICM":
        return headers
    pos = 132
    implicit = False
    meta_end = None
    while pos + 8 <= len(data):
        if meta_end is not None and pos >= meta_end and meta_end > 0:
            meta_end = -1  # now in the dataset
        group, elem = struct.unpack_from("<HH", data, pos)
        if meta_end is None and group != 2:
            meta_end = pos
        if group == 0xFFFE:
            headers.append((pos, 4))
            length = struct.unpack_from("<I", data, pos + 4)[0]
            pos += 8
            continue
        if group == 2 and elem == 0x0010:
            value = data[pos + 8:pos + 8 + struct.unpack_from("<H", data, pos + 6)[0]]
            implicit = value.rstrip(b"\0 ") == b"1.2.840.10008.1.2"
        if group > 2 and implicit:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            headers.append((pos + 4, 4))
            if length == 0xFFFFFFFF:
                pos += 8
                continue
            pos += 8 + length
            continue
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            length = struct.unpack_from("<I", data, pos + 8)[0]
            headers.append((pos + 8, 4))
            pos += 12 if (vr == b"SQ" or length == 0xFFFFFFFF) else 12 + length
        else:
            headers.append((pos + 6, 2))
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
        if group == 0x7FE0:
            break
    return headers


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """1-3 random mutations of data; returns (mutant, descriptions)."""
    out = bytearray(data)
    headers = element_headers(data)
    header_end = max((h[0] for h in headers), default=min(len(data), 2048)) + 16
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        kind = rng.choice(("flip", "flip", "length", "length", "length", "cut", "tag", "vr", "splice"))
        if kind in ("length", "tag", "vr") and not headers:
            kind = "flip"
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                limit = header_end if rng.random() < 0.8 else len(out)
                pos = rng.randrange(max(min(limit, len(out)), 1))
                if pos < len(out):
                    out[pos] = rng.randrange(256)
            done.append("flip")
        elif kind == "length":
            pos, size = rng.choice(headers)
            if pos + size > len(out):
                continue
            top = 0xFFFF if size == 2 else 0xFFFFFFFF
            old = int.from_bytes(out[pos:pos + size], "little")
            value = rng.choice([0, 1, 2, 3, 7, top, top - 1, top // 2, len(out), len(out) - pos,
                                old + rng.randint(1, 64), max(old - rng.randint(1, 64), 0), rng.randrange(top + 1)])
            out[pos:pos + size] = min(value, top).to_bytes(size, "little")
            done.append(f"length@{pos}={value}")
        elif kind == "cut":
            at = rng.randrange(len(out) + 1)
            del out[at:]
            done.append(f"cut@{at}")
        elif kind == "tag":
            pos, size = rng.choice(headers)
            start = pos - (6 if size == 2 else 8) if pos >= 8 else pos
            if start + 4 > len(out):
                continue
            if rng.random() < 0.5:
                out[start + rng.randrange(4)] = rng.randrange(256)
            else:
                out[start:start + 4] = struct.pack("<HH", rng.randrange(0x10000), rng.randrange(0x10000))
            done.append(f"tag@{start}")
        elif kind == "vr":
            pos, size = rng.choice(headers)
            start = pos - (2 if size == 2 else 4)
            if start + 2 > len(out):
                continue
            out[start:start + 2] = rng.choice(_VRS)
            done.append(f"vr@{start}")
        else:
            at = rng.randrange(132 if len(out) > 132 else 0, len(out) + 1)
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            done.append(f"splice@{at}")
    return bytes(out), done


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    tracebacks: int = 0
    hangs: int = 0
    pass_throughs: int = 0
    damaged: int = 0
    exception_names: int = 0
    slowest: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.tracebacks + self.hangs + self.pass_throughs + self.damaged + self.exception_names

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        rate = self.cases / self.seconds if self.seconds else 0.0
        return (f"cases {self.cases} in {self.seconds:.0f} s ({rate:.0f}/s); tracebacks {self.tracebacks}, "
                f"hangs {self.hangs}, pass-throughs {self.pass_throughs}, damaged outputs {self.damaged}, "
                f"exception names in reasons {self.exception_names}; slowest case {self.slowest:.2f} s; "
                f"outcomes: {counts}")


class _Hang(BaseException):  # not an Exception: process_file's own catch-all must not swallow it
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Hang()


class Fuzzer:
    """Runs mutants through export.process_file in this process (set up as a pool worker)."""

    def __init__(self, workdir: Path, seed: int, keep: Path | None = None) -> None:
        from deidkit import export
        from deidkit import guidelines as gl

        self.export = export
        self.workdir = workdir
        self.out = workdir / "OUT"
        self.src = workdir / "SRC"
        self.src.mkdir(parents=True, exist_ok=True)
        export._init_worker(gl.load(), b"fuzz-key-0123456789abcdef0123456", str(self.out), str(workdir / "HOSP"), "")
        self.seeds = seed_files(workdir)
        self.rng = random.Random(seed)
        self.keep = keep
        self.tally = Tally()
        self.clean_seeds = self._check_seeds()

    def _check_seeds(self) -> int:
        """The seeds themselves: none may leak (that would be a plain bug, not damage). Seeds
        with more than SEED_PIXELS pixels in all frames (multi-frame images the text finder
        looks at frame by frame) are left out of the mutation pool: the fuzzer is after damage,
        and they would only slow it down. A property of the file, not a timing: the same seeds
        every run, on a loaded machine too."""
        kept = []
        for name, data in self.seeds:
            self._case(data, f"seed {name}")
            if _pixel_count(data) <= SEED_PIXELS:
                kept.append((name, data))
        self.seeds = kept
        return len(kept)

    def run(self, cases: int, seconds: float = 0.0) -> Tally:
        started = time.monotonic()
        for _ in range(cases):
            if seconds and time.monotonic() - started > seconds:
                break
            name, data = self.seeds[self.rng.randrange(len(self.seeds))]
            mutant, how = mutate(data, self.rng)
            self._case(mutant, f"{name} {' '.join(how)}")
        self.tally.seconds += time.monotonic() - started
        return self.tally

    def _case(self, data: bytes, label: str) -> None:
        export = self.export
        src = self.src / "IM0001.dcm"
        src.write_bytes(data)
        t = self.tally
        t.cases += 1
        use_alarm = hasattr(signal, "SIGALRM")
        if use_alarm:
            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(HANG_SECONDS)
        start = time.monotonic()
        problem = None
        try:
            result = export.process_file(("F000001", str(src), "IM0001.dcm"))
        except _Hang:
            t.hangs += 1
            problem = "hang"
            result = None
        except BaseException as e:  # noqa: BLE001 - counted, never expected
            t.tracebacks += 1
            problem = f"traceback {type(e).__name__}"
            result = None
        finally:
            if use_alarm:
                signal.alarm(0)
        t.slowest = max(t.slowest, time.monotonic() - start)
        partial = export.partial_path(self.out, "IM0001.dcm")
        if result is not None:
            t.statuses[result.status] = t.statuses.get(result.status, 0) + 1
            if result.reason == export.UNEXPECTED:
                t.tracebacks += 1
                problem = "caught unexpected error"
            if _EXCEPTION_NAME.search(result.reason):
                t.exception_names += 1
                problem = f"exception name in reason: {result.reason}"
            if result.status == export.WRITTEN:
                written = partial.read_bytes()
                lowered = written.lower()
                if any(form in lowered for form in FORMS):
                    t.pass_throughs += 1
                    problem = "planted identifier written"
                elif not _reads_back(written):
                    t.damaged += 1
                    problem = "written output cannot be read back"
        partial.unlink(missing_ok=True)
        if problem:
            t.failures.append(f"{label}: {problem}")
            if self.keep is not None:
                self.keep.mkdir(parents=True, exist_ok=True)
                (self.keep / f"case{t.cases:07d}.dcm").write_bytes(data)


def _reads_back(data: bytes) -> bool:
    import warnings

    import pydicom

    warnings.filterwarnings("ignore")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        for elem in ds.iterall():
            _ = elem.value
        return "SOPInstanceUID" in ds
    except Exception:  # noqa: BLE001
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--keep-failures", type=Path)
    p.add_argument("--report-every", type=int, default=5000)
    args = p.parse_args(argv)
    from deidkit.export import quiet_library_messages

    quiet_library_messages()
    with tempfile.TemporaryDirectory(prefix="deidkit_fuzz_") as tmp:
        fuzzer = Fuzzer(Path(tmp), args.seed, args.keep_failures)
        print(f"seeds: {len(fuzzer.seeds)} planted files (pydicom test files and a synthetic export); "
              f"seed {args.seed}", flush=True)
        budget = args.minutes * 60
        started = time.monotonic()
        done = 0
        while done < args.cases:
            left = budget - (time.monotonic() - started) if budget else 0.0
            if budget and left <= 0:
                break
            step = min(args.report_every, args.cases - done)
            fuzzer.run(step, left)
            done += step
            print(fuzzer.tally.line(), flush=True)
        for line in fuzzer.tally.failures[:50]:
            print("  " + line)
        print("RESULT: " + fuzzer.tally.line())
        return 1 if fuzzer.tally.bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
