#!/usr/bin/env python3
"""deid_tool: write a de-identified copy of a PACS export (see README.txt). Thin entry point."""
import multiprocessing
import os
import sys

if __name__ == "__main__":
    # The work runs in one process per core; BLAS threads inside each (the text detector's
    # matrix products) would only fight over the same cores. Set before numpy loads; workers
    # inherit it.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    multiprocessing.freeze_support()  # parallel workers in the frozen executable
    try:
        from deidkit.cli.deid_tool import main

        code = main()
    except KeyboardInterrupt:  # Ctrl-C while it was still starting: one plain line, no traceback
        print("Stopped by the user before anything was done. Run the same command again.", file=sys.stderr)
        code = 2
    sys.exit(code)
