"""Synthetic PACS exports with fake PHI, for --demo, tests and benchmarks. Never real data.

`make_export(root)` writes an export shaped like real ones: patient-named folders, files with and
without .dcm, a media-style subtree with DICOMDIR, reports, viewer files, broken files, and PHI
planted in every Table E.1-1 attribute that can hold a value (also in nested sequences, private
tags, overlays, file meta and three character sets). It returns what it planted, so a test can
prove that none of it comes out.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from . import guidelines as gl
# the bitmap font and phantom images live in deidkit.synth_pixels; re-exported here
from .synth_pixels import _phantom as _phantom
from .synth_pixels import burn_text as burn_text

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SITE_ROOT = "1.2.826.0.1.3680043.9.7777."  # a made-up "hospital" UID root

# Tags the synthetic export sets itself with structural values; planting would break the file.
_STRUCTURAL = {0x00080018, 0x0020000D, 0x0020000E, 0x00200052, 0x00080016}


@dataclass
class FakePatient:
    """A made-up patient with the identifying values a PACS export would carry."""
    name: str            # DICOM PN, "Family^Given^Middle"
    patient_id: str
    birth_date: str      # YYYYMMDD
    charset: str         # Specific Character Set value
    address: str
    phone: str
    accession: str
    study_date: str
    folder: str          # how the PACS named the export folder

    def name_parts(self) -> list[str]:
        """The name components of at least 2 characters, from every PN component group."""
        parts = []
        for group in self.name.split("="):
            for p in group.replace("^", " ").split():
                if len(p) >= 2:
                    parts.append(p)
        return parts


PATIENTS = [
    FakePatient("DOE^JOHN^QUINCY", "MRN1234567", "19610203", "ISO_IR 100",
                "12 Elm Street, Springfield", "+1 555 0100 2345", "ACC9876543", "20240115",
                "DOE^JOHN_19610203"),
    FakePatient("MÜLLER^JÜRGEN", "4711081542", "19750830", "ISO_IR 100",
                "Königsallee 5, Düsseldorf", "0211 5550199", "A20240116X", "20240116",
                "MRN 4711081542"),
    FakePatient("Иванова^Анна", "RU-00077", "19880412", "ISO_IR 192",
                "ул. Ленина 7, Казань", "+7 843 555 0177", "RU2024ACC", "20240117",
                "Ivanova Anna 1988-04-12"),
    FakePatient("ヤマダ^タロウ=山田^太郎=やまだ^たろう", "JP5551234", "19500101", "\\ISO 2022 IR 87",
                "Tokyo Chiyoda 1-1", "03 5550 1234", "JPACC55512", "20240118",
                "YAMADA TARO"),
]


@dataclass
class SynthExport:
    """A synthetic export written to root, and what a test expects of it."""
    root: Path
    patients: list[FakePatient]
    planted_text: set[str] = field(default_factory=set)     # strings that must never come out
    planted_uids: set[str] = field(default_factory=set)     # original UIDs
    dicom_files: list[Path] = field(default_factory=list)   # readable DICOM that should go out
    held_back_expected: list[Path] = field(default_factory=list)  # SR text, PDF, burned-in
    bad_files: list[Path] = field(default_factory=list)     # zero-byte, truncated, not DICOM
    non_dicom: list[Path] = field(default_factory=list)

    def all_secrets(self) -> set[str]:
        """Every planted identifying string of at least 4 characters (must never come out)."""
        out = set(self.planted_text)
        for p in self.patients:
            out.update([p.patient_id, p.birth_date, p.accession, p.address, p.phone,
                        p.folder, p.study_date, *p.name_parts()])
        return {s for s in out if len(s) >= 4}


def synth_uid(*parts: object) -> str:
    """A deterministic UID under SITE_ROOT made from the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return SITE_ROOT + str(int.from_bytes(digest[:12], "big"))


# ---- planting PHI in every table attribute ------------------------------------------------

# VRs whose planted value is the same for every attribute.
_FIXED_VALUES: dict[str, str | int | float] = {
    "TM": "101112", "IS": "4711", "DS": "47.11", "AS": "061Y",
    **{vr: 47 for vr in ("US", "SS", "UL", "SL", "UV", "SV")},
    "FL": 47.11, "FD": 47.11, "AT": 0x00100010,
}


def _value_for(vr: str, marker: str, patient: FakePatient, uids: set[str],
               seq_depth: int) -> str | int | float | bytes | None:
    """A planted value of the right VR; text markers are unique per attribute."""
    if vr in _FIXED_VALUES:
        return _FIXED_VALUES[vr]
    if vr == "PN":
        return f"{patient.name.split('=')[0].split('^')[0]}^{marker}"
    if vr in ("LO", "SH", "LT", "ST", "UT", "UC"):
        limit = {"SH": 16, "LO": 64}.get(vr, 200)
        return f"{marker} {patient.name_parts()[0]} {patient.patient_id}"[:limit]
    if vr in ("CS", "AE"):
        return marker[:16].upper() if vr == "CS" else marker[:16]
    if vr in ("DA", "DT"):
        return patient.study_date + ("101112.000000+0100" if vr == "DT" else "")
    if vr == "UI":
        uid = synth_uid("planted", marker)
        uids.add(uid)
        return uid
    if vr == "UR":
        return f"http://hospital.example/{marker}"
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        data = f"{marker} {patient.patient_id} ".encode()
        return data + (b"\0" if len(data) % 2 else b"")
    return None


# Values a retained attribute (K under the default profile) gets: plausible and not identifying.
_RETAINED_VALUES = {
    0x00101010: "061Y", 0x00100040: "M", 0x00101020: "1.80", 0x00101030: "81.5",
    0x00102203: "UNALTERED", 0x001021C0: 4, 0x001021A0: "NO", 0x00102160: "",
    0x0072005F: "061Y",
}


def plant_table_attributes(ds: Dataset, patient: FakePatient, marker_prefix: str,
                           planted: set[str], uids: set[str], guidelines: gl.Guidelines) -> None:
    """Set every Table E.1-1 attribute that can hold a value, sequences with nested items."""
    for tag, rule in sorted(guidelines.rules.items()):
        if tag in _STRUCTURAL or tag >> 16 in (0x0000, 0x0002) or tag == 0x00100010 or tag == 0x00100020:
            continue
        vr = rule.vr.split(" ")[0] if rule.vr else ""
        if not vr:
            continue
        if tag in _RETAINED_VALUES:
            if _RETAINED_VALUES[tag] != "":
                ds.add_new(tag, vr, _RETAINED_VALUES[tag])
            continue
        marker = f"{marker_prefix}{tag:08X}"
        if vr == "SQ":
            inner = Dataset()
            inner.CodeValue = "T-D0050"
            inner.CodingSchemeDesignator = "SRT"
            inner.CodeMeaning = f"{marker} {patient.name_parts()[0]}"
            inner.PersonName = f"{patient.name.split('=')[0]}"
            inner.TextValue = f"{marker}T seen by {patient.name_parts()[0]}"
            inner.ReferencedSOPInstanceUID = synth_uid("nested", marker)
            uids.add(inner.ReferencedSOPInstanceUID)
            inner.ReferencedSOPClassUID = CT_IMAGE
            deeper = Dataset()
            deeper.PatientID = patient.patient_id
            deeper.ContentDate = patient.study_date
            inner.ContentSequence = Sequence([deeper])
            ds.add_new(tag, "SQ", Sequence([inner]))
            planted.update({marker, f"{marker}T"})
            continue
        value = _value_for(vr, marker, patient, uids, 0)
        if value is None:
            continue
        ds.add_new(tag, vr, value)
        if vr in ("PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "UR", "OB", "OW", "UN"):
            planted.add(marker if vr not in ("CS", "AE") else marker[:16])


def _private_blocks(ds: Dataset, patient: FakePatient, planted: set[str]) -> None:
    """Private data: one unknown vendor block with PHI, one safe-listed attribute."""
    block = ds.private_block(0x0029, "ACME PHI STORE 1.0", create=True)
    block.add_new(0x10, "LO", f"{patient.name.split('=')[0]}")
    block.add_new(0x11, "OB", f"CSA {patient.patient_id} PRIVPHI{patient.patient_id}".encode().ljust(40, b"\0"))
    planted.add(f"PRIVPHI{patient.patient_id}")
    # Table E.3.10-1 lists (0019,xx0C) of SIEMENS MR HEADER as safe (B value).
    safe = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    safe.add_new(0x0C, "IS", "1000")


# ---- datasets ------------------------------------------------------------------------------

def base_dataset(patient: FakePatient, sop_class: str, study_uid: str, series_uid: str, sop_uid: str,
                 modality: str, series_number: int, instance: int) -> Dataset:
    """A header with the usual identifying attributes filled with this fake patient's values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(SITE_ROOT + "1")
    meta.ImplementationVersionName = "HOSPPACS_7"
    meta.SourceApplicationEntityTitle = "HOSP_PACS_AE1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = patient.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = synth_uid("for", study_uid)
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "M"
    ds.PatientAge = "061Y"
    ds.PatientWeight = "81.5"
    ds.PatientSize = "1.80"
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.AccessionNumber = patient.accession
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.Modality = modality
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "SOMATOM Force"
    ds.BodyPartExamined = "CHEST"
    ds.StationName = "CT01HOSPNORTH"
    ds.InstitutionName = "St. Example General Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDescription = f"CT CHEST {patient.name_parts()[0]}"
    ds.SeriesDescription = "AX LUNG 1.0 B70f"
    ds.StudyID = "S" + patient.patient_id[-5:]
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance
    ds.ImageComments = f"Patient {patient.name_parts()[0]} born {patient.birth_date} call {patient.phone}"
    return ds


def _add_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    ds.Rows, ds.Columns = pixels.shape[:2]
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    bits = 16 if pixels.dtype == np.uint16 else 8
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()


def _add_overlay(ds: Dataset, patient: FakePatient, planted: set[str]) -> None:
    rows, cols = ds.Rows, ds.Columns
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ov = np.zeros((rows, cols), dtype=np.uint8)
    burn_text(ov, "OVL", 2, 2, 1, scale=1)
    ds.add_new(0x60003000, "OW", np.packbits(ov.ravel(), bitorder="little").tobytes())
    ds.add_new(0x60004000, "LT", f"OVLPHI {patient.name_parts()[0]}")
    planted.add("OVLPHI")


def _write(ds: Dataset, path: Path, implicit: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def make_export(root: Path, instances_per_series: int = 3, image_size: int = 64,
                plant_everything: bool = True, include_problems: bool = True,
                patients: list[FakePatient] | None = None,
                guidelines: gl.Guidelines | None = None) -> SynthExport:
    """Write a synthetic PACS export under root and return what was planted where."""
    guidelines = guidelines or gl.load()
    gl.register_new_attributes(guidelines)
    root.mkdir(parents=True, exist_ok=True)
    patients = patients or PATIENTS
    out = SynthExport(root=root, patients=patients)
    for p_index, patient in enumerate(patients):
        study_uid = synth_uid("study", patient.patient_id)
        out.planted_uids.add(study_uid)
        pdir = root / patient.folder / f"CT CHEST {patient.study_date[:4]}-{patient.study_date[4:6]}-{patient.study_date[6:]}"
        image_uids = _ct_series(pdir, patient, p_index, study_uid, out, instances_per_series, image_size,
                                guidelines if plant_everything else None)
        _presentation_state(pdir, patient, study_uid, image_uids, out)
        if p_index == 0:
            _held_back_objects(root / patient.folder, patient, study_uid, image_size, out)
    _media_subtree(root / "CDROM", patients[0], out, image_size)
    if include_problems:
        _problem_files(root, patients[0], out)
    return out


def _ct_series(pdir: Path, patient: FakePatient, p_index: int, study_uid: str, out: SynthExport,
               instances_per_series: int, image_size: int, plant: gl.Guidelines | None) -> list[str]:
    """Two CT series of one patient (the second referring to the first; implicit VR for the second
    patient's); with `plant` (the guidelines), every table attribute planted in the first image.
    Returns the SOP Instance UIDs of the first series."""
    image_uids: list[str] = []
    for s_index, (modality, sop_class) in enumerate([("CT", CT_IMAGE), ("CT", CT_IMAGE)]):
        series_uid = synth_uid("series", patient.patient_id, s_index)
        out.planted_uids.add(series_uid)
        for i in range(instances_per_series):
            sop_uid = synth_uid("sop", patient.patient_id, s_index, i)
            out.planted_uids.add(sop_uid)
            ds = base_dataset(patient, sop_class, study_uid, series_uid, sop_uid, modality, s_index + 1, i + 1)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            _add_pixels(ds, _phantom(image_size, image_size, seed=p_index * 100 + i))
            if s_index == 1 and image_uids:
                ref = Dataset()
                ref.ReferencedSOPClassUID = CT_IMAGE
                ref.ReferencedSOPInstanceUID = image_uids[i % len(image_uids)]
                ds.ReferencedImageSequence = Sequence([ref])
                ds.SourceImageSequence = Sequence([ref])
            if plant is not None and s_index == 0 and i == 0:
                plant_table_attributes(ds, patient, f"PHI{p_index}X", out.planted_text, out.planted_uids, plant)
                # the table's PN rows planted the family name; keep the study linkable
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, sop_uid
                _private_blocks(ds, patient, out.planted_text)
                _add_overlay(ds, patient, out.planted_text)
            if s_index == 0:
                image_uids.append(sop_uid)
            name = f"IM{i + 1:04d}" if s_index == 0 else f"{patient.name_parts()[0]}_{i + 1}.dcm"
            path = pdir / f"SE{s_index + 1} {patient.patient_id}" / name
            _write(ds, path, implicit=(p_index == 1 and s_index == 1))
            out.dicom_files.append(path)
    return image_uids


def _presentation_state(pdir: Path, patient: FakePatient, study_uid: str, image_uids: list[str],
                        out: SynthExport) -> None:
    """A presentation state referencing the first series (references must stay valid)."""
    ps_uid = synth_uid("gsps", patient.patient_id)
    out.planted_uids.add(ps_uid)
    ps = base_dataset(patient, GSPS, study_uid, synth_uid("psser", patient.patient_id), ps_uid, "PR", 90, 1)
    del ps.BodyPartExamined
    ps.ContentLabel = "ANNOT"
    ps.ContentCreatorName = patient.name.split("=")[0]
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = synth_uid("series", patient.patient_id, 0)
    series_ref.ReferencedImageSequence = Sequence()
    for uid in image_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE
        item.ReferencedSOPInstanceUID = uid
        series_ref.ReferencedImageSequence.append(item)
    ps.ReferencedSeriesSequence = Sequence([series_ref])
    out.planted_uids.add(ps.SeriesInstanceUID)
    _write(ps, pdir / "PR" / "PS0001")
    out.dicom_files.append(pdir / "PR" / "PS0001")


def _held_back_objects(pdir: Path, patient: FakePatient, study_uid: str, size: int, out: SynthExport) -> None:
    """Objects that must not go out unreviewed: SR with free text, a PDF, a US screen with text."""
    sr = base_dataset(patient, BASIC_TEXT_SR, study_uid, synth_uid("srser", patient.patient_id), synth_uid("sr", patient.patient_id),
               "SR", 80, 1)
    sr.ValueType = "CONTAINER"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    # Clean Structured Content cleans it and it goes out: the patient's name, a nurse named in
    # the header, a hospital, a date, a phone number
    sr.ReferringPhysicianName = "Hansenova^Ingrid"
    item.TextValue = (f"Findings for {patient.name_parts()[0]}: no acute disease. Discussed with nurse "
                      f"Hansenova at St. Example General Hospital on 2023-04-05, tel. +45 3545 1234.")
    sr.ContentSequence = Sequence([item])
    out.planted_text.update({"Hansenova", "3545 1234", "Example General"})
    _write(sr, pdir / "REPORT" / "SR0001.dcm")
    # narrative naming someone the header does not know: held for a person's review
    sr2 = base_dataset(patient, BASIC_TEXT_SR, study_uid, synth_uid("srser", patient.patient_id),
                       synth_uid("sr2", patient.patient_id), "SR", 80, 2)
    sr2.ValueType = "CONTAINER"
    item2 = Dataset()
    item2.RelationshipType = "CONTAINS"
    item2.ValueType = "TEXT"
    item2.TextValue = "No acute disease. Results were discussed with Karina Blixenfeldt by phone."
    sr2.ContentSequence = Sequence([item2])
    out.planted_text.add("Blixenfeldt")
    _write(sr2, pdir / "REPORT" / "SR0002.dcm")
    out.planted_uids.add(sr2.SOPInstanceUID)
    out.held_back_expected.append(pdir / "REPORT" / "SR0002.dcm")
    pdf = base_dataset(patient, ENCAPSULATED_PDF, study_uid, synth_uid("docser", patient.patient_id),
                synth_uid("doc", patient.patient_id), "DOC", 81, 1)
    pdf.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf.EncapsulatedDocument = b"%PDF-1.4\n% " + patient.patient_id.encode() + b"\n%%EOF\n"
    _write(pdf, pdir / "REPORT" / "DOC0001")
    us = base_dataset(patient, US_IMAGE, study_uid, synth_uid("usser", patient.patient_id), synth_uid("us", patient.patient_id),
               "US", 70, 1)
    img = (_phantom(size * 2, size * 2, seed=7, bits=8) // 2).astype(np.uint8)
    burn_text(img, patient.name_parts()[0][:8], 4, 4, 255)
    burn_text(img, patient.birth_date, 24, 4, 255)
    _add_pixels(us, img)
    # like one of the public deid-data samples: Burned In Annotation is not set at all
    _write(us, pdir / "US" / "US0001")
    out.planted_uids.update({sr.SOPInstanceUID, pdf.SOPInstanceUID, us.SOPInstanceUID, us.SeriesInstanceUID})
    out.held_back_expected += [pdir / "REPORT" / "DOC0001"]
    out.dicom_files.append(pdir / "US" / "US0001")


def _media_subtree(cd_root: Path, patient: FakePatient, out: SynthExport, size: int) -> None:
    """A CD-style subtree: DICOMDIR at its root naming the patient, IHE folder names."""
    from pydicom.fileset import FileSet

    fs = FileSet()
    fs.UID = UID(synth_uid("cdfileset", patient.patient_id))  # else pydicom draws a random one: same export every time
    out.planted_uids.add(fs.UID)
    study_uid = synth_uid("cdstudy", patient.patient_id)
    series_uid = synth_uid("cdseries", patient.patient_id)
    staged = []
    for i in range(2):
        sop = synth_uid("cdsop", patient.patient_id, i)
        ds = base_dataset(patient, MR_IMAGE, study_uid, series_uid, sop, "MR", 5, i + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.ManufacturerModelName = "Skyra"
        ds.SeriesDescription = "T2 TSE AX"
        _add_pixels(ds, _phantom(size, size, seed=50 + i))
        staged.append(ds)
        fs.add(ds)
        out.planted_uids.add(sop)
    out.planted_uids.update({study_uid, series_uid})
    cd_root.mkdir(parents=True, exist_ok=True)
    fs.write(cd_root)
    for path in sorted(cd_root.rglob("*")):
        if path.is_file() and path.name != "DICOMDIR":
            out.dicom_files.append(path)
    out.non_dicom.append(cd_root / "DICOMDIR")


def _problem_files(root: Path, patient: FakePatient, out: SynthExport) -> None:
    """What every real export has: viewer files, a PDF named .dcm, broken and odd files."""
    viewer = root / "VIEWER"
    viewer.mkdir(parents=True, exist_ok=True)
    (viewer / "index.html").write_text(f"<html>Viewer for {patient.name}</html>", encoding="utf-8")
    (root / "AUTORUN.INF").write_text("[autorun]\nopen=VIEWER\\viewer.exe\n", encoding="ascii")
    report = root / patient.folder / f"Report_{patient.patient_id}.pdf"
    report.write_bytes(b"%PDF-1.4\n" + patient.name.encode("utf-8") + b"\n%%EOF\n")
    fake = root / patient.folder / "REPORT.dcm"
    fake.write_bytes(b"%PDF-1.4\n" + patient.patient_id.encode() + b"\n%%EOF\n")
    out.non_dicom += [viewer / "index.html", root / "AUTORUN.INF", report, fake]
    broken = root / patient.folder / "BROKEN"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "IM_EMPTY").write_bytes(b"")
    good = out.dicom_files[0].read_bytes()
    (broken / "IM_TRUNC.dcm").write_bytes(good[: len(good) // 3])
    out.bad_files += [broken / "IM_EMPTY", broken / "IM_TRUNC.dcm"]
    # a dataset without preamble or file meta (old exports): valid, must be handled
    ds = base_dataset(patient, CT_IMAGE, synth_uid("study", patient.patient_id), synth_uid("series", patient.patient_id, 0),
               synth_uid("nopreamble", patient.patient_id), "CT", 1, 99)
    _add_pixels(ds, _phantom(32, 32, seed=3))
    del ds.file_meta
    nopre = broken / "NOPREAMBLE"
    ds.save_as(nopre, implicit_vr=True, little_endian=True)
    out.planted_uids.add(ds.SOPInstanceUID)
    out.dicom_files.append(nopre)

