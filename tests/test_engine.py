"""The action engine: each action code, options, sequences, private data, character sets."""
from __future__ import annotations

import dataclasses
from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from helpers import engine_context
from deidkit import engine
from deidkit.guidelines import resolve_combined

KEY = b"k" * 32


def _ctx(guidelines, **settings_changes):
    return engine_context(guidelines, KEY, **settings_changes)


def _ct() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5.6.7"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SeriesInstanceUID = "1.2.3.4.5.6"
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "MRN1234567"
    ds.PatientBirthDate = "19610203"
    ds.PatientAge = "061Y"
    ds.PatientSex = "M"
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.InstitutionName = "St. Example"
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.StudyDescription = "CT CHEST W/O CONTRAST DOE"
    ds.ImageComments = "called 555 0100 2345"
    ds.AccessionNumber = "ACC9876543"
    return ds


def test_codes_x_z_k_c_u_under_default_profile(guidelines):
    ds = _ct()
    result = engine.deidentify(ds, _ctx(guidelines))
    assert "InstitutionName" not in ds                                    # X
    assert ds.AccessionNumber == ""                                      # Z
    assert ds.PatientBirthDate == ""                                     # Z
    assert ds.PatientName == ds.PatientID == result.pseudonym            # Z with pseudonym
    assert ds.PatientAge == "061Y" and ds.PatientSex == "M"              # K (patient characteristics)
    assert ds.StudyDescription == "CT CHEST W/O CONTRAST"                # C: the name went
    assert ds.StudyDate != "20240115" and len(ds.StudyDate) == 8         # C: date shifted
    assert ds.StudyTime != "101500" and len(ds.StudyTime) == 6           # C: time shifted with its date
    assert ds.SOPInstanceUID.startswith("2.25.") and ds.StudyInstanceUID.startswith("2.25.")  # U
    assert ds.ImageComments == "called"                                  # C: the phone number went, the word stays
    assert ds.Modality == "CT" and ds.Manufacturer == "SIEMENS"          # not in the table: kept
    assert ds.PatientIdentityRemoved == "YES"
    codes = {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert {"113100", "113107", "113105", "113108", "113111", "113103"} <= codes
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_basic_profile_without_options(guidelines):
    ctx = _ctx(guidelines, retain_patient_characteristics=False, retain_long_modified_dates=False,
               clean_descriptors=False)
    ds = _ct()
    engine.deidentify(ds, ctx)
    assert "PatientAge" not in ds            # X without the option
    assert ds.StudyDate == ""                # Z
    assert "StudyDescription" not in ds      # X
    assert ds.PatientSex == ""               # Z


def test_full_dates_and_retain_uids_options(guidelines):
    ctx = _ctx(guidelines, retain_long_modified_dates=False, retain_long_full_dates=True, retain_uids=True)
    ds = _ct()
    engine.deidentify(ds, ctx)
    assert ds.StudyDate == "20240115"
    assert ds.SOPInstanceUID == "1.2.3.4.5.6.7"


def test_device_and_institution_options(guidelines):
    ds = _ct()
    ds.DeviceSerialNumber = "SN12345"
    ds.StationName = "CT01"
    engine.deidentify(ds, _ctx(guidelines, retain_device_identity=True, retain_institution_identity=True))
    assert ds.DeviceSerialNumber == "SN12345" and ds.StationName == "CT01"
    assert ds.InstitutionName == "St. Example"
    ds2 = _ct()
    ds2.DeviceSerialNumber = "SN12345"
    engine.deidentify(ds2, _ctx(guidelines))
    assert "DeviceSerialNumber" not in ds2


def test_d_gives_dummy_and_sequences_are_walked(guidelines):
    ds = _ct()
    ds.ContentCreatorName = "HOUSE^GREGORY"  # Z/D -> Z (Type 2)
    ds.VerifyingObserverName = "WILSON^JAMES"  # D
    item = Dataset()
    item.RequestedProcedureDescription = "CT CHEST for DOE"
    item.ScheduledPerformingPhysicianName = "CUDDY^LISA"
    item.RequestedProcedureID = "RP778899"
    inner = Dataset()
    inner.PatientID = "MRN1234567"
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7"
    item.ReferencedStudySequence = Sequence([inner])
    ds.RequestAttributesSequence = Sequence([item])
    engine.deidentify(ds, _ctx(guidelines))
    assert ds.ContentCreatorName == ""
    assert ds.VerifyingObserverName == "ANONYMIZED"
    text = str(ds)
    for secret in ("DOE", "CUDDY", "RP778899", "MRN1234567", "1.2.3.4.5.6.7"):
        assert secret not in text


def test_uid_mapping_keeps_references_consistent(guidelines):
    a, b = _ct(), _ct()
    b.SOPInstanceUID = "1.2.3.4.5.6.8"
    ref = Dataset()
    ref.ReferencedSOPClassUID = a.SOPClassUID
    ref.ReferencedSOPInstanceUID = a.SOPInstanceUID
    b.ReferencedImageSequence = Sequence([ref])
    engine.deidentify(a, _ctx(guidelines))
    engine.deidentify(b, _ctx(guidelines))
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered: kept
    assert a.StudyInstanceUID == b.StudyInstanceUID


def test_private_attributes_removed_except_safe_list(guidelines):
    ds = _ct()
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "LO", "DOE^JOHN")
    safe = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    safe.add_new(0x0C, "IS", "1000")
    ds.add_new(0x00111010, "LO", "orphan without creator")
    engine.deidentify(ds, _ctx(guidelines))
    assert 0x00291010 not in ds and 0x00290010 not in ds
    assert ds[0x0019100C].value == 1000 and ds[0x00190010].value == "SIEMENS MR HEADER"
    assert 0x00111010 not in ds
    ds2 = _ct()
    safe = ds2.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    safe.add_new(0x0C, "IS", "1000")
    engine.deidentify(ds2, _ctx(guidelines, retain_safe_private=False))
    assert not any(e.tag.is_private for e in ds2)


def test_overlays_and_curves_removed(guidelines):
    ds = _ct()
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60003000, "OW", b"\x01" * 8)
    ds.add_new(0x60004000, "LT", "DOE")
    ds.add_new(0x50000005, "US", 1)
    engine.deidentify(ds, _ctx(guidelines))
    assert not any(e.tag.group in (0x6000, 0x5000) for e in ds)


def test_own_identifier_sweep_catches_kept_values(guidelines):
    ds = _ct()
    ds.SeriesDescription = "AX LUNG"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.BodyPartExamined = "CHEST"
    ds.add_new(0x00181020, "LO", "VA40 for Mueller")  # Software Versions: not in the table
    ds.PatientName = "MÜLLER^JÜRGEN"
    engine.deidentify(ds, _ctx(guidelines))
    assert "SoftwareVersions" not in ds        # swept: Mueller = Müller
    assert ds.SeriesDescription == "AX LUNG" and ds.BodyPartExamined == "CHEST"


@pytest.mark.parametrize("charset,name", [
    ("ISO_IR 100", "MÜLLER^JÜRGEN"),
    ("ISO_IR 192", "Иванова^Анна"),
    ("\\ISO 2022 IR 87", "ヤマダ^タロウ=山田^太郎=やまだ^たろう"),
])
def test_character_sets_round_trip(guidelines, charset, name):
    ds = _ct()
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    family = name.split("=")[-1].split("^")[0]
    ds.StudyDescription = f"CT CHEST {family}"
    ds.SeriesDescription = "AX LUNG"
    engine.deidentify(ds, _ctx(guidelines))
    ds.file_meta = engine.new_file_meta(ds, pydicom.uid.ExplicitVRLittleEndian)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = pydicom.dcmread(BytesIO(buf.getvalue()))
    assert back.SeriesDescription == "AX LUNG"
    assert back.StudyDescription == "CT CHEST"
    for part in name.replace("=", "^").split("^"):
        for enc in ("utf-8", "latin-1", "iso2022_jp"):
            try:
                needle = part.encode(enc)
            except UnicodeEncodeError:
                continue
            assert needle.replace(b"\x1b$B", b"").replace(b"\x1b(B", b"") not in buf.getvalue()


def test_structured_reports_and_documents_are_held(guidelines):
    sr = _ct()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "free text"
    sr.ContentSequence = Sequence([item])
    without_csc = dataclasses.replace(guidelines, settings=dataclasses.replace(
        guidelines.settings, options=guidelines.settings.options - {"clean_structured_content"}))
    assert engine.hold_reason_for(sr, without_csc) == "structured report with free text"
    assert engine.hold_reason_for(sr, guidelines) is None  # Clean Structured Content (default) cleans it
    pdf = _ct()
    pdf.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    assert "encapsulated document" in engine.hold_reason_for(pdf, guidelines)
    assert engine.hold_reason_for(_ct(), guidelines) is None


def test_combined_code_resolution():
    assert resolve_combined("X/Z", "2") == "Z"
    assert resolve_combined("X/Z", "3") == "X"
    assert resolve_combined("Z/D", "1") == "D"
    assert resolve_combined("X/D", "1") == "D"
    assert resolve_combined("X/Z/D", None) == "Z"
    assert resolve_combined("X/D", None) == "X"
    assert resolve_combined("X/Z/U*", None) == "U"
    assert resolve_combined("K", None) == "K"


def test_iod_specific_type_changes_the_choice(guidelines):
    assert guidelines.action_for(0x00181000, "1.2.840.10008.5.1.4.1.1.2") == "X"      # CT: Type 3
    assert guidelines.action_for(0x00181000, "1.2.840.10008.5.1.4.1.1.2.1") == "D"    # Enhanced CT: Type 1


def test_file_meta_is_rebuilt(guidelines):
    ds = _ct()
    engine.deidentify(ds, _ctx(guidelines))
    meta = engine.new_file_meta(ds, pydicom.uid.ExplicitVRLittleEndian)
    assert isinstance(meta, FileMetaDataset)
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in meta
