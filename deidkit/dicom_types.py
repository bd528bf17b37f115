"""What reading a DICOM file yields and the errors it raises.

Header (the dataset read without its pixel data), PixelSpan (where the pixel data element lies
in the source file and what is written for it), the exceptions every reader raises (Unreadable
and its kinds: NotDicom, HeldBack, SourceChanged), and the few constants the reading and writing
modules share. No I/O here.
"""
from __future__ import annotations

from typing import Any, Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset


DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
DEFER_SIZE = 4 * 1024 * 1024  # large non-pixel values stay on disk until written
COPY_CHUNK = 8 * 1024 * 1024
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
# Storage SOP classes that carry Rows and Columns but no pixel data, with the element holding
# their data instead (None: no data element required). PS3.3 A.28 MR Spectroscopy (Rows/Columns
# give the voxel grid, the data is Spectroscopy Data); A.37 Raw Data (Philips writes Rows/Columns
# of the image it belongs to, the raw data itself is private or absent). A truncated one of these
# cannot be told from a whole one: de-identified all the same (what it holds is judged element by
# element like any other header).
NOT_PIXEL_DATA = {"1.2.840.10008.5.1.4.1.1.4.2": 0x56000020,  # MR Spectroscopy Storage
                  "1.2.840.10008.5.1.4.1.1.66": None,  # Raw Data Storage
                  # Philips private classes (conformance statements): Private MR Spectrum Storage,
                  # Private MR Series Data Storage (the XX_ files beside classic images: Rows of the
                  # series, data in private elements), Private MR Examcard Storage
                  "1.3.46.670589.11.0.0.12.1": None,
                  "1.3.46.670589.11.0.0.12.2": None,
                  "1.3.46.670589.11.0.0.12.4": None}


# read(offset, length) -> bytes: random access to the bytes of a pixel data value.
ReadAt = Callable[[int, int], bytes]



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


NestedRule = Callable[[int, Any, Dataset], bool]  # (tag, raw element, its sequence item) -> leave it raw
PruneResult = list[tuple[int, str]] | tuple[list[tuple[int, str]], frozenset[int], NestedRule | None]


def missing_bulk_data(ds: Dataset) -> str:
    """Why an object read without complaint is cut short: '' when it is whole, else a neutral reason.

    An image SOP class (or any object with Rows, PS3.3 C.7.6.3) must carry Pixel Data, Float or
    Double Float Pixel Data; the non-image classes of NOT_PIXEL_DATA carry their own data element
    (MR Spectroscopy: Spectroscopy Data (5600,0020)) or none. pydicom reads a file cut short
    without complaint, so the engine and --verify both ask here."""
    from pydicom.uid import UID

    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if sop_class in NOT_PIXEL_DATA:
        data_tag = NOT_PIXEL_DATA[sop_class]
        return "" if data_tag is None or data_tag in ds else "truncated: spectroscopy without its data"
    if any(tag in ds for tag in _PIXEL_TAGS):
        return ""
    uid = UID(sop_class)
    if "Rows" in ds or (uid.is_valid and "Image Storage" in uid.name):
        return "truncated: image without pixel data"
    return ""

