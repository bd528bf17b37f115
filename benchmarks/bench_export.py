"""Throughput and memory of deid_tool on a large synthetic export, against a plain copy.

    python benchmarks/bench_export.py [--shape light|heavy|real] [--runs 3] [--cache DIR] [--workers 2]
    python benchmarks/bench_export.py --shape heavy --profile 150     (cProfile of 150 files, one process)
    python benchmarks/bench_export.py [--slices 1500] [--multiframe 2] [--frames 200] [--workers 2]
    python benchmarks/bench_export.py --big-file [--big-gb 2.0] [--workers 2]
    python benchmarks/bench_export.py --keep DIR          (generate into DIR and keep it)
    python benchmarks/bench_export.py --stages [--keep DIR] [--repeat 3]

Header shapes (--shape; benchmarks/header_shapes.py makes them):
  light  (default) the synthetic export described below: short headers (~60 elements).
  heavy  --slices (default 1000) 512x512 CT slices whose headers carry every Table E.1-1 attribute
         that can hold a value, nested sequences, GE/Siemens/Philips-like private blocks and three
         character sets (~790 top-level elements, ~1,070 with nested ones, ~31-35 KB of header).
         Generated once, deterministically, into --cache (default /work/cache/deidkit_bench, else
         ~/.cache/deidkit_bench) and reused.
  real   the public dcm_qa data: Siemens with CSA (github:neurolabusc/dcm_qa), GE with large private
         groups (dcm_qa_ge), Philips enhanced multi-frame (dcm_qa_philips_enh, gunzipped), each
         extracted under --dcm-qa DIR/<name> (default /work/cache/dcm_qa: the In/ folder of each
         repository, e.g. `git --git-dir=<mirror> archive HEAD In | tar -x -C /work/cache/dcm_qa/<name>`)
         and laid out as hard links in --cache, each vendor's files repeated up to --real-files
         (default 1000; the enhanced ones a fifth of that). Repeats are the same instances: written
         once, the rest counted as duplicates; a file found twice is done once (export_twins), so
         the figures are also printed per distinct file (what an export without repeats costs).
For every shape the figures are the median of --runs runs of `cp -r` of the tree and of deid_tool
on it, alternating, in the same invocation: CPU per file in all processes, the ratio of wall
times, and the peak resident memory of the largest process. The machine may be shared: compare
ratios and CPU, not seconds. --profile N instead runs the first N files of the shape in this one
process under cProfile and prints the top functions by cumulative and by own time, and the share
of the main stages.

Default mode (light): generates an export of 512x512 16-bit CT slices (fake PHI in every header, a few
series per patient) plus a few big multi-frame files, then measures in the same run
  - a plain shutil.copytree of the export (the baseline; run before and after ours, faster kept),
  - `python deid_tool.py SRC --out DEST --yes --key K --workers N` in a subprocess,
and prints files/s, MB/s, the ratio of our wall time to the copy's (target: <= 3x on 2 cores)
and the peak resident memory of the tool (largest of its processes, from wait4/RUSAGE_CHILDREN).

--big-file: one multi-frame file of about --big-gb GB (frames streamed to disk while generating,
so the generator itself stays small) goes through the tool; prints its peak resident memory
(target: well under 1 GB for a 2 GB file) and the same ratio to a copy of the file.

--stages: CPU time per file by stage (read header, engine, encode, header search, pixel copy +
sha256, placing, journal, the rest), measured in this one process (the export with one worker, no
pool), best of --repeat runs, against a single-process plain copy of the same files. CPU time of
one process hardly depends on other work on the machine, unlike wall time: compare changes with
this. With --keep DIR an export already generated there is reused.

Everything lives in a temporary folder that is removed at the end (unless --keep). The page
cache is warm for both the copy and our run (the export was just written), so the ratio compares
CPU-side work, the part we control. Figures only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from deidkit.synth import FakePatient, base_dataset, synth_uid  # noqa: E402

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
NAMES = ["DOE^JOHN", "ROE^JANE", "MUSTERMANN^MAX", "ROSSI^MARIO", "DUPONT^JEAN", "NOWAK^ANNA"]


def header(patient: int, sop_class: str, study: int, series: int, instance: int, rows: int, cols: int) -> Dataset:
    """A CT header from deidkit.synth with fake identifying values, plus CT geometry."""
    fake = FakePatient(NAMES[patient % len(NAMES)] + f"^P{patient}", f"MRN{patient:07d}", "19610203", "ISO_IR 100",
                       "12 Elm Street", "555 0100 2345", f"ACC{patient:04d}{study:02d}", "20240115", "")
    ds = base_dataset(fake, sop_class, synth_uid("study", patient, study), synth_uid("series", patient, study, series),
                      synth_uid("sop", patient, study, series, instance), "CT", series + 1, instance + 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SliceThickness, ds.KVP = "1.0", "120"
    ds.ImagePositionPatient = [-250.0, -250.0, float(-instance)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    return ds


def slice_pixels(size: int, variants: int = 8) -> list[bytes]:
    """A few anatomy-like noisy slices; files cycle through them (generation speed, not realism)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((yy - size / 2) / (size * 0.42)) ** 2 + ((xx - size / 2) / (size * 0.36)) ** 2 < 1
    out = []
    for _ in range(variants):
        img = np.where(body, 1000, 0) + rng.normal(0, 40, size=(size, size))
        out.append(np.clip(img, 0, 4095).astype("<u2").tobytes())
    return out


def write_multiframe(path: Path, ds: Dataset, frames: int, frame_bytes: list[bytes]) -> None:
    """Header by pydicom, then the pixel data element written by hand, frame by frame."""
    ds.NumberOfFrames = frames
    path.parent.mkdir(parents=True, exist_ok=True)
    length = frames * len(frame_bytes[0])
    with path.open("wb") as fp:
        dcmwrite(fp, ds, enforce_file_format=True)
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for i in range(frames):
            fp.write(frame_bytes[i % len(frame_bytes)])


def generate(root: Path, slices: int, multiframe: int, frames: int, size: int = 512) -> tuple[int, int]:
    """Write the export; returns (files, bytes). Series of 250 slices, two series per study."""
    pixels = slice_pixels(size)
    per_series = 250
    n = 0
    for i in range(slices):
        series_index, instance = divmod(i, per_series)
        patient, series = divmod(series_index, 2)
        ds = header(patient, CT_IMAGE, 0, series, instance, size, size)
        ds.PixelData = pixels[i % len(pixels)]
        folder = root / f"{NAMES[patient % len(NAMES)].replace('^', ' ')} {patient}" / f"SE{series + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        dcmwrite(folder / f"IM{instance + 1:05d}.dcm", ds, enforce_file_format=True)
        n += 1
    for m in range(multiframe):
        ds = header(1000 + m, ENHANCED_CT, 0, 0, 0, size, size)
        write_multiframe(root / f"MULTIFRAME {m}" / "IM00001.dcm", ds, frames, pixels)
        n += 1
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return n, total


def drop_page_cache() -> None:
    """Cold-cache runs (Linux, root): an export of hundreds of GB is never in memory, so reading
    it from disk is part of what both the copy and our run pay."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_copy(src: Path, dst: Path, cold: bool = False) -> float:
    if dst.exists():
        shutil.rmtree(dst)
    if cold:
        drop_page_cache()
    t0 = time.perf_counter()
    shutil.copytree(src, dst)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(dst)
    return elapsed


def timed_tool(src: Path, dest: Path, key: Path, workers: int, cold: bool = False) -> tuple[float, int, int, float]:
    """(wall seconds, exit status, peak RSS bytes of the tool's largest process, CPU seconds of all)."""
    if cold:
        drop_page_cache()
    cmd = [sys.executable, str(ROOT / "deid_tool.py"), str(src), "--out", str(dest), "--yes", "--key", str(key),
           "--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 gives the rusage of this child and every descendant it waited for (the pool workers)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"deid_tool exited {proc.returncode}: {err[-800:]}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return elapsed, proc.returncode, rss, usage.ru_utime + usage.ru_stime


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def bench_export(work: Path, args: argparse.Namespace) -> None:
    src = work / "PACS EXPORT"
    if args.runs:  # the side-by-side measure every shape shares (median of --runs, cp -r)
        if not src.exists():
            print(f"Generating {args.slices} CT slices + {args.multiframe} multi-frame files in {work} ...", flush=True)
            generate(src, args.slices, args.multiframe, args.frames)
        measure_shape("light", src, work, args)
        return
    print(f"Generating {args.slices} CT slices 512x512 16-bit + {args.multiframe} multi-frame files of "
          f"{args.frames} frames in {work} ...", flush=True)
    t0 = time.perf_counter()
    files, total = generate(src, args.slices, args.multiframe, args.frames)
    print(f"  {files} files, {mb(total)} in {time.perf_counter() - t0:.1f} s")
    copy_before = timed_copy(src, work / "COPY", args.cold)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ours, code, peak, cpu = timed_tool(src, work / "OUT", work / "site.key", args.workers, args.cold)
    copy_after = timed_copy(src, work / "COPY", args.cold)
    copy = min(copy_before, copy_after)
    written = len(list((work / "OUT").rglob("*.dcm")))
    print(f"\nworkers {args.workers or 'default'} (cores {os.cpu_count()}), Python {sys.version.split()[0]}, {sys.platform}, "
          f"page cache {'dropped before each run (cold)' if args.cold else 'warm (source read from memory)'}")
    print(f"plain copy (shutil.copytree): {copy:.2f} s  (runs: {copy_before:.2f} s, {copy_after:.2f} s)"
          f"  {total / 1e6 / copy:,.0f} MB/s")
    print(f"deid_tool:                    {ours:.2f} s  exit {code}, {written} of {files} files written")
    print(f"  throughput: {files / ours:,.1f} files/s, {total / 1e6 / ours:,.0f} MB/s")
    print(f"  CPU: {cpu:.1f} s in all processes = {1000 * cpu / files:.1f} ms per file"
          f" (load average before the run: {load:.1f}; other work on the machine slows the wall time)")
    print(f"  peak memory (largest process): {mb(peak)}")
    print(f"  ratio to copy: {ours / copy:.2f}x  (target <= 3x on 2 cores)")


def bench_big_file(work: Path, args: argparse.Namespace) -> None:
    src = work / "BIG EXPORT"
    size = 512
    frame = size * size * 2
    frames = max(1, int(args.big_gb * 1e9 // frame))
    print(f"Generating one multi-frame file: {frames} frames 512x512 16-bit ({mb(frames * frame)}) ...", flush=True)
    ds = header(1, ENHANCED_CT, 0, 0, 0, size, size)
    path = src / "PATIENT" / "IM00001.dcm"
    write_multiframe(path, ds, frames, slice_pixels(size, variants=4))
    total = path.stat().st_size
    copy_before = timed_copy(src, work / "COPY")
    ours, code, peak, cpu = timed_tool(src, work / "OUT", work / "site.key", args.workers)
    copy_after = timed_copy(src, work / "COPY")
    copy = min(copy_before, copy_after)
    outs = list((work / "OUT").rglob("*.dcm"))
    same_tail = bool(outs) and _tail(outs[0]) == _tail(path)
    print(f"\nfile size {mb(total)}; workers {args.workers}; Python {sys.version.split()[0]}, {sys.platform}")
    print(f"plain copy: {copy:.2f} s   deid_tool: {ours:.2f} s (exit {code})   ratio {ours / copy:.2f}x")
    print(f"  throughput: {total / 1e6 / ours:,.0f} MB/s")
    print(f"  peak memory (largest process): {mb(peak)}  (target: well under 1 GB)")
    print(f"  written: {len(outs)} file; last 1 MB of pixel data identical to the source: {same_tail}")


STAGES = [("read header", "dicomio", "read_header"), ("engine", "engine", "deidentify"),
          ("encode header", "dicomio", "encode_header"), ("header search", "export_last_net", "identifier_in_header"),
          ("pixel copy + sha256", "dicomio", "write_streamed"), ("place output", "export_place.Placement", "place"),
          ("journal line", "export_resume.StateWriter", "append")]


def bench_stages(work: Path, args: argparse.Namespace) -> None:
    """CPU ms per file by stage, one process; the timers wrap the stage functions."""
    import importlib
    import time as _time
    from deidkit import export
    from deidkit import guidelines as gl

    src = work / "PACS EXPORT"
    if not src.exists():
        print(f"Generating {args.slices} CT slices + {args.multiframe} multi-frame files in {work} ...", flush=True)
        generate(src, args.slices, args.multiframe, args.frames)
    files = [p for p in src.rglob("*") if p.is_file()]
    spent: dict[str, float] = {}

    def timed(label, fn):
        def wrapper(*a, **k):
            t0 = _time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + _time.process_time() - t0
        return wrapper

    for label, module, name in STAGES:
        owner = importlib.import_module("deidkit." + module) if "." not in module else \
            getattr(importlib.import_module("deidkit." + module.split(".")[0]), module.split(".")[1])
        setattr(owner, name, timed(label, getattr(owner, name)))
    g = gl.load()
    best: dict[str, float] = {}
    copy_best = float("inf")
    for _ in range(args.repeat):
        dest = work / "STAGES_OUT"
        for d in (dest, dest.with_name(dest.name + "_HOSPITAL_ONLY"), work / "COPY"):
            shutil.rmtree(d, ignore_errors=True)
        t0 = _time.process_time()
        shutil.copytree(src, work / "COPY")
        copy_best = min(copy_best, _time.process_time() - t0)
        shutil.rmtree(work / "COPY")
        spent.clear()
        config = export.RunConfig(source=src, dest=dest, hospital_dir=dest.with_name(dest.name + "_HOSPITAL_ONLY"),
                                  guidelines=g, key=b"\x5a" * 32, workers=1)
        t0 = _time.process_time()
        export.run_export(config)
        spent["all (run_export)"] = _time.process_time() - t0
        for label, value in spent.items():
            best[label] = min(best.get(label, float("inf")), value)
    n = len(files)
    staged = sum(v for k, v in best.items() if k != "all (run_export)")
    print(f"\n{n} files, one process, CPU ms per file (best of {args.repeat} runs); Python {sys.version.split()[0]}")
    for label, _, _ in STAGES:
        print(f"  {label:22s} {1000 * best.get(label, 0.0) / n:6.3f}")
    print(f"  {'the rest':22s} {1000 * (best['all (run_export)'] - staged) / n:6.3f}")
    print(f"  {'all (run_export)':22s} {1000 * best['all (run_export)'] / n:6.3f}")
    print(f"plain copy (shutil.copytree), same process: {1000 * copy_best / n:.3f} ms per file; "
          f"ratio {best['all (run_export)'] / copy_best:.2f}x")



# ---- shapes, side-by-side measure, profile (issue 19) ------------------------------------------

def default_cache() -> Path:
    """Where generated and laid-out trees stay between runs (never inside the repository)."""
    return Path("/work/cache/deidkit_bench") if Path("/work/cache").is_dir() else Path.home() / ".cache" / "deidkit_bench"


def shape_tree(shape: str, work: Path, args: argparse.Namespace) -> Path:
    """The source tree of a shape (generated or laid out on first use)."""
    import header_shapes

    if shape == "heavy":
        print(f"Heavy headers: {args.slices} slices in {args.cache} (generated once) ...", flush=True)
        return header_shapes.cached_heavy_export(args.cache, args.slices)
    if shape == "real":
        print(f"Real vendor headers from {args.dcm_qa}, {args.real_files} per vendor, in {args.cache} ...", flush=True)
        root = header_shapes.build_real_tree(args.dcm_qa, args.cache, args.real_files)
        if args.vendor:
            return root / args.vendor
        return root
    src = work / "PACS EXPORT"
    if not src.exists():
        print(f"Generating {args.slices} CT slices + {args.multiframe} multi-frame files in {work} ...", flush=True)
        generate(src, args.slices, args.multiframe, args.frames)
    return src


def _run_measured(cmd: list[str]) -> tuple[float, int, int, float]:
    """(wall s, exit status, peak RSS bytes of the largest process, CPU s of it and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{cmd[0]} exited {code}: {err[-800:]}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return elapsed, code, rss, usage.ru_utime + usage.ru_stime


def fingerprint_cost(src: Path, sample: int = 200) -> tuple[float, int]:
    """(CPU ms per candidate of export_twins.claim over up to `sample` candidates, number of
    candidates in the tree): what a file found once costs for the chance of being found twice."""
    from deidkit import export
    from deidkit.export_twins import claim, plan_twins

    jobs = [(f"F{i + 1:06d}", str(p), p.relative_to(src).as_posix()) for i, p in enumerate(export.plan(src, []))]
    twin_plan = plan_twins(jobs)
    chosen = [j for j in jobs if j[0] in twin_plan.candidates][:sample]
    if not chosen:
        return 0.0, 0
    spent = float("inf")
    for _ in range(3):  # best of three: the first pass may read from disk
        with tempfile.TemporaryDirectory(prefix="deidkit_markers_") as folder:
            t0 = time.process_time()
            for job in chosen:
                claim(job, folder)
            spent = min(spent, time.process_time() - t0)
    return 1000 * spent / len(chosen), len(twin_plan.candidates)


def distinct_files(files: list[Path]) -> int:
    """How many different contents the files hold (size, then SHA-256 of sizes met twice)."""
    import hashlib

    by_size: dict[int, list[Path]] = {}
    for f in files:
        by_size.setdefault(f.stat().st_size, []).append(f)
    digests = set()
    for size, group in by_size.items():
        if len(group) == 1:
            digests.add((size, ""))
            continue
        for f in group:
            h = hashlib.sha256()
            with f.open("rb") as fp:
                while chunk := fp.read(1 << 20):
                    h.update(chunk)
            digests.add((size, h.hexdigest()))
    return len(digests)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_shape(shape: str, src: Path, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """cp -r of src and deid_tool on src, --runs times each, alternating; prints medians."""
    files = [p for p in src.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    n = len(files)
    copy_dir, out = work / "CP_COPY", work / "OUT"
    copies, tools = [], []
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for _ in range(args.runs):
        for d in (copy_dir, out, out.with_name(out.name + "_HOSPITAL_ONLY")):
            shutil.rmtree(d, ignore_errors=True)
        if args.cold:
            drop_page_cache()
        copies.append(_run_measured(["cp", "-r", str(src), str(copy_dir)]))
        shutil.rmtree(copy_dir, ignore_errors=True)
        if args.cold:
            drop_page_cache()
        cmd = [sys.executable, str(ROOT / "deid_tool.py"), str(src), "--out", str(out), "--yes",
               "--key", str(work / "site.key")]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        tools.append(_run_measured(cmd))
    written = len(list(out.rglob("*.dcm")))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    copy_wall, tool_wall = _median([c[0] for c in copies]), _median([t[0] for t in tools])
    copy_cpu, tool_cpu = _median([c[3] for c in copies]), _median([t[3] for t in tools])
    ratios = [t[0] / c[0] for c, t in zip(copies, tools, strict=True)]
    peak = max(t[2] for t in tools)
    print(f"\n[{shape}] {n} files, {mb(total)}; workers {args.workers or 'default'} (cores {os.cpu_count()}), "
          f"Python {sys.version.split()[0]}; {args.runs} runs; load average {load_before:.1f} before, "
          f"{load_after:.1f} after (a loaded machine slows wall times: read the ratio and the CPU)")
    print(f"  cp -r:     median {copy_wall:.2f} s wall (runs {', '.join(f'{c[0]:.2f}' for c in copies)}), "
          f"CPU {1000 * copy_cpu / n:.2f} ms per file")
    print(f"  deid_tool: median {tool_wall:.2f} s wall (runs {', '.join(f'{t[0]:.2f}' for t in tools)}), exit "
          f"{tools[-1][1]}, {written} of {n} files written (repeats of one instance are written once)")
    print(f"  CPU per file (all processes): {1000 * tool_cpu / n:.2f} ms   ({tool_cpu:.1f} s for {n} files)")
    print(f"  ratio to cp -r: {tool_wall / copy_wall:.1f}x (median wall / median wall; per run "
          f"{', '.join(f'{r:.1f}' for r in ratios)});  CPU ratio {tool_cpu / max(copy_cpu, 1e-9):.0f}x")
    print(f"  peak memory (largest process): {mb(peak)}")
    fp_ms, candidates = fingerprint_cost(src)
    print(f"  fingerprint of a file whose size another shares (SHA-256 of its bytes + claim marker, one process): "
          f"{fp_ms:.3f} ms per file; {candidates} of {n} files are such candidates "
          f"(~{100 * fp_ms * candidates / n / max(1000 * tool_cpu / n, 1e-9):.1f}% of the CPU per file)")
    distinct = distinct_files(files)
    if distinct < n:  # repeats are done once: the honest figure is per distinct file
        print(f"  distinct files (by bytes): {distinct} of {n}; CPU per distinct file: "
              f"{1000 * tool_cpu / distinct:.2f} ms (the {n - distinct} repeats cost only a fingerprint or a stat)")
    for d in (out, out.with_name(out.name + "_HOSPITAL_ONLY")):
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    return {"files": n, "cpu_ms": 1000 * tool_cpu / n, "ratio": tool_wall / copy_wall, "peak": peak}


# Stages whose cumulative share the profile summary names (module file suffix, function name).
PROFILE_STAGES = [
    ("dicomio.read_header (parse)", "dicomio.py", "read_header"),
    ("  dcmread (stop_before_pixels)", "filereader.py", "dcmread"),
    ("  _touch_all_values (convert every value)", "element_checks.py", "_touch_all_values"),
    ("  _check_structure", "element_checks.py", "_check_structure"),
    ("  _check_lengths", "element_checks.py", "_check_lengths"),
    ("  drop_trailing_padding", "pixel_plan.py", "drop_trailing_padding"),
    ("risk.assess", "risk.py", "assess"),
    ("engine.deidentify", "engine.py", "deidentify"),
    ("  Identifiers.from_dataset", "sweep.py", "from_dataset"),
    ("  _process_dataset (table walk)", "engine_walk.py", "_process_dataset"),
    ("  _sweep (own identifiers)", "engine_sweep.py", "_sweep"),
    ("dicomio.encode_header", "header_encoder.py", "encode_header"),
    ("export_last_net.header_leaks", "export_last_net.py", "header_leaks"),
    ("dicomio.write_streamed (pixels + sha256)", "dicomio.py", "write_streamed"),
    ("export_place.Placement.place", "export_place.py", "place"),
]


def profile_shape(shape: str, src: Path, work: Path, args: argparse.Namespace) -> None:
    """The first --profile files of the shape through run_export in this process under cProfile."""
    import cProfile
    import pstats

    from deidkit import export
    from deidkit import guidelines as gl

    files = sorted(p for p in src.rglob("*") if p.is_file())[: args.profile]
    sub = work / "PROFILE SRC"
    shutil.rmtree(sub, ignore_errors=True)
    for f in files:  # hard links: the same bytes, a tree of exactly these files
        dst = sub / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, dst)
        except OSError:
            shutil.copyfile(f, dst)
    g = gl.load()
    dest = work / "PROFILE_OUT"
    hospital = dest.with_name(dest.name + "_HOSPITAL_ONLY")
    for d in (dest, hospital):
        shutil.rmtree(d, ignore_errors=True)

    def run() -> "export.RunSummary":
        for d in (dest, hospital):
            shutil.rmtree(d, ignore_errors=True)
        config = export.RunConfig(source=sub, dest=dest, hospital_dir=hospital, guidelines=g, key=b"\x5a" * 32,
                                  workers=1)
        return export.run_export(config)

    n = len(files)
    run()  # warm: imports, guideline caches, page cache
    t0 = time.process_time()
    summary = run()
    cpu = time.process_time() - t0  # CPU of this process without the profiler (one process, no pool)
    # cProfile's default clock (wall): a CPU clock would be a system call per event and dwarf the work
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    statuses: dict[str, int] = {}
    for r in summary.results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    print(f"\n[{shape}] profile of {n} files in one process: CPU without the profiler {cpu:.2f} s = "
          f"{1000 * cpu / n:.2f} ms per file (one process, no pool); results {statuses}")
    print("  shares below are of the profiled run's time (cProfile adds a cost per call, so call-heavy code"
          " weighs more than it does unprofiled; ms/file = share x the unprofiled CPU)")
    stats = pstats.Stats(profiler)
    raw = stats.stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    total = sum(v[2] for v in raw.values()) or 1.0
    print("  stage shares (cumulative time of the function / all profiled time):")
    for label, suffix, name in PROFILE_STAGES:
        cum = sum(v[3] for (f, _, fn), v in raw.items() if fn == name and f.endswith(suffix))
        print(f"    {label:44s} {100 * cum / total:5.1f}%  ~{1000 * cpu * cum / total / n:6.2f} ms/file")
    width = 110
    for key, title in (("cumulative", "by cumulative time"), ("tottime", "by own time")):
        rows = sorted(raw.items(), key=lambda kv: kv[1][3 if key == "cumulative" else 2], reverse=True)[: args.top]
        print(f"  top {args.top} functions {title}:")
        print(f"    {'own %':>6s} {'cum %':>6s} {'calls':>9s}  function")
        for (f, line, fn), (_cc, nc, tt, ct, _) in rows:
            where = f"{Path(f).parent.name}/{Path(f).name}:{line}({fn})" if f != "~" else fn
            print(f"    {100 * tt / total:6.1f} {100 * ct / total:6.1f} {nc:9d}  {where[:width]}")
    if args.keep:
        stats.dump_stats(str(work / f"profile_{shape}.pstats"))
    for d in (dest, hospital, sub):
        shutil.rmtree(d, ignore_errors=True)


def _tail(path: Path, n: int = 1 << 20) -> bytes:
    with path.open("rb") as fp:
        fp.seek(-n, os.SEEK_END)
        return fp.read()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=("light", "heavy", "real"), default="light",
                   help="header shape (see above; default light)")
    p.add_argument("--cache", type=Path, default=None, help="folder for generated/laid-out trees (default "
                   "/work/cache/deidkit_bench or ~/.cache/deidkit_bench); kept between runs")
    p.add_argument("--dcm-qa", type=Path, default=Path("/work/cache/dcm_qa"),
                   help="where the dcm_qa repositories are extracted (<DIR>/<name>/In)")
    p.add_argument("--real-files", type=int, default=1000, help="files per vendor for --shape real (default 1000)")
    p.add_argument("--vendor", choices=tuple(__import__("header_shapes").REAL_SOURCES), default=None,
                   help="--shape real: only this vendor's folder")
    p.add_argument("--runs", type=int, default=3, help="side-by-side runs of cp -r and deid_tool (median; default 3;"
                   " 0 for the light shape's original single run against shutil.copytree)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="profile N files of the shape in one process (cProfile) instead of timing")
    p.add_argument("--top", type=int, default=25, help="functions listed by --profile (default 25)")
    p.add_argument("--slices", type=int, default=None,
                   help="512x512 16-bit CT slices (default 1500 for light, ~0.8 GB; 1000 for heavy)")
    p.add_argument("--multiframe", type=int, default=2, help="big multi-frame files (default 2)")
    p.add_argument("--frames", type=int, default=200, help="frames per multi-frame file (default 200, ~105 MB)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: deid_tool's own default)")
    p.add_argument("--cold", action="store_true",
                   help="drop the page cache before each timed run (Linux, root): the source is read from disk,"
                        " as with a real export larger than memory")
    p.add_argument("--big-file", action="store_true", help="push one ~2 GB multi-frame file through instead")
    p.add_argument("--big-gb", type=float, default=2.0)
    p.add_argument("--keep", type=Path, help="work in this folder and keep it")
    p.add_argument("--stages", action="store_true", help="CPU ms per file by stage, in one process (see above)")
    p.add_argument("--repeat", type=int, default=3, help="runs for --stages (the best is shown)")
    args = p.parse_args(argv)
    if args.slices is None:
        args.slices = 1000 if args.shape == "heavy" else 1500
    args.cache = (args.cache or default_cache()).resolve()
    if args.shape != "light" or args.profile:
        args.cache.mkdir(parents=True, exist_ok=True)
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="deidkit_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.profile:
            profile_shape(args.shape, shape_tree(args.shape, work, args), work, args)
        elif args.shape != "light":
            measure_shape(args.shape, shape_tree(args.shape, work, args), work, args)
        else:
            (bench_stages if args.stages else bench_big_file if args.big_file else bench_export)(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
