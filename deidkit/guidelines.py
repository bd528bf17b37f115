"""Guideline table loading and validation: the one source of truth for what must not leave.

Files (bundled in guidelines/, each overridable by a copy next to the executable or --guidelines):
  confidentiality_profile.csv  PS3.15 Table E.1-1 with the Basic Profile and option actions
  safe_private.csv             PS3.15 Table E.3.10-1 (Retain Safe Private option)
  private_tag_kb.csv           E.3.10-1 merged with TCIA's private tag knowledge base (generated):
                               per private creator + element byte, keep/hash/offset/delete
  research_private.csv         our own additions: numeric acquisition parameters research needs
  attribute_types.csv          PS3.3 module Types used to resolve combined codes
  settings.ini                 which options the site runs with, pseudonym and date settings
  descriptor_vocabulary.txt    imaging words Clean Descriptors never reads as names
  pixel_redaction_rules.csv    known screen layouts to blank (read by deidkit.pixels)
  unlisted_text_attributes.csv public text attributes Table E.1-1 does not list, each decided
  burned_in_risk.csv           which images may carry burned-in text (deidkit.risk.assess)
The engine and --verify both ask `Guidelines.action_for`; nothing else holds tag lists.
"""
from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# the file formats, row types and parsers live in deidkit.guideline_files; re-exported here
from .guideline_files import BASIC_CODES as BASIC_CODES
from .guideline_files import GUIDELINE_FILES as GUIDELINE_FILES
from .guideline_files import GuidelineError as GuidelineError
from .guideline_files import NUMERIC_VRS as NUMERIC_VRS
from .guideline_files import OPTIONS as OPTIONS
from .guideline_files import OPTION_CODES as OPTION_CODES
from .guideline_files import OPTION_VALUES as OPTION_VALUES
from .guideline_files import PIXEL_RULES_FILE as PIXEL_RULES_FILE
from .guideline_files import PRIVATE_CHECKS as PRIVATE_CHECKS
from .guideline_files import PRIVATE_DISPOSITIONS as PRIVATE_DISPOSITIONS
from .guideline_files import PRIVATE_KB_FILE as PRIVATE_KB_FILE
from .guideline_files import PRIVATE_KEEPS as PRIVATE_KEEPS
from .guideline_files import PRIVATE_TAG_TEXT as PRIVATE_TAG_TEXT
from .guideline_files import PROFILE_FILE as PROFILE_FILE
from .guideline_files import PROTECTION as PROTECTION
from .guideline_files import RESEARCH_PRIVATE_FILE as RESEARCH_PRIVATE_FILE
from .guideline_files import RISK_ACTIONS as RISK_ACTIONS
from .guideline_files import RISK_FILE as RISK_FILE
from .guideline_files import RISK_MATCHES as RISK_MATCHES
from .guideline_files import RiskRule as RiskRule
from .guideline_files import Rule as Rule
from .guideline_files import SAFE_PRIVATE_FILE as SAFE_PRIVATE_FILE
from .guideline_files import SETTINGS_FILE as SETTINGS_FILE
from .guideline_files import SafePrivate as SafePrivate
from .guideline_files import Settings as Settings
from .guideline_files import TYPES_FILE as TYPES_FILE
from .guideline_files import UNLISTED_ACTIONS as UNLISTED_ACTIONS
from .guideline_files import UNLISTED_TEXT_FILE as UNLISTED_TEXT_FILE
from .guideline_files import UnlistedText as UnlistedText
from .guideline_files import VALID_VRS as VALID_VRS
from .guideline_files import VOCABULARY_FILE as VOCABULARY_FILE
from .guideline_files import merge_private_tables as merge_private_tables
from .guideline_files import parse_burned_in_risk as parse_burned_in_risk
from .guideline_files import parse_private_table as parse_private_table
from .guideline_files import parse_profile as parse_profile
from .guideline_files import parse_safe_private as parse_safe_private
from .guideline_files import parse_settings as parse_settings
from .guideline_files import parse_tag as parse_tag
from .guideline_files import parse_types as parse_types
from .guideline_files import parse_unlisted_text as parse_unlisted_text
from .guideline_files import parse_vocabulary as parse_vocabulary
from .guideline_files import resolve_combined as resolve_combined


@dataclass(frozen=True)
class Guidelines:
    """Every guideline table and setting, loaded and validated: the one source the engine and --verify read."""
    edition: str
    rules: dict[int, Rule]
    masked: tuple[tuple[int, int, Rule], ...]  # (mask, value, rule) for (50xx,xxxx) etc.
    private_rule: Rule
    safe_private: dict[tuple[str, int, int], SafePrivate]
    types: dict[int, tuple[tuple[str, tuple[str, ...]], ...]]  # tag -> ((type, iod prefixes), ...)
    settings: Settings
    vocabulary: frozenset[str]
    sha256: str
    overridden: tuple[str, ...] = field(default=())  # files taken from outside the bundle
    burned_in_risk: tuple[RiskRule, ...] = field(default=())  # burned_in_risk.csv, in file order
    unlisted_text: dict[int, UnlistedText] = field(default_factory=dict)  # unlisted_text_attributes.csv
    # (tag, sop class) -> resolved code, filled as the engine asks; never copied by
    # dataclasses.replace (init=False), so a Guidelines with other settings starts empty
    _action_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ---- the questions the engine and verify ask -------------------------------------------
    def rule_for(self, tag: int) -> Rule | None:
        """The Table E.1-1 row covering a public tag (exact first, then masked groups)."""
        rule = self.rules.get(tag)
        if rule is not None:
            return rule
        for mask, value, masked_rule in self.masked:
            if tag & mask == value:
                return masked_rule
        return None

    def action_for(self, tag: int, sop_class_uid: str = "") -> str | None:
        """One resolved code (X, Z, D, K, C or U) for a public tag, or None if not in the table."""
        key = (int(tag), sop_class_uid)
        try:
            return self._action_cache[key]
        except KeyError:
            code = self._resolve_action(tag, sop_class_uid)
            if len(self._action_cache) < 100_000:  # bounded whatever the input holds
                self._action_cache[key] = code
            return code

    def _resolve_action(self, tag: int, sop_class_uid: str) -> str | None:
        rule = self.rule_for(tag)
        if rule is None:
            return None
        return resolve_combined(rule.code_under(self.settings.options), self.module_type(tag, sop_class_uid))

    def resolve_basic(self, rule: Rule, sop_class_uid: str = "") -> str:
        """The Basic Profile's single code for a row, ignoring options (fallback of C)."""
        tag = parse_tag(rule.tag)
        module_type = self.module_type(tag[1], sop_class_uid) if tag else None
        return resolve_combined(rule.basic, module_type)

    def unlisted_text_action(self, tag: int) -> str | None:
        """K, C, X or Z for a public text attribute the table does not list (None: not decided
        in unlisted_text_attributes.csv, e.g. newer than the dictionary it was made from)."""
        row = self.unlisted_text.get(int(tag))
        return row.code_under(self.settings.options) if row is not None else None

    def settings_pseudonym_tags(self) -> tuple[int, ...]:
        """The tags that get the pseudonym (settings.ini), as ints."""
        return self.settings.pseudonym_tags

    def module_type(self, tag: int, sop_class_uid: str = "") -> str | None:
        """PS3.3 Type of the attribute in this SOP Class where attribute_types.csv knows it."""
        entries = self.types.get(tag, ())
        general = None
        for attr_type, iods in entries:
            if iods == ("*",):
                general = attr_type
            elif sop_class_uid and any(sop_class_uid.startswith(p) for p in iods):
                return attr_type
        return general

    def safe_private_entry(self, creator: str, group: int, element: int) -> SafePrivate | None:
        """The row that keeps a private element (E.3.10-1, TCIA knowledge base or our research
        table), matched by creator (case and surrounding spaces ignored) and element byte; None
        when the element is to be deleted."""
        entry = self.private_entry(creator, group, element)
        return entry if entry is not None and entry.kept else None

    def private_entry(self, creator: str, group: int, element: int) -> SafePrivate | None:
        """Any row for a private element, whatever its disposition (d rows included)."""
        return self.safe_private.get((creator.strip().lower(), group, element & 0xFF))

    def private_action(self) -> str:
        """Code for private attributes that are not on the safe list (X unless the table says)."""
        return resolve_combined(self.private_rule.basic, None)

    @property
    def retain_safe_private(self) -> bool:
        """True when the Retain Safe Private option is on."""
        return "retain_safe_private" in self.settings.options

    def describe(self) -> str:
        """The standard edition and options in force, in one line for the reports."""
        opts = ", ".join(o for o in OPTIONS if o in self.settings.options) or "none"
        return f"PS3.15 {self.edition} Table E.1-1, options: {opts}"




# ---- loading -------------------------------------------------------------------------------

def bundled_dir() -> Path:
    """guidelines/ inside the frozen bundle, or beside the package in a source checkout."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))
    return base / "guidelines"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise GuidelineError(f"{path}: cannot read ({e.strerror or e})") from None




def locate(override_dir: Path | None = None) -> dict[str, Path]:
    """Which copy of each guideline file to use: override_dir's when present, else the bundle's."""
    chosen = {}
    for fname in GUIDELINE_FILES:
        candidate = override_dir / fname if override_dir else None
        chosen[fname] = candidate if candidate is not None and candidate.is_file() else bundled_dir() / fname
    return chosen


def load(override_dir: Path | None = None) -> Guidelines:
    """Load and validate the guideline files; raises GuidelineError naming the bad file/line."""
    paths = locate(override_dir)
    texts = {fname: _read(path) for fname, path in paths.items()}
    digest = hashlib.sha256()
    for fname in GUIDELINE_FILES:
        digest.update(fname.encode() + b"\0" + texts[fname].replace("\r\n", "\n").encode("utf-8") + b"\0")
    edition, exact, masked, private_rule = parse_profile(texts[PROFILE_FILE])
    overridden = tuple(f for f, p in paths.items() if p.parent != bundled_dir())
    return Guidelines(
        edition=edition, rules=exact, masked=masked, private_rule=private_rule,
        safe_private=merge_private_tables(parse_private_table(texts[PRIVATE_KB_FILE], PRIVATE_KB_FILE),
                                          parse_safe_private(texts[SAFE_PRIVATE_FILE]),
                                          parse_private_table(texts[RESEARCH_PRIVATE_FILE], RESEARCH_PRIVATE_FILE)),
        types=parse_types(texts[TYPES_FILE]), settings=parse_settings(texts[SETTINGS_FILE]),
        vocabulary=parse_vocabulary(texts[VOCABULARY_FILE]),
        sha256=digest.hexdigest(), overridden=overridden,
        burned_in_risk=parse_burned_in_risk(texts[RISK_FILE]),
        unlisted_text=parse_unlisted_text(texts[UNLISTED_TEXT_FILE]),
    )


def register_new_attributes(guidelines: Guidelines) -> None:
    """Teach pydicom the VRs of table attributes newer than its dictionary (read as UN otherwise)."""
    from pydicom.datadict import add_dict_entries, dictionary_has_tag

    new = {}
    for tag, rule in guidelines.rules.items():
        if rule.vr and not dictionary_has_tag(tag):
            keyword = re.sub(r"[^A-Za-z0-9]", "", rule.name.title())
            new[tag] = (rule.vr, "1-n" if rule.vr != "SQ" else "1", rule.name, "", keyword)
    if new:
        add_dict_entries(new)
