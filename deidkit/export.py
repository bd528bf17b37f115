"""The export walk: plan the files, process them in parallel, place outputs, resume, report.

Layout of what one run writes:
  DEST/                         what may be sent: de-identified DICOM + manifest + summary (no PHI)
    SUBJ_<code>/STUDY_<code>/SERIES_<nnnn>_<MOD>_<code>/IMG_<nnnnn>_<code>.dcm
    deid_manifest.csv, deid_summary.txt
  <DEST>_HOSPITAL_ONLY/         never sent: names original files
    held_back.csv, run_log.txt, progress.jsonl (resume state), review.html (+ thumbnails)
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from pydicom.dataset import Dataset

from . import dicomio, engine
from .guidelines import Guidelines, register_new_attributes
from .mapping import Mapper
from .sweep import Identifiers

MANIFEST_NAME = "deid_manifest.csv"
SUMMARY_NAME = "deid_summary.txt"
HOSPITAL_SUFFIX = "_HOSPITAL_ONLY"
PARTIAL_DIR = ".deid_partial"
STATE_NAME = "progress.jsonl"
SOURCE_NOTE = "source_path.txt"
# Files with these endings are treated as not meant to be DICOM (viewer, report, preview files).
NON_DICOM_SUFFIXES = {".pdf", ".htm", ".html", ".txt", ".xml", ".inf", ".exe", ".dll", ".ini", ".jpg",
                      ".jpeg", ".png", ".gif", ".bmp", ".js", ".css", ".json", ".csv", ".doc", ".docx",
                      ".rtf", ".zip", ".cfg", ".log", ".db", ".ico", ".mp4", ".avi", ".xls", ".xlsx",
                      ".bat", ".sh", ".app", ".dmg", ".msi", ".jar", ".class", ".md", ".lnk"}

WRITTEN, DUPLICATE, HELD, FAILED, SKIPPED, DICOMDIR = "written", "duplicate", "held", "failed", "skipped", "dicomdir"


@dataclass
class FileResult:
    """The outcome for one source file. `src` names the original: hospital side only."""

    ref: str                 # neutral reference, F000001
    src: str                 # original path relative to SOURCE (PHI: hospital side only)
    status: str
    reason: str = ""
    out: str = ""            # output path relative to DEST
    size: int = 0
    sha256: str = ""
    patient: str = ""
    study: str = ""
    series: str = ""
    modality: str = ""
    sop_class: str = ""
    sop_instance: str = ""
    thumbnails: list[str] = field(default_factory=list)  # review images, hospital side


@dataclass
class RunConfig:
    source: Path
    dest: Path
    hospital_dir: Path
    guidelines: Guidelines
    key: bytes
    workers: int = 0
    program_files: tuple[Path, ...] = ()  # the tool itself and its key file: not part of the export
    override_dir: Path | None = None      # where guideline files next to the program were found

    def fingerprint(self) -> str:
        """What must match for a run to resume another: same source, output, table and key."""
        key_id = hashlib.sha256(b"deidkit-key-id\0" + self.key).hexdigest()[:16]
        return hashlib.sha256("|".join([str(self.source), str(self.dest), self.guidelines.sha256, key_id])
                              .encode()).hexdigest()


@dataclass
class RunSummary:
    results: list[FileResult]
    resumed: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def needs_review(self) -> list[FileResult]:
        return [r for r in self.results if r.status in (HELD, FAILED)]


# ---- planning ----------------------------------------------------------------------------------

def plan(source: Path, exclude: list[Path]) -> list[Path]:
    """Every regular file below source, sorted, not following links, skipping our own folders."""
    excluded = {os.path.normcase(str(p.resolve())) for p in exclude}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.normcase(str((here / d).resolve())) not in excluded
                             and not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() or os.path.normcase(str(path.resolve())) in excluded:
                continue
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(source).as_posix())


# ---- per-file work (runs in worker processes) -------------------------------------------------

_WORKER: dict = {}


def _init_worker(guidelines: Guidelines, key: bytes, dest: str, hospital: str, override_dir: str) -> None:
    register_new_attributes(guidelines)
    s = guidelines.settings
    pixels = _pixel_module()
    _WORKER.update(
        guidelines=guidelines,
        mapper=Mapper(key, s.pseudonym_prefix, s.min_shift_days, s.max_shift_days),
        dest=Path(dest), hospital=Path(hospital), pixels=pixels,
        rules=pixels.load_redaction_rules(pixels.redaction_rules_path(Path(override_dir) if override_dir else None))
        if pixels is not None else [],
    )


def _pixel_module():
    try:
        from . import pixels
    except ImportError:
        return None
    needed = ("burned_in_risk", "clean_pixels")
    return pixels if all(hasattr(pixels, n) for n in needed) else None


def process_file(job: tuple[str, str, str]) -> FileResult:
    """De-identify one file into the partial folder. Never raises: failures become results."""
    ref, src_str, rel = job
    src = Path(src_str)
    result = FileResult(ref=ref, src=rel, status=FAILED)
    try:
        return _process(src, result)
    except dicomio.NotDicom as e:
        kind = SKIPPED if src.suffix.lower() in NON_DICOM_SUFFIXES else FAILED
        result.status, result.reason = kind, str(e) if kind == FAILED else "not DICOM (not copied)"
    except dicomio.Unreadable as e:
        result.reason = str(e)
    except OSError as e:
        result.reason = _os_error_text(e)
    except Exception as e:  # a bug or an input we did not foresee: held, never passed through
        result.reason = f"unexpected error ({type(e).__name__}); held for review"
    return result


def _os_error_text(e: OSError) -> str:
    if getattr(e, "errno", None) == 28:
        return "output disk full"
    return f"file system error ({e.strerror or type(e).__name__})"


def _process(src: Path, result: FileResult) -> FileResult:
    g: Guidelines = _WORKER["guidelines"]
    header = dicomio.read_header(src)
    if dicomio.is_dicomdir(header.dataset):
        result.status, result.reason = DICOMDIR, "DICOMDIR left out (it names patients; the output has none)"
        return result
    ds = header.dataset
    pixels = _WORKER["pixels"]
    at_risk = pixels.burned_in_risk(ds, _WORKER["rules"]) if pixels is not None else _metadata_risk(ds)
    hold = engine.hold_reason_for(ds, g)
    if hold:
        result.status, result.reason = HELD, hold
        return result
    if at_risk and (pixels is None or not g.settings.clean_pixel_data):
        result.status, result.reason = HELD, f"burned-in text risk ({at_risk}); pixels not checked"
        return result
    full = None
    if at_risk or not header.streamable:
        full = dicomio.read_full(src)
        ds = full
    identifiers = Identifiers()
    ctx = engine.Context(guidelines=g, mapper=_WORKER["mapper"], identifiers=identifiers)
    outcome = engine.deidentify(ds, ctx)
    if outcome.hold_reason:
        result.status, result.reason = HELD, outcome.hold_reason
        return result
    if at_risk:
        layout_matched = bool(pixels.matching_rules(ds, _WORKER["rules"]))
        pixel_outcome = pixels.clean_pixels(ds, _WORKER["rules"])
        send, why = pixels.release_decision(pixel_outcome, layout_matched, g.settings.trust_pixel_detector)
        result.thumbnails = _save_thumbnails(result.ref, pixel_outcome)
        if not send:
            result.status, result.reason = HELD, f"burned-in text risk ({at_risk}): {why}"
            return result
        engine.add_clean_pixel_code(ds)
        result.reason = why
    ts = str(ds.file_meta.TransferSyntaxUID) if full is not None else header.transfer_syntax
    ds.file_meta = engine.new_file_meta(ds, ts)
    out_rel = output_path(ds, outcome.pseudonym, _WORKER["mapper"])
    partial = partial_path(_WORKER["dest"], result.src)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        if full is None:
            header_size = dicomio.write_streamed(ds, src, header.pixel_span, partial)
        else:
            header_size = dicomio.write_whole(ds, partial)
        leak = _identifier_in_header(partial, header_size, identifiers, ds)
        if leak:
            partial.unlink()
            result.status, result.reason = HELD, "an identifier of the patient is still in the written header"
            return result
        result.size, result.sha256 = _size_and_hash(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result.status = WRITTEN
    result.out = out_rel
    result.patient = outcome.pseudonym
    result.study, result.series = out_rel.split("/")[1], out_rel.split("/")[2]
    result.modality = str(ds.get("Modality", "") or "")
    result.sop_class = str(ds.get("SOPClassUID", ""))
    result.sop_instance = str(ds.get("SOPInstanceUID", ""))
    return result


def _metadata_risk(ds: Dataset) -> str | None:
    """Used only if the pixel module is missing: the plain metadata rules, fail closed."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "Burned In Annotation YES"
    if "Rows" not in ds:
        return None
    modality = str(ds.get("Modality", "")).upper()
    if modality in {"US", "SC", "OT", "XA", "ES", "DOC", "SM", "XC", "GM"}:
        return f"modality {modality}"
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if any(v in ("SECONDARY", "SCREEN SAVE") for v in image_type):
        return "image type SECONDARY"
    if str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.7"):
        return "secondary capture"
    return None


def _save_thumbnails(ref: str, outcome) -> list[str]:
    """Review images go to the hospital-side folder (they may show PHI)."""
    saved = []
    folder = _WORKER["hospital"] / "review_images"
    for label, png in (("before", outcome.before_png), ("after", outcome.after_png)):
        if png:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{ref}_{label}.png"
            path.write_bytes(png)
            saved.append(path.name)
    return saved


def partial_path(dest: Path, src_rel: str) -> Path:
    """Where a file is written before it is moved into place (never a half file at its place)."""
    return dest / PARTIAL_DIR / (hashlib.sha256(src_rel.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".part")


def output_path(ds: Dataset, pseudonym: str, mapper: Mapper) -> str:
    """Neutral, naturally sorting output path from de-identified values only."""
    study = str(ds.get("StudyInstanceUID", "") or "")
    series = str(ds.get("SeriesInstanceUID", "") or "")
    sop = str(ds.get("SOPInstanceUID", "") or "")
    modality = re.sub(r"[^A-Z0-9]", "", str(ds.get("Modality", "") or "").upper())[:8] or "NA"
    series_no = _small_number(ds.get("SeriesNumber"), 9999)
    instance_no = _small_number(ds.get("InstanceNumber"), 99999)
    return (f"{pseudonym}/STUDY_{mapper.short_code(study)}/SERIES_{series_no:04d}_{modality}_{mapper.short_code(series)}"
            f"/IMG_{instance_no:05d}_{mapper.short_code(sop)}.dcm")


def _small_number(value, limit: int) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return n if 0 <= n <= limit else 0


def _identifier_in_header(path: Path, header_size: int, identifiers: Identifiers, ds: Dataset) -> bool:
    """Last net: search the written header bytes for the patient's own identifiers."""
    with path.open("rb") as fp:
        data = fp.read(header_size)
    encodings = ["ascii", "latin-1", "utf-8"]
    charset = ds.get("SpecificCharacterSet")
    if charset:
        from pydicom.charset import convert_encodings

        values = charset if isinstance(charset, (list, tuple)) else [charset]
        try:
            encodings += [e for e in convert_encodings(list(values)) if e not in encodings]
        except Exception:
            pass
    for needle in identifiers.encoded_needles(encodings):
        if needle.isascii():
            if re.search(rb"(?<![A-Za-z0-9])" + re.escape(needle) + rb"(?![A-Za-z0-9])", data, re.I):
                return True
        elif needle in data:
            return True
    return False


def _size_and_hash(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fp:
        while chunk := fp.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


# ---- the run -----------------------------------------------------------------------------------

def run_export(config: RunConfig, progress: Callable[[int, int], None] | None = None,
               on_problem: Callable[[FileResult], None] | None = None) -> RunSummary:
    """Process every file of config.source into config.dest; resumable; returns all results."""
    config.dest.mkdir(parents=True, exist_ok=True)
    config.hospital_dir.mkdir(parents=True, exist_ok=True)
    (config.hospital_dir / SOURCE_NOTE).write_text(str(config.source), encoding="utf-8")
    files = plan(config.source, [config.dest, config.hospital_dir, *config.program_files])
    jobs = [(f"F{i + 1:06d}", str(p), p.relative_to(config.source).as_posix()) for i, p in enumerate(files)]
    state_path = config.hospital_dir / STATE_NAME
    done = _load_state(state_path, config.fingerprint(), config.dest)
    todo = [j for j in jobs if j[2] not in done]
    placed: dict[str, FileResult] = {r.out: r for r in done.values() if r.status == WRITTEN}
    results: dict[str, FileResult] = dict(done)
    if progress:
        progress(len(jobs) - len(todo), len(jobs))
    with _StateWriter(state_path, config.fingerprint(), fresh=not done) as state:
        for result in _execute(todo, config):
            _place(result, placed, results, config.dest, state)
            results[result.src] = result
            state.append(result)
            if on_problem and result.status in (HELD, FAILED):
                on_problem(result)
            if progress:
                progress(len(results), len(jobs))
    partial_dir = config.dest / PARTIAL_DIR
    if partial_dir.exists():
        for leftover in partial_dir.iterdir():
            leftover.unlink()
        partial_dir.rmdir()
    ordered = [results[j[2]] for j in jobs if j[2] in results]
    return RunSummary(ordered, resumed=len(done))


def _execute(jobs: list[tuple[str, str, str]], config: RunConfig) -> Iterator[FileResult]:
    args = (config.guidelines, config.key, str(config.dest), str(config.hospital_dir),
            str(config.override_dir or ""))
    workers = config.workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(jobs) < 16:
        _init_worker(*args)
        for job in jobs:
            yield process_file(job)
        return
    ctx = multiprocessing.get_context("spawn" if sys.platform == "win32" else None)
    with ctx.Pool(workers, initializer=_init_worker, initargs=args) as pool:
        yield from pool.imap_unordered(process_file, jobs, chunksize=4)


def _place(result: FileResult, placed: dict[str, FileResult], results: dict[str, FileResult],
           dest: Path, state: "_StateWriter") -> None:
    """Move a finished file from the partial folder to its place; settle duplicates by source order."""
    if result.status != WRITTEN:
        return
    partial = partial_path(dest, result.src)
    final = dest / result.out
    holder = placed.get(result.out)
    if holder is not None:
        if holder.sha256 == result.sha256 or holder.src < result.src:
            partial.unlink(missing_ok=True)
            result.status = DUPLICATE
            result.reason = f"same instance as {holder.ref}" + ("" if holder.sha256 == result.sha256 else " (different bytes)")
            return
        holder.status, holder.reason = DUPLICATE, f"same instance as {result.ref} (different bytes)"
        results[holder.src] = holder
        state.append(holder)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    placed[result.out] = result


class _StateWriter:
    """Append-only resume journal (hospital side): one JSON line per finished file, fsynced."""

    def __init__(self, path: Path, fingerprint: str, fresh: bool) -> None:
        self.path, self.fingerprint, self.fresh = path, fingerprint, fresh

    def __enter__(self) -> "_StateWriter":
        if self.fresh:
            self.fp = self.path.open("w", encoding="utf-8")
            self.fp.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")
        else:
            self.fp = self.path.open("a", encoding="utf-8")
        return self

    def append(self, result: FileResult) -> None:
        self.fp.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        self.fp.flush()
        os.fsync(self.fp.fileno())

    def __exit__(self, *exc) -> None:
        self.fp.close()


def _load_state(path: Path, fingerprint: str, dest: Path) -> dict[str, FileResult]:
    """Results of an earlier, interrupted run of the same job whose outputs are still in place."""
    if not path.exists():
        return {}
    results: dict[str, FileResult] = {}
    with path.open(encoding="utf-8") as fp:
        first = fp.readline()
        try:
            if json.loads(first).get("fingerprint") != fingerprint:
                return {}
        except (ValueError, AttributeError):
            return {}
        for line in fp:
            try:
                r = FileResult(**json.loads(line))
            except (ValueError, TypeError):
                break  # a line cut by the kill: everything after it is redone
            results[r.src] = r
    for src, r in list(results.items()):
        if r.status == WRITTEN and not (dest / r.out).is_file():
            del results[src]
    return results


def output_is_ours(dest: Path) -> bool:
    return (dest / MANIFEST_NAME).is_file() or (dest / PARTIAL_DIR).is_dir()


def state_matches(config: RunConfig) -> bool:
    path = config.hospital_dir / STATE_NAME
    if not path.exists():
        return False
    try:
        with path.open(encoding="utf-8") as fp:
            return json.loads(fp.readline()).get("fingerprint") == config.fingerprint()
    except (OSError, ValueError, AttributeError):
        return False


def source_of(hospital_dir: Path) -> Path | None:
    """The export an earlier run into this output came from (read from its hospital-side note)."""
    try:
        return Path((hospital_dir / SOURCE_NOTE).read_text(encoding="utf-8").strip())
    except OSError:
        return None
