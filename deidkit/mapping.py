"""Keyed, deterministic mapping of UIDs, patient pseudonyms and dates from a per-site secret key.

Same key + same input -> same output, so re-runs and later exports of the same patient link up.
Without the key nobody can link a pseudonym back to the patient (HMAC-SHA256).
"""
from __future__ import annotations

import base64
import datetime as dt
import hmac
import os
import re
import secrets
import sys
import functools
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TypeVar

from .contract import KEY_FILE_NAME  # noqa: F401 (its old home)

SECONDS_PER_DAY = 86400
_DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")


class KeyError_(ValueError):
    """The site key file is unreadable or malformed."""


def default_key_path() -> Path:
    """Hospital-side place for the site key: the user's application-data folder, never the output."""
    try:
        home = Path.home()
    except RuntimeError:  # no HOME/USERPROFILE (stripped environments): the program's folder
        from .program import program_dir

        return program_dir() / KEY_FILE_NAME
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        return base / "DeidKit" / KEY_FILE_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "DeidKit" / KEY_FILE_NAME
    base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "deidkit" / KEY_FILE_NAME


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """Read the site key from path, creating a new random one there if missing. (key, created)."""
    if path.exists():
        text = path.read_text(encoding="ascii", errors="replace")
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    key = bytes.fromhex(line)
                except ValueError:
                    break
                if len(key) >= 16:
                    return key, False
        raise KeyError_(f"the site key file {path} is damaged (no hex key of 32+ digits)")
    key = secrets.token_bytes(32)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = ("# DeidKit site key. Keep it secret and backed up, on the hospital side only.\n"
            "# The same key gives the same pseudonyms, UIDs and date shifts in later exports,\n"
            "# so studies of one patient link up. Never send it with the data.\n"
            f"{key.hex()}\n")
    from .journal import write_secret  # one place for secret files: 0600 from the first byte, atomic

    write_secret(path, text.encode("ascii"))
    return key, True


class Mapper:
    """All keyed replacements. Pure: the same key gives the same answers in any process."""

    def __init__(self, key: bytes, pseudonym_prefix: str = "SUBJ", min_shift_days: int = 365,
                 max_shift_days: int = 3650) -> None:
        self._key = key
        self.prefix = pseudonym_prefix
        self.min_shift = min_shift_days
        self.max_shift = max_shift_days
        self._uids: dict[str, str] = {}  # original -> new UID, a cache of the pure mapping
        self._macs: dict[tuple[str, str], bytes] = {}  # (domain, value) -> MAC: pseudonyms, shifts, folder codes

    def _mac(self, domain: str, value: str) -> bytes:
        return hmac.new(self._key, domain.encode() + b"\0" + value.encode("utf-8", "surrogatepass"), sha256).digest()

    def uid(self, original: str) -> str:
        """A new UID under 2.25 (PS3.5 B.2) derived from the original; at most 44 characters."""
        original = original.strip().rstrip("\0")
        new = self._uids.get(original)
        if new is None:  # study, series and frame-of-reference UIDs repeat in every file
            new = "2.25." + str(int.from_bytes(self._mac("uid", original)[:16], "big"))
            if len(self._uids) >= 4096:  # pure mapping: dropping entries changes nothing but speed
                self._uids.clear()
            self._uids[original] = new
        return new

    def _cached_mac(self, domain: str, value: str) -> bytes:
        """_mac, remembered: every file of a series asks for the same patient's pseudonym and date
        shift and the same study and series codes (a cache of a pure function, bounded)."""
        key = (domain, value)
        mac = self._macs.get(key)
        if mac is None:
            mac = self._mac(domain, value)
            if len(self._macs) >= 4096:
                self._macs.clear()
            self._macs[key] = mac
        return mac

    def patient_pseudonym(self, patient_key: str) -> str:
        """PREFIX_ + 10 base32 characters; used for both Patient's Name and Patient ID."""
        code = base64.b32encode(self._cached_mac("patient", patient_key)[:10]).decode()[:10]
        return f"{self.prefix}_{code}"

    def date_offset_days(self, patient_key: str) -> int:
        """Days every date of this patient moves back (same patient, same shift, every run)."""
        span = self.max_shift - self.min_shift + 1
        return -(self.min_shift + int.from_bytes(self._cached_mac("dateshift", patient_key)[:8], "big") % span)

    def time_offset_seconds(self, patient_key: str) -> int:
        """Seconds (0..86399) every moment of this patient moves forward on top of its days.

        With date_offset_days it makes one offset per patient, days + seconds (MomentOffset): a
        time of day moves with its date (PS3.15 E.3.6 modifies dates and times)."""
        return int.from_bytes(self._cached_mac("timeshift", patient_key)[:8], "big") % SECONDS_PER_DAY

    def moment_offset(self, patient_key: str) -> "MomentOffset":
        """The patient's whole keyed offset: date_offset_days days plus time_offset_seconds."""
        return MomentOffset(self.date_offset_days(patient_key), self.time_offset_seconds(patient_key))

    def short_code(self, value: str, length: int = 8) -> str:
        """A neutral hex code for output folder/file names."""
        return self._cached_mac("name", value).hex()[:length].upper()


def patient_key_of(patient_id: str, name: str, birth_date: str, study_uid: str) -> str:
    """What identifies 'the same patient' across files: the Patient ID, else name + birth date.

    The Issuer of Patient ID is left out on purpose: PACS fill it in for some objects and not
    others, which would split one patient into two pseudonyms.
    """
    patient_id = patient_id.strip()
    if patient_id:
        return f"id:{patient_id}"
    if name.strip():
        return f"name:{name.strip().upper()}|{birth_date.strip()}"
    return f"study:{study_uid.strip()}"


# ---- dates ------------------------------------------------------------------------------------

_By = TypeVar("_By")
_Shift = Callable[[str, _By], "str | None"]


def _ranges(is_range: Callable[[str], bool]) -> Callable[[_Shift[_By]], _Shift[_By]]:
    """What every DA, TM and DT shift does first: surrounding spaces go, "" stays "", and a range
    query value (is_range) has both its ends shifted (_shift_range); the function decorated is
    given one stripped, non-empty value."""
    def decorate(shift: _Shift[_By]) -> _Shift[_By]:
        @functools.wraps(shift)
        def shifted(value: str, by: _By) -> str | None:
            value = value.strip()
            if not value:
                return value
            if is_range(value):
                return _shift_range(value, lambda part: shifted(part, by))
            return shift(value, by)
        return shifted
    return decorate


def _is_da_tm_range(value: str) -> bool:
    """A DA or TM range query "A-B" (neither has a hyphen of its own)."""
    return "-" in value


def _shift_range(value: str, shift: Callable[[str], str | None]) -> str | None:
    """A range query value "A-B" (either end may be empty) with both ends shifted; None when it
    is not a range of two readable values (PS3.4 C.2.2.2.5)."""
    parts = value.split("-")
    if len(parts) != 2:
        return None
    shifted = [shift(p) if p else "" for p in parts]
    if any(x is None for x in shifted):
        return None
    return "-".join(x or "" for x in shifted)


# ---- sentinels: "not set" dates a shift would turn into the offset itself ---------------------
#
# A date a program writes for "not set" is known to everyone: moved by the patient's offset it
# shows the offset ("19000101" written as "18980819" says: 500 days), and the offset unlocks every
# other date of that patient. So a sentinel is never moved: one no real record has (1900-01-01 and
# before: Excel, SQL Server, Delphi, year 1; 2099-12-31 and after: "never", 9999-12-31) stays as
# it is; one that is also a real day for some patients (the Unix, DOS, GPS, Mac and 2000 epochs)
# is removed: nobody can tell which it is, and kept it could be a real birth date.
LAST_SENTINEL_BEFORE = dt.date(1900, 1, 1)   # this day and earlier: never a real date (kept)
FIRST_SENTINEL_AFTER = dt.date(2099, 12, 31)  # this day and later: never a real date (kept)
EPOCH_DATES = frozenset({dt.date(1970, 1, 1), dt.date(1980, 1, 1), dt.date(1980, 1, 6), dt.date(1904, 1, 1),
                         dt.date(2000, 1, 1), dt.date(2001, 1, 1), dt.date(2038, 1, 19)})  # removed
KEEP, REMOVE = "keep", "remove"


def sentinel_date(day: dt.date) -> str | None:
    """KEEP when `day` is a "not set" date no real record has (on or before 1900-01-01, on or
    after 2099-12-31), REMOVE when it is a program's epoch that is also a real day (EPOCH_DATES),
    None for every other date (shifted as usual)."""
    if day <= LAST_SENTINEL_BEFORE or day >= FIRST_SENTINEL_AFTER:
        return KEEP
    return REMOVE if day in EPOCH_DATES else None


def sentinel_year(year: int) -> str | None:
    """sentinel_date for a value of year (or year and month) precision: KEEP for 1900 and
    before, 2099 and after; None otherwise."""
    return KEEP if year <= LAST_SENTINEL_BEFORE.year or year >= FIRST_SENTINEL_AFTER.year else None


def sentinel_of(value: str) -> str | None:
    """sentinel_date of the day a DA or DT value starts with (YYYYMMDD or YYYY.MM.DD); None when
    it starts with no valid day (a range, a partial date, no date)."""
    m = re.match(r"(\d{4})\.?(\d{2})\.?(\d{2})", value.strip())
    try:
        return sentinel_date(dt.date(*map(int, m.groups()))) if m else None
    except ValueError:
        return None


@_ranges(_is_da_tm_range)
def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (YYYYMMDD, also legacy YYYY.MM.DD and ranges). None if not a date.
    A sentinel (sentinel_date) is never moved: kept as written, or None (removed)."""
    digits = value.replace(".", "") if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", value) else value
    if not re.fullmatch(r"\d{8}", digits):
        return None
    try:
        d = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        sentinel = sentinel_date(d)
        if sentinel is not None:
            return value if sentinel == KEEP else None
        return (d + dt.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def _is_dt_range(value: str) -> bool:
    """A DT range query "A-B" (one hyphen, not a UTC offset such as -0500 at the end)."""
    return value.count("-") == 1 and "-" in value[1:] and not re.search(r"[+-]\d{4}$", value)


@_ranges(_is_dt_range)
def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping time, fraction and UTC offset. None if invalid."""
    m = _DT_RE.match(value)
    if not m:
        return None
    year, month, day, rest = m.group(1), m.group(2), m.group(3), m.group(4)
    if rest and not re.fullmatch(r"(\d{2}){0,3}(\.\d{1,6})?([+-]\d{4})?", rest):
        return None
    try:
        if month and day:
            day_of = dt.date(int(year), int(month), int(day))
            sentinel = sentinel_date(day_of)
            if sentinel is not None:
                return value if sentinel == KEEP else None
            return (day_of + dt.timedelta(days=days)).strftime("%Y%m%d") + rest
        if sentinel_year(int(year)) is not None:
            return value
        # partial precision: move by whole months / years, never keep the original
        months = round(days / 30.4375)
        total = int(year) * 12 + (int(month) - 1 if month else 0) + (months if month else 0)
        if not month:
            return f"{int(year) + round(days / 365.25):04d}" + rest
        return f"{total // 12:04d}{total % 12 + 1:02d}" + rest
    except (ValueError, OverflowError):
        return None


# ---- moments: dates and times together (PS3.15 E.3.6, Modified Dates) ---------------------------

@dataclass(frozen=True)
class MomentOffset:
    """One patient's keyed shift of every moment: `days` (negative) plus `seconds` (0..86399).

    A date alone (DA, or a DT of day precision) moves by `days`; a time of day (TM) moves by
    `seconds` modulo one day; a date with its time (DA+TM pair, DT with a time) moves by both, so a
    time past midnight carries into the next day. Intervals between moments stay exact."""

    days: int
    seconds: int = 0


_TM_RE = re.compile(r"^(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(\.\d{1,6})?$")
_DT_FULL_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


def _parse_tm(value: str) -> tuple[int, int, str] | None:
    """(seconds since midnight, number of components given (1-3), fraction text) or None."""
    m = _TM_RE.match(value.strip())
    if not m:
        return None
    hh, mm, ss, frac = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    if frac and ss is None:
        return None
    h, mi, s = int(hh), int(mm or 0), int(ss or 0)
    if h > 23 or mi > 59 or s > 60:
        return None
    return h * 3600 + mi * 60 + min(s, 59), 1 + (mm is not None) + (ss is not None), frac


def _format_time(seconds: int, parts: int, frac: str) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return (f"{h:02d}", f"{h:02d}{m:02d}", f"{h:02d}{m:02d}{s:02d}")[parts - 1] + (frac if parts == 3 else "")


def time_carry(tm_value: str, offset: MomentOffset) -> int | None:
    """Days a date moves on top of offset.days because its time (tm_value) passes midnight
    (0 or 1); None if tm_value is not one readable time (then the date moves by days alone)."""
    parsed = _parse_tm(tm_value) if tm_value and "-" not in tm_value else None
    if parsed is None:
        return None
    return (parsed[0] + offset.seconds) // SECONDS_PER_DAY


@_ranges(_is_da_tm_range)
def shift_tm(value: str, offset: MomentOffset) -> str | None:
    """Shift a TM value (HH, HHMM, HHMMSS[.F{1-6}], legacy HH:MM:SS, ranges) by offset.seconds
    modulo one day, keeping its precision. None if not a time."""
    parsed = _parse_tm(value)
    if parsed is None:
        return None
    seconds, precision, frac = parsed
    return _format_time((seconds + offset.seconds) % SECONDS_PER_DAY, precision, frac)


@_ranges(_is_dt_range)
def shift_dt_moment(value: str, offset: MomentOffset) -> str | None:
    """Shift a DT value as one moment: days + seconds when it has a time (precision, fraction and
    UTC offset kept; a time past midnight carries into the date), days alone when it has none.
    Partial dates (YYYY, YYYYMM) move as shift_dt moves them. None if invalid."""
    m = _DT_FULL_RE.match(value)
    if not m or m.group(4) is None:
        return shift_dt(value, offset.days)
    year, month, day, hh, mm, ss, frac, zone = m.groups()
    if ss is None and frac:
        return None
    time_text = hh + (mm or "") + (ss or "")
    parsed = _parse_tm(time_text + (frac or ""))
    if parsed is None:
        return None
    seconds, precision, frac_text = parsed
    try:
        date = dt.date(int(year), int(month), int(day))
        sentinel = sentinel_date(date)
        if sentinel is not None:  # its time stays too: moved it would show the seconds of the offset
            return value if sentinel == KEEP else None
        total = seconds + offset.seconds
        date += dt.timedelta(days=offset.days + total // SECONDS_PER_DAY)
    except (ValueError, OverflowError):
        return None
    return date.strftime("%Y%m%d") + _format_time(total % SECONDS_PER_DAY, precision, frac_text) + (zone or "")


def shift_value(vr: str, value: str, offset: MomentOffset, time_of_date: str = "") -> str | None:
    """The one place that moves a DA, TM or DT value by a patient's offset (the engine, private
    attributes and anyone else call this). For a DA, time_of_date is the original value of its
    paired TM (XDate <-> XTime in the same dataset), so a time past midnight carries the date.
    Returns the shifted value ("" stays ""), or None when the value is not a readable moment
    (callers empty it). Raises ValueError for another VR."""
    if vr == "DA":
        carry = time_carry(time_of_date, offset) if time_of_date else None
        return shift_da(value, offset.days + (carry or 0))
    if vr == "TM":
        return shift_tm(value, offset)
    if vr == "DT":
        return shift_dt_moment(value, offset)
    raise ValueError(f"shift_value: {vr} is not a date or time VR")


shift_moment = shift_value  # the name the issue and other modules may use


# a moment counted in seconds since 1970 ('oi' in the private tables, GE) is only a date when it
# falls where scanners have stored images: 0 means "not set", a small number is a duration
EPOCH_SECONDS_FIRST = 315_532_800     # 1980-01-01T00:00:00Z
EPOCH_SECONDS_LAST = 4_102_444_800    # 2100-01-01T00:00:00Z


def shift_epoch_seconds(value: float, offset: MomentOffset) -> float | None:
    """A date held as seconds since 1970-01-01 (GE private 'oi' values), moved by the patient's
    offset (days and seconds). 0 (not set) stays 0: shifting it would write the offset itself.
    None for any other value outside 1980-2099 (not a moment: the caller removes it) and for a
    moment on a day sentinel_date names (a program's epoch: "not set" too)."""
    if value == 0:
        return 0.0
    if not EPOCH_SECONDS_FIRST <= value < EPOCH_SECONDS_LAST:
        return None
    day = dt.date(1970, 1, 1) + dt.timedelta(days=int(value // SECONDS_PER_DAY))
    if sentinel_date(day) is not None:  # an epoch's day (1980-01-01 DOS, 2000-01-01): "not set"
        return None
    return value + offset.days * SECONDS_PER_DAY + offset.seconds
