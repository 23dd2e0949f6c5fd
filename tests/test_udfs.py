"""@lh.udf functions: row and batched UDFs, null handling, wrong return types, and how stored
UDF references behave across processes (resolved by import, refused when unsafe, warned about
when their code changed). Tests that touch a table run on both backends."""

from __future__ import annotations

import ast
import json
import os
import textwrap
import uuid
from pathlib import Path

import lance
import pytest
import udfs_for_tests as U

import lakehouse as lh

LAKEHOUSE_DIR = Path(lh.__file__).resolve().parent

# A subprocess connects to the test's lakehouse through these two variables.
PRELUDE = """
import json, os, sys, warnings
import lakehouse as lh
db = lh.connect(os.environ["LH_TEST_ROOT"],
                storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))
"""


def _env(root, *pythonpath: str | Path) -> dict[str, str]:
    return {
        "LH_TEST_ROOT": root.uri,
        "LH_TEST_OPTIONS": json.dumps(root.storage_options),
        "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
    }


@pytest.fixture
def run_child(run_python, lakehouse_root, tmp_path):
    """Run PRELUDE + code in a fresh process connected to the test's lakehouse, with PYTHONPATH
    set to the given folders; the code prints one JSON object last, which is returned.

    The process runs in an empty folder: the default cwd (tmp_path) holds the local backend's
    ``lakehouse`` folder, which would shadow the package on ``sys.path``.
    """
    cwd = tmp_path / "child-cwd"
    cwd.mkdir()

    def run(code: str, *pythonpath: str | Path) -> dict:
        proc = run_python(PRELUDE + textwrap.dedent(code), env=_env(lakehouse_root, *pythonpath),
                          cwd=cwd)
        assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


def _write_module(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def _dataset(t: lh.Table, root) -> lance.LanceDataset:
    return lance.dataset(t.uri, storage_options=root.storage_options)


# --------------------------------------------------------------------------------------------
# row and batched UDFs in one process
# --------------------------------------------------------------------------------------------


def test_udf_called_directly_runs_the_function():
    assert U.shout("hi") == "HI!"
    assert U.lengths(["a", "bcd"]) == [1, 3]
    assert repr(U.shout) == "<lh.udf udfs_for_tests:shout>"


def test_udf_needs_a_return_annotation():
    def no_return(s: str):
        return s

    with pytest.raises(lh.TypeMismatchError, match="return"):
        lh.udf(no_return)


def test_row_udf_skips_nulls_for_non_optional_parameters(db):
    U.reset()
    t = db.create_table("t", {"k": lh.Int, "s": lh.String})
    t.insert([{"k": 0, "s": "a"}, {"k": 1, "s": None}], progress=False)
    t.add_computed_column(loud=U.shout(t.s), progress=False)
    t.add_computed_column(maybe=U.describe_maybe(t.s), progress=False)
    t.insert([{"k": 2, "s": None}, {"k": 3, "s": "d"}], progress=False)
    df = t.order_by(t.k).collect()
    assert df["loud"].to_list() == ["A!", None, None, "D!"]
    assert df["maybe"].to_list() == ["<a>", "<none>", "<none>", "<d>"]
    assert U.CALLS["shout"] == ["a", "d"]  # never called with None
    assert U.CALLS["describe_maybe"] == ["a", None, None, "d"]


def test_row_udf_with_two_arguments_skips_rows_with_a_null(db):
    U.reset()
    t = db.create_table("t", {"s": lh.String, "n": lh.Int})
    t.insert([{"s": "a", "n": 1}, {"s": "b", "n": None}, {"s": None, "n": 3}], progress=False)
    t.add_computed_column(c=U.concat(t.s, t.n), progress=False)
    assert t.order_by(t.s).select(t.c).collect()["c"].to_list() == ["a-1", None, None]
    assert U.CALLS["concat"] == [("a", 1)]


def test_batched_udf_gets_lists_of_at_most_batch_size(db):
    U.reset()
    t = db.create_table("t", {"k": lh.Int, "s": lh.String})
    words = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    t.insert([{"k": i, "s": w} for i, w in enumerate(words)], progress=False)
    result = t.add_computed_column(n=U.lengths(t.s), progress=False)
    assert (result.rows_written, result.rows_with_errors) == (7, 0)
    batches = U.CALLS["lengths"]
    assert all(isinstance(b, list) and 1 <= len(b) <= 3 for b in batches), batches
    assert len(batches) == 3
    assert sorted(w for b in batches for w in b) == sorted(words)

    U.reset()
    more = ["hh", "iii", "j", "kkkk"]
    t.insert([{"k": 10 + i, "s": w} for i, w in enumerate(more)], progress=False)
    assert U.CALLS["lengths"] == [["hh", "iii", "j"], ["kkkk"]]
    df = t.order_by(t.k).collect()
    assert df["n"].to_list() == [len(w) for w in words + more]


def test_batched_udf_null_handling(db):
    U.reset()
    t = db.create_table("t", {"k": lh.Int, "s": lh.String})
    t.insert([{"k": 0, "s": "ab"}, {"k": 1, "s": None}, {"k": 2, "s": "c"}], progress=False)
    t.add_computed_column(n=U.lengths(t.s), progress=False)  # list[str]: nulls not passed
    t.add_computed_column(m=U.lengths_or_minus_one(t.s), progress=False)  # list[str | None]
    df = t.order_by(t.k).collect()
    assert df["n"].to_list() == [2, None, 1]
    assert df["m"].to_list() == [2, -1, 1]
    assert [w for b in U.CALLS["lengths"] for w in b] == ["ab", "c"]
    assert [w for b in U.CALLS["lengths_or_minus_one"] for w in b] == ["ab", None, "c"]


def test_udf_returning_wrong_type_is_recorded_with_on_error_ignore(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": 2}, {"n": 3}], progress=False)
    result = t.add_computed_column(c=U.wrong_type(t.n), on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (3, 1)
    df = t.order_by(t.n).select(t.n, t.c, e=t.c.errortype, m=t.c.errormsg).collect()
    assert df["c"].to_list() == [1, None, 3]
    assert df["e"].to_list() == [None, "TypeError", None]
    assert "udfs_for_tests:wrong_type" in df["m"][1]
    assert "wrong type" in df["m"][1]
    result = t.insert([{"n": 2}, {"n": 4}], progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 1)


def test_udf_returning_wrong_type_aborts_and_leaves_table_unchanged(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": 2}], progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError) as info:
        t.add_computed_column(c=U.wrong_type(t.n), progress=False)
    assert "udfs_for_tests:wrong_type" in str(info.value)
    assert "row 1" in str(info.value)
    assert t.version == before
    assert t.columns() == ["n"]

    t.add_computed_column(c=U.wrong_type(t.n), on_error="ignore", progress=False)
    t.drop_column("c")
    t.add_computed_column(ok=U.times_ten(t.n), progress=False)
    before = t.version
    assert t.insert([{"n": 5}], progress=False).version == before + 1


def test_udf_in_query_where_and_select(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": v} for v in range(6)], progress=False)
    df = t.where(U.is_even(t.n) & (t.n > 0)).order_by(t.n).select(t.n, big=U.times_ten(t.n))
    assert df.collect().to_dicts() == [{"n": 2, "big": 20}, {"n": 4, "big": 40}]
    assert t.where(U.is_even(t.n)).count() == 3


# --------------------------------------------------------------------------------------------
# across processes
# --------------------------------------------------------------------------------------------


def test_computed_column_with_udf_works_in_a_fresh_process(lakehouse_root, run_child):
    """Process A defines the table and exits; process B, which never imported the UDF module
    itself, inserts rows and reads the computed values."""
    a = run_child("""
        import udfs_for_tests as U
        t = db.create_table("words", {"s": lh.String})
        t.add_computed_column(loud=U.shout(t.s), progress=False)
        t.add_computed_column(n=U.lengths(t.s), progress=False)
        t.add_computed_column(n2=t.n * 2, progress=False)
        t.insert([{"s": "one"}], progress=False)
        print(json.dumps({"version": t.version}))
    """, U.TESTS_DIR)
    b = run_child("""
        t = db.get_table("words")
        before = "udfs_for_tests" in sys.modules
        result = t.insert([{"s": "two"}, {"s": "three"}, {"s": None}], progress=False)
        df = t.collect()
        print(json.dumps({"imported_before": before, "imported": "udfs_for_tests" in sys.modules,
                          "result": list(result.__dict__.values()),
                          "rows": sorted(df.to_dicts(), key=lambda r: str(r["s"]))}))
    """, U.TESTS_DIR)
    assert b["imported_before"] is False
    assert b["imported"] is True
    assert b["result"] == [3, 0, a["version"] + 1]
    assert b["rows"] == [
        {"s": None, "loud": None, "n": None, "n2": None},
        {"s": "one", "loud": "ONE!", "n": 3, "n2": 6},
        {"s": "three", "loud": "THREE!", "n": 5, "n2": 10},
        {"s": "two", "loud": "TWO!", "n": 3, "n2": 6},
    ]
    # and this process reads the same
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    assert db.get_table("words").count() == 4


def test_table_whose_udf_cannot_be_imported_opens_and_reads(lakehouse_root, run_child,
                                                            tmp_path):
    module = f"lh_gone_{uuid.uuid4().hex[:10]}"
    folder = _write_module(tmp_path / "gone", module, """
        import lakehouse as lh

        @lh.udf
        def double(n: int) -> int:
            return n * 2
    """)
    run_child(f"""
        import {module} as M
        t = db.create_table("t", {{"n": lh.Int, "note": lh.String}})
        t.insert([{{"n": 1, "note": "a"}}, {{"n": 2, "note": "b"}}], progress=False)
        t.add_computed_column(d=M.double(t.n), progress=False)
        print(json.dumps({{}}))
    """, folder)

    # this process cannot import the module
    with pytest.raises(ImportError):
        __import__(module)
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = db.get_table("t")
    assert t.columns() == ["n", "note", "d"]
    assert t.order_by(t.n).collect().to_dicts() == [
        {"n": 1, "note": "a", "d": 2}, {"n": 2, "note": "b", "d": 4}]
    assert t.where(t.d > 2).count() == 1
    assert t.describe()["computed"].to_list()[2] == "double(n)"
    before = t.version

    with pytest.raises(lh.UDFNotFoundError) as info:
        t.insert([{"n": 3}], progress=False)
    message = str(info.value)
    assert f"{module}:double" in message
    assert "'d'" in message
    assert "PYTHONPATH" in message and "@lh.udf" in message
    assert isinstance(info.value, ImportError)
    with pytest.raises(lh.UDFNotFoundError, match=f"{module}:double"):
        t.update({"n": 5}, where=t.n == 1, progress=False)
    assert t.version == before

    # writes that do not need the UDF still work
    assert t.update({"note": "z"}, where=t.n == 1, progress=False).version == before + 1
    assert t.delete(where=t.n == 2).version == before + 2
    assert t.collect().to_dicts() == [{"n": 1, "note": "z", "d": 2}]


def test_udf_defined_in_main_warns_and_other_processes_cannot_compute(lakehouse_root,
                                                                     run_child):
    out = run_child("""
        @lh.udf
        def local(n: int) -> int:
            return n + 1

        t = db.create_table("t", {"n": lh.Int})
        t.insert([{"n": 1}], progress=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t.add_computed_column(c=local(t.n), progress=False)
        print(json.dumps({"warnings": [str(w.message) for w in caught],
                          "rows": t.collect().to_dicts()}))
    """)
    assert out["rows"] == [{"n": 1, "c": 2}]
    assert any("__main__" in w and "importable module" in w for w in out["warnings"])
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = db.get_table("t")
    assert t.collect().to_dicts() == [{"n": 1, "c": 2}]
    with pytest.raises(lh.UDFNotFoundError, match="__main__:local"):
        t.insert([{"n": 2}], progress=False)


UNSAFE_NAMES = ["os:system", "subprocess:getoutput", "builtins:exec", "os.path:exists", "eval",
                "udfs_for_tests:CALLS", "udfs_for_tests:reset"]


def test_tampered_definition_naming_other_callable_is_refused(db, lakehouse_root, tmp_path):
    """A stored definition rewritten to call something that is not an @lh.udf (os.system, ...):
    the table still opens and reads, an insert is refused, and nothing is run."""
    t = db.create_table("t", {"cmd": lh.String})
    t.add_computed_column(out=U.run_command(t.cmd), progress=False)
    t.insert([{"cmd": "echo"}], progress=False)
    marker = tmp_path / "pwned"
    outcome = {}
    for fn_name in UNSAFE_NAMES:
        ds = _dataset(t, lakehouse_root)
        definition = json.loads(ds.schema.field("out").metadata[b"lakehouse"])
        definition["computed"]["expr"]["fn"] = fn_name
        definition["computed"]["expr"].pop("fingerprint", None)
        ds.update_field_metadata({"out": {"lakehouse": json.dumps(definition)}})

        fresh = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
        t = fresh.get_table("t")
        assert t.collect().to_dicts() == [{"cmd": "echo", "out": "echo"}]  # opens and reads
        before = t.version
        U.reset()
        try:
            t.insert([{"cmd": f"touch {marker}"}], progress=False)
            outcome[fn_name] = "inserted"
        except lh.UnsafeDefinitionError as exc:
            outcome[fn_name] = "refused" if fn_name in str(exc) else f"unclear message: {exc}"
        except Exception as exc:
            outcome[fn_name] = f"{type(exc).__name__}: {exc}"
        assert not marker.exists(), fn_name
        assert U.CALLS["run_command"] == [], fn_name
        assert t.version == before, fn_name
    assert outcome == dict.fromkeys(UNSAFE_NAMES, "refused")


def test_tampered_definition_with_unknown_operator_is_refused(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(c=t.n + 1, progress=False)
    ds = _dataset(t, lakehouse_root)
    definition = json.loads(ds.schema.field("c").metadata[b"lakehouse"])
    definition["computed"]["expr"]["op"] = "__import__('os').system('true')"
    ds.update_field_metadata({"c": {"lakehouse": json.dumps(definition)}})
    fresh = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = fresh.get_table("t")
    with pytest.raises(lh.UnsafeDefinitionError):
        t.insert([{"n": 1}], progress=False)


def _names_in(tree: ast.AST) -> tuple[set[str], set[str]]:
    imported, called = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.split(".")[0] == "builtins":
                imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):  # eval(...), compile(...)
                called.add(func.id)
            elif isinstance(func, ast.Attribute) and func.attr in ("eval", "exec"):
                called.add(func.attr)  # builtins.eval(...)
    return imported, called


def test_library_never_unpickles_or_evals():
    files = sorted(LAKEHOUSE_DIR.rglob("*.py"))
    assert len(files) > 10
    forbidden_imports = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "marshal",
                         "shelve", "joblib", "eval", "exec"}
    forbidden_calls = {"eval", "exec", "compile", "__import__", "loads_pickle"}
    found = {}
    for path in files:
        source = path.read_text()
        imported, called = _names_in(ast.parse(source, filename=str(path)))
        bad = (imported & forbidden_imports) | (called & forbidden_calls)
        if bad:
            found[str(path.relative_to(LAKEHOUSE_DIR))] = sorted(bad)
    assert found == {}


def test_changed_udf_code_warns(lakehouse_root, run_child, tmp_path):
    module = f"lh_fp_{uuid.uuid4().hex[:10]}"
    source = """
        import lakehouse as lh

        @lh.udf
        def bump(n: int) -> int:
            return n + {step}
    """
    v1 = _write_module(tmp_path / "v1", module, source.format(step=1))
    v2 = _write_module(tmp_path / "v2", module, source.format(step=100))
    insert = """
        t = db.get_table("t")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t.insert([{{"n": {n}}}], progress=False)
        print(json.dumps({{
            "warnings": [[w.category.__name__, str(w.message)] for w in caught
                         if issubclass(w.category, lh.UDFChangedWarning)],
            "value": t.where(t.n == {n}).select(t.c).collect()["c"].to_list()}}))
    """
    run_child(f"""
        import {module} as M
        t = db.create_table("t", {{"n": lh.Int}})
        t.add_computed_column(c=M.bump(t.n), progress=False)
        print(json.dumps({{}}))
    """, v1)

    same = run_child(insert.format(n=1), v1)
    assert same == {"warnings": [], "value": [2]}

    # changed code no longer verifies against the definition: only a trusted module is imported
    # (the refusal itself is tested in test_trust.py)
    trusting = insert.replace(
        't = db.get_table("t")',
        f'lh.connect(os.environ["LH_TEST_ROOT"], trusted_modules=["{module}"],\n'
        '                   storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))\n'
        '        t = db.get_table("t")')
    changed = run_child(trusting.format(n=2), v2)
    assert changed["value"] == [102]  # new rows use the new code
    assert len(changed["warnings"]) == 1
    category, message = changed["warnings"][0]
    assert category == "UDFChangedWarning"
    assert f"{module}:bump" in message
    assert "'c'" in message


def test_each_row_is_called_once_even_when_some_rows_raise(db):
    t = db.create_table("once", {"n": lh.Int})
    values = [1, -2, 3, -4, 5, None, 7]
    t.insert([{"n": v} for v in values], progress=False)
    U.reset()
    result = t.add_computed_column(d=U.picky(t.n), on_error="ignore", progress=False)
    assert U.CALLS["picky"] == [v for v in values if v is not None]  # once each, nulls skipped
    assert result.rows_with_errors == 2
    df = t.select(t.n, t.d, err=t.d.errortype).collect().sort("n", nulls_last=True)
    assert df["d"].to_list() == [None, None, 2, 6, 10, 14, None]
    assert df["err"].to_list() == ["ValueError", "ValueError", None, None, None, None, None]
