"""Private attributes: kept only as the private tables say, with their disposition applied.

PS3.15 E.3.10 (Retain Safe Private Option, Table E.3.10-1) and the research knowledge base
(guidelines/research_private.csv): creators matched as files write them, dispositions k (keep),
h (remap UID), o (shift a date), oi (shift a date counted in seconds), value checks, vendor
protocol headers cleaned by deidkit.csa; anything else is deleted (fail closed). The items of a
kept private sequence are walked by deidkit.engine_walk.
"""
from __future__ import annotations

import re
import uuid

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds

from .csa import clean_csa, clean_ge_protocol, clean_ge_user_data, clean_physio_log, clean_protocol_text, holds_physio_log
from .guidelines import Guidelines, SafePrivate
from .mapping import shift_epoch_seconds, shift_value
from .engine_context import (BINARY_VRS, FREE_TEXT_VRS, NUMBER_VRS, TEXT_VRS, Context, _empty, _note, _remap_uid,
                             _str_values)
from .engine_dates import _cap_age, _shift_or_drop_date
from .engine_memo import _BLOB_MEMO, _phi_shaped


# ---- private data ------------------------------------------------------------------------------

def _has_private(ds: Dataset) -> bool:
    return any(tag >> 16 & 1 for tag in ds.keys())


def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
    out = {}
    for tag in list(ds.keys()):  # only the creators are looked at (converted)
        if not (tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF):
            continue
        elem = ds[tag]
        if isinstance(elem.value, (str, bytes)):
            value = elem.value.decode("latin-1") if isinstance(elem.value, bytes) else elem.value
            out[(elem.tag.group, elem.tag.element)] = value.strip()
    return out


def _kept_entry(ds: Dataset, elem: DataElement, ctx: Context, location: str,
                creators: dict[tuple[int, int], str]) -> SafePrivate | None:
    """The private table's row that keeps a private element, for its disposition to be applied
    next (_apply_private; the items of a kept sequence are walked by engine_walk); None when it
    is done with here: deleted because no table keeps it or its value cannot be read as listed,
    a vendor protocol header cleaned, or a creator (dropped afterwards if its block is empty).
    Creators are matched as files write them (any case, surrounding spaces, any block 0x10-0xFF),
    at any depth: this runs for the items of every sequence (per-frame functional groups too)."""
    tag = elem.tag
    if 0x0010 <= tag.element <= 0x00FF:
        return None  # creators are dropped afterwards if their block is empty
    entry = None
    creator = creators.get((tag.group, tag.element >> 8))
    code = _private_code(ctx.guidelines)
    if code in ("C", "K") and creator is not None and tag.group > 0x0008:
        entry = ctx.guidelines.safe_private_entry(creator, tag.group, tag.element)
        if entry is not None and (entry.check == "physio" or entry.check in _PROTOCOL_CLEANERS):
            cleaned, note = _clean_vendor_blob(ds, elem, ctx, entry.check)
            if cleaned is None:
                entry = None
            else:
                ds[tag] = DataElement(tag, "OB" if elem.VR == "UN" else elem.VR, cleaned)
                _note(ctx, location, "C", note)
                return None
        elif entry is not None and not _private_value_usable(ds, elem, entry.vr):
            entry = None
    if entry is None:
        del ds[tag]
        _note(ctx, location, "X", "private attribute")
    return entry


_PRIVATE_CODES: dict[int, tuple[Guidelines, str]] = {}


def _private_code(guidelines: Guidelines) -> str:
    """The table's code for private attributes under the enabled options (the private row's
    code_under), worked out once per loaded tables instead of once per private element."""
    hit = _PRIVATE_CODES.get(id(guidelines))
    if hit is None or hit[0] is not guidelines:
        if len(_PRIVATE_CODES) >= 64:
            _PRIVATE_CODES.clear()
        hit = _PRIVATE_CODES[id(guidelines)] = (guidelines, guidelines.private_rule.code_under(guidelines.settings.options))
    return hit[1]


# vendor protocol headers kept only as deidkit.csa cleans them (research_private.csv check column)
_PROTOCOL_CLEANERS = {"csa": clean_csa, "ascconv": clean_protocol_text, "geprotocol": clean_ge_protocol,
                      "geuserdata": clean_ge_user_data}


def _clean_vendor_blob(ds: Dataset, elem: DataElement, ctx: Context, check: str) -> tuple[bytes | None, str]:
    """A vendor blob the table keeps only cleaned (check physio or a _PROTOCOL_CLEANERS key): its
    cleaned bytes (None: it cannot be cleaned, so it goes) and the note for the log."""
    if check == "physio":
        return _clean_physio(ds, elem, ctx), "Siemens physiological log: moments shifted, UUID replaced"
    cleaned = (_BLOB_MEMO.clean(check, _PROTOCOL_CLEANERS[check], elem.value, ctx.pseudonym)
               if isinstance(elem.value, bytes) else None)
    return cleaned, "Siemens protocol header cleaned"


def _clean_physio(ds: Dataset, elem: DataElement, ctx: Context) -> bytes | None:
    """A Siemens physiological log (csa.clean_physio_log) with this patient's moments: shifted
    under Retain Longitudinal Temporal Information Modified Dates, as they are under Full Dates,
    None (deleted) under neither. Its measurement UUID becomes the UUID form of the keyed UID
    mapping of the original (the same in every chunk and file of the measurement)."""
    options = ctx.guidelines.settings.options
    if not isinstance(elem.value, bytes) or not {"retain_long_modified_dates", "retain_long_full_dates"} & options:
        return None
    try:
        rows = int(ds.get("AcquisitionNumber", 0) or 0)
    except (TypeError, ValueError):
        return None
    offset = ctx.moment_offset if "retain_long_modified_dates" in options else None

    def new_uuid(original: str) -> str:
        return str(uuid.UUID(int=int(ctx.mapper.uid("physio-uuid:" + original).split(".")[-1]) % (1 << 128)))

    cleaned = clean_physio_log(elem.value, rows, offset, new_uuid)
    if cleaned is not None and offset is not None:
        ctx.dates_shifted = True
    return cleaned


SPECTROSCOPY_DATA = 0x56000020


def clean_physio_in_spectroscopy(ds: Dataset, ctx: Context) -> None:
    """A physiological log in Spectroscopy Data (5600,0020) (Siemens XA30 writes it there instead of
    (7FE1,xx10); csa.holds_physio_log) is cleaned the same way (_clean_physio: moments shifted,
    UUID keyed), or removed when it cannot be: its ScanDate and ticks are the real moments, which
    the sweep (names and IDs) does not look for. Real spectroscopy data (numbers) is left alone."""
    elem = ds.get(SPECTROSCOPY_DATA)
    if elem is None or not isinstance(elem.value, bytes) or not holds_physio_log(elem.value):
        return
    cleaned = _clean_physio(ds, elem, ctx)
    if cleaned is None:
        del ds[SPECTROSCOPY_DATA]
        _note(ctx, "(5600,0020)", "X", "physiological log that could not be cleaned removed")
    else:
        ds[SPECTROSCOPY_DATA] = DataElement(SPECTROSCOPY_DATA, elem.VR, cleaned)
        _note(ctx, "(5600,0020)", "C", "Siemens physiological log: moments shifted, UUID replaced")


def _apply_private(ds: Dataset, elem: DataElement, entry: SafePrivate, ctx: Context, location: str) -> None:
    """Apply a kept private element's disposition (k keep, h remap UID, o shift date, oi shift a
    date counted in seconds) and its check; what does not fit is deleted (fail closed). A
    sequence kept (k) is walked by engine_walk, not here; one with a value disposition is deleted."""
    tag, vr, disposition = elem.tag, elem.VR, entry.disposition
    if vr == "SQ":
        del ds[tag]
        _note(ctx, location, "X", "private sequence with a value disposition")
        return
    if not _passes_check(elem, entry):
        del ds[tag]
        _note(ctx, location, "X", "private value is not what the table expects")
        return
    if disposition == "h":
        _remap_private_uid(ds, elem, ctx, location)
    elif disposition == "o" or vr in ("DA", "DT", "TM"):
        _shift_private_date(ds, elem, ctx, location)
    elif disposition == "oi":
        _shift_private_seconds(ds, elem, ctx, location)
    elif vr == "UI":
        _remap_uid(elem, ctx)
    elif vr == "PN":
        _empty(ds, elem)
    elif vr == "AS":
        _cap_age(ds, elem, ctx, location)
    elif vr in FREE_TEXT_VRS or vr == "UR":
        # kept by the knowledge base, yet text: a PHI shape (URL, date, phone...) still goes
        if any(_phi_shaped(v) for v in _str_values(elem)):
            del ds[tag]
            _note(ctx, location, "X", "kept private attribute held PHI-shaped text")


def _passes_check(elem: DataElement, entry: SafePrivate) -> bool:
    """The value is what the private table's check column expects (number, token; never a
    sequence where a value is listed)."""
    return not (entry.check == "sequence" or (entry.check == "number" and not _all_numbers(elem)) or (
        entry.check == "token" and not all(_TOKEN.fullmatch(v.strip()) for v in _str_values(elem))))


def _remap_private_uid(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """'h': a UID-like private value remapped as public UIDs are; deleted when it is not one."""
    values = _str_values(elem)
    if elem.VR in BINARY_VRS or not all(_UID_LIKE.fullmatch(v.strip("\0 ")) for v in values):
        del ds[elem.tag]
        _note(ctx, location, "X", "private UID-like value unreadable")
        return
    new = [ctx.mapper.uid(v.strip("\0 ")) for v in values]
    if new:
        elem.value = new if len(new) > 1 else new[0]
    _note(ctx, location, "U", "private UID remapped")


_UID_LIKE = re.compile(r"[0-9]+(\.[0-9]+)+")
_TOKEN = re.compile(r"[A-Za-z0-9_.*+\-;:>()/]{1,32}")  # one technical code: p2, Tra>Cor(-6.2), +LPH
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _all_numbers(elem: DataElement) -> bool:
    """Every value of the element is a number (a numeric VR, or DS/IS text that parses); in text, a
    value left empty among numbers is no value (GE Table Position Information 0043,xxB2
    '960.5\\400\\-128.45\\\\-9999\\-9999', dcm_qa_trt: BIDS TablePosition), but one number at least."""
    if elem.VR in NUMBER_VRS or elem.VR in ("OF", "OD", "FL", "FD"):
        return True
    if elem.VR in ("DS", "IS") or elem.VR in TEXT_VRS:
        values = [v.strip() for v in _str_values(elem)]
        return any(values) and all(not v or _NUMBER_TEXT.fullmatch(v) for v in values)
    return False


def _shift_private_date(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """'o': a date or date-time, whatever VR the vendor gave it, shifted like the public dates."""
    options = ctx.guidelines.settings.options
    if elem.VR in ("DA", "DT", "TM") and ({"retain_long_modified_dates", "retain_long_full_dates"} & options):
        _shift_or_drop_date(ds, elem, ctx, location, outside_table=False)
        return
    values = _str_values(elem) if elem.VR in TEXT_VRS else None
    if values is not None and "retain_long_full_dates" in options:
        return
    shifted = ([shift_value("DT", v, ctx.moment_offset) for v in values]
               if values and "retain_long_modified_dates" in options else None)
    if not shifted or any(s is None or s == v.strip() for s, v in zip(shifted, values or [], strict=True)):
        del ds[elem.tag]
        _note(ctx, location, "X", "private date removed")
        return
    elem.value = shifted if len(shifted) > 1 else shifted[0]
    ctx.dates_shifted = True
    _note(ctx, location, "C", "private date shifted")


def _shift_private_seconds(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """'oi': a date held as seconds since 1970 (GE), moved by the patient's offset in days."""
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return
    try:
        values = [float(v) for v in _str_values(elem)] if elem.VR not in BINARY_VRS else None
    except ValueError:
        values = None
    if not values or "retain_long_modified_dates" not in options:
        del ds[elem.tag]
        _note(ctx, location, "X", "private date removed")
        return
    shifted = [shift_epoch_seconds(v, ctx.moment_offset) for v in values]
    new = [v for v in shifted if v is not None]
    if len(new) != len(values):  # not a moment (a duration, a count): removed, never shifted
        del ds[elem.tag]
        _note(ctx, location, "X", "private date removed")
        return
    if elem.VR in ("FL", "FD", "OF", "OD"):
        out: list = new
    elif elem.VR == "DS" or elem.VR in TEXT_VRS:
        out = [format_number_as_ds(v) if v != int(v) else str(int(v)) for v in new]
    else:
        out = [int(v) for v in new]
    elem.value = out if len(out) > 1 else out[0]
    ctx.dates_shifted = True
    _note(ctx, location, "C", "private date shifted")


def _private_value_usable(ds: Dataset, elem: DataElement, listed_vr: str) -> bool:
    """Keep a listed private value only when we can read it as the VR the list gives."""
    if elem.VR != "UN":
        return True
    vr = listed_vr.split("/")[0] if listed_vr else ""
    if not vr or vr in BINARY_VRS or vr == "SQ":
        return False
    try:
        from pydicom.values import convert_value

        raw = elem.value if isinstance(elem.value, bytes) else b""
        # little endian implicit VR: the value bytes as a private UN element holds them
        value = convert_value(vr, RawDataElement(elem.tag, vr, len(raw), raw, 0, True, True))
    except Exception:  # any parse failure: not usable, so it is removed
        return False
    ds[elem.tag] = DataElement(elem.tag, vr, value)
    return True


def _drop_empty_private_creators(ds: Dataset) -> None:
    tags = [int(t) for t in ds.keys()]  # tags only: no value is converted
    used = {(t >> 16, (t & 0xFFFF) >> 8) for t in tags if t >> 16 & 1 and t & 0xFFFF > 0x00FF}
    for t in tags:
        if t >> 16 & 1 and t & 0xFFFF <= 0x00FF and (t >> 16, t & 0xFFFF) not in used:
            del ds[t]
