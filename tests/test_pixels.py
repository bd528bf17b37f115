"""Burned-in pixel text: risk rules, layout rules, detection and redaction, review page.

Images are built here with pydicom (text rendered with Pillow, a test-only dependency), plus
two public ultrasound stills with fake PHI (tests/data/deid_data, MIT licence).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless,
                         RLELossless, generate_uid)

from deidkit import pixel_detect, pixels
from deidkit.guidelines import GuidelineError
from deidkit.review_page import ReviewEntry, png_bytes, write_review_page

DATA = Path(__file__).parent / "data" / "deid_data"
US = "1.2.840.10008.5.1.4.1.1.6.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
CT = "1.2.840.10008.5.1.4.1.1.2"
FAKE_PHI = ["DOE^JANE  MRN 00412345", "DOB 03/12/1961  ST MARY HOSP"]


def anatomy(rows: int = 256, cols: int = 320, seed: int = 0) -> np.ndarray:
    """Smooth disc with noise: no text (float 0..1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    disc = (((yy - rows / 2) / (rows * 0.35)) ** 2 + ((xx - cols / 2) / (cols * 0.35)) ** 2) < 1
    img = disc * (0.35 + 0.25 * np.sin(xx / 23.0) * np.cos(yy / 31.0))
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)


def text_mask(rows: int, cols: int, lines=FAKE_PHI, top: int = 4) -> np.ndarray:
    layer = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(14)
    for i, line in enumerate(lines):
        draw.text((6, top + 18 * i), line, fill=255, font=font)
    return np.asarray(layer) > 127


def make_ds(frames: np.ndarray, photometric: str, *, sop: str = US, modality: str = "US",
            bits: int = 8) -> Dataset:
    """An uncompressed dataset from (frames, rows, cols[, 3]) array."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["t", photometric])
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Manufacturer = "ACME"
    n, rows, cols = frames.shape[:3]
    ds.Rows, ds.Columns = rows, cols
    if n > 1:
        ds.NumberOfFrames = n
    colour = frames.ndim == 4
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    return ds


def grey_frames(n: int = 1, text_on=(0,), bits: int = 8, invert: bool = False) -> np.ndarray:
    top = (1 << bits) - 1
    out = []
    for i in range(n):
        img = anatomy(seed=i) * top
        if i in text_on:
            img[text_mask(*img.shape)] = top * 0.95
        if invert:
            img = top - img
        out.append(img.round().astype(np.uint8 if bits <= 8 else np.uint16))
    return np.stack(out)


def rgb_frames(text: bool = True) -> np.ndarray:
    g = anatomy() * 200
    rgb = np.stack([g, g * 0.8, g * 0.6], axis=2)
    if text:
        rgb[text_mask(*g.shape)] = (255, 230, 0)
    return rgb.round().astype(np.uint8)[None]


def roundtrip(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def text_left(ds: Dataset) -> list:
    """Boxes the detector still finds on any frame of a (re-read) dataset."""
    arr = ds.pixel_array
    frames = arr if int(ds.get("NumberOfFrames", 1)) > 1 else arr[None]
    return [b for f in frames for b in pixel_detect.find_text_in_frame(f)]


def assert_redacted(ds: Dataset, outcome: pixels.PixelOutcome, photometric: str) -> Dataset:
    assert outcome.status == "redacted", outcome.reason
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PhotometricInterpretation == photometric
    assert ds.BurnedInAnnotation == "NO"
    back = roundtrip(ds)
    assert text_left(back) == []
    assert outcome.before_png.startswith(b"\x89PNG") and outcome.after_png.startswith(b"\x89PNG")
    return back


# ---- risk rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, expected", [
    ({}, "SOP class Ultrasound"),
    ({"SOPClassUID": SC, "Modality": "OT"}, "SOP class Secondary Capture"),
    ({"SOPClassUID": CT, "Modality": "CT", "BurnedInAnnotation": "YES"}, "BurnedInAnnotation YES"),
    ({"SOPClassUID": CT, "Modality": "CT", "ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},
     "ImageType SECONDARY"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1.1", "Modality": "XA"}, "modality XA"),
    ({"SOPClassUID": CT, "Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}, None),
])
def test_risk_from_headers_read_without_pixels(tmp_path, changes, expected):
    ds = make_ds(grey_frames(), "MONOCHROME2")
    for k, v in changes.items():
        setattr(ds, k, v)
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert "PixelData" not in header
    assert pixels.burned_in_risk(header) == expected


def test_non_image_objects_carry_no_pixel_risk():
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    ds.Modality = "SR"
    assert pixels.burned_in_risk(ds) is None


def test_burned_in_flag_no_does_not_clear_an_ultrasound():
    ds = make_ds(grey_frames(), "MONOCHROME2")
    ds.BurnedInAnnotation = "NO"
    assert pixels.burned_in_risk(ds) == "SOP class Ultrasound"


def test_known_layout_is_a_risk_for_any_modality():
    rules = pixels.parse_redaction_rules("manufacturer,model,rows,columns,rectangles\nACME,,,,\"0,0,10,10\"\n")
    ds = make_ds(grey_frames(), "MONOCHROME2", sop=CT, modality="CT")
    assert pixels.burned_in_risk(ds) is None
    assert pixels.burned_in_risk(ds, rules) == "known screen layout"


# ---- the one risk table (guidelines/burned_in_risk.csv, deidkit.risk) ---------------------------

def _header(**values) -> Dataset:
    ds = make_ds(grey_frames(), "MONOCHROME2", sop=CT, modality="CT")
    del ds.PixelData
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("values, action, must_see", [
    ({"Modality": "US", "SOPClassUID": US}, "check", True),
    ({"Modality": "OT", "SOPClassUID": SC}, "check", True),
    ({"Modality": "CR"}, "check", False),
    ({"Modality": "DX", "BurnedInAnnotation": "NO"}, "check", False),
    ({"Modality": "MG"}, "check", False),
    ({"Modality": "RF"}, "check", False),
    ({"Modality": "PX"}, "check", False),
    ({"Modality": "IO"}, "check", False),
    ({"Modality": "XC"}, "check", True),
    ({"Modality": "ES"}, "check", True),
    ({"Modality": "CT", "ImageType": ["DERIVED", "SECONDARY"]}, "check", False),
    ({"Modality": "MR", "ImageType": ["DERIVED", "PRIMARY"]}, "check", False),
    ({"Modality": "MR", "ImageType": ["ORIGINAL", "PRIMARY", "SCREEN SAVE"]}, "check", True),
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4"}, "none", False),  # masks are labels
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4", "BurnedInAnnotation": "YES"}, "check", True),
    # a real SEG always has Image Type DERIVED\PRIMARY (PS3.3 C.8.20.2): the DERIVED row must not put it back
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4", "ImageType": ["DERIVED", "PRIMARY"]}, "none", False),
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.7", "ImageType": ["DERIVED", "PRIMARY"]}, "none", False),
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4", "ImageType": ["DERIVED", "PRIMARY"],
      "BurnedInAnnotation": "YES"}, "check", True),
    ({"Modality": "SEG", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4", "ImageType": ["DERIVED", "PRIMARY"],
      "RecognizableVisualFeatures": "YES"}, "hold", True),
    ({"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.30"}, "check", False),
    ({"Modality": "CT", "BurnedInAnnotation": "YES"}, "check", True),
    ({"Modality": "XC", "RecognizableVisualFeatures": "YES"}, "hold", True),
    ({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}, "none", False),
    ({"Modality": "MR", "BurnedInAnnotation": "NO"}, "none", False),
])
def test_risk_table_decides_each_modality_class(values, action, must_see):
    from deidkit import risk
    from deidkit.guidelines import load

    found = risk.assess(_header(**values), load())
    assert (found.action, found.person_must_see) == (action, must_see)
    assert found.at_risk == (action != "none")
    assert bool(found.reason) == found.at_risk
    if action == "hold":
        assert found.reason == "RecognizableVisualFeatures YES"


def test_a_site_edits_the_risk_table_not_code(tmp_path):
    from deidkit import risk
    from deidkit.guidelines import RISK_FILE, bundled_dir, load

    for f in bundled_dir().iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    text = (tmp_path / RISK_FILE).read_text(encoding="utf-8")
    text = text.replace("modality,CR,check,no,modality CR", "modality,CR,check,yes,modality CR (site rule)")
    text += "modality,NM,check,no,modality NM\n"
    (tmp_path / RISK_FILE).write_text(text, encoding="utf-8")
    site, bundled = load(tmp_path), load()
    assert site.sha256 != bundled.sha256 and RISK_FILE in site.overridden
    cr = risk.assess(_header(Modality="CR"), site)
    assert (cr.reason, cr.person_must_see) == ("modality CR (site rule)", True)
    assert risk.assess(_header(Modality="NM"), site).at_risk
    assert not risk.assess(_header(Modality="NM"), bundled).at_risk


@pytest.mark.parametrize("row, message", [
    ("modality,CR,look,no,x", "action 'look'"),
    ("modality,CR,check,maybe,x", "person_must_see"),
    ("colour,CR,check,no,x", "match 'colour'"),
    ("flag,BurnedIn=YES,check,no,x", "flag 'BurnedIn=YES'"),
    ("sop_class,not-a-uid,check,no,x", "not a SOP Class UID"),
    ("modality,US,check,no,again", "listed twice"),
    ("modality,,check,no,x", "must not be empty"),
])
def test_risk_table_errors_name_file_and_line(row, message):
    from deidkit.guidelines import RISK_FILE, bundled_dir, parse_burned_in_risk

    text = (bundled_dir() / RISK_FILE).read_text(encoding="utf-8") + row + "\n"
    with pytest.raises(GuidelineError, match=message) as e:
        parse_burned_in_risk(text)
    assert RISK_FILE in str(e.value) and "line" in str(e.value)


def test_no_modality_or_sop_class_list_left_in_the_package():
    pkg = Path(pixels.__file__).parent
    for name in ("pixels.py", "export.py", "risk.py"):
        text = (pkg / name).read_text(encoding="utf-8")
        assert "1.2.840.10008.5.1.4.1.1.6.1" not in text and '"US", "' not in text, name


# ---- layout rules table ------------------------------------------------------------------------

def test_bundled_rules_load_and_follow_the_override_convention(tmp_path):
    bundled = pixels.redaction_rules_path(None)
    rules = pixels.load_redaction_rules(bundled)
    assert rules and all(r.rectangles for r in rules)
    assert pixels.redaction_rules_path(tmp_path) == bundled
    (tmp_path / pixels.RULES_FILE).write_text("manufacturer,model,rows,columns,rectangles\nX,,,,\"1,2,3,4\"\n")
    assert pixels.redaction_rules_path(tmp_path) == tmp_path / pixels.RULES_FILE
    (rule,) = pixels.load_redaction_rules(tmp_path / pixels.RULES_FILE)
    assert rule.rectangles == (pixel_detect.Box(2, 1, 6, 4),)


@pytest.mark.parametrize("row, words", [
    (",M,1,1,\"0,0,1,1\"", "manufacturer is empty"),
    ("A,M,x,1,\"0,0,1,1\"", "rows must be"),
    ("A,M,1,1,\"0,0,1\"", "not x,y,width,height"),
])
def test_bad_rule_rows_name_the_line(row, words):
    text = "# comment\nmanufacturer,model,rows,columns,rectangles\n" + row + "\n"
    with pytest.raises(GuidelineError, match=f"line 3: .*{words}"):
        pixels.parse_redaction_rules(text)


def test_layout_rectangles_are_blanked_even_without_detected_text():
    frames = grey_frames(text_on=())
    ds = make_ds(frames, "MONOCHROME2")
    rules = pixels.parse_redaction_rules("manufacturer,model,rows,columns,rectangles\n"
                                         "acme,,256,320,\"100,50,60,40\"\n")
    outcome = pixels.clean_pixels(ds, rules)
    back = assert_redacted(ds, outcome, "MONOCHROME2")
    arr = back.pixel_array
    assert (arr[50:90, 100:160] == frames[0].min()).all()
    assert np.array_equal(arr[100:], frames[0][100:])
    assert outcome.boxes == [[[50, 100, 90, 160]]]


# ---- every photometric interpretation, bit depth, multi-frame ----------------------------------

def test_text_free_image_is_clean_and_untouched():
    ds = make_ds(grey_frames(text_on=()), "MONOCHROME2")
    before = bytes(ds.PixelData)
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "clean"
    assert ds.PixelData == before and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert "BurnedInAnnotation" not in ds


@pytest.mark.parametrize("photometric, bits, invert", [
    ("MONOCHROME2", 8, False), ("MONOCHROME2", 12, False), ("MONOCHROME2", 16, False),
    ("MONOCHROME1", 8, True), ("MONOCHROME1", 12, True),
])
def test_grey_text_is_blanked(photometric, bits, invert):
    frames = grey_frames(bits=bits, invert=invert)
    ds = make_ds(frames, photometric, bits=bits)
    outcome = pixels.clean_pixels(ds, [])
    back = assert_redacted(ds, outcome, photometric)
    mask = text_mask(*frames.shape[1:])
    arr = back.pixel_array
    black = frames[0].max() if photometric == "MONOCHROME1" else frames[0].min()
    assert (arr[mask] == black).all()  # every text pixel blanked to display black
    assert np.array_equal(arr[150:], frames[0][150:])  # anatomy below untouched


def test_rgb_text_is_blanked():
    frames = rgb_frames()
    ds = make_ds(frames, "RGB")
    back = assert_redacted(ds, pixels.clean_pixels(ds, []), "RGB")
    assert back.PlanarConfiguration == 0
    assert (back.pixel_array[text_mask(*frames.shape[1:3])] == 0).all()


def test_ybr_full_becomes_rgb():
    from pydicom.pixels import convert_color_space
    frames = convert_color_space(rgb_frames()[0], "RGB", "YBR_FULL")[None]
    ds = make_ds(frames, "YBR_FULL")
    assert_redacted(ds, pixels.clean_pixels(ds, []), "RGB")


def test_palette_colour_keeps_its_palette_and_blanks_to_the_darkest_entry():
    frames = grey_frames()
    ds = make_ds(frames, "PALETTE COLOR")
    ramp = np.arange(256, dtype=np.uint16) * 257
    # Magenta text on green (hue on hue: the brightest channel is nearly flat); the darkest
    # entry by R+G+B is not black.
    for colour, lut in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", ramp)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.tobytes())
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "redacted", outcome.reason
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    back = roundtrip(ds)
    assert len(np.unique(back.pixel_array[text_mask(*frames.shape[1:])])) == 1
    from pydicom.pixels import apply_color_lut
    shown = (apply_color_lut(back.pixel_array, back) >> 8).astype(np.uint8)  # 8 bits, as a viewer shows it
    assert pixel_detect.find_text_in_frame(shown) == []


def test_every_frame_is_checked():
    frames = grey_frames(n=3, text_on=(1,))
    ds = make_ds(frames, "MONOCHROME2")
    outcome = pixels.clean_pixels(ds, [])
    back = assert_redacted(ds, outcome, "MONOCHROME2")
    assert [bool(b) for b in outcome.boxes] == [False, True, False]
    assert back.pixel_array.shape == frames.shape
    assert np.array_equal(back.pixel_array[0], frames[0]) and np.array_equal(back.pixel_array[2], frames[2])


# ---- compressed transfer syntaxes -------------------------------------------------------------

def _jpeg_baseline(frames: np.ndarray, photometric: str) -> Dataset:
    ds = make_ds(frames, photometric)
    encoded = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=95, subsampling=2 if f.ndim == 3 else 0)
        encoded.append(buf.getvalue())
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    if frames.ndim == 4:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    return ds


@pytest.mark.parametrize("kind", ["rle", "jpegls", "j2k", "jpeg-grey", "jpeg-ybr422"])
def test_compressed_images_are_decoded_and_written_uncompressed(kind):
    if kind == "jpeg-grey":
        ds = _jpeg_baseline(grey_frames(n=2, text_on=(0, 1)), "MONOCHROME2")
        photometric = "MONOCHROME2"
    elif kind == "jpeg-ybr422":
        ds = _jpeg_baseline(rgb_frames(), "RGB")
        photometric = "RGB"
    else:
        ds = make_ds(grey_frames(n=2, text_on=(1,), bits=12), "MONOCHROME2", bits=12)
        ds.compress({"rle": RLELossless, "jpegls": JPEGLSLossless, "j2k": JPEG2000Lossless}[kind])
        photometric = "MONOCHROME2"
    outcome = pixels.clean_pixels(ds, [])
    assert_redacted(ds, outcome, photometric)


def test_compressed_text_free_image_stays_compressed_and_byte_identical():
    ds = make_ds(grey_frames(text_on=()), "MONOCHROME2")
    ds.compress(RLELossless)
    before = bytes(ds.PixelData)
    assert pixels.clean_pixels(ds, []).status == "clean"
    assert ds.PixelData == before and ds.file_meta.TransferSyntaxUID == RLELossless


def _pydicom_test_file(name: str) -> Path:
    """A file pydicom ships in its package (read from disk: never downloaded)."""
    import pydicom.data
    path = Path(pydicom.data.__file__).parent / "test_files" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in this pydicom installation")
    return path


def test_jpeg_extended_12_bit_secondary_capture_is_decoded_and_passes_untouched():
    # pydicom's JPGExtended.dcm: a 12-bit JPEG Extended bone scan stored as Secondary Capture
    # (at risk by SOP class), with no text in it.
    ds = pydicom.dcmread(_pydicom_test_file("JPGExtended.dcm"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51" and ds.BitsStored == 12
    assert pixels.burned_in_risk(ds) is not None
    before = bytes(ds.PixelData)
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "clean", outcome.reason
    assert ds.PixelData == before and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51"


def test_multi_frame_jpeg_ultrasound_with_screen_text_is_not_passed_as_clean():
    # pydicom's examples_ybr_color.dcm: 30 JPEG baseline YBR_FULL_422 ultrasound frames with the
    # scanner's small screen text in the corners: it is blanked on every frame or held back.
    ds = pydicom.dcmread(_pydicom_test_file("examples_ybr_color.dcm"))
    assert int(ds.NumberOfFrames) == 30
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status in ("redacted", "hold"), outcome.reason
    if outcome.status == "redacted":
        assert len(outcome.boxes) == 30 and all(outcome.boxes)
        assert text_left(roundtrip(ds)) == []


# ---- held back ---------------------------------------------------------------------------------

def test_page_full_of_text_is_held_back():
    lines = [f"LINE {i:02d} DOE^JANE 1961-03-12 MRN 0041{i:04d}" for i in range(14)]
    img = np.where(text_mask(256, 320, lines, top=2), 250, 20).astype(np.uint8)
    ds = make_ds(img[None], "MONOCHROME2", sop=SC, modality="OT")
    before = bytes(ds.PixelData)
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "hold" and "text" in outcome.reason
    assert outcome.before_png.startswith(b"\x89PNG")
    assert ds.PixelData == before


def test_undecodable_or_unsupported_pixels_are_held_back():
    ds = make_ds(grey_frames(), "MONOCHROME2")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder
    assert pixels.clean_pixels(ds, []).status == "hold"
    ds = make_ds(grey_frames(), "MONOCHROME2")
    ds.PixelData = ds.PixelData[:100]  # truncated
    assert pixels.clean_pixels(ds, []).status == "hold"
    ds = make_ds(grey_frames(), "RGB")
    ds.RecognizableVisualFeatures = "YES"
    assert pixels.clean_pixels(ds, []).status == "hold"


# ---- public samples with fake PHI burned in ----------------------------------------------------

@pytest.mark.parametrize("name", ["us_greyscale_rle.dcm", "us_rgb_rle.dcm"])
def test_public_ultrasound_samples_are_redacted(name):
    ds = pydicom.dcmread(DATA / name)
    assert pixels.burned_in_risk(ds) is not None  # RGB sample has no Burned In Annotation at all
    rules = pixels.load_redaction_rules(pixels.redaction_rules_path(None))
    outcome = pixels.clean_pixels(ds, rules)
    back = assert_redacted(ds, outcome, ds.PhotometricInterpretation)
    top = back.pixel_array[:50]  # the name / ID / birth date band
    assert top.max() == 0


# ---- review page --------------------------------------------------------------------------------

def test_png_writer_round_trips():
    grey = (np.arange(60 * 40) % 251).astype(np.uint8).reshape(40, 60)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(grey)))), grey)
    rgb = np.stack([grey, grey[::-1], 255 - grey], axis=2)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))), rgb)


def test_review_page_shows_every_held_back_and_redacted_image(tmp_path):
    held = make_ds(grey_frames(), "MONOCHROME2")
    held.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    hold = pixels.clean_pixels(make_ds(np.where(text_mask(256, 320, [f"ROW {i} DOE^JANE 0041234{i}"
                                                                    for i in range(14)], 2), 250, 0)
                                            .astype(np.uint8)[None], "MONOCHROME2"), [])
    ds = make_ds(grey_frames(bits=16), "MONOCHROME2", bits=16)
    red = pixels.clean_pixels(ds, [])
    entries = [ReviewEntry("held-0001", hold.reason, hold.status, hold.before_png),
               ReviewEntry("redacted-0002", red.reason, red.status, red.before_png, red.after_png)]
    page = tmp_path / "pixel_review.html"
    write_review_page(page, entries)
    text = page.read_text(encoding="utf-8")
    assert "must stay in the hospital" in text
    assert text.count("<img") == 3 and "held-0001" in text and "redacted-0002" in text
    assert "http" not in text  # nothing to fetch
    for png in (hold.before_png, red.before_png, red.after_png):
        im = Image.open(io.BytesIO(png))
        assert max(im.size) <= 256


# ---- detector details ---------------------------------------------------------------------------

def test_small_full_scale_text_on_a_dark_16_bit_frame_is_not_windowed_away():
    # Text covering well under 0.05% of the frame used to fall above a percentile window and
    # vanish into amplified noise; the window now keeps the brightest few hundred pixels apart.
    rng = np.random.default_rng(7)
    frame = rng.normal(20, 3, (512, 512)).clip(0, 4095).astype(np.uint16)
    layer = Image.new("L", (512, 512), 0)
    ImageDraw.Draw(layer).text((200, 490), "DOE^JANE", fill=255, font=ImageFont.load_default_imagefont())
    mask = np.asarray(layer) > 127  # ~100 pixels: a small bitmap font
    frame[mask] = 4095
    grey = pixel_detect.to_grey8(frame)
    assert grey[mask].min() == 255 and np.median(grey[~mask]) < 16
    boxes = pixel_detect.find_text_in_frame(frame)
    covered = np.zeros(mask.shape, bool)
    for b in boxes:
        g = b.grown(pixel_detect.REDACTION_MARGIN, *mask.shape)
        covered[g.top:g.bottom, g.left:g.right] = True
    assert covered[mask].all()


def _covered(boxes, mask: np.ndarray) -> np.ndarray:
    covered = np.zeros(mask.shape, bool)
    for b in boxes:
        g = b.grown(pixel_detect.REDACTION_MARGIN, *mask.shape)
        covered[g.top:g.bottom, g.left:g.right] = True
    return covered


def test_bundled_network_matches_its_declared_layers():
    net = pixel_detect.load_network()
    channels = 2 * 4  # two planes after 2x2 space-to-depth
    convs = [(c, d) for kind, c, d in pixel_detect.NETWORK_LAYERS if kind != "pool"]
    assert len(net.weights) == len(convs) == len(net.biases)
    for (cout, dilation), w, b in zip(convs, net.weights, net.biases, strict=True):
        taps = 1 if dilation == 0 else 9
        assert w.shape == (taps * channels, cout) and b.shape == (cout,)
        assert w.dtype == np.float32 and np.isfinite(w).all()
        channels = cout
    assert 0 < net.grow_threshold <= net.seed_threshold < 1


def test_big_frames_are_tiled_with_the_same_answer_as_one_pass(monkeypatch):
    # Tiles carry a halo wider than the network's reach, so tiling changes nothing but float
    # rounding (matrix products of other sizes add in another order).
    rng = np.random.default_rng(3)
    frame = (anatomy(700, 1100, seed=3) * 200).astype(np.uint8)
    mask = text_mask(700, 1100, ["DOE^JANE 1961-03-12", "MRN 00412345"], top=600)
    frame[mask] = 250
    frame = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
    tiled, tiled_boxes = pixel_detect.text_probability(frame), pixel_detect.find_text_in_frame(frame)
    monkeypatch.setattr(pixel_detect, "TILE", 4096)
    whole, whole_boxes = pixel_detect.text_probability(frame), pixel_detect.find_text_in_frame(frame)
    assert tiled.shape == (175, 275)
    assert np.abs(tiled - whole).max() < 1e-5
    assert tiled_boxes == whole_boxes
    assert _covered(tiled_boxes, mask)[mask].all()


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_5x7_bitmap_text_on_a_small_still_is_found(scale):
    # Bitmap fonts as on ultrasound screens, on a 128x128 still: the smallest case that matters.
    from deidkit.synth import burn_text
    frame = (anatomy(128, 128, seed=scale) * 180).astype(np.uint8)
    mask = np.zeros(frame.shape, bool)
    text = "DOE JANE" if scale < 3 else "DOE"
    burn_text(frame, text, 4, 4, 250, scale)
    burn_text(mask.view(np.uint8), text, 4, 4, 1, scale)
    assert mask.any()
    assert _covered(pixel_detect.find_text_in_frame(frame), mask)[mask].all()


@pytest.mark.parametrize("seed", range(4))
def test_text_free_anatomy_has_no_detection(seed):
    frame = (anatomy(512, 512, seed=seed) * 4095).astype(np.uint16)
    assert pixel_detect.find_text_in_frame(frame) == []


# ---- issue 16: texture is not text (small frames, line-band boxes) ------------------------------

def test_an_l_shaped_group_of_text_cells_is_boxed_line_by_line():
    # a header line touching a column of labels was boxed as the rectangle around both: the
    # empty middle of an ultrasound screen proposed and blanked (41-63% of pydicom's US frames)
    p = np.zeros((60, 80), np.float32)
    p[1:4, 2:78] = 0.9    # a header line across the frame (cells)
    p[4:40, 66:78] = 0.9  # a column of labels down the right side, touching it
    boxes = pixel_detect.boxes_from_probability(p, (240, 320))
    covered = np.zeros((240, 320), bool)
    for b in boxes:
        covered[b.top:b.bottom, b.left:b.right] = True
    cells = np.kron(p > 0.5, np.ones((4, 4), bool))
    assert covered[cells].all()           # every text cell still boxed
    assert not covered[40:160, 8:260].any()  # not the empty middle
    assert covered.mean() < 0.25


def test_boxes_merge_only_when_the_union_adds_little():
    line1, line2 = pixel_detect.Box(0, 0, 12, 200), pixel_detect.Box(12, 0, 24, 190)
    assert pixel_detect.merge_boxes([line2, line1]) == [pixel_detect.Box(0, 0, 24, 200)]
    column = pixel_detect.Box(10, 180, 200, 200)
    assert pixel_detect.merge_boxes([line1, column]) == sorted([line1, column])
    assert pixel_detect.merge_boxes([line1, line1]) == [line1]


def noise_map(n: int, seed: int, dtype: type = np.uint16) -> np.ndarray:
    """Noise over a whole small frame, as parametric maps (ADC, phase, field maps) show it."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4095
    return rng.integers(0, top + 1, (n, n)).astype(dtype)


@pytest.mark.parametrize("n", [32, 48, 64, 72, 96, 128, 160, 200])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_small_noise_map_has_no_text(n, dtype):
    # XA30 ADC/TRACEW/FA maps (64/72 px) were "text" over 49-100% of the frame; noise at 128-250
    # px over 20-45%: small frames are looked at enlarged, on a canvas (pixel_detect.SMALL_FRAME)
    assert pixel_detect.find_text_in_frame(noise_map(n, n + int(dtype == np.uint8))) == []


@pytest.mark.parametrize("n", [40, 64, 72, 96, 128, 200])
@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("background", ["black", "noise", "anatomy", "bright"])
def test_5x7_text_on_a_small_frame_is_found(n, scale, background):
    from deidkit.synth import burn_text
    ink = 0 if background == "bright" else 4095  # dark text on a bright frame too
    if background == "black":
        frame = np.zeros((n, n), np.uint16)
    elif background == "bright":
        frame = np.full((n, n), 3500, np.uint16)
    elif background == "noise":
        frame = noise_map(n, 5) // 8
    else:
        frame = (anatomy(n, n, seed=n) * 2000).astype(np.uint16)
    mask = np.zeros(frame.shape, np.uint8)
    text = "DOE JANE"[:max(2, (n - 4) // (6 * scale))]
    burn_text(frame, text, n // 3, 2, ink, scale)
    burn_text(mask, text, n // 3, 2, 1, scale)
    assert mask.any()
    assert _covered(pixel_detect.find_text_in_frame(frame), mask.astype(bool))[mask.astype(bool)].all()


def test_a_frame_narrower_than_a_glyph_has_no_text():
    assert pixel_detect.find_text_in_frame(np.full((3, 3), 255, np.uint8)) == []
    assert pixel_detect.find_text_in_frame(np.full((4, 200), 255, np.uint8)) == []


def us_screen(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ultrasound screen (480 x 640): a speckle fan, a header line across the top and a column
    of labels down the right touching it, as on pydicom's US examples. Returns (frame, ink, the
    text lines' own rectangles grown by 8 pixels)."""
    rows, cols = 480, 640
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    radius, angle = np.hypot(yy + 60, xx - cols / 2), np.arctan2(xx - cols / 2, yy + 60)
    fan = (radius > 120) & (radius < 470) & (np.abs(angle) < 0.6)
    img = np.where(fan, np.clip(rng.rayleigh(40, (rows, cols)), 0, 200), 0)
    layer = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(16)
    lines = [((6, 4), "DOE^JANE  MRN 00412345"), ((250, 4), "03/12/2024 10:41:07  ST MARY HOSP")]
    lines += [((556, 26 + 20 * i), label) for i, label in
              enumerate(["C5-1", "Gen 60", "28Hz", "MI 1.1", "TIB 0.2", "2D", "HGen", "DR 60"])]
    own = np.zeros((rows, cols), bool)
    for (x, y), text in lines:
        draw.text((x, y), text, fill=255, font=font)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        own[max(0, top - 8):bottom + 8, max(0, left - 8):right + 8] = True
    ink = np.asarray(layer) > 127
    return np.where(ink, 255, img).astype(np.uint8), ink, own


@pytest.mark.parametrize("seed", [0, 1])
def test_an_ultrasound_screen_is_boxed_around_its_lines_not_across_the_image(seed):
    # pydicom's US examples were proposed over 41-63% of the frame: the rectangle around a header
    # line and a label column covered the image between them (here 5.6% beyond the lines)
    frame, ink, own = us_screen(seed)
    covered = _covered(pixel_detect.find_text_in_frame(frame), ink)
    assert covered[ink].all()
    assert (covered & ~own).mean() < 0.04
