"""Regenerate guidelines/unlisted_text_attributes.csv: every public attribute of pydicom's data
dictionary with a text VR (LO, LT, SH, ST, UT, UC, PN) that Table E.1-1 does not list, with the
action deid_tool takes and the reason (issue 12 kind 5: no attribute is kept by omission).

    python tools/make_unlisted_text.py            (writes the CSV; prints the counts per action)

The rules are applied in order; the first that matches the keyword decides. Review the diff of
the CSV when pydicom's dictionary grows: new rows come in as C (cleaned) unless a rule says more.
Actions: K keep (coded or technical value; the own-identifier sweep still runs), C clean with
deidkit.text_clean (names, dates, phones, addresses, IDs removed; words kept), X remove, Z empty.
kept_by: the option under which an X row is kept instead (device / institution identity).
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom import __version__ as pydicom_version  # noqa: E402
from pydicom.datadict import DicomDictionary  # noqa: E402

from deidkit import guidelines as gl  # noqa: E402

TEXT_VRS = {"LO", "LT", "SH", "ST", "UT", "UC", "PN"}

# (pattern on the keyword, action, kept_by, reason)
RULES: list[tuple[str, str, str, str]] = [
    (r"^(DeidentificationMethod|.*PrivateCreator)$", "K", "",
     "written by the de-identification itself / a private block's creator name"),
    (r"^.*(Anatomic|ReferenceLocation).*$", "C", "", "anatomy in words: cleaned like free text"),
    (r"^(Patient|Person|Mother|Father|Subject|Responsible).*(Date|Calendar|Birth|Death|Religious|Ethnic|Occupation|"
     r"Insurance|Address|Telephone).*$", "X", "", "describes the patient (like the patient rows of Table E.1-1)"),
    (r"^.*(OrderNumber|AccessionNumber|RequestID|AdmissionID|VisitID|EncounterID|UniformResourceLocator|"
     r"RetrieveURL|RetrieveURI|.*URL)$|^(PlacerOrder|FillerOrder).*$", "X", "",
     "an order, visit or accession number or a web address: links back to the hospital's records"),
    (r"^(RadiationMachineName|TreatmentMachineName|.*StationName|.*DeviceName|.*DeviceID|DeviceLabel|"
     r".*SerialNumber|.*EquipmentName|.*MachineName|.*DetectorID|.*UniqueDeviceIdentifier|UDI.*|"
     r".*DeviceDescription|.*ScannerName|.*GantryID|.*CassetteID|.*PlateID|.*SourceSerialNumber)$",
     "X", "retain_device_identity", "device identity (a named machine, like Station Name or Device Serial Number)"),
    (r"^.*(Address|Telephone|Telecom|EMail|Email).*$", "X", "", "contact details"),
    (r"^.*(Institution|Organization|Organisation|Department|Facility|Hospital|Issuer|Location|Room|"
     r"PointOfCare|Bed|Ward|Building|Floor|SiteName|SiteID|Country|CityOrTown|Region).*$",
     "X", "retain_institution_identity", "institution or place (like Institution Name)"),
    (r"^.*(Person|Operator|Physician|Observer|Author|Reader|Performer|Participant|Contact|Responsible|"
     r"Requesting|Referring|Technician|Nurse|Sponsor|Investigator|Interpreter|Reviewer|Approver|Signer|"
     r"Creator|Patient|Subject|Mother|Father|Owner|Breed|Guardian|Donor|Recipient|Witness)"
     r"(Name|Names|ID|IDs|Identifier|Identifiers|Role|Title)?$", "X", "", "identifies or describes a person"),
    (r"^(CodeValue|LongCodeValue|URNCodeValue|CodingSchemeDesignator|CodingSchemeVersion|CodingSchemeName|"
     r"CodingSchemeRegistry|CodingSchemeExternalID|CodingSchemeResponsibleOrganization|ContextIdentifier|"
     r"ContextGroupVersion|MappingResource|MappingResourceName|ContextGroupLocalVersion|"
     r"Manufacturer|ManufacturerModelName|SoftwareVersions|DeviceVersion|.*Manufacturer|.*ModelName|"
     r".*SoftwareVersions?|.*AlgorithmName|.*AlgorithmVersion|AlgorithmFamily.*|ConvolutionKernel|"
     r"SequenceName|PulseSequenceName|.*CoilName|ReceiveCoilManufacturerName|FilterType|FilterMaterial|"
     r"ContrastBolusAgent|ContrastBolusRoute|ContrastBolusIngredient|Radiopharmaceutical|Radionuclide.*|"
     r"Isotope.*|CountsSource|DecayCorrection|ReconstructionMethod|AttenuationCorrectionMethod|"
     r"ScatterCorrectionMethod|RandomsCorrectionMethod|DetectorType|GridID|Grid|AnodeTargetMaterial|"
     r"CollimatorGridName|CollimatorType|TransducerData|TransducerType|ProcessingFunction|"
     r"ReceiveCoilType|PatientPosition|ViewName|VOILUTFunction|FrameOfReferenceTransformationComment|"
     r".*Units?|.*UnitsOfMeasure.*|LUTExplanation|WindowCenterWidthExplanation|"
     r"MeasurementUnitsCodeSequence|TransferSyntax.*|.*CharacterSet|.*Encoding|DataSetName|"
     r"ReferencedColorPaletteInstanceUID|ColorSpace|ICCProfile.*|PaletteColorLookupTableUID|"
     r"FrameType|ImageType|DerivationDescription|PhotometricInterpretation|ModalityLUTType|"
     r"RescaleType|LabelText)$",
     "K", "", "coded or technical value (code, scheme, product, method, unit): research value; the own-identifier sweep still runs"),
    (r"^.*(Description|Comments?|Notes?|Text|Label|Reason|Instructions?|Title|Meaning|Value|Purpose|"
     r"Remarks?|Query|Message|Explanation|Annotation|Caption|Name|Names|Condition|Statement|Summary|"
     r"Justification|Narrative|Interpretation|Keyword|Keywords)$",
     "C", "", "free text: names, dates, phone numbers, addresses and IDs removed, words kept"),
    (r"^.*(ID|IDs|Identifier|Identifiers|Number|Numbers)$", "C", "",
     "an identifier of something (not a person): ID-like numbers and names removed"),
]


def decide(keyword: str, vr: str) -> tuple[str, str, str]:
    if vr == "PN":
        return "Z", "", "person name (every PN outside the table is emptied)"
    for pattern, action, kept_by, reason in RULES:
        if re.match(pattern, keyword):
            return action, kept_by, reason
    return "C", "", "text of no fixed meaning: cleaned like free text (fail closed; words kept)"


def main() -> None:
    g = gl.load()
    rows = []
    for tag, (vr, _vm, name, retired, keyword) in sorted(DicomDictionary.items()):
        if vr not in TEXT_VRS or g.rule_for(tag) is not None or not keyword:
            continue
        action, kept_by, reason = decide(keyword, vr)
        rows.append((f"({tag >> 16:04X},{tag & 0xFFFF:04X})", name, keyword, vr, action, kept_by,
                     "Y" if retired else "N", reason))
    out = ROOT / "guidelines" / gl.UNLISTED_TEXT_FILE
    with out.open("w", newline="", encoding="utf-8") as fp:
        fp.write(f"# Public attributes with a text VR (LO LT SH ST UT UC PN) that PS3.15 Table E.1-1 does not list\n"
                 f"# ({len(rows)} rows, pydicom {pydicom_version} data dictionary), each decided once (issue 12):\n"
                 "# K keep (coded/technical; own-identifier sweep still runs), C clean (deidkit.text_clean),\n"
                 "# X remove, Z empty. kept_by: option under which X becomes K. Regenerate with\n"
                 "# tools/make_unlisted_text.py; rows may be edited by hand (say why in reason).\n")
        writer = csv.writer(fp, lineterminator="\n")
        writer.writerow(["tag", "name", "keyword", "vr", "action", "kept_by", "retired", "reason"])
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[4]] = counts.get(r[4], 0) + 1
    print(out, len(rows), counts)


if __name__ == "__main__":
    main()
