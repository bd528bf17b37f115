"""Where the pixel data element lies and which of its bytes go out (issue 12).

Locates the pixel data element after a header read without pixels (PS3.5 7.1, A.4 for
encapsulated values), works out how many bytes native frames take (PS3.3 C.7.6.3), and plans
what is written for it: exactly the frames' bytes (leftovers after them are not copied), or the
encapsulated items as checked by deidkit.fragments. fit_pixel_data does the same for a dataset
read whole. Data Set Trailing Padding (FFFC,FFFC) is dropped.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import (ExplicitVRBigEndian, ImplicitVRLittleEndian)

from .dicom_types import _LONG_LENGTH_VRS, _PIXEL_TAGS, PixelSpan, Unreadable
from .fragments import check_fragments
from .rawindex import holds_tag


_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV"}  # PS3.5 A.1 (Float/Double Float Pixel Data: OF, OD)


def _pixel_span(fp: BinaryIO, stop: int, size: int, ts: str) -> PixelSpan | None:
    """Parse the pixel data element header at `stop` and find where its value ends."""
    fp.seek(stop)
    head = fp.read(12)
    if len(head) < 8:
        return None
    group, elem = struct.unpack("<HH", head[:4])
    if (group, elem) not in _PIXEL_TAGS:
        return None
    implicit = ts == ImplicitVRLittleEndian
    if implicit:
        length = struct.unpack("<I", head[4:8])[0]
        value_start = stop + 8
    else:
        vr = head[4:6]
        if vr not in _PIXEL_VRS:  # a damaged VR: the element would go out unreadable
            raise Unreadable("corrupt: the pixel data element is damaged")
        if vr in _LONG_LENGTH_VRS:
            if len(head) < 12:
                raise Unreadable("truncated pixel data header")
            length = struct.unpack("<I", head[8:12])[0]
            value_start = stop + 12
        else:
            length = struct.unpack("<H", head[6:8])[0]
            value_start = stop + 8
    if length == 0xFFFFFFFF:
        end = _encapsulated_end(fp, value_start, size)
    else:
        end = value_start + length
    if end > size:
        raise Unreadable("truncated: pixel data shorter than declared")
    return PixelSpan(stop, end, size - end, value_start=value_start, vr=b"" if implicit else bytes(head[4:6]),
                     tag=group << 16 | elem, undefined_length=length == 0xFFFFFFFF)




def drop_trailing_padding(ds: Dataset) -> None:
    """Remove Data Set Trailing Padding (FFFC,FFFC) at every level: bytes no one accounts for.
    A sequence still raw whose bytes do not hold the tag's four bytes (rawindex.holds_tag) holds
    no such element at any depth: it is left raw, not converted."""
    stack = [ds]
    while stack:
        current = stack.pop()
        if 0xFFFCFFFC in current:
            del current[0xFFFCFFFC]
        for tag, elem in list(current.items()):
            if getattr(elem, "VR", None) != "SQ":
                continue
            if type(elem) is RawDataElement and isinstance(elem.value, bytes) and not holds_tag(elem.value, 0xFFFCFFFC):
                continue
            stack.extend(i for i in current[tag].value or [] if isinstance(i, Dataset))


def expected_pixel_length(ds: Dataset, tag: int = 0x7FE00010) -> int:
    """Bytes the frames of native pixel data need, without the odd-length pad byte:
    Rows x Columns x Samples per Pixel x Number of Frames x Bits Allocated / 8 (rounded up for
    Bits Allocated 1; YBR_FULL_422 two thirds), as pydicom.pixels.utils.get_expected_length counts.
    Raises Unreadable when the attributes needed are missing or invalid."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated) if tag == 0x7FE00010 else (32 if tag == 0x7FE00008 else 64)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames_value = ds.get("NumberOfFrames", 1)
        frames = int(frames_value) if frames_value not in (None, "") else 1
        if min(rows, columns, bits, samples, frames) < 1:
            raise ValueError
    except Exception:
        raise Unreadable("pixel data whose size cannot be worked out (Rows, Columns, Bits Allocated, frames)") from None
    pixels = rows * columns * frames
    # whole bytes per value; packed bits (Bits Allocated 1, or an old packed 12) rounded up once
    length = pixels * samples * (bits // 8) if bits % 8 == 0 else (pixels * samples * bits + 7) // 8
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        length = length // 3 * 2  # two luminance values share one pair of chroma values (PS3.3 C.7.6.3.1.2)
    return length


def _frame_pixels(ds: Dataset) -> int:
    """Rows x Columns (0 when not readable: the RLE check then cannot run)."""
    try:
        return max(0, int(ds.Rows) * int(ds.Columns))
    except Exception:
        return 0


def _pixel_tag(ds: Dataset) -> int | None:
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in ds:
            return tag
    return None


def plan_pixel_output(fp: BinaryIO, ds: Dataset, ts: str, span: PixelSpan) -> list[tuple[int, int] | bytes]:
    """What to write for the pixel data element located by span: every byte accounted for.

    Native: a new element header and exactly the frames' bytes (expected_pixel_length), plus a
    zero pad byte when that is odd; anything the source had beyond (leftover header text, a name)
    is not copied. Encapsulated: copied as it is once its items are checked (check_fragments);
    a non-zero pad byte after an end-of-image marker is written as zero.
    Raises Unreadable when the pixel data cannot be accounted for."""
    tag = span.tag
    if not span.undefined_length:
        length = span.end - span.value_start
        expected = expected_pixel_length(ds, tag)
        keep = min(length, expected)
        pad = b"\0" if keep % 2 else b""
        new_length = keep + len(pad)
        if span.vr:
            head = struct.pack("<HH2sHL", 0x7FE0, tag & 0xFFFF, span.vr, 0, new_length) if span.vr in _LONG_LENGTH_VRS \
                else struct.pack("<HH2sH", 0x7FE0, tag & 0xFFFF, span.vr, new_length)
        else:
            head = struct.pack("<HHL", 0x7FE0, tag & 0xFFFF, new_length)
        planned: list[tuple[int, int] | bytes] = [head, (span.value_start, keep)]
        return planned + ([pad] if pad else [])

    def read(offset: int, n: int) -> bytes:
        fp.seek(span.value_start + offset)
        return fp.read(n)

    patches = check_fragments(read, span.end - span.value_start, ts, _frame_pixels(ds))
    segments: list[tuple[int, int] | bytes] = []
    pos = span.start
    for offset, n in _runs(patches):  # bytes to write as zero: pads, comment and application segments
        at = span.value_start + offset
        segments += [(pos, at - pos), b"\0" * n]
        pos = at + n
    segments.append((pos, span.end - pos))
    return segments



def _runs(offsets: list[int]) -> list[tuple[int, int]]:
    """Ascending offsets as (first, count) runs of consecutive offsets."""
    runs: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if runs and runs[-1][0] + runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((offset, 1))
    return runs


def fit_pixel_data(ds: Dataset) -> None:
    """plan_pixel_output for a dataset read whole: native pixel data cut to its frames (zero pad
    byte when odd), encapsulated items checked and non-zero pad bytes zeroed. In place."""
    tag = _pixel_tag(ds)
    if tag is None:
        return
    elem = ds[tag]
    value = elem.value
    if not isinstance(value, (bytes, bytearray)):
        return
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not elem.is_undefined_length:
        expected = expected_pixel_length(ds, tag)
        if len(value) < expected:
            return  # nothing beyond the frames (a short value is the decoder's problem, not a leak)
        new = bytearray(value[:expected + expected % 2])
        if expected % 2:
            # the pad byte: the last byte, except in big endian OW, where the last 16-bit word is
            # stored swapped and the pad comes before the last sample
            pad_at = expected - 1 if ts == ExplicitVRBigEndian and elem.VR == "OW" and len(new) > expected else expected
            if pad_at == expected - 1:
                new[expected - 1] = 0
            elif len(new) > expected:
                new[expected] = 0
            else:
                new.append(0)
        if bytes(new) != bytes(value):
            elem.value = bytes(new)
        return
    data = bytes(value)
    patches = check_fragments(lambda o, n: data[o:o + n], len(data), ts, _frame_pixels(ds))
    if patches:
        buf = bytearray(data)
        for offset in patches:
            buf[offset] = 0
        elem.value = bytes(buf)


def _encapsulated_end(fp: BinaryIO, pos: int, size: int) -> int:
    """End of an undefined-length (encapsulated) pixel data value: after the sequence delimiter."""
    while True:
        fp.seek(pos)
        item = fp.read(8)
        if len(item) < 8:
            raise Unreadable("truncated: encapsulated pixel data has no end")
        group, elem, length = struct.unpack("<HHI", item)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return pos + 8
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise Unreadable("corrupt encapsulated pixel data")
        pos += 8 + length
        if pos > size:
            raise Unreadable("truncated: pixel data shorter than declared")
