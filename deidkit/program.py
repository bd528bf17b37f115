"""Where the running program sits (script or frozen executable). A module of its own, imported
by console, mapping and the command lines alike, so none of them needs another (no import circle)."""
from __future__ import annotations

import sys
from pathlib import Path


def is_frozen() -> bool:
    """True inside a PyInstaller executable."""
    return bool(getattr(sys, "frozen", False))


def program_dir() -> Path:
    """The folder the program sits in (the executable's, never PyInstaller's unpack folder)."""
    if is_frozen():
        return Path(sys.executable).resolve().parent
    return Path(sys.argv[0]).resolve().parent
