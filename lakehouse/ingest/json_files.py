"""Reading JSON inputs in Arrow batches: a file holding one JSON array of objects, or JSON Lines
(one object a line, blank lines skipped: ``.jsonl``, ``.ndjson``, and a ``.json`` file that does
not start with ``[``).

JSON Lines are streamed by ``pyarrow.json`` in blocks of at least 1 MiB (larger when a line is
longer, as with media values written as base64), so memory follows the block, not the file; the
column types come from the first block (integers, floats, booleans, ISO timestamps, strings,
objects and lists) and later rows are read with those types. A JSON array is one value, read
whole by Polars: use JSON Lines for inputs larger than memory.

Errors name the file and the line: the reader's own messages count rows within a block, so
after a failure the file is read once more, line by line, for the first line that is not a JSON
object or that has a field the first rows did not have.

>>> _ = open("rows.jsonl", "w").write('{"a": 1, "b": "x"}\\n\\n{"a": 2, "b": null}\\n')
>>> reader = JsonReader("t", None)
>>> source = SourceFile("rows.jsonl", None, "rows.jsonl", "rows.jsonl")
>>> schema = reader.schema(source, {})
>>> schema
a: int64
b: string
>>> [b.to_pylist() for b in reader.batches(source, schema)]
[[{'a': 1, 'b': 'x'}, {'a': 2, 'b': None}]]
>>> reader.rows(source)
2
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.json as pajson

from lakehouse import types as T
from lakehouse.errors import StorageError, TypeMismatchError
from lakehouse.exec.intake import is_list_type, is_string_type
from lakehouse.ingest.files import is_s3
from lakehouse.ingest.sources import SourceFile
from lakehouse.storage import s3_filesystem, s3_options

if TYPE_CHECKING:
    import fsspec

JSON_EXTENSIONS = ("json", "jsonl", "ndjson")
_MIN_BLOCK = 1 << 20
_SCALARS = ("int", "float", "bool", "string")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What a first read of a file found: an array, or lines (how many, the longest)."""

    array: bool
    rows: int
    longest: int


class JsonReader:
    """Reads the JSON files of one import (local or S3) as Arrow batches."""

    def __init__(self, table_name: str, storage_options: Mapping[str, str] | None) -> None:
        self._table = table_name
        self._storage_options = dict(storage_options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._layouts: dict[str, _Layout] = {}

    @contextlib.contextmanager
    def _open(self, source: SourceFile) -> Iterator[Any]:
        """The file, opened for reading bytes."""
        try:
            if is_s3(source.uri):
                if self._fs is None:
                    self._fs = s3_filesystem(s3_options(self._storage_options))
                handle = self._fs.open(source.uri.split("://", 1)[1], "rb")
            else:
                handle = open(source.uri, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            msg = f"table {self._table!r}: cannot read {source.label}: {exc}"
            raise StorageError(msg) from exc
        with handle:
            yield handle

    def _layout(self, source: SourceFile) -> _Layout:
        """Whether the file holds an array or lines, found by a first read (once per file)."""
        if source.uri not in self._layouts:
            self._layouts[source.uri] = self._find_layout(source)
        return self._layouts[source.uri]

    def _find_layout(self, source: SourceFile) -> _Layout:
        rows = longest = 0
        with self._open(source) as f:
            for line in f:
                if not line.strip():
                    continue
                if rows == 0 and line.lstrip().startswith(b"["):
                    return _Layout(True, 0, 0)
                rows += 1
                longest = max(longest, len(line))
        return _Layout(False, rows, longest)

    def rows(self, source: SourceFile) -> int | None:
        """The rows of a JSON Lines file (None for an array: they are counted when read)."""
        layout = self._layout(source)
        return None if layout.array else layout.rows

    def schema(self, source: SourceFile, types: Mapping[str, Any]) -> pa.Schema:
        """The Arrow types of the file's first rows (a JSON array: of all its rows), with the
        fields ``types`` names and the first rows of JSON Lines do not have added (read as the
        type says)."""
        if self._layout(source).array:
            return self._array(source).schema
        with self._open(source) as f:
            try:  # closed at once: an open reader's threads must not outlive the file
                with pajson.open_json(f, read_options=self._read_options(source)) as reader:
                    schema = reader.schema
            except pa.ArrowInvalid as exc:
                raise self._error(source, None, exc) from None
        extra = [pa.field(name, _read_type(spec, name)) for name, spec in types.items()
                 if spec is not None and name not in schema.names]
        return pa.schema([*schema, *extra])

    def batches(self, source: SourceFile, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """The file's rows, with the columns of ``schema`` (the first file's)."""
        if self._layout(source).array:
            table = self._array(source)
            _check_fields(table.schema.names, schema.names, source.label, self._table)
            yield from table.to_batches()
            return
        parse = pajson.ParseOptions(explicit_schema=_readable(schema),
                                    unexpected_field_behavior="error")
        with self._open(source) as f:
            try:  # opening reads the first block
                reader = pajson.open_json(f, read_options=self._read_options(source),
                                          parse_options=parse)
            except pa.ArrowInvalid as exc:
                raise self._error(source, set(schema.names), exc) from None
            with reader:  # closed before the file, also when the reading is abandoned
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                    except pa.ArrowInvalid as exc:
                        raise self._error(source, set(schema.names), exc) from None
                    yield batch

    def _read_options(self, source: SourceFile) -> pajson.ReadOptions:
        """Blocks of 1 MiB, or larger: a block must hold the longest line whole."""
        return pajson.ReadOptions(block_size=max(_MIN_BLOCK, 2 * self._layout(source).longest))

    def _array(self, source: SourceFile) -> pa.Table:
        """A file holding one JSON array of objects, read whole."""
        with self._open(source) as f:
            data = f.read()
        try:
            return pl.read_json(io.BytesIO(data), infer_schema_length=None).to_arrow()
        except pl.exceptions.PolarsError as exc:
            where = _array_problem(data)
            msg = (f"table {self._table!r}: cannot read {source.label}: "
                   f"{where or str(exc).splitlines()[0]}; a JSON file holds one array of "
                   "objects, or one object a line (JSON Lines)")
            raise TypeMismatchError(msg) from None

    def _error(self, source: SourceFile, names: set[str] | None,
               exc: pa.ArrowInvalid) -> TypeMismatchError:
        """The error for a JSON Lines file the reader refused, naming the first bad line."""
        with self._open(source) as f:
            problem = _first_bad_line(f, names)
        if problem is None:
            problem = (f"{exc}; the column types come from the first rows: give a column's "
                       "type with schema={...}")
        return TypeMismatchError(f"table {self._table!r}: cannot read {source.label}: {problem}")


def _first_bad_line(lines: Iterator[bytes], names: set[str] | None) -> str | None:
    """What is wrong with the first line that is not a JSON object, or that has a field not in
    ``names``; None if every line is fine."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            return f"line {number} is not valid JSON ({detail}{column})"
        if not isinstance(value, dict):
            return f"line {number} is not a JSON object (it is {type(value).__name__})"
        extra = sorted(set(value) - names) if names is not None else []
        if extra:
            fields = ", ".join(repr(k) for k in extra)
            return (f"line {number} has the field {fields}, which the first rows do not have; "
                    f"give its type with schema={{{extra[0]!r}: ...}}")
    return None


def _array_problem(data: bytes) -> str | None:
    """Where a JSON array is malformed, or what is not an object in it."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            return f"line {exc.lineno} column {exc.colno} is not valid JSON ({exc.msg})"
        return str(exc)
    if not isinstance(value, list):
        return f"it holds a JSON {type(value).__name__}, not an array"
    bad = next((i for i, item in enumerate(value) if not isinstance(item, dict)), None)
    return None if bad is None else f"item {bad + 1} of the array is not an object"


def _check_fields(found: list[str], expected: list[str], label: str, table: str) -> None:
    if set(found) != set(expected):
        msg = (f"table {table!r}: {label} has the fields {', '.join(found)}, but the first "
               f"file has {', '.join(expected)}; import files with different fields separately")
        raise TypeMismatchError(msg)


def _read_type(spec: Any, column: str) -> pa.DataType:
    """How a field the first rows do not have is read: numbers, booleans and strings as the
    column's type, anything else as text converted on insert."""
    ctype = T.parse_type(spec, column=column)
    return ctype.arrow_type() if ctype.kind in _SCALARS else pa.string()


def _readable(schema: pa.Schema) -> pa.Schema:
    """The schema JSON Lines are read with: the types ``pyarrow.json`` parses (a JSON array
    read by Polars has large and view types), and strings for fields only null so far."""
    return pa.schema([pa.field(f.name, _parsed_type(f.type)) for f in schema])


def _parsed_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_null(t) or is_string_type(t):
        return pa.string()
    if is_list_type(t) and not pa.types.is_fixed_size_list(t):
        return pa.list_(_parsed_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, _parsed_type(t.field(i).type))
                          for i in range(t.num_fields)])
    return t


__all__ = ["JSON_EXTENSIONS", "JsonReader"]
