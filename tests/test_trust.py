"""Trust at the edges of a stored definition: reading a table never imports anything; a write
imports a UDF's module only when it is already imported, verifiably the module the definition was
made from, or trusted by the user; a stored embedding spec loads only models the user allowed.

The modules in ``tests/side-effect-modules`` append their name to ``$LH_TEST_MARKER`` when they are
imported; that folder is on the path only of the subprocesses (and of the tests that prepend it on
purpose), so a marker file that stays absent proves the module never ran. Tables are tampered
with the way an attacker with write access to the storage would: by rewriting the JSON definition
in the Lance field metadata.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import textwrap
from pathlib import Path

import lance
import pytest
import udfs_for_tests as U
from udfs_for_tests import query_functions

import lakehouse as lh
from lakehouse import trust
from lakehouse.functions import embeddings

SIDE_EFFECTS = Path(__file__).resolve().parent / "side-effect-modules"
PRELUDE = """
import json, os, sys
import lakehouse as lh
db = lh.connect(os.environ["LH_TEST_ROOT"],
                storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))
"""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file the side-effect modules append their name to when they are imported."""
    return tmp_path / "imported.txt"


@pytest.fixture
def child(run_python, lakehouse_root, marker, tmp_path):
    """Run PRELUDE + code in a fresh process connected to the test's lakehouse, with PYTHONPATH
    set to the given folders and the marker file in ``$LH_TEST_MARKER``; the code prints one JSON
    object last, which is returned."""
    cwd = tmp_path / "child-cwd"
    cwd.mkdir()

    def run(code: str, *pythonpath: str | Path, env: dict[str, str] | None = None) -> dict:
        variables = {"LH_TEST_ROOT": lakehouse_root.uri,
                     "LH_TEST_OPTIONS": json.dumps(lakehouse_root.storage_options),
                     "LH_TEST_MARKER": str(marker),
                     "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
                     **(env or {})}
        proc = run_python(PRELUDE + textwrap.dedent(code), env=variables, cwd=cwd)
        assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep this process's trust settings as they were: tests may trust modules and models."""
    monkeypatch.setattr(trust, "_modules", set())
    monkeypatch.setattr(trust, "_models", set())
    monkeypatch.delenv(trust.MODULES_VARIABLE, raising=False)
    monkeypatch.delenv(trust.MODELS_VARIABLE, raising=False)


def _imported(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def _tamper(t: lh.Table, root, column: str, change) -> None:
    """Rewrite the stored definition of ``column`` with ``change(definition)``, through Lance."""
    ds = lance.dataset(t.uri, storage_options=root.storage_options)
    definition = json.loads(ds.schema.field(column).metadata[b"lakehouse"])
    change(definition)
    ds.update_field_metadata({column: {"lakehouse": json.dumps(definition)}})


def _source_fingerprint(path: Path, qualname: str) -> str:
    found = trust.block_fingerprint(path.read_text(), qualname)
    assert found is not None
    return found


# --- reading, and the everyday workflow ----------------------------------------------------------
def test_reading_imports_nothing_and_a_fresh_process_still_computes(child, marker) -> None:
    """Process A defines UDF columns from a package it imports; process B never imports it itself:
    opening and reading import nothing, and its insert, update and backfill compute the columns
    from the verified module (importing the package as any import would)."""
    child("""
        from lh_side_effect_pkg import udfs
        t = db.create_table("words", {"s": lh.String, "n": lh.Int})
        t.add_computed_column(loud=udfs.Words.shout(t.s), progress=False)
        t.add_computed_column(size=udfs.lengths(t.s), progress=False)
        t.add_computed_column(n3=udfs.triple(t.n), progress=False)
        t.insert([{"s": "one", "n": 1}], progress=False)
        print(json.dumps({}))
    """, SIDE_EFFECTS)
    marker.unlink()
    out = child("""
        t = db.get_table("words")
        reads = {"columns": t.columns(), "describe": t.describe()["computed"].to_list(),
                 "rows": t.collect().to_dicts(), "where": t.where(t.n3 > 1).count(),
                 "select": t.select(t.loud).collect()["loud"].to_list(),
                 "count": t.count(), "history": t.history().height,
                 "indexes": t.indexes().height, "old": t.at(t.version - 1).collect().height}
        after_reads = [m for m in sys.modules if m.startswith("lh_side_effect")]
        t.insert([{"s": "two", "n": 2}], progress=False)
        t.update({"s": "uno"}, where=t.n == 1, progress=False)
        print(json.dumps({"reads": reads, "after_reads": after_reads,
                          "rows": t.order_by(t.n).collect().to_dicts()}))
    """, SIDE_EFFECTS)
    assert out["after_reads"] == []
    assert out["reads"]["rows"] == [{"s": "one", "n": 1, "loud": "ONE!", "size": 3, "n3": 3}]
    assert out["reads"]["where"] == 1 and out["reads"]["select"] == ["ONE!"]
    assert out["rows"] == [{"s": "uno", "n": 1, "loud": "UNO!", "size": 3, "n3": 3},
                           {"s": "two", "n": 2, "loud": "TWO!", "size": 3, "n3": 6}]
    # the insert imported the verified module, and with it its package
    assert _imported(marker) == ["lh_side_effect_pkg", "lh_side_effect_pkg.udfs"]


# --- tampered UDF references ---------------------------------------------------------------------
def _tampered_cases() -> list[tuple[str, str | None, str]]:
    """(stored function name, stored fingerprint, why it must be refused) for definitions that
    name a module with a top-level side effect that this process never imported."""
    antigravity = importlib.util.find_spec("antigravity")  # opens a web browser when imported
    assert antigravity is not None and antigravity.origin is not None
    pkg_udfs = SIDE_EFFECTS / "lh_side_effect_pkg" / "udfs.py"
    return [
        ("lh_side_effect:double", _source_fingerprint(SIDE_EFFECTS / "lh_side_effect.py",
                                                      "double"), "not decorated"),
        ("lh_side_effect:triple", "0123456789abcdef", "differs"),
        ("lh_side_effect:triple", None, "carries no fingerprint"),
        ("lh_side_effect:missing", "0123456789abcdef", "defines no function"),
        ("lh_side_effect_pkg.udfs:plain", _source_fingerprint(pkg_udfs, "plain"),
         "not decorated"),
        ("lh_side_effect_pkg.udfs:triple", "0123456789abcdef", "differs"),
        ("antigravity:geohash", _source_fingerprint(Path(antigravity.origin), "geohash"),
         "not decorated"),
    ]


def test_a_tampered_reference_never_imports_its_module(db, child, marker) -> None:
    """A definition rewritten to name a module with a top-level side effect: the table opens and
    reads, the writes that need the UDF are refused with a typed error naming the table, column,
    module and fix, the writes that do not need it work, and the module never runs."""
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(out=U.times_ten(t.n), progress=False)
    t.insert([{"n": 1}, {"n": 2}], progress=False)
    cases = _tampered_cases()
    out = child("""
        import lance
        options = json.loads(os.environ["LH_TEST_OPTIONS"])
        results = []
        for name, fingerprint, _ in json.loads(os.environ["LH_CASES"]):
            ds = lance.dataset(db.get_table("t").uri, storage_options=options)
            definition = json.loads(ds.schema.field("out").metadata[b"lakehouse"])
            definition["computed"]["expr"]["fn"] = name
            definition["computed"]["expr"]["fingerprint"] = fingerprint
            ds.update_field_metadata({"out": {"lakehouse": json.dumps(definition)}})

            t = lh.connect(os.environ["LH_TEST_ROOT"], storage_options=options).get_table("t")
            reads = [t.order_by(t.n).collect()["out"].to_list(), t.where(t.out > 10).count(),
                     t.select(x=t.out * 2).collect().height, t.describe().height,
                     t.history().height]
            before = t.version
            errors = {}
            for op, write in [
                ("insert", lambda: t.insert([{"n": 5}], progress=False)),
                ("update", lambda: t.update({"n": 7}, where=t.n == 1, progress=False)),
            ]:
                try:
                    write()
                    errors[op] = None
                except lh.Error as exc:
                    errors[op] = [type(exc).__name__, str(exc)]
            unchanged = t.version == before and t.count() == 2
            # a write that does not need the UDF works
            t.add_computed_column(z=t.out + 1, if_exists="replace", progress=False)
            results.append({"reads": reads, "errors": errors, "unchanged": unchanged,
                            "z": t.order_by(t.n).collect()["z"].to_list()})
        print(json.dumps({"results": results, "imported": sorted(
            m for m in sys.modules if m.startswith(("lh_side_effect", "antigravity")))}))
    """, SIDE_EFFECTS, env={"LH_CASES": json.dumps(cases)})
    assert _imported(marker) == []
    assert out["imported"] == []
    for (name, _, why), result in zip(cases, out["results"], strict=True):
        assert result["reads"][:3] == [[10, 20], 1, 2], name  # describe, history: ran too
        assert result["unchanged"] and result["z"] == [11, 21], name
        module = name.partition(":")[0]
        for op, error in result["errors"].items():
            assert error is not None, (name, op)
            kind, message = error
            assert kind == "UnsafeDefinitionError", (name, op, message)
            for part in ("table 't'", "column 'out'", name, why,
                         f"trusted_modules=[{module!r}]", f"LAKEHOUSE_TRUSTED_MODULES={module}"):
                assert part in message, (name, op, part, message)


def test_changed_code_is_refused_until_the_user_trusts_the_module(child, marker,
                                                                  tmp_path) -> None:
    """A module whose UDF changed since the column was defined does not verify: a write refuses
    to import it, until the user trusts it by connect option or environment variable (a package
    name trusts its submodules)."""
    child("""
        from lh_side_effect_pkg import udfs
        t = db.create_table("t", {"n": lh.Int})
        t.add_computed_column(n3=udfs.triple(t.n), progress=False)
        print(json.dumps({}))
    """, SIDE_EFFECTS)
    changed = tmp_path / "changed"
    shutil.copytree(SIDE_EFFECTS, changed)
    udfs = changed / "lh_side_effect_pkg" / "udfs.py"
    udfs.write_text(udfs.read_text().replace("return n * 3", "return n * 3 + 1000"))
    marker.unlink()
    insert = """
        t = db.get_table("t")
        try:
            t.insert([{"n": 1}], progress=False)
            outcome = t.collect()["n3"].to_list()
        except lh.UnsafeDefinitionError as exc:
            outcome = str(exc)
        print(json.dumps({"outcome": outcome}))
    """
    refused = child(insert, changed)["outcome"]
    assert "the code of 'triple' differs" in refused
    assert "trusted_modules=['lh_side_effect_pkg.udfs']" in refused
    assert _imported(marker) == []

    by_option = child("""
        lh.connect(os.environ["LH_TEST_ROOT"], trusted_modules=["lh_side_effect_pkg"],
                   storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))
    """ + insert, changed)
    assert by_option["outcome"] == [1003]
    by_variable = child(insert, changed, env={trust.MODULES_VARIABLE: "other, lh_side_effect_pkg"})
    assert by_variable["outcome"] == [1003, 1003]
    assert _imported(marker) == ["lh_side_effect_pkg", "lh_side_effect_pkg.udfs"] * 2


# --- verifying a module from its source ----------------------------------------------------------
@pytest.mark.parametrize("udf", [U.shout, U.lengths, query_functions.top_docs],
                         ids=["row", "batched", "query"])
def test_the_stored_fingerprint_is_computed_from_the_source_text(udf) -> None:
    """What @lh.udf stores is what another process computes from the module's file alone."""
    module, _, qualname = udf.name.partition(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    assert udf.function.fingerprint == trust.block_fingerprint(Path(spec.origin).read_text(),
                                                               qualname)
    assert trust.unverified(spec, qualname, udf.function.fingerprint) is None


def test_fingerprints_stored_before_verify_too() -> None:
    """Tables written before hashed ``inspect.getsource(fn).strip()``: for functions at module
    level that is the same block, so their definitions verify without trust settings."""
    udfs = [u for u in vars(U).values() if isinstance(u, lh.UDF)]
    assert len(udfs) > 10
    for udf in udfs:
        old = hashlib.sha256(inspect.getsource(udf.fn).strip().encode()).hexdigest()[:16]
        assert udf.function.fingerprint == old, udf.name


def test_every_spelling_of_the_decorators_verifies_and_nothing_else(marker, monkeypatch) -> None:
    """``locate`` finds a submodule without running its package; ``unverified`` accepts lakehouse's
    decorators under any name the module imported them by, on functions and static methods."""
    monkeypatch.setenv("LH_TEST_MARKER", str(marker))
    monkeypatch.syspath_prepend(str(SIDE_EFFECTS))
    spec = trust.locate("lh_side_effect_pkg.udfs")
    assert spec is not None and spec.origin == str(SIDE_EFFECTS / "lh_side_effect_pkg/udfs.py")
    assert trust.locate("lh_side_effect_pkg.nope") is None
    assert trust.locate("lh_side_effect.sub") is None  # a module has no submodules
    source = Path(spec.origin).read_text()
    for qualname in ("triple", "lengths", "Words.shout", "same_table"):
        assert trust.unverified(spec, qualname, trust.block_fingerprint(source, qualname)) is None
    assert "not decorated" in trust.unverified(spec, "plain",
                                               trust.block_fingerprint(source, "plain"))
    assert "no function 'Words'" in trust.unverified(spec, "Words", "0123456789abcdef")
    assert _imported(marker) == []
    assert "lh_side_effect_pkg" not in __import__("sys").modules


def test_decorators_of_other_libraries_do_not_verify(tmp_path) -> None:
    path = tmp_path / "lookalike.py"
    path.write_text(textwrap.dedent("""
        import lakehouse as lh
        import other as lakehouse_like
        from other import udf
        from lakehouse import lit as query

        @udf
        def a(n: int) -> int:
            return n

        @lakehouse_like.udf
        def b(n: int) -> int:
            return n

        @query
        def c(n: int) -> int:
            return n

        @lh.lit
        def d(n: int) -> int:
            return n

        def e(n: int) -> int:
            @lh.udf
            def inner(n: int) -> int:
                return n
            return n
    """))
    spec = importlib.util.spec_from_file_location("lookalike", path)
    assert spec is not None
    source = path.read_text()
    for qualname in "abcd":
        problem = trust.unverified(spec, qualname, trust.block_fingerprint(source, qualname))
        assert problem is not None and "not decorated" in problem, qualname
    assert "no function 'e.inner'" in trust.unverified(spec, "e.inner", "0123456789abcdef")


def test_trusted_modules_cover_their_submodules(settings, monkeypatch) -> None:
    lh.connect(trusted_modules=["pkg.udfs"])
    assert trust.module_trusted("pkg.udfs") and trust.module_trusted("pkg.udfs.more")
    assert not trust.module_trusted("pkg") and not trust.module_trusted("pkg.udfs_evil")
    monkeypatch.setenv(trust.MODULES_VARIABLE, " other ,, pkg2 ")
    assert trust.module_trusted("pkg2.x") and trust.module_trusted("other")
    lh.connect(trusted_models=["org/model"])
    assert trust.model_trusted("org/model") and not trust.model_trusted("org/model2")


@pytest.mark.parametrize(("option", "value", "error", "message"), [
    ("trusted_modules", "pkg", lh.TypeMismatchError, r"a list of names, such as \['pkg'\]"),
    ("trusted_modules", ["pkg.", "a b"], lh.InvalidNameError, "'pkg.', 'a b'"),
    ("trusted_models", [""], lh.InvalidNameError, "trusted_models must list model names"),
])
def test_trust_settings_are_checked(settings, option, value, error, message) -> None:
    with pytest.raises(error, match=message):
        lh.connect(**{option: value})
    assert trust._modules == set() and trust._models == set()


def test_a_malformed_environment_variable_is_named(settings, monkeypatch) -> None:
    monkeypatch.setenv(trust.MODULES_VARIABLE, "good,not-a-module")
    with pytest.raises(lh.InvalidNameError, match=f"{trust.MODULES_VARIABLE} must list module"):
        trust.module_trusted("good")


# --- models named by a stored spec ---------------------------------------------------------------
ZEROS = "0" * 64
MODEL_CASES = {
    # index -> changes to its stored spec, and the refusal
    "hub name not allowed": ("caption", {"model": "attacker/evil-model"}, "trusted_models="),
    "wrong digest": ("caption", {"digest": ZEROS}, "changed since the index was built"),
    "package folder without digest": ("caption", {"digest": None}, "without their SHA-256"),
    "absolute folder without digest": ("caption", {"model": "/models/evil", "digest": None},
                                       "without their SHA-256"),
    "local-dir without digest": ("shapes", {"model": f"local-dir:{embeddings._SHAPES_DIR}",
                                            "digest": None}, "without their SHA-256"),
    "shipped model without digest": ("shapes", {"digest": None}, "without their SHA-256"),
    "shipped model, wrong digest": ("shapes", {"digest": ZEROS}, "changed since"),
    "clip hub tag not allowed": ("shapes", {"model": "ViT-B-32", "pretrained": "openai",
                                            "digest": None}, r"trusted_models=\['ViT-B-32'\]"),
    "clip hf-hub name": ("shapes", {"model": "hf-hub:attacker/evil"}, "trusted_models="),
    "clip weights file without digest": ("shapes", {"model": "ViT-B-32",
                                                    "pretrained": "/models/evil.bin",
                                                    "digest": None}, "without their SHA-256"),
}


@pytest.fixture
def indexed(db, minilm, clip, monkeypatch):
    """A table with two embedding indexes on its captions, from local weights (with digests),
    and this process's list of hub models it built emptied."""
    monkeypatch.setattr(embeddings, "_built", set())
    t = db.create_table("docs", {"caption": lh.String})
    t.add_embedding_index("caption", embedding=minilm, progress=False)
    t.add_embedding_index("caption", embedding=clip, name="shapes", progress=False)
    t.insert([{"caption": "a red circle"}, {"caption": "a blue square"}], progress=False)
    return t


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_tampered_model_spec_never_loads(indexed, db, lakehouse_root, case) -> None:
    """The stored spec of an index (in its definition and in its computed vectors) rewritten:
    the table still reads, but inserting and searching raise ModelError naming the fix, write
    nothing and load no model."""
    index, changes, refusal = MODEL_CASES[case]
    column = next(f"_lh_embedding_{i}" for i, name in zip(
        range(1, 3), ("caption", "shapes"), strict=True) if name == index)

    def change(definition: dict) -> None:
        definition["index"]["embedding"].update(changes)
        (_, spec), = definition["computed"]["expr"]["kwargs"]
        spec.update(changes)

    _tamper(indexed, lakehouse_root, column, change)
    loaded = set(embeddings._loaded)
    t = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options) \
        .get_table("docs")
    rows = t.collect().to_dicts()
    assert rows == [{"caption": "a red circle"}, {"caption": "a blue square"}]
    assert t.indexes().height == 2
    before = t.version
    with pytest.raises(lh.ModelError, match=refusal):
        t.insert([{"caption": "a green star"}], progress=False)
    with pytest.raises(lh.ModelError, match=refusal):
        t.update({"caption": "a green star"}, where=t.caption == "a red circle", progress=False)
    with pytest.raises(lh.ModelError, match=refusal):
        sim = t.caption.similarity("a circle", index=index)
        t.order_by(sim, asc=False).limit(1).collect()
    assert t.version == before and t.collect().to_dicts() == rows
    assert set(embeddings._loaded) == loaded


def test_hub_models_load_when_built_here_or_trusted(settings, monkeypatch) -> None:
    """A hub model a stored spec names passes the check when this process built it with
    sentence_transformer()/clip(), or the user trusts its name; the check runs before any
    download."""
    monkeypatch.setattr(embeddings, "_built", set())
    spec = {"kind": "sentence_transformer", "model": "org/hub-model", "batch_size": 8}
    stored = embeddings.EmbeddingFunction.from_spec(spec)
    with pytest.raises(lh.ModelError, match=r"trusted_models=\['org/hub-model'\]"):
        embeddings.check_allowed(stored)
    lh.functions.sentence_transformer("org/hub-model")  # describes it; downloads nothing
    embeddings.check_allowed(stored)

    monkeypatch.setattr(embeddings, "_built", set())
    monkeypatch.setenv(trust.MODELS_VARIABLE, "org/hub-model")
    embeddings.check_allowed(stored)
    monkeypatch.delenv(trust.MODELS_VARIABLE)
    lh.connect(trusted_models=["org/hub-model", "ViT-B-32"])
    embeddings.check_allowed(stored)
    embeddings.check_allowed(embeddings.EmbeddingFunction.from_spec(
        {"kind": "clip", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}))
    with pytest.raises(lh.ModelError, match="without their SHA-256"):  # a file, not a tag
        embeddings.check_allowed(embeddings.EmbeddingFunction.from_spec(
            {"kind": "clip", "model": "ViT-B-32", "pretrained": "weights.bin"}))


@pytest.mark.slow
def test_local_models_with_digests_load_in_a_fresh_process(indexed, child) -> None:
    """The shipped CLIP and a package: folder carry their digests: a process that never built
    them embeds new rows and searches with both, with no trust settings."""
    out = child("""
        from lakehouse.functions import embeddings
        t = db.get_table("docs")
        t.insert([{"caption": "a green star"}], progress=False)
        found = {name: t.order_by(t.caption.similarity("a green star", index=name), asc=False)
                 .limit(1).collect()["caption"].to_list() for name in ("caption", "shapes")}
        print(json.dumps({"found": found, "built": len(embeddings._built),
                          "loaded": len(embeddings._loaded)}))
    """)
    assert out == {"found": {"caption": ["a green star"], "shapes": ["a green star"]},
                   "built": 0, "loaded": 2}
