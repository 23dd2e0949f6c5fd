"""The catalog: roots (local default, S3 through env or storage options), directories, creating,
opening (also at a version, read-only), listing and dropping tables, and name validation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import boto3
import polars as pl
import pytest

import lakehouse as lh

UNREACHABLE_ENDPOINT = "http://127.0.0.1:1"


def _stored(root, tmp_path: Path) -> set[str]:
    """Every object or file a test could have created, including outside the root (for '..').

    local: the files under the root's parent folder; s3: every key in the root's bucket.
    """
    if root.uri.startswith("s3://"):
        bucket = root.uri[len("s3://"):].split("/")[0]
        client = boto3.client("s3", endpoint_url=root.storage_options["aws_endpoint"])
        keys: set[str] = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys
    parent = Path(root.uri).parent
    return {str(p.relative_to(parent)) for p in parent.rglob("*")}


def _ints(t: lh.Table, column: str = "n") -> list[int]:
    return sorted(t.collect()[column].to_list())


# --------------------------------------------------------------------------------------------
# Roots
# --------------------------------------------------------------------------------------------


def test_default_root_is_lakehouse_root_env(monkeypatch, tmp_path: Path) -> None:
    env_root = tmp_path / "from_env"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(env_root))
    monkeypatch.chdir(cwd)

    db = lh.connect()
    assert db.root == str(env_root.resolve())
    db.create_table("t", {"n": lh.Int}).insert([{"n": 1}, {"n": 2}], progress=False)

    assert (env_root / "t.lance" / "_versions").is_dir()
    assert not (cwd / "lakehouse_data").exists()
    assert _ints(lh.connect(str(env_root)).get_table("t")) == [1, 2]


def test_default_root_is_lakehouse_data_in_cwd(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LAKEHOUSE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)

    db = lh.connect()
    assert db.root == str((tmp_path / "lakehouse_data").resolve())
    db.create_dir("ml")
    db.create_table("ml/t", {"n": lh.Int}).insert([{"n": 7}], progress=False)

    assert (tmp_path / "lakehouse_data" / "ml" / "t.lance" / "_versions").is_dir()
    assert lh.connect("lakehouse_data").list_tables() == ["ml/t"]
    assert _ints(lh.connect(str(tmp_path / "lakehouse_data")).get_table("ml/t")) == [7]


def test_default_root_env_reaches_a_fresh_process(monkeypatch, tmp_path: Path, run_python) -> None:
    root = tmp_path / "shared_root"
    lh.connect(str(root)).create_table("t", {"n": lh.Int}).insert([{"n": 5}], progress=False)
    proc = run_python(
        """
        import lakehouse as lh
        db = lh.connect()
        print(db.list_tables(), db.get_table("t").collect()["n"].to_list())
        """,
        env={"LAKEHOUSE_ROOT": str(root)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['t'] [5]"


@pytest.mark.s3
def test_s3_root_from_aws_env_only(s3_bucket: str, s3_env: str, monkeypatch) -> None:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION / AWS_ENDPOINT_URL are enough."""
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)  # implied by an http:// endpoint
    uri = f"s3://{s3_bucket}/prefix/lh"
    db = lh.connect(uri)
    assert db.root == uri
    db.create_dir("ml")
    t = db.create_table("ml/t", {"n": lh.Int, "s": lh.String})
    result = t.insert([{"n": 1, "s": "a"}, {"n": 2, "s": "b"}], progress=False)
    assert result.rows_written == 2

    again = lh.connect(uri + "/")  # a trailing slash names the same root
    assert again.list_tables() == ["ml/t"]
    assert again.get_table("ml/t").order_by("n").collect().to_dicts() == [
        {"n": 1, "s": "a"}, {"n": 2, "s": "b"}]

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_env)
            .list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("prefix/lh/ml/t.lance/_versions/") for k in keys), keys
    assert all(k.startswith("prefix/lh/") for k in keys), keys


@pytest.mark.s3
def test_s3_storage_options_endpoint_overrides_env(s3_bucket: str, s3_env: str,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", UNREACHABLE_ENDPOINT)
    db = lh.connect(f"s3://{s3_bucket}/lh", storage_options={"aws_endpoint": s3_env})
    db.create_table("t", {"n": lh.Int}).insert([{"n": 3}], progress=False)
    assert _ints(db.get_table("t")) == [3]


@pytest.mark.parametrize("via", ["storage_options", "env"])
def test_unreachable_s3_is_a_quick_storage_error(via: str, monkeypatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    options = None
    if via == "env":
        monkeypatch.setenv("AWS_ENDPOINT_URL", UNREACHABLE_ENDPOINT)
    else:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        options = {"aws_endpoint": UNREACHABLE_ENDPOINT}
    uri = "s3://lh-unreachable/some/prefix"

    start = time.monotonic()
    with pytest.raises(lh.StorageError) as info:
        lh.connect(uri, storage_options=options)
    elapsed = time.monotonic() - start

    assert elapsed < 15, f"took {elapsed:.1f} s to report an unreachable endpoint"
    assert uri in str(info.value)
    assert UNREACHABLE_ENDPOINT in str(info.value)
    assert isinstance(info.value, OSError)


def test_unsupported_root_scheme_is_refused() -> None:
    with pytest.raises(lh.StorageError, match="gs://bucket/x"):
        lh.connect("gs://bucket/x")


# --------------------------------------------------------------------------------------------
# Directories and listings
# --------------------------------------------------------------------------------------------


def test_create_dir_nested_and_parents(db) -> None:
    assert db.list_dirs() == []
    db.create_dir("a")
    assert db.list_dirs() == ["a"]

    with pytest.raises(lh.DirectoryNotFoundError, match="'a/b'"):
        db.create_dir("a/b/c")
    assert db.list_dirs("a") == []

    db.create_dir("a/b/c", parents=True)
    assert db.list_dirs("a") == ["a/b"]
    assert db.list_dirs("a/b") == ["a/b/c"]
    db.create_dir("x/y", parents=True)
    assert db.list_dirs() == ["a", "x"]

    with pytest.raises(lh.TableExistsError, match="'a'"):
        db.create_dir("a")
    db.create_dir("a", if_exists="ignore")
    assert db.list_dirs() == ["a", "x"]

    t = db.create_table("a/b/c/t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    assert _ints(db.get_table("a/b/c/t")) == [1]
    with pytest.raises(lh.TableExistsError, match="'a/b/c/t'"):
        db.create_dir("a/b/c/t")
    with pytest.raises(lh.TableExistsError, match="directory"):
        db.create_table("a/b", {"n": lh.Int})


def test_list_tables_recursive_and_per_dir(db) -> None:
    assert db.list_tables() == []
    db.create_dir("a/b/c", parents=True)
    db.create_dir("x")
    db.create_dir("empty")
    for name in ["t0", "a/t1", "a/b/t2", "a/b/c/t3", "x/t4", "a/b/t5"]:
        t = db.create_table(name, {"n": lh.Int})
        t.insert([{"n": 1}], progress=False)  # data/ and _versions/ inside must not show

    assert db.list_tables() == ["a/b/c/t3", "a/b/t2", "a/b/t5", "a/t1", "t0", "x/t4"]
    assert db.list_tables("a") == ["a/b/c/t3", "a/b/t2", "a/b/t5", "a/t1"]
    assert db.list_tables("a", recursive=False) == ["a/t1"]
    assert db.list_tables("a/b", recursive=False) == ["a/b/t2", "a/b/t5"]
    assert db.list_tables("a/b/c") == ["a/b/c/t3"]
    assert db.list_tables("x") == ["x/t4"]
    assert db.list_tables("empty") == []
    assert db.list_tables(recursive=False) == ["t0"]
    with pytest.raises(lh.DirectoryNotFoundError, match="'nope'"):
        db.list_tables("nope")


# --------------------------------------------------------------------------------------------
# Creating, opening and dropping tables
# --------------------------------------------------------------------------------------------


def _table_with_rows(db) -> lh.Table:
    t = db.create_table("t", {"n": lh.Int, "s": lh.String})
    t.insert([{"n": 1, "s": "a"}, {"n": 2, "s": "b"}], progress=False)
    assert t.version == 2
    return t


def test_create_table_if_exists_error(db) -> None:
    _table_with_rows(db)
    with pytest.raises(lh.TableExistsError, match="'t'.*if_exists"):
        db.create_table("t", {"x": lh.Float})
    t = db.get_table("t")
    assert t.columns() == ["n", "s"]
    assert t.version == 2
    assert _ints(t) == [1, 2]


def test_create_table_if_exists_ignore_returns_existing(db) -> None:
    _table_with_rows(db)
    t = db.create_table("t", {"x": lh.Float}, if_exists="ignore")
    assert t.columns() == ["n", "s"]
    assert t.version == 2
    assert _ints(t) == [1, 2]


def test_create_table_if_exists_replace_gives_empty_table_with_new_schema(db) -> None:
    old = _table_with_rows(db)
    t = db.create_table("t", {"x": lh.Float, "label": lh.String}, if_exists="replace")

    assert t.columns() == ["x", "label"]
    assert t.count() == 0
    empty = t.collect()
    assert empty.height == 0
    assert empty.schema == pl.Schema({"x": pl.Float64, "label": pl.String})
    assert db.get_table("t").columns() == ["x", "label"]
    assert old.columns() == ["x", "label"]  # a handle follows the latest version

    with pytest.raises(lh.ColumnNotFoundError, match="'n'"):
        t.insert([{"n": 1}], progress=False)
    t.insert([{"x": 1.5, "label": "new"}], progress=False)
    assert db.get_table("t").collect().to_dicts() == [{"x": 1.5, "label": "new"}]
    # the replaced content stays in the history
    assert db.get_table("t:2").collect().sort("n").to_dicts() == [
        {"n": 1, "s": "a"}, {"n": 2, "s": "b"}]


def test_create_table_bad_if_exists(db, lakehouse_root, tmp_path: Path) -> None:
    before = _stored(lakehouse_root, tmp_path)
    with pytest.raises(lh.Error, match="if_exists"):
        db.create_table("t", {"n": lh.Int}, if_exists="overwrite")
    assert _stored(lakehouse_root, tmp_path) == before


def test_get_table_missing(db) -> None:
    db.create_dir("d")
    for name in ["missing", "d/missing", "missing:1", "d"]:
        with pytest.raises(lh.TableNotFoundError) as info:
            db.get_table(name)
        assert repr(name.split(":")[0]) in str(info.value)
        assert isinstance(info.value, KeyError)


def test_get_table_at_version_is_read_only(db) -> None:
    t = db.create_table("t", {"n": lh.Int})  # version 1
    t.insert([{"n": 1}, {"n": 2}], progress=False)  # version 2
    t.insert([{"n": 3}], progress=False)  # version 3

    v1, v2, v3 = (db.get_table(f"t:{v}") for v in (1, 2, 3))
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert v1.count() == 0
    assert _ints(v2) == [1, 2]
    assert _ints(v3) == [1, 2, 3]
    assert v2.is_read_only and not t.is_read_only
    assert v2.where(v2.n > 1).collect()["n"].to_list() == [2]

    writes = {
        "insert": lambda: v2.insert([{"n": 9}], progress=False),
        "update": lambda: v2.update({"n": 0}, progress=False),
        "delete": lambda: v2.delete(where=v2.n == 1),
        "add_column": lambda: v2.add_column(note=lh.String),
        "add_computed_column": lambda: v2.add_computed_column(m=v2.n + 1, progress=False),
        "drop_column": lambda: v2.drop_column("n"),
        "rename_column": lambda: v2.rename_column("n", "m"),
        "revert": lambda: v2.revert(),
    }
    for what, write in writes.items():
        with pytest.raises(lh.ReadOnlyError, match="'t'.*version 2") as info:
            write()
        assert isinstance(info.value, PermissionError), what

    latest = db.get_table("t")
    assert latest.version == 3
    assert latest.columns() == ["n"]
    assert _ints(latest) == [1, 2, 3]

    t.insert([{"n": 4}], progress=False)  # the pinned handle does not move
    assert _ints(v2) == [1, 2]
    assert v2.version == 2
    assert _ints(db.get_table("t")) == [1, 2, 3, 4]

    with pytest.raises(lh.VersionNotFoundError, match="99"):
        db.get_table("t:99")
    with pytest.raises(lh.InvalidNameError, match="'t:x'"):
        db.get_table("t:x")


def test_drop_table(db, lakehouse_root, tmp_path: Path) -> None:
    db.create_dir("d")
    _table_with_rows(db)
    db.create_table("d/t", {"n": lh.Int}).insert([{"n": 1}], progress=False)
    db.create_table("keep", {"n": lh.Int})

    db.drop_table("t")
    db.drop_table("d/t")
    for name in ["t", "d/t"]:
        with pytest.raises(lh.TableNotFoundError, match=repr(name)):
            db.get_table(name)
        with pytest.raises(lh.TableNotFoundError, match=repr(name)):
            db.drop_table(name)
        db.drop_table(name, if_not_exists="ignore")
    assert db.list_tables() == ["keep"]
    assert db.list_dirs() == ["d"]
    assert not [k for k in _stored(lakehouse_root, tmp_path) if "/t.lance" in k]

    again = db.create_table("t", {"x": lh.String})  # the name is free again, with no history
    assert again.version == 1
    assert again.count() == 0
    assert again.columns() == ["x"]


@pytest.mark.parametrize("name", ["nodir/t", "a/missing/t"])
def test_create_table_in_missing_dir(db, lakehouse_root, tmp_path: Path, name: str) -> None:
    db.create_dir("a")
    before = _stored(lakehouse_root, tmp_path)
    parent = name.rpartition("/")[0]
    with pytest.raises(lh.DirectoryNotFoundError, match=f"'{parent}'.*create_dir"):
        db.create_table(name, {"n": lh.Int})
    assert _stored(lakehouse_root, tmp_path) == before
    assert db.list_tables() == []


def test_create_table_with_parents_creates_the_missing_dirs(db, lakehouse_root,
                                                            tmp_path: Path) -> None:
    db.create_dir("a")
    t = db.create_table("a/b/c/t", {"n": lh.Int}, parents=True)
    assert t.version == 1
    assert db.list_dirs("a") == ["a/b"] and db.list_dirs("a/b") == ["a/b/c"]
    assert db.list_tables() == ["a/b/c/t"]
    # the directories exist now: parents=True changes nothing more
    db.create_table("a/b/c/u", {"n": lh.Int}, parents=True)
    db.create_table("top", {"n": lh.Int}, parents=True)
    assert db.list_tables() == ["a/b/c/t", "a/b/c/u", "top"]
    # from data too
    made = db.create_table("x/y", source=pl.DataFrame({"n": [1, 2]}), parents=True)
    assert made.count() == 2 and db.list_dirs() == ["a", "x"]


def test_create_table_with_parents_refuses_as_create_dir_does(db, lakehouse_root,
                                                              tmp_path: Path) -> None:
    """A table on the path is not a directory; a refused name or schema creates nothing."""
    db.create_table("t", {"n": lh.Int})
    with pytest.raises(lh.TableExistsError, match="'t' is a table, not a directory"):
        db.create_table("t/u", {"n": lh.Int}, parents=True)
    before = _stored(lakehouse_root, tmp_path)
    with pytest.raises(lh.TypeMismatchError):
        db.create_table("d/u", {"n": "no such type"}, parents=True)
    with pytest.raises(lh.InvalidNameError):
        db.create_table("d/u", {"where": lh.Int}, parents=True)
    with pytest.raises(lh.InvalidNameError):
        db.create_table("d/../u", {"n": lh.Int}, parents=True)
    assert _stored(lakehouse_root, tmp_path) == before
    assert db.list_dirs() == []


# --------------------------------------------------------------------------------------------
# Name validation
# --------------------------------------------------------------------------------------------

BAD_NAMES = [
    ("../x", "'..'"),
    ("a/../b", "'..'"),
    ("..", "'..'"),
    ("/abs", "absolute"),
    ("/tmp/abs/t", "absolute"),
    ("a//b", "empty"),
    ("a/", "empty"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash"),
    ("", "non-empty"),
    (".", "'.'"),
    ("a/./b", "'.'"),
    ("x.lance", ".lance"),
    ("a/x.lance/b", ".lance"),
    ("my table", "may only use"),
    ("a/my table", "may only use"),
    (" t", "may only use"),
]


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES, ids=[repr(n) for n, _ in BAD_NAMES])
def test_bad_names_are_refused_and_create_nothing(db, lakehouse_root, tmp_path: Path,
                                                  name: str, problem: str) -> None:
    before = _stored(lakehouse_root, tmp_path)
    calls = {
        "create_table": lambda: db.create_table(name, {"n": lh.Int}),
        "create_dir": lambda: db.create_dir(name, parents=True),
        "get_table": lambda: db.get_table(name),
        "drop_table": lambda: db.drop_table(name, if_not_exists="ignore"),
        "list_tables": lambda: db.list_tables(name),
    }
    for call, fn in calls.items():
        with pytest.raises(lh.InvalidNameError) as info:
            fn()
        message = str(info.value)
        assert repr(name) in message, (call, message)
        assert problem in message.lower(), (call, message)
        assert isinstance(info.value, ValueError)
    assert _stored(lakehouse_root, tmp_path) == before
    assert db.list_tables() == []
    assert db.list_dirs() == []


def test_non_string_names_are_refused(db) -> None:
    for name in [None, 3, b"t"]:
        with pytest.raises(lh.InvalidNameError, match="non-empty string"):
            db.create_table(name, {"n": lh.Int})
    assert db.list_tables() == []


def test_good_names_with_dots_dashes_underscores(db) -> None:
    db.create_dir("v1.2_data-sets")
    for name in ["v1.2_data-sets/t-1", "v1.2_data-sets/T_2.parquet", "_private", "3d"]:
        db.create_table(name, {"n": lh.Int}).insert([{"n": 1}], progress=False)
    assert db.list_tables() == ["3d", "_private", "v1.2_data-sets/T_2.parquet",
                                "v1.2_data-sets/t-1"]
    assert _ints(db.get_table("v1.2_data-sets/T_2.parquet")) == [1]


# --------------------------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------------------------


def test_bad_column_type_is_a_clear_error(db, lakehouse_root, tmp_path: Path) -> None:
    before = _stored(lakehouse_root, tmp_path)
    for spec in ["bogus", 3, None, object, "", [lh.Int], {"kind": "int"}]:
        with pytest.raises(lh.TypeMismatchError) as info:
            db.create_table("t", {"ok": lh.Int, "bad": spec})
        message = str(info.value)
        assert "'bad'" in message, message
        assert repr(spec) in message, message
        assert "lh.Int" in message, message  # says what to use instead
    assert _stored(lakehouse_root, tmp_path) == before
    assert db.list_tables() == []


@pytest.mark.parametrize(("shape", "dtype", "error"), [
    ((3,), "complex64", lh.TypeMismatchError), ((3,), "str", lh.TypeMismatchError),
    ((0,), "float32", lh.InvalidOptionError), ((-1,), "float32", lh.InvalidOptionError),
    ((2, 0), "int8", lh.InvalidOptionError)])
def test_bad_array_type_is_a_clear_error(shape, dtype, error) -> None:
    """A dtype that is not one is a type error; a dimension below 1 a value out of range."""
    with pytest.raises(error, match="dtype|dimension"):
        lh.Array[shape, dtype]


def test_bad_column_name_is_a_clear_error(db, lakehouse_root, tmp_path: Path) -> None:
    before = _stored(lakehouse_root, tmp_path)
    for column in ["1n", "_hidden", "_lh_id", "a b", "", "n-1", "a.b", "x/y", 3]:
        with pytest.raises(lh.InvalidNameError) as info:
            db.create_table("t", {"ok": lh.Int, column: lh.Int})
        assert f"{column!r} is not a valid column name" in str(info.value)
        assert "'t'" in str(info.value)
    for schema, error in [({}, lh.InvalidOptionError), ([("n", lh.Int)], lh.TypeMismatchError),
                          (None, lh.TypeMismatchError)]:
        with pytest.raises(error, match="non-empty dict"):
            db.create_table("t", schema)
    assert _stored(lakehouse_root, tmp_path) == before
    assert db.list_tables() == []


def test_column_type_spellings(db, lakehouse_root) -> None:
    t = db.create_table("t", {"a": lh.Int, "b": int, "c": "float", "d": str,
                              "e": lh.Array[(2,), "int32"], "f": lh.Required(lh.Bool)})
    assert t.describe()["type"].to_list() == ["Int", "Int", "Float", "String",
                                              "Array[(2,), int32]", "Required[Bool]"]
    # reopened from storage alone, the logical types are the same
    again = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    assert again.get_table("t").describe().equals(t.describe())


def test_catalog_never_writes_outside_root(db, lakehouse_root, tmp_path: Path) -> None:
    """Everything a catalog creates lies under the root (prefix) it was given."""
    db.create_dir("a/b", parents=True)
    db.create_table("a/b/t", {"n": lh.Int}).insert([{"n": 1}], progress=False)
    stored = _stored(lakehouse_root, tmp_path)
    if lakehouse_root.uri.startswith("s3://"):
        assert stored and all(k.startswith("lh/") for k in stored), stored
    else:
        root = Path(lakehouse_root.uri).name
        assert stored and all(k.split(os.sep)[0] == root for k in stored), stored
