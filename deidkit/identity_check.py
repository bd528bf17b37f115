"""Does a header still look identified? Neutral reasons, never the values themselves.

Used by rename_folders (warnings in index.csv and on screen) and by deid_tool --verify.
Fail closed: a patient name or ID counts as a pseudonym only when it has a recognisable
pseudonym shape; anything else that is present is reported.
"""
from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .contract import is_pseudonym

# Shapes other anonymizers write: a marker word, optionally followed by a number or code.
_MARKER_PSEUDONYM = re.compile(
    r"^(ANON|ANONYMOUS|ANONYMI[SZ]ED|ANONYMI[SZ]ATION|REMOVED|DE-?IDENTIFIED|DEID|PSEUDO|"
    r"PSEUDONYMI[SZ]ED|SUBJ|SUBJECT|CASE|RESEARCH|TRIAL)([-_ ^]*[A-Za-z0-9]*)$",
    re.IGNORECASE,
)
# A bare hash or UUID (hex with at least one letter and one digit, 16+ characters).
_HASH_PSEUDONYM = re.compile(r"^(?=.*[0-9])(?=.*[a-fA-F])[0-9a-fA-F-]{16,}$")

# Attributes the Basic Profile always removes (X): any value left is a sign of identity.
_ALWAYS_REMOVED = {
    "OtherPatientIDsSequence": "other patient IDs present",
    "OtherPatientNames": "other patient names present",
    "PatientAddress": "patient address present",
    "PatientTelephoneNumbers": "patient telephone number present",
    "PatientMotherBirthName": "patient's mother's birth name present",
    "PatientBirthName": "patient birth name present",
    "MedicalRecordLocator": "medical record locator present",
}


def looks_like_pseudonym(value: str) -> bool:
    """True when a patient name/ID value has the shape of a pseudonym (deidkit's or a marker)."""
    text = str(value).strip().strip("^").strip()
    if not text:
        return True  # empty is not identifying
    # deid_tool's own shape comes from the delivery contract (any prefix settings.ini allows)
    return bool(is_pseudonym(text) or _MARKER_PSEUDONYM.match(text)
                or _HASH_PSEUDONYM.match(text))


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a value pydicom cannot decode is still a value: report it
        return "?"
    if value is None:
        return ""
    if isinstance(value, Sequence):
        return "item" if len(value) else ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def identity_warnings(ds: Dataset) -> list[str]:
    """Neutral reasons why this header still looks identified; [] when it looks de-identified."""
    reasons: list[str] = []
    removed = _text(ds, "PatientIdentityRemoved").strip().upper()
    if "PatientIdentityRemoved" not in ds:
        reasons.append("Patient Identity Removed (0012,0062) absent")
    elif removed != "YES":
        reasons.append("Patient Identity Removed (0012,0062) is not YES")
    name = _text(ds, "PatientName")
    if name.strip() and not all(looks_like_pseudonym(part) for part in name.split("=")):
        reasons.append("patient name present and not a pseudonym")
    patient_id = _text(ds, "PatientID")
    if patient_id.strip() and not looks_like_pseudonym(patient_id):
        reasons.append("patient ID present and not a pseudonym")
    for keyword, reason in _ALWAYS_REMOVED.items():
        if keyword in ds and _text(ds, keyword).strip():
            reasons.append(reason)
    return reasons
