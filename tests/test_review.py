"""Step 4 end to end: every image that can carry text is looked at, a person's decisions in
review_decisions.csv are applied by a rerun, and a further rerun changes nothing.

Images are built here with pydicom, text rendered with Pillow (test-only dependency); fake PHI only.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless,
                         RLELossless, generate_uid)

from deidkit import cli_deid, pixel_detect, review_decisions
from deidkit.review_decisions import Decision, DecisionError, Region

US = "1.2.840.10008.5.1.4.1.1.6.1"
CR = "1.2.840.10008.5.1.4.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
PM = "1.2.840.10008.5.1.4.1.1.30"
USMF = "1.2.840.10008.5.1.4.1.1.3.1"
PHI = ["DOE^JANE  MRN 00412345", "DOB 03/12/1961"]


def anatomy(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    disc = (((yy - rows / 2) / (rows * 0.35)) ** 2 + ((xx - cols / 2) / (cols * 0.35)) ** 2) < 1
    img = disc * (0.35 + 0.25 * np.sin(xx / 23.0) * np.cos(yy / 31.0))
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)


def text_mask(rows: int, cols: int, top: int = 4, left: int = 6) -> np.ndarray:
    layer = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(14)
    for i, line in enumerate(PHI):
        draw.text((left, top + 18 * i), line, fill=255, font=font)
    return np.asarray(layer) > 127


def image(name: str, *, sop: str, modality: str, text: bool, frames: int = 1, bits: int = 8,
          rgb: bool = False, rows: int = 192, cols: int = 256, float_data: bool = False,
          **header) -> Dataset:
    """One de-identifiable image of a fake patient; text (PHI) on every frame when text=True."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = "DOE^JANE", "00412345"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name, "series"])
    ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20240102", modality, 1, 1
    for k, v in header.items():
        setattr(ds, k, v)
    top = 1.0 if float_data else (1 << bits) - 1
    stack = []
    for f in range(frames):
        img = anatomy(rows, cols, f) * top * 0.7
        if text:
            img[text_mask(rows, cols)] = top * 0.97
        stack.append(img)
    a = np.stack(stack)
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelRepresentation = 0
    if float_data:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated = 1, "MONOCHROME2", 32
        ds.FloatPixelData = (a * 1000 - 200).astype(np.float32).tobytes()
        del ds.PixelRepresentation
        return ds
    if rgb:
        a = np.stack([a, a * 0.9, a * 0.8], axis=-1)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelData = a.round().astype(np.uint8 if bits <= 8 else np.uint16).tobytes()
    return ds


def build_source(root: Path) -> dict[str, Dataset]:
    """A small export covering each class the risk table names, text and no text."""
    images = {
        "us_text": image("us_text", sop=US, modality="US", text=True),
        "us_clean": image("us_clean", sop=US, modality="US", text=False),
        "us_rle": image("us_rle", sop=US, modality="US", text=True),
        "us_jls": image("us_jls", sop=US, modality="US", text=True, bits=12),
        "us_j2k": image("us_j2k", sop=US, modality="US", text=True, rgb=True),
        "us_jpeg": image("us_jpeg", sop=US, modality="US", text=True, rgb=True),
        "us_multi": image("us_multi", sop=USMF, modality="US", text=True, frames=3),
        "cr_text_flag_no": image("cr_text_flag_no", sop=CR, modality="CR", text=True, bits=12,
                                 BurnedInAnnotation="NO"),
        "cr_clean": image("cr_clean", sop=CR, modality="CR", text=False, bits=12),
        "dx_clean_no_flag": image("dx_clean_no_flag", sop=CR, modality="DX", text=False, bits=16),
        "ct_derived_clean": image("ct_derived_clean", sop=CT, modality="CT", text=False, bits=12,
                                  ImageType=["DERIVED", "SECONDARY"]),
        "ct_derived_text": image("ct_derived_text", sop=CT, modality="CT", text=True, bits=12,
                                 ImageType=["DERIVED", "SECONDARY"]),
        "ct_original": image("ct_original", sop=CT, modality="CT", text=False, bits=12,
                             ImageType=["ORIGINAL", "PRIMARY", "AXIAL"]),
        "pmap_text": image("pmap_text", sop=PM, modality="MR", text=True, float_data=True,
                           ImageType=["DERIVED", "PRIMARY"]),
        "undecided": image("undecided", sop=US, modality="US", text=True),
        "rejected": image("rejected", sop=US, modality="US", text=True),
    }
    for i, (name, ds) in enumerate(images.items()):
        ds.InstanceNumber = i + 1
        if name == "us_rle":
            ds.compress(RLELossless, generate_instance_uid=False)
        elif name == "us_jls":
            ds.compress(JPEGLSLossless, generate_instance_uid=False)
        elif name == "us_j2k":
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        elif name == "us_jpeg":
            _jpeg_baseline(ds)
        root.mkdir(parents=True, exist_ok=True)
        ds.save_as(root / f"{name}.dcm", enforce_file_format=True)
    return images


def _jpeg_baseline(ds: Dataset) -> None:
    """Encode an RGB dataset as JPEG Baseline with Pillow (pydicom has no baseline encoder)."""
    import io

    from pydicom.encaps import encapsulate

    arr = ds.pixel_array
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit


def run(source: Path, out: Path) -> int:
    return cli_deid.main([str(source), "--out", str(out), "--yes", "--key", str(out.parent / "site.key"),
                          "--workers", "1"])


def read_rows(hospital: Path) -> list[dict[str, str]]:
    with (hospital / review_decisions.DECISIONS_NAME).open(encoding="utf-8", newline="") as fp:
        return list(csv.DictReader(fp))


def tree_digest(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name != "run_log.txt":
                out[str(p.relative_to(folder.parent))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def held_refs(hospital: Path) -> dict[str, str]:
    with (hospital / "held_back.csv").open(encoding="utf-8", newline="") as fp:
        return {r["original_file"]: r["reason"] for r in csv.DictReader(fp) if r["status"] == "held"}


def outputs_by_source(out: Path) -> dict[str, Dataset]:
    """Written outputs keyed by the source name (InstanceNumber maps back to build order)."""
    names = list(_NAMES)
    found = {}
    for p in out.rglob("*.dcm"):
        ds = pydicom.dcmread(p)
        found[names[int(ds.InstanceNumber) - 1]] = ds
    return found


_NAMES = ["us_text", "us_clean", "us_rle", "us_jls", "us_j2k", "us_jpeg", "us_multi", "cr_text_flag_no",
          "cr_clean", "dx_clean_no_flag", "ct_derived_clean", "ct_derived_text", "ct_original", "pmap_text",
          "undecided", "rejected"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    source = base / "EXPORT"
    images = build_source(source)
    out = base / "OUT"
    code = run(source, out)
    return source, out, base / "OUT_HOSPITAL_ONLY", images, code


# ---- the boxes text ------------------------------------------------------------------------------

def test_boxes_text_round_trips_and_rejects_what_is_not_a_box():
    regions = review_decisions.parse_boxes("0:10,20,110,40; *:0,0,64,16;2:5,5,6,6")
    assert regions == [Region(0, 10, 20, 110, 40), Region(None, 0, 0, 64, 16), Region(2, 5, 5, 6, 6)]
    assert review_decisions.parse_boxes(review_decisions.format_boxes(regions)) == sorted(
        regions, key=lambda r: (-1 if r.frame is None else r.frame, r.y0, r.x0, r.y1, r.x1))
    assert review_decisions.parse_boxes("") == []
    for bad in ("0:10,20,110", "a:1,2,3,4", "0:10,20,5,40", "0:1,2,3,2", "1,2,3,4"):
        with pytest.raises(DecisionError):
            review_decisions.parse_boxes(bad)


def test_a_box_on_every_frame_is_proposed_once_for_all_frames():
    same = [1, 2, 11, 22]
    regions = review_decisions.regions_from_frames([[same, [5, 5, 9, 9]], [same], [same]])
    assert set(regions) == {Region(None, 2, 1, 22, 11), Region(0, 5, 5, 9, 9)}
    # a few pixels apart from frame to frame: one box covering all of them
    jitter = review_decisions.regions_from_frames([[[0, 0, 20, 100]], [[2, 1, 22, 104]], [[0, 60, 10, 90]]])
    assert set(jitter) == {Region(0, 0, 0, 100, 20), Region(1, 1, 2, 104, 22), Region(2, 60, 0, 90, 10)}
    merged = review_decisions.regions_from_frames([[[0, 0, 20, 100]], [[2, 1, 22, 104]]])
    assert merged == [Region(None, 0, 0, 104, 22)]


def test_changes_count_added_and_removed_boxes():
    proposed = [Region(0, 0, 0, 100, 20), Region(0, 0, 200, 50, 220)]
    decided = [Region(0, 2, 1, 101, 21), Region(0, 150, 0, 250, 20)]  # moved a little, one removed, one added
    assert review_decisions.changes(proposed, decided) == (1, 1)


# ---- a whole run, decisions, reruns --------------------------------------------------------------

def test_first_run_lists_every_image_waiting_with_its_proposal(first_run):
    source, out, hospital, images, code = first_run
    assert code == 1
    text = (hospital / review_decisions.DECISIONS_NAME).read_text(encoding="utf-8")
    assert text.startswith("ref,decision,boxes")
    rows = {Path(r["original_file"]).stem: r for r in read_rows(hospital)}
    # text found: proposed boxes; ultrasound without text: listed with no boxes (a person must see it)
    for name in ("us_text", "us_rle", "us_jls", "us_j2k", "us_jpeg", "us_multi", "cr_text_flag_no",
                 "ct_derived_text", "pmap_text", "undecided", "rejected"):
        assert rows[name]["boxes"], name
        assert rows[name]["decision"] == ""
    assert rows["us_clean"]["boxes"] == ""
    assert rows["us_multi"]["frames"] == "3"
    frames = {r.frame for r in review_decisions.parse_boxes(rows["us_multi"]["boxes"])}
    assert frames == {None}, frames  # the same text on every frame: one box for all frames
    # what a person need not see went out: clean CR/DX/derived CT cleared by the detector, CT untouched
    for name in ("cr_clean", "dx_clean_no_flag", "ct_derived_clean", "ct_original"):
        assert name not in rows
    written = outputs_by_source(out)
    assert set(written) == {"cr_clean", "dx_clean_no_flag", "ct_derived_clean", "ct_original"}
    for name in ("cr_clean", "dx_clean_no_flag", "ct_derived_clean"):
        assert written[name].BurnedInAnnotation == "NO"
        assert np.array_equal(written[name].pixel_array, images[name].pixel_array), name
    assert "BurnedInAnnotation" not in written["ct_original"]  # never looked at, never declared


def test_proposed_boxes_cover_the_text(first_run):
    source, out, hospital, images, code = first_run
    rows = {Path(r["original_file"]).stem: r for r in read_rows(hospital)}
    for name in ("us_text", "cr_text_flag_no", "pmap_text"):
        mask = text_mask(192, 256)
        covered = np.zeros_like(mask)
        for r in review_decisions.parse_boxes(rows[name]["boxes"]):
            covered[r.y0:r.y1, r.x0:r.x1] = True
        assert covered[mask].mean() > 0.99, name


@pytest.fixture(scope="module")
def decided_run(first_run):
    source, out, hospital, images, code = first_run
    rows = read_rows(hospital)
    by_name = {Path(r["original_file"]).stem: r for r in rows}
    edited = "0:0,0,256,40;0:200,150,256,192"  # the person draws their own boxes (one extra)
    for r in rows:
        name = Path(r["original_file"]).stem
        if name == "rejected":
            r["decision"] = "reject"
        elif name == "undecided":
            continue
        elif name == "us_text":
            r["decision"], r["boxes"] = "approve", edited
        elif name == "us_multi":
            r["decision"], r["boxes"] = "APPROVE", "*:0,0,256,40"
        else:
            r["decision"] = "approve"
    with (hospital / review_decisions.DECISIONS_NAME).open("w", encoding="utf-8", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    before = tree_digest(out)
    code2 = run(source, out)
    return first_run, by_name, before, code2


def test_rerun_applies_decisions_and_keeps_the_rest(decided_run):
    (source, out, hospital, images, _), by_name, before, code = decided_run
    assert code == 1  # two images are still held (rejected, undecided)
    written = outputs_by_source(out)
    held = {Path(k).stem: v for k, v in held_refs(hospital).items()}
    assert set(held) == {"rejected", "undecided"}
    assert held["rejected"].startswith(review_decisions.REJECTED)
    assert set(written) == set(_NAMES) - {"rejected", "undecided"}
    after = tree_digest(out)
    for path, digest in before.items():  # outputs of the first run are not redone
        if path.endswith(".dcm"):
            assert after[path] == digest
    manifest = (out / "deid_manifest.csv").read_text(encoding="utf-8")
    assert manifest.count(".dcm") == len(written)
    for name, ds in written.items():
        assert name == "ct_original" or ds.BurnedInAnnotation == "NO", name
        assert "DOE" not in str(ds.PatientName)


def test_approved_boxes_are_blanked_exactly(decided_run):
    (source, out, hospital, images, _), by_name, before, code = decided_run
    written = outputs_by_source(out)
    got = written["us_text"].pixel_array
    orig = images["us_text"].pixel_array
    inside = np.zeros(orig.shape, bool)
    inside[0:40, 0:256] = inside[150:192, 200:256] = True
    assert (got[inside] == orig.min()).all()
    assert np.array_equal(got[~inside], orig[~inside])
    multi = written["us_multi"].pixel_array
    assert multi.shape[0] == 3 and (multi[:, 0:40, :] == multi.min()).all()
    assert np.array_equal(multi[:, 40:], images["us_multi"].pixel_array[:, 40:])
    for name in ("us_text", "us_multi", "cr_text_flag_no", "pmap_text", "ct_derived_text", "us_rle", "us_jls",
                 "us_j2k", "us_jpeg"):
        arr = written[name].pixel_array
        frames = arr if arr.ndim == 3 and name == "us_multi" else arr[None]
        for f in frames:
            assert pixel_detect.find_text_in_frame(np.nan_to_num(f)) == [], name


def test_redacted_output_keeps_its_lossless_transfer_syntax(decided_run):
    (source, out, hospital, images, _), by_name, before, code = decided_run
    written = outputs_by_source(out)
    assert written["us_rle"].file_meta.TransferSyntaxUID == RLELossless
    assert written["us_jls"].file_meta.TransferSyntaxUID == JPEGLSLossless
    assert written["us_j2k"].file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert written["us_jpeg"].file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # lossy: not again
    assert written["us_text"].file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    # lossless round trip: outside the boxes the pixels are the original's
    for name in ("us_rle", "us_jls", "us_j2k"):
        rows = review_decisions.parse_boxes(by_name[name]["boxes"])
        keep = np.ones(images[name].pixel_array.shape[:2], bool)
        for r in rows:
            keep[r.y0:r.y1, r.x0:r.x1] = False
        assert np.array_equal(written[name].pixel_array[keep], images[name].pixel_array[keep]), name


def test_summary_counts_what_the_person_changed(decided_run):
    (source, out, hospital, images, _), by_name, before, code = decided_run
    summary = (out / "deid_summary.txt").read_text(encoding="utf-8")
    assert "Images reviewed by a person: 10 approved, 1 rejected, 1 waiting" in summary
    assert "boxes added" in summary and "removed" in summary
    line = next(s for s in summary.splitlines() if "boxes added" in s)
    assert "boxes added 0 " not in line  # the person added a box on us_text
    rows = {Path(r["original_file"]).stem: r for r in read_rows(hospital)}
    assert rows["us_text"]["decision"] == "approve" and rows["undecided"]["decision"] == ""


def test_a_further_rerun_changes_nothing(decided_run):
    (source, out, hospital, images, _), by_name, before, code = decided_run
    snapshot = tree_digest(out, hospital)
    assert run(source, out) == 1
    assert tree_digest(out, hospital) == snapshot


def test_a_decision_for_another_file_is_never_applied(tmp_path):
    source = tmp_path / "EXPORT"
    build_source(source)
    out = tmp_path / "OUT"
    run(source, out)
    hospital = tmp_path / "OUT_HOSPITAL_ONLY"
    rows = read_rows(hospital)
    for r in rows:
        r["decision"], r["original_file"] = "approve", "someone/else.dcm"
    with (hospital / review_decisions.DECISIONS_NAME).open("w", encoding="utf-8", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    n = len(list(out.rglob("*.dcm")))
    run(source, out)
    assert len(list(out.rglob("*.dcm"))) == n


def test_decisions_file_keeps_a_persons_rows_when_merged():
    old = {"F000001": Decision("F000001", "approve", "0:1,1,5,5", "r", "a.dcm")}
    rows = review_decisions.merge(old, [Decision("F000001", "", "0:0,0,9,9", "new reason", "a.dcm"),
                                        Decision("F000002", "", "", "x", "b.dcm")])
    by_ref = {d.ref: d for d in rows}
    assert by_ref["F000001"].decision == "approve" and by_ref["F000001"].boxes == "0:1,1,5,5"
    assert by_ref["F000002"].decision == ""
    moved = review_decisions.merge(old, [Decision("F000001", "", "", "other", "c.dcm")])
    assert moved[0].decision == "" and moved[0].original_file == "c.dcm"


def test_review_option_says_when_there_is_nothing_to_review(tmp_path, capsys):
    assert cli_deid.main(["--review", str(tmp_path / "OUT")]) == 2
    assert "Nothing to review" in capsys.readouterr().out


def test_a_spreadsheet_saved_file_is_read_and_a_wrong_word_stops_with_one_line(tmp_path, capsys):
    path = tmp_path / review_decisions.DECISIONS_NAME
    path.write_text('\ufeffref;decision;boxes;reason\nF000001;Approved;"0:1,2,30,40;*:0,0,9,9";x\n'
                    "F000002;;;y\n", encoding="utf-8")
    got = review_decisions.read_decisions(path)
    assert got["F000001"].decision == "approve" and len(got["F000001"].regions) == 2
    assert got["F000002"].decision == ""
    path.write_text("ref,decision,boxes\nF000001,maybe,\n", encoding="utf-8")
    with pytest.raises(DecisionError, match="F000001"):
        review_decisions.read_decisions(path)
    source, out = tmp_path / "EXPORT", tmp_path / "OUT"
    source.mkdir()
    image("one", sop=US, modality="US", text=True).save_as(source / "one.dcm", enforce_file_format=True)
    assert run(source, out) == 1
    hospital = tmp_path / "OUT_HOSPITAL_ONLY"
    text = (hospital / review_decisions.DECISIONS_NAME).read_text(encoding="utf-8")
    (hospital / review_decisions.DECISIONS_NAME).write_text(text.replace("\nF000001,,", "\nF000001,sure,"),
                                                           encoding="utf-8")
    capsys.readouterr()
    assert run(source, out) == 2
    assert "F000001" in capsys.readouterr().err
    assert "sure" in (hospital / review_decisions.DECISIONS_NAME).read_text(encoding="utf-8")  # not overwritten
