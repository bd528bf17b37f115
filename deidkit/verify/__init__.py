"""`deid_tool --verify DIR`: the receiving side's double check of a delivery. Read-only.

Every file is judged by the same guideline table the engine applies (deidkit.guidelines), under
the profile the file declares in De-identification Method (Code Sequence); a file that does not
declare de-identification is judged by the Basic Profile with no option. Findings name every leak
per attribute with any suspicious value masked; severities and rule ids come from rules.CATALOGUE.
Nothing is written inside DIR; the findings CSV and the HTML record go beside it.

Modules (one concern each):
  rules      the catalogue of every rule (id, category, severity, meaning) and Finding
  text       name rules: shapes in text and in file names, judged by what the attribute is
  elements   per-element checks of one dataset (Checker) and the FileResult they fill
  onefile    the one-file check (a pure function: check_file), bytes outside the elements, pixels
  kitfiles   the kit's own programs and files (never findings)
  delivery   whole-delivery checks: tree, all cores or Dask, cross-checks, manifest, verdict
  report     findings CSV and the HTML record
  cli        the command line (--verify, --list-rules)
"""
from .cli import build_parser, main
from .delivery import (Verdict, check_files, check_files_on_dask, delivery_identifiers, list_tree, read_manifest, verify,
                       verify_on_dask)
from .elements import FileResult, category_of, tag_text
from .kitfiles import MANIFEST_NAME, SUMMARY_NAME, kit_file_kind
from .onefile import check_file, declared_options, look_for_text
from .report import record_lines, render_html, summary_lines, write_findings_csv, write_html
from .rules import CATALOGUE, CSV_HEADER, FAIL, REVIEW, Finding, catalogue_lines
from .text import is_pseudonym, name_problems, text_hits, uid_problem

__all__ = [
    "CATALOGUE", "CSV_HEADER", "FAIL", "MANIFEST_NAME", "REVIEW", "SUMMARY_NAME", "FileResult", "Finding", "Verdict",
    "build_parser", "catalogue_lines", "category_of", "check_file", "check_files", "check_files_on_dask", "declared_options",
    "delivery_identifiers", "is_pseudonym", "kit_file_kind", "list_tree", "look_for_text", "main", "name_problems",
    "read_manifest", "record_lines", "render_html", "summary_lines", "tag_text", "text_hits", "uid_problem",
    "verify", "verify_on_dask", "write_findings_csv", "write_html",
]
