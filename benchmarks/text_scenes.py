"""Generated 512x512 scenes with and without burned-in text, shared by the detector benchmark
(benchmarks/bench_pixel_detector.py, evaluation seed 1) and the detector's training script
(tools/train_text_detector.py, other seeds and more variety). Pillow renders the text; nothing
here is used at run time.

Text: fake names, dates, IDs in several fonts and sizes; high and low contrast, inverted, boxed,
coloured, 16-bit; on black, noise, anatomy-like and ultrasound backgrounds. Text-free: CT/MR-like
anatomy, ultrasound speckle fans, rulers and depth scales, markers and calipers, ECG traces,
colour Doppler, grey bars, CR-like 16-bit.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deidkit.synth import burn_text

SIZE = 512
FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
             "C:/Windows/Fonts", "/Library/Fonts", "/System/Library/Fonts/Supplemental"]
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf",
              "DejaVuSansCondensed.ttf", "LiberationSans-Regular.ttf", "arial.ttf", "cour.ttf",
              "Arial.ttf", "Courier New.ttf"]


class Bitmap5x7:
    """deidkit.synth's 5x7 bitmap font (as on many ultrasound screens), scaled by whole pixels."""

    def __init__(self, size: int) -> None:
        self.scale = max(1, round(size / 9))

    def bbox(self, text: str) -> tuple[int, int, int, int]:
        return (0, 0, len(text) * 6 * self.scale - self.scale, 7 * self.scale)


def text_bbox(text: str, font) -> tuple[int, int, int, int]:
    """Pillow's textbbox at (0, 0) for a Pillow font or a Bitmap5x7."""
    if isinstance(font, Bitmap5x7):
        return font.bbox(text)
    return ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)


def fonts() -> list[tuple[str, object]]:
    """(name, font factory by size); Pillow's bitmap font has one size only."""
    out: list[tuple[str, object]] = [("pil-bitmap", lambda size: ImageFont.load_default_imagefont()),
                                     ("pil-default", lambda size: ImageFont.load_default(size)),
                                     ("bitmap5x7", Bitmap5x7)]
    for d in FONT_DIRS:
        for f in FONT_FILES:
            p = os.path.join(d, f)
            if os.path.isfile(p):
                out.append((f, lambda size, p=p: ImageFont.truetype(p, size)))
    return out


def fake_phi(rng: np.random.Generator) -> str:
    first = ["JANE", "JOHN", "MARY", "Anna", "Lee", "Omar", "Zoe", "Pat", "Kim", "Ole"]
    last = ["DOE", "SMITH", "Garcia", "Nguyen", "O'BRIEN", "Muller", "Rossi", "Kowalski", "Li"]
    kind = rng.integers(0, 7)
    d, m, y = rng.integers(1, 29), rng.integers(1, 13), rng.integers(1930, 2024)
    if kind == 0:
        return f"{rng.choice(last)}^{rng.choice(first)}"
    if kind == 1:
        return f"{rng.choice(last)}, {rng.choice(first)}"
    if kind == 2:
        return f"DOB: {m:02d}/{d:02d}/{y}"
    if kind == 3:
        return f"MRN {rng.integers(10**6, 10**10)}"
    if kind == 4:
        return f"ID:{rng.integers(10**5, 10**8)}  {y}-{m:02d}-{d:02d}"
    if kind == 5:
        return f"{rng.choice(['St', 'Mercy', 'General', 'City'])} Hospital {rng.choice(['North', 'West', 'Clinic'])}"
    return f"{d:02d}.{m:02d}.{y} {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"


# ---- backgrounds (float32, 0..255 unless stated) -------------------------------------------

def smooth_field(rng: np.random.Generator, cells: int) -> np.ndarray:
    small = rng.random((cells + 1, cells + 1)).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def bg_black(rng):
    return rng.normal(2, 1, (SIZE, SIZE)).clip(0, 255).astype(np.float32)


def bg_noise(rng):
    return rng.normal(rng.uniform(40, 150), rng.uniform(4, 18), (SIZE, SIZE)).astype(np.float32)


def bg_anatomy(rng):
    f = smooth_field(rng, int(rng.integers(3, 9)))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx, r = SIZE / 2 + rng.normal(0, 10), SIZE / 2 + rng.normal(0, 10), rng.uniform(150, 230)
    body = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)
    img = body * (60 + 120 * f)
    for _ in range(int(rng.integers(2, 6))):  # organs / bones
        oy, ox, orad = rng.uniform(150, 360), rng.uniform(150, 360), rng.uniform(10, 50)
        organ = ((yy - oy) ** 2 + (xx - ox) ** 2 < orad ** 2)
        img[organ] = rng.uniform(40, 250)
    img = np.asarray(Image.fromarray(img.clip(0, 255).astype(np.uint8)).resize(
        (SIZE // 2, SIZE // 2), Image.BILINEAR).resize((SIZE, SIZE), Image.BILINEAR), np.float32)
    return img + rng.normal(0, rng.uniform(2, 8), (SIZE, SIZE)).astype(np.float32)


def us_fan(rng, img=None):
    if img is None:
        img = bg_black(rng)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    apex_y, apex_x = rng.uniform(-60, 40), SIZE / 2 + rng.normal(0, 10)
    ang = np.arctan2(xx - apex_x, yy - apex_y)
    rad = np.hypot(xx - apex_x, yy - apex_y)
    half = rng.uniform(0.45, 0.75)
    r0, r1 = rng.uniform(60, 120), rng.uniform(400, 500)
    fan = (np.abs(ang) < half) & (rad > r0) & (rad < r1)
    speckle = rng.rayleigh(1.0, (SIZE // 2, SIZE // 2)).astype(np.float32)
    speckle = np.kron(speckle, np.ones((2, 2), np.float32))
    tissue = 40 + 110 * smooth_field(rng, 6)
    img = img.copy()
    img[fan] = (tissue * speckle)[fan]
    return img.clip(0, 255), fan


def bg_us(rng):
    return us_fan(rng)[0]


BACKGROUNDS = [bg_black, bg_noise, bg_anatomy, bg_us]


# ---- text -----------------------------------------------------------------------------------

def text_alpha(text: str, font, pos: tuple[int, int]) -> np.ndarray:
    """Coverage (0..1) of the text drawn at pos (Pillow's origin, before its bbox offset)."""
    if isinstance(font, Bitmap5x7):
        layer = np.zeros((SIZE, SIZE), np.float32)
        burn_text(layer, text, max(0, pos[1]), max(0, pos[0]), 1.0, font.scale)
        return layer
    layer = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(layer).text(pos, text, fill=255, font=font)
    return np.asarray(layer, np.float32) / 255.0


def with_text(rng: np.random.Generator, font_list) -> tuple[np.ndarray, np.ndarray, str]:
    """(frame, ink mask, description). Frames are uint8 grey, uint8 RGB or uint16 grey."""
    bg_fn = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    img = bg_fn(rng)
    fname, make = font_list[rng.integers(len(font_list))]
    size = int(rng.choice([8, 9, 10, 11, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48]))
    font = make(size)
    text = fake_phi(rng)
    bbox = text_bbox(text, font)
    tw, th = bbox[2] - bbox[0], bbox[3] - bbox[1]
    style = rng.choice(["bright", "low", "inverted", "boxed", "dark-on-light"])
    place = rng.choice(["top", "bottom", "corner", "anywhere"])
    mx, my = max(1, SIZE - tw - 4), max(1, SIZE - th - 4)
    if place == "top":
        pos = (int(rng.integers(0, mx)), int(rng.integers(0, 20)))
    elif place == "bottom":
        pos = (int(rng.integers(0, mx)), int(rng.integers(max(0, my - 20), my)))
    elif place == "corner":
        pos = (int(rng.choice([2, mx - 2])), int(rng.choice([2, my - 2])))
    else:
        pos = (int(rng.integers(0, mx)), int(rng.integers(0, my)))
    alpha = text_alpha(text, font, (pos[0] - bbox[0], pos[1] - bbox[1]))
    ink = alpha > 0.5
    img = ink_text(rng, img, alpha, style, (pos[0], pos[1], tw, th))
    kind = rng.choice(["grey8", "grey8", "rgb", "grey16"])
    desc = f"{bg_fn.__name__} {fname} {size}px {style} {place} {kind}"
    return as_kind(rng, img, kind, alpha), ink, desc


def ink_text(rng: np.random.Generator, img: np.ndarray, alpha: np.ndarray, style: str,
             box: tuple[int, int, int, int]) -> np.ndarray:
    """img with the text (alpha, 0..1) drawn in a style: bright, low (40-60 levels from the
    background), inverted (dark on a brightened image), boxed (dark on a light label) or
    dark-on-light (mid-grey on a light patch). box: x, y, width, height of the text."""
    x0, y0, tw, th = box
    region = img[y0:y0 + th, x0:x0 + tw]
    local = float(np.median(region)) if region.size else 0.0
    if style == "bright":
        value = np.float32(rng.uniform(200, 255))
    elif style == "low":  # 40-60 grey levels above (or below) the local background
        img = img * 0.5 if local > 160 else img  # keep room above the background
        local = float(np.median(img[y0:y0 + th, x0:x0 + tw])) if region.size else 0.0
        value = np.float32(local + rng.uniform(40, 60) * (1 if local < 190 else -1))
    elif style == "inverted":  # dark text on a bright background
        img = 255 - img * 0.4
        value = np.float32(rng.uniform(0, 40))
    elif style == "boxed":  # dark text on a light label box
        pad = 3
        img[max(0, y0 - pad):y0 + th + pad, max(0, x0 - pad):x0 + tw + pad] = rng.uniform(180, 240)
        value = np.float32(rng.uniform(0, 40))
    else:  # light grey background patch, mid-grey text
        img[max(0, y0 - 2):y0 + th + 2, max(0, x0 - 2):x0 + tw + 2] = rng.uniform(150, 200)
        value = np.float32(rng.uniform(40, 90))
    return img * (1 - alpha) + value * alpha


def as_kind(rng, img: np.ndarray, kind: str, alpha=None) -> np.ndarray:
    img = img.clip(0, 255)
    if kind == "rgb":
        rgb = np.repeat(img[..., None], 3, axis=2)
        if alpha is not None:  # coloured text: yellow, cyan, green or blue
            colour = np.array([[255, 230, 0], [0, 200, 200], [60, 255, 60], [80, 120, 255]][rng.integers(4)],
                              np.float32)
            tinted = rgb * (colour / 255.0)
            rgb = np.where(alpha[..., None] > 0.05, tinted, rgb)
        return rgb.astype(np.uint8)
    if kind == "grey16":
        return (img * (4095 / 255.0) + rng.normal(0, 3, img.shape)).clip(0, 4095).astype(np.uint16)
    return img.astype(np.uint8)


# ---- text-free scenes ------------------------------------------------------------------------

def draw_on(img: np.ndarray, paint) -> np.ndarray:
    layer = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    paint(ImageDraw.Draw(layer))
    return np.asarray(layer, np.float32)


def nf_anatomy(rng):
    return bg_anatomy(rng), "grey16" if rng.random() < 0.4 else "grey8"


def nf_us(rng):
    return bg_us(rng), "grey8"


def nf_ruler(rng):
    img = bg_us(rng) if rng.random() < 0.5 else bg_anatomy(rng)
    step = int(rng.choice([5, 8, 10, 16, 20, 32]))
    val = int(rng.uniform(150, 255))
    y = int(rng.integers(5, 40))

    def paint(d):
        for i, x in enumerate(range(20, SIZE - 20, step)):  # horizontal ruler, major every 5th
            d.line([(x, y), (x, y + (10 if i % 5 == 0 else 5))], fill=val)
        x = SIZE - int(rng.integers(10, 30))
        for i, yy in enumerate(range(40, SIZE - 40, step * 2)):  # depth scale dots/ticks
            d.line([(x, yy), (x + (6 if i % 5 == 0 else 3), yy)], fill=val, width=2)
    return draw_on(img, paint), "grey8"


def nf_markers(rng):
    img = bg_us(rng)
    val = int(rng.uniform(180, 255))

    def paint(d):
        for _ in range(int(rng.integers(2, 6))):
            x, y = int(rng.integers(30, SIZE - 30)), int(rng.integers(30, SIZE - 30))
            k = rng.integers(4)
            if k == 0:  # caliper cross
                d.line([(x - 5, y), (x + 5, y)], fill=val)
                d.line([(x, y - 5), (x, y + 5)], fill=val)
            elif k == 1:  # arrow
                d.line([(x, y), (x + 25, y + 25)], fill=val, width=2)
                d.polygon([(x, y), (x + 10, y), (x, y + 10)], fill=val)
            elif k == 2:  # circle
                d.ellipse([x - 8, y - 8, x + 8, y + 8], outline=val)
            else:  # dotted measurement line
                for t in range(0, 120, 6):
                    d.point((x + t * 0.8, y + t * 0.3), fill=val)
    return draw_on(img, paint), "grey8"


def nf_ecg(rng):
    img = bg_black(rng) if rng.random() < 0.5 else bg_us(rng)
    base = int(rng.integers(380, 480))
    period = rng.uniform(60, 120)
    xs = np.arange(0, SIZE)
    ph = (xs % period) / period
    sig = 4 * np.sin(2 * np.pi * ph) + np.where(np.abs(ph - 0.5) < 0.03, -40 * (1 - np.abs(ph - 0.5) / 0.03), 0)
    sig += np.where(np.abs(ph - 0.7) < 0.08, -8 * np.cos((ph - 0.7) / 0.08 * np.pi / 2), 0)
    pts = [(int(x), int(base + s)) for x, s in zip(xs, sig, strict=True)]
    val = (0, 255, 0) if rng.random() < 0.5 else (255, 255, 255)

    def paint(d):
        d.line(pts, fill=val[1], width=int(rng.integers(1, 3)))
    return draw_on(img, paint), "grey8"


def nf_doppler(rng):
    grey, fan = us_fan(rng)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, r = rng.uniform(150, 400), rng.uniform(150, 360), rng.uniform(15, 50)
        blob = ((yy - cy) ** 2 + ((xx - cx) * 0.6) ** 2 < r * r) & fan
        mosaic = rng.random((SIZE, SIZE)) < 0.5
        red = blob & mosaic
        blue = blob & ~mosaic
        rgb[red] = [220, 40, 30]
        rgb[blue] = [30, 60, 230]
    # colour bar at the side: a smooth ramp, not text
    ramp = np.linspace(255, 0, 128)
    rgb[100:228, 490:500, 0] = ramp[:, None]
    rgb[100:228, 490:500, 2] = ramp[::-1, None]
    return rgb, "rgb-raw"


def nf_cr(rng):
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    img = 30 + 120 * smooth_field(rng, 4) + 40 * np.exp(-((xx - 256) ** 2) / 8000)
    img[:, : int(rng.integers(10, 40))] = 250  # collimation edge
    img[int(rng.integers(470, 505)):, :] = 250
    img += rng.normal(0, 3, img.shape)
    return img, "grey16"


def nf_bars(rng):
    img = bg_anatomy(rng)
    img[:, 500:510] = np.linspace(255, 0, SIZE)[:, None]  # grey bar
    img[40:44, 60:460] = 255  # a bright line
    return img, "grey8"


TEXT_FREE = [nf_anatomy, nf_us, nf_ruler, nf_markers, nf_ecg, nf_doppler, nf_cr, nf_bars]


def without_text(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    fn = TEXT_FREE[rng.integers(len(TEXT_FREE))]
    img, kind = fn(rng)
    if kind == "rgb-raw":
        return img.clip(0, 255).astype(np.uint8), fn.__name__
    return as_kind(rng, img, kind), fn.__name__


def ink_covered(boxes, ink: np.ndarray, margin: int) -> float:
    """Share of the text's ink inside the boxes grown by the redaction margin (1.0: no ink)."""
    if not ink.any():
        return 1.0
    m = np.zeros_like(ink)
    for b in boxes:
        g = b.grown(margin, *ink.shape)
        m[g.top:g.bottom, g.left:g.right] = True
    return float((m & ink).sum() / ink.sum())


# ---- parametric maps (issue 16): small derived MR frames and mosaics, with and without labels ----

MAP_KINDS = ("adc", "trace", "fa", "perfusion", "colour-fa")


def field(rng: np.random.Generator, rows: int, cols: int, cells: int) -> np.ndarray:
    """A smooth random field (0..1) of rows x cols varying over about cells blobs a side."""
    small = rng.random((cells + 1, cells + 1)).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((cols, rows), Image.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def param_map(rng: np.random.Generator, rows: int, cols: int, kind: str | None = None,
              head: float | None = None, background: float | None = None,
              top: float | None = None) -> tuple[np.ndarray, str]:
    """A text-free parametric map like a scanner's derived MR images (ADC, trace-weighted, FA,
    perfusion, colour FA) at their own small matrix (48-250 pixels a side): a head with a jagged
    masked rim on a zero (or noisy grey) background, scalp ring, folded cortex, ventricles, bright
    or dark orbits and sinuses, pixel noise, sometimes quantised. Returns (frame, kind): uint16
    grey (any range up to 4095), uint8 grey, or uint8 RGB for colour FA. head (the head's
    half-height as a share of the frame's), background (0..1: masked, noisy, grey) and top (the
    brightest value, uint16) are drawn unless given (a mosaic's slices share them)."""
    kind = kind or str(rng.choice(MAP_KINDS))
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    yy, xx = (yy + 0.5) / rows * 2 - 1, (xx + 0.5) / cols * 2 - 1
    cy, cx = rng.normal(0, 0.06), rng.normal(0, 0.06)
    ry = head if head is not None else rng.uniform(0.45, 0.95)
    rx = ry * rng.uniform(0.7, 0.95)
    ang = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.06 * (np.sin(ang * rng.integers(2, 5) + rng.uniform(0, 6)) * rng.random())
    r = np.hypot((yy - cy) / ry, (xx - cx) / rx) * wobble
    csf_bright = kind in ("adc", "perfusion")
    brain_level = rng.uniform(0.35, 0.6)
    img = np.where(r < 1, brain_level, 0.0).astype(np.float32)
    img += (r < 1) * 0.25 * (field(rng, rows, cols, int(rng.integers(3, 8))) - 0.5)
    scalp = (r >= rng.uniform(0.84, 0.9)) & (r < 1)
    img[scalp] = rng.uniform(0.2, 0.9)
    gap = (r >= rng.uniform(0.78, 0.83)) & (r < 0.86) & ~scalp
    img[gap] = rng.uniform(0.0, 0.3) if not csf_bright else rng.uniform(0.6, 1.0)
    folds = field(rng, rows, cols, max(4, int(min(rows, cols) / rng.uniform(3, 7))))
    sulci = (np.abs(np.sin(folds * rng.uniform(8, 20))) < rng.uniform(0.15, 0.35)) & (r < 0.8) & (r > rng.uniform(0.2, 0.6))
    img[sulci] = img[sulci] * 0.4 + (0.7 if csf_bright else 0.1)
    for side in (-1, 1):  # ventricles
        v = np.hypot((yy - cy - rng.normal(0, 0.04)) / (ry * rng.uniform(0.15, 0.4)),
                     (xx - cx - side * rx * rng.uniform(0.1, 0.2)) / (rx * rng.uniform(0.06, 0.16)))
        img[v < 1] = rng.uniform(0.75, 1.0) if csf_bright else rng.uniform(0.0, 0.2)
    for _ in range(int(rng.integers(0, 5))):  # orbits, sinuses, vessels: small sharp blobs at the front
        oy, ox = cy - ry * rng.uniform(0.4, 0.8), cx + rx * rng.uniform(-0.5, 0.5)
        q = np.hypot((yy - oy) / rng.uniform(0.04, 0.15), (xx - ox) / rng.uniform(0.04, 0.15))
        img[(q < 1) & (r < 1)] = rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.8, 1.0)])
    if kind in ("fa", "colour-fa"):  # FA: thin bright tracts and heavy grain
        tracts = field(rng, rows, cols, max(3, min(rows, cols) // int(rng.integers(4, 9))))
        img = (r < 0.95) * (0.15 + 0.7 * np.exp(-((tracts - 0.5) / rng.uniform(0.04, 0.1)) ** 2))
        img = img * (0.6 + 0.8 * rng.random((rows, cols)))
    noise = rng.uniform(0.01, 0.12 if kind != "perfusion" else 0.25)
    img = np.abs(img + rng.normal(0, noise, (rows, cols))).astype(np.float32)
    background = rng.random() if background is None else background
    if background < 0.65:  # masked: zero where the (noisy) signal is low, a jagged rim and specks
        img[(r > 1) | (img < rng.uniform(0.02, 0.15))] = 0
        specks = (r > 1) & (rng.random((rows, cols)) < rng.uniform(0, 0.02))
        img[specks] = rng.uniform(0.1, 1.0, int(specks.sum()))
    elif background < 0.85:  # noise everywhere (unmasked maps, phase, perfusion)
        img = np.where(r > 1, np.abs(rng.normal(0, rng.uniform(0.02, 0.2), (rows, cols))), img)
    else:  # an offset grey background (relative maps)
        img = np.where(r > 1, rng.uniform(0.2, 0.5) + rng.normal(0, 0.03, (rows, cols)), img)
    img = np.clip(img, 0, None) / max(float(img.max()), 1e-6)
    if rng.random() < 0.3:  # few grey levels
        levels = int(rng.integers(6, 32))
        img = np.round(img * levels) / levels
    if kind == "colour-fa":
        d = np.stack([field(rng, rows, cols, int(rng.integers(3, 8))) for _ in range(3)], axis=2)
        d /= np.maximum(d.sum(axis=2, keepdims=True), 1e-6)
        return (np.clip(img[..., None] * d * 3, 0, 1) * 255).astype(np.uint8), kind
    if top is None and rng.random() < 0.2:
        return (img * 255).astype(np.uint8), kind
    if top is None:
        top = float(rng.choice([255, 1000, 1400, 4095, 2 ** int(rng.integers(9, 13)) - 1]))
    return (img * top).astype(np.uint16), kind


def map_label(rng: np.random.Generator) -> str:
    """What a scanner or a viewer writes on a map: a slice number (two or three digits: one glyph
    alone is not a row of text, and a lone digit identifies nobody), a map name, a patient's details."""
    k = rng.integers(4)
    if k == 0:
        return str(int(rng.integers(10, 120)))
    if k == 1:
        return str(rng.choice(["ADC", "FA", "TRACEW", "RCBF", "SL 12", "IMA 4", "B 1000", "TE 80"]))
    if k == 2:
        return fake_phi(rng).upper()[: int(rng.integers(3, 14))]
    return f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1930, 2024)}"


def burn_label(rng: np.random.Generator, frame: np.ndarray, text: str, scale: int,
               where: str = "any", top: float | None = None) -> np.ndarray | None:
    """Burn text with the 5x7 font into frame (in place) at a corner, an edge or anywhere, in
    top (default: the frame's brightest value), or in its darkest where the label lies on
    bright anatomy; returns its ink mask, or None when it does not fit."""
    rows, cols = frame.shape[:2]
    tw, th = len(text) * 6 * scale - scale, 7 * scale
    if tw + 2 > cols or th + 2 > rows:
        return None
    if where == "any":
        where = str(rng.choice(["corner", "edge", "anywhere"]))
    if where == "corner":
        row = int(rng.choice([int(rng.integers(0, 3)), rows - th - int(rng.integers(0, 3))]))
        col = int(rng.choice([int(rng.integers(0, 3)), cols - tw - int(rng.integers(0, 3))]))
    elif where == "edge":
        row = int(rng.choice([int(rng.integers(0, 4)), rows - th - int(rng.integers(0, 4))]))
        col = int(rng.integers(0, cols - tw + 1))
    else:
        row, col = int(rng.integers(0, rows - th + 1)), int(rng.integers(0, cols - tw + 1))
    row, col = max(0, min(row, rows - th)), max(0, min(col, cols - tw))
    ink = np.zeros((rows, cols), np.uint8)
    burn_text(ink, text, row, col, 1, scale)
    top = frame.max() if top is None else top
    under = frame[row:row + th, col:col + tw]
    dark = frame.ndim == 2 and rng.random() < 0.3 and float(np.percentile(under, 20)) > 0.4 * float(top)
    value = frame.min() if dark else top
    if frame.ndim == 3 and rng.random() < 0.5:
        value = np.array([255, 255, 0], np.uint8)  # yellow labels on colour maps
    frame[ink.astype(bool)] = value
    return ink.astype(bool)


def mosaic(rng: np.random.Generator, tile: int, grid: int, slices: int | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A Siemens-style mosaic: grid x grid tiles of tile pixels, the slices of one map from the
    skull base to the vertex (the head grows, then shrinks), the rest black. Returns (uint16
    frame, each slice's (top, left))."""
    kind = str(rng.choice(MAP_KINDS[:4]))
    slices = slices or int(rng.integers(max(1, grid * (grid - 1)), grid * grid + 1))
    background, top = float(rng.random()), float(rng.choice([1000, 1400, 4095]))
    biggest = rng.uniform(0.7, 0.95)
    frame = np.zeros((tile * grid, tile * grid), np.uint16)
    corners = []
    for s in range(slices):
        head = biggest * max(0.25, float(np.sin(np.pi * (s + 1) / (slices + 1))) ** 0.5)
        one, _ = param_map(rng, tile, tile, kind, head=head, background=background, top=top)
        t, l = (s // grid) * tile, (s % grid) * tile
        frame[t:t + tile, l:l + tile] = one
        corners.append((t, l))
    return frame, corners
