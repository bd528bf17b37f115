"""An earlier run in the output folder: is it ours, and removing exactly what it wrote (never a
file the kit did not write: rule 1) before a run made differently replaces it."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .contract import MANIFEST_NAME, OUTPUT_PATH_RE, PARTIAL_DIR, STATE_NAME, SUMMARY_NAME
from .export_twins import remove_marker_folders


def output_is_ours(dest: Path) -> bool:
    """True when dest holds a delivery (manifest) or a partial run of deid_tool."""
    return (dest / MANIFEST_NAME).is_file() or (dest / PARTIAL_DIR).is_dir()


def remove_earlier_output(dest: Path, hospital_dir: Path) -> list[str]:
    """Remove what an earlier run wrote into dest: the files its manifest or its journal lists (and
    only if named as this kit names them, contract.OUTPUT_PATH_RE), its reports and partial folder,
    then the folders left empty. Returns the files left (relative, sorted): files the kit did not
    write are never removed. The journal of the earlier run is removed too (the new run starts fresh).

    Raises OSError if a file the kit wrote cannot be removed."""
    state = hospital_dir / STATE_NAME
    for rel in sorted(_listed_outputs(dest / MANIFEST_NAME, state)):
        if OUTPUT_PATH_RE.fullmatch(rel) and ".." not in rel.split("/"):
            path = dest / rel
            if path.is_file() and not path.is_symlink():
                path.unlink()
    for name in (MANIFEST_NAME, SUMMARY_NAME, MANIFEST_NAME + ".tmp", SUMMARY_NAME + ".tmp"):
        if (dest / name).is_file():
            (dest / name).unlink()
    partial = dest / PARTIAL_DIR
    if partial.is_dir() and not partial.is_symlink():
        remove_marker_folders(partial)
        for leftover in partial.iterdir():
            if leftover.name.endswith(".part") and leftover.is_file():
                leftover.unlink()
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        if Path(dirpath) != dest and not os.listdir(dirpath):
            os.rmdir(dirpath)
    if state.is_file():
        state.unlink()
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir() or p.is_symlink())


def _listed_outputs(manifest: Path, state: Path) -> set[str]:
    """The output files (relative to DEST) the earlier run's manifest and journal name."""
    ours: set[str] = set()
    if manifest.is_file():
        with manifest.open(encoding="utf-8", errors="replace", newline="") as fp:
            ours |= {row.get("file", "") for row in csv.DictReader(fp)}
    if state.is_file():
        with state.open(encoding="utf-8", errors="replace") as fp:
            for line in fp:
                try:
                    ours.add(str(json.loads(line).get("out", "")))
                except (ValueError, AttributeError):
                    continue
    return ours
