"""Concurrency and crashes: writers in separate processes lose no row, and a writer killed with
SIGKILL in the middle of a large streamed insert leaves the table at its previous version,
readable and writable. Both run on the local and the S3 (moto) backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lance
import pytest

import lakehouse as lh

WRITERS = 2
INSERTS_PER_WRITER = 20
ROWS_PER_INSERT = 10

WRITER = """
    import json, sys, time
    from pathlib import Path
    import lakehouse as lh

    root, options, name = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    who, barrier, writers = int(sys.argv[4]), Path(sys.argv[5]), int(sys.argv[6])
    inserts, rows = int(sys.argv[7]), int(sys.argv[8])
    # maintenance off: one version per insert, no compaction between (tests/test_compaction.py
    # races compactions against writers)
    t = lh.connect(root, storage_options=options, maintenance=False).get_table(name)
    # start together: wait until every writer has opened the table
    (barrier / f"ready-{who}").touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < writers:
        if time.monotonic() > deadline:
            sys.exit("the other writers never got ready")
        time.sleep(0.005)
    start = time.time()
    versions = []
    for i in range(inserts):
        result = t.insert([{"who": who, "i": i, "j": j} for j in range(rows)], progress=False)
        assert result.rows_written == rows, result
        versions.append(result.version)
    print(json.dumps({"start": start, "end": time.time(), "versions": versions}))
"""


def test_concurrent_inserts_lose_no_row(db, lakehouse_root, run_python, tmp_path):
    t = db.create_table("shared", {"who": lh.Int, "i": lh.Int, "j": lh.Int})
    t.add_computed_column(key=t.who * 1000 + t.i * 10 + t.j, progress=False)
    base_version = t.version
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    options = json.dumps(lakehouse_root.storage_options)

    def writer(who: int):
        args = [lakehouse_root.uri, options, "shared", str(who), str(barrier), str(WRITERS),
                str(INSERTS_PER_WRITER), str(ROWS_PER_INSERT)]
        # not tmp_path: the local lakehouse root there is a folder named "lakehouse", which
        # would shadow the package for `python -c` run from that directory
        return run_python(WRITER, args=args, cwd=barrier, timeout=240)

    with ThreadPoolExecutor(WRITERS) as pool:
        procs = list(pool.map(writer, range(WRITERS)))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(p.stdout.strip().splitlines()[-1]) for p in procs]
    # the writers really overlapped in time
    assert max(r["start"] for r in reports) < min(r["end"] for r in reports)

    total = WRITERS * INSERTS_PER_WRITER * ROWS_PER_INSERT
    df = db.get_table("shared").to_polars()
    assert df.height == total
    got = sorted(df.select("who", "i", "j").rows())
    assert got == sorted((w, i, j) for w in range(WRITERS) for i in range(INSERTS_PER_WRITER)
                         for j in range(ROWS_PER_INSERT))
    # the computed column was computed for every row by its writer
    assert df.filter(df["key"] != df["who"] * 1000 + df["i"] * 10 + df["j"]).height == 0
    # Lance's stable row ids stay unique across writers
    ds = lance.dataset(t.uri, storage_options=lakehouse_root.storage_options)
    ids = ds.to_table(columns=[], with_row_id=True).column("_rowid").to_pylist()
    assert len(set(ids)) == total
    # one version per insert call: 40 distinct versions, increasing within each writer
    versions = [v for r in reports for v in r["versions"]]
    for r in reports:
        assert r["versions"] == sorted(r["versions"])
    assert sorted(versions) == list(range(base_version + 1,
                                          base_version + 1 + WRITERS * INSERTS_PER_WRITER))
    assert t.version == base_version + WRITERS * INSERTS_PER_WRITER
    h = t.history(limit=None).reverse()  # oldest first
    inserts = h.filter(h["version"] > base_version)
    assert inserts.get_column("operation").to_list() == ["insert"] * WRITERS * INSERTS_PER_WRITER
    assert inserts.get_column("rows_added").to_list() == [ROWS_PER_INSERT] * len(inserts)


# --- SIGKILL during a large insert ---------------------------------------------------------------

KILLED_WRITER = """
    import json, sys
    from pathlib import Path
    import pyarrow as pa
    import lakehouse as lh

    root, options, name = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    marker, marker_after, rows = Path(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    t = lh.connect(root, storage_options=options).get_table(name)
    filler = pa.array(["payload-" + "x" * 92] * rows)

    def batches():
        # far more than can be written before the parent kills us
        for b in range(10**6):
            if b == marker_after:
                marker.touch()  # Lance has been consuming the stream for a while
            yield pa.table({"n": pa.array(range(b * rows, (b + 1) * rows), pa.int64()),
                            "s": filler})

    t.insert(batches(), progress=False)
    print("the insert finished: the test did not kill it in time")
"""


def _orphans(ds: lance.LanceDataset, uri: str, root) -> set[str]:
    """Data files under the dataset's data/ folder that no committed fragment references."""
    referenced = {Path(f.path).name for frag in ds.get_fragments() for f in frag.data_files()}
    if root.uri.startswith("s3://"):
        import boto3

        bucket, _, prefix = uri[len("s3://"):].partition("/")
        listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/data/")
        present = {Path(o["Key"]).name for o in listing.get("Contents", [])}
    else:
        present = {p.name for p in (Path(uri) / "data").iterdir()}
    return {name for name in present - referenced if name.endswith(".lance")}


def test_sigkill_during_insert_leaves_previous_version(db, lakehouse_root, tmp_path):
    t = db.create_table("big", {"n": lh.Int, "s": lh.String})
    t.insert([{"n": -i, "s": f"seed{i}"} for i in range(1, 4)], progress=False)
    t.add_computed_column(m=t.n * 2, progress=False)
    before_version = t.version
    before_rows = sorted(t.to_polars().rows())
    before_history = t.history().drop("time")
    so = lakehouse_root.storage_options

    (tmp_path / "writer").mkdir()
    marker = tmp_path / "writer" / "writing"  # cwd: tmp_path/lakehouse would shadow the package
    # enough batches for Lance to finish at least one data file (1M rows) before the kill
    rows_per_batch, marker_after = 10_000, 120
    args = [lakehouse_root.uri, json.dumps(so), "big", str(marker), str(marker_after),
            str(rows_per_batch)]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), *args],
                            cwd=marker.parent, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the writer exited early ({proc.returncode}): "
                            f"{proc.stdout.read()} {proc.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the writer never reached the marker")
            time.sleep(0.02)
        time.sleep(0.5)  # let it write some more
        assert proc.poll() is None, "the writer finished before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # the write was under way: it left data files that no version references
    ds = lance.dataset(t.uri, storage_options=so)
    assert _orphans(ds, t.uri, lakehouse_root), "the kill did not hit a write in progress"

    # the table is at its previous version, with its previous rows, for every reader
    assert ds.version == ds.latest_version == before_version
    assert ds.count_rows() == len(before_rows)
    fresh = lh.connect(lakehouse_root.uri, storage_options=so).get_table("big")
    for handle in (t, fresh):
        assert handle.version == before_version
        assert handle.count() == len(before_rows)
        assert sorted(handle.to_polars().rows()) == before_rows
        assert handle.where(handle.n >= 0).count() == 0
    assert fresh.history().drop("time").equals(before_history)

    # and the next insert works, computed columns included
    result = fresh.insert([{"n": 7, "s": "after"}], progress=False)
    assert result.version == before_version + 1
    assert result.rows_written == 1
    assert sorted(t.to_polars().rows()) == sorted([*before_rows, (7, "after", 14)])
    assert t.version == before_version + 1
