"""identity_warnings: neutral reasons why a header still looks identified."""
from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from deidkit.identity_check import identity_warnings, looks_like_pseudonym


def header(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_raw_header_gives_every_reason_without_values():
    ds = header(PatientName="MÜLLER^JÜRGEN", PatientID="4711081542", PatientAddress="Königsallee 5",
                PatientTelephoneNumbers="0211 5550199", OtherPatientNames="MUELLER^J")
    reasons = identity_warnings(ds)
    assert "Patient Identity Removed (0012,0062) absent" in reasons
    assert "patient name present and not a pseudonym" in reasons
    assert "patient ID present and not a pseudonym" in reasons
    assert {"patient address present", "patient telephone number present", "other patient names present"} <= set(reasons)
    text = " ".join(reasons)
    for value in ("MÜLLER", "JÜRGEN", "4711081542", "Königsallee", "5550199", "MUELLER"):
        assert value not in text


def test_deidentified_header_is_clean():
    ds = header(PatientName="SUBJ_ABCDEFGH23", PatientID="SUBJ_ABCDEFGH23", PatientIdentityRemoved="YES")
    assert identity_warnings(ds) == []


def test_empty_name_and_id_are_not_identifying_but_flag_still_required():
    assert identity_warnings(header(PatientName="", PatientID="")) == ["Patient Identity Removed (0012,0062) absent"]
    assert identity_warnings(header(PatientIdentityRemoved="NO")) == ["Patient Identity Removed (0012,0062) is not YES"]


def test_flag_yes_does_not_excuse_a_real_name():
    ds = header(PatientName="DOE^JOHN", PatientID="ANON0001", PatientIdentityRemoved="YES")
    assert identity_warnings(ds) == ["patient name present and not a pseudonym"]


def test_empty_sequence_is_not_a_value_but_an_item_is():
    ds = header(PatientIdentityRemoved="YES")
    ds.OtherPatientIDsSequence = []
    assert identity_warnings(ds) == []
    item = Dataset()
    item.PatientID = "MRN1"
    ds.OtherPatientIDsSequence = [item]
    assert identity_warnings(ds) == ["other patient IDs present"]


@pytest.mark.parametrize("value", ["SUBJ_ABCDEFGH23", "SITE7_QWERTY2345", "ANON", "Anonymous", "ANON_0012",
                                   "SUBJECT 17", "CASE-0042", "RESEARCH^0001", "3f2a9c0d8e7b6a5f4e3d",
                                   "0b6f4a1c-2d3e-4f50-9a8b-7c6d5e4f3a2b", "", "^"])
def test_pseudonym_shapes(value):
    assert looks_like_pseudonym(value)


@pytest.mark.parametrize("value", ["DOE^JOHN", "MRN1234567", "4711081542", "Иванова^Анна", "山田^太郎",
                                   "SMITH_JOHN", "RU-00077", "1234567890123456789", "PAT0012345"])
def test_identifying_shapes(value):
    assert not looks_like_pseudonym(value)
