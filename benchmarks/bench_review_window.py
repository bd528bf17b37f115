"""Time to review 100 images in the review window (deid_tool --review), scripted.

    python benchmarks/bench_review_window.py [--n 100] [--glance 4] [--keep DIR]

Makes an export of N ultrasound-like images (640x480, half with burned-in fake PHI), runs
deid_tool on it (every image waits for a person: ultrasound must be seen), then opens the review
window (in Xvfb when there is no display) and approves it page by page with the real key
(xdotool when present, else a Tk key event), measuring the window's own time per page (read,
decode, draw). It prints that machine time, and an estimate of a person's time:
pages x (machine time per page + GLANCE seconds to look at a page of thumbnails) plus, for
the images with text, one look at full resolution (+ OPEN seconds) for a share `--inspect` of
them. The person-side seconds are assumptions (stated in the output), not measurements.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--glance", type=float, default=4.0, help="seconds a person looks at one page")
    ap.add_argument("--open", type=float, default=6.0, help="seconds to open, check and approve one image")
    ap.add_argument("--inspect", type=float, default=0.2, help="share of text images opened at full size")
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    from test_review import image  # the tests' image maker (Pillow renders the fake PHI)

    from deidkit import cli_deid

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_review_"))
    source, out = base / "EXPORT", base / "OUT"
    source.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        ds = image(f"b{i}", sop="1.2.840.10008.5.1.4.1.1.6.1", modality="US", text=i % 2 == 0, rgb=True,
                   rows=480, cols=640)
        ds.InstanceNumber = i + 1
        ds.save_as(source / f"im{i:04d}.dcm", enforce_file_format=True)
    t = time.perf_counter()
    cli_deid.main([str(source), "--out", str(out), "--yes", "--key", str(base / "k.key"), "--workers", "1"])
    run_s = time.perf_counter() - t
    xvfb = None
    if not os.environ.get("DISPLAY"):
        if not shutil.which("Xvfb"):
            print("no display and no Xvfb: cannot open the window")
            return 2
        xvfb = subprocess.Popen(["Xvfb", ":93", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ["DISPLAY"] = ":93"
        while not Path("/tmp/.X11-unix/X93").exists():
            time.sleep(0.05)
    try:
        import tkinter as tk

        from deidkit.review_model import ReviewModel
        from deidkit.review_window import ReviewWindow

        model = ReviewModel(base / "OUT_HOSPITAL_ONLY")
        root = tk.Tk()
        t = time.perf_counter()
        view = ReviewWindow(root, model)
        root.update()
        page_times = [time.perf_counter() - t]
        with_text = sum(1 for i in model.items if i.regions)
        t_open = time.perf_counter()
        view.show_item(model.items[0])
        root.update()
        open_s = time.perf_counter() - t_open
        view.show_grid()
        root.update()
        while model.counts()[2]:
            t = time.perf_counter()
            root.focus_force()
            root.update()
            if shutil.which("xdotool"):
                subprocess.run(["xdotool", "key", "a"], check=True)
                deadline = time.monotonic() + 10
                before = model.counts()[2]
                while model.counts()[2] == before and time.monotonic() < deadline:
                    root.update()
            else:
                view.on_approve()
            root.update()
            page_times.append(time.perf_counter() - t)
        root.destroy()
    finally:
        if xvfb is not None:
            xvfb.terminate()
    pages = len(page_times) - 1
    machine = sum(page_times)
    person = pages * args.glance + with_text * args.inspect * args.open
    print(f"images waiting for review: {len(model.items)} ({with_text} with proposed boxes); deid run {run_s:.1f} s")
    print(f"window: {pages} pages of {view.per_page}; machine time {machine:.1f} s in all "
          f"({machine / max(1, pages):.2f} s a page), opening one image at full size {open_s * 1000:.0f} ms")
    print(f"estimated time for a person to review {len(model.items)} images: {(machine + person) / 60:.1f} min "
          f"(assumes {args.glance:g} s to look at a page, {args.open:g} s for each of "
          f"{args.inspect:.0%} of the text images opened at full size)")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
