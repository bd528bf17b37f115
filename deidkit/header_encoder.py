"""The header encoder: a de-identified dataset (no pixel data) as the bytes of a file.

The same bytes as pydicom's dcmwrite(enforce_file_format=True) (PS3.10 7.1: zero preamble,
DICM, file meta group 0002, then the data set), faster: the common elements are encoded inline as
pydicom's own writers encode them, everything else goes to pydicom. FAST_HEADER_ENCODER is the
switch back to dcmwrite for every header.
"""
from __future__ import annotations

import copy
import io
import os
import struct
from typing import Any

from pydicom import __version__ as pydicom_version
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_data_element, write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.tag import tag_in_exception
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, IS, DSfloat
from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian)

from .element_checks import _NOT_PLAIN_VRS


def _by_tag(item: tuple[int, Any]) -> int:
    """Sort key of a (tag, element) pair of Dataset.items(): the tag as a plain int (BaseTag
    compares in Python)."""
    return item[0].real


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
                    encodings: list[str], plain: bool = False) -> None:
    """The elements of ds in tag order, as pydicom's write_dataset loop writes them. plain: ds
    is already known to be a _plain_tree (its sequences' items need no second look)."""
    implicit = fp.is_implicit_VR
    ascii_text = encodings[0] in _ASCII_SAFE_ENCODINGS
    for tag, elem in sorted(ds.items(), key=_by_tag):
        number = tag.real  # plain int arithmetic: BaseTag's properties are Python calls
        if not number & 0xFFFF and number >> 16 > 6:  # retired group lengths are not written (PS3.5 7.2)
            continue
        if type(elem) is RawDataElement:
            data = _raw_element_bytes(elem, implicit)
            if data is not None:  # kept raw (deidkit.rawkeep): its bytes as they came
                fp.write(data)
                continue
        value = _fast_value(elem, ascii_text) if isinstance(elem, DataElement) else None
        if value is None:
            if isinstance(elem, DataElement) and elem.VR == "SQ" and _write_sequence(fp, elem, encodings, plain):
                continue
            with tag_in_exception(tag):
                write_data_element(fp, elem, dataset_encoding)
            continue
        vr = elem.VR if isinstance(elem, DataElement) else ""
        if implicit:
            fp.write(struct.pack("<HHL", number >> 16, number & 0xFFFF, len(value)) + value)
        elif vr in EXPLICIT_VR_LENGTH_32:
            fp.write(struct.pack("<HH2sHL", number >> 16, number & 0xFFFF, vr.encode(), 0, len(value)) + value)
        else:
            fp.write(struct.pack("<HH2sH", number >> 16, number & 0xFFFF, vr.encode(), len(value)) + value)


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


def _write_sequence(fp: DicomBytesIO, elem: DataElement, encodings: list[str], plain: bool = False) -> bool:
    """Write a sequence element as pydicom's write_data_element / write_sequence_item would, its
    items through _write_elements; False (nothing written) to leave it to pydicom.

    pydicom writes an item with write_dataset, which first corrects ambiguous VRs and converts raw
    elements when the item's encoding differs from the file's (always so for items made in
    memory); for items holding neither, at any depth, that step changes nothing, so only those
    are inlined. plain: the items are already known to be such (checked at a level above, which
    _plain_tree checks at every depth)."""
    try:
        if not plain and not all(isinstance(item, Dataset) and _plain_tree(item) for item in elem.value):
            return False
        items = []
        for item in elem.value:
            # as write_dataset does: item.get("SpecificCharacterSet", encodings)
            item_encoding = item.get(0x00080005).value if 0x00080005 in item.keys() else encodings
            body = _item_buffer(fp.is_implicit_VR)
            try:
                _write_elements(body, item, item_encoding, _encodings_of(item_encoding), True)
                data = body.getvalue()
            finally:
                _release(body)
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


# convert_encodings by the value it is given (a pure function; the items of a multi-frame
# header ask it thousands of times with the same value). A copy goes out: callers own their list.
_ENCODINGS: dict[Any, list[str]] = {}


def _encodings_of(item_encoding: Any) -> list[str]:
    """convert_encodings(item_encoding or [default_encoding]), remembered per value."""
    key = tuple(item_encoding) if isinstance(item_encoding, list) else item_encoding
    try:
        found = _ENCODINGS.get(key)
    except TypeError:  # not hashable: not remembered
        return convert_encodings(item_encoding or [default_encoding])
    if found is None:
        found = convert_encodings(item_encoding or [default_encoding])
        if len(_ENCODINGS) < 256:
            _ENCODINGS[key] = list(found)
        return found
    return list(found)


# Empty little-endian DicomBytesIO buffers for items, by implicit VR: setting a new buffer's
# endianness builds six struct packers, a fifth of the encoding time of a multi-frame header
# with thousands of items. Taken while an item is written (nested items take others), emptied
# and given back after; at most _POOLED kept, none that grew past _POOLED_SIZE.
_FREE_BUFFERS: dict[bool, list[DicomBytesIO]] = {True: [], False: []}
_POOLED = 32
_POOLED_SIZE = 1 << 20


def _item_buffer(implicit: bool) -> DicomBytesIO:
    """An empty little-endian DicomBytesIO for one item, explicit or implicit VR."""
    free = _FREE_BUFFERS[implicit]
    if free:
        return free.pop()
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = implicit, True
    return body


def _release(body: DicomBytesIO) -> None:
    """Give a buffer from _item_buffer back, emptied."""
    free = _FREE_BUFFERS[body.is_implicit_VR]
    if len(free) < _POOLED and body.tell() <= _POOLED_SIZE:
        body.seek(0)
        body.parent.truncate(0)  # type: ignore[union-attr]  # a BytesIO
        free.append(body)


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
