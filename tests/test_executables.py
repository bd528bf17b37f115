"""End-to-end tests of the built executables (dist/deid_tool, dist/rename_folders) against the scripts.

The executables run as a partner runs them: empty environment (no PATH, so no Python to lean
on), working folder a fresh temp folder. They must give what the scripts give on the same
synthetic export: same output tree, same bytes, same exit status.

Without a build these tests are skipped (say how to build); CI sets DEIDKIT_REQUIRE_EXECUTABLES=1,
which turns a missing executable into a failure. DEIDKIT_DIST points at another dist folder
(e.g. dist/deidkit_onefolder for the one-folder build).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_in_terminal

ROOT = Path(__file__).resolve().parents[1]
DIST = Path(os.environ.get("DEIDKIT_DIST") or ROOT / "dist")
REQUIRE = os.environ.get("DEIDKIT_REQUIRE_EXECUTABLES", "") not in ("", "0")
SUFFIX = ".exe" if os.name == "nt" else ""
RUN_TIMEOUT = 120  # s; a run over the test export takes a few seconds


# ---- finding what to run ---------------------------------------------------------------------

def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (DEIDKIT_REQUIRE_EXECUTABLES is set, so this is a failure)")
    pytest.skip(reason)


def _executable(name: str) -> Path:
    script = ROOT / f"{name}.py"
    if not script.is_file():
        _missing(f"{script.name} missing: nothing to build or compare with")
    exe = DIST / f"{name}{SUFFIX}"
    if not exe.is_file():
        _missing(f"{exe} not built (pip install -r requirements-build.txt; tools/build_executables.sh)")
    sources = [ROOT / "build.spec", script, *(ROOT / "deidkit").rglob("*.py"), *(ROOT / "guidelines").iterdir()]
    newer = [p.name for p in sources if p.is_file() and p.stat().st_mtime > exe.stat().st_mtime]
    if newer:
        _missing(f"{exe} is older than {', '.join(sorted(newer)[:3])}: rebuild with tools/build_executables.sh")
    return exe


@pytest.fixture(scope="module")
def deid_exe() -> Path:
    return _executable("deid_tool")


@pytest.fixture(scope="module")
def rename_exe() -> Path:
    return _executable("rename_folders")


WINDOWS_MINIMUM = ("SYSTEMROOT", "TEMP", "TMP", "USERPROFILE", "APPDATA", "LOCALAPPDATA")


def bare_env(**extra: str) -> dict[str, str]:
    """`env -i`: nothing inherited, so no PATH and no Python. On Windows, what every logged-on
    user has (no program starts without SYSTEMROOT; a one-file program unpacks into TEMP)."""
    env = {}
    if os.name == "nt":
        env = {k: os.environ[k] for k in WINDOWS_MINIMUM if k in os.environ}
    env.update(extra)
    return env


def script_env() -> dict[str, str]:
    """The scripts run as a developer runs them, minus anything that would make them differ."""
    env = dict(os.environ)
    env.pop("CI", None)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, text=True, encoding="utf-8", errors="replace")


def run_exe(exe: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run([str(exe), *args], cwd, bare_env(**env))


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(ROOT / f"{name}.py"), *args], cwd, script_env())


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (folders implied by the paths)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


# ---- the synthetic export ----------------------------------------------------------------------

def _add_compressed_copies(export_root: Path, sources: list[Path]) -> None:
    """Compressed versions of a few images, so each bundled pixel codec has to work in the exe."""
    from pydicom import dcmread
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

    out = export_root / "COMPRESSED"
    out.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        for syntax, tag in ((RLELossless, "RLE"), (JPEGLSLossless, "JLS"), (JPEG2000Lossless, "J2K")):
            ds = dcmread(src)
            if "PixelData" not in ds:
                continue
            ds.compress(syntax)
            # a distinct instance: the same UID twice would be a duplicate, not another codec
            ds.SOPInstanceUID = generate_uid(prefix=None, entropy_srcs=[ds.SOPInstanceUID, tag])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(out / f"{tag}{i}.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def pristine_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deidkit.synth import make_export

    root = tmp_path_factory.mktemp("export") / "EXPORT"
    made = make_export(root, instances_per_series=2, image_size=64)
    at_risk = [p for p in made.dicom_files if p.name == "US0001"]  # burned-in text: pixels are read
    _add_compressed_copies(root, at_risk + made.dicom_files[:1])
    return root


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "site_key.txt"
    path.write_text("# test key\n" + hashlib.sha256(b"test site").hexdigest() + "\n", encoding="ascii")
    return path


def _run_both(tmp_path: Path, make_input, command) -> tuple:
    """Run the script, then the executable, on identical input at the identical path.

    The same path for both runs means anything that records paths (reports, journals) must
    come out the same as well. Returns (script proc, script tree, exe proc, exe tree).
    """
    work = tmp_path / "run"
    results = []
    for who in ("script", "exe"):
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        make_input(work)
        proc = command(who, work)
        results += [proc, tree(work)]
        shutil.move(str(work), str(tmp_path / f"run_{who}"))
    return tuple(results)


# ---- deid_tool ---------------------------------------------------------------------------------

def test_deid_tool_exe_gives_the_scripts_output(deid_exe: Path, pristine_export: Path, key_file: Path,
                                                tmp_path: Path) -> None:
    before = tree(pristine_export)

    def command(who: str, work: Path) -> subprocess.CompletedProcess:
        args = [str(pristine_export), "--out", str(work / "OUT"), "--yes", "--key", str(key_file)]
        if who == "script":
            return run_script("deid_tool", args, cwd=tmp_path)
        cwd = tmp_path / "cwd"
        cwd.mkdir(exist_ok=True)
        return run_exe(deid_exe, args, cwd=cwd)

    s_proc, s_tree, e_proc, e_tree = _run_both(tmp_path, lambda work: None, command)
    assert s_proc.returncode in (0, 1), describe(s_proc)
    assert e_proc.returncode == s_proc.returncode, describe(e_proc)
    assert any(p.startswith("OUT/") for p in s_tree), "the script wrote no output: nothing to compare"
    assert sorted(e_tree) == sorted(s_tree), "executable and script wrote different files"
    # What goes out: byte for byte.
    differing = [p for p in s_tree if p.startswith("OUT/") and e_tree[p] != s_tree[p]]
    assert not differing, f"executable and script wrote different bytes in {differing[:10]}"
    # Hospital-side records: the same lines; a run's clock time and the order parallel workers
    # finish in may differ between any two runs.
    for rel in (p for p in s_tree if not p.startswith("OUT/") and e_tree[p] != s_tree[p]):
        script_lines = _lines_without_clock(tmp_path / "run_script" / rel)
        exe_lines = _lines_without_clock(tmp_path / "run_exe" / rel)
        assert exe_lines == script_lines, f"executable and script wrote different records in {rel}"
    assert tree(pristine_export) == before, "the export was modified"


def _lines_without_clock(path: Path) -> list[bytes]:
    clock = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?")
    return sorted(clock.sub(b"<time>", line) for line in path.read_bytes().splitlines())


def test_verify_exe_agrees_with_script(deid_exe: Path, pristine_export: Path, key_file: Path,
                                       tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    made = run_script("deid_tool", [str(pristine_export), "--out", str(out), "--yes", "--key", str(key_file)],
                      cwd=tmp_path)
    assert made.returncode in (0, 1), describe(made)
    s_proc = run_script("deid_tool", ["--verify", str(out)], cwd=tmp_path)
    e_proc = run_exe(deid_exe, ["--verify", str(out)], cwd=tmp_path)
    assert s_proc.returncode == 0, describe(s_proc)
    assert e_proc.returncode == s_proc.returncode, describe(e_proc)


def test_version_matches_script_and_bundled_tables(deid_exe: Path, rename_exe: Path, tmp_path: Path) -> None:
    from deidkit import __version__
    from deidkit.guidelines import load

    bundled = load()
    for name, exe in (("deid_tool", deid_exe), ("rename_folders", rename_exe)):
        e_proc = run_exe(exe, ["--version"], cwd=tmp_path)
        s_proc = run_script(name, ["--version"], cwd=tmp_path)
        assert e_proc.returncode == 0, describe(e_proc)
        # rename_folders reads no guideline table, so its version line names none
        wanted = (__version__, bundled.edition, bundled.sha256) if name == "deid_tool" else (__version__,)
        for expected in wanted:
            assert expected in e_proc.stdout, f"{name} --version lacks {expected}:\n{e_proc.stdout}"
        # a stale build (sources changed since) shows here first
        assert e_proc.stdout == s_proc.stdout, f"{name}: executable and script disagree on --version"


def test_usage_error_exits_2(deid_exe: Path, rename_exe: Path, tmp_path: Path) -> None:
    for name, exe in (("deid_tool", deid_exe), ("rename_folders", rename_exe)):
        e_proc = run_exe(exe, ["--no-such-option"], cwd=tmp_path)
        s_proc = run_script(name, ["--no-such-option"], cwd=tmp_path)
        assert e_proc.returncode == s_proc.returncode == 2, f"{name}:\n{describe(e_proc)}"


def test_settings_next_to_exe_override_bundled(deid_exe: Path, pristine_export: Path, key_file: Path,
                                               tmp_path: Path) -> None:
    """A settings.ini beside the executable wins over the bundled one, and the run says so."""
    from pydicom import dcmread

    site = tmp_path / "site"
    exe = _install(deid_exe, site)
    bundled = (ROOT / "guidelines" / "settings.ini").read_text(encoding="utf-8")
    assert "prefix = SUBJ" in bundled, "test needs the bundled settings' pseudonym prefix line"
    (site / "settings.ini").write_text(bundled.replace("prefix = SUBJ", "prefix = SITETEST"), encoding="utf-8")
    out = tmp_path / "OUT"
    proc = run_exe(exe, [str(pristine_export), "--out", str(out), "--yes", "--key", str(key_file)], cwd=tmp_path)
    assert proc.returncode in (0, 1), describe(proc)
    assert "settings.ini" in proc.stdout + proc.stderr, "the run does not say the settings were overridden"
    names = set()
    for path in out.rglob("*"):
        if path.is_file() and path.name != "DICOMDIR":
            try:
                ds = dcmread(path, stop_before_pixels=True)
            except Exception:  # non-DICOM files in the delivery (if any) are not this test's concern
                continue
            if "PatientName" in ds:
                names.add(str(ds.PatientName))
    assert names, "no de-identified DICOM with a Patient's Name came out"
    assert all(n.startswith("SITETEST") for n in names), f"pseudonyms ignore the override: {sorted(names)[:5]}"


# ---- rename_folders ----------------------------------------------------------------------------

def test_rename_folders_exe_gives_the_scripts_result(rename_exe: Path, pristine_export: Path,
                                                     tmp_path: Path) -> None:
    def copy_in(work: Path) -> None:
        shutil.copytree(pristine_export, work / "EXPORT")

    def command(who: str, work: Path) -> subprocess.CompletedProcess:
        args = [str(work / "EXPORT"), "--yes"]
        if who == "script":
            return run_script("rename_folders", args, cwd=tmp_path)
        return run_exe(rename_exe, args, cwd=tmp_path)

    s_proc, s_tree, e_proc, e_tree = _run_both(tmp_path, copy_in, command)
    assert s_proc.returncode in (0, 1), describe(s_proc)
    assert e_proc.returncode == s_proc.returncode, describe(e_proc)
    assert s_tree != {"EXPORT/" + k: v for k, v in tree(pristine_export).items()}, "the script renamed nothing"
    assert e_tree == s_tree, "executable and script left different trees"


# ---- double-click behaviour --------------------------------------------------------------------

def _install(exe: Path, folder: Path) -> Path:
    """Copy the program into folder as a partner would (with _internal/ for a one-folder build)."""
    folder.mkdir(parents=True, exist_ok=True)
    internal = exe.parent / "_internal"
    if internal.is_dir() and not (folder / "_internal").exists():
        shutil.copytree(internal, folder / "_internal", symlinks=True)
    return Path(shutil.copy2(exe, folder / exe.name))


def _site_with(exe: Path, tmp_path: Path) -> Path:
    """The double-click layout: the executable copied into the folder it is to work on."""
    from deidkit.synth import make_export

    site = tmp_path / "site"
    make_export(site, instances_per_series=1, image_size=32, include_problems=False)
    _install(exe, site)
    return site


def _home(tmp_path: Path) -> dict[str, str]:
    """A private home, so a run with no --key creates its site key here, not in the tester's."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "APPDATA": str(home)}


@pytest.mark.parametrize("name", ["deid_tool", "rename_folders"])
def test_no_arguments_without_terminal_never_waits(name: str, request: pytest.FixtureRequest,
                                                   tmp_path: Path) -> None:
    """Started with no arguments by a script (stdin open but not a terminal): work, report, exit."""
    exe = request.getfixturevalue("deid_exe" if name == "deid_tool" else "rename_exe")
    site = _site_with(exe, tmp_path)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    read_end, write_end = os.pipe()  # never written, never closed while it runs: input() would block
    try:
        proc = subprocess.Popen([str(site / exe.name)], cwd=cwd, env=bare_env(**_home(tmp_path)),
                                stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"{name} with no arguments waited for input without a terminal:\n"
                        f"{output.decode(errors='replace')[-2000:]}")
    finally:
        os.close(read_end)
        os.close(write_end)
    text = output.decode("utf-8", errors="replace")
    assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{text[-3000:]}"
    assert "Press Enter" not in text
    assert "OK:" in text or "ATTENTION:" in text, f"no verdict:\n{text[-3000:]}"
    assert (site / exe.name).is_file(), "the program removed or renamed itself"


def test_rename_folders_leaves_the_programs_beside_it_alone(deid_exe: Path, rename_exe: Path,
                                                             tmp_path: Path) -> None:
    """Partners drop both programs (and maybe a settings.ini) into the export and double-click
    rename_folders: it must not rename or move them, nor a one-folder build's _internal/."""
    site = _site_with(rename_exe, tmp_path)
    _install(deid_exe, site)
    (site / "settings.ini").write_bytes((ROOT / "guidelines" / "settings.ini").read_bytes())
    ours = {p.relative_to(site).as_posix(): h for p in site.iterdir() if not _is_export_part(p)
            for h in [tree(p) if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()]}
    proc = run([str(site / rename_exe.name)], tmp_path, bare_env(**_home(tmp_path)))
    assert proc.returncode in (0, 1), describe(proc)
    after = {name: tree(site / name) if (site / name).is_dir() else
             hashlib.sha256((site / name).read_bytes()).hexdigest()
             for name in ours if (site / name).exists()}
    assert after == ours, f"moved or changed: {sorted(set(ours) - set(after))}"


def _is_export_part(path: Path) -> bool:
    """What make_export wrote at the top of the site (everything but the installed programs)."""
    return path.name not in {"_internal", "settings.ini"} and not path.name.startswith(("deid_tool", "rename_folders"))


@pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX; the Windows console is smoke-tested by hand")
@pytest.mark.parametrize("name", ["deid_tool", "rename_folders"])
def test_double_click_keeps_window_open(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Started with no arguments at a terminal: says what it will do, ends with a verdict,
    then waits for Enter so the window does not vanish."""
    exe = request.getfixturevalue("deid_exe" if name == "deid_tool" else "rename_exe")
    site = _site_with(exe, tmp_path)
    # run as a double-click would; a person takes the default at every question
    status, seen = run_in_terminal([str(site / exe.name)], site, bare_env(**_home(tmp_path), TERM="dumb"),
                                   {b"[Y/n]": b"\n", b"[y/N]": b"\n"}, RUN_TIMEOUT, name)
    text = seen.decode("utf-8", errors="replace")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1), text[-3000:]
    assert str(site) in text or site.name in text, "the run does not say which folder it works on"
    assert "OK:" in text or "ATTENTION:" in text, f"no verdict:\n{text[-3000:]}"
    assert "Press Enter" in text, f"the window would close before the verdict can be read:\n{text[-3000:]}"


# ---- what the bundle holds -----------------------------------------------------------------------

def test_bundle_holds_tables_codecs_and_their_entry_points(deid_exe: Path, rename_exe: Path) -> None:
    """Codecs found only through entry points need their metadata; the tables must be inside."""
    readers = pytest.importorskip("PyInstaller.archive.readers", reason="PyInstaller not installed")
    from deidkit.guidelines import GUIDELINE_FILES

    tables = set(GUIDELINE_FILES) | {p.name for p in (ROOT / "guidelines").iterdir() if p.is_file()}
    for exe in (deid_exe, rename_exe):
        archive = readers.CArchiveReader(str(exe))
        names = set(archive.toc)
        internal = exe.parent / "_internal"  # a one-folder build keeps data files there
        if internal.is_dir():
            names |= {p.relative_to(internal).as_posix() for p in internal.rglob("*") if p.is_file()}
        for fname in sorted(tables):
            assert f"guidelines/{fname}" in names, f"{exe.name} lacks guidelines/{fname}"
        for dist in ("pylibjpeg_libjpeg", "pylibjpeg_openjpeg", "pylibjpeg_rle"):
            assert any(n.lower().startswith(dist) and n.endswith("entry_points.txt") for n in names), \
                f"{exe.name} lacks the entry points of {dist}"
        modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
        for module in ("pylibjpeg", "libjpeg", "openjpeg", "rle", "jpeg_ls", "pydicom.pixels.decoders.pylibjpeg"):
            assert module in modules or any(m.startswith(module + ".") for m in modules), \
                f"{exe.name} lacks {module}"
