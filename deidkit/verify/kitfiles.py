"""The kit's own programs and files in a delivery (issue 18 item 1): recognised by name AND
content (deidkit.contract, shared with deid_tool and rename_folders), never findings, listed in
the report with where they go."""
from __future__ import annotations

from pathlib import Path

from ..contract import INDEX_NAME, MANIFEST_NAME, SUMMARY_NAME, kit_file_kind, kit_folder_kind

__all__ = ["INDEX_NAME", "MANIFEST_NAME", "NOTES", "SUMMARY_NAME", "kit_file_kind", "kit_file_note", "kit_folder"]

NOTES = {
    "manifest": "deid_tool's manifest of this delivery: it travels with the delivery (used for completeness)",
    "summary": "deid_tool's summary (counts, no names): it travels with the delivery",
    "index": "rename_folders' index of neutral folder names: not part of the images; keep it on the hospital "
             "side or send it only if agreed",
    "program": "a DeidKit program: not part of the delivery; remove it before sending (it stays on the "
               "hospital side)",
    "folder": "a DeidKit program folder (one-folder build, package or guideline tables): not part of the "
              "delivery; remove it before sending",
}


def kit_folder(path: Path) -> bool:
    """True for a top-level folder of the kit's own (recognised by a file only the kit holds)."""
    return kit_folder_kind(path) is not None


def kit_file_note(path: Path, rel: str) -> str | None:
    """What a kit file is and where it goes, or None when the file is not one of the kit's."""
    kind = kit_file_kind(path, rel)
    return NOTES.get(kind) if kind else None
