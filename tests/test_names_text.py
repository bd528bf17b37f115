"""Issue 12 kinds 3 and 5, issue 20 item 7: the patient's own identifiers in forms the sweep did
not learn, removals that would point at the patient, and text in attributes the table does not list."""
from __future__ import annotations


import pytest
from pydicom import dcmread
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from helpers import engine_context
from deidkit import engine
from deidkit import guidelines as gl
from deidkit.sweep import Identifiers

KEY = b"N" * 32
TEXT_VRS = {"LO", "LT", "SH", "ST", "UT", "UC", "PN"}


def _ctx(guidelines, **options):
    return engine_context(guidelines, KEY, **options)


def _ct(name: str = "QUILLFEATHERSTONE^MAREN") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.88.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.88.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.88.3"
    ds.PatientName = name
    ds.PatientID = "PT0099881"
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    return ds


def _values(ds: Dataset) -> str:
    return "\n".join(str(e.value) for e in ds.iterall() if e.VR != "SQ")


# ---- kind 3: the patient's name in forms the sweep did not learn --------------------------------

def test_patient_name_with_vr_lo_is_learned(guidelines):
    ds = _ct()
    del ds.PatientName
    ds[0x00100010] = DataElement(0x00100010, "LO", "VINTERSKOV^ELLEN")
    ds.add_new(0x00181020, "LO", "VA40 Vinterskov")  # Software Versions: kept, swept
    ds.add_new(0x00204000, "LT", "Ellen Vinterskov arrived late")  # Image Comments
    engine.deidentify(ds, _ctx(guidelines))
    assert "vinterskov" not in _values(ds).lower()


def test_patient_name_read_as_un_is_learned(guidelines):
    ds = _ct()
    del ds.PatientName
    ds[0x00100010] = DataElement(0x00100010, "UN", b"VINTERSKOV^ELLEN")
    ids = Identifiers.from_dataset(ds)
    assert ids.find("vinterskov") == ["name"]


def test_other_patient_names_and_private_patient_name_are_learned(tmp_path):
    ds = _ct()
    ds.OtherPatientNames = ["BIRKEGAARD^ELLEN"]
    assert Identifiers.from_dataset(ds).find("Birkegaard") == ["name"]
    # a private element pydicom's private dictionary names as the patient's name, written as LO
    ds = _ct()
    block = ds.private_block(0x0013, "SIEMENS CM VA0  CMS", create=True)
    block.add_new(0x20, "LO", "HOLMEGAARD^ELLEN")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "p.dcm", enforce_file_format=True)
    read = dcmread(tmp_path / "p.dcm")
    assert read[0x00131020].VR == "LO"
    assert Identifiers.from_dataset(read).find("Holmegaard") == ["name"]


@pytest.mark.parametrize("text", [
    "QUILLFEAT 86597",                 # 16-character field: the first 9 letters plus digits
    "CT THORAX ROUTINE QUILLFEATH 436",
    "Quillfeatherstones",
    "Quill featherstone",              # split differently
    "Quill-Featherstone",
    "MAREN QUILLFEATHERSTONE",
    "marenquillfeatherstone",          # joined
    "MrQuillfeatherstone",             # glued after a title (issue 20 item 7)
    "FrauQuillfeatherstone",
    "FRAUQUILLFEATHERSTONE",
    "Quïllfeathërstone",               # accents
])
def test_truncated_joined_split_and_glued_forms_are_found(text):
    ids = Identifiers.from_dataset(_ct())
    assert "name" in ids.find(text)


@pytest.mark.parametrize("text", ["QUIL 1234", "Quillo", "FEATHER", "ROUTINE CHEST"])
def test_short_or_different_words_are_not_the_name(text):
    ids = Identifiers.from_dataset(_ct())
    assert ids.find(text) == []


def test_glued_surname_removed_from_free_text(guidelines):
    ds = _ct("QUISTGAARD^JENS")
    ds.ImageComments = "MrQuistgaard tolerated contrast"
    ds.add_new(0x00181020, "LO", "FrauQuistgaard")
    engine.deidentify(ds, _ctx(guidelines))
    assert "quistgaard" not in _values(ds).lower()


def test_truncated_name_in_a_code_meaning_is_removed(guidelines):
    ds = _ct()
    code = Dataset()
    code.CodeValue = "X1"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodeMeaning = "CT ABDOMEN ROUTINE QUILLFEATH 436"
    ds.PerformedProtocolCodeSequence = Sequence([code])
    ds.add_new(0x00181030, "LO", "QUILLFEAT 86597")  # Protocol Name
    engine.deidentify(ds, _ctx(guidelines))
    assert "quillfeat" not in _values(ds).lower()


# ---- kind 3: a removal must not itself reveal a name -----------------------------------------------

def test_device_model_and_body_part_kept_when_they_only_share_a_word_with_the_name(guidelines):
    ds = _ct("SOLA^FOOT")
    ds.ManufacturerModelName = "MAGNETOM Sola"
    ds.BodyPartExamined = "FOOT"
    ds.ImageComments = "Sola follow-up"
    ctx = _ctx(guidelines)
    engine.deidentify(ds, ctx)
    assert ds.ManufacturerModelName == "MAGNETOM Sola"   # other patients keep it too
    assert ds.BodyPartExamined == "FOOT"
    assert "ImageComments" not in ds or "Sola" not in str(ds.ImageComments)
    # the written-header search must not hold the file for the kept model name
    assert "sola" in ctx.identifiers.term_tokens
    needles = ctx.identifiers.encoded_needles(["ascii"])
    assert b"sola" not in {n.lower() for n in needles}


def test_a_value_that_is_only_the_name_still_goes(guidelines):
    ds = _ct("PRISMAVEJ^ANNA")
    ds.ManufacturerModelName = "PRISMAVEJ"        # whole value is the name: removed
    ds.add_new(0x00181020, "LO", "VA40 for Prismavej")  # a phrase, not a product name
    engine.deidentify(ds, _ctx(guidelines))
    assert "prismavej" not in _values(ds).lower()


def test_identifiers_are_never_forgiven_as_terms(guidelines):
    ds = _ct("SOLA^FOOT")
    ds.ManufacturerModelName = "MAGNETOM PT0099881"
    engine.deidentify(ds, _ctx(guidelines))
    assert "PT0099881" not in _values(ds)


# ---- kind 5: free text the table does not list ----------------------------------------------------

def test_every_public_text_attribute_outside_the_table_is_decided(guidelines):
    missing = [f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {kw}" for tag, (vr, _vm, _n, _r, kw) in DicomDictionary.items()
               if vr in TEXT_VRS and kw and guidelines.rule_for(tag) is None and tag not in guidelines.unlisted_text]
    assert missing == []
    rows = guidelines.unlisted_text
    assert all(r.reason for r in rows.values())
    assert rows[0x30020020].action == "X" and rows[0x30020020].kept_by == "retain_device_identity"
    assert rows[0x0040A160].action == "C"   # Text Value
    assert rows[0x00081090].action == "K"   # Manufacturer's Model Name
    assert rows[0x00100033].action == "X"   # Patient's Birth Date in Alternative Calendar


def test_radiation_machine_name_removed_unless_device_identity_kept(guidelines):
    ds = _ct()
    ds.RadiationMachineName = "TrueBeam_RH_3"
    engine.deidentify(ds, _ctx(guidelines))
    assert "RadiationMachineName" not in ds
    ds = _ct()
    ds.RadiationMachineName = "TrueBeam_RH_3"
    engine.deidentify(ds, _ctx(guidelines, retain_device_identity=True))
    assert ds.RadiationMachineName == "TrueBeam_RH_3"


def test_unlisted_free_text_loses_other_peoples_names_dates_phones(guidelines):
    ds = _ct()
    ds.OperatorsName = "Kjeldgaard^Sune"
    ds.add_new(0x00189908, "UC", "Protocol written by Sune Kjeldgaard 2023-02-01, tel +45 3545 9876")  # Protocol Design Rationale
    engine.deidentify(ds, _ctx(guidelines))
    value = str(ds.get(0x00189908).value) if 0x00189908 in ds else ""
    for secret in ("Kjeldgaard", "Sune", "2023-02-01", "3545 9876"):
        assert secret not in value
    assert value.startswith("Protocol written by")


def test_the_unlisted_table_is_validated_and_hashed(tmp_path):
    bundled = gl.bundled_dir()
    for f in gl.GUIDELINE_FILES:
        (tmp_path / f).write_text((bundled / f).read_text(encoding="utf-8"), encoding="utf-8")
    base = gl.load(tmp_path)
    text = (tmp_path / gl.UNLISTED_TEXT_FILE).read_text(encoding="utf-8")
    (tmp_path / gl.UNLISTED_TEXT_FILE).write_text(text.replace('"(3002,0020)",Radiation Machine Name,RadiationMachineName,SH,X,',
                                                               '"(3002,0020)",Radiation Machine Name,RadiationMachineName,SH,K,'),
                                                  encoding="utf-8")
    changed = gl.load(tmp_path)
    assert changed.sha256 != base.sha256 and changed.unlisted_text[0x30020020].action == "K"
    (tmp_path / gl.UNLISTED_TEXT_FILE).write_text(text.replace(",SH,X,retain_device_identity", ",SH,Q,retain_device_identity", 1),
                                                  encoding="utf-8")
    with pytest.raises(gl.GuidelineError, match="unlisted_text_attributes.csv line"):
        gl.load(tmp_path)


def test_identifying_text_planted_in_every_unlisted_attribute_goes(guidelines):
    ds = _ct("QUILLFEATHERSTONE^MAREN")
    planted = {}
    for tag, row in sorted(guidelines.unlisted_text.items()):
        if row.vr == "PN" or tag in ds or tag >> 16 == 0x0002:
            continue
        marker = f"PHI7X{tag:08X}Q"
        limit = {"SH": 16, "LO": 64}.get(row.vr, 200)
        ds.add_new(tag, row.vr, f"{marker} QUILLFEATHERSTONE PT0099881"[:limit] if row.vr != "SH" else marker[:16])
        planted[tag] = marker
    engine.deidentify(ds, _ctx(guidelines))
    written = _values(ds)
    assert "quillfeat" not in written.lower() and "PT0099881" not in written
    for tag, marker in planted.items():
        if guidelines.unlisted_text[tag].action != "K":  # kept coded values are swept, not cleaned
            assert marker[:16] not in written, guidelines.unlisted_text[tag].keyword


@pytest.mark.parametrize("text, kept, gone", [
    ("Field strength 3.000000 T", "3.000000", None),                # Siemens Phoenix SR TEXT item
    ("volume 12.345678 ml", "12.345678", None),
    ("ratio 0.123456; 1,234567 mm", "1,234567", None),
    ("call 030.1234567 today", None, "1234567"),                     # a phone number with a dot stays removed
    ("MRN 1234567 and ID 1.2.1234567", None, "1234567"),
    ("ref A12.7654321", None, "7654321"),
])
def test_free_text_keeps_decimals_and_still_removes_ids(text, kept, gone):
    """The fractional digits of a measurement are not an ID (was: '3.000000' -> '3.')."""
    from deidkit.sweep import Identifiers
    from deidkit.text_clean import clean_free_text

    ids = Identifiers(patient_name_known=True)
    ids.add_name("QUISTGAARD^ASTRID")
    out = clean_free_text(text, ids, None, gl.load().vocabulary).text
    if kept:
        assert kept in out and out == text
    if gone:
        assert gone not in out


# ---- a name written with a slip, or in CamelCase, elsewhere in the header -----------------------

@pytest.mark.parametrize("name, comment, gone", [
    # the name element took a damaged byte or a typo; the comment spells the name right
    ("ZEBRAFINUH^OTTOLINE", "Patient ZEBRAFINCH OTTOLINE ID PID77123", ("zebrafinch", "ottoline")),
    ("ZEBRAFINCH^OT\x82OLINE", "Patient ZEBRAFINCH OTTOLINE ID PID77123", ("zebrafinch", "ottoline")),
    # the comment has the slip: a letter dropped, one added, two swapped
    ("QUILLFEATHERSTONE^MAREN", "seen by Quilfeatherstone", ("quilfeatherstone",)),
    ("VINTERSKOV^ELLEN", "Ellen Vintersckov again", ("vintersckov",)),
    ("VINTERSKOV^ELLEN", "ms Vinetrskov", ("vinetrskov",)),
])
def test_a_name_one_slip_away_is_still_the_name(guidelines, name, comment, gone):
    ds = _ct(name)
    ds.PatientID = "PID77123"
    ds.ImageComments = comment
    engine.deidentify(ds, _ctx(guidelines))
    text = _values(ds).lower()
    for word in gone:
        assert word not in text


def test_imaging_words_are_never_read_as_a_slip_of_the_name(guidelines):
    ds = _ct("CORTES^ANNA")
    ds.SeriesDescription = "cortex thickness sagittal"
    engine.deidentify(ds, _ctx(guidelines))
    assert ds.SeriesDescription == "cortex thickness sagittal"


def test_a_camelcase_name_is_found_as_written():
    # dcm_qa_ge: the patient is named after the pulse sequence, "epiRT^NIfTI Conv"
    ids = Identifiers()
    ids.add_name("epiRT^NIfTI Conv")
    assert ids.find("epiRT") == ["name"]
    assert ids.spans("seq epiRT") == [(4, 9, "name")]
    assert ids.find("MrQuistgaard") == []  # the split reading still works for glued titles:
    ids.add_name("QUISTGAARD^KAJ")
    assert ids.find("MrQuistgaard") == ["name"]


def test_binary_values_are_searched_with_control_bytes_as_spaces_and_long_ones_remembered_apart():
    from deidkit.engine_memo import _holds_identifier
    from deidkit.engine_sweep import binary_as_text

    ids = Identifiers()
    ids.add_name("QUILLFEATHERSTONE^MAREN")
    blob = b"\x00\x01\x02" * 4000
    named = blob + b"\x00\x00Maren\x00Quillfeatherstone\x00" + blob
    clean = blob + b"\x00\x00Maren\x00Quillfeatherstonx\x01" + blob  # same length, another text
    assert binary_as_text(b"a\x00\x00\x07b\xe9") == "a b\xe9"
    seen: dict[str, bool] = {}
    assert _holds_identifier(binary_as_text(clean), ids, seen) is True  # Maren alone is the name
    ids2 = Identifiers()
    ids2.add_name("QUILLFEATHERSTONE^ZOE")
    seen2: dict[str, bool] = {}
    assert _holds_identifier(binary_as_text(clean.replace(b"Maren", b"Karen")), ids2, seen2) is True  # one slip
    assert _holds_identifier(binary_as_text(blob * 2), ids2, seen2) is False
    assert _holds_identifier(binary_as_text(named), ids2, seen2) is True  # not the remembered answer
    assert len(seen2) == 3


@pytest.mark.parametrize("part, stem", [
    ("OTTOLw;RS", "OTTOL"), ("OTTOL\xf0S\xd9-", "OTTOL"), ("OTTOL4;RS", "OTTOL"), ("OttolinQ", "Ottolin"),
    # real names give themselves: no sign of damage
    ("OTTOLINE", "OTTOLINE"), ("Smith", "Smith"), ("McDonald", "McDonald"), ("FRAN\xc7OIS", "FRAN\xc7OIS"),
    ("DeLONG", "DeLONG"), ("MacDonald", "Mac"),
])
def test_the_stem_of_a_damaged_name_part_is_the_name_before_the_damage(part, stem):
    from deidkit.sweep import damaged_stem

    assert damaged_stem(part) == stem


def test_a_damaged_given_name_finds_the_whole_name_at_a_word_start_only():
    ids = Identifiers()
    ids.add_name("ZEBRAFINCH^OTTOLw;RS")  # fuzz_export seed 79
    assert ids.find("Patient OTTOLINE") == ["name"]
    assert ids.find("ottolinesque") == ["name"]
    assert ids.find("mottoline") == []  # not at a word start
    real = Identifiers()
    real.add_name("ZEBRAFINCH^OTTOLINE")
    assert real.find("OTTOLENGHI") == []  # an undamaged name learns no stem


def test_a_damaged_part_ending_in_an_accented_byte_learns_its_ascii_beginning():
    ids = Identifiers()
    ids.add_name("ZEBRAFINCH^OTTO\xc2k0E")  # benchmarks/fuzz_names.py: a byte read as Â, then junk
    assert ids.find("Patient OTTOLINE") == ["name"]
    real = Identifiers()
    real.add_name("HERN\xc1NDEZ^ANA")  # undamaged: no stem, an imaging word stays
    assert real.find("hernia repair") == []


def test_a_long_name_part_with_two_letters_damaged_is_still_the_name(guidelines):
    # fuzz_export seed 85: "OTAOLIªE" (two bytes flipped; ª is a letter) named OTTOLINE
    ds = _ct("ZEBRAFINCH^OTAOLI\xaaE")
    ds.ImageComments = "Patient ZEBRAFINCH OTTOLINE seen"
    ds.SeriesDescription = "coronary cta"  # an imaging word two letters from a name (CORONADO) stays
    engine.deidentify(ds, _ctx(guidelines))
    assert "ottoline" not in _values(ds).lower()
    ids = Identifiers()
    ids.add_name("CORONADO^ANA")
    ids.known_words = guidelines.vocabulary
    assert ids.find("CT coronary angio") == []
    assert ids.find("Coronodo") == ["name"] and ids.find("Cornoado") == ["name"]
    assert ids.find("coronado's") == ["name"] and ids.find("Cxronadx") == ["name"]
    assert ids.find("Cxroxadx") == [] and ids.find("Coxonadoxx") == []  # three letters; two slips, longer


def test_a_damaged_byte_read_as_kana_before_latin_letters_leaves_the_latin_part(guidelines):
    # fuzz_export seed 87: under ISO 2022 IR 13 the Z of ZEBRAFINCH became half-width katakana MU
    ds = _ct("\uff91EBRAFINCH^OTTOLINE")
    ds.SpecificCharacterSet = ["ISO 2022 IR 13", "ISO 2022 IR 87"]
    ds.ImageComments = "Patient ZEBRAFINCH OTTOLINE seen"
    engine.deidentify(ds, _ctx(guidelines))
    assert "zebrafinch" not in _values(ds).lower()
    japanese = Identifiers()
    japanese.add_name("YAMADA^TARO=\u5c71\u7530^\u592a\u90ce")  # real scripts in their own components
    assert japanese.find("TARO") == ["name"] and japanese.find("\u5c71\u7530") == ["name"]


def test_damage_that_begins_with_an_upper_case_letter_learns_the_stem_before_it():
    # fuzz_export seed 81 (pydicom rtdose_1frame.dcm): "OTTOLZäéþ"; the case breaks at ä, but Z
    # is damage too, so OTTOLZ alone never found OTTOLINE in Image Comments
    ids = Identifiers()
    ids.add_name("ZEBRAFINCH^OTTOLZ\xe4\xe9\xfe")
    assert ids.find("Patient OTTOLINE ID") == ["name"]
    real = Identifiers()
    real.add_name("MacDONALD^ANA")  # a real case break after lower-case letters learns no shorter stem
    assert real.find("MACE score") == []
    assert real.find("Patient MacDonald") == ["name"]


def test_a_name_glued_to_the_word_before_it_is_found_one_slip_away():
    # fuzz_export seed 88 (pydicom IM00000Z): the header's name reads "ZEBR0FINCH" and a flipped
    # byte glued the comment's name to the word before it: "PatientÚZEBRAFINCH ID"
    ids = Identifiers()
    ids.add_name("ZEBR0FINCH^OTTOLINE")
    assert ids.find("Patient\xdaZEBRAFINCH ID") == ["name"]
    assert ids.find("ZEBRAFINCHxOTTOLINE") == ["name"]
    spans = ids.spans("Patient\xdaZEBRAFINCH ID")
    assert spans and spans[0][0] == 0 and spans[-1][1] == len("Patient\xdaZEBRAFINCH")
    real = Identifiers()
    real.add_name("ZEBRAFINCH^OTTOLINE")
    assert real.find("DiffusionWeightedImaging contrastenhancement") == []
