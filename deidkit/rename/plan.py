"""rename_folders, step 2: the rename plan, a typed structure made by a pure function.

A RenamePlan is a list of PlanGroups, one per folder, deepest first; a group renames the direct
children of its folder (PlanEntry: old name -> final name, via a temporary name when routed, or
moved out to the hospital side). It also carries the neutral index rows and what needs review.
It is written to the journal and the undo data as JSON (to_json/from_json), so a run killed at
any moment is finished or rolled back by deidkit.journal.Replay.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from .scan import Facts, Node

LEVELS = ("folder", "patient", "study", "series")
# Endings a non-DICOM file keeps (lower case), so a person can still open it; any other ending
# is dropped with the name (it could carry one).
KEPT_EXTENSIONS = frozenset(
    ".pdf .txt .htm .html .xml .csv .json .doc .docx .rtf .odt .xls .xlsx .ods .ppt .pptx .jpg .jpeg .png "
    ".gif .bmp .tif .tiff .zip .7z .gz .tar .mp4 .avi .mov .mpg .mpeg .wav .mp3 .exe .dll .ini .inf .log "
    ".js .css .ico .db .bat .sh .cfg .md .lnk .nii .mha .raw .stl .obj".split())
_NO_NUMBER = 10**9  # sorts after every real series/instance number

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


# ---- the typed plan ----------------------------------------------------------------------------

class IndexRow(TypedDict):
    """One row of index.csv (contract.INDEX_COLUMNS): neutral text only."""

    folder: str
    level: str
    patient: str
    study: str
    series: str
    modality: str
    series_number: str
    dicom_files: str
    other_files: str
    subfolders: str
    files_looking_identified: str
    identity_warnings: str
    note: str


@dataclass
class PlanEntry:
    """One child of a group's folder: renamed old -> final (through tmp when the group is
    routed), or moved out to `out` (an absolute path on the hospital side; final is None).
    `group` is the index of the child folder's own group (it must finish first)."""

    old: str
    final: str | None
    tmp: str | None = None
    out: str | None = None
    group: int | None = None

    def __getitem__(self, key: str) -> Any:  # read access by name, as in the journal's JSON
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """A field by name, or default (dict-like read access, as in the journal JSON)."""
        return getattr(self, key, default)


@dataclass
class PlanGroup:
    """The renames inside one folder: `dir` its old path parts below ROOT, `new_dir` its new."""

    dir: list[str]
    new_dir: list[str]
    routed: bool
    entries: list[PlanEntry]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class RenamePlan:
    """The whole plan (groups deepest first) and what the run reports."""

    token: str
    groups: list[PlanGroup]
    index: list[IndexRow]
    review_other: list[str]
    review_identified: list[str]
    moved_out: list[str]
    hospital_dir: str

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_json(self) -> dict[str, Any]:
        """Plain data for json.dumps (journal, undo data)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RenamePlan":
        """The plan from to_json's data (also a journal written by the earlier dict version).
        Raises KeyError or TypeError on data that is not a plan."""
        groups = [PlanGroup(list(g["dir"]), list(g["new_dir"]), bool(g["routed"]),
                            [PlanEntry(e["old"], e.get("final"), e.get("tmp"), e.get("out"), e.get("group"))
                             for e in g["entries"]])
                  for g in data["groups"]]
        return cls(str(data.get("token", "")), groups, list(data.get("index", [])),
                   list(data.get("review_other", [])), list(data.get("review_identified", [])),
                   list(data.get("moved_out", [])), str(data.get("hospital_dir", "")))


# ---- numbering (pure) --------------------------------------------------------------------------

@dataclass
class _Agg:
    patients: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    modalities: set[str] = field(default_factory=set)

    def single(self, level: int) -> bool:
        return len((set(), self.patients, self.studies, self.series)[level]) == 1


def _aggregate(root: Node, out: dict[int, _Agg]) -> None:
    """What every folder holds (patients, studies, series, modalities), without recursion."""
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(c for c in node.children if c.kind == "dir")
    for node in reversed(order):  # children before parents
        agg = _Agg()
        for child in node.children:
            if child.kind == "dir":
                sub = out[id(child)]
                agg.patients |= sub.patients
                agg.studies |= sub.studies
                agg.series |= sub.series
                agg.modalities |= sub.modalities
            elif child.kind == "dicom" and child.facts is not None:
                f = child.facts
                agg.patients.add(f.patient)
                agg.studies.add(f.study)
                agg.series.add(f.series)
                agg.modalities.add(f.modality)
        out[id(node)] = agg


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


def _rank_within(ordered: list[str], parent_of: Callable[[str], str]) -> dict[str, int]:
    """1-based rank of each item among those with the same parent, in the given order (linear)."""
    seen: dict[str, int] = {}
    rank: dict[str, int] = {}
    for item in ordered:
        parent = parent_of(item)
        seen[parent] = seen.get(parent, 0) + 1
        rank[item] = seen[parent]
    return rank


def _walk_files(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        for c in stack.pop().children:
            if c.kind == "dir":
                stack.append(c)
            else:
                yield c


@dataclass
class _Numbers:
    """Neutral numbers: patients by hash, studies by date within a patient, series by number
    within a study. Built in one pass over the files plus sorts (linear up to the sorts)."""

    pnum: dict[str, int]
    pwidth: int
    snum: dict[str, int]
    rnum: dict[str, int]
    patient_of_study: dict[str, str]
    series_number_of: dict[str, int | None]

    @classmethod
    def of(cls, files: list[Facts]) -> "_Numbers":
        patients = sorted({f.patient for f in files})
        study_orders: dict[str, tuple] = {}
        series_orders: dict[str, tuple] = {}
        for f in files:
            order = (f.patient, f.study_order)  # the earliest over the study's files: walk order must not matter
            study_orders[f.study] = min(study_orders.get(f.study, order), order)
            key = (f.study, f.series_number if f.series_number is not None else _NO_NUMBER, f.series)
            series_orders[f.series] = min(series_orders.get(f.series, key), key)
        return cls(
            pnum={p: i + 1 for i, p in enumerate(patients)},
            pwidth=max(4, len(str(len(patients)))),
            snum=_rank_within(sorted(study_orders, key=lambda s: (study_orders[s], s)), lambda s: study_orders[s][0]),
            rnum=_rank_within(sorted(series_orders, key=lambda r: series_orders[r]), lambda r: series_orders[r][0]),
            patient_of_study={s: o[0] for s, o in study_orders.items()},
            series_number_of={f.series: f.series_number for f in files},
        )

    def patient(self, patient: str) -> str:
        return f"P{self.pnum[patient]:0{self.pwidth}d}"

    def folder_name(self, agg: _Agg, level: int) -> str:
        """The name of a folder named at `level` (1 patient, 2 study, 3 series)."""
        if level == 1:
            return self.patient(next(iter(agg.patients)))
        if level == 2:
            study = next(iter(agg.studies))
            return f"{self.patient(self.patient_of_study[study])}_ST{self.snum[study]:02d}_{_mods(agg.modalities) or 'OT'}"
        return f"SE{self.rnum[next(iter(agg.series))]:03d}_{_mods(agg.modalities) or 'OT'}"

    def dicom_order(self, c: Node) -> tuple:
        f = c.facts
        assert f is not None
        return (self.pnum[f.patient], self.snum[f.study], self.rnum[f.series],
                f.instance_number if f.instance_number is not None else _NO_NUMBER, f.instance_key, c.name)


def _level_for(agg: _Agg, parent: _Agg, consumed: int) -> int:
    """The level a folder is named at (0: a generic F folder); see deidkit.rename."""
    for level in range(consumed + 1, 4):
        if agg.single(level) and not parent.single(level):
            return level
    if consumed < 3 and agg.single(consumed + 1):
        return consumed + 1
    return 0


def _kept_extension(node: Node) -> str:
    """The ending a non-DICOM file keeps (".pdf"), or "" (links and special files keep none)."""
    if node.kind != "other":
        return ""
    ext = os.path.splitext(node.name)[1].lower()
    return ext if ext in KEPT_EXTENSIONS else ""


# ---- the planner -------------------------------------------------------------------------------

_OTHER_KINDS = ("other", "link", "special")
_OTHER_NOTE = {"link": " (a link, not followed)", "special": " (not a regular file; not opened)"}


@dataclass
class _Folder:
    """One folder being planned: where it was and will be, at what level it was named."""

    node: Node
    old_dir: list[str]
    new_dir: list[str]
    consumed: int
    level: int


class _Planner:
    def __init__(self, root: Node, reserved_top: set[str], hospital_out: str, move_other_out: bool,
                 token: str) -> None:
        self.aggs: dict[int, _Agg] = {}
        _aggregate(root, self.aggs)
        self.numbers = _Numbers.of([n.facts for n in _walk_files(root) if n.kind == "dicom" and n.facts])
        self.reserved_top = reserved_top
        self.hospital_out = hospital_out
        self.move_other_out = move_other_out
        self.token = token
        self.groups: list[PlanGroup] = []
        self.rows: list[IndexRow] = []
        self.review_other: list[str] = []
        self.review_identified: list[str] = []
        self.moved_out: list[str] = []

    def plan(self, root: Node) -> RenamePlan:
        self._visit_all(_Folder(root, [], [], 0, 0))
        self.rows.sort(key=lambda r: r["folder"])
        return RenamePlan(self.token, self.groups, self.rows, sorted(self.review_other),
                          sorted(self.review_identified), sorted(self.moved_out), self.hospital_out)

    def _visit_all(self, top: _Folder) -> None:
        """Plan every folder, children before their parent (post-order), without recursion.
        Each stack item: the folder, its children's names once proposed, the group numbers of
        its planned subfolders, and its parent's such table (where its own number goes)."""
        Item = tuple[_Folder, "list[tuple[Node, str]] | None", dict[int, int], "dict[int, int] | None"]
        pending: list[Item] = [(top, None, {}, None)]
        while pending:
            folder, proposed, child_group, parent_table = pending[-1]
            if proposed is None:  # first visit: name the children, then plan the subfolders
                proposed, levels = self._propose(folder)
                pending[-1] = (folder, proposed, child_group, parent_table)
                for c, final in reversed([(c, f) for c, f in proposed if c.kind == "dir"]):
                    lv = levels[id(c)]
                    pending.append((_Folder(c, [*folder.old_dir, c.name], [*folder.new_dir, final],
                                            lv if lv else folder.consumed, lv), None, {}, child_group))
                continue
            pending.pop()
            index = self._group(folder, proposed, child_group)
            if parent_table is not None:
                parent_table[id(folder.node)] = index

    def _propose(self, folder: _Folder) -> tuple[list[tuple[Node, str]], dict[int, int]]:
        """Final (unique) names for the folder's children, and each subfolder's level."""
        node, agg = folder.node, self.aggs[id(folder.node)]
        dirs = sorted((c for c in node.children if c.kind == "dir"), key=lambda c: c.name)
        levels = {id(c): _level_for(self.aggs[id(c)], agg, folder.consumed) for c in dirs}
        gwidth = max(3, len(str(sum(1 for c in dirs if not levels[id(c)]))))
        proposed: list[tuple[Node, str]] = []
        generic = 0
        for c in dirs:
            if levels[id(c)]:
                proposed.append((c, self.numbers.folder_name(self.aggs[id(c)], levels[id(c)])))
            else:
                generic += 1
                proposed.append((c, f"F{generic:0{gwidth}d}"))
        dicoms = self._dicoms(node)
        iwidth = max(5, len(str(len(dicoms))))
        proposed += [(c, f"IM{i + 1:0{iwidth}d}.dcm") for i, c in enumerate(dicoms)]
        others = [c for c in node.children if c.kind in _OTHER_KINDS]
        owidth = max(4, len(str(len(others))))
        proposed += [(c, f"OTHER{i + 1:0{owidth}d}{_kept_extension(c)}") for i, c in enumerate(others)]
        finals = _unique([n for _, n in proposed], self.reserved_top if not folder.old_dir else set())
        return [(c, f) for (c, _), f in zip(proposed, finals, strict=True)], levels

    def _dicoms(self, node: Node) -> list[Node]:
        return sorted((c for c in node.children if c.kind == "dicom"), key=self.numbers.dicom_order)

    def _group(self, folder: _Folder, proposed: list[tuple[Node, str]], child_group: dict[int, int]) -> int:
        """The folder's group (entries, routing) and index row; returns the group's number."""
        entries = [e for c, new in proposed if (e := self._entry(folder, c, new, child_group)) is not None]
        dicomdirs = [c for c in folder.node.children if c.kind == "dicomdir"]
        for c in dicomdirs:
            entries.append(PlanEntry(c.name, None, None, os.path.join(self.hospital_out, *folder.new_dir, "DICOMDIR")))
            self.moved_out.append("/".join([*folder.new_dir, "DICOMDIR"]))
        old_names = {c.name.casefold() for c in folder.node.children}
        # Route through temporary names when a new name is taken by another entry's old name,
        # or differs from its own only in case (case-insensitive file systems).
        routed = any(e.final and e.final != e.old and e.final.casefold() in old_names for e in entries)
        if routed:
            for i, e in enumerate(e for e in entries if e.final):
                e.tmp = f"~rf{self.token}{i:06d}"
        self.groups.append(PlanGroup(folder.old_dir, folder.new_dir, routed, entries))
        self.rows.append(self._row(folder, bool(dicomdirs)))
        return len(self.groups) - 1

    def _entry(self, folder: _Folder, c: Node, new: str, child_group: dict[int, int]) -> PlanEntry | None:
        out = None
        where = "/".join([*folder.new_dir, new])
        if c.kind in _OTHER_KINDS:
            if self.move_other_out and c.kind != "special":
                out = os.path.join(self.hospital_out, *folder.new_dir, new)
                self.moved_out.append(where)
            else:
                self.review_other.append(where + _OTHER_NOTE.get(c.kind, ""))
        if out is None and new == c.name and c.kind != "dir":
            return None  # already neutral (folders stay listed: their group must finish first)
        return PlanEntry(c.name, None if out else new, None, out, child_group.get(id(c)))

    def _row(self, folder: _Folder, has_dicomdir: bool) -> IndexRow:
        node, agg, num = folder.node, self.aggs[id(folder.node)], self.numbers
        if node.unreadable:
            self.review_other.append(("/".join(folder.new_dir) or ".") + "/ (folder could not be read)")
        dicoms = [c for c in node.children if c.kind == "dicom" and c.facts]
        warned = [c for c in dicoms if c.facts and c.facts.warnings]
        name = "/".join(folder.new_dir) or "."
        if warned:
            self.review_identified.append(name)
        others = sum(1 for c in node.children if c.kind in _OTHER_KINDS)
        single_series = next(iter(agg.series)) if agg.single(3) else None
        study_id = next(iter(agg.studies)) if agg.single(2) else None
        note = []
        if has_dicomdir:
            note.append("DICOMDIR moved out to the hospital-side folder")
        if self.move_other_out and others:
            note.append(f"{others} non-DICOM file(s) moved out to the hospital-side folder")
        series_number = num.series_number_of.get(single_series) if single_series else None
        return IndexRow(
            folder=name,
            level="top" if not folder.old_dir else LEVELS[folder.level],
            patient=num.patient(next(iter(agg.patients))) if agg.single(1) else
            (f"{len(agg.patients)} patients" if agg.patients else ""),
            study=f"ST{num.snum[study_id]:02d}" if study_id else (f"{len(agg.studies)} studies" if agg.studies else ""),
            series=f"SE{num.rnum[single_series]:03d}" if single_series else
            (f"{len(agg.series)} series" if agg.series else ""),
            modality=_mods(agg.modalities),
            series_number="" if series_number is None else str(series_number),
            dicom_files=str(len(dicoms)),
            other_files=str(others),
            subfolders=str(sum(1 for c in node.children if c.kind == "dir")),
            files_looking_identified=str(len(warned)),
            identity_warnings="; ".join(sorted({w for c in warned if c.facts for w in c.facts.warnings})),
            note="; ".join(note),
        )


def make_plan(root_node: Node, reserved_top: set[str], hospital_out: str,
              move_other_out: bool, token: str) -> RenamePlan:
    """The complete rename plan and the neutral index; pure (no file system access).

    reserved_top: names at the top that must stay free (the kit's own files); hospital_out:
    where moved-out files go; token: part of the temporary names (see plan_token)."""
    return _Planner(root_node, reserved_top, hospital_out, move_other_out, token).plan(root_node)


def plan_token(tree: Node) -> str:
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


def plan_problems(plan: RenamePlan, root: str) -> list[str]:
    """Checks of the planned names against Windows rules (they hold by construction)."""
    problems = []
    for group in plan.groups:
        finals = [e.final for e in group.entries if e.final]
        for name in finals:
            why = windows_name_problem(name)
            if why:
                problems.append(f"planned name {name}: {why}")
        if casefold_duplicates(finals):
            problems.append("two planned names differ only in case")
        if any(windows_path_too_long(root, [*group.new_dir, n]) for n in finals):
            problems.append(f"a path below {'/'.join(group.new_dir) or 'the top folder'} passes 260 characters"
                            " (fine on Linux/macOS; on Windows the tool uses long paths)")
    return problems


def key_mapping(plan: RenamePlan) -> list[list[str]]:
    """Old relative path -> new relative path (PHI: only for the undo data outside the tree)."""
    out = []
    for group in plan.groups:
        for e in group.entries:
            new = "/".join([*group.new_dir, e.final]) if e.final else f"(moved out) {e.out}"
            out.append(["/".join([*group.dir, e.old]), new])
    return sorted(out)
