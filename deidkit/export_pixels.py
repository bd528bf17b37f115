"""The pixel step of one image at burned-in text risk, in a worker: a person's approved boxes
applied, or the detector run and the image released or held by rule (deidkit.pixels does the
pixel work; this decides what the file's result says)."""
from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from . import dicomio, engine, pixels, review_decisions, risk
from .contract import REVIEW_IMAGES_DIR
from .export_model import HELD, FileResult


def pixels_may_go(ds: Dataset, result: FileResult, assessment: risk.RiskAssessment, approved: str | None,
                  proposed: str | None, rules: list[pixels.LayoutRule], trust_detector: bool,
                  hospital_dir: Path) -> bool:
    """The pixel step of an image at risk: apply a person's approved boxes, or run the detector and
    decide by rule. True: ds is ready to write (pixels blanked and re-encoded as needed, Burned In
    Annotation NO, Clean Pixel Data code added). False: held; result says why, and result.proposal
    holds the boxes proposed to a person when the pixels could be looked at.

    A person's approval of exactly the tool's (non-empty) proposal is held again when the final
    look still finds text outside the boxes (the tool found more the person has not seen). When the
    person changed the boxes, or the proposal was empty, their decision stands: exactly their boxes
    are blanked. Every approved image sent says so in De-identification Method (0012,0063)
    (engine.PERSON_REVIEWED), which --verify reads. Review images go below hospital_dir."""
    original_ts = str(ds.file_meta.get("TransferSyntaxUID") or dicomio.transfer_syntax_of(ds))
    if approved is not None:
        if not _approved_boxes_go(ds, result, assessment, approved, proposed):
            return False
    elif not _detector_lets_go(ds, result, assessment, rules, trust_detector, hospital_dir):
        return False
    pixels.encode_like(ds, original_ts)
    engine.add_clean_pixel_code(ds)
    return True


def _approved_boxes_go(ds: Dataset, result: FileResult, assessment: risk.RiskAssessment, approved: str,
                       proposed: str | None) -> bool:
    """Blank a person's boxes and look once more, as --verify will; False: held (result says why)."""
    try:
        regions = review_decisions.parse_boxes(approved)
        blanked = pixels.apply_regions(ds, regions)
        # the look --verify takes: text still seen beyond the person's boxes keeps it here
        left = pixels.text_left(ds)
    except (review_decisions.DecisionError, pixels.PixelError) as e:
        result.status, result.reason = HELD, f"burned-in text risk ({assessment.reason}): approved, but {e}"
        result.proposal = approved
        return False
    if any(left) and not _person_decision_stands(approved, proposed):
        where = "; ".join(f"frame {i + 1} rows {b[0]}-{b[2]}, cols {b[1]}-{b[3]}"
                          for i, boxes in enumerate(left) for b in boxes[:3])
        result.status = HELD
        result.reason = (f"burned-in text risk ({assessment.reason}): approved, but text is still found "
                         f"outside the approved boxes ({where}): widen the boxes or reject, and run again")
        grown = [[pixels.Box(*b).grown(pixels.REDACTION_MARGIN, int(ds.Rows), int(ds.Columns)).as_list()
                  for b in boxes] for boxes in left]
        result.proposal = review_decisions.format_boxes(regions + review_decisions.regions_from_frames(grown))
        return False
    result.reason = f"approved by a person ({blanked} region(s) blanked)" if blanked else "approved by a person"
    engine.add_method_note(ds, engine.PERSON_REVIEWED)
    return True


def _detector_lets_go(ds: Dataset, result: FileResult, assessment: risk.RiskAssessment,
                      rules: list[pixels.LayoutRule], trust_detector: bool, hospital_dir: Path) -> bool:
    """Layout rules and the detector; True: released by rule, False: held (with a proposal when a
    person can decide)."""
    outcome = pixels.clean_pixels(ds, rules)
    send, why = pixels.release_decision(outcome, bool(pixels.matching_rules(ds, rules)), trust_detector,
                                        assessment.person_must_see)
    result.thumbnails = _save_thumbnails(hospital_dir, result.ref, outcome)
    result.frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not send:
        result.status, result.reason = HELD, f"burned-in text risk ({assessment.reason}): {why}"
        if outcome.boxes or outcome.status != "hold" or outcome.for_person:  # a person can decide
            result.proposal = review_decisions.format_boxes(review_decisions.regions_from_frames(outcome.boxes))
        return False
    ds.BurnedInAnnotation = "NO"
    result.reason = why
    return True


def _person_decision_stands(approved: str, proposed: str | None) -> bool:
    """Did the person change the tool's proposal (boxes removed, moved or added), or was there no
    proposal (an image the detector cannot judge)? Then their boxes are final. Unknown proposal:
    False (fail closed)."""
    if proposed is None:
        return False
    try:
        tool = review_decisions.format_boxes(review_decisions.parse_boxes(proposed))
    except review_decisions.DecisionError:
        return False
    return not tool or tool != review_decisions.format_boxes(review_decisions.parse_boxes(approved))


def _save_thumbnails(hospital_dir: Path, ref: str, outcome: pixels.PixelOutcome) -> list[str]:
    """Review images go to the hospital-side folder (they may show PHI)."""
    saved = []
    folder = hospital_dir / REVIEW_IMAGES_DIR
    for label, png in (("before", outcome.before_png), ("after", outcome.after_png)):
        if png:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ref}_{label}.png"
            path.write_bytes(png)
            saved.append(path.name)
    return saved
