"""The detector benchmarks measure what they say (issue 16): small frames with 5x7 text are
counted as found, noise maps as flagged or not, and --corpora looks at one frame per series."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_pixel_detector  # noqa: E402
import bench_risk_real_images  # noqa: E402

from deidkit import pixel_detect  # noqa: E402


def write_mr(path: Path, frame: np.ndarray, series: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[series])
    ds.Modality, ds.ImageType = "MR", ["DERIVED", "PRIMARY", "ADC"]
    ds.Rows, ds.Columns = frame.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = frame.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_small_frames_count_text_found_and_noise_flagged():
    line = bench_pixel_detector.small_frames(np.random.default_rng(3), pixel_detect.load_network(), 6)
    assert "5x7 text found in 6 of 6" in line and "noise maps flagged" in line


def test_synthetic_maps_count_text_free_flagged_and_labels_found():
    line = bench_pixel_detector.synthetic_maps(np.random.default_rng(3), pixel_detect.load_network(), 3)
    counts = [int(w) for w in line.replace(";", " ").split() if w.isdigit()]
    assert line.startswith("synthetic maps") and "mosaics" in line
    assert counts[1::2] == [3, 3, 3, 3] and all(0 <= c <= 3 for c in counts[0::2])
    assert counts[2] >= 2  # 5x7 labels on maps are found


def test_corpora_looks_at_one_frame_per_series_and_counts_boxes(tmp_path, capsys):
    from deidkit.synth import burn_text
    rng = np.random.default_rng(1)
    for i in range(3):  # three images of one noise-map series: one looked at
        write_mr(tmp_path / "qa_noise" / f"{i}.dcm", rng.integers(0, 4096, (64, 64)), "noise")
    text = (rng.integers(0, 600, (64, 64))).astype(np.uint16)
    burn_text(text, "DOE JANE", 20, 2, 4095, 1)
    write_mr(tmp_path / "qa_text" / "0.dcm", text, "text")
    (tmp_path / "qa_text" / "notes.txt").write_text("not DICOM")
    assert bench_risk_real_images.corpora(tmp_path) == 0
    out = capsys.readouterr().out
    noise_line, = [ln for ln in out.splitlines() if ln.startswith("qa_noise")]
    text_line, = [ln for ln in out.splitlines() if ln.startswith("qa_text")]
    assert "series: 1, any box: 0" in noise_line
    assert "series: 1, any box: 1" in text_line
