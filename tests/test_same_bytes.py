"""A file found twice is done once (issue 19, deidkit/export_twins.py): a file whose bytes another
file of the run has is not parsed; it takes the outcome of the one processed, and everything a
run writes is what it was when every copy was processed in full.

The "before" of each comparison is the same run with the twin plan switched off (plan_twins
answering "no candidates"): exactly the code path every file took before."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from deidkit import export, export_twins
from deidkit.contract import HELD_BACK_NAME, PARTIAL_DIR, REVIEW_IMAGES_DIR, STATE_NAME
from deidkit.export_model import DUPLICATE, FAILED, HELD, WRITTEN
from deidkit.export_twins import Claims, SameBytes, claim, fingerprint, plan_twins, process_job
from deidkit.synth import make_export
from helpers import ct_with_meta, encode, hospital_of, run_deid, run_deid_program, tree

def _ct_bytes(sop: str, fill: int) -> bytes:
    ds = ct_with_meta(sop, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", ExplicitVRLittleEndian)
    ds.PatientName, ds.PatientID, ds.Modality = "TWIN^TESSA", "TW123456", "CT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes([fill]) * 128
    return encode(ds)


def _add_twins(root: Path) -> None:
    """Beside the synthetic export: a second copy of the first patient's folder (every kind of
    outcome: written, held for text or pixels, damaged, empty, not DICOM), hard links, and two
    different instances of the same size."""
    first = sorted(p for p in root.iterdir() if p.is_dir() and "DOE" in p.name)[0]
    shutil.copytree(first, root / "ZZ SECOND EXPORT" / first.name)
    shutil.copytree(root / "CDROM", root / "ZZ SECOND EXPORT" / "CDROM")  # a DICOMDIR: judged where it is
    for path in sorted(p for p in first.rglob("*") if p.is_file())[:4]:  # a name ending .pdf is skipped
        shutil.copyfile(path, root / "ZZ SECOND EXPORT" / (path.name + ".pdf"))
    links = root / "LINKS"
    links.mkdir()
    for i, path in enumerate(sorted(p for p in first.rglob("*") if p.is_file())):
        if i % 2 == 0:
            os.link(path, links / f"L{i:03d}")
    same_size = root / "SAME SIZE"
    same_size.mkdir()
    (same_size / "A.dcm").write_bytes(_ct_bytes("1.2.826.0.1.3680043.8.498.11", 1))
    (same_size / "B.dcm").write_bytes(_ct_bytes("1.2.826.0.1.3680043.8.498.12", 2))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(an export with twins, the same export without them)"""
    base = tmp_path_factory.mktemp("twins")
    plain = make_export(base / "PLAIN", image_size=32).root
    twins = base / "TWINS"
    shutil.copytree(plain, twins)
    _add_twins(twins)
    return twins, plain


def _run(source: Path, out: Path, key: Path, monkeypatch, twins: bool = True) -> tuple[int, list[str]]:
    """deid_tool in this process (one worker) into out: its exit status and the relative paths
    process_file was called for."""
    processed: list[str] = []
    real = export_twins.process_file

    def counting(job):
        processed.append(job[2])
        return real(job)

    with monkeypatch.context() as m:
        m.setattr(export_twins, "process_file", counting)
        if not twins:
            m.setattr(export, "plan_twins", lambda jobs: export_twins.TwinPlan())
        code = run_deid(source, out, key)
    return code, processed


def _results(out: Path) -> dict[str, dict]:
    """The final result of every file (by original path) from the run's journal."""
    found: dict[str, dict] = {}
    for line in (hospital_of(out) / STATE_NAME).read_text(encoding="utf-8").splitlines()[1:]:
        r = json.loads(line)
        found[r["src"]] = r
    return found


def _outcomes(out: Path) -> list[tuple]:
    return [(r["ref"], src, r["status"], r["reason"], r["out"], r["sha256"], r["proposal"], tuple(r["thumbnails"]),
             r["sop_instance"], r["actions"]) for src, r in sorted(_results(out).items())]


def _hospital_tree(out: Path) -> dict[str, bytes]:
    """held_back.csv, review_decisions.csv and the review images."""
    h = hospital_of(out)
    found = {name: (h / name).read_bytes() for name in (HELD_BACK_NAME, "review_decisions.csv") if (h / name).exists()}
    if (h / REVIEW_IMAGES_DIR).exists():
        found.update({f"{REVIEW_IMAGES_DIR}/{k}": v for k, v in tree(h / REVIEW_IMAGES_DIR).items()})
    return found


@pytest.fixture(scope="module")
def runs(exports, tmp_path_factory):
    """Runs over the export with twins: before (twin plan off), now (one worker), now with two
    workers as its own program; and now over the export without the twins."""
    twins, plain = exports
    base = tmp_path_factory.mktemp("runs")
    key = base / "site.key"
    mp = pytest.MonkeyPatch()
    try:
        done = {"before": _run(twins, base / "BEFORE", key, mp, twins=False),
                "now": _run(twins, base / "NOW", key, mp),
                "plain": _run(plain, base / "PLAIN", key, mp)}
    finally:
        mp.undo()
    done["pool"] = (run_deid_program(twins, base / "POOL", key).returncode, [])
    return base, done


def test_every_twin_outcome_equals_a_full_processing(runs):
    base, done = runs
    (code_before, processed_before), (code_now, processed) = done["before"], done["now"]
    assert code_now == code_before == 1
    assert _outcomes(base / "NOW") == _outcomes(base / "BEFORE")
    assert {r["status"] for r in _results(base / "NOW").values()} >= {WRITTEN, DUPLICATE, HELD, FAILED}
    assert tree(base / "NOW") == tree(base / "BEFORE")  # every output byte, the manifest, the summary
    assert _hospital_tree(base / "NOW") == _hospital_tree(base / "BEFORE")
    assert len(processed) < len(processed_before) == len(_results(base / "BEFORE"))


def test_the_same_file_twice_is_parsed_once(runs):
    base, done = runs
    _, processed = done["now"]
    results = _results(base / "NOW")
    copies = {src: r for src, r in results.items() if src.startswith(("ZZ SECOND EXPORT/", "LINKS/"))}
    # parsed again: a DICOMDIR (judged where it is) and copies whose name changed what a non-DICOM
    # file gets (skipped when named .pdf, failed otherwise)
    own_outcome = {"ZZ SECOND EXPORT/CDROM/DICOMDIR", "LINKS/L014"} | {s for s in copies if s.endswith(".pdf") and s.count("/") == 1}
    assert len(copies) > 20 and set(processed) & set(copies) == own_outcome
    assert len(processed) == len(set(processed))
    for src, r in copies.items():
        if src.startswith("LINKS/") or src in own_outcome:
            continue
        original = results[src.split("/", 1)[1]]
        if original["status"] == WRITTEN:
            assert (r["status"], r["reason"], r["out"]) == (DUPLICATE, f"same instance as {original['ref']}", "")
        else:
            assert (r["status"], r["reason"]) == (original["status"], original["reason"])


def test_held_twins_are_each_listed_with_their_own_original(runs):
    base, _ = runs
    rows = (hospital_of(base / "NOW") / HELD_BACK_NAME).read_text(encoding="utf-8-sig").splitlines()
    held = [r for src, r in _results(base / "NOW").items() if r["status"] == HELD and src.startswith("ZZ")]
    assert len(held) >= 3  # text report, PDF, burned-in ultrasound
    for r in held:
        assert any(line.startswith(f"{r['ref']},held,{r['src']},") for line in rows)
    ultrasound = [r for r in held if r["thumbnails"]]
    assert ultrasound and all(t.startswith(r["ref"] + "_") for r in ultrasound for t in r["thumbnails"])
    images = hospital_of(base / "NOW") / REVIEW_IMAGES_DIR
    assert all((images / t).is_file() for r in ultrasound for t in r["thumbnails"])


def test_same_size_different_bytes_are_both_processed(runs):
    base, done = runs
    _, processed = done["now"]
    assert {"SAME SIZE/A.dcm", "SAME SIZE/B.dcm"} <= set(processed)
    results = _results(base / "NOW")
    assert results["SAME SIZE/A.dcm"]["status"] == results["SAME SIZE/B.dcm"]["status"] == WRITTEN


def test_hard_links_are_not_even_dispatched(exports):
    twins, _ = exports
    jobs = [(f"F{i + 1:06d}", str(p), p.relative_to(twins).as_posix())
            for i, p in enumerate(export.plan(twins, []))]
    twin_plan = plan_twins(jobs)
    ref_of = {j[2]: j[0] for j in jobs}
    links = {j[0] for j in jobs if j[2].startswith("LINKS/")} - {ref_of["LINKS/L014"]}
    assert links and links <= set(twin_plan.linked)
    assert ref_of["LINKS/L014"] not in twin_plan.linked  # a link to a .pdf file, named otherwise
    path_of = {j[0]: j[1] for j in jobs}
    for ref, owner in twin_plan.linked.items():
        assert owner < ref and os.path.samefile(path_of[ref], path_of[owner])
    assert {ref_of["SAME SIZE/A.dcm"], ref_of["SAME SIZE/B.dcm"]} <= twin_plan.candidates


def test_the_delivery_equals_a_run_without_the_twins(runs):
    base, _ = runs
    now = {k: v for k, v in tree(base / "NOW").items() if k.endswith(".dcm")}
    plain = {k: v for k, v in tree(base / "PLAIN").items() if k.endswith(".dcm")}
    assert len(now) == len(plain) + 2  # only the two same-size instances are new images
    assert {k: v for k, v in now.items() if k in plain} == plain


def test_two_workers_give_the_same_run(runs):
    base, done = runs
    assert done["pool"][0] == done["now"][0]
    assert _outcomes(base / "POOL") == _outcomes(base / "NOW")
    assert tree(base / "POOL") == tree(base / "NOW")
    assert _hospital_tree(base / "POOL") == _hospital_tree(base / "NOW")
    assert not (base / "POOL" / PARTIAL_DIR).exists()


# ---- claims in the worker ------------------------------------------------------------------------

def test_claims_first_own_retry_later_and_decisions(tmp_path):
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    a.write_bytes(b"same bytes" * 1000)
    b.write_bytes(b"same bytes" * 1000)
    folder = tmp_path / "markers"
    folder.mkdir()
    assert claim(("F000002", str(a), "a.dcm"), str(folder)) is None          # first
    assert claim(("F000002", str(a), "a.dcm"), str(folder)) is None          # its own retry: go on
    assert claim(("F000005", str(b), "b.dcm"), str(folder)) == "F000002"     # a later job: a twin
    assert claim(("F000001", str(b), "b.dcm"), str(folder)) is None          # an earlier job: processed
    decided = ("F000007", str(b), "b.dcm", "0:1,1,4,4", "0:1,1,4,4")
    assert claim(decided, str(folder)) is None                               # another decision: not a twin
    assert claim(("F000009", *decided[1:]), str(folder)) == "F000007"
    assert fingerprint(str(a)) == fingerprint(str(b)) != fingerprint(str(b), decided[3:])
    assert claim(("F000011", str(a), "a.pdf"), str(folder)) is None          # a name ending as non-DICOM
    assert claim(("F000012", str(b), "b.PDF"), str(folder)) == "F000011"


def test_a_marker_left_empty_by_a_killed_owner_is_not_trusted(tmp_path, monkeypatch):
    a = tmp_path / "a.dcm"
    a.write_bytes(b"x" * 100)
    (tmp_path / fingerprint(str(a))).write_bytes(b"")
    monkeypatch.setattr(export_twins, "_EMPTY_MARKER_WAITS", 2)
    assert claim(("F000009", str(a), "a.dcm"), str(tmp_path)) is None


def test_an_owner_whose_file_changes_while_processed_is_reported(tmp_path, monkeypatch):
    a = tmp_path / "a.dcm"
    a.write_bytes(b"x" * 100)
    (tmp_path / "m").mkdir()

    def rewriting(job):
        a.write_bytes(b"y" * 101)
        return export.FileResult(ref=job[0], src=job[2], status=FAILED, reason="not a DICOM file")

    monkeypatch.setattr(export_twins, "process_file", rewriting)
    out = process_job(("F000001", str(a), "a.dcm"), Claims(str(tmp_path / "m"), frozenset({"F000001"})))
    assert [type(o).__name__ for o in out] == ["FileResult", "Changed"]
    assert isinstance(process_job(("F000003", str(a), "a.dcm"), None)[0], export.FileResult)
    assert not isinstance(out[0], SameBytes)


def test_twins_of_a_changed_owner_are_processed_in_full(tmp_path, monkeypatch):
    src = tmp_path / "SRC"
    (src / "A").mkdir(parents=True)
    (src / "B").mkdir()
    data = _ct_bytes("1.2.826.0.1.3680043.8.498.21", 3)
    (src / "A" / "x.dcm").write_bytes(data)
    (src / "B" / "x.dcm").write_bytes(data)
    real = export_twins._state
    calls = []

    def state(path):  # the owner's file looks rewritten after its processing
        calls.append(path)
        value = real(path)
        return value if len(calls) == 1 or value is None else (value[0], value[1] + 1, value[2])

    monkeypatch.setattr(export_twins, "_state", state)
    _, processed = _run(src, tmp_path / "OUT", tmp_path / "site.key", monkeypatch)
    assert sorted(processed) == ["A/x.dcm", "B/x.dcm"]
    assert [r["status"] for _, r in sorted(_results(tmp_path / "OUT").items())] == [WRITTEN, DUPLICATE]


def test_twins_of_two_versions_of_one_instance_are_held_as_before(tmp_path, monkeypatch):
    src = tmp_path / "SRC"
    first, second = _ct_bytes("1.2.826.0.1.3680043.8.498.41", 5), _ct_bytes("1.2.826.0.1.3680043.8.498.41", 6)
    for folder, data in (("A", first), ("B", second), ("C", second), ("D", first)):
        (src / folder).mkdir(parents=True)
        (src / folder / "x.dcm").write_bytes(data)
    key = tmp_path / "site.key"
    code_before, processed_before = _run(src, tmp_path / "BEFORE", key, monkeypatch, twins=False)
    code_now, processed = _run(src, tmp_path / "NOW", key, monkeypatch)
    assert sorted(processed) == ["A/x.dcm", "B/x.dcm"] and len(processed_before) == 4
    assert code_now == code_before == 1
    assert _outcomes(tmp_path / "NOW") == _outcomes(tmp_path / "BEFORE")
    assert [r["status"] for _, r in sorted(_results(tmp_path / "NOW").items())] == [WRITTEN, HELD, HELD, DUPLICATE]
    assert tree(tmp_path / "NOW") == tree(tmp_path / "BEFORE")
    assert _hospital_tree(tmp_path / "NOW") == _hospital_tree(tmp_path / "BEFORE")



def _three_copies(tmp_path: Path, data: bytes) -> Path:
    """SRC with the same file in three folders (A, B, C /x.dcm)."""
    src = tmp_path / "SRC"
    for folder in ("A", "B", "C"):
        (src / folder).mkdir(parents=True)
        (src / folder / "x.dcm").write_bytes(data)
    return src

@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups (POSIX) needed for the kill")
def test_markers_of_a_killed_run_never_skip_a_file(tmp_path):
    src = _three_copies(tmp_path, _ct_bytes("1.2.826.0.1.3680043.8.498.31", 4))
    key = tmp_path / "site.key"
    reference = tmp_path / "REFERENCE"
    assert run_deid_program(src, reference, key).returncode == 0
    out = tmp_path / "OUT"
    assert run_deid_program(src, out, key, "1").returncode < 0  # killed once A/x.dcm is journaled
    stale = list((out / PARTIAL_DIR).glob(export_twins.MARKER_PREFIX + "*/*"))
    assert len(stale) == 1 and stale[0].read_bytes() == b"F000001"  # "F000001 has these bytes"
    assert run_deid_program(src, out, key).returncode == 0
    assert tree(out) == tree(reference)
    assert _hospital_tree(out) == _hospital_tree(reference)
    assert [r["status"] for _, r in sorted(_results(out).items())] == [WRITTEN, DUPLICATE, DUPLICATE]
    assert not (out / PARTIAL_DIR).exists()


def test_an_earlier_run_replaced_leaves_no_marker_and_keeps_other_files(tmp_path):
    dest = tmp_path / "OUT"
    markers = dest / PARTIAL_DIR / (export_twins.MARKER_PREFIX + "0123456789ab")
    markers.mkdir(parents=True)
    (markers / ("ab" * 32)).write_bytes(b"F000001")
    foreign = markers / "notes.txt"  # not written by the kit: never removed
    foreign.write_text("mine")
    (tmp_path / "OUT_HOSPITAL_ONLY").mkdir()
    left = export.remove_earlier_output(dest, tmp_path / "OUT_HOSPITAL_ONLY")
    assert left == [f"{PARTIAL_DIR}/{markers.name}/notes.txt"] and foreign.exists()
    foreign.unlink()
    assert export.remove_earlier_output(dest, tmp_path / "OUT_HOSPITAL_ONLY") == []
    assert not (dest / PARTIAL_DIR).exists()


# ---- a run killed and resumed, a worker killed on an owner ----------------------------------------

@pytest.fixture(scope="module")
def reference(exports, tmp_path_factory):
    twins, _ = exports
    base = tmp_path_factory.mktemp("reference")
    out = base / "OUT"
    proc = run_deid_program(twins, out, base / "site.key")
    journal = [json.loads(line) for line in (hospital_of(out) / STATE_NAME).read_text().splitlines()[1:]]
    return out, proc.returncode, base / "site.key", journal


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups (POSIX) needed for the kill")
@pytest.mark.parametrize("kill", ["20", "LAST-5:placed"])
def test_a_run_killed_among_twins_resumes_to_the_same_end(exports, reference, tmp_path, kill):
    twins, _ = exports
    ref_out, ref_code, key, journal = reference
    if kill.startswith("LAST"):  # in the twins' resolution after the pool (the last results)
        kill = f"{len(journal) - 5}:placed"
    out = tmp_path / "OUT"
    assert run_deid_program(twins, out, key, kill).returncode < 0
    assert run_deid_program(twins, out, key).returncode == ref_code
    assert tree(out) == tree(ref_out)
    assert _hospital_tree(out) == _hospital_tree(ref_out)
    sources = [json.loads(line)["src"] for line in (hospital_of(out) / STATE_NAME).read_text().splitlines()[1:]]
    assert sorted(sources) == sorted(r["src"] for r in journal)
    assert not (out / PARTIAL_DIR).exists()


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="a worker killed with SIGKILL (POSIX)")
@pytest.mark.parametrize("start", ["default", "spawn"])  # spawn: as on Windows and macOS (it used to hang)
def test_a_worker_killed_on_an_owner_after_its_claim_still_processes_it(exports, reference, tmp_path, monkeypatch,
                                                                          start):
    if start == "spawn":
        monkeypatch.setenv("DEIDKIT_START_METHOD", "spawn")
    twins, _ = exports
    ref_out, ref_code, key, journal = reference
    owner = next(r["ref"] for r in journal if r["src"].startswith("DOE") and r["status"] == WRITTEN)
    env_hook = f"{tmp_path}:{owner}"
    os.environ[export.WORKER_KILL_HOOK] = env_hook
    try:
        out = tmp_path / "OUT"
        assert run_deid_program(twins, out, key).returncode == ref_code
    finally:
        del os.environ[export.WORKER_KILL_HOOK]
    assert (tmp_path / f"killed_{owner}_start").exists()  # the worker did die on it
    assert tree(out) == tree(ref_out)
    assert _hospital_tree(out) == _hospital_tree(ref_out)


def test_progress_counts_twins_and_ends_at_the_total(tmp_path):
    from deidkit import guidelines as gl

    src = _three_copies(tmp_path, _ct_bytes("1.2.826.0.1.3680043.8.498.51", 7))
    os.link(src / "A" / "x.dcm", src / "A" / "y.dcm")
    seen: list[tuple[int, int]] = []
    out = tmp_path / "OUT"
    config = export.RunConfig(source=src, dest=out, hospital_dir=hospital_of(out), guidelines=gl.load(),
                              key=b"\x17" * 32, workers=1)
    summary = export.run_export(config, progress=lambda done, total: seen.append((done, total)))
    assert [r.status for r in summary.results] == [WRITTEN, DUPLICATE, DUPLICATE, DUPLICATE]
    assert seen[-1] == (4, 4) and all(done <= total == 4 for done, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize("order", list(__import__("itertools").permutations("ABC")), ids="".join)
def test_placing_the_same_bytes_is_order_free(tmp_path, order):
    """Two workers can finish copies of one file in any order (a copy first by path processed in
    full because a later one claimed first): the first by path is written, the others name it."""
    from deidkit.export_place import Placement
    from deidkit.export_plan import partial_path
    from deidkit.export_resume import StateWriter

    dest = tmp_path / "OUT"
    results: dict[str, export.FileResult] = {}
    refs = {"A": "F000001", "B": "F000002", "C": "F000003"}
    with StateWriter(tmp_path / "state.jsonl", "x", fresh=True) as state:
        placement = Placement(dest, state, results)
        for name in order:
            src = f"{name}/x.dcm"
            partial = partial_path(dest, src)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"the same de-identified bytes")
            r = export.FileResult(ref=refs[name], src=src, status=WRITTEN, out="SUBJ_X/IMG.dcm", sha256="s1",
                                  sop_instance="2.25.1")
            placement.place(r)
            results[src] = r
    final = {src: (r.status, r.reason, r.out) for src, r in sorted(results.items())}
    assert final == {"A/x.dcm": (WRITTEN, "", "SUBJ_X/IMG.dcm"),
                     "B/x.dcm": (DUPLICATE, "same instance as F000001", ""),
                     "C/x.dcm": (DUPLICATE, "same instance as F000001", "")}
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()] == ["SUBJ_X/IMG.dcm"]


def _decide(out: Path, boxes_of: dict[str, str] | None = None) -> None:
    """Approve every image waiting for a person (with its proposed boxes, or those given by original)."""
    import csv

    from deidkit import review_decisions

    path = hospital_of(out) / review_decisions.DECISIONS_NAME
    with path.open(encoding="utf-8", newline="") as fp:
        rows = list(csv.DictReader(fp))
    assert len(rows) == 2
    for r in rows:
        r["decision"] = "approve"
        r["boxes"] = (boxes_of or {}).get(r["original_file"], r["boxes"])
    with path.open("w", encoding="utf-8", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("same_boxes", [True, False], ids=["same decision", "other boxes"])
def test_images_a_person_approved_are_twins_only_with_the_same_decision(synth_export, tmp_path, monkeypatch,
                                                                      same_boxes):
    ultrasound = next(p for p in synth_export.root.rglob("US0001"))
    src = tmp_path / "SRC"
    for folder in ("A", "B"):
        (src / folder).mkdir(parents=True)
        shutil.copyfile(ultrasound, src / folder / "US0001")
    key = tmp_path / "site.key"
    ends = {}
    for name, twins in (("BEFORE", False), ("NOW", True)):
        out = tmp_path / name
        assert _run(src, out, key, monkeypatch, twins=twins)[0] == 1
        held = _results(out)
        assert [r["status"] for r in held.values()] == [HELD, HELD] and all(r["proposal"] for r in held.values())
        _decide(out, None if same_boxes else {"B/US0001": "0:0,0,8,8"})
        code, processed = _run(src, out, key, monkeypatch, twins=twins)
        ends[name] = (code, processed, _outcomes(out), tree(out), _hospital_tree(out))
    assert ends["NOW"][0] == ends["BEFORE"][0]
    assert ends["NOW"][2:] == ends["BEFORE"][2:]
    assert len(ends["BEFORE"][1]) == 2 and len(ends["NOW"][1]) == (1 if same_boxes else 2)
    statuses = [r[2] for r in ends["NOW"][2]]
    assert statuses == ([WRITTEN, DUPLICATE] if same_boxes else [WRITTEN, HELD])
