"""Hospital-side pseudonym lookup: which patient is SUBJ_..., which study is STUDY_...?

A research team may ask (an incidental finding, a withdrawal of consent). Two ways to answer,
both hospital side only, never in DEST:
  - crosswalk.csv in <DEST>_HOSPITAL_ONLY, written after every run (contract.CROSSWALK_COLUMNS):
    one row per (patient, study) written, original Patient ID / name / birth date and accession
    number / Study Instance UID beside the pseudonym, the study folder and the new Study UID;
  - `deid_tool --lookup SUBJ_... [EXPORT]`: reads that crosswalk, or, when there is none, the
    export's headers with the site key (the same keyed mapping the run used).
"""
from __future__ import annotations

import csv
import io
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydicom import dcmread

from . import console, contract
from .guidelines import Guidelines
from .mapping import Mapper, patient_key_of

_TAGS = ["PatientID", "PatientName", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID", "StudyDate"]


def _header(path: Path) -> dict[str, str]:
    """The identifying values the crosswalk needs ("" for each when unreadable). Regular files only."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return {}
        ds = dcmread(path, stop_before_pixels=True, force=True, specific_tags=_TAGS)
        return {k: str(ds.get(k, "") or "") for k in _TAGS}
    except Exception:  # noqa: BLE001 - a header pydicom cannot read gives no crosswalk values
        return {}


def crosswalk_rows(source: Path, dest: Path, results: Iterable) -> list[list[str]]:
    """One row per (pseudonym, study folder) among the written results (export.FileResult:
    status, src relative to source, out relative to dest, patient, study). Reads one original
    and one output header per study. Rows in contract.CROSSWALK_COLUMNS order, sorted."""
    groups: dict[tuple[str, str], list] = {}
    for r in results:
        if r.status == contract.Status.WRITTEN:
            groups.setdefault((r.patient, r.study), []).append(r)
    rows = []
    for (pseudonym, study), members in sorted(groups.items()):
        first = min(members, key=lambda r: r.src)
        original = _header(source / first.src)
        written = _header(dest / first.out)
        rows.append([pseudonym, original.get("PatientID", ""), original.get("PatientName", ""),
                     original.get("PatientBirthDate", ""), study, written.get("StudyInstanceUID", ""),
                     original.get("AccessionNumber", ""), original.get("StudyInstanceUID", ""),
                     original.get("StudyDate", ""), str(len(members))])
    return rows


def crosswalk_text(rows: list[list[str]]) -> str:
    """The CSV text (with a byte-order mark, so Excel shows accents) of crosswalk rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(contract.CROSSWALK_COLUMNS)
    w.writerows([_cell(c) for c in row] for row in rows)
    return contract.CSV_BOM + buf.getvalue()


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula, without control characters."""
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# ---- lookup ------------------------------------------------------------------------------------

def _from_crosswalk(path: Path, query: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [row for row in csv.DictReader(fh)
                if query in (row.get("pseudonym"), row.get("study_folder"), row.get("study_instance_uid_new"))]


def _scan_export(source: Path, exclude: list[Path], mapper: Mapper, query: str) -> Iterator[dict[str, str]]:
    from .export import plan

    seen: set[tuple[str, str]] = set()
    for path in plan(source, exclude):
        h = _header(path)
        if not h.get("StudyInstanceUID") and not h.get("PatientID"):
            continue
        pseudonym = mapper.patient_pseudonym(patient_key_of(h["PatientID"], h["PatientName"],
                                                            h["PatientBirthDate"], h["StudyInstanceUID"]))
        new_uid = mapper.uid(h["StudyInstanceUID"]) if h["StudyInstanceUID"] else ""
        study_folder = "STUDY_" + mapper.short_code(new_uid)  # export.output_path: from the new UID
        if query in (pseudonym, study_folder, new_uid) and (pseudonym, study_folder) not in seen:
            seen.add((pseudonym, study_folder))
            yield {"pseudonym": pseudonym, "patient_id": h["PatientID"], "patient_name": h["PatientName"],
                   "patient_birth_date": h["PatientBirthDate"], "study_folder": study_folder,
                   "study_instance_uid_new": new_uid, "accession_number": h["AccessionNumber"],
                   "study_instance_uid": h["StudyInstanceUID"], "study_date": h["StudyDate"]}


def lookup(query: str, source: Path, dest: Path, key_path: Path, guidelines: Guidelines) -> tuple[list[dict[str, str]], str]:
    """Rows (crosswalk columns) answering `query` (a pseudonym, study folder or new Study UID),
    and where the answer came from. Raises FileNotFoundError when there is neither a crosswalk
    nor a site key (a key is never created by a lookup), mapping.KeyError_ for a damaged key."""
    from .mapping import load_or_create_key

    walk = dest.with_name(dest.name + contract.HOSPITAL_SUFFIX) / contract.CROSSWALK_NAME
    if walk.is_file():
        rows = _from_crosswalk(walk, query)
        if rows:
            return rows, str(walk)
    if not key_path.is_file():
        raise FileNotFoundError(key_path)
    key, _ = load_or_create_key(key_path)
    s = guidelines.settings
    mapper = Mapper(key, s.pseudonym_prefix, s.min_shift_days, s.max_shift_days)
    hospital = dest.with_name(dest.name + contract.HOSPITAL_SUFFIX)
    rows = list(_scan_export(source, [dest, hospital, key_path], mapper, query))
    return rows, f"the headers of {source} with the site key {key_path}"


def lookup_main(query: str, source: Path, dest: Path, key_path: Path, guidelines: Guidelines) -> int:
    """deid_tool --lookup: print who a pseudonym is. 0 found, 1 not found, 2 no key/crosswalk."""
    from .mapping import KeyError_

    query = query.strip()
    try:
        rows, where = lookup(query, source, dest, key_path, guidelines)
    except FileNotFoundError:
        console.error(f"no crosswalk beside {dest} and no site key at {key_path}",
                      "give the export (deid_tool --lookup CODE EXPORT) and the key used (--key FILE)")
        return 2
    except (KeyError_, OSError) as e:
        console.error(f"cannot use the site key: {e}", "give the key used for the export with --key FILE")
        return 2
    console.say("HOSPITAL SIDE ONLY: this answer names a patient. Do not send it.")
    if not rows:
        console.say(f"{query}: not found in {where}.")
        return 1
    console.say(f"{query} (from {where}):")
    for row in rows:
        console.say(f"  {row['pseudonym']} = Patient ID {row['patient_id']!r}, name {row['patient_name']!r}, "
                    f"birth date {row['patient_birth_date']!r}")
        console.say(f"    study {row['study_folder']} = accession {row['accession_number']!r}, "
                    f"study date {row['study_date']!r}, Study Instance UID {row['study_instance_uid']}")
    return 0
