"""rename_folders: give every folder and file below a root a neutral, indexed name, in place.

Scheme (names come from what is inside, read from the DICOM headers; never header text):
  P0001            a folder holding one patient (patients numbered 1.. in a neutral order)
  P0001_ST01_CT    a folder holding one study of that patient (studies by date), modalities
  SE001_CT         a folder holding one series (series ranked by series number within its study)
  F001             any other folder (several patients, nothing readable, below a series)
  IM00001.dcm      a DICOM file (ordered by patient, study, series, instance number)
  OTHER0001.pdf    a file that is not DICOM (a common extension is kept so it still opens;
                   any other ending is dropped: it could carry a name)
A folder is named at the first level below what its ancestors were named at, at which it holds
one thing and its parent holds several; failing that, at the next level below its ancestors'
if it holds one thing there; else F. Numbers are zero-padded so names sort naturally; a
duplicate among siblings (ignoring case) gets _2, _3.

DICOMDIR files are moved out of the tree to the hospital-side folder (they list patient names
and old file names, and would be stale after renaming); so are non-DICOM files with
--move-other-out. Crash safety lives in deidkit.journal.

Modules: scan (tree + neutral facts), plan (the typed plan, pure), index (index.csv); the
command line is deidkit.cli.rename_folders.
"""
from __future__ import annotations

from ..contract import INDEX_COLUMNS, INDEX_NAME
from .index import index_csv, is_our_index
from .plan import (KEPT_EXTENSIONS, LEVELS, WINDOWS_BAD_CHARS, WINDOWS_MAX_PATH, WINDOWS_RESERVED, IndexRow,
                   PlanEntry, PlanGroup, RenamePlan, _unique, casefold_duplicates, key_mapping, make_plan,
                   plan_problems, plan_token, windows_name_problem, windows_path_too_long)
from .scan import MEDIA_STORAGE_DIRECTORY, MODALITIES, Facts, Node, read_facts, scan

__all__ = ["INDEX_COLUMNS", "INDEX_NAME", "KEPT_EXTENSIONS", "LEVELS", "MEDIA_STORAGE_DIRECTORY", "MODALITIES",
           "WINDOWS_BAD_CHARS", "WINDOWS_MAX_PATH", "WINDOWS_RESERVED", "Facts", "IndexRow", "Node", "PlanEntry",
           "PlanGroup", "RenamePlan", "_unique", "casefold_duplicates", "index_csv", "is_our_index", "key_mapping",
           "main", "make_plan", "plan_problems", "plan_token", "read_facts", "run", "scan", "windows_name_problem",
           "windows_path_too_long"]


def main(argv: list[str] | None = None) -> int:
    """rename_folders' command line (deidkit.cli.rename_folders.main)."""
    from ..cli.rename_folders import main as cli_main

    return cli_main(argv)


def run(argv: list[str]) -> int:
    """One run without the double-click pause (deidkit.cli.rename_folders.run)."""
    from ..cli.rename_folders import run as cli_run

    return cli_run(argv)
