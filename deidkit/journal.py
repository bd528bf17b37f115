"""Crash-safe renaming: the journal of a rename plan, and the replay that applies or undoes it.

The plan is written once (temp file + fsync + os.replace) before anything is renamed. It is a
list of groups, one per folder, deepest folders first; a group renames the direct children of
its folder. A folder is renamed (by its parent's group) only after its own group is complete,
so while a group runs its folder and all ancestors still have their old names.

Progress is an append-only log of short lines, each fsynced:
  A k   group k: every entry is at its temporary name (groups that route through temp names)
  F k   group k complete
  UNDO  roll-back started;  UB k  group k back at temporary names;  U k  group k rolled back
Within a group every step is idempotent, decided from what exists on disk (a rename whose
source is gone and destination present is done), so a kill at any moment is followed by a
replay that finishes the plan or rolls it back, with no file lost or duplicated.

Both journal files hold old names (PHI). They live hidden at the top of the tree only while a
run is unfinished, and are removed when it completes.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .rename.plan import PlanEntry, PlanGroup, RenamePlan

JOURNAL_NAME = ".rename_folders.journal"
PROGRESS_NAME = ".rename_folders.progress"
FORMAT = "rename_folders journal 1"
KILL_HOOK_ENV = "DEIDKIT_TEST_KILL_AFTER_RENAMES"  # tests only: SIGKILL self after N renames


def long_path(path: str | os.PathLike, windows: bool | None = None) -> str:
    """Path usable past Windows' 260-character limit (extended-length prefix); unchanged elsewhere."""
    text = os.fspath(path)
    windows = (os.name == "nt") if windows is None else windows
    if not windows or text.startswith("\\\\?\\") or len(text) < 240:
        return text
    text = os.path.abspath(text) if os.name == "nt" else text
    if text.startswith("\\\\"):
        return "\\\\?\\UNC\\" + text[2:]
    return "\\\\?\\" + text


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames inside a folder durable (POSIX); Windows cannot open folders, skip there."""
    if os.name == "nt":
        return
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a kill leaves either the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, from the first byte (created 0600, never chmod'ed
    afterwards), atomically. On Windows the file takes the rights of its folder: keep secrets
    in a per-user folder (the default places are)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        os.unlink(tmp)  # a leftover of a killed run: it may have other rights
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Journal:
    """The two hidden files at the top of the tree that make a run resumable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan_path = root / JOURNAL_NAME
        self.progress_path = root / PROGRESS_NAME

    @staticmethod
    def own_names() -> set[str]:
        """The names of the journal files, which a scan of the tree skips."""
        return {JOURNAL_NAME, PROGRESS_NAME, JOURNAL_NAME + ".tmp"}

    def exists(self) -> bool:
        """True when a plan is journaled (a run was started and not finished or rolled back)."""
        return self.plan_path.is_file()

    def write_plan(self, plan: "RenamePlan | dict") -> None:
        """Journal the plan (a RenamePlan, or its JSON data) atomically, owner-only."""
        data = plan if isinstance(plan, dict) else plan.to_json()
        if self.progress_path.exists():  # left over from a finished run; holds no PHI
            self.progress_path.unlink()
        # old names are PHI: owner-only from the first byte
        write_secret(self.plan_path, json.dumps({"format": FORMAT, **data}, ensure_ascii=False).encode("utf-8"))

    def load_plan(self) -> "RenamePlan":
        """The journaled plan. Raises ValueError (not ours, or another version), OSError."""
        from .rename.plan import RenamePlan

        plan = json.loads(self.plan_path.read_text(encoding="utf-8"))
        if plan.get("format") != FORMAT:
            raise ValueError("the journal was written by another version of rename_folders")
        try:
            return RenamePlan.from_json(plan)
        except (KeyError, TypeError) as e:
            raise ValueError("the journal is damaged") from e

    def progress(self) -> set[str]:
        """Complete progress lines; a line torn by a kill is ignored (its step is replayed)."""
        try:
            text = self.progress_path.read_text(encoding="ascii")
        except FileNotFoundError:
            return set()
        lines = text.split("\n")
        return {line for line in lines[:-1] if line}  # the last piece has no newline yet

    def mark(self, line: str) -> None:
        """Append one progress line and fsync it (a step is done only once this returns)."""
        with open(self.progress_path, "a", encoding="ascii", newline="\n") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        """Delete the journal files, plan first (the run is finished or rolled back)."""
        # Plan first: a progress log without a plan is harmless, the reverse would replay done groups.
        for path in (self.plan_path, self.plan_path.with_name(JOURNAL_NAME + ".tmp"), self.progress_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        fsync_dir(self.root)


@dataclass
class Outcome:
    """What a replay did: renames done, neutral failure and missing-item lines, complete or not."""
    renamed: int = 0
    failures: list[str] = field(default_factory=list)   # neutral one-line messages
    missing: list[str] = field(default_factory=list)
    complete: bool = False


class _Failed(Exception):
    pass


def _reason(exc: OSError) -> str:
    """Why a rename failed, without the path (exception text would name the old file)."""
    if isinstance(exc, PermissionError):
        return "access denied (open in another program, or read-only)"
    if isinstance(exc, FileExistsError):
        return "something else already has the new name"
    return exc.strerror or type(exc).__name__


class Replay:
    """Apply or roll back a journaled plan; safe to run again after a kill at any point."""

    def __init__(self, root: Path, journal: Journal, plan: "RenamePlan",
                 on_step: Callable[[], None] | None = None) -> None:
        self.root = root
        self.journal = journal
        self.groups: list[PlanGroup] = plan.groups
        self.done = journal.progress()
        self.on_step = on_step or (lambda: None)
        self.outcome = Outcome()
        hook = os.environ.get(KILL_HOOK_ENV, "")
        self._kill_after = int(hook) if hook.isdigit() else None

    # -- low level ----------------------------------------------------------------------------
    def _dir(self, group: "PlanGroup") -> str:
        return os.path.join(os.fspath(self.root), *group.dir)

    @staticmethod
    def _where(group: "PlanGroup", entry: "PlanEntry") -> str:
        folder = "/".join(group.new_dir) or "the top folder"
        return f"in {folder} (new name {entry.final or 'moved out'})"

    def _mark(self, line: str) -> None:
        self.journal.mark(line)
        self.done.add(line)

    def _rename(self, src: str, dst: str) -> None:
        if os.path.lexists(long_path(dst)):
            raise FileExistsError(dst)
        os.rename(long_path(src), long_path(dst))
        self.outcome.renamed += 1
        self.on_step()
        if self._kill_after is not None and self.outcome.renamed >= self._kill_after:
            sig = getattr(signal, "SIGKILL", None)
            if sig is None:
                os._exit(137)
            os.kill(os.getpid(), sig)

    def _move_across(self, src: str, dst: str) -> None:
        """Move a file to another place (maybe another drive); a kill leaves src intact."""
        os.makedirs(long_path(os.path.dirname(dst)), exist_ok=True)
        try:
            os.replace(long_path(src), long_path(dst))
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another file system: copy instead
                raise
            tmp = dst + ".tmp"
            shutil.copy2(long_path(src), long_path(tmp))
            with open(long_path(tmp), "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(long_path(tmp), long_path(dst))
            os.remove(long_path(src))
        fsync_dir(os.path.dirname(dst))
        self.outcome.renamed += 1
        self.on_step()

    def _step(self, group: "PlanGroup", entry: "PlanEntry", names: list[str | None], to: str) -> None:
        """Bring one entry to the name `to` from whichever of `names` it has now (idempotent)."""
        folder = self._dir(group)
        target = os.path.join(folder, to)
        for name in names:
            if name is None or name == to:
                continue
            source = os.path.join(folder, name)
            if os.path.lexists(long_path(source)):
                self._move_or_fail(self._rename, source, target, "rename", group, entry)
                return
        if os.path.lexists(long_path(target)):
            return
        self._missing(group, entry)

    def _out(self, group: "PlanGroup", entry: "PlanEntry", back: bool) -> None:
        src = os.path.join(self._dir(group), entry.old)
        dst = _named(entry.out)
        a, b = (dst, src) if back else (src, dst)
        if os.path.lexists(long_path(a)):
            self._move_or_fail(self._move_across, a, b, "move out", group, entry)
        elif not os.path.lexists(long_path(b)):
            self._missing(group, entry)

    def _move_or_fail(self, move: Callable[[str, str], None], a: str, b: str, what: str, group: "PlanGroup",
              entry: "PlanEntry") -> None:
        """move(a, b); an OSError is noted as a failure of this item and ends the run (_Failed)."""
        try:
            move(a, b)
        except OSError as exc:
            self.outcome.failures.append(f"could not {what} an item {self._where(group, entry)}: {_reason(exc)}")
            raise _Failed() from None

    def _missing(self, group: "PlanGroup", entry: "PlanEntry") -> None:
        self.outcome.missing.append(f"an item {self._where(group, entry)} is missing (moved or deleted by someone else?)")

    # -- forward ------------------------------------------------------------------------------
    def forward(self) -> Outcome:
        """Replay the plan forward, group by group, skipping done groups; RuntimeError during an undo."""
        if "UNDO" in self.done:
            raise RuntimeError("undo in progress")
        for k, group in enumerate(self.groups):
            if f"F {k}" in self.done:
                continue
            try:
                self._forward_group(k, group)
            except _Failed:
                continue
        self.outcome.complete = all(f"F {k}" in self.done for k in range(len(self.groups)))
        return self.outcome

    def _blocked(self, entry: "PlanEntry") -> bool:
        child = entry.group
        return child is not None and f"F {child}" not in self.done

    def _forward_group(self, k: int, group: "PlanGroup") -> None:
        entries = group.entries
        failed = False
        for entry in entries:
            if entry.out:
                try:
                    self._out(group, entry, back=False)
                except _Failed:
                    failed = True
        renames = [e for e in entries if not e.out]
        if group.routed:
            failed = self._forward_routed(k, group, renames, failed)
        else:
            failed = self._forward_in_place(group, renames) or failed
        if failed:
            raise _Failed()
        fsync_dir(self._dir(group))
        self._mark(f"F {k}")

    def _forward_routed(self, k: int, group: "PlanGroup", renames: list["PlanEntry"], failed: bool) -> bool:
        """Phase A (old -> tmp, journaled once all are there), then tmp -> final; True if one failed."""
        if f"A {k}" not in self.done:
            if any(self._blocked(e) for e in renames):
                raise _Failed()
            for entry in renames:
                try:
                    self._step(group, entry, [entry.old], _named(entry.tmp))
                except _Failed:
                    failed = True
            if failed:
                raise _Failed()
            fsync_dir(self._dir(group))
            self._mark(f"A {k}")
        for entry in renames:
            try:
                self._step(group, entry, [entry.tmp], _named(entry.final))
            except _Failed:
                failed = True
        return failed

    def _forward_in_place(self, group: "PlanGroup", renames: list["PlanEntry"]) -> bool:
        """old -> final for each entry whose child group is done; True if one was blocked or failed."""
        failed = False
        for entry in renames:
            if self._blocked(entry):
                failed = True
                continue
            try:
                self._step(group, entry, [entry.old], _named(entry.final))
            except _Failed:
                failed = True
        return failed

    # -- undo ---------------------------------------------------------------------------------
    def undo(self) -> Outcome:
        """Roll back every group, last first; stops at the first failure (run again to finish)."""
        if "UNDO" not in self.done:
            self._mark("UNDO")
        for k in range(len(self.groups) - 1, -1, -1):
            if f"U {k}" in self.done:
                continue
            try:
                self._undo_group(k, self.groups[k])
            except _Failed:
                return self.outcome
        self.outcome.complete = True
        return self.outcome

    def _undo_group(self, k: int, group: "PlanGroup") -> None:
        renames = [e for e in group.entries if not e.out]
        started_b = f"A {k}" in self.done or f"F {k}" in self.done
        if group.routed:
            if started_b and f"UB {k}" not in self.done:
                for entry in renames:   # entries are at tmp or final: bring all to tmp
                    self._step(group, entry, [entry.final], _named(entry.tmp))
                fsync_dir(self._dir(group))
                self._mark(f"UB {k}")
            for entry in renames:       # entries are at tmp or old
                self._step(group, entry, [entry.tmp], entry.old)
        else:
            for entry in renames:
                self._step(group, entry, [entry.final], entry.old)
        for entry in group.entries:
            if entry.out:
                self._out(group, entry, back=True)
        fsync_dir(self._dir(group))
        self._mark(f"U {k}")


def _named(name: str | None) -> str:
    """A plan entry's name that its kind of entry always has (TypeError, as os.path would, if not)."""
    if name is None:
        raise TypeError("a plan entry lacks a name its kind always has")
    return name


def count_steps(plan: "RenamePlan", progress: set[str]) -> int:
    """Renames a forward replay may still do (for the progress bar)."""
    total = 0
    for k, group in enumerate(plan.groups):
        if f"F {k}" in progress:
            continue
        n = len(group.entries)
        total += 2 * n if group.routed and f"A {k}" not in progress else n
    return total
