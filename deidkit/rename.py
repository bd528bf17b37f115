"""rename_folders: give every folder and file below a root a neutral, indexed name, in place.

Scheme (names come from what is inside, read from the DICOM headers; never header text):
  P0001            a folder holding one patient (patients numbered 1.. in a neutral order)
  P0001_ST01_CT    a folder holding one study of that patient (studies by date), modalities
  SE001_CT         a folder holding one series (series ranked by series number within its study)
  F001             any other folder (several patients, nothing readable, below a series)
  IM00001.dcm      a DICOM file (ordered by patient, study, series, instance number)
  OTHER0001.pdf    a file that is not DICOM (a common extension is kept so it still opens;
                   any other ending is dropped: it could carry a name)
A folder is named at the first level below what its ancestors were named at, at which it holds
one thing and its parent holds several; failing that, at the next level below its ancestors'
if it holds one thing there; else F. Numbers are zero-padded so names sort naturally; a
duplicate among siblings (ignoring case) gets _2, _3.

DICOMDIR files are moved out of the tree to the hospital-side folder (they list patient names
and old file names, and would be stale after renaming); so are non-DICOM files with
--move-other-out. Crash safety lives in deidkit.journal.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import re
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread

from . import __version__, console, contract
from .contract import INDEX_COLUMNS, INDEX_NAME
from .identity_check import identity_warnings
from .journal import JOURNAL_NAME, Journal, Replay, count_steps, long_path, write_atomic, write_secret

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# Endings a non-DICOM file keeps (lower case), so a person can still open it; any other ending
# is dropped with the name (it could carry one).
KEPT_EXTENSIONS = frozenset(
    ".pdf .txt .htm .html .xml .csv .json .doc .docx .rtf .odt .xls .xlsx .ods .ppt .pptx .jpg .jpeg .png "
    ".gif .bmp .tif .tiff .zip .7z .gz .tar .mp4 .avi .mov .mpg .mpeg .wav .mp3 .exe .dll .ini .inf .log "
    ".js .css .ico .db .bat .sh .cfg .md .lnk .nii .mha .raw .stl .obj".split())
LEVELS = ("folder", "patient", "study", "series")
# Defined terms of Modality (0008,0060), PS3.3 C.7.3.1.1.1; anything else is written as OT.
MODALITIES = frozenset(
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID GM "
    "HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS "
    "OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN "
    "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC".split())

# Windows rules (checked as pure functions, so they are tested on any machine).
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
WINDOWS_BAD_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
WINDOWS_MAX_PATH = 260


def windows_name_problem(name: str) -> str | None:
    """Why a file name is not allowed on Windows, or None."""
    if not name or name in (".", ".."):
        return "empty name"
    if WINDOWS_BAD_CHARS.search(name):
        return "character not allowed on Windows"
    if name[-1] in ". ":
        return "ends with a dot or space"
    if name.split(".")[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        return "reserved device name on Windows"
    if len(name) > 255:
        return "longer than 255 characters"
    return None


def windows_path_too_long(root: str, rel_parts: list[str]) -> bool:
    """True when root + relative path would pass Windows' classic 260-character limit."""
    return len(root.rstrip("\\/")) + sum(len(p) + 1 for p in rel_parts) >= WINDOWS_MAX_PATH


def casefold_duplicates(names: list[str]) -> list[str]:
    """Names that collide with another one on a case-insensitive file system."""
    seen: dict[str, int] = {}
    for n in names:
        seen[n.casefold()] = seen.get(n.casefold(), 0) + 1
    return [n for n in names if seen[n.casefold()] > 1]


# ---- reading: a tree of nodes with neutral facts ------------------------------------------

@dataclass
class Facts:
    """What naming needs from one header. Identity keys are hashes, so no PHI is carried."""
    patient: str
    study: str
    series: str
    study_order: tuple
    series_number: int | None
    instance_number: int | None
    instance_key: str
    modality: str
    warnings: tuple[str, ...]


@dataclass
class Node:
    name: str
    kind: str                      # dir, dicom, other, link, dicomdir
    facts: Facts | None = None
    children: list["Node"] = field(default_factory=list)
    unreadable: bool = False


def _h(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def _int(value: object) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 10**9 else None


def read_facts(path: str) -> Facts | str | None:
    """Facts of a DICOM file; "dicomdir" for a media directory; None when not readable DICOM."""
    try:
        ds = dcmread(long_path(path), stop_before_pixels=True, force=False, defer_size="2 KB")
    except Exception:  # noqa: BLE001 - anything unreadable is treated as non-DICOM
        return None
    try:
        meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if meta_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
            return "dicomdir"
        get = lambda kw: str(ds.get(kw, "") or "")  # noqa: E731
        modality = get("Modality").strip().upper()
        patient = _h(get("PatientID"), get("PatientName"))
        study_uid = get("StudyInstanceUID")
        return Facts(
            patient=patient,
            study=_h(patient, study_uid),
            series=_h(patient, study_uid, get("SeriesInstanceUID")),
            study_order=(get("StudyDate"), get("StudyTime"), _h(study_uid)),
            series_number=_int(ds.get("SeriesNumber")),
            instance_number=_int(ds.get("InstanceNumber")),
            instance_key=_h(get("SOPInstanceUID")),
            modality=modality if modality in MODALITIES else "OT",
            warnings=tuple(identity_warnings(ds)),
        )
    except Exception:  # noqa: BLE001 - a header pydicom cannot interpret: non-DICOM, reviewed
        return None


def _is_link(entry: os.DirEntry) -> bool:
    if entry.is_symlink():
        return True
    is_junction = getattr(entry, "is_junction", None)  # Python 3.12+: Windows junctions
    return bool(is_junction and is_junction())


def _is_regular(entry: os.DirEntry) -> bool:
    """A regular file (not a FIFO, device or socket, which would block or never end if read)."""
    try:
        return stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return True  # it vanished or cannot be stat'ed: reading it fails fast and says so


def scan(root: Path, exclude: set[Path], progress: bool = True) -> Node:
    """Walk the tree without following links; read the headers of the files."""
    top = Node(name="", kind="dir")
    files: list[tuple[Node, str]] = []
    stack = [(top, os.fspath(root))]
    while stack:
        node, path = stack.pop()
        try:
            with os.scandir(long_path(path)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            node.unreadable = True  # renamed itself, but its contents cannot be: reviewed
            continue
        for entry in entries:
            full = os.path.join(path, entry.name)
            if Path(full) in exclude:
                continue
            if _is_link(entry):
                node.children.append(Node(entry.name, "link"))
            elif entry.is_dir(follow_symlinks=False):
                child = Node(entry.name, "dir")
                node.children.append(child)
                stack.append((child, full))
            elif not _is_regular(entry):
                node.children.append(Node(entry.name, "special"))  # FIFO, device, socket: never opened
            else:
                child = Node(entry.name, "other")
                node.children.append(child)
                files.append((child, full))
    bar = console.Progress(len(files), "Reading headers") if progress else None
    for node, full in files:
        facts = read_facts(full)
        if node.name.upper() == "DICOMDIR" or facts == "dicomdir":
            node.kind = "dicomdir"
        elif isinstance(facts, Facts):
            node.kind, node.facts = "dicom", facts
        if bar:
            bar.advance()
    if bar:
        bar.close()
    return top


# ---- planning (pure) ----------------------------------------------------------------------

@dataclass
class _Agg:
    patients: set = field(default_factory=set)
    studies: set = field(default_factory=set)
    series: set = field(default_factory=set)
    modalities: set = field(default_factory=set)

    def single(self, level: int) -> bool:
        return len((None, self.patients, self.studies, self.series)[level]) == 1


def _aggregate(node: Node, out: dict[int, _Agg]) -> _Agg:
    agg = _Agg()
    for child in node.children:
        if child.kind == "dir":
            sub = _aggregate(child, out)
            agg.patients |= sub.patients
            agg.studies |= sub.studies
            agg.series |= sub.series
            agg.modalities |= sub.modalities
        elif child.kind == "dicom":
            f = child.facts
            agg.patients.add(f.patient)
            agg.studies.add(f.study)
            agg.series.add(f.series)
            agg.modalities.add(f.modality)
    out[id(node)] = agg
    return agg


def _mods(mods: set[str]) -> str:
    ordered = sorted(mods)
    return "-".join(ordered) if len(ordered) <= 3 else "MIX"


def _unique(names: list[str], reserved: set[str]) -> list[str]:
    """Make sibling names unique ignoring case (Windows/macOS): second P0001 becomes P0001_2."""
    taken = {r.casefold() for r in reserved}
    last: dict[str, int] = {}  # name -> last suffix tried, so many duplicates stay linear
    out = []
    for name in names:
        stem, ext = os.path.splitext(name)
        candidate, n = name, last.get(name.casefold(), 1)
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem}_{n}{ext}"
        last[name.casefold()] = n
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def _rank_within(ordered: list[str], parent_of) -> dict[str, int]:
    """1-based rank of each item among those with the same parent, in the given order (linear)."""
    seen: dict[str, int] = {}
    rank: dict[str, int] = {}
    for item in ordered:
        parent = parent_of(item)
        seen[parent] = seen.get(parent, 0) + 1
        rank[item] = seen[parent]
    return rank


def make_plan(root_node: Node, reserved_top: set[str], hospital_out: str,
              move_other_out: bool, token: str) -> dict:
    """The complete rename plan and the neutral index; pure (no file system access)."""
    aggs: dict[int, _Agg] = {}
    _aggregate(root_node, aggs)

    # Neutral numbering: patients by hash, studies by date within a patient, series by number.
    all_dicom = [n.facts for n in _walk_files(root_node) if n.kind == "dicom"]
    patients = sorted({f.patient for f in all_dicom})
    pnum = {p: i + 1 for i, p in enumerate(patients)}
    pwidth = max(4, len(str(len(patients))))
    study_orders: dict[str, tuple] = {}
    series_orders: dict[str, tuple] = {}
    for f in all_dicom:
        order = (f.patient, f.study_order)  # the earliest over the study's files: walk order must not matter
        study_orders[f.study] = min(study_orders.get(f.study, order), order)
        key = (f.study, f.series_number if f.series_number is not None else 10**9, f.series)
        series_orders[f.series] = min(series_orders.get(f.series, key), key)
    snum = _rank_within(sorted(study_orders, key=lambda s: (study_orders[s], s)), lambda s: study_orders[s][0])
    rnum = _rank_within(sorted(series_orders, key=lambda r: series_orders[r]), lambda r: series_orders[r][0])
    series_number_of = {f.series: f.series_number for f in all_dicom}

    def folder_name(agg: _Agg, level: int) -> str:
        if level == 1:
            return f"P{pnum[next(iter(agg.patients))]:0{pwidth}d}"
        if level == 2:
            study = next(iter(agg.studies))
            p = study_orders[study][0]
            return f"P{pnum[p]:0{pwidth}d}_ST{snum[study]:02d}_{_mods(agg.modalities) or 'OT'}"
        series = next(iter(agg.series))
        return f"SE{rnum[series]:03d}_{_mods(agg.modalities) or 'OT'}"

    def level_for(agg: _Agg, parent: _Agg, consumed: int) -> int:
        for level in range(consumed + 1, 4):
            if agg.single(level) and not parent.single(level):
                return level
        if consumed < 3 and agg.single(consumed + 1):
            return consumed + 1
        return 0

    groups: list[dict] = []
    rows: list[dict] = []
    review_other: list[str] = []
    review_identified: list[str] = []
    moved_out: list[str] = []

    def visit(node: Node, old_dir: list[str], new_dir: list[str], consumed: int, level: int) -> int:
        """Plan node's children (post-order); returns the index of node's group."""
        agg = aggs[id(node)]
        dirs = [c for c in node.children if c.kind == "dir"]
        dicoms = sorted((c for c in node.children if c.kind == "dicom"),
                        key=lambda c: (pnum[c.facts.patient], snum[c.facts.study], rnum[c.facts.series],
                                       c.facts.instance_number if c.facts.instance_number is not None else 10**9,
                                       c.facts.instance_key, c.name))
        others = [c for c in node.children if c.kind in ("other", "link", "special")]
        dicomdirs = [c for c in node.children if c.kind == "dicomdir"]

        # proposed names
        dir_levels = {}
        proposed: list[tuple[Node, str]] = []
        generic = 0
        for c in dirs:
            lv = level_for(aggs[id(c)], agg, consumed)
            dir_levels[id(c)] = lv
        n_generic = sum(1 for c in dirs if dir_levels[id(c)] == 0)
        gwidth = max(3, len(str(n_generic)))
        for c in sorted(dirs, key=lambda c: c.name):
            lv = dir_levels[id(c)]
            if lv:
                proposed.append((c, folder_name(aggs[id(c)], lv)))
            else:
                generic += 1
                proposed.append((c, f"F{generic:0{gwidth}d}"))
        iwidth = max(5, len(str(len(dicoms))))
        proposed += [(c, f"IM{i + 1:0{iwidth}d}.dcm") for i, c in enumerate(dicoms)]
        owidth = max(4, len(str(len(others))))
        proposed += [(c, f"OTHER{i + 1:0{owidth}d}{_kept_extension(c)}") for i, c in enumerate(others)]
        reserved = reserved_top if not old_dir else set()
        finals = _unique([n for _, n in proposed], reserved)
        final_of = {id(c): f for (c, _), f in zip(proposed, finals)}

        # children first (their groups come before this one)
        child_group = {}
        for c in dirs:
            lv = dir_levels[id(c)]
            child_group[id(c)] = visit(c, old_dir + [c.name], new_dir + [final_of[id(c)]],
                                       lv if lv else consumed, lv)

        entries = []
        for c, _ in proposed:
            new = final_of[id(c)]
            out = None
            if c.kind in ("other", "link", "special"):
                if move_other_out and c.kind != "special":
                    out = os.path.join(hospital_out, *new_dir, new)
                    moved_out.append("/".join([*new_dir, new]))
                else:
                    review_other.append("/".join([*new_dir, new]) + {"link": " (a link, not followed)",
                                                                     "special": " (not a regular file; not opened)"}
                                        .get(c.kind, ""))
            if out is None and new == c.name and c.kind != "dir":
                continue  # already neutral (folders stay listed: their group must finish first)
            entries.append({"old": c.name, "final": None if out else new, "tmp": None, "out": out,
                            "group": child_group.get(id(c))})
        for c in dicomdirs:
            entries.append({"old": c.name, "final": None, "tmp": None, "group": None,
                            "out": os.path.join(hospital_out, *new_dir, "DICOMDIR")})
            moved_out.append("/".join([*new_dir, "DICOMDIR"]))
        old_names = {c.name.casefold() for c in node.children}
        # Route through temporary names when a new name is taken by another entry's old name,
        # or differs from its own only in case (case-insensitive file systems).
        routed = any(e["final"] and e["final"] != e["old"] and e["final"].casefold() in old_names
                     for e in entries)
        if routed:
            for i, e in enumerate(e for e in entries if e["final"]):
                e["tmp"] = f"~rf{token}{i:06d}"
        groups.append({"dir": old_dir, "new_dir": new_dir, "routed": routed, "entries": entries})

        if node.unreadable:
            review_other.append(("/".join(new_dir) or ".") + "/ (folder could not be read)")
        warned = [c for c in dicoms if c.facts.warnings]
        reasons = sorted({w for c in warned for w in c.facts.warnings})
        folder = "/".join(new_dir) or "."
        if warned:
            review_identified.append(folder)
        single_series = next(iter(agg.series)) if agg.single(3) else None
        note = []
        if dicomdirs:
            note.append("DICOMDIR moved out to the hospital-side folder")
        if move_other_out and others:
            note.append(f"{len(others)} non-DICOM file(s) moved out to the hospital-side folder")
        study_id = next(iter(agg.studies)) if agg.single(2) else None
        rows.append({
            "folder": folder,
            "level": "top" if not old_dir else LEVELS[level],
            "patient": f"P{pnum[next(iter(agg.patients))]:0{pwidth}d}" if agg.single(1) else
                       (f"{len(agg.patients)} patients" if agg.patients else ""),
            "study": f"ST{snum[study_id]:02d}" if study_id else (f"{len(agg.studies)} studies" if agg.studies else ""),
            "series": f"SE{rnum[single_series]:03d}" if single_series else
                      (f"{len(agg.series)} series" if agg.series else ""),
            "modality": _mods(agg.modalities),
            "series_number": "" if single_series is None or series_number_of.get(single_series) is None
                             else str(series_number_of[single_series]),
            "dicom_files": str(len(dicoms)),
            "other_files": str(len(others)),
            "subfolders": str(len(dirs)),
            "files_looking_identified": str(len(warned)),
            "identity_warnings": "; ".join(reasons),
            "note": "; ".join(note),
        })
        return len(groups) - 1

    visit(root_node, [], [], 0, 0)
    rows.sort(key=lambda r: r["folder"])
    return {"token": token, "groups": groups, "index": rows, "review_other": sorted(review_other),
            "review_identified": sorted(review_identified), "moved_out": sorted(moved_out),
            "hospital_dir": hospital_out}


def _kept_extension(node: Node) -> str:
    """The ending a non-DICOM file keeps (".pdf"), or "" (links and special files keep none)."""
    if node.kind != "other":
        return ""
    ext = os.path.splitext(node.name)[1].lower()
    return ext if ext in KEPT_EXTENSIONS else ""


def _walk_files(node: Node):
    for c in node.children:
        if c.kind == "dir":
            yield from _walk_files(c)
        else:
            yield c


def plan_problems(plan: dict, root: str) -> list[str]:
    """Checks of the planned names against Windows rules (they hold by construction)."""
    problems = []
    for group in plan["groups"]:
        finals = [e["final"] for e in group["entries"] if e["final"]]
        for name in finals:
            why = windows_name_problem(name)
            if why:
                problems.append(f"planned name {name}: {why}")
        if casefold_duplicates(finals):
            problems.append("two planned names differ only in case")
        if any(windows_path_too_long(root, [*group["new_dir"], n]) for n in finals):
            problems.append(f"a path below {'/'.join(group['new_dir']) or 'the top folder'} passes 260 characters"
                            " (fine on Linux/macOS; on Windows the tool uses long paths)")
    return problems


def key_mapping(plan: dict) -> list[list[str]]:
    """Old relative path -> new relative path (PHI: only for the key file outside the tree)."""
    out = []
    for group in plan["groups"]:
        for e in group["entries"]:
            new = "/".join([*group["new_dir"], e["final"]]) if e["final"] else f"(moved out) {e['out']}"
            out.append(["/".join([*group["dir"], e["old"]]), new])
    return sorted(out)


# ---- index ------------------------------------------------------------------------------

def index_csv(plan: dict) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(plan["index"])
    return (contract.CSV_BOM + buf.getvalue()).encode("utf-8")  # the mark makes Excel read UTF-8


def is_our_index(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), None) == INDEX_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


# ---- command line -----------------------------------------------------------------------

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
    package = Path(__file__).resolve().parent
    if _inside(package, root):
        candidates.append(package)  # running from source inside the export
    candidates += console.kit_files_beside_program()
    for c in candidates:
        if c.exists() and _inside(c, root) and c != root.resolve():
            own.add(root / c.resolve().relative_to(root.resolve()))
    return own


def parse_args(argv: list[str]) -> argparse.Namespace:
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


def _finish_lines(plan: dict, outcome, complete: bool) -> tuple[list[str], bool]:
    lines: list[str] = []
    ok = complete and not outcome.failures and not outcome.missing
    if complete:
        lines.append("Every folder and file below the top folder now has a neutral name; see index.csv.")
    else:
        lines.append("The renaming is NOT finished. Nothing is lost: run the program again to finish it")
        lines.append("(or with --undo to roll back). Until then a hidden journal with the old names is in the folder.")
    lines += [f"Problem: {m}" for m in outcome.failures[:20]]
    lines += [f"Problem: {m}" for m in outcome.missing[:20]]
    if plan["moved_out"]:
        lines.append(f"{len(plan['moved_out'])} file(s) (DICOMDIR / non-DICOM) go out of the tree to the hospital-side folder"
                     " (DICOMDIR lists patient names and old file names).")
    if plan["review_other"]:
        ok = False
        lines += _listed(f"{len(plan['review_other'])} file(s) are not DICOM (reports, viewer files, broken files):"
                         " check them before sharing, or delete them:", plan["review_other"], "other_files")
    if plan["review_identified"]:
        ok = False
        lines += _listed(f"Headers still look identified in {len(plan['review_identified'])} folder(s) (patient "
                         "name/ID, Patient Identity Removed not set): renaming does not de-identify; run deid_tool "
                         "first:", plan["review_identified"], "identity_warnings")
    if ok:
        lines.append("Nothing looks identifying in names or headers.")
    lines.append("The top folder itself keeps its name: rename it yourself if it names the patient.")
    return lines, ok


def _replay(root: Path, journal: Journal, plan: dict, undo: bool) -> int:
    progress = journal.progress()
    total = sum(len(g["entries"]) * 2 for g in plan["groups"]) if undo else count_steps(plan, progress)
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
    hospital = Path(args.hospital_dir).resolve() if args.hospital_dir else \
        root.parent / (root.name + contract.HOSPITAL_SUFFIX)
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
    return _replay(root, journal, plan, undo)


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
        console.error("there is no run to roll back here (no journal, no undo data in the hospital-side folder).",
                      "give the file written by the run: --undo --key FILE")
        return 2
    try:
        plan = json.loads(key_path.read_text(encoding="utf-8"))["plan"]
    except (OSError, ValueError, KeyError):
        console.error("the undo data cannot be read.", "give the key file written by the run to undo.")
        return 2
    console.say(f"Undo data: {key_path}")
    if args.dry_run:
        console.say("The finished run would be rolled back. Nothing changed (--dry-run).")
        return 0
    if not console.confirm("Roll back the renaming recorded in this file?", args.yes):
        return 2
    journal.write_plan(plan)
    for k, _group in enumerate(plan["groups"]):
        journal.mark(f"F {k}")
    code = _replay(root, journal, plan, undo=True)
    if code == 0 and not args.key and key_path.is_file():
        key_path.unlink()  # done with; it holds old names
    return code


def _rename(root: Path, journal: Journal, hospital: Path, key_path: Path | None, args: argparse.Namespace) -> int:
    """Scan, plan, warn, ask, keep the undo data, journal, rename."""
    base = hospital / "moved_out"
    n = 1
    while base.exists():
        n += 1
        base = hospital / f"moved_out_{n}"
    own = _own_files(root)
    tree = scan(root, own)
    console.say("Planning the new names ...")
    plan = make_plan(tree, {p.name for p in own}, os.fspath(base), args.move_other_out, _token(tree))
    for problem in plan_problems(plan, os.fspath(root)):
        console.say(f"Note: {problem}")
    n_steps = sum(len(g["entries"]) for g in plan["groups"])
    console.say(f"Plan: {n_steps} item(s) to rename or move in {len(plan['index']) - 1} folder(s) below the top folder.")
    if args.dry_run:
        return _show_dry_run(plan)
    if plan["review_identified"]:
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
                                            "mapping": key_mapping(plan), "plan": plan},
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


def _token(tree: Node) -> str:
    """Temporary-name token, derived from every name in the tree: the same tree gives the same
    plan bytes, and a leftover temporary name changes the token, so it can never be reused."""
    digest = hashlib.sha256()
    stack = [tree]
    while stack:
        node = stack.pop()
        for c in node.children:
            digest.update(c.name.encode("utf-8", "surrogatepass") + b"\0")
            stack.append(c)
    return digest.hexdigest()[:8]


def _show_dry_run(plan: dict) -> int:
    console.say("New folder names (nothing changed, --dry-run):")
    for row in plan["index"]:
        console.say(f"  {row['folder']}  [{row['level']}] {row['dicom_files']} DICOM, {row['other_files']} other"
                    + (f"  ! {row['identity_warnings']}" if row["identity_warnings"] else ""))
    lines, ok = _finish_lines(plan, type("O", (), {"failures": [], "missing": []})(), True)
    console.verdict("Dry run: this is what would happen", lines[1:], ok)
    return 0 if ok else 1


def _ask_despite_identified(plan: dict, assume_yes: bool) -> bool:
    """Before anything changes: the headers still name patients. The default answer is no."""
    lines = _listed(f"NOT DE-IDENTIFIED YET: headers in {len(plan['review_identified'])} folder(s) still look "
                    "identified (patient name/ID, Patient Identity Removed not set):", plan["review_identified"],
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
    argv = sys.argv[1:] if argv is None else argv
    double_click = not argv
    try:
        code = run(argv)
    except KeyboardInterrupt:
        console.error("stopped by the user. Nothing is lost: run again to finish, or with --undo to roll back.")
        code = 1
    except SystemExit as exc:  # argparse usage errors and --version
        code = exc.code if isinstance(exc.code, int) else 2
    console.pause_before_exit(double_click)
    return code


def _listed(title: str, items: list[str], index_column: str, most: int = 30) -> list[str]:
    """A heading and at most `most` items, pointing to index.csv for the rest."""
    lines = [title, *(f"  {p}" for p in items[:most])]
    if len(items) > most:
        lines.append(f"  ... and {len(items) - most} more (column {index_column} in index.csv)")
    return lines
