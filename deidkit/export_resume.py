"""The resume journal (hospital side, contract.STATE_NAME): one JSON line per finished file, so
a run killed at any moment goes on where it stopped; and whether an earlier run may be resumed."""
from __future__ import annotations

import json
import os
import time
from dataclasses import fields
from pathlib import Path

from .contract import SOURCE_NOTE, STATE_NAME
from .export_model import WRITTEN, FileResult, RunConfig

_RESULT_FIELDS = tuple(f.name for f in fields(FileResult))


class StateWriter:
    """Append-only resume journal (hospital side): one JSON line per finished file.

    Each line is handed to the OS at once (a killed process loses nothing); it is forced to disk
    at most every FSYNC_INTERVAL seconds, because an fsync per file costs more than the file's
    work on an ordinary disk. After a power cut the lines not yet on disk are simply redone, and
    load_state redoes any output whose size does not match its line.
    """

    FSYNC_INTERVAL = 2.0

    def __init__(self, path: Path, fingerprint: str, fresh: bool) -> None:
        self.path, self.fingerprint, self.fresh = path, fingerprint, fresh
        self.last_sync = time.monotonic()

    def __enter__(self) -> "StateWriter":
        if self.fresh:
            self.fp = self.path.open("w", encoding="utf-8")
            self.fp.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")
        else:
            self.fp = self.path.open("a", encoding="utf-8")
        return self

    def append(self, result: FileResult) -> None:
        """One line for one finished file (every FileResult field)."""
        # the fields one level deep: asdict's recursive copy costs three times the json encoding
        self.fp.write(json.dumps({name: getattr(result, name) for name in _RESULT_FIELDS}, ensure_ascii=True) + "\n")
        self.fp.flush()
        if time.monotonic() - self.last_sync >= self.FSYNC_INTERVAL:
            os.fsync(self.fp.fileno())
            self.last_sync = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.fp.flush()
        os.fsync(self.fp.fileno())
        self.fp.close()


def load_state(path: Path, fingerprint: str, dest: Path) -> dict[str, FileResult]:
    """Results (by source path) of an earlier, interrupted run of the same job whose outputs are
    still in place; {} when there is none or it was another job (other fingerprint)."""
    if not path.exists():
        return {}
    results: dict[str, FileResult] = {}
    with path.open(encoding="utf-8") as fp:
        first = fp.readline()
        try:
            if json.loads(first).get("fingerprint") != fingerprint:
                return {}
        except (ValueError, AttributeError):
            return {}
        for line in fp:
            try:
                r = FileResult(**json.loads(line))
            except (ValueError, TypeError):
                break  # a line cut by the kill: everything after it is redone
            results[r.src] = r
    for src, r in list(results.items()):
        if r.status == WRITTEN and not _in_place(dest / r.out, r.size):
            del results[src]
    return results


def _in_place(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def state_matches(config: RunConfig) -> bool:
    """True when the run state beside the output was written with this configuration (same fingerprint): the run may resume."""
    path = config.hospital_dir / STATE_NAME
    if not path.exists():
        return False
    try:
        with path.open(encoding="utf-8") as fp:
            return json.loads(fp.readline()).get("fingerprint") == config.fingerprint()
    except (OSError, ValueError, AttributeError):
        return False


def source_of(hospital_dir: Path) -> Path | None:
    """The export an earlier run into this output came from (read from its hospital-side note)."""
    try:
        return Path((hospital_dir / SOURCE_NOTE).read_text(encoding="utf-8", errors="surrogateescape").strip())
    except OSError:
        return None
