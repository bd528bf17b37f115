"""Burned-in text risk from the header: the one rule set (guidelines/burned_in_risk.csv).

deid_tool (export, pixels) and --verify ask the same question, `assess(ds, guidelines)`, so the
sender and the checker judge an image alike. The rules are data: a site edits the table, not code
(see the table's comment lines for its columns). Works on headers read with stop_before_pixels.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from pydicom.dataset import Dataset

from .guidelines import RISK_FILE, Guidelines, RiskRule, bundled_dir, parse_burned_in_risk

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
CHECK, HOLD, NONE, LABELS = "check", "hold", "none", "labels"
LAYOUT_REASON = "known screen layout"


@dataclass(frozen=True)
class RiskAssessment:
    """What the header says about burned-in text in one image.

    action           "none" (no rule matched: pixels are not looked at), "check" (the detector looks
                     at every frame) or "hold" (never sent by rule)
    reason           plain words for a person: the first matching row's reason ("" for none)
    person_must_see  a person sees the image even when the detector finds no text
    rules            every matching row, in table order
    """

    action: str
    reason: str
    person_must_see: bool
    rules: tuple[RiskRule, ...] = ()

    @property
    def at_risk(self) -> bool:
        """True when the pixels must be looked at (check) or the image is held (hold)."""
        return self.action != NONE


NO_RISK = RiskAssessment(NONE, "", False)


def is_image(ds: Dataset) -> bool:
    """Whether the dataset describes an image (Rows, or any pixel data element, even unread)."""
    return "Rows" in ds or any(k in ds for k in PIXEL_KEYWORDS)


def _upper(value: object) -> str:
    return str(value).strip().upper() if value is not None else ""


def _values(ds: Dataset, keyword: str) -> set[str]:
    """The upper-cased value(s) of an attribute (Image Type is multi-valued)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - an unreadable value matches nothing; other rules still apply
        return set()
    if value is None or value == "":
        return set()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return {_upper(v) for v in value}
    return {_upper(value)}


@functools.lru_cache(maxsize=1)
def bundled_rules() -> tuple[RiskRule, ...]:
    """The bundled burned_in_risk.csv (used when no Guidelines is given); GuidelineError if bad."""
    return parse_burned_in_risk((bundled_dir() / RISK_FILE).read_text(encoding="utf-8-sig"))


def assess(ds: Dataset, guidelines: Guidelines | None = None, layout_matched: bool = False) -> RiskAssessment:
    """Judge one dataset (header only is enough) against the burned-in risk table.

    ds              the image's dataset (pixel data need not be read)
    guidelines      the loaded tables; None uses the bundled burned_in_risk.csv
    layout_matched  a known screen layout (pixel_redaction_rules.csv) matches this image: at risk
                    even when no row does ("known screen layout", person need not see)
    Returns NO_RISK for objects that are not images (reports, documents). Never raises on odd
    values (an unreadable attribute matches no row). Burned In Annotation NO clears nothing.
    A matching "labels" row (Segmentation: frames are masks) leaves only the flag rows in force.
    """
    if not is_image(ds):
        return NO_RISK
    rules = guidelines.burned_in_risk if guidelines is not None and guidelines.burned_in_risk else bundled_rules()
    cache: dict[str, set[str]] = {}
    matched = []
    for rule in rules:
        if rule.keyword not in cache:
            cache[rule.keyword] = _values(ds, rule.keyword)
        if rule.value in cache[rule.keyword]:
            matched.append(rule)
    if any(r.action == LABELS for r in matched):
        # frames that are labels (segment masks), not a rendering: only what the header declares
        # (Burned In Annotation, Recognizable Visual Features) puts them at risk, not Image Type
        matched = [r for r in matched if r.match == "flag"]
    if not matched:
        return RiskAssessment(CHECK, LAYOUT_REASON, False) if layout_matched else NO_RISK
    held = [r for r in matched if r.action == HOLD]
    action = HOLD if held else CHECK
    return RiskAssessment(action, (held or matched)[0].reason, any(r.person_must_see for r in matched), tuple(matched))
