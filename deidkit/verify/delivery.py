"""Whole-delivery checks: walk the tree, run the one-file check on all cores (or on Dask), then
cross-check (values seen as identity in one file found in another, in names, in non-DICOM files),
compare with deid_manifest.csv, and decide the verdict. Reads only; never raises for bad input.

Dask (receiving side only, optional; see `verify_on_dask`): the per-file check is a pure
function of (path, rel, want_hash, guidelines), so any scheduler can map it over a list of files.
"""
from __future__ import annotations

import csv
import os
import re
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import guidelines as gl
from .. import program
from ..sweep import Identifiers, date_spellings, fold, mask
from .elements import FileResult
from .kitfiles import MANIFEST_NAME, NOTES, kit_file_note, kit_folder
from .onefile import check_file
from .rules import FAIL, REVIEW, Finding, make
from .text import is_pseudonym, name_problems

NAME_SYNTAX = re.compile(r"[^\W\d_]{2,}\^[^\W\d_]{2,}(?:\^[^\W\d_]+)*")
NON_DICOM_SCAN_BYTES = 1 << 20  # how much of a non-DICOM file is searched for identities
Progress = Callable[[int, int], None]  # called with (files checked so far, files in all)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: status, every finding, and what decided it."""

    status: str  # PASS, REVIEW, FAIL
    findings: tuple[Finding, ...]
    files_checked: int
    dicom_files: int
    kit_files: tuple[tuple[str, str], ...] = ()   # (rel, what it is and where it goes)
    profiles: tuple[tuple[str, int], ...] = ()    # (declared options, files)
    manifest: str = "no deid_manifest.csv: completeness not checked"

    @property
    def exit_code(self) -> int:
        """0 when the delivery passed, 1 otherwise."""
        return 0 if self.status == "PASS" else 1

    @property
    def deciding(self) -> tuple[Finding, ...]:
        """The findings of the verdict's own severity (what decided it)."""
        return tuple(f for f in self.findings if f.severity == self.status)


_WORKER_GUIDELINES: list[gl.Guidelines] = []  # a pool worker's guidelines, from its initialiser


def _worker_init(g: gl.Guidelines) -> None:
    import warnings

    warnings.simplefilter("ignore")
    gl.register_new_attributes(g)
    _WORKER_GUIDELINES[:] = [g]


def _pool_worker_init(g: gl.Guidelines) -> None:
    """_worker_init in a pool process, which leaves Ctrl-C to the main process."""
    program.ignore_interrupt()
    _worker_init(g)


def _check_one(args: tuple[Path, str, bool, gl.Guidelines]) -> FileResult:
    return check_file(*args)


def _check_in_worker(items: list[tuple[Path, str, bool]]) -> list[FileResult]:
    """check_file over (path, rel, want_hash) items in a pool worker, with the guidelines its
    initialiser received: they are sent once per worker, not with every file (~1 MB pickled)."""
    return [check_file(*item, _WORKER_GUIDELINES[0]) for item in items]


def list_tree(root: Path) -> tuple[list[Path], list[Path], list[Path], list[tuple[Path, str]]]:
    """(files, folders, links, problems) under root, sorted; links are not followed, special files
    are listed among files (check_file names them), folders that cannot be listed are problems."""
    files: list[Path] = []
    folders: list[Path] = []
    links: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def onerror(e: OSError) -> None:
        problems.append((Path(e.filename or root), e.strerror or str(e)))

    def is_link(p: Path) -> bool | None:
        try:
            return p.is_symlink()
        except OSError as e:  # a path longer than the system allows: listed, not read
            problems.append((p, e.strerror or str(e)))
            return None

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=onerror):
        base = Path(dirpath)
        for d in list(dirnames):
            p = base / d
            link = is_link(p)
            if link is not False:
                dirnames.remove(d)
            (links if link else folders if link is False else []).append(p)
        for f in filenames:
            p = base / f
            link = is_link(p)
            (links if link else files if link is False else []).append(p)
    return sorted(files), sorted(folders), sorted(links), problems


def rel_of(path: Path, root: Path) -> str:
    """path relative to root, in / form (path itself when it is not under root)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_manifest(path: Path) -> tuple[dict[str, dict[str, str]], str | None]:
    """Rows of deid_manifest.csv by file; (rows, problem) where problem says why it is unusable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "size", "sha256"} <= set(reader.fieldnames):
                return {}, "deid_manifest.csv lacks the columns file, size, sha256"
            return {row["file"]: row for row in reader if row.get("file")}, None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return {}, f"deid_manifest.csv cannot be read ({type(e).__name__})"


def check_files(items: list[tuple[Path, str]], g: gl.Guidelines, want_hash: bool, jobs: int = 0,
                progress: Progress | None = None) -> list[FileResult]:
    """check_file over (path, rel) pairs on `jobs` processes (0: every core), results in order."""
    args = [(p, rel, want_hash) for p, rel in items]
    jobs = jobs or (os.cpu_count() or 1)
    if jobs <= 1 or len(args) < 16:
        _worker_init(g)
        out = []
        for a in args:
            out.append(check_file(*a, g))
            if progress:
                progress(len(out), len(args))
        return out
    results = []
    # Ctrl-C raised while waiting, not inside a fork hook (see program.deferred_interrupt)
    with program.deferred_interrupt(), ProcessPoolExecutor(max_workers=jobs, initializer=_pool_worker_init,
                                                           initargs=(g,)) as pool:
        size = max(1, min(64, len(args) // (jobs * 8) or 1))
        try:
            chunks = [pool.submit(_check_in_worker, args[i:i + size]) for i in range(0, len(args), size)]
            for future in chunks:
                while not program.wait_for_first([future], program.WAIT_SLICE_S):
                    pass
                for r in future.result():
                    results.append(r)
                    if progress:
                        progress(len(results), len(args))
        except KeyboardInterrupt:  # the workers ignore Ctrl-C: end them now, not after every file
            program.end_workers(pool)
            raise
    return results


def verify(root: Path, guidelines: gl.Guidelines, jobs: int = 0, progress: Progress | None = None,
           checker: Callable[[list[tuple[Path, str]], bool], list[FileResult]] | None = None) -> Verdict:
    """Check the delivery in root (reads only). `checker` replaces the local process pool (e.g. a
    Dask client's map, see verify_on_dask); it must return one FileResult per item, in order."""
    files, folders, links, problems = list_tree(root)
    findings = [make(rel_of(p, root), "file", "files:link", REVIEW, "symbolic link, not followed") for p in links]
    for p, why in problems:
        rule = "files:path-too-long" if "too long" in why.lower() else "files:unreadable"
        findings.append(make(rel_of(p, root), "file", rule, REVIEW, f"folder cannot be listed ({why})"))
    kit, skip = kit_items(root, files, folders)
    manifest, manifest_line, manifest_findings = _manifest(root)
    items = [(p, rel_of(p, root)) for p in files if rel_of(p, root) not in skip]
    if checker is not None:
        results = checker(items, bool(manifest))
    else:
        results = check_files(items, guidelines, bool(manifest), jobs, progress)
    for r in results:
        findings += r.findings
    findings += manifest_findings + _cross_checks(root, results, folders, files, guidelines, skip)
    if manifest:
        completeness = _completeness(results, manifest, guidelines.settings.pseudonym_prefix, skip)
        findings += completeness
        manifest_line = _manifest_result(len(manifest), completeness)
    return _verdict(findings, results, kit, manifest_line)


def kit_items(root: Path, files: list[Path], folders: list[Path]) -> tuple[dict[str, str], set[str]]:
    """(kit file or folder -> what it is and where it goes, every path of the kit's to leave out)."""
    kit_dirs = {rel_of(d, root) for d in folders if "/" not in rel_of(d, root) and kit_folder(d)}
    notes = {d: NOTES["folder"] for d in kit_dirs}
    skip = set(kit_dirs)
    for p in files + folders:
        rel = rel_of(p, root)
        if rel.split("/")[0] in kit_dirs:
            skip.add(rel)
        elif p in files and (note := kit_file_note(p, rel)):
            notes[rel] = note
            skip.add(rel)
    return notes, skip


def _verdict(findings: list[Finding], results: list[FileResult], kit: dict[str, str], manifest_line: str) -> Verdict:
    findings.sort(key=lambda f: (f.file, f.location, f.rule, f.detail))
    status = "FAIL" if any(f.severity == FAIL for f in findings) else ("REVIEW" if findings else "PASS")
    dicom = sum(1 for r in results if r.kind in ("dicom", "dicomdir"))
    profiles: dict[str, int] = {}
    for r in results:
        if r.kind == "dicom":
            key = r.profile or "none declared (judged by the Basic Profile, no option)"
            profiles[key] = profiles.get(key, 0) + 1
    return Verdict(status, tuple(findings), len(results), dicom, tuple(sorted(kit.items())),
                   tuple(sorted(profiles.items())), manifest_line)


def _manifest(root: Path) -> tuple[dict[str, dict[str, str]], str, list[Finding]]:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return {}, "no deid_manifest.csv: completeness not checked", []
    manifest, problem = read_manifest(path)
    if problem:
        return {}, f"deid_manifest.csv present but unusable: {problem}", [
            make(MANIFEST_NAME, "file", "completeness:manifest-unreadable", REVIEW, problem)]
    return manifest, "", []


def _manifest_result(listed: int, completeness: list[Finding]) -> str:
    counts = {k: sum(1 for f in completeness if f.rule == f"completeness:{k}") for k in ("missing", "altered", "extra")}
    if not any(counts.values()) and not any(f.rule == "names:manifest-patient" for f in completeness):
        return f"deid_manifest.csv checked: all {listed} listed file(s) present and unchanged (size, SHA-256), none extra"
    return ("deid_manifest.csv checked: does NOT match: "
            + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" (of {listed} listed)")


def delivery_identifiers(results: Iterable[FileResult]) -> Identifiers:
    """Names, IDs and dates that some file leaked, as the engine's sweep would look for them."""
    ids = Identifiers()
    for r in results:
        for name in r.leaked_names:
            ids.add_name(name)
        for value in r.leaked_ids:
            if re.fullmatch(r"\d{8}", value):
                ids.exact |= {fold(s) for s in date_spellings(value)}
            else:
                ids.add_exact(value)
    return ids


def _cross_checks(root: Path, results: list[FileResult], folders: list[Path], files: list[Path],
                  g: gl.Guidelines, kit: set[str]) -> list[Finding]:
    """Values seen as identity in one file, found in another; names of files and folders."""
    ids = delivery_identifiers(results)
    for path in folders + files:  # a LAST^FIRST in a name is a patient's identity too
        for name in NAME_SYNTAX.findall(path.name):
            ids.add_name(name)
    out: list[Finding] = []
    flagged = {(f.file, f.location) for r in results for f in r.findings if f.severity == FAIL}
    for r in results:
        for location, value in r.texts:
            hits = ids.find(value) if (r.rel, location) not in flagged else []
            if hits:
                cat = "names" if "name" in hits else "ids"
                what = "a name" if hits[0] == "name" else "an identifier"
                out.append(make(r.rel, location, f"{cat}:known-identity", FAIL,
                                f"holds {what} seen as a patient's identity elsewhere in the delivery: {mask(value)}"))
                flagged.add((r.rel, location))
        if r.kind == "non-dicom":
            out += _scan_content(root / r.rel, r.rel, ids)
    out += _split_studies(results)
    for path in folders + files:
        rel = rel_of(path, root)
        if rel in kit:
            continue
        problems = name_problems(path.name, g)
        if ids.find(re.sub(r"[_^]+", " ", path.name)):
            problems.append(("paths:header-value-in-name", FAIL, f"name holds a value seen in a header: {mask(path.name)}"))
        out += [make(rel, "name", rule, severity, why) for rule, severity, why in problems]
    return out


def _split_studies(results: list[FileResult]) -> list[Finding]:
    """One study under two patient IDs: pseudonyms are inconsistent (or files were mixed up)."""
    patients: dict[str, dict[str, str]] = {}
    for r in results:
        if r.kind == "dicom" and r.study:
            patients.setdefault(r.study, {}).setdefault(r.patient, r.rel)
    out = []
    for _study, by_patient in sorted(patients.items()):
        if len(by_patient) > 1:
            first = sorted(by_patient.values())[0]
            out.append(make(first, "(0020,000D)", "identity:study-split-over-patients", REVIEW,
                            f"this file's study appears under {len(by_patient)} different Patient IDs "
                            "in the delivery (inconsistent pseudonyms, or files mixed up)"))
    return out


def _scan_content(path: Path, rel: str, ids: Identifiers) -> list[Finding]:
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return []
        with open(path, "rb") as f:
            data = f.read(NON_DICOM_SCAN_BYTES)
    except OSError:
        return []
    text = data.decode("utf-8", "replace")
    out = []
    hits = ids.find(text)
    if hits:
        what = "a name" if hits[0] == "name" else "an identifier"
        out.append(make(rel, "file", f"{'names' if 'name' in hits else 'ids'}:known-identity", FAIL,
                        f"content holds {what} seen as a patient's identity elsewhere in the delivery"))
    if re.search(r"(?<![\w/\\.])[^\W\d_]{2,}\^[^\W\d_]{2,}", text):
        out.append(make(rel, "file", "names:person-name-in-content", FAIL, "content holds person name syntax (LAST^FIRST)"))
    return out


def _completeness(results: list[FileResult], manifest: dict[str, dict[str, str]], prefix: str,
                  kit: set[str]) -> list[Finding]:
    out = []
    for _rel, row in sorted(manifest.items()):
        patient = (row.get("patient") or "").strip()
        if patient and not is_pseudonym(patient, prefix):
            out.append(make(MANIFEST_NAME, "file", "names:manifest-patient", FAIL,
                            f"deid_manifest.csv names a patient that is not a pseudonym: {mask(patient)}"))
            break
    on_disk = {r.rel: r for r in results}
    for rel, row in sorted(manifest.items()):
        r = on_disk.get(rel)
        if r is None:
            out.append(make(rel, "file", "completeness:missing", REVIEW, "listed in deid_manifest.csv, not in the delivery"))
            continue
        try:
            size = int(row.get("size", "") or -1)
        except ValueError:
            size = -1
        if size != r.size or (row.get("sha256", "").lower() != r.sha256):
            what = "size" if size != r.size else "SHA-256"
            out.append(make(rel, "file", "completeness:altered", REVIEW,
                            f"{what} differs from deid_manifest.csv: the file changed after de-identification"))
    for rel in sorted(on_disk):
        if rel not in manifest and rel not in kit:
            out.append(make(rel, "file", "completeness:extra", REVIEW, "in the delivery but not in deid_manifest.csv"))
    return out


def check_files_on_dask(items: list[tuple[Path, str]], guidelines: gl.Guidelines, client: Any,
                        want_hash: bool = False, batch: int = 256) -> list[FileResult]:
    """check_file over (path, rel) pairs on a Dask cluster (a dask.distributed.Client), in order.

    For a list of files from many deliveries: every worker must see the paths (a shared file
    system). Raises ImportError when dask is not installed."""
    import dask.bag as db

    if not items:
        return []
    args = [(p, rel, want_hash, guidelines) for p, rel in items]
    bag = db.from_sequence(args, partition_size=batch).map(_check_one)
    return list(client.compute(bag).result())


def verify_on_dask(root: Path, guidelines: gl.Guidelines, client: Any, batch: int = 256) -> Verdict:
    """verify() with the per-file checks run on a Dask cluster (dask.distributed.Client); the
    cross-checks and the verdict run here. Same findings as verify(). Raises ImportError when
    dask is not installed."""
    def run(items: list[tuple[Path, str]], want_hash: bool) -> list[FileResult]:
        return check_files_on_dask(items, guidelines, client, want_hash, batch)

    return verify(root, guidelines, checker=run)
