"""Text checks shared by the engine and --verify: own identifiers, generic PHI shapes, cleaning.

- `Identifiers.from_dataset(original)` gathers this patient's own identifiers from the original
  header (name parts, IDs, birth date in common spellings, address, phone numbers).
- `Identifiers.find(text)` says which of them a text still contains (any order, case, accents).
- `find_generic_phi(text)` finds PHI shapes in free text: dates, phone numbers, e-mail, postal
  addresses, ID-like numbers, person-name syntax (defined in deidkit.phi_shapes, re-exported).
- `clean_descriptor(text, ...)` is Clean Descriptors: remove what identifies, keep the rest
  (defined in deidkit.descriptors, re-exported).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field, fields

from pydicom.dataelem import DataElement
from pydicom.datadict import DicomDictionary, dictionary_VR, get_private_entry
from pydicom.dataset import Dataset

# Clean Descriptors and the generic PHI shapes live in their own modules; re-exported here
from .descriptors import caret_names_someone as caret_names_someone
from .descriptors import clean_descriptor as clean_descriptor
from .phi_shapes import _MONTH_NAMES, _MONTHS
from .phi_shapes import TextFinding as TextFinding
from .phi_shapes import find_generic_phi as find_generic_phi

# Honorifics and particles that are not identifying on their own.
_NAME_STOPWORDS = {
    "dr", "md", "mr", "mrs", "ms", "miss", "jr", "sr", "ii", "iii", "iv", "phd", "prof", "de", "la",
    "le", "van", "von", "der", "den", "da", "di", "du", "del", "dos", "el", "al", "bin", "ben",
}


def fold(text: str) -> str:
    """Lower case without accents, for matching names however they were typed."""
    if text.isascii():  # nothing to decompose; casefold of ASCII is lower
        return text.lower()
    if max(text) <= "\xff":  # Latin-1 (binary values are read so): the same, one table lookup a character
        return text.translate(_LATIN1_FOLD)
    return _fold_any(text)


def _fold_any(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# fold works character by character (decomposition, dropping marks and case folding are all
# per character), so on Latin-1 text it is a translation table
_LATIN1_FOLD = {i: _fold_any(chr(i)) for i in range(256)}
_LATIN1 = "".join(map(chr, range(256)))
# a lower-case letter followed by an upper-case one, within Latin-1 (str.islower / isupper)
_LATIN1_CAMEL = re.compile("(?<=[%s])(?=[%s])" % (re.escape("".join(c for c in _LATIN1 if c.islower())),
                                                 re.escape("".join(c for c in _LATIN1 if c.isupper()))))


def _split_camel(text: str) -> str:
    """text with a space between a lower-case and an upper-case letter ("Mr Quistgaard")."""
    if max(text, default="") <= "\xff":
        return _LATIN1_CAMEL.sub(" ", text)
    return "".join(" " + c if i and text[i - 1].islower() and c.isupper() else c for i, c in enumerate(text))


def _transliterate(token: str) -> str:
    """German-style spellings without umlauts: Müller -> Mueller, Strauß -> Strauss."""
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ø": "oe", "å": "aa"}
    return "".join(table.get(c, c) for c in token)


def _is_cjk(token: str) -> bool:
    return any(unicodedata.east_asian_width(c) in ("W", "F") for c in token)


def date_spellings(yyyymmdd: str) -> set[str]:
    """A date as people write it: 19610203, 1961-02-03, 03.02.1961, 02/03/1961, 3 Feb 1961 ..."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", yyyymmdd.strip())
    if not m:
        return set()
    y, mo, d = m.groups()
    mi, di = int(mo), int(d)
    if not 1 <= mi <= 12:
        return {yyyymmdd}
    out = {f"{y}{mo}{d}", f"{y}-{mo}-{d}", f"{y}/{mo}/{d}", f"{y}.{mo}.{d}",
           f"{d}.{mo}.{y}", f"{d}/{mo}/{y}", f"{mo}/{d}/{y}", f"{d}-{mo}-{y}", f"{mo}-{d}-{y}",
           f"{di}.{mi}.{y}", f"{di}/{mi}/{y}", f"{mi}/{di}/{y}", f"{d}{mo}{y}", f"{mo}{d}{y}",
           f"{y}年{mi}月{di}日"}
    for month in (_MONTHS[mi - 1], _MONTH_NAMES[mi - 1]):
        out |= {f"{di} {month} {y}", f"{d} {month} {y}", f"{month} {di}, {y}", f"{month} {di} {y}",
                f"{d}-{month}-{y}", f"{di}-{month}-{y}", f"{d}{month}{y}"}
    return out


@dataclass
class Identifiers:
    """One patient's own identifiers, from the original header. Holds PHI: never write it out."""

    name_tokens: set[str] = field(default_factory=set)   # folded name parts
    exact: set[str] = field(default_factory=set)         # folded IDs, dates, phones, address parts
    patient_name_known: bool = False  # the header named the patient (Clean Descriptors relies on it)
    # name parts this file keeps on purpose where they are a device model or defined term
    # ("MAGNETOM Sola" for a patient named Sola): the written-header search skips them
    term_tokens: set[str] = field(default_factory=set)
    # words never read as a misspelt name (the imaging vocabulary: "cortex" for a patient Cortes)
    known_words: frozenset[str] = frozenset()
    # endings of a long run of letters in a name (a separator lost): matched as whole words only
    name_endings: set[str] = field(default_factory=set)
    # patterns compiled from the two sets above; rebuilt whenever the sets no longer match them
    _compiled: "_Matcher | None" = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_dataset(cls, ds: Dataset, terms_from: Dataset | None = None) -> "Identifiers":
        """The identifiers of one dataset: names, IDs, dates and addresses, from every element at any depth.
        terms_from: the whole header when ds is a view of it (its defined terms, _technical_words)."""
        ids = cls()
        ids.patient_name_known = bool(str(ds.get("PatientName", "") or "").strip("^= "))
        technical: frozenset[str] | None = None
        for elem in _every_element(ds):
            if elem.value in (None, "", b""):
                continue
            if _holds_a_person_name(elem) or _names_a_person(elem):
                if not isinstance(elem.value, bytes):
                    for v in _text_values(elem):
                        learn_name(ids, v)
                    continue
                if technical is None:
                    technical = _technical_words(ds if terms_from is None else terms_from)
                ids.merge(_struct_name_parts(elem, technical))
        ids._add_patient_ids(ds)
        birth = str(ds.get("PatientBirthDate", "") or "")
        for spelling in date_spellings(birth):
            ids.exact.add(fold(spelling))
        for keyword in ("PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation",
                        "PatientMotherBirthName", "RegionOfResidence", "MilitaryRank"):
            value = ds.get(keyword)
            if value:
                for v in (value if not isinstance(value, str) else [value]):
                    ids.add_free_text(str(v))
        return ids

    def _add_patient_ids(self, ds: Dataset) -> None:
        """Patient ID, accession and study numbers, other patient IDs: searched as whole values."""
        for keyword in ("PatientID", "IssuerOfPatientID", "AccessionNumber", "StudyID",
                        "MedicalRecordLocator", "PatientInsurancePlanCodeSequence"):
            value = ds.get(keyword)
            if isinstance(value, str):
                self.add_exact(value)
        for seq_item in ds.get("OtherPatientIDsSequence", []) or []:
            self.add_exact(str(seq_item.get("PatientID", "")))
        other = ds.get("OtherPatientIDs")
        if other:
            for v in (other if not isinstance(other, str) else [other]):
                self.add_exact(str(v))

    def add_name(self, pn: str) -> None:
        """Learn a person name's parts, and each two neighbouring parts joined ("MARYANNE")."""
        parts = []
        for token in re.split(r"[\^=\s,.\-'()\d_/]+", pn):
            for variant in {token, _transliterate(token)}:
                f = fold(variant)
                if len(f) >= 2 and f not in _NAME_STOPWORDS and not f.isdigit():
                    self.name_tokens.add(f)
            f = fold(token)
            if len(f) >= 2 and not f.isdigit():
                parts.append(f)
        for a, b in zip(parts, parts[1:], strict=False):
            if len(a) + len(b) >= 6 and not _is_cjk(a + b):
                self.name_tokens.add(a + b)
        self._add_damaged_name_forms(pn)

    def _add_damaged_name_forms(self, pn: str) -> None:
        """Forms of a name whose separators or letters a typing slip or a damaged byte changed:
        each run of letters of 4 or more ("OTTOL" of "OTTOL\xa8\xba!"), a part without the digit
        that replaced a letter ("OTOLINE" of "O4TOLINE": one slip from OTTOLINE), and the endings
        of a long run of letters where the separator itself became a letter ("OTTOLINE" at the end
        of "ZEBRAFINCHMOTTOLINE"; its beginning is found by the prefix rule), and the stem before
        damage glued to a part ("OTTOL" of "OTTOLw;RS" or "OTTOLðSÙ": damaged_stem; also its
        ASCII beginning, "OTTO" of "OTTOÂk0E")."""
        for chunk in re.split(r"[\^=\s,.\-'()_/]+", pn):
            letters_only = fold(re.sub(r"\d+", "", chunk))
            if letters_only != fold(chunk) and len(letters_only) >= NEAR_NAME_LEAST - 1 and letters_only.isalpha():
                self.name_tokens.add(letters_only)
            for run in _LETTER_RUN.findall(fold(chunk)):
                if len(run) >= 4 and run not in _NAME_STOPWORDS:
                    self.name_tokens.add(run)
                if _is_cjk(run) and not all(_is_cjk(c) for c in run):
                    # a damaged byte read as a CJK or kana letter glued to Latin ones ("ﾑEBRAFINCH"
                    # under ISO 2022 IR 13): the Latin letters are a name part of their own
                    for latin in re.findall(r"[^\W\d_]+", "".join(" " if _is_cjk(c) else c for c in run)):
                        if len(latin) >= 4 and latin not in _NAME_STOPWORDS:
                            self.name_tokens.add(latin)
                if len(run) >= GLUED_NAME_LEAST:
                    self.name_endings.update(run[i:] for i in range(1, len(run) - 5))
            stem = damaged_stem(chunk)
            # a damaged part's stem may end in a damaged byte read as an accented letter
            # ("OTTOÂk0E"): its ASCII beginning is a stem too (an undamaged "HERNÁNDEZ" gives none)
            ascii_head = re.match(r"[A-Za-z]*", stem).group() if stem != chunk else stem  # type: ignore[union-attr]
            forms = {fold(stem), fold(ascii_head)}
            if stem != chunk and stem[-1:].isupper() and chunk[len(stem):len(stem) + 1].islower():
                # the case broke after an upper-case letter: the damage may have begun one or two
                # letters before ("OTTOLZäéþ": Z is damage too; OTTOL and OTTO find OTTOLINE)
                forms |= {fold(stem[:-1]), fold(stem[:-2])}
            for form in forms:
                if len(form) >= 4 and form not in _NAME_STOPWORDS:
                    self.name_tokens.add(form)  # matched at a word start: "OTTOL" finds "OTTOLINE"

    def add_exact(self, value: str) -> None:
        """Add a value searched as a whole (folded; at least 3 characters), and its digits alone when 5 or more."""
        f = fold(value.strip())
        if len(f) >= 3:
            self.exact.add(f)
            digits = re.sub(r"\D", "", f)
            if len(digits) >= 5 and digits != f:
                self.exact.add(digits)

    def add_free_text(self, value: str) -> None:
        """Add the parts and words of a free-text value (an address, say) as identifiers."""
        for part in re.split(r"[,;^\n]+", value):
            part = part.strip()
            if len(part) >= 4:
                self.exact.add(fold(part))
            digits = re.sub(r"\D", "", part)
            if len(digits) >= 6:
                self.exact.add(digits)
        for token in re.findall(r"\w{4,}", value):
            if not token.isdigit():
                self.name_tokens.add(fold(token))

    def merge(self, other: "Identifiers") -> None:
        """Add the identifiers of other (another file of the same patient) to these."""
        self.name_tokens |= other.name_tokens
        self.exact |= other.exact
        self.patient_name_known = self.patient_name_known or other.patient_name_known
        self.term_tokens |= other.term_tokens
        self.name_endings |= other.name_endings

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Where the text holds this patient's identifiers: (start, end, 'name'|'identifier') in
        the text as given (the matching itself is on the folded text, CamelCase split)."""
        return matcher_spans(self._matcher(), text, self.known_words) if text else []

    def find(self, text: str) -> list[str]:
        """Which kinds of this patient's identifiers the text contains ('name', 'identifier')."""
        if not text:
            return []
        matcher = self._matcher()
        folded = fold(text)
        # CamelCase is read both ways: split ("MrQuistgaard") and as written (a name learned as
        # "epiRT" is the token "epirt", which the split reading "epi rt" would never show)
        readings = (folded, fold(_split_camel(text))) if _has_camel(text) else (folded,)
        hits = []
        if matcher.name_re is not None and any(matcher.name_re.search(r) for r in readings):
            hits.append("name")
        elif matcher.near and any(_near_name_words(matcher, r, self.known_words) for r in readings):
            hits.append("name")
        split = readings[-1]  # IDs are looked for in the split reading only, as before
        if (matcher.exact_re is not None and matcher.exact_re.search(split)) or (
                matcher.digits_re is not None and matcher.digits_re.search(re.sub(r"\D", "", split))):
            hits.append("identifier")
        return hits

    def _matcher(self) -> "_Matcher":
        """The compiled patterns for the current sets (the sets are public and may change)."""
        m = self._compiled
        if (m is None or m.name_tokens != self.name_tokens or m.exact != self.exact
                or m.endings != self.name_endings):
            m = _compile_matcher(frozenset(self.name_tokens), frozenset(self.exact), frozenset(self.name_endings))
            self._compiled = m
        return m

    def encoded_needles(self, encodings: list[str]) -> list[bytes]:
        """Byte strings to look for in a written file: names and IDs in the file's encodings."""
        m = self._matcher()
        return list(_encoded_needles(m.name_tokens - frozenset(self.term_tokens), m.exact, tuple(encodings)))


_SPLIT_SEP = r"[ \-.']?"
_GLUED_TITLES = "mr|mrs|ms|miss|dr|frau|herr|fr|hr|mme|mlle|mm|prof|sr|sra|srta|pt|pat|fru"
_CAMEL_RE = re.compile(r"[a-z][A-Z]")


def _has_camel(text: str) -> bool:
    """A lower-case letter followed by an upper-case one ("MrQuistgaard", "aÉ"), in any script."""
    if text.isascii():
        return _CAMEL_RE.search(text) is not None
    if max(text) <= "\xff":
        return _LATIN1_CAMEL.search(text) is not None
    return any(a.islower() and b.isupper() for a, b in zip(text, text[1:], strict=False))


def _prefix_pattern(token: str, least: int) -> str:
    """A regex matching token[:k] for every k >= least (nested optional letters)."""
    head = re.escape(token[:least])
    tail = ""
    for c in reversed(token[least:]):
        tail = f"(?:{re.escape(c)}{tail})?"
    return head + tail


@functools.lru_cache(maxsize=4096)
def _folded_map(text: str, split_camel: bool = True) -> tuple[str, tuple[int, ...]]:
    """fold(text) with a space between a lower-case and an upper-case letter ("MrQuistgaard";
    none when split_camel is False), and for each folded character the index of the character
    of text it came from."""
    out: list[str] = []
    index: list[int] = []
    prev = ""
    for i, c in enumerate(text):
        if split_camel and prev.islower() and c.isupper():
            out.append(" ")
            index.append(i)
        f = fold(c)
        out.append(f)
        index.extend([i] * len(f))
        prev = c
    return "".join(out), tuple(index)


_NAME_FORMS: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}


def learn_name(ids: Identifiers, pn: str) -> None:
    """ids.add_name(pn), its answer remembered per distinct name: add_name reads nothing but pn
    and only adds to the identifier sets, so what it adds to an empty Identifiers is what it adds
    to any (the files of a series, and the items of one file, repeat the same names). Worker
    memory, bounded; never written."""
    forms = _NAME_FORMS.get(pn)
    if forms is None:
        scratch = Identifiers()
        scratch.add_name(pn)
        forms = tuple((f.name, frozenset(value)) for f in fields(Identifiers)
                      if isinstance(value := getattr(scratch, f.name), set) and value)
        if len(pn) <= 256:
            if len(_NAME_FORMS) >= 4096:
                _NAME_FORMS.clear()
            _NAME_FORMS[pn] = forms
    for name, values in forms:
        getattr(ids, name).update(values)


def _every_element(ds: Dataset) -> list[DataElement]:
    """ds.iterall() as a list (every element at any depth, converted as iterall converts it),
    without its per-element Dataset.__getitem__ where an element is converted already."""
    out: list[DataElement] = []
    stack = [ds]
    while stack:
        item = stack.pop()
        for tag, elem in list(item.items()):
            if type(elem) is not DataElement:
                elem = item[tag]
            out.append(elem)
            if elem.VR == "SQ":
                stack.extend(i for i in elem.value or [] if isinstance(i, Dataset))
    return out


def _struct_name_parts(elem: DataElement, technical: frozenset[str]) -> "Identifiers":
    """The name parts of a binary value that names a person (a vendor's record of the patient:
    Hitachi HMC - CT - ID (0009,xx00) holds name, ID, dates, model and position in fixed fields),
    read whole as names (fail closed: its layout is not known), without the parts that are the
    header's own defined terms or device names (technical): 'HFS', 'Supria' of those fields are no
    name of the patient, and learned as one they removed Patient Position and the model name from
    every file (pydicom-data J2K_pixelrep_mismatch). The patient's name elsewhere is learned as
    it is."""
    part = Identifiers()
    for v in _text_values(elem):
        learn_name(part, v)
    part.name_tokens -= technical
    part.name_endings -= technical
    return part


def _technical_words(ds: Dataset) -> frozenset[str]:
    """The folded words of the header's top-level code strings (CS: Patient Position HFS, Image
    Type, Modality ...) and device names (Manufacturer, Manufacturer's Model Name ...)."""
    words: set[str] = set()
    for tag, raw in ds.items():  # only these elements are converted (a raw one knows its VR, or the dictionary does)
        vr = raw.VR or (dictionary_VR(tag) if tag in DicomDictionary else "")
        if vr == "CS" or tag in DEVICE_MODEL_TAGS:
            for v in _text_values(ds[tag]):
                words.update(fold(w) for w in re.split(r"[\s_^]+", v) if len(w) >= 2)
    return frozenset(words)


def _text_values(elem: DataElement) -> list[str]:
    """An element's values as text (bytes of UN/private values read as Latin-1)."""
    value = elem.value
    if isinstance(value, bytes):
        return [v for v in value.decode("latin-1").rstrip("\0 ").split("\\") if v.strip()]
    if isinstance(value, (list, tuple)) or (not isinstance(value, str) and getattr(elem, "VM", 1) > 1):
        return [str(v) for v in value]
    return [str(value)]


def _holds_a_person_name(elem: DataElement) -> bool:
    """A PN value names a person, except a private element its vendor writes as PN although the
    private dictionary (pydicom's, the same as the TCIA knowledge base) gives it another VR: Philips
    (2005,xx37) Blob Name 'PDF_EXAM_PARS', 'ExamCardBlob' is a label (its words would otherwise be
    removed from every descriptor: Protocol Name 'ExamCard')."""
    if elem.VR != "PN":
        return False
    creator = elem.private_creator if elem.tag.is_private else None
    if not creator:
        return True
    try:
        return "PN" in get_private_entry(elem.tag, creator)[0]
    except (KeyError, TypeError):
        return True  # not in the dictionary (or a damaged creator of two values): read as written


def _names_a_person(elem: DataElement) -> bool:
    """Patient's Name in another VR (LO, UN ...) or a private element named as a patient's name."""
    number = elem.tag.real  # plain int arithmetic: BaseTag's operators are Python calls
    if number == 0x00100010 or number == 0x00101001:  # Patient's Name, Other Patient Names
        return True
    if number >> 16 & 1 and number & 0xFFFF > 0x00FF and elem.VR in ("LO", "SH", "UN", "PN", "UC", "LT", "ST"):
        creator = elem.private_creator  # what a private element's name depends on, with its tag
        remembered = creator is None or type(creator) is str  # (a damaged creator may be a list)
        hit = _PRIVATE_NAMES_A_PERSON.get((number, creator)) if remembered else None
        if hit is None:
            name = elem.name.lower()
            hit = "name" in name and any(w in name for w in ("patient", "person", "physician", "operator"))
            if remembered:
                if len(_PRIVATE_NAMES_A_PERSON) >= 4096:
                    _PRIVATE_NAMES_A_PERSON.clear()
                _PRIVATE_NAMES_A_PERSON[(number, creator)] = hit
        return hit
    return False


# (tag, private creator) -> _names_a_person's answer for a private element (its dictionary name)
_PRIVATE_NAMES_A_PERSON: dict[tuple[int, str | None], bool] = {}


# ---- a removal must not itself point at the patient --------------------------------------------

# attributes that hold a device's product name: a name part inside a longer product name is the
# product ("MAGNETOM Sola"), not the patient (Manufacturer, Manufacturer's Model Name, Secondary
# Capture Device Manufacturer / Manufacturer's Model Name)
DEVICE_MODEL_TAGS = frozenset({0x00080070, 0x00081090, 0x00181016, 0x00181018})
# words that make a value a phrase, not a product name ("VA40 for Mueller")
_PHRASE_WORDS = frozenset("for by of and the to at from with per mit fur für von bei de du la le pour par et och og".split())


def kept_as_term(tag: int, vr: str, text: str, identifiers: "Identifiers", vocabulary: frozenset[str]) -> set[str]:
    """The name parts (folded) a value may keep because there they are a device model or a
    defined term, not the patient; empty when the value must go.

    Only name hits are forgiven (an ID, birth date, phone ... always goes). A defined term (VR CS)
    is kept when each word the name hit is an imaging word of the vocabulary (Body Part Examined
    FOOT for a patient named Foot); a device model is kept when the name is only part of the
    product name (Manufacturer's Model Name "MAGNETOM Sola" for a patient named Sola). Removing
    such a value only for this patient would itself point at the patient."""
    spans = identifiers.spans(text)
    if not spans or any(kind != "name" for _, _, kind in spans):
        return set()
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"[^\W_]+", text)]
    hit = [w for w in words if any(s < w[1] and w[0] < e for s, e, _ in spans)]
    if not hit:
        return set()
    folded = {fold(w[2]) for w in hit}
    if all(w[2].lower() in vocabulary for w in hit) and (vr == "CS" or tag in DEVICE_MODEL_TAGS):
        return folded
    if (tag in DEVICE_MODEL_TAGS and len(hit) == 1 and 1 < len(words) <= 4 and len(text) <= 64
            and not any(w[2].lower() in _PHRASE_WORDS for w in words)):
        return folded
    return set()


def matcher_spans(matcher: "_Matcher", text: str,
                  known_words: frozenset[str] = frozenset()) -> list[tuple[int, int, str]]:
    """Identifiers.spans for compiled identifiers (hashable, so callers can memoise on it).

    Names are looked for in both readings of CamelCase text (split and as written), as find does."""
    folded, index = _folded_map(text)
    out = []
    for kind, pattern in (("name", matcher.name_re), ("identifier", matcher.exact_re)):
        if pattern is not None:
            for m in pattern.finditer(folded):
                if m.end() > m.start():
                    out.append((index[m.start()], index[m.end() - 1] + 1, kind))
    if matcher.name_re is not None and _has_camel(text):
        whole, whole_index = _folded_map(text, split_camel=False)
        for m in matcher.name_re.finditer(whole):
            if m.end() > m.start():
                out.append((whole_index[m.start()], whole_index[m.end() - 1] + 1, "name"))
        for m in _near_name_words(matcher, whole, known_words):  # a glued word reads whole
            out.append((whole_index[m.start()], whole_index[m.end() - 1] + 1, "name"))
    for m in _near_name_words(matcher, folded, known_words):
        out.append((index[m.start()], index[m.end() - 1] + 1, "name"))
    if matcher.digits_re is not None:
        digit_pos = [i for i, c in enumerate(folded) if c.isdigit()]
        digits = "".join(folded[i] for i in digit_pos)
        for m in matcher.digits_re.finditer(digits):
            out.append((index[digit_pos[m.start()]], index[digit_pos[m.end() - 1]] + 1, "identifier"))
    return sorted(out)


def damaged_stem(part: str) -> str:
    """The letters a name part starts with, up to the first sign of damage: a character that is
    not a letter (a symbol or digit: "OTTOL" of "OTTOL4;RS"), or a break of the part's case: a
    lower-case letter after two upper-case ones ("OTTOL" of "OTTOLw;RS" and of "OTTOLðSÙ"), or an
    upper-case one after two lower-case ones ("Ottolin" of "OttolinQ"). The whole part when there
    is no such sign (an ordinary name: "SMITH", "Smith", "McDonald", "FRANÇOIS", "DeLONG" give
    themselves). A prefix of the name as written: learned, it finds the undamaged name elsewhere
    at a word start. Shape: str in, str out (not folded)."""
    upper = lower = 0
    for i, c in enumerate(part):
        if not c.isalpha():
            return part[:i]
        if c.isupper():
            if lower >= 2:
                return part[:i]
            upper, lower = upper + 1, 0
        else:
            if upper >= 2:
                return part[:i]
            upper, lower = 0, lower + 1
    return part


# what a real name has between or beside its letters: separators of parts and components,
# apostrophes in every spelling (O'Brien, O´NEILL, D`ARCY, O’Neil), hyphens, dots, commas,
# parentheses, slashes and quotes ("BABY BOY (TWIN A)", "DOE, JANE", 'JOHN "JACK" DOE')
_NAME_PUNCTUATION = frozenset("^= '`´’‘-‐.,()/\"_")  # "_": systems write it for a space (stc_test)


def glued_to_letters(name: str) -> bool:
    """True when a part of a person name is damaged where learning cannot recover it: a symbol
    no real name has (anything but _NAME_PUNCTUATION: "#", ";", "§", "²" ...) sits between its
    letters, and fewer than 4 letters come before the damage (damaged_stem), so no stem of the
    name is left to find it elsewhere ("OT#$OLINE"; "OTTOL#$NE" is found by its stem OTTOL).
    A mark before or after a part is no sign ("*DOE", "DOE*", "TRAUMA #12", "SMITH 2")."""
    for part in re.split(r"[\^=\s]+", name.rstrip("\0 ")):
        if len(damaged_stem(part)) >= 4:
            continue
        for i, c in enumerate(part):
            if (i and part[i - 1].isalpha() and not c.isalpha() and c not in _NAME_PUNCTUATION
                    and not (c.isdigit() and c.isascii()) and unicodedata.category(c)[0] in "SPN"
                    and any(x.isalpha() for x in part[i + 1:])):
                return True
    return False


NEAR_NAME_LEAST = 6  # letters: a shorter name has too many one-letter neighbours among words
GLUED_NAME_LEAST = 12  # letters in one run: most likely two names glued (a separator lost)
_LETTER_RUN = re.compile(r"[^\W\d_]+")


def _one_deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


TWO_SLIPS_LEAST = 8  # letters: a name part this long is still itself with two letters changed


def _two_letters_apart(word: str, parts: tuple[str, ...]) -> bool:
    """word differs from one of parts (each as long as word) in at most two letters."""
    for part in parts:
        if len(part) == len(word) and sum(a != b for a, b in zip(word, part, strict=True)) <= 2:
            return True
    return False


def _near_name_words(matcher: "_Matcher", folded: str, known_words: frozenset[str]) -> list[re.Match[str]]:
    """Words of NEAR_NAME_LEAST letters or more one typing slip from a name part (of one letter
    fewer or more): one letter changed, added, dropped, or two neighbours swapped ("Zebrafinch" where the
    header's name reads "ZEBRAFINUH", a damaged byte in "OTT?LINE"). Precisely: the word and the
    name part become equal once each has lost at most one letter (their one-deletion sets, each
    with the word itself, meet). A word as long as a name part of TWO_SLIPS_LEAST letters or more
    may also differ from it in two letters ("OTAOLIªE" for OTTOLINE: damaged bytes; same length,
    letters changed in place). Words of the imaging vocabulary are never such a slip."""
    out = []
    for m in _LETTER_WORD.finditer(folded):
        w = m.group()
        if w in known_words:
            continue
        if abs(len(w) - matcher.near_length) <= matcher.near_spread and ({w} | _one_deletions(w)) & matcher.near:
            out.append(m)
        elif len(w) in matcher.two_slip_lengths and _two_letters_apart(w, matcher.two_slips):
            out.append(m)
        elif len(w) >= GLUED_NAME_LEAST and matcher.near and _glued_near_name(w, matcher, known_words):
            out.append(m)
    return out


def _glued_near_name(word: str, matcher: "_Matcher", known_words: frozenset[str]) -> bool:
    """A long word that begins or ends with a word one typing slip from a name part: a damaged
    byte turned the space before or after the name into a letter ("PatientÚZEBRAFINCH" where the
    header's name reads "ZEBR0FINCH": fuzz_export seed 88). The whole word is the hit."""
    low = max(NEAR_NAME_LEAST, matcher.near_length - matcher.near_spread)
    for size in range(low, min(len(word) - 1, matcher.near_length + matcher.near_spread) + 1):
        for piece in (word[:size], word[-size:]):
            if piece not in known_words and ({piece} | _one_deletions(piece)) & matcher.near:
                return True
    return False


_LETTER_WORD = re.compile(r"[^\W\d_]{%d,}" % NEAR_NAME_LEAST)


@dataclass(frozen=True)
class _Matcher:
    """Identifiers.find as three compiled searches (one pass each instead of a loop per value).

    name_re matches where the loop over name tokens would: a CJK token anywhere; another token
    as a whole word (what `token in set(re.findall(word_pattern, text))` means), or, from four
    letters, not preceded by a letter. exact_re matches any exact value as a substring (an all-digit
    one with no digit either side); digits_re any all-digit value of six or more digits inside the
    text's digits."""

    name_tokens: frozenset[str]
    exact: frozenset[str]
    name_re: re.Pattern | None
    exact_re: re.Pattern | None
    digits_re: re.Pattern | None
    near: frozenset[str] = frozenset()  # one-deletion sets of the long name parts (_near_name_words)
    near_length: int = 0   # the middle of the name parts' lengths, and how far words may be from it
    near_spread: int = 0
    endings: frozenset[str] = frozenset()  # Identifiers.name_endings
    two_slips: tuple[str, ...] = ()  # the name parts of TWO_SLIPS_LEAST letters or more
    two_slip_lengths: frozenset[int] = frozenset()  # and their lengths


@functools.lru_cache(maxsize=64)  # the files of one patient share their identifiers
def _compile_matcher(name_tokens: frozenset[str], exact: frozenset[str],
                     endings: frozenset[str] = frozenset()) -> _Matcher:
    name_alts: list[str] = []
    prefix_alts: list[str] = []  # after every whole form, so a match covers as much as it can
    for token in sorted(name_tokens, key=lambda t: (-len(t), t)):  # longest first: spans cover whole names
        escaped = re.escape(token)
        if _is_cjk(token):
            name_alts.append(escaped)
            continue
        if len(token) >= 6 and token.isalpha():
            # split differently: "Quist gaard", "Quist-Gaard"
            name_alts.append(r"(?<![a-z])" + _SPLIT_SEP.join(re.escape(c) for c in token) + r"(?![a-z])")
        if len(token) >= 5 and token.isalpha():
            # glued after a title ("MrQuistgaard", "FRAUQUISTGAARD")
            name_alts.append(rf"(?<![a-z])(?:{_GLUED_TITLES}){escaped}")
        if re.fullmatch(r"\w+", token):
            name_alts.append(rf"(?<!\w){escaped}(?!\w)")
        if len(token) >= 4:
            name_alts.append(rf"(?<![a-z]){escaped}")
        if len(token) >= 6 and token.isalpha():
            # truncated to a fixed-length field: any prefix of 5+ letters at a word start
            prefix_alts.append(rf"(?<![a-z]){_prefix_pattern(token, 5)}(?![a-z])")
    name_alts += prefix_alts
    name_alts += [rf"(?<![a-z]){re.escape(e)}(?![a-z])" for e in sorted(endings, key=lambda e: (-len(e), e))]
    digit_values = sorted(v for v in exact if v.isdigit() and len(v) >= 6)

    def either(alternatives: list[str]) -> re.Pattern | None:
        return re.compile("|".join(alternatives)) if alternatives else None

    # an all-digit value (Study ID 1116) is that number, not any digits that contain it: a shifted
    # time 131116.761 holds no Study ID (longer numbers are also found inside digits: digits_re)
    exact_alts = [rf"(?<!\d){re.escape(v)}(?!\d)" if v.isdigit() else re.escape(v) for v in sorted(exact)]
    # a name part of one letter fewer than a word can be that word with a letter dropped
    long_names = [t for t in name_tokens if len(t) >= NEAR_NAME_LEAST - 1 and not t.isdigit() and not _is_cjk(t)]
    near = frozenset(k for t in long_names for k in _one_deletions(t) | {t})
    lo, hi = (min(map(len, long_names)) - 1, max(map(len, long_names)) + 1) if long_names else (0, 0)
    very_long = [t for t in long_names if len(t) >= TWO_SLIPS_LEAST and t.isalpha()]
    return _Matcher(name_tokens, exact, either(name_alts), either(exact_alts),
                    either([re.escape(v) for v in digit_values]), near, (lo + hi) // 2, (hi - lo + 1) // 2,
                    endings, tuple(sorted(very_long)), frozenset(len(t) for t in very_long))


@functools.lru_cache(maxsize=64)
def _encoded_needles(name_tokens: frozenset[str], exact: frozenset[str], encodings: tuple[str, ...]) -> tuple[bytes, ...]:
    needles = set()
    for value in exact | {t for t in name_tokens if len(t) >= 3 or _is_cjk(t)}:
        for enc in encodings:
            for variant in {value, value.upper(), value.title()}:
                try:
                    b = variant.encode(enc)
                except (UnicodeEncodeError, LookupError):
                    continue
                if len(b) >= 3:
                    needles.add(b)
    return tuple(sorted(needles))


_NUMBER = re.compile(r"[+-]?(\d*)\.?(\d*)(?:[eE][+-]?\d+)?")
SHORT_NUMBER_DIGITS = 5


def short_numbers(text: str) -> bool:
    """An IS/DS value whose every value is a number of at most SHORT_NUMBER_DIGITS digits: it can
    hold none of the patient's names, dates or long IDs, only a short all-digit ID by coincidence
    (Instance Number 160, Reconstruction Diameter 160 in a study whose Study ID is 160, GE
    dcm_qa_polar: the slice was dropped and dcm2niix put it in the wrong volume). Such a number
    carries at most 17 bits and is the attribute's own measurement: it stays. A longer number (a
    Patient ID or birth date of 6+ digits written as a number; zeros that only pad it do not
    count) is still searched."""
    for value in text.split("\\"):
        number = _NUMBER.fullmatch(value.strip())
        if number is None:
            return False
        whole, fraction = number.group(1).lstrip("0"), number.group(2).rstrip("0")
        if len(whole) + len(fraction) > SHORT_NUMBER_DIGITS:  # "160.000000" is 160: 3 digits
            return False
    return True


# ---- showing a value's shape ----------------------------------------------------------------

def mask(text: str, keep: int = 1) -> str:
    """Show the shape of a value without the value: 'DOE^JOHN' -> 'D**^J***'."""
    out = []
    run = 0
    for c in text[:40]:
        if c.isalnum():
            out.append(c if run < keep else "*")
            run += 1
        else:
            out.append(c)
            run = 0
    return "".join(out) + ("..." if len(text) > 40 else "")
