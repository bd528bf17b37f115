"""Putting finished files in their place in DEST, order-free: duplicates dropped, two versions of
one instance settled, a clash of the short name code resolved, and pseudonyms whose files name
two different persons held. Every change to an earlier result is journaled."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from .export_model import DUPLICATE, HELD, WRITTEN, FileResult
from .export_plan import partial_path
from .export_resume import StateWriter

TWO_VERSIONS = "two different files with the same SOP Instance UID"  # how the reason of a second version starts
PERSON_CLASH = ("two different patients share one Patient ID (different name, sex or birth date): "
                "held so they are not merged; correct the IDs in the export, then run again")


class Placement:
    """The written files of a run, by output name and by SOP Instance UID; `results` (by source
    path) and the journal are updated when placing one file changes another's result."""

    def __init__(self, dest: Path, state: StateWriter, results: dict[str, FileResult]) -> None:
        self.dest, self.state, self.results = dest, state, results
        self.placed: dict[str, FileResult] = {r.out: r for r in results.values() if r.status == WRITTEN}
        self.by_sop = {r.sop_instance: r for r in self.placed.values() if r.sop_instance}
        self.duplicates: dict[str, list[FileResult]] = {}  # SOP Instance UID -> the duplicates of the one placed
        for r in results.values():
            if r.status == DUPLICATE and r.sop_instance:
                self.duplicates.setdefault(r.sop_instance, []).append(r)

    def place(self, result: FileResult) -> None:
        """Move a finished file from the partial folder to its place; settle duplicates and name clashes.

        Whatever order the workers finish in, the outcome is the same:
        - the same SOP Instance UID with the same bytes: the first by source path is the one placed,
          the others are its duplicates, dropped quietly;
        - the same SOP Instance UID with other content: the first by source path goes out, the other
          is held for a person (the export holds two versions of one image);
        - two different instances whose names share the 8-digit code (about 1 in 4 billion a pair):
          the smaller SOP Instance UID keeps the name, the other gets a second code from its own UID.
        Raises OSError when the file cannot be moved (the result is not changed then)."""
        if result.status != WRITTEN:
            return
        partial = partial_path(self.dest, result.src)
        twin = self.by_sop.get(result.sop_instance) if result.sop_instance else None
        if twin is not None and not self._settle_twin(result, twin, partial):
            return
        holder = self.placed.get(result.out)
        if holder is not None:  # a different instance under the same name: a clash of the short code
            self._settle_clash(result, holder)
        final = self.dest / result.out
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
        self.placed[result.out] = result
        self.by_sop[result.sop_instance] = result

    def _settle_twin(self, result: FileResult, twin: FileResult, partial: Path) -> bool:
        """Two files of one SOP Instance UID; True: `result` goes on to be placed."""
        if twin.sha256 == result.sha256:
            partial.unlink(missing_ok=True)
            self._settle_same_bytes(result, twin)
            return False
        keeper, other = (twin, result) if twin.src < result.src else (result, twin)
        other.status, other.reason = HELD, (f"{TWO_VERSIONS} ({keeper.ref} and "
                                            f"{other.ref}): {keeper.ref} was sent, this one held for a person to choose")
        if other is result:
            partial.unlink(missing_ok=True)
            result.out = ""
            return False
        old_out = twin.out
        (self.dest / old_out).unlink(missing_ok=True)  # removed first: a kill before the journal line redoes it
        twin.out = ""
        self.results[twin.src] = twin
        self.state.append(twin)
        del self.placed[old_out]
        self.by_sop.pop(twin.sop_instance, None)
        return True

    def _settle_same_bytes(self, result: FileResult, twin: FileResult) -> None:
        """Two files of one instance with the same bytes: the first by source path is the one
        placed, the other is a duplicate of it, whatever order they came in (`result` placed
        first by path takes the place of `twin`: the file in place has its bytes already)."""
        if twin.src < result.src:
            result.status, result.reason, result.out = DUPLICATE, f"same instance as {twin.ref}", ""
            self.duplicates.setdefault(result.sop_instance, []).append(result)
            return
        result.out, twin.status, twin.out = twin.out, DUPLICATE, ""
        self.placed[result.out] = result
        self.by_sop[result.sop_instance] = result
        moved = [*self.duplicates.pop(result.sop_instance, []), twin]
        for d in moved:  # journaled before `result`: a kill in between redoes `result`, placed the same way
            d.reason = f"same instance as {result.ref}"
            self.results[d.src] = d
            self.state.append(d)
        self.duplicates[result.sop_instance] = moved

    def _settle_clash(self, result: FileResult, holder: FileResult) -> None:
        """Two instances whose names share the short code: the larger UID gets a second code."""
        if holder.sop_instance < result.sop_instance:
            result.out = _second_name(result)
        else:
            moved = _second_name(holder)
            if moved in self.placed:
                raise _NameClash()
            old_out, holder.out = holder.out, moved
            self.results[holder.src] = holder
            self.state.append(holder)  # journaled first: a kill before the move redoes the holder
            (self.dest / moved).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dest / old_out, self.dest / moved)
            del self.placed[old_out]
            self.placed[moved] = holder
            self.by_sop[holder.sop_instance] = holder
        if result.out in self.placed:
            raise _NameClash()

    def hold_mixed_patients(self) -> None:
        """Hold every written file of a pseudonym whose files name more than one person (order-free)."""
        persons: dict[str, list[str]] = {}
        for r in self.results.values():
            if r.patient and r.person and (r.status == WRITTEN or r.reason == PERSON_CLASH):
                persons.setdefault(r.patient, []).append(r.person)
        mixed = {patient for patient, found in persons.items() if _more_than_one_person(found)}
        for src in sorted(self.results):
            r = self.results[src]
            if r.status == WRITTEN and r.patient in mixed:
                (self.dest / r.out).unlink(missing_ok=True)  # first: a kill before the journal line redoes it
                r.status, r.reason, r.out = HELD, PERSON_CLASH, ""
                self.state.append(r)


def _more_than_one_person(found: list[str]) -> bool:
    """One person if every version is linked to the others by a chain of versions that differ
    in at most one detail (a married name here, a corrected birth date there)."""
    distinct = sorted(set(found))[:256]
    group = list(range(len(distinct)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, a in enumerate(distinct):
        for j in range(i + 1, len(distinct)):
            if not person_clash(a, distinct[j]):
                group[root(j)] = root(i)
    return len({root(i) for i in range(len(distinct))}) > 1


def person_clash(a: str, b: str) -> bool:
    """True if two person_of values cannot be one person: two of family name, sex and birth date
    given in both and different. One alone is how one person's records differ in real exports
    (a married name, a corrected birth date, a typing slip): not a second person."""
    return sum(1 for x, y in zip(a.split("|"), b.split("|"), strict=False) if x and y and x != y) >= 2


class _NameClash(OSError):
    """Two instances clash even in their second code (never seen: 64 bits of two hashes)."""

    def __init__(self) -> None:
        super().__init__(errno.EEXIST, "two images would get the same output name")


def _second_name(r: FileResult) -> str:
    """The output name with a second code, from the (de-identified) SOP Instance UID."""
    digest = hashlib.sha256(b"deidkit-second-name\0" + r.sop_instance.encode()).hexdigest()
    code = f"{int(digest[:16], 16) % 10 ** 9:09d}"  # digits: contract.IMAGE_FILE_RE's "_<n>" suffix
    return r.out[: -len(".dcm")] + f"_{code}.dcm"
