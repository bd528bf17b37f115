"""Reading and writing DICOM files for the export: headers without pixels, pixels streamed.

A file whose pixels are not touched is never decoded: its header is read with
`stop_before_pixels`, de-identified, written, and the pixel data element is copied byte for byte
from the source in chunks, so memory stays bounded whatever the file size.

Only bytes the image accounts for go out (issue 12): the preamble is always zeros, native pixel
data is cut to Rows x Columns x Samples x Frames x Bits Allocated (plan_pixel_output), the items
of encapsulated pixel data are checked (check_fragments), and nothing after the pixel data
element or Data Set Trailing Padding is written.

This module holds whole-file reading and writing (read_header, read_full, write_streamed,
write_whole) and the DICOMDIR checks; each other concern has its own module, whose public names
(and the private ones tests reach) are re-exported here so callers keep importing dicomio:
deidkit.dicom_types (Header, PixelSpan, the exceptions), deidkit.element_checks (damaged
lengths, values, VRs, order), deidkit.decode_limits (decompression bombs), deidkit.pixel_plan
(where the pixel data lies, which bytes go out), deidkit.fragments (encapsulated items and
codestream ends), deidkit.header_encoder (the fast header encoder, FAST_HEADER_ENCODER).
"""
from __future__ import annotations

import contextlib
import contextvars
import gc
import hashlib
import io
import struct
from collections.abc import Iterator
from typing import BinaryIO, Callable
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_data_element, write_dataset
from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)


from .decode_limits import DECODE_FRAME_LIMIT as DECODE_FRAME_LIMIT
from .decode_limits import DECODE_TOTAL_LIMIT as DECODE_TOTAL_LIMIT
from .decode_limits import decode_size_problem as decode_size_problem
from .decode_limits import deflated_size_problem as deflated_size_problem
from .dicom_types import COPY_CHUNK as COPY_CHUNK
from .dicom_types import DEFER_SIZE as DEFER_SIZE
from .dicom_types import DICOMDIR_CLASS as DICOMDIR_CLASS
from .dicom_types import Header as Header
from .dicom_types import HeldBack as HeldBack
from .dicom_types import NestedRule as NestedRule
from .dicom_types import NotDicom as NotDicom
from .dicom_types import PixelSpan as PixelSpan
from .dicom_types import PruneResult as PruneResult
from .dicom_types import ReadAt as ReadAt
from .dicom_types import SourceChanged as SourceChanged
from .dicom_types import missing_bulk_data as missing_bulk_data
from .dicom_types import Unreadable as Unreadable
from .element_checks import RawChecked
from .element_checks import _check_lengths as _check_lengths
from .element_checks import _check_structure as _check_structure
from .element_checks import _kinds_clash as _kinds_clash
from .element_checks import _touch_all_values as _touch_all_values
from .element_checks import value_problem as value_problem
from .fragments import _codestream_end as _codestream_end
from .fragments import check_fragments as check_fragments
from .header_encoder import FAST_ENCODER_PYDICOM as FAST_ENCODER_PYDICOM
from .header_encoder import FAST_HEADER_ENCODER as FAST_HEADER_ENCODER
from .header_encoder import _own_file_meta_bytes as _own_file_meta_bytes
from .header_encoder import _raw_element_bytes as _raw_element_bytes
from .header_encoder import _write_dataset as _write_dataset
from .header_encoder import _write_sequence as _write_sequence
from .header_encoder import encode_header as encode_header
from .pixel_plan import _pixel_span as _pixel_span
from .pixel_plan import drop_trailing_padding as drop_trailing_padding
from .pixel_plan import expected_pixel_length as expected_pixel_length
from .pixel_plan import fit_pixel_data as fit_pixel_data
from .pixel_plan import plan_pixel_output as plan_pixel_output


# Set only around one read_header call (export: `with dicomio.pruning(fn): read_header(...)`):
# fn (deidkit.rawheader.prune_removed with the tables bound) deletes top-level raw elements after
# the raw damage checks and before every value is converted. --verify and every other reader
# never prune. fn may also return (pruned, raw_kept): deidkit.rawkeep.plan_header, whose
# raw_kept top-level tags stay unconverted (Header.raw_kept).
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
    """Read a file's header (no pixel data) and locate its pixel data element.

    Raises NotDicom (not DICOM at all), HeldBack (readable but must not go out as it is) or
    Unreadable (damaged, truncated, unreadable), each with a neutral reason."""
    with no_cycle_collection():
        return _read_header(path)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one file's work (a header read here; the
    export worker's whole file), as it was before after it. Reading and de-identifying a header
    builds tens of thousands of objects (a multi-frame header: a Dataset per item, an element per
    value); each 700 of them set off a collection, and every few a full one walks the worker's
    long-lived tables and memos again: 8% of reading a Philips enhanced header, 10-20% of a heavy
    header's whole work. Memory is still freed by reference counting as usual; the objects are
    looked at once by the next collection after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_header(path: Path) -> Header:
    """read_header's work (see there)."""
    size = _file_size(path)
    try:
        with path.open("rb") as file:
            fp, data = _in_memory(file, size)
            head = fp.read(132)
            has_preamble = len(head) == 132 and head[128:132] == b"DICM"
            if not has_preamble and not _looks_like_raw_dataset(head):
                raise NotDicom("not a DICOM file")
            if has_preamble:
                _refuse_deflate_bomb(fp)
            fp.seek(0)
            ds = dcmread(fp, stop_before_pixels=True, force=not has_preamble, defer_size=DEFER_SIZE)
            stop = fp.tell()
            if _may_hold_padding(data, stop):
                drop_trailing_padding(ds)
            _check_lengths(ds, size)
            pruned, raw_kept, nested = _prune(ds)
            checked: RawChecked = {}  # values _check_lengths checked raw (see element_checks.RawChecked)
            _touch_all_values(ds, raw_kept, nested, checked)
            _check_file_meta(ds)
            _check_structure(ds, raw_kept, nested, checked)
            del checked
            ts, streamable, span = _locate_pixels(fp, ds, stop, size)
    except Unreadable:
        raise
    except InvalidDicomError:
        raise NotDicom("not a DICOM file") from None
    except PermissionError:
        raise Unreadable("permission denied") from None
    except OSError as e:
        if e.errno is None:  # pydicom's own OSError: "No tag to read" where an item should start
            raise Unreadable("truncated or corrupt: a sequence item breaks off (the header cannot be read as "
                             "DICOM)") from None
        raise Unreadable(f"read error ({e.strerror or 'I/O'})") from None
    except Exception:  # pydicom raises many kinds on corrupt input
        raise Unreadable("corrupt or truncated header (it cannot be read as DICOM)") from None
    _check_sop_instance(ds, has_preamble)
    return Header(ds, ts, span, streamable=streamable, pruned=pruned, raw_kept=raw_kept,
                  raw_nested=nested is not None)


# Files up to this size are read whole into memory before pydicom reads the header from them:
# pydicom reads an element at a time (a read and a tell each), which costs a fifth less from a
# BytesIO than from a buffered file (a multi-frame header has tens of thousands of elements), and
# the whole file costs less to read at once than that saves (a 512 KB CT slice: 1.6 -> 1.2 ms).
# Not above DEFER_SIZE: no value of such a file is deferred (left on disk) by pydicom.
WHOLE_READ_SIZE = DEFER_SIZE


def _in_memory(file: BinaryIO, size: int) -> tuple[BinaryIO, bytes | None]:
    """(the open file as read_header reads it, its bytes): its first `size` bytes in a BytesIO
    when size is at most WHOLE_READ_SIZE (the same bytes at the same offsets), else (the file
    itself, None)."""
    if size > WHOLE_READ_SIZE:
        return file, None
    data = file.read(size)
    return io.BytesIO(data), data


def _may_hold_padding(data: bytes | None, stop: int) -> bool:
    """False only when the bytes pydicom read the header from (data[:stop], the file read whole,
    not deflated: the deflated transfer syntax's UID nowhere in them) hold neither byte order of
    the tag (FFFC,FFFC): then no element at any depth is Data Set Trailing Padding, and
    drop_trailing_padding need not look through every item."""
    if data is None or data.find(b"1.2.840.10008.1.2.1.99", 0, stop) >= 0:
        return True
    return data.find(b"\xfc\xff\xfc\xff", 0, stop) >= 0 or data.find(b"\xff\xfc\xff\xfc", 0, stop) >= 0


def _file_size(path: Path) -> int:
    """read_header's first step: the file's size; Unreadable when it cannot be opened or is empty."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Unreadable(f"cannot open ({e.strerror or 'error'})") from None
    if size == 0:
        raise Unreadable("empty file (0 bytes)")
    return size


def _refuse_deflate_bomb(fp: BinaryIO) -> None:
    """For a file with a preamble whose file meta names the deflated transfer syntax: HeldBack
    when its data set unpacks to more than DECODE_TOTAL_LIMIT (checked bounded, before pydicom
    inflates it whole). fp is positioned after the preamble and DICM."""
    if b"1.2.840.10008.1.2.1.99" not in fp.read(4096):
        return
    from pydicom.filereader import _read_file_meta_info

    fp.seek(132)
    meta = _read_file_meta_info(fp)
    if str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian:
        problem = deflated_size_problem(fp, fp.tell(), DECODE_TOTAL_LIMIT)
        if problem:
            raise HeldBack(problem)


def _prune(ds: Dataset) -> tuple[tuple[tuple[int, str], ...], frozenset[int], NestedRule | None]:
    """(pruned, raw_kept, nested) from the prune function set by pruning(), if any."""
    prune = _PRUNE.get()
    if prune is None:
        return (), frozenset(), None
    planned = prune(ds)
    raw_kept: frozenset[int] = frozenset()
    nested: NestedRule | None = None
    if isinstance(planned, tuple):
        planned, raw_kept, nested = planned
    return tuple(planned), raw_kept, nested


def _check_file_meta(ds: Dataset) -> None:
    """Every file meta value is converted now (a damaged one fails here, not later) and its VR
    must be of the kind the standard gives it."""
    if getattr(ds, "file_meta", None) is None:
        return
    for elem in ds.file_meta.iterall():
        _ = elem.value
        if _kinds_clash(elem.VR, int(elem.tag)):
            raise Unreadable("corrupt: an element's type does not fit what the standard says it "
                             "holds (damaged?)")


def _locate_pixels(fp: BinaryIO, ds: Dataset, stop: int, size: int) -> tuple[str, bool, PixelSpan | None]:
    """(transfer syntax, streamable, pixel span) of a header read up to `stop`: the pixel data
    element located and its output planned (plan_pixel_output), the bytes before it hashed
    (PixelSpan.judged). Unreadable for an unknown transfer syntax or data after the header that
    is not pixel data, or an object cut short (missing_bulk_data: an image without pixel data)."""
    ts = _transfer_syntax(ds)
    if not _known_transfer_syntax(ts):
        raise Unreadable("unknown transfer syntax (private or damaged)")
    streamable = not (ts == DeflatedExplicitVRLittleEndian or ts == ExplicitVRBigEndian)
    span = _pixel_span(fp, stop, size, ts) if streamable else None
    if span is not None:
        span.segments = plan_pixel_output(fp, ds, ts, span)
    if streamable and span is None and stop < size:
        raise Unreadable("truncated or corrupt: data after the header could not be read")
    problem = missing_bulk_data(ds) if streamable and span is None else ""
    if problem:
        raise Unreadable(problem)
    if span is not None:
        span.judged = _span_digest(fp, 0, span.start)
    return ts, streamable, span


def _check_sop_instance(ds: Dataset, has_preamble: bool) -> None:
    """A stored object names its SOP class and instance; a DICOMDIR is the one exception.
    Unreadable when a file that says it is DICOM has none, NotDicom for one without a preamble."""
    if "SOPInstanceUID" in ds and "SOPClassUID" in ds:
        return
    if str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        return
    if has_preamble:  # it says it is DICOM: broken rather than something else
        raise Unreadable("corrupt or truncated: no SOP Instance UID could be read")
    raise NotDicom("no SOP Instance UID: not a DICOM object")


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


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A dataset without preamble starts with a small even group tag (0008,xxxx) or (0002,xxxx)."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    return group_le in (0x0002, 0x0008, 0x0010) or group_be in (0x0002, 0x0008)


def _known_transfer_syntax(ts: str) -> bool:
    from pydicom.uid import UID_dictionary

    return ts in UID_dictionary and UID(ts).is_transfer_syntax


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
