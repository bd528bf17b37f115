"""rename_folders: rename patient-named folders and files in place to neutral indexed names.

Drop it into an export folder and run it (or: python rename_folders.py ROOT --yes).
See README.txt; the work is done by deidkit.rename.
"""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # first, for the frozen executable
    try:
        from deidkit.cli.rename_folders import main

        code = main()
    except KeyboardInterrupt:  # Ctrl-C while it was still starting: one plain line, no traceback
        print("Stopped by the user before anything was done. Run the same command again.", file=sys.stderr)
        code = 2
    sys.exit(code)
