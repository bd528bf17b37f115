"""Keyed mapping and the guideline loader/validator."""
from __future__ import annotations

from pathlib import Path

import pytest

from deidkit import guidelines as gl
from deidkit.mapping import Mapper, load_or_create_key, shift_da, shift_dt
from deidkit.sweep import Identifiers, clean_descriptor, date_spellings, find_generic_phi

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def test_same_key_same_answers_different_key_different():
    a, b, c = Mapper(b"a" * 32), Mapper(b"a" * 32), Mapper(b"b" * 32)
    assert a.uid("1.2.3") == b.uid("1.2.3") != c.uid("1.2.3")
    assert a.uid("1.2.3") != a.uid("1.2.4")
    assert len(a.uid("1.2.3")) <= 64 and a.uid("1.2.3").startswith("2.25.")
    assert a.patient_pseudonym("id:|X") == b.patient_pseudonym("id:|X") != c.patient_pseudonym("id:|X")
    assert a.date_offset_days("p") == b.date_offset_days("p")
    assert -3650 <= a.date_offset_days("p") <= -365


def test_key_file_created_once_and_reused(tmp_path):
    key, created = load_or_create_key(tmp_path / "k" / "key.txt")
    again, created_again = load_or_create_key(tmp_path / "k" / "key.txt")
    assert created and not created_again and key == again and len(key) == 32


def test_dates_in_every_form():
    assert shift_da("20240301", -1) == "20240229"
    assert shift_da("2024.03.01", -1) == "20240229"
    assert shift_da("20240101-20240131", -10) == "20231222-20240121"
    assert shift_da("", -5) == ""
    assert shift_da("2024013", -1) is None and shift_da("20241301", -1) is None
    assert shift_dt("20240115101112.123456+0100", -15) == "20231231101112.123456+0100"
    assert shift_dt("20240115", -15) == "20231231"
    assert shift_dt("2024", -400) == "2023"
    assert shift_dt("202401", -62) == "202311"


def test_identifiers_and_generic_shapes():
    assert "03.02.1961" in date_spellings("19610203") and "3 feb 1961" in date_spellings("19610203")
    ids = Identifiers()
    ids.add_name("DOE^JOHN")
    ids.add_exact("MRN1234567")
    assert ids.find("seen by John Doe") == ["name"]
    assert ids.find("id mrn1234567") == ["identifier"]
    assert ids.find("CT CHEST") == []
    kinds = {f.kind for f in find_generic_phi("DOE^JOHN 1961-02-03 j@x.org +1 555 010 2345 12 Elm Street")}
    assert {"person_name", "date", "email", "phone", "address"} <= kinds


def test_clean_descriptor_keeps_imaging_words_only(guidelines):
    v = guidelines.vocabulary
    assert clean_descriptor("CT CHEST W/O CONTRAST", v) == "CT CHEST W/O CONTRAST"
    assert clean_descriptor("Thorax 1.0 B31f", v) == "Thorax 1.0 B31f"
    assert clean_descriptor("Jones 1961-02-03 MRN1234567", v) == ""
    assert clean_descriptor("AX T2 PHI00081030", v) == "AX T2"


def test_bundled_tables_load_and_match_the_reference(guidelines):
    assert guidelines.edition == "2026d"
    assert len(guidelines.rules) + len(guidelines.masked) + 1 == 657
    assert sum(1 for e in guidelines.safe_private.values() if e.source == "E.3.10-1") == 479
    if not REFERENCE.exists():
        pytest.skip("shared/reference not beside the checkout")
    import csv
    ref = {r["tag"]: r["basic"] for r in csv.DictReader((REFERENCE / "e1_1.csv").open(encoding="utf-8"))}
    for rule in guidelines.rules.values():
        assert ref[rule.tag] == rule.basic


def test_validation_names_file_and_line(tmp_path):
    bundled = gl.bundled_dir()
    for f in gl.GUIDELINE_FILES:
        (tmp_path / f).write_text((bundled / f).read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / gl.PROFILE_FILE).read_text(encoding="utf-8").replace('"(0008,0050)",Accession Number,AccessionNumber,SH,Z',
                                                                            '"(0008,0050)",Accession Number,AccessionNumber,SH,Q')
    (tmp_path / gl.PROFILE_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(gl.GuidelineError, match=r"confidentiality_profile.csv line \d+: action 'Q'"):
        gl.load(tmp_path)
    (tmp_path / gl.PROFILE_FILE).unlink()
    (tmp_path / gl.SETTINGS_FILE).write_text("[profile]\nretain_uids = perhaps\n", encoding="utf-8")
    with pytest.raises(gl.GuidelineError, match="retain_uids must be yes or no"):
        gl.load(tmp_path)


def test_override_file_next_to_program_wins(tmp_path):
    (tmp_path / gl.SETTINGS_FILE).write_text("[profile]\nretain_uids = yes\n", encoding="utf-8")
    g = gl.load(tmp_path)
    assert g.overridden == (gl.SETTINGS_FILE,)
    assert "retain_uids" in g.settings.options
    assert g.sha256 != gl.load().sha256


def test_phone_numbers_in_local_spellings_are_found_but_matrix_sizes_are_not():
    for text in ("call 0211 5550199", "+49 211 5550199", "(03) 5550 1234"):
        assert any(f.kind == "phone" for f in find_generic_phi(text)), text
    assert not any(f.kind == "phone" for f in find_generic_phi("Matrix 512 512"))


def test_key_path_without_a_home_folder_falls_back_to_the_program_folder(monkeypatch):
    from deidkit import mapping

    def no_home():
        raise RuntimeError("no home")

    monkeypatch.setattr(mapping.Path, "home", staticmethod(no_home))
    assert mapping.default_key_path().name == mapping.KEY_FILE_NAME
