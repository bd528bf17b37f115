"""End to end: a generated export with PHI planted everywhere goes through deid_tool."""
from __future__ import annotations

import filecmp
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from conftest import find_leaks
from deidkit import cli_deid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(synth_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "OUT"
    key = out.parent / "site.key"
    code = cli_deid.main([str(synth_export.root), "--out", str(out), "--yes", "--key", str(key)])
    return synth_export, out, key, code


def _outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def test_exit_status_says_something_was_held_back(run):
    _, out, _, code = run
    assert code == 1  # the export holds an SR with free text, a PDF and broken files
    assert (out / "deid_manifest.csv").is_file() and (out / "deid_summary.txt").is_file()


def test_no_planted_value_in_any_output_byte_or_path(run):
    export, out, _, _ = run
    leaks = find_leaks(out, export.all_secrets())
    assert leaks == []


def test_no_original_uid_survives(run):
    export, out, _, _ = run
    leaks = find_leaks(out, export.planted_uids)
    assert leaks == []


def test_every_readable_image_is_written_and_held_back_objects_are_not(run):
    export, out, _, _ = run
    held = (out.parent / "OUT_HOSPITAL_ONLY" / "held_back.csv").read_text(encoding="utf-8")
    assert "[text-review]" in held  # the SR naming someone unknown waits for a person
    assert "encapsulated document" in held
    assert "empty file" in held
    assert "truncated" in held
    sop_classes = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID) for p in _outputs(out)}
    assert "1.2.840.10008.5.1.4.1.1.88.11" in sop_classes  # the SR cleaned by Clean Structured Content
    assert "1.2.840.10008.5.1.4.1.1.104.1" not in sop_classes  # PDF


def test_references_resolve_to_output_instances(run):
    _, out, _, _ = run
    instances, referenced = set(), set()
    for p in _outputs(out):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        instances.add(ds.SOPInstanceUID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert ds.PatientIdentityRemoved == "YES"
        for key in ("ReferencedImageSequence", "SourceImageSequence"):
            for item in ds.get(key, []):
                referenced.add(item.ReferencedSOPInstanceUID)
        for series in ds.get("ReferencedSeriesSequence", []):
            for item in series.ReferencedImageSequence:
                referenced.add(item.ReferencedSOPInstanceUID)
    # references written by the synthetic PACS (not the planted junk) all point at output files
    structural = {u for u in referenced if u in instances}
    assert len(structural) >= 8
    planted_refs = referenced - instances
    assert all(u.startswith("2.25.") for u in planted_refs)


def test_studies_and_series_group_exactly_as_before(run):
    export, out, _, _ = run
    before, after = defaultdict(set), defaultdict(set)
    by_original = {}
    for p in export.dicom_files:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        except Exception:
            continue
        if str(ds.get("Modality", "")) in ("SR", "DOC", "US") or "SOPInstanceUID" not in ds:  # held back by design
            continue
        before[(ds.StudyInstanceUID, ds.SeriesInstanceUID)].add(ds.SOPInstanceUID)
        by_original[ds.SOPInstanceUID] = ds
    for p in _outputs(out):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if str(ds.get("Modality", "")) == "SR":
            continue
        after[(ds.StudyInstanceUID, ds.SeriesInstanceUID)].add(ds.SOPInstanceUID)
    assert sorted(len(v) for v in before.values()) == sorted(len(v) for v in after.values())
    assert len({k[0] for k in before}) == len({k[0] for k in after})


def test_pixel_data_is_byte_identical_and_useful_attributes_are_kept(run):
    export, out, _, _ = run
    originals = {}
    for p in export.dicom_files:
        ds = pydicom.dcmread(p, force=True)
        if ds.get("Modality") == "CT" and "PixelData" in ds:
            originals[(int(ds.SeriesNumber), int(ds.InstanceNumber), bytes(ds.PixelData))] = ds
    pixels = {k[2] for k in originals}
    checked = 0
    for p in _outputs(out):
        ds = pydicom.dcmread(p)
        if ds.Modality != "CT":
            continue
        assert bytes(ds.PixelData) in pixels
        assert ds.Manufacturer == "SIEMENS" and ds.ManufacturerModelName == "SOMATOM Force"
        assert ds.BodyPartExamined == "CHEST"
        assert ds.PatientAge == "061Y" and ds.PatientSex == "M"
        assert ds.PatientName == ds.PatientID and str(ds.PatientID).startswith("SUBJ_")
        checked += 1
    assert checked >= 20


def test_same_key_same_bytes_different_key_different_output(run, tmp_path):
    export, out, key, _ = run
    again = tmp_path / "AGAIN"
    cli_deid.main([str(export.root), "--out", str(again), "--yes", "--key", str(key)])
    cmp = filecmp.dircmp(out, again)
    assert not cmp.left_only and not cmp.right_only
    for p in _outputs(out):
        assert p.read_bytes() == (again / p.relative_to(out)).read_bytes()
    assert (out / "deid_manifest.csv").read_bytes() == (again / "deid_manifest.csv").read_bytes()
    other = tmp_path / "OTHER"
    cli_deid.main([str(export.root), "--out", str(other), "--yes", "--key", str(tmp_path / "other.key")])
    assert {p.name for p in _outputs(out)}.isdisjoint({p.name for p in _outputs(other)})


def test_originals_are_never_modified(synth_export, tmp_path):
    before = {p: p.read_bytes() for p in synth_export.root.rglob("*") if p.is_file()}
    cli_deid.main([str(synth_export.root), "--out", str(tmp_path / "X"), "--yes", "--key", str(tmp_path / "k")])
    after = {p: p.read_bytes() for p in synth_export.root.rglob("*") if p.is_file()}
    assert before == after


def test_script_contract_exit_codes_and_key_refused_inside_dest(synth_export, tmp_path):
    dest = tmp_path / "D"
    r = subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(synth_export.root), "--out", str(dest),
                        "--yes", "--key", str(dest / "k.txt")], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "key" in r.stderr.lower()
    r = subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(tmp_path / "missing"), "--yes"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "2026d" in r.stdout


def test_hospital_side_records_stay_outside_the_output(run):
    _, out, _, _ = run
    hospital = out.parent / "OUT_HOSPITAL_ONLY"
    assert (hospital / "held_back.csv").is_file()
    assert not any(p.name in ("held_back.csv", "progress.jsonl", "run_log.txt") for p in out.rglob("*"))
    assert {p.name for p in out.iterdir() if p.is_file()} == {"deid_manifest.csv", "deid_summary.txt"}


def test_full_disk_while_writing_reports_gives_a_clear_line(synth_export, tmp_path, monkeypatch, capsys):
    import errno

    from deidkit import reports

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(reports, "write_outward", full)
    code = cli_deid.main([str(synth_export.root), "--out", str(tmp_path / "F"), "--yes", "--key", str(tmp_path / "k")])
    err = capsys.readouterr().err
    assert code == 1 and "output disk is full" in err and "Traceback" not in err


def test_the_synthetic_export_is_the_same_bytes_every_time(tmp_path):
    """--demo's export (and the planted values a leak scan looks for) can be made again exactly:
    the DICOMDIR's File-set UID was drawn at random by pydicom."""
    from deidkit.synth import make_export

    a, b = make_export(tmp_path / "A", image_size=32), make_export(tmp_path / "B", image_size=32)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    assert [f for f in files if (a.root / f).read_bytes() != (b.root / f).read_bytes()] == []
    assert a.planted_uids == b.planted_uids
