"""Reading and writing DICOM files for the export: headers without pixels, pixels streamed.

A file whose pixels are not touched is never decoded: its header is read with
`stop_before_pixels`, de-identified, written, and the pixel data element is copied byte for byte
from the source in chunks, so memory stays bounded whatever the file size.

Only bytes the image accounts for go out (issue 12): the preamble is always zeros, native pixel
data is cut to Rows x Columns x Samples x Frames x Bits Allocated (plan_pixel_output), the items
of encapsulated pixel data are checked (check_fragments), and nothing after the pixel data
element or Data Set Trailing Padding is written.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import io
import os
import re
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO, Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import __version__ as pydicom_version
from pydicom import dcmread
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_data_element, write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.tag import tag_in_exception
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, IS, DSfloat
from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, RLELossless)

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
DEFER_SIZE = 4 * 1024 * 1024  # large non-pixel values stay on disk until written
COPY_CHUNK = 8 * 1024 * 1024
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}


# read(offset, length) -> bytes: random access to the bytes of a pixel data value.
ReadAt = Callable[[int, int], bytes]


def _by_tag(item: tuple[int, Any]) -> int:
    """Sort key of a (tag, element) pair of Dataset.items(): the tag as a plain int (BaseTag
    compares in Python)."""
    return item[0].real


class Unreadable(Exception):
    """A file that cannot be read as DICOM; the message is neutral (no value from the file)."""


class NotDicom(Unreadable):
    """The file is not DICOM at all (no DICM prefix and no raw dataset shape)."""
    pass


class HeldBack(Unreadable):
    """A readable file that must not go out as it is (held for a person, not failed)."""


class SourceChanged(HeldBack):
    """The file changed between being judged and being copied (a PACS still writing it)."""

    def __init__(self) -> None:
        super().__init__("the file changed while it was read (still being written?): not copied; "
                         "run again when the export is complete")


@dataclass
class PixelSpan:
    """Where the pixel data element (tag to end of value) sits in the source file.

    `segments` is what is written for it, in order: (offset, length) runs copied from the source
    and bytes written as they are (a new element header, a zero pad byte); None copies
    [start, end) unchanged. Set by read_header (plan_pixel_output), so that only bytes accounted
    for by the image go out (issue 12: no leftover header text after the frames)."""

    start: int
    end: int
    trailing_bytes: int
    value_start: int = 0
    vr: bytes = b""          # explicit VR of the element (b"" when implicit)
    tag: int = 0x7FE00010
    undefined_length: bool = False
    segments: list[tuple[int, int] | bytes] | None = None
    judged: bytes = b""  # sha256 of the source bytes before start, as read when the header was judged


@dataclass
class Header:
    """A file header read without its pixel data: the dataset, its transfer syntax, where the pixel data lies."""
    dataset: Dataset
    transfer_syntax: str
    pixel_span: PixelSpan | None
    streamable: bool  # False for deflated/big-endian: these are read and written whole
    # (tag, reason) of top-level elements `prune` removed before their values were converted
    pruned: tuple[tuple[int, str], ...] = ()
    # top-level tags left as raw bytes (deidkit.rawkeep): never converted, written as they came
    raw_kept: frozenset[int] = frozenset()
    # True when elements inside sequence items were left raw too (rawkeep.nested_keeps_raw)
    raw_nested: bool = False


# Set only around one read_header call (export: `with dicomio.pruning(fn): read_header(...)`):
# fn (deidkit.rawheader.prune_removed with the tables bound) deletes top-level raw elements after
# the raw damage checks and before every value is converted. --verify and every other reader
# never prune. fn may also return (pruned, raw_kept): deidkit.rawkeep.plan_header, whose
# raw_kept top-level tags stay unconverted (Header.raw_kept).
NestedRule = Callable[[int, Any, Dataset], bool]  # (tag, raw element, its sequence item) -> leave it raw
PruneResult = list[tuple[int, str]] | tuple[list[tuple[int, str]], frozenset[int], NestedRule | None]
_PRUNE: contextvars.ContextVar[Callable[[Dataset], PruneResult] | None] = contextvars.ContextVar(
    "deidkit_prune", default=None)


@contextlib.contextmanager
def pruning(prune: Callable[[Dataset], PruneResult]) -> Iterator[None]:
    """read_header calls inside this block let prune remove elements before conversion; what
    it returns is kept in Header.pruned (and Header.raw_kept)."""
    token = _PRUNE.set(prune)
    try:
        yield
    finally:
        _PRUNE.reset(token)


def read_header(path: Path) -> Header:
    """Read a file's header (no pixel data) and locate its pixel data element."""
    pruned: tuple[tuple[int, str], ...] = ()
    raw_kept: frozenset[int] = frozenset()
    nested: NestedRule | None = None
    prune = _PRUNE.get()
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Unreadable(f"cannot open ({e.strerror or 'error'})") from None
    if size == 0:
        raise Unreadable("empty file (0 bytes)")
    try:
        with path.open("rb") as fp:
            head = fp.read(132)
            has_preamble = len(head) == 132 and head[128:132] == b"DICM"
            if not has_preamble and not _looks_like_raw_dataset(head):
                raise NotDicom("not a DICOM file")
            if has_preamble and b"1.2.840.10008.1.2.1.99" in fp.read(4096):  # deflated: bounded first
                from pydicom.filereader import _read_file_meta_info

                fp.seek(132)
                meta = _read_file_meta_info(fp)
                if str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian:
                    problem = deflated_size_problem(fp, fp.tell(), DECODE_TOTAL_LIMIT)
                    if problem:
                        raise HeldBack(problem)
            fp.seek(0)
            ds = dcmread(fp, stop_before_pixels=True, force=not has_preamble, defer_size=DEFER_SIZE)
            stop = fp.tell()
            drop_trailing_padding(ds)
            _check_lengths(ds, size)
            if prune is not None:
                planned = prune(ds)
                if isinstance(planned, tuple):
                    planned, raw_kept, nested = planned
                pruned = tuple(planned)
            _touch_all_values(ds, raw_kept, nested)
            if getattr(ds, "file_meta", None) is not None:
                for elem in ds.file_meta.iterall():  # a damaged file meta value fails here, not later
                    _ = elem.value
                    if _kinds_clash(elem.VR, int(elem.tag)):
                        raise Unreadable("corrupt: an element's type does not fit what the standard says it "
                                         "holds (damaged?)")
            _check_structure(ds, raw_kept, nested)
            ts = _transfer_syntax(ds)
            if not _known_transfer_syntax(ts):
                raise Unreadable("unknown transfer syntax (private or damaged)")
            streamable = not (ts == DeflatedExplicitVRLittleEndian or ts == ExplicitVRBigEndian)
            span = _pixel_span(fp, stop, size, ts) if streamable else None
            if span is not None:
                span.segments = plan_pixel_output(fp, ds, ts, span)
            if streamable and span is None and stop < size:
                raise Unreadable("truncated or corrupt: data after the header could not be read")
            if streamable and span is None and _is_image_storage(ds):
                raise Unreadable("truncated: image without pixel data")
            if span is not None:
                span.judged = _span_digest(fp, 0, span.start)
    except Unreadable:
        raise
    except InvalidDicomError:
        raise NotDicom("not a DICOM file") from None
    except PermissionError:
        raise Unreadable("permission denied") from None
    except OSError as e:
        raise Unreadable(f"read error ({e.strerror or 'I/O'})") from None
    except Exception:  # pydicom raises many kinds on corrupt input
        raise Unreadable("corrupt or truncated header (it cannot be read as DICOM)") from None
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        if str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
            return Header(ds, ts, span, streamable=streamable, pruned=pruned, raw_kept=raw_kept,
                          raw_nested=nested is not None)
        if has_preamble:  # it says it is DICOM: broken rather than something else
            raise Unreadable("corrupt or truncated: no SOP Instance UID could be read")
        raise NotDicom("no SOP Instance UID: not a DICOM object")
    return Header(ds, ts, span, streamable=streamable, pruned=pruned, raw_kept=raw_kept,
                  raw_nested=nested is not None)


def _span_digest(fp: BinaryIO, start: int, end: int) -> bytes:
    """sha256 of bytes [start, end) of an open file."""
    fp.seek(start)
    h = hashlib.sha256()
    remaining = end - start
    while remaining > 0:
        chunk = fp.read(min(COPY_CHUNK, remaining))
        if not chunk:
            break
        h.update(chunk)
        remaining -= len(chunk)
    return h.digest()


def source_state(path: Path) -> tuple[int, int, int]:
    """(size, modification time in ns, inode) of a file: what changes when it is rewritten."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


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


def is_dicomdir(ds: Dataset) -> bool:
    """True for a DICOMDIR (Media Storage Directory SOP Class, or a Directory Record Sequence)."""
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds


def pixel_bytes(header: Header, path: Path) -> int:
    """How much pixel data a whole-file read would load (the file size if it was not located)."""
    if header.pixel_span is not None:
        return header.pixel_span.end - header.pixel_span.start
    try:
        return path.stat().st_size
    except OSError:
        return 0


def dicomdir_points_outside(ds: Dataset, folder: Path, root: Path) -> bool:
    """True if a DICOMDIR record names a file outside the export (absolute, '..', drive letters)."""
    root = root.resolve()
    for record in ds.get("DirectoryRecordSequence", []) or []:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        joined = "/".join(str(p) for p in parts).replace("\\", "/")
        if joined.startswith("/") or ":" in joined or ".." in joined.split("/"):
            return True
        target = (folder / joined).resolve()
        if target != root and root not in target.parents:
            return True
    return False


def read_full(path: Path) -> Dataset:
    """The whole dataset with pixel data (for files whose pixels are checked or re-encoded)."""
    try:
        with path.open("rb") as fp:
            head = fp.read(132)
            fp.seek(0)
            ds = dcmread(fp, force=not (len(head) == 132 and head[128:132] == b"DICM"))
            _touch_all_values(ds)
            drop_trailing_padding(ds)
            _check_structure(ds)  # as read_header did: stray command/meta elements dropped
    except Unreadable:
        raise
    except Exception:
        raise Unreadable("corrupt or truncated file (its image data cannot be read)") from None
    fit_pixel_data(ds)  # Unreadable (neutral reason) when the pixel data cannot be accounted for
    return ds


def _is_image_storage(ds: Dataset) -> bool:
    """Image SOP classes must carry pixel data; pydicom reads a file cut short without complaint."""
    from pydicom.uid import UID

    sop_class = UID(str(ds.get("SOPClassUID", "")))
    return "Rows" in ds or (sop_class.is_valid and "Image Storage" in sop_class.name)


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A dataset without preamble starts with a small even group tag (0008,xxxx) or (0002,xxxx)."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    return group_le in (0x0002, 0x0008, 0x0010) or group_be in (0x0002, 0x0008)


def _touch_all_values(ds: Dataset, raw_kept: frozenset[int] = frozenset(), nested: NestedRule | None = None) -> None:
    """Force pydicom's lazy conversion now so a corrupt value fails here, not while writing;
    the top-level raw_kept tags and the elements of sequence items nested(tag, raw) accepts
    (deidkit.rawkeep) stay raw."""
    _convert_plain_elements(ds, raw_kept)
    if not raw_kept and nested is None:
        for elem in ds.iterall():
            _ = elem.value
        return
    for tag, stored in list(ds.items()):
        if isinstance(stored, DataElement):
            elem = stored
        elif tag.real in raw_kept:
            continue
        else:
            elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                _touch_item(item, nested)


def _touch_item(item: Dataset, nested: NestedRule | None) -> None:
    """_touch_all_values inside one sequence item (and the items below it)."""
    if nested is None:
        for elem in item.iterall():
            _ = elem.value
        return
    for tag, stored in list(item.items()):
        if isinstance(stored, DataElement):
            elem = stored
        elif nested(tag.real, stored, item):
            continue
        else:
            elem = item[tag]
        if elem.VR == "SQ":
            for child in elem.value or []:
                _touch_item(child, nested)


# Raw elements that Dataset.__getitem__ does more for than convert them: sequences (pixel
# representation handed down), ambiguous VRs (corrected), UN (may be given its dictionary VR,
# possibly one of those), implicit VR (looked up), private tags (creator attached), the character
# set itself (read in the default encoding) and pixel data.
_NOT_PLAIN_VRS = frozenset(AMBIGUOUS_VR) | {"SQ", "UN"}


def _convert_plain_elements(ds: Dataset, raw_kept: frozenset[int] = frozenset()) -> None:
    """Convert the top level's plain raw elements as Dataset.__getitem__ does (pydicom's own
    convert_raw_data_element, the same character set), without its bookkeeping: __getitem__ then
    looks the new element up three more times and __setitem__ checks it again, a third of the
    conversion time of a typical header. Everything else is left to ds[tag] (iterall)."""
    store = getattr(ds, "_dict", None)
    if not isinstance(store, dict):
        return
    encoding = None
    for tag, raw in list(store.items()):
        if (type(raw) is not RawDataElement or raw.VR is None or raw.VR in _NOT_PLAIN_VRS or raw.value is None
                or tag >> 16 & 1 or tag == 0x00080005 or tag >= 0x7FE00000 or tag.real in raw_kept):
            continue
        if encoding is None:  # as __getitem__ computes it for every element
            encoding = ds.original_character_set or ds._character_set
        store[tag] = convert_raw_data_element(raw, encoding=encoding, ds=ds)


def _known_transfer_syntax(ts: str) -> bool:
    from pydicom.uid import UID, UID_dictionary

    return ts in UID_dictionary and UID(ts).is_transfer_syntax


def _check_lengths(ds: Dataset, size: int) -> None:
    """A value whose declared length runs past the end of the file means a bogus length: pydicom
    then reads to the end silently, and the rest of the file (names included) would become that
    one value. Checked on the raw elements, before they are converted."""
    from pydicom.dataelem import RawDataElement

    implicit = bool(getattr(ds, "original_encoding", (False, True))[0])
    stack = [ds]
    while stack:
        current = stack.pop()
        for _, raw in list(current.items()):
            if isinstance(raw, RawDataElement):
                if raw.length != 0xFFFFFFFF and raw.value_tell + raw.length > size:
                    raise Unreadable("truncated or bogus length: a value runs past the end of the file")
                if isinstance(raw.value, bytes) and raw.length != 0xFFFFFFFF and len(raw.value) < raw.length:
                    raise Unreadable("truncated or bogus length: a value runs past the end of the file")
                if isinstance(raw.value, bytes) and raw.tag >> 16 != 0x7FE0:
                    vr = raw.VR or _dictionary_vr(raw.tag)
                    problem = _value_problem_memo(vr, raw.value, implicit)
                    if problem:
                        raise Unreadable(problem)
            value = getattr(raw, "value", None)
            if isinstance(value, list):  # a sequence: its items are datasets of raw elements
                stack.extend(item for item in value if isinstance(item, Dataset))


# value_problem answers for short values: a series repeats most of its values, and the answer is
# a pure function of (VR, bytes, implicit). Worker memory only, bounded.
_PROBLEMS: dict[tuple[str, bytes, bool], str | None] = {}
_PROBLEM_VALUE_LIMIT = 256


def _value_problem_memo(vr: str, value: bytes, implicit: bool) -> str | None:
    """value_problem, remembered for values of at most _PROBLEM_VALUE_LIMIT bytes."""
    if len(value) > _PROBLEM_VALUE_LIMIT:
        return value_problem(vr, value, implicit)
    key = (vr, value, implicit)
    try:
        return _PROBLEMS[key]
    except KeyError:
        problem = _PROBLEMS[key] = value_problem(vr, value, implicit)
        if len(_PROBLEMS) > 65536:
            _PROBLEMS.clear()
        return problem


# PS3.5 Table 6.2-1: the longest value (per value of a multi-valued element) each VR allows, in
# characters (bytes for the binary ones). PN: 64 per component group, three groups.
_MAX_VALUE_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
                     "PN": 3 * 64 + 2, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_MULTI_VALUED = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"}
_TEXT_VRS_ALL = set(_MAX_VALUE_LENGTH) | {"UC", "UR", "UT"}
# Bytes no text value holds (ESC, TAB, LF, FF, CR are legal in text; NUL only as padding): an
# element header swallowed by a damaged length field always brings some (its tag's zero bytes).
_BINARY_IN_TEXT = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# An explicit-VR element header of a standard (even) group inside a value: tag, then its VR.
_ELEMENT_HEADER = re.compile(rb"(?s)(?=([\x08\x10\x18\x20\x28\x32\x38\x40\x88]\x00..)"
                             rb"(AE|AS|AT|CS|DA|DS|DT|FD|FL|IS|LO|LT|OB|OW|PN|SH|SL|SQ|SS|ST|TM|UI|UL|UN|US|UT))")
_PATIENT_TAGS_IMPLICIT = (b"\x10\x00\x10\x00", b"\x10\x00\x20\x00", b"\x10\x00\x30\x00")


def value_problem(vr: str, value: bytes, implicit: bool) -> str | None:
    """Why a raw value cannot be kept as it is, or None. A damaged length field makes a value
    swallow the elements after it (Patient's Name and ID among them) or run longer than its VR
    allows (PS3.5 6.2); then nothing after it can be judged. Checks: text VRs hold no binary
    bytes and no value longer than twice what the VR allows (per value; devices overrun by a
    few characters; values in a multi-byte character set get 4 bytes per character); no value of any VR
    holds what parses as a standard element header (its tag followed by its dictionary VR, or in
    an implicit-VR file the patient's name, ID or birth date tag followed by a length that fits)."""
    if vr in _TEXT_VRS_ALL:
        body = value.rstrip(b"\0 ") if vr == "UI" else value.rstrip(b"\0")
        if _BINARY_IN_TEXT.search(body):
            return "corrupt: a text value holds binary data (a damaged length field?)"
        limit = _MAX_VALUE_LENGTH.get(vr)
        if limit is not None:
            parts = body.split(b"\\") if vr in _MULTI_VALUED else [body]
            for part in parts:
                # twice the limit (4 bytes a character for multi-byte sets): devices overrun by a
                # few characters (DS of 17+ digits, long LO), which says nothing about the file
                allowed = 2 * limit if part.isascii() and b"\x1b" not in part else 4 * limit + 16
                if len(part.strip(b" ")) > allowed:
                    return "corrupt: a value longer than its type allows (a damaged length field?)"
        return None
    if len(value) < 8 or vr == "SQ" or value[:4] == b"\xfe\xff\x00\xe0" or (
            vr in ("OB", "OW", "OF", "OD", "OL", "OV") and len(value) > 1 << 20):
        return None  # sequences (also private ones read as UN) hold elements by right
    for match in _ELEMENT_HEADER.finditer(value):
        tag = int.from_bytes(match.group(1)[:2], "little") << 16 | int.from_bytes(match.group(1)[2:], "little")
        if tag & 0xFFFF and dictionary_has_tag(tag) and match.group(2).decode() in dictionary_VR(tag).split(" or "):
            return "corrupt: a value holds what reads as further elements (a damaged length field?)"
    if implicit:
        for needle in _PATIENT_TAGS_IMPLICIT:
            start = value.find(needle)
            while start != -1:
                if start + 8 <= len(value):
                    length = int.from_bytes(value[start + 4:start + 8], "little")
                    if 0 < length <= len(value) - start - 8 and length < 256:
                        return "corrupt: a value holds what reads as further elements (a damaged length field?)"
                start = value.find(needle, start + 1)
    return None


_STRING_KIND = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def _vr_kind(vr: str | None) -> str:
    """"text", "number text" (DS, IS), "SQ", "UN" (fits anything) or "binary", for comparing a
    file's VR with the standard's."""
    if not vr or vr == "UN":
        return "UN"
    if vr == "SQ":
        return "SQ"
    if vr in ("DS", "IS"):
        return "number text"
    return "text" if vr in _STRING_KIND else "binary"


def _converted_value_problem(elem: DataElement, implicit: bool) -> str | None:
    """value_problem for a converted element: text values as the bytes they came from (near
    enough: UTF-8 for non-ASCII), binary values as they are; pixel data and sequences skipped."""
    if elem.tag >> 16 == 0x7FE0 or elem.VR == "SQ":
        return None
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return value_problem(elem.VR, bytes(value), implicit) if elem.VR not in _TEXT_VRS_ALL else None
    if elem.VR not in _TEXT_VRS_ALL or value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return value_problem(elem.VR, text.encode("utf-8", "surrogateescape"), implicit)


def _kinds_clash(vr: str | None, tag: int) -> bool:
    """True if an element's VR is of another kind than the standard's: text where it says binary
    or a number, and the other way round (a damaged VR; IS for DS, LO for SH and the like are
    devices' slips and pass)."""
    kind = _vr_kind(vr)
    if kind == "UN":
        return False
    standard = _dictionary_kind(tag)
    return standard != "UN" and standard != kind


@functools.lru_cache(maxsize=4096)
def _dictionary_kind(tag: int) -> str:
    """_vr_kind of the standard's VR for a public tag; "UN" when unknown or ambiguous (US or SS ...)."""
    try:
        if not dictionary_has_tag(tag):
            return "UN"
        kinds = {_vr_kind(v.strip()) for v in dictionary_VR(tag).split(" or ")}
    except KeyError:
        return "UN"
    return kinds.pop() if len(kinds) == 1 else "UN"


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag) if dictionary_has_tag(tag) else "UN"
    except KeyError:
        return "UN"


def _check_structure(ds: Dataset, raw_kept: frozenset[int] = frozenset(), nested: NestedRule | None = None) -> None:
    """Fail closed on a damaged element stream that pydicom reads without complaint.

    A tag changed by damage can turn a patient's name or ID into an element the tables do not
    know; in a real file that shows as tags out of ascending order (pydicom silently sorts them)
    or as groups that have no place in a stored object (command, file meta, odd below 0008; group
    0004 is the DICOMDIR's and Table E.1-1 lists one of its attributes, so it is allowed). Stray
    command, file meta and other groups below 0008 (left by a device in a real CT) are dropped
    instead, as no stored object needs them; group FFFF is damage and holds the file. Every
    value is checked as value_problem says (pydicom converts some elements while reading); the
    top-level raw_kept elements (deidkit.rawkeep) were checked raw by _check_lengths and stay raw."""
    implicit = bool(getattr(ds, "original_encoding", (False, True))[0])
    stack = [ds]
    while stack:
        current = stack.pop()
        for tag in [t for t in current.keys() if t >> 16 < 0x0008 and t >> 16 != 0x0004]:
            # a stray command/file meta element: dropped, never written (pydicom reads the command
            # group apart, so its place in the file cannot be told); unless it holds a person
            # name's caret, which says damage moved Patient's Name there: then held
            raw = current.get_item(tag)
            value = getattr(raw, "value", b"")
            if isinstance(value, (bytes, str)) and ("^" in value if isinstance(value, str) else b"^" in value):
                raise Unreadable("corrupt: element of a group that has no place in a stored object")
            del current[tag]
        items = list(current.items())  # in the order read from the file
        numbers = [int(tag) for tag, _ in items]  # compared as plain ints: BaseTag compares in Python
        if any(a >= b for a, b in zip(numbers, numbers[1:], strict=False)):
            raise Unreadable("corrupt: elements out of order (damaged tags)")
        for (tag, elem), number in zip(items, numbers, strict=True):
            group = number >> 16
            if group == 0xFFFF:
                raise Unreadable("corrupt: element of a group that has no place in a stored object")
            if type(elem) is RawDataElement and (
                    number in raw_kept if current is ds else nested is not None and nested(number, elem, current)):
                if not group & 1 and _kinds_clash(elem.VR, number):
                    raise Unreadable("corrupt: an element's type does not fit what the standard says it holds "
                                     "(damaged?)")
                continue
            if not isinstance(elem, DataElement):  # not converted yet: as current[tag] does
                elem = current[tag]
            if not group & 1 and _kinds_clash(elem.VR, number):
                raise Unreadable("corrupt: an element's type does not fit what the standard says it holds "
                                 "(damaged?)")
            problem = _converted_value_problem(elem, implicit)
            if problem:
                raise Unreadable(problem)
            if elem.VR == "SQ":
                stack.extend(elem.value or [])


def transfer_syntax_of(ds: Dataset) -> str:
    """The transfer syntax of a read dataset: its file meta's, else what it was read as."""
    return _transfer_syntax(ds)


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if ts:
        return ts
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if not little:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV"}  # PS3.5 A.1 (Float/Double Float Pixel Data: OF, OD)


def _pixel_span(fp: io.BufferedReader, stop: int, size: int, ts: str) -> PixelSpan | None:
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


# ---- bytes outside the data elements (issue 12, kind 4) ----------------------------------------

_ENCAPSULATED_JPEG_FAMILY = None  # filled on first use: JPEG, JPEG-LS, JPEG 2000, HTJ2K UIDs
_FRAME_END = b"\xff\xd9"                        # JPEG/JPEG-LS EOI, JPEG 2000 EOC


def drop_trailing_padding(ds: Dataset) -> None:
    """Remove Data Set Trailing Padding (FFFC,FFFC) at every level: bytes no one accounts for."""
    stack = [ds]
    while stack:
        current = stack.pop()
        if 0xFFFCFFFC in current:
            del current[0xFFFCFFFC]
        for tag in list(current.keys()):
            elem = current.get_item(tag)
            if getattr(elem, "VR", None) == "SQ":
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


def plan_pixel_output(fp: io.BufferedReader, ds: Dataset, ts: str, span: PixelSpan) -> list[tuple[int, int] | bytes]:
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
    for offset in patches:  # each a one-byte pad to write as zero
        at = span.value_start + offset
        segments += [(pos, at - pos), b"\0"]
        pos = at + 1
    segments.append((pos, span.end - pos))
    return segments


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
    zeros after it. Returns the offsets of non-zero pad bytes (to be written as zero); raises
    Unreadable for anything else not accounted for."""
    global _ENCAPSULATED_JPEG_FAMILY
    if _ENCAPSULATED_JPEG_FAMILY is None:
        import pydicom.uid as uid_module

        family: set[str] = set(uid_module.JPEGTransferSyntaxes) | set(uid_module.JPEGLSTransferSyntaxes) \
            | set(uid_module.JPEG2000TransferSyntaxes)
        family |= {str(v) for k, v in vars(uid_module).items() if k.startswith("HTJ2K") and isinstance(v, str)}
        _ENCAPSULATED_JPEG_FAMILY = frozenset(str(u) for u in family)
    items: list[tuple[int, int]] = []  # (value offset, length) of each item
    pos = 0
    while pos + 8 <= total:
        group, elem, length = struct.unpack("<HHI", read(pos, 8))
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        items.append((pos + 8, length))
        pos += 8 + length
    if not items:
        raise Unreadable("encapsulated pixel data without items")
    bot_at, bot_length = items[0]
    if bot_length % 4:
        raise Unreadable("encapsulated pixel data: offset table of a length that is not a multiple of 4")
    if bot_length:
        offsets = struct.unpack(f"<{bot_length // 4}I", read(bot_at, bot_length))
        span = sum(8 + n for _, n in items[1:])
        if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)) or offsets[-1] >= max(span, 1):
            raise Unreadable("encapsulated pixel data: offset table that does not point at its fragments")
    fragments = items[1:]
    if str(ts) == RLELossless and frame_pixels:
        return [p for at, length in fragments for p in _check_rle_fragment(read, at, length, frame_pixels)]
    if str(ts) not in _ENCAPSULATED_JPEG_FAMILY or not fragments:
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


def _check_frame(read: ReadAt, fragments: list[tuple[int, int]]) -> list[int]:
    """One frame (its fragments, in order): the bytes after the end of its codestream (parsed, so
    leftovers that happen to end in FF D9 are found too) must be zeros or one pad byte. Where the
    codestream cannot be parsed, the frame must end with its EOI/EOC marker plus at most one pad
    byte. Returns the offset of a non-zero pad byte to write as zero, if any; raises Unreadable."""
    data = b"".join(read(at, length) for at, length in fragments)
    end = _codestream_end(data)
    if end is None:  # not parsed: the frame's last bytes decide (EOI/EOC, or EOI/EOC + one byte)
        end = len(data) if data.endswith(_FRAME_END) else len(data) - 1 if data[-3:-1] == _FRAME_END else -1
    tail = data[end:] if end >= 0 else data
    if end >= 0 and (not tail.strip(b"\0") or len(tail) == 1):
        last_at, last_length = fragments[-1]
        return [last_at + last_length - 1] if len(tail) == 1 and tail != b"\0" else []
    raise Unreadable("encapsulated pixel data: bytes after a frame's end-of-image marker (held: "
                     "they are not part of the image)")


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


def _codestream_end(data: bytes) -> int | None:
    """Where a JPEG / JPEG-LS (ISO 10918-1 B.1, 14495-1) or JPEG 2000 (15444-1 A, also inside a
    JP2 'jp2c' box) codestream ends, its EOI/EOC included; None if it cannot be followed."""
    try:
        if data[:2] == b"\xff\xd8":
            return _jpeg_end(data)
        if data[:2] == b"\xff\x4f":
            return _j2k_end(data, 0)
        if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
            pos = 0
            while pos + 8 <= len(data):
                size, kind = struct.unpack(">I4s", data[pos:pos + 8])
                header = 8
                if size == 1:
                    size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
                if kind == b"jp2c":
                    end = _j2k_end(data, pos + header)
                    return end if end is not None and (size == 0 or end == pos + size) else None
                if size < header:
                    return None
                pos += size
    except (struct.error, IndexError):
        return None
    return None


def _jpeg_end(data: bytes) -> int | None:
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
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (0xF7, 0xF8):  # JPEG-LS frame / parameters: its own bit stuffing
            ls = True
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data up to the next marker
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
            pos = i
            break
    return None


def _j2k_end(data: bytes, pos: int) -> int | None:
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
            if psot == 0:
                return n - 2 if data.endswith(b"\xff\xd9") else None
            pos += psot
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


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


def _encapsulated_end(fp: io.BufferedReader, pos: int, size: int) -> int:
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


# The fast path of encode_header reads pydicom internals and was checked byte for byte against
# dcmwrite on this pydicom release line only (tests/test_pydicom_internals.py fails loudly when
# pydicom changes what it imitates).
FAST_ENCODER_PYDICOM = "3.0."
# The switch: False sends every header through pydicom's dcmwrite (the same bytes, slower). Off
# by itself on another pydicom release, or with DEIDKIT_HEADER_ENCODER=dcmwrite in the environment.
FAST_HEADER_ENCODER = (pydicom_version.startswith(FAST_ENCODER_PYDICOM)
                       and os.environ.get("DEIDKIT_HEADER_ENCODER", "") != "dcmwrite")


def encode_header(ds: Dataset) -> bytes:
    """The de-identified dataset (pixel data left out) as file bytes: preamble, meta, elements.

    The same bytes as dcmwrite(enforce_file_format=True), without its deep copy of the file meta
    (a third of a millisecond per file): for the usual case (file meta whose SOP UIDs match the
    dataset, a public non-deflated transfer syntax) the file meta is copied element by element and
    written with pydicom's own writers; anything else goes through dcmwrite itself, and so does
    every header when FAST_HEADER_ENCODER is off (another pydicom release, or the switch above)."""
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", "") or "")) if meta is not None else UID("")
    preamble = ds.preamble = b"\0" * 128  # never the source's: it may carry AE titles, IDs, an "MZ" header
    if (not FAST_HEADER_ENCODER or meta is None or not ts or ts.is_private or not ts.is_transfer_syntax or ts == DeflatedExplicitVRLittleEndian
            or len(preamble) != 128 or any(tag >> 16 in (0, 2) for tag in ds.keys())
            or meta.get("MediaStorageSOPClassUID") is None or meta.get("MediaStorageSOPInstanceUID") is None
            or ds.get("SOPClassUID") != meta.get("MediaStorageSOPClassUID")
            or ds.get("SOPInstanceUID") != meta.get("MediaStorageSOPInstanceUID")):
        buf = io.BytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        return buf.getvalue()
    if "PixelData" in ds:  # as dcmwrite does (never the case for a header read without pixels)
        ds["PixelData"].is_undefined_length = ts.is_compressed
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = ts.is_implicit_VR, ts.is_little_endian
    fp.write(preamble)
    fp.write(b"DICM")
    meta_bytes = _own_file_meta_bytes(meta)
    if meta_bytes is not None:
        fp.write(meta_bytes)
    else:
        own_meta = FileMetaDataset()
        for tag in meta.keys():  # shallow copies: writing adds group length and version to the copy only
            own_meta[tag] = copy.copy(meta[tag])
        write_file_meta_info(fp, own_meta, enforce_standard=True)
    _write_dataset(fp, ds)
    return fp.getvalue()


# The file meta engine.new_file_meta makes, with the VR pydicom gives each element.
_OWN_META = {0x00020002: "UI", 0x00020003: "UI", 0x00020010: "UI", 0x00020012: "UI", 0x00020013: "SH"}
_META_VERSION = struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\0\1"


def _own_file_meta_bytes(meta: Dataset) -> bytes | None:
    """write_file_meta_info(enforce_standard=True)'s bytes for file meta as engine.new_file_meta
    makes it (exactly its five elements, none empty, plain ASCII), or None for anything else.

    pydicom then adds the File Meta Information Version (00 01) and the group length before them
    and changes nothing else; here they are written directly instead of through a second
    FileMetaDataset and pydicom's validation (a tenth of a millisecond per file)."""
    if sorted(meta.keys()) != list(_OWN_META):
        return None
    body = [_META_VERSION]
    for tag, vr in _OWN_META.items():
        elem = meta.get_item(tag)
        if not isinstance(elem, DataElement) or elem.VR != vr or not elem.value:
            return None
        value = _fast_value(elem, ascii_text=True)  # group 2 is written in the default encoding
        if value is None:
            return None
        body.append(struct.pack("<HH2sH", 0x0002, tag & 0xFFFF, vr.encode(), len(value)) + value)
    data = b"".join(body)
    return struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(data)) + data


# ---- pydicom's write_dataset with the common elements encoded inline ---------------------------
# pydicom spends ~15 us of bookkeeping per element; most elements of a header are short ASCII
# strings and single numbers, encoded here byte for byte as pydicom's own writers do (the writer
# functions named below). Anything else (sequences, PN, binary, non-ASCII text, other character
# sets, odd values) is handed to pydicom's write_data_element, so the bytes never differ
# (tests/test_export_speedups.py compares with dcmwrite).
_STRING_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "UR"}       # write_string / write_DA/DT/TM
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC"}               # write_text
_NUMBER_FORMATS = {"US": "<H", "SS": "<h", "UL": "<L", "SL": "<l", "FL": "<f", "FD": "<d", "SV": "<q", "UV": "<Q"}
_ASCII_SAFE_ENCODINGS = {default_encoding, "latin_1", "utf_8"}  # ASCII text encodes to itself, no escapes


def _write_dataset(fp: DicomBytesIO, ds: Dataset) -> None:
    implicit = fp.is_implicit_VR
    if (not fp.is_little_endian or ds.original_encoding != (implicit, True)
            or ds.original_character_set != ds._character_set):
        write_dataset(fp, ds)  # pydicom corrects ambiguous VRs / re-encodes first: its own path
        return
    dataset_encoding = ds.get("SpecificCharacterSet", default_encoding)
    try:
        encodings = convert_encodings(dataset_encoding or [default_encoding])
    except Exception:
        write_dataset(fp, ds)
        return
    _write_elements(fp, ds, dataset_encoding, encodings)


def _write_elements(fp: DicomBytesIO, ds: Dataset, dataset_encoding: str | list[str],
                    encodings: list[str]) -> None:
    """The elements of ds in tag order, as pydicom's write_dataset loop writes them."""
    implicit = fp.is_implicit_VR
    ascii_text = encodings[0] in _ASCII_SAFE_ENCODINGS
    for tag, elem in sorted(ds.items(), key=_by_tag):
        if tag.element == 0 and tag.group > 6:  # retired group lengths are not written (PS3.5 7.2)
            continue
        if type(elem) is RawDataElement:
            data = _raw_element_bytes(elem, implicit)
            if data is not None:  # kept raw (deidkit.rawkeep): its bytes as they came
                fp.write(data)
                continue
        value = _fast_value(elem, ascii_text) if isinstance(elem, DataElement) else None
        if value is None:
            if isinstance(elem, DataElement) and elem.VR == "SQ" and _write_sequence(fp, elem, encodings):
                continue
            with tag_in_exception(tag):
                write_data_element(fp, elem, dataset_encoding)
            continue
        vr = elem.VR if isinstance(elem, DataElement) else ""
        if implicit:
            fp.write(struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value)
        elif vr in EXPLICIT_VR_LENGTH_32:
            fp.write(struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value)
        else:
            fp.write(struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value)


def _raw_element_bytes(raw: RawDataElement, implicit: bool) -> bytes | None:
    """A raw element (same transfer syntax as it was read in) as pydicom's write_data_element
    writes one: its value bytes unchanged behind a new element header; None (left to pydicom)
    for an undefined length, an odd length, a value not in memory or no VR in explicit VR."""
    value, length, tag = raw.value, raw.length, raw.tag
    if not isinstance(value, bytes) or length == 0xFFFFFFFF or len(value) % 2:
        return None
    if implicit:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value
    vr = raw.VR
    if not isinstance(vr, str) or len(vr) != 2:
        return None
    if vr in EXPLICIT_VR_LENGTH_32:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    if len(value) > 0xFFFF:
        return None
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _plain_tree(ds: Dataset) -> bool:
    """Only converted elements, no ambiguous VR, at any depth: pydicom's correction step is a no-op."""
    for elem in ds.values():
        if type(elem) is RawDataElement:
            if not isinstance(elem.VR, str) or elem.VR in _NOT_PLAIN_VRS or not isinstance(elem.value, bytes) or \
                    elem.length == 0xFFFFFFFF or len(elem.value) % 2:
                return False  # kept raw (deidkit.rawkeep) and copied as it is, or left to pydicom
            continue
        if not isinstance(elem, DataElement) or elem.VR in AMBIGUOUS_VR:
            return False
        if elem.VR == "SQ" and not all(isinstance(i, Dataset) and _plain_tree(i) for i in elem.value or ()):
            return False
    return True


_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
_ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def _write_sequence(fp: DicomBytesIO, elem: DataElement, encodings: list[str]) -> bool:
    """Write a sequence element as pydicom's write_data_element / write_sequence_item would, its
    items through _write_elements; False (nothing written) to leave it to pydicom.

    pydicom writes an item with write_dataset, which first corrects ambiguous VRs and converts raw
    elements when the item's encoding differs from the file's (always so for items made in
    memory); for items holding neither, at any depth, that step changes nothing, so only those
    are inlined."""
    try:
        if not all(isinstance(item, Dataset) and _plain_tree(item) for item in elem.value):
            return False
        items = []
        for item in elem.value:
            item_encoding = item.get("SpecificCharacterSet", encodings)  # as write_dataset does
            body = DicomBytesIO()
            body.is_implicit_VR, body.is_little_endian = fp.is_implicit_VR, True
            _write_elements(body, item, item_encoding, convert_encodings(item_encoding or [default_encoding]))
            data = body.getvalue()
            if getattr(item, "is_undefined_length_sequence_item", False):
                items.append(_ITEM + b"\xff\xff\xff\xff" + data + _ITEM_END)
            else:
                items.append(_ITEM + struct.pack("<L", len(data)) + data)
    except Exception:  # an error pydicom will raise (and word) itself
        return False
    value = b"".join(items)
    length = 0xFFFFFFFF if elem.is_undefined_length else len(value)
    tag = elem.tag
    if fp.is_implicit_VR:
        fp.write(struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length))
    else:
        fp.write(struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, b"SQ", 0, length))
    fp.write(value)
    if elem.is_undefined_length:
        fp.write(_SEQUENCE_END)
    return True


def _fast_value(elem: DataElement, ascii_text: bool) -> bytes | None:
    """The encoded value as pydicom writes it, or None to let pydicom write the element."""
    vr = elem.VR
    value = elem.value
    if elem.is_undefined_length:
        return None
    try:
        if vr in _STRING_VRS or vr == "UI" or (ascii_text and vr in _TEXT_VRS):
            text = _plain_text(value)
            if text is None or not text.isascii():
                return None
            if len(text) % 2:
                text += "\0" if vr == "UI" else " "
            data = text.encode("ascii")
        elif vr in _NUMBER_FORMATS:
            if type(value) not in (int, float):
                return None
            data = struct.pack(_NUMBER_FORMATS[vr], value)
        elif vr in ("DS", "IS"):
            if type(value) in (DSfloat, IS):
                text = value.original_string if hasattr(value, "original_string") else str(value)
            elif isinstance(value, MultiValue) and len(value) and all(type(v) in (DSfloat, IS) for v in value):
                text = "\\".join(v.original_string if hasattr(v, "original_string") else str(v) for v in value)
            else:
                return None
            if len(text) % 2:
                text += " "
            data = text.encode(default_encoding)
        else:
            return None
    except Exception:  # whatever pydicom makes of it (including its error) is what happens
        return None
    return data if len(data) <= 0xFFFF or vr in EXPLICIT_VR_LENGTH_32 else None


def _plain_text(value: Any) -> str | None:
    """A str value, or str values joined as pydicom joins them; None for anything else."""
    if type(value) in (str, UID):
        return value
    if isinstance(value, MultiValue) and all(type(v) in (str, UID) for v in value):
        return "\\".join(value)
    return None


def write_streamed(header: bytes, src: Path, span: PixelSpan | None, dst: Path) -> tuple[int, str]:
    """Write the encoded header, then the pixel data element as span.segments says: runs copied
    from src in chunks (never the whole value in memory) and the bytes the plan makes itself.

    span.judged: the source's bytes before the pixel data are hashed again
    through the same open file the pixels are copied from, and SourceChanged is raised if they
    are not the bytes that were judged (the file was rewritten in between).
    Returns (size, sha256) of what was written, hashed on the way (no second read)."""
    digest = hashlib.sha256(header)
    size = len(header)
    with dst.open("wb") as out:
        out.write(header)
        if span is not None:
            segments = span.segments if span.segments is not None else [(span.start, span.end - span.start)]
            with src.open("rb") as fp:
                if span.judged and _span_digest(fp, 0, span.start) != span.judged:
                    raise SourceChanged()
                for segment in segments:
                    if isinstance(segment, bytes):
                        out.write(segment)
                        digest.update(segment)
                        size += len(segment)
                        continue
                    start, remaining = segment
                    fp.seek(start)
                    while remaining > 0:
                        chunk = fp.read(min(COPY_CHUNK, remaining))
                        if not chunk:
                            raise Unreadable("truncated: pixel data shorter than declared")
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        remaining -= len(chunk)
    return size, digest.hexdigest()


def write_whole(ds: Dataset, dst: Path) -> None:
    """Write a fully read dataset (pixels included): zero preamble, pixel data fitted to its
    frames (fit_pixel_data). The caller searches header_search_bytes(ds) before writing."""
    fit_pixel_data(ds)
    ds.preamble = b"\0" * 128
    with dst.open("wb") as out:
        dcmwrite(out, ds, enforce_file_format=True)


def header_search_bytes(ds: Dataset, leave_out: frozenset[int] = frozenset()) -> bytes:
    """Every element of ds (file meta included, at every depth) as uncompressed explicit VR little
    endian bytes, except the pixel data values and the top-level tags in leave_out: what the last
    net searches for a file read whole (its written form may be deflated, and a byte pattern such
    as e0 7f 10 00 inside a lookup table is not where its pixel data starts).

    A big endian dataset is rendered in both byte orders, one after the other: text that damage
    hid inside a number's value (a US element whose length swallowed the next elements) reads as
    text only in the order it is written in."""
    meta = getattr(ds, "file_meta", None)
    view = Dataset()
    for tag in ds.keys():
        if tag not in leave_out and int(tag) not in (0x7FE00008, 0x7FE00009, 0x7FE00010):
            view[tag] = ds[tag]
    syntax = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    big_endian = syntax == ExplicitVRBigEndian or getattr(ds, "original_encoding", (None, True))[1] is False
    out = b""
    for little in (True, False) if big_endian else (True,):
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, little
        if meta is not None and not leave_out:
            for tag in sorted(meta.keys()):
                write_data_element(fp, meta[tag])
        view.set_original_encoding(False, little, ds.get("SpecificCharacterSet"))
        write_dataset(fp, view)
        out += fp.getvalue()
    return out
