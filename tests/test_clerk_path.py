"""The clerk's whole path, as README.txt and the screens tell it (issue 18).

A clerk copies a program into a folder and double-clicks it: here the program (the script with
its deidkit package, or the executable when one is built; DEIDKIT_REQUIRE_EXECUTABLES=1 makes a
missing build a failure) is copied into the folder and started with no arguments under a
pseudo-terminal, answering the questions as a person would and reading the screens.
"""
from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_in_terminal, tree
from deidkit import cli_deid, console, contract
from deidkit import rename as rn
from deidkit.export_model import DISK_FULL, TOO_LARGE_FOR_DISK, WORKER_DIED, os_error_text
from deidkit.synth import make_export

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180


# ---- running a program as a person does -------------------------------------------------------

def install(kind: str, name: str, folder: Path) -> list[str]:
    """Copy a program into folder as a clerk would; the command that double-clicks it."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "script":
        shutil.copy2(ROOT / f"{name}.py", folder / f"{name}.py")
        if not (folder / "deidkit").exists():
            shutil.copytree(ROOT / "deidkit", folder / "deidkit", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copytree(ROOT / "guidelines", folder / "guidelines")
        return [sys.executable, str(folder / f"{name}.py")]
    from tests.test_executables import _executable, _install

    exe = _install(_executable(name), folder)
    return [str(exe)]


def home_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "APPDATA": str(home), "TERM": "dumb"}
    if "PATH" in os.environ:
        env["PATH"] = os.environ["PATH"]
    return env


def in_terminal(cmd: list[str], cwd: Path, env: dict[str, str], answers: dict[bytes, bytes]) -> tuple[int, str]:
    """Run cmd under a pseudo-terminal; answer each prompt in `answers` (prompt -> keys) once per
    time it appears, press Enter at "Press Enter". Returns (exit status, everything shown)."""
    status, seen = run_in_terminal(cmd, cwd, env, answers, TIMEOUT, cmd[-1])
    return os.waitstatus_to_exitcode(status), seen.decode("utf-8", errors="replace")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT, encoding="utf-8", errors="replace")


def verify_handles_kit_files() -> bool:
    """The verify side of issue 18.1 (kit files are never findings) belongs to the verify
    helper's branch; until it is merged the PASS with kit files present is an expected failure."""
    import inspect

    import deidkit.verify as verify
    try:
        return "kit_file_kind" in inspect.getsource(verify)
    except (OSError, TypeError):
        return False


pty_only = pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX")
KINDS = ["script", "exe"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "exe":
        exe = ROOT / "dist" / ("deid_tool.exe" if os.name == "nt" else "deid_tool")
        if not exe.exists() and not os.environ.get("DEIDKIT_REQUIRE_EXECUTABLES"):
            pytest.skip("executables not built (tools/build_executables.sh)")
    return request.param


# ---- the five steps ----------------------------------------------------------------------------

@pty_only
def test_five_steps_deid_tool_path(kind: str, tmp_path: Path) -> None:
    """Export -> double-click deid_tool in it -> (rename_folders on the copy: nothing to do) ->
    review page -> verify PASS. Each screen says what the next one expects."""
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=32)
    env = home_env(tmp_path)
    code, screen = in_terminal(install(kind, "deid_tool", export), export, env, {b"[Y/n]": b"y\n"})
    dest, hospital = tmp_path / "DEID_OUTPUT", tmp_path / "DEID_OUTPUT_HOSPITAL_ONLY"
    assert code == 1, screen[-3000:]  # the synthetic export holds files that must be kept back
    assert "ATTENTION" in screen and "safe to send as it is" in screen, screen[-3000:]
    assert "rename_folders is not" in screen and "--verify" in screen, "the next step is not the README's"
    for jargon in ("PS3.15", "retain_safe_private", "Table E.1-1", "bogus length", "SOP class"):
        assert jargon not in screen, f"standards jargon on the clerk's screen: {jargon}"
    assert (hospital / contract.CROSSWALK_NAME).is_file() and (hospital / "review.html").is_file()
    assert not any(p.name in (contract.CROSSWALK_NAME, contract.HELD_BACK_NAME) for p in dest.rglob("*"))
    # step 3 done anyway, as a clerk who reads "run rename_folders" elsewhere would: nothing happens
    before = tree(dest)
    code, screen = in_terminal(install(kind, "rename_folders", dest), dest, env, {b"[Y/n]": b"y\n", b"[y/N]": b"y\n"})
    assert code == 0, screen[-3000:]
    assert "Nothing to do" in screen and "take the program" in screen, screen[-3000:]
    after = tree(dest)
    assert {k: v for k, v in after.items() if k in before} == before, "rename_folders changed deid_tool's copy"
    for name in [n for n in after if n not in before]:  # only the program the clerk put there
        assert name.startswith(("rename_folders", "deidkit/", "guidelines/", "_internal/")), name
    # step 5: the check README asks for, with the program still in the folder
    proc = run([*install(kind, "deid_tool", tmp_path / "checker"), "--verify", str(dest)], tmp_path, env)
    if verify_handles_kit_files() or proc.returncode == 0:
        assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    else:
        pytest.xfail("verify does not yet ignore the kit's own files (verify helper's part of issue 18.1)")


@pty_only
def test_five_steps_other_anonymizer_path(kind: str, tmp_path: Path) -> None:
    """Another anonymizer cleaned the headers but kept patient-named folders: rename_folders in
    that folder, double-clicked, gives neutral names; the kit files are not findings."""
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=32, include_problems=False)
    cleaned = tmp_path / "cleaned"
    assert run([sys.executable, str(ROOT / "deid_tool.py"), str(export), "--out", str(cleaned), "--yes",
                "--key", str(tmp_path / "k.txt")], tmp_path).returncode in (0, 1)
    # what another anonymizer delivers: clean headers, names that name the patient, no manifest
    other = tmp_path / "OTHER_ANON"
    for i, path in enumerate(sorted(p for p in cleaned.rglob("*.dcm"))):
        target = other / f"MUELLER^HANS {i % 2}" / f"CT {path.parent.name[-4:]}" / f"Mueller_{i}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = home_env(tmp_path)
    code, screen = in_terminal(install(kind, "rename_folders", other), other, env, {b"[Y/n]": b"y\n"})
    assert code == 0, screen[-3000:]
    assert "Renaming done" in screen and "rename_folders --undo" in screen, screen[-3000:]
    assert not [p for p in other.rglob("*") if "ueller" in p.name.lower()]
    undo = tmp_path / "OTHER_ANON_HOSPITAL_ONLY" / contract.RENAME_UNDO_NAME
    assert undo.is_file() and stat.S_IMODE(undo.stat().st_mode) == 0o600
    proc = run([*install(kind, "deid_tool", tmp_path / "checker"), "--verify", str(other)], tmp_path, env)
    if verify_handles_kit_files() or proc.returncode == 0:
        assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    else:
        pytest.xfail("verify does not yet ignore the kit's own files (verify helper's part of issue 18.1)")


@pty_only
def test_rename_folders_on_identified_export_says_so_first_and_defaults_to_no(tmp_path: Path) -> None:
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    before = tree(export)
    code, screen = in_terminal(install("script", "rename_folders", export), export, home_env(tmp_path),
                               {b"[y/N]": b"\n"})  # the clerk just presses Enter
    assert code == 1, screen[-3000:]
    warned, asked = screen.find("NOT DE-IDENTIFIED YET"), screen.find("[y/N]")
    assert 0 <= warned < asked, screen[-3000:]
    assert "run deid_tool" in screen.lower()
    assert {k: v for k, v in tree(export).items() if k in before} == before, "renamed without a yes"


# ---- nothing to do is not success --------------------------------------------------------------

@pytest.mark.parametrize("content", ["nothing", "only_pdf"])
def test_folder_without_dicom_exits_2_and_writes_nothing(content: str, tmp_path: Path, capsys) -> None:
    export = tmp_path / "EXPORT"
    export.mkdir()
    if content == "only_pdf":
        (export / "report.pdf").write_bytes(b"%PDF-1.4\n")
        (export / "sub").mkdir()
        (export / "sub" / "notes.txt").write_text("hello", encoding="utf-8")
    key = tmp_path / "key" / "site.txt"
    code = cli_deid.main([str(export), "--out", str(tmp_path / "OUT"), "--yes", "--key", str(key)])
    err = capsys.readouterr().err
    assert code == 2
    assert "no DICOM files were found" in err and str(export) in err and "What to do" in err
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "OUT_HOSPITAL_ONLY").exists()
    assert not key.exists(), "a key was made for a run that could not start"


def test_fifo_in_export_does_not_block_the_no_dicom_check(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    export = tmp_path / "EXPORT"
    export.mkdir()
    os.mkfifo(export / "IM0001.dcm")
    proc = run([sys.executable, str(ROOT / "deid_tool.py"), str(export), "--out", str(tmp_path / "OUT"),
                "--yes", "--key", str(tmp_path / "k.txt")], tmp_path)
    assert proc.returncode == 2 and "no DICOM files" in proc.stderr


# ---- the site key is made only once the person says Start --------------------------------------

def test_key_not_created_when_the_answer_is_no(tmp_path: Path, monkeypatch, capsys) -> None:
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    key = tmp_path / "keys" / "site.txt"
    monkeypatch.setattr(console, "is_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    code = cli_deid.main([str(export), "--out", str(tmp_path / "OUT"), "--key", str(key)])
    assert code == 2 and "Nothing was done" in capsys.readouterr().out
    assert not key.exists() and not key.with_name(key.name + ".tmp").exists()
    assert not (tmp_path / "OUT").exists()
    monkeypatch.setattr("builtins.input", lambda prompt="": "")  # Enter: yes
    assert cli_deid.main([str(export), "--out", str(tmp_path / "OUT"), "--key", str(key)]) in (0, 1)
    assert key.is_file()


# ---- crosswalk and lookup: hospital side only --------------------------------------------------

@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("cw")
    export = base / "EXPORT"
    made = make_export(export, instances_per_series=1, image_size=16)
    (export / "MÜLLER Bericht.pdf").write_bytes(b"%PDF-1.4\n")
    key = base / "site.txt"
    code = cli_deid.main([str(export), "--out", str(base / "OUT"), "--yes", "--key", str(key)])
    assert code in (0, 1)
    return {"base": base, "export": export, "out": base / "OUT", "hospital": base / "OUT_HOSPITAL_ONLY",
            "key": key, "made": made}


def _crosswalk(hospital: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((hospital / contract.CROSSWALK_NAME).read_text(encoding="utf-8-sig"))))


def test_crosswalk_names_every_pseudonym_and_stays_at_the_hospital(delivered: dict) -> None:
    from pydicom import dcmread

    rows = _crosswalk(delivered["hospital"])
    out = delivered["out"]
    written = {(p.relative_to(out).parts[0], p.relative_to(out).parts[1]) for p in out.rglob("*.dcm")}
    assert {(r["pseudonym"], r["study_folder"]) for r in rows} == written
    for r in rows:
        some = next((out / r["pseudonym"] / r["study_folder"]).rglob("*.dcm"))
        ds = dcmread(some, stop_before_pixels=True)
        assert str(ds.PatientID) == r["pseudonym"] and str(ds.StudyInstanceUID) == r["study_instance_uid_new"]
        assert r["patient_id"] and r["patient_id"] != r["pseudonym"]
    # nothing of it in what is sent
    for path in out.rglob("*"):
        assert path.name != contract.CROSSWALK_NAME
        if path.is_file():
            data = path.read_bytes()
            for r in rows:
                assert r["patient_id"].encode() not in data, f"{path.name} holds an original Patient ID"


@pytest.mark.parametrize("source", ["crosswalk", "key"])
def test_lookup_answers_on_the_hospital_side(source: str, delivered: dict, tmp_path: Path) -> None:
    rows = _crosswalk(delivered["hospital"])
    row = rows[0]
    out = delivered["out"] if source == "crosswalk" else tmp_path / "never_written"
    before = tree(delivered["out"])
    for query in (row["pseudonym"], row["study_folder"]):
        proc = run([sys.executable, str(ROOT / "deid_tool.py"), "--lookup", query, str(delivered["export"]),
                    "--out", str(out), "--key", str(delivered["key"])], tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert row["patient_id"] in proc.stdout and "HOSPITAL SIDE ONLY" in proc.stdout
        assert (source == "crosswalk") == (contract.CROSSWALK_NAME in proc.stdout)
    assert tree(delivered["out"]) == before, "a lookup changed the delivery"
    assert not (tmp_path / "never_written").exists()
    proc = run([sys.executable, str(ROOT / "deid_tool.py"), "--lookup", "SUBJ_AAAAAAAAAA", str(delivered["export"]),
                "--out", str(out), "--key", str(delivered["key"])], tmp_path)
    assert proc.returncode == 1 and "not found" in proc.stdout


def test_lookup_never_makes_a_key(delivered: dict, tmp_path: Path) -> None:
    missing = tmp_path / "no_key.txt"
    proc = run([sys.executable, str(ROOT / "deid_tool.py"), "--lookup", "SUBJ_AAAAAAAAAA", str(delivered["export"]),
                "--out", str(tmp_path / "X"), "--key", str(missing)], tmp_path)
    assert proc.returncode == 2 and not missing.exists()


# ---- what Excel on Windows opens ---------------------------------------------------------------

def test_held_back_and_index_have_a_byte_order_mark(delivered: dict, tmp_path: Path) -> None:
    held = (delivered["hospital"] / contract.HELD_BACK_NAME).read_bytes()
    assert held.startswith(b"\xef\xbb\xbf")
    assert "MÜLLER Bericht.pdf" in held.decode("utf-8-sig")
    assert (delivered["hospital"] / contract.CROSSWALK_NAME).read_bytes().startswith(b"\xef\xbb\xbf")
    root = tmp_path / "tree"
    shutil.copytree(delivered["export"], root)
    assert rn.main([str(root), "--yes", "--key", str(tmp_path / "undo.json")]) in (0, 1)
    index = (root / contract.INDEX_NAME).read_bytes()
    assert index.startswith(b"\xef\xbb\xbf") and rn.is_our_index(root / contract.INDEX_NAME)
    assert contract.kit_file_kind(root / contract.INDEX_NAME, contract.INDEX_NAME) == "index"


# ---- the progress bar --------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screen_line(written: str) -> str:
    """What a terminal shows after carriage returns overwrite the line."""
    line: list[str] = []
    col = 0
    for ch in written.split("\n")[0]:
        if ch == "\r":
            col = 0
            continue
        if col < len(line):
            line[col] = ch
        else:
            line.append(ch)
        col += 1
    return "".join(line)


def test_progress_bar_leaves_nothing_behind() -> None:
    term = _Terminal()
    bar = console.Progress(41, "De-identifying", stream=term)
    bar.started -= 1000.0  # slow so far: a long "...m..s left" is drawn first
    bar._draw(bar.started + 1000.0)
    bar.advance(41)
    bar.close()
    shown = _screen_line(term.getvalue()).rstrip()
    assert shown.endswith("41/41 done"), repr(shown)


# ---- the contract the verify helper recognises kit files by -----------------------------------

def test_kit_files_are_recognised_by_name_and_content(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "rename_folders.py", tmp_path / "rename_folders.py")
    assert contract.kit_file_kind(tmp_path / "rename_folders.py", "rename_folders.py") == "program"
    (tmp_path / "deid_tool.py").write_text("print('MUELLER^HANS')\n", encoding="utf-8")
    assert contract.kit_file_kind(tmp_path / "deid_tool.py", "deid_tool.py") is None  # name alone is not enough
    (tmp_path / "index.csv").write_text("name,birth\nMUELLER,1970\n", encoding="utf-8")
    assert contract.kit_file_kind(tmp_path / "index.csv", "index.csv") is None
    (tmp_path / "rename_folders").write_bytes(b"\x7fELF" + b"\0" * 100)
    assert contract.kit_file_kind(tmp_path / "rename_folders", "rename_folders") is None
    assert contract.kit_file_kind(tmp_path / "rename_folders.py", "sub/rename_folders.py") is None
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "deid_manifest.csv")
        assert contract.kit_file_kind(tmp_path / "deid_manifest.csv", "deid_manifest.csv") is None
    exe = ROOT / "dist" / "rename_folders"
    if exe.is_file():
        assert contract.kit_file_kind(exe, exe.name) == "program"


def test_held_reason_catalogue_groups_what_the_engine_writes() -> None:
    G = contract.Group
    cases = {
        "structured report with free text": G.REPORTS_STAY,
        "encapsulated document (PDF/CDA): free text cannot be checked": G.REPORTS_STAY,
        "burned-in text risk (SOP class Ultrasound): text covers 40% of frame 1": G.REVIEW_IMAGES,
        "truncated or bogus length: a value runs past the end of the file": G.EXPORT_AGAIN,
        "empty file (0 bytes)": G.EXPORT_AGAIN,
        "not a DICOM file": G.EXPORT_AGAIN,
        "not DICOM (not copied)": G.NOTHING,
        "an identifier of the patient is still in the written header": G.ASK,
        "link to something outside the export (not followed, not copied)": G.CHECK_EXPORT,
        DISK_FULL: G.RUN_AGAIN,
        TOO_LARGE_FOR_DISK: G.RUN_AGAIN,
        WORKER_DIED: G.RUN_AGAIN,
        os_error_text(OSError(errno.ENAMETOOLONG, "File name too long")): G.CHECK_EXPORT,
        os_error_text(PermissionError(errno.EACCES, "Permission denied")): G.CHECK_EXPORT,
    }
    for text, group in cases.items():
        assert contract.classify_reason(text).group is group, text
    ids = [r.id for r in contract.HELD_REASONS]
    assert len(ids) == len(set(ids)) and all(r.text and r.group in contract.GROUP_ADVICE for r in contract.HELD_REASONS)


def test_readme_names_every_group_of_the_held_back_catalogue() -> None:
    """The README tells a clerk the same groups the ATTENTION screen shows."""
    readme = " ".join((ROOT / "README.txt").read_text(encoding="utf-8").split())
    for group in contract.Group:
        if group is not contract.Group.NOTHING:
            assert group.value in readme, f"README.txt does not name the group {group.value!r}"
    assert "HELD_REASONS" in readme


@pty_only
def test_double_click_in_a_folder_without_dicom(kind: str, tmp_path: Path) -> None:
    """Double-clicked where there is nothing to de-identify: a plain message, exit 2, no key,
    no output folder, and the window waits so the message can be read."""
    folder = tmp_path / "Downloads"
    folder.mkdir()
    (folder / "letter.pdf").write_bytes(b"%PDF-1.4\n")
    env = home_env(tmp_path)
    code, screen = in_terminal(install(kind, "deid_tool", folder), folder, env, {b"[Y/n]": b"y\n"})
    assert code == 2, screen[-3000:]
    assert "no DICOM files were found" in screen and str(folder) in screen and "Press Enter" in screen
    assert "[Y/n]" not in screen, "it asked to start a run that has nothing to do"
    assert not (tmp_path / "DEID_OUTPUT").exists() and not list((tmp_path / "home").rglob("*key*"))


# ---- breaker: defects found by a new user -------------------------------------------------------
def test_report_held_for_text_review_is_a_report_not_a_question_for_the_research_team() -> None:
    """The engine's "[text-review]" reason (a cleaned SR that may still name someone) was
    unknown to the catalogue: the screen said "held back for another reason" and told the
    clerk to ask the research team about it. It is a report: it stays at the hospital."""
    reason = "free text needs review [text-review]: cleaned, but a word may still name someone"
    entry = contract.classify_reason(reason)
    assert entry is not contract.UNKNOWN_REASON and entry.group is contract.Group.REPORTS_STAY


def test_verdict_names_the_real_reference_to_give_the_research_team(tmp_path: Path) -> None:
    """The ASK group used to show the example reference F000123 instead of the held file's."""
    from types import SimpleNamespace

    from deidkit.cli.deid_tool import verdict_lines

    held = [SimpleNamespace(ref=f"F{n:06d}", reason="an identifier of the patient is still in the written header")
            for n in (42, 7)]
    summary = SimpleNamespace(needs_review=held, count=lambda status: 0)
    config = SimpleNamespace(dest=tmp_path / "DEID_OUTPUT")
    lines, title = verdict_lines(config, summary, tmp_path / "held_back.csv", None)
    text = "\n".join(lines)
    assert "F000007, F000042" in text and "F000123" not in text, text


def test_verdict_after_a_full_disk_says_run_again_not_upload(tmp_path: Path) -> None:
    """Files not done because the output disk filled up: the next step is to run again (the copy
    is incomplete), not to upload; the group shows how many."""
    from types import SimpleNamespace

    from deidkit.cli.deid_tool import verdict_lines

    held = [SimpleNamespace(ref=f"F{n:06d}", reason=DISK_FULL) for n in range(3)]
    summary = SimpleNamespace(needs_review=held, count=lambda status: 0)
    config = SimpleNamespace(dest=tmp_path / "DEID_OUTPUT")
    lines, title = verdict_lines(config, summary, tmp_path / "held_back.csv", None)
    text = "\n".join(lines)
    assert "run again" in title and "Next: upload" not in text, text
    assert contract.GROUP_ADVICE[contract.Group.RUN_AGAIN] in text and "run the same command" in text
    assert max(len(line) for line in lines if str(tmp_path) not in line) <= 100  # fits the framed screen


def test_write_failure_names_the_place_and_the_right_advice(tmp_path: Path, capsys) -> None:
    """A read-only output place said only "cannot write (Read-only file system)" and advised
    freeing space."""
    import errno

    from deidkit.cli.deid_tool import _write_failed

    target = tmp_path / "DEID_OUTPUT" / "x.dcm"
    assert _write_failed(OSError(errno.EROFS, "Read-only file system", str(target))) == 1
    err = capsys.readouterr()
    screen = err.out + err.err
    assert str(target.parent) in screen and "free space" not in screen, screen
    assert _write_failed(OSError(errno.ENOSPC, "No space left on device", str(target))) == 1
    err = capsys.readouterr()
    assert "disk is full" in err.out + err.err


def test_readme_says_clean_structured_content_runs_as_settings_ini_says() -> None:
    """README listed Clean Structured Content under "off" while settings.ini turns it on."""
    import configparser

    ini = configparser.ConfigParser()
    ini.read(ROOT / "guidelines" / "settings.ini", encoding="utf-8")
    on = ini.getboolean("profile", "clean_structured_content")
    readme = " ".join((ROOT / "README.txt").read_text(encoding="utf-8").split())
    off_part = readme.split(" off: ", 1)[1].split(".", 1)[0]
    assert ("Clean Structured Content" in off_part) != on, off_part


def test_readme_explains_the_review_window_the_last_screen_points_to() -> None:
    """The ATTENTION screen says "deid_tool --review DEST ... review_decisions.csv"; the README
    said nothing about either."""
    readme = (ROOT / "README.txt").read_text(encoding="utf-8")
    assert "deid_tool --review" in readme and "review_decisions.csv" in readme


def test_undo_in_the_wrong_folder_names_the_folder_and_the_way_forward(tmp_path: Path, capsys) -> None:
    """--undo where nothing was renamed said only "give --undo --key FILE", though the usual
    cause is running it from another folder."""
    from deidkit.cli import rename_folders as cli_rename

    folder = tmp_path / "somewhere else"
    folder.mkdir()
    code = cli_rename.main([str(folder), "--undo", "--yes"])
    out = capsys.readouterr()
    screen = " ".join((out.out + out.err).split())
    assert code == 2 and str(folder) in screen and "--undo" in screen and "FOLDER --undo" in screen, screen


@pytest.mark.parametrize("stop", [EOFError, KeyboardInterrupt])
def test_ctrl_d_or_ctrl_c_at_the_start_question_starts_nothing(stop: type, tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    """Ctrl-D at "Start? [Y/n]" started the run (EOF counted as Enter); Ctrl-C there said
    "stopped by the user ... it resumes where it stopped" and exit 1 though nothing had begun."""
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    monkeypatch.setattr(console, "is_interactive", lambda: True)

    def answer(prompt: str = "") -> str:
        raise stop

    monkeypatch.setattr("builtins.input", answer)
    code = cli_deid.main([str(export), "--out", str(tmp_path / "OUT"), "--key", str(tmp_path / "k.txt")])
    out = capsys.readouterr()
    assert code == 2 and "Nothing was done" in out.out, out.out + out.err
    assert "resumes" not in out.out + out.err
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "k.txt").exists()


def test_second_run_into_the_same_output_while_one_runs_is_refused(tmp_path: Path, capsys) -> None:
    """Double-clicked twice: two runs wrote the same output at once; the first to finish said
    "safe to send: 539 files" and its manifest lacked 109 files (--verify: REVIEW)."""
    from deidkit.cli.deid_tool import _lock

    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    held = _lock(tmp_path / "OUT_HOSPITAL_ONLY")  # the first run, still working
    assert held is not None
    try:
        args = [str(export), "--out", str(tmp_path / "OUT"), "--yes", "--key", str(tmp_path / "k.txt")]
        code = cli_deid.main(args)
        out = capsys.readouterr()
        assert code == 2 and "already writing" in out.err, out.out + out.err
        assert not (tmp_path / "OUT" / contract.MANIFEST_NAME).exists()
    finally:
        held.close()
    assert cli_deid.main(args) in (0, 1)  # once it has ended, a run goes through
    assert (tmp_path / "OUT" / contract.MANIFEST_NAME).is_file()


def test_deid_tool_on_its_own_output_says_nothing_to_do(tmp_path: Path, capsys) -> None:
    """deid_tool copied into DEID_OUTPUT and double-clicked held back every file ("a patient
    identifier we could not place" x32, "safe to send: 0 files", ask the research team)."""
    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    key = tmp_path / "k.txt"
    assert cli_deid.main([str(export), "--out", str(tmp_path / "DEID_OUTPUT"), "--yes", "--key", str(key)]) in (0, 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    code = cli_deid.main([str(tmp_path / "DEID_OUTPUT"), "--yes", "--key", str(key)])
    out = capsys.readouterr().out
    assert code == 0 and "Nothing to do" in out and "kept back" not in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "it wrote a second copy"


def test_review_of_a_wrong_folder_says_what_to_give(tmp_path: Path) -> None:
    """--review on a folder that is no output said "no review_decisions.csv in X_HOSPITAL_ONLY";
    on a run where nothing waits it said the same file name, which means nothing to a clerk."""
    review_window = pytest.importorskip("deidkit.review_window")
    said: list[str] = []
    assert review_window.main(tmp_path / "typo", say=said.append) == 2
    assert "does not exist" in said[-1] and "DEID_OUTPUT" in said[-1], said
    (tmp_path / "OUT_HOSPITAL_ONLY").mkdir()
    assert review_window.main(tmp_path / "OUT", say=said.append) == 2
    assert "waits for a person" in said[-1] and "review_decisions.csv" not in said[-1], said


def test_rename_folders_twice_is_nothing_to_do_and_undo_still_rolls_back_the_real_run(tmp_path: Path,
                                                                                       capsys) -> None:
    """The second run "renamed" 3 items to themselves, wrote rename_folders_undo_2.json and said
    "Renaming done"; --undo then rolled back that empty run and said every file had its old
    name again, while the names stayed neutral."""
    from deidkit.cli import rename_folders as cli_rename

    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    out = tmp_path / "OUT"
    assert cli_deid.main([str(export), "--out", str(out), "--yes", "--key", str(tmp_path / "k.txt")]) in (0, 1)
    cleaned = tmp_path / "CLEANED"  # what another anonymizer leaves: clean headers, named folders
    cleaned.mkdir()
    for n, subject in enumerate(sorted(p for p in out.iterdir() if p.is_dir())):
        shutil.copytree(subject, cleaned / f"Müller Hans {n}")
    before = sorted(str(p.relative_to(cleaned)) for p in cleaned.rglob("*"))
    assert cli_rename.main([str(cleaned), "--yes"]) in (0, 1)
    renamed = sorted(str(p.relative_to(cleaned)) for p in cleaned.rglob("*"))
    assert renamed != before
    capsys.readouterr()
    assert cli_rename.main([str(cleaned), "--yes"]) in (0, 1)
    screen = capsys.readouterr().out
    assert "Nothing to do" in screen and "Plan: 0 item(s)" in screen, screen
    hospital = tmp_path / "CLEANED_HOSPITAL_ONLY"
    assert sorted(p.name for p in hospital.glob("rename_folders_undo*.json")) == ["rename_folders_undo.json"]
    assert sorted(str(p.relative_to(cleaned)) for p in cleaned.rglob("*")) == renamed
    assert cli_rename.main([str(cleaned), "--undo", "--yes"]) == 0
    assert sorted(str(p.relative_to(cleaned)) for p in cleaned.rglob("*")) == before


def test_verdict_fits_a_narrow_window_without_cutting_words(monkeypatch, capsys) -> None:
    """On an 80-column terminal the 100-wide frame and its lines wrapped in mid-word
    ("rename_folde / rs", "he / ld_back.csv")."""
    monkeypatch.setattr(console, "_window_columns", lambda: 60)
    words = ("Next: upload /tmp/x/DEID_OUTPUT as agreed. Its names are already neutral: rename_folders is not "
             "needed and the list is in /tmp/x/DEID_OUTPUT_HOSPITAL_ONLY/held_back.csv")
    console.verdict("Finished: the copy can be sent; 6 file(s) kept back at the hospital", [words], ok=False)
    shown = capsys.readouterr().out.splitlines()
    assert all(len(line) < 60 for line in shown), shown
    assert " ".join(" ".join(shown).split()).count("/tmp/x/DEID_OUTPUT_HOSPITAL_ONLY/held_back.csv") == 1
    assert "rename_folders" in " ".join(shown)
    monkeypatch.setattr(console, "_window_columns", lambda: 0)  # not a terminal: lines as they are
    console.verdict("t", [words], ok=True)
    assert words in capsys.readouterr().out


@pytest.mark.parametrize("program", ["deid_tool", "rename_folders"])
def test_a_crash_in_a_double_clicked_window_says_so_and_waits(program: str, monkeypatch, capsys) -> None:
    """A file name that is not valid UTF-8 crashed deid_tool with a bare traceback (export.py,
    progress.jsonl); double-clicked, the window closed at once and the clerk saw nothing."""
    from deidkit.cli import deid_tool as cli_d
    from deidkit.cli import rename_folders as cli_r

    module, inner = (cli_d, "_run") if program == "deid_tool" else (cli_r, "run")

    def boom(argv):
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(module, inner, boom)
    monkeypatch.setattr(console, "is_interactive", lambda: True)
    monkeypatch.delenv("CI", raising=False)
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "")
    code = module.main([])
    err = capsys.readouterr().err
    assert code in (1, 2) and "unexpected problem" in err and "UnicodeEncodeError" in err, err
    assert any("Press Enter" in p for p in prompts), "the window closed without waiting"


def test_rename_folders_refuses_names_that_are_not_text_before_changing_anything(tmp_path: Path, capsys) -> None:
    """A Latin-1 name on Linux (bytes, not UTF-8) crashed rename_folders with a traceback while
    writing the undo data. It now says so, names nothing in the tree changed, and exits 2."""
    from deidkit.cli import rename_folders as cli_rename

    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16, include_problems=False)
    try:
        odd = os.path.join(os.fsencode(export), b"M\xfcller")
        os.mkdir(odd)
    except (OSError, UnicodeError):
        pytest.skip("this file system stores only valid names")
    first = next(p for p in export.rglob("*") if p.is_file() and p.stat().st_size > 1000)
    shutil.copy(first, os.path.join(odd, b"IM\xe91"))
    before = sorted(os.fsencode(p) for p in export.rglob("*"))
    code = cli_rename.main([str(export), "--yes"])
    out = capsys.readouterr()
    assert code == 2 and "not valid text" in out.err and "Nothing was renamed" in out.err, out.out + out.err
    assert "Traceback" not in out.err
    assert sorted(os.fsencode(p) for p in export.rglob("*")) == before
    assert not list(tmp_path.glob("*_HOSPITAL_ONLY/rename_folders_undo*.json"))


def test_review_of_a_moved_export_says_so_and_a_approves_nothing_unseen(tmp_path: Path) -> None:
    """The export moved after the run: the thumbnail said "cannot show the image
    (FileNotFoundError)". It now says what happened; A on the page still approves nothing unseen."""
    from deidkit.review_model import ReviewModel

    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=1, image_size=16)
    assert cli_deid.main([str(export), "--out", str(tmp_path / "OUT"), "--yes", "--key", str(tmp_path / "k")]) == 1
    export.rename(tmp_path / "EXPORT_moved")
    model = ReviewModel(tmp_path / "OUT_HOSPITAL_ONLY")
    assert model.items, "the synthetic export has an image that waits for a person"
    item = model.items[0]
    assert model.frames(item) == [] and "moved or deleted" in item.error
    assert model.approve_all(model.items) == 0


def test_undo_of_an_interrupted_run_leaves_no_undo_data_for_a_second_undo(tmp_path: Path, capsys) -> None:
    """Ctrl-C while renaming, then --undo: the tree came back, but its undo file stayed, so a
    second --undo "rolled back" again and said every name was restored."""
    from deidkit.cli import rename_folders as cli_rename
    from deidkit.journal import Journal

    export = tmp_path / "EXPORT"
    make_export(export, instances_per_series=2, image_size=16, include_problems=False)
    before = tree(export)
    original_mark = Journal.mark
    calls = {"n": 0}

    def interrupted(self, step):  # the person presses Ctrl-C after the third step
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original_mark(self, step)

    Journal.mark = interrupted
    try:
        assert cli_rename.main([str(export), "--yes"]) == 1
    finally:
        Journal.mark = original_mark
    assert Journal(export).exists(), "the test did not interrupt the run"
    assert cli_rename.main([str(export), "--undo", "--yes"]) == 0
    assert tree(export) == before
    assert not list((tmp_path / "EXPORT_HOSPITAL_ONLY").glob("rename_folders_undo*.json"))
    capsys.readouterr()
    assert cli_rename.main([str(export), "--undo", "--yes"]) == 2
    assert "no run to roll back" in capsys.readouterr().err


def test_held_reason_catalogue_knows_what_the_export_writes() -> None:
    """The reasons the export itself writes (two versions of one instance, two patients under one
    Patient ID) are classified by their own catalogue entries, not as "other"."""
    from deidkit.export_place import PERSON_CLASH

    two_versions = ("two different files with the same SOP Instance UID (F000001 and F000002): F000001 was "
                    "sent, this one held for a person to choose")
    assert contract.classify_reason(two_versions).id == "conflicting-duplicate"
    assert contract.classify_reason(PERSON_CLASH).id == "mixed-patients"
