"""`deid_tool --verify DIR [--report PATH] [--findings PATH] [--list-rules]`: the command line.
Exit status: 0 PASS, 1 REVIEW or FAIL, 2 usage error."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import console
from .. import guidelines as gl
from .delivery import Verdict, verify
from .report import record_lines, summary_lines, write_findings_csv, write_html
from .rules import catalogue_lines

SCREEN_WORDS = {"PASS": "PASS: nothing suspicious found.",
                "REVIEW": "REVIEW: nothing that is certainly PHI, but a person should look at the findings.",
                "FAIL": "FAIL: PHI found. Do not take this delivery into the library; tell the sender."}


def build_parser() -> argparse.ArgumentParser:
    """The deid_tool --verify command line parser."""
    p = argparse.ArgumentParser(prog="deid_tool --verify", description="Check a de-identified delivery (read-only).")
    p.add_argument("--verify", dest="dir", metavar="DIR", nargs="?", help="the delivered folder")
    p.add_argument("--report", metavar="PATH", help="HTML record (default: beside DIR)")
    p.add_argument("--findings", metavar="PATH", help="findings CSV (default: beside DIR)")
    p.add_argument("--jobs", "--workers", dest="jobs", type=int, default=0,
                   help="parallel processes (default: one per core)")
    p.add_argument("--list-rules", action="store_true", help="print every rule (id, severity, meaning) and exit")
    p.add_argument("--yes", action="store_true", help=argparse.SUPPRESS)  # deid_tool's; nothing is asked
    p.add_argument("--guidelines", metavar="DIR", help="folder with guideline files overriding the bundled ones")
    return p


def _outputs(args: argparse.Namespace, root: Path) -> tuple[Path, Path] | None:
    report = Path(args.report) if args.report else root.parent / f"{root.name}_verify_report.html"
    findings = Path(args.findings) if args.findings else root.parent / f"{root.name}_verify_findings.csv"
    for label, path in (("--report", report), ("--findings", findings)):
        if path.resolve().is_relative_to(root):
            console.error(f"{label} {path} is inside the delivery", "nothing may be written inside DIR; choose a path outside it")
            return None
    return report, findings


def _root(given: str | None) -> Path | None:
    if not given:
        console.error("no folder given", "give the delivered folder after --verify")
        return None
    root = Path(given)
    if not root.is_dir():
        console.error(f"{root} is not a folder", "give the delivered folder after --verify")
        return None
    root = root.resolve()
    if root.parent == root:
        console.error("cannot verify a drive root", "give the delivered folder itself")
        return None
    return root


def _verify_with_progress(root: Path, g: gl.Guidelines, jobs: int) -> Verdict | None:
    """verify() with a progress bar on screen; None (and one line) when stopped with Ctrl-C."""
    bar: list[console.Progress] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(console.Progress(total, "Checking"))
        bar[0].advance(done - bar[0].done)

    try:
        v = verify(root, g, jobs=jobs, progress=progress)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (the workers ignore it)
        if bar:
            bar[0].close()
        console.error("stopped by the user; nothing was checked to the end", "run the same command again")
        return None
    if bar:
        bar[0].close()
    return v


def main(argv: list[str]) -> int:
    """Run --verify from the command line; returns the exit status."""
    parser = build_parser()
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    if args.list_rules:
        for line in catalogue_lines():
            console.say(line)
        return 0
    root = _root(args.dir)
    outputs = _outputs(args, root) if root else None
    if root is None or outputs is None:
        return 2
    report, findings_path = outputs
    try:
        g = gl.load(Path(args.guidelines) if args.guidelines else None)
    except gl.GuidelineError as e:
        console.error(str(e), "fix or remove the guideline file named")
        return 2
    folder = Path(args.dir).name or root.name
    console.say(f"Verifying {root} against {g.describe()} (read-only).")
    v = _verify_with_progress(root, g, args.jobs)
    if v is None:
        return 2
    record = record_lines(folder, v, g)
    try:
        write_findings_csv(findings_path, v.findings)
        write_html(report, folder, v, record, summary_lines(v))
    except OSError as e:
        console.error(f"cannot write the report ({e.strerror or e})", "choose --report/--findings in a writable folder")
        return 2
    console.verdict(SCREEN_WORDS[v.status], record[1:] + summary_lines(v)
                    + [f"Findings: {findings_path}", f"Summary:  {report}"], ok=v.status == "PASS")
    return v.exit_code
