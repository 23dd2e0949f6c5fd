"""Version history: what each commit of a table did, read from Lance's versions and transactions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import lance
import polars as pl

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
}


def history(ds: lance.LanceDataset) -> pl.DataFrame:
    """One row per version, oldest first: version, time, operation, row counts, and the names
    of the snapshots (Lance tags) that point at the version, sorted (an empty list if none).

    >>> _ = t.update({"rating": 8.4}, where=t.title == "Up", progress=False)
    >>> _ = t.at(2).snapshot("rated")
    >>> history(t.table_state().dataset).select("version", "operation", "rows_changed",
    ...                                         "snapshots").rows()
    [(1, 'create', 0, []), (2, 'insert', 0, ['rated']), (3, 'update', 1, [])]
    """
    versions = ds.versions()
    tagged = snapshot_names(ds)
    transactions = ds.get_transactions(len(versions))
    rows: list[dict[str, Any]] = []
    previous_total = previous_files = 0
    transactions_by_version = dict(zip(
        [v["version"] for v in reversed(versions)], transactions, strict=False))
    for v in versions:
        total = int(v["metadata"].get("total_rows", 0))
        files = int(v["metadata"].get("total_data_files", 0))
        tx = transactions_by_version.get(v["version"])
        op_name = type(tx.operation).__name__ if tx is not None else "unknown"
        operation = _OPERATIONS.get(op_name, op_name.lower())
        if tx is not None and tx.transaction_properties.get("lakehouse.operation"):
            operation = tx.transaction_properties["lakehouse.operation"]
        added = max(total - previous_total, 0)
        removed = max(previous_total - total, 0)
        changed = 0
        if op_name == "Update":
            rewritten = sum(f.physical_rows for f in tx.operation.new_fragments)
            changed = rewritten - added
        elif op_name == "Merge" and files > previous_files:  # new column files were written
            changed = total
        rows.append({"version": v["version"], "time": v["timestamp"].astimezone(dt.UTC),
                     "operation": operation,
                     "rows_added": added, "rows_changed": changed, "rows_removed": removed,
                     "total_rows": total, "snapshots": tagged.get(v["version"], [])})
        previous_total, previous_files = total, files
    schema = {"version": pl.Int64, "time": pl.Datetime("us", "UTC"), "operation": pl.String,
              "rows_added": pl.Int64, "rows_changed": pl.Int64, "rows_removed": pl.Int64,
              "total_rows": pl.Int64, "snapshots": pl.List(pl.String)}
    return pl.DataFrame(rows, schema=schema)


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
