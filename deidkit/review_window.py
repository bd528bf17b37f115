"""The review window (`deid_tool --review DEST`): a person looks at every image waiting for review,
approves or rejects it, and moves, removes or draws the boxes to blank. Tkinter from the
standard library: offline, no server, no browser. The model (deidkit.review_model) holds every
decision and saves review_decisions.csv at each change; this module only draws and listens.

Two views:
  grid    a page of thumbnails (proposed boxes in red; green frame = approved, red = rejected).
          A = approve every undecided image of the page. PageDown/PageUp or Right/Left = pages.
          Click an image (or Enter) to look at it at full resolution.
  image   full resolution with zoom (+ / -), every frame (Left/Right, or the frame strip),
          the boxes in red. Drag a box to move it, drag it off the image to remove it (or
          right-click it); drag on the image to draw a new box on this frame (Shift: on every
          frame). A = approve, R = reject, U = undecided again; Escape = back to the grid.
Ctrl+Q (or closing the window) ends the review; every answer is already saved.
"""
from __future__ import annotations

import base64
import functools
import sys
import tkinter as tk
from pathlib import Path
from typing import Callable, cast

import numpy as np

from .review_decisions import APPROVE, REJECT, Region
from .review_model import ReviewItem, ReviewModel
from .review_page import downscale, png_bytes

COLUMNS, ROWS = 4, 3                  # thumbnails per page: COLUMNS x ROWS
THUMB = 220                           # longest side of a thumbnail, pixels
ZOOMS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0)
BOX_COLOUR, APPROVED, REJECTED, UNDECIDED_COLOUR = "#ff2020", "#20c020", "#e02020", "#808080"
TITLE = "DeidKit review (hospital only: may show patient data)"


def photo(image: np.ndarray) -> tk.PhotoImage:
    """A Tk image from a uint8 grey or RGB array (PNG data: Tk 8.6 reads it without Pillow)."""
    return tk.PhotoImage(data=base64.b64encode(png_bytes(image)).decode("ascii"), format="png")


def scaled(image: np.ndarray, zoom: float) -> np.ndarray:
    """Nearest-neighbour resize by `zoom` (pixels stay sharp: text is seen as it is)."""
    if zoom == 1.0:
        return image
    h, w = image.shape[:2]
    ys = np.minimum((np.arange(max(1, int(h * zoom))) / zoom).astype(int), h - 1)
    xs = np.minimum((np.arange(max(1, int(w * zoom))) / zoom).astype(int), w - 1)
    return image[ys][:, xs]


class ReviewWindow:
    """The view: draws the model and turns keys and mouse gestures into model calls."""

    def __init__(self, root: tk.Tk, model: ReviewModel) -> None:
        self.root, self.model = root, model
        root.title(TITLE)
        root.geometry("1000x800")
        self.status = tk.Label(root, anchor="w", justify="left", font=("TkDefaultFont", 11))
        self.status.pack(side="bottom", fill="x")
        # wrap at the window's width: a long line would be cut off at the right edge
        self.status.bind("<Configure>", lambda e: self.status.configure(wraplength=max(200, e.width - 8)))
        self.strip = tk.Frame(root)
        self.strip.pack(side="bottom", fill="x")
        frame = tk.Frame(root)
        frame.pack(side="top", fill="both", expand=True)
        self.canvas = tk.Canvas(frame, bg="#202020", highlightthickness=0)
        xbar = tk.Scrollbar(frame, orient="horizontal", command=self.canvas.xview)
        ybar = tk.Scrollbar(frame, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(xscrollcommand=xbar.set, yscrollcommand=ybar.set)
        xbar.pack(side="bottom", fill="x")
        ybar.pack(side="right", fill="y")
        self.canvas.pack(side="left", fill="both", expand=True)
        self.per_page = COLUMNS * ROWS
        self.page_no = 0
        self.mode = "grid"
        self.item: ReviewItem | None = None
        self.frame_no = 0
        self.zoom = 1.0
        self._images: list[tk.PhotoImage] = []     # Tk forgets images nobody holds
        self._cells: list[tuple[int, int, int, int, ReviewItem]] = []
        self._drag: dict = {}
        for key, action in (("<KeyPress-a>", self.on_approve), ("<KeyPress-A>", self.on_approve),
                            ("<KeyPress-r>", self.on_reject), ("<KeyPress-R>", self.on_reject),
                            ("<KeyPress-u>", self.on_undecide),
                            ("<KeyPress-U>", self.on_undecide), ("<Control-q>", lambda e: root.destroy()),
                            ("<Control-w>", lambda e: root.destroy()), ("<Escape>", lambda e: self.show_grid()),
                            ("<Next>", lambda e: self.turn(1)), ("<Prior>", lambda e: self.turn(-1)),
                            ("<Right>", lambda e: self.step(1)), ("<Left>", lambda e: self.step(-1)),
                            ("<plus>", lambda e: self.set_zoom(1)), ("<equal>", lambda e: self.set_zoom(1)),
                            ("<KP_Add>", lambda e: self.set_zoom(1)), ("<minus>", lambda e: self.set_zoom(-1)),
                            ("<KP_Subtract>", lambda e: self.set_zoom(-1)), ("<Return>", self.on_enter)):
            root.bind(key, action)
        self.canvas.bind("<ButtonPress-1>", self.on_press)
        self.canvas.bind("<B1-Motion>", self.on_motion)
        self.canvas.bind("<ButtonRelease-1>", self.on_release)
        self.canvas.bind("<ButtonPress-3>", self.on_right_click)
        self.show_grid()

    # ---- grid ------------------------------------------------------------------------------
    def show_grid(self) -> None:
        """Draw the current page of thumbnails."""
        self.mode, self.item = "grid", None
        self._clear()
        for child in self.strip.winfo_children():
            child.destroy()
        pad = 12
        for n, item in enumerate(self.model.page(self.page_no, self.per_page)):
            col, row = n % COLUMNS, n // COLUMNS
            x, y = pad + col * (THUMB + pad), pad + row * (THUMB + 36 + pad)
            frames = self.model.frames(item)
            shown = self.model.frame_to_show(item)
            colour = {APPROVE: APPROVED, REJECT: REJECTED}.get(item.state, UNDECIDED_COLOUR)
            self.canvas.create_rectangle(x - 4, y - 4, x + THUMB + 4, y + THUMB + 4, outline=colour, width=4)
            if frames:
                full = frames[min(shown, len(frames) - 1)]
                if max(full.shape[:2]) <= 2 * THUMB:  # nearest neighbour: text stays sharp
                    small = scaled(full, THUMB / max(full.shape[:2]))
                else:  # block means, then to the cell's size
                    small, _ = downscale(full, THUMB)
                    small = scaled(small, THUMB / max(small.shape[:2]))
                scale = small.shape[1] / full.shape[1]
                self._images.append(photo(small))
                self.canvas.create_image(x, y, anchor="nw", image=self._images[-1])
                for r in self.model.regions_on(item, shown):
                    self.canvas.create_rectangle(x + int(r.x0 * scale), y + int(r.y0 * scale), x + int(r.x1 * scale),
                                                 y + int(r.y1 * scale), outline=BOX_COLOUR, width=2)
            label = f"{item.ref}  {len(item.regions)} box(es)" + (f"  {item.decision.frames} frames"
                                                                   if item.decision.frames > 1 else "")
            self.canvas.create_text(x, y + THUMB + 8, anchor="nw", fill="white",
                                    text=label + (f"  {item.state.upper()}" if item.state else "")
                                    + (f"\n{item.error}" if item.error else ""))
            self._cells.append((x, y, x + THUMB, y + THUMB, item))
        self.canvas.configure(scrollregion=(0, 0, pad + COLUMNS * (THUMB + pad), pad + ROWS * (THUMB + 48 + pad)))
        approved, rejected, undecided = self.model.counts()
        self.status.configure(text=f"Page {self.page_no + 1}/{self.model.pages(self.per_page)}   "
                                   f"approved {approved}, rejected {rejected}, waiting {undecided}   |   "
                                   "A: approve every waiting image on this page   PageDown/Right: next page   "
                                   "click: look closely   (saved at once; Ctrl+Q or close the window when done)")

    def turn(self, step: int) -> None:
        """Next/previous page (grid) or next/previous image (image view)."""
        if self.mode == "grid":
            self.page_no = min(max(0, self.page_no + step), self.model.pages(self.per_page) - 1)
            self.show_grid()
        elif self.item is not None:
            index = self.model.items.index(self.item) + step
            if 0 <= index < len(self.model.items):
                self.show_item(self.model.items[index])
            else:
                self.show_grid()

    def step(self, step: int) -> None:
        """Right/Left: pages in the grid, frames in the image view."""
        if self.mode == "grid":
            self.turn(step)
        elif self.item is not None:
            frames = self.model.frames(self.item)
            if frames:
                self.frame_no = (self.frame_no + step) % len(frames)
                self.draw_item()

    # ---- one image ---------------------------------------------------------------------------
    def show_item(self, item: ReviewItem) -> None:
        """Open one image at full resolution (zoom 1) on the frame its thumbnail showed."""
        self.mode, self.item = "image", item
        self.page_no = self.model.items.index(item) // self.per_page
        self.frame_no = self.model.frame_to_show(item)
        self.zoom = 1.0
        self._draw_strip()
        self.draw_item()

    def _draw_strip(self) -> None:
        """A strip of buttons, one per frame (boxed frames marked), for multi-frame images."""
        for child in self.strip.winfo_children():
            child.destroy()
        item = self.item
        if item is None:
            return
        frames = self.model.frames(item)
        if len(frames) <= 1:
            return
        tk.Label(self.strip, text="Frames:").pack(side="left")
        for n in range(min(len(frames), 60)):
            marked = bool(self.model.regions_on(item, n))
            tk.Button(self.strip, text=f"{n}{'*' if marked else ''}", padx=2, pady=0,
                      fg=BOX_COLOUR if marked else "black",
                      command=functools.partial(self._goto_frame, n)).pack(side="left")

    def _goto_frame(self, n: int) -> None:
        self.frame_no = n
        self.draw_item()

    def draw_item(self) -> None:
        """Draw the current frame with its boxes at the current zoom."""
        item = self.item
        if item is None:
            return
        self._clear()
        frames = self.model.frames(item)
        if frames:
            image = frames[min(self.frame_no, len(frames) - 1)]
            self._images.append(photo(scaled(image, self.zoom)))
            self.canvas.create_image(0, 0, anchor="nw", image=self._images[-1])
            for r in self.model.regions_on(item, self.frame_no):
                self.canvas.create_rectangle(*self._to_canvas(r), outline=BOX_COLOUR, width=2, tags=("box",))
            h, w = image.shape[:2]
            self.canvas.configure(scrollregion=(0, 0, int(w * self.zoom), int(h * self.zoom)))
        boxed = sorted({r.frame + 1 for r in item.regions if r.frame is not None})  # 1-based, as "frame n/m"
        every = any(r.frame is None for r in item.regions)
        self.status.configure(text=(
            f"{item.ref}  ({self.model.items.index(item) + 1}/{len(self.model.items)})  "
            f"{item.state.upper() or 'WAITING'}   frame {self.frame_no + 1}/{max(1, len(frames))}"
            f"   zoom {self.zoom:g}x   boxes on frames: {'all, ' if every else ''}{', '.join(map(str, boxed)) or '-'}\n"
            f"{item.decision.reason}   {item.error}\n"
            "A approve  R reject  U undecided  drag box: move (off the image: remove)  drag: new box"
            " (Shift: every frame)  +/- zoom  Left/Right frames  PageDown next image  Esc grid"))

    def _to_canvas(self, r: Region) -> tuple[int, int, int, int]:
        z = self.zoom
        return int(r.x0 * z), int(r.y0 * z), int(r.x1 * z), int(r.y1 * z)

    def _to_image(self, event: tk.Event) -> tuple[int, int]:
        x, y = self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
        return int(x / self.zoom), int(y / self.zoom)

    def set_zoom(self, step: int) -> None:
        """Zoom the image view one step in (step 1) or out (-1) within ZOOMS; nothing in the grid view."""
        if self.mode != "image":
            return
        index = min(max(0, ZOOMS.index(self.zoom) + step), len(ZOOMS) - 1)
        self.zoom = ZOOMS[index]
        self.draw_item()

    # ---- mouse ---------------------------------------------------------------------------
    def on_press(self, event: tk.Event) -> None:
        """Mouse down: open a grid cell, or start drawing a new box or moving the box under the pointer."""
        if self.mode == "grid":
            x, y = self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
            for x0, y0, x1, y1, item in self._cells:
                if x0 <= x < x1 and y0 <= y < y1:
                    self.show_item(item)
                    return
            return
        if self.item is None:
            return
        ix, iy = self._to_image(event)
        region = self.model.region_at(self.item, self.frame_no, ix, iy)
        every = bool(cast(int, event.state) & 0x0001)  # Shift held: a new box on every frame
        self._drag = {"start": (ix, iy), "region": region, "every": every, "shape": None,
                      "last": (event.x, event.y)}
        if region is None:
            cx, cy = self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
            self._drag["shape"] = self.canvas.create_rectangle(cx, cy, cx, cy, outline="#ffd000", width=2,
                                                               dash=(4, 2))
        else:
            self._drag["shape"] = self._box_item_at(region)

    def _box_item_at(self, region: Region) -> int | None:
        want = self._to_canvas(region)
        for tag in self.canvas.find_withtag("box"):
            if tuple(int(v) for v in self.canvas.coords(tag)) == want:
                return tag
        return None

    def on_motion(self, event: tk.Event) -> None:
        """Mouse drag: grow the box being drawn or move the box being moved."""
        if self.mode != "image" or not self._drag:
            return
        shape = self._drag["shape"]
        if self._drag["region"] is None and shape is not None:
            sx, sy = self._drag["start"]
            self.canvas.coords(shape, sx * self.zoom, sy * self.zoom, self.canvas.canvasx(event.x),
                               self.canvas.canvasy(event.y))
        elif shape is not None:
            lx, ly = self._drag["last"]
            self.canvas.move(shape, event.x - lx, event.y - ly)
        self._drag["last"] = (event.x, event.y)

    def on_release(self, event: tk.Event) -> None:
        """Mouse up: store the box drawn (on this frame, or every frame with Shift), or move the box dragged."""
        if self.mode != "image" or not self._drag or self.item is None:
            return
        drag, self._drag = self._drag, {}
        ix, iy = self._to_image(event)
        sx, sy = drag["start"]
        if drag["region"] is None:
            frame = None if drag["every"] else self.frame_no
            self.model.add_region(self.item, frame, sx, sy, ix, iy)
        elif (ix, iy) != (sx, sy):
            self.model.move_region(self.item, drag["region"], ix - sx, iy - sy)
        self._draw_strip()
        self.draw_item()

    def on_right_click(self, event: tk.Event) -> None:
        """Right click: delete the box under the pointer."""
        if self.mode != "image" or self.item is None:
            return
        ix, iy = self._to_image(event)
        region = self.model.region_at(self.item, self.frame_no, ix, iy)
        if region is not None:
            self.model.remove_region(self.item, region)
            self._draw_strip()
            self.draw_item()

    # ---- keys ------------------------------------------------------------------------------
    def on_approve(self, event: tk.Event | None = None) -> None:
        """Approve key: the whole page in the grid view, the image shown in the image view."""
        if self.mode == "grid":
            self.model.approve_all(self.model.page(self.page_no, self.per_page))
            if self.page_no + 1 < self.model.pages(self.per_page):
                self.page_no += 1
            self.show_grid()
        elif self.item is not None:
            self.model.decide(self.item, APPROVE)
            self.turn(1)

    def on_reject(self, event: tk.Event | None = None) -> None:
        """Reject key: hold the image shown back (image view only)."""
        if self.mode == "image" and self.item is not None:
            self.model.decide(self.item, REJECT)
            self.turn(1)

    def on_undecide(self, event: tk.Event | None = None) -> None:
        """Undo key: the image shown is undecided again (image view only)."""
        if self.mode == "image" and self.item is not None:
            self.model.decide(self.item, "")
            self.draw_item()

    def on_enter(self, event: tk.Event | None = None) -> None:
        """Enter key: open the first image of the grid page."""
        if self.mode == "grid":
            page = self.model.page(self.page_no, self.per_page)
            if page:
                self.show_item(page[0])

    def _clear(self) -> None:
        self.canvas.delete("all")
        self._images.clear()
        self._cells.clear()


def hospital_dir_for(dest: Path) -> Path:
    """<DEST>_HOSPITAL_ONLY for an output folder (or the folder itself when given directly)."""
    from .export import HOSPITAL_SUFFIX

    dest = Path(dest).resolve()
    return dest if dest.name.endswith(HOSPITAL_SUFFIX) else dest.with_name(dest.name + HOSPITAL_SUFFIX)


def main(dest: Path, say: Callable[[str], None] = print) -> int:
    """Open the window for an output folder; returns 0 when nothing waits afterwards, 1 when some
    images still wait, 2 when there is nothing to review or no display. `say` gets plain lines."""
    hospital = hospital_dir_for(dest)
    if not hospital.is_dir():
        say(f"Nothing to review: {hospital} does not exist. Give the de-identified copy of a run "
            "(the folder DEID_OUTPUT that deid_tool wrote), e.g. deid_tool --review DEID_OUTPUT.")
        return 2
    try:
        model = ReviewModel(hospital)
    except FileNotFoundError:
        say(f"Nothing to review: no image of the run into {Path(dest).resolve()} waits for a person.")
        return 2
    except (OSError, ValueError) as e:
        say(f"Nothing to review: {e}")
        return 2
    try:
        root = tk.Tk()
    except tk.TclError as e:
        say(f"Cannot open a window here ({str(e).splitlines()[0]}). Edit "
            f"{model.path} by hand instead: set decision to approve or reject.")
        return 2
    ReviewWindow(root, model)
    root.mainloop()
    approved, rejected, waiting = model.counts()
    say(f"Saved {model.path}: approved {approved}, rejected {rejected}, waiting {waiting}.")
    if approved:
        say("Run deid_tool again on the same export and output to send the approved images.")
    elif waiting:
        say("Nothing was approved yet: open the review again when ready (deid_tool --review).")
    return 1 if waiting else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(Path(sys.argv[1])))
