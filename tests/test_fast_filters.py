"""Fast filters without a hand-made index: maintenance gives sorted or clustered Int, Date and
Timestamp columns a zone map once a table is large, keeps it current through compaction, marks
it automatic in t.indexes(), and gives way to the user's own index. Local and S3.
"""

from __future__ import annotations

import datetime

import lance
import polars as pl
import pytest

import lakehouse as lh
from lakehouse.maintenance.filters import is_clustered
from lakehouse.queries import Filter

ROWS = 3_000
POLICY = lh.MaintenancePolicy(filter_index_rows=2_000, max_small_fragments=4)
START = datetime.datetime(2026, 1, 1)


def _connect(db: lh.Catalog, policy: lh.MaintenancePolicy | bool = POLICY) -> lh.Catalog:
    return lh.connect(db.root, storage_options=db.location.storage_options, maintenance=policy)


@pytest.fixture
def events(db) -> lh.Table:
    """``id`` sorted, ``at`` a timestamp a minute apart, ``r`` in no order, ``score`` a float."""
    t = _connect(db).create_table("events", {"id": lh.Int, "at": lh.Timestamp, "r": lh.Int,
                                             "score": lh.Float})
    t.insert(pl.DataFrame({
        "id": range(ROWS),
        "at": [START + datetime.timedelta(minutes=i) for i in range(ROWS)],
        "r": pl.Series(range(ROWS)).shuffle(seed=3),
        "score": [i / 7 for i in range(ROWS)],
    }), progress=False)
    return t


def _plan(t: lh.Table, condition: lh.Expr) -> str:
    state = t.table_state()
    sql = Filter.split(condition, state.definition).sql
    return state.dataset.scanner(filter=sql).explain_plan()


def _automatic(t: lh.Table) -> dict[str, bool]:
    listing = t.indexes()
    return dict(zip(listing["name"].to_list(), listing["automatic"].to_list(), strict=True))


def test_clustered_columns_are_told_from_random_ones():
    assert is_clustered(pl.Series(range(50_000)))
    assert is_clustered(pl.Series(range(50_000, 0, -1)))  # descending is sorted too
    noisy = pl.Series([i + (i * 7919) % 500 for i in range(50_000)])  # near order
    assert is_clustered(noisy)
    assert not is_clustered(pl.Series(range(50_000)).shuffle(seed=1))
    assert not is_clustered(pl.Series([5] * 50_000))  # one value: no zone to skip
    assert not is_clustered(pl.Series([None] * 10, dtype=pl.Int64))
    assert is_clustered(pl.Series([None, *range(20_000), None]))


def test_sorted_columns_of_a_large_table_get_zone_maps_the_filter_uses(events):
    assert _automatic(events) == {"id_zonemap": True, "at_zonemap": True}  # not r, not score
    assert "ZoneMap" in _plan(events, (events.id >= 1_000) & (events.id < 1_010))
    assert "ZoneMap" in _plan(events, events.at < START + datetime.timedelta(minutes=5))
    got = events.where((events.id >= 1_000) & (events.id < 1_010)).collect()
    assert got["id"].to_list() == list(range(1_000, 1_010))
    early = events.where(events.at < START + datetime.timedelta(minutes=5)).collect()
    assert early["id"].to_list() == list(range(5))
    # the decisions are recorded: a later write reads only the manifest
    config = events.table_state().dataset.config()
    assert config["lakehouse.auto_index.r"] == "off" and config["lakehouse.auto_index.id"] \
        == "zonemap"


def test_a_small_table_or_maintenance_off_gets_none(db):
    small = _connect(db, lh.MaintenancePolicy()).create_table("small", {"id": lh.Int})
    small.insert([{"id": i} for i in range(500)], progress=False)
    assert small.indexes().height == 0
    off = _connect(db, False).create_table("off", {"id": lh.Int})
    off.insert([{"id": i} for i in range(ROWS)], progress=False)
    assert off.indexes().height == 0


def test_the_users_index_replaces_the_automatic_one(events):
    events.add_index("id")  # a btree: Lance would answer from the zone map if both stayed
    assert _automatic(events) == {"id_btree": False, "at_zonemap": True}
    assert "BTree" in _plan(events, events.id == 77)
    events.add_index("at", kind="zonemap")  # the same kind: now the user's
    assert _automatic(events) == {"id_btree": False, "at_zonemap": False}
    events.drop_index("id_btree")
    events.insert([{"id": ROWS + i} for i in range(10)], progress=False)
    assert "id_zonemap" not in _automatic(events)  # the column is the user's business now


def test_a_dropped_automatic_index_is_not_built_again(events):
    events.drop_index("id_zonemap")
    for i in range(6):
        events.insert([{"id": ROWS + i}], progress=False)
    assert _automatic(events) == {"at_zonemap": True}


def test_zone_maps_stay_current_through_compaction(db, events):
    # indexes are extended after a compaction once small_fragment_rows rows are uncovered
    policy = lh.MaintenancePolicy(filter_index_rows=2_000, max_small_fragments=4,
                                  small_fragment_rows=4)
    events = _connect(db, policy).get_table("events")
    for i in range(8):  # single rows: compaction runs, then the zone maps are extended
        events.insert([{"id": ROWS + i, "at": START}], progress=False)
    ds = events.table_state().dataset
    assert "compact" in events.history(limit=None)["operation"].to_list()
    stats = ds.stats.index_stats("id_zonemap")
    assert stats["num_indexed_fragments"] >= 2  # the first fragment and the compacted one
    assert stats["num_unindexed_fragments"] < 4
    got = events.where(events.id >= ROWS - 2).collect()["id"].to_list()
    assert sorted(got) == list(range(ROWS - 2, ROWS + 8))
    events.optimize(progress=False)
    ds = lance.dataset(events.table_uri, storage_options=events.table_state().location
                       .storage_options or None)
    assert ds.stats.index_stats("id_zonemap")["num_unindexed_fragments"] == 0
    at_start = events.where(events.at == START).collect()["id"].to_list()
    assert sorted(at_start) == [0, *range(ROWS, ROWS + 8)]
