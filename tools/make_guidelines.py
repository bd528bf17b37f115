"""Regenerate guidelines/confidentiality_profile.csv, safe_private.csv and private_tag_kb.csv.

Source: ../shared/reference (DICOM PS3.15 2026d Table E.1-1 and Table E.3.10-1, and TCIA's
Private Tag Knowledge Base 2024-02-01; see its README). private_tag_kb.csv merges the two private
lists (E.3.10-1 wins where they differ); guidelines/research_private.csv (our own, hand-written)
is read by the loader on top of it and is not generated.
Run from the repository root:  python tools/make_guidelines.py [REFERENCE_DIR]
The output is committed; the tools never read the reference folder at run time.
"""
from __future__ import annotations

import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

from pydicom.datadict import dictionary_VR

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


# TCIA dispositions (README of the reference folder); 'na' = inside a structure removed whole.
KB_MEANING = {"k": "keep", "h": "hash: remap UID-like value with the keyed UID mapping",
              "o": "offset: shift the date/date-time by the patient's offset",
              "oi": "offset integer: a date as a number of seconds, shifted by the patient's offset",
              "d": "delete"}
# Order when one element has several rows that disagree: the most protective wins.
KB_PROTECTION = {"d": 4, "h": 3, "o": 2, "oi": 2, "k": 1}
_SEGMENT_RE = re.compile(r'^\(([0-9A-Fa-f]{4}),"?(.*?)"?,([0-9A-Fa-f]{2})\)$')
# Siemens CSA headers hold free text (protocol, operator comments): dropped, whatever a list says.
NEVER_KEEP_CREATORS = {"siemens csa header", "siemens csa non-image", "siemens csa report"}


def _last_private_segment(pattern: str) -> tuple[int, str, int, bool] | None:
    """'(0008,1115)[<0>](2001,"Philips Imaging DD 001",c1)' -> (0x2001, creator, 0xC1, nested)."""
    segments = re.split(r"\[<\d+>\]", pattern)
    m = _SEGMENT_RE.match(segments[-1].strip())
    if not m or not m.group(2).strip():
        return None  # a public element inside a private sequence, or no creator: not a row for us
    return int(m.group(1), 16), m.group(2), int(m.group(3), 16), len(segments) > 1


def merge_private(reference: Path) -> list[dict[str, str]]:
    """One row per (creator, group, element byte): E.3.10-1 keeps win, then TCIA's disposition.

    TCIA often lists an element once per VR it was seen with and once per place (top level or
    inside a sequence). Rows at top level are preferred to nested ones, rows with a real VR to
    UN/OB ones (TCIA deletes what it could not read); if the rest still disagree the most
    protective disposition wins (d > h > o/oi > k)."""
    rows: dict[tuple[str, int, int], list[tuple[str, str, bool, str, str]]] = defaultdict(list)
    with (reference / "tcia_private_tag_kb.csv").open(encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            seg = _last_private_segment(r["element_sig_pattern"])
            if seg is None:
                continue
            group, creator, elem, nested = seg
            disposition = r["private_disposition"].strip().lower() or "d"
            disposition = "d" if disposition == "na" else disposition
            if disposition not in KB_MEANING:
                raise SystemExit(f"unknown TCIA disposition {disposition!r} in {r['element_sig_pattern']}")
            name = r["tag_name"].split(":")[-1]
            rows[(creator.strip().lower(), group, elem)].append((disposition, r["vr"].strip().upper(), nested,
                                                                 creator.strip(), name))
    out: dict[tuple[str, int, int], dict[str, str]] = {}
    for key, seen in rows.items():
        chosen = [s for s in seen if not s[2]] or seen
        typed = [s for s in chosen if s[1] not in ("UN", "OB", "OW", "")]
        chosen = typed or chosen
        disposition = max((s[0] for s in chosen), key=lambda d: KB_PROTECTION[d])
        if key[0] in NEVER_KEEP_CREATORS:
            disposition = "d"
        vrs = sorted({s[1] for s in chosen if s[1]} - {"UN"})
        out[key] = {"private_creator": chosen[0][3], "tag": f"({key[1]:04X},xx{key[2]:02X})",
                    "name": chosen[0][4], "vr": "/".join(vrs), "disposition": disposition,
                    "source": "TCIA 2024-02-01"}
    with (reference / "safe_private.csv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            group, elem = int(r["tag"][1:5], 16), int(r["tag"][8:10], 16)
            key = (r["private_creator"].strip().lower(), group, elem)
            before = out.get(key)
            note = "E.3.10-1" if before is None else (
                "E.3.10-1 (TCIA agrees)" if before["disposition"] == "k" else f"E.3.10-1 (TCIA: {before['disposition']})")
            out[key] = {"private_creator": r["private_creator"].strip(), "tag": f"({group:04X},xx{elem:02X})",
                        "name": r["name"], "vr": r["vr"], "disposition": "k", "source": note}
    return [out[k] for k in sorted(out, key=lambda k: (k[1], k[0], k[2]))]


def make_private_kb(reference: Path, out: Path) -> int:
    rows = merge_private(reference)
    counts = {d: sum(1 for r in rows if r["disposition"] == d) for d in KB_MEANING}
    with out.open("w", encoding="utf-8", newline="") as f:
        f.write("# Private attribute knowledge base: PS3.15 Table E.3.10-1 (Safe Private Attributes) merged with\n"
                "# The Cancer Imaging Archive's Private Tag Knowledge Base (edition 2024-02-01). Generated by\n"
                "# tools/make_guidelines.py; do not edit by hand (site additions go in research_private.csv).\n"
                "# Used when retain_safe_private = yes. One row per private creator + element byte (tag (gggg,xxEE):\n"
                "# xx is whatever block the creator got in the file). E.3.10-1 wins where the lists differ; an\n"
                "# element on neither list is deleted. Elements kept here are kept on the judgement of DICOM's\n"
                "# sample list and of TCIA (PS3.15 E.3.10: vendors guarantee no list). Siemens CSA headers are\n"
                "# deleted here (free text); research_private.csv keeps them only as deidkit/csa.py cleans them.\n"
                "# disposition: " + "; ".join(f"{k} = {v}" for k, v in KB_MEANING.items()) + "\n"
                "# counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
        w = csv.DictWriter(f, fieldnames=["private_creator", "tag", "name", "vr", "disposition", "source"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "reference"
    root = Path(__file__).resolve().parents[1] / "guidelines"
    print(make_profile(ref, root / "confidentiality_profile.csv"), "profile rows")
    print(make_safe_private(ref, root / "safe_private.csv"), "safe private rows")
    print(make_private_kb(ref, root / "private_tag_kb.csv"), "private knowledge base rows")
