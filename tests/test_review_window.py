"""The review window in a real X display (Xvfb), driven by real key presses and mouse drags
(xdotool), with screenshots saved in the test's output folder (pytest's tmp dir).

Needs the X virtual frame buffer and xdotool (CI: apt-get install -y xvfb xdotool imagemagick);
the tests skip cleanly without them. The model is tested without a window too.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from deidkit import review_decisions
from deidkit.review_model import ReviewModel
from test_review import build_source, run

XVFB, XDOTOOL = shutil.which("Xvfb"), shutil.which("xdotool")


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory):
    """A real run whose images wait for review (see test_review.build_source)."""
    base = tmp_path_factory.mktemp("window")
    source, out = base / "EXPORT", base / "OUT"
    build_source(source)
    assert run(source, out) == 1
    return source, out, base / "OUT_HOSPITAL_ONLY"


def rows(hospital: Path) -> dict[str, dict[str, str]]:
    with (hospital / review_decisions.DECISIONS_NAME).open(encoding="utf-8", newline="") as fp:
        return {Path(r["original_file"]).stem: r for r in csv.DictReader(fp)}


def fresh_copy(hospital: Path, where: Path) -> Path:
    """A copy of the hospital folder, so each test starts from the undecided file."""
    target = where / "OUT_HOSPITAL_ONLY"
    shutil.copytree(hospital, target)
    return target


# ---- the model alone -----------------------------------------------------------------------------

def test_model_edits_and_saves_the_same_file_a_person_edits(reviewed_run, tmp_path):
    source, out, hospital = reviewed_run
    hospital = fresh_copy(hospital, tmp_path)
    model = ReviewModel(hospital, source)
    by_name = {Path(i.decision.original_file).stem: i for i in model.items}
    item = by_name["us_text"]
    frames = model.frames(item)
    assert frames and frames[0].shape[:2] == (192, 256)
    box = item.regions[0]
    assert model.region_at(item, 0, box.x0 + 1, box.y0 + 1) == box
    assert model.move_region(item, box, 1000, 0) is None           # dragged off the image: removed
    assert model.add_region(item, 0, 250, 150, 200, 120) is not None  # corners in any order
    assert model.add_region(item, 0, 5, 5, 6, 6) is None            # a click, not a box
    model.decide(item, "approve")
    model.decide(by_name["rejected"], "reject")
    saved = rows(hospital)
    assert saved["us_text"]["decision"] == "approve" and saved["us_text"]["boxes"] == "0:200,120,250,150"
    assert saved["rejected"]["decision"] == "reject"
    assert saved["undecided"]["decision"] == ""
    assert len(saved) == len(model.items)


# ---- the window under Xvfb ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def display():
    if not XVFB or not XDOTOOL:
        pytest.skip("Xvfb and xdotool are not installed (apt-get install -y xvfb xdotool imagemagick)")
    number = next(n for n in range(71, 200) if not Path(f"/tmp/.X{n}-lock").exists()
                  and not Path(f"/tmp/.X11-unix/X{n}").exists())
    proc = subprocess.Popen([XVFB, f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield f":{number}"
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old
    proc.terminate()
    proc.wait(timeout=10)


class Driver:
    """Real X events into the window, and screenshots of the screen."""

    def __init__(self, root, window, shots: Path) -> None:
        self.root, self.window, self.shots = root, window, shots

    def pump(self, seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.root.update()
            time.sleep(0.01)

    def xdotool(self, *args: str) -> None:
        subprocess.run([XDOTOOL, *args], check=True, timeout=20)
        self.pump()

    def key(self, name: str) -> None:
        self.root.focus_force()
        self.pump(0.1)
        self.xdotool("key", name)

    def screen_point(self, x: float, y: float) -> tuple[int, int]:
        """Canvas coordinates (what is drawn) -> screen coordinates (where the pointer goes)."""
        c = self.window.canvas
        return (int(c.winfo_rootx() + x - c.canvasx(0)), int(c.winfo_rooty() + y - c.canvasy(0)))

    def click(self, x: float, y: float) -> None:
        sx, sy = self.screen_point(x, y)
        self.xdotool("mousemove", str(sx), str(sy), "click", "1")

    def drag(self, x0: float, y0: float, x1: float, y1: float) -> None:
        a, b = self.screen_point(x0, y0), self.screen_point(x1, y1)
        self.xdotool("mousemove", str(a[0]), str(a[1]), "mousedown", "1")
        for t in (0.33, 0.66, 1.0):
            self.xdotool("mousemove", str(int(a[0] + (b[0] - a[0]) * t)), str(int(a[1] + (b[1] - a[1]) * t)))
        self.xdotool("mouseup", "1")

    def screenshot(self, name: str) -> Path:
        """The whole screen as PNG (ImageMagick's import, else xwd + convert)."""
        self.pump(0.2)
        path = self.shots / f"{name}.png"
        if shutil.which("import"):
            subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=30)
        else:
            xwd = path.with_suffix(".xwd")
            subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], check=True, timeout=30)
            subprocess.run(["convert", str(xwd), str(path)], check=True, timeout=30)
        return path


@pytest.fixture
def window(display, reviewed_run, tmp_path):
    import tkinter as tk

    from deidkit.review_window import ReviewWindow

    source, out, hospital = reviewed_run
    hospital = fresh_copy(hospital, tmp_path)
    model = ReviewModel(hospital, source)
    root = tk.Tk()
    view = ReviewWindow(root, model)
    root.geometry("+0+0")
    driver = Driver(root, view, tmp_path)
    driver.pump(0.5)
    yield driver, model, hospital
    root.destroy()


def red_pixels(png: Path) -> int:
    from PIL import Image

    a = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int(((a[..., 0] > 200) & (a[..., 1] < 80) & (a[..., 2] < 80)).sum())


def test_grid_shows_the_page_and_one_key_approves_it(window):
    driver, model, hospital = window
    shot = driver.screenshot("grid")
    assert shot.stat().st_size > 10_000 and red_pixels(shot) > 200  # thumbnails with red boxes
    page = [i.ref for i in model.page(0, driver.window.per_page)]
    driver.key("a")
    saved = {r["ref"]: r for r in rows(hospital).values()}
    assert all(saved[ref]["decision"] == "approve" for ref in page)
    assert [r for r in saved.values() if r["ref"] not in page and r["decision"]] == []
    assert driver.window.page_no == min(1, model.pages(driver.window.per_page) - 1)  # on to the next page
    driver.screenshot("grid_page2")


def test_drag_a_box_away_draw_a_new_one_and_approve(window):
    driver, model, hospital = window
    target = next(i for i in model.items if Path(i.decision.original_file).stem == "us_text")
    driver.window.show_item(target)
    driver.pump()
    assert driver.window.mode == "image" and driver.window.zoom == 1.0
    before = driver.screenshot("image_before")
    assert red_pixels(before) > 100
    box = target.regions[0]
    driver.drag((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, 700, 700)  # off the image
    assert target.regions == []
    driver.drag(150, 120, 240, 180)  # a new box drawn by the person
    assert len(target.regions) == 1
    new = target.regions[0]
    assert (new.frame, abs(new.x0 - 150) <= 2, abs(new.y0 - 120) <= 2) == (0, True, True)
    driver.screenshot("image_edited")
    driver.key("a")
    saved = rows(hospital)["us_text"]
    assert saved["decision"] == "approve"
    assert review_decisions.parse_boxes(saved["boxes"]) == [new]


def test_zoom_frames_and_reject(window):
    driver, model, hospital = window
    multi = next(i for i in model.items if Path(i.decision.original_file).stem == "us_multi")
    driver.window.show_item(multi)
    driver.pump()
    driver.key("plus")
    assert driver.window.zoom == 2.0
    region = driver.window.canvas.cget("scrollregion").split()
    assert [int(float(v)) for v in region] == [0, 0, 512, 384]  # full resolution, twice
    driver.screenshot("zoom2")
    driver.key("minus")
    driver.key("Right")
    assert driver.window.frame_no == 1
    driver.drag(100, 100, 160, 150)
    assert any(r.frame == 1 for r in multi.regions)
    driver.screenshot("frame2")
    driver.key("r")
    assert rows(hospital)["us_multi"]["decision"] == "reject"
    assert driver.window.item is not multi  # on to the next image


def test_decisions_from_the_window_are_applied_by_the_next_run(display, tmp_path):
    import tkinter as tk

    from deidkit.review_window import ReviewWindow

    source, out = tmp_path / "EXPORT", tmp_path / "OUT"
    build_source(source)
    assert run(source, out) == 1
    model = ReviewModel(tmp_path / "OUT_HOSPITAL_ONLY")  # the export is found from the run's note
    waiting = len(model.items)
    root = tk.Tk()
    view = ReviewWindow(root, model)
    driver = Driver(root, view, tmp_path)
    driver.pump(0.5)
    for _ in range(model.pages(view.per_page)):
        driver.key("a")
    root.destroy()
    assert model.counts() == (waiting, 0, 0)
    n_before = len(list(out.rglob("*.dcm")))
    assert run(source, out) == 0  # nothing waits any more
    assert len(list(out.rglob("*.dcm"))) == n_before + waiting
