"""Recall calibration of embedding indexes (lakehouse/calibration.py): the search parameters an
index measures on its own vectors reach the recall asked on queries it has not seen; per-query
``recall=``, explicit knobs, recalibration when upkeep retrains, and stored calibrations that
are not to be trusted."""

from __future__ import annotations

import json
import time

import hypothesis.strategies as st
import lance
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import lakehouse as lh
from lakehouse import calibration
from lakehouse.calibration import Calibration
from lakehouse.metadata import FIELD_KEY
from lakehouse.search import similarity_searches

ROWS, DIM = 20_000, 64  # 78 partitions: more than ALL_PARTITIONS_UP_TO, so calibrated
HELD_OUT = 400


# --- data: the non-uniform distributions of benchmarks/search.py, small ------------------------
def _clusters(n: int, seed: int) -> np.ndarray:
    """Clean clusters: 1,000 standard normal centres, noise half a centre's norm."""
    centres = np.random.default_rng(0).standard_normal((1_000, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * 0.5
    return centres[rng.integers(0, len(centres), n)] + noise


def _mixture(n: int, seed: int) -> np.ndarray:
    """Heavy noise: unit vectors around 400 unit centres, noise about as large as a centre."""
    centres = np.random.default_rng(0).standard_normal((400, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, len(centres), n)] \
        + rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _uniform(n: int, seed: int) -> np.ndarray:
    """No structure: unit vectors drawn uniformly on the sphere."""
    points = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


DISTRIBUTIONS = {"clusters": _clusters, "mixture": _mixture}


def _table(db, vectors: np.ndarray, **index_options) -> lh.Table:
    t = db.create_table("vecs", {"id": lh.Int, "v": lh.Array[(DIM,), "float32"]})
    t.insert(pl.DataFrame({"id": np.arange(len(vectors)), "v": vectors}), progress=False)
    t.add_embedding_index("v", progress=False, **index_options)
    return t


def _top10(t: lh.Table, q: np.ndarray, **knobs) -> list[int]:
    sim = t.v.similarity(q, **knobs)
    return t.order_by(sim, asc=False).limit(10).select(t.id).collect()["id"].to_list()


def _recalls(t: lh.Table, vectors: np.ndarray, queries: np.ndarray, **knobs) -> np.ndarray:
    """The recall@10 of each query's search."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.array([len(set(np.argsort(-(unit @ q))[:10].tolist()) & set(_top10(t, q, **knobs)))
                     / 10 for q in queries])


def _recall(t: lh.Table, vectors: np.ndarray, queries: np.ndarray, **knobs) -> float:
    return float(_recalls(t, vectors, queries, **knobs).mean())


def _options(t: lh.Table, q: np.ndarray, **knobs) -> dict:
    """The Lance nearest-neighbour options a top-10 search of ``q`` uses."""
    state = t.table_state()
    [search] = similarity_searches([t.v.similarity(q, **knobs)], t, state.dataset,
                                   state.definition)
    return search.nearest(state.dataset, 10)


def _stored(t: lh.Table) -> dict | None:
    meta = json.loads(lance.dataset(t.uri).schema.field("v").metadata[FIELD_KEY])
    return meta["index"].get("calibration")


@pytest.fixture(scope="module", params=list(DISTRIBUTIONS))
def calibrated(request, tmp_path_factory):
    make = DISTRIBUTIONS[request.param]
    vectors = make(ROWS, seed=1)
    db = lh.connect(str(tmp_path_factory.mktemp(request.param)))
    return _table(db, vectors), vectors, make(HELD_OUT, seed=2)


# --- the target on queries the calibration has not seen ----------------------------------------
def test_calibration_reaches_its_target_on_held_out_queries(calibrated) -> None:
    t, vectors, held_out = calibrated
    listing = t.indexes().row(0, named=True)
    assert listing["recall_target"] == 0.95
    assert listing["recall"] >= 0.95
    stored = Calibration.from_json(_stored(t), "v")
    assert (stored.kind, stored.partitions, stored.queries) == ("IVF_SQ", 78, calibration.QUERIES)
    assert (listing["nprobes"], listing["refine_factor"]) == (
        stored.pick(0.95).nprobes, stored.pick(0.95).refine_factor)
    assert listing["nprobes"] < 78  # it does not probe everything to get there
    # the held-out recall is itself an estimate (standard error about 0.01 with 400 queries):
    # it must not be below the target by more than two of its standard errors
    recalls = _recalls(t, vectors, held_out)
    error = recalls.std(ddof=1) / np.sqrt(len(recalls))
    assert recalls.mean() + 2 * error >= 0.95, (recalls.mean(), error)


def test_recall_per_query_picks_from_the_curve(calibrated) -> None:
    t, vectors, held_out = calibrated
    cal = Calibration.from_json(_stored(t), "v")

    def setting(**recall: float) -> tuple[int, int]:
        options = _options(t, held_out[0], **recall)
        if options.get("use_index") is False:  # the exact search (calibration.EXACT)
            return calibration.EXACT.nprobes, calibration.EXACT.refine_factor
        return options["nprobes"], options.get("refine_factor", 0)

    low, default, high = setting(recall=0.8), setting(), setting(recall=0.99)
    assert low == (cal.pick(0.8).nprobes, cal.pick(0.8).refine_factor)
    assert high == (cal.pick(0.99).nprobes, cal.pick(0.99).refine_factor)
    # more work for more recall: more probes, or re-ranking (on easy clusters one setting can
    # reach both 0.95 and 0.99 with its margin: never less work, though)
    assert cal.cost(cal.pick(0.8)) <= cal.cost(cal.pick(0.95)) <= cal.cost(cal.pick(0.99))
    assert cal.cost(cal.pick(0.8)) < cal.cost(cal.pick(0.99))
    assert low != high and default == (cal.pick(0.95).nprobes, cal.pick(0.95).refine_factor)
    queries = held_out[:100]
    at_low, at_high = _recall(t, vectors, queries, recall=0.8), \
        _recall(t, vectors, queries, recall=0.99)
    assert at_high >= at_low
    assert at_high >= 0.98


def test_every_recall_asked_is_searched_with_a_setting_measured_on_every_query(
        calibrated) -> None:
    t, vectors, held_out = calibrated
    cal = Calibration.from_json(_stored(t), "v")
    assert cal.format == calibration.FORMAT
    scouted = [s for s in cal.curve if s.queries < cal.queries]
    assert scouted and all(s.queries == calibration.SCOUT_QUERIES for s in scouted)
    for recall in (0.5, 0.8, 0.9, 0.93, 0.95, 0.97, 0.99, 0.995):
        pick = cal.pick(recall)
        assert pick.exact or pick.queries == cal.queries == calibration.QUERIES, (recall, pick)
    # the per-query targets measured in full are met on new queries (two standard errors)
    for recall in calibration.ALSO_MEASURED:
        recalls = _recalls(t, vectors, held_out[:200], recall=recall)
        error = recalls.std(ddof=1) / np.sqrt(len(recalls))
        assert recalls.mean() + 2 * error >= recall, (recall, recalls.mean(), error)


def test_explicit_parameters_win_over_the_calibration(calibrated) -> None:
    t, _, held_out = calibrated
    options = _options(t, held_out[0], nprobes=3, refine_factor=7, recall=0.99)
    assert (options["nprobes"], options["refine_factor"]) == (3, 7)
    options = _options(t, held_out[0], nprobes=5)
    assert options["nprobes"] == 5
    assert options.get("refine_factor", 0) == t.indexes()["refine_factor"][0]


# --- when it is measured --------------------------------------------------------------------------
@pytest.mark.slow
def test_calibration_is_redone_when_upkeep_retrains_not_when_it_folds_rows_in(tmp_path) -> None:
    vectors = _mixture(40_000, seed=3)
    db = lh.connect(str(tmp_path))
    t = _table(db, vectors[:ROWS])
    first = _stored(t)
    assert first["partitions"] == 78

    def insert(start: int, stop: int) -> None:
        t.insert(pl.DataFrame({"id": np.arange(start, stop), "v": vectors[start:stop]}),
                 progress=False)

    insert(ROWS, 22_500)  # more than 10% unindexed: folded in with the same centroids
    assert t.indexes()["unindexed_rows"][0] == 0
    assert _stored(t) == first
    insert(22_500, 40_000)  # twice the partitions wanted: trained again, measured again
    again = Calibration.from_json(_stored(t), "v")
    assert again.partitions == 156 and again.rows == 40_000
    assert t.indexes()["recall"][0] >= 0.95


def test_small_tables_search_exactly_and_report_recall_1(db) -> None:
    vectors = _mixture(12_000, seed=4)
    t = db.create_table("vecs", {"id": lh.Int, "v": lh.Array[(DIM,), "float32"]})
    t.insert(pl.DataFrame({"id": np.arange(5_000), "v": vectors[:5_000]}), progress=False)
    t.add_embedding_index("v", progress=False)
    row = t.indexes().row(0, named=True)  # no vector index: every vector compared
    assert (row["vector_index"], row["nprobes"], row["recall"]) == (None, None, 1.0)
    t.insert(pl.DataFrame({"id": np.arange(5_000, 12_000), "v": vectors[5_000:]}),
             progress=False)
    row = t.indexes().row(0, named=True)  # 46 partitions, all probed: nothing measured
    assert (row["vector_index"], row["nprobes"], row["recall"]) == ("IVF_SQ", 46, 1.0)
    ds = lance.dataset(t.uri, storage_options=db.location.storage_options or None)
    meta = json.loads(ds.schema.field("v").metadata[FIELD_KEY])
    assert "calibration" not in meta["index"]


@pytest.mark.slow
def test_the_index_recall_target_is_kept_and_searched_with(tmp_path) -> None:
    vectors = _mixture(ROWS, seed=5)
    t = _table(lh.connect(str(tmp_path)), vectors, recall=0.99)
    row = t.indexes().row(0, named=True)
    assert row["recall_target"] == 0.99 and row["recall"] >= 0.99
    stored = Calibration.from_json(_stored(t), "v")
    assert row["nprobes"] == stored.pick(0.99).nprobes
    assert stored.cost(stored.pick(0.99)) > stored.cost(stored.pick(0.95))
    assert _options(t, vectors[0])["nprobes"] == row["nprobes"]
    assert _options(t, vectors[0], recall=0.95)["nprobes"] == stored.pick(0.95).nprobes


@pytest.mark.parametrize("recall", [0, 1.5, -0.1, "high", True])
def test_a_recall_outside_0_1_is_refused(db, recall) -> None:
    t = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    t.insert([{"v": [1.0, 0.0]}], progress=False)
    version = t.version
    with pytest.raises(lh.InvalidOptionError, match="recall must be a number above 0"):
        t.add_embedding_index("v", recall=recall, progress=False)
    assert t.version == version and t.indexes().height == 0
    t.add_embedding_index("v", progress=False)
    with pytest.raises(lh.InvalidOptionError, match="recall must be a number above 0"):
        t.v.similarity([1.0, 0.0], recall=recall)


# --- stored calibrations are data from storage ---------------------------------------------------
def _tamper(t: lh.Table, calibration_json) -> None:
    """Replace the stored calibration as a hostile writer could, outside lakehouse."""
    ds = lance.dataset(t.uri)
    meta = json.loads(ds.schema.field("v").metadata[FIELD_KEY])
    meta["index"]["calibration"] = calibration_json
    ds.update_field_metadata({"v": {FIELD_KEY.decode(): json.dumps(meta)}}, replace=True)


@pytest.fixture(scope="module")
def tampered_table(tmp_path_factory):
    vectors = _mixture(ROWS, seed=6)
    t = _table(lh.connect(str(tmp_path_factory.mktemp("tampered"))), vectors)
    return t, vectors


@pytest.mark.parametrize("bad", [
    "not an object", {"format": 1}, {"format": 1, "kind": "IVF_SQ", "partitions": 78,
                                     "rows": 20_000, "k": 10, "queries": 200, "seconds": 1.0,
                                     "curve": [[4, 2, 1.7, 0.0]]},
    {"format": 1, "kind": "IVF_SQ", "partitions": 78, "rows": 20_000, "k": 10, "queries": 200,
     "seconds": 1.0, "curve": []},
    {"format": 1, "kind": "IVF_SQ", "partitions": 78, "rows": 20_000, "k": 10, "queries": 200,
     "seconds": 1.0, "curve": [[-4, 2, 0.9, 0.01]]},
    {"format": 2, "kind": "IVF_SQ", "partitions": 78, "rows": 20_000, "k": 10, "queries": 200,
     "seconds": 1.0, "curve": [[4, 2, 0.9, 0.01]]},  # no query count
    {"format": 2, "kind": "IVF_SQ", "partitions": 78, "rows": 20_000, "k": 10, "queries": 200,
     "seconds": 1.0, "curve": [[4, 2, 0.9, 0.01, 0]]},
])
def test_a_malformed_stored_calibration_is_a_typed_error(tampered_table, bad) -> None:
    t, vectors = tampered_table
    _tamper(t, bad)
    with pytest.raises(lh.UnsafeDefinitionError, match="malformed stored calibration.*"
                                                       "if_exists='replace'"):
        _top10(t, vectors[0])
    with pytest.raises(lh.UnsafeDefinitionError, match="embedding index 'v'"):
        t.indexes()


@pytest.mark.slow
@pytest.mark.parametrize("bad", [None, {"format": 1, "curve": "x"}])
def test_the_next_write_measures_a_missing_or_malformed_calibration_again(tampered_table,
                                                                           bad) -> None:
    t, vectors = tampered_table
    _tamper(t, bad)
    t.insert(pl.DataFrame({"id": [ROWS], "v": vectors[:1]}), progress=False)
    assert Calibration.from_json(_stored(t), "v").partitions == 78
    assert t.indexes()["recall"][0] >= 0.95


def test_a_calibration_of_a_newer_format_says_upgrade_and_replace_measures_again(
        tampered_table) -> None:
    t, vectors = tampered_table
    _tamper(t, {**_stored(t), "format": 99})
    with pytest.raises(lh.FormatVersionError, match="newer lakehouse format"):
        _top10(t, vectors[0])
    # the fix the malformed message names: the index is trained and measured again
    t.add_embedding_index("v", if_exists="replace", progress=False)
    assert Calibration.from_json(_stored(t), "v").partitions == 78
    assert len(_top10(t, vectors[0])) == 10


def test_a_calibration_of_format_1_is_searched_with_then_measured_again(
        tampered_table) -> None:
    t, vectors = tampered_table
    t.add_embedding_index("v", if_exists="replace", progress=False)
    current = _stored(t)
    # as the previous format stored it: no query count per setting
    old = {**current, "format": 1, "curve": [p[:4] for p in current["curve"]]}
    _tamper(t, old)
    cal = Calibration.from_json(_stored(t), "v")
    assert cal.format == 1 and all(s.queries == cal.queries for s in cal.curve)
    assert len(_top10(t, vectors[0])) == 10  # searched with it meanwhile
    t.insert(pl.DataFrame({"id": [ROWS], "v": vectors[:1]}), progress=False)
    again = Calibration.from_json(_stored(t), "v")
    assert again.format == calibration.FORMAT and again.partitions == 78
    assert any(s.queries < again.queries for s in again.curve)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=6), max_leaves=20)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=JSON | st.fixed_dictionaries(
    {"format": st.sampled_from([1, 2]), "kind": JSON, "partitions": JSON, "rows": JSON, "k": JSON,
     "queries": JSON, "seconds": JSON, "curve": st.lists(JSON, max_size=3)}))
def test_reading_any_stored_json_gives_a_calibration_or_a_typed_error(data) -> None:
    try:
        cal = Calibration.from_json(data, "v")
    except (lh.UnsafeDefinitionError, lh.FormatVersionError):
        return
    assert cal.curve and all(0 <= s.recall <= 1 and s.nprobes >= 1 for s in cal.curve)
    pick = cal.pick(0.95)
    assert pick == calibration.EXACT or (pick in cal.curve and pick.queries >= cal.queries)


def test_the_calibration_cost_is_bounded_and_measured(calibrated) -> None:
    t, _, _ = calibrated
    stored = Calibration.from_json(_stored(t), "v")
    assert 0 < stored.seconds < 60
    assert stored.queries == calibration.QUERIES
    # each rung of the ladder plus the one between, at two refine factors at most
    assert len(stored.curve) <= 2 * (len(calibration.ladder(stored.partitions)) + 1)


def test_only_settings_that_could_be_the_pick_are_searched_with_every_query(
        calibrated) -> None:
    t, _, _ = calibrated
    state = t.table_state()
    ds, index = state.dataset, state.definition.index("v")
    partitions = Calibration.from_json(_stored(t), "v").partitions
    vectors, ids = calibration._sample(ds, "v", calibration.QUERIES, calibration.SEED)
    truth = calibration.exact_neighbours(ds, "v", vectors, ids, "cosine", calibration.K)
    bench = calibration._Bench(ds, index, partitions, ds.count_rows(), 0.95, vectors, ids,
                               truth)
    curve = bench.between(bench.curve(calibration.ladder(partitions), 0))
    full = {key for key, recalls in bench.measured.items()
            if len(recalls) == calibration.QUERIES}
    scouted = set(bench.measured) - full
    pick = Calibration("IVF_SQ", partitions, ds.count_rows(), 10, calibration.QUERIES, 0.0,
                       tuple(curve)).pick(0.95)
    assert (pick.nprobes, 0) in full  # the default search's setting: measured on every query
    assert scouted, "settings far from the target keep their scouts' measure"
    assert all(len(r) == calibration.SCOUT_QUERIES for k, r in bench.measured.items()
               if k in scouted)
    # a setting searched with every query is one whose scouts left it possible to reach the
    # index's target, or reached one of the per-query targets measured in full (margin
    # included)
    margin = calibration.MARGIN
    for key in full:
        scouts = bench.measured[key][:calibration.SCOUT_QUERIES]
        error = scouts.std(ddof=1) / np.sqrt(len(scouts))
        assert scouts.mean() + margin * error >= 0.95 or any(
            scouts.mean() - margin * error >= t for t in calibration.ALSO_MEASURED), key
    # of the settings without re-ranking dearer than the default pick, only those the scouts
    # found at 0.99 (the dearest per-query target measured in full) were searched in full, and
    # the rung that first reached the target when the rung added between reached it too
    dearer = [key for key in full if key[0] > pick.nprobes]
    assert sum(1 for key in dearer
               if bench.measured[key][:calibration.SCOUT_QUERIES].mean() < 0.99) <= 1
    # the truth pass: each query's 10 nearest other rows, as numpy finds them
    rows = ds.to_table(columns=["v"], with_row_id=True)
    row_ids = rows.column("_rowid").to_numpy()
    unit = calibration._matrix(rows.column("v"))
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    for i in (0, 1, 2):
        scores = unit @ (vectors[i] / np.linalg.norm(vectors[i]))
        scores[row_ids == ids[i]] = -np.inf
        assert set(truth[i].tolist()) == set(row_ids[np.argsort(-scores)[:10]].tolist())


# --- the exact search where the vector index cannot beat it --------------------------------------
@pytest.fixture(scope="module")
def uniform(tmp_path_factory):
    vectors = _uniform(ROWS, seed=7)
    t = _table(lh.connect(str(tmp_path_factory.mktemp("uniform"))), vectors)
    return t, vectors, _uniform(HELD_OUT, seed=8)


def _cpu_ms(ds: lance.LanceDataset, options: dict, queries: np.ndarray) -> float:
    """The median CPU time (all threads) of one search per query, in ms."""
    times = []
    for q in queries:
        started = time.process_time()
        ds.to_table(columns=["id"], nearest={**options, "q": q},
                    disable_scoring_autoprojection=True)
        times.append((time.process_time() - started) * 1e3)
    return float(np.median(times))


def test_structureless_vectors_are_searched_no_slower_than_an_exact_scan(uniform) -> None:
    t, vectors, held_out = uniform
    row = t.indexes().row(0, named=True)
    cal = Calibration.from_json(_stored(t), "v")
    # no structure: the target needs most partitions, which still costs less than the exact
    # scan (which reads every full vector), so the vector index is kept
    assert row["search"] == "index" and row["nprobes"] >= cal.partitions // 2
    assert cal.cost(cal.pick(0.95)) < cal.cost(calibration.EXACT)
    recalls = _recalls(t, vectors, held_out[:200])
    assert recalls.mean() + 2 * recalls.std(ddof=1) / np.sqrt(len(recalls)) >= 0.95
    # measured: the default search costs no more CPU than the exact scan (interleaved)
    ds = lance.dataset(t.uri)
    default, exact = _options(t, held_out[0]), _options(t, held_out[0], recall=0.9999)
    assert exact["use_index"] is False and "nprobes" not in exact
    costs = [(_cpu_ms(ds, default, held_out[i:i + 10]), _cpu_ms(ds, exact, held_out[i:i + 10]))
             for i in range(0, 40, 10)]
    assert np.median([d for d, _ in costs]) <= np.median([e for _, e in costs]), costs


def test_a_recall_no_setting_reaches_searches_exactly(uniform) -> None:
    t, vectors, held_out = uniform
    cal = Calibration.from_json(_stored(t), "v")
    assert cal.pick(0.9999) == calibration.EXACT  # 400 queries cannot show 0.9999
    assert _recall(t, vectors, held_out[:20], recall=0.9999) == 1.0
    # a knob set by hand still searches the vector index
    options = _options(t, held_out[0], recall=0.9999, refine_factor=3)
    assert (options["nprobes"], options["refine_factor"]) == (cal.partitions, 3)
    assert "use_index" not in options


@pytest.mark.slow
def test_an_index_whose_target_only_the_exact_scan_reaches_lists_it(tmp_path) -> None:
    vectors = _uniform(ROWS, seed=9)
    t = _table(lh.connect(str(tmp_path)), vectors, recall=0.9999)
    row = t.indexes().row(0, named=True)
    assert (row["vector_index"], row["search"], row["nprobes"], row["refine_factor"],
            row["recall"]) == ("IVF_SQ", "exact", None, None, 1.0)
    assert _options(t, vectors[0])["use_index"] is False
    assert _options(t, vectors[0], recall=0.5)["nprobes"] < 78


def test_the_text_grammar_takes_recall(db) -> None:
    from lakehouse.exprs.parse import parse_selection

    t = db.create_table("vecs", {"id": lh.Int, "v": lh.Array[(2,), "float32"]})
    t.add_embedding_index("v", progress=False)
    [(_, sim)] = parse_selection('score=v.similarity("x", recall=0.99)', t)
    assert sim.recall == 0.99
    with pytest.raises(lh.Error, match="recall=<number such as 0.99>"):
        parse_selection('score=v.similarity("x", recall="high")', t)
