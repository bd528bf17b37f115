"""One-page HTML summary of a --verify run, for a person. Self-contained (no scripts, no links out).

File and folder names that a name check flagged are shown masked here (the CSV keeps
the contract's exact paths for machines); values in details are already masked by verify.py.
"""
from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path

from .sweep import mask

MAX_ROWS = 500  # the page stays one page; the CSV has every finding

_STYLE = """
body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:1.5em;color:#222}
.v{font-size:1.6em;font-weight:bold;padding:.4em .8em;border-radius:6px;display:inline-block}
.PASS{background:#d8f3dc}.REVIEW{background:#fff3bf}.FAIL{background:#ffd6d6}
table{border-collapse:collapse;margin-top:1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f1f1f1} td.s{font-weight:bold}
"""


def _masked_path(rel: str, bad_names: set[str]) -> str:
    """The path with every component that failed a name check masked."""
    parts = rel.split("/")
    out = []
    for i in range(len(parts)):
        prefix = "/".join(parts[: i + 1])
        out.append(mask(parts[i]) if prefix in bad_names else parts[i])
    return "/".join(out)


def render_html(title: str, verdict, summary: list[str], category_words: dict[str, str]) -> str:
    findings = list(verdict.findings)
    bad_names = {f.file for f in findings if f.location == "name"}
    e = html.escape
    words = {"PASS": "PASS: nothing suspicious found",
             "REVIEW": "REVIEW: a person should look at the findings below",
             "FAIL": "FAIL: PHI found; do not take this delivery into the library"}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Verify report: {e(mask(title))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Delivery check</h1><div class='v {verdict.status}'>{e(words[verdict.status])}</div>",
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in summary) + "</ul>",
    ]
    counts = Counter(f.rule for f in findings)
    if counts:
        parts.append("<h2>Rules that fired</h2><table><tr><th>Rule</th><th>What</th><th>Findings</th></tr>")
        for rule, n in sorted(counts.items()):
            cat = rule.split(":", 1)[0]
            parts.append(f"<tr><td>{e(rule)}</td><td>{e(category_words.get(cat, cat))}</td><td>{n}</td></tr>")
        parts.append("</table>")
        shown = sorted(findings, key=lambda f: (f.severity != "FAIL", f.file, f.location))[:MAX_ROWS]
        parts.append("<h2>Findings</h2>")
        if len(findings) > MAX_ROWS:
            parts.append(f"<p>First {MAX_ROWS} of {len(findings)}; the findings CSV lists all.</p>")
        parts.append("<table><tr><th>Severity</th><th>File</th><th>Where</th><th>Rule</th><th>Detail</th></tr>")
        for f in shown:
            parts.append(f"<tr><td class='s {f.severity}'>{f.severity}</td><td>{e(_masked_path(f.file, bad_names))}</td>"
                         f"<td>{e(f.location)}</td><td>{e(f.rule)}</td><td>{e(f.detail)}</td></tr>")
        parts.append("</table>")
    parts.append("<p>Read-only check; nothing was written inside the delivery.</p></body></html>")
    return "\n".join(parts)


def write_html(path: Path, title: str, verdict, summary: list[str], category_words: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(title, verdict, summary, category_words), encoding="utf-8")
    os.replace(tmp, path)
