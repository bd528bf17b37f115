"""The items of a sequence read from its raw bytes, without building pydicom Datasets (issue 19,
docs/throughput_design.md "Index": one struct pass over the bytes, tags, VRs and spans only).

pydicom reads a sequence of defined length as one raw value (RawDataElement holding the bytes
of all its items) and parses it into Datasets of raw elements when it is first looked at
(pydicom.values.convert_SQ). Most sequences of a real header are looked at only to be checked
(deidkit.element_checks._check_lengths), searched for Data Set Trailing Padding
(pixel_plan.drop_trailing_padding) or removed whole by the table, after the person names in them
have been learned (deidkit.rawheader): `plain_items` gives what those need from the bytes alone.

Only the plain shape is indexed, the one pydicom reads the same way element by element (PS3.5
7.5, explicit VR little endian): items (FFFE,E000) of defined length, each holding whole elements
of a standard VR other than UN with a defined length inside the item, tags strictly ascending,
no group below 0008 (but 0004), no group FFFE or FFFF, no Specific Character Set of its own,
sequences of the same shape at any depth (at most MAX_DEPTH). Anything else returns None and the
caller converts the sequence with pydicom as before: damage is then found (and the file held)
exactly as it was, by the same code.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

# PS3.5 Table 7.1-1: explicit VRs with a 4-byte length after two reserved bytes (pydicom's
# EXPLICIT_VR_LENGTH_32 without UN, which is never indexed), and those with a 2-byte length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UR", b"UT", b"SV", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_ITEM = 0xE000FFFE  # (FFFE,E000) read as one little-endian 32-bit word: group in the low half
_UNDEFINED = 0xFFFFFFFF
MAX_DEPTH = 32
_HEAD = struct.Struct("<HH2sH")
_WORDS = struct.Struct("<II")
_LONG = struct.Struct("<I")


class RawNode(NamedTuple):
    """One element of an item: tag (group << 16 | element), VR, its value as [start, end) of the
    buffer indexed, and for a sequence its items (each a tuple of RawNode), else None."""

    tag: int
    vr: str
    start: int
    end: int
    items: tuple[tuple[RawNode, ...], ...] | None


def plain_items(buf: bytes, start: int = 0, end: int | None = None
                ) -> tuple[tuple[RawNode, ...], ...] | None:
    """The items of the sequence value buf[start:end] (explicit VR little endian) as RawNodes,
    or None when it is not of the plain shape of the module docstring (pydicom reads those)."""
    try:
        return _items(buf, start, len(buf) if end is None else end, 0)
    except struct.error:  # a header cut short: not plain
        return None


def _items(buf: bytes, pos: int, end: int, depth: int) -> tuple[tuple[RawNode, ...], ...] | None:
    if depth > MAX_DEPTH:
        return None
    items: list[tuple[RawNode, ...]] = []
    while pos < end:
        if pos + 8 > end:
            return None
        tag, length = _WORDS.unpack_from(buf, pos)
        if tag != _ITEM or length == _UNDEFINED or pos + 8 + length > end:
            return None
        item = _elements(buf, pos + 8, pos + 8 + length, depth)
        if item is None:
            return None
        items.append(item)
        pos += 8 + length
    return tuple(items)


def _elements(buf: bytes, pos: int, end: int, depth: int) -> tuple[RawNode, ...] | None:
    nodes: list[RawNode] = []
    last = -1
    while pos < end:
        if pos + 8 > end:
            return None
        group, element, vr, length = _HEAD.unpack_from(buf, pos)
        tag = group << 16 | element
        if tag <= last or group == 0xFFFE or group == 0xFFFF or (group < 0x0008 and group != 0x0004) \
                or tag == 0x00080005:
            return None
        if vr in _SHORT_VRS:
            value_start = pos + 8
        elif vr in _LONG_VRS:
            if length or pos + 12 > end:
                return None
            length = _LONG.unpack_from(buf, pos + 8)[0]
            value_start = pos + 12
        else:
            return None
        value_end = value_start + length
        if length == _UNDEFINED or value_end > end:
            return None
        children = None
        if vr == b"SQ":
            children = _items(buf, value_start, value_end, depth + 1)
            if children is None:
                return None
        nodes.append(RawNode(tag, vr.decode("ascii"), value_start, value_end, children))
        last = tag
        pos = value_end
    return tuple(nodes)


def walk(items: tuple[tuple[RawNode, ...], ...]) -> list[RawNode]:
    """Every RawNode of the items at every depth (sequences and their elements), in file order."""
    out: list[RawNode] = []
    for item in items:
        for node in item:
            out.append(node)
            if node.items:
                out.extend(walk(node.items))
    return out


def holds_tag(buf: bytes, tag: int) -> bool:
    """True if the 4 bytes of `tag` (as written in either byte order) occur anywhere in buf: an
    element with that tag at any depth of a sequence value must show them."""
    group, element = tag >> 16, tag & 0xFFFF
    return (struct.pack("<HH", group, element) in buf) or (struct.pack(">HH", group, element) in buf)
