"""The export's speed-ups change no byte and no decision.

- dicomio.encode_header writes common elements itself: its bytes must equal pydicom's dcmwrite for
  every de-identified header of a synthetic export (three character sets, implicit VR, sequences,
  private tags, overlays).
- Identifiers.find uses patterns compiled from its sets: it must answer as the plain loop over the
  sets does, and notice when the (public, mutable) sets change.
- Guidelines.action_for caches resolved codes: a Guidelines made with other options must not see
  the cache of the first.
- dicomio converts plain raw elements itself: every element must come out as Dataset.__getitem__
  makes it; encode_header writes sequences and its own file meta itself: same bytes as dcmwrite,
  also for nested, undefined-length, other-charset and ambiguous-VR items.
- export's final header search uses one pattern per needle: it must answer as the regex it replaced.
- the engine remembers Identifiers.find / clean_descriptor answers per set of identifiers: a warm
  memo must give the same datasets and findings as none, and never answer for another patient.
"""
from __future__ import annotations

import dataclasses
import io
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import PersonName

from deidkit import dicomio, engine, export, header_encoder
from deidkit import guidelines as gl
from deidkit.mapping import Mapper
from deidkit.sweep import Identifiers, _is_cjk, clean_descriptor, fold
from deidkit.synth import make_export


TITLES = "mr mrs ms miss dr frau herr fr hr mme mlle mm prof sr sra srta pt pat fru".split()


def _reference_name_hit(ids: Identifiers, folded: str) -> bool:
    """The name rules as a loop over the tokens, on one reading of the text."""
    words = set(re.findall(r"\w+", folded))
    letters_words = re.findall(r"(?<![a-z])[a-z]+(?![a-z])", folded)
    for token in ids.name_tokens:
        if _is_cjk(token):
            if token in folded:
                return True
        elif token in words or (len(token) >= 4 and token in folded
                                and re.search(rf"(?<![a-z]){re.escape(token)}", folded)):
            return True
        elif token.isalpha() and len(token) >= 5 and any(
                w.startswith(t) and w[len(t):] == token for w in letters_words for t in TITLES):
            return True  # glued after a title
        elif token.isalpha() and len(token) >= 6 and (
                any(5 <= len(w) < len(token) and token.startswith(w) for w in letters_words)  # truncated
                or any(re.sub(r"[ \-.']", "", folded[i:j]) == token and folded[i:j][0] == token[0]
                       and (i == 0 or not folded[i - 1].isalpha() or folded[i - 1] not in "abcdefghijklmnopqrstuvwxyz")
                       and (j == len(folded) or folded[j] not in "abcdefghijklmnopqrstuvwxyz")
                       and folded[j - 1] == token[-1]
                       and all(not (folded[k] in " -.'" and folded[k + 1] in " -.'") for k in range(i, j - 1))
                       for i in range(len(folded)) for j in range(i + len(token), min(len(folded), i + 2 * len(token)) + 1))):
            return True  # split differently
    return False


def _one_slip(a: str, b: str) -> bool:
    """Equal once each has lost at most one letter (a letter changed, added, dropped; two swapped)."""
    def forms(w: str) -> list[str]:
        return [w] + [w[:i] + w[i + 1:] for i in range(len(w))]
    return any(x == y for x in forms(a) for y in forms(b))


def reference_find(ids: Identifiers, text: str) -> list[str]:
    """Identifiers.find as a loop over the sets (how it was written before it was compiled)."""
    if not text:
        return []
    # a lower-case letter followed by an upper-case one starts a new word ("MrQuistgaard"); names
    # are also looked for in the text as written
    split = "".join(" " + c if i and text[i - 1].islower() and c.isupper() else c for i, c in enumerate(text))
    folded = fold(split)
    hits = []
    if _reference_name_hit(ids, folded) or _reference_name_hit(ids, fold(text)):
        hits.append("name")
    elif any(_one_slip(w, t) for w in re.findall(r"[^\W\d_]{6,}", folded) if w not in ids.known_words
             for t in ids.name_tokens if len(t) >= 5 and not t.isdigit() and not _is_cjk(t)):
        hits.append("name")  # one typing slip from a name part
    digits = re.sub(r"\D", "", folded)
    for value in ids.exact:
        # an all-digit value is that number: no digit either side (longer ones also inside the digits)
        whole = re.search(rf"(?<!\d){re.escape(value)}(?!\d)", folded) if value.isdigit() else value in folded
        if whole or (value.isdigit() and len(value) >= 6 and value in digits):
            hits.append("identifier")
            break
    return hits


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("speedups") / "EXPORT"
    make_export(root, instances_per_series=2, image_size=32)
    return root


def test_encode_header_is_byte_identical_to_dcmwrite(export_root):
    g = gl.load()
    gl.register_new_attributes(g)
    mapper = Mapper(b"k" * 32)
    compared = 0
    for path in sorted(p for p in export_root.rglob("*") if p.is_file()):
        try:
            header = dicomio.read_header(path)
        except dicomio.Unreadable:
            continue
        if not header.streamable or dicomio.is_dicomdir(header.dataset):
            continue
        ds = header.dataset
        engine.deidentify(ds, engine.Context(guidelines=g, mapper=mapper))
        ds.file_meta = engine.new_file_meta(ds, header.transfer_syntax)
        expected = io.BytesIO()
        dcmwrite(expected, ds, enforce_file_format=True)
        assert dicomio.encode_header(ds) == expected.getvalue(), path.name
        compared += 1
    assert compared >= 10


def test_encode_header_of_raw_headers_matches_dcmwrite(export_root):
    """Before de-identification too: names in other character sets, binary and private values."""
    compared = 0
    for path in sorted(p for p in export_root.rglob("*") if p.is_file()):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "SOPInstanceUID" not in ds or "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            continue
        expected = io.BytesIO()
        dcmwrite(expected, ds, enforce_file_format=True)
        assert dicomio.encode_header(ds) == expected.getvalue(), path.name
        compared += 1
    assert compared >= 10


_token = st.text(alphabet="abcdeé1234 -^漢字", min_size=0, max_size=7)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(_token, max_size=5), exact=st.lists(_token, max_size=5),
       text=st.text(alphabet="abcdeABCDÉé1234567890 -^.,漢字", max_size=30))
def test_find_answers_as_the_loop_does(names, exact, text):
    ids = Identifiers(set(names), set(exact))
    assert ids.find(text) == reference_find(ids, text)


def test_find_sees_changes_to_the_sets():
    ids = Identifiers()
    ids.add_name("DOE^JOHN")
    assert ids.find("Dr. Smith") == []
    ids.add_name("SMITH^ANNA")          # through a method
    assert ids.find("Dr. Smith") == ["name"]
    ids.exact |= {"mrn0012345"}          # in place, as --verify does
    assert ids.find("ref MRN0012345") == ["identifier"]
    ids.exact.discard("mrn0012345")
    assert ids.find("ref MRN0012345") == []
    other = Identifiers()
    other.add_exact("ACC998877")
    ids.merge(other)
    assert ids.find("acc998877") == ["identifier"]


def test_action_cache_is_not_shared_with_other_options():
    g = gl.load()
    tag = 0x00081030  # Study Description: C under Clean Descriptors, X in the Basic Profile
    with_clean = dataclasses.replace(g, settings=dataclasses.replace(
        g.settings, options=g.settings.options | {"clean_descriptors"}))
    without = dataclasses.replace(g, settings=dataclasses.replace(
        g.settings, options=g.settings.options - {"clean_descriptors"}))
    assert with_clean.action_for(tag, "1.2.840.10008.5.1.4.1.1.2") == "C"
    assert without.action_for(tag, "1.2.840.10008.5.1.4.1.1.2") == "X"
    again = dataclasses.replace(with_clean, settings=without.settings)  # replace after queries
    assert again.action_for(tag, "1.2.840.10008.5.1.4.1.1.2") == "X"
    for t in list(g.rules)[:200]:
        for sop in ("", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"):
            assert g.action_for(t, sop) == g.action_for(t, sop) == g._resolve_action(t, sop)


# ---- reading: plain elements converted by dicomio itself --------------------------------------

def _element_state(elem):
    value = elem.value
    state = (elem.tag, elem.VR, type(value), elem.is_undefined_length, elem.file_tell, elem.private_creator,
             elem.validation_mode)
    if elem.VR == "SQ":
        return state + (len(value),)
    if isinstance(value, PersonName):
        return state + (str(value), value.original_string, value.encodings)
    return state + (repr(value), [type(v) for v in value] if isinstance(value, list) or hasattr(value, "append") else None)


def test_plain_conversion_matches_getitem(export_root):
    """Three character sets, implicit VR, private blocks, sequences: element for element the same."""
    compared = 0
    for path in sorted(p for p in export_root.rglob("*") if p.is_file()):
        try:
            by_pydicom = dcmread(path, stop_before_pixels=True, force=True)
            ours = dcmread(path, stop_before_pixels=True, force=True)
            expected = [_element_state(e) for e in by_pydicom.iterall()]
        except Exception:
            continue
        dicomio._touch_all_values(ours)
        assert [_element_state(e) for e in ours.iterall()] == expected, path.name
        assert ours.original_character_set == by_pydicom.original_character_set
        compared += 1
    assert compared >= 10


def test_plain_conversion_leaves_un_and_sequences_to_pydicom():
    """An explicit-VR UN element whose dictionary VR is ambiguous ('US or SS') is given that VR and
    corrected by Dataset.__getitem__ (here to SS, a negative value): not a plain element."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "2.25.99"
    ds.PixelRepresentation = 1
    ds.add_new(0x00280106, "SS", -5)                     # Smallest Image Pixel Value
    ds.add_new(0x00100010, "UN", b"DOE^JOHN")              # Patient's Name stored as UN
    ds.ReferencedImageSequence = Sequence([_code_item("1", "item")])
    ds.file_meta = engine.new_file_meta(ds, ExplicitVRLittleEndian)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    ss = struct.pack("<HH2sHh", 0x0028, 0x0106, b"SS", 2, -5)  # pydicom would correct a UN of ours: patched
    assert buf.getvalue().count(ss) == 1
    data = buf.getvalue().replace(ss, struct.pack("<HH2sHLh", 0x0028, 0x0106, b"UN", 0, 2, -5))
    buf = io.BytesIO(data)
    by_pydicom = dcmread(io.BytesIO(buf.getvalue()), stop_before_pixels=True)
    expected = [_element_state(e) for e in by_pydicom.iterall()]
    assert by_pydicom[0x00280106].VR == "SS" and by_pydicom[0x00280106].value == -5
    ours = dcmread(io.BytesIO(buf.getvalue()), stop_before_pixels=True)
    dicomio._touch_all_values(ours)
    assert [_element_state(e) for e in ours.iterall()] == expected


# ---- writing: sequences and file meta ------------------------------------------------------------

def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _dataset_with_sequences(charset: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "2.25.1234"
    ds.PatientName, ds.StudyDescription = "SUBJ_X", "CT CHEST"
    ds.Rows, ds.PixelSpacing = 4, [0.5, 0.5]
    ds.DeidentificationMethodCodeSequence = Sequence([_code_item("113100", "Basic"), _code_item("113105", "Clean")])
    outer = _code_item("T-D3000", "Chest")
    outer.is_undefined_length_sequence_item = True
    outer.ProcedureCodeSequence = Sequence([_code_item("1", "nested, one level down")])
    ds.AnatomicRegionSequence = Sequence([outer])
    ds["AnatomicRegionSequence"].is_undefined_length = True
    own_charset = _code_item("2", "Ærø in an item of its own character set")
    own_charset.SpecificCharacterSet = "ISO_IR 192"
    own_charset.PersonName = "Müller^Jürgen"
    ds.ConceptNameCodeSequence = Sequence([own_charset])
    lut = Dataset()  # LUT Descriptor is 'US or SS': pydicom corrects it while writing, so pydicom writes it
    lut.add_new(0x00283002, "US or SS", [256, 0, 16])
    lut.ModalityLUTType = "HU"
    ds.ModalityLUTSequence = Sequence([lut])
    ds.ReferencedImageSequence = Sequence()
    ds.PixelRepresentation = 0
    return ds


def _as_read(ds: Dataset, transfer_syntax: str) -> Dataset:
    """ds written and read back as the export reads headers (the fast writer's usual input)."""
    ds.file_meta = engine.new_file_meta(ds, transfer_syntax)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    buf.seek(0)
    read = dcmread(buf, stop_before_pixels=True)
    dicomio._touch_all_values(read)
    return read


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192", "ISO_IR 6"])
@pytest.mark.parametrize("version_name", ["DEIDKIT_0_1_0", ""])
def test_encode_header_of_sequences_and_meta_matches_dcmwrite(transfer_syntax, charset, version_name):
    ds = _as_read(_dataset_with_sequences(charset), transfer_syntax)
    # items made in memory after reading, as the engine adds them
    made = _dataset_with_sequences(charset)
    for keyword in ("AnatomicRegionSequence", "ConceptNameCodeSequence", "ModalityLUTSequence"):
        ds[keyword] = made[keyword]
    ds.file_meta = engine.new_file_meta(ds, transfer_syntax)
    ds.file_meta.ImplementationVersionName = version_name  # empty: pydicom's own meta path
    expected = io.BytesIO()
    dcmwrite(expected, ds, enforce_file_format=True)
    assert dicomio.encode_header(ds) == expected.getvalue()


def test_sequences_are_written_inline_unless_pydicom_must_correct_them(monkeypatch):
    """The cases above do reach both ways of writing a sequence (else they prove nothing)."""
    ds = _as_read(_dataset_with_sequences("ISO_IR 100"), ExplicitVRLittleEndian)
    made = _dataset_with_sequences("ISO_IR 100")
    for keyword in ("AnatomicRegionSequence", "ConceptNameCodeSequence", "ModalityLUTSequence"):
        ds[keyword] = made[keyword]
    written = {}
    real = dicomio._write_sequence

    def spy(fp, elem, encodings, plain=False):
        written[elem.keyword] = real(fp, elem, encodings, plain)
        return written[elem.keyword]

    monkeypatch.setattr(header_encoder, "_write_sequence", spy)
    dicomio.encode_header(ds)
    assert written == {"DeidentificationMethodCodeSequence": True, "AnatomicRegionSequence": True,
                       "ConceptNameCodeSequence": True, "ModalityLUTSequence": False,
                       "ReferencedImageSequence": True, "ProcedureCodeSequence": True}  # nested


def test_own_file_meta_is_only_the_engines_shape():
    ds = _dataset_with_sequences("ISO_IR 100")
    meta = engine.new_file_meta(ds, ExplicitVRLittleEndian)
    assert dicomio._own_file_meta_bytes(meta) is not None
    meta.SourceApplicationEntityTitle = "PACS"  # anything more: pydicom writes it
    assert dicomio._own_file_meta_bytes(meta) is None
    bare = FileMetaDataset()
    bare.MediaStorageSOPClassUID = ds.SOPClassUID
    assert dicomio._own_file_meta_bytes(bare) is None


# ---- the final header search -----------------------------------------------------------------------

def reference_header_search(data: bytes, needles: tuple[bytes, ...]) -> bool:
    """The search as a regex (how export._identifier_in_header was written before)."""
    ascii_needles = sorted((n for n in needles if n.isascii()), key=len, reverse=True)
    if ascii_needles:
        pattern = re.compile(rb"(?<![A-Za-z0-9])(?:" + b"|".join(re.escape(n) for n in ascii_needles)
                             + rb")(?![A-Za-z0-9])", re.I)
        if pattern.search(data):
            return True
    return any(n in data for n in needles if not n.isascii())


_bytes_alphabet = st.sampled_from([b"a", b"A", b"z", b"Z", b"0", b"9", b" ", b"^", b"\\", b".", b"\0", b"\xe9", b"\xc9", b"_"])


@settings(max_examples=600, deadline=None)
@given(data=st.lists(_bytes_alphabet, max_size=24).map(b"".join),
       needles=st.lists(st.lists(_bytes_alphabet, min_size=1, max_size=4).map(b"".join), max_size=5).map(tuple))
def test_header_search_answers_as_the_regex(data, needles):
    patterns, others = export._needle_search(needles)
    ours = any(p.search(data.lower()) for p in patterns) or any(n in data for n in others)
    assert ours == reference_header_search(data, needles)


def test_header_search_finds_identifiers_as_whole_words():
    ids = Identifiers()
    ids.add_name("MUELLER^ANNA")
    ids.add_exact("MRN0012345")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    assert export._identifier_in_header(b"\x10\x00LO\x0a\x00mrn0012345", ids, ds)
    assert export._identifier_in_header(b"xx Anna ", ids, ds)
    assert not export._identifier_in_header(b"MRN00123456 annabel", ids, ds)  # inside longer words


# ---- the engine's memo of text answers ---------------------------------------------------------------

def _engine_run(paths, g, fresh_memo: bool):
    out = []
    for path in paths:
        header = dicomio.read_header(path)
        if not header.streamable or dicomio.is_dicomdir(header.dataset):
            continue
        if fresh_memo:
            engine._TEXT_MEMOS.clear()
        ds = header.dataset
        result = engine.deidentify(ds, engine.Context(guidelines=g, mapper=Mapper(b"k" * 32)))
        ds.file_meta = engine.new_file_meta(ds, header.transfer_syntax)
        out.append((path.name, dicomio.encode_header(ds), result.findings, result.hold_reason))
    return out


def test_text_memo_changes_no_result(export_root):
    g = gl.load()
    gl.register_new_attributes(g)
    paths = []
    for path in sorted(p for p in export_root.rglob("*") if p.is_file()):
        try:
            dicomio.read_header(path)
        except dicomio.Unreadable:
            continue
        paths.append(path)
    without = _engine_run(paths, g, fresh_memo=True)
    engine._TEXT_MEMOS.clear()
    warm = _engine_run(paths + paths, g, fresh_memo=False)  # second round answered from the memo
    assert warm[:len(without)] == without and warm[len(without):] == without
    assert len(without) >= 10


def test_text_memo_is_per_patient():
    doe, roe = Identifiers(patient_name_known=True), Identifiers(patient_name_known=True)
    doe.add_name("DOE^JOHN")
    roe.add_name("ROE^JANE")
    memo_doe, memo_roe = engine._text_memo(doe), engine._text_memo(roe)
    assert memo_doe is not memo_roe
    assert engine._holds_identifier("Dr Doe", doe, memo_doe.found)
    assert not engine._holds_identifier("Dr Doe", roe, memo_roe.found)
    g = gl.load()
    assert memo_doe.clean("CHEST DOE", g.vocabulary, doe) == "CHEST"
    assert memo_roe.clean("CHEST DOE", g.vocabulary, roe) == clean_descriptor("CHEST DOE", g.vocabulary, roe)
    wider = g.vocabulary | {"gizmo"}  # another vocabulary: its own answers
    assert memo_doe.clean("CHEST Dr Gizmo", g.vocabulary, doe) == "CHEST"
    assert memo_doe.clean("CHEST Dr Gizmo", wider, doe) == "CHEST Dr Gizmo"
    doe.add_exact("MRN0012345")  # other identifiers: another memo
    assert engine._text_memo(doe) is not memo_doe


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=40))
def test_fold_and_camel_split_by_table_equal_the_character_loop(text):
    from deidkit import sweep

    loop_split = "".join(" " + c if i and text[i - 1].islower() and c.isupper() else c for i, c in enumerate(text))
    assert sweep._split_camel(text) == loop_split
    assert fold(text) == (text.lower() if text.isascii() else sweep._fold_any(text))
    assert fold(sweep._split_camel(text)) == sweep._folded_map(text)[0]
