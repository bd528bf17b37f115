"""The last net before a file is written: is one of the patient's own identifiers still in the
header bytes, in the file's character sets? (Rule 3: a hit holds the file back.)"""
from __future__ import annotations

import copy
import functools
import re

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from . import dicomio
from .sweep import Identifiers, short_numbers

# What the tool itself writes into every header (De-identification Method and its codes, Patient
# Identity Removed, Longitudinal Temporal Information Modified; the file meta's implementation
# name): their words ("Basic", "Profile", "Longitudinal", "Patient", "DEIDKIT") are not the patient's.
OWN_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})


def header_leaks(data: bytes, identifiers: Identifiers, ds: Dataset) -> bool:
    """Last net: is one of the patient's own identifiers in the header bytes (all of them)?

    A hit is searched again in the element values without the tool's own attributes (OWN_TAGS,
    file meta), so a patient named Long, Basic or Patient is not held for the tool's words; a hit
    there once more without the IS/DS numbers of 5 digits or fewer, at any depth, that the sweep
    keeps (sweep.short_numbers: Instance Number 160 in a study whose Study ID is 160)."""
    if not identifier_in_header(data, identifiers, ds):
        return False
    if not identifier_in_header(dicomio.header_search_bytes(ds, leave_out=OWN_TAGS), identifiers, ds):
        return False
    return identifier_in_header(dicomio.header_search_bytes(_without_short_numbers(ds), leave_out=OWN_TAGS),
                                identifiers, ds)


def _without_short_numbers(ds: Dataset) -> Dataset:
    """A copy of ds without its IS/DS elements whose every value is a short number (any depth)."""
    view = copy.deepcopy(ds)
    short: list[tuple[Dataset, int]] = []

    def collect(item: Dataset, elem: DataElement) -> None:
        if elem.VR in ("IS", "DS") and elem.value not in (None, "") and short_numbers(
                "\\".join(str(v) for v in (elem.value if elem.VM > 1 else [elem.value]))):
            short.append((item, elem.tag))

    view.walk(collect)
    for item, tag in short:
        del item[tag]
    return view


def identifier_in_header(data: bytes, identifiers: Identifiers, ds: Dataset) -> bool:
    """Search header bytes for the patient's own identifiers, in the file's character sets."""
    encodings = ["ascii", "latin-1", "utf-8"]
    charset = ds.get("SpecificCharacterSet")
    if charset:
        from pydicom.charset import convert_encodings

        values = charset if isinstance(charset, (list, tuple)) else [charset]
        try:
            encodings += [e for e in convert_encodings(list(values)) if e not in encodings]
        except Exception:
            pass
    patterns, others = needle_search(tuple(identifiers.encoded_needles(encodings)))
    if patterns:
        lowered = data.lower()  # ASCII letters only, as re.IGNORECASE on bytes
        if any(pattern.search(lowered) for pattern in patterns):
            return True
    return any(needle in data for needle in others)


@functools.lru_cache(maxsize=256)
def needle_search(needles: tuple[bytes, ...]) -> tuple[tuple[re.Pattern, ...], tuple[bytes, ...]]:
    """(one search per ASCII needle, for the lower-cased header; the other needles as they are).

    Each ASCII needle matches as a whole word in any case: no ASCII letter or digit either side.
    The pattern starts with the needle itself, so re finds candidates with its fast literal scan,
    and looks behind over the needle for the left boundary. One alternation of all needles with a
    leading lookbehind (what this replaced) tried every needle at every position: ten times slower
    on a typical header, the same answers (tests/test_export_speedups.py). The files of one patient
    share their needles: compiled once per patient, not per file."""
    ascii_needles = sorted({n.lower() for n in needles if n.isascii()})
    patterns = tuple(re.compile(re.escape(n) + rb"(?<![a-z0-9]" + re.escape(n) + rb")(?![a-z0-9])")
                     for n in ascii_needles)
    return patterns, tuple(n for n in needles if not n.isascii())
