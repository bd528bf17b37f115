"""Walking encapsulated pixel data: items, frames and where each codestream ends.

The items of encapsulated pixel data (PS3.5 A.4: Basic Offset Table, fragments, delimiter), the
end of each frame's codestream (JPEG / JPEG-LS: ISO 10918-1 B.1, 14495-1; JPEG 2000: 15444-1 A,
also inside a JP2 box) and RLE segments (PS3.5 G, PackBits). Bytes after a frame's end are
leftovers no decoder reads: a non-zero pad byte is zeroed, anything more holds the file.
Works on any read(offset, n) function; does no I/O of its own.
"""
from __future__ import annotations

import struct

from pydicom.uid import RLELossless

from .dicom_types import ReadAt, Unreadable


# ---- bytes outside the data elements (issue 12, kind 4) ----------------------------------------

_ENCAPSULATED_JPEG_FAMILY = None  # filled on first use: JPEG, JPEG-LS, JPEG 2000, HTJ2K UIDs
_FRAME_END = b"\xff\xd9"                        # JPEG/JPEG-LS EOI, JPEG 2000 EOC




def _starts_frame(head: bytes) -> bool:
    """A JPEG/JPEG-LS SOI, a JPEG 2000 codestream SOC, or a JP2 file's signature box."""
    return head[:2] in (b"\xff\xd8", b"\xff\x4f") or head == b"\x00\x00\x00\x0cjP  "


def check_fragments(read: ReadAt, total: int, ts: str, frame_pixels: int = 0) -> list[int]:
    """Check the items of encapsulated pixel data (PS3.5 A.4) whose value is `total` bytes read
    through read(offset, n) (offsets from the start of the value, the delimiter included).

    The Basic Offset Table must hold only ascending offsets (a multiple of 4 bytes). For the JPEG
    family (JPEG, JPEG-LS, JPEG 2000, HTJ2K), fragments are grouped into frames (a frame starts with
    an SOI/SOC marker) and every frame must end with its EOI/EOC marker plus at most one pad byte:
    bytes after it are leftovers no decoder reads. For RLE (PS3.5 G), given frame_pixels (Rows x
    Columns), each segment must decode to exactly that many bytes, with at most a pad byte or
    zeros after it. Returns the offsets (ascending within each frame) of bytes to be written as
    zero: non-zero pad bytes, and the non-zero bytes of comment and application segments no
    decoder needs (a name, an Exif date: _KEPT_APP says which stay). Raises Unreadable for
    anything else not accounted for."""
    items = _items(read, total)
    _check_offset_table(read, items)
    fragments = items[1:]
    if str(ts) == RLELossless and frame_pixels:
        return [p for at, length in fragments for p in _check_rle_fragment(read, at, length, frame_pixels)]
    if str(ts) not in _jpeg_family() or not fragments:
        return []
    patches = []
    frame: list[tuple[int, int]] = []
    for i, (at, length) in enumerate(fragments):
        if i == 0 and (length < 2 or not _starts_frame(read(at, 8))):
            raise Unreadable("encapsulated pixel data: first fragment does not start a JPEG frame")
        frame.append((at, length))
        if i + 1 < len(fragments) and not _starts_frame(read(fragments[i + 1][0], 8)):
            continue  # the frame goes on in the next fragment
        patches += _check_frame(read, frame)
        frame = []
    return patches


def _jpeg_family() -> frozenset[str]:
    """The JPEG, JPEG-LS, JPEG 2000 and HTJ2K transfer syntax UIDs (worked out on first use)."""
    global _ENCAPSULATED_JPEG_FAMILY
    if _ENCAPSULATED_JPEG_FAMILY is None:
        import pydicom.uid as uid_module

        family: set[str] = set(uid_module.JPEGTransferSyntaxes) | set(uid_module.JPEGLSTransferSyntaxes) \
            | set(uid_module.JPEG2000TransferSyntaxes)
        family |= {str(v) for k, v in vars(uid_module).items() if k.startswith("HTJ2K") and isinstance(v, str)}
        _ENCAPSULATED_JPEG_FAMILY = frozenset(str(u) for u in family)
    return _ENCAPSULATED_JPEG_FAMILY


def _items(read: ReadAt, total: int) -> list[tuple[int, int]]:
    """(value offset, length) of each item up to the sequence delimiter (PS3.5 A.4); Unreadable
    when there is none."""
    items: list[tuple[int, int]] = []
    pos = 0
    while pos + 8 <= total:
        group, elem, length = struct.unpack("<HHI", read(pos, 8))
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        items.append((pos + 8, length))
        pos += 8 + length
    if not items:
        raise Unreadable("encapsulated pixel data without items")
    return items


def _check_offset_table(read: ReadAt, items: list[tuple[int, int]]) -> None:
    """The Basic Offset Table (the first item) holds only ascending offsets into the fragments,
    a multiple of 4 bytes; Unreadable otherwise."""
    bot_at, bot_length = items[0]
    if bot_length % 4:
        raise Unreadable("encapsulated pixel data: offset table of a length that is not a multiple of 4")
    if bot_length:
        offsets = struct.unpack(f"<{bot_length // 4}I", read(bot_at, bot_length))
        span = sum(8 + n for _, n in items[1:])
        if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)) or offsets[-1] >= max(span, 1):
            raise Unreadable("encapsulated pixel data: offset table that does not point at its fragments")


def _check_frame(read: ReadAt, fragments: list[tuple[int, int]]) -> list[int]:
    """One frame (its fragments, in order): the bytes after the end of its codestream (parsed, so
    leftovers that happen to end in FF D9 are found too) must be zeros or one pad byte. Where the
    codestream cannot be parsed, the frame must end with its EOI/EOC marker plus at most one pad
    byte. Returns the offset of a non-zero pad byte to write as zero, if any; raises Unreadable."""
    data = b"".join(read(at, length) for at, length in fragments)
    blank: list[tuple[int, int]] = []
    end = _codestream_end(data, blank)
    if end is None:  # not parsed: the frame's last bytes decide (EOI/EOC, or EOI/EOC + one byte)
        end = len(data) if data.endswith(_FRAME_END) else len(data) - 1 if data[-3:-1] == _FRAME_END else -1
    tail = data[end:] if end >= 0 else data
    if end >= 0 and (not tail.strip(b"\0") or len(tail) == 1):
        last_at, last_length = fragments[-1]
        pad = [last_at + last_length - 1] if len(tail) == 1 and tail != b"\0" else []
        return _value_offsets(fragments, [i for at, n in blank for i in range(at, at + n) if data[i]]) + pad
    raise Unreadable("encapsulated pixel data: bytes after a frame's end-of-image marker (held: "
                     "they are not part of the image)")


def _value_offsets(fragments: list[tuple[int, int]], frame_offsets: list[int]) -> list[int]:
    """Offsets in a frame's joined fragments (ascending) as offsets in the pixel data value."""
    out = []
    starts = []
    total = 0
    for at, length in fragments:
        starts.append((total, at, length))
        total += length
    k = 0
    for i in frame_offsets:
        while i >= starts[k][0] + starts[k][2]:
            k += 1
        out.append(starts[k][1] + i - starts[k][0])
    return out


# JPEG application segments a decoder needs (kept): the JFIF header (APP0), Adobe's colour
# transform (APP14), JPEG-LS's colour transform (APP8 "mrfx"). Every other application segment
# and every comment is text or metadata no decoder needs, and can hold anything: a name, an Exif
# date, a thumbnail, a camera owner. Its payload is written as zeros (the lengths stay: the
# codestream is still valid and decodes to the same pixels).
_KEPT_APP = ((0xE0, b"JFIF\0"), (0xEE, b"Adobe"), (0xE8, b"mrfx"))
_JPEG_COM = 0xFE
_KEPT_JP2_BOXES = (b"jP  ", b"ftyp", b"jp2h", b"rreq")  # what a JP2 reader needs before 'jp2c' (15444-1 I)
_J2K_COM = b"\xff\x64"


def _jpeg_blank(marker: int, payload_at: int, payload: bytes, blank: list[tuple[int, int]] | None) -> None:
    """Add a JPEG comment (COM) or application segment (APPn) payload to blank, unless _KEPT_APP."""
    if blank is None or not (marker == _JPEG_COM or 0xE0 <= marker <= 0xEF):
        return
    if any(marker == m and payload.startswith(sig) for m, sig in _KEPT_APP):
        return
    blank.append((payload_at, len(payload)))


def _check_rle_fragment(read: ReadAt, at: int, length: int, frame_pixels: int) -> list[int]:
    """One RLE frame: 64-byte header (segment count, offsets), then segments that each decode
    (PackBits) to frame_pixels bytes; what follows a segment's data may only be zeros or a pad."""
    data = read(at, length)
    refuse = "encapsulated pixel data: RLE frame with bytes that are not part of the image"
    if len(data) < 64:
        raise Unreadable(refuse)
    header = struct.unpack("<16I", data[:64])
    count, offsets = header[0], list(header[1:])
    if not 1 <= count <= 15 or offsets[0] != 64 or any(offsets[count:]):
        raise Unreadable(refuse)
    bounds = offsets[:count] + [len(data)]
    patches = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        if end <= start:
            raise Unreadable(refuse)
        used = _packbits_length(data, start, end, frame_pixels)
        tail = data[used:end] if used is not None else b"x" * 2
        if tail.strip(b"\0") and len(tail) > 1:
            raise Unreadable(refuse)
        if len(tail) == 1 and tail != b"\0":  # so used is not None
            patches.append(at + (used or 0))
    return patches


def _packbits_length(data: bytes, pos: int, end: int, needed: int) -> int | None:
    """Where the PackBits runs from pos that make `needed` bytes end (None if data[pos:end] cannot)."""
    made = 0
    while made < needed:
        if pos >= end:
            return None
        header = data[pos]
        if header < 128:
            pos += header + 2
            made += header + 1
        elif header > 128:
            pos += 2
            made += 257 - header
        else:
            pos += 1
    return pos if pos <= end else None


def _codestream_end(data: bytes, blank: list[tuple[int, int]] | None = None) -> int | None:
    """Where a JPEG / JPEG-LS (ISO 10918-1 B.1, 14495-1) or JPEG 2000 (15444-1 A, also inside a
    JP2 'jp2c' box) codestream ends, its EOI/EOC included; None if it cannot be followed. Given
    `blank`, adds (offset, length) of each comment and application segment payload no decoder
    needs (_jpeg_blank; JPEG 2000 COM text; JP2 boxes other than _KEPT_JP2_BOXES: XML, UUID,
    IPR), to be written as zeros."""
    try:
        if data[:2] == b"\xff\xd8":
            return _jpeg_end(data, blank)
        if data[:2] == b"\xff\x4f":
            return _j2k_end(data, 0, blank)
        if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
            pos = 0
            while pos + 8 <= len(data):
                size, kind = struct.unpack(">I4s", data[pos:pos + 8])
                header = 8
                if size == 1:
                    size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
                if kind == b"jp2c":
                    end = _j2k_end(data, pos + header, blank)
                    return end if end is not None and (size == 0 or end == pos + size) else None
                if size < header:
                    return None
                if blank is not None and kind not in _KEPT_JP2_BOXES:  # xml, uuid, IPR ...: text
                    blank.append((pos + header, min(size, len(data) - pos) - header))
                pos += size
    except (struct.error, IndexError):
        return None
    return None


def _jpeg_end(data: bytes, blank: list[tuple[int, int]] | None = None) -> int | None:
    """Where a JPEG / JPEG-LS codestream starting with SOI ends, its EOI included; None if it
    cannot be followed (ISO 10918-1 B.1). Comment and application payloads go to blank (_jpeg_blank)."""
    pos, ls = 2, False
    n = len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        _jpeg_blank(marker, pos + 4, data[pos + 4:pos + 2 + length], blank)
        pos += 2 + length
        if marker in (0xF7, 0xF8):  # JPEG-LS frame / parameters: its own bit stuffing
            ls = True
        if marker != 0xDA:
            continue
        scan_end = _scan_end(data, pos, ls)
        if scan_end is None:
            return None
        pos = scan_end
    return None


def _scan_end(data: bytes, pos: int, ls: bool) -> int | None:
    """Where the entropy-coded data from pos ends: at the next marker (stuffed bytes, restart
    markers and, for JPEG-LS, its own bit stuffing skipped); None if the data ends first."""
    n = len(data)
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= n:
            return None
        following = data[i + 1]
        if (following < 0x80) if ls else (following == 0x00 or 0xD0 <= following <= 0xD7):
            pos = i + 2
            continue
        if following == 0xFF and not ls:
            pos = i + 1
            continue
        return i


def _j2k_end(data: bytes, pos: int, blank: list[tuple[int, int]] | None = None) -> int | None:
    """Where a JPEG 2000 codestream starting at pos (SOC) ends, its EOC included; None if it
    cannot be followed (15444-1 A). The text of each COM segment (main and tile-part headers,
    after its Lcom and Rcom) goes to blank."""
    pos += 2  # SOC
    n = len(data)
    while pos + 2 <= n:
        marker = data[pos:pos + 2]
        if marker == b"\xff\xd9":
            return pos + 2
        if marker[0] != 0xFF or pos + 4 > n:
            return None
        if marker == b"\xff\x90":  # SOT: Psot is the tile-part's whole length (0: up to EOC)
            psot = int.from_bytes(data[pos + 6:pos + 10], "big")
            if blank is not None:
                _j2k_tile_comments(data, pos, pos + psot if psot else n, blank)
            if psot == 0:
                return n - 2 if data.endswith(b"\xff\xd9") else None
            pos += psot
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == _J2K_COM and blank is not None and length > 4:
            blank.append((pos + 6, min(length - 4, n - pos - 6)))
        pos += 2 + length
    return None


def _j2k_tile_comments(data: bytes, sot: int, end: int, blank: list[tuple[int, int]]) -> None:
    """COM segments of the tile-part header starting at sot (up to its SOD) into blank."""
    pos = sot + 2 + int.from_bytes(data[sot + 2:sot + 4], "big")
    while pos + 4 <= min(end, len(data)) and data[pos] == 0xFF and data[pos + 1] != 0x93:  # SOD: the data
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos:pos + 2] == _J2K_COM and length > 4:
            blank.append((pos + 6, min(length - 4, len(data) - pos - 6)))
        if length < 2:
            return
        pos += 2 + length
