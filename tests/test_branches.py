"""Branches: t.branch(), "t#dev" handles whose writes never touch the main line, listing,
promote (a fast-forward, refused when the main line moved), delete; computed columns and
embedding indexes on a branch; hostile branch names."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh


def _rows(t: lh.Table) -> list[tuple]:
    return sorted(t.to_polars().rows(), key=repr)


def _state(t: lh.Table) -> tuple:
    """Everything a branch write must leave alone on the main line: rows, version, history and
    definition (columns with their computed expressions)."""
    fresh = lh.Table.summary(t)
    return (_rows(t), fresh.version, t.history(limit=None)["version"].to_list(),
            t.describe().rows(), t.table_state().dataset.schema)


@pytest.fixture
def films(db) -> lh.Table:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert([{"title": "Alien", "year": 1979}, {"title": "Heat", "year": 1995},
              {"title": "Up", "year": 2009}], progress=False)
    t.add_computed_column(decade=t.year // 10 * 10, progress=False)
    return t


def test_writes_on_a_branch_leave_the_main_line_unchanged(db, films):
    before = _state(films)
    dev = films.branch("dev")
    assert (dev.table_name, dev.table_branch, dev.version) == ("films#dev", "dev", films.version)
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    dev.update({"year": 1996}, where=dev.title == "Heat", progress=False)
    dev.delete(where=dev.title == "Alien")
    dev.add_computed_column(next_year=dev.year + 1, progress=False)
    dev.add_column(note=lh.String)
    dev.add_index("year")
    dev.rename_column("note", "remark")
    assert _rows(dev) == [("Heat", 1996, 1990, 1997, None), ("Ran", 1985, 1980, 1986, None),
                          ("Up", 2009, 2000, 2010, None)]
    assert _state(films) == before
    assert _state(db.get_table("films")) == before
    assert "next_year" not in db.get_table("films").columns()
    assert db.get_table("films").indexes().height == 0
    # the branch's definition is its own: an insert there computes its new column
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    assert db.get_table("films#dev").where(dev.title == "Jaws").select(
        dev.next_year).collect().item() == 1976
    assert _state(films) == before


def test_a_branch_opens_by_name_and_at_its_versions(db, films):
    dev = films.branch("dev")
    start = dev.version
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    again = db.get_table("films#dev")
    assert (again.table_branch, again.count(), again.is_read_only) == ("dev", 4, False)
    old = db.get_table(f"films#dev:{start}")
    assert (old.count(), old.is_read_only, old.table_branch) == (3, True, "dev")
    with pytest.raises(lh.ReadOnlyError):
        old.insert([{"title": "x", "year": 1}], progress=False)
    assert dev.at(start).count() == 3
    with pytest.raises(lh.VersionNotFoundError, match="earlier ones are the main line's"):
        db.get_table("films#dev:1")
    with pytest.raises(lh.VersionNotFoundError):
        db.get_table("films#dev:99")
    with pytest.raises(lh.BranchNotFoundError, match="no branch 'nope'.*'dev'"):
        db.get_table("films#nope")
    with pytest.raises(lh.InvalidNameError, match="snapshot"):
        db.get_table("films#dev@v1")
    with pytest.raises(lh.InvalidNameError, match="'main' is the table itself"):
        db.get_table("films#main")
    with pytest.raises(lh.TableNotFoundError):
        db.get_table("nothing#dev")


HOSTILE = ["", "main", "..", "../x", "a/b", "/abs", "a#b", "a:b", "a@b", "x.lance", ".hidden",
           "-flag", "a\n", "a b", "naïve", "a\\b", "a\x00b", "*", "a;rm", "a..b", "a.lock", "a."]


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_branch_names_are_refused(db, films, name):
    before = _state(films)
    with pytest.raises(lh.InvalidNameError):
        films.branch(name)
    with pytest.raises((lh.InvalidNameError, lh.BranchNotFoundError)):
        db.get_table(f"films#{name}")
    assert films.branches().height == 0
    assert _state(films) == before


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
       | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,10}", fullmatch=True))
def test_a_generated_branch_name_is_refused_or_stays_inside_the_table(tmp_path_factory, name):
    """Any text: either InvalidNameError and nothing made, or a branch whose only trace is its
    own folder under the table's tree/ (a name can never reach outside the table)."""
    root = tmp_path_factory.mktemp("names")
    db = lh.connect(str(root))
    t = db.create_table("t", {"n": lh.Int})
    before = {p for p in root.rglob("*") if "tree" not in p.parts}
    try:
        dev = t.branch(name)
    except lh.InvalidNameError:
        assert not (root / "t.lance" / "tree").exists()
        return
    assert dev.table_name == f"t#{name}" and db.get_table(f"t#{name}").count() == 0
    made = {p for p in root.rglob("*")} - before
    tree = root / "t.lance" / "tree"
    refs = root / "t.lance" / "_refs"  # Lance's list of branches
    assert all(p == tree or tree / name in (p, *p.parents) or refs in (p, *p.parents)
               for p in made), made


def test_table_names_with_branch_or_version_marks_are_refused(db):
    for name in ("a#b", "a\n", "a@b/c"):
        with pytest.raises(lh.InvalidNameError):
            db.create_table(name, {"n": lh.Int})


def test_branches_come_from_a_version_or_a_snapshot(db, films):
    first = films.version
    films.snapshot("v1")
    films.insert([{"title": "Ran", "year": 1985}], progress=False)
    assert films.branch("at-version", from_=first).count() == 3
    assert films.branch("at-snapshot", from_="v1").count() == 3
    assert films.branch("latest").count() == 4
    assert films.at(first).branch("from-old-handle").count() == 3
    with pytest.raises(lh.VersionNotFoundError):
        films.branch("nowhere", from_=99)
    with pytest.raises(lh.VersionNotFoundError):
        films.branch("no-snapshot", from_="nope")
    with pytest.raises(lh.BranchExistsError):
        films.branch("latest")
    listing = films.branches()
    assert listing.columns == ["branch", "parent_version", "latest_version", "created"]
    assert listing.select("branch", "parent_version").rows() == [
        ("at-snapshot", first), ("at-version", first), ("from-old-handle", first),
        ("latest", first + 1)]
    assert listing.schema["created"] == pl.Datetime("us", "UTC")
    with pytest.raises(lh.BranchDivergedError):  # made from an older version: no fast-forward
        films.promote("at-version")
    assert films.promote("latest") == films.version


def test_a_branch_handle_lists_the_table_branches_and_refuses_branching(db, films):
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    assert dev.branches().select("branch", "latest_version").rows() == [("dev", dev.version)]
    with pytest.raises(lh.UnsupportedError, match="main line"):
        dev.branch("sub")


def _scalar_indexes(t: lh.Table) -> list[str]:
    listing = t.indexes()
    return sorted(listing.filter(pl.col("kind").is_in(["btree", "bitmap"]))["name"])


def test_promote_fast_forwards_the_main_line(db, films):
    films.add_index("title")
    dev = films.branch("dev")
    dev.drop_index("title_btree")
    dev.add_index("year", kind="bitmap")
    ids_before = set(films.table_state().dataset.to_table(with_row_id=True)["_rowid"]
                     .to_pylist())
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    dev.delete(where=dev.title == "Alien")
    expected = _rows(dev)
    version = films.promote("dev")
    assert version == films.version and _rows(films) == expected
    assert "promote" in films.history(limit=3)["operation"].to_list()
    ids_after = set(films.table_state().dataset.to_table(with_row_id=True)["_rowid"]
                    .to_pylist())
    assert len(ids_after) == 3 and ids_after - ids_before  # kept ids, plus Ran's
    assert _scalar_indexes(films) == ["year_bitmap"]  # the table's indexes follow the branch's
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)
    assert ("Jaws", 1975, 1970) in _rows(films)
    # the main line holds its own copies: deleting the branch keeps its rows readable
    films.delete_branch("dev")
    assert len(_rows(db.get_table("films"))) == 4


def test_promote_brings_new_columns_and_rewritten_rows(db, films):
    dev = db.get_table("films").branch("dev")
    dev.add_computed_column(next_year=dev.year + 1, progress=False)
    dev.update({"year": 2010}, where=dev.title == "Up", progress=False)
    dev.delete(where=dev.title != "Up")  # every row of the main line's fragment is gone
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    expected = _rows(dev)
    assert dev.promote() == films.version
    assert _rows(films) == expected
    assert films.columns() == ["title", "year", "decade", "next_year"]
    assert films.describe().filter(pl.col("column") == "next_year")["computed"].item() == \
        "(year + 1)"
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)
    assert ("Jaws", 1975, 1970, 1976) in _rows(films)
    films.update({"year": 1976}, where=films.title == "Jaws", progress=False)
    assert ("Jaws", 1976, 1970, 1977) in _rows(films)


def test_promote_when_the_main_line_moved_is_refused_and_changes_nothing(db, films):
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)
    before, branch_before = _state(films), _state(dev)
    with pytest.raises(lh.BranchDivergedError, match="moved from version"):
        films.promote("dev")
    with pytest.raises(RuntimeError):  # also the builtin it derives from
        dev.promote()
    assert _state(films) == before and _state(dev) == branch_before
    with pytest.raises(lh.BranchNotFoundError):
        films.promote("nope")
    with pytest.raises(lh.InvalidOptionError):
        films.promote()


def test_concurrent_writes_on_the_main_line_and_a_branch(db, films):
    dev = films.branch("dev")
    errors: list[BaseException] = []

    def writer(t: lh.Table, prefix: str) -> None:
        try:
            for i in range(6):
                t.insert([{"title": f"{prefix}{i}", "year": 2000 + i}], progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(db.get_table("films"), "main")),
               threading.Thread(target=writer, args=(db.get_table("films#dev"), "dev"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    main_titles = set(db.get_table("films").collect()["title"])
    dev_titles = set(db.get_table("films#dev").collect()["title"])
    assert {f"main{i}" for i in range(6)} <= main_titles
    assert not any(t.startswith("dev") for t in main_titles)
    assert {f"dev{i}" for i in range(6)} <= dev_titles
    assert not any(t.startswith("main") for t in dev_titles)
    with pytest.raises(lh.BranchDivergedError):
        dev.promote()


BRANCH_WRITER = """
    import json, sys, time
    from pathlib import Path
    import lakehouse as lh

    root, options, name, who = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    barrier, writers = Path(sys.argv[5]), int(sys.argv[6])
    t = lh.connect(root, storage_options=options).get_table(name)
    (barrier / f"ready-{who}").touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < writers:
        assert time.monotonic() < deadline, "the other writers never got ready"
        time.sleep(0.005)
    for i in range(6):
        t.insert([{"title": f"{who}-{i}", "year": i}], progress=False)
"""


@pytest.mark.slow
def test_writer_processes_on_the_main_line_and_a_branch(db, films, lakehouse_root, run_python,
                                                         tmp_path):
    """Two processes write the branch and one the main line, at once: every row lands on the
    line it was written to, and nowhere else."""
    films.branch("dev")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    options = json.dumps(lakehouse_root.storage_options)
    targets = {"main": "films", "dev1": "films#dev", "dev2": "films#dev"}

    def writer(who: str):
        args = [lakehouse_root.uri, options, targets[who], who, str(barrier), str(len(targets))]
        return run_python(BRANCH_WRITER, args=args, cwd=barrier, timeout=240)

    with ThreadPoolExecutor(len(targets)) as pool:
        procs = list(pool.map(writer, targets))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    old = ["Alien", "Heat", "Up"]
    assert sorted(db.get_table("films").collect()["title"]) == sorted(
        old + [f"main-{i}" for i in range(6)])
    assert sorted(db.get_table("films#dev").collect()["title"]) == sorted(
        old + [f"{w}-{i}" for w in ("dev1", "dev2") for i in range(6)])


def test_a_promote_racing_a_main_line_write_loses_nothing(db, films, monkeypatch):
    """A write that lands on the main line while a promote prepares its commit makes the
    promote fail (BranchDivergedError): the write is kept, the branch is not applied."""
    from lakehouse import branches

    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    real = branches._copy_own_files

    def copy_then_someone_writes(*args, **kwargs):
        real(*args, **kwargs)
        db.get_table("films").insert([{"title": "Jaws", "year": 1975}], progress=False)

    monkeypatch.setattr(branches, "_copy_own_files", copy_then_someone_writes)
    with pytest.raises(lh.BranchDivergedError):
        films.promote("dev")
    assert sorted(films.collect()["title"]) == ["Alien", "Heat", "Jaws", "Up"]


def test_delete_branch(db, films):
    films.branch("dev").insert([{"title": "Ran", "year": 1985}], progress=False)
    with pytest.raises(lh.UnsupportedError, match="main line"):
        films.delete_branch("main")
    with pytest.raises(lh.BranchNotFoundError):
        films.delete_branch("nope")
    with pytest.raises(lh.InvalidNameError):
        films.delete_branch("../dev")
    before = _state(films)
    db.get_table("films#dev").delete_branch("dev")
    assert films.branches().height == 0
    with pytest.raises(lh.BranchNotFoundError):
        db.get_table("films#dev")
    assert _state(films) == before
    films.branch("dev")  # the name can be used again
    assert db.get_table("films#dev").count() == 3


def test_views_and_branches_stay_apart(db, films):
    dev = films.branch("dev")
    with pytest.raises(lh.UnsupportedError, match="a view works on a table's main line"):
        db.create_view("recent", dev.where(dev.year > 1990))
    with pytest.raises(lh.UnsupportedError):
        db.create_view("all", dev)
    view = db.create_view("recent", films.where(films.year > 1990))
    with pytest.raises(lh.UnsupportedError, match="is a view"):
        view.branch("dev")
    dev.insert([{"title": "Dune", "year": 2021}], progress=False)
    assert view.count() == 2  # a branch write does not reach the views of the main line
    films.delete_branch("dev")


def _docs_and_branch(db: lh.Catalog,
                     minilm: lh.functions.EmbeddingFunction) -> tuple[lh.Table, lh.Table]:
    """A table of two texts with an embedding index, and its branch ``dev`` holding one text
    more."""
    t = db.create_table("docs", {"text": lh.String})
    t.insert([{"text": "a cat sleeps on the sofa"}, {"text": "stock prices fell today"}],
             progress=False)
    t.add_embedding_index("text", embedding=minilm, progress=False)
    dev = t.branch("dev")
    dev.insert([{"text": "the rocket launched into orbit"}], progress=False)
    return t, dev


def test_embedding_search_on_a_branch(db, minilm):
    t, dev = _docs_and_branch(db, minilm)
    sim = dev.text.similarity("a spaceship flying to space")
    top = dev.order_by(sim, asc=False).limit(1).select(dev.text).collect()
    assert top["text"].to_list() == ["the rocket launched into orbit"]
    main_sim = t.text.similarity("a spaceship flying to space")
    assert "the rocket launched into orbit" not in \
        t.order_by(main_sim, asc=False).limit(2).select(t.text).collect()["text"].to_list()
    dev.promote()
    top = t.order_by(main_sim, asc=False).limit(1).select(t.text).collect()
    assert top["text"].to_list() == ["the rocket launched into orbit"]


def test_an_embedding_index_added_on_a_branch_stays_there(db):
    t = db.create_table("vecs", {"id": lh.Int, "v": lh.Array[(4,), "float32"]})
    rng = np.random.default_rng(0)
    t.insert(pl.DataFrame({"id": np.arange(20), "v": rng.random((20, 4), dtype=np.float32)}),
             progress=False)
    dev = t.branch("dev")
    dev.add_embedding_index("v", metric="l2", progress=False)
    assert dev.indexes()["name"].to_list() == ["v"]
    assert t.indexes().height == 0
    query = t.table_state().dataset.to_table()["v"].to_pylist()[7]
    found = dev.order_by(dev.v.similarity(query), asc=False).limit(1).select(dev.id).collect()
    assert found["id"].to_list() == [7]


def test_snapshots_name_main_line_versions_only(db, films):
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    with pytest.raises(lh.UnsupportedError, match="a snapshot works on a table's main line"):
        dev.snapshot("v1")
    assert films.snapshots() == {}
    films.snapshot("v1")
    assert db.get_table("films@v1").count() == 3


def _png(shade: int, size: int) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(shade)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def test_promoted_media_and_columns_outlive_the_branch(db):
    """The main line keeps its own copies of a branch's files (blobs included): images a branch
    added stay readable after the branch is deleted, and an index on a column the branch
    dropped goes with the column."""
    t = db.create_table("pics", {"image": lh.Image, "label": lh.String, "n": lh.Int})
    small, big = _png(1, 32), _png(2, 700)  # the big one is stored as a blob file of its own
    t.insert([{"image": small, "label": "small", "n": 1}], progress=False)
    t.add_index("n")
    dev = t.branch("dev")
    dev.insert([{"image": big, "label": "big", "n": 2}], progress=False)
    dev.add_computed_column(w=dev.image.width, progress=False)
    dev.drop_column("n")
    t.promote("dev")
    t.delete_branch("dev")
    main = db.get_table("pics")
    assert sorted(main.select(main.label, main.w).collect().rows()) == [("big", 700),
                                                                        ("small", 32)]
    blobs = {label: f.read() for label, f in zip(main.collect()["label"],
                                                   main.blob_files("image"), strict=True)}
    assert blobs == {"small": small, "big": big}
    assert "n_btree" not in main.indexes()["name"].to_list()
    assert main.table_state().dataset.validate() is None
    main.insert([{"image": small, "label": "again"}], progress=False)
    assert main.where(main.label == "again").select(main.w).collect().item() == 32


def test_diff_shows_what_a_branch_changed(db, films):
    dev = films.branch("dev")
    fork = dev.version
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    dev.update({"year": 1996}, where=dev.title == "Heat", progress=False)
    dev.delete(where=dev.title == "Alien")
    dev.add_computed_column(next_year=dev.year + 1, progress=False)
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)  # the main line moves too
    for d in (films.diff(dev), films.diff("#dev"), db.get_table("films#dev").diff("#dev")):
        assert (d.table, d.before, d.after) == ("films#dev", fork, dev.version)
        assert d.inserted["title"].to_list() == ["Ran"]
        assert d.deleted["title"].to_list() == ["Alien"]
        assert d.updated.select("changed", "year").rows() == [
            (["year"], {"before": 1995, "after": 1996})]  # next_year is a new column
        assert d.schema.select("change", "name").rows() == [("add column", "next_year")]
    # within the branch's own line, versions work as on a table
    assert dev.diff(fork).inserted["title"].to_list() == ["Ran"]
    # and the main line's own changes since the fork
    assert films.diff(fork).inserted["title"].to_list() == ["Jaws"]
    with pytest.raises(lh.InvalidOptionError, match="pass it alone"):
        films.diff("#dev", 2)
    with pytest.raises(lh.InvalidOptionError, match="branch of this table"):
        films.diff(db.create_table("other", {"n": lh.Int}).branch("dev"))
    with pytest.raises(lh.InvalidNameError):
        films.diff("#../x")
    with pytest.raises(lh.BranchNotFoundError):
        films.diff("#nope")


def test_a_branch_reverts_and_reads_its_own_versions_only(db, films):
    dev = films.branch("dev")
    first = dev.version
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    assert dev.history(limit=None).select("version", "operation").rows()[-1] == (first, "branch")
    with pytest.raises(lh.VersionNotFoundError, match=f"versions {first}.."):
        dev.revert(to=first - 1)
    with pytest.raises(lh.VersionNotFoundError, match=f"starts at version {first}"):
        dev.at(first - 1)
    before = _state(films)
    assert dev.revert(to=first) == first + 2 and dev.count() == 3
    assert _state(films) == before
    with pytest.raises(lh.InvalidNameError, match="delete_branch"):
        db.drop_table("films#dev")
    assert films.branches().height == 1


# --- promoting again ----------------------------------------------------------------------------
def _ids_and_rows(t: lh.Table) -> dict[int, tuple]:
    table = t.table_state().dataset.to_table(with_row_id=True)
    names = t.columns()
    return {row["_rowid"]: tuple(row[n] for n in names) for row in table.to_pylist()}


def test_a_promoted_branch_is_promoted_again(db, films):
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    dev.delete(where=dev.title == "Alien")
    films.promote("dev")
    promoted = _ids_and_rows(films)
    assert dev.diff(dev.version).summary().endswith("0 inserted, 0 updated, 0 deleted, "
                                                     "0 schema changes")
    assert films.diff(dev).summary().endswith("0 inserted, 0 updated, 0 deleted, "
                                               "0 schema changes")  # nothing left to bring
    # the branch goes on: every kind of write, rows promoted before included
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    dev.update({"year": 1986}, where=dev.title == "Ran", progress=False)
    dev.delete(where=dev.title == "Up")
    dev.add_computed_column(next_year=dev.year + 1, progress=False)
    change = films.diff("#dev")
    assert (change.inserted["title"].to_list(), change.deleted["title"].to_list()) == \
        (["Jaws"], ["Up"])
    assert change.updated.select("changed", "year").rows() == [
        (["year"], {"before": 1985, "after": 1986})]
    expected = _rows(dev)
    assert films.promote("dev") == films.version
    assert _rows(films) == _rows(db.get_table("films")) == expected
    assert films.describe().filter(pl.col("column") == "next_year")["computed"].item() == \
        "(year + 1)"
    # the rows the branch kept keep the ids the main line gave them: Heat's since the table
    # was made, none of the branch's own ids, which the first promote replaced
    after = _ids_and_rows(films)
    heat = next(i for i, row in promoted.items() if row[0] == "Heat")
    assert after[heat][:2] == ("Heat", 1995)
    assert len(set(after)) == 3 and films.table_state().dataset.validate() is None
    # the main line goes on from there
    films.insert([{"title": "Dune", "year": 2021}], progress=False)
    assert ("Dune", 2021, 2020, 2022) in _rows(films)


def test_promote_three_times_in_a_row(db, films):
    films.add_index("year")
    dev = films.branch("dev")
    for i in range(3):
        dev.insert([{"title": f"new{i}", "year": 2000 + i}], progress=False)
        dev.update({"year": 1990 + i}, where=dev.title == "Heat", progress=False)
        films.promote("dev")
        assert _rows(films) == _rows(dev)
        ids = films.table_state().dataset.to_table(with_row_id=True)["_rowid"].to_pylist()
        assert len(set(ids)) == 4 + i  # every row its own id
        assert films.where(films.year == 2000 + i).select(films.title).collect().item() == \
            f"new{i}"  # through the table's btree index
    assert films.history(limit=None)["operation"].to_list().count("promote") == 3
    assert _scalar_indexes(films) == ["year_btree"]
    assert films.table_state().dataset.validate() is None


def test_promote_again_after_a_main_line_write_is_refused(db, films):
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    films.promote("dev")
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    films.update({"year": 1996}, where=films.title == "Heat", progress=False)
    moved = films.version
    before, branch_before = _state(films), _state(dev)
    with pytest.raises(lh.BranchDivergedError,
                       match=f"to {moved}, and its version {moved} \\(update\\).*new branch "
                             f"from version {moved}"):
        films.promote("dev")
    assert _state(films) == before and _state(dev) == branch_before
    assert ("Heat", 1996, 1990) in _rows(films) and ("Jaws", 1975, 1970) not in _rows(films)
    # the diff still starts where the branch was last promoted
    assert films.diff("#dev").inserted["title"].to_list() == ["Jaws"]


def test_a_promote_of_another_branch_moves_the_main_line(db, films):
    dev, other = films.branch("dev"), films.branch("other")
    other.insert([{"title": "Ran", "year": 1985}], progress=False)
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    films.promote("dev")
    with pytest.raises(lh.BranchDivergedError, match="promote"):
        films.promote("other")
    dev.insert([{"title": "Dune", "year": 2021}], progress=False)
    films.promote("dev")
    assert sorted(films.collect()["title"]) == ["Alien", "Dune", "Heat", "Jaws", "Up"]


def test_promote_again_after_the_main_line_compacted(db, films):
    """A compaction of the main line (maintenance after the promote, or t.optimize()) changes no
    rows: the branch is promoted again, and the main line holds the branch's rows."""
    dev = films.branch("dev")
    for i in range(4):
        dev.insert([{"title": f"new{i}", "year": 2000 + i}], progress=False)
    films.promote("dev")
    films.optimize()
    assert films.history(limit=1)["operation"].item() == "compact"
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    dev.delete(where=dev.title == "new0")
    dev.delete(where=dev.title == "Alien")  # a deletion file on a fragment compacted away
    films.promote("dev")
    assert _rows(films) == _rows(dev)
    ids = films.table_state().dataset.to_table(with_row_id=True)["_rowid"].to_pylist()
    assert len(set(ids)) == len(ids) == 6
    assert films.table_state().dataset.validate() is None
    # a third promote finds the fragments the second numbered anew: their rows keep their ids
    kept = _ids_and_rows(films)
    dev.insert([{"title": "Dune", "year": 2021}], progress=False)
    dev.delete(where=dev.title == "Heat")
    films.promote("dev")
    after = _ids_and_rows(films)
    assert _rows(films) == _rows(dev)
    assert {i: row for i, row in after.items() if i in kept} == \
        {i: row for i, row in kept.items() if row[0] != "Heat"}


def test_an_embedding_index_follows_a_branch_promoted_again(db, minilm):
    t, dev = _docs_and_branch(db, minilm)
    t.promote("dev")
    dev.insert([{"text": "fresh bread from the bakery"}], progress=False)
    dev.delete(where=dev.text == "a cat sleeps on the sofa")
    t.promote("dev")
    assert sorted(t.collect()["text"]) == sorted(dev.collect()["text"])

    def top(query: str) -> str:
        sim = t.text.similarity(query)
        return t.order_by(sim, asc=False).limit(1).select(t.text).collect().item()

    assert top("a loaf baked this morning") == "fresh bread from the bakery"
    assert top("a spaceship flying to space") == "the rocket launched into orbit"
    assert top("a kitten napping") != "a cat sleeps on the sofa"


def test_views_follow_a_branch_promoted_again(db, films):
    view = db.create_view("recent", films.where(films.year > 1990))
    dev = films.branch("dev")
    dev.insert([{"title": "Dune", "year": 2021}], progress=False)
    films.promote("dev")
    dev.delete(where=dev.title == "Up")
    dev.insert([{"title": "Tenet", "year": 2020}], progress=False)
    films.promote("dev")
    assert sorted(view.collect()["title"]) == ["Dune", "Heat", "Tenet"]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_second_promote_copies_only_the_files_the_first_did_not(db, films, lakehouse_root):
    from pathlib import Path

    data = Path(lakehouse_root.uri) / "films.lance" / "data"
    dev = films.branch("dev")
    dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    films.promote("dev")
    first = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    dev.insert([{"title": "Jaws", "year": 1975}], progress=False)
    films.promote("dev")
    second = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    assert len(second) == len(first) + 1  # Jaws's data file
    assert all(second[name] == mtime for name, mtime in first.items())
