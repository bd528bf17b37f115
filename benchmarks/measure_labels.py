"""Labels on public real data: what deid_tool delivers, whether references resolve, and whether
any original identifying value is left in any output byte (issue 15). Figures only.

    python benchmarks/measure_labels.py CORPUS [--out DIR] [--key FILE] [--settings-off]

CORPUS is a folder of public test files kept OUTSIDE the repository, e.g. /work/cache/labels/corpus
with highdicom's data/test_files, dcmqi's data/**.dcm and pydicom's data/test_files (see the
report of issue 15). --settings-off runs with clean_structured_content = no (the old default)
for the "before" figure. Prints: delivered/held per object class, references from delivered
labels (resolved to a delivered instance / to a held one / outside the corpus), and every
original identifying value (PN parts, IDs, dates of birth, institution/station names, text of
the table's removed attributes, original UIDs) found in an output byte.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

from deidkit import guidelines as gl  # noqa: E402
from deidkit.mapping import Mapper, load_or_create_key  # noqa: E402

CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG", "1.2.840.10008.5.1.4.1.1.66.7": "SEG",
    "1.2.840.10008.5.1.4.1.1.88.11": "SR", "1.2.840.10008.5.1.4.1.1.88.22": "SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "SR", "1.2.840.10008.5.1.4.1.1.88.34": "SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "KO", "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN", "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.30": "PM", "1.2.840.10008.5.1.4.1.1.67": "RWV",
    "1.2.840.10008.5.1.4.1.1.11.1": "PR", "1.2.840.10008.5.1.4.1.1.91.1": "ANN",
}
REF_KEYWORDS = ("ReferencedSOPInstanceUID",)
ID_TAGS = ("PatientID", "AccessionNumber", "PatientBirthDate", "InstitutionName", "StationName",
           "InstitutionAddress", "OtherPatientIDs", "StudyID", "DeviceSerialNumber", "PatientAddress")


def _read(path: Path):
    try:
        return pydicom.dcmread(path, force=True)
    except Exception:
        return None


def _secrets(ds, g: gl.Guidelines) -> set[str]:
    out = set()
    for elem in ds.iterall():
        if elem.VR == "PN" and elem.value:
            for part in str(elem.value).replace("=", "^").split("^"):
                if len(part.strip()) >= 4:
                    out.add(part.strip())
        code = g.action_for(elem.tag) if not elem.tag.is_private else None
        if code in ("X", "Z", "D") and elem.VR in ("LO", "SH", "ST", "LT", "UT") and elem.value:
            value = str(elem.value).strip()
            if len(value) >= 6:
                out.add(value)
    for keyword in ID_TAGS:
        value = str(ds.get(keyword, "") or "").strip()
        if len(value) >= 4:
            out.add(value)
    # a removed value that is also in the value of a kept attribute (Institution Name "PixelMed"
    # = Manufacturer "PixelMed", name part "Test" in Manufacturer "Test Manufacturer", Institution
    # "TOSHIBA" in Manufacturer "TOSHIBA_MEC") is not counted: the kept attribute carries it
    kept = [str(e.value).strip().lower() for e in ds.iterall() if e.VR != "SQ" and not e.tag.is_private
            and g.action_for(e.tag) in (None, "K") and isinstance(e.value, str)]
    return {s for s in out if not any(s.lower() in k for k in kept)}


def _own_words(ds) -> str:
    """The tool's own words in an output (De-identification Method and its codes, lower case):
    a name part "Patient" found only in "Retain Patient Characteristics Option" is not a leak."""
    words = [str(ds.get("DeidentificationMethod", ""))]
    for item in ds.get("DeidentificationMethodCodeSequence", []) or []:
        words.append(str(item.get("CodeMeaning", "")))
    return " ".join(words).lower()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--key", type=Path)
    ap.add_argument("--settings-off", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labels_"))
    out = args.out or tmp / "DEID"
    key = args.key or tmp / "key.txt"
    cmd = [sys.executable, str(ROOT / "deid_tool.py"), str(args.corpus), "--out", str(out), "--yes",
           "--key", str(key), "--workers", "2"]
    if args.settings_off:
        site = tmp / "site"
        site.mkdir()
        text = (ROOT / "guidelines" / "settings.ini").read_text(encoding="utf-8")
        (site / "settings.ini").write_text(text.replace("clean_structured_content = yes", "clean_structured_content = no"),
                                           encoding="utf-8")
        cmd += ["--guidelines", str(site)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    g = gl.load()
    mapper = Mapper(load_or_create_key(key)[0])
    held = {r["original_file"]: r["reason"] for r in csv.DictReader(
        (out.parent / (out.name + "_HOSPITAL_ONLY") / "held_back.csv").open(encoding="utf-8"))
        if r["status"] in ("held", "failed")}
    sources = {}
    for path in sorted(args.corpus.rglob("*")):
        if path.is_file():
            ds = _read(path)
            if ds is not None and "SOPInstanceUID" in ds:
                sources[path.relative_to(args.corpus).as_posix()] = ds
    new_to_source = {mapper.uid(str(ds.SOPInstanceUID)): rel for rel, ds in sources.items()}
    delivered = {}
    for path in sorted(out.rglob("*.dcm")):
        ds = _read(path)
        if ds is not None:
            delivered[str(ds.SOPInstanceUID)] = (path, ds)
    per_class: Counter = Counter()
    for rel, ds in sources.items():
        cls = CLASSES.get(str(ds.get("SOPClassUID", "")), "image/other")
        status = "held" if rel in held else "delivered"
        per_class[(cls, status)] += 1
        if status == "held" and cls != "image/other":
            print(f"  held {cls:8s} {rel}: {held[rel]}")
    print("object class: delivered / held")
    for cls in sorted({c for c, _ in per_class}):
        print(f"  {cls:12s} {per_class[(cls, 'delivered')]:3d} / {per_class[(cls, 'held')]:3d}")
    refs: Counter = Counter()
    for _uid, (_path, ds) in delivered.items():
        if CLASSES.get(str(ds.get("SOPClassUID", ""))) is None:
            continue
        for elem in ds.iterall():
            if elem.keyword in REF_KEYWORDS:
                for ref in (elem.value if elem.VM > 1 else [elem.value]):
                    ref = str(ref)
                    if ref in delivered:
                        refs["resolved to a delivered instance"] += 1
                    elif ref in new_to_source:
                        refs["to a held instance of the corpus"] += 1
                    else:
                        refs["outside the corpus (instance never given)"] += 1
    print("references from delivered label objects:", dict(refs))
    leaks = []
    secrets_by_file = {rel: _secrets(ds, g) for rel, ds in sources.items()}
    all_uids = {str(e.value) for ds in sources.values() for e in ds.iterall()
                if e.VR == "UI" and e.value and str(e.value) not in pydicom.uid.UID_dictionary
                and not str(e.value).startswith("1.2.840.10008.")  # DICOM's own (SOP classes newer than pydicom)
                and len(str(e.value)) > 12}
    for uid, (path, _ds) in delivered.items():
        data = path.read_bytes()
        rel = new_to_source.get(uid)
        secrets = secrets_by_file.get(rel, set()) if rel else set()
        own = _own_words(ds)
        for s in secrets:
            if s.lower() in own and data.lower().count(s.lower().encode("utf-8", "ignore")) <= own.count(s.lower()):
                continue  # only in the tool's own words
            for variant in {s, s.upper(), s.lower()}:
                if variant.encode("utf-8", "ignore") in data:
                    leaks.append((path.name, rel, s))
        for u in all_uids:
            if u.encode() in data:
                leaks.append((path.name, rel, "original UID"))
    print(f"delivered files: {len(delivered)}; original identifying values found in output bytes: {len(leaks)}")
    for leak in leaks[:30]:
        print("  LEAK", leak)


if __name__ == "__main__":
    main()
