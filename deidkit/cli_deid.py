"""Command line of deid_tool (the script deid_tool.py only calls main())."""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from . import __version__, console
from .export import (FAILED, HELD, HOSPITAL_SUFFIX, RunConfig, output_is_ours, run_export, source_of,
                     state_matches)
from .guidelines import GuidelineError, load, locate
from .mapping import KeyError_, default_key_path, load_or_create_key

EXIT_OK, EXIT_REVIEW, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT_NAME = "DEID_OUTPUT"

HELP = """\
Make a de-identified copy of a PACS export folder, safe to send for research.
The original files are never changed. Files that cannot be de-identified with confidence
(reports, documents, images with text burned into the pixels that could not be blanked,
unreadable files) are held back and listed in a folder that stays at the hospital.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with a plain line
        console.error(message, "run with --help to see the options")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--guidelines", type=Path, metavar="DIR",
                   help="use guideline/settings files from DIR instead of the bundled ones "
                        "(default: files placed next to this program, if any)")
    p.add_argument("--workers", type=int, default=0, help="parallel processes (default: one per core, plus one)")
    p.add_argument("--demo", action="store_true",
                   help="make a small synthetic export with fake patient data and de-identify it")
    p.add_argument("--verify", type=Path, metavar="DIR",
                   help="check a delivery instead (receiving side); see --verify --help")
    p.add_argument("--review", type=Path, metavar="DEST",
                   help="open the review window for the images of an earlier run waiting for a person "
                        "(writes DEST_HOSPITAL_ONLY/review_decisions.csv; run again to apply it)")
    p.add_argument("--version", action="store_true", help="print the version and the guideline table edition")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore")  # pydicom's notes on odd input are not for the user's screen
    double_clicked = not argv
    if "--verify" in argv:
        from . import verify

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
    console.pause_before_exit(double_clicked)
    return code


_WAITING: list = []  # (DEST, waiting count) after a run whose images wait for a person


def _review(dest: Path | None = None, config_dest: tuple | None = None) -> int:
    """The review window (deidkit.review_window) for an output folder."""
    from . import review_window

    return review_window.main(dest if dest is not None else config_dest[0], say=console.say)


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
    dest = (args.out or _default_out(source)).resolve()
    if dest == source or source in dest.parents and args.out is not None:
        console.error("the output folder is inside the export folder", "choose --out outside the export")
        return EXIT_USAGE
    if dest in source.parents:
        console.error("the export folder is inside the output folder", "choose another --out")
        return EXIT_USAGE
    hospital = dest.with_name(dest.name + HOSPITAL_SUFFIX)
    key_path = (args.key or default_key_path()).resolve()
    if dest == key_path.parent or dest in key_path.parents:
        console.error("the key file must not be inside the output folder (it would be sent)",
                      "keep the key on the hospital side, e.g. the default place")
        return EXIT_USAGE
    try:
        key, created = load_or_create_key(key_path)
    except (KeyError_, OSError) as e:
        console.error(f"cannot use the site key: {e}", "check the --key path, or restore the key from backup")
        return EXIT_USAGE
    program_files = tuple(console.kit_files_beside_program())
    config = RunConfig(source=source, dest=dest, hospital_dir=hospital, guidelines=guidelines, key=key,
                       workers=args.workers, program_files=(*program_files, key_path), override_dir=override)
    if dest.exists() and any(dest.iterdir()) and not state_matches(config):
        if not output_is_ours(dest):
            console.error(f"the output folder {dest} is not empty", "choose an empty or new folder with --out")
            return EXIT_USAGE
        console.say(f"The output folder {dest} holds an earlier run made differently; it is replaced.")
        shutil.rmtree(dest)
    console.say(f"deid_tool {__version__}: de-identify a copy of an export ({guidelines.describe()})")
    console.say(f"  Export (not changed):   {source}")
    console.say(f"  De-identified copy:     {dest}")
    console.say(f"  Hospital-only records:  {hospital}  (never send this folder)")
    console.say(f"  Site key:               {key_path}" + ("  (new key created: back it up)" if created else ""))
    if not console.confirm("Start?", args.yes):
        console.say("Nothing was done.")
        return EXIT_USAGE
    return _execute(config)


def _default_out(source: Path) -> Path:
    """DEID_OUTPUT beside the export; a numbered one if that holds another export's copy."""
    parent = source.parent if source.parent != source else source
    for i in range(1, 100):
        candidate = parent / (DEFAULT_OUT_NAME if i == 1 else f"{DEFAULT_OUT_NAME}_{i}")
        if not candidate.exists() or not any(candidate.iterdir()):
            return candidate
        if source_of(candidate.with_name(candidate.name + HOSPITAL_SUFFIX)) == source:
            return candidate  # the same export again: it resumes or is redone
    return parent / f"{DEFAULT_OUT_NAME}_new"


def _execute(config: RunConfig) -> int:
    from . import reports

    bar: list[console.Progress] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(console.Progress(total, "De-identifying"))
        bar[0].advance(done - bar[0].done)

    def on_problem(result) -> None:
        word = "held back" if result.status == HELD else "failed"
        console.say(f"\n  {result.ref}: {word}: {result.reason}", sys.stderr)

    try:
        summary = run_export(config, progress=progress, on_problem=on_problem)
    except OSError as e:
        if bar:
            bar[0].close()
        return _write_failed(e)
    if bar:
        bar[0].close()
    notes = [f"Resumed: {summary.resumed} files were already done"] if summary.resumed else []
    try:
        reports.write_outward(config.dest, summary, config.guidelines)
        held_csv = reports.write_hospital_side(config.hospital_dir, summary, config.guidelines,
                                               config.source, config.dest, notes)
        page = _write_review_page(config, summary)
    except OSError as e:
        return _write_failed(e)
    review = summary.needs_review
    waiting = sum(1 for r in summary.results if r.status == HELD and r.proposal is not None)
    if waiting:
        _WAITING[:] = [(config.dest, waiting)]
    lines = [
        f"De-identified: {summary.count('written')} files  ->  {config.dest}",
        f"Held back for review: {summary.count(HELD)}   Failed: {summary.count(FAILED)}",
        f"Not DICOM, not copied: {summary.count('skipped')}   Duplicates: {summary.count('duplicate')}",
    ]
    if review:
        lines += ["Some files were NOT de-identified and are not in the copy.",
                  f"The list (with original names) is in {held_csv}",
                  "Look at them with your PACS team before deciding; do not send them as they are."]
        if page is not None:
            lines.append(f"Images to look at: open {page} in a browser (it may show patient data).")
        if waiting:
            lines.append(f"{waiting} image(s) wait for a person: deid_tool --review \"{config.dest}\" "
                         "(or edit review_decisions.csv), then run again to send the approved ones.")
    else:
        lines += ["The copy is ready to send. Next: run rename_folders if your process asks for it,",
                  "then upload the output folder. Never send the _HOSPITAL_ONLY folder or the key."]
    console.verdict("Finished with files to review" if review else "Finished", lines, ok=not review)
    return EXIT_REVIEW if review else EXIT_OK


def _write_failed(e: OSError) -> int:
    what = "the output disk is full" if getattr(e, "errno", None) == 28 else f"cannot write ({e.strerror})"
    console.error(what, "free space or choose another --out, then run again: it resumes")
    return EXIT_REVIEW


def _write_review_page(config: RunConfig, summary) -> Path | None:
    """The hospital-side page showing held-back and blanked images (it may show PHI)."""
    from .review_page import ReviewEntry, write_review_page

    folder = config.hospital_dir / "review_images"
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


def _demo(args: argparse.Namespace, guidelines, override: Path | None) -> int:
    from .synth import make_export

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
