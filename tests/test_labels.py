"""Issue 15: labels go out clean. Content items per value type, object classes (SR, KO, SEG,
RTSTRUCT, presentation state, content items outside SR), references across a delivery."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from conftest import find_leaks
from helpers import engine_context
from deidkit import cli_deid, engine
from deidkit.mapping import Mapper
from deidkit.sweep import Identifiers
from deidkit.text_clean import REVIEW_REASON, clean_free_text

KEY = b"L" * 32
CT = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
KO = "1.2.840.10008.5.1.4.1.1.88.59"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
PDF = "1.2.840.10008.5.1.4.1.1.104.1"
PATIENT = "QUISTGAARD^ASTRID"
NURSE = "BRANDTOFT^METTE"
SECRETS = {"QUISTGAARD", "Quistgaard", "ASTRID", "Astrid", "BRANDTOFT", "Brandtoft", "MRN7766554",
           "ACC4455667", "Odense University Hospital", "+45 6541 2233", "astrid@example.dk", "19580312"}


def _ctx(guidelines, **options):
    return engine_context(guidelines, KEY, **options)


def _base(sop_class: str, sop_uid: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.77.1"
    ds.SeriesInstanceUID = sop_uid + ".0"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.77.9"
    ds.PatientName = PATIENT
    ds.PatientID = "MRN7766554"
    ds.PatientBirthDate = "19580312"
    ds.AccessionNumber = "ACC4455667"
    ds.ReferringPhysicianName = NURSE
    ds.StudyDate = "20240115"
    ds.ContentDate = "20240115"
    ds.Modality = modality
    ds.Manufacturer = "SIEMENS"
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(value_type: str, concept: tuple[str, str, str], relationship: str = "CONTAINS", **values) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _image_ref(uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = uid
    return ref


CT_UIDS = ["1.2.826.0.1.3680043.2.1125.77.2.1", "1.2.826.0.1.3680043.2.1125.77.2.2"]


def _ct(uid: str) -> Dataset:
    ds = _base(CT, uid, "CT")
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.77.2"
    return ds


def _tid1500_sr() -> Dataset:
    """A measurement report: CODE, NUM, SCOORD, IMAGE, UIDREF, DATE, DATETIME, PNAME, TEXT items."""
    sr = _base(COMPREHENSIVE_SR, "1.2.826.0.1.3680043.2.1125.77.3.1", "SR")
    sr.ValueType = "CONTAINER"
    sr.ContinuityOfContent = "SEPARATE"
    sr.ConceptNameCodeSequence = Sequence([_code("126000", "DCM", "Imaging Measurement Report")])
    num = _item("NUM", ("410668003", "SCT", "Length"), MeasuredValueSequence=Sequence([Dataset()]))
    num.MeasuredValueSequence[0].NumericValue = "12.5"
    num.MeasuredValueSequence[0].MeasurementUnitsCodeSequence = Sequence([_code("mm", "UCUM", "millimeter")])
    scoord = _item("SCOORD", ("111030", "DCM", "Image Region"), "INFERRED FROM", GraphicType="POLYLINE",
                   GraphicData=[10.0, 10.0, 20.0, 20.0])
    scoord.ContentSequence = Sequence([_item("IMAGE", ("260753009", "SCT", "Source"), "SELECTED FROM",
                                             ReferencedSOPSequence=Sequence([_image_ref(CT_UIDS[0])]))])
    num.ContentSequence = Sequence([scoord])
    group = _item("CONTAINER", ("125007", "DCM", "Measurement Group"), ContinuityOfContent="SEPARATE")
    group.ContentSequence = Sequence([
        _item("TEXT", ("112039", "DCM", "Tracking Identifier"), "HAS OBS CONTEXT", TextValue="Lesion 1 liver"),
        _item("UIDREF", ("112040", "DCM", "Tracking Unique Identifier"), "HAS OBS CONTEXT",
              UID="1.2.826.0.1.3680043.2.1125.77.4.1"),
        _item("CODE", ("121071", "DCM", "Finding"), ConceptCodeSequence=Sequence([_code("108369006", "SCT", "Neoplasm")])),
        num,
    ])
    sr.ContentSequence = Sequence([
        _item("PNAME", ("121008", "DCM", "Person Observer Name"), "HAS OBS CONTEXT", PersonName=NURSE),
        _item("TEXT", ("121009", "DCM", "Person Observer's Organization Name"), "HAS OBS CONTEXT",
              TextValue="Odense University Hospital"),
        _item("DATE", ("111060", "DCM", "Study Date"), "HAS OBS CONTEXT", Date="20240115"),
        _item("DATETIME", ("111526", "DCM", "DateTime Started"), "HAS OBS CONTEXT", DateTime="20240115101500"),
        group,
    ])
    return sr


def _value(root: Dataset, value_type: str) -> list[Dataset]:
    found = []
    for item in root.get("ContentSequence", []):
        if item.get("ValueType") == value_type:
            found.append(item)
        found += _value(item, value_type)
    return found


# ---- per value type --------------------------------------------------------------------------

def test_measurement_report_is_delivered_with_every_value_type_handled(guidelines):
    sr = _tid1500_sr()
    ctx = _ctx(guidelines)
    result = engine.deidentify(sr, ctx)
    assert result.hold_reason is None
    mapper = Mapper(KEY)
    # CODE, NUM, SCOORD, CONTAINER kept
    assert _value(sr, "CODE")[0].ConceptCodeSequence[0].CodeValue == "108369006"
    assert _value(sr, "CODE")[0].ConceptCodeSequence[0].CodeMeaning == "Neoplasm"
    assert _value(sr, "NUM")[0].MeasuredValueSequence[0].NumericValue == 12.5
    assert list(_value(sr, "SCOORD")[0].GraphicData) == [10.0, 10.0, 20.0, 20.0]
    assert len(_value(sr, "CONTAINER")) == 1
    # IMAGE reference and UIDREF remapped with the keyed UIDs
    image = _value(sr, "IMAGE")[0].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == mapper.uid(CT_UIDS[0])
    assert _value(sr, "UIDREF")[0].UID == mapper.uid("1.2.826.0.1.3680043.2.1125.77.4.1")
    # DATE and DATETIME shifted by the patient's offset, like the header
    assert _value(sr, "DATE")[0].Date == sr.StudyDate != "20240115"
    assert _value(sr, "DATETIME")[0].DateTime.startswith(sr.StudyDate)
    # PNAME replaced; observer organisation removed (institution identity option off)
    assert "BRANDTOFT" not in str(_value(sr, "PNAME")[0].PersonName)
    texts = [str(i.TextValue) for i in _value(sr, "TEXT")]
    assert "Lesion 1 liver" in texts and not any("Odense" in t for t in texts)
    # concept names kept
    assert sr.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurement Report"


def test_pname_of_the_patient_becomes_the_pseudonym_others_a_dummy(guidelines):
    sr = _tid1500_sr()
    sr.ContentSequence.append(_item("PNAME", ("121025", "DCM", "Patient"), "HAS OBS CONTEXT", PersonName=PATIENT))
    result = engine.deidentify(sr, _ctx(guidelines))
    names = [str(i.PersonName) for i in _value(sr, "PNAME")]
    assert names == ["ANONYMIZED", result.pseudonym]


def test_observer_organisation_kept_under_institution_identity(guidelines):
    sr = _tid1500_sr()
    engine.deidentify(sr, _ctx(guidelines, retain_institution_identity=True))
    assert "Odense University Hospital" in [str(i.TextValue) for i in _value(sr, "TEXT")]


def test_text_items_naming_patient_nurse_and_hospital_are_cleaned_and_delivered(guidelines):
    sr = _base(BASIC_TEXT_SR, "1.2.826.0.1.3680043.2.1125.77.5.1", "SR")
    sr.ValueType = "CONTAINER"
    sr.ConceptNameCodeSequence = Sequence([_code("11528-7", "LN", "Radiology Report")])
    sr.ContentSequence = Sequence([_item("TEXT", ("121071", "DCM", "Finding"), TextValue=(
        "Astrid Quistgaard (MRN7766554, acc. ACC4455667) was seen by nurse Brandtoft at Odense University "
        "Hospital on 2024-01-15; call +45 6541 2233 or astrid@example.dk. Born 12.03.1958. "
        "Small nodule in the left lower lobe, 6 mm."))])
    result = engine.deidentify(sr, _ctx(guidelines))
    text = str(sr.ContentSequence[0].TextValue)
    assert result.hold_reason is None
    for secret in SECRETS | {"2024-01-15", "12.03.1958", "Odense", "Hospital"}:
        assert secret.lower() not in text.lower(), secret
    assert "Small nodule in the left lower lobe, 6 mm." in text
    assert "was seen by nurse" in text
    assert "Hospital on;" in text or "on;" in text  # the date in text went (verify flags any date in text)


def test_dates_in_text_can_be_shifted_in_one_place(guidelines, monkeypatch):
    from deidkit import content
    monkeypatch.setattr(content, "SHIFT_DATES_IN_TEXT", True)
    sr = _base(BASIC_TEXT_SR, "1.2.826.0.1.3680043.2.1125.77.5.3", "SR")
    sr.ContentSequence = Sequence([_item("TEXT", ("121071", "DCM", "Finding"), TextValue="Seen on 2024-01-15.")])
    engine.deidentify(sr, _ctx(guidelines))
    shifted = sr.StudyDate
    assert str(sr.ContentSequence[0].TextValue) == f"Seen on {shifted[:4]}-{shifted[4:6]}-{shifted[6:]}."


def test_narrative_still_naming_someone_is_held_for_review(guidelines):
    sr = _base(BASIC_TEXT_SR, "1.2.826.0.1.3680043.2.1125.77.5.2", "SR")
    sr.ContentSequence = Sequence([_item("TEXT", ("121071", "DCM", "Finding"),
                                         TextValue="Results discussed with Karina Blixenfeldt by phone.")])
    ctx = _ctx(guidelines)
    result = engine.deidentify(sr, ctx)
    assert result.hold_reason == REVIEW_REASON
    assert "[text-review]" in REVIEW_REASON
    from deidkit.content import text_for_review
    assert text_for_review(sr, guidelines.vocabulary) == [
        ("(0040,A730)[0]>(0040,A160)", "Results discussed with [[Karina]] [[Blixenfeldt]] by phone.")]


def test_clean_structured_content_off_holds_reports_as_before(guidelines):
    sr = _tid1500_sr()
    ctx = _ctx(guidelines, clean_structured_content=False)
    assert engine.deidentify(sr, ctx).hold_reason == "structured report with free text"


def test_key_object_selection_with_codes_and_references_is_delivered(guidelines):
    ko = _base(KO, "1.2.826.0.1.3680043.2.1125.77.6.1", "KO")
    ko.ValueType = "CONTAINER"
    ko.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
    ko.ContentSequence = Sequence([_item("IMAGE", ("260753009", "SCT", "Source"),
                                         ReferencedSOPSequence=Sequence([_image_ref(u)])) for u in CT_UIDS])
    evidence = Dataset()
    evidence.StudyInstanceUID = ko.StudyInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.77.2"
    series.ReferencedSOPSequence = Sequence([_image_ref(u) for u in CT_UIDS])
    evidence.ReferencedSeriesSequence = Sequence([series])
    ko.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    result = engine.deidentify(ko, _ctx(guidelines))
    mapper = Mapper(KEY)
    assert result.hold_reason is None
    refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in ko.ContentSequence]
    assert refs == [mapper.uid(u) for u in CT_UIDS]
    ev = ko.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert ev.SeriesInstanceUID == mapper.uid("1.2.826.0.1.3680043.2.1125.77.2")
    assert ko.ConceptNameCodeSequence[0].CodeMeaning == "Of Interest"


def test_protocol_context_text_and_pname_in_a_ct_are_cleaned(guidelines):
    ct = _ct(CT_UIDS[0])
    protocol = _code("P1-4801", "99LOCAL", "CT CHEST ROUTINE")
    protocol.ProtocolContextSequence = Sequence([
        _item("TEXT", ("121106", "DCM", "Comment"), "HAS CONCEPT MOD",
              TextValue="Protocol set by Dr. Brandtoft for Quistgaard at Odense University Hospital 2024-01-15"),
        _item("PNAME", ("121008", "DCM", "Person Observer Name"), "HAS CONCEPT MOD", PersonName=NURSE),
        _item("NUM", ("113734", "DCM", "X-Ray Tube Current"), "HAS CONCEPT MOD"),
    ])
    ct.PerformedProtocolCodeSequence = Sequence([protocol])
    acq = _item("TEXT", ("121106", "DCM", "Comment"), "HAS ACQ CONTEXT", TextValue="contrast given by Mette Brandtoft")
    ct.AcquisitionContextSequence = Sequence([acq])
    result = engine.deidentify(ct, _ctx(guidelines))
    assert result.hold_reason is None  # an image is never held for a word in its context
    written = str(ct)
    for secret in ("Brandtoft", "BRANDTOFT", "Quistgaard", "Odense", "2024-01-15", "Mette"):
        assert secret not in written, secret


def test_encapsulated_pdf_is_still_held(guidelines):
    pdf = _base(PDF, "1.2.826.0.1.3680043.2.1125.77.7.1", "DOC")
    assert "encapsulated document" in engine.hold_reason_for(pdf, guidelines)


# ---- labels: SEG, RTSTRUCT, presentation states ------------------------------------------------

def _seg() -> Dataset:
    seg = _base(SEG, "1.2.826.0.1.3680043.2.1125.77.8.1", "SEG")
    seg.ImageType = ["DERIVED", "PRIMARY"]
    seg.Rows = seg.Columns = 4
    seg.SegmentSequence = Sequence()
    for number, label in ((1, "Liver"), (2, "Tumor Quistgaard 2024-01-15"), (3, "QUISTGAARD")):
        s = Dataset()
        s.SegmentNumber = number
        s.SegmentLabel = label
        s.SegmentDescription = f"drawn by Dr. Brandtoft ({label})"
        s.SegmentAlgorithmType = "MANUAL"
        s.SegmentedPropertyCategoryCodeSequence = Sequence([_code("123037004", "SCT", "Anatomical Structure")])
        seg.SegmentSequence.append(s)
    series = Dataset()
    series.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.77.2"
    series.ReferencedInstanceSequence = Sequence([_image_ref(u) for u in CT_UIDS])
    seg.ReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    deriv = Dataset()
    deriv.SourceImageSequence = Sequence([_image_ref(CT_UIDS[0])])
    frame.DerivationImageSequence = Sequence([deriv])
    seg.PerFrameFunctionalGroupsSequence = Sequence([frame])
    return seg


def test_segmentation_labels_cleaned_references_remapped_and_not_at_pixel_risk(guidelines):
    seg = _seg()
    from deidkit import risk
    assert not risk.assess(seg).person_must_see  # the detector looks; no person needed when it finds no text
    result = engine.deidentify(seg, _ctx(guidelines))
    mapper = Mapper(KEY)
    assert result.hold_reason is None
    labels = [str(s.SegmentLabel) for s in seg.SegmentSequence]
    assert labels[0] == "Liver"
    assert labels[1].startswith("Tumor") and "Quistgaard" not in labels[1] and "2024-01-15" not in labels[1]
    assert labels[2] == "ANONYMIZED"  # nothing left: a dummy keeps the Type 1 label
    assert all("Brandtoft" not in str(s.get("SegmentDescription", "")) for s in seg.SegmentSequence)
    ref = seg.ReferencedSeriesSequence[0]
    assert [r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence] == [mapper.uid(u) for u in CT_UIDS]
    src = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert src.ReferencedSOPInstanceUID == mapper.uid(CT_UIDS[0])
    assert seg.FrameOfReferenceUID == mapper.uid("1.2.826.0.1.3680043.2.1125.77.9")


def _rtstruct() -> Dataset:
    rs = _base(RTSTRUCT, "1.2.826.0.1.3680043.2.1125.77.9.1", "RTSTRUCT")
    rs.StructureSetLabel = "Quistgaard plan"
    rs.StructureSetROISequence = Sequence()
    rs.ROIContourSequence = Sequence()
    for number, name in ((1, "GTV_Quistgaard"), (2, "Parotid_L"), (3, "SpinalCord PRV5")):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.77.9"
        roi.ROIGenerationAlgorithm = "MANUAL"
        rs.StructureSetROISequence.append(roi)
        contour = Dataset()
        contour.ReferencedROINumber = number
        c = Dataset()
        c.ContourImageSequence = Sequence([_image_ref(CT_UIDS[0])])
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.ContourData = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
        contour.ContourSequence = Sequence([c])
        rs.ROIContourSequence.append(contour)
    return rs


def test_rtstruct_roi_names_cleaned_and_references_kept(guidelines):
    rs = _rtstruct()
    result = engine.deidentify(rs, _ctx(guidelines))
    mapper = Mapper(KEY)
    assert result.hold_reason is None
    names = [str(r.ROIName) for r in rs.StructureSetROISequence]
    assert names[0] == "GTV" and names[1] == "Parotid_L" and names[2] == "SpinalCord PRV5"
    assert "Quistgaard" not in str(rs.get("StructureSetLabel", ""))
    roi = rs.StructureSetROISequence[0]
    assert roi.ReferencedFrameOfReferenceUID == mapper.uid("1.2.826.0.1.3680043.2.1125.77.9")
    image = rs.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    assert image.ReferencedSOPInstanceUID == mapper.uid(CT_UIDS[0])
    assert [int(c.ReferencedROINumber) for c in rs.ROIContourSequence] == [1, 2, 3]


def test_presentation_state_annotation_text_is_cleaned(guidelines):
    ps = _base(GSPS, "1.2.826.0.1.3680043.2.1125.77.10.1", "PR")
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    text = Dataset()
    text.UnformattedTextValue = "Nodule seen by Dr. Brandtoft, pt Quistgaard"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [10.0, 10.0]
    annotation.TextObjectSequence = Sequence([text])
    annotation.ReferencedImageSequence = Sequence([_image_ref(CT_UIDS[0])])
    ps.GraphicAnnotationSequence = Sequence([annotation])
    result = engine.deidentify(ps, _ctx(guidelines))
    assert result.hold_reason is None
    value = str(ps.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue)
    assert value.startswith("Nodule seen by") and "Brandtoft" not in value and "Quistgaard" not in value
    assert ps.GraphicAnnotationSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == Mapper(KEY).uid(CT_UIDS[0])


# ---- the free-text cleaner on its own ----------------------------------------------------------

@pytest.mark.parametrize("text,gone,kept", [
    ("Seen by Dr. Hjortshoej", ["Hjortshoej"], ["Seen by"]),
    ("Contact: jens.k@rh.example.dk", ["jens.k@rh.example.dk"], ["Contact"]),
    ("tel 0045 3545 1234", ["3545 1234"], ["tel"]),
    ("scanned at Rigshospitalet", ["Rigshospitalet"], ["scanned at"]),
    ("12 Baker Street follow-up", ["Baker Street"], ["follow-up"]),
    ("Accession 20240115123 reviewed", ["20240115123"], ["reviewed"]),
    ("ref PHI9X0040A160T kept", ["PHI9X0040A160T"], ["ref", "kept"]),
    ("Lesion 1 liver 12.5 mm", [], ["Lesion 1 liver 12.5 mm"]),
])
def test_cleaner_removes_identifying_shapes_and_keeps_words(guidelines, text, gone, kept):
    ids = Identifiers()
    result = clean_free_text(text, ids, -400, guidelines.vocabulary)
    for g in gone:
        assert g not in result.text
    for k in kept:
        assert k in result.text


def test_cleaner_removes_names_of_everyone_in_the_header(guidelines):
    ds = _base(CT, "1.2.3", "CT")
    ds.OperatorsName = "Vindelev^Karsten"
    ds.PerformingPhysicianName = "Sandholt^Birgit"
    ids = Identifiers.from_dataset(ds)
    text = "Operator Karsten Vindelev and Birgit Sandholt; patient ASTRID"
    result = clean_free_text(text, ids, None, guidelines.vocabulary)
    for name in ("Karsten", "Vindelev", "Birgit", "Sandholt", "ASTRID"):
        assert name not in result.text


# ---- across a delivery ---------------------------------------------------------------------------

def _write(ds: Dataset, path: Path) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _ct_image(uid: str, number: int) -> Dataset:
    """_ct with a 4 x 4 16-bit image and its Instance Number."""
    ct = _ct(uid)
    ct.InstanceNumber = number
    ct.Rows = ct.Columns = 4
    ct.BitsAllocated = ct.BitsStored = 16
    ct.HighBit = 15
    ct.PixelRepresentation = 0
    ct.SamplesPerPixel = 1
    ct.PhotometricInterpretation = "MONOCHROME2"
    ct.PixelData = bytes(32)
    return ct


def test_delivery_of_labels_with_references_resolving(tmp_path):
    src = tmp_path / "EXPORT"
    for i, uid in enumerate(CT_UIDS):
        ct = _ct_image(uid, i + 1)
        ct.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _write(ct, src / "QUISTGAARD" / f"CT{i}.dcm")
    seg = _seg()
    seg.NumberOfFrames = 1
    seg.BitsAllocated = seg.BitsStored = 1
    seg.HighBit = 0
    seg.SamplesPerPixel = 1
    seg.PixelRepresentation = 0
    seg.PhotometricInterpretation = "MONOCHROME2"
    seg.SegmentationType = "BINARY"
    seg.PixelData = bytes(2)
    for name, ds in (("SEG", seg), ("SR", _tid1500_sr()), ("RS", _rtstruct())):
        _write(ds, src / "QUISTGAARD" / f"{name}.dcm")
    out = tmp_path / "OUT"
    code = cli_deid.main([str(src), "--out", str(out), "--yes", "--key", str(tmp_path / "k.txt"), "--workers", "1"])
    written = sorted(out.rglob("*.dcm"))
    classes = {}
    instances, refs = set(), set()
    for p in written:
        ds = pydicom.dcmread(p)
        classes[str(ds.SOPClassUID)] = ds
        instances.add(str(ds.SOPInstanceUID))
        refs |= {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    assert code == 0, (out.parent / "OUT_HOSPITAL_ONLY" / "held_back.csv").read_text()
    assert {SEG, COMPREHENSIVE_SR, RTSTRUCT, CT} <= set(classes)
    assert refs and refs <= instances  # every reference of every label resolves to a delivered instance
    frame_of_reference = {str(ds.FrameOfReferenceUID) for ds in classes.values() if "FrameOfReferenceUID" in ds}
    assert len(frame_of_reference) == 1
    assert find_leaks(out, SECRETS | {"Tumor Quistgaard"}) == []


def test_a_label_whose_image_was_held_is_listed_in_the_summary(tmp_path):
    src = tmp_path / "EXPORT"
    for i, uid in enumerate(CT_UIDS):
        ct = _ct_image(uid, i + 1)
        if i == 0:
            ct.BurnedInAnnotation = "YES"  # held: the detector is not trusted to clear it alone
        _write(ct, src / f"CT{i}.dcm")
    ko = _base(KO, "1.2.826.0.1.3680043.2.1125.77.6.2", "KO")
    ko.ValueType = "CONTAINER"
    ko.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
    ko.ContentSequence = Sequence([_item("IMAGE", ("260753009", "SCT", "Source"),
                                         ReferencedSOPSequence=Sequence([_image_ref(u)])) for u in CT_UIDS])
    _write(ko, src / "KO.dcm")
    out = tmp_path / "OUT"
    code = cli_deid.main([str(src), "--out", str(out), "--yes", "--key", str(tmp_path / "k.txt"), "--workers", "1"])
    assert code == 1
    summary = (out / "deid_summary.txt").read_text(encoding="utf-8")
    assert "Labels pointing at held-back instances: 1 file(s), 1 reference(s)" in summary
    kos = [p for p in out.rglob("*.dcm") if str(pydicom.dcmread(p).SOPClassUID) == KO]
    assert len(kos) == 1 and kos[0].relative_to(out).as_posix() in summary


@pytest.mark.parametrize("sop_class", [SEG, "1.2.840.10008.5.1.4.1.1.66.7"])
def test_segmentation_whose_mask_looks_like_text_is_delivered_unchanged(tmp_path, sop_class):
    """A real SEG has Image Type DERIVED\\PRIMARY (PS3.3 C.8.20.2); its mask frames are labels, so
    the detector must not hold or blank them even when a mask is shaped like letters."""
    import numpy as np

    from deidkit.synth import burn_text

    mask = np.zeros((64, 64), dtype=np.uint8)
    burn_text(mask, "LIVER 123", 20, 2, 255)
    seg = _seg()
    seg.SOPClassUID = sop_class
    seg.Rows = seg.Columns = 64
    seg.NumberOfFrames = 1
    seg.BitsAllocated = seg.BitsStored = 8
    seg.HighBit = 7
    seg.SamplesPerPixel = 1
    seg.PixelRepresentation = 0
    seg.PhotometricInterpretation = "MONOCHROME2"
    seg.SegmentationType = "FRACTIONAL"
    seg.MaximumFractionalValue = 255
    seg.SegmentationFractionalType = "PROBABILITY"
    seg.PixelData = mask.tobytes()
    src = tmp_path / "EXPORT"
    _write(seg, src / "QUISTGAARD" / "SEG.dcm")
    out = tmp_path / "OUT"
    code = cli_deid.main([str(src), "--out", str(out), "--yes", "--key", str(tmp_path / "k.txt"), "--workers", "1"])
    assert code == 0, (tmp_path / "OUT_HOSPITAL_ONLY" / "held_back.csv").read_text()
    (written,) = sorted(out.rglob("*.dcm"))
    assert pydicom.dcmread(written).PixelData == mask.tobytes()
    held = seg.copy()
    held.BurnedInAnnotation = "YES"  # what the header declares still applies
    from deidkit import risk
    assert risk.assess(held).at_risk and risk.assess(held).person_must_see
