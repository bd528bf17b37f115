"""Recall, false alarms and throughput of `deid_tool --verify` (issue 17's figures).

    python benchmarks/bench_verify.py [--public DIR ...] [--cache /work/cache/verify] [--jobs N]

Corpora built in a temporary folder (nothing kept):
  raw        deidkit.synth.make_export: fake PHI planted in every Table E.1-1 attribute, sequences,
             private blocks, overlays, names, DICOMDIR
  weak       the raw export with only Patient's Name, ID and Birth Date blanked (names/IDs removed)
  dicognito  dicognito's output of the raw export (when the dicognito package is installed)
  deid       deid_tool's own output of the raw export
Public data: every --public DIR (or DIR/deid/* under --cache) is taken as deid_tool's output of
public scanner data (e.g. neurolabusc/dcm_qa_* fetched and de-identified outside the repo).

Recall: a leak is a (file, attribute) whose value still holds a planted value (text >= 5
characters or an original UID), overlay data, a burned-in image's pixels, or a file or folder name
holding a planted value; it is pointed at when a finding names that file at that attribute (or at
the sequence holding it). False alarms: share of files with a FAIL (or a REVIEW) finding on
deid_tool's outputs. Throughput: files/s of verify on the raw export with one process and with
every core, in the same run. Figures only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deidkit import guidelines as gl  # noqa: E402
from deidkit import synth  # noqa: E402
from deidkit import verify as vf  # noqa: E402
from deidkit.verify.elements import tag_text  # noqa: E402


def _walk(ds: pydicom.Dataset, prefix: str = ""):
    for elem in ds:
        loc = prefix + tag_text(elem.tag)
        if elem.VR == "SQ":
            yield loc, elem, True
            for i, item in enumerate(elem.value or []):
                yield from _walk(item, f"{loc}[{i}]>")
        else:
            yield loc, elem, False


def _text_of(elem) -> str:
    v = elem.value
    if isinstance(v, bytes):
        return v.decode("latin-1", "replace")
    return str(v) if v is not None else ""


def leaks(root: Path, secrets: set[str], uids: set[str], burned: set[str]) -> set[tuple[str, str]]:
    """(file, location) pairs that still hold a planted value in a delivery."""
    out = set()
    needles = sorted({s for s in secrets if len(s) >= 5}, key=len, reverse=True)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(s in path.name for s in needles):
            out.add((rel, "name"))
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            ds = pydicom.dcmread(path, force=True)
            dicom = data[128:132] == b"DICM" or "SOPClassUID" in ds
        except Exception:  # noqa: BLE001
            dicom = False
        if not dicom:  # a non-DICOM file holding a planted value: the file is the place
            text = data[:1 << 20].decode("utf-8", "replace")
            if any(s in text for s in needles):
                out.add((rel, "file"))
            continue
        head = data[:128]
        if any(s.encode() in head for s in needles):
            out.add((rel, "preamble"))
        meta = [(tag_text(e.tag), e, False) for e in getattr(ds, "file_meta", None) or []]
        for loc, elem, is_seq in meta + list(_walk(ds)):
            if is_seq or elem.tag == 0x7FE00010:
                continue
            if elem.tag & 0xFF00FFFF == 0x60003000 and elem.value:
                out.add((rel, loc))
                continue
            text = _text_of(elem)
            if any(s in text for s in needles) or text.strip("\0 ") in uids:
                out.add((rel, loc))
        if rel in burned:
            out.add((rel, "pixels"))
    return out


def pointed(leak: tuple[str, str], by_file: dict[str, set[str]]) -> bool:
    rel, loc = leak
    locs = by_file.get(rel, set())
    return loc in locs or any(loc.startswith(f + "[") for f in locs)


def run_verify(root: Path, g: gl.Guidelines, jobs: int = 0) -> tuple[vf.Verdict, float]:
    t0 = time.perf_counter()
    v = vf.verify(root, g, jobs=jobs)
    return v, time.perf_counter() - t0


def recall_line(name: str, root: Path, export: synth.SynthExport, g: gl.Guidelines) -> str:
    burned = {p.relative_to(export.root).as_posix() for p in export.root.rglob("US0001")}
    planted = leaks(root, export.all_secrets(), export.planted_uids, burned)
    v, _ = run_verify(root, g)
    by_file: dict[str, set[str]] = {}
    for f in v.findings:
        by_file.setdefault(f.file, set()).add(f.location)
    missed = sorted(x for x in planted if not pointed(x, by_file))
    hit = len(planted) - len(missed)
    kinds = sorted({loc.split(">")[-1] for _, loc in missed})[:12]
    return (f"{name:10} verdict {v.status:6} recall {hit}/{len(planted)} = {100 * hit / max(1, len(planted)):.1f}% "
            f"of planted (file, attribute){'; missed e.g. ' + ', '.join(kinds) if kinds else ''}")


def false_alarm_line(name: str, root: Path, g: gl.Guidelines) -> str:
    v, secs = run_verify(root, g)
    files = max(1, v.files_checked)
    fail = {f.file for f in v.findings if f.severity == "FAIL"}
    review = {f.file for f in v.findings if f.severity == "REVIEW"} - fail
    rules: dict[str, int] = {}
    for f in v.findings:
        rules[f.rule] = rules.get(f.rule, 0) + 1
    top = ", ".join(f"{r} {n}" for r, n in sorted(rules.items(), key=lambda kv: -kv[1])[:6])
    return (f"{name:10} {v.files_checked:5} files  FAIL {100 * len(fail) / files:5.1f}%  REVIEW "
            f"{100 * len(review) / files:5.1f}%  ({files / secs:.0f} files/s){'  rules: ' + top if top else ''}")


def weak_copy(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds = pydicom.dcmread(path)
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = "", "", ""
            ds.PatientIdentityRemoved = "YES"
            ds.save_as(out)
        except Exception:  # noqa: BLE001 - what it cannot read it copies as it is
            shutil.copy2(path, out)


def dicognito_copy(src: Path, dest: Path) -> bool:
    try:
        from dicognito.anonymizer import Anonymizer
    except ImportError:
        return False
    anonymizer = Anonymizer(seed="bench")
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            ds.save_as(out)
        except Exception:  # noqa: BLE001
            shutil.copy2(path, out)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--public", type=Path, nargs="*", default=[], help="deid_tool outputs of public data")
    ap.add_argument("--cache", type=Path, default=Path("/work/cache/verify"), help="DIR/deid_final/* taken as --public")
    ap.add_argument("--instances", type=int, default=3, help="instances per series of the synthetic export")
    args = ap.parse_args()
    import warnings

    warnings.simplefilter("ignore")  # pydicom's and dicognito's notes on odd values
    g = gl.load()
    gl.register_new_attributes(g)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        export = synth.make_export(t / "EXPORT", instances_per_series=args.instances, image_size=128)
        print("Recall (raw, weak, dicognito):")
        print(recall_line("raw", export.root, export, g))
        weak_copy(export.root, t / "WEAK")
        print(recall_line("weak", t / "WEAK", export, g))
        if dicognito_copy(export.root, t / "DICOGNITO"):
            print(recall_line("dicognito", t / "DICOGNITO", export, g))
        else:
            print("dicognito  not installed: skipped")
        subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(export.root), "--out", str(t / "DEID"),
                        "--key", str(t / "key.txt"), "--yes"], capture_output=True, check=False)
        print("False alarms (deid_tool's outputs):")
        print(false_alarm_line("deid-synth", t / "DEID", g))
        public = list(args.public) or sorted(p for p in (args.cache / "deid_final").glob("*")
                                             if p.is_dir() and not p.name.endswith("_HOSPITAL_ONLY"))
        for root in public:
            print(false_alarm_line(root.name, root, g))
        big = max(public + [export.root], key=lambda p: sum(1 for q in p.rglob("*") if q.is_file()))
        n = sum(1 for p in big.rglob("*") if p.is_file())
        _, one = run_verify(big, g, jobs=1)
        _, every = run_verify(big, g, jobs=os.cpu_count() or 1)
        print(f"Throughput on {big.name} ({n} files): one process {n / one:.1f} files/s; "
              f"{os.cpu_count()} processes {n / every:.1f} files/s (x{one / every:.2f})")


if __name__ == "__main__":
    main()
