"""Siemens CSA headers (private (0029,xx10) image / (0029,xx20) series, creator "SIEMENS CSA HEADER"):
parse, keep what is numeric or known technical text, blank every other value, write back.

The format ("SV10", or the older CSA1 without the signature) is public: nibabel.nicom.csareader
reads it, dcm2niix reads it for mosaic slice timing, b-vectors, phase-encoding polarity and (in
the series header's MrPhoenixProtocol, its "### ASCCONV" section) parallel imaging, partial
Fourier, multiband and echo spacing. Layout, all little-endian:
  [b"SV10" + 4 bytes]  n_tags uint32, 77 uint32
  per tag:  name 64 bytes (NUL-terminated), vm int32, vr 4 bytes, syngodt int32, n_items int32,
            77 or 205 int32
  per item: 4 int32 (x0, length, x2, x3), then `length` bytes padded to a multiple of 4
            (CSA1, syngo VA before 2004, has no signature and other lengths: not rewritten, dropped).
A blanked item keeps its place with length 0, so readers see the same tags and counts. Bytes
after a NUL terminator (tag names, values) are leftover scanner memory and are never copied.

`clean_csa(data)` returns the cleaned bytes, or None when the value cannot be parsed (the caller
then deletes the element: fail closed). Two other vendor protocol texts are cleaned the same way:
`clean_protocol_text` (Siemens XA (0021,xx19): the ASCCONV text itself) and `clean_ge_protocol`
(GE Protocol Data Block (0025,xx1B): uint32 length + gzip of lines KEY "value", which dcm2niix
reads for slice order, phase-encoding polarity, multiband and group delay).
"""
from __future__ import annotations

import gzip
import re
import struct
import zlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .mapping import MomentOffset

from .sweep import find_generic_phi

NUMERIC_VRS = {"IS", "DS", "FD", "FL", "SL", "UL", "US", "SS", "SV", "UV"}
# text entries that are technical codes dcm2niix and others read (never names or places)
TEXT_KEEP = {"ImaCoilString", "ICE_Dims", "ImaPATModeText", "SequenceMask", "GradientMode", "FlowCompensation",
             "DiffusionDirectionality", "ImageHistory", "CoilForGradient", "CoilForGradient2", "PATModeText",
             "CoilString", "ImageTypeText", "RFSWDDataType", "GSWDDataType", "GradientDelayTime",
             "PhaseEncodingDirectionPositive", "SliceArrayConcatenations", "TransmitterCalibration",
             "AbsTablePosition", "ImaAbsTablePosition", "SequenceFileName"}
PROTOCOL_TAGS = {"MrPhoenixProtocol", "MrProtocol"}
# numbers about the patient go even as numbers
DROP_NAMES = re.compile(r"Patient|Weight|Height|Birth|(^|[a-z])Age([A-Z]|$)|(^|[a-z])Sex([A-Z]|$)|Date|Serial|"
                        r"Institution|Station|Operator|Physician|PatRein|tComment|tFree")
_TOKEN = re.compile(r"[\w.;:+\-*/%#]{1,64}")  # one technical token: 90p*90, +LPH, HEA;HEP, NONE
_TECHNICAL_TEXT = re.compile(r"[\w\s.,:;+\-*/\\%=<>#()\[\]&|!?'\"@]{0,512}")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0x[0-9a-fA-F]+")
# ASCCONV (MrPhoenixProtocol) string values kept: technical, read by dcm2niix
ASCCONV_TEXT_KEYS = re.compile(r"^(tSequenceFileName|sProtConsistencyInfo\.t\w+|\S*sCoilStringForConversion|"
                               r"\S*\.tCoilID|\S*\.tElement|\S*\.tNucleus|sGRADSPEC\.\w+|sKSpace\.\w+|"
                               r"sSliceArray\.\w+)$")
# a string value: ""HE1-4;NE1,2"" (syngo VB15 and later) or "HeadMatrix" (VB12/VB13 quote once);
# coil strings list element numbers with commas (a comma before a digit only: not "Smith, John")
_ASCCONV_STRING = re.compile(r'("{1,2})(?:[\w.%\\/:;+\- ]|,(?=\d))*\1')
_ASCCONV_LINE = re.compile(r"^\s*([A-Za-z_][\w.\[\]]*)\s*=\s*(.*?)\s*(#.*)?$")
MAX_ITEMS = 10_000


class CSAError(ValueError):
    """The bytes are not a CSA header we can read."""


def parse_csa(data: bytes) -> tuple[bytes, list[dict]]:
    """(prefix bytes before the first tag, tags). Each tag: name, vm, vr, syngodt, last, items
    (list of (x0, x2, x3, value bytes)). Raises CSAError on anything unexpected."""
    try:
        if data[:4] == b"SV10":
            csa_type, pos = 2, 8
        else:
            csa_type, pos = 1, 0
        n_tags, check = struct.unpack_from("<2I", data, pos)
        if not 0 < n_tags <= 1000 or check != 77:
            raise CSAError("bad CSA header")
        pos += 8
        prefix = data[:pos]
        tags = []
        tag0_n_items = 0
        for tag_no in range(n_tags):
            name, vm, vr, syngodt, n_items, last = struct.unpack_from("<64si4s3i", data, pos)
            pos += 84
            if tag_no == 1:
                tag0_n_items = n_items
            if not 0 <= n_items <= MAX_ITEMS:
                raise CSAError("bad item count")
            items = []
            for _ in range(n_items):
                x0, x1, x2, x3 = struct.unpack_from("<4i", data, pos)
                pos += 16
                length = x0 - tag0_n_items if csa_type == 1 else x1
                if length < 0 or pos + length > len(data):
                    raise CSAError("item runs past the end")
                items.append((x0, x2, x3, data[pos:pos + length]))
                pos += (length + 3) // 4 * 4
            tags.append({"name": name.split(b"\0", 1)[0].decode("latin-1"), "raw_name": name, "vm": vm,
                         "vr": vr.split(b"\0", 1)[0].decode("latin-1"), "raw_vr": vr, "syngodt": syngodt,
                         "last": last, "items": items, "csa_type": csa_type})
        return prefix, tags
    except struct.error:
        raise CSAError("truncated CSA header") from None


def _write(prefix: bytes, tags: list[dict]) -> bytes:
    out = bytearray(prefix)
    for tag in tags:
        # name and VR rewritten from their text: the bytes after a NUL are leftover memory of
        # the scanner (station names were seen there), never copied
        out += struct.pack("<64si4s3i", tag["name"].encode("latin-1")[:63], tag["vm"],
                           tag["vr"].encode("latin-1")[:3], tag["syngodt"], len(tag["items"]), tag["last"])
        for _x0, x2, _x3, value in tag["items"]:
            length = len(value)
            out += struct.pack("<4i", length, length, x2, length)
            out += value + b"\0" * ((4 - length % 4) % 4)
    if len(out) % 2:
        out += b"\0"
    return bytes(out)


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("latin-1")


def _safe_text(text: str) -> bool:
    return bool(_TECHNICAL_TEXT.fullmatch(text)) and not any(f.kind != "id" for f in find_generic_phi(text))


def clean_ascconv(text: str) -> str:
    """The MrPhoenixProtocol text reduced to its ASCCONV section, each line kept only when its
    value is a number, or a technical string under a known key; the XProtocol part goes."""
    begin = text.find("### ASCCONV BEGIN")
    end = text.find("### ASCCONV END", begin + 1)
    if begin < 0 or end < 0:
        return ""
    lines = text[begin:].splitlines()
    out = [re.sub(r"[^\w\s#@=%/.\-]", "", lines[0])]
    for line in lines[1:]:
        if line.startswith("### ASCCONV END"):
            out.append("### ASCCONV END ###")
            break
        m = _ASCCONV_LINE.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if DROP_NAMES.search(key):
            continue
        if _NUMBER.fullmatch(value) or (ASCCONV_TEXT_KEYS.match(key) and _ASCCONV_STRING.fullmatch(value)
                                         and _safe_text(value.strip('"'))):
            out.append(f"{key}\t = \t{value}")
    return "\n".join(out) + "\n"


def clean_protocol_text(data: bytes) -> bytes | None:
    """A Siemens protocol held as plain text (XA enhanced MR: (0021,xx19) of "SIEMENS MR SDS 01"):
    its ASCCONV section cleaned as in the CSA series header; None when there is none."""
    cleaned = clean_ascconv(bytes(data).split(b"\0", 1)[0].decode("latin-1"))
    if not cleaned:
        return None
    out = b"\n" + cleaned.encode("latin-1")  # readers look for the marker after a line break
    return out + b"\0" * (len(out) % 2)


def clean_csa(data: bytes) -> bytes | None:
    """The CSA header with every value that is not a number or known technical text blanked;
    None if it cannot be parsed."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 16:
        return None
    try:
        prefix, tags = parse_csa(bytes(data))
    except CSAError:
        return None
    if tags[0]["csa_type"] != 2:
        return None  # CSA1 (syngo VA, before 2004): its odd item lengths are not rewritten; dropped
    for tag in tags:
        name, vr = tag["name"], tag["vr"]
        new_items = []
        for x0, x2, x3, value in tag["items"]:
            text = _text(value)
            keep = b""
            value = value.split(b"\0", 1)[0] + b"\0"  # what follows the NUL is leftover memory: dropped
            if not text.strip():
                keep = b""
            elif name in PROTOCOL_TAGS:
                cleaned = clean_ascconv(text)
                keep = cleaned.encode("latin-1") + b"\0" if cleaned else b""
            elif DROP_NAMES.search(name) and name not in TEXT_KEEP:
                keep = b""
            elif vr in NUMERIC_VRS:
                keep = value if _NUMBER.fullmatch(text.strip()) else b""
            elif (name in TEXT_KEEP or _TOKEN.fullmatch(text.strip())) and _safe_text(text):
                keep = value
            new_items.append((x0, x2, x3, keep))
        tag["items"] = new_items
    return _write(prefix, tags)


# GE Protocol Data Block: keys whose text value is a technical code (values of other keys are kept
# only when they are numbers)
GE_TEXT_KEYS = {"POSITION", "ENTRY", "PLANE", "IMODE", "PSEQ", "IOPT", "SWAPPF", "SLOC1", "SLOC2", "SLOC3",
                "ELOC1", "ELOC2", "ELOC3", "FOVCNT1", "FOVCNT2", "CONTRAST", "AUTOSHIM", "PHASECORR",
                "EXCITATIONMODE", "PSDNAME", "COIL", "FILTCHOICE", "TAG_TYPE", "RFDRIVEMODE", "CALINPRESCAN",
                "MULTIBVALUE", "MULTINEXVALUE", "MULTISYNBVALUE", "GRIP_SLGROUP1", "DIFFUSIONDIRS", "ASSET",
                "ARC", "DIFFDIR", "SLICEORDER", "VIEWORDER", "DELACQ"}
_GE_LINE = re.compile(r'^([A-Z][A-Z0-9_]*) "(.*)"$')
_NUMBERS = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([;\s]+[+-]?(\d+\.?\d*|\.\d+))*[;\s]*")


def clean_ge_protocol(data: bytes) -> bytes | None:
    """The GE Protocol Data Block with only numeric values and technical codes; None if unreadable."""
    try:
        length = struct.unpack_from("<I", data, 0)[0]
        text = gzip.decompress(bytes(data[4:4 + length])).decode("latin-1")
    except (struct.error, OSError, EOFError, zlib.error):
        return None
    kept = []
    for line in text.splitlines():
        m = _GE_LINE.match(line.strip())
        if not m:
            continue
        key, value = m.groups()
        if _NUMBERS.fullmatch(value) or (key in GE_TEXT_KEYS and re.fullmatch(r"[\w ,;./%+\-]{0,64}", value)
                                         and _safe_text(value)):
            kept.append(f'{key} "{value}"')
    packed = gzip.compress(("\n".join(kept) + "\n").encode("latin-1"), mtime=0)  # deterministic bytes
    out = struct.pack("<I", len(packed)) + packed
    return out + b"\0" * (len(out) % 2)


# GE User Defined Data (0043,xx2A of "GEMS_PARM_01"): a binary copy of part of the scanner's raw
# data header. dcm2niix (console/nii_dicom.cpp, kUserDefineDataGE) reads from it only the phase-
# encoding polarity of EPI, all little-endian:
#   uint16 at byte 24: offset of the header struct (hdr_offset)
#   float32 at hdr_offset: the header's version (read only when 5 <= version <= 40)
#   from hdr = hdr_offset (+ 0x4C when version >= 25.002):
#     uint16 at hdr + 0x3A: bit 0x0800 set = EPI (nothing else is read otherwise)
#     uint16 at hdr + 0x30: bit 0x0004 = phase-encoding polarity flipped
#     uint16 at hdr + 0x394 (0x308 when version >= 25.002): view order (2 = bottom-up flips polarity)
# Only those bits and values are written back (a view order other than 0-3 as 0); every other byte
# is zero and the blob keeps its length, so the offsets still read.
GE_USER_DATA_MIN_TAIL = 916  # dcm2niix needs hdr_offset + 916 bytes


def _ge_user_data_fields(data: bytes) -> list[tuple[int, int]] | None:
    """(offset, mask) of each uint16 field dcm2niix reads in a GE User Defined Data blob after the
    offset and version; None when the blob does not have the layout (too short, offset outside it,
    version not a number in 5-40)."""
    if len(data) < 128:
        return None
    hdr_offset = struct.unpack_from("<H", data, 24)[0]
    if len(data) < hdr_offset + GE_USER_DATA_MIN_TAIL:
        return None
    version = struct.unpack_from("<f", data, hdr_offset)[0]
    if not 5.0 <= version <= 40.0:  # also false for NaN
        return None
    hdr, kydir = (hdr_offset + 0x4C, 0x308) if version >= 25.002 else (hdr_offset, 0x394)
    fields = [(hdr + 0x3A, 0x0800), (hdr + 0x30, 0x0004), (hdr + kydir, 0x0003)]
    return fields if all(offset + 2 <= len(data) for offset, _ in fields) else None


def clean_ge_user_data(data: bytes) -> bytes | None:
    """GE User Defined Data (0043,xx2A): a blob of the same length holding only the header offset,
    the header version, the EPI and polarity bits and the view order dcm2niix reads for phase-
    encoding polarity, every other byte zero; None when the layout is not recognised (the caller
    deletes the element)."""
    if not isinstance(data, (bytes, bytearray)):
        return None
    data = bytes(data)
    fields = _ge_user_data_fields(data)
    if fields is None:
        return None
    out = bytearray(len(data) + len(data) % 2)
    hdr_offset = struct.unpack_from("<H", data, 24)[0]
    out[24:26] = data[24:26]
    out[hdr_offset:hdr_offset + 4] = data[hdr_offset:hdr_offset + 4]
    for offset, mask in fields:
        value = struct.unpack_from("<H", data, offset)[0]
        if mask == 0x0003:  # view order: an enumeration, kept only when it is one
            value = value if value <= 3 else 0
        struct.pack_into("<H", out, offset, value & mask)
    return bytes(out)


# ---- Siemens physiological logs in DICOM (CMRR/Siemens PhysioLog, format EJA_1) -------------------
# (7FE1,xx10) under "SIEMENS CSA NON-IMAGE" of a Siemens physio object (Image Type ...\RAWDATA\PHYSIO):
# one chunk of Acquisition Number x 1024 bytes per log file; a chunk's first 1024 bytes hold uint32
# datalen, uint32 filenamelen and the file name (Physio_<date>_<time>_<UUID>_<TYPE>.log), the log
# text follows. The text: "KEY = value" lines (UUID, ScanDate YYYYMMDD_HHMMSS, LogVersion, LogDataType,
# SampleTime, NumSlices, NumVolumes, NumEchoes, FirstTime, LastTime), a line of column names, and data
# lines of numbers and channel codes. Times are clock ticks of 2.5 ms since midnight (ACQUISITION_INFO:
# columns 3 and 4, the start and finish of each slice; the signal logs: column 1). What identifies is
# when (ScanDate, the ticks: a time of day) and which measurement (the UUID); the waveform values and
# channel codes are the research data (dcm2niix and bidscoin write them as BIDS physio TSV).
PHYSIO_TICKS_PER_SECOND = 400
PHYSIO_TICKS_PER_DAY = 86_400 * PHYSIO_TICKS_PER_SECOND
PHYSIO_INTEGER_KEYS = {"SampleTime", "NumSlices", "NumVolumes", "NumEchoes"}
PHYSIO_TICK_KEYS = {"FirstTime", "LastTime"}
PHYSIO_CODE_KEYS = {"LogVersion", "LogDataType"}
PHYSIO_FILE = re.compile(r"Physio_(\d{8})_(\d{6})_([0-9A-Za-z-]{1,64})_([A-Za-z0-9]{1,16})\.log")
_PHYSIO_KEY_LINE = re.compile(r"(\s*)(\w+)(\s*=\s*)(\S+)(\s*)")
_PHYSIO_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_PHYSIO_TOKEN = re.compile(r"\S+")


def holds_physio_log(data: bytes) -> bool:
    """The bytes carry a physiological log (its "LogDataType" key within the first 64 KB), whatever
    element holds them: Siemens XA30 writes the log into Spectroscopy Data (5600,0020) of an MR
    Spectroscopy object (the "XA30 bug" bidscoin reads around)."""
    return isinstance(data, (bytes, bytearray)) and b"LogDataType" in data[:65536]


def _physio_chunks(data: bytes, rows: int) -> list[tuple[str, str]] | None:
    """(file name, log text) of each chunk, or None when the layout is not the one above."""
    size = rows * 1024
    if rows < 2 or not data or len(data) % size:
        return None
    chunks = []
    for start in range(0, len(data), size):
        datalen, namelen = struct.unpack_from("<LL", data, start)
        if not 0 < namelen <= 1016 or not 0 < datalen <= size - 1024:
            return None
        try:
            name = data[start + 8:start + 8 + namelen].decode("ascii")
            text = data[start + 1024:start + 1024 + datalen].decode("ascii")
        except UnicodeDecodeError:
            return None
        chunks.append((name, text))
    return chunks


def _physio_data_ticks(tokens: list[str], log_type: str) -> list[int] | None:
    """Indexes of the tick columns of a data line, or None when the line is not numbers and codes."""
    if log_type == "ACQUISITION_INFO":
        return [2, 3] if 4 <= len(tokens) <= 5 and all(t.isdigit() for t in tokens) else None
    if 3 <= len(tokens) <= 5 and tokens[0].isdigit() and _PHYSIO_CODE.fullmatch(tokens[1]) and \
            all(re.fullmatch(r"-?\d+", t) or _PHYSIO_CODE.fullmatch(t) for t in tokens[2:]) and \
            re.fullmatch(r"-?\d+", tokens[2]):
        return [0]  # tick, channel, value, then up to two codes or numbers (a trigger's signal name)
    return None


def _physio_lines(text: str) -> list[tuple[str, str, list[tuple[int, int]]]] | None:
    """Each line as (kind, line without comment, spans of its tokens): kind 'key', 'names', 'data'
    or 'blank'; None when a line is none of these (free text: the caller drops the element)."""
    out: list[tuple[str, str, list[tuple[int, int]]]] = []
    log_type = ""
    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].rstrip()  # comments are free text: never copied
        spans = [m.span() for m in _PHYSIO_TOKEN.finditer(line)]
        tokens = [line[a:b] for a, b in spans]
        key = _PHYSIO_KEY_LINE.fullmatch(line)
        if not tokens:
            out.append(("blank", "", []))
        elif key is not None:
            name, value = key.group(2), key.group(4)
            if name == "LogDataType":
                log_type = value
            if not (name in ("UUID", "ScanDate") or (name in PHYSIO_CODE_KEYS and _PHYSIO_CODE.fullmatch(
                    value.upper())) or (name in PHYSIO_INTEGER_KEYS | PHYSIO_TICK_KEYS and value.isdigit())):
                return None
            out.append(("key", line, [key.span(2), key.span(4)]))
        elif all(_PHYSIO_CODE.fullmatch(t) for t in tokens) and not tokens[0].isdigit():
            out.append(("names", line, spans))
        elif (ticks := _physio_data_ticks(tokens, log_type)) is not None:
            out.append(("data", line, [spans[i] for i in ticks]))
        else:
            return None
    return out


def _shifted_scan_date(value: str, offset: MomentOffset | None) -> str | None:
    """ScanDate YYYYMMDD_HHMMSS moved as one moment (mapping.shift_dt_moment), or None."""
    from .mapping import shift_dt_moment

    m = re.fullmatch(r"(\d{8})_(\d{6})", value)
    if m is None:
        return None
    if offset is None:
        return value
    moved = shift_dt_moment(m.group(1) + m.group(2), offset)
    return None if moved is None or len(moved) != 14 else f"{moved[:8]}_{moved[8:]}"


def clean_physio_log(data: bytes, rows: int, offset: MomentOffset | None,
                     new_uuid: Callable[[str], str]) -> bytes | None:
    """A Siemens physio log blob (layout above) with every moment moved by the patient's offset
    (ScanDate as a date and time; ticks by offset.seconds x 400, the same for every tick of the
    blob, so intervals and the start of the recording relative to the slices stay exact; a shift
    past midnight moves them back one day's ticks together), the measurement UUID replaced by
    new_uuid(UUID) (in the text and the file names), comments dropped, the waveform unchanged.
    offset None: times kept as they are (Retain Longitudinal Temporal Information Full Dates).
    rows: the object's Acquisition Number (chunk size rows x 1024 bytes, as readers take it).
    Returns the blob of the same size, or None when anything is not as described (a line of
    free text, an unknown key, a file name of another shape, a text that no longer fits its
    chunk): the caller then deletes the element (fail closed)."""
    chunks = _physio_chunks(bytes(data), rows) if isinstance(data, (bytes, bytearray)) else None
    if chunks is None:
        return None
    parsed = [(_physio_lines(text), name) for name, text in chunks]
    if any(lines is None for lines, _ in parsed):
        return None
    ticks = [int(line[a:b]) for lines, _ in parsed for kind, line, spans in lines or []
             for a, b in _tick_spans(kind, line, spans)]
    shift = 0 if offset is None else offset.seconds * PHYSIO_TICKS_PER_SECOND
    if ticks and min(ticks) + shift >= PHYSIO_TICKS_PER_DAY:
        shift -= PHYSIO_TICKS_PER_DAY  # the whole recording after the shifted midnight: one day back
    out = bytearray()
    size = rows * 1024
    for lines, name in parsed:
        text = _physio_text(lines or [], shift, offset, new_uuid)
        file_name = _physio_file_name(name, offset, new_uuid)
        if text is None or file_name is None or len(text) > size - 1024:
            return None
        chunk = bytearray(size)
        struct.pack_into("<LL", chunk, 0, len(text), len(file_name))
        chunk[8:8 + len(file_name)] = file_name
        chunk[1024:1024 + len(text)] = text
        out += chunk
    return bytes(out)


def _tick_spans(kind: str, line: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of a parsed line that hold ticks (data columns, FirstTime / LastTime values)."""
    if kind == "data":
        return spans
    if kind == "key" and line[spans[0][0]:spans[0][1]] in PHYSIO_TICK_KEYS:
        return spans[1:]
    return []


def _physio_text(lines: list[tuple[str, str, list[tuple[int, int]]]], shift: int, offset: MomentOffset | None,
                 new_uuid: Callable[[str], str]) -> bytes | None:
    """The log text written back: ticks shifted, ScanDate moved, UUID replaced."""
    written = []
    for kind, line, spans in lines:
        if kind == "key":
            (ka, kb), (va, vb) = spans
            name, value = line[ka:kb], line[va:vb]
            if name == "UUID":
                value = new_uuid(value)
            elif name == "ScanDate":
                moved = _shifted_scan_date(value, offset)
                if moved is None:
                    return None
                value = moved
            elif name in PHYSIO_TICK_KEYS:
                value = str(int(value) + shift)
            line = line[:va] + value + line[vb:]
        elif kind == "data":
            for a, b in reversed(spans):  # right to left: earlier spans keep their places
                old = line[a:b]
                new = str(int(old) + shift).rjust(len(old))
                line = line[:a] + new + line[b:]
        written.append(line)
    return ("\n".join(written) + "\n").encode("ascii")


def _physio_file_name(name: str, offset: MomentOffset | None, new_uuid: Callable[[str], str]) -> bytes | None:
    """Physio_<date>_<time>_<UUID>_<TYPE>.log with the moment moved and the UUID replaced, or None."""
    m = PHYSIO_FILE.fullmatch(name)
    if m is None:
        return None
    moved = _shifted_scan_date(f"{m.group(1)}_{m.group(2)}", offset)
    return None if moved is None else f"Physio_{moved}_{new_uuid(m.group(3))}_{m.group(4)}.log".encode("ascii")
