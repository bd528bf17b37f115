#!/usr/bin/env python3
"""deid_tool: write a de-identified copy of a PACS export (see README.txt). Thin entry point."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # parallel workers in the frozen executable
    from deidkit.cli_deid import main

    sys.exit(main())
