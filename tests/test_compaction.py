"""Compaction: small fragments are merged after writes and by t.optimize(), without changing a
row, an index's answers, a view or a checkpoint, and without failing a concurrent writer.

Every test runs on a local folder and on S3 (the moto server) through the `db` fixture; the race
runs real processes inserting, updating and compacting the same table.
"""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import udfs_for_tests as U
from cli_checks import ok
from hypothesis import given
from hypothesis import strategies as st
from media_samples import ASTRONAUT, CAMERA, image_path

import lakehouse as lh
from lakehouse import views
from lakehouse.errors import StorageError
from lakehouse.exec import protocol
from lakehouse.exec.protocol import Redo
from lakehouse.maintenance import compaction
from lakehouse.maintenance.compaction import MaintenanceWarning, merge_plan

SMALL = lh.MaintenancePolicy(max_small_fragments=4)


def _connect(db: lh.Catalog, maintenance: lh.MaintenancePolicy | bool) -> lh.Catalog:
    return lh.connect(db.root, storage_options=db.location.storage_options,
                      maintenance=maintenance)


def _fragments(t: lh.Table) -> int:
    return len(t.table_state().dataset.get_fragments())


def _operations(t: lh.Table) -> list[str]:
    return t.history(limit=None)["operation"].to_list()


# --- the plan -----------------------------------------------------------------------------------
@given(st.lists(st.integers(1, 200_000), max_size=40))
def test_the_plan_merges_only_neighbouring_small_fragments_and_leaves_few(rows):
    policy = lh.MaintenancePolicy(max_small_fragments=4, small_fragment_rows=1_000)
    picked = merge_plan(rows, policy)
    assert all(rows[i] < 1_000 for i in picked)
    small = sum(1 for r in rows if r < 1_000)
    if not picked:
        return
    # every picked fragment has a picked or small neighbour: merges never jump a large one
    runs = [[picked[0]]]
    for i in picked[1:]:
        if i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    assert all(len(run) > 1 for run in runs)
    assert small - sum(len(run) - 1 for run in runs) < small


def test_the_plan_waits_for_the_threshold_and_rewrites_rows_rarely():
    policy = lh.MaintenancePolicy(max_small_fragments=8)
    assert merge_plan([100_000] + [1] * 7, policy) == []
    rows, rewritten = [100_000], 0
    for _ in range(2_000):  # single-row inserts, the plan applied after each
        rows.append(1)
        picked = merge_plan(rows, policy)
        if picked:
            rewritten += sum(rows[i] for i in picked)
            merged = sum(rows[i] for i in picked)
            rows = [r for i, r in enumerate(rows) if i not in picked[1:]]
            rows[picked[0]] = merged
        assert sum(1 for r in rows if r < policy.small_fragment_rows) <= 8 + 12
    assert sum(rows) == 102_000
    assert rewritten < 2_000 * 12  # a row is rewritten about log2(rows) times, not per merge


# --- after writes -------------------------------------------------------------------------------
def test_single_row_writes_stay_compact_and_compactions_show_in_history(db):
    t = _connect(db, SMALL).create_table("t", {"k": lh.Int, "v": lh.Int})
    t.add_computed_column(twice=t.k * 2, progress=False)
    for k in range(30):
        t.insert([{"k": k, "v": 0}], progress=False)
        if k % 7 == 3:
            t.update({"v": t.v + 1}, where=t.k == k - 1, progress=False)
        if k % 11 == 5:
            t.delete(where=t.k == k - 2)
    assert _fragments(t) < 10
    assert "compact" in _operations(t)
    rows = t.collect().sort("k")
    expected = [k for k in range(30) if k % 11 != 3]
    assert rows["k"].to_list() == expected
    assert (rows["twice"] == rows["k"] * 2).all()
    assert rows.filter(rows["v"] == 1)["k"].to_list() == [k - 1 for k in range(30)
                                                           if k % 7 == 3 and (k - 1) % 11 != 3]
    assert t.where(t.k == 17).collect()["twice"].to_list() == [34]


def test_maintenance_false_leaves_fragments_until_optimize(db):
    t = _connect(db, False).create_table("t", {"k": lh.Int})
    for k in range(12):
        t.insert([{"k": k}], progress=False)
    assert _fragments(t) == 12 and "compact" not in _operations(t)
    report = t.optimize(progress=False)
    assert (report.table, report.fragments_before, report.fragments_after, report.rows) == \
        ("t", 12, 1, 12)
    assert report.bytes_after <= report.bytes_before and report.seconds >= 0
    assert report.version == t.table_version and _operations(t)[0] == "compact"
    assert sorted(t.collect()["k"].to_list()) == list(range(12))


def test_the_policy_is_checked():
    with pytest.raises(lh.InvalidOptionError, match="max_small_fragments must be a whole number"):
        lh.MaintenancePolicy(max_small_fragments=0)
    with pytest.raises(lh.InvalidOptionError, match="keep_for must be a datetime.timedelta"):
        lh.MaintenancePolicy(keep_for=7)  # type: ignore[arg-type]
    with pytest.raises(lh.InvalidOptionError, match="maintenance must be"):
        lh.connect(maintenance="yes")  # type: ignore[arg-type]


def test_a_compaction_that_keeps_losing_is_skipped_and_the_write_stands(db, monkeypatch):
    t = _connect(db, SMALL).create_table("t", {"k": lh.Int})

    def always_loses(ctx, options):
        raise Redo("a concurrent commit conflicted with it")

    monkeypatch.setattr(protocol, "compact", always_loses)
    skipped = compaction.stats["skipped"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(6):
            assert t.insert([{"k": k}], progress=False).rows_written == 1
    assert compaction.stats["skipped"] > skipped
    assert t.count() == 6 and "compact" not in _operations(t)


def test_a_failed_maintenance_is_a_warning_not_an_error(db, monkeypatch):
    t = _connect(db, SMALL).create_table("t", {"k": lh.Int})

    def broken(ctx, options):
        raise StorageError("the store is read-only today")

    monkeypatch.setattr(protocol, "compact", broken)
    for k in range(3):
        t.insert([{"k": k}], progress=False)
    with pytest.warns(MaintenanceWarning, match="the store is read-only today.*write itself"):
        result = t.insert([{"k": 3}], progress=False)
    assert result.rows_written == 1 and t.count() == 4


# --- what compaction must not change ------------------------------------------------------------
def test_compaction_keeps_media_vector_and_scalar_indexes_answering_the_same(db):
    t = _connect(db, False).create_table(
        "items", {"k": lh.Int, "v": lh.Array[(8,), "float32"], "image": lh.Image})
    rng = np.random.default_rng(0)
    for start in (0, 6_000):  # two indexed fragments, which the optimisation rewrites
        vectors = rng.normal(size=(6_000, 8)).astype("float32")
        t.insert([{"k": start + i, "v": vectors[i].tolist()} for i in range(6_000)],
                 progress=False)
    t.add_embedding_index("v", progress=False)
    t.add_index("k")
    for k, name in ((20_000, ASTRONAUT), (20_001, CAMERA)):
        t.insert([{"k": k, "image": str(image_path(name))}], progress=False)
    queries = rng.normal(size=(3, 8)).astype("float32")

    def answers() -> tuple:
        nearest = [t.order_by(t.v.similarity(q.tolist()), asc=False).limit(5)
                   .select(t.k).collect()["k"].to_list() for q in queries]
        ranges = [sorted(t.where(cond).select(t.k).collect()["k"].to_list())
                  for cond in (t.k == 7_777, (t.k > 5_990) & (t.k < 6_010), t.k >= 20_000)]
        images = [f.read() for f in t.blob_files("image", where=t.k >= 20_000)]
        return nearest, ranges, images

    before = answers()
    report = t.optimize(progress=False)
    assert report.fragments_before == 4 and report.fragments_after < 4
    assert answers() == before
    listing = t.indexes()
    assert listing.filter(listing["name"] == "v")["unindexed_rows"].to_list() == [0]
    ds = t.table_state().dataset
    assert ds.stats.index_stats("k_btree")["num_unindexed_fragments"] == 0


def test_views_expand_no_row_after_a_compaction_of_their_base(db):
    base = _connect(db, False).create_table("films", {"k": lh.Int, "year": lh.Int})
    for k in range(10):
        base.insert([{"k": k, "year": 1980 + k}], progress=False)
    view = db.create_view("recent", base.where(base.year >= 1985))
    expanded = views.stats["expanded"]
    base.optimize(progress=False)
    assert views.stats["expanded"] == expanded  # a rewrite changes no row
    assert view.view_status().lag == 0
    base.insert([{"k": 10, "year": 1999}], progress=False)
    assert views.stats["expanded"] == expanded + 1
    assert sorted(view.collect()["k"].to_list()) == [5, 6, 7, 8, 9, 10]
    # the same through automatic compaction
    auto = _connect(db, SMALL).get_table("films")
    for k in range(11, 20):
        auto.insert([{"k": k, "year": 2000}], progress=False)
    assert "compact" in _operations(auto)
    assert views.stats["expanded"] == expanded + 10  # the new rows only
    assert sorted(view.collect()["k"].to_list()) == [5, 6, 7, 8, 9, 10, *range(11, 20)]


def test_a_checkpoint_met_by_a_compaction_never_gives_wrong_values(db):
    t = _connect(db, False).create_table("t", {"n": lh.Int})
    for start in (0, 10, 20, -5):  # the last fragment holds negative numbers, which picky refuses
        t.insert([{"n": i} for i in range(start, start + 10)], progress=False)
    U.reset()
    with pytest.raises(lh.ComputeError, match="negative input"):
        t.add_computed_column(p=U.picky(t.n), progress=False)
    assert t.jobs().height == 1  # the finished fragments are checkpointed
    t.delete(where=t.n < 0)
    t.optimize(progress=False)  # the checkpointed fragments are rewritten
    U.reset()
    t.add_computed_column(p=U.picky(t.n), progress=False)
    values = t.select(t.n, t.p).collect()
    assert values.height == 35 and (values["p"] == values["n"] * 2).all()
    assert t.jobs().height == 0


# --- racing writers -----------------------------------------------------------------------------
WORKER = """
    import json, sys, time
    from pathlib import Path
    import lakehouse as lh
    from lakehouse.maintenance import compaction

    root, options, role, who = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    barrier, workers, n = Path(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    policy = lh.MaintenancePolicy(max_small_fragments=2)  # compact after nearly every write
    t = lh.connect(root, storage_options=options, maintenance=policy).get_table("race")
    (barrier / f"ready-{who}").touch()
    while len(list(barrier.glob("ready-*"))) < workers:
        time.sleep(0.005)
    done, failed = [], []
    for i in range(n):
        try:
            if role == "insert":
                keys = [(who + 1) * 10_000 + i * 3 + j for j in range(3)]
                t.insert([{"key": k, "v": 0} for k in keys], progress=False)
                done.extend(keys)
            elif role == "update":
                key = i % 20
                t.update({"v": t.v + 1}, where=t.key == key, progress=False)
                done.append(key)
            else:
                t.optimize(progress=False)
                done.append(i)
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {exc}"[:300])
    print(json.dumps({"role": role, "done": done, "failed": failed,
                      "stats": dict(compaction.stats)}))
"""


@pytest.mark.slow
def test_compaction_racing_inserts_and_updates_loses_nothing_and_raises_nothing(
        db, lakehouse_root, run_python, tmp_path):
    t = db.create_table("race", {"key": lh.Int, "v": lh.Int})
    t.insert([{"key": k, "v": 0} for k in range(20)], progress=False)
    roles = [("insert", 12), ("insert", 12), ("update", 12), ("compact", 6)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    options = json.dumps(lakehouse_root.storage_options)

    def worker(who: int):
        role, n = roles[who]
        return run_python(WORKER, args=[lakehouse_root.uri, options, role, str(who),
                                        str(barrier), str(len(roles)), str(n)],
                          cwd=barrier, timeout=600)

    with ThreadPoolExecutor(len(roles)) as pool:
        procs = list(pool.map(worker, range(len(roles))))
    reports = []
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [r["failed"] for r in reports] == [[], [], [], []]
    df = db.get_table("race").collect()
    assert df["key"].is_duplicated().sum() == 0
    inserted = [k for r in reports if r["role"] == "insert" for k in r["done"]]
    assert len(inserted) == 72 and set(inserted) <= set(df["key"].to_list())
    updated = [k for r in reports if r["role"] == "update" for k in r["done"]]
    assert df.filter(df["key"] < 20)["v"].sum() == len(updated) == 12
    assert sum(r["stats"].get("compactions", 0) for r in reports) > 0
    assert "compact" in _operations(db.get_table("race"))


# --- command line -------------------------------------------------------------------------------
def test_cli_optimize(cli, root):
    t = lh.connect(root, maintenance=False).create_table("books", {"k": lh.Int})
    for k in range(3):
        t.insert([{"k": k}], progress=False)
    out = ok(cli("optimize", "books"))
    assert out.startswith("optimized books: 3 -> 1 fragments, 3 rows,"), out
