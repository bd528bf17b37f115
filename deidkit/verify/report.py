"""What a --verify run writes: the findings CSV (every finding) and a one-page HTML record for a
person (findings grouped per rule and per file). Self-contained page: no scripts, no links out.

The page is a record of the check: date and time, tool version, guideline edition and SHA-256,
the profile(s) the files declare, whether deid_manifest.csv was checked and its result, counts per
rule, the kit's own files found and where they go, and the folder named as given (the receiving
side's own folder). File and folder names that a name check flagged are shown masked (the CSV keeps
exact paths for machines); values in details are already masked.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

from .. import __version__
from .. import guidelines as gl
from ..safe_text import undecodable_visible
from ..sweep import mask
from .delivery import Verdict
from .rules import CATALOGUE, CATEGORY_WORDS, CSV_HEADER, FAIL, Finding

MAX_ROWS = 500  # the page stays one page; the CSV has every finding
WORDS = {"PASS": "PASS: nothing suspicious found",
         "REVIEW": "REVIEW: nothing that is certainly PHI, but a person should look at the findings",
         "FAIL": "FAIL: PHI found; do not take this delivery into the library; tell the sender"}
_STYLE = """
body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:1.5em;color:#222}
.v{font-size:1.6em;font-weight:bold;padding:.4em .8em;border-radius:6px;display:inline-block}
.PASS{background:#d8f3dc}.REVIEW{background:#fff3bf}.FAIL{background:#ffd6d6}
table{border-collapse:collapse;margin-top:1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f1f1f1} td.s{font-weight:bold}
"""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_cell(text: str) -> str:
    """A CSV cell no spreadsheet runs: control characters out, a formula-leading cell quoted."""
    text = undecodable_visible(_CONTROL.sub("?", text))
    return "'" + text if text[:1] in ("=", "+", "@", "-", "\t", "\r") else text


def write_findings_csv(path: Path, findings: tuple[Finding, ...] | list[Finding]) -> None:
    """Every finding, one row each (CSV_HEADER columns); written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for finding in findings:
            w.writerow([safe_cell(c) for c in finding.row()])
    os.replace(tmp, path)


def record_lines(folder: str, v: Verdict, g: gl.Guidelines, when: dt.datetime | None = None) -> list[str]:
    """The record of one check, as lines: when, what with, what was declared, manifest, counts."""
    when = when or dt.datetime.now(dt.timezone.utc)
    lines = [
        f"Folder checked: {folder}",
        f"Checked at: {when.strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"Tool: deid_tool {__version__} --verify; guideline table PS3.15 {g.edition}, SHA-256 {g.sha256}",
        f"Files: {v.files_checked} checked, {v.dicom_files} DICOM",
        "Declared profile: " + ("; ".join(f"{p} ({n} file(s))" for p, n in v.profiles) or "no DICOM file"),
        f"Manifest: {v.manifest}",
    ]
    decided = Counter(f.rule for f in v.deciding)
    if decided:
        lines.append(f"Decided by: {', '.join(f'{r} ({n})' for r, n in sorted(decided.items()))}")
    return lines


def summary_lines(v: Verdict) -> list[str]:
    """Counts per category and severity (FAIL first), then the kit's own files and where they go."""
    lines = [] if v.findings else ["No findings."]
    by_cat = Counter((f.category, f.severity) for f in v.findings)
    for (cat, sev), n in sorted(by_cat.items(), key=lambda kv: (kv[0][1] != FAIL, kv[0][0])):
        lines.append(f"{sev:6} {CATEGORY_WORDS.get(cat, cat)}: {n} finding(s)")
    for rel, note in v.kit_files:
        lines.append(f"Kit file {rel}: {note}")
    return lines


def _masked_path(rel: str, bad_names: set[str]) -> str:
    parts = rel.split("/")
    return "/".join(mask(p) if "/".join(parts[: i + 1]) in bad_names else p for i, p in enumerate(parts))


def _rule_table(findings: list[Finding]) -> list[str]:
    e = html.escape
    counts = Counter(f.rule for f in findings)
    files: dict[str, set[str]] = defaultdict(set)
    for f in findings:
        files[f.rule].add(f.file)
    out = ["<h2>Rules that fired</h2><table><tr><th>Rule</th><th>Severity</th><th>Meaning</th>"
           "<th>Findings</th><th>Files</th></tr>"]
    for rule, n in sorted(counts.items(), key=lambda kv: (CATALOGUE[kv[0]].severity != FAIL, kv[0])):
        out.append(f"<tr><td>{e(rule)}</td><td>{e(CATALOGUE[rule].severity)}</td><td>{e(CATALOGUE[rule].meaning)}</td>"
                   f"<td>{n}</td><td>{len(files[rule])}</td></tr>")
    out.append("</table>")
    return out


def _file_groups(findings: list[Finding], bad_names: set[str]) -> list[str]:
    """One row per file: its findings grouped by rule, attributes listed (the CSV has each row)."""
    e = html.escape
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_file[f.file].append(f)
    order = sorted(by_file, key=lambda rel: (not any(f.severity == FAIL for f in by_file[rel]), rel))
    out = ["<h2>Findings by file</h2>"]
    if len(order) > MAX_ROWS:
        out.append(f"<p>First {MAX_ROWS} of {len(order)} files; the findings CSV lists every finding.</p>")
    out.append("<table><tr><th>Severity</th><th>File</th><th>Rule: where (detail of the first)</th></tr>")
    for rel in order[:MAX_ROWS]:
        group = by_file[rel]
        sev = FAIL if any(f.severity == FAIL for f in group) else "REVIEW"
        rules: dict[str, list[Finding]] = defaultdict(list)
        for f in group:
            rules[f.rule].append(f)
        cells = "<br>".join(
            f"<b>{e(r)}</b> ({len(fs)}): {e(', '.join(sorted({f.location for f in fs}))[:300])} - {e(fs[0].detail)}"
            for r, fs in sorted(rules.items()))
        out.append(f"<tr><td class='s {sev}'>{sev}</td><td>{e(_masked_path(rel, bad_names))}</td><td>{cells}</td></tr>")
    out.append("</table>")
    return out


def render_html(folder: str, v: Verdict, record: list[str], summary: list[str]) -> str:
    """The page as text. folder is the checked folder's own name, shown as given."""
    findings = list(v.findings)
    bad_names = {f.file for f in findings if f.location == "name"}
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Verify report: {e(folder)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Delivery check: {e(folder)}</h1><div class='v {v.status}'>{e(WORDS[v.status])}</div>",
        "<h2>Record</h2><ul>" + "".join(f"<li>{e(line)}</li>" for line in record) + "</ul>",
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in summary) + "</ul>",
    ]
    if findings:
        parts += _rule_table(findings) + _file_groups(findings, bad_names)
    parts.append("<p>Read-only check; nothing was written inside the delivery.</p></body></html>")
    return "\n".join(parts)


def write_html(path: Path, folder: str, v: Verdict, record: list[str], summary: list[str]) -> None:
    """Write the page atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(undecodable_visible(render_html(folder, v, record, summary)), encoding="utf-8")
    os.replace(tmp, path)
