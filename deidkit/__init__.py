"""deidkit: shared package of deid_tool and rename_folders (see README.txt for the map)."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """deidkit.cli_deid, the old home of deid_tool's command line, is deidkit.cli.deid_tool."""
    if name == "cli_deid":
        import importlib
        import sys

        module = importlib.import_module(".cli.deid_tool", __name__)
        sys.modules.setdefault(__name__ + ".cli_deid", module)
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
