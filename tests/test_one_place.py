"""One place per concern (issue 13): the pieces several callers share really are shared, so a
fix made there reaches every caller."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from deidkit import contract, export, export_earlier, pixels, review_decisions
from deidkit.mapping import Mapper
from test_pixels import grey_frames, make_ds


class _Walked(Exception):
    pass


def test_every_pixel_walk_goes_through_decoded_frames(monkeypatch):
    """text_left, clean_pixels, apply_regions and display_frames (the review window) all read
    frames through pixels.decoded_frames: a codec failing there reaches each with its own words."""
    def failing(ds, ts):
        raise _Walked("the codec failed")

    monkeypatch.setattr(pixels, "decoded_frames", failing)
    ds = make_ds(grey_frames(2), "MONOCHROME2")
    with pytest.raises(pixels.PixelError, match=r"could not be decoded \(_Walked\)"):
        pixels.text_left(ds)
    with pytest.raises(pixels.PixelError, match=r"could not be decoded \(_Walked\)"):
        pixels.display_frames(ds)
    with pytest.raises(pixels.PixelError, match=r"could not be decoded \(_Walked\)"):
        pixels.apply_regions(ds, review_decisions.parse_boxes("*:0,0,4,4"))
    outcome = pixels.clean_pixels(ds, [])
    assert outcome.status == "hold" and outcome.reason == "pixel data could not be decoded (_Walked)"


def test_decoded_frames_stops_at_number_of_frames():
    frames = grey_frames(3)
    ds = make_ds(frames, "MONOCHROME2")
    seen = list(pixels.decoded_frames(ds, ds.file_meta.TransferSyntaxUID))
    assert len(seen) == 3 and all(p == "MONOCHROME2" for _, p in seen)
    assert np.array_equal(seen[2][0], frames[2])
    ds.NumberOfFrames = 2  # fewer frames than the data holds: only those are read
    assert len(list(pixels.decoded_frames(ds, ds.file_meta.TransferSyntaxUID))) == 2


@pytest.mark.parametrize("modality, series, instance", [
    ("CT", 3, 12), ("", None, None), ("mr/ax t2", "0099", " 7 "), ("X" * 20, -1, 10 ** 6), ("ÄÖ", 9999, 99999)])
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on the odd values
def test_output_path_is_the_contract_pattern(modality, series, instance):
    """Every name deid_tool gives is one --verify, rename_folders and the earlier-run cleaner
    recognise (contract.OUTPUT_PATH_RE), whatever the header holds."""
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.Modality = modality
    if series is not None:
        ds.SeriesNumber, ds.InstanceNumber = series, instance
    mapper = Mapper(b"k" * 32)
    rel = export.output_path(ds, mapper.patient_pseudonym("id:PID1"), mapper)
    assert contract.OUTPUT_PATH_RE.fullmatch(rel), rel


def test_an_earlier_run_is_removed_by_the_contract_pattern_only(tmp_path):
    """remove_earlier_output removes what its manifest lists only when named as the kit names
    files (contract.OUTPUT_PATH_RE): a listed file with another name stays."""
    dest, hospital = tmp_path / "OUT", tmp_path / "OUT_HOSPITAL_ONLY"
    ours = "SUBJ_ABCDEFGHIJ/STUDY_0123ABCD/SERIES_0001_CT_89ABCDEF/IMG_00001_01234567.dcm"
    second = "SUBJ_ABCDEFGHIJ/STUDY_0123ABCD/SERIES_0001_CT_89ABCDEF/IMG_00002_01234567_123456789.dcm"
    theirs = "SUBJ_ABCDEFGHIJ/notes.dcm"
    for rel in (ours, second, theirs):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(b"x")
    (dest / contract.MANIFEST_NAME).write_text("file\n" + "\n".join((ours, second, theirs)) + "\n", encoding="utf-8")
    hospital.mkdir()
    assert export_earlier.remove_earlier_output(dest, hospital) == [theirs]
