"""Issue 16: the text finder on parametric maps. Text-free derived MR maps (ADC, trace, FA,
perfusion, colour FA; 64-72 px frames and mosaics of them) are not text, so such an image goes
out unseen; a label burned into a map (a 5x7 name or date on a 64/72 px map, slice numbers in a
mosaic) is still found, and the image waits for a person.

The maps are generated: benchmarks/text_scenes.param_map on seeds training never uses (training
uses [100, index]), and one built here by hand like dcm_qa_xa30's ADC maps (a masked head with a
jagged rim, folded cortex, bright ventricles and orbits, grain).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import text_scenes as ts  # noqa: E402

from deidkit import pixel_detect, pixels, risk  # noqa: E402
from deidkit.synth import burn_text  # noqa: E402

SEED = 16


def adc_like(n: int, seed: int) -> np.ndarray:
    """A 12-bit ADC-like map built without text_scenes: a masked head (zero outside, a jagged
    rim where the noisy signal falls under the mask threshold), folded cortex with bright CSF,
    bright ventricles, a bright orbit, grain."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[:n, :n] + 0.5) / n * 2 - 1
    r = np.hypot(yy / 0.85, xx / 0.7)
    img = np.where(r < 1, 0.45, 0.0) + (r < 1) * 0.1 * np.sin(7 * xx + 3 * np.cos(5 * yy))
    img[(np.abs(np.sin(9 * np.hypot(yy + 0.1, xx) + 4 * xx)) < 0.25) & (r > 0.5) & (r < 0.85)] = 0.8
    img[(np.hypot((yy - 0.05) / 0.3, (np.abs(xx) - 0.12) / 0.08) < 1)] = 0.95
    img[np.hypot((yy + 0.7) / 0.12, (xx - 0.25) / 0.12) < 1] = 1.0
    img = np.abs(img + rng.normal(0, 0.06, img.shape))
    img[(r > 1) | (img < 0.1)] = 0
    return (np.clip(img, 0, 1) * 3000).astype(np.uint16)


def covered(boxes: list[pixel_detect.Box], ink: np.ndarray) -> float:
    return ts.ink_covered(boxes, ink, pixel_detect.REDACTION_MARGIN)


def labelled(frame: np.ndarray, text: str, row: int, col: int, scale: int = 1) -> np.ndarray:
    """Burn text (5x7 font) into frame at its brightest value; returns the ink mask."""
    ink = np.zeros(frame.shape[:2], np.uint8)
    burn_text(ink, text, row, col, 1, scale)
    frame[ink.astype(bool)] = frame.max()
    return ink.astype(bool)


# ---- text-free maps are not text ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ts.MAP_KINDS)
@pytest.mark.parametrize("n", [64, 72])
def test_text_free_maps_have_no_text(kind, n):
    # dcm_qa_xa30's ADC/TRACEW/FA/relCBF maps were "text" in 188 of 375 frames (every image held)
    flagged = [k for k in range(6)
               if pixel_detect.find_text_in_frame(ts.param_map(np.random.default_rng([SEED, n, k]), n, n, kind)[0])]
    assert len(flagged) <= 1, flagged


@pytest.mark.parametrize("seed", range(4))
def test_a_hand_built_adc_map_has_no_text(seed):
    assert pixel_detect.find_text_in_frame(adc_like(72, seed)) == []


@pytest.mark.xfail(strict=True, reason="frames of 256 px and more (mosaics) are still looked at by the first "
                   "network, which takes map slices for text (issue 16, left open): such a mosaic waits for a person")
def test_a_text_free_mosaic_has_no_text():
    flagged = [k for k in range(4)
               if pixel_detect.find_text_in_frame(ts.mosaic(np.random.default_rng([SEED, 99, k]), 64, 6)[0])]
    assert len(flagged) <= 1, flagged


# ---- text burned into a map is still found ------------------------------------------------------

@pytest.mark.parametrize("text", ["DOE JANE", "12/03/1961", "MRN 4123"])
@pytest.mark.parametrize("n", [64, 72])
@pytest.mark.parametrize("where", ["top", "bottom", "over the head"])
def test_a_5x7_label_on_a_small_map_is_found(text, n, where):
    frame = adc_like(n, seed=n + len(text))
    row = {"top": 1, "bottom": n - 8, "over the head": n // 2}[where]
    ink = labelled(frame, text[: (n - 2) // 6], row, 1)
    assert covered(pixel_detect.find_text_in_frame(frame), ink) >= 0.98


@pytest.mark.parametrize("kind", ts.MAP_KINDS)
def test_a_label_on_every_kind_of_map_is_found(kind):
    rng = np.random.default_rng([SEED, 7])
    found = 0
    for k in range(4):
        frame, _ = ts.param_map(rng, 72, 72, kind)
        ink = labelled(frame, ["DOE JANE", "1961-03-12", "ID 40412", "SMITH J"][k], [1, 64, 1, 64][k], 1)
        found += covered(pixel_detect.find_text_in_frame(frame), ink) >= 0.98
    assert found >= 3


def test_slice_numbers_in_a_mosaic_are_found_or_the_mosaic_waits():
    rng = np.random.default_rng([SEED, 3])
    frame, corners = ts.mosaic(rng, 64, 6)
    ink = np.zeros(frame.shape, bool)
    for k, (t, l) in enumerate(corners[:12]):  # "10".."21" in the top left corner of 12 slices
        one = np.zeros(frame.shape, np.uint8)
        burn_text(one, str(k + 10), t + 1, l + 1, 1, 1)
        frame[one.astype(bool)] = 4095
        ink |= one.astype(bool)
    outcome = pixels.clean_pixels(derived_mr(frame[None]), [])
    assert not pixels.release_decision(outcome, False, False, False)[0]
    boxes = [pixel_detect.Box(*b) for b in outcome.boxes[0]] if outcome.boxes else []
    assert outcome.status == "hold" or covered(boxes, ink) >= 0.98


# ---- what deid_tool does with them: a text-free map goes out, a labelled one waits -------------

def derived_mr(frames: np.ndarray) -> Dataset:
    """A derived MR (Image Type DERIVED\\PRIMARY\\DIFFUSION\\ADC), frames x rows x cols uint16."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["map", str(frames.sum())])
    ds.Modality, ds.ImageType = "MR", ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    return ds


def test_a_text_free_map_goes_out_and_a_labelled_one_waits():
    maps = np.stack([adc_like(72, seed) for seed in range(6)])
    ds = derived_mr(maps)
    found = risk.assess(ds)
    assert found.at_risk and not found.person_must_see
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "clean"
    assert pixels.release_decision(outcome, False, False, found.person_must_see)[0]

    labelled(maps[3], "DOE JANE", 1, 1)
    outcome = pixels.clean_pixels(derived_mr(maps), [])
    send, _ = pixels.release_decision(outcome, False, False, found.person_must_see)
    assert not send
    assert outcome.status == "hold" or any(outcome.boxes[3])
