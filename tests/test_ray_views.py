"""engine="ray" for views, and the per-call engine= argument.

A view's creation and upkeep (base rows expanded through an iterator, then its computed
columns) run as Ray tasks per base fragment on the shared local cluster (tests/ray_cluster.py)
and give the view the local engine computes; a worker killed mid-expansion makes Ray redo only
its fragment; and each call that takes work to Ray takes ``engine=`` over the connection's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray_cluster import ROOT, connect_to, table_definitions, table_history
from udfs_for_tests import TESTS_DIR, fill_numbers
from udfs_for_tests.ray_iterators import (
    KILL_AT,
    LOG,
    MARKER,
    SLOW,
    counted,
    fill_texts,
    odd_k,
    on_ray,
)
from udfs_for_tests.ray_probes import actor_of

import lakehouse as lh
from lakehouse.exec import checkpoints, protocol

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[ray]"')


def view_content(v: lh.Table) -> list[tuple]:
    """Every column of the view, with the stored errors of its computed columns, by (n, pos)."""
    names = v.column_names()
    extra = [r for n in names if v.table_definition.get(n, v.name).keeps_errors
             for r in (getattr(v, n).errortype, getattr(v, n).errormsg)]
    rows = v.select(*[getattr(v, n) for n in names], *extra).collect().rows()
    return sorted(rows, key=lambda row: (row[names.index("n")], row[names.index("pos")]))


def upkept_view(db: lh.Catalog, base: str) -> lh.Table:
    """A view of ``base`` through ``counted`` with a computed column, kept up to date through
    an insert spanning two fragments, an update and a delete of the base."""
    t = db.get_table(base)
    v = db.create_view(f"{base}_v", t, iterator=counted(t.text), on_error="ignore",
                       progress=False)
    v.add_computed_column(k1=odd_k(v.k), on_error="ignore", engine="local", progress=False)
    t.insert([{"n": n, "text": str(n)} for n in range(800, 850)], progress=False)
    t.insert([{"n": n, "text": str(n)} for n in range(850, 900)], progress=False)
    t.update({"n": t.n + 1000, "text": "1" + t.text}, where=t.n.isin([5, 401, 802]),
             progress=False)
    t.delete(where=(t.n > 300) & (t.n < 320))
    return v


@pytest.mark.slow
def test_a_view_on_ray_is_the_local_view(ray_cluster: str, lakehouse_root) -> None:
    """create_view and every upkeep after it on Ray: the rows, positions, values, errors,
    definitions and history of the view computed in this process (but for where each row was
    made)."""
    here = connect_to(lakehouse_root)
    base = fill_texts(here, "numbers")
    fill_texts(here, "numbers_ray")
    assert len(base.table_state().dataset.get_fragments()) == 8
    v_local = upkept_view(here, "numbers")
    v_ray = upkept_view(connect_to(lakehouse_root, engine="ray"), "numbers_ray")
    local, on_ray_rows = view_content(v_local), view_content(v_ray)
    flag = v_local.column_names().index("on_ray")
    assert {row[flag] for row in local} == {False} and {row[flag] for row in on_ray_rows} == {True}
    unflagged = [[row[:flag] + row[flag + 1:] for row in rows] for rows in (local, on_ray_rows)]
    assert unflagged[0] == unflagged[1] and len(local) > 500
    assert any(row[-1] for row in local)  # odd_k's errors are stored, and equal
    assert table_definitions(v_ray) == table_definitions(v_local)
    assert table_history(v_ray) == table_history(v_local)
    assert v_ray.jobs().height == 0  # the checkpoint is gone once committed


@pytest.mark.slow
def test_a_worker_killed_mid_expansion_only_its_fragment_is_expanded_again(
        ray_cluster: str, ray_dir: Path, tmp_path: Path) -> None:
    """A worker process dies (SIGKILL) in the middle of a base fragment's expansion: Ray runs
    that fragment's task again; every view row is stored once, and only the base values of
    that fragment up to the kill were expanded twice."""
    log = ray_dir / LOG
    log.unlink(missing_ok=True)
    (ray_dir / MARKER).unlink(missing_ok=True)
    db = lh.connect(tmp_path / "lake", engine="ray", maintenance=False)
    t = fill_texts(db, "numbers")
    v = db.create_view("v", t, iterator=counted(t.text), on_error="ignore", progress=False)
    assert (ray_dir / MARKER).exists(), "no worker was killed"
    expanded = [n for n in range(800) if n % 13 and n % 3]
    assert sorted(v.select(v.k).collect()["k"].to_list()) == \
        sorted(n * 10 + k for n in expanded for k in range(n % 3))
    logged = [int(line) for line in log.read_text().split()]
    first = KILL_AT // 100 * 100
    for n in expanded:
        assert logged.count(n) == (2 if first <= n <= KILL_AT else 1), n
    assert table_history(v)[0][1] == "view upkeep" and v.jobs().height == 0


def _caption_shards(folder: Path) -> None:
    """Four Parquet files of three captions each (n 0 .. 11), in ``folder``."""
    captions = [f"a {c} {s}" for c in ("red", "green", "blue") for s in ("circle", "square")]
    folder.mkdir()
    for shard in range(4):
        n = list(range(shard * 3, shard * 3 + 3))
        pq.write_table(pa.table({"n": n, "text": [captions[i % 6] for i in n]}),
                       folder / f"part-{shard}.parquet")


def _vectors(v: lh.Table) -> np.ndarray:
    """The view's stored embedding vectors, in the order of n."""
    stored = v.table_state().dataset.to_table().sort_by("n")
    (column,) = [c for c in stored.column_names if c.startswith("_lh_embedding")]
    return np.array(stored.column(column).to_pylist(), dtype=np.float32)


@pytest.mark.slow
def test_a_view_s_model_columns_run_in_model_actors_on_ray(ray_cluster: str,
                                                            tmp_path: Path) -> None:
    """A view with the shipped CLIP's embedding index and a column naming the Ray actor that
    computed each row: when an import adds four base fragments, the upkeep's four groups (one
    per fragment) run in the one model actor, which loads the model once and keeps it for all
    of them, not in plain tasks; the vectors, rows, searches and history are those of the local
    engine."""
    _caption_shards(tmp_path / "captions")
    views = []
    for engine in ("local", lh.RayEngine(model_actors=1, fragments_per_task=1)):
        db = lh.connect(tmp_path / f"lake{len(views)}", engine=engine, maintenance=False)
        t = db.create_table("captions", {"n": lh.Int, "text": lh.String})
        v = db.create_view("v", t, progress=False)
        v.add_embedding_index("text", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                              progress=False)
        v.add_computed_column(actor=actor_of(v.n), progress=False)
        before = len(t.table_state().dataset.get_fragments())
        db.import_parquet("captions", tmp_path / "captions", if_exists="append",
                          progress=False)
        views.append((v, len(t.table_state().dataset.get_fragments()) - before))
    (v_local, _), (v_ray, groups) = views
    actors = v_ray.order_by(v_ray.n).select(v_ray.actor).collect()["actor"].to_list()
    assert groups == 4 and len(actors) == 12
    assert "" not in actors and len(set(actors)) == 1  # every group in the one actor
    assert set(v_local.select(v_local.actor).collect()["actor"].to_list()) == {""}
    assert np.allclose(_vectors(v_ray), _vectors(v_local), atol=1e-5)
    rows = [v.order_by(v.n).select(v.n, v.text).collect().rows() for v in (v_local, v_ray)]
    assert rows[0] == rows[1]
    found = [v.order_by(v.text.similarity("a blue square"), asc=False).limit(3)
             .select(v.text).collect()["text"].to_list() for v in (v_local, v_ray)]
    assert found[0] == found[1] and found[0][0] == "a blue square"
    assert table_history(v_ray) == table_history(v_local)


CREATE_VIEW = """\
import sys
import lakehouse as lh
from udfs_for_tests.ray_iterators import counted
db = lh.connect(sys.argv[1], engine=lh.RayEngine(address=sys.argv[2]), maintenance=False)
t = db.get_table("numbers")
db.create_view("v", t, iterator=counted(t.text), on_error="ignore", progress=False)
"""


@pytest.mark.slow
def test_a_create_view_on_ray_stopped_midway_resumes_from_its_checkpoint(
        ray_cluster: str, ray_dir: Path, tmp_path: Path) -> None:
    """The driver of a create_view on Ray is killed when some base fragments are expanded: the
    same call again expands only the fragments its checkpoint does not hold."""
    log, slow = ray_dir / LOG, ray_dir / SLOW
    log.unlink(missing_ok=True)
    (ray_dir / MARKER).write_text("no kill in this test")
    db = lh.connect(tmp_path / "lake", engine="ray", maintenance=False)
    t = fill_texts(db, "numbers")
    slow.write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), TESTS_DIR]),
           "LAKEHOUSE_CHECKPOINT_AFTER_S": "0"}
    proc = subprocess.Popen([sys.executable, "-c", CREATE_VIEW, str(tmp_path / "lake"),
                             ray_cluster], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline
            jobs = checkpoints.list_jobs(str(tmp_path / "lake" / "v.lance"), {}) \
                if db.has_table("v") else []
            if jobs and jobs[0]["fragments_done"] >= 3:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    slow.unlink()
    (job,) = checkpoints.list_jobs(str(tmp_path / "lake" / "v.lance"), {})
    groups = tmp_path / "lake" / "v.lance" / checkpoints.JOBS_DIR / job["id"] / "groups"
    done = {int(json.loads(entry.read_text())["key"].split(":")[0])  # "<base fragment>:..."
            for entry in groups.glob("*.json")}
    before = len(log.read_text().split())
    v = db.create_view("v", t, iterator=counted(t.text), on_error="ignore", progress=False)
    again = {int(n) // 100 for n in log.read_text().split()[before:]}
    assert len(done) >= 3 and again and not again & done
    expanded = [n for n in range(800) if n % 13 and n % 3]
    assert sorted(v.select(v.k).collect()["k"].to_list()) == \
        sorted(n * 10 + k for n in expanded for k in range(n % 3))
    assert v.jobs().height == 0


def test_a_call_s_engine_overrides_the_connection_s(ray_cluster: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """engine="ray" on a local connection and engine="local" on a Ray connection, for a
    backfill, a recompute, a view's creation and a compaction; the view's later upkeep runs
    where the base's writes run."""
    local = lh.connect(tmp_path, maintenance=False)
    on_cluster = lh.connect(tmp_path, engine="ray", maintenance=False)
    t = local.create_table("t", {"n": lh.Int, "text": lh.String})
    for start in (0, 10, 20):
        t.insert([{"n": n, "text": str(n)} for n in range(start, start + 10)], progress=False)

    def made_on_ray(table: lh.Table, column: str) -> set[bool]:
        return set(table.select(getattr(table, column)).collect()[column].to_list())

    t.add_computed_column(a=on_ray(t.n), engine="ray", progress=False)
    t.add_computed_column(b=on_ray(t.n), progress=False)
    t_ray = on_cluster.get_table("t")
    t_ray.add_computed_column(c=on_ray(t_ray.n), engine="local", progress=False)
    assert (made_on_ray(t, "a"), made_on_ray(t, "b"), made_on_ray(t, "c")) == \
        ({True}, {False}, {False})
    t.recompute("b", engine=lh.RayEngine(fragments_per_task=2), progress=False)
    t_ray.recompute("a", engine="local", progress=False)
    assert (made_on_ray(t, "a"), made_on_ray(t, "b")) == ({False}, {True})

    v_ray = local.create_view("v_ray", t, iterator=counted(t.text), on_error="ignore",
                              engine="ray", progress=False)
    v_local = on_cluster.create_view("v_local", t, iterator=counted(t.text), on_error="ignore",
                                     engine="local", progress=False)
    assert (made_on_ray(v_ray, "on_ray"), made_on_ray(v_local, "on_ray")) == ({True}, {False})
    t.insert([{"n": 31, "text": "31"}], progress=False)  # written here: both views kept here
    assert v_ray.where(v_ray.k == 310).select(v_ray.on_ray).collect()["on_ray"].to_list() \
        == [False]

    sent: list[int] = []
    remote = protocol.remote_compaction[0]
    monkeypatch.setattr(protocol, "remote_compaction",
                        [lambda ctx, tasks: sent.append(len(tasks)) or remote(ctx, tasks)])
    t.delete(where=t.n % 2 == 0)
    t_ray.optimize(engine="local", progress=False)
    assert not sent
    t.insert([{"n": 40, "text": "40"}], progress=False)
    t.optimize(engine="ray", progress=False)
    assert sent


def test_a_bad_engine_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    """Each call refuses an engine that is not "local", "ray" or a RayEngine before any work;
    a computed column may still be called "engine"."""
    db = lh.connect(tmp_path, maintenance=False)
    t = fill_numbers(db)
    version = t.version
    calls = [lambda: t.add_computed_column(m=t.n + 1, engine="spark", progress=False),
             lambda: t.recompute("m", engine="spark", progress=False),
             lambda: t.add_embedding_index("n", engine="spark", progress=False),
             lambda: t.optimize(engine="spark", progress=False),
             lambda: db.create_view("v", t, engine="spark", progress=False)]
    for call in calls:
        with pytest.raises(lh.InvalidOptionError, match="RayEngine"):
            call()
    assert t.version == version and not db.has_table("v")
    t.add_computed_column(engine=t.n * 2, progress=False)
    assert t.order_by(t.n).select(t.engine).collect()["engine"].to_list()[:3] == [0, 2, 4]


def test_an_iterator_module_the_workers_cannot_import_says_how_to_ship_it(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user iterator importable here but not on the workers: UDFNotFoundError naming its
    module and Ray's runtime_env; no view is left behind."""
    package = tmp_path / "only_here"
    package.mkdir()
    (package / "shipped_iterators.py").write_text(
        "import lakehouse as lh\n\n\n"
        "@lh.iterators.iterator(outputs={'c': lh.String}, input=lh.String)\n"
        "def chars(text):\n    for c in text:\n        yield {'c': c}\n")
    monkeypatch.syspath_prepend(str(package))
    import shipped_iterators

    db = lh.connect(tmp_path / "lake", engine="ray", maintenance=False)
    t = db.create_table("t", {"text": lh.String})
    t.insert([{"text": "ab"}], progress=False)
    with pytest.raises(lh.UDFNotFoundError) as caught:
        db.create_view("v", t, iterator=shipped_iterators.chars(t.text), progress=False)
    message = str(caught.value)
    assert "'shipped_iterators'" in message and "runtime_env" in message
    assert not db.has_table("v")


def test_an_iterator_of_main_is_refused_before_any_task(tmp_path: Path) -> None:
    """A user iterator defined in __main__ cannot reach the workers: refused in this process,
    with the fix, and no view is left behind."""
    def chars(text: str):
        yield from ({"c": c} for c in text)

    chars.__module__ = "__main__"
    in_main = lh.iterators.iterator(outputs={"c": lh.String}, input=lh.String)(chars)
    db = lh.connect(tmp_path, engine="ray", maintenance=False)
    t = db.create_table("t", {"text": lh.String})
    t.insert([{"text": "ab"}], progress=False)
    with pytest.raises(lh.UDFNotFoundError, match="__main__.*engine='local'"):
        db.create_view("v", t, iterator=in_main(t.text), progress=False)
    assert not db.has_table("v")
    assert db.create_view("v", t, iterator=in_main(t.text), engine="local",
                          progress=False).count() == 2
