"""How often a damaged Patient's Name still finds the undamaged name elsewhere (or holds the file).

    python benchmarks/fuzz_names.py [--cases 20000] [--seed 1] [--show 20]

The file-level fuzzer (fuzz_export.py) damages a name only now and then; this one damages only
the name, so the learning rules (deidkit.sweep: one-slip neighbours, letter runs, stems of damaged
parts, endings) and the hold rule (deidkit.engine.damaged_name_reason) are measured directly.
Each case takes the planted name of fuzz_export.py and changes 1-4 bytes: scattered random bytes,
one run of random bytes, or random bytes inserted; the bytes are read as Latin-1, as pydicom
reads a name without a character set. Counted:
  held     the engine holds the file (the name holds characters no name has)
  found    every part of the undamaged name is found in a comment ("Patient OTTOLINE seen")
  missed   a part is not found: the comment would go out naming the patient
Prints the counts and the first missed names. No timing, no I/O: the same figures every run.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz_export import FAMILY, GIVEN  # noqa: E402


def damage(name: bytes, rng: random.Random) -> bytes:
    """name with 1-4 bytes changed: scattered, in one run, or inserted."""
    out = bytearray(name)
    count = rng.choice((1, 2, 2, 3, 4))
    mode = rng.random()
    if mode < 0.5:
        for _ in range(count):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif mode < 0.8:
        at = rng.randrange(len(out))
        for i in range(at, min(at + count, len(out))):
            out[i] = rng.randrange(256)
    else:
        at = rng.randrange(len(out) + 1)
        out[at:at] = bytes(rng.randrange(256) for _ in range(count))
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--show", type=int, default=20)
    args = p.parse_args(argv)
    from deidkit.engine import damaged_name_reason
    from deidkit.sweep import Identifiers

    rng = random.Random(args.seed)
    planted = f"{FAMILY}^{GIVEN}".encode("ascii")
    counts = {"held": 0, "found": 0, "missed": 0}
    missed: list[str] = []
    for _ in range(args.cases):
        name = damage(planted, rng).decode("latin-1")
        if damaged_name_reason(name):
            counts["held"] += 1
            continue
        ids = Identifiers()
        ids.add_name(name)
        if all(ids.find(f"Patient {part} seen") for part in (FAMILY, GIVEN)):
            counts["found"] += 1
        else:
            counts["missed"] += 1
            missed.append(name)
    print(f"cases {args.cases} (seed {args.seed}): held {counts['held']}, found {counts['found']}, "
          f"missed {counts['missed']} ({100 * counts['missed'] / max(args.cases, 1):.1f} %)")
    for name in missed[:args.show]:
        print("  missed " + ascii(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
