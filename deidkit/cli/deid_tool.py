"""Command line of deid_tool (the script deid_tool.py only calls main()); formerly deidkit/cli_deid.py."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, NoReturn

from .. import __version__, console, contract
from ..contract import DEFAULT_OUT_NAME
from ..export import (HELD, HOSPITAL_SUFFIX, FileResult, RunConfig, RunSummary, folder_within, output_is_ours,
                     remove_earlier_output, run_export, source_of, state_matches)
from ..guidelines import GuidelineError, Guidelines, load, locate
from ..mapping import KeyError_, default_key_path, load_or_create_key
from ..review_decisions import DecisionError

EXIT_OK, EXIT_REVIEW, EXIT_USAGE = 0, 1, 2

HELP = """\
Make a de-identified copy of a PACS export folder, safe to send for research.
The original files are never changed. Files that cannot be de-identified with confidence
(reports, documents, images with text burned into the pixels that could not be blanked,
unreadable files) are held back and listed in a folder that stays at the hospital.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with a plain line
        console.error(message, "run with --help to see the options")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The deid_tool command line parser (usage errors print one plain line and exit 2)."""
    p = _Parser(prog="deid_tool", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Exit status: 0 everything de-identified; 1 something was held back or failed (listed in "
                       "the _HOSPITAL_ONLY folder); 2 wrong command or nothing could run.")
    p.add_argument("source", nargs="?", type=Path,
                   help="the export folder to de-identify (default: the folder this program is in)")
    p.add_argument("--out", type=Path, metavar="DEST",
                   help=f"where to write the de-identified copy (default: a folder {DEFAULT_OUT_NAME} beside "
                        "the export). It must not be inside the export")
    p.add_argument("--key", type=Path, metavar="FILE",
                   help="the site key file (created there if missing). The same key gives the same "
                        "pseudonyms, UIDs and date shifts in later exports. It must not be inside DEST. "
                        f"Default: {default_key_path()}")
    p.add_argument("--yes", action="store_true", help="do not ask before starting (for scripts)")
    p.add_argument("--replace", action="store_true",
                   help="DEST holds an earlier run made differently (other export, key or settings): replace it. "
                        "Only the files deid_tool wrote there are removed; without this the run stops and asks")
    p.add_argument("--guidelines", type=Path, metavar="DIR",
                   help="use guideline/settings files from DIR instead of the bundled ones "
                        "(default: files placed next to this program, if any)")
    p.add_argument("--workers", type=int, default=0, help="parallel processes (default: one per core, plus one)")
    p.add_argument("--demo", action="store_true",
                   help="make a small synthetic export with fake patient data and de-identify it")
    p.add_argument("--verify", type=Path, metavar="DIR",
                   help="check a delivery instead (receiving side); see --verify --help")
    p.add_argument("--lookup", metavar="PSEUDONYM",
                   help="hospital side only: which patient (or study) is SUBJ_... / STUDY_...? Answers from "
                        "the crosswalk of the run into DEST, else from the site key and the export's headers")
    p.add_argument("--review", type=Path, metavar="DEST",
                   help="open the review window for the images of an earlier run waiting for a person "
                        "(writes DEST_HOSPITAL_ONLY/review_decisions.csv; run again to apply it)")
    p.add_argument("--version", action="store_true", help="print the version and the guideline table edition")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run deid_tool with argv (default sys.argv[1:]); returns the exit status: 0 all de-identified, 1 something held back or failed, 2 wrong command or nothing could run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore")  # pydicom's notes on odd input are not for the user's screen
    double_clicked = not argv
    if "--verify" in argv:
        from .. import verify

        return verify.main(argv)
    if "--review" in argv:
        return _review(build_parser().parse_args(argv).review)
    try:
        code = _run(argv)
        if double_clicked and _WAITING and console.is_interactive() and console.confirm(
                f"{_WAITING[0][1]} image(s) wait for a person. Open the review window now?", False):
            _review(config_dest=_WAITING[0])
    except KeyboardInterrupt:
        console.error("stopped by the user", "run the same command again: it resumes where it stopped")
        code = EXIT_REVIEW
    except Exception:  # noqa: BLE001 (a double-clicked window must not close on a traceback)
        console.unexpected_error("run the same command again: it resumes where it stopped. If it stops the "
                                 "same way, show this screen to your IT department")
        code = EXIT_USAGE
    console.pause_before_exit(double_clicked)
    return code


_WAITING: list = []  # (DEST, waiting count) after a run whose images wait for a person


def _review(dest: Path | None = None, config_dest: tuple | None = None) -> int:
    """The review window (deidkit.review_window) for an output folder."""
    try:
        from .. import review_window
    except ImportError:  # a Python without Tk: the file can still be edited by hand
        console.error("the review window needs Tk, which this Python lacks",
                      "edit review_decisions.csv in the _HOSPITAL_ONLY folder instead (approve or reject)")
        return EXIT_USAGE
    if dest is None:
        assert config_dest is not None  # one of the two is given
        dest = config_dest[0]
    return review_window.main(dest, say=console.say)


def _override_dir(args: argparse.Namespace) -> Path | None:
    if args.guidelines:
        return args.guidelines
    if console.is_frozen():
        return console.program_dir()
    return None


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    override = _override_dir(args)
    try:
        guidelines = load(override)
    except GuidelineError as e:
        console.error(f"guideline file problem: {e}", "fix or remove the file named, then run again")
        return EXIT_USAGE
    if args.version:
        console.say(f"deid_tool {__version__}")
        console.say(f"guideline table: DICOM PS3.15 {guidelines.edition} Table E.1-1, sha256 {guidelines.sha256}")
        return EXIT_OK
    for fname in guidelines.overridden:
        console.say(f"Using {fname} from {locate(override)[fname].parent} instead of the bundled one.")
    if args.demo:
        return _demo(args, guidelines, override)
    source = (args.source or console.program_dir()).resolve()
    if not source.is_dir():
        console.error(f"the export folder {source} does not exist or is not a folder",
                      "give the folder that holds the exported files")
        return EXIT_USAGE
    if args.lookup:
        from ..crosswalk import lookup_main

        return lookup_main(args.lookup, source, (args.out or _default_out(source)).resolve(),
                           (args.key or default_key_path()).resolve(), guidelines)
    if contract.kit_file_kind(source / contract.MANIFEST_NAME, contract.MANIFEST_NAME) == "manifest":
        return _already_deidentified(source)
    return _run_on(args, source, guidelines, override)


def _run_on(args: argparse.Namespace, source: Path, guidelines: Guidelines, override: Path | None) -> int:
    """The run into DEST once the export is known: places checked, the person asked, then done."""
    dest = (args.out or _default_out(source)).resolve()
    hospital = dest.with_name(dest.name + HOSPITAL_SUFFIX)
    key_path = (args.key or default_key_path()).resolve()
    problem = _places_problem(source, dest, hospital, key_path, args.out is not None)
    if problem:
        console.error(*problem)
        return EXIT_USAGE
    program_files = tuple(console.kit_files_beside_program())
    if not _holds_dicom(source, [dest, hospital, *program_files, key_path]):
        console.error(f"no DICOM files were found in {source} (every folder below it was looked at)",
                      "export the studies from the PACS into that folder (or put deid_tool into the export "
                      "folder, or give it: deid_tool FOLDER), then run again. Nothing was written.")
        return EXIT_USAGE
    key, created = b"", not key_path.exists()  # a new key is made only once the person says Start
    if not created:
        try:
            key, _ = load_or_create_key(key_path)
        except (KeyError_, OSError) as e:
            console.error(f"cannot use the site key: {e}", "check the --key path, or restore the key from backup")
            return EXIT_USAGE
    config = RunConfig(source=source, dest=dest, hospital_dir=hospital, guidelines=guidelines, key=key,
                       workers=args.workers, program_files=(*program_files, key_path), override_dir=override)
    replace = dest.exists() and any(dest.iterdir()) and not state_matches(config)
    if replace and not output_is_ours(dest):
        console.error(f"the output folder {dest} is not empty", "choose an empty or new folder with --out")
        return EXIT_USAGE
    _say_plan(config, key_path, created)
    if not _agreed(args, replace) or (replace and not _replaced_earlier(dest, hospital)):
        return EXIT_USAGE
    if created:
        try:
            key, _ = load_or_create_key(key_path)
        except (KeyError_, OSError) as e:
            console.error(f"cannot make the site key: {e}", "give a writable --key path on the hospital side")
            return EXIT_USAGE
        config = dataclasses.replace(config, key=key)
    return _execute(config)


def _places_problem(source: Path, dest: Path, hospital: Path, key_path: Path, out_given: bool) -> tuple[str, str] | None:
    """(what is wrong, what to do) when the output, its hospital-side folder or the key would lie
    in the export (or the export in them), or the key in the output; None when all is well."""
    if folder_within(dest, source) and (dest == source or out_given):
        return "the output folder is inside the export folder", "choose --out outside the export"
    if folder_within(source, dest):
        return "the export folder is inside the output folder", "choose another --out"
    if folder_within(hospital, source) or folder_within(source, hospital):
        return (f"the hospital-only folder {hospital.name} would be inside the export folder (or the export "
                "inside it)", "choose --out so that neither the output nor its _HOSPITAL_ONLY folder is in the export")
    if dest == key_path.parent or dest in key_path.parents:
        return ("the key file must not be inside the output folder (it would be sent)",
                "keep the key on the hospital side, e.g. the default place")
    return None


def _say_plan(config: RunConfig, key_path: Path, created: bool) -> None:
    console.say(f"deid_tool {__version__}: makes a de-identified copy of an export; the export is not changed.")
    console.say(f"  Export (not changed):   {config.source}")
    console.say(f"  De-identified copy:     {config.dest}")
    console.say(f"  Hospital-only records:  {config.hospital_dir}  (never send this folder)")
    console.say(f"  Site key:               {key_path}" + ("  (a new key will be made here: back it up)"
                                                            if created else ""))


def _agreed(args: argparse.Namespace, replace: bool) -> bool:
    """The person (or --yes, --replace) agrees to start, and to replace an earlier run if there is one."""
    if replace:
        console.say("  The output folder holds an earlier run made differently (other export, key or settings).")
        if not args.replace and not _ask_replace(args.yes):
            console.error("the output folder holds an earlier run; nothing was changed",
                          "run again with --replace to replace it, or choose another --out")
            return False
    if not console.confirm("Start?", args.yes):
        console.say("Nothing was done.")
        return False
    return True


def _replaced_earlier(dest: Path, hospital: Path) -> bool:
    """Remove the earlier run's files; False (said why) when that fails or other files are left."""
    try:
        left = remove_earlier_output(dest, hospital)
    except OSError as e:
        console.error(f"cannot remove the earlier run ({e.strerror})", "close programs using it, then run again")
        return False
    if left:
        console.error(f"the output folder holds {len(left)} file(s) deid_tool did not write "
                      f"(for example {left[0]}); they were left as they are",
                      "move them out of the output folder (or choose another --out), then run again")
        return False
    console.say("  The earlier run's files were removed; the new copy replaces it.")
    return True


def _ask_replace(assume_yes: bool) -> bool:
    """Replacing an earlier output is asked on its own, default No; scripts (--yes or no terminal)
    must say --replace."""
    if assume_yes or not console.is_interactive():
        return False
    try:
        answer = input("Replace the earlier run in the output folder? [y/N] ").strip().lower()
    except EOFError:
        return False
    return answer in ("y", "yes", "j", "ja", "o", "oui", "s", "si")


def _already_deidentified(source: Path) -> int:
    """deid_tool started on its own output (copied into DEID_OUTPUT and double-clicked): running
    again would hold back every file (its pseudonyms look like identifiers) and send nothing."""
    inside = sorted(p.name for p in console.kit_files_beside_program()
                    if p.parent == source and p.name.startswith(contract.PROGRAM_NAMES))
    lines = [f"{source} is a de-identified copy written by deid_tool: there is nothing more to do.",
             "Nothing was written. Upload it as it is; to check it first:",
             f"deid_tool --verify {source} (it must say PASS). To de-identify an export, put deid_tool",
             "into the export folder instead."]
    if inside:
        lines += [f"Before sending, take the program(s) out of this folder ({', '.join(inside)}):",
                  "they are not part of the delivery (deid_tool --verify ignores them)."]
    console.verdict("Nothing to do", lines, ok=True)
    return EXIT_OK


def _holds_dicom(source: Path, exclude: list[Path]) -> bool:
    """True when at least one file below source could be DICOM (damaged ones count: they are
    listed). Only regular files are opened (a FIFO or device would block)."""
    import stat

    from ..dicomio import _looks_like_raw_dataset
    from ..export import NON_DICOM_SUFFIXES, plan

    for path in plan(source, exclude):
        try:
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                return True  # a folder that could not be read: it is listed with its reason
            if not stat.S_ISREG(mode) or path.suffix.lower() in NON_DICOM_SUFFIXES:
                continue
            with open(path, "rb") as fh:
                head = fh.read(132)
        except OSError:
            return True  # unreadable: it will be listed with its reason
        if head[128:132] == b"DICM" or _looks_like_raw_dataset(head):
            return True
    return False


def _default_out(source: Path) -> Path:
    """DEID_OUTPUT beside the export; a numbered one if that holds another export's copy."""
    parent = source.parent if source.parent != source else source
    for i in range(1, 100):
        candidate = parent / (DEFAULT_OUT_NAME if i == 1 else f"{DEFAULT_OUT_NAME}_{i}")
        if folder_within(source, candidate.with_name(candidate.name + HOSPITAL_SUFFIX)):
            continue  # the export is named like this output's hospital folder: the next name
        if not candidate.exists() or not any(candidate.iterdir()):
            return candidate
        if source_of(candidate.with_name(candidate.name + HOSPITAL_SUFFIX)) == source:
            return candidate  # the same export again: it resumes or is redone
    return parent / f"{DEFAULT_OUT_NAME}_new"


LOCK_NAME = ".deid_tool.lock"  # in <DEST>_HOSPITAL_ONLY: one run at a time into one output


def _lock(hospital_dir: Path) -> BinaryIO | None:
    """An open file holding an exclusive lock for the run into this output, or None when another
    running deid_tool holds it (double-clicked twice). The system drops the lock when the process
    ends, so a power cut leaves nothing to clean up. Raises OSError when the folder cannot be made."""
    hospital_dir.mkdir(parents=True, exist_ok=True)
    fh = open(hospital_dir / LOCK_NAME, "a+b")
    try:
        if sys.platform == "win32":  # os.name "nt" (written so for mypy)
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _execute(config: RunConfig) -> int:
    try:
        lock = _lock(config.hospital_dir)
    except OSError as e:
        return _write_failed(e)
    if lock is None:
        console.error(f"another deid_tool is already writing {config.dest}",
                      "wait until its window shows the verdict (or close it), then run again if needed")
        return EXIT_USAGE
    try:
        return _execute_locked(config)
    finally:
        lock.close()


def _execute_locked(config: RunConfig) -> int:
    from .. import reports

    bar: list[console.Progress] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(console.Progress(total, "De-identifying"))
        bar[0].advance(done - bar[0].done)

    def on_problem(result: "FileResult") -> None:
        # plain words on screen (contract.HELD_REASONS); the exact reason is in held_back.csv
        console.say(f"\n  {result.ref}: kept back: {contract.classify_reason(result.reason).text}", sys.stderr)

    try:
        summary = run_export(config, progress=progress, on_problem=on_problem)
    except DecisionError as e:  # a person's decisions file cannot be read: nothing was done
        if bar:
            bar[0].close()
        console.error(f"review_decisions.csv: {e}", "fix that row (decision approve, reject or empty), then run again")
        return EXIT_USAGE
    except OSError as e:
        if bar:
            bar[0].close()
        return _write_failed(e)
    if bar:
        bar[0].close()
    notes = [f"Resumed: {summary.resumed} files were already done"] if summary.resumed else []
    try:
        reports.write_outward(config.dest, summary, config.guidelines)
        reports.write_crosswalk(config.hospital_dir, config.source, config.dest, summary)
        held_csv = reports.write_hospital_side(config.hospital_dir, summary, config.guidelines,
                                               config.source, config.dest, notes)
        page = _write_review_page(config, summary)
    except OSError as e:
        return _write_failed(e)
    review = summary.needs_review
    waiting = sum(1 for r in summary.results if r.status == HELD and r.proposal is not None)
    if waiting:
        _WAITING[:] = [(config.dest, waiting)]
    lines, title = verdict_lines(config, summary, held_csv, page, waiting)
    console.verdict(title, lines, ok=not review)
    return EXIT_REVIEW if review else EXIT_OK


def verdict_lines(config: RunConfig, summary: RunSummary, held_csv: Path, page: Path | None,
                  waiting: int = 0) -> tuple[list[str], str]:
    """The framed verdict in plain words: can the copy be sent, what was kept back, what to do
    about each group of kept-back files (contract.HELD_REASONS), the one next step."""
    kept = summary.needs_review
    lines = [f"The copy in {config.dest} is safe to send as it is: {summary.count('written')} files."]
    groups: dict[contract.Group, list[str]] = {}
    if kept:
        lines.append(f"{len(kept)} file(s) were kept back: they are NOT in the copy. What to do about them:")
        for r in kept:
            groups.setdefault(contract.classify_reason(r.reason).group, []).append(r.ref)
        for group in contract.Group:
            if group in groups:
                lines.append(f"  {len(groups[group]):>5}  {contract.GROUP_ADVICE[group]}")
                if group is contract.Group.ASK:  # the real references, not an example
                    refs = sorted(groups[group])
                    lines.append("         " + ", ".join(refs[:8]) + (f" and {len(refs) - 8} more (held_back.csv)"
                                                                      if len(refs) > 8 else ""))
                if group is contract.Group.REVIEW_IMAGES and waiting:
                    lines.append(f"         {waiting} wait for a person: deid_tool --review \"{config.dest}\" (or edit")
                    lines.append("         review_decisions.csv), then run again to send the approved ones")
                elif group is contract.Group.REVIEW_IMAGES and page is not None:
                    lines.append(f"         open {page} in a browser (it may show patient data)")
        lines.append(f"The list with the original file names and reasons: {held_csv}")
    other = summary.count("skipped") + summary.count("dicomdir") + summary.count("duplicate")
    if other:
        lines.append(f"Not needed for research, left out: {other} (not DICOM, DICOMDIR, repeated copies).")
    if contract.Group.RUN_AGAIN in groups:  # the copy is not finished: the true next step is to run again
        lines += ["Next: free space on the output disk (or see held_back.csv), then run the same command",
                  "again: it does only the files not done yet. Upload after that run."]
        return lines, f"Not finished: {len(groups[contract.Group.RUN_AGAIN])} file(s) not done yet; run again"
    lines += [f"Next: upload {config.dest} as agreed. Its names are already neutral: rename_folders is not",
              f"needed. To check it first: deid_tool --verify {config.dest} (it must say PASS).",
              "Never send the _HOSPITAL_ONLY folder or the site key."]
    title = (f"Finished: the copy can be sent; {len(kept)} file(s) kept back at the hospital" if kept
             else "Finished: the copy is ready to send")
    return lines, title


def _write_failed(e: OSError) -> int:
    import errno

    where = f" in {Path(e.filename).parent}" if getattr(e, "filename", None) else ""
    if getattr(e, "errno", None) == errno.ENOSPC:
        console.error(f"the output disk is full{where}", "free space or choose another --out, then run again: it resumes")
    elif getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        console.error(f"cannot write{where} ({e.strerror})",
                      "copy the export to a folder you may write to (the copy is made beside it), or choose "
                      "another --out, then run again: it resumes")
    else:
        console.error(f"cannot write{where} ({e.strerror})", "free space or choose another --out, then run again: it resumes")
    return EXIT_REVIEW


def _write_review_page(config: RunConfig, summary: RunSummary) -> Path | None:
    """The hospital-side page showing held-back and blanked images (it may show PHI)."""
    from ..review_page import ReviewEntry, write_review_page

    folder = config.hospital_dir / contract.REVIEW_IMAGES_DIR
    entries = []
    for r in summary.results:
        if not r.thumbnails:
            continue
        pngs = {name.rsplit("_", 1)[1].split(".")[0]: (folder / name).read_bytes()
                for name in r.thumbnails if (folder / name).is_file()}
        status = "hold" if r.status == HELD else "redacted"
        entries.append(ReviewEntry(r.ref, r.reason, status, pngs.get("before"), pngs.get("after")))
    if not entries:
        return None
    page = config.hospital_dir / "review.html"
    write_review_page(page, entries)
    return page


def _demo(args: argparse.Namespace, guidelines: Guidelines, override: Path | None) -> int:
    from ..synth import make_export

    base = Path(tempfile.mkdtemp(prefix="deidkit_demo_")) if args.out is None else args.out.resolve()
    source = base / "demo_export"
    dest = base / DEFAULT_OUT_NAME
    console.say(f"Making a synthetic export with fake patients in {source} ...")
    make_export(source, guidelines=guidelines)
    key_path = (args.key or base / "demo_site_key.txt").resolve()
    key, _ = load_or_create_key(key_path)
    config = RunConfig(source=source, dest=dest, hospital_dir=dest.with_name(dest.name + HOSPITAL_SUFFIX),
                       guidelines=guidelines, key=key, workers=args.workers, override_dir=override)
    console.say(f"De-identifying it into {dest} ...")
    code = _execute(config)
    console.say(f"\nLook at: {source} (before), {dest} (after), {config.hospital_dir} (hospital-only records).")
    console.say("The demo holds back a report, a PDF, broken files and an ultrasound image with burned-in text"
                " on purpose: that is what the tool does with such files.")
    return code
