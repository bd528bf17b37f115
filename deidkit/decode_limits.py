"""How much decoding an image may cost, judged before anything is decoded.

Decompression bombs (issue 20, item 8): the size the DICOM header declares (PS3.3 C.7.6.3),
the size each compressed frame's own header declares (JPEG / JPEG-LS SOF, JPEG 2000 SIZ), and
how far a deflated transfer syntax (PS3.5 A.5) unpacks, each checked against a limit.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO

from pydicom.dataset import Dataset


# Decoding is bounded before it starts (issue 20, item 8: decompression bombs): one frame, and all
# frames together, may unpack to at most this much.
DECODE_FRAME_LIMIT = int(os.environ.get("DEIDKIT_DECODE_FRAME_LIMIT_MB", "128")) * 1024 * 1024
DECODE_TOTAL_LIMIT = int(os.environ.get("DEIDKIT_DECODE_TOTAL_LIMIT_MB", "1024")) * 1024 * 1024
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}  # F7: JPEG-LS


def _int_of(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(default if value is None or value == "" else value)
    except (TypeError, ValueError, OverflowError):
        return -1


def decode_size_problem(ds: Dataset, frame_limit: int | None = None, total_limit: int | None = None) -> str | None:
    """Why decoding this image's pixels must not be tried, or None: the size its header declares
    (Rows x Columns x Samples per Pixel x bytes per sample per frame, times Number of Frames,
    PS3.3 C.7.6.3) or the size each compressed frame's own header declares (JPEG and JPEG-LS SOF,
    JPEG 2000 SIZ) is above the limits, or a frame declares more pixels than the DICOM header
    says. Reads only headers; decodes nothing. Works on a header read without pixels too."""
    frame_limit = DECODE_FRAME_LIMIT if frame_limit is None else frame_limit
    total_limit = DECODE_TOTAL_LIMIT if total_limit is None else total_limit
    if "Rows" not in ds and "PixelData" not in ds:
        return None
    rows, cols = _int_of(ds, "Rows", 0), _int_of(ds, "Columns", 0)
    frames, samples = _int_of(ds, "NumberOfFrames", 1), _int_of(ds, "SamplesPerPixel", 1)
    bits = _int_of(ds, "BitsAllocated", 8)
    if min(rows, cols, frames, samples, bits) < 0:
        return "image size in the header cannot be read: held, not decoded"
    frame_bytes = rows * cols * max(samples, 1) * max(-(-bits // 8), 1)
    if frame_bytes > frame_limit or frame_bytes * max(frames, 1) > total_limit:
        return (f"image too large to check: its header declares {rows} x {cols} pixels x {max(frames, 1)} frames "
                f"({frame_bytes * max(frames, 1) // (1 << 20)} MB); held, not decoded")
    pixel = ds.get_item(0x7FE00010) if "PixelData" in ds else None
    value = getattr(pixel, "value", None)
    if not isinstance(value, (bytes, bytearray)) or not value.startswith(b"\xfe\xff\x00\xe0"):
        return None
    try:
        from pydicom.encaps import generate_fragments

        for index, fragment in enumerate(generate_fragments(value)):
            if index == 0:
                continue  # the Basic Offset Table
            dims = _codec_dimensions(fragment[:65536])
            if dims is None:
                continue
            c_rows, c_cols, c_samples, c_bytes = dims
            if c_rows * c_cols * c_samples * c_bytes > frame_limit:
                return (f"image too large to check: its compressed data declares {c_rows} x {c_cols} pixels "
                        f"({c_rows * c_cols * c_samples * c_bytes // (1 << 20)} MB a frame); held, not decoded")
            if c_rows * c_cols > max(rows, 1) * max(cols, 1):
                return ("image data does not match its header (the compressed frame declares more pixels than "
                        "Rows x Columns): held, not decoded")
    except (ValueError, TypeError, struct.error):
        return None  # the decoder will fail on it: held by the pixel check with its own reason
    return None


def _codec_dimensions(head: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, bytes per sample) from a JPEG/JPEG-LS SOF or JPEG 2000 SIZ
    marker near the start of a compressed frame, or None if none is found."""
    if head[:2] == b"\xff\xd8":  # JPEG family: walk the markers up to the frame header
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
            if marker in _JPEG_SOF and pos + 10 <= len(head):
                precision, y, x, comps = struct.unpack(">BHHB", head[pos + 4:pos + 10])
                return y, x, comps, max(-(-precision // 8), 1)
            if marker == 0xDA:
                return None
            pos += 2 + length
        return None
    siz = head.find(b"\xff\x4f\xff\x51")  # J2K codestream start + SIZ (also inside a JP2 box)
    if siz != -1 and siz + 42 <= len(head):
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", head[siz + 8:siz + 24])
        comps = struct.unpack(">H", head[siz + 40:siz + 42])[0]
        depth = (head[siz + 42] & 0x7F) + 1 if siz + 43 <= len(head) else 16
        return max(ysiz - yo, 0), max(xsiz - xo, 0), comps, max(-(-depth // 8), 1)
    return None


def deflated_size_problem(fp: BinaryIO, start: int, limit: int) -> str | None:
    """For a deflated transfer syntax: None if the data from `start` inflates to at most `limit`
    bytes, else why not (a zip bomb is stopped after `limit` bytes, never held in memory)."""
    import zlib

    fp.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while True:
        chunk = fp.read(1 << 20)
        if not chunk:
            return None
        try:
            data = inflater.decompress(chunk, limit + 1 - total)
            total += len(data)
            while inflater.unconsumed_tail and total <= limit:
                data = inflater.decompress(inflater.unconsumed_tail, limit + 1 - total)
                if not data:
                    break
                total += len(data)
        except zlib.error:
            return None  # not valid deflate: pydicom's read says so
        if total > limit:
            return f"compressed header unpacks to more than {limit // (1 << 20)} MB: held, not unpacked"
        if inflater.eof:
            return None
