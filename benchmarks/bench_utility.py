"""Research value kept: does a de-identified MR/CT series convert exactly like the original?

    python benchmarks/bench_utility.py --data /work/cache/dcm_qa [--only dcm_qa_ge] [--work DIR] [-v]
                                       [--neutral-names]

--data holds one folder per corpus (the BSD-licensed dcm2niix QA repositories,
github.com/neurolabusc/dcm_qa, dcm_qa_ge, dcm_qa_nih, dcm_qa_philips, dcm_qa_philips_enh, dcm_qa_uih,
dcm_qa_xa30, dcm_qa_enh ...; their In/ folders extracted there). Nothing is fetched here: the data
stays outside the repository. Needs the `dcm2niix` package (requirements-dev.txt).

For each corpus: `deid_tool.py CORPUS --out WORK/deid --yes --key WORK/key` in a subprocess, then
per MR/CT series (by Series Instance UID) dcm2niix on the original files and on their de-identified
copies (each in its own folder of links), and a comparison of
  - the NIfTI files: number of files/volumes, dimensions, voxel sizes, orientation (qform/sform),
    data values (bytes after the header, with scaling);
  - .bval/.bvec (text identical);
  - every BIDS sidecar field. A series counts as identical when the NIfTI, bval/bvec and the
    fields issue 16 names (ISSUE_FIELDS) are; the other sidecar fields are listed beside it, fields
    changed by design (BY_DESIGN, with the reason) and fields identifying by nature (dates, times,
    institution, device serial, UIDs) apart. A SliceTiming that differs only because dcm2niix rounds
    the shifted time of day (UIH, Siemens E11 2D) is counted as converter rounding when the DICOM
    Acquisition Times keep every interval exactly; so is a MultibandAccelerationFactor dcm2niix derives
    from ties among those rounded times, when the DICOM declares none.
Prints per vendor the share of series identical and which fields differ, the share of Series
Description / Protocol Name values kept unchanged, and a leak check: no identifying value of the
original headers (names, IDs, institution, station, serial number, birth date...) in any byte or
path of the output. Figures only: nothing is asserted.

--neutral-names: the QA data names its "patients" with protocol words (epiRT^GroupDelay, fMRI,
IRC - Slice Timing), so the own-identifier sweep rightly removes every value holding those words
(SequenceName epiRT, protocol blocks). This option first copies each corpus with Patient's Name
and ID replaced by neutral fake values (Qxpatient^Zyqvw<letters>), as real patients are named, and
converts that copy on both sides: it measures what the tables and cleaners keep.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pydicom
import pydicom.uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from deidkit.dicom_types import NOT_PIXEL_DATA  # noqa: E402  (the kit's own list of objects without pixels)
# what issue 16 asks to be identical: the NIfTI (volumes, dimensions, voxel sizes, orientation, values),
# bval/bvec, and these sidecar fields; the per-vendor table counts a series identical on these
ISSUE_FIELDS = ("EchoTime", "RepetitionTime", "FlipAngle", "SliceTiming", "PhaseEncodingDirection",
                "EffectiveEchoSpacing", "TotalReadoutTime", "MultibandAccelerationFactor", "ImageType",
                "SeriesDescription", "ProtocolName")
NIFTI_FIELDS = ("output files", "volumes", "dims", "voxel sizes", "orientation", "data values", "scaling",
                "bval", "bvec")
# changed on purpose (not identifying by nature, but cleaned), with the reason printed under the table
BY_DESIGN = {
    "overlay planes": "Clean Graphics removes overlays (they can carry burned-in text): dcm2niix's *_ROI<n>.nii "
                      "of the original has no counterpart (checked per series: the other outputs match)",
    "json:SeriesNumber (derived)": "the series has no Series Number: dcm2niix derives one from the Series Instance "
                                   "UID, which is remapped (checked per series)",
    "json:StudyDescription": "Clean Descriptors removes a person's name: a name after a caret (Siemens "
                             "'HEAD^Harms' -> 'HEAD'), and without --neutral-names the QA patient's own name "
                             "where it is a protocol word (the Philips CT phantom is named HEAD)",
}
# dcm2niix reads UIH slice times from Acquisition Time (0008,0032) as a 32-bit float of HHMMSS.FFFFFF
# (steps of 1/64 s after 13:11:12, 1/128 s before): any shift of the time of day rounds them differently.
# Counted as this kind only when the times in the DICOM files keep every interval exactly.
CONVERTER_ROUNDING = ("json:SliceTiming: dcm2niix rounds the time of day (HHMMSS.FFFFFF as a 32-bit float) it "
                      "derives slice times from (UIH; Siemens 2D non-mosaic); the DICOM Acquisition Times keep every interval to the "
                      "microsecond (checked per series)")
# dcm2niix (setMultiBandFactor) writes a MultibandAccelerationFactor the DICOM does not declare when
# several slice times equal the first one: with slice times rounded as above, the count of ties moves
# with the time of day (Siemens E11 field maps: "2" before the shift, absent after). Counted as this
# kind only when, on both sides, the value is exactly that count of ties (absent when under 2).
CONVERTER_MULTIBAND = ("json:MultibandAccelerationFactor: derived by dcm2niix from ties among the rounded "
                       "slice times (above), not declared in the DICOM (checked per series)")


def multiband_from_slice_time_ties(orig: dict[str, Path], deid: dict[str, Path]) -> bool:
    """Whether every MultibandAccelerationFactor that differs is, on both sides, what dcm2niix derives
    from its own SliceTiming: the number of slices at the earliest time (within 0.0001 s), when that is
    more than one and fewer than all; absent otherwise."""
    def derived(sidecar: dict) -> int | None:
        times = sidecar.get("SliceTiming") or []
        if not times:
            return None
        ties = sum(abs(t - min(times)) <= 0.0001 for t in times)
        return ties if 1 < ties < len(times) else None

    differing = 0
    for name in set(orig) & set(deid):
        if not name.endswith(".json"):
            continue
        ja, jb = json.loads(orig[name].read_text()), json.loads(deid[name].read_text())
        if ja.get("MultibandAccelerationFactor") == jb.get("MultibandAccelerationFactor"):
            continue
        differing += 1
        if any(j.get("MultibandAccelerationFactor") != derived(j) for j in (ja, jb)):
            return False
    return differing > 0


# identifying by nature: shifted or removed on purpose
IDENTIFYING = ("AcquisitionDateTime", "AcquisitionTime", "AcquisitionDate", "ContentTime", "SeriesInstanceUID",
               "StudyInstanceUID", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
               "DeviceSerialNumber", "StationName", "PatientName", "PatientID", "PatientBirthDate",
               "ReferringPhysicianName", "AccessionNumber", "StudyID", "SeriesNumber_hidden",
               "ProcedureStepDescription", "PerformedProcedureStepStartTime", "StudyTime", "SeriesTime",
               "SoftwareVersions_hidden", "DateOfLastCalibration", "TimeOfLastCalibration", "ConversionSoftware",
               "ConversionSoftwareVersion", "PatientWeight", "PatientSex", "PatientAge",
               # written by the de-identification itself, or free text removed on purpose
               "DeidentificationMethod", "DeidentificationMethodCodeSequence", "WipMemBlock")
LEAK_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "InstitutionAddress",
                 "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "StationName",
                 "DeviceSerialNumber", "AccessionNumber", "InstitutionalDepartmentName", "RequestingPhysician",
                 "PatientAddress", "OtherPatientIDs", "PatientTelephoneNumbers")
DESCRIPTORS = ("SeriesDescription", "ProtocolName")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def dcm2niix_exe() -> str:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(exe).exists():
        raise SystemExit("dcm2niix not found: pip install dcm2niix (requirements-dev.txt)")
    return exe


def deidentify(corpus: Path, work: Path, reasons: dict[str, str] | None = None) -> dict[str, str] | None:
    """Run deid_tool on the corpus; original path -> output path (absolute) for written files;
    None when deid_tool stopped (exit status 2, e.g. a corpus of .gz files only): the corpus is skipped.
    reasons, when given, receives original path -> reason for each file not written."""
    dest = work / "deid"
    cmd = [sys.executable, str(ROOT / "deid_tool.py"), str(corpus), "--out", str(dest), "--yes",
           "--key", str(work / "site_key.txt"), "--workers", "2"]
    proc = run(cmd)
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        print(f"    skipped: deid_tool stopped on {corpus} (exit status {proc.returncode})")
        return None
    mapping = {}
    held = Counter()
    for line in (work / "deid_HOSPITAL_ONLY" / "progress.jsonl").read_text(encoding="utf-8").splitlines()[1:]:
        r = json.loads(line)
        if r.get("out"):
            mapping[str(corpus / r["src"])] = str(dest / r["out"])
        elif r.get("status") != "skipped":
            held[r.get("reason", "")[:60]] += 1
            if reasons is not None:
                reasons[str(corpus / r["src"])] = r.get("reason", "")
    for reason, n in held.most_common():
        print(f"    not written: {n} x {reason}")
    return mapping


def neutral_copy(corpus: Path, dest: Path) -> Path:
    """The corpus with Patient's Name / ID replaced by neutral fake values (same per original)."""
    codes: dict[str, int] = {}
    for p in sorted(corpus.rglob("*")):
        if not p.is_file():
            continue
        out = dest / p.relative_to(corpus)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds = pydicom.dcmread(p)
            key = str(ds.get("PatientID", "")) + "|" + str(ds.get("PatientName", ""))
            n = codes.setdefault(key, len(codes) + 1)
            code = "".join(chr(ord("a") + int(d)) for d in str(n))  # letters only: no digit run to match
            # name parts of 5+ letters: a 3-letter part ("Zyb") is found by chance in float data
            # (MR Spectroscopy Data), which the sweep then rightly removes
            ds.PatientName, ds.PatientID = f"Qxpatient^Zyqvw{code}", f"QXPATIENT{code.upper()}"
            ds.save_as(out)
        except Exception:
            shutil.copyfile(p, out)
    return dest


def series_of(corpus: Path, others: dict[str, list[Path]] | None = None) -> dict[str, list[Path]]:
    """MR/CT images by Series Instance UID. others, when given, receives the objects that are no
    image (no Rows, or a class of dicom_types.NOT_PIXEL_DATA: spectroscopy, raw data, presentation
    states, vendor-private objects such as Philips ExamCards, Siemens physio logs) by SOP class name:
    dcm2niix makes no NIfTI of them (a physio log becomes BIDS physio TSV: non_image_conversion);
    they are counted apart (written or held) and searched for leaks like the rest."""
    out: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(corpus.rglob("*")):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True,
                                 specific_tags=["Modality", "SeriesInstanceUID", "SOPClassUID", "Rows"])
        except Exception:
            continue
        sop_class = str(ds.get("SOPClassUID", "")).strip()
        if not sop_class or not ds.get("SeriesInstanceUID"):
            continue  # DICOMDIR, damaged files
        if "Rows" not in ds or sop_class in NOT_PIXEL_DATA:
            if others is not None:
                name = pydicom.uid.UID(sop_class).name if sop_class.startswith("1.2.840.10008.") else \
                    f"vendor-private class {sop_class.rsplit('.', 2)[0]}.*"
                others[name].append(p)
        elif str(ds.get("Modality", "")) in ("MR", "CT"):
            out[str(ds.SeriesInstanceUID)].append(p)
    return out


def vendor_of(path: Path) -> str:
    """The manufacturer's first word in capitals ('Siemens Healthineers' -> SIEMENS, 'Canon_MEC' -> CANON)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Manufacturer"])
    return (str(ds.get("Manufacturer", "")) or "unknown").replace("_", " ").split()[0].upper().strip(",")


def convert(files: list[str], folder: Path) -> dict[str, Path]:
    src, out = folder / "in", folder / "out"
    src.mkdir(parents=True)
    out.mkdir()
    for i, f in enumerate(files):
        os.symlink(f, src / f"{i:05d}.dcm")
    run([dcm2niix_exe(), "-b", "y", "-ba", "y", "-z", "n", "-f", "v", "-o", str(out), str(src)])
    return {p.name: p for p in sorted(out.iterdir())}


def non_image_conversion(orig: Path, deid: Path, folder: Path) -> str:
    """What dcm2niix makes of an object that is no image series (a Siemens physio log becomes BIDS
    physio TSV and JSON, dcm_qa_physio; spectroscopy a NIfTI with its sidecar): '' when it converts
    nothing, else whether the de-identified copy converts the same, as compare() judges series
    (NIfTI data and geometry, sidecar fields but those identifying by nature, TSV content)."""
    a = convert([str(orig)], folder / "orig")
    if not a:
        return ""
    differ, _ident = compare(a, convert([str(deid)], folder / "deid"))
    return ", converts identically" if not differ else f", conversion differs ({', '.join(sorted(differ))})"


def nifti_summary(path: Path) -> dict:
    raw = path.read_bytes()
    dim = struct.unpack_from("<8h", raw, 40)
    pixdim = struct.unpack_from("<8f", raw, 76)
    vox_offset = int(struct.unpack_from("<f", raw, 108)[0])
    scl = struct.unpack_from("<2f", raw, 112)
    qform = struct.unpack_from("<2h", raw, 252)
    quat = struct.unpack_from("<6f", raw, 256)
    srow = struct.unpack_from("<12f", raw, 280)
    return {"dims": dim[: dim[0] + 1], "voxel sizes": tuple(round(v, 5) for v in pixdim[1: dim[0] + 1]),
            "orientation": (qform, tuple(round(v, 4) for v in quat), tuple(round(v, 4) for v in srow)),
            "scaling": tuple(round(v, 6) for v in scl), "data values": hash(raw[vox_offset:]),
            "volumes": dim[4] if dim[0] >= 4 else 1}


def _content(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def compare(orig: dict[str, Path], deid: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(fields that differ and are not identifying by nature, identifying fields that differ)."""
    differ, ident = set(), set()
    if set(orig) != set(deid):
        differ.add("output files")
    for name in set(orig) & set(deid):
        a, b = orig[name], deid[name]
        if name.endswith(".nii"):
            sa, sb = nifti_summary(a), nifti_summary(b)
            differ |= {k for k in sa if sa[k] != sb[k]}
        elif name.endswith((".bval", ".bvec")):
            if a.read_bytes() != b.read_bytes():
                differ.add(name.rsplit(".", 1)[1])
        elif name.endswith((".tsv", ".tsv.gz")):  # BIDS physio: the recording itself
            if _content(a) != _content(b):
                differ.add("tsv")
        elif name.endswith(".json"):
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            for key in set(ja) | set(jb):
                if ja.get(key) != jb.get(key):
                    (ident if key in IDENTIFYING else differ).add(f"json:{key}")
    return differ, ident


def overlay_outputs_only(orig: dict[str, Path], deid: dict[str, Path]) -> bool:
    """The outputs differ only by dcm2niix's overlay files (name_ROI1.nii ...) the original has."""
    extra = set(orig) - set(deid)
    return bool(extra) and set(deid) <= set(orig) and all("_ROI" in name for name in extra)


def series_number_derived(files: list[str]) -> bool:
    """No file of the series has a Series Number (0020,0011) value: dcm2niix makes one up from the UID."""
    return not any(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesNumber"]).get("SeriesNumber")
                   not in (None, "") for f in files)


def split_fields(differ: set[str]) -> tuple[set[str], set[str], set[str]]:
    """(issue fields, by design, other sidecar fields) of the fields that differ."""
    issue = {f for f in differ if f in NIFTI_FIELDS or f.removeprefix("json:") in ISSUE_FIELDS}
    design = {f for f in differ if f in BY_DESIGN}
    return issue, design, differ - issue - design


_TIME_KEYWORDS = ("AcquisitionTime", "AcquisitionDateTime")


def _moments(path: str) -> list[tuple[str, Decimal]]:
    """(keyword, seconds) of every Acquisition Time / DateTime in a file, at any depth, in order."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out = []
    for elem in ds.iterall():
        if elem.keyword not in _TIME_KEYWORDS or not elem.value:
            continue
        text = str(elem.value).strip()
        if elem.keyword == "AcquisitionDateTime":
            text, day = text[8:], Decimal(date(int(text[:4]), int(text[4:6]), int(text[6:8])).toordinal())
        else:
            day = Decimal(0)
        whole, _, frac = text.partition(".")
        if len(whole) < 6 or not whole[:6].isdigit():
            continue
        seconds = int(whole[:2]) * 3600 + int(whole[2:4]) * 60 + int(whole[4:6])
        out.append((elem.keyword, day * 86400 + seconds + Decimal("0." + (frac or "0"))))
    return out


def crosses_midnight(orig_files: list[str], deid_files: list[str]) -> bool:
    """Whether the time-of-day shift carried the series across midnight (one Acquisition Date before,
    several after): dcm2niix then derives no volume timing (acquisitionTimeDifference gives up
    when dates differ), so RepetitionTime and slice times can change although every interval is kept."""
    def dates(files: list[str]) -> set[str]:
        return {str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["AcquisitionDate"])
                    .get("AcquisitionDate", "")) for f in files}
    return len(dates(orig_files)) == 1 and len(dates(deid_files)) > 1


def acquisition_intervals_identical(orig_files: list[str], deid_files: list[str]) -> bool:
    """Whether every Acquisition Time of the series keeps its interval to the series' first one (to
    the microsecond; a time of day across midnight counted modulo one day)."""
    def intervals(files: list[str]) -> list[tuple[str, Decimal]]:
        moments = [m for f in files for m in _moments(f)]
        first: dict[str, Decimal] = {}
        out = []
        for keyword, t in moments:
            d = t - first.setdefault(keyword, t)
            if keyword == "AcquisitionTime":
                d = (d + 43200) % 86400 - 43200
            out.append((keyword, d))
        return out
    a, b = intervals(orig_files), intervals(deid_files)
    return bool(a) and a == b


def leak_values(files: list[Path]) -> set[str]:
    """Identifying values of the originals, as parts to look for; a value that is also the scanner's
    model or maker name, or one word of it (Canon names its stations "Galan 3T" like the model;
    pydicom's MR_small names its institution TOSHIBA, made by TOSHIBA_MEC), is the kept maker name."""
    values: set[str] = set()
    for p in files:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        device = {str(e.value).strip().lower() for e in ds.iterall()  # at any depth: Contributing Equipment too
                  if e.keyword in ("ManufacturerModelName", "Manufacturer") and isinstance(e.value, str)} - {""}
        device |= {w for d in device for w in d.replace("_", " ").split()}  # Institution 'TOSHIBA' of TOSHIBA_MEC
        for elem in ds.iterall():
            if elem.keyword in LEAK_KEYWORDS and str(elem.value).strip().lower() in device:
                continue
            if elem.keyword in LEAK_KEYWORDS and elem.value not in (None, ""):
                vals = elem.value if elem.VM > 1 and not isinstance(elem.value, str) else [elem.value]
                for v in vals:
                    text = str(v).strip()
                    # names by their parts; other values whole or by their comma-separated parts
                    parts = text.replace("^", " ").split() if elem.VR == "PN" else [text] + text.split(",")
                    for part in parts:
                        part = part.strip()
                        if len(part) >= 5 and not part.replace(".", "").isdigit() or (part.isdigit() and len(part) >= 8):
                            values.add(part)
    return values


def leak_check(values: set[str], dest: Path) -> Counter:
    hits: Counter = Counter()
    needles = [(v, v.encode("latin-1", "ignore")) for v in values if v.encode("latin-1", "ignore")]
    for p in dest.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            rel = str(p.relative_to(dest))
            for v, b in needles:
                if b in data or v.lower() in rel.lower():
                    hits[v] += 1
    return hits


def descriptors(files_by_series: dict[str, list[Path]], mapping: dict[str, str]) -> tuple[int, int, list]:
    kept = total = 0
    lost = []
    for files in files_by_series.values():
        f = files[0]
        if str(f) not in mapping:
            continue
        a = pydicom.dcmread(f, stop_before_pixels=True)
        b = pydicom.dcmread(mapping[str(f)], stop_before_pixels=True)
        for kw in DESCRIPTORS:
            va = str(a.get(kw, "") or "")
            if not va:
                continue
            total += 1
            vb = str(b.get(kw, "") or "")
            if va == vb:
                kept += 1
            else:
                lost.append((va, vb))
    return kept, total, lost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/cache/dcm_qa"))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--work", type=Path, default=None, help="keep the work folder here")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--neutral-names", action="store_true", help="replace the QA data's patient names first")
    args = ap.parse_args()
    corpora = sorted(p for p in args.data.iterdir() if p.is_dir() and (not args.only or p.name in args.only))
    work_root = args.work or Path(tempfile.mkdtemp(prefix="bench_utility_"))
    per_vendor: dict[str, Counter] = defaultdict(Counter)
    vendor_fields: dict[str, Counter] = defaultdict(Counter)
    vendor_ident: dict[str, Counter] = defaultdict(Counter)
    vendor_design: dict[str, Counter] = defaultdict(Counter)
    vendor_other: dict[str, Counter] = defaultdict(Counter)
    vendor_rounding: dict[str, Counter] = defaultdict(Counter)
    desc_kept = desc_total = 0
    all_lost = []
    leaks: Counter = Counter()
    non_image: dict[tuple[str, str], Counter] = defaultdict(Counter)
    try:
        for corpus in corpora:
            print(f"== {corpus.name}")
            work = work_root / corpus.name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            if args.neutral_names:
                corpus = neutral_copy(corpus, work / "source")
            reasons: dict[str, str] = {}
            mapping = deidentify(corpus, work, reasons)
            if mapping is None:
                continue
            others: dict[str, list[Path]] = defaultdict(list)
            by_series = series_of(corpus, others)
            for kind, files in others.items():
                for i, f in enumerate(files):
                    state = "written" if str(f) in mapping else reasons.get(str(f), "not written").split(":")[0][:60]
                    if str(f) in mapping:
                        state += non_image_conversion(f, Path(mapping[str(f)]), work / "conv_other" / f"{kind[:20].replace(' ', '_')}_{i:04d}")
                    non_image[(vendor_of(f), kind)][state] += 1
            k, t, lost = descriptors(by_series, mapping)
            desc_kept, desc_total = desc_kept + k, desc_total + t
            all_lost += lost
            for n, (_uid, files) in enumerate(sorted(by_series.items())):
                vendor = vendor_of(files[0])
                missing = [f for f in files if str(f) not in mapping]
                per_vendor[vendor]["series"] += 1
                if missing:
                    kinds = {reasons.get(str(f), "").split(":")[0] for f in missing}
                    vendor_fields[vendor][f"files held back ({'; '.join(sorted(kinds))[:90]})"] += 1
                    if args.verbose:
                        print(f"   {files[0].parent.name}: {len(missing)} files held back")
                    continue
                orig = convert([str(f) for f in files], work / "conv" / f"{n:04d}" / "orig")
                deid = convert([mapping[str(f)] for f in files], work / "conv" / f"{n:04d}" / "deid")
                if not orig:
                    per_vendor[vendor]["not converted"] += 1
                    continue
                differ, ident = compare(orig, deid)
                if "output files" in differ and overlay_outputs_only(orig, deid):
                    differ = differ - {"output files"} | {"overlay planes"}
                if "json:SeriesNumber" in differ and series_number_derived([str(f) for f in files]):
                    differ = differ - {"json:SeriesNumber"} | {"json:SeriesNumber (derived)"}
                if not differ:
                    per_vendor[vendor]["all fields"] += 1
                if "json:SliceTiming" in differ and acquisition_intervals_identical(
                        [str(f) for f in files], [mapping[str(f)] for f in files]):
                    differ.discard("json:SliceTiming")
                    vendor_rounding[vendor]["json:SliceTiming"] += 1
                    if "json:MultibandAccelerationFactor" in differ and multiband_from_slice_time_ties(orig, deid):
                        differ.discard("json:MultibandAccelerationFactor")
                        vendor_rounding[vendor]["json:MultibandAccelerationFactor"] += 1
                issue, design, other = split_fields(differ)
                for group, fields in ((vendor_fields, issue), (vendor_design, design), (vendor_other, other)):
                    for f in fields:
                        group[vendor][f] += 1
                for f in ident:
                    vendor_ident[vendor][f] += 1
                if not issue:
                    per_vendor[vendor]["identical"] += 1
                elif crosses_midnight([str(f) for f in files], [mapping[str(f)] for f in files]):
                    per_vendor[vendor]["midnight"] += 1
                if differ and args.verbose:
                    print(f"   {files[0].parent.name}/{files[0].name}: {sorted(differ)}")
            leaks += leak_check(leak_values([f for fs in [*by_series.values(), *others.values()] for f in fs]),
                                work / "deid")
        print("\nper vendor: series identical on what issue 16 names (NIfTI volumes, dimensions, voxel sizes,\n"
              f"orientation, values; bval/bvec; {', '.join(ISSUE_FIELDS)}) / series converted by dcm2niix")
        for vendor, c in sorted(per_vendor.items()):
            converted = c["series"] - c["not converted"]
            share = 100.0 * c["identical"] / converted if converted else 0.0
            print(f"  {vendor:10s} {c['identical']:4d}/{converted:<4d} {share:5.1f}%   "
                  f"differ: {dict(vendor_fields[vendor].most_common()) or '-'}")
            print(f"  {'':10s} every sidecar field identical too: {c['all fields']}/{converted}; "
                  f"other fields differ: {dict(vendor_other[vendor].most_common()) or '-'}")
            if c["midnight"]:
                print(f"  {'':10s} of the series that differ, {c['midnight']} were carried across midnight by the "
                      "time-of-day shift (dcm2niix derives no volume timing across midnight)")
            if vendor_design[vendor]:
                print(f"  {'':10s} changed by design: {dict(vendor_design[vendor])}")
            if vendor_rounding[vendor]:
                print(f"  {'':10s} converter rounding only (DICOM times exact): {dict(vendor_rounding[vendor])}")
            if vendor_ident[vendor]:
                print(f"  {'':10s} identifying by nature (shifted/removed): {sorted(vendor_ident[vendor])}")
        if non_image:
            print("\nobjects that are no image (no NIfTI; de-identified, counted apart, searched for leaks; what dcm2niix\n"
                  "makes of them otherwise (BIDS physio TSV, spectroscopy NIfTI) compared as series are):")
            for (vendor, kind), states in sorted(non_image.items()):
                print(f"  {vendor:10s} {kind}: {dict(states.most_common())}")
        if any(vendor_design.values()):
            print("\nchanged by design:")
            for field in sorted({f for c in vendor_design.values() for f in c}):
                print(f"   {field}: {BY_DESIGN[field]}")
        if any(vendor_rounding.values()):
            print(f"converter rounding:\n   {CONVERTER_ROUNDING}")
            if any("json:MultibandAccelerationFactor" in c for c in vendor_rounding.values()):
                print(f"   {CONVERTER_MULTIBAND}")
        share = 100.0 * desc_kept / desc_total if desc_total else 0.0
        print(f"\ndescriptors kept unchanged (Series Description, Protocol Name per series): "
              f"{desc_kept}/{desc_total} = {share:.1f}%")
        for a, b in all_lost[:40]:
            print(f"   {a!r} -> {b!r}")
        print(f"\nleak check: {sum(leaks.values())} hits of original identifying values in output bytes/paths")
        for v, n in leaks.most_common(20):
            print(f"   {v[:2]}*** ({len(v)} chars) in {n} files")
    finally:
        if args.work is None:
            shutil.rmtree(work_root, ignore_errors=True)


if __name__ == "__main__":
    main()
