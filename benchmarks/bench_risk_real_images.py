"""What step 4 does with the real images on this machine: pydicom's own test files (in its
package, never downloaded) and tests/data/deid_data (public ultrasound stills with fake PHI).

    python benchmarks/bench_risk_real_images.py [FOLDER ...]

For every image: the risk table's verdict (deidkit.risk.assess), then for images at risk the
detector's (deidkit.pixels.clean_pixels): text found (boxes proposed), clean, or held, and
whether a person must see it. Prints one line per image and the totals: how many images the
detector looks at, how many go out without a person, how many wait with boxes proposed.
Whether an image really shows text is for the reader to judge from the list (no labels here).
"""
from __future__ import annotations

import sys
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom  # noqa: E402

from deidkit import pixels, risk  # noqa: E402
from deidkit.guidelines import load  # noqa: E402


def main(folders: list[Path]) -> int:
    warnings.filterwarnings("ignore")
    g = load()
    totals: Counter = Counter()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", "")):
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception:  # noqa: BLE001
                continue
            found = risk.assess(ds, g)
            if not risk.is_image(ds) or "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                continue
            totals["images"] += 1
            if not found.at_risk:
                continue
            totals["at risk"] += 1
            t = time.perf_counter()
            outcome = pixels.clean_pixels(ds, [])
            ms = (time.perf_counter() - t) * 1000
            boxes = sum(len(b) for b in outcome.boxes)
            send, why = pixels.release_decision(outcome, False, False, found.person_must_see)
            verdict = "goes out (cleared by rule)" if send else ("waits, boxes proposed" if boxes else
                                                             "waits (a person must see)" if outcome.status != "hold"
                                                             else "held")
            totals[verdict] += 1
            print(f"{path.name:40s} {found.reason:34s} {outcome.status:8s} {boxes:3d} box(es) {ms:6.0f} ms  {verdict}")
    print()
    print(", ".join(f"{k}: {v}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1]
    default = [Path(pydicom.__file__).parent / "data" / "test_files", here / "tests" / "data" / "deid_data"]
    raise SystemExit(main([Path(a) for a in sys.argv[1:]] or default))
