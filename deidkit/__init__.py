"""deidkit: shared package of deid_tool and rename_folders (see README.txt for the map)."""

__version__ = "0.1.0"
