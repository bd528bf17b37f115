"""The per-dataset action engine: dataset + guideline table + keyed mapping in, findings out.

`deidentify(ds, context)` applies Table E.1-1 (as resolved by deidkit.guidelines) to every element,
through every nested sequence, to masked groups and private data, then runs the own-identifier
sweep and sets the de-identification attributes. It changes `ds` in place (callers pass a copy
read for the purpose) and does no I/O. Pixel data is not its business (deidkit.pixels).

Where the table is silent the engine fails closed, as README.txt documents:
  person names (PN) are emptied; dates (DA/DT) are shifted like the table's own dates (or emptied);
  UIDs (UI) that are not registered DICOM UIDs are remapped; text inside a sequence that is being
  cleaned is cleaned too; everything else is kept and swept for the patient's own identifiers.
Public text attributes the table does not list follow guidelines/unlisted_text_attributes.csv; free
text in content items and labels goes through deidkit.content / deidkit.text_clean.

This module conducts (deidentify) and decides whether an object is held back whole
(hold_reason_for); the steps live in modules of one concern, re-exported here so callers keep
importing engine: deidkit.engine_context (Context, EngineResult, element helpers),
deidkit.engine_walk (the table walk), deidkit.engine_dates (dates, times, ages),
deidkit.engine_private (private attributes), deidkit.engine_sweep (the last sweep),
deidkit.engine_memo (remembered text answers), deidkit.engine_attributes (de-identification
attributes and file meta).
"""
from __future__ import annotations

import unicodedata
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from . import content
from .guidelines import Guidelines
from .mapping import patient_key_of
from .sweep import Identifiers, glued_to_letters, learn_name
from .engine_attributes import IMPLEMENTATION_CLASS_UID as IMPLEMENTATION_CLASS_UID
from .engine_attributes import IMPLEMENTATION_VERSION as IMPLEMENTATION_VERSION
from .engine_attributes import PERSON_REVIEWED as PERSON_REVIEWED
from .engine_attributes import _set_deidentification_attributes as _set_deidentification_attributes
from .engine_attributes import _set_keyword as _set_keyword
from .engine_attributes import add_clean_pixel_code as add_clean_pixel_code
from .engine_attributes import add_method_note as add_method_note
from .engine_attributes import new_file_meta as new_file_meta
from .engine_context import BINARY_VRS as BINARY_VRS
from .engine_context import DICOM_UID_ROOT as DICOM_UID_ROOT
from .engine_context import FREE_TEXT_VRS as FREE_TEXT_VRS
from .engine_context import NUMBER_VRS as NUMBER_VRS
from .engine_context import PIXEL_TAGS as PIXEL_TAGS
from .engine_context import SOP_CLASS_UID_TAGS as SOP_CLASS_UID_TAGS
from .engine_context import TEXT_VRS as TEXT_VRS
from .engine_context import Context as Context
from .engine_context import EngineResult as EngineResult
from .engine_context import Finding as Finding
from .engine_context import _note as _note
from .engine_context import _str_values as _str_values
from .engine_context import tag_text as tag_text
from .engine_context import uid_is_kept as uid_is_kept
from .engine_dates import AGE_CAP_YEARS as AGE_CAP_YEARS
from .engine_dates import DATE_TIME_PAIRS as DATE_TIME_PAIRS
from .engine_dates import _REFERENCE_DATES as _REFERENCE_DATES
from .engine_dates import _check_birth_date as _check_birth_date
from .engine_memo import _TEXT_MEMOS as _TEXT_MEMOS
from .engine_memo import _holds_identifier as _holds_identifier
from .engine_memo import _text_memo as _text_memo
from .engine_private import _private_creators as _private_creators
from .engine_private import clean_physio_in_spectroscopy
from .engine_sweep import _sweep as _sweep
from .engine_sweep import _sweep_raw as _sweep_raw
from .engine_walk import _drop_orphan_overlays as _drop_orphan_overlays
from .engine_walk import _process_dataset as _process_dataset


SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."


def action_counts(result: EngineResult, pruned: tuple[tuple[int, str], ...] = ()) -> dict[str, int]:
    """What was done to one file's elements as "ACTION reason" -> count (no tag, no value: fit
    for the hospital-side run log): the engine's counts plus the elements dicomio.read_header
    pruned before conversion (deidkit.rawheader: X, with the engine's reasons)."""
    out = {f"{action} {reason}": n for (action, reason), n in sorted(result.counts.items())}
    for _, reason in pruned:
        key = f"X {reason}"
        out[key] = out.get(key, 0) + 1
    return out


def hold_reason_for(ds: Dataset, guidelines: Guidelines) -> str | None:
    """Objects held back whole, whatever their header (fail closed on free-text documents)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    settings = guidelines.settings
    if sop_class.startswith(DOCUMENT_PREFIX) and settings.hold_encapsulated_documents:
        return "encapsulated document (PDF/CDA): free text cannot be checked"
    if sop_class.startswith(SR_PREFIX) and settings.hold_structured_reports:
        # with Clean Structured Content every content item is cleaned (deidkit.content); a
        # document whose text still looks risky is held for review after cleaning
        if "clean_structured_content" not in settings.options and _has_free_text_items(ds):
            return "structured report with free text"
    return None


def damaged_name_reason(name: str) -> str | None:
    """A hold reason when the Patient's Name holds characters no name has (control characters,
    undecodable bytes, a symbol between its first letters: sweep.glued_to_letters): damage there
    means the sweep cannot know the name it must find in the rest of the header (a comment
    spelling it right goes out). Fail closed (rule 2)."""
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") or c == "\ufffd" for c in name.rstrip("\0 ")) \
            or glued_to_letters(name):  # "OT#$OLINE": no stem of the name is left to learn
        return "corrupt: the patient's name holds characters no name has (damaged?)"
    return None


def _has_free_text_items(ds: Dataset) -> bool:
    for elem in ds.iterall():
        if elem.tag == 0x0040A040 and str(elem.value).upper() in ("TEXT", "PNAME"):
            return True
    return False


def deidentify(ds: Dataset, ctx: Context) -> EngineResult:
    """Apply the guideline table to ds in place; returns the findings and any hold reason."""
    ctx.sop_class = str(ds.get("SOPClassUID", ""))
    hold = None if ctx.hold_checked else hold_reason_for(ds, ctx.guidelines)
    patient_key = patient_key_of(str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""), str(ds.get("PatientBirthDate", "") or ""),
                                 str(ds.get("StudyInstanceUID", "") or ""))
    ctx.pseudonym = ctx.mapper.patient_pseudonym(patient_key)
    ctx.patient_name = str(ds.get("PatientName", "") or "")
    hold = hold or damaged_name_reason(ctx.patient_name)
    ctx.moment_offset = ctx.mapper.moment_offset(patient_key)
    ctx.date_offset = ctx.moment_offset.days
    ctx.identifiers.merge(_identifiers_of(ds, ctx))
    ctx.identifiers.known_words = ctx.guidelines.vocabulary  # never read as a misspelt name
    ctx.text_memo = _text_memo(ctx.identifiers)
    _process_dataset(ds, ctx, "", cleaning=False)
    clean_physio_in_spectroscopy(ds, ctx)
    ctx.pair_times.clear()
    _drop_orphan_overlays(ds, ctx)
    _check_birth_date(ds, ctx)
    _sweep(ds, ctx, "")
    _set_deidentification_attributes(ds, ctx)
    hold = hold or content.review_hold(ctx.findings)
    return EngineResult(ds, ctx.findings, hold, ctx.pseudonym, ctx.date_offset, ctx.counts)


# ---- the walk ----------------------------------------------------------------------------------

# sequences Identifiers.from_dataset reads by keyword (Other Patient IDs, Patient's Insurance Plan Code)
_IDENTIFIER_SEQUENCES = frozenset({0x00101002, 0x00100050})


def _identifiers_of(ds: Dataset, ctx: Context) -> Identifiers:
    """Identifiers.from_dataset(ds), without converting the elements left raw (deidkit.rawkeep):
    they are never what it learns from (no PN, no name, no attribute it reads by keyword).
    When items hold raw elements, the names in sequences are learned as rawheader learns them
    for a pruned sequence (_harvest_names: PN, Patient's Name in another VR, private elements
    named as a person's name: the elements from_dataset's walk learns names from)."""
    if not ctx.raw_kept and not ctx.raw_nested:
        return Identifiers.from_dataset(ds)
    from .rawheader import _harvest_names

    view: dict[Any, Any] = {}
    names: list[str] = []
    for tag, elem in ds.items():
        if type(elem) is RawDataElement and tag.real in ctx.raw_kept:
            continue
        if ctx.raw_nested and isinstance(elem, DataElement) and elem.VR == "SQ" and tag.real not in _IDENTIFIER_SEQUENCES:
            _harvest_names(elem, names)
            continue
        view[tag] = elem
    identifiers = Identifiers.from_dataset(Dataset(view), terms_from=ds)
    for name in names:
        learn_name(identifiers, name)
    return identifiers
