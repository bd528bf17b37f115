"""The export's speed-ups change no byte and no decision.

- dicomio.encode_header writes common elements itself: its bytes must equal pydicom's dcmwrite for
  every de-identified header of a synthetic export (three character sets, implicit VR, sequences,
  private tags, overlays).
- Identifiers.find uses patterns compiled from its sets: it must answer as the plain loop over the
  sets does, and notice when the (public, mutable) sets change.
- Guidelines.action_for caches resolved codes: a Guidelines made with other options must not see
  the cache of the first.
"""
from __future__ import annotations

import dataclasses
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.filewriter import dcmwrite

from deidkit import dicomio, engine
from deidkit import guidelines as gl
from deidkit.mapping import Mapper
from deidkit.sweep import Identifiers, _is_cjk, fold
from deidkit.synth import make_export


def reference_find(ids: Identifiers, text: str) -> list[str]:
    """Identifiers.find as a loop over the sets (how it was written before it was compiled)."""
    if not text:
        return []
    folded = fold(text)
    hits = []
    words = set(re.findall(r"\w+", folded))
    for token in ids.name_tokens:
        if _is_cjk(token):
            if token in folded:
                hits.append("name")
                break
        elif token in words or (len(token) >= 4 and token in folded
                                and re.search(rf"(?<![a-z]){re.escape(token)}", folded)):
            hits.append("name")
            break
    digits = re.sub(r"\D", "", folded)
    for value in ids.exact:
        if value in folded or (value.isdigit() and len(value) >= 6 and value in digits):
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
