"""Version history: what each commit of a table did, read from Lance's manifests and transactions.

The history is read newest first, a page at a time, like ``git log``: the default call reads the
manifests and transactions of the newest ``limit`` versions (plus the one before them, whose row
count says how many rows the oldest shown version added) and nothing else, so its cost does not
grow with the table's age. Each version costs about three requests on S3 (the manifest's size,
the manifest, its transaction), made on a few threads at once. Only when a version in the page
is missing (removed by retention, while an older snapshot or branch still holds its own) is the
list of versions read, to skip the gap; ``limit=None`` reads that list and every version.

Most commits are labelled by the write protocol (the ``lakehouse.operation`` transaction
property). Lance makes some commits by itself (adding null columns, changing field metadata,
renaming and dropping columns); those that add or drop an embedding index are named so from
the definition before and after them, the others by their Lance operation.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lance
import polars as pl

from lakehouse.exec.protocol import OPERATION_KEY
from lakehouse.metadata import TableDef

#: How many versions history reads at once (each read waits on storage, not on the CPU).
READ_THREADS = 8

_OPERATIONS = {
    "Overwrite": "create",
    "Append": "insert",
    "Delete": "delete",
    "Update": "update",
    "Merge": "add column",
    "Project": "schema change",
    "Restore": "revert",
    "UpdateConfig": "metadata",
    "CreateIndex": "index",
    "Rewrite": "compact",
    "Clone": "branch",  # the first version of a branch: the version it was made from
}
#: Lance operations that may change a table's definition when Lance commits them by itself.
_SCHEMA_OPERATIONS = {"Merge", "Project", "UpdateConfig"}

_SCHEMA = {"version": pl.Int64, "time": pl.Datetime("us", "UTC"), "operation": pl.String,
           "rows_added": pl.Int64, "rows_changed": pl.Int64, "rows_removed": pl.Int64,
           "total_rows": pl.Int64, "snapshots": pl.List(pl.String)}


@dataclass(frozen=True)
class _Version:
    """What history needs of one version: its manifest's summary, schema and transaction."""

    number: int
    time: dt.datetime
    total_rows: int
    data_files: int
    schema: Any  # pa.Schema
    transaction: lance.Transaction | None


def history(ds: lance.LanceDataset, limit: int | None = 20) -> pl.DataFrame:
    """One row per version, newest first, from the version ``ds`` reads back: version, time,
    operation, row counts, and the names of the snapshots (Lance tags) that point at the
    version, sorted (an empty list if none). ``limit`` versions at most; ``None`` for all.

    >>> _ = t.update({"rating": 8.4}, where=t.title == "Up", progress=False)
    >>> _ = t.at(2).snapshot("rated")
    >>> history(t.table_state().dataset).select("version", "operation", "rows_changed",
    ...                                         "snapshots").rows()
    [(3, 'update', 1, []), (2, 'insert', 0, ['rated']), (1, 'create', 0, [])]
    >>> history(t.table_state().dataset, limit=1)["version"].to_list()
    [3]
    """
    if limit is not None and limit < 1:
        return pl.DataFrame(schema=_SCHEMA)
    read = _read_versions(ds, _page(ds, limit))
    tagged = snapshot_names(ds)
    rows = [_row(version, previous, tagged.get(version.number, []))
            for version, previous in zip(read, [*read[1:], None], strict=True)]
    if limit is not None:
        rows = rows[:limit]
    return pl.DataFrame(rows, schema=_SCHEMA)


def _page(ds: lance.LanceDataset, limit: int | None) -> list[int]:
    """The version numbers to read, newest first: the page and the version before it, counted
    down from ``ds``'s version (all versions, listed, for ``limit=None``)."""
    if limit is None:
        return _listed(ds, None)
    return list(range(ds.version, max(ds.version - limit - 1, 0), -1))


def _listed(ds: lance.LanceDataset, count: int | None) -> list[int]:
    """The newest ``count`` versions that exist up to ``ds``'s (all for None), newest first:
    one listing of the table's versions."""
    numbers = sorted((int(v["version"]) for v in ds.version_refs()
                      if int(v["version"]) <= ds.version), reverse=True)
    return numbers if count is None else numbers[:count]


def count(ds: lance.LanceDataset) -> int:
    """How many versions the table has up to ``ds``'s (those retention removed not counted),
    from one listing of its versions: no version is read (``history(limit=None)`` reads each).

    >>> _ = t.delete(where=t.title == "Up")
    >>> count(t.table_state().dataset), count(t.at(2).table_state().dataset)
    (3, 2)
    """
    return len(_listed(ds, None))


def _read_versions(ds: lance.LanceDataset, numbers: list[int]) -> list[_Version]:
    """Read the versions ``numbers`` (newest first) on a few threads. A version that turns out
    to be missing (cleaned up) is skipped: the list of versions is then read to fill the page
    with the versions that exist."""
    found = _read_each(ds, numbers)
    if all(v is not None for v in found):
        return [v for v in found if v is not None]
    return [v for v in _read_each(ds, _listed(ds, len(numbers))) if v is not None]


def _read_each(ds: lance.LanceDataset, numbers: list[int]) -> list[_Version | None]:
    # a Lance handle cannot check out versions on two threads at once: one copy (which shares
    # the handle's cache and reads nothing) per version
    handles = [(copy.copy(ds), n) for n in numbers]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lambda handle: _read_version(*handle), handles))


def _read_version(ds: lance.LanceDataset, number: int) -> _Version | None:
    try:
        old = ds.checkout_version(number)  # no-op for the handle's own version
    except (ValueError, OSError):
        return None  # removed by retention
    summary = old.get_version()
    meta = summary["metadata"]
    try:
        transaction = old.read_transaction(number)
    except OSError:  # a version written without one: its row counts still show
        transaction = None
    return _Version(number, summary["timestamp"].astimezone(dt.UTC),
                    int(meta.get("total_rows", 0)), int(meta.get("total_data_files", 0)),
                    old.schema, transaction)


def _row(version: _Version, previous: _Version | None, snapshots: list[str]) -> dict[str, Any]:
    tx = version.transaction
    op_name = type(tx.operation).__name__ if tx is not None else "unknown"
    before_total = previous.total_rows if previous is not None else 0
    before_files = previous.data_files if previous is not None else 0
    added = max(version.total_rows - before_total, 0)
    removed = max(before_total - version.total_rows, 0)
    changed = 0
    if op_name == "Update" and tx is not None:
        rewritten = sum(f.physical_rows for f in tx.operation.new_fragments)
        changed = rewritten - added
    elif op_name == "Merge" and version.data_files > before_files:  # new column files
        changed = version.total_rows
    return {"version": version.number, "time": version.time,
            "operation": _label(version, previous, op_name),
            "rows_added": added, "rows_changed": changed, "rows_removed": removed,
            "total_rows": version.total_rows, "snapshots": snapshots}


def _label(version: _Version, previous: _Version | None, op_name: str) -> str:
    """The write protocol's label; for a commit Lance made by itself, the embedding index it
    added or dropped, if any, else the Lance operation's name."""
    tx = version.transaction
    if tx is not None and tx.transaction_properties.get(OPERATION_KEY):
        return tx.transaction_properties[OPERATION_KEY]
    if op_name in _SCHEMA_OPERATIONS and previous is not None:
        label = index_change(_index_names(previous.schema), _index_names(version.schema))
        if label is not None:
            return label
    return _OPERATIONS.get(op_name, op_name.lower())


def _index_names(schema: Any) -> set[str]:
    return {index.name for index in TableDef.from_schema(schema, "").indexes()}


def index_change(before: Iterable[str], after: Iterable[str]) -> str | None:
    """How a commit that changed the embedding indexes from ``before`` to ``after`` (their
    names) reads in the history: the label of the write that adds one, or ``drop embedding
    index``; None when the indexes stayed the same.

    >>> index_change([], ["image"]), index_change(["image"], []), index_change(["a"], ["a"])
    ('embedding index', 'drop embedding index', None)
    """
    before, after = set(before), set(after)
    if after - before:
        return "embedding index"
    if before - after:
        return "drop embedding index"
    return None


def snapshots(ds: lance.LanceDataset) -> dict[str, int]:
    """Snapshot name -> version, for every snapshot (Lance tag) of the table, sorted by name.

    >>> _ = t.snapshot("v1")
    >>> snapshots(t.table_state().dataset)
    {'v1': 2}
    """
    return {name: int(info["version"]) for name, info in sorted(ds.tags.list().items())}


def snapshot_names(ds: lance.LanceDataset) -> dict[int, list[str]]:
    """Version -> the names of the snapshots pointing at it, sorted.

    >>> _ = t.snapshot("b-side"), t.snapshot("a-side")
    >>> snapshot_names(t.table_state().dataset)
    {2: ['a-side', 'b-side']}
    """
    names: dict[int, list[str]] = {}
    for name, version in snapshots(ds).items():
        names.setdefault(version, []).append(name)
    return names
