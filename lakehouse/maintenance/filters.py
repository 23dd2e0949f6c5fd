"""Fast filters without a hand-made index: zone maps that maintenance builds and keeps current.

A zone map (Lance's ``ZONEMAP`` scalar index) keeps the smallest and largest value of a column
for each zone of consecutive rows. A filter on the column skips every zone whose range cannot
match, so on a column whose values arrive sorted or clustered (ids, timestamps, dates) a filter
that keeps 1,000 of 1,000,000 rows reads one or two zones instead of the whole column (measured
on 1,000,000 rows: 20 ms without, 1.7 ms with). It is cheap: about 10 ms per million rows to
build and a few kilobytes. On a column in random order every zone matches, so there it would
only add work: maintenance builds one only where the column is clustered (:func:`is_clustered`).

The rules:

- **Which columns.** Int, Date and Timestamp columns (stored or computed) with no index of
  their own, once the table holds ``filter_index_rows`` rows
  (:class:`~lakehouse.maintenance.policy.MaintenancePolicy`).
- **Decided once**, from the column's first million stored values. The decision is recorded
  in the table's Lance configuration (``lakehouse.auto_index.<column>``: ``zonemap``, or
  ``off`` for a column in random order or whose automatic zone map the user dropped), so later
  writes only read the manifest they already have.
- **Kept current.** Rows appended since an index was built, and the fragments compaction
  rewrote, are outside it and scanned (correct, a little slower). After a compaction,
  maintenance extends (Lance's ``optimize_indices``, :func:`keep_current`) every scalar index,
  automatic or the user's, that leaves ``small_fragment_rows`` rows or more uncovered;
  ``t.optimize()`` extends them over every row.
- **The user's index wins.** ``t.add_index(column, ...)`` first drops the automatic zone map of
  that column (:func:`release`): Lance would otherwise answer the filter from the zone map.
  ``t.indexes()`` lists automatic indexes with ``automatic = true``.
"""

from __future__ import annotations

import lance
import polars as pl

from lakehouse.exec import protocol
from lakehouse.exec.protocol import WriteContext
from lakehouse.maintenance.policy import MaintenancePolicy
from lakehouse.metadata import TableDef

CONFIG_PREFIX = "lakehouse.auto_index."
AUTOMATIC = "zonemap"  # the recorded decision for a column given a zone map
DECLINED = "off"  # the recorded decision for a column that gets none
KINDS = ("int", "date", "timestamp")
ZONE_ROWS = 8_192  # rows per zone, as Lance's zone maps
CLUSTERED_SPREAD = 0.1  # a zone's median range over the column's whole range, at most
SAMPLE_ROWS = 1_048_576  # values read to judge a column's order


def undecided(ds: lance.LanceDataset, tdef: TableDef, policy: MaintenancePolicy) -> list[str]:
    """The columns of table version ``ds`` that maintenance has yet to decide about: eligible
    columns without a recorded decision, once the table is big enough. Reads only the manifest.

    >>> undecided(t.table_state().dataset, t.table_definition, MaintenancePolicy())
    []
    """
    if ds.count_rows() < policy.filter_index_rows:
        return []
    config = ds.config()
    return [c.name for c in tdef.columns
            if c.type.kind in KINDS and CONFIG_PREFIX + c.name not in config]


def is_clustered(values: pl.Series) -> bool:
    """Whether a column's values, in storage order, are sorted or clustered enough for a zone
    map to skip most zones: cut into (at least 16) zones of consecutive rows, the median zone
    spans at most a tenth of the column's range (in random order each spans nearly all of it).

    >>> is_clustered(pl.Series(range(100_000)))
    True
    >>> is_clustered(pl.Series(range(100_000)).shuffle(seed=1))
    False
    """
    values = values.to_physical().cast(pl.Float64)
    zone_rows = max(1, min(ZONE_ROWS, values.len() // 16))
    frame = pl.DataFrame({"v": values, "zone": pl.int_range(values.len(), eager=True)
                          // zone_rows}).drop_nulls()
    if frame.height == 0:
        return False
    whole = frame["v"].max() - frame["v"].min()  # type: ignore[operator]
    if not whole:
        return False  # one value: a zone map skips nothing
    zones = frame.group_by("zone").agg(spread=pl.col("v").max() - pl.col("v").min())
    median = float(zones["spread"].median())  # type: ignore[arg-type]
    return median <= CLUSTERED_SPREAD * float(whole)  # type: ignore[arg-type]


def build(ctx: WriteContext, columns: list[str]) -> list[str]:
    """Decide about ``columns`` of the table at ``ctx``: build a zone map on each clustered one
    (named ``<column>_zonemap``, as ``add_index`` would) and record every decision. Returns
    the indexes built."""
    ds = ctx.dataset
    existing = {field for index in ds.describe_indices() for field in index.field_names}
    built, decisions = [], {}
    for column in columns:
        if column in existing:
            decisions[CONFIG_PREFIX + column] = DECLINED  # it has an index of its own
            continue
        sample = ds.to_table(columns=[column], limit=SAMPLE_ROWS)  # the first rows stored
        values = pl.from_arrow(sample.column(column))
        if not isinstance(values, pl.Series) or not is_clustered(values):
            decisions[CONFIG_PREFIX + column] = DECLINED
            continue
        name = f"{column}_zonemap"
        protocol.create_scalar_index(ctx, column, "zonemap", name, replace=False)
        decisions[CONFIG_PREFIX + column] = AUTOMATIC
        built.append(name)
    if decisions:
        protocol.set_config(ctx, decisions, [])
    return built


def keep_current(ctx: WriteContext, min_unindexed: int = 1) -> list[str]:
    """Extend the scalar indexes of the table (automatic or the user's) that leave at least
    ``min_unindexed`` rows uncovered over the fragments they do not cover, in one commit.
    Vector indexes are left to their own upkeep (:mod:`lakehouse.vector_index`). Returns the
    indexes extended."""
    names = stale(ctx.dataset, ctx.definition, min_unindexed)
    if names:
        protocol.optimize_indices(ctx, names)
    return names


def stale(ds: lance.LanceDataset, tdef: TableDef, min_unindexed: int) -> list[str]:
    """The scalar indexes of table version ``ds`` that leave at least ``min_unindexed`` rows
    uncovered (read from the manifest).

    >>> stale(t.table_state().dataset, t.table_definition, 1)
    []
    """
    vector = {index.lance_index for index in tdef.indexes()}
    rows = ds.count_rows()
    return [index.name for index in ds.describe_indices()
            if index.name not in vector and rows - index.num_rows_indexed >= min_unindexed]


def automatic(ds: lance.LanceDataset) -> set[str]:
    """The names of the indexes maintenance made (and still owns) in table version ``ds``.

    >>> automatic(t.table_state().dataset)
    set()
    """
    config = ds.config()
    names = {index.name for index in ds.describe_indices()}
    return {f"{key[len(CONFIG_PREFIX):]}_zonemap" for key, value in config.items()
            if key.startswith(CONFIG_PREFIX) and value == AUTOMATIC} & names


def release(ctx: WriteContext, column: str) -> None:
    """Before the user indexes ``column``: drop its automatic zone map, if it has one, and
    record that maintenance leaves the column alone from now on."""
    if ctx.dataset.config().get(CONFIG_PREFIX + column) != AUTOMATIC:
        return
    name = f"{column}_zonemap"
    if name in automatic(ctx.dataset):
        protocol.drop_index(ctx, name)
    protocol.set_config(ctx, {CONFIG_PREFIX + column: DECLINED}, [])


def mark(listing: pl.DataFrame, ds: lance.LanceDataset) -> pl.DataFrame:
    """``Table.indexes()``'s listing with a column ``automatic``: whether maintenance made the
    index (a zone map it keeps) rather than the user."""
    made = automatic(ds)
    return listing.with_columns(automatic=pl.col("name").is_in(list(made)))
