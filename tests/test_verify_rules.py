"""--verify's rules one kind at a time (issues 17, 12, 13, 18, 20): every false-alarm kind as a
clean case that must not FAIL, every leak kind as a leaky case that must be named at its place;
the rule catalogue, --list-rules and README's list; kit files; special files; the record; Dask.
All inputs are generated here with pydicom (made-up values)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless
from test_verify import clean_dataset, pseudonym, run_verify, write_clean_export

from deidkit import guidelines as gl
from deidkit import verify

REPO = Path(__file__).resolve().parents[1]
BASIC_ONLY = ("basic",)


@pytest.fixture(scope="module")
def g() -> gl.Guidelines:
    guidelines = gl.load()
    gl.register_new_attributes(guidelines)
    return guidelines


def check(ds: Dataset, tmp_path: Path, g: gl.Guidelines, name: str = "IMG_00001_0000ABCD.dcm",
          mutate=None) -> list[verify.Finding]:
    """Write ds as a one-file delivery and return the file's findings."""
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    if mutate:
        path.write_bytes(mutate(path.read_bytes()))
    return verify.check_file(path, name, False, g).findings


def fails(findings: list[verify.Finding]) -> list[verify.Finding]:
    return [f for f in findings if f.severity == "FAIL"]


def named(findings: list[verify.Finding], location: str, rule: str | None = None) -> bool:
    return any(f.location == location and (rule is None or f.rule == rule) for f in findings)


# ---- false-alarm kinds: clean values that must not FAIL -------------------------------------------

@pytest.mark.parametrize("keyword, value", [
    ("SoftwareVersions", "MR Software release:DV28.0_R04_2220.a"),
    ("SoftwareVersions", "syngo MR XA30"),
    ("ManufacturerModelName", "Ingenia Elition X"),
    ("ReceiveCoilName", "HeadNeck_64"),
    ("ImageComments", "measured,/MAR^CT Breast"),
    ("ImageComments", "TE 72 55 153 ms"),
    ("ImageComments", "version 19.13.2020 of the sequence"),      # not a calendar date
    ("DerivationDescription", "Lossy compression ratio 10:1 SCP-ECG 2.0"),
    ("SeriesDescription", "T1_MPRAGE_SAG_P2_ISO_1.0"),
    ("ImageComments", "Philips MR Imaging DD 001"),                # the MR 'title' rule
    ("ImageComments", "MS lesion follow-up"),
    ("StudyDescription", "FMRIF^QA"),                              # NIH dcm_qa: Region^Exam with an acronym
    ("PerformedProcedureStepDescription", "FMRIF^QA"),
    ("StudyDescription", "Research^MCBI_TESTING"),                 # Siemens dcm_qa
])
def test_vendor_text_is_not_a_leak(keyword, value, tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    setattr(ds, keyword, value)
    assert fails(check(ds, tmp_path, g)) == []


def test_code_values_and_scheme_versions_are_not_ids_or_dates(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    items = []
    for value, scheme, meaning, version in (("121311", "DCM", "Localizer", ""), ("113076", "DCM", "Segmentation", ""),
                                            ("5.10.3-1", "SCPECG", "Lead I", "20180101")):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        if version:
            item.CodingSchemeVersion = version
        items.append(item)
    ds.DerivationCodeSequence = Sequence(items)
    assert check(ds, tmp_path, g) == []


def test_private_creator_text_and_safe_private_are_not_names(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    block = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
    block.add_new(0x01, "FL", 1.5)  # Table E.3.10-1 keeps it
    findings = check(ds, tmp_path, g)
    assert findings == []


def test_neutral_file_names(g):
    for name in ("IM-0001-0002-0001.dcm", "IM0001", "I10", "00000001.dcm", "MR.2.25.1234567890123.dcm",
                 "2.25.987654321987654321.dcm", "sub-01_ses-1_T1w", "SE000003"):
        assert [p for p in verify.name_problems(name, g) if p[1] == "FAIL"] == [], name


def test_deflated_and_compressed_deid_output_is_read(tmp_path, g):
    deflated = clean_dataset(0, 0, 1)
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    assert check(deflated, tmp_path, g, "DEFL.dcm") == []
    rle = clean_dataset(0, 0, 2)
    rle.compress(RLELossless, np.zeros((8, 8), dtype=np.uint16), generate_instance_uid=False)
    assert check(rle, tmp_path, g, "RLE.dcm") == []


def test_value_kept_by_declared_profile_is_no_finding(tmp_path, g):
    options = ("basic", "retain_safe_private", "retain_patient_characteristics", "retain_long_modified_dates",
               "clean_descriptors", "clean_graphics", "retain_device_identity")
    ds = clean_dataset(0, 0, 1, options=options)
    ds.StationName = "CTAWP73412"
    ds.DeviceSerialNumber = "48211"
    findings = check(ds, tmp_path, g)
    assert not any(f.location in ("(0008,1010)", "(0018,1000)") for f in findings)
    assert fails(findings) == []


def test_vendor_text_in_many_patients_is_not_a_known_identity(tmp_path):
    root = tmp_path / "D"
    for p in range(3):
        ds = clean_dataset(p, 0, 1)
        ds.SoftwareVersions = "syngo MR XA30"
        ds.ImageComments = "Philips MR Imaging DD 001"
        path = root / pseudonym(p) / "IMG_00001_0000ABCD.dcm"
        path.parent.mkdir(parents=True)
        ds.save_as(path, enforce_file_format=True)
    code, rows, _ = run_verify(root, tmp_path)
    assert code == 0 and rows == []


# ---- leak kinds: each named at its place ----------------------------------------------------------

def test_times_and_dates_are_named_per_attribute(tmp_path, g):
    ds = clean_dataset(0, 0, 1, options=BASIC_ONLY)
    del ds[0x00190010:0x00191100]
    ds.StudyDate = ds.SeriesDate = ""
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime, ds.ContentTime = "101112", "101113", "101114", "101115"
    ds.AcquisitionDateTime = "20190304101112"
    findings = check(ds, tmp_path, g)
    for tag in ("(0008,0030)", "(0008,0031)", "(0008,0032)", "(0008,0033)", "(0008,002A)"):
        assert named(fails(findings), tag), tag


def test_undeclared_file_is_judged_without_options(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    del ds.DeidentificationMethodCodeSequence
    del ds.DeidentificationMethod
    del ds.PatientIdentityRemoved
    ds.StudyTime = "101112"
    ds.RequestedProcedureDescription = "CT THORAX for Mr Quistgaard"
    ds.VerifyingOrganization = "St Elsewhere Clinic"
    findings = check(ds, tmp_path, g)
    assert named(fails(findings), "(0008,0030)")
    assert named(fails(findings), "(0032,1060)")
    assert named(findings, "(0040,A027)")


def test_ae_titles_certificates_selectors_and_overlays_are_named(tmp_path, g):
    ds = clean_dataset(0, 0, 1, options=BASIC_ONLY)
    ds.ScheduledStationAETitle = "CTSCANNER4"
    ds.add_new(0x00400241, "AE", "CTSCANNER4")           # Performed Station AE Title
    ds.CertificateOfSigner = b"-----BEGIN CERTIFICATE----- CN=Jane Roe, O=St Elsewhere  "
    selector = Dataset()
    selector.SelectorAttribute = 0x00100010
    selector.SelectorAttributeVR = "LO"
    selector.SelectorLOValue = "QUISTGAARD KAREN"
    ds.add_new(0x00720022, "SQ", Sequence([selector]))  # Image Set Selector Sequence
    ds.add_new(0x60003000, "OW", b"\xff\x00" * 8)
    ds.file_meta.SourceApplicationEntityTitle = "PACS_GATEWAY"
    findings = check(ds, tmp_path, g)
    assert named(fails(findings), "(0040,0001)")
    assert named(fails(findings), "(0040,0241)")
    assert named(fails(findings), "(0400,0115)", "devices:dummy-looks-real") or named(fails(findings), "(0400,0115)")
    assert named(fails(findings), "(0072,0022)[0]>(0072,0066)")  # judged as the Patient's Name it selects
    assert named(fails(findings), "(6000,3000)", "sequences:overlay-data")
    assert named(findings, "(0002,0016)", "devices:source-ae-title")


def test_private_outside_kept_list_is_named(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    block = ds.private_block(0x0011, "ACME PATIENT DATA 01", create=True)  # on no private table (GEMS_PATI_01 xx10 is kept by the TCIA knowledge base)
    block.add_new(0x10, "SS", 3)
    block.add_new(0x11, "LO", "PET4711")
    findings = check(ds, tmp_path, g)
    assert named(fails(findings), "(0011,1010)", "private:not-safe-listed")
    assert named(fails(findings), "(0011,1011)", "private:not-safe-listed")


@pytest.mark.parametrize("preamble, severity", [
    (b"MZ" + b"\0" * 126, "FAIL"),
    (b"GE_PET_AE ID 4711081542".ljust(128, b"\0"), "FAIL"),
    (bytes(i % 16 + 1 for i in range(128)), "REVIEW"),
])
def test_preamble_not_zero(preamble, severity, tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    ds.preamble = preamble
    findings = check(ds, tmp_path, g)
    assert any(f.location == "preamble" and f.rule == "bytes:preamble-not-zero" and f.severity == severity
               for f in findings)


def test_pixel_padding_and_trailing_bytes(tmp_path, g):
    padded = clean_dataset(0, 0, 1)
    padded.PixelData = padded.PixelData + b"QUISTGAARD^KAREN 4711081542 St Elsewhere"
    assert named(fails(check(padded, tmp_path, g, "P.dcm")), "pixels", "bytes:pixel-data-padding")
    one_pad = clean_dataset(0, 0, 2)
    one_pad.BitsAllocated, one_pad.Rows, one_pad.Columns = 8, 3, 3
    one_pad.PixelData = b"\0" * 10  # 9 bytes + the even-length pad: fine
    assert check(one_pad, tmp_path, g, "Q.dcm") == []
    trailing = clean_dataset(0, 0, 3)
    found = check(trailing, tmp_path, g, "T.dcm", mutate=lambda b: b + b"QUISTGAARD^KAREN 4711 Main Street.....")
    assert named(fails(found), "bytes", "bytes:trailing-bytes")
    padding = clean_dataset(0, 0, 4)
    padding.add_new(0xFFFCFFFC, "OB", b"KAREN QUISTGAARD")
    assert named(fails(check(padding, tmp_path, g, "U.dcm")), "(FFFC,FFFC)", "bytes:trailing-bytes")


@pytest.mark.parametrize("age, leak", [
    ("092Y", True), ("091Y", True), ("100Y", True),
    ("090Y", False),  # the aggregate deid_tool writes for 90 and over
    ("089Y", False), ("999M", False), ("054Y", False),
])
def test_age_over_89(age, leak, tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    ds.PatientAge = age
    assert named(check(ds, tmp_path, g), "(0010,1010)", "dates:age-over-89") is leak


def test_patient_name_in_another_vr_and_outside_its_attribute(tmp_path, g):
    root = tmp_path / "D"
    ds = clean_dataset(0, 0, 1)
    ds[0x00100010].VR = "LO"
    ds.PatientName = "QUISTGAARD^KAREN"
    path = root / pseudonym(0) / "IMG_00001_0000ABCD.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    other = clean_dataset(0, 0, 2)
    other.add_new(0x00181030, "LO", "QUISTGAARD ROUTINE")  # Protocol Name holds the surname
    other.save_as(root / pseudonym(0) / "IMG_00002_0000ABCE.dcm", enforce_file_format=True)
    _, rows, _ = run_verify(root, tmp_path)
    assert any(r["location"] == "(0010,0010)" and r["rule"] == "names:patient-name-wrong-vr" for r in rows)
    assert any(r["location"] == "(0018,1030)" and r["rule"] == "names:known-identity" for r in rows)


def test_unlisted_text_that_looks_identifying(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    unlisted = pydicom.datadict.tag_for_keyword("InventoryInstanceDescription")
    assert g.rule_for(unlisted) is None
    ds.add_new(unlisted, "LT", "Called Dr. Miller on 2019-03-04, mail k.roe@example.org")
    findings = check(ds, tmp_path, g)
    rules = {f.rule for f in findings if f.location == f"({unlisted >> 16:04X},{unlisted & 0xFFFF:04X})"}
    assert {"names:person-name-in-text", "dates:date-in-text", "addresses:email-in-text"} <= rules


def test_burned_in_text_on_a_flagged_cr(tmp_path, g):
    from deidkit.synth import burn_text

    ds = clean_dataset(0, 0, 1)
    ds.Modality = "CR"
    ds.BurnedInAnnotation = "YES"
    img = np.full((128, 128), 200, dtype=np.uint16)
    burn_text(img, "KAREN QUISTGAARD 1961", 10, 8, 4000)
    ds.Rows, ds.Columns, ds.PixelData = 128, 128, img.tobytes()
    findings = check(ds, tmp_path, g)
    assert any(f.location == "pixels" and f.rule.startswith("burned-in:") for f in findings)


def test_every_leak_is_in_the_csv_however_many(tmp_path):
    root = tmp_path / "D"
    ds = clean_dataset(0, 0, 1, options=BASIC_ONLY)
    for i, kw in enumerate(("InstitutionName", "InstitutionAddress", "OperatorsName", "PerformingPhysicianName",
                            "StationName", "RequestingPhysician", "PhysiciansOfRecord", "StudyDescription")):
        setattr(ds, kw, f"Value{i} Roe")
    path = root / pseudonym(0) / "IMG_00001_0000ABCD.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    _, rows, report = run_verify(root, tmp_path)
    for tag in ("(0008,0080)", "(0008,0081)", "(0008,1070)", "(0008,1050)", "(0008,1010)", "(0032,1032)",
                "(0008,1048)", "(0008,1030)"):
        assert any(r["location"] == tag and r["severity"] == "FAIL" for r in rows), tag
    html = report.read_text(encoding="utf-8")
    assert "Findings by file" in html and html.count("<tr>") < len(rows)  # grouped, not one row each


# ---- special files, long paths, kit files ---------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_listed_never_opened(tmp_path):
    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=1, manifest=False)
    os.mkfifo(root / "IM0001.dcm")
    code, rows, _ = run_verify(root, tmp_path)  # would block for ever if it opened the FIFO
    assert any(r["file"] == "IM0001.dcm" and r["rule"] == "files:not-regular-file" for r in rows)
    assert code == 1


def test_path_too_long_is_listed_without_traceback(tmp_path, monkeypatch, capsys):
    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=1, manifest=False)
    monkeypatch.chdir(root)
    for _ in range(25):  # made relative to the folder before, so each step is allowed
        os.mkdir("d" * 200)
        os.chdir("d" * 200)
    Path("IM0001.dcm").write_bytes(b"DOE^JOHN")
    monkeypatch.chdir(tmp_path)
    code, rows, _ = run_verify(root, tmp_path)
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    assert any(r["rule"] == "files:path-too-long" for r in rows)


def test_long_path_errors_become_findings(tmp_path, monkeypatch, g):
    import errno

    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=1, manifest=False)
    real_walk = os.walk

    def walk(top, **kw):
        kw["onerror"](OSError(errno.ENAMETOOLONG, "File name too long", str(Path(top) / ("x" * 300))))
        yield from real_walk(top, **kw)

    monkeypatch.setattr(verify.delivery.os, "walk", walk)
    v = verify.verify(root, g, jobs=1)
    assert any(f.rule == "files:path-too-long" for f in v.findings)


def test_kit_files_are_recognised_by_name_and_content(tmp_path):
    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=2)
    from deidkit import contract

    shutil.copy(REPO / "rename_folders.py", root / "rename_folders.py")
    bundle = b"guidelines/confidentiality_profile.csv" + b"\0" * 32 + b"MEI\014\013\012\013\016"  # PyInstaller's tail
    (root / "deid_tool").write_bytes(b"\x7fELF" + b"\0" * 60 + bundle)
    (root / "rename_folders.exe").write_bytes(b"MZ" + b"\0" * 100 + bundle)
    (root / "index.csv").write_text(",".join(contract.INDEX_COLUMNS) + "\n", encoding="utf-8")
    code, rows, report = run_verify(root, tmp_path)
    assert rows == [] and code == 0
    html = report.read_text(encoding="utf-8")
    assert "remove it before sending" in html
    # the same names with other content are findings
    (root / "rename_folders").write_text("DOE^JOHN 1961-02-03\n", encoding="utf-8")
    (root / "index.csv").write_text("name,dob\nDOE^JOHN,19610203\n", encoding="utf-8")
    code, rows, _ = run_verify(root, tmp_path)
    assert code == 1 and {"rename_folders", "index.csv"} <= {r["file"] for r in rows}


# ---- the record, the catalogue, --list-rules, README -----------------------------------------------

def test_report_is_a_record(tmp_path):
    root = tmp_path / "Delivery 2026-11 Site Roe"
    write_clean_export(root)
    _, _, report = run_verify(root, tmp_path)
    html = report.read_text(encoding="utf-8")
    assert "<title>Verify report: Delivery 2026-11 Site Roe</title>" in html
    g = gl.load()
    for text in ("Checked at: ", " UTC", "deid_tool 0.", g.sha256, "Declared profile: ",
                 "retain_safe_private", "deid_manifest.csv checked: all 4 listed file(s) present and unchanged"):
        assert text in html, text


def test_verdict_says_what_decided_it(tmp_path, g):
    root = tmp_path / "D"
    write_clean_export(root, manifest=False)
    first = sorted(root.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.PatientBirthDate = "19610203"
    ds.save_as(first)
    v = verify.verify(root, g, jobs=1)
    assert v.status == "FAIL" and {f.rule for f in v.deciding} == {"dates:attribute-not-emptied"}
    assert "Decided by: dates:attribute-not-emptied (1)" in verify.record_lines("D", v, g)


def test_every_emitted_rule_is_in_the_catalogue():
    with pytest.raises(KeyError):
        verify.rules.make("a", "b", "names:no-such-rule", "FAIL", "")
    with pytest.raises(ValueError):
        verify.rules.make("a", "b", "files:link", "FAIL", "")
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "deidkit" / "verify").glob("*.py"))
    literal = set(re.findall(r'"([a-z-]+:[a-z0-9-]+)"', source))
    assert literal - set(verify.CATALOGUE) == set()


def test_list_rules(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "deid_tool.py"), "--verify", "--list-rules"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0
    assert p.stdout.splitlines() == verify.catalogue_lines()


def readme_rules() -> list[str]:
    text = (REPO / "README.txt").read_text(encoding="utf-8")
    m = re.search(r"^Verify rules.*?\n(.*?)(?:\n\S|\Z)", text, re.S | re.M)
    assert m, "README.txt has no 'Verify rules' section"
    return [line.split()[0] for line in m.group(1).splitlines() if line.strip() and ":" in line.split()[0]]


def test_readme_lists_every_rule():
    assert readme_rules() == sorted(verify.CATALOGUE)


# ---- scale: a pure per-file check, all cores, Dask ------------------------------------------------

def test_check_file_is_pure(tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    ds.PatientBirthDate = "19610203"
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert verify.check_file(path, "a.dcm", True, g) == verify.check_file(path, "a.dcm", True, g)


def test_dask_local_cluster_gives_the_same_verdict(tmp_path, g, monkeypatch):
    pytest.importorskip("distributed")
    pytest.importorskip("dask.bag")
    import distributed.comm.inproc
    import distributed.comm.utils

    for module in (distributed.comm.inproc, distributed.comm.utils):  # it asks the route to 8.8.8.8
        monkeypatch.setattr(module, "get_ip", lambda *a, **k: "127.0.0.1")
    root = tmp_path / "D"
    write_clean_export(root, patients=2, per_patient=3)
    first = sorted(root.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.OperatorsName = "ROE^JANE"
    ds.save_as(first)
    local = verify.verify(root, g, jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="inproc://",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = verify.verify_on_dask(root, g, client, batch=2)
    assert remote.findings == local.findings and remote.status == local.status == "FAIL"


def test_findings_csv_and_page_neutralise_injection(tmp_path):
    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=1, manifest=False)
    (root / "=HYPERLINK(x)").write_bytes(b"not dicom")
    (root / "<script>alert(1)<").write_bytes(b"not dicom")
    (root / "@SUM(A1)\x1b[2J").write_bytes(b"not dicom")
    _, rows, report = run_verify(root, tmp_path)
    files = {r["file"] for r in rows}
    assert "'=HYPERLINK(x)" in files and "=HYPERLINK(x)" not in files
    assert not any("\x1b" in f for f in files) and any(f.startswith("'@SUM(A1)") for f in files)
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html and "&lt;" in html


def test_items_of_a_kept_private_sequence_are_judged(tmp_path, g, monkeypatch):
    ds = clean_dataset(0, 0, 1)
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    inner = Dataset()
    inner.PatientName = "QUISTGAARD^KAREN"
    inner.add_new(0x0019100C, "IS", "1000")  # no creator in the item: the sequence's is read
    block.add_new(0x20, "SQ", Sequence([inner]))
    monkeypatch.setattr(verify.elements, "private_kept", lambda g, creator, group, element: creator == "SIEMENS MR HEADER")
    findings = check(ds, tmp_path, g)
    assert named(fails(findings), "(0019,1020)[0]>(0010,0010)")
    assert not named(findings, "(0019,1020)[0]>(0019,100C)")


def test_damaged_files_never_raise(tmp_path, g):
    """Byte flips, truncations and bad length fields (fixed seed): one finding or none, no exception."""
    import random

    base = tmp_path / "base.dcm"
    clean_dataset(0, 0, 1).save_as(base, enforce_file_format=True)
    data = base.read_bytes()
    rng = random.Random(17)
    for i in range(150):
        b = bytearray(data)
        if i % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif i % 3 == 1:
            b = b[:rng.randrange(len(b))]
        else:
            pos = rng.randrange(132, len(b) - 4)
            b[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x01\x00", b"\xfe\xff\x00\xe0"])
        path = tmp_path / f"f{i}.dcm"
        path.write_bytes(bytes(b))
        result = verify.check_file(path, path.name, True, g)
        assert all(f.rule in verify.CATALOGUE for f in result.findings)


def test_kit_folders_are_left_out(tmp_path):
    root = tmp_path / "D"
    write_clean_export(root, patients=1, per_patient=1)
    (root / "_internal" / "pydicom").mkdir(parents=True)
    (root / "_internal" / "base_library.zip").write_bytes(b"PK\x03\x04 deidkit")
    shutil.copytree(REPO / "deidkit", root / "deidkit")
    (root / "_internal" / "pydicom" / "DOE^JOHN.py").write_text("x = 1\n", encoding="utf-8")
    shutil.copytree(REPO / "guidelines", root / "guidelines")
    code, rows, report = run_verify(root, tmp_path)
    assert rows == [] and code == 0
    html = report.read_text(encoding="utf-8")
    assert html.count("program folder") == 3  # _internal, deidkit and guidelines, not every file in them


@pytest.mark.parametrize("text, rule", [
    ("Results were discussed with Karina Blixenfeldt by phone.", "names:name-in-narrative"),
    ("Seen by nurse Jensen on the ward.", "text:cleaner-would-remove"),
    ("No acute disease. Lungs are clear.", None),
])
def test_narrative_text_is_judged_by_the_senders_cleaner(text, rule, tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    ds.ContentSequence = Sequence([item])
    findings = [f for f in check(ds, tmp_path, g) if f.location == "(0040,A730)[0]>(0040,A160)"]
    assert [f.rule for f in findings] == ([rule] if rule else [])
    assert all(f.severity == "REVIEW" for f in findings)


def test_declared_retention_options_are_recorded_not_findings(tmp_path, g):
    root = tmp_path / "D"
    options = ("basic", "retain_safe_private", "retain_patient_characteristics", "retain_long_full_dates",
               "clean_descriptors", "clean_graphics", "retain_uids", "retain_device_identity")
    ds = clean_dataset(0, 0, 1, options=options)
    ds.StudyInstanceUID = "1.3.12.2.1107.5.1.4.12345.30000019"  # kept under retain_uids
    ds.StationName = "CTAWP73412"                              # kept under retain_device_identity
    path = root / pseudonym(0) / "IMG_00001_0000ABCD.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    v = verify.verify(root, g, jobs=1)
    assert v.findings == () and v.status == "PASS"
    assert "retain_uids" in v.profiles[0][0] and "retain_device_identity" in v.profiles[0][0]


@pytest.mark.parametrize("value", ["SMITH^JOHN", "Smith^CT", "DOE^JOHN T2", "HEAD^Harms"])
def test_caret_names_in_descriptors_still_fail(value, tmp_path, g):
    ds = clean_dataset(0, 0, 1)
    ds.StudyDescription = value
    assert named(fails(check(ds, tmp_path, g)), "(0008,1030)", "names:person-name-in-text")


@pytest.mark.parametrize("value", ["FMRIF^QA", "NEURO^HIRNSTAMM", "HEAD^Brain", "Research^MCBI_TESTING", "SMITH^JOHN T2",
                                   "Smith^CT", "HEAD^Harms", "DOE^CT", "MR^HEAD^Smith", "QA^FMRIF^JONES"])
def test_what_clean_descriptors_leaves_is_no_caret_name_for_verify(value, g):
    """deid_tool and --verify judge A^B alike: what Clean Descriptors keeps, --verify does not FAIL."""
    from deidkit.sweep import Identifiers, clean_descriptor
    from deidkit.verify.text import text_hits

    ids = Identifiers(patient_name_known=True)
    ids.add_name("QUISTGAARD^ASTRID")
    cleaned = clean_descriptor(value, g.vocabulary, ids)
    assert [h for h in text_hits(cleaned, "LO", "StudyDescription", g.vocabulary) if h[0] == "person_name"] == []
