"""Kill and resume (issue 7): a run killed at any point and started again ends exactly like a run
that was never interrupted, redoes no finished file and leaves no partial file behind.

The kill is a SIGKILL of the whole process group (main process and pool workers at once, like a
power cut as far as the processes can tell), triggered by export.py's test hook after the N-th
result: either right after its journal line ("N") or in the worst window, after the file was
moved into place and before its journal line was written ("N:placed").
"""
from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from deidkit.export import PARTIAL_DIR
from deidkit.synth import make_export
from helpers import hospital_of, run_deid_program, tree
from helpers import journal_sources as journal_of

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups (POSIX) needed for the kill")


def run_tool(source: Path, out: Path, key: Path, kill: str | None = None) -> int:
    return run_deid_program(source, out, key, kill).returncode


hospital = hospital_of


def journal_sources(out: Path) -> list[str]:
    return journal_of(hospital(out))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    # 4 patients x 2 series x 24 + presentation states, held-back objects, media and broken files
    return make_export(tmp_path_factory.mktemp("resume") / "EXPORT", instances_per_series=24, image_size=32)


@pytest.fixture(scope="module")
def reference(export, tmp_path_factory):
    base = tmp_path_factory.mktemp("reference")
    out = base / "OUT"
    code = run_tool(export.root, out, base / "site.key")
    return out, code, base / "site.key"


def test_the_export_is_big_enough_to_kill_in_the_middle(reference):
    out, code, _ = reference
    assert code == 1  # held-back objects and broken files are part of the synthetic export
    assert len(journal_sources(out)) > 200


# kill points: the first file, the middle (both windows), twice in a row, after the very last file
@pytest.mark.parametrize("kills", [["1"], ["97:placed"], ["120"], ["40", "60:placed"], ["LAST"]],
                         ids=lambda k: "+".join(k))
def test_killed_and_resumed_run_equals_an_uninterrupted_one(export, reference, tmp_path, kills):
    ref_out, ref_code, key = reference
    total = len(journal_sources(ref_out))
    out = tmp_path / "OUT"
    journaled_before_final = 0
    for kill in kills:
        kill = str(total) if kill == "LAST" else kill
        code = run_tool(export.root, out, key, kill=kill)
        assert code == -signal.SIGKILL, "the hook did not fire: the kill point is past the end"
        journaled_before_final = len(journal_sources(out))
        assert journaled_before_final > 0
    assert run_tool(export.root, out, key) == ref_code
    assert tree(out) == tree(ref_out)  # every output file, the manifest and the summary, byte for byte
    assert (hospital(out) / "held_back.csv").read_bytes() == (hospital(ref_out) / "held_back.csv").read_bytes()
    assert not (out / PARTIAL_DIR).exists() and not list(out.rglob("*.part")) and not list(out.rglob("*.tmp"))
    sources = journal_sources(out)
    assert Counter(sources).most_common(1)[0][1] == 1  # no file was done twice
    assert len(sources) == total
    log = (hospital(out) / "run_log.txt").read_text(encoding="utf-8")
    assert f"Resumed: {journaled_before_final} files were already done" in log
