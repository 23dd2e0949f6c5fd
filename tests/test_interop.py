"""Interop: a lakehouse table is a plain Lance dataset that lance, lancedb and polars.scan_lance
read, with the documented Arrow types and field metadata (docs/FORMAT.md).

lancedb names a dataset ``<name>.lance`` under the folder it connects to: tables at the root open
as ``open_table(name)``, and a table in a lakehouse directory opens by connecting lancedb to that
directory (lancedb refuses '/' in table names).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import lance
import lancedb
import polars as pl
import pyarrow as pa
import pytest

import lakehouse as lh

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.UTC


@lh.udf
def exclaim(s: str) -> str:
    if s == "boom":
        raise ValueError("no booms")
    return s + "!"


BASE = {
    "s": lh.String, "n": lh.Int, "f": lh.Float, "b": lh.Bool, "ts": lh.Timestamp, "d": lh.Date,
    "j": lh.Json, "v": lh.Array[(3,), "float32"],
}
ROWS = [
    {"s": "a", "n": 1, "f": 1.5, "b": True, "ts": dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
     "d": dt.date(2024, 1, 2), "j": {"k": [1, 2], "t": "x"}, "v": [1.0, 2.0, 3.0]},
    {"s": "boom", "n": 2, "f": -0.25, "b": False, "ts": dt.datetime(2024, 6, 30, 23, 59, 59),
     "d": dt.date(1999, 12, 31), "j": [1, "two", None], "v": [0.5, -1.0, 0.0]},
    {"s": None, "n": 3, "f": None, "b": None, "ts": None, "d": None, "j": None, "v": None},
]
COMPUTED_TYPES = {"n2": pa.int64(), "half": pa.float64(), "up": pa.string(), "loud": pa.string(),
                  "big": pa.bool_()}
ARROW_TYPES = {
    "s": pa.string(), "n": pa.int64(), "f": pa.float64(), "b": pa.bool_(),
    "ts": pa.timestamp("us", tz="UTC"), "d": pa.date32(), "j": pa.string(),
    "v": pa.list_(pa.float32(), 3), **COMPUTED_TYPES,
}
# the expected values, sorted by n, as Arrow reads them back
EXPECTED = [
    {"s": "a", "n": 1, "f": 1.5, "b": True, "ts": dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
     "d": dt.date(2024, 1, 2), "j": {"k": [1, 2], "t": "x"}, "v": [1.0, 2.0, 3.0],
     "n2": 3, "half": 0.75, "up": "A", "loud": "a!", "big": False},
    {"s": "boom", "n": 2, "f": -0.25, "b": False,
     "ts": dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC), "d": dt.date(1999, 12, 31),
     "j": [1, "two", None], "v": [0.5, -1.0, 0.0],
     "n2": 5, "half": -0.125, "up": "BOOM", "loud": None, "big": True},
    {"s": None, "n": 3, "f": None, "b": None, "ts": None, "d": None, "j": None, "v": None,
     "n2": 7, "half": None, "up": None, "loud": None, "big": True},
]


def _make_table(db, name: str = "t"):
    t = db.create_table(name, BASE)
    t.insert(ROWS, progress=False)
    t.add_computed_column(n2=t.n * 2 + 1, progress=False)
    t.add_computed_column(half=t.f / 2, progress=False)
    t.add_computed_column(up=t.s.str.upper(), progress=False)
    t.add_computed_column(loud=exclaim(t.s), on_error="ignore", progress=False)
    t.add_computed_column(big=t.n > 1, progress=False)
    return t


@pytest.fixture
def table(db):
    return _make_table(db)


def _normalise(rows: list[dict]) -> list[dict]:
    """Rows as Arrow reads them: Json parsed, UTC timestamps compared as aware datetimes."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("j") is not None:
            r["j"] = json.loads(r["j"])
        if r.get("ts") is not None:
            r["ts"] = r["ts"].astimezone(UTC)
        if r.get("v") is not None:
            r["v"] = list(r["v"])
        out.append(r)
    return sorted(out, key=lambda r: r["n"])


def _error_column(t, column: str) -> tuple[str, str]:
    meta = json.loads(_field_meta(t, column))
    return f"_lh_errortype_{meta['id']}", f"_lh_errormsg_{meta['id']}"


def _field_meta(t, column: str) -> bytes:
    return t.table_state().dataset.schema.field(column).metadata[b"lakehouse"]


def _check_schema(schema: pa.Schema, t) -> None:
    visible = [f.name for f in schema if not f.name.startswith("_lh_")]
    assert visible == list(ARROW_TYPES)
    for name, arrow_type in ARROW_TYPES.items():
        assert schema.field(name).type == arrow_type, name
    assert "_lh_id" not in schema.names  # rows are named by Lance's stable row ids
    errortype, errormsg = _error_column(t, "loud")
    assert schema.field(errortype).type == pa.string()
    assert schema.field(errormsg).type == pa.string()
    assert schema.metadata[b"lakehouse.format"] == b"1"


def _check_rows(table_: pa.Table, t) -> None:
    rows = _normalise(table_.to_pylist())
    want = [dict(r) for r in EXPECTED]
    visible = [{k: r[k] for k in ARROW_TYPES} for r in rows]
    assert visible == want
    errortype, errormsg = _error_column(t, "loud")
    assert [r[errortype] for r in rows] == [None, "ValueError", None]
    assert [r[errormsg] for r in rows] == [None, "no booms", None]


def test_lance_reads_types_values_and_metadata(table, lakehouse_root):
    ds = lance.dataset(table.uri, storage_options=lakehouse_root.storage_options)
    assert table.uri == lakehouse_root.uri.rstrip("/") + "/t.lance"
    _check_schema(ds.schema, table)
    _check_rows(ds.to_table(), table)
    assert ds.version == table.version
    assert ds.count_rows() == 3

    metas = {f.name: json.loads(f.metadata[b"lakehouse"]) for f in ds.schema
             if f.metadata and b"lakehouse" in f.metadata}
    assert set(metas) == set(ARROW_TYPES) | set(_error_column(table, "loud"))
    ids = [metas[c]["id"] for c in ARROW_TYPES]
    assert len(set(ids)) == len(ids)
    kinds = {c: metas[c]["type"]["kind"] for c in ARROW_TYPES}
    assert kinds == {"s": "string", "n": "int", "f": "float", "b": "bool", "ts": "timestamp",
                     "d": "date", "j": "json", "v": "array", "n2": "int", "half": "float",
                     "up": "string", "loud": "string", "big": "bool"}
    assert metas["v"]["type"] == {"kind": "array", "shape": [3], "dtype": "float32"}
    for c in BASE:
        assert metas[c]["format"] == 1 and "computed" not in metas[c], c
    for c in COMPUTED_TYPES:
        assert metas[c]["format"] == 1 and "expr" in metas[c]["computed"], c
    assert metas["loud"]["computed"]["on_error"] == "ignore"
    assert metas["n2"]["computed"]["on_error"] == "abort"
    n2 = metas["n2"]["computed"]["expr"]
    assert n2["op"] == "+" and n2["left"]["op"] == "*"
    assert n2["left"]["left"] == {"op": "column", "id": metas["n"]["id"], "name": "n"}
    up = metas["up"]["computed"]["expr"]
    assert up["op"] == "call" and up["fn"] == "str.upper"
    loud = metas["loud"]["computed"]["expr"]
    assert loud["op"] == "call" and loud["fn"].endswith(":exclaim")
    assert re.fullmatch(r"[0-9a-f]{16}", loud["fingerprint"])
    errortype, errormsg = _error_column(table, "loud")
    assert metas[errortype] == {"format": 1, "role": "errortype", "of": metas["loud"]["id"]}
    assert metas[errormsg] == {"format": 1, "role": "errormsg", "of": metas["loud"]["id"]}


def test_lance_sees_every_version(table, lakehouse_root):
    table.update({"n": 10}, where=table.s == "a", progress=False)
    table.delete(where=table.n == 3)
    so = lakehouse_root.storage_options
    ds = lance.dataset(table.uri, storage_options=so)
    assert ds.version == table.version
    rows = sorted(ds.to_table(columns=["s", "n", "n2"]).to_pylist(), key=lambda r: r["n"])
    assert rows == [{"s": "boom", "n": 2, "n2": 5}, {"s": "a", "n": 10, "n2": 21}]
    # an older version, as lance reads it, is what lakehouse reads
    old = lance.dataset(table.uri, version=2, storage_options=so)
    assert [f.name for f in old.schema] == list(BASE)
    assert sorted(old.to_table(columns=["n"]).column("n").to_pylist()) == [1, 2, 3]
    assert table.at(2).columns() == list(BASE)


def test_lancedb_opens_root_tables(table, lakehouse_root):
    conn = lancedb.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    assert "t" in conn.list_tables().tables
    lt = conn.open_table("t")
    _check_schema(lt.schema, table)
    _check_rows(lt.to_arrow(), table)
    assert lt.count_rows() == 3
    assert lt.count_rows("n > 1") == 2
    # the Array column is a lancedb vector column: nearest neighbour search works
    hit = lt.search([0.5, -1.0, 0.0], vector_column_name="v").limit(1).to_list()
    assert hit[0]["s"] == "boom"


def test_lancedb_opens_tables_in_a_directory(db, lakehouse_root):
    db.create_dir("ml")
    t = db.create_table("ml/vecs", {"label": lh.String, "v": lh.Array[(3,), "float32"]})
    t.insert([{"label": "x", "v": [1, 0, 0]}, {"label": "y", "v": [0, 1, 0]}], progress=False)
    t.add_computed_column(up=t.label.str.upper(), progress=False)
    conn = lancedb.connect(lakehouse_root.uri.rstrip("/") + "/ml",
                           storage_options=lakehouse_root.storage_options)
    lt = conn.open_table("vecs")
    assert lt.schema.field("v").type == pa.list_(pa.float32(), 3)
    assert lt.schema.field("up").type == pa.string()
    rows = sorted(lt.to_arrow().select(["label", "up"]).to_pylist(), key=lambda r: r["label"])
    assert rows == [{"label": "x", "up": "X"}, {"label": "y", "up": "Y"}]
    assert lt.search([0.0, 1.0, 0.0], vector_column_name="v").limit(1).to_list()[0]["up"] == "Y"


def test_polars_scan_lance_reads_types_and_values(table, lakehouse_root):
    so = lakehouse_root.storage_options
    lf = pl.scan_lance(table.uri, storage_options=so)
    schema = lf.collect_schema()
    expected = {
        "s": pl.String, "n": pl.Int64, "f": pl.Float64, "b": pl.Boolean,
        "ts": pl.Datetime("us", "UTC"), "d": pl.Date, "j": pl.String,
        "v": pl.Array(pl.Float32, 3), "n2": pl.Int64, "half": pl.Float64, "up": pl.String,
        "loud": pl.String, "big": pl.Boolean,
    }
    assert {k: schema[k] for k in expected} == expected
    df = lf.select(list(expected)).sort("n").collect()
    rows = df.to_dicts()
    for r in rows:
        if r["v"] is not None:
            r["v"] = list(r["v"])
    assert _normalise(rows) == EXPECTED
    # lakehouse's own to_polars gives the same frame (without hidden columns)
    assert table.to_polars().sort("n").equals(df)
    # pushdown through a plain scan_lance works on the lakehouse columns
    picked = lf.filter(pl.col("n2") > 4).select("n").collect().get_column("n").to_list()
    assert sorted(picked) == [2, 3]


def test_plain_readers_need_no_lakehouse(table, lakehouse_root, run_python):
    """A fresh process where `import lakehouse` fails reads the table with all three readers."""
    code = """
        import json, sys
        sys.modules["lakehouse"] = None  # importing lakehouse now raises ImportError
        import lance, lancedb, polars as pl
        root, uri, so = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        out = {}
        ds = lance.dataset(uri, storage_options=so)
        out["lance"] = sorted(ds.to_table(columns=["n", "n2", "up", "loud"]).to_pylist(),
                              key=lambda r: r["n"])
        out["types"] = {f.name: str(f.type) for f in ds.schema}
        lt = lancedb.connect(root, storage_options=so).open_table("t")
        out["lancedb"] = sorted(lt.to_arrow().select(["n", "n2"]).to_pylist(),
                                key=lambda r: r["n"])
        df = pl.scan_lance(uri, storage_options=so).select("n", "half").sort("n").collect()
        out["polars"] = df.rows()
        try:
            import lakehouse  # noqa: F401
            out["lakehouse"] = "imported"
        except ImportError:
            out["lakehouse"] = "absent"
        print(json.dumps(out))
    """
    so = json.dumps(lakehouse_root.storage_options)
    proc = run_python(code, args=[lakehouse_root.uri, table.uri, so])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lakehouse"] == "absent"
    assert out["lance"] == [
        {"n": 1, "n2": 3, "up": "A", "loud": "a!"},
        {"n": 2, "n2": 5, "up": "BOOM", "loud": None},
        {"n": 3, "n2": 7, "up": None, "loud": None},
    ]
    assert out["types"]["ts"] == "timestamp[us, tz=UTC]"
    assert out["types"]["v"] == "fixed_size_list<item: float>[3]"
    assert out["lancedb"] == [{"n": 1, "n2": 3}, {"n": 2, "n2": 5}, {"n": 3, "n2": 7}]
    assert out["polars"] == [[1, 0.75], [2, -0.125], [3, None]]


# --- docs/FORMAT.md ---------------------------------------------------------------------------


def _format_doc() -> str:
    path = ROOT / "docs" / "FORMAT.md"
    assert path.exists(), "docs/FORMAT.md is missing"
    return path.read_text()


def test_format_doc_names_what_is_stored(table, lakehouse_root):
    text = _format_doc()
    ds = lance.dataset(table.uri, storage_options=lakehouse_root.storage_options)
    # every stored name and key the doc must explain
    assert "stable row ids" in text
    assert "_lh_errortype_<id>" in text and "_lh_errormsg_<id>" in text
    assert "`lakehouse.format`" in text and list(ds.schema.metadata) == [b"lakehouse.format"]
    assert "Field metadata `lakehouse`" in text
    assert ".lakehouse-dir" in text
    # the documented Arrow type of every logical type is the one stored
    documented = dict(re.findall(r"^\| `(lh\.[A-Za-z]+)[^`]*` \| `([^`]+)` \|", text, re.M))
    stored = {"lh.String": "s", "lh.Int": "n", "lh.Float": "f", "lh.Bool": "b",
              "lh.Timestamp": "ts", "lh.Date": "d", "lh.Json": "j", "lh.Array": "v"}
    assert set(stored) <= set(documented), documented
    aliases = {"double": "double", "date32": "date32[day]",
               "fixed_size_list<float32, d>": "fixed_size_list<item: float>[3]"}
    for logical, column in stored.items():
        doc_type = aliases.get(documented[logical], documented[logical])
        assert doc_type == str(ds.schema.field(column).type), logical
    # the documented operation of each call is what Lance recorded
    ops = {tx.read_version + 1: type(tx.operation).__name__
           for tx in ds.get_transactions(ds.version) if tx is not None}
    for op in set(ops.values()):
        assert f"`{op}`" in text, op


def test_format_doc_layout_matches_storage(db, lakehouse_root):
    text = _format_doc()
    assert "books.lance/" in text and "demo/" in text and ".lakehouse-dir" in text
    db.create_dir("demo")
    db.create_table("demo/books", {"title": lh.String})
    db.create_table("books", {"title": lh.String})
    so = lakehouse_root.storage_options
    base = lakehouse_root.uri.rstrip("/")
    for uri in (f"{base}/books.lance", f"{base}/demo/books.lance"):
        assert lance.dataset(uri, storage_options=so).version == 1
    if lakehouse_root.uri.startswith("s3://"):
        import boto3

        bucket, _, prefix = lakehouse_root.uri[len("s3://"):].partition("/")
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(
            Bucket=bucket, Prefix=prefix)["Contents"]}
        assert f"{prefix}/demo/.lakehouse-dir" in keys
        assert any(k.startswith(f"{prefix}/demo/books.lance/_versions/") for k in keys)
    else:
        assert (Path(base) / "demo" / ".lakehouse-dir").is_file()
        assert (Path(base) / "demo" / "books.lance" / "_versions").is_dir()
        assert (Path(base) / "books.lance" / "_versions").is_dir()


def test_format_doc_reading_example_runs(monkeypatch, tmp_path):
    """The 'Reading a table without lakehouse' example runs against a real table."""
    text = _format_doc()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = next(b for b in blocks if "lance.dataset(" in b)
    monkeypatch.chdir(tmp_path)
    db = lh.connect("lakehouse_data")
    t = db.create_table("books", {"title": lh.String, "price": lh.Float})
    t.insert([{"title": "Dune", "price": 9.5}], progress=False)
    namespace: dict = {}
    exec(compile(example, "FORMAT.md example", "exec"), namespace)  # noqa: S102
    assert namespace["ds"].to_table(columns=["title"]).to_pylist() == [{"title": "Dune"}]
