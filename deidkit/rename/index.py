"""rename_folders, step 3: index.csv, the neutral list of every folder (contract.INDEX_COLUMNS)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .. import contract
from ..contract import INDEX_COLUMNS, INDEX_NAME  # noqa: F401 (their old home)
from .plan import RenamePlan


def index_csv(plan: RenamePlan) -> bytes:
    """index.csv's bytes: a byte-order mark (Excel reads UTF-8), the header, one row per folder."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(plan.index)
    return (contract.CSV_BOM + buf.getvalue()).encode("utf-8")  # the mark makes Excel read UTF-8


def is_our_index(path: Path) -> bool:
    """True when path is an index.csv rename_folders wrote (its header row; with or without BOM)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), None) == INDEX_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


