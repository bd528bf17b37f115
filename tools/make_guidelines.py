"""Regenerate guidelines/confidentiality_profile.csv and guidelines/safe_private.csv.

Source: ../shared/reference (DICOM PS3.15 2026d Table E.1-1 and Table E.3.10-1, see its README).
Run from the repository root:  python tools/make_guidelines.py [REFERENCE_DIR]
The output is committed; the tools never read the reference folder at run time.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag

EDITION = "2026d"
# VRs from PS3.6 2026d for attributes newer than pydicom 3.0.2's dictionary.
NEW_ATTRIBUTE_VRS = {
    "(0008,1301)": "SQ", "(0008,1302)": "SQ", "(0008,1303)": "SQ", "(0008,1304)": "SQ",
    "(0010,0011)": "SQ", "(0010,0012)": "PN", "(0010,0013)": "UT", "(0010,0014)": "SQ",
    "(0010,0015)": "SQ", "(0010,0016)": "UT", "(0010,0041)": "SQ", "(0010,0042)": "UT",
    "(0010,0043)": "SQ", "(0010,0044)": "SQ", "(0010,0045)": "UT", "(0010,0046)": "SQ",
    "(0010,0047)": "UR", "(0010,2162)": "UC", "(0040,A034)": "DT", "(0040,A035)": "DT",
    "(0040,B034)": "DT", "(0040,B036)": "DT", "(0040,B03B)": "LO", "(0040,B03F)": "LO",
    "(0040,E012)": "UR", "(3004,007F)": "LO",
}
OPTION_COLUMNS = {
    "rtn_safe_priv": "retain_safe_private",
    "rtn_uids": "retain_uids",
    "rtn_dev_id": "retain_device_identity",
    "rtn_inst_id": "retain_institution_identity",
    "rtn_pat_chars": "retain_patient_characteristics",
    "rtn_long_full_dates": "retain_long_full_dates",
    "rtn_long_modif_dates": "retain_long_modified_dates",
    "clean_desc": "clean_descriptors",
    "clean_struct_cont": "clean_structured_content",
    "clean_graph": "clean_graphics",
}
HEADER_E1 = f"""\
# DICOM PS3.15 {EDITION} Table E.1-1 Application Level Confidentiality Profile Attributes ({{rows}} rows)
# edition: {EDITION}
# One row per attribute. basic = action of the Basic Profile; the option columns give the action
# when that option is switched on in settings.ini (empty = the option does not change it).
# Codes (PS3.15 E.1.1): X remove, Z empty (or dummy), D dummy value, K keep, C clean,
# U new UID; combined codes (X/Z, Z/D, X/D, X/Z/D, X/Z/U*) are resolved per README.txt.
# Tags with xx are masked groups: (50xx,xxxx) curves, (60xx,3000) overlays; (gggg,eeee) = private.
"""


def make_profile(reference: Path, out: Path) -> int:
    rows = list(csv.DictReader((reference / "e1_1.csv").open(encoding="utf-8")))
    fields = ["tag", "name", "keyword", "vr", "basic", *OPTION_COLUMNS.values(), "retired"]
    with out.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER_E1.format(rows=len(rows)))
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            tag = r["tag"]
            vr = NEW_ATTRIBUTE_VRS.get(tag, "")
            if not vr and "x" not in tag and "g" not in tag:
                vr = dictionary_VR(int(tag[1:5] + tag[6:10], 16))
            w.writerow({
                "tag": tag, "name": r["name"], "keyword": r["keyword"], "vr": vr,
                "basic": r["basic"],
                **{new: r[old] for old, new in OPTION_COLUMNS.items()},
                "retired": r["retd"],
            })
    return len(rows)


def make_safe_private(reference: Path, out: Path) -> int:
    rows = list(csv.DictReader((reference / "safe_private.csv").open(encoding="utf-8")))
    with out.open("w", encoding="utf-8", newline="") as f:
        f.write(f"# DICOM PS3.15 Table E.3.10-1 Safe Private Attributes ({len(rows)} rows); used when\n"
                "# retain_safe_private = yes. tag is (gggg,xxEE): xx is the private block, matched via\n"
                "# private_creator. Rows may be added for site-verified attributes; add a note.\n")
        w = csv.DictWriter(f, fieldnames=["private_creator", "tag", "name", "vr", "vm", "note"],
                           lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({"private_creator": r["private_creator"], "tag": r["tag"], "name": r["name"],
                        "vr": r["vr"], "vm": r["vm"], "note": ""})
    return len(rows)


if __name__ == "__main__":
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "reference"
    root = Path(__file__).resolve().parents[1] / "guidelines"
    print(make_profile(ref, root / "confidentiality_profile.csv"), "profile rows")
    print(make_safe_private(ref, root / "safe_private.csv"), "safe private rows")
