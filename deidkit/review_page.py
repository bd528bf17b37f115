"""The pixel review page: one self-contained HTML file a person opens in any browser, offline.

Held-back images appear as thumbnails, redacted ones as before/after pairs, so a reviewer looks
instead of reads. Thumbnails are PNGs written here with zlib and struct (no Pillow at run time)
and embedded as data: URIs, so the page is one file with nothing to fetch. The "before" pictures
can show PHI: the page says so and belongs on the hospital side, never in the delivery.
"""
from __future__ import annotations

import base64
import html
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from .pixel_detect import Box

THUMB_SIDE = 256  # longest side of a thumbnail, pixels


@dataclass(frozen=True)
class ReviewEntry:
    """One image on the pixel review page: neutral label and reason, status, PNG thumbnails."""
    label: str                    # neutral reference chosen by the caller (never a file name with PHI)
    reason: str                   # why it is here, neutral
    status: str                   # "hold" or "redacted"
    before_png: bytes | None      # held-back image, or the image before blanking
    after_png: bytes | None = None  # the image after blanking (redacted only)


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG of a uint8 grey (h x w) or RGB (h x w x 3) array; deterministic bytes."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 2:
        colour_type, channels = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError("png_bytes needs a grey or RGB uint8 array")
    h, w = a.shape[:2]
    raw = np.zeros((h, 1 + w * channels), np.uint8)  # filter byte 0 (None) on every row
    raw[:, 1:] = a.reshape(h, w * channels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def downscale(image: np.ndarray, side: int = THUMB_SIDE) -> tuple[np.ndarray, int]:
    """Block-mean downscale so the longest side is at most `side`; returns (image, factor)."""
    h, w = image.shape[:2]
    f = max(1, -(-max(h, w) // side))
    if f == 1:
        return image, 1
    hh, ww = h // f * f, w // f * f
    a = image[:hh, :ww].astype(np.float32)
    shape = (hh // f, f, ww // f, f) + a.shape[2:]
    return a.reshape(shape).mean(axis=(1, 3)).round().astype(np.uint8), f


def thumbnail_png(display: np.ndarray, outline: Sequence[Box] = ()) -> bytes:
    """Thumbnail of a displayable uint8 frame, with boxes (top, left, bottom, right) outlined in red."""
    small, f = downscale(display)
    if outline:
        rgb = small if small.ndim == 3 else np.repeat(small[..., None], 3, axis=2)
        rgb = rgb.copy()
        h, w = rgb.shape[:2]
        for b in outline:
            t, lft = min(h - 1, b.top // f), min(w - 1, b.left // f)
            bot, rgt = min(h - 1, max(t, (b.bottom - 1) // f)), min(w - 1, max(lft, (b.right - 1) // f))
            rgb[t, lft:rgt + 1] = rgb[bot, lft:rgt + 1] = (255, 0, 0)
            rgb[t:bot + 1, lft] = rgb[t:bot + 1, rgt] = (255, 0, 0)
        small = rgb
    return png_bytes(small)


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return '<div class="none">no picture</div>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#111}
.warn{background:#fee;border:2px solid #c00;padding:.8em;font-weight:bold}
.entry{display:inline-block;vertical-align:top;margin:.6em;padding:.5em;border:1px solid #bbb}
.entry img{display:block;max-width:256px;image-rendering:pixelated;background:#000}
.pair{display:flex;gap:.4em}.cap{font-size:.8em;color:#444}.none{width:128px;height:96px;background:#ddd}
h2{margin-top:1.5em}
"""


def render_review_page(entries: list[ReviewEntry]) -> str:
    """The pixel review page as one HTML document, images inline: held ones first, then redacted."""
    held = [e for e in entries if e.status == "hold"]
    redacted = [e for e in entries if e.status != "hold"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Pixel review</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Burned-in text: pixel review</h1>",
        "<p class='warn'>This page shows image pixels that may contain patient information "
        "(names, dates, IDs burned into the image). It must stay in the hospital: do not copy it "
        "into the delivery or send it.</p>",
        f"<p>{len(held)} image(s) held back (not copied to the output); "
        f"{len(redacted)} image(s) redacted (red boxes: what was blanked).</p>",
        "<p>The label (F000123) is the reference in held_back.csv, which names the original file.</p>",
        "<h2>Held back</h2>",
    ]
    for e in held:
        parts.append(f"<div class='entry'><b>{html.escape(e.label)}</b><div class='cap'>{html.escape(e.reason)}</div>"
                     f"{_img(e.before_png, 'held-back image')}</div>")
    if not held:
        parts.append("<p>None.</p>")
    parts.append("<h2>Redacted: before and after</h2>")
    if not redacted:
        parts.append("<p>None.</p>")
    for e in redacted:
        parts.append(f"<div class='entry'><b>{html.escape(e.label)}</b><div class='cap'>{html.escape(e.reason)}</div>"
                     f"<div class='pair'><div><div class='cap'>before</div>{_img(e.before_png, 'before')}</div>"
                     f"<div><div class='cap'>after</div>{_img(e.after_png, 'after')}</div></div></div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_review_page(path: Path, entries: list[ReviewEntry]) -> None:
    """Write the page (one file, UTF-8). Held-back entries first, each with its thumbnail."""
    Path(path).write_text(render_review_page(entries), encoding="utf-8")
