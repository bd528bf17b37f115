"""deidkit: shared package of deid_tool and rename_folders (see README.txt for the map)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Old module names that moved, kept importable ("import deidkit.cli_deid", "from deidkit import
# cli_deid", "from deidkit.cli_deid import main"): the old name is the new module itself.
_MOVED = {"deidkit.cli_deid": "deidkit.cli.deid_tool"}


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return importlib.import_module(_MOVED[spec.name])

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        """Nothing to run: the module was imported under its new name."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname in _MOVED:
            return importlib.util.spec_from_loader(fullname, _MovedLoader())
        return None


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())
