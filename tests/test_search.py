"""Similarity search through embedding indexes: what ranks first, with real trained models.

Pictures come from :mod:`lakehouse.samples.shapes` with the held-out seed 424242 (and seeds next
to it), never used to train the shipped CLIP model; sentences are real sentences on distinct
topics, searched with MiniLM. Expected rankings come from the pictures' scenes and the sentences'
topics, and expected scores from the models' own vectors computed with numpy, never from the
search code. Tests that are not about storage run on a local folder only.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import lance
import numpy as np
import polars as pl
import pytest
import udfs_for_tests as U
from udfs_for_tests import TESTS_DIR
from udfs_for_tests import query_functions as Q

import lakehouse as lh
from lakehouse.catalog import Catalog
from lakehouse.samples import shapes

HELD_OUT = 424242  # the seed the shipped CLIP model never saw in training

DOCS = {
    "photosynthesis": "Plants turn sunlight, water and carbon dioxide into sugar and oxygen "
                      "through photosynthesis.",
    "volcano": "A volcano erupts when molten rock from deep inside the earth rises and bursts "
               "through the surface.",
    "bread": "To bake bread, knead a dough of flour, water, salt and yeast, let it rise, then "
             "put it in a hot oven.",
    "football": "The striker scored twice in the final minutes and the team won the "
                "championship.",
    "markets": "Share prices fell sharply after the central bank raised interest rates again.",
    "guitar": "She practises the guitar every evening, learning chords and fingerpicking "
              "patterns.",
    "vaccines": "Vaccines train the immune system to recognise a virus before a real infection "
                "happens.",
    "mars": "The rover landed on Mars and began drilling rock samples in an ancient crater.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee beans under "
              "pressure.",
    "chess": "In chess, castling moves the king two squares towards a rook, which jumps over it.",
    "recycling": "Glass bottles and aluminium cans should be rinsed and put in the recycling "
                 "bin.",
    "taxes": "Remember to file your income tax return before the deadline in April.",
}
PARAPHRASES = {
    "photosynthesis": "How do plants make their food from light?",
    "volcano": "lava exploding out of a mountain",
    "bread": "a recipe for making a loaf at home",
    "football": "the forward netted two late goals and they took the title",
    "markets": "stocks dropped when borrowing costs went up",
    "guitar": "playing a string instrument each night",
    "vaccines": "how immunisation prepares the body against disease",
    "mars": "a robot exploring the red planet",
    "coffee": "making strong coffee with a machine",
    "chess": "a special move in a board game that involves the king",
    "recycling": "where to throw away empty cans and bottles",
    "taxes": "submitting what you owe the government on time",
}


# --- models and data ------------------------------------------------------------------------------


def _extra(rng: random.Random, **fixed: str) -> tuple:
    """A picture of a random scene with some attributes fixed, jittered by ``rng``."""
    scene = dataclasses.replace(shapes.random_scene(rng), **fixed)
    return shapes.draw(scene, rng), scene


def _near_twin(image):
    """The same picture resampled: a near duplicate, not the same bytes."""
    return image.resize((60, 60)).resize((64, 64))


def _vectors(table: lh.Table) -> dict[int, np.ndarray | None]:
    """id -> the stored vectors of the table's only embedding index (its hidden column)."""
    ds = lance.dataset(table.uri)
    (hidden,) = [n for n in ds.schema.names if n.startswith("_lh_embedding_")]
    frame = pl.from_arrow(ds.to_table(columns=["id", hidden]))
    return {i: None if v is None else np.asarray(v, dtype=np.float32)
            for i, v in zip(frame["id"], frame[hidden].to_list(), strict=True)}


def _ranked(table: lh.Table, query, k: int, where=None) -> pl.DataFrame:
    sim = table.image.similarity(query)
    q = table.where(where) if where is not None else table
    return q.order_by(sim, asc=False).limit(k).select(table.id, score=sim).collect()


@dataclasses.dataclass
class Pictures:
    table: lh.Table
    scenes: list[shapes.Scene]
    images: list


@pytest.fixture(scope="module")
def pictures(clip, tmp_path_factory) -> Pictures:
    """39 pictures: 30 held-out samples (ids 0-29), then 3 red circles, 3 yellow shapes and 3
    blue squares (ids 30-38) drawn from the next seed; indexed with the shipped CLIP."""
    pairs = list(shapes.samples(30, HELD_OUT))
    rng = random.Random(HELD_OUT + 1)
    pairs += [_extra(rng, colour="red", shape="circle") for _ in range(3)]
    pairs += [_extra(rng, colour="yellow") for _ in range(3)]
    pairs += [_extra(rng, colour="blue", shape="square") for _ in range(3)]
    db = lh.connect(str(tmp_path_factory.mktemp("pictures") / "root"))
    t = db.create_table("pictures", {"id": lh.Int, "caption": lh.String, "image": lh.Image})
    t.insert([{"id": i, "caption": s.caption, "image": im} for i, (im, s) in enumerate(pairs)],
             progress=False)
    result = t.add_embedding_index("image", embedding=clip, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (len(pairs), 0)
    return Pictures(t, [s for _, s in pairs], [im for im, _ in pairs])


def _rank_of_scene(frame: pl.DataFrame, scenes: list[shapes.Scene], scene: shapes.Scene) -> int:
    """Position of the first row showing ``scene`` (duplicates of a scene count alike)."""
    ids = frame["id"].to_list()
    return next((r for r, i in enumerate(ids) if scenes[i] == scene), len(ids))


# --- CLIP: text -> image, image -> image -------------------------------------------------------
@pytest.mark.slow
def test_a_full_caption_finds_its_picture(pictures, clip) -> None:
    """Measured on these 30 held-out pictures: 24 captions put their picture first, all 30 in
    the top 3 (the misses confuse sizes of the same shape and colour)."""
    t, scenes = pictures.table, pictures.scenes
    ranks = []
    for i in range(30):
        found = _ranked(t, scenes[i].caption, 3)
        ranks.append(_rank_of_scene(found, scenes, scenes[i]))
    assert sum(r == 0 for r in ranks) >= 21, ranks
    assert sum(r < 3 for r in ranks) >= 28, ranks

    # the score is the cosine similarity of the caption's and the picture's CLIP vectors
    caption = scenes[4].caption
    found = _ranked(t, caption, 5)
    text = clip.embed_texts([caption])[0]
    images = clip.embed_images([pictures.images[i] for i in found["id"]])
    expected = images @ text / np.linalg.norm(images, axis=1) / np.linalg.norm(text)
    np.testing.assert_allclose(found["score"].to_numpy(), expected, atol=1e-4)
    assert found["score"].is_sorted(descending=True)


@pytest.mark.slow
@pytest.mark.parametrize("query, matches", [
    ("a red circle", lambda s: (s.colour, s.shape) == ("red", "circle")),
    ("something yellow", lambda s: s.colour == "yellow"),
    ("a blue square", lambda s: (s.colour, s.shape) == ("blue", "square")),
])
def test_a_partial_query_puts_matching_pictures_on_top(pictures, query, matches) -> None:
    scenes = pictures.scenes
    assert sum(map(matches, scenes)) >= 4  # the table holds more matches than the top 3
    found = _ranked(pictures.table, query, 3)
    assert [matches(scenes[i]) for i in found["id"]] == [True] * 3, \
        [scenes[i].caption for i in found["id"]]


@pytest.mark.slow
def test_a_picture_finds_its_near_twin_as_pil_path_or_uri(pictures, tmp_path) -> None:
    t, images = pictures.table, pictures.images
    for i in (0, 7, 13):
        assert _ranked(t, _near_twin(images[i]), 1)["id"].to_list() == [i]
    for i in (3, 17, 26):
        path = tmp_path / f"twin{i}.png"
        _near_twin(images[i]).save(path)
        assert _ranked(t, path, 1)["id"].to_list() == [i]
        assert _ranked(t, path.as_uri(), 1)["id"].to_list() == [i]
        assert _ranked(t, path.read_bytes(), 1)["id"].to_list() == [i]
    with pytest.raises(lh.MediaError, match="missing.png"):
        _ranked(t, tmp_path / "missing.png", 1)


@pytest.mark.slow
def test_the_same_scene_redrawn_ranks_first(pictures) -> None:
    """Each held-out scene drawn again with other jitter: measured 25 of 30 first, all in the
    top 3."""
    scenes = pictures.scenes
    rng = random.Random(HELD_OUT + 2)
    ranks = [_rank_of_scene(_ranked(pictures.table, shapes.draw(scenes[i], rng), 3), scenes,
                            scenes[i]) for i in range(30)]
    assert sum(r == 0 for r in ranks) >= 23, ranks
    assert sum(r < 3 for r in ranks) >= 28, ranks


# --- sentence-transformers ------------------------------------------------------------------------
@pytest.fixture
def docs(minilm, tmp_path) -> lh.Table:
    db = lh.connect(str(tmp_path / "docs_root"))
    t = db.create_table("docs", {"title": lh.String, "text": lh.String})
    t.insert([{"title": k, "text": v} for k, v in DOCS.items()], progress=False)
    t.add_embedding_index("text", embedding=minilm, progress=False)
    return t


@pytest.mark.slow
def test_a_paraphrase_finds_its_sentence(docs, minilm) -> None:
    for topic, question in PARAPHRASES.items():
        sim = docs.text.similarity(question)
        found = docs.order_by(sim, asc=False).limit(2).select(docs.title, score=sim).collect()
        assert found["title"][0] == topic, (question, found)
        expected = minilm.embed_texts([DOCS[topic]])[0] @ minilm.embed_texts([question])[0]
        assert found["score"][0] == pytest.approx(float(expected), abs=1e-4)


# --- prefilter ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_prefilter_returns_k_rows_even_far_from_the_query(clip, tmp_path) -> None:
    """where() narrows the rows first, then the k closest of those come back: the rows that
    match are chosen among the least similar to the query, so searching first and filtering
    after would return none of them."""
    query = "a small red circle on the left"
    pairs = list(shapes.samples(40, HELD_OUT + 3))
    scores = clip.embed_images([im for im, _ in pairs]) @ clip.embed_texts([query])[0]
    order = np.argsort(scores)  # least similar first
    far = [int(i) for i in order[:8]]
    big = set(far[:4])  # these pictures are stored at 96x96
    db = lh.connect(str(tmp_path / "root"))
    t = db.create_table("pics", {"id": lh.Int, "image": lh.Image})
    t.insert([{"id": i, "image": im.resize((96, 96)) if i in big else im}
              for i, (im, _) in enumerate(pairs)], progress=False)
    t.add_embedding_index("image", embedding=clip, progress=False)
    assert _ranked(t, query, 8)["id"].is_in(far).sum() == 0  # none of them near the query

    def check(where, wanted: set[int], k: int) -> None:
        found = _ranked(t, query, k, where=where)
        assert found.height == min(k, len(wanted)), found
        assert set(found["id"]) <= wanted
        assert found["score"].is_sorted(descending=True)
        # the k best of the matching rows, in order
        best = sorted(wanted, key=lambda i: -scores[i])
        assert found["id"].to_list() == best[:k]

    check(t.id.isin(far), set(far), 5)                               # Lance SQL
    check(t.id.isin(far[:3]), set(far[:3]), 5)                       # fewer matches than k
    evens = {i for i in far if i % 2 == 0}
    check(U.is_even(t.id) & t.id.isin(far), evens, len(evens))      # a Python UDF
    check(t.image.width == 96, big, 4)                               # a media property
    check(t.image.width == 96, big, 3)


# --- upkeep ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_insert_update_and_delete_keep_results_current(clip, tmp_path) -> None:
    target = shapes.Scene("circle", "red", "small", "left", "white")
    rng = random.Random(HELD_OUT + 4)
    others = [s for s in shapes.scenes(60, HELD_OUT + 4)
              if (s.colour, s.shape) != ("red", "circle")][:20]
    db = lh.connect(str(tmp_path / "root"))
    t = db.create_table("pics", {"id": lh.Int, "image": lh.Image})
    t.insert([{"id": i, "image": shapes.draw(s, rng)} for i, s in enumerate(others)],
             progress=False)
    t.add_embedding_index("image", embedding=clip, progress=False)
    query = target.caption
    assert 100 not in _ranked(t, query, 5)["id"]

    # a new row that matches best comes first, from the same commit as the insert
    before = t.version
    result = t.insert([{"id": 100, "image": shapes.draw(target, rng)}], progress=False)
    assert result.version == before + 1 == t.version
    assert _ranked(t, query, 1)["id"].to_list() == [100]

    # an updated picture is embedded again: row 5 becomes a red circle too
    vectors = _vectors(t)
    new_picture = shapes.draw(dataclasses.replace(target, position="right"), rng)
    result = t.update({"image": new_picture}, where=t.id == 5, progress=False)
    assert result.rows_written == 1
    assert t.history()["rows_changed"][0] == 1  # the newest version
    after = _vectors(t)
    np.testing.assert_allclose(after[5], clip.embed_images([new_picture])[0], atol=1e-5)
    assert not np.allclose(after[5], vectors[5], atol=1e-3)
    assert all(np.array_equal(after[i], vectors[i]) for i in vectors if i != 5)
    assert set(_ranked(t, "a small red circle", 2)["id"]) == {100, 5}

    # a deleted row is never found again, not even after later writes
    t.delete(t.id == 100)
    for _ in range(2):
        found = _ranked(t, query, 50)
        assert 100 not in found["id"] and found.height == 20
        assert found["id"][0] == 5
        t.insert([{"id": 200, "image": shapes.draw(others[0], rng)}], progress=False)
        t.delete(t.id == 200)
    exact = t.select(t.id, s=t.image.similarity(query)).collect()
    assert sorted(exact["id"]) == list(range(20)) and exact["s"].null_count() == 0


@pytest.mark.slow
def test_update_embeds_only_the_rows_it_changes(clip, tmp_path) -> None:
    """Pictures stored by reference are read from their files when embedded. Once indexed,
    the files of rows 1 and 2 are redrawn in place: an update of row 1 embeds row 1 from its
    new file, and row 2, not updated, keeps the vector of its old picture."""
    scenes = shapes.scenes(6, HELD_OUT + 5)
    paths = []
    for i, s in enumerate(scenes):
        paths.append(tmp_path / f"p{i}.png")
        shapes.draw(s).save(paths[-1])
    db = lh.connect(str(tmp_path / "root"))
    t = db.create_table("pics", {"id": lh.Int, "image": lh.Image(store="reference")})
    t.insert([{"id": i, "image": str(p)} for i, p in enumerate(paths)], progress=False)
    t.add_embedding_index("image", embedding=clip, progress=False)
    before = _vectors(t)
    redrawn = {i: shapes.draw(scenes[i].with_shape("star" if scenes[i].shape != "star"
                                                   else "circle")) for i in (1, 2)}
    for i, image in redrawn.items():
        image.save(paths[i])
    result = t.update({"image": str(paths[1])}, where=t.id == 1, progress=False)
    assert result.rows_written == 1
    after = _vectors(t)
    np.testing.assert_allclose(after[1], clip.embed_images([redrawn[1]])[0], atol=1e-5)
    assert not np.allclose(after[1], before[1], atol=1e-3)
    for i in (0, 2, 3, 4, 5):
        assert np.array_equal(after[i], before[i]), i


@pytest.mark.slow
def test_a_fresh_process_keeps_the_index_current(docs, run_python, tmp_path) -> None:
    proc = run_python("""
        import json, sys
        import lakehouse as lh
        t = lh.connect(sys.argv[1]).get_table("docs")
        result = t.insert([{"title": "whales", "text": "Blue whales are the largest animals "
                            "that have ever lived, and they eat tiny krill."}], progress=False)
        sim = t.text.similarity("the biggest creature in the ocean")
        found = t.order_by(sim, asc=False).limit(1).select(t.title).collect()
        print(json.dumps({"errors": result.rows_with_errors, "first": found["title"][0]}))
    """, args=[str(tmp_path / "docs_root")])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"errors": 0, "first": "whales"}
    sim = docs.text.similarity("which animal is the largest that ever lived?")
    found = docs.order_by(sim, asc=False).limit(1).select(docs.title, score=sim).collect()
    assert found["title"].to_list() == ["whales"]
    assert found["score"][0] > 0.5


# --- the Lance vector index -----------------------------------------------------------------------
RANDOM_ROWS = 11_200


@pytest.fixture(scope="module")
def random_vectors() -> tuple[np.ndarray, np.ndarray]:
    """11,200 random 32-dimensional vectors, and 20 random queries."""
    rng = np.random.default_rng(11)
    return (rng.standard_normal((RANDOM_ROWS, 32)).astype(np.float32),
            rng.standard_normal((20, 32)).astype(np.float32))


def _nearest(t: lh.Table, q: np.ndarray, k: int, **options) -> list[int]:
    sim = t.v.similarity(q, **options)
    return t.order_by(sim, asc=False).limit(k).select(t.id).collect()["id"].to_list()


def _recall(t: lh.Table, vectors: np.ndarray, queries: np.ndarray, **options) -> float:
    """Mean share of the exact top 10 (cosine, numpy) that the search returns."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = []
    for q in queries:
        exact = np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10]
        found.append(len(set(_nearest(t, q, 10, **options)) & set(exact.tolist())) / 10)
    return float(np.mean(found))


def _vector_table(tmp_path: Path, vectors: np.ndarray, rows: int) -> lh.Table:
    db = lh.connect(str(tmp_path / "root"))
    t = db.create_table("vec", {"id": lh.Int, "v": lh.Array[(32,), "float32"]})
    t.insert(pl.DataFrame({"id": np.arange(rows), "v": vectors[:rows]}), progress=False)
    return t


def test_the_vector_index_is_built_then_extended_not_rebuilt(tmp_path, random_vectors) -> None:
    vectors, queries = random_vectors
    t = _vector_table(tmp_path, vectors, 10_000)

    def insert(start: int, stop: int) -> None:
        t.insert(pl.DataFrame({"id": np.arange(start, stop), "v": vectors[start:stop]}),
                 progress=False)

    t.add_embedding_index("v", progress=False)
    listing = t.indexes().row(0, named=True)
    assert (listing["vector_index"], listing["unindexed_rows"]) == ("IVF_SQ", 0)
    ds = lance.dataset(t.uri)
    (built,) = ds.describe_indices()
    first_build = {s["uuid"] for s in ds.stats.index_stats(built.name)["indices"]}
    assert ds.stats.index_stats(built.name)["num_indexed_rows"] == 10_000

    # rows added afterwards are found before the index covers them
    insert(10_000, 10_050)
    assert t.indexes()["unindexed_rows"][0] == 50
    for i in (10_000, 10_049):
        assert _nearest(t, vectors[i], 1) == [i]

    # 1,000 unindexed rows (10% of the indexed ones) are not yet too many; 1,200 are
    insert(10_050, 11_000)
    assert t.indexes()["unindexed_rows"][0] == 1_000
    insert(11_000, RANDOM_ROWS)
    assert t.indexes()["unindexed_rows"][0] == 0
    stats = lance.dataset(t.uri).stats.index_stats(built.name)
    assert stats["num_indexed_rows"] == RANDOM_ROWS
    assert first_build <= {s["uuid"] for s in stats["indices"]}  # folded in, not rebuilt
    assert _nearest(t, vectors[11_100], 1) == [11_100]
    # more candidates re-ranked exactly: top-10 recall against numpy
    assert _recall(t, vectors, queries, refine_factor=50) >= 0.9


def test_index_segments_merge_past_the_limit_and_growth_retrains(tmp_path) -> None:
    """Each fold-in adds a segment with the same centroids; at MAX_SEGMENTS they merge into one;
    when the rule asks for twice the partitions, the index is trained again."""
    from lakehouse.vector_index import MAX_SEGMENTS, wanted_partitions

    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((42_000, 32)).astype(np.float32)
    t = _vector_table(tmp_path, vectors, 10_000)
    t.add_embedding_index("v", progress=False)
    name = lance.dataset(t.uri).describe_indices()[0].name

    def stats() -> dict:
        return lance.dataset(t.uri).stats.index_stats(name)

    partitions = stats()["indices"][0]["num_partitions"]
    assert partitions == wanted_partitions(10_000)
    segments, start = [], 10_000
    for stop in (11_500, 13_000, 14_800, 16_800):
        t.insert(pl.DataFrame({"id": np.arange(start, stop), "v": vectors[start:stop]}),
                 progress=False)
        start = stop
        segments.append(stats()["num_indices"])
        assert stats()["num_unindexed_rows"] == 0
        assert stats()["indices"][0]["num_partitions"] == partitions  # not trained again
    assert segments == [2, 3, 4, 1] and MAX_SEGMENTS == 4
    t.insert(pl.DataFrame({"id": np.arange(start, 42_000), "v": vectors[start:]}),
             progress=False)
    assert stats()["num_indices"] == 1
    assert stats()["indices"][0]["num_partitions"] == wanted_partitions(42_000) > 2 * partitions
    assert _nearest(t, vectors[41_999], 1) == [41_999]


@pytest.mark.parametrize("kind", ["IVF_SQ", "IVF_PQ"])
def test_the_vector_index_recalls_the_exact_top_10_with_default_options(
        tmp_path, random_vectors, kind) -> None:
    vectors, queries = random_vectors
    t = _vector_table(tmp_path, vectors, RANDOM_ROWS)
    t.add_embedding_index("v", vector_index=kind, progress=False)
    assert t.indexes()["vector_index"][0] == kind
    assert _recall(t, vectors, queries) >= 0.9


# --- @lh.query ------------------------------------------------------------------------------------
def _docs_in_default_root(minilm) -> Catalog:
    db = lh.connect()  # $LAKEHOUSE_ROOT: where the query function finds its table
    docs = db.create_table(Q.DOCS, {"title": lh.String, "text": lh.String})
    docs.insert([{"title": k, "text": v} for k, v in DOCS.items()], progress=False)
    docs.add_embedding_index("text", embedding=minilm, progress=False)
    return db


def _check_context(qa: lh.Table, questions: dict[str, str], minilm) -> None:
    """Each question's context holds the 2 closest documents, the right topic first, with the
    cosine similarity of the MiniLM vectors as score."""
    rows = {r["question"]: r["context"] for r in qa.select(qa.question, qa.context).collect()
            .to_dicts()}
    assert set(rows) == set(questions.values())
    for topic, question in questions.items():
        context = json.loads(rows[question])
        assert [sorted(c) for c in context] == [["score", "title"]] * 2
        assert context[0]["title"] == topic
        assert context[0]["score"] > context[1]["score"]
        expected = minilm.embed_texts([DOCS[topic]])[0] @ minilm.embed_texts([question])[0]
        assert context[0]["score"] == pytest.approx(float(expected), abs=1e-4)


@pytest.mark.slow
def test_a_query_function_fills_a_computed_column(minilm, run_python) -> None:
    db = _docs_in_default_root(minilm)
    qa = db.create_table("qa", {"question": lh.String})
    qa.add_computed_column(context=Q.top_docs(qa.question), progress=False)
    questions = {"bread": PARAPHRASES["bread"], "chess": PARAPHRASES["chess"]}
    result = qa.insert([{"question": q} for q in questions.values()], progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 0)

    proc = run_python("""
        import sys
        import lakehouse as lh
        qa = lh.connect().get_table("qa")
        print(qa.insert([{"question": sys.argv[1]}], progress=False).rows_with_errors)
    """, args=[PARAPHRASES["volcano"]], env={"PYTHONPATH": TESTS_DIR})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0"]
    questions["volcano"] = PARAPHRASES["volcano"]
    _check_context(qa, questions, minilm)

    # a changed question gets a new context
    qa.update({"question": PARAPHRASES["guitar"]}, where=qa.question == questions.pop("bread"),
              progress=False)
    questions["guitar"] = PARAPHRASES["guitar"]
    _check_context(qa, questions, minilm)


@pytest.mark.slow
def test_a_query_function_column_is_computed_for_existing_rows(minilm) -> None:
    db = _docs_in_default_root(minilm)
    qa = db.create_table("qa", {"question": lh.String})
    questions = {"bread": PARAPHRASES["bread"]}
    qa.insert([{"question": PARAPHRASES["bread"]}], progress=False)
    version = qa.version
    try:
        qa.add_computed_column(context=Q.top_docs(qa.question), progress=False)
    except BaseException as exc:  # a Rust panic is no Exception: report it as a failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        assert qa.version == version
        pytest.fail(f"{type(exc).__name__}: {exc}")
    _check_context(qa, questions, minilm)


# --- several similarities in one query ------------------------------------------------------------
@pytest.mark.slow
def test_a_query_may_order_by_one_similarity_and_select_others(docs, minilm) -> None:
    """The order and the scores may come from separate similarity expressions on one index:
    the same query written twice, or another query whose scores are computed exactly."""
    coffee, chess = PARAPHRASES["coffee"], PARAPHRASES["chess"]
    found = (docs.order_by(docs.text.similarity(coffee), asc=False).limit(3)
             .select(docs.title, score=docs.text.similarity(coffee)).collect())
    assert found["title"][0] == "coffee"
    assert found["score"].is_sorted(descending=True)

    by_coffee = docs.text.similarity(coffee)
    found = (docs.order_by(by_coffee, asc=False).limit(3)
             .select(docs.title, chess=docs.text.similarity(chess), coffee=by_coffee).collect())
    vectors = dict(zip(DOCS, minilm.embed_texts(list(DOCS.values())), strict=True))
    expected = {q: {k: float(v @ minilm.embed_texts([q])[0]) for k, v in vectors.items()}
                for q in (coffee, chess)}
    assert found["title"].to_list() == sorted(DOCS, key=lambda k: -expected[coffee][k])[:3]
    for column, q in (("coffee", coffee), ("chess", chess)):
        assert found[column].to_list() == pytest.approx(
            [expected[q][k] for k in found["title"]], abs=1e-4)


def test_text_query_is_never_read_as_a_location(db, clip, tmp_path):
    """similarity(text=...) embeds a string that looks like a path or URL as text: it reads no
    file, and scores like the same string given as text."""
    t = db.create_table("texts", {"s": lh.String})
    t.insert([{"s": w} for w in ("red circle", "blue square", "file:///etc/passwd")],
             progress=False)
    t.add_embedding_index("s", embedding=clip, progress=False)
    secret = tmp_path / "secret.png"  # exists, but is not an image: reading it would fail
    secret.write_text("not a picture")
    sim = t.s.similarity(text=secret.as_uri())
    df = t.order_by(sim, asc=False).select(t.s, score=sim).collect()
    assert df.height == 3
    expected = clip.embed_texts([secret.as_uri()])[0]
    assert df["score"].max() <= 1.0 + 1e-6
    assert expected.shape == (128,)
    with pytest.raises(lh.InvalidOptionError, match="not both"):
        t.s.similarity("x", text="y")
    with pytest.raises(lh.MediaError):  # the same string as a query is read as an image
        t.order_by(t.s.similarity(secret.as_uri()), asc=False).collect()
