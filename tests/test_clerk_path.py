"""The clerk's whole path, as README.txt and the screens tell it (issue 18).

A clerk copies a program into a folder and double-clicks it: here the program (the script with
its deidkit package, or the executable when one is built; DEIDKIT_REQUIRE_EXECUTABLES=1 makes a
missing build a failure) is copied into the folder and started with no arguments under a
pseudo-terminal, answering the questions as a person would and reading the screens.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deidkit import cli_deid, console, contract
from deidkit import rename as rn
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
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    seen = b""
    answered = {p: 0 for p in answers}
    pressed = False
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
            for prompt, keys in answers.items():
                if seen.count(prompt) > answered[prompt]:
                    answered[prompt] += 1
                    os.write(fd, keys)
            if b"Press Enter" in seen and not pressed:
                pressed = True
                os.write(fd, b"\n")
        status = 0
        done = 0
        while done == 0 and time.monotonic() < deadline + 30:
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if done == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"{cmd[-1]} did not end:\n{seen.decode(errors='replace')[-3000:]}")
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode("utf-8", errors="replace")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT, encoding="utf-8", errors="replace")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


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
