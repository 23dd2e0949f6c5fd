"""Writing a table or a query's result to one Parquet file, local or ``s3://``, batch by batch.

The rules:

- **One version.** The export reads the table version current when it starts; a write made
  meanwhile is not in the file.
- **Streaming.** Rows are read from a Lance scan batch by batch and each batch is written as it
  comes, so memory holds one batch (256 rows when media bytes are read), never the table. A
  query with ``order_by()`` or a similarity among its outputs is the exception: it is sorted
  (or scored) in memory first, as :meth:`~lakehouse.Query.collect` does.
- **The user's columns.** Every column of the table (computed columns included: they are
  stored) or a query's outputs, named as the query names them; never the hidden ``_lh_*``
  bookkeeping columns.
- **Media** as their bytes (``media="bytes"``, a binary column) or as the URIs they were
  inserted from (``media="uri"``, a string column, ``t.image.fileurl``); a value inserted as
  bytes, or a computed media column, has no URI, and ``media="uri"`` refuses it before anything
  is written.
- **No silent overwrite.** An existing file is refused (:class:`~lakehouse.OutputExistsError`)
  unless ``overwrite=True``; a failed export removes the part it wrote.
- **Where.** A local path, or ``s3://bucket/key``: any bucket, reached through s3fs with the
  lakehouse's own storage options (endpoint, keys, region; for a local lakehouse, the AWS
  variables Lance reads), so another bucket must accept the same credentials. For other
  settings, export to a local file and copy it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.errors import OutputExistsError, StorageError, UnsupportedError, check_choice
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.scan import Filter, scan_frames
from lakehouse.exprs.nodes import ColumnRef, Expr, InfoColumn, Similarity
from lakehouse.exprs.sql import quote_identifier
from lakehouse.metadata import TableDef
from lakehouse.progress import report
from lakehouse.storage import Location, redact_uri, s3_filesystem, s3_options

if TYPE_CHECKING:
    from lakehouse.queries import Query

MEDIA = ("bytes", "uri")


@dataclasses.dataclass(frozen=True)
class ParquetOptions:
    """How :func:`write_parquet` writes: media as ``"bytes"`` or ``"uri"``, whether an
    existing file may be replaced, whether a progress bar is drawn, and the Parquet
    compression codec."""

    media: str = "bytes"
    overwrite: bool = False
    progress: bool = True
    compression: str = "zstd"

    def __post_init__(self) -> None:
        check_choice("media", self.media, MEDIA)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What an export wrote: where, how many rows, and the table version they were read from.

    >>> ExportResult(path="films.parquet", rows_written=3, version=2).rows_written
    3
    """

    path: str
    rows_written: int
    version: int


def write_parquet(query: Query, path: str | os.PathLike[str],
                  options: ParquetOptions = ParquetOptions()) -> ExportResult:
    """Write the rows of ``query`` to the Parquet file ``path``, batch by batch, from the
    table version current now (what ``t.to_parquet`` and ``q.to_parquet`` call).

    >>> result = write_parquet(t.where(t.year > 1990), "recent.parquet")
    >>> result.rows_written, pl.read_parquet("recent.parquet")["title"].to_list()
    (2, ['Heat', 'Up'])
    """
    table = query.table
    state = table.table_state()
    pinned = dataclasses.replace(query, table=table.at(state.version))
    tdef, name = state.definition, table.table_name
    outputs = _outputs(pinned, tdef)
    for _, expr in outputs:
        tdef.check_refs(expr, name)
    if pinned.condition is not None:
        tdef.check_refs(pinned.condition, name)
    if options.media == "uri":
        outputs = _as_uris(outputs, tdef, name)
        _check_uris(pinned, outputs, tdef, name)
    target = str(path)
    fs, fs_path = _filesystem(target, state.location)
    if not options.overwrite and _exists(fs, fs_path, target):
        raise OutputExistsError(f"{redact_uri(target)} already exists; pass overwrite=True to "
                                "replace it, or choose another path")
    total = state.dataset.count_rows() if pinned.condition is None and \
        pinned.row_limit is None and pinned.sampled is None else None
    rows = 0
    try:
        with fs.open(fs_path, "wb") as sink, \
                report(f"export {name}", enabled=options.progress, total=total) as bar:
            writer: pq.ParquetWriter | None = None
            for frame in _frames(pinned, outputs, tdef):
                batch = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
                if writer is None:
                    writer = pq.ParquetWriter(sink, batch.schema,
                                              compression=options.compression)
                writer.write_table(batch.cast(writer.schema))
                rows += frame.height
                bar.advance(frame.height)
            if writer is None:  # no rows: the file still has the columns
                writer = pq.ParquetWriter(sink, _empty(pinned, outputs).schema)
            writer.close()
    except BaseException:
        _remove(fs, fs_path)
        raise
    return ExportResult(target, rows, state.version)


def _outputs(query: Query, tdef: TableDef) -> list[tuple[str, Expr]]:
    """The query's outputs, or every column of the table (hidden columns are not columns)."""
    if query.outputs is not None:
        return list(query.outputs)
    return [(c.name, c.ref()) for c in tdef.columns]


def _as_uris(outputs: list[tuple[str, Expr]], tdef: TableDef,
             table: str) -> list[tuple[str, Expr]]:
    """Each media output as the URIs its values were inserted from (``column.fileurl``)."""
    out: list[tuple[str, Expr]] = []
    for name, expr in outputs:
        if not expr.type.is_media:
            out.append((name, expr))
            continue
        if not isinstance(expr, ColumnRef) or not tdef.by_id(expr.col_id).keeps_uri:
            msg = (f"table {table!r}: output {name!r} ({expr!r}) is computed, so its values have "
                   "no source URI; export with media='bytes', or select its source column")
            raise UnsupportedError(msg)
        out.append((name, InfoColumn(expr, "fileurl")))
    return out


def _check_uris(query: Query, outputs: list[tuple[str, Expr]], tdef: TableDef,
                table: str) -> None:
    """Refuse ``media="uri"`` when a value to export was inserted as bytes (it has no URI).
    Counted by Lance over the rows the query's pushed-down filter keeps (all rows if none)."""
    flt = Filter.split(query.condition, tdef)
    ds = query.table.table_state().dataset
    for name, expr in outputs:
        if not isinstance(expr, InfoColumn):
            continue
        column = quote_identifier(tdef.by_id(expr.column.col_id).name)
        uri = quote_identifier(tdef.info_names()[(expr.column.col_id, "fileurl")])
        check = f"{column} IS NOT NULL AND {uri} IS NULL"
        missing = ds.count_rows(filter=check if flt.sql is None else f"({flt.sql}) AND {check}")
        if missing:
            msg = (f"table {table!r}: {missing} value(s) of {expr.column.name!r} (output "
                   f"{name!r}) were inserted as bytes and have no source URI; export with "
                   "media='bytes'")
            raise UnsupportedError(msg)



def _frames(query: Query, outputs: list[tuple[str, Expr]],
            tdef: TableDef) -> Iterator[pl.DataFrame]:
    """The result, frame by frame, under the output names: streamed from the scan, unless the
    query is ordered or scores similarities (then computed whole, by the query itself)."""
    exprs = [e for _, e in outputs]
    if query.ordering or any(isinstance(n, Similarity) for e in exprs for n in e.walk()):
        yield dataclasses.replace(query, outputs=tuple(outputs)).collect()
        return
    state = query.table.table_state()
    name = query.table.table_name
    read = tdef.stored_columns(exprs)
    stored = _stored_names(outputs, tdef)
    plan = None if stored is not None else \
        Plan.for_exprs(name, tdef, {f"__out{i}": e for i, e in enumerate(exprs)})
    for frame in scan_frames(state.dataset, tdef, name, query.condition, read,
                             limit=query.row_limit, fetcher=state.fetcher,
                             only_rows=None if query.sampled is None else list(query.sampled)):
        if stored is not None:
            yield frame.select([pl.col(s).alias(n) for s, (n, _) in zip(stored, outputs,
                                                                        strict=True)])
            continue
        assert plan is not None
        result, _ = plan.run(frame)
        yield result.select([pl.col(f"__out{i}").alias(n) for i, (n, _) in enumerate(outputs)])


def _stored_names(outputs: list[tuple[str, Expr]], tdef: TableDef) -> list[str] | None:
    """The stored column each output reads as it is (a column, or a hidden ``fileurl``), or
    None when some output must be computed."""
    info = tdef.info_names()
    names: list[str] = []
    for _, expr in outputs:
        if isinstance(expr, ColumnRef):
            names.append(tdef.by_id(expr.col_id).name)
        elif isinstance(expr, InfoColumn) and (expr.column.col_id, expr.field) in info:
            names.append(info[(expr.column.col_id, expr.field)])
        else:
            return None
    return names


def _empty(query: Query, outputs: list[tuple[str, Expr]]) -> pa.Table:
    """The result's columns with no rows, for a file of an empty result."""
    frame = dataclasses.replace(query, outputs=tuple(outputs)).limit(0).collect()
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


def _filesystem(target: str, location: Location) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem a path is written on and the path on it: s3fs with the lakehouse's
    storage options for ``s3://``, the local one otherwise."""
    if target.startswith(("s3://", "s3a://")):
        # the lakehouse's S3 settings; for a local lakehouse, the AWS variables, as Lance's
        return s3_filesystem(s3_options(dict(location.storage_options))), \
            target.split("://", 1)[1]
    if "://" in target and not target.startswith("file://"):
        raise UnsupportedError(f"cannot export to {redact_uri(target)}: give a local path or "
                               "an s3://bucket/key")
    local = os.path.abspath(os.path.expanduser(target.removeprefix("file://")))
    return fsspec.filesystem("file", auto_mkdir=True), local


def _exists(fs: fsspec.AbstractFileSystem, path: str, target: str) -> bool:
    try:
        return bool(fs.exists(path))
    except Exception as exc:  # s3fs: credentials, endpoint, a missing bucket
        raise StorageError(f"cannot reach {redact_uri(target)}: {type(exc).__name__}: "
                           f"{exc}") from exc


def _remove(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove what a failed export left, if anything (the original error matters more)."""
    with contextlib.suppress(Exception):  # best effort: the export's own error is raised
        if fs.exists(path):
            fs.rm(path)
