"""Blanked rectangles found from the pixels: the straight edge where a blanked box cuts anatomy is
not text, for deid_tool's looks after blanking (detector-blanked and person-approved images) and
for --verify alike; real text beside a blanked box is still found."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from deidkit import cli_deid, pixel_detect, pixels, review_decisions, synth, verify
from deidkit.verify.onefile import look_for_text

US = "1.2.840.10008.5.1.4.1.1.6.1"


def us_frame(box: tuple[int, int, int, int] = (0, 0, 56, 116)) -> np.ndarray:
    """make_export's ultrasound anatomy (128 x 128, uint8) with box (top, left, bottom, right)
    blanked to the frame's black, as deid_tool's redaction leaves it."""
    img = (synth._phantom(128, 128, seed=7, bits=8) // 2).astype(np.uint8)
    t, l, b, r = box
    img[t:b, l:r] = img.min()
    return img


def look(frame: np.ndarray, photometric: str = "MONOCHROME2") -> list:
    return pixels.edge_aware_look(frame, photometric, None, pixels._blank_value(frame, photometric, None))


def write_us(path: Path, frame: np.ndarray, photometric: str = "MONOCHROME2") -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path.name])
    ds.Modality = "US"
    ds.Rows, ds.Columns = frame.shape[:2]
    ds.SamplesPerPixel = 3 if frame.ndim == 3 else 1
    if frame.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8 * frame.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = frame.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_the_detector_alone_sees_the_cut_edge_as_text():
    # the defect's kind: without knowing where boxes were blanked the edge reads as text
    assert pixel_detect.find_text_in_frame(us_frame()) != []


@pytest.mark.parametrize("box", [(0, 0, 56, 116), (40, 20, 90, 100), (0, 30, 40, 128), (70, 0, 128, 128)])
def test_edge_of_a_blanked_box_through_anatomy_is_not_text(box):
    assert look(us_frame(box)) == []


def test_edge_is_ignored_in_16_bit_monochrome1_and_rgb():
    grey = us_frame().astype(np.uint16) * 40
    assert look(grey) == []
    inverted = (grey.max() - grey).astype(np.uint16)  # MONOCHROME1: black is the maximum
    assert look(inverted, "MONOCHROME1") == []
    rgb = np.repeat(us_frame()[..., None], 3, axis=2)
    assert look(rgb, "RGB") == []


@pytest.mark.parametrize("gap", [1, 4, 8])
def test_text_just_below_a_blanked_box_is_still_found(gap):
    img = us_frame()
    synth.burn_text(img, "JOHN", 56 + gap, 40, 255)
    boxes = look(img)
    assert boxes and any(b.top <= 56 + gap + 7 < b.bottom and b.left <= 50 < b.right for b in boxes)


@pytest.mark.parametrize("gap", [1, 4, 8])
def test_text_just_right_of_a_blanked_box_is_still_found(gap):
    img = us_frame((0, 0, 56, 70))
    synth.burn_text(img, "1961", 20, 70 + gap, 255)
    boxes = look(img)
    assert boxes and any(b.top <= 27 < b.bottom and b.left <= 80 < b.right for b in boxes)


def test_text_on_black_is_not_taken_for_a_blanked_box():
    black = np.zeros((128, 128), np.uint8)
    synth.burn_text(black, "TTTTEEEE", 40, 4, 255)
    assert look(black) != []
    band = us_frame((40, 0, 60, 128))  # a black band holding a line of text
    synth.burn_text(band, "TTTTEEEE", 43, 4, 255)
    assert look(band) != []


def test_verify_does_not_fail_a_blanked_box_but_fails_text_beside_it(tmp_path):
    assert look_for_text(write_us(tmp_path / "a.dcm", us_frame())) == ([], "")
    img = us_frame()
    synth.burn_text(img, "JOHN", 59, 40, 255)
    boxes, why = look_for_text(write_us(tmp_path / "b.dcm", img))
    assert boxes and why == ""


# ---- end to end: make_export's ultrasound, approved with its proposed box ----------------------

def run(source: Path, out: Path) -> int:
    return cli_deid.main([str(source), "--out", str(out), "--yes", "--key", str(out.parent / "site.key"),
                          "--workers", "1"])


def decide(hospital: Path, name: str, boxes: str | None = None) -> dict[str, str]:
    path = hospital / review_decisions.DECISIONS_NAME
    with path.open(encoding="utf-8", newline="") as fp:
        rows = list(csv.DictReader(fp))
    (row,) = [r for r in rows if r["original_file"].endswith(name)]
    row["decision"] = "approve"
    if boxes is not None:
        row["boxes"] = boxes
    with path.open("w", encoding="utf-8", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return row


def held(hospital: Path) -> dict[str, dict[str, str]]:
    with (hospital / "held_back.csv").open(encoding="utf-8-sig", newline="") as fp:
        return {r["ref"]: r for r in csv.DictReader(fp)}


def pixel_findings(out: Path, tmp: Path) -> list[dict[str, str]]:
    findings = tmp / "findings.csv"
    verify.main(["--verify", str(out), "--findings", str(findings), "--report", str(tmp / "r.html")])
    with findings.open(encoding="utf-8", newline="") as fp:
        return [r for r in csv.DictReader(fp) if r["rule"].startswith("burned-in")]


@pytest.fixture
def first_run(tmp_path):
    base = tmp_path / "b"
    synth.make_export(base / "EXPORT", instances_per_series=1, image_size=64, include_problems=False)
    assert run(base / "EXPORT", base / "OUT") == 1
    return base


def test_approved_with_its_proposal_is_sent_and_verify_agrees(first_run, tmp_path):
    base = first_run
    row = decide(base / "OUT_HOSPITAL_ONLY", "US/US0001")
    assert row["boxes"]  # the tool proposed a box
    run(base / "EXPORT", base / "OUT")
    assert held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]["status"] == "written"
    assert pixel_findings(base / "OUT", tmp_path) == []


def test_approved_boxes_that_miss_text_keep_it_back_and_say_where(first_run, tmp_path):
    base = first_run
    row = decide(base / "OUT_HOSPITAL_ONLY", "US/US0001", "0:0,0,128,20")  # the birth date line is left
    run(base / "EXPORT", base / "OUT")
    got = held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]
    assert got["status"] == "held" and "still found outside the approved boxes" in got["reason"]
    assert pixel_findings(base / "OUT", tmp_path) == []  # nothing with text went out
    with (base / "OUT_HOSPITAL_ONLY" / review_decisions.DECISIONS_NAME).open(encoding="utf-8") as fp:
        again = {r["ref"]: r for r in csv.DictReader(fp)}[row["ref"]]
    assert again["decision"] == "approve" and "still found" in again["reason"]
