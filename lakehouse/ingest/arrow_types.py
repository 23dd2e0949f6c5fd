"""Arrow -> lakehouse types: :func:`lh_type` maps one Arrow type (Hugging Face media structs
included), :func:`plan_columns` maps an input schema to the table's columns
(:class:`ImportColumn`, with the caller's ``schema=`` and ``rename=``, Hugging Face media
features and pandas index columns applied), and a :class:`Conversion` turns each input batch
into the table's columns (media strings read as paths or base64, a filename column added).
:mod:`lakehouse.ingest.tables` builds its imports from these.
"""

from __future__ import annotations

import binascii
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import types as T
from lakehouse.errors import (
    ColumnNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    TypeMismatchError,
    check_choice,
)
from lakehouse.exec.intake import is_list_type, is_string_type
from lakehouse.ingest.files import resolve_media_path

_HF_MEDIA: dict[str, T.ColumnType] = {
    "Image": T.Image, "Audio": T.Audio, "Video": T.Video, "Pdf": T.Document,
}
_ARRAY_DTYPES = {
    "halffloat": "float16", "float": "float32", "double": "float64",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "int32", "uint32": "int64", "uint64": "int64", "bool": "bool",
}


# --------------------------------------------------------------------------------------------
# Types: Arrow -> lakehouse
# --------------------------------------------------------------------------------------------


def lh_type(arrow_type: pa.DataType, *, column: str = "?") -> T.ColumnType:
    """The lakehouse type an Arrow column is imported as.

    strings -> String; integers -> Int; floats and decimals -> Float; bool -> Bool;
    timestamps -> Timestamp (naive ones taken as UTC); dates -> Date; times -> String;
    (nested) lists of numbers -> Array; a struct of ``bytes`` (binary) and ``path`` (string),
    the Hugging Face image layout -> Image; other structs, lists and maps -> Json. Plain binary
    columns need a type from the caller (``schema={"col": lh.Image}``).

    >>> lh_type(pa.int32())
    lh.Int
    >>> lh_type(pa.list_(pa.float32(), 3))
    lh.Array[(3,), float32]
    >>> lh_type(pa.struct({"bytes": pa.binary(), "path": pa.string()}))
    lh.Image
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        return lh_type(t.value_type, column=column)
    if is_string_type(t) or pa.types.is_null(t) or pa.types.is_time(t):
        return T.String
    if pa.types.is_boolean(t):
        return T.Bool
    if pa.types.is_integer(t):
        return T.Int
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return T.Float
    if pa.types.is_timestamp(t):
        return T.Timestamp
    if pa.types.is_date(t):
        return T.Date
    if is_list_type(t):
        array = _array_type(t)
        return array if array is not None else T.Json
    if pa.types.is_struct(t):
        return T.Image if _is_hf_media(t) else T.Json
    if pa.types.is_map(t):
        return T.Json
    what = "binary data" if _is_binary(t) else f"Arrow type {t}"
    raise TypeMismatchError(
        f"column {column!r} holds {what}, which has no lakehouse type of its own; say what it "
        f"holds with schema={{{column!r}: lh.Image}} (or lh.Video, lh.Audio, lh.Document, "
        f"lh.String), or leave it out with schema={{{column!r}: None}}"
    )


def _array_type(t: pa.DataType) -> T.ArrayType | None:
    shape: list[int | None] = []
    while is_list_type(t):
        shape.append(t.list_size if pa.types.is_fixed_size_list(t) else None)
        t = t.value_type
    dtype = _ARRAY_DTYPES.get(str(t))
    return None if dtype is None else T.ArrayType(shape=tuple(shape), dtype=dtype)


def _is_hf_media(t: pa.DataType) -> bool:
    """A struct of ``bytes`` (binary) and optionally ``path`` (string): how Hugging Face
    datasets store images (and audio) in Parquet."""
    names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
    if "bytes" not in names or set(names) - {"bytes", "path"}:
        return False
    return _is_binary(names["bytes"]) and ("path" not in names or is_string_type(names["path"]))


def _is_binary(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t))


def holds_binary(t: pa.DataType) -> bool:
    """Whether values of this Arrow type hold binary data (maybe nested in structs and lists):
    such rows can be large, so imports read them in small batches."""
    if _is_binary(t):
        return True
    if pa.types.is_struct(t):
        return any(holds_binary(t.field(i).type) for i in range(t.num_fields))
    if is_list_type(t) or pa.types.is_dictionary(t):
        return holds_binary(t.value_type)
    return False


def _hf_media_features(metadata: Mapping[bytes, bytes] | None) -> dict[str, T.ColumnType]:
    """Columns the ``huggingface`` schema metadata declares as Image, Audio, Video or Pdf."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        info = json.loads(raw)
    except ValueError:
        return {}
    features = (info.get("info") or {}).get("features") or info.get("features") or {}
    if not isinstance(features, dict):
        return {}
    return {name: _HF_MEDIA[f["_type"]] for name, f in features.items()
            if isinstance(f, dict) and f.get("_type") in _HF_MEDIA}


def _pandas_index_columns(metadata: Mapping[bytes, bytes] | None) -> set[str]:
    """The columns pandas wrote for a DataFrame's index (``__index_level_0__``)."""
    raw = (metadata or {}).get(b"pandas")
    if not raw:
        return set()
    try:
        info = json.loads(raw)
    except ValueError:
        return set()
    return {c for c in info.get("index_columns") or [] if isinstance(c, str)}


@dataclasses.dataclass(frozen=True)
class ImportColumn:
    """One imported column: its name in the input, in the table, and its type."""

    source: str
    name: str
    type: T.ColumnType


def plan_columns(schema: pa.Schema, *, table_name: str, overrides: Mapping[str, Any] | None,
          rename: Mapping[str, str] | None, metadata: Sequence[Mapping[bytes, bytes] | None],
          ) -> list[ImportColumn]:
    """The columns of table ``table_name`` for an input schema: the caller's types
    (``overrides``, where None leaves a column out) and names (``rename``) applied, Hugging Face
    media features and pandas index columns (from the schemas' ``metadata``) taken into account.
    Refuses unknown names in ``overrides`` and ``rename`` and names that cannot be columns."""
    overrides = dict(overrides or {})
    rename = dict(rename or {})
    hf: dict[str, T.ColumnType] = {}
    skipped: set[str] = set()
    for meta in metadata:
        hf.update(_hf_media_features(meta))
        skipped |= _pandas_index_columns(meta)
    unknown = [k for k in overrides if k not in schema.names
               and k not in {rename.get(n, n) for n in schema.names}]
    unknown += [k for k in rename if k not in schema.names]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ColumnNotFoundError(f"table {table_name!r}: the input has no column {names} (its "
                                  f"columns: {', '.join(schema.names)})")
    columns: list[ImportColumn] = []
    for field in schema:
        target = rename.get(field.name, field.name)
        key = field.name if field.name in overrides else target
        if key in overrides:
            spec = overrides[key]
            if spec is None:
                continue
            ctype = T.parse_type(spec, column=target)
        elif field.name in skipped:
            continue
        elif field.name in hf:
            ctype = hf[field.name]
        else:
            ctype = lh_type(field.type, column=field.name)
        columns.append(ImportColumn(field.name, target, ctype))
    bad = [c.name for c in columns
           if not c.name.isidentifier() or c.name.startswith("_")]
    if bad:
        names = ", ".join(repr(n) for n in bad)
        example = ", ".join(f"{n!r}: {_suggest(n)!r}" for n in bad[:3])
        what = "is not a valid column name" if len(bad) == 1 else "are not valid column names"
        raise InvalidNameError(
            f"table {table_name!r}: {names} {what} "
            "(use letters, digits and underscores, not starting with a digit or an underscore); "
            f"rename them with rename={{{example}}} or leave them out with schema={{name: None}}"
        )
    seen: set[str] = set()
    for c in columns:
        if c.name in seen:
            raise InvalidNameError(f"table {table_name!r}: two input columns would both be named "
                                   f"{c.name!r}; rename one with rename=")
        seen.add(c.name)
    if not columns:
        raise InvalidOptionError(f"table {table_name!r}: the input has no columns to import")
    return columns


def _suggest(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name).strip("_")
    if not cleaned or not cleaned.isidentifier():
        cleaned = "c_" + cleaned
    return cleaned


# --------------------------------------------------------------------------------------------
# Batches: input -> the table's types
# --------------------------------------------------------------------------------------------


#: How strings in a media column are read: as paths or URIs, or as the bytes, base64-encoded
#: (as ``lakehouse query --format json|csv`` writes media values).
MEDIA_STRINGS = ("uri", "base64")


@dataclasses.dataclass(frozen=True)
class Conversion:
    """How the batches of an import become the table's columns: the imported ``columns``, how
    strings in media columns are read (``media``: ``"uri"`` or ``"base64"``), and the column
    that gets the name of each row's file (``filename_column``, or None).

    >>> conv = Conversion("t", (ImportColumn("n", "n", T.Int),), filename_column="file")
    >>> conv.convert(pa.record_batch({"n": [1, 2]}), None, "a.csv").to_pylist()
    [{'n': 1, 'file': 'a.csv'}, {'n': 2, 'file': 'a.csv'}]
    >>> conv.table_schema()
    {'n': lh.Int, 'file': lh.String}
    """

    table_name: str
    columns: tuple[ImportColumn, ...]
    media: str = "uri"
    filename_column: str | None = None

    def __post_init__(self) -> None:
        check_choice("media", self.media, MEDIA_STRINGS)
        name = self.filename_column
        if name is None:
            return
        if not name.isidentifier() or name.startswith("_"):
            msg = (f"table {self.table_name!r}: filename_column {name!r} is not a valid column "
                   "name (use letters, digits and underscores, not starting with a digit or "
                   "an underscore)")
            raise InvalidNameError(msg)
        if name in {c.name for c in self.columns}:
            msg = (f"table {self.table_name!r}: the input already has a column {name!r}; "
                   "name another column for the file names with filename_column=")
            raise InvalidNameError(msg)

    def table_schema(self) -> dict[str, T.ColumnType]:
        """The columns of a table made for this import: the input's, then the file names'."""
        schema = {c.name: c.type for c in self.columns}
        if self.filename_column is not None:
            schema[self.filename_column] = T.String
        return schema

    def convert(self, batch: pa.RecordBatch, base: str | None, filename: str | None,
                ) -> pa.Table:
        """One input batch as the table's columns; relative media paths are resolved against
        ``base``, and ``filename`` fills the filename column."""
        arrays = []
        for c in self.columns:
            arr = batch.column(c.source)
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            if c.type.is_media:
                arr = _media_sources(arr, base, self.media == "base64", c.name, self.table_name)
            elif c.type.kind == "json" or (
                    is_string_type(arr.type) and c.type.kind in ("timestamp", "date", "array")) \
                    or pa.types.is_list_view(arr.type) or pa.types.is_large_list_view(arr.type):
                # JSON values, ISO text and list views (whose Arrow casts lose values) are
                # converted (and checked) row by row on insert
                pass
            else:
                arr = _cast(arr, c, self.table_name)
            arrays.append(arr)
        names = [c.name for c in self.columns]
        if self.filename_column is not None:
            arrays.append(pa.array([filename] * batch.num_rows, pa.string()))
            names.append(self.filename_column)
        return pa.Table.from_arrays(arrays, names=names)


def _cast(arr: pa.Array, column: ImportColumn, table_name: str) -> pa.Array:
    target = column.type.arrow_type()
    if arr.type == target:
        return arr
    try:
        return pc.cast(arr, options=pc.CastOptions(target, allow_time_truncate=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        msg = (f"table {table_name!r}: column {column.name!r} ({arr.type}) cannot be stored as "
               f"{column.type}: {exc}")
        raise TypeMismatchError(msg) from None


def _media_sources(arr: pa.Array, base: str | None, base64: bool, column: str,
                   table_name: str) -> pa.Array:
    """A media column as the intake takes it: bytes, paths or URIs (relative paths made
    absolute against ``base``, empty strings null), or the Hugging Face struct; strings are
    decoded as base64 when ``base64`` is set."""
    t = arr.type
    if pa.types.is_string_view(t):
        arr = arr.cast(pa.string())
    elif pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        arr = arr.cast(pa.large_binary())
    if is_string_type(arr.type):
        if base64:
            return _decoded(arr, column, table_name)
        return pa.array([resolve_media_path(v, base) for v in arr.to_pylist()], pa.string())
    if pa.types.is_struct(t) and base is not None and t.get_field_index("path") >= 0:
        children = arr.flatten()
        i = t.get_field_index("path")
        children[i] = pa.array([resolve_media_path(v, base) for v in children[i].to_pylist()],
                               t.field(i).type)
        fields = [t.field(j) for j in range(t.num_fields)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=pc.is_null(arr))
    return arr


def _decoded(arr: pa.Array, column: str, table_name: str) -> pa.Array:
    """Base64 strings as the bytes they encode (empty strings and nulls as null)."""
    values: list[bytes | None] = []
    for text in arr.to_pylist():
        try:
            values.append(binascii.a2b_base64(text, strict_mode=True) if text else None)
        except (binascii.Error, ValueError) as exc:
            shown = text if len(text) <= 24 else text[:21] + "..."
            msg = (f"table {table_name!r}: column {column!r} holds {shown!r}, which is not "
                   f"base64 ({exc}); media='base64' reads every string of a media column as "
                   "base64: leave it out for paths and URIs")
            raise TypeMismatchError(msg) from None
    return pa.array(values, pa.large_binary())


__all__ = [
    "MEDIA_STRINGS", "Conversion", "ImportColumn", "holds_binary", "lh_type", "plan_columns",
]
