"""rename_folders: naming scheme, collisions, journal/resume/undo, DICOMDIR, Windows rules, kills."""
from __future__ import annotations

import collections
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from deidkit import journal as jr
from deidkit import rename as rn
from deidkit.synth import make_export

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "rename_folders.py"
NEUTRAL = re.compile(r"^(P\d{4,}(_\d+)?|P\d{4,}_ST\d{2,}_[A-Z0-9-]+(_\d+)?|SE\d{3,}_[A-Z0-9-]+(_\d+)?|F\d{3,}(_\d+)?"
                     r"|IM\d{5,}(_\d+)?\.dcm|OTHER\d{4,}(_\d+)?(\.[a-z0-9]{1,4})?)$")
OWN = {"index.csv", jr.JOURNAL_NAME, jr.PROGRESS_NAME}


# ---- helpers ------------------------------------------------------------------------------

def generate_uid(entropy_srcs: list[str]) -> str:
    """A short made-up UID (room for suffixes like .1)."""
    return "1.2.826.0.1.3680043.9.7777." + str(int(hashlib.sha256("|".join(entropy_srcs).encode()).hexdigest()[:12], 16))


def dicom(path: Path, patient: str, pid: str, study: str, series: str, series_no: int, instance: int,
          modality: str = "CT", extra: dict | None = None) -> None:
    """A tiny DICOM file (no pixels) with the given identity."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    sop = generate_uid([pid, study, series, str(instance)])
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.PatientName, ds.PatientID = patient, pid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate = "20240115"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = series_no, instance
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (our own outputs left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and not (p.parent == root and p.name in OWN):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def shape(root: Path, skip: set[str] = frozenset()) -> collections.Counter:
    """Tree shape: (depth, subfolders, files) of every folder."""
    out = collections.Counter()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        files = [f for f in filenames if not (rel == Path(".") and f in OWN) and f not in skip]
        out[(len(rel.parts), len(dirnames), len(files))] += 1
    return out


def run_tool(*args: object) -> int:
    return rn.main([str(a) for a in args])


def small_export(root: Path) -> None:
    """Two patients, named folders, a study with two series, and a non-DICOM report."""
    st1, st2 = generate_uid(["st1"]), generate_uid(["st2"])
    for i in range(3):
        dicom(root / "SMITH^ANN 19700101" / "CT Chest" / "Series 2 lung" / f"img {i}.dcm",
              "SMITH^ANN", "MRN0001", st1, st1 + ".2", 2, i + 1)
        dicom(root / "SMITH^ANN 19700101" / "CT Chest" / "Series 1 scout" / f"Smith_{i}",
              "SMITH^ANN", "MRN0001", st1, st1 + ".1", 1, 3 - i)
    dicom(root / "Jones Bob" / "IM1", "JONES^BOB", "MRN0002", st2, st2 + ".1", 1, 1, "MR")
    (root / "Jones Bob" / "Report Jones.pdf").write_bytes(b"%PDF-1.4 Jones\n")


# ---- naming scheme (pure) -----------------------------------------------------------------

def test_naming_scheme_levels_and_order(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    plan = rn.make_plan(rn.scan(root, set(), progress=False), set(), str(tmp_path / "out"), False, "t0")
    mapping = dict(rn.key_mapping(plan))
    smith = mapping["SMITH^ANN 19700101"]
    assert re.fullmatch(r"P000[12]", smith)
    assert mapping["SMITH^ANN 19700101/CT Chest"] == f"{smith}/{smith}_ST01_CT"
    # series ranked by series number within the study, not by the old folder names
    assert mapping["SMITH^ANN 19700101/CT Chest/Series 1 scout"].endswith("/SE001_CT")
    assert mapping["SMITH^ANN 19700101/CT Chest/Series 2 lung"].endswith("/SE002_CT")
    # files ordered by instance number (Smith_2 is instance 1)
    assert mapping["SMITH^ANN 19700101/CT Chest/Series 1 scout/Smith_2"].endswith("/IM00001.dcm")
    assert mapping["SMITH^ANN 19700101/CT Chest/Series 1 scout/Smith_0"].endswith("/IM00003.dcm")
    assert mapping["Jones Bob/Report Jones.pdf"].endswith("/OTHER0001.pdf")  # still opens (issue 18.4)
    jones = mapping["Jones Bob"]
    assert {smith, jones} == {"P0001", "P0002"}
    rows = {r["folder"]: r for r in plan.index}
    series_row = rows[f"{smith}/{smith}_ST01_CT/SE002_CT"]
    assert (series_row["level"], series_row["series_number"], series_row["dicom_files"]) == ("series", "2", "3")
    assert rows[jones]["other_files"] == "1"


def test_single_patient_root_names_studies_and_series(tmp_path):
    """When the whole export is one patient's, its folders are named from the study level down."""
    root = tmp_path / "export"
    st = generate_uid(["one"])
    for s in (1, 2):
        dicom(root / f"Series {s} DOE" / "x.dcm", "DOE^JO", "ID9", st, f"{st}.{s}", s, 1)
    plan = rn.make_plan(rn.scan(root, set(), progress=False), set(), str(tmp_path / "o"), False, "t")
    assert sorted(new for _, new in rn.key_mapping(plan) if "/" not in new) == ["SE001_CT", "SE002_CT"]


def test_unique_names_ignore_case_and_reserved():
    names = rn._unique(["P0001", "p0001", "IM00001.dcm", "IM00001.dcm", "index"], {"INDEX"})
    assert len({n.casefold() for n in names}) == len(names)
    assert names[:4] == ["P0001", "p0001_2", "IM00001.dcm", "IM00001_2.dcm"]
    assert names[4] != "index"


def test_same_patient_in_two_top_folders_gets_suffix(tmp_path):
    root = tmp_path / "export"
    st = generate_uid(["s"])
    dicom(root / "DOE first" / "a", "DOE^J", "ID1", st, st + ".1", 1, 1)
    dicom(root / "DOE second" / "b", "DOE^J", "ID1", st, st + ".2", 2, 1)
    dicom(root / "OTHER guy" / "c", "ROE^R", "ID2", st + "9", st + "9.1", 1, 1)
    plan = rn.make_plan(rn.scan(root, set(), progress=False), set(), str(tmp_path / "o"), False, "t")
    mapping = dict(rn.key_mapping(plan))
    assert {mapping["DOE first"], mapping["DOE second"]} in ({"P0001", "P0001_2"}, {"P0002", "P0002_2"})


# ---- Windows rules (pure) -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["CON", "con.txt", "Nul", "COM1", "lpt9.dcm", "AUX ", "name.", "a:b", "a?b",
                                  "x" * 256, "tab\tname"])
def test_windows_rejects(name):
    assert rn.windows_name_problem(name)


@pytest.mark.parametrize("name", ["P0001", "P0001_ST01_CT", "SE001_CT", "IM00001.dcm", "OTHER0001", "CONSOLE",
                                  "COM10", "Müller"])
def test_windows_accepts(name):
    assert rn.windows_name_problem(name) is None


def test_windows_path_length_and_long_path_prefix():
    assert not rn.windows_path_too_long("C:\\export", ["P0001", "P0001_ST01_CT", "SE001_CT", "IM00001.dcm"])
    assert rn.windows_path_too_long("C:\\" + "d" * 200, ["e" * 30, "f" * 30])
    long = "C:\\" + "\\".join(["folder" * 5] * 10)
    assert jr.long_path(long, windows=True).startswith("\\\\?\\")
    assert jr.long_path("\\\\server\\share\\" + "x" * 250, windows=True).startswith("\\\\?\\UNC\\")
    assert jr.long_path("C:\\short", windows=True) == "C:\\short"
    assert jr.long_path("/" + "x" * 300, windows=False) == "/" + "x" * 300


def test_case_only_rename_goes_through_temporary_names(tmp_path):
    """im00001.dcm -> IM00001.dcm must work on case-insensitive file systems: routed via temp."""
    root = tmp_path / "export"
    st = generate_uid(["c"])
    dicom(root / "im00001.dcm", "A^B", "X1", st, st + ".1", 1, 1)
    dicom(root / "IM00002.dcm", "A^B", "X1", st, st + ".1", 1, 3)
    dicom(root / "zz", "A^B", "X1", st, st + ".1", 1, 2)  # becomes IM00002: collides with an old name
    plan = rn.make_plan(rn.scan(root, set(), progress=False), set(), str(tmp_path / "o"), False, "t")
    top = plan.groups[-1]
    assert top.routed and all(e.tmp for e in top.entries)
    assert not rn.plan_problems(plan, str(root))
    before = collections.Counter(snapshot(root).values())
    assert run_tool(root, "--yes") == 1  # headers look identified
    after = snapshot(root)
    assert sorted(after) == ["IM00001.dcm", "IM00002.dcm", "IM00003.dcm"]
    assert collections.Counter(after.values()) == before


# ---- the synthetic export end to end ------------------------------------------------------

def _assert_neutral(root: Path, secrets: set[str]) -> None:
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if len(rel.parts) == 1 and rel.name in OWN:
            continue
        assert NEUTRAL.match(p.name), p.name
        low = rel.as_posix().casefold()
        assert not [s for s in secrets if s.casefold() in low]


def test_synthetic_export(tmp_path, capsys):
    root = tmp_path / "export"
    synth = make_export(root, instances_per_series=2, image_size=16)
    secrets = synth.all_secrets()
    before = snapshot(root)
    before_shape = shape(root, skip={"DICOMDIR"})
    key = tmp_path / "hospital" / "key.json"
    rc = run_tool(root, "--yes", "--key", key)
    out = capsys.readouterr()
    assert rc == 1  # non-DICOM files and identified headers need review
    _assert_neutral(root, secrets)
    index = (root / "index.csv").read_text(encoding="utf-8")
    screen = out.out + out.err
    for text in (index, screen):
        assert not [s for s in secrets if s.casefold() in text.casefold()]
    assert "look identified" in screen and "not DICOM" in screen
    assert not (root / jr.JOURNAL_NAME).exists() and not (root / jr.PROGRESS_NAME).exists()
    # contents identical except DICOMDIR, which went to the hospital side
    dicomdir = [k for k in before if k.endswith("DICOMDIR")]
    moved = list((tmp_path / "export_HOSPITAL_ONLY").rglob("DICOMDIR"))
    assert len(dicomdir) == len(moved) == 1
    assert hashlib.sha256(moved[0].read_bytes()).hexdigest() == before[dicomdir[0]]
    after = snapshot(root)
    assert collections.Counter(after.values()) + collections.Counter([before[dicomdir[0]]]) == \
        collections.Counter(before.values())
    # tree shape kept (the DICOMDIR left its folder)
    assert shape(root) == before_shape
    # index: one row per folder, our header, warnings per folder
    rows = list(csv.DictReader(index.splitlines()))
    assert len(rows) == sum(shape(root).values())
    assert any(r["identity_warnings"] for r in rows)
    assert any("DICOMDIR" in r["note"] for r in rows)
    # the key is outside the tree and maps every old name
    mapping = dict(json.loads(key.read_text(encoding="utf-8"))["mapping"])
    assert set(before) - set(dicomdir) <= set(mapping)
    # running again on the renamed tree changes nothing
    assert run_tool(root, "--yes") == 1
    assert snapshot(root) == after
    again = list(csv.DictReader((root / "index.csv").read_text(encoding="utf-8").splitlines()))
    assert [{**r, "note": ""} for r in again] == [{**r, "note": ""} for r in rows]  # DICOMDIR note is gone


def test_key_inside_tree_is_refused(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    before = snapshot(root)
    assert run_tool(root, "--yes", "--key", root / "sub" / "key.json") == 2
    assert snapshot(root) == before


def test_dry_run_changes_nothing(tmp_path, capsys):
    root = tmp_path / "export"
    small_export(root)
    before = snapshot(root)
    assert run_tool(root, "--dry-run") == 1
    assert snapshot(root) == before and not (root / "index.csv").exists()
    assert "P0001" in capsys.readouterr().out


def test_deidentified_headers_give_exit_0(tmp_path, capsys):
    root = tmp_path / "export"
    st = generate_uid(["d"])
    for i in range(2):
        dicom(root / "SMITH 1970" / "CT" / f"x{i}", "SUBJ_ABCDEFGH23", "SUBJ_ABCDEFGH23", st, st + ".1", 1, i + 1,
              extra={"PatientIdentityRemoved": "YES"})
    assert run_tool(root, "--yes") == 0
    assert "OK" in capsys.readouterr().out
    assert sorted(snapshot(root)) == ["P0001/P0001_ST01_CT/IM00001.dcm",
                                           "P0001/P0001_ST01_CT/IM00002.dcm"]


def test_move_other_out(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    assert run_tool(root, "--yes", "--move-other-out", "--hospital-dir", tmp_path / "hosp") == 1
    assert not [p for p in root.rglob("OTHER*")]
    moved = list((tmp_path / "hosp").rglob("OTHER*"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"%PDF-1.4 Jones\n"


def test_symlink_not_followed_out_of_tree(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    outside = tmp_path / "outside_DOE"
    outside.mkdir()
    dicom(outside / "secret.dcm", "DOE^X", "ID5", "1.2.3", "1.2.3.4", 1, 1)
    (root / "link to DOE").symlink_to(outside, target_is_directory=True)
    run_tool(root, "--yes")
    assert [p.name for p in outside.iterdir()] == ["secret.dcm"]
    links = [p for p in root.iterdir() if p.is_symlink()]
    assert len(links) == 1 and links[0].name.startswith("OTHER")


# ---- journal: resume, undo, failures ------------------------------------------------------

class _Crash(BaseException):
    """Stands in for a kill: nothing after the Nth rename runs."""


def _crash_after(monkeypatch, n: int) -> None:
    real = jr.Replay._rename
    count = {"n": 0}

    def rename(self, src, dst):
        if count["n"] >= n:
            raise _Crash()
        count["n"] += 1
        real(self, src, dst)

    monkeypatch.setattr(jr.Replay, "_rename", rename)


def _collision_export(root: Path) -> None:
    """Old names that are someone else's new names, so groups route through temp names."""
    small_export(root)
    st = generate_uid(["swap"])
    for i, name in enumerate(["IM00002.dcm", "IM00001.dcm", "P0001"]):
        dicom(root / "swap DOE" / name, "ROE^R", "MRN0003", st, st + ".1", 1, i + 1)


def test_resume_after_crash_at_every_point(tmp_path, monkeypatch):
    reference = tmp_path / "ref"
    _collision_export(reference)
    base = tmp_path / "base"
    shutil.copytree(reference, base, symlinks=True)
    run_tool(reference, "--yes")
    expected = snapshot(reference)
    expected_index = (reference / "index.csv").read_bytes()
    total = sum(1 for _ in base.rglob("*")) * 2
    for n in range(0, total, 3):
        work = tmp_path / f"w{n}"
        shutil.copytree(base, work, symlinks=True)
        originals = collections.Counter(snapshot(work).values())
        with monkeypatch.context() as m:
            _crash_after(m, n)
            try:
                run_tool(work, "--yes")
            except _Crash:
                assert (work / jr.JOURNAL_NAME).exists()
                assert collections.Counter(snapshot(work).values()) == originals  # nothing lost or doubled
        run_tool(work, "--yes")
        assert snapshot(work) == expected, n
        assert (work / "index.csv").read_bytes() == expected_index
        assert not (work / jr.JOURNAL_NAME).exists()
        shutil.rmtree(work)


def test_undo_after_crash_restores_original(tmp_path, monkeypatch):
    base = tmp_path / "base"
    _collision_export(base)
    original = snapshot(base)
    for n in (1, 5, 9, 14):
        work = tmp_path / f"w{n}"
        shutil.copytree(base, work)
        with monkeypatch.context() as m:
            _crash_after(m, n)
            with pytest.raises(_Crash):
                run_tool(work, "--yes")
        with monkeypatch.context() as m:  # and the undo itself is killed once (when it gets that far)
            _crash_after(m, n // 2)
            try:
                run_tool(work, "--undo", "--yes")
            except _Crash:
                assert (work / jr.JOURNAL_NAME).exists()
        assert run_tool(work, "--undo", "--yes") == 0
        assert snapshot(work) == original
        assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in base.iterdir())


def test_undo_finished_run_with_key(tmp_path):
    root = tmp_path / "export"
    synth = make_export(root, instances_per_series=1, image_size=8)
    del synth
    original = snapshot(root)
    key = tmp_path / "key.json"
    run_tool(root, "--yes", "--key", key)
    assert snapshot(root) != original
    assert run_tool(root, "--undo") == 2  # without the key there is nothing to undo
    assert run_tool(root, "--undo", "--yes", "--key", key) == 0
    assert snapshot(root) == original
    assert not (root / "index.csv").exists()


def test_locked_file_clear_error_then_second_run_finishes(tmp_path, monkeypatch, capsys):
    root = tmp_path / "export"
    small_export(root)
    original = collections.Counter(snapshot(root).values())
    real = os.rename

    def rename(src, dst, *a, **k):
        if os.fspath(src).endswith("img 1.dcm"):
            raise PermissionError(13, "The process cannot access the file", os.fspath(src))
        return real(src, dst, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(os, "rename", rename)
        assert run_tool(root, "--yes") == 1
    out = capsys.readouterr()
    problems = [line for line in (out.out + out.err).splitlines() if "could not rename" in line]
    assert len(problems) == 1 and "access denied" in problems[0]
    assert "img" not in problems[0] and "SMITH" not in problems[0]
    assert "NOT finished" in out.out
    assert collections.Counter(snapshot(root).values()) == original
    assert (root / jr.JOURNAL_NAME).exists()
    # the locked file's folders kept their old names (renamed only once the file is done) ...
    assert (root / "SMITH^ANN 19700101").is_dir()
    # ... and the next run finishes the job
    assert run_tool(root, "--yes") == 1
    _assert_neutral(root, {"SMITH", "Jones", "img", "Series", "Chest"})
    assert collections.Counter(snapshot(root).values()) == original
    assert not (root / jr.JOURNAL_NAME).exists()


def test_torn_progress_line_is_ignored(tmp_path):
    j = jr.Journal(tmp_path)
    j.write_plan({"groups": []})
    j.mark("F 0")
    with open(j.progress_path, "a") as fh:
        fh.write("F 1")  # a kill in the middle of a line
    assert j.progress() == {"F 0"}
    j.remove()
    assert list(tmp_path.iterdir()) == []


# ---- the real program in a subprocess -----------------------------------------------------

def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop(jr.KILL_HOOK_ENV, None)
    env.update(extra)
    return env


def _big_export(root: Path, folders: int = 40, per_folder: int = 50) -> None:
    """About 2000 small files: patient-named folders, some DICOM, the rest tiny non-DICOM files."""
    for f in range(folders):
        patient = f"PATIENT{f % 7}^NAME"
        st = generate_uid(["big", str(f % 7)])
        folder = root / f"{patient} {f:02d}" / f"STUDY {f}"
        for i in range(per_folder):
            if i < 5:
                dicom(folder / f"IM{i:04d}", patient, f"MRN{f % 7:04d}", st, f"{st}.{f}", f, i + 1)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"note {patient} {i}.txt").write_bytes(f"{f}-{i}".encode())
    _collision_export(root / "collide")


def test_sigkill_at_many_points_then_rerun(tmp_path):
    base = tmp_path / "base"
    _big_export(base)
    reference = tmp_path / "ref"
    shutil.copytree(base, reference)
    originals = collections.Counter(snapshot(base).values())
    args = [sys.executable, str(SCRIPT)]
    done = subprocess.run([*args, str(reference), "--yes"], env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr
    expected = snapshot(reference)
    # one tree, killed again and again at different points of the plan, then finished
    work = tmp_path / "work"
    shutil.copytree(base, work)
    kills = 0
    for n in (1, 180, 900, 1, 400, 1100):
        proc = subprocess.run([*args, str(work), "--yes"], env=_env(**{jr.KILL_HOOK_ENV: str(n)}),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            assert collections.Counter(snapshot(work).values()) == originals
    assert kills >= 4
    final = subprocess.run([*args, str(work), "--yes"], env=_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
    assert final.returncode == 1, final.stderr
    assert snapshot(work) == expected
    assert (work / "index.csv").read_bytes() == (reference / "index.csv").read_bytes()
    assert not (work / jr.JOURNAL_NAME).exists()
    # killed then rolled back: the original tree, exactly
    undo = tmp_path / "undo"
    shutil.copytree(base, undo)
    proc = subprocess.run([*args, str(undo), "--yes"], env=_env(**{jr.KILL_HOOK_ENV: "700"}),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    proc = subprocess.run([*args, str(undo), "--undo"], env=_env(**{jr.KILL_HOOK_ENV: "300"}),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    proc = subprocess.run([*args, str(undo), "--undo"], env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert snapshot(undo) == snapshot(base)


def test_no_arguments_renames_the_folder_the_program_is_in(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    shutil.copy(SCRIPT, root / "rename_folders.py")
    proc = subprocess.run([sys.executable, str(root / "rename_folders.py")], env=_env(), cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert (root / "rename_folders.py").is_file() and (root / "index.csv").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["P0001", "P0002", "index.csv", "rename_folders.py"]


def test_version_and_usage_errors(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--version"], env=_env(), capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0 and b"rename_folders" in proc.stdout
    assert rn.main([str(tmp_path / "missing")]) == 2
    assert rn.main(["--no-such-option"]) == 2


# ---- special files, secrets, undo data, scale (issues 18, 20) --------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("dry_run", [True, False])
def test_fifo_is_never_opened_and_is_listed(tmp_path, dry_run):
    """A FIFO named like a DICOM file would block a reader for ever: listed, never opened."""
    root = tmp_path / "export"
    small_export(root)
    os.mkfifo(root / "Jones Bob" / "IM0001.dcm")
    args = [sys.executable, str(SCRIPT), str(root), "--yes", *(["--dry-run"] if dry_run else [])]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not a regular file" in proc.stdout
    fifos = [p for p in root.rglob("*") if stat.S_ISFIFO(p.lstat().st_mode)]
    assert len(fifos) == 1 and (fifos[0].name == "IM0001.dcm") == dry_run


def test_undo_data_is_owner_only_outside_the_tree_and_undoes_a_finished_run(tmp_path):
    root = tmp_path / "export"
    small_export(root)
    before = snapshot(root)
    key = tmp_path / "keys" / "rename_key.json"
    old_umask = os.umask(0o022)
    try:
        assert run_tool(root, "--yes") == 1
        assert run_tool(root.parent / "other_not_there", "--yes") == 2
    finally:
        os.umask(old_umask)
    undo = tmp_path / "export_HOSPITAL_ONLY" / "rename_folders_undo.json"
    assert undo.is_file() and stat.S_IMODE(undo.stat().st_mode) == 0o600
    assert "Smith_0" in undo.read_text(encoding="utf-8")
    assert snapshot(root) != before
    assert run_tool(root, "--undo", "--yes") == 0  # no --key: the hospital-side undo data is found
    assert snapshot(root) == before and not undo.exists()
    assert run_tool(root, "--yes", "--key", key) == 1
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and not (tmp_path / "export_HOSPITAL_ONLY" /
                                                             "rename_folders_undo.json").exists()


def test_plan_is_the_same_bytes_for_the_same_tree(tmp_path):
    a, b = tmp_path / "a" / "export", tmp_path / "b" / "export"
    small_export(a)
    small_export(b)
    plans = [json.dumps(rn.make_plan(rn.scan(r, set(), progress=False), set(), "H", False,
                                     rn.plan_token(rn.scan(r, set(), progress=False))).to_json()) for r in (a, b)]
    assert plans[0] == plans[1]


def test_plan_numbering_of_many_series_is_complete(tmp_path):
    """40,000 series in 40,000 folders: every series numbered once within its study (the
    numbering is linear now; its speed is measured in benchmarks, not asserted here)."""
    top = rn.Node("", "dir")
    n = 4000
    studies = [rn.Node(f"study {k}", "dir") for k in range(40)]
    top.children += studies
    for i in range(n):
        folder = rn.Node(f"S{i}", "dir")
        facts = rn.Facts(patient="p", study=f"st{i % 40}", series=f"se{i}", study_order=("20200101", "", f"st{i % 40}"),
                         series_number=i, instance_number=1, instance_key=f"k{i}", modality="CT", warnings=())
        folder.children.append(rn.Node("x.dcm", "dicom", facts))
        studies[i % 40].children.append(folder)
    plan = rn.make_plan(top, set(), "H", False, "t")
    assert len([r for r in plan.index if r["level"] == "study"]) == 40
    series_rows = [r for r in plan.index if r["level"] == "series"]
    per_study = collections.Counter(r["study"] for r in series_rows)
    assert sorted(per_study.values()) == [n // 40] * 40
    assert {r["series"] for r in series_rows} == {f"SE{k:03d}" for k in range(1, n // 40 + 1)}


def test_top_of_a_drive_keeps_its_undo_data_in_the_users_folder(tmp_path, monkeypatch):
    """E:\\ has nothing beside it: the hospital side is a folder of the user's own (Windows keeps
    it on the user's drive, so it is outside the one being renamed)."""
    from deidkit.cli import rename_folders as cli

    root = Path(tmp_path.anchor)  # the top of the drive: its parent is itself
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "config"))
    where = cli._default_hospital_dir(root)
    assert where.is_relative_to(tmp_path / "config") and where != cli._default_hospital_dir(tmp_path)
    assert cli._default_hospital_dir(tmp_path / "export") == tmp_path / "export_HOSPITAL_ONLY"
