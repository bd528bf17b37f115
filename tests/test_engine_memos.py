"""The engine's per-worker memos (issue 19): answers remembered per distinct value must be the
answers a fresh computation gives, never cross from one patient to another, and stay bounded."""
from __future__ import annotations

import dataclasses

from pydicom.dataset import Dataset

from helpers import csa_header, engine_context, read_back_as_file
from deidkit import csa, engine, engine_memo
from deidkit.csa import parse_csa

KEY = b"m" * 32
ASCCONV = (b"### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51130001 ###\n"
           b'tProtocolName\t = \t""DOE JOHN""\n'
           b"sPat.lAccelFactPE\t = \t2\n"
           b"### ASCCONV END ###\n")


# one series header both patients' files carry: a name in a comment, another in the protocol text
BLOB = csa_header([("NumberOfImagesInMosaic", "US", [b"60\0"]), ("Comment", "LT", [b"DOE JOHN and ROE JANE\0"]),
             ("MrPhoenixProtocol", "UN", [ASCCONV + b"\0"])])


def _mr(name: str, patient_id: str, instance: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.{patient_id[-1]}.{instance}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.99.{patient_id[-1]}"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.Modality = "MR"
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291020, "OB", BLOB)
    return read_back_as_file(ds)


def test_same_csa_blob_cleaned_for_each_patient_and_once_per_patient(guidelines, monkeypatch):
    calls: list[bytes] = []
    real = csa.clean_csa

    def counting(data: bytes) -> bytes | None:
        calls.append(data)
        return real(data)

    monkeypatch.setattr("deidkit.engine_private._PROTOCOL_CLEANERS", {"csa": counting, "ascconv": csa.clean_protocol_text,
                                                                      "geprotocol": csa.clean_ge_protocol,
                                                                      "geuserdata": csa.clean_ge_user_data})
    monkeypatch.setattr("deidkit.engine_private._BLOB_MEMO", engine_memo._BlobMemo())
    fresh = real(BLOB)
    outputs = {}
    for name, pid in (("DOE^JOHN", "MRN1"), ("ROE^JANE", "MRN2")):
        for instance in (1, 2, 3):
            ds = _mr(name, pid, instance)
            result = engine.deidentify(ds, engine_context(guidelines, KEY))
            assert result.hold_reason is None
            value = ds[0x00291020].value
            assert value == fresh  # what a fresh cleaning gives, memo or not
            assert b"DOE" not in value and b"ROE" not in value and b"JOHN" not in value
            assert parse_csa(value)[1][0]["items"][0][3].startswith(b"60")
            outputs.setdefault(pid, set()).add(value)
    # each patient got their own cleaning (one per patient, not one for the worker), then the memo
    assert len(calls) == 2
    assert outputs["MRN1"] == outputs["MRN2"] == {fresh}


def test_blob_memo_answers_per_patient_and_is_bounded(monkeypatch):
    memo = engine_memo._BlobMemo()
    monkeypatch.setattr(memo, "ENTRIES", 8)
    monkeypatch.setattr(memo, "BYTES", 10_000)
    seen: list[tuple[bytes, str]] = []

    def cleaner(data: bytes) -> bytes:
        seen.append((data, "x"))
        return data.upper()

    assert memo.clean("csa", cleaner, b"abc", "SUBJ_A") == b"ABC"
    assert memo.clean("csa", cleaner, b"abc", "SUBJ_A") == b"ABC"
    assert memo.clean("csa", cleaner, b"abc", "SUBJ_B") == b"ABC"  # another patient: worked out again
    assert memo.clean("geprotocol", cleaner, b"abc", "SUBJ_A") == b"ABC"  # another cleaner: again
    assert len(seen) == 3
    for i in range(100):  # many distinct blobs: never more than ENTRIES answers or BYTES bytes kept
        assert memo.clean("csa", cleaner, b"v%d" % i * 50, "SUBJ_A") == (b"v%d" % i * 50).upper()
        assert len(memo.answers) <= 8 and memo.size <= 10_000
    big = b"z" * 20_000  # larger than the whole budget: answered, not kept
    assert memo.clean("csa", cleaner, big, "SUBJ_A") == big.upper()
    assert memo.size <= 10_000 and all(len(v or b"") <= 10_000 for v in memo.answers.values())
    assert memo.clean("csa", lambda d: None, b"unreadable", "SUBJ_A") is None  # None (delete) remembered too
    assert memo.clean("csa", cleaner, b"unreadable", "SUBJ_A") is None


def test_binary_sweep_memo_gives_the_fresh_answer(guidelines):
    from deidkit.engine_memo import _binary_holds_identifier, _holds_identifier
    from deidkit.engine_sweep import binary_as_text
    from deidkit.sweep import Identifiers

    doe, roe = Identifiers(), Identifiers()
    doe.add_name("DOE^JOHN")
    roe.add_name("ROE^JANE")
    long_named = b"\x01\x00" * 200 + b"seen by JOHN DOE\x00" + b"\x02" * 300
    long_clean = b"\x01\x00" * 200 + b"sPat.lAccelFactPE 2\x00" + b"\x02" * 300
    short = b"DOE\x00\x01"
    for ids in (doe, roe):
        seen: dict[str, bool] = {}
        for value in (long_named, long_clean, short, long_named, long_clean, short):
            assert _binary_holds_identifier(value, binary_as_text, ids, seen) == _holds_identifier(
                binary_as_text(value), ids, {})
    seen = {}
    assert _binary_holds_identifier(long_named, binary_as_text, doe, seen) is True
    assert _binary_holds_identifier(long_named, binary_as_text, roe, {}) is False  # a fresh dict per patient


NAMES = ["DOE^JOHN", "Müller^Hans-Peter", "O4TOLINE^ZEBRAFINCHMOTTOLINE", "OTTOL\xa8\xba!^MARY ANNE", "山田^太郎=やまだ^たろう",
         "", "^^^", "Strauß^Anna", "O'Brien^Séan", "12345"]


def test_learned_names_are_what_add_name_learns():
    """sweep.learn_name remembers add_name's answer per name: the same sets, whatever the
    Identifiers already held, and a second time from the memo."""
    from deidkit.sweep import Identifiers, learn_name

    for name in NAMES:
        for start in ((), ("KEEP^ME",)):
            fresh, remembered = Identifiers(), Identifiers()
            for other in start:
                fresh.add_name(other)
                learn_name(remembered, other)
            fresh.add_name(name)
            learn_name(remembered, name)
            learn_name(remembered, name)  # again, from the memo: nothing more, nothing less
            assert remembered == fresh
            assert remembered.name_endings == fresh.name_endings and remembered.term_tokens == fresh.term_tokens


def test_remembered_shift_is_shift_value():
    from deidkit.engine_dates import _SHIFTED, _shifted
    from deidkit.mapping import MomentOffset, shift_value

    cases = [("DA", "20240115", ""), ("DA", "20240115", "233000"), ("TM", "233000.123", ""), ("DT", "20240115233000", ""),
             ("DA", "2024011", ""), ("DA", "20240115-20240120", ""), ("TM", "", ""), ("DA", "x" * 100, "")]
    for offset in (MomentOffset(-100, 3600), MomentOffset(-3, 86399)):
        for _ in range(2):
            for vr, value, time in cases:
                assert _shifted(vr, value, offset, time) == shift_value(vr, value, offset, time)
    assert all(len(key[1]) <= 64 for key in _SHIFTED) and len(_SHIFTED) <= 4096


def test_raw_values_known_clear_are_per_patient(guidelines):
    """The sweep remembers raw values that hold none of a patient's identifiers; another
    patient's file with the same bytes (their own name in it) is still searched and cleared."""
    from pydicom.dataelem import RawDataElement

    from deidkit.engine_memo import _text_memo
    from deidkit.engine_sweep import _sweep_raw
    from deidkit.sweep import Identifiers

    def ctx_for(name: str) -> engine.Context:
        ctx = engine_context(guidelines, KEY)
        ctx.identifiers = Identifiers()
        ctx.identifiers.add_name(name)
        ctx.text_memo = _text_memo(ctx.identifiers)
        return ctx

    value = b"SEEN BY ROE JANE"
    raw = RawDataElement(0x00204000, "LT", len(value), value, 0, False, True)
    ds = Dataset()
    ds[0x00204000] = raw
    doe, roe = ctx_for("DOE^JOHN"), ctx_for("ROE^JANE")
    for _ in range(2):
        assert _sweep_raw(ds, raw, doe, doe.text_memo.found) is None
        assert _sweep_raw(ds, raw, roe, roe.text_memo.found) == "own identifier removed"
    assert any(key[2] == value for key in doe.text_memo.raw_clear)
    assert not any(key[2] == value for key in roe.text_memo.raw_clear)


def test_private_names_a_person_remembered_per_tag_and_creator():
    """sweep._names_a_person remembers its answer for a private element by (tag, creator): the
    same tag under another creator (another dictionary name) gets its own answer."""
    from pydicom.dataelem import DataElement

    from deidkit.sweep import _names_a_person

    def private(creator: str | None, vr: str = "LO") -> DataElement:
        elem = DataElement(0x00331002, vr, "ROE^JANE" if vr != "DS" else "1.5")
        elem.private_creator = creator
        return elem

    for _ in range(2):
        assert _names_a_person(private("MITRA OBJECT UTF8 ATTRIBUTES 1.0")) is True  # [Patient's Name]
        assert _names_a_person(private("SOME OTHER VENDOR")) is False  # unknown: "Private tag data"
        assert _names_a_person(private(None)) is False
        assert _names_a_person(private("MITRA OBJECT UTF8 ATTRIBUTES 1.0", vr="DS")) is False  # a VR no name has
        assert _names_a_person(DataElement(0x00100010, "LO", "ROE^JANE")) is True


def test_items_all_raw_skip_the_walk_only_when_nothing_is_to_do():
    from pydicom.dataelem import DataElement, RawDataElement

    from deidkit.engine_walk import _all_kept_raw

    def raw(tag: int, vr: str, value: bytes) -> RawDataElement:
        return RawDataElement(tag, vr, len(value), value, 0, False, True)

    # as a reader leaves them: raw values in the item's dict (Dataset.__setitem__ and ** convert)
    base = {0x00200032: raw(0x00200032, "DS", b"1.0\\2.0\\3.0 "),  # Image Position (Patient)
            0x00280030: raw(0x00280030, "DS", b"0.5\\0.5 ")}
    item = Dataset(dict(base))
    assert _all_kept_raw(item)
    assert not _all_kept_raw(Dataset({**base, 0x00080022: raw(0x00080022, "DA", b"20240115")}))  # a date with a paired time
    creator = DataElement(0x20050010, "LO", "Philips MR Imaging DD 001")
    assert not _all_kept_raw(Dataset({**base, 0x20050010: raw(0x20050010, "LO", b"Philips MR Imaging DD 001 ")}))
    assert not _all_kept_raw(Dataset({**base, 0x20050010: creator}))  # a creator of an empty block: dropped
    value = raw(0x20051001, "FL", b"\0\0\x80\x3f")
    assert _all_kept_raw(Dataset({**base, 0x20050010: creator, 0x20051001: value}))  # its block holds a raw value
    assert not _all_kept_raw(Dataset({**base, 0x20050001: raw(0x20050001, "UL", b"\0\0\0\0"), 0x20050010: creator,
                                      0x20051001: value}))  # element 0001 of a private group: the walk removes it
    assert not _all_kept_raw(Dataset({**base, 0x00080060: DataElement(0x00080060, "CS", "MR")}))  # a converted value


def test_remembered_terms_are_kept_as_term(guidelines):
    from deidkit.engine_memo import _text_memo
    from deidkit.engine_sweep import _kept_as_term
    from deidkit.sweep import Identifiers, kept_as_term

    cases = [(0x00081090, "LO", "MAGNETOM Sola"), (0x00180015, "CS", "FOOT"), (0x00081030, "LO", "Sola Foot study"),
             (0x00081090, "LO", "VA40 for Sola")]
    for name in ("SOLA^ANNA", "FOOT^JOHN", "DOE^JOHN"):
        ctx = engine_context(guidelines, KEY)
        ctx.identifiers = Identifiers()
        ctx.identifiers.add_name(name)
        ctx.identifiers.known_words = guidelines.vocabulary
        ctx.text_memo = _text_memo(ctx.identifiers)
        for _ in range(2):
            for tag, vr, text in cases:
                assert _kept_as_term(tag, vr, text, ctx) == kept_as_term(tag, vr, text, ctx.identifiers, guidelines.vocabulary)
    ctx = engine_context(guidelines, KEY)
    ctx.identifiers = Identifiers()
    ctx.identifiers.add_name("SOLA^ANNA")
    ctx.identifiers.known_words = guidelines.vocabulary
    ctx.text_memo = _text_memo(ctx.identifiers)
    assert _kept_as_term(0x00081090, "LO", "MAGNETOM Sola", ctx)  # the case the memo must not lose


def test_value_helpers_answer_as_before():
    """_is_empty and _str_values take shortcuts for plain text and multi-values: the answers are
    those of the general expressions they had (kept here as the reference)."""
    from pydicom.dataelem import DataElement
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence
    from pydicom.valuerep import PersonName

    from deidkit.engine_context import _is_empty, _str_values

    def empty_before(elem):
        value = elem.value
        return value is None or value == "" or value == b"" or (isinstance(value, (list, Sequence)) and len(value) == 0)

    def str_values_before(elem):
        value = elem.value
        if value is None or value == "":
            return []
        if isinstance(value, (str, bytes, PersonName, int, float)):
            return [str(value)]
        if isinstance(value, (list, tuple)) or (elem.VM > 1 and not isinstance(value, (str, bytes))):
            return [str(v) for v in value]
        return [str(value)]

    elements = [DataElement(0x00081030, "LO", v) for v in ("", "HEAD", ["A", "B"], ["A"], [])]
    elements += [DataElement(0x00200032, "DS", v) for v in ("1.5", ["1", "2.5", "3"], None)]
    elements += [DataElement(0x00100010, "PN", v) for v in ("DOE^JOHN", "")]
    elements += [DataElement(0x00280010, "US", v) for v in (512, [1, 2], None)]
    elements += [DataElement(0x00291010, "OB", v) for v in (b"", b"\x01\x02")]
    elements += [DataElement(0x00081140, "SQ", Sequence()), DataElement(0x00081140, "SQ", Sequence([Dataset()]))]
    elements.append(DataElement(0x00080008, "CS", MultiValue(str, ["ORIGINAL"])))
    for elem in elements:
        assert _is_empty(elem) == empty_before(elem), elem
        if elem.VR != "SQ":
            assert _str_values(elem) == str_values_before(elem), elem


def test_hold_rules_asked_once_per_file_and_still_hold(tmp_path, guidelines, monkeypatch):
    """The export asks engine.hold_reason_for once per file (before reading it whole), not again
    in the engine; a structured report with free text is still held, an image still written."""
    from pydicom.sequence import Sequence

    from helpers import ct_with_meta, encode
    from deidkit import export

    image = ct_with_meta("1.2.826.0.1.3680043.99.7.1", "1.2.826.0.1.3680043.99.7", "1.2.826.0.1.3680043.99.7.2")
    image.PatientName, image.PatientID, image.Modality = "DOE^JOHN", "MRN7", "CT"
    image.Rows = image.Columns = 8
    image.SamplesPerPixel, image.PhotometricInterpretation = 1, "MONOCHROME2"
    image.BitsAllocated, image.BitsStored, image.HighBit, image.PixelRepresentation = 16, 12, 11, 0
    image.PixelData = bytes(8 * 8 * 2)
    report = ct_with_meta("1.2.826.0.1.3680043.99.7.3", "1.2.826.0.1.3680043.99.7", "1.2.826.0.1.3680043.99.7.4")
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    report.PatientName, report.PatientID, report.Modality = "DOE^JOHN", "MRN7", "SR"
    item = Dataset()
    item.ValueType, item.TextValue = "TEXT", "Patient John Doe seen today"
    report.ContentSequence = Sequence([item])
    source = tmp_path / "EXPORT"
    source.mkdir()
    (source / "IM1.dcm").write_bytes(encode(image))
    (source / "SR1.dcm").write_bytes(encode(report))
    calls: list[str] = []
    real = engine.hold_reason_for

    def counting(ds, g):
        calls.append(str(ds.SOPClassUID))
        return real(ds, g)

    monkeypatch.setattr(engine, "hold_reason_for", counting)
    settings = dataclasses.replace(guidelines.settings, options=guidelines.settings.options - {"clean_structured_content"},
                                   hold_structured_reports=True)
    g = dataclasses.replace(guidelines, settings=settings)
    summary = export.run_export(export.RunConfig(source=source, dest=tmp_path / "OUT", hospital_dir=tmp_path / "OUT_HOSPITAL_ONLY",
                                                 guidelines=g, key=KEY, workers=1))
    statuses = sorted((r.status, r.reason) for r in summary.results)
    assert [str(s) for s, _ in statuses] == ["held", "written"], statuses
    assert "structured report" in statuses[0][1]
    assert sorted(calls) == sorted(["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.11"])  # once each


def test_memo_keys_survive_damaged_values():
    """A damaged file can give a private element a list as its creator, or a dataset a character
    set of another shape: the memos fall back to working the answer out, never raise."""
    from pydicom.dataelem import DataElement

    from deidkit.engine_sweep import _charset_key
    from deidkit.sweep import _names_a_person

    elem = DataElement(0x00331002, "LO", "ROE^JANE")
    elem.private_creator = ["MITRA OBJECT UTF8 ATTRIBUTES 1.0", "X"]  # as a damaged creator reads
    assert _names_a_person(elem) in (True, False)
    ds = Dataset()
    for charset in (None, "iso8859", ["iso8859", "iso2022_jp"], ("latin_1",)):
        ds.set_original_encoding(False, True, charset)
        hash(_charset_key(ds))


def test_file_with_a_multi_valued_private_creator_is_de_identified(guidelines):
    """Fuzz seed 82 case 747: a private creator holding two values (a damaged byte turned into a
    backslash) makes pydicom give the block's elements a list as their creator."""
    ds = _mr("DOE^JOHN", "MRN1", 9)
    ds.add_new(0x00330010, "LO", ["MITRA OBJECT UTF8 ATTRIBUTES 1.0", "X"])
    ds.add_new(0x00331002, "LO", "ROE^JANE")
    ds = read_back_as_file(ds)
    result = engine.deidentify(ds, engine_context(guidelines, KEY))
    assert result.hold_reason is None
    assert 0x00331002 not in ds  # a private element no table keeps: removed
