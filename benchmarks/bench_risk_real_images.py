"""What step 4 does with the real images on this machine: pydicom's own test files (in its
package, never downloaded) and tests/data/deid_data (public ultrasound stills with fake PHI).

    python benchmarks/bench_risk_real_images.py [FOLDER ...]
    python benchmarks/bench_risk_real_images.py --corpora [DIR]   (default /work/cache/dcm_qa)

For every image: the risk table's verdict (deidkit.risk.assess), then for images at risk the
detector's (deidkit.pixels.clean_pixels): text found (boxes proposed), clean, or held, and
whether a person must see it, and why. Prints one line per image and the totals: how many images
the detector looks at, how many go out without a person, how many wait with boxes proposed.
Whether an image really shows text is for the reader to judge from the list (no labels here).

--corpora: the text finder alone (deidkit.pixel_detect.find_text_in_frame, whatever the risk
table says) on the middle frame of the middle image of every series of the scanner QA corpora
(neurolabusc/dcm_qa*: MR and CT without burned-in text, fetched outside the repository): per
corpus, series looked at, series with any box, with boxes over 25% and over 50% of the frame
(pixels.MAX_TEXT_FRACTION: held with boxes; pixels.CANNOT_JUDGE_FRACTION: cannot judge), and
the series flagged.
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
                                                             else "waits, no boxes (cannot judge)"
                                                             if outcome.for_person else "held")
            totals[verdict] += 1
            why = "cannot judge" if outcome.reason == pixels.CANNOT_JUDGE else outcome.reason[:40]
            print(f"{path.name:40s} {found.reason:34s} {outcome.status:8s} {boxes:3d} box(es) {ms:6.0f} ms  "
                  f"{verdict}  ({why})")
    print()
    print(", ".join(f"{k}: {v}" for k, v in totals.items()))
    return 0


SKIP_SUFFIXES = (".pdf", ".txt", ".json", ".md", ".nii", ".gz", ".bval", ".bvec", ".py", ".sh", ".png")


def corpora(root: Path) -> int:
    """The text finder alone on one frame per series of each corpus under root (see above)."""
    import numpy as np

    from deidkit import pixel_detect
    warnings.filterwarnings("ignore")
    for corpus in sorted(d for d in root.iterdir() if d.is_dir()):
        series: dict[str, list[Path]] = {}
        for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() not in SKIP_SUFFIXES):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:  # noqa: BLE001
                continue
            if "Rows" in ds:
                series.setdefault(str(ds.get("SeriesInstanceUID", path.parent)), []).append(path)
        counts: Counter = Counter()
        flagged = []
        t = time.perf_counter()
        for paths in series.values():
            path = paths[len(paths) // 2]
            try:
                frames = pixels.display_frames(pydicom.dcmread(path, force=True))
            except Exception:  # noqa: BLE001
                counts["undecodable"] += 1
                continue
            frame = frames[len(frames) // 2]
            covered = np.zeros(frame.shape[:2], bool)
            boxes = pixel_detect.find_text_in_frame(frame)
            for b in boxes:
                g = b.grown(pixel_detect.REDACTION_MARGIN, *frame.shape[:2])
                covered[g.top:g.bottom, g.left:g.right] = True
            counts["series"] += 1
            counts["any box"] += bool(boxes)
            counts["> 25%"] += covered.mean() > pixels.MAX_TEXT_FRACTION
            counts["> 50%"] += covered.mean() > pixels.CANNOT_JUDGE_FRACTION
            if boxes:
                flagged.append(f"{path.parent.name}/{path.name[:12]} {frame.shape[0]}x{frame.shape[1]} "
                               f"{100 * covered.mean():.0f}%")
        ms = 1000 * (time.perf_counter() - t) / max(1, counts["series"])
        print(f"{corpus.name:20s} " + ", ".join(f"{k}: {v}" for k, v in counts.items()) + f"  ({ms:.0f} ms/series)")
        for line in flagged:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1]
    if sys.argv[1:2] == ["--corpora"]:
        raise SystemExit(corpora(Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/work/cache/dcm_qa")))
    default = [Path(pydicom.__file__).parent / "data" / "test_files", here / "tests" / "data" / "deid_data"]
    raise SystemExit(main([Path(a) for a in sys.argv[1:]] or default))
