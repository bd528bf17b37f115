"""python -m deidkit.verify DIR [options]: the same as deid_tool --verify DIR."""
import sys

from .cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(["--verify", *argv] if argv[:1] and not argv[0].startswith("-") else argv))
