"""What a run leaves behind: the outward manifest and summary (no PHI), the hospital-side log.

Outward files are deterministic (no timestamps, sorted rows) so a re-run gives the same bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from pathlib import Path

from . import __version__
from .safe_text import console_text, csv_row
from .export import (DICOMDIR, DUPLICATE, FAILED, HELD, MANIFEST_NAME, SKIPPED, SUMMARY_NAME, WRITTEN,
                     FileResult, RunSummary)
from .guidelines import Guidelines

from .contract import CROSSWALK_NAME, CSV_BOM, HELD_BACK_NAME, LOG_NAME, MANIFEST_COLUMNS  # noqa: E402


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    tmp.replace(path)


def manifest_text(summary: RunSummary) -> str:
    """manifest.csv: one row per written file (neutral path, size, sha256, pseudonym, study, series, modality, SOP class), sorted by path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_COLUMNS)
    for r in sorted((r for r in summary.results if r.status == WRITTEN), key=lambda r: r.out):
        w.writerow(csv_row([r.out, r.size, r.sha256, r.patient, r.study, r.series, r.modality, r.sop_class]))
    return buf.getvalue()


def reason_counts(results: list[FileResult], statuses: tuple[str, ...]) -> list[tuple[str, int]]:
    """(reason group, count) of the results with these statuses, most frequent first."""
    counts = Counter(_reason_group(r.reason) for r in results if r.status in statuses)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _reason_group(reason: str) -> str:
    return reason.split(" (")[0] if reason.startswith("burned-in text risk") else reason


def summary_text(summary: RunSummary, guidelines: Guidelines) -> str:
    """The short human summary that travels with the data: counts and reasons, no names."""
    written = [r for r in summary.results if r.status == WRITTEN]
    lines = [
        "De-identified delivery",
        f"Made by deidkit {__version__} with {guidelines.describe()}",
        f"Guideline table sha256: {guidelines.sha256}",
        "",
        f"Files de-identified: {len(written)}",
        f"Patients: {len({r.patient for r in written})}  Studies: {len({(r.patient, r.study) for r in written})}"
        f"  Series: {len({(r.patient, r.study, r.series) for r in written})}",
        "Modalities: " + (", ".join(f"{m or 'NA'} {n}" for m, n in sorted(Counter(r.modality for r in written).items()))
                          or "none"),
        f"Held back for review at the hospital: {summary.count(HELD)}",
        f"Failed (unreadable): {summary.count(FAILED)}",
        f"Duplicates not repeated: {summary.count(DUPLICATE)}",
        f"Not DICOM, not copied: {summary.count(SKIPPED)}; DICOMDIR left out: {summary.count(DICOMDIR)}",
    ]
    for reason, n in reason_counts(summary.results, (HELD, FAILED)):
        lines.append(f"  {n} x {reason}")
    lines += summary.review_lines
    lines += _labels_missing_lines(summary.results)
    lines += ["", f"Every file is listed with its size and SHA-256 in {MANIFEST_NAME}."]
    return "\n".join(console_text(line) for line in lines) + "\n"


def action_count_lines(results: list[FileResult]) -> list[str]:
    """The run log's totals of what was done to the elements of the files written or held
    (FileResult.actions: action and reason, no tag or value), most frequent first."""
    totals: dict[str, int] = {}
    for r in results:
        for key, n in r.actions.items():
            totals[key] = totals.get(key, 0) + n
    if not totals:
        return []
    return ["", "Elements changed, by action and reason (all files):",
            *(f"  {n:>10,}  {key}" for key, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))]


def _labels_missing_lines(results: list[FileResult]) -> list[str]:
    """Delivered labels (SEG, SR, RTSTRUCT ...) that point at an instance that was held back."""
    from .content import labels_missing_references

    missing = labels_missing_references(results)
    if not missing:
        return []
    lines = [f"Labels pointing at held-back instances: {len(missing)} file(s), "
             f"{sum(n for _, n in missing)} reference(s) (the image a label is for was not sent):"]
    lines += [f"  {out}: {n}" for out, n in missing[:50]]
    if len(missing) > 50:
        lines.append(f"  ... and {len(missing) - 50} more")
    return lines


def write_outward(dest: Path, summary: RunSummary, guidelines: Guidelines) -> None:
    """Write manifest.csv and summary.txt into the delivery (atomically; no PHI)."""
    _atomic_write(dest / MANIFEST_NAME, manifest_text(summary))
    _atomic_write(dest / SUMMARY_NAME, summary_text(summary, guidelines))


def write_hospital_side(hospital_dir: Path, summary: RunSummary, guidelines: Guidelines,
                        source: Path, dest: Path, notes: list[str]) -> Path:
    """held_back.csv (original paths: PHI, stays here) and a run log. Returns the CSV path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ref", "status", "original_file", "reason", "output_file"])
    for r in summary.results:
        if r.status in (HELD, FAILED, SKIPPED, DICOMDIR, DUPLICATE) or r.reason:
            w.writerow(csv_row([r.ref, r.status, r.src, r.reason, r.out]))
    held_path = hospital_dir / HELD_BACK_NAME
    _atomic_write(held_path, CSV_BOM + buf.getvalue())  # the mark makes Excel read UTF-8 (MÜLLER)
    log = [
        f"deidkit {__version__} run at {dt.datetime.now().isoformat(timespec='seconds')}",
        console_text(f"Source: {source}"),
        console_text(f"Output: {dest}"),
        f"Guidelines: {guidelines.describe()} (sha256 {guidelines.sha256})",
        *(console_text(n) for n in notes),
        "",
        summary_text(summary, guidelines),
        *action_count_lines(summary.results),
    ]
    with (hospital_dir / LOG_NAME).open("a", encoding="utf-8") as fp:
        fp.write("\n".join(log) + "\n" + "-" * 72 + "\n")
    return held_path


def write_crosswalk(hospital_dir: Path, source: Path, dest: Path, summary: RunSummary) -> Path:
    """crosswalk.csv (hospital side only: PHI): original Patient ID, name, accession and Study UID
    beside each pseudonym and study folder written (deidkit.crosswalk). Returns its path."""
    from .crosswalk import crosswalk_rows, crosswalk_text

    path = hospital_dir / CROSSWALK_NAME
    _atomic_write(path, crosswalk_text(crosswalk_rows(source, dest, summary.results)))
    return path
