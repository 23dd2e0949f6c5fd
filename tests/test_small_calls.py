"""Small calls without repeated work (issue 18, point 2): a search reads the statistics of a
vector index once per set of index segments, not once per table version; a top-k search whose
result Lance makes whole (its rows in order and their scores, in Lance's projection) answers
exactly what the general path answers."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from lance.dataset import LanceStats
from PIL import Image

import lakehouse as lh
from lakehouse.vector_index import MIN_ANN_ROWS

DIM = 8


def _rows(start: int, n: int, seed: int) -> pa.Table:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    ids = np.arange(start, start + n)
    return pa.table({"id": ids, "tag": ids % 10, "name": [f"n{i}" for i in ids],
                     "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)})


@pytest.fixture
def stats_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The index statistics Lance is asked for (each opens the index's files: requests on S3),
    by index name. The reads themselves run as they would; only their names are recorded."""
    reads: list[str] = []
    read = LanceStats.index_stats

    def recorded(self: LanceStats, index_name: str) -> dict:
        reads.append(index_name)
        return read(self, index_name)

    monkeypatch.setattr(LanceStats, "index_stats", recorded)
    yield reads


def test_a_search_after_a_write_that_leaves_the_index_reads_no_index_statistics(db,
                                                                               stats_reads):
    vt = db.create_table("v", {"id": lh.Int, "tag": lh.Int, "name": lh.String,
                               "v": lh.Array[(DIM,), "float32"]})
    vt.add_embedding_index("v", progress=False)
    vt.insert(_rows(0, MIN_ANN_ROWS, seed=0), progress=False)
    [index] = vt.indexes()["vector_index"].to_list()
    assert index == "IVF_SQ"
    new = _rows(MIN_ANN_ROWS, 50, seed=1)  # too few to extend the index: it stays as it is
    sim = vt.v.similarity(new.column("v")[7].values.to_numpy())
    query = vt.order_by(sim, asc=False).limit(5).select(vt.id, score=sim)
    query.collect()
    lance_index = vt.table_state().definition.index("v").lance_index
    assert stats_reads.count(lance_index) >= 1  # read once for this index

    vt.insert(new, progress=False)
    stats_reads.clear()
    assert query.collect()["id"][0] == MIN_ANN_ROWS + 7  # a new row, found without the index
    assert stats_reads == []  # a new table version, the same index segments: nothing read

    vt.insert(_rows(MIN_ANN_ROWS + 50, 2_000, seed=2), progress=False)  # extends the index
    stats_reads.clear()
    query.collect()
    assert stats_reads == [lance_index]  # new segments: read once, then known
    query.collect()
    assert stats_reads == [lance_index]


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
@pytest.mark.parametrize("rows", [300, MIN_ANN_ROWS], ids=["exact", "vector_index"])
def test_a_top_k_search_made_by_lance_answers_what_the_general_path_answers(tmp_path, metric,
                                                                          rows):
    vt = lh.connect(str(tmp_path), maintenance=False).create_table(
        "v", {"id": lh.Int, "tag": lh.Int, "name": lh.String, "v": lh.Array[(DIM,), "float32"]})
    vt.add_embedding_index("v", metric=metric, progress=False)
    vt.insert(_rows(0, rows, seed=3), progress=False)
    sim = vt.v.similarity(np.random.default_rng(4).standard_normal(DIM).astype(np.float32))
    always = vt.name.str.upper() != "NONE"  # true on every row, and evaluated by Polars
    for where in (None, vt.tag == 3):
        fast = vt if where is None else vt.where(where)
        general = fast.where(always)  # a condition Lance cannot evaluate: the general path
        outputs = {"score": sim, "id": vt.id, "name": vt.name, "again": sim}
        made = fast.order_by(sim, asc=False).limit(12).select(**outputs).collect()
        expected = general.order_by(sim, asc=False).limit(12).select(**outputs).collect()
        assert made.schema == expected.schema == pl.Schema(
            {"score": pl.Float64, "id": pl.Int64, "name": pl.String, "again": pl.Float64})
        assert made.equals(expected), (made, expected)
        assert made.height == 12 and made["score"].is_sorted(descending=True)
        assert made["score"].to_list() == made["again"].to_list()


def test_a_top_k_search_of_all_columns_or_a_media_column_takes_the_general_path(db):
    pics = db.create_table("p", {"id": lh.Int, "img": lh.Image, "v": lh.Array[(2,), "float32"]})
    pics.add_embedding_index("v", progress=False)
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="PNG")
    pixel = buffer.getvalue()
    pics.insert([{"id": 1, "img": pixel, "v": [1.0, 0.0]}, {"id": 2, "img": pixel,
                                                           "v": [0.0, 1.0]}], progress=False)
    sim = pics.v.similarity([1.0, 0.1])
    whole = pics.order_by(sim, asc=False).limit(1).collect()
    assert whole.columns == ["id", "img", "v"] and whole["id"].to_list() == [1]
    assert whole["img"].to_list() == [pixel]
    named = pics.order_by(sim, asc=False).limit(2).select(_score=sim, id=pics.id).collect()
    assert named["id"].to_list() == [1, 2] and named["_score"][0] > named["_score"][1]


@pytest.mark.parametrize("select", [("id", "name", "score"), ("ident", "score"), ("score",),
                                    ("score", "id")])
def test_a_top_k_result_made_from_lances_frame_answers_what_the_general_path_answers(tmp_path,
                                                                                     select):
    """Outputs in the frame's order (stored columns, then the score) take Lance's frame as the
    result, the score in the distances' place and the columns renamed; others are built from
    its columns. Either way: the general path's answer, and a result of its own per call."""
    vt = lh.connect(str(tmp_path), maintenance=False).create_table(
        "v", {"id": lh.Int, "tag": lh.Int, "name": lh.String, "v": lh.Array[(DIM,), "float32"]})
    vt.add_embedding_index("v", progress=False)
    vt.insert(_rows(0, 300, seed=5), progress=False)
    sim = vt.v.similarity(np.random.default_rng(6).standard_normal(DIM).astype(np.float32))
    exprs = {"id": vt.id, "ident": vt.id, "name": vt.name, "score": sim}
    outputs = {name: exprs[name] for name in select}
    always = vt.name.str.upper() != "NONE"  # evaluated by Polars: the general path
    for where in (None, vt.tag == 3):
        fast = vt if where is None else vt.where(where)
        made = fast.order_by(sim, asc=False).limit(7).select(**outputs).collect()
        expected = fast.where(always).order_by(sim, asc=False).limit(7).select(**outputs)
        assert made.columns == list(select)
        assert made.equals(expected.collect()), (made, expected.collect())
        again = fast.order_by(sim, asc=False).limit(7).select(**outputs).collect()
        assert again.equals(made) and again is not made


def test_column_references_are_the_definitions_own_and_others_are_checked(db):
    """t.col hands out the reference the definition made (no lookup per query); a reference
    made from an earlier definition is checked against the latest one: kept while its column
    is there, refused once it is dropped."""
    t = db.create_table("c", {"a": lh.Int, "b": lh.Int})
    t.insert([{"a": 1, "b": 2}], progress=False)
    assert t.a is t.a
    earlier = t.b
    t.add_column(note=lh.String)
    assert t.b is not earlier  # a new definition, new references
    assert t.where(earlier == 2).select(t.a, earlier).collect().rows() == [(1, 2)]
    t.drop_column("b")
    with pytest.raises(lh.ColumnNotFoundError, match="no column 'b'"):
        t.where(earlier == 2).collect()
    with pytest.raises(lh.ColumnNotFoundError, match="no column 'b'"):
        t.select(earlier).collect()


def test_a_top_k_search_the_general_path_answers_embeds_its_query_text_once(
        db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A condition Lance cannot evaluate sends a top-k search the general way; the query text
    is embedded once there (it was embedded once more before the query knew it could not go
    to Lance alone)."""
    t = db.create_table("captions", {"text": lh.String})
    t.insert([{"text": f"a {c} circle"} for c in ("red", "green", "blue")], progress=False)
    t.add_embedding_index("text", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    embedded: list[list[str]] = []
    embed = lh.functions.EmbeddingFunction.embed_texts

    def recorded(self: lh.functions.EmbeddingFunction, texts: list[str]) -> np.ndarray:
        embedded.append(list(texts))
        return embed(self, texts)

    monkeypatch.setattr(lh.functions.EmbeddingFunction, "embed_texts", recorded)
    sim = t.text.similarity("a blue circle")
    residual = t.where(t.text.str.upper() != "A RED CIRCLE").order_by(sim, asc=False).limit(1)
    assert residual.select(t.text).collect()["text"].to_list() == ["a blue circle"]
    assert embedded == [["a blue circle"]]
    embedded.clear()
    pushed = t.where(t.text != "a red circle").order_by(sim, asc=False).limit(1)
    assert pushed.select(t.text).collect()["text"].to_list() == ["a blue circle"]
    assert embedded == [["a blue circle"]]
