"""Media benchmark: image ingest with a thumbnail column against a plain Pillow loop, and Parquet
image imports of one and ten times a memory budget, in the same run.

    .venv/bin/python benchmarks/media.py            # 400 images, 64 MiB budget, best of 3
    .venv/bin/python benchmarks/media.py --small    # 40 images, 16 MiB budget (~25 s)

1. Thumbnails. ``--images`` files are copied from the real sample photos scikit-image ships
   (``skimage/data``: PNG and JPEG, found with ``importlib.util.find_spec``, skimage is not
   imported) into a scratch folder under distinct names. Every copy ends with a few unique bytes
   after the image's end marker, which decoders ignore: no two files have the same content, as
   with real photos (the library keeps decoded images in a cache keyed by content, and identical
   copies would let it decode each sample once). Measured, in images/s:

     plain Pillow loop   for each path: im = Image.open(p); im.load();
                         th = im.resize((256, 256)); th.save(BytesIO(), format=im.format or "PNG")
     insert              a fresh table {"image": lh.Image} with
                         thumb = t.image.resize((256, 256)) declared before the insert, then
                         t.insert([{"image": p} for p in paths])
     insert_files        the same table, filled with t.insert_files(folder)

   Each repetition runs in a fresh child process (a cold decode cache and a new thread pool),
   once with ``LAKEHOUSE_THREADS`` unset (one thread per core, the default) and once with
   ``LAKEHOUSE_THREADS=1``, so the table shows what the parallel executor gives. Every child
   times the plain loop too; the best of ``--repeat`` runs counts on both sides. Ratio =
   lakehouse images/s / plain loop images/s: the target is >= 1.5x with the default threads
   (the library decodes, resizes and encodes on every core; the plain loop uses one).

2. Bounded memory. Two sets of Parquet shards in the Hugging Face image layout (``image:
   struct<bytes: binary, path: string>``, ``label: int64``) hold ``1 x`` and ``10 x --budget-mib``
   of real image bytes (the same samples, each copy made unique the same way), written in row
   groups of ``batch_rows`` rows, which keeps one batch near a sixteenth of the budget. Each set
   is imported into a table with ``db.import_parquet(name, glob, batch_rows=...)`` where the
   catalog has it, else with ``t.insert(iterator of ParquetFile.iter_batches(batch_size=...))``,
   in a fresh child process; its peak RSS (``getrusage``) minus its RSS just before the import
   (after a two-row warm-up import) is the growth. Reference: the same batches written straight
   to ``lance.write_dataset`` as blob batches, in fresh children too. Arrow's reader, Lance's
   writer and the library's pools take a working set that ramps up over the first few hundred
   MiB and then stays flat, so the target is that the 10x import is bounded: RSS peaks no more
   than one budget higher in its second half than in its first (sampled every 0.25 s). The
   difference growth(10x) - growth(1x) and the growth over raw Lance are reported beside it.
   The budget is a figure reported against, not an rlimit (an rlimit breaks Arrow's and Lance's
   thread pools).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from reporting import add_output_options, machine, table, write_report

import lakehouse as lh

THUMB = (256, 256)
MIN_SOURCE_BYTES = 10_000  # leave out the few tiny test patterns (chessboards, 100x100 crops)
IMPORT_SIZES = {"1x": 1, "10x": 10}  # each import holds this many times the budget of image bytes
BATCH_FRACTION = 16  # one import batch holds about budget / BATCH_FRACTION of image bytes
SHARDS = 8
TARGET_RATIO = 1.5
MiB = 2**20
DEFAULTS = {"images": 400, "budget_mib": 64}
SMALL = {"images": 40, "budget_mib": 16}
CONFIGS = {"default": None, "one_thread": "1"}  # value of LAKEHOUSE_THREADS (None: unset)


def log(message: str) -> None:
    print(f"[media] {message}", file=sys.stderr, flush=True)


# --- sample files --------------------------------------------------------------------------------
def sample_images() -> list[Path]:
    """The real PNG and JPEG photos shipped inside scikit-image's wheel (not imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image is not installed: pip install -e '.[demo]'")
    folder = Path(spec.origin).parent / "data"
    found = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                   and p.stat().st_size >= MIN_SOURCE_BYTES)
    if not any(p.suffix.lower() != ".png" for p in found):
        raise SystemExit(f"no JPEG sample found in {folder}")
    return found


def unique(data: bytes, tag: str, i: int) -> bytes:
    """``data`` with unique trailing bytes: decoders stop at the image's end marker."""
    return data + f"\x00lakehouse-bench {tag} {i:08d}".encode()


def make_images(folder: Path, sources: list[tuple[Path, bytes]], n: int, tag: str) -> list[Path]:
    """``n`` distinct image files, copies of the samples in turn (a mix of PNG and JPEG)."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        src, data = sources[i % len(sources)]
        path = folder / f"{i:05d}_{src.stem}{src.suffix.lower()}"
        path.write_bytes(unique(data, tag, i))
        paths.append(path)
    return paths


def make_shards(folder: Path, sources: list[tuple[Path, bytes]], total: int,
                batch_rows: int) -> dict[str, Any]:
    """Parquet shards in the Hugging Face image layout holding at least ``total`` image bytes,
    written one row group (``batch_rows`` rows) at a time."""
    folder.mkdir(parents=True)
    schema = pa.schema([
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("label", pa.int64()),
    ])
    per_shard = -(-total // SHARDS)
    rows = written = 0
    biggest_batch = 0
    for s in range(SHARDS):
        if written >= total:
            break
        with pq.ParquetWriter(folder / f"train-{s:05d}-of-{SHARDS:05d}.parquet", schema) as w:
            shard_bytes = 0
            while shard_bytes < per_shard and written < total:
                images, paths, labels = [], [], []
                for _ in range(batch_rows):
                    src, data = sources[rows % len(sources)]
                    images.append(unique(data, "parquet", rows))
                    paths.append(f"{rows:07d}_{src.name}")
                    labels.append(rows % len(sources))
                    rows += 1
                size = sum(map(len, images))
                biggest_batch = max(biggest_batch, size)
                shard_bytes += size
                written += size
                structs = pa.StructArray.from_arrays(
                    [pa.array(images, pa.binary()), pa.array(paths, pa.string())],
                    fields=list(schema.field("image").type))
                w.write_batch(pa.record_batch([structs, pa.array(labels, pa.int64())],
                                              schema=schema))
    files = sorted(folder.glob("*.parquet"))
    return {"rows": rows, "image_bytes": written, "largest_batch_bytes": biggest_batch,
            "shards": len(files), "file_bytes": sum(f.stat().st_size for f in files)}


# --- the two sides of the thumbnail run ---------------------------------------------------------
def plain_loop(paths: list[Path]) -> None:
    for p in paths:
        im = Image.open(p)
        im.load()
        th = im.resize(THUMB)
        th.save(io.BytesIO(), format=im.format or "PNG")


def thumb_table(db: Any, name: str) -> Any:
    t = db.create_table(name, {"image": lh.Image})
    t.add_computed_column(thumb=t.image.resize(THUMB))
    return t


def check_thumbs(t: Any, n: int) -> None:
    """Every row is in the table with a 256x256 thumbnail."""
    assert t.count() == n, (t.count(), n)
    thumbs = t.select(t.thumb).collect()["thumb"]
    assert thumbs.null_count() == 0, thumbs.null_count()
    for data in thumbs.head(5).to_list():
        assert Image.open(io.BytesIO(data)).size == THUMB


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def child_images(spec: dict[str, Any]) -> dict[str, Any]:
    """One repetition of the thumbnail run, in a fresh process."""
    from lakehouse.media.pool import workers

    work = Path(spec["work"])
    paths = sorted((work / "images" / "insert").iterdir())
    folder = work / "images" / "files"
    warm = sorted((work / "images" / "warm").iterdir())
    db = lh.connect(str(Path(spec["scratch"]) / "lakehouse"))
    # warm-up: Pillow's plugins, Lance's runtime and the thread pool start outside the timings
    plain_loop(warm)
    thumb_table(db, "warm").insert([{"image": str(p)} for p in warm], progress=False)

    out: dict[str, Any] = {"threads": workers()}

    def lakehouse_insert() -> None:
        t = thumb_table(db, "by_insert")
        elapsed, result = timed(lambda: t.insert([{"image": str(p)} for p in paths],
                                                 progress=False))
        assert result.rows_written == len(paths) and result.rows_with_errors == 0, result
        check_thumbs(t, len(paths))
        out["insert"] = elapsed

    def lakehouse_insert_files() -> None:
        if not hasattr(lh.Table, "insert_files"):
            out["insert_files"] = "Table.insert_files does not exist"
            return
        t = thumb_table(db, "by_insert_files")
        try:
            elapsed, _ = timed(lambda: t.insert_files(str(folder), progress=False))
        except Exception as exc:  # a method still being written: report, do not stop the run
            out["insert_files"] = f"{type(exc).__name__}: {exc}"
            return
        check_thumbs(t, len(paths))
        out["insert_files"] = elapsed

    def baseline() -> None:
        out["plain_loop"], _ = timed(lambda: plain_loop(paths))

    steps = [baseline, lakehouse_insert, lakehouse_insert_files]
    for step in steps if spec["rep"] % 2 == 0 else steps[::-1]:
        step()
    return out


# --- the bounded-memory import ---------------------------------------------------------------
def rss_now() -> int:
    """Resident set size of this process, in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class RssSampler:
    """Samples the RSS every ``interval`` seconds on a thread, to show whether it plateaus."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(self.interval):
            self.samples.append((round(time.perf_counter() - start, 2), rss_now()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def parquet_batches(files: list[Path], batch_rows: int) -> Iterator[pa.RecordBatch]:
    for path in files:
        with pq.ParquetFile(path) as f:
            yield from f.iter_batches(batch_size=batch_rows)


def warm_up_import(db: Any, files: list[Path], schema: dict[str, Any]) -> None:
    """Start Lance's runtime, Arrow's allocator and reader, and Pillow's plugins: fixed costs
    paid before the measured import, not memory that grows with the data."""
    with pq.ParquetFile(files[0]) as f:
        first = next(f.iter_batches(batch_size=2))
    db.create_table("warm", schema).insert(first, progress=False)


def raw_lance_batches(files: list[Path], batch_rows: int,
                      schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The import batches as Lance blob batches, built in Arrow without a copy per image into
    Python: what a careful hand-written import would write."""
    blob = schema.field("image").type
    fields = list(blob.storage_type)
    for batch in parquet_batches(files, batch_rows):
        data = batch.column("image").field("bytes").cast(pa.large_binary())
        n = len(data)
        storage = pa.StructArray.from_arrays(
            [data if f.name == "data" else pa.nulls(n, f.type) for f in fields], fields=fields)
        images = pa.ExtensionArray.from_storage(blob, storage)
        yield pa.record_batch([images, batch.column("label")], schema=schema)


def child_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """The import, in a fresh process, with its RSS measured around it. ``spec["side"]``:
    ``lakehouse``, or ``raw`` (the same batches straight to ``lance.write_dataset``)."""
    import lance

    shards = Path(spec["shards"])
    files = sorted(shards.glob("*.parquet"))
    batch_rows = spec["batch_rows"]
    scratch = Path(spec["scratch"])
    db = lh.connect(str(scratch / "lakehouse"))
    schema = {"image": lh.Image, "label": lh.Int}
    warm_up_import(db, files, schema)
    raw_schema = pa.schema([lance.blob_field("image"), pa.field("label", pa.int64())])

    if spec["side"] == "raw":
        method = "lance.write_dataset"
    else:
        method = "import_parquet" if hasattr(db, "import_parquet") else "insert_batches"
    gc.collect()
    before = rss_now()
    with RssSampler() as sampler:
        if method == "lance.write_dataset":
            reader = pa.RecordBatchReader.from_batches(
                raw_schema, raw_lance_batches(files, batch_rows, raw_schema))
            elapsed, _ = timed(lambda: lance.write_dataset(reader, str(scratch / "raw.lance")))
        elif method == "import_parquet":
            elapsed, _ = timed(lambda: db.import_parquet(
                "imported", str(shards / "*.parquet"), batch_rows=batch_rows, progress=False))
        else:
            t = db.create_table("imported", schema)
            elapsed, _ = timed(lambda: t.insert(parquet_batches(files, batch_rows),
                                                progress=False))
    peak = peak_rss()
    rows = (lance.dataset(str(scratch / "raw.lance")).count_rows() if spec["side"] == "raw"
            else db.get_table("imported").count())
    return {"method": method, "seconds": elapsed, "rows": rows, "rss_before": before,
            "peak_rss": peak, "rss_after": rss_now(),
            "rss_samples": [[s, round(b / MiB, 1)] for s, b in sampler.samples]}


def run_child(kind: str, spec: dict[str, Any], work: Path, env_threads: str | None) -> Any:
    spec_path = work / f"spec-{kind}-{time.monotonic_ns()}.json"
    result_path = spec_path.with_suffix(".result.json")
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.pop("LAKEHOUSE_THREADS", None)
    if env_threads is not None:
        env["LAKEHOUSE_THREADS"] = env_threads
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--spec", str(spec_path)],
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} child process failed (exit {proc.returncode})")
    return json.loads(result_path.read_text())


# --- the benchmark ---------------------------------------------------------------------------
def run_images(args: argparse.Namespace, work: Path,
               sources: list[tuple[Path, bytes]]) -> tuple[dict[str, Any], dict[str, Any]]:
    n = args.images
    log(f"writing 2 x {n} distinct image files")
    paths = make_images(work / "images" / "insert", sources, n, "insert")
    make_images(work / "images" / "files", sources, n, "files")
    make_images(work / "images" / "warm", sources[:4], 4, "warm")
    formats: dict[str, int] = {}
    for p in paths:
        fmt = "JPEG" if p.suffix == ".jpg" else "PNG"
        formats[fmt] = formats.get(fmt, 0) + 1
    dataset = {"images": n, "formats": formats, "bytes": sum(p.stat().st_size for p in paths),
               "sources": [src.name for src, _ in sources], "thumbnail": list(THUMB)}

    samples: dict[str, dict[str, Any]] = {
        cfg: {"threads": None, "plain_loop": [], "insert": [], "insert_files": [],
              "insert_files_error": None} for cfg in CONFIGS}
    for rep in range(args.repeat):
        for cfg, env_threads in CONFIGS.items():
            log(f"thumbnails, run {rep + 1}/{args.repeat}, "
                f"LAKEHOUSE_THREADS={env_threads or 'unset'} ({n} images)")
            scratch = work / f"scratch-{cfg}-{rep}"
            got = run_child("images", {"work": str(work), "scratch": str(scratch), "rep": rep},
                            work, env_threads)
            shutil.rmtree(scratch, ignore_errors=True)
            entry = samples[cfg]
            entry["threads"] = got["threads"]
            entry["plain_loop"].append(got["plain_loop"])
            entry["insert"].append(got["insert"])
            if isinstance(got["insert_files"], str):
                entry["insert_files_error"] = got["insert_files"]
            else:
                entry["insert_files"].append(got["insert_files"])

    ops: dict[str, dict[str, Any]] = {}
    for cfg, entry in samples.items():
        suffix = "" if cfg == "default" else "_1_thread"
        for side in ("insert", "insert_files"):
            op = f"{side}_thumbnails{suffix}"
            ops[op] = throughput(n, entry[side], entry["plain_loop"], entry["threads"])
            if side == "insert_files" and not entry[side]:
                ops[op]["unavailable"] = entry["insert_files_error"]
    for side in ("insert", "insert_files"):
        fast, slow = ops[f"{side}_thumbnails"], ops[f"{side}_thumbnails_1_thread"]
        fast["speedup_over_1_thread"] = (fast["lakehouse"] / slow["lakehouse"]
                                         if fast["lakehouse"] and slow["lakehouse"] else None)
    return dataset, ops


def throughput(n: int, ours: list[float], theirs: list[float], threads: int) -> dict[str, Any]:
    best_theirs = min(theirs)
    best_ours = min(ours) if ours else None
    return {
        "unit": "images/s",
        "threads": threads,
        "lakehouse": n / best_ours if best_ours else None,
        "plain_loop": n / best_theirs,
        "ratio": best_theirs / best_ours if best_ours else None,
        "lakehouse_seconds": ours,
        "plain_loop_seconds": theirs,
    }


def run_memory(args: argparse.Namespace, work: Path,
               sources: list[tuple[Path, bytes]]) -> dict[str, Any]:
    budget = args.budget_mib * MiB
    mean = statistics.mean(len(data) for _, data in sources)
    batch_rows = max(1, int(budget / BATCH_FRACTION / mean))
    sizes: dict[str, dict[str, Any]] = {}
    method = ""
    for size, times in IMPORT_SIZES.items():
        total = times * budget
        log(f"writing {total / MiB:.0f} MiB of images as Parquet shards "
            f"({batch_rows} rows per row group)")
        folder = work / f"shards-{size}"
        shards = make_shards(folder, sources, total, batch_rows)
        sides = {}
        for side in ("lakehouse", "raw"):
            log(f"importing them in a fresh child process ({side}, {size} the "
                f"{args.budget_mib} MiB budget)")
            scratch = work / f"scratch-memory-{size}-{side}"
            got = run_child("memory", {"shards": str(folder), "batch_rows": batch_rows,
                                       "scratch": str(scratch), "side": side}, work, None)
            shutil.rmtree(scratch, ignore_errors=True)
            assert got["rows"] == shards["rows"], (size, side, got["rows"], shards["rows"])
            got["growth"] = max(0, got["peak_rss"] - got["rss_before"])
            sides[side] = got
        shutil.rmtree(folder, ignore_errors=True)
        ours, raw = sides["lakehouse"], sides["raw"]
        method = ours["method"]
        data = shards["image_bytes"]
        sizes[size] = {
            "times_budget": times,
            "rows": ours["rows"],
            "data_bytes": data,
            "parquet_bytes": shards["file_bytes"],
            "shards": shards["shards"],
            "largest_batch_bytes": shards["largest_batch_bytes"],
            "seconds": ours["seconds"],
            "mib_per_s": data / MiB / ours["seconds"],
            "rss_before_bytes": ours["rss_before"],
            "peak_rss_bytes": ours["peak_rss"],
            "rss_after_bytes": ours["rss_after"],
            "peak_rss_growth_bytes": ours["growth"],
            "growth_over_data": ours["growth"] / data,
            "raw_lance_seconds": raw["seconds"],
            "raw_lance_rss_before_bytes": raw["rss_before"],
            "raw_lance_peak_rss_bytes": raw["peak_rss"],
            "raw_lance_peak_rss_growth_bytes": raw["growth"],
            "raw_lance_growth_over_data": raw["growth"] / data,
            "rss_samples_mib": ours["rss_samples"],
            "raw_lance_rss_samples_mib": raw["rss_samples"],
        }
    small, large = sizes["1x"], sizes["10x"]
    return {
        "method": method,
        "budget_bytes": budget,
        "batch_rows": batch_rows,
        "sizes": sizes,
        "added_growth_bytes": large["peak_rss_growth_bytes"] - small["peak_rss_growth_bytes"],
        "raw_lance_added_growth_bytes": (large["raw_lance_peak_rss_growth_bytes"]
                                         - small["raw_lance_peak_rss_growth_bytes"]),
        "growth_over_raw_lance_10x_bytes": (large["peak_rss_growth_bytes"]
                                            - large["raw_lance_peak_rss_growth_bytes"]),
        "second_half_rise_10x_bytes": second_half_rise(large["rss_samples_mib"]),
        "raw_lance_second_half_rise_10x_bytes": second_half_rise(
            large["raw_lance_rss_samples_mib"]),
    }


def second_half_rise(samples: list[list[float]]) -> int:
    """How much higher RSS peaks in the second half of an import than in its first half: about
    zero once memory has stopped growing with the data."""
    if len(samples) < 2:
        return 0
    middle = samples[-1][0] / 2
    # the first sample counts as first half even when the sampler started late
    first = max((mib for t, mib in samples if t <= middle), default=samples[0][1])
    second = max((mib for t, mib in samples if t > middle), default=first)
    return int((second - first) * MiB)


def judge(ops: dict[str, dict[str, Any]], memory: dict[str, Any]) -> None:
    for op, entry in ops.items():
        if op.endswith("_1_thread"):
            entry["target"], entry["met"] = "none (reported)", None
        else:
            entry["target"] = f">= {TARGET_RATIO}x plain loop"
            entry["met"] = None if entry["ratio"] is None else entry["ratio"] >= TARGET_RATIO
    memory["target"] = "10x import: RSS peak of its second half - peak of its first half <= budget"
    memory["met"] = memory["second_half_rise_10x_bytes"] <= memory["budget_bytes"]


LABELS = {
    "insert_thumbnails": "insert + thumbnail",
    "insert_files_thumbnails": "insert_files + thumbnail",
    "insert_thumbnails_1_thread": "  same, LAKEHOUSE_THREADS=1",
    "insert_files_thumbnails_1_thread": "  same, LAKEHOUSE_THREADS=1",
}
ORDER = ["insert_thumbnails", "insert_thumbnails_1_thread", "insert_files_thumbnails",
         "insert_files_thumbnails_1_thread"]


def render(ops: dict[str, dict[str, Any]], memory: dict[str, Any]) -> str:
    rows = [("operation", "threads", "lakehouse", "plain loop", "ratio", "target", "met?")]
    for op in ORDER:
        e = ops[op]
        met = "-" if e["met"] is None else ("yes" if e["met"] else "NO")
        ours = "n/a" if e["lakehouse"] is None else f"{e['lakehouse']:.1f} img/s"
        ratio = "n/a" if e["ratio"] is None else f"{e['ratio']:.2f}x"
        rows.append((LABELS[op], str(e["threads"]), ours, f"{e['plain_loop']:.1f} img/s", ratio,
                     e["target"], met))
    m = memory
    budget = m["budget_bytes"]
    mem_rows = [("import (Parquet, HF image layout)", "data", "rows", "time",
                 "RSS before -> peak", "peak growth", "growth/data")]
    for side, label in (("", "lakehouse"), ("raw_lance_", "raw Lance, same batches")):
        for size, e in m["sizes"].items():
            before, peak = e[f"{side}rss_before_bytes"], e[f"{side}peak_rss_bytes"]
            mem_rows.append((
                f"{label}, {size} budget", f"{e['data_bytes'] / MiB:.0f} MiB", f"{e['rows']:,}",
                f"{e[f'{side}seconds']:.1f} s", f"{before / MiB:.0f} -> {peak / MiB:.0f} MiB",
                f"{e[f'{side}peak_rss_growth_bytes'] / MiB:.0f} MiB",
                f"{e[f'{side}growth_over_data']:.3f}"))
    judged = [
        ("memory", "value", "target", "met?"),
        ("10x import: RSS rise, 2nd half over 1st",
         f"{m['second_half_rise_10x_bytes'] / MiB:.0f} MiB",
         f"<= budget ({budget / MiB:.0f} MiB)", "yes" if m["met"] else "NO"),
        ("  raw Lance, the same",
         f"{m['raw_lance_second_half_rise_10x_bytes'] / MiB:.0f} MiB", "none (reference)", "-"),
        ("lakehouse growth(10x) - growth(1x)", f"{m['added_growth_bytes'] / MiB:.0f} MiB",
         "none (reported)", "-"),
        ("  raw Lance, the same", f"{m['raw_lance_added_growth_bytes'] / MiB:.0f} MiB",
         "none (reference)", "-"),
        ("lakehouse growth over raw Lance, 10x",
         f"{m['growth_over_raw_lance_10x_bytes'] / MiB:.0f} MiB", "none (reported)", "-"),
    ]
    small, large = m["sizes"]["1x"], m["sizes"]["10x"]
    header = (f"import: {m['method']}, budget {budget / MiB:.0f} MiB, batches of "
              f"{m['batch_rows']} rows (largest {large['largest_batch_bytes'] / MiB:.1f} MiB), "
              f"{small['shards']} and {large['shards']} shards, each import in a fresh process")
    return (table(rows) + "\n\n" + header + "\n" + table(mem_rows) + "\n\n"
            + table(judged))


def child_main(kind: str, spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    result = child_images(spec) if kind == "images" else child_memory(spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: {SMALL['images']} images, "
                             f"{SMALL['budget_mib']} MiB budget (unless given)")
    parser.add_argument("--images", type=int, default=None,
                        help=f"image files in the thumbnail run (default {DEFAULTS['images']})")
    parser.add_argument("--budget-mib", type=int, default=None,
                        help="memory budget of the Parquet imports, which hold one and ten "
                             f"times as much image data (default {DEFAULTS['budget_mib']})")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each thumbnail measurement; the best counts (default 3)")
    add_output_options(parser, "media", "files")
    parser.add_argument("--child", choices=("images", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.spec)
    sizes = SMALL if args.small else DEFAULTS
    args.images = args.images or sizes["images"]
    args.budget_mib = args.budget_mib or sizes["budget_mib"]
    if args.images < 2 or args.budget_mib < 1 or args.repeat < 1:
        parser.error("need --images >= 2, --budget-mib >= 1 and --repeat >= 1")

    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "pillow"))
    started = dt.datetime.now(dt.UTC)
    sources = [(p, p.read_bytes()) for p in sample_images()]
    work = Path(tempfile.mkdtemp(prefix="lh-bench-media-", dir=args.root))
    try:
        dataset, ops = run_images(args, work, sources)
        memory = run_memory(args, work, sources)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    judge(ops, memory)
    info["load_average_end"] = list(os.getloadavg())

    print(f"media benchmark: {args.images} images ({dataset['formats'].get('JPEG', 0)} JPEG, "
          f"{dataset['formats'].get('PNG', 0)} PNG, {dataset['bytes'] / MiB:.0f} MiB) -> "
          f"{THUMB[0]}x{THUMB[1]} thumbnails, best of {args.repeat}; Parquet imports of "
          f"1x and 10x a {args.budget_mib} MiB budget")
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start, lakehouse {info['versions']['lakehouse']}, "
          f"pillow {info['versions']['pillow']}, pylance {info['versions']['pylance']}")
    print(render(ops, memory))
    print("ratio = lakehouse images/s / plain Pillow loop images/s (one thread, same files, "
          "same process).")
    for op in ORDER:
        if ops[op].get("unavailable"):
            print(f"{LABELS[op].strip()}: not measured ({ops[op]['unavailable']})")

    report = {
        "benchmark": "media",
        "started": started.isoformat(timespec="seconds"),
        "small": args.small,
        "images": args.images,
        "repeat": args.repeat,
        "budget_mib": args.budget_mib,
        "ratio_meaning": "lakehouse images/s / plain Pillow loop images/s (>= 1: as fast or "
                         "faster)",
        "machine": info,
        "dataset": dataset,
        "operations": ops,
        "memory": memory,
        "all_targets_met": all(e["met"] for e in ops.values() if e["met"] is not None)
        and memory["met"],
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
