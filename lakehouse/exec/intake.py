"""Turn what users insert (dicts, DataFrames, Arrow, batch iterators) into validated Arrow tables.

Every value is checked against its column's logical type before anything is written. Arrow and
DataFrame input is validated column by column with Arrow casts that cannot change a value's
meaning (int32 to int64, int to float, naive to UTC timestamps); anything else, such as a string
in an Int column, is a :class:`TypeMismatchError` naming the column and the first bad row.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import types as T
from lakehouse.errors import ColumnNotFoundError, ComputedColumnError, TypeMismatchError
from lakehouse.media.intake import MediaOptions, load_column, values_of
from lakehouse.metadata import ColumnDef, TableDef

DEFAULT_CHUNK_ROWS = 262_144
# rows per batch for tables with media columns: bounds the media bytes (and decoded images) a
# write holds at once
MEDIA_CHUNK_ROWS = 64
PREFETCH_DEPTH = 2  # batches made ahead of the writer (see written_beside)
# rows per batch for inserts that run a model: room for the largest batch a text model is fitted
# to (embeddings.MAX_BATCH_ROWS), so that a tiny model runs few, large calls; Lance writes each
# batch while the model computes the next (see written_beside) and only the last one's write
# waits for the model
MODEL_CHUNK_ROWS = 1024

_T = TypeVar("_T")
_R = TypeVar("_R")
_DONE = object()


def chunks(data: Any, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table | list[dict]]:
    """Split any supported input into chunks: Arrow tables or lists of row dicts."""
    if isinstance(data, Mapping):
        yield [dict(data)]
        return
    if isinstance(data, pl.DataFrame):
        yield from _arrow_chunks(data.to_arrow(), chunk_rows)
        return
    if is_pandas_frame(data):
        yield from _arrow_chunks(pa.Table.from_pandas(data, preserve_index=False), chunk_rows)
        return
    if isinstance(data, pa.Table):
        yield from _arrow_chunks(data, chunk_rows)
        return
    if isinstance(data, pa.RecordBatch):
        yield pa.Table.from_batches([data])
        return
    if isinstance(data, pa.RecordBatchReader):
        for batch in data:
            yield pa.Table.from_batches([batch])
        return
    # a list holding any dict is a list of rows; validation names a row that is not a dict
    if isinstance(data, list) and (not data or any(isinstance(row, Mapping) for row in data)):
        for start in range(0, max(len(data), 1), chunk_rows):
            yield data[start:start + chunk_rows]
        return
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        # an iterator (or list) of batches: stream it, one chunk at a time
        for part in data:
            if isinstance(part, Mapping):
                raise TypeMismatchError(
                    "insert() got an iterator of dicts; pass a list of dicts, or an iterator of "
                    "batches (lists of dicts, DataFrames or Arrow tables)"
                )
            yield from chunks(part, chunk_rows)
        return
    raise TypeMismatchError(
        f"insert() cannot take {type(data).__name__}: pass a list of dicts, a Polars or pandas "
        "DataFrame, an Arrow table or record batch reader, or an iterator of those"
    )


def written_beside(items: Iterator[_T], write: Callable[[Iterator[_T]], _R],
                   depth: int = PREFETCH_DEPTH) -> _R:
    """``write(items)``, with ``items`` made on this thread and ``write`` run on a worker
    thread up to ``depth`` items behind: an insert whose rows run through a model keeps the
    model on the calling thread, where it runs fastest (a small CLIP text model ran at half its
    speed on another thread), while Lance encodes and writes the batch before. An exception
    raised while making an item ends the write (its stream raises it) and is raised here; one
    raised by ``write`` stops the making and is raised here.

    >>> written_beside(iter(range(5)), sum)
    10
    """
    handed: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    outcome: dict[str, Any] = {}
    ended = threading.Event()

    def stream() -> Iterator[_T]:
        while True:
            item, error = handed.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item

    def run() -> None:
        try:
            outcome["result"] = write(stream())
        except BaseException as exc:  # raised on the calling thread below
            outcome["error"] = exc
        finally:
            ended.set()

    def hand(item: Any, error: BaseException | None = None) -> bool:
        while not ended.is_set():
            try:
                handed.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    worker = threading.Thread(target=run, name="lakehouse-write", daemon=True)
    worker.start()
    try:
        for item in items:
            if not hand(item):
                break
        else:
            hand(_DONE)
    except BaseException as exc:
        hand(None, exc)
        worker.join()
        raise
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def validate(chunk: pa.Table | list[dict], tdef: TableDef, table_name: str, row_offset: int,
             media: MediaOptions | None = None) -> pa.Table:
    """Validate one chunk against the table's base columns and return it in storage types.

    Media columns come back as their bytes, followed by their hidden source-URI and error
    columns (see :mod:`lakehouse.media.intake`)."""
    media = media or MediaOptions()
    if isinstance(chunk, list):
        return _from_rows(chunk, tdef, table_name, row_offset, media)
    return _from_arrow(chunk, tdef, table_name, row_offset, media)


def _media_columns(column: ColumnDef, values: list[Any], media: MediaOptions, table_name: str,
                   row_offset: int) -> list[tuple[pa.Field, pa.Array]]:
    if not column.type.nullable:
        first = next((i for i, v in enumerate(values) if v is None), None)
        if first is not None:
            raise TypeMismatchError(_null_message(table_name, column.name, row_offset + first))
    loaded = load_column(values, column.type, media, table_name=table_name,  # type: ignore[arg-type]
                         column=column.name, row_offset=row_offset)
    info = column.info_columns()
    return [(pa.field(column.name, pa.large_binary()), loaded.data),
            (pa.field(info["fileurl"], pa.string()), loaded.uris),
            (pa.field(info["errortype"], pa.string()), loaded.errortypes),
            (pa.field(info["errormsg"], pa.string()), loaded.errormsgs)]


def _check_names(names: Iterable[str], tdef: TableDef, table_name: str,
                 row: int | None = None) -> None:
    at = "" if row is None else f", row {row}"
    for name in names:
        if not tdef.has(name):
            known = ", ".join(c.name for c in tdef.base_columns())
            raise ColumnNotFoundError(
                f"table {table_name!r} has no column {name!r}{at} (insertable columns: {known})"
            )
        if tdef.get(name, table_name).is_computed:
            raise ComputedColumnError(
                f"table {table_name!r}: column {name!r}{at} is computed and cannot be inserted into"
            )


def _from_rows(rows: list[dict], tdef: TableDef, table_name: str, row_offset: int,
               media: MediaOptions) -> pa.Table:
    names: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            msg = f"table {table_name!r}: row {row_offset + i} is not a dict: {row!r}"
            raise TypeMismatchError(msg)
        new = [name for name in row if name not in names]
        if new:  # check each name at the first row that uses it, so the error names that row
            _check_names(new, tdef, table_name, row_offset + i)
            names.update(new)
    arrays, fields = [], []
    for column in tdef.base_columns():
        if column.type.is_media:
            values = [row.get(column.name) for row in rows]
            for field, array in _media_columns(column, values, media, table_name, row_offset):
                fields.append(field)
                arrays.append(array)
            continue
        values = []
        for i, row in enumerate(rows):
            value = row.get(column.name)
            if value is None:
                if not column.type.nullable:
                    raise TypeMismatchError(_null_message(table_name, column.name, row_offset + i))
                values.append(None)
                continue
            try:
                values.append(column.type.coerce(value))
            except TypeError as exc:
                msg = f"table {table_name!r}: column {column.name!r}, row {row_offset + i}: {exc}"
                raise TypeMismatchError(msg) from None
        arrays.append(pa.array(values, type=column.type.arrow_type()))
        fields.append(pa.field(column.name, column.type.arrow_type()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)) if fields else \
        pa.table({"__n": pa.nulls(len(rows))}).drop(["__n"])


def _from_arrow(data: pa.Table, tdef: TableDef, table_name: str, row_offset: int,
                media: MediaOptions) -> pa.Table:
    _check_names(data.column_names, tdef, table_name)
    arrays, fields = [], []
    for column in tdef.base_columns():
        if column.type.is_media:
            present = column.name in data.column_names
            try:
                values = values_of(data.column(column.name)) if present else \
                    [None] * data.num_rows
            except TypeError as exc:
                raise TypeMismatchError(f"table {table_name!r}: column {column.name!r}: {exc}") \
                    from None
            for field, array in _media_columns(column, values, media, table_name, row_offset):
                fields.append(field)
                arrays.append(array)
            continue
        target = column.type.arrow_type()
        if column.name in data.column_names:
            arr = data.column(column.name)
            arr = _convert(arr, column.type, table_name, column.name, row_offset)
        else:
            arr = pa.nulls(data.num_rows, target)
        if not column.type.nullable and arr.null_count:
            first = pc.index(pc.is_null(arr), True).as_py()
            raise TypeMismatchError(_null_message(table_name, column.name, row_offset + first))
        arrays.append(arr)
        fields.append(pa.field(column.name, target))
    if not fields:
        return data.drop(data.column_names)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _convert(arr: pa.ChunkedArray, ct: T.ColumnType, table_name: str, column: str,
             row_offset: int) -> pa.ChunkedArray:
    target = ct.arrow_type()
    source = arr.type
    if source == target and ct.kind != "json":  # JSON text must still be parsed to be checked
        return arr
    if ct.kind == "json" or not _safe_cast(source, target):
        return _convert_values(arr, ct, table_name, column, row_offset)
    try:
        return arr.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        # name the first bad row if Python finds one (say, a list of the wrong length)
        _convert_values(arr, ct, table_name, column, row_offset)
        msg = f"table {table_name!r}: column {column!r} ({source}) cannot be stored as {ct}: {exc}"
        raise TypeMismatchError(msg) from None


def _convert_values(arr: pa.ChunkedArray, ct: T.ColumnType, table_name: str, column: str,
                    row_offset: int) -> pa.ChunkedArray:
    """The slow path: validate each value in Python, which also finds the first bad row."""
    target = ct.arrow_type()
    values = arr.to_pylist()
    if ct.kind == "json" and is_string_type(arr.type):
        values = [_parse_json(v, table_name, column, row_offset + i) for i, v in enumerate(values)]
    out = []
    for i, value in enumerate(values):
        try:
            out.append(None if value is None else ct.coerce(value))
        except TypeError as exc:
            msg = f"table {table_name!r}: column {column!r}, row {row_offset + i}: {exc}"
            raise TypeMismatchError(msg) from None
    return pa.chunked_array([pa.array(out, type=target)], type=target)


def _safe_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether an Arrow cast from ``source`` to ``target`` keeps every value's meaning."""
    checks = (pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp, pa.types.is_date)
    if is_string_type(source) and is_string_type(target):
        return True
    if pa.types.is_integer(source) and pa.types.is_floating(target):
        return True
    if pa.types.is_null(source):
        return True
    if is_list_type(source) and is_list_type(target):
        # Arrow's casts from list views lose values (an empty list for each row): they take
        # the slow path, which converts every value in Python
        if _is_list_view(source):
            return False
        return _safe_cast(source.value_type, target.value_type) or (
            pa.types.is_floating(source.value_type) and pa.types.is_floating(target.value_type))
    return any(check(source) and check(target) for check in checks)


def is_string_type(t: pa.DataType) -> bool:
    """Whether an Arrow type holds text: string, large string or string view."""
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_list_type(t: pa.DataType) -> bool:
    """Whether an Arrow type is a list, in any layout: list, large list, fixed-size list, or
    (large) list view.

    >>> is_list_type(pa.list_view(pa.float32())), is_list_type(pa.string())
    (True, False)
    """
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t))


def _is_list_view(t: pa.DataType) -> bool:
    return pa.types.is_list_view(t) or pa.types.is_large_list_view(t)


def _parse_json(value: Any, table_name: str, column: str, row: int) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        text = value if len(value) < 40 else value[:37] + "..."
        msg = f"table {table_name!r}: column {column!r}, row {row}: {text!r} is not valid JSON text"
        raise TypeMismatchError(msg) from None


def _null_message(table_name: str, column: str, row: int) -> str:
    return f"table {table_name!r}: column {column!r}, row {row}: a value is required (got null)"


def _arrow_chunks(data: pa.Table, chunk_rows: int) -> Iterator[pa.Table]:
    if data.num_rows <= chunk_rows:
        yield data
        return
    for start in range(0, data.num_rows, chunk_rows):
        yield data.slice(start, chunk_rows)


def is_pandas_frame(data: Any) -> bool:
    """Whether ``data`` is a pandas DataFrame, checked without importing pandas (a frame can
    only exist once pandas was imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)
