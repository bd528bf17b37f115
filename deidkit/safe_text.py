"""Text that leaves the program safe to open: CSV cells, console lines, plain-text reports.

One place for the neutralisation every text the kit writes or prints goes through (issue 20,
item 15). Header values and file names are data from the export, and an export can be hostile:

  csv_cell(s)      a cell for any CSV the kit writes (deid_manifest.csv, held_back.csv, index.csv,
                   --verify's findings): control characters made visible, and a cell a spreadsheet
                   would run as a formula (leading =, +, -, @, tab or carriage return) prefixed with
                   an apostrophe (OWASP "CSV injection"), which spreadsheets show and do not run.
  console_text(s)  a line for the console or a plain-text report: terminal escape sequences
                   (ESC[2J, ESC]0;title BEL, ...) and every other control character, newlines
                   included, made visible as \\xNN / \\n, so a value cannot clear the screen, retitle
                   the window, fake a verdict line or hide text.
  html_text(s)     html.escape with quotes, for every page (review.html, the verify report).

Pure functions of str; they never raise on any str (surrogates included).
"""
from __future__ import annotations

import html
import re

# C0 controls, DEL and C1 controls (U+0080-U+009F: 8-bit CSI is U+009B), plus the Unicode line and
# paragraph separators and bidirectional overrides, which reorder what a person reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match) -> str:
    ch = match.group(0)
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def console_text(value: object) -> str:
    """value as one printable line: every control character (ESC, CR, LF, BEL, C1, bidi) shown as
    an escape such as \\x1b or \\n; a byte of a file name that is not UTF-8 (os.fsdecode's
    surrogateescape, U+DC80-U+DCFF) shown as \\xNN, the byte itself; other lone surrogates as '?'."""
    text = value if isinstance(value, str) else str(value)
    return undecodable_visible(_CONTROL.sub(_visible, text))


def undecodable_visible(text: str) -> str:
    """text with every byte of a file name that is not UTF-8 (os.fsdecode's surrogateescape,
    U+DC80-U+DCFF) written as \\xNN, other lone surrogates as '?': UTF-8 can then store it."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return "".join((f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else "?")
                   if "\ud800" <= c <= "\udfff" else c for c in text)


def csv_cell(value: object) -> str:
    """value as a CSV cell a spreadsheet shows and never runs: console_text, then a leading
    apostrophe if it starts like a formula (=, +, -, @, tab, CR; checked before the control
    characters are made visible, so a leading tab or CR counts). Numbers pass as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    lead = text.startswith(FORMULA_LEAD)
    text = console_text(text)
    return "'" + text if lead or text.startswith(FORMULA_LEAD) else text


def csv_row(values: list[object]) -> list[str]:
    """csv_cell of every value of a row (for csv.writer.writerow)."""
    return [csv_cell(v) for v in values]


def html_text(value: object) -> str:
    """value escaped for HTML text and attribute values (<, >, &, both quotes)."""
    return html.escape(console_text(value), quote=True)
