"""The de-identification attributes and the new file meta (PS3.15 E.1.1, PS3.10 7.1).

Patient Identity Removed, De-identification Method (and its code sequence, CID 7050), Longitudinal
Temporal Information Modified, the notes added after the pixels were checked, and file meta
rebuilt from scratch (no source AE title; Media Storage UIDs that match the dataset).
"""
from __future__ import annotations

import re
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from . import __version__
from .descriptors import clean_descriptor
from .guidelines import OPTION_CODES, OPTIONS
from .engine_context import Context


IMPLEMENTATION_CLASS_UID = "2.25.118750309125961335283633787036497431621"
IMPLEMENTATION_VERSION = "DEIDKIT_" + __version__.replace(".", "_")


# ---- de-identification attributes and file meta ------------------------------------------------

def _set_deidentification_attributes(ds: Dataset, ctx: Context) -> None:
    g = ctx.guidelines
    _set_keyword(ds, 0x00120062, "CS", "YES")  # Patient Identity Removed
    applied = ["basic"] + [o for o in OPTIONS if o in g.settings.options]
    earlier_methods, earlier_items = _earlier_history(ds, ctx)
    _set_keyword(ds, 0x00120063, "LO", [*earlier_methods, f"deidkit {__version__}",  # Method
                                         f"PS3.15 {g.edition} Table E.1-1", *applied, f"table sha256 {g.sha256[:16]}"])
    # a Dataset made from its elements directly: setting them one by one costs more than the rest
    items = earlier_items + [Dataset(dict(_code_item_elements(key))) for key in applied]
    _set_keyword(ds, 0x00120064, "SQ", Sequence(items))  # De-identification Method Code Sequence
    if ctx.dates_shifted:
        _set_keyword(ds, _LONGITUDINAL, "CS", "MODIFIED")
    elif "retain_long_full_dates" in g.settings.options:
        _set_keyword(ds, _LONGITUDINAL, "CS", "UNMODIFIED")
    elif _LONGITUDINAL in ds:
        _set_keyword(ds, _LONGITUDINAL, "CS", "REMOVED")


_CODE_VALUE, _CODING_SCHEME, _CODE_MEANING = BaseTag(0x00080100), BaseTag(0x00080102), BaseTag(0x00080104)
# CID 7050 codes an earlier de-identifier wrote that stay true of the pixels after this one and that
# --verify does not read as an option this run applied (verify.declared_options): the face was
# removed or replaced (dcm_qa_deident: mri_reface). Written again with the standard meaning.
EARLIER_CODES = {"113102": "Clean Recognizable Visual Features Option"}
# an earlier de-identifier's name and version as De-identification Method writes it ("mri_reface
# 0.3.4", "pydeface 2.0.2"): one technical token, without capitals (a capitalised word may be a
# person's name) unless it holds a digit, with a version, or alone when it holds _ or a digit
_TOOL_AND_VERSION = re.compile(r"(?=[a-z0-9_.+-]+ v?[0-9]|[^ ]*[0-9]|[a-z0-9.+-]*_[a-z0-9_.+-]*$)"
                               r"[A-Za-z][A-Za-z0-9_.+-]{1,31}(?: v?[0-9][0-9A-Za-z.+-]{0,15})?", re.ASCII)


def _earlier_history(ds: Dataset, ctx: Context) -> tuple[list[str], list[Dataset]]:
    """What an earlier de-identification wrote (PS3.3 C.7.1.1: De-identification Method is
    multi-valued when an object was de-identified more than once) that is kept before this run's
    values: each De-identification Method value that names a tool and its version
    (_TOOL_AND_VERSION, unchanged by Clean Descriptors, holding none of the patient's identifiers,
    no value this tool writes), and the EARLIER_CODES items of the code sequence. Nothing else: the
    last net and --verify read these attributes as the tool's own declaration (not free text)."""
    own = {PERSON_REVIEWED, "basic", *OPTIONS, *OPTION_CODES}
    methods: list[str] = []
    elem = ds.get(0x00120063)
    values = [] if elem is None or elem.value in (None, "") else [elem.value] if isinstance(elem.value, str) else elem.value
    for value in (str(v).strip() for v in values):
        if (value and value.lower() not in own and not value.lower().startswith(("deidkit", "ps3.15", "table sha256"))
                and value not in methods and _TOOL_AND_VERSION.fullmatch(value)
                and clean_descriptor(value, ctx.guidelines.vocabulary, ctx.identifiers) == value
                and not ctx.identifiers.find(value)):
            methods.append(value)
    items: list[Dataset] = []
    seq = ds.get(0x00120064)
    for item in (seq.value or []) if seq is not None and seq.VR == "SQ" else []:
        code = str(item.get("CodeValue", "") or "").strip()
        if code in EARLIER_CODES and str(item.get("CodingSchemeDesignator", "") or "").strip() == "DCM" and \
                not any(str(i.CodeValue) == code for i in items):
            items.append(Dataset({_CODE_VALUE: DataElement(_CODE_VALUE, "SH", code),
                                  _CODING_SCHEME: DataElement(_CODING_SCHEME, "SH", "DCM"),
                                  _CODE_MEANING: DataElement(_CODE_MEANING, "LO", EARLIER_CODES[code])}))
    return methods, items
_CODE_ITEMS: dict[str, tuple[tuple[BaseTag, DataElement], ...]] = {}


def _code_item_elements(option: str) -> tuple[tuple[BaseTag, DataElement], ...]:
    """The (tag, element) pairs of one De-identification Method Code Sequence item (CID 7050 code
    of the option: Code Value, Coding Scheme Designator DCM, Code Meaning), made once per worker:
    constants, never changed in place (add_clean_pixel_code adds an item of its own), so every
    file's item holds the same elements in a Dataset of its own."""
    pairs = _CODE_ITEMS.get(option)
    if pairs is None:
        code, meaning = OPTION_CODES[option]
        pairs = _CODE_ITEMS[option] = ((_CODE_VALUE, DataElement(_CODE_VALUE, "SH", code)),
                                       (_CODING_SCHEME, DataElement(_CODING_SCHEME, "SH", "DCM")),
                                       (_CODE_MEANING, DataElement(_CODE_MEANING, "LO", meaning)))
    return pairs
_LONGITUDINAL = BaseTag(0x00280303)  # Longitudinal Temporal Information Modified


def _set_keyword(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """What `ds.Keyword = value` does (vr is the keyword's dictionary VR), without the keyword
    lookup, nor pydicom's validation of the value: the tool's own values (with the tool's
    settings validation only warns, and warnings are ignored)."""
    tag = BaseTag(tag)
    if tag not in ds:
        elem = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    else:
        elem = ds[tag]
        elem.validation_mode = config.IGNORE
        elem.value = value
    ds[tag] = elem


PERSON_REVIEWED = "pixels reviewed by a person"  # a De-identification Method value (--verify reads it)


def add_method_note(ds: Dataset, note: str) -> None:
    """Add `note` (LO, at most 64 characters) once to De-identification Method (0012,0063)."""
    elem = ds.get(0x00120063)
    value = None if elem is None else elem.value
    values = [] if value in (None, "") else [str(value)] if isinstance(value, str) else [str(v) for v in value]
    if note not in values:
        _set_keyword(ds, 0x00120063, "LO", [*values, note])


def add_clean_pixel_code(ds: Dataset) -> None:
    """Record the Clean Pixel Data Option (CID 7050 113101) once pixels were checked."""
    code, meaning = OPTION_CODES["clean_pixel_data"]
    seq = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if any(getattr(i, "CodeValue", "") == code for i in seq):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
    seq.append(item)
    ds.DeidentificationMethodCodeSequence = seq


def new_file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    """File meta rebuilt from scratch: no source AE title, consistent Media Storage UIDs."""
    meta = FileMetaDataset()
    for tag, vr, value in ((0x00020002, "UI", ds.SOPClassUID), (0x00020003, "UI", ds.SOPInstanceUID),
                           (0x00020010, "UI", transfer_syntax), (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
                           (0x00020013, "SH", IMPLEMENTATION_VERSION)):
        _set_keyword(meta, tag, vr, value)  # Media Storage SOP Class/Instance UID, Transfer Syntax, ...
    return meta
