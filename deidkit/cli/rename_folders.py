"""rename_folders' command line: what a person sees and answers; the work is deidkit.rename
(scan, plan, index) and deidkit.journal (crash-safe apply and undo)."""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from .. import __version__, console, contract
from ..contract import INDEX_NAME
from ..journal import JOURNAL_NAME, Journal, Outcome, Replay, count_steps, write_atomic, write_secret
from ..rename.index import index_csv, is_our_index
from ..rename.plan import RenamePlan, key_mapping, make_plan, plan_problems, plan_token
from ..rename.scan import scan
from ..safe_text import console_text


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _own_files(root: Path) -> set[Path]:
    """This program's files and outputs at the top of the tree: never renamed."""
    own = {root / n for n in Journal.own_names()}
    if is_our_index(root / INDEX_NAME):
        own.add(root / INDEX_NAME)
    candidates = [Path(sys.argv[0]).resolve()] if sys.argv and sys.argv[0] else []
    if getattr(sys, "frozen", False):
        candidates.append(Path(sys.executable).resolve())
    package = Path(__file__).resolve().parents[1]  # deidkit/
    if _inside(package, root):
        candidates.append(package)  # running from source inside the export
    candidates += console.kit_files_beside_program()
    for c in candidates:
        if c.exists() and _inside(c, root) and c != root.resolve():
            own.add(root / c.resolve().relative_to(root.resolve()))
    return own


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (argv without the program name); argparse exits on --help or a bad option."""
    ap = argparse.ArgumentParser(
        prog="rename_folders",
        description="Rename every folder and file below ROOT to neutral indexed names, write "
                    "index.csv, and say whether anything still looks identifying.")
    ap.add_argument("root", nargs="?", help="the export folder (default: the folder this program is in)")
    ap.add_argument("--yes", action="store_true", help="do not ask before renaming")
    ap.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    ap.add_argument("--undo", action="store_true",
                    help="roll back an unfinished run, or the last finished one (its undo data is kept in "
                         "ROOT_HOSPITAL_ONLY beside ROOT, or give it with --key)")
    ap.add_argument("--key", metavar="FILE",
                    help="write the undo data (old-name -> new-name key: PHI!) to FILE, outside the tree, "
                         "instead of ROOT_HOSPITAL_ONLY/rename_folders_undo.json")
    ap.add_argument("--hospital-dir", metavar="DIR",
                    help="where the undo data, DICOMDIR files (and --move-other-out files) go; "
                         "default ROOT_HOSPITAL_ONLY beside ROOT")
    ap.add_argument("--move-other-out", action="store_true",
                    help="move non-DICOM files out to the hospital-side folder instead of renaming them")
    ap.add_argument("--version", action="version", version=f"rename_folders {__version__}")
    return ap.parse_args(argv)


def _finish_lines(plan: RenamePlan, outcome: Outcome, complete: bool) -> tuple[list[str], bool]:
    lines: list[str] = []
    ok = complete and not outcome.failures and not outcome.missing
    if complete:
        lines.append("Every folder and file below the top folder now has a neutral name; see index.csv.")
    else:
        lines.append("The renaming is NOT finished. Nothing is lost: run the program again to finish it")
        lines.append("(or with --undo to roll back). Until then a hidden journal with the old names is in the folder.")
    lines += [f"Problem: {m}" for m in outcome.failures[:20]]
    lines += [f"Problem: {m}" for m in outcome.missing[:20]]
    if plan.moved_out:
        lines.append(f"{len(plan.moved_out)} file(s) (DICOMDIR / non-DICOM) go out of the tree to the hospital-side folder"
                     " (DICOMDIR lists patient names and old file names).")
    if plan.review_other:
        ok = False
        lines += _listed(f"{len(plan.review_other)} file(s) are not DICOM (reports, viewer files, broken files):"
                         " check them before sharing, or delete them:", plan.review_other, "other_files")
    if plan.review_identified:
        ok = False
        lines += _listed(f"Headers still look identified in {len(plan.review_identified)} folder(s) (patient "
                         "name/ID, Patient Identity Removed not set): renaming does not de-identify; run deid_tool "
                         "first:", plan.review_identified, "identity_warnings")
    if ok:
        lines.append("Nothing looks identifying in names or headers.")
    lines.append("The top folder itself keeps its name: rename it yourself if it names the patient.")
    return lines, ok


def _replay(root: Path, journal: Journal, plan: RenamePlan, undo: bool) -> int:
    progress = journal.progress()
    total = sum(len(g.entries) * (2 if g.routed else 1) for g in plan.groups) if undo else count_steps(plan, progress)
    bar = console.Progress(total, "Rolling back" if undo else "Renaming")
    replay = Replay(root, journal, plan, on_step=bar.advance)
    outcome = replay.undo() if undo else replay.forward()
    bar.close()
    if undo:
        if outcome.complete:
            if is_our_index(root / INDEX_NAME):
                (root / INDEX_NAME).unlink()
            journal.remove()
            console.verdict("Rolled back", ["Every folder and file has its old name again."] +
                            [f"Problem: {m}" for m in outcome.missing], ok=not outcome.missing)
            return 0 if not outcome.missing else 1
        console.verdict("Roll-back NOT finished", [f"Problem: {m}" for m in outcome.failures + outcome.missing] +
                        ["Nothing is lost. Close programs that use these files and run with --undo again."], ok=False)
        return 1
    if outcome.complete:
        index_path = root / INDEX_NAME
        if index_path.exists() and not is_our_index(index_path):
            console.error("index.csv could not be written: a file of that name is in the way.")
            return 1
        write_atomic(index_path, index_csv(plan))
        journal.remove()
    lines, ok = _finish_lines(plan, outcome, outcome.complete)
    if outcome.complete:
        lines += ["To undo this renaming: rename_folders --undo (the undo data is in the hospital-side folder)."]
        lines += _kit_lines(root)
    console.verdict("Renaming done" if outcome.complete else "Renaming NOT finished", lines, ok)
    return 0 if ok else 1


def _quiet_pydicom() -> None:
    """pydicom's warnings about odd values can quote the values (PHI): keep them off the screen."""
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def run(argv: list[str]) -> int:
    """rename_folders' whole run; returns the exit status (0 nothing to review, 1 review, 2 usage)."""
    args = parse_args(argv)
    _quiet_pydicom()
    root = Path(args.root) if args.root else console.program_dir()
    if not root.is_dir():
        console.error("the folder to rename does not exist or is not a folder.",
                      "give the export folder, or put the program inside it and start it there.")
        return 2
    root = root.resolve()
    console.say(f"rename_folders: gives neutral names to every folder and file below {root}")
    journal = Journal(root)
    key_path = Path(args.key).resolve() if args.key else None
    if key_path and _inside(key_path, root):
        console.error("the key file must be outside the folder being renamed (it holds the old names).",
                      "give a --key path on the hospital side, outside this folder.")
        return 2
    hospital = Path(args.hospital_dir).resolve() if args.hospital_dir else _default_hospital_dir(root)
    if _inside(hospital, root):
        console.error("the hospital-side folder must be outside the folder being renamed.")
        return 2
    if journal.exists():
        return _resume(root, journal, args)
    for leftover in (root / (JOURNAL_NAME + ".tmp"), journal.progress_path):
        if leftover.exists():  # a kill while the plan was being written: nothing was renamed
            leftover.unlink()
    if args.undo:
        return _undo_finished(root, journal, key_path or _latest_undo_file(hospital), args)
    if contract.kit_file_kind(root / contract.MANIFEST_NAME, contract.MANIFEST_NAME) == "manifest":
        console.verdict("Nothing to do", [
            "This folder is a de-identified copy written by deid_tool: its names are already neutral.",
            "Nothing was renamed. Upload it as it is (see deid_tool's last screen)."] + _kit_lines(root), ok=True)
        return 0
    return _rename(root, journal, hospital, key_path, args)


def _default_hospital_dir(root: Path) -> Path:
    """ROOT_HOSPITAL_ONLY beside ROOT; for the top of a drive (E:\\), which has
    nothing beside it, a folder of the user's own (where the site key lives by default)."""
    if root.parent != root:
        return root.parent / (root.name + contract.HOSPITAL_SUFFIX)
    from ..mapping import default_key_path

    tag = hashlib.sha256(os.fspath(root).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return default_key_path().parent / f"rename_folders{contract.HOSPITAL_SUFFIX}" / tag


def _resume(root: Path, journal: Journal, args: argparse.Namespace) -> int:
    """Finish (or roll back) the run an interrupted journal records."""
    try:
        plan = journal.load_plan()
    except (ValueError, OSError):
        console.error("the journal of an interrupted run cannot be read.",
                      "keep the folder as it is and ask for help; do not delete the hidden journal.")
        return 2
    undo = args.undo or "UNDO" in journal.progress()
    if args.dry_run:
        console.say("An interrupted run was found; it would be "
                    + ("rolled back." if undo else "finished.") + " Nothing changed (--dry-run).")
        return 0
    console.say("An interrupted run was found: " + ("rolling it back." if undo else "finishing it."))
    code = _replay(root, journal, plan, undo)
    if undo and code == 0 and not args.key:  # its undo data is done with (it holds old names)
        hospital = Path(args.hospital_dir).resolve() if args.hospital_dir else _default_hospital_dir(root)
        for undo_file in hospital.glob("rename_folders_undo*.json"):
            try:
                same = json.loads(undo_file.read_text(encoding="utf-8"))["plan"]["token"] == plan.token
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if same:
                undo_file.unlink()
    return code


def _latest_undo_file(hospital: Path) -> Path | None:
    """The undo data of the last finished run kept in the hospital-side folder, if any."""
    found = sorted(hospital.glob("rename_folders_undo*.json"), key=lambda p: (len(p.name), p.name))
    return found[-1] if found else None


def _new_undo_file(hospital: Path) -> Path:
    stem, ext = os.path.splitext(contract.RENAME_UNDO_NAME)
    path, n = hospital / contract.RENAME_UNDO_NAME, 1
    while path.exists():
        n += 1
        path = hospital / f"{stem}_{n}{ext}"
    return path


def _undo_finished(root: Path, journal: Journal, key_path: Path | None, args: argparse.Namespace) -> int:
    """Roll back a finished run from its undo data (the --key file, or the hospital-side copy)."""
    if not key_path:
        console.error(f"there is no run to roll back in {root} (no journal, no undo data in the hospital-side "
                      "folder).", "run it in the folder that was renamed (rename_folders FOLDER --undo), or give "
                      "the undo file the run wrote: --undo --key FILE")
        return 2
    try:
        plan = RenamePlan.from_json(json.loads(key_path.read_text(encoding="utf-8"))["plan"])
    except (OSError, ValueError, KeyError, TypeError):
        console.error("the undo data cannot be read.", "give the key file written by the run to undo.")
        return 2
    console.say(f"Undo data: {key_path}")
    if args.dry_run:
        console.say("The finished run would be rolled back. Nothing changed (--dry-run).")
        return 0
    if not console.confirm("Roll back the renaming recorded in this file?", args.yes):
        return 2
    journal.write_plan(plan)
    for k, _group in enumerate(plan.groups):
        journal.mark(f"F {k}")
    code = _replay(root, journal, plan, undo=True)
    if code == 0 and not args.key and key_path.is_file():
        key_path.unlink()  # done with; it holds old names
    return code


def _moved_out_dir(hospital: Path) -> Path:
    """Where this run moves files out to: moved_out, or moved_out_N when earlier runs used that."""
    base = hospital / "moved_out"
    n = 1
    while base.exists():
        n += 1
        base = hospital / f"moved_out_{n}"
    return base


def _scan_and_plan(root: Path, base: Path, args: argparse.Namespace) -> RenamePlan:
    """Read the tree below root (with a progress bar) and plan its new names; notes on screen."""
    own = _own_files(root)
    bar: list[console.Progress] = []

    def reading(done: int, total: int) -> None:
        if not bar:
            bar.append(console.Progress(total, "Reading headers"))
        bar[0].advance(done - bar[0].done)

    tree = scan(root, own, progress=reading)
    if bar:
        bar[0].close()
    console.say("Planning the new names ...")
    plan = make_plan(tree, {p.name for p in own}, os.fspath(base), args.move_other_out, plan_token(tree))
    for problem in plan_problems(plan, os.fspath(root)):
        console.say(f"Note: {problem}")
    return plan


def _rename(root: Path, journal: Journal, hospital: Path, key_path: Path | None, args: argparse.Namespace) -> int:
    """Scan, plan, warn, ask, keep the undo data, journal, rename."""
    plan = _scan_and_plan(root, _moved_out_dir(hospital), args)
    n_steps = sum(1 for g in plan.groups for e in g.entries if e.out or e.final != e.old)  # real changes
    console.say(f"Plan: {n_steps} item(s) to rename or move in {len(plan.index) - 1} folder(s) below the top folder.")
    if args.dry_run:
        return _show_dry_run(plan)
    if not n_steps and is_our_index(root / INDEX_NAME):  # run again on its own result (double-clicked twice)
        lines, ok = _finish_lines(plan, Outcome(), True)
        console.verdict("Nothing to do", [
            "Every name below this folder is already neutral (an earlier run renamed it): nothing was",
            "renamed and no new undo data was written (--undo still rolls back that earlier run)."]
            + lines[1:] + _kit_lines(root), ok)
        return 0 if ok else 1
    undecodable = _undecodable_names(plan)
    if undecodable:  # the journal and the undo data (UTF-8 JSON) could not record these names
        console.error(f"{len(undecodable)} name(s) below this folder are not valid text in this system's "
                      f"encoding (bytes shown as \\xNN), for example '{console_text(undecodable[0])}'. "
                      "Nothing was renamed.",
                      "rename those by hand (or copy the export with a tool that converts the names), "
                      "then run again")
        return 2
    if plan.review_identified:
        if not _ask_despite_identified(plan, args.yes):
            return 1
    elif not console.confirm("Rename everything below this folder now?", args.yes):
        console.say("Nothing changed.")
        return 2
    undo_path = key_path or _new_undo_file(hospital)
    try:
        hospital.mkdir(parents=True, exist_ok=True)
        undo_path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(undo_path, json.dumps({"about": "rename_folders undo data: old names are PHI, keep on the "
                                                     "hospital side", "root": os.fspath(root),
                                            "mapping": key_mapping(plan), "plan": plan.to_json()},
                                           ensure_ascii=False, indent=1).encode("utf-8"))
    except OSError:
        console.error(f"the undo data cannot be written to {undo_path}. Nothing was renamed.",
                      "give a writable folder outside this one with --hospital-dir or --key FILE.")
        return 2
    console.say(f"Undo data (old names: keep it at the hospital): {undo_path}")
    try:
        journal.write_plan(plan)
    except OSError:
        console.error("the journal cannot be written at the top of the folder (read-only?). Nothing was renamed.")
        return 2
    return _replay(root, journal, plan, undo=False)


def _undecodable_names(plan: RenamePlan) -> list[str]:
    """Old paths (relative) holding bytes that are not text (Linux: a name written in another
    encoding decodes to lone surrogates), which UTF-8 cannot store."""
    bad = []
    for old, _new in key_mapping(plan):
        try:
            old.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(old)
    return bad


def _show_dry_run(plan: RenamePlan) -> int:
    console.say("New folder names (nothing changed, --dry-run):")
    for row in plan.index:
        console.say(f"  {row['folder']}  [{row['level']}] {row['dicom_files']} DICOM, {row['other_files']} other"
                    + (f"  ! {row['identity_warnings']}" if row["identity_warnings"] else ""))
    lines, ok = _finish_lines(plan, Outcome(), True)
    console.verdict("Dry run: this is what would happen", lines[1:], ok)
    return 0 if ok else 1


def _ask_despite_identified(plan: RenamePlan, assume_yes: bool) -> bool:
    """Before anything changes: the headers still name patients. The default answer is no."""
    lines = _listed(f"NOT DE-IDENTIFIED YET: headers in {len(plan.review_identified)} folder(s) still look "
                    "identified (patient name/ID, Patient Identity Removed not set):", plan.review_identified,
                    "identity_warnings", most=10)
    lines += ["Renaming does not de-identify. Run deid_tool on this folder first: it writes a de-identified",
              "copy with neutral names (rename_folders is then not needed)."]
    for line in lines:
        console.say(line)
    if console.confirm("Rename anyway (only the names change; the headers stay identified)?", assume_yes,
                       default=False):
        return True
    console.verdict("Nothing changed: not de-identified yet",
                    ["Run deid_tool on this folder first; it gives neutral names as well.",
                     "rename_folders is only for exports another anonymizer has already cleaned."], ok=False)
    return False


def _kit_lines(root: Path) -> list[str]:
    """Where the kit's own programs go: never with the data."""
    inside = sorted(p.name for p in console.kit_files_beside_program() if p.parent == root
                    and p.name.startswith(contract.PROGRAM_NAMES))
    if not inside:
        return []
    return [f"Before sending, take the program(s) out of this folder ({', '.join(inside)}):",
            "they are not part of the delivery (deid_tool --verify ignores them)."]


def main(argv: list[str] | None = None) -> int:
    """Run rename_folders with argv (default sys.argv[1:]) and wait for a key when double-clicked.

    Returns the exit status: 0 all done, 1 something needs a person (or stopped), 2 could not run.
    """
    argv = sys.argv[1:] if argv is None else argv
    double_click = not argv
    try:
        code = run(argv)
    except KeyboardInterrupt:
        console.error("stopped by the user. Nothing is lost: run again to finish, or with --undo to roll back.")
        code = 1
    except SystemExit as exc:  # argparse usage errors and --version
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception:  # noqa: BLE001 (a double-clicked window must not close on a traceback)
        console.unexpected_error("nothing is lost: run it again to finish, or with --undo to roll back. If it "
                                 "stops the same way, show this screen to your IT department")
        code = 1
    console.pause_before_exit(double_click)
    return code


def _listed(title: str, items: list[str], index_column: str, most: int = 30) -> list[str]:
    """A heading and at most `most` items, pointing to index.csv for the rest."""
    lines = [title, *(f"  {p}" for p in items[:most])]
    if len(items) > most:
        lines.append(f"  ... and {len(items) - most} more (column {index_column} in index.csv)")
    return lines
