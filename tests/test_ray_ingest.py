"""Bulk ingest with engine="ray": import_parquet, import_csv, import_json and insert_files run
as Ray tasks on the shared local cluster (tests/ray_cluster.py), with the local import's
results.

Each import is made twice in one lakehouse, with ``engine="local"`` and ``engine="ray"`` on the
call, and the two tables compared (values, per-row errors of a computed column, definitions,
history), on a local folder and on the moto S3 server (the input files there too).
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from ray_cluster import ROOT, connect_to, table_content, table_definitions, table_history
from udfs_for_tests import TESTS_DIR
from udfs_for_tests.ray_probes import GATE, GATED, gated_triple
from udfs_for_tests.ray_udfs import KILL_AT, logged_triple, odd_square

import lakehouse as lh
from lakehouse import ingest
from lakehouse.exec import ray_engine
from lakehouse.samples import shapes
from lakehouse.storage import s3_filesystem, s3_options

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[ray]"')

SHARDS = 4
ROWS_PER_SHARD = 100


def _parquet(n: range) -> bytes:
    """A shard of rows ``n`` (n, word), in row groups of 30 rows."""
    out = io.BytesIO()
    table = pa.table({"n": list(n), "word": [f"w{i}" for i in n]})
    pq.write_table(table, out, row_group_size=30)
    return out.getvalue()


def _csv(n: range) -> bytes:
    return pl.DataFrame({"n": list(n), "word": [f"w{i}" for i in n]}).write_csv().encode()


def _json(n: range) -> bytes:
    return pl.DataFrame({"n": list(n), "word": [f"w{i}" for i in n]}).write_ndjson().encode()


def _png(n: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4 + n, 3), (n, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def _put(root, tmp_path: Path, files: dict[str, bytes]) -> str:
    """Write ``files`` next to the lakehouse ``root`` (None: a local folder; or the S3
    bucket); their folder."""
    if root is not None and root.uri.startswith("s3://"):
        folder = root.uri.rsplit("/", 1)[0] + "/sources"
        fs = s3_filesystem(s3_options(root.storage_options))
        for name, data in files.items():
            fs.pipe_file(f"{folder}/{name}"[len("s3://"):], data)
        return folder
    folder = tmp_path / "sources"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return str(folder)


def _shards(kind: str) -> dict[str, bytes]:
    write = {"parquet": _parquet, "csv": _csv, "jsonl": _json}[kind]
    return {f"part-{s}.{kind}": write(range(s * ROWS_PER_SHARD, (s + 1) * ROWS_PER_SHARD))
            for s in range(SHARDS)}


def _same(here: lh.Table, on_ray: lh.Table) -> None:
    assert table_content(on_ray) == table_content(here)
    assert table_definitions(on_ray) == table_definitions(here)
    assert table_history(on_ray) == table_history(here)


def _with_squares(db: lh.Catalog, name: str, schema: dict) -> lh.Table:
    """A table with a computed column whose multiples of 7 are rows with an error."""
    t = db.create_table(name, schema)
    t.add_computed_column(sq=odd_square(t.n), on_error="ignore", progress=False)
    return t


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl"])
def test_an_import_on_ray_is_the_local_import(ray_cluster: str, lakehouse_root, tmp_path: Path,
                                              kind: str) -> None:
    """A new table from the files, and the same files appended to a table with a computed
    column: the same rows, order, errors, definitions and history on Ray as here (where the
    files are written by several tasks and committed at once)."""
    folder = _put(lakehouse_root, tmp_path, _shards(kind))
    db = connect_to(lakehouse_root)
    imports = {"parquet": ingest.import_parquet, "csv": ingest.import_csv,
               "jsonl": ingest.import_json}[kind]
    tables = {}
    for engine in ("local", "ray"):
        made = imports(db, f"new_{engine}", f"{folder}/part-*.{kind}", engine=engine,
                       progress=False).table
        t = _with_squares(db, f"old_{engine}", {"n": lh.Int, "word": lh.String})
        imports(db, t.name, folder, if_exists="append", engine=engine, progress=False)
        tables[engine] = made, t
        assert made.collect()["n"].to_list() == list(range(SHARDS * ROWS_PER_SHARD))  # in order
    for here, on_ray in zip(*tables.values(), strict=True):
        _same(here, on_ray)
        # written by several tasks, one commit
        assert len(here.table_state().dataset.get_fragments()) == 1
        assert len(on_ray.table_state().dataset.get_fragments()) > 1
    appended = tables["ray"][1]
    assert appended.count() == 400 and appended.where(appended.sq.errortype.is_not_null()) \
        .count() == 58  # the multiples of 7 below 400


def test_insert_files_on_ray_is_the_local_insert(ray_cluster: str, lakehouse_root,
                                                 tmp_path: Path) -> None:
    """Media files read, checked and computed by Ray tasks: the same rows as here."""
    folder = _put(lakehouse_root, tmp_path, {f"{n:03}.png": _png(n) for n in range(150)})
    db = connect_to(lakehouse_root)
    tables = []
    for engine in ("local", "ray"):
        t = _with_squares(db, f"pics_{engine}", {"n": lh.Int, "image": lh.Image})
        t.add_computed_column(width=t.image.width, progress=False)
        result = t.insert_files(folder, extra=lambda uri: {"n": int(uri[-7:-4])},
                                engine=engine, progress=False)
        assert (result.rows_written, result.rows_with_errors) == (150, 22)
        tables.append(t)
    _same(*tables)
    assert len(tables[1].table_state().dataset.get_fragments()) > 1  # by several tasks
    assert tables[1].select(tables[1].width).collect()["width"].to_list()[:3] == [4, 5, 6]


@pytest.mark.slow
def test_an_import_that_runs_a_model_runs_in_actors_as_locally(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """insert_files into a table with the shipped CLIP's embedding index: on Ray, the shares
    run in two actors that keep the model loaded; searches rank as after the local insert."""
    pictures = {}
    for i, (picture, _) in enumerate(shapes.samples(12, seed=11)):
        out = io.BytesIO()
        picture.save(out, format="PNG")
        pictures[f"{i:03}.png"] = out.getvalue()
    folder = _put(None, tmp_path, pictures)
    made: list[int] = []
    actors = ray_engine._model_actors
    monkeypatch.setattr(ray_engine, "_model_actors",
                        lambda *args: made.append(1) or actors(*args))
    tables = []
    for engine in ("local", lh.RayEngine(model_actors=2)):
        db = lh.connect(tmp_path / f"lake{len(tables)}", engine=engine, maintenance=False)
        t = db.create_table("pics", {"image": lh.Image, "n": lh.Int})
        t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                              progress=False)
        t.insert_files(folder, extra=lambda uri: {"n": int(uri[-7:-4])}, progress=False)
        tables.append(t)
    assert made, "no model actors"
    found = [t.order_by(t.image.similarity("a red circle"), asc=False).limit(4)
             .select(t.n).collect()["n"].to_list() for t in tables]
    assert found[0] == found[1]
    assert table_history(tables[0]) == table_history(tables[1])


def test_a_worker_killed_mid_import_loses_and_duplicates_nothing(
        ray_cluster: str, ray_dir: Path, tmp_path: Path) -> None:
    """A worker dies (SIGKILL) in the middle of its share: Ray runs that share again; every
    row is stored once, and only rows of that share were computed twice."""
    calls = ray_dir / "calls.log"
    calls.unlink(missing_ok=True)
    (ray_dir / "killed").unlink(missing_ok=True)
    folder = _put(None, tmp_path, _shards("parquet"))
    db = lh.connect(tmp_path / "lake", engine="ray", maintenance=False)
    t = db.create_table("numbers", {"n": lh.Int, "word": lh.String})
    t.add_computed_column(tripled=logged_triple(t.n), progress=False)
    result = db.import_parquet("numbers", folder, if_exists="append", progress=False)
    assert (ray_dir / "killed").exists(), "no worker was killed"
    assert result.count() == 400 and t.history().height == 3  # one insert
    assert t.order_by(t.n).select(t.n, t.tripled).collect().rows() == \
        [(n, 3 * n) for n in range(400)]
    logged = [int(v) for v in calls.read_text().split()]
    again = sorted({n for n in logged if logged.count(n) > 1})
    assert set(logged) == set(range(400)) and max(map(logged.count, logged)) == 2
    assert again[-1] == KILL_AT and again[-1] - again[0] < 200  # within the killed share


def test_a_share_lost_past_its_retries_writes_nothing(ray_cluster: str, ray_dir: Path,
                                                      tmp_path: Path) -> None:
    """With no retries, the killed worker's share is lost: EngineTaskError, and the table as
    it was."""
    (ray_dir / "killed").unlink(missing_ok=True)
    folder = _put(None, tmp_path, _shards("csv"))
    db = lh.connect(tmp_path / "lake", engine=lh.RayEngine(max_retries=0), maintenance=False)
    t = db.create_table("numbers", {"n": lh.Int, "word": lh.String})
    t.add_computed_column(tripled=logged_triple(t.n), progress=False)
    version = t.version
    with pytest.raises(lh.EngineTaskError, match="nothing was committed; run the same call again"
                       ) as caught:
        db.import_csv("numbers", folder, if_exists="append", progress=False)
    assert "checkpoint" not in str(caught.value)  # an import keeps none
    assert (ray_dir / "killed").exists() and t.version == version and t.count() == 0


def _corrupt_parquet(folder: Path) -> None:
    """The third shard's data pages overwritten (its footer intact: only reading fails)."""
    path = folder / "part-2.parquet"
    data = bytearray(path.read_bytes())
    data[8:400] = b"\xff" * 392
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["parquet", "csv", "files"])
def test_a_failing_share_raises_the_local_error_and_writes_nothing(
        ray_cluster: str, tmp_path: Path, case: str) -> None:
    """A shard a worker cannot read (Parquet), a row without its required value in the third
    CSV file (its row number counts the rows of the files before), an image that is not one:
    the same typed error, word for word, as the local import, and the table as it was."""
    db = lh.connect(tmp_path / "lake", maintenance=False)
    if case == "files":
        pictures = {f"{n:03}.png": _png(n) for n in range(100)} | {"050.png": b"not a png"}
        folder = _put(None, tmp_path, pictures)
        t = db.create_table("pics", {"image": lh.Image})
    else:
        shards = _shards(case)
        if case == "csv":
            shards["part-2.csv"] = shards["part-2.csv"].replace(b"\n203,", b"\n,")
        folder = _put(None, tmp_path, shards)
        t = db.create_table("pics", {"n": lh.Int(nullable=False), "word": lh.String})
        if case == "parquet":
            _corrupt_parquet(Path(folder))
    version = t.version
    errors = []
    for engine in ("local", "ray"):
        with pytest.raises(lh.Error) as caught:
            if case == "files":
                t.insert_files(folder, engine=engine, progress=False)
            else:
                getattr(db, f"import_{case}")("pics", folder, if_exists="append",
                                              engine=engine, progress=False)
        errors.append((type(caught.value), str(caught.value)))
        assert t.version == version and t.count() == 0
    assert errors[0] == errors[1]
    expected = {"parquet": (lh.StorageError, "part-2.parquet"),
                "csv": (lh.TypeMismatchError, "row 203"), "files": (lh.MediaError, "row 50")}[case]
    assert errors[0][0] is expected[0] and expected[1] in errors[0][1], errors[0]


WRITES = 6  # inserts of the other process: half while the import's tasks wait, half after
WRITER = f"""
    import json, sys, time
    from pathlib import Path
    import lakehouse as lh

    root, options, shared = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    writes = int(sys.argv[4])
    t = lh.connect(root, storage_options=options, maintenance=False).get_table("numbers")
    deadline = time.monotonic() + 60
    while not (shared / "{GATED}").exists():  # the import read its version, its tasks wait
        if time.monotonic() > deadline:
            sys.exit("the import's tasks never reached the gate")
        time.sleep(0.02)
    versions = []
    for i in range(writes):
        rows = [{{"n": n, "word": "writer"}} for n in range(1000 + 10 * i, 1010 + 10 * i)]
        versions.append(t.insert(rows, progress=False).version)
        if i == writes // 2 - 1:
            (shared / "{GATE}").unlink()  # the import's tasks go on, and it commits meanwhile
    print(json.dumps(versions))
"""


def test_an_import_on_ray_racing_a_writer_in_another_process_loses_nothing(
        ray_cluster: str, ray_dir: Path, lakehouse_root, tmp_path: Path, run_python) -> None:
    """import_parquet(engine="ray") while another process inserts into the same table: the
    import's tasks are held (a gate in its computed column) until the other process has
    committed three inserts, then it commits its fragments over them (rebased like an append)
    while the other process commits three more. No error on either side; every row is stored
    once, with its computed value; the history has the import's one insert and all six."""
    folder = _put(lakehouse_root, tmp_path, _shards("parquet"))
    db = connect_to(lakehouse_root)
    t = db.create_table("numbers", {"n": lh.Int, "word": lh.String})
    t.add_computed_column(tripled=gated_triple(t.n), progress=False)
    before = t.version
    (ray_dir / GATED).unlink(missing_ok=True)
    (ray_dir / GATE).touch()
    args = [lakehouse_root.uri, json.dumps(lakehouse_root.storage_options), str(ray_dir),
            str(WRITES)]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), TESTS_DIR])}
    try:
        with ThreadPoolExecutor(1) as pool:
            writer = pool.submit(run_python, WRITER, args=args, env=env, timeout=120)
            result = ingest.import_parquet(db, "numbers", folder, if_exists="append",
                                           engine="ray", progress=False)
            proc = writer.result()
    finally:
        (ray_dir / GATE).unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result.rows_written, result.rows_with_errors) == (400, 0)
    expected = [*range(400), *range(1000, 1000 + 10 * WRITES)]
    assert t.order_by(t.n).select(t.n, t.tripled).collect().rows() == \
        [(n, 3 * n) for n in expected]
    ids = t.table_state().dataset.to_table(columns=[], with_row_id=True)
    assert len(set(ids.column("_rowid").to_pylist())) == len(expected)
    history = t.history(limit=None).filter(pl.col("version") > before).sort("version")
    assert history["operation"].to_list() == ["insert"] * (WRITES + 1)
    (imported,) = history.filter(pl.col("rows_added") == 400)["version"].to_list()
    assert sorted([*written, imported]) == history["version"].to_list()
    assert imported > written[WRITES // 2 - 1]  # committed over the writer's first inserts
