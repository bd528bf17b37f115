"""Blanked rectangles found from the pixels: the straight edge where a blanked box cuts anatomy is
not text, for deid_tool's looks after blanking (detector-blanked and person-approved images) and
for --verify alike; real text beside a blanked box is still found."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from deidkit import engine, pixel_detect, pixels, review_decisions, synth, verify
from deidkit.verify.onefile import look_for_text
from helpers import run_deid

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


@pytest.fixture
def edge_to_edge(monkeypatch):
    """The detector looking at a 128 x 128 frame edge to edge, as it did before small frames were
    put on a canvas (pixel_detect.SMALL_FRAME): then it reads the cut edge as text."""
    monkeypatch.setattr(pixel_detect, "SMALL_FRAME", 0)


def test_the_detector_alone_sees_the_cut_edge_as_text(edge_to_edge):
    # the defect's kind: without knowing where boxes were blanked the edge reads as text
    assert pixel_detect.find_text_in_frame(us_frame()) != []


@pytest.mark.parametrize("canvas", [True, False])
@pytest.mark.parametrize("box", [(0, 0, 56, 116), (40, 20, 90, 100), (0, 30, 40, 128), (70, 0, 128, 128)])
def test_edge_of_a_blanked_box_through_anatomy_is_not_text(box, canvas, monkeypatch):
    if not canvas:
        monkeypatch.setattr(pixel_detect, "SMALL_FRAME", 0)
    assert look(us_frame(box)) == []


@pytest.mark.parametrize("box", [(40, 30, 46, 100), (60, 25, 66, 105), (50, 30, 57, 100), (64, 30, 68, 98),
                                 (30, 60, 100, 66), (30, 40, 100, 45)])
def test_a_box_thinner_than_8_pixels_is_recognised_as_blanked(box):
    # a person's box over one line of small text, through anatomy: its long cut edges are marked
    img = us_frame(box)
    edges = pixel_detect.blank_edges(img, img.min())
    t, l, b, r = box
    if b - t < r - l:  # a flat box: its top and bottom rows (inside the box) are cut edges
        assert edges[t, l + 2:r - 2].mean() > 0.9 and edges[b - 1, l + 2:r - 2].mean() > 0.9
    else:
        assert edges[t + 2:b - 2, l].mean() > 0.9 and edges[t + 2:b - 2, r - 1].mean() > 0.9
    assert not edges[:, :l].any() and not edges[:, r:].any()  # nothing outside the box
    assert look(img) == []


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
    return run_deid(source, out, out.parent / "site.key")


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


def proposal_in_state(hospital: Path, ref: str, proposal: str) -> None:
    """Make the tool's recorded proposal (progress.jsonl) `proposal`, as if the tool had proposed it."""
    path = hospital / "progress.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("ref") == ref:
            rec["proposal"] = proposal
            lines[i] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_approved_as_proposed_but_more_text_found_keeps_it_back_and_says_where(first_run, tmp_path):
    # the tool proposed a box and, after blanking it, finds more: the person has not seen that text
    base = first_run
    row = decide(base / "OUT_HOSPITAL_ONLY", "US/US0001", "0:0,0,128,20")  # the birth date line is left
    proposal_in_state(base / "OUT_HOSPITAL_ONLY", row["ref"], "0:0,0,128,20")
    run(base / "EXPORT", base / "OUT")
    got = held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]
    assert got["status"] == "held" and "still found outside the approved boxes" in got["reason"]
    assert pixel_findings(base / "OUT", tmp_path) == []  # nothing with text went out
    with (base / "OUT_HOSPITAL_ONLY" / review_decisions.DECISIONS_NAME).open(encoding="utf-8") as fp:
        again = {r["ref"]: r for r in csv.DictReader(fp)}[row["ref"]]
    assert again["decision"] == "approve" and "still found" in again["reason"]


def test_boxes_a_person_changed_stand_and_verify_asks_a_person_not_fail(first_run, tmp_path):
    # the person narrowed the proposal (a box removed as a false alarm): their decision is final
    base = first_run
    row = decide(base / "OUT_HOSPITAL_ONLY", "US/US0001", "0:0,0,128,20")
    run(base / "EXPORT", base / "OUT")
    assert held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]["status"] == "written"
    found = pixel_findings(base / "OUT", tmp_path)
    assert [(f["rule"], f["severity"]) for f in found] == [("burned-in:text-in-reviewed-pixels", "REVIEW")]
    (out,) = [p for p in (base / "OUT").rglob("*.dcm") if pydicom.dcmread(p).Modality == "US"]
    ds = pydicom.dcmread(out)
    assert engine.PERSON_REVIEWED in list(ds[0x00120063].value)
    frame = ds.pixel_array
    assert (frame[0:20, 0:128] == frame.min()).all()  # exactly the person's box blanked
    assert (frame[20:56, 0:116] != frame.min()).any()  # and nothing else


def test_approved_with_its_proposal_is_marked_reviewed(first_run, tmp_path):
    base = first_run
    decide(base / "OUT_HOSPITAL_ONLY", "US/US0001")
    run(base / "EXPORT", base / "OUT")
    (out,) = [p for p in (base / "OUT").rglob("*.dcm") if pydicom.dcmread(p).Modality == "US"]
    assert engine.PERSON_REVIEWED in list(pydicom.dcmread(out)[0x00120063].value)


# ---- parametric maps: noise is judged (no text); a frame the text finder cannot judge waits -----

def texture_map(seed: int = 7, n: int = 64) -> np.ndarray:
    """A noisy float parametric map (like Siemens XA30 ADC/FA/TRACEW, 64 x 64) whose texture the
    detector read as text over most of the frame when it looked at small frames edge to edge."""
    return np.random.default_rng(seed).uniform(0, 0.003, (n, n)).astype(np.float32)


def texture_map_16(seed: int = 7, n: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 4095, (n, n)).astype(np.uint16)


def text_map(n: int = 64, dtype: type = np.float32, top: float = 0.003) -> np.ndarray:
    """A small map whose every line is text (5x7 glyphs over noise): "text" over most of the frame,
    which the text finder cannot judge (annotation never covers most of a frame)."""
    frame = np.random.default_rng(5).uniform(0, top * 0.3, (n, n)).astype(dtype)
    for i, row in enumerate(range(2, n - 7, 10)):
        synth.burn_text(frame, "ABCDEFGHIJKLMNOP"[i:i + 10], row, 1, top, 1)  # type: ignore[arg-type]
    return frame


def write_map(path: Path, frame: np.ndarray, sop: str = "1.2.3.9") -> Path:
    """A DERIVED\\PRIMARY MR map (float: Float Pixel Data, or 16-bit) with fake PHI."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[sop])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[sop, "st"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[sop, "se"])
    ds.PatientName, ds.PatientID, ds.Modality = "MAP^TEST", "MAP123", "MR"
    ds.ImageType = ["DERIVED", "PRIMARY", "ADC"]
    ds.Manufacturer, ds.SoftwareVersions = "SIEMENS", "syngo MR XA30"
    ds.Rows, ds.Columns = frame.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 * frame.dtype.itemsize
    if frame.dtype.kind == "f":
        ds.FloatPixelData = frame.tobytes()
    else:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = frame.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("frame", [texture_map(), texture_map(22), texture_map_16(), texture_map_16(22, 64),
                                   texture_map(3, 72), texture_map_16(9, 32), texture_map(4, 48),
                                   texture_map_16(5, 4)])
def test_a_noise_map_is_judged_and_has_no_text(tmp_path, frame):
    # issue 16: noisy XA30 ADC/TRACEW/FA maps (64 x 64, 72 x 72) were held as "text" all over
    outcome = pixels.clean_pixels(pydicom.dcmread(write_map(tmp_path / "m.dcm", frame)), [])
    assert outcome.status == "clean" and outcome.boxes == [[]]


def tiny_text(n: int, seed: int) -> np.ndarray:
    frame = texture_map_16(seed, n) // 8
    synth.burn_text(frame, "JD"[:max(1, (n - 2) // 6)], n // 2 - 3, 1, 4095, 1)
    return frame


@pytest.mark.parametrize("frame", [texture_map_16(9, 16), texture_map(4, 16), texture_map_16(1, 8),
                                   tiny_text(16, 1), tiny_text(24, 2), tiny_text(8, 3)])
def test_a_frame_too_small_to_judge_waits_for_a_person_with_no_boxes(tmp_path, frame):
    # 16 x 16 images were proposed whole; the text finder misses some of the one to three glyphs
    # a frame under MIN_JUDGED pixels holds: fail closed, with the reason
    outcome = pixels.clean_pixels(pydicom.dcmread(write_map(tmp_path / "m.dcm", frame)), [])
    assert outcome.status == "hold" and outcome.for_person and outcome.boxes == []
    assert outcome.reason == pixels.CANNOT_JUDGE and f"under {pixel_detect.MIN_JUDGED} pixels" in outcome.reason


@pytest.mark.parametrize("frame", [text_map(), text_map(72), text_map(64, np.uint16, 4095)])
def test_text_over_most_of_a_map_waits_for_a_person_with_no_boxes(tmp_path, frame):
    outcome = pixels.clean_pixels(pydicom.dcmread(write_map(tmp_path / "m.dcm", frame)), [])
    assert outcome.status == "hold" and outcome.for_person and outcome.boxes == []
    assert outcome.reason == pixels.CANNOT_JUDGE


def test_map_that_cannot_be_judged_approved_as_is_goes_out_unchanged_with_the_marker(tmp_path):
    base = tmp_path / "b"
    frame = text_map()
    write_map(base / "EXPORT" / "MAP" / "ADC0001", frame)
    assert run(base / "EXPORT", base / "OUT") == 1
    with (base / "OUT_HOSPITAL_ONLY" / review_decisions.DECISIONS_NAME).open(encoding="utf-8") as fp:
        (row,) = list(csv.DictReader(fp))
    assert row["boxes"] == "" and "cannot judge" in row["reason"]
    assert held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]["status"] == "held"
    decide(base / "OUT_HOSPITAL_ONLY", "MAP/ADC0001")
    run(base / "EXPORT", base / "OUT")
    assert held(base / "OUT_HOSPITAL_ONLY")[row["ref"]]["status"] == "written"
    (out,) = list((base / "OUT").rglob("*.dcm"))
    ds = pydicom.dcmread(out)
    assert ds.FloatPixelData == frame.tobytes()  # byte-identical pixels
    assert engine.PERSON_REVIEWED in list(ds[0x00120063].value)
    assert all(f["severity"] != "FAIL" for f in pixel_findings(base / "OUT", tmp_path))


