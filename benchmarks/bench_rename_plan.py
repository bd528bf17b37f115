"""rename_folders' plan time against the number of series (issue 20.12: it was quadratic).

Builds scanned trees in memory (no files: the header reading is linear and measured by the
export benchmarks) with N series of one file each, 100 series per study folder, and times
make_plan. Prints seconds and the ratio to the smallest N measured in the same run: a linear
plan gives ratios close to N / N0 (4x the series, about 4x the time).

    python benchmarks/bench_rename_plan.py [--sizes 10000 20000 40000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deidkit import rename as rn  # noqa: E402


def tree(n: int) -> rn.Node:
    top = rn.Node("", "dir")
    studies = [rn.Node(f"study {k}", "dir") for k in range(max(1, n // 100))]
    top.children += studies
    for i in range(n):
        folder = rn.Node(f"Series {i} SMITH", "dir")
        study = f"st{i % len(studies)}"
        facts = rn.Facts(patient=f"p{i % 50}", study=study, series=f"se{i}", study_order=("20200101", "", study),
                         series_number=i, instance_number=1, instance_key=f"k{i}", modality="CT", warnings=())
        folder.children.append(rn.Node("IM1", "dicom", facts))
        studies[i % len(studies)].children.append(folder)
    return top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 40000])
    args = ap.parse_args()
    base = None
    for n in args.sizes:
        t = tree(n)
        start = time.perf_counter()
        rn.make_plan(t, set(), "H", False, "t")
        took = time.perf_counter() - start
        base = base or (n, took)
        print(f"{n:>7} series: {took:6.2f} s   time ratio {took / base[1]:5.2f}   size ratio {n / base[0]:5.2f}")


if __name__ == "__main__":
    main()
