"""Dates, times and ages: shifted by the patient's offset, capped, or emptied.

Dates the table keeps or cleans move by the patient's moment offset (PS3.15 E.3.6, Retain
Longitudinal Temporal Information with Modified Dates), with their paired time so a time past
midnight carries its date; ages of 90 and over become 090Y and a birth date implying one is
emptied (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)); unreadable values are emptied.
"""
from __future__ import annotations

import datetime as dt
import re

from pydicom.datadict import DicomDictionary, keyword_dict
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .mapping import REMOVE, MomentOffset, sentinel_of, shift_value
from .engine_context import (Context, _empty, _is_empty, _note, _put, _str_values, tag_text)


AGE_CAP_YEARS = 90  # HIPAA Safe Harbor: ages of 90 and over are one category, written 090Y


def _date_time_pairs() -> dict[int, int]:
    """Date tag -> its time tag, from pydicom's data dictionary: a DA keyword XDate whose
    keyword with Date -> Time is a TM (Study Date + Study Time, Date of Last Calibration + Time
    of Last Calibration, ...). Shifted together, a time past midnight carries its date."""
    pairs = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr == "DA" and "Date" in keyword:
            time_tag = keyword_dict.get(keyword.replace("Date", "Time"))
            if time_tag is not None and DicomDictionary[time_tag][0] == "TM":
                pairs[tag] = time_tag
    return pairs


DATE_TIME_PAIRS = _date_time_pairs()
_PAIRED_DATES = frozenset(DATE_TIME_PAIRS)
_BIRTH_DATE, _BIRTH_TIME = 0x00100030, 0x00100032
_REFERENCE_DATES = (0x00080020, 0x00080021, 0x00080022, 0x00080023)  # Study, Series, Acquisition, Content Date


def _shift_or_drop_date(ds: Dataset, elem: DataElement, ctx: Context, location: str, outside_table: bool) -> None:
    """Move a DA, TM or DT element by the patient's moment offset (mapping.shift_value); a DA
    moves with its paired time (see _pair_times). Unreadable values are emptied; a "not set"
    sentinel (mapping.sentinel_date) is kept as written or emptied, never moved."""
    options = ctx.guidelines.settings.options
    if "retain_long_full_dates" in options:
        return
    if "retain_long_modified_dates" not in options:
        if outside_table and not _is_empty(elem):
            _empty(ds, elem)
            _note(ctx, location, "Z", "date outside the table")
        return
    values = _str_values(elem)
    if elem.VR == "TM" and any(sentinel_of(d) for d in ctx.pair_times.get(id(ds), {}).get(elem.tag, [])):
        _note(ctx, location, "K", "time of a 'not set' date kept")  # moved, it would show the offset's seconds
        return
    times = ctx.pair_times.get(id(ds), {}).get(elem.tag, []) if elem.VR == "DA" else []
    if len(times) != len(values):
        times = [""] * len(values)
    shifted = [_shifted(elem.VR, v, ctx.moment_offset, t) for v, t in zip(values, times, strict=True)]
    if any(s is None for s in shifted):
        _empty(ds, elem)
        sentinel = any(sentinel_of(v) == REMOVE for v in values)
        _note(ctx, location, "Z", "date that can mean 'not set' emptied" if sentinel else "unparseable date emptied")
        return
    if values:
        _put(elem, shifted if len(shifted) > 1 else shifted[0])
        ctx.dates_shifted = True
        _note(ctx, location, "C", "date shifted" if elem.VR != "TM" else "time shifted")


_SHIFTED: dict[tuple[str, str, MomentOffset, str], str | None] = {}


def _shifted(vr: str, value: str, offset: MomentOffset, time_of_date: str) -> str | None:
    """mapping.shift_value(vr, value, offset, time_of_date), remembered per distinct argument
    (a series repeats its dates and times in every file; the offset is the patient's, so an
    answer is only ever reused for the same moment moved by the same offset). A pure function;
    worker memory, bounded."""
    key = (vr, value, offset, time_of_date)
    if key in _SHIFTED:
        return _SHIFTED[key]
    result = shift_value(vr, value, offset, time_of_date)
    if len(value) <= 64:  # dates and times are short; a damaged long value is not kept
        if len(_SHIFTED) >= 4096:
            _SHIFTED.clear()
        _SHIFTED[key] = result
    return result


def _pair_times(ds: Dataset, ctx: Context) -> None:
    """Remember, before any element of ds changes, the time of each date that has one in the same
    dataset (DATE_TIME_PAIRS), so the date moves with it, and the date of each such time (under the
    time's tag), so the time of a "not set" date stays as it is. Items of sequences are their own datasets."""
    found: dict[int, list[str]] = {}
    for tag in ds.keys() & _PAIRED_DATES:  # the dates that have a time (a set operation, not a loop over ds)
        time_tag = DATE_TIME_PAIRS.get(tag.real)
        if time_tag is not None and time_tag in ds:
            time_elem = ds[time_tag]
            if time_elem.VR == "TM":
                found[tag] = _str_values(time_elem)
                found[time_tag] = _str_values(ds[tag])  # and a time its date: a sentinel's time stays
    if found:
        ctx.pair_times[id(ds)] = found
    else:
        ctx.pair_times.pop(id(ds), None)


def _age_years(value: str) -> float | None:
    """Years an Age String (nnnD/W/M/Y, PS3.5 6.2) stands for; also longer numbers (1100M, 4800W)
    and a bare number (years). None if it holds no number."""
    m = re.match(r"^\s*(\d+)\s*([DWMY]?)", value.upper())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "Y"
    return {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": float(n)}[unit]


def _cap_age(ds: Dataset, elem: DataElement, ctx: Context, location: str) -> None:
    """Ages of 90 and over become 090Y (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)); an age that
    is no age is emptied (fail closed)."""
    values = _str_values(elem)
    if not values:
        return
    years = [_age_years(v) for v in values]
    if any(y is None for y in years):
        _empty(ds, elem)
        _note(ctx, location, "Z", "unreadable age emptied")
        return
    if any(y >= AGE_CAP_YEARS for y in years):  # type: ignore[operator]
        new = [f"{AGE_CAP_YEARS:03d}Y" if y >= AGE_CAP_YEARS else v for v, y in zip(values, years, strict=True)]  # type: ignore[operator]
        elem.value = new if len(new) > 1 else new[0]
        ctx.age_capped = True
        _note(ctx, location, "C", "age of 90 or over written 090Y")


def _check_birth_date(ds: Dataset, ctx: Context) -> None:
    """A birth date that is still there (a site table keeping or shifting it) must not imply an
    age of 90 or over at this file's dates, nor beside an age capped to 090Y: then it is emptied
    with its time (Patient's Birth Date is Type 2)."""
    birth = ds.get(_BIRTH_DATE)
    if birth is None or _is_empty(birth):
        return
    born = _parse_da(str(birth.value))
    dates = [_parse_da(str(ds[t].value)) for t in _REFERENCE_DATES if t in ds and not _is_empty(ds[t])]
    latest = max((d for d in dates if d is not None), default=None)
    too_old = ctx.age_capped or born is None
    if born is not None and latest is not None:
        years = latest.year - born.year - ((latest.month, latest.day) < (born.month, born.day))
        too_old = too_old or years >= AGE_CAP_YEARS
    if too_old:
        _empty(ds, birth)
        if _BIRTH_TIME in ds:
            del ds[_BIRTH_TIME]
        _note(ctx, tag_text(_BIRTH_DATE), "Z", "birth date implying 90 or over emptied")


def _parse_da(value: str) -> "dt.date | None":
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None
