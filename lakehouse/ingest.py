"""Bulk ingest: media files from folders, globs and S3 prefixes into a media column, and whole
tables from Parquet shards (the Hugging Face layout included), CSV files and in-memory frames.

Each function streams its input in bounded memory into a single insert, so it adds exactly one
version to the table: a failure half way leaves the table as it was. The import functions create
the table first (from the types found in the input) and drop it again if the import fails, so a
failed import leaves no half-made table behind.

>>> t = db.create_table("photos", {"image": lh.Image, "label": lh.String})  # doctest: +SKIP
>>> label = lambda uri: {"label": parent_folder(uri)}  # the name of the file's folder
>>> t.insert_files("photos/**/*.jpg", extra=label)  # doctest: +SKIP
>>> db.import_parquet("mnist", "s3://bucket/mnist/*.parquet")  # doctest: +SKIP
>>> db.create_table("scores", source=pl.DataFrame({"a": [1]}))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import types as T
from lakehouse.catalog import validate_name
from lakehouse.errors import (
    ColumnNotFoundError,
    InvalidNameError,
    MediaError,
    StorageError,
    TypeMismatchError,
)
from lakehouse.exec import writes
from lakehouse.exec.intake import MEDIA_CHUNK_ROWS
from lakehouse.exec.writes import WriteResult
from lakehouse.media.fetch import local_path, to_uri
from lakehouse.media.pool import pmap
from lakehouse.metadata import ColumnDef, TableDef
from lakehouse.storage import s3_filesystem, s3_options

if TYPE_CHECKING:
    import fsspec

    from lakehouse.catalog import Catalog
    from lakehouse.table import Table

#: File extensions ``insert_files`` looks for by default, by the media kind of the column.
MEDIA_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"),
    "video": ("mp4", "mov", "mkv", "webm", "avi"),
    "audio": ("wav", "mp3", "ogg", "flac", "m4a"),
    "document": ("pdf", "html", "htm", "md", "txt"),
}
PARQUET_EXTENSIONS = ("parquet", "pq", "parq")
CSV_EXTENSIONS = ("csv", "tsv", "csv.gz", "tsv.gz", "csv.bz2", "tsv.bz2")
#: Rows per batch read from Parquet: small when rows hold media bytes, so memory stays bounded.
MEDIA_BATCH_ROWS = 256
BATCH_ROWS = 65_536

_ON_ERROR = ("abort", "ignore")
_IF_EXISTS = ("error", "ignore", "replace")
_GLOB_CHARS = frozenset("*?[")
_HF_MEDIA: dict[str, T.ColumnType] = {
    "Image": T.Image, "Audio": T.Audio, "Video": T.Video, "Pdf": T.Document,
}
_ARRAY_DTYPES = {
    "halffloat": "float16", "float": "float32", "double": "float64",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "int32", "uint32": "int64", "uint64": "int64", "bool": "bool",
}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2"}


# --------------------------------------------------------------------------------------------
# Media files
# --------------------------------------------------------------------------------------------


def insert_files(table: Table, sources: Any, *, column: str | None = None,
                 recursive: bool = True, extensions: Sequence[str] | None = None,
                 on_error: str = "abort", progress: bool = True,
                 extra: Callable[[str], Mapping[str, Any]] | None = None) -> WriteResult:
    """Insert one row per media file found in ``sources``, in one commit (one new version).

    ``sources`` is a file, a folder, a glob (``"photos/**/*.jpg"``), an ``s3://`` prefix or
    glob, or a list of those. Folders are walked (with their subfolders unless
    ``recursive=False``; hidden files and folders are skipped) and globs expanded; the files
    found are kept when their extension is one of ``extensions`` (by default the usual ones
    for the column's media kind, see :data:`MEDIA_EXTENSIONS`), sorted, and inserted into
    ``column`` (by default the table's only media column). A file named explicitly is always
    inserted. S3 sources are listed with the table's storage options (or the AWS variables).

    ``extra(uri)`` may return the other column values of a file's row, for instance a label
    taken from its folder; ``uri`` is the source URI the table records (``t.image.fileurl``):
    ``file:///...`` for local files, ``s3://...`` for objects.

    A file that cannot be read or is not a valid image (video, ...) stops the insert with a
    :class:`~lakehouse.errors.MediaError` and nothing is written (``on_error="abort"``), or is
    kept with a null value and its error recorded (``on_error="ignore"``). No file found at
    all is a ``MediaError`` naming the sources.

    >>> t = db.create_table("pets", {"image": lh.Image, "label": lh.String})  # doctest: +SKIP
    >>> t.insert_files("pets/", extra=lambda uri: {"label": parent_folder(uri)})  # doctest: +SKIP
    WriteResult(rows_written=120, rows_with_errors=0, version=2)
    """
    _check_choice("on_error", on_error, _ON_ERROR)
    if not isinstance(sources, str | os.PathLike):
        sources = list(sources)  # listed twice: to expand, and to name them in errors
    target = table._target()
    media = _media_column(target.tdef, table.name, column)
    suffixes = _suffixes(extensions, media.type.kind)
    files = expand_sources(sources, storage_options=table._location.storage_options,
                           recursive=recursive, extensions=suffixes)
    if not files:
        wanted = ", ".join("." + s for s in suffixes) if suffixes else "any extension"
        msg = (f"table {table.name!r}: no {media.type.kind} files found in "
               f"{_describe_sources(sources)} (looked for {wanted})")
        raise MediaError(msg)
    uris = [f if f.startswith("s3://") else to_uri(f) for f in files]
    rows = _file_rows(uris, media.name, extra, table.name)
    return writes.insert(target, rows, progress=progress, on_error=on_error, total=len(uris))


def parent_folder(uri: str) -> str:
    """The name of the folder holding a file, for labels taken from folder names.

    >>> parent_folder("file:///data/pets/cat/001.jpg")
    'cat'
    >>> parent_folder("s3://bucket/pets/dog/002.jpg")
    'dog'
    """
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    return PurePosixPath(path.replace("\\", "/")).parent.name


def expand_sources(sources: Any, *, storage_options: Mapping[str, str] | None = None,
                   recursive: bool = True,
                   extensions: Sequence[str] | None = None) -> list[str]:
    """The files named by ``sources`` (paths, folders, globs, ``s3://`` prefixes or globs, or a
    list of them): absolute local paths and ``s3://`` URIs, sorted within each source, without
    duplicates. Folder walks and globs keep only names ending in one of ``extensions`` (all
    when None); files named explicitly are always kept.

    >>> expand_sources("no/such/folder")
    []
    """
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    suffixes = tuple("." + e.lower().lstrip(".") for e in extensions) if extensions else None
    found: list[str] = []
    seen: set[str] = set()
    fs: fsspec.AbstractFileSystem | None = None
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise TypeMismatchError(f"a source must be a path or URI, got {item!r}")
        text = os.fspath(item)
        if _is_s3(text):
            if fs is None:
                fs = s3_filesystem(s3_options(dict(storage_options or {})))
            matches = _expand_s3(fs, text, recursive, suffixes)
        else:
            matches = _expand_local(text, recursive, suffixes)
        for match in matches:
            if match not in seen:
                seen.add(match)
                found.append(match)
    return found


def _expand_local(text: str, recursive: bool, suffixes: tuple[str, ...] | None) -> list[str]:
    path = local_path(text) if text.startswith("file://") else text
    path = os.path.expanduser(path or "")
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if os.path.isdir(path):
        root = Path(path)
        walk = root.rglob("*") if recursive else root.iterdir()
        files = [p for p in walk
                 if not any(part.startswith(".") for part in p.relative_to(root).parts)
                 and p.is_file() and _wanted(p.name, suffixes)]
        return sorted(str(p.resolve()) for p in files)
    if _GLOB_CHARS & set(path):
        matches = glob.glob(path, recursive=recursive)
        return sorted(os.path.abspath(m) for m in matches
                      if os.path.isfile(m) and _wanted(m, suffixes))
    return []


def _expand_s3(fs: fsspec.AbstractFileSystem, text: str, recursive: bool,
               suffixes: tuple[str, ...] | None) -> list[str]:
    path = text.split("://", 1)[1].rstrip("/")
    try:
        if _GLOB_CHARS & set(path):
            entries = fs.glob(path, detail=True)
            keys = [k for k, info in entries.items()
                    if info.get("type") == "file" and _wanted(k, suffixes)]
        elif fs.isfile(path):
            keys = [path]
        elif fs.isdir(path):
            keys = [k for k in fs.find(path, maxdepth=None if recursive else 1)
                    if _wanted(k, suffixes)
                    and not any(p.startswith(".") for p in k[len(path) + 1:].split("/"))]
        else:  # a key prefix such as s3://bucket/photos/img_
            parent, _, leaf = path.rpartition("/")
            keys = [k for k in fs.find(parent, prefix=leaf) if _wanted(k, suffixes)
                    and (recursive or "/" not in k[len(parent) + 1:])] if parent else []
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise StorageError(f"cannot list {text}: {type(exc).__name__}: {exc}") from exc
    return sorted("s3://" + k.lstrip("/") for k in keys)


def _wanted(name: str, suffixes: tuple[str, ...] | None) -> bool:
    return suffixes is None or name.lower().endswith(suffixes)


def _is_s3(text: str) -> bool:
    return text.startswith(("s3://", "s3a://"))


def _suffixes(extensions: Sequence[str] | None, kind: str) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = [extensions]
    chosen = extensions if extensions is not None else MEDIA_EXTENSIONS.get(kind, ())
    return tuple(e.lower().lstrip(".") for e in chosen)


def _media_column(tdef: TableDef, table: str, column: str | None) -> ColumnDef:
    if column is not None:
        found = tdef.get(column, table)
        if not found.type.is_media or found.is_computed:
            what = "computed" if found.is_computed else str(found.type)
            raise TypeMismatchError(
                f"table {table!r}: column {column!r} is {what}; insert_files() needs a media "
                "column (lh.Image, lh.Video, lh.Audio or lh.Document) that is not computed"
            )
        return found
    media = [c for c in tdef.base_columns() if c.type.is_media]
    if len(media) != 1:
        names = ", ".join(repr(c.name) for c in media)
        what = f"{len(media)} media columns ({names})" if media else "no media column"
        raise TypeMismatchError(
            f"table {table!r} has {what}; name the one to fill with column=..." if media else
            f"table {table!r} has {what}; add one, e.g. t.add_column(image=lh.Image)"
        )
    return media[0]


def _file_rows(uris: list[str], column: str, extra: Callable[[str], Mapping[str, Any]] | None,
               table: str) -> Iterator[list[dict[str, Any]]]:
    """The rows of the files, in chunks of the size the media intake works on."""
    for start in range(0, len(uris), MEDIA_CHUNK_ROWS):
        rows = []
        for uri in uris[start:start + MEDIA_CHUNK_ROWS]:
            row: dict[str, Any] = {}
            if extra is not None:
                values = extra(uri)
                if not isinstance(values, Mapping):
                    msg = (f"table {table!r}: extra({uri!r}) must return a dict of column "
                           f"values, got {type(values).__name__}")
                    raise TypeMismatchError(msg)
                if column in values:
                    msg = (f"table {table!r}: extra({uri!r}) returned a value for {column!r}, "
                           "the column the file itself goes into")
                    raise TypeMismatchError(msg)
                row.update(values)
            row[column] = uri
            rows.append(row)
        yield rows


def _describe_sources(sources: Any) -> str:
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    return ", ".join(repr(os.fspath(s)) if isinstance(s, str | os.PathLike) else repr(s)
                     for s in items) or "(no sources)"


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
    if _is_string(t) or pa.types.is_null(t) or pa.types.is_time(t):
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
    if _is_list(t):
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
    while _is_list(t):
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
    return _is_binary(names["bytes"]) and ("path" not in names or _is_string(names["path"]))


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t))


def _is_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t))


def _holds_binary(t: pa.DataType) -> bool:
    if _is_binary(t):
        return True
    if pa.types.is_struct(t):
        return any(_holds_binary(t.field(i).type) for i in range(t.num_fields))
    if _is_list(t) or pa.types.is_dictionary(t):
        return _holds_binary(t.value_type)
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
class _Column:
    """One imported column: its name in the input, in the table, and its type."""

    source: str
    name: str
    type: T.ColumnType


def _plan(schema: pa.Schema, *, table: str, overrides: Mapping[str, Any] | None,
          rename: Mapping[str, str] | None, metadata: Sequence[Mapping[bytes, bytes] | None],
          ) -> list[_Column]:
    """The table's columns for an input schema, with the caller's types and names applied."""
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
        raise ColumnNotFoundError(f"table {table!r}: the input has no column {names} (its "
                                  f"columns: {', '.join(schema.names)})")
    columns: list[_Column] = []
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
        columns.append(_Column(field.name, target, ctype))
    bad = [c.name for c in columns
           if not c.name.isidentifier() or c.name.startswith("_")]
    if bad:
        names = ", ".join(repr(n) for n in bad)
        example = ", ".join(f"{n!r}: {_suggest(n)!r}" for n in bad[:3])
        what = "is not a valid column name" if len(bad) == 1 else "are not valid column names"
        raise InvalidNameError(
            f"table {table!r}: {names} {what} "
            "(use letters, digits and underscores, not starting with a digit or an underscore); "
            f"rename them with rename={{{example}}} or leave them out with schema={{name: None}}"
        )
    seen: set[str] = set()
    for c in columns:
        if c.name in seen:
            raise InvalidNameError(f"table {table!r}: two input columns would both be named "
                                   f"{c.name!r}; rename one with rename=")
        seen.add(c.name)
    if not columns:
        raise TypeMismatchError(f"table {table!r}: the input has no columns to import")
    return columns


def _suggest(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name).strip("_")
    if not cleaned or not cleaned.isidentifier():
        cleaned = "c_" + cleaned
    return cleaned


def _batch_rows(schema: pa.Schema, columns: list[_Column], given: int | None) -> int:
    if given is not None:
        if given < 1:
            raise TypeMismatchError(f"batch_rows must be a positive number, got {given}")
        return given
    media = any(c.type.is_media or _holds_binary(schema.field(c.source).type) for c in columns)
    return MEDIA_BATCH_ROWS if media else BATCH_ROWS


# --------------------------------------------------------------------------------------------
# Batches: input -> the table's types
# --------------------------------------------------------------------------------------------


def _convert(batch: pa.RecordBatch, columns: list[_Column], base: str | None,
             table: str) -> pa.Table:
    """One input batch as the table's columns; media paths are resolved against ``base``."""
    arrays = []
    for c in columns:
        arr = batch.column(c.source)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if c.type.is_media:
            arr = _media_sources(arr, base)
        elif c.type.kind == "json" or (
                _is_string(arr.type) and c.type.kind in ("timestamp", "date", "array")):
            pass  # JSON values and ISO text are converted (and checked) row by row on insert
        else:
            arr = _cast(arr, c, table)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=[c.name for c in columns])


def _cast(arr: pa.Array, column: _Column, table: str) -> pa.Array:
    target = column.type.arrow_type()
    if arr.type == target:
        return arr
    try:
        return pc.cast(arr, options=pc.CastOptions(target, allow_time_truncate=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        msg = (f"table {table!r}: column {column.name!r} ({arr.type}) cannot be stored as "
               f"{column.type}: {exc}")
        raise TypeMismatchError(msg) from None


def _media_sources(arr: pa.Array, base: str | None) -> pa.Array:
    """A media column as the intake takes it: bytes, paths or URIs (relative paths made
    absolute against ``base``, empty strings null), or the Hugging Face struct."""
    t = arr.type
    if pa.types.is_string_view(t):
        arr = arr.cast(pa.string())
    elif pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        arr = arr.cast(pa.large_binary())
    if _is_string(arr.type):
        return pa.array([_resolve(v, base) for v in arr.to_pylist()], pa.string())
    if pa.types.is_struct(t) and base is not None and t.get_field_index("path") >= 0:
        children = arr.flatten()
        i = t.get_field_index("path")
        children[i] = pa.array([_resolve(v, base) for v in children[i].to_pylist()],
                               t.field(i).type)
        fields = [t.field(j) for j in range(t.num_fields)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=pc.is_null(arr))
    return arr


def _resolve(value: str | None, base: str | None) -> str | None:
    if not value:
        return None
    if base is None or "://" in value or os.path.isabs(value) or value.startswith("~"):
        return value
    if _is_s3(base):
        bucket, _, key = base.split("://", 1)[1].partition("/")
        return f"s3://{bucket}/" + posixpath.normpath(posixpath.join(key, value)).lstrip("/")
    return os.path.normpath(os.path.join(base, value))


def _folder(location: str) -> str:
    """The folder holding a local file or an S3 object."""
    if _is_s3(location):
        return location.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(location))


# --------------------------------------------------------------------------------------------
# Creating a table and filling it in one insert
# --------------------------------------------------------------------------------------------


def _create_and_fill(catalog: Catalog, name: str, columns: list[_Column],
                     batches: Callable[[], Iterator[pa.Table]], *, if_exists: str,
                     progress: bool, on_error: str, total: int | None) -> Table:
    """Create the table and insert every batch in one commit. If that fails, a table that did
    not exist before is dropped again; a replaced one gets its previous content back."""
    existed = catalog._is_table(name)
    if existed and if_exists == "ignore":
        return catalog.get_table(name)
    previous = catalog.get_table(name).version if existed and if_exists == "replace" else None
    table = catalog.create_table(name, {c.name: c.type for c in columns}, if_exists=if_exists)
    try:
        writes.insert(table._target(), batches(), progress=progress, on_error=on_error,
                      total=total)
    except BaseException as exc:
        try:
            if previous is None:
                catalog.drop_table(name, if_not_exists="ignore")
            else:
                table.revert(to=previous)
        except Exception as cleanup:  # keep the first error; say what was left behind
            exc.add_note(f"the half-made table {name!r} could not be removed: {cleanup}")
        raise
    return table


def _check_import(catalog: Catalog, name: str, if_exists: str, on_error: str) -> bool:
    """Validate the common arguments; True when the import should be skipped (the table exists
    and ``if_exists="ignore"``)."""
    validate_name(name)
    _check_choice("if_exists", if_exists, _IF_EXISTS)
    _check_choice("on_error", on_error, _ON_ERROR)
    return if_exists == "ignore" and catalog._is_table(name)


def _source_options(catalog: Catalog) -> dict[str, str]:
    return s3_options(catalog._location.storage_options)


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------


def import_parquet(catalog: Catalog, name: str, sources: Any, *,
                   schema: Mapping[str, Any] | None = None,
                   rename: Mapping[str, str] | None = None, if_exists: str = "error",
                   batch_rows: int | None = None, progress: bool = True,
                   on_error: str = "abort") -> Table:
    """Create table ``name`` from Parquet shards and fill it in one insert (one version).

    ``sources`` is a Parquet file, a folder of them, a glob (``"data/train-*.parquet"``), an
    ``s3://`` prefix or glob, or a list of those. The shards are streamed batch by batch
    (``batch_rows`` rows, by default 256 when rows hold binary data such as images, else
    65,536), so memory stays bounded whatever their size; a progress bar shows the rows done
    out of the total in the Parquet footers.

    Column types follow :func:`lh_type`. A Hugging Face image column (a struct of ``bytes`` and
    ``path``, or any column the ``huggingface`` schema metadata declares as an Image, Audio,
    Video or Pdf feature) becomes the matching media column. ``schema`` sets the type of named
    columns (``{"image": lh.Image}`` for a plain binary column, ``{"n": lh.Float}``), or leaves
    a column out (``{"extra": None}``); ``rename`` renames input columns
    (``{"Sale Price": "price"}``): column names must be identifiers not starting with ``_``.
    Columns pandas wrote for a DataFrame index are left out.

    ``if_exists``: ``"error"`` (default), ``"ignore"`` (return the existing table, import
    nothing) or ``"replace"``. If the import fails (a bad value with ``on_error="abort"``, an
    unreadable shard), a table that did not exist before the call is dropped again, and a
    replaced one gets its previous content back (as a new version), before the error is
    raised. With ``on_error="ignore"``, rows whose media cannot be read are kept with the
    error recorded.

    >>> t = db.import_parquet("beans", "hf/beans/train-*.parquet")  # doctest: +SKIP
    >>> t.select(t.image.width, t.label).head(3)  # doctest: +SKIP
    """
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    if _check_import(catalog, name, if_exists, on_error):
        return catalog.get_table(name)
    files = expand_sources(sources, storage_options=_source_options(catalog),
                           extensions=PARQUET_EXTENSIONS)
    if not files:
        raise StorageError(f"table {name!r}: no Parquet files found in "
                           f"{_describe_sources(sources)}")
    remote = {_is_s3(f) for f in files}
    if len(remote) > 1:
        raise TypeMismatchError(f"table {name!r}: import local and s3:// shards separately "
                                "(one filesystem per import)")
    filesystem = None
    paths = files
    if remote == {True}:
        fs = s3_filesystem(_source_options(catalog))
        filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
        paths = [f.split("://", 1)[1] for f in files]
    try:
        dataset = pads.dataset(paths, format="parquet", filesystem=filesystem)
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"table {name!r}: cannot open the Parquet shards: {exc}") from exc
    fragments = list(dataset.get_fragments())
    footers = pmap(_footer, list(zip(fragments, files, strict=True)))
    try:
        unified = pa.unify_schemas([s for s, _ in footers])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StorageError(f"table {name!r}: the Parquet shards have different schemas: {exc}") \
            from exc
    columns = _plan(unified, table=name, overrides=schema, rename=rename,
                    metadata=[s.metadata for s, _ in footers])
    rows = _batch_rows(unified, columns, batch_rows)
    read = [c.source for c in columns]
    readahead = 2 if rows <= MEDIA_BATCH_ROWS else 8

    def batches() -> Iterator[pa.Table]:
        for fragment, uri in zip(fragments, files, strict=True):
            base = _folder(uri)
            reader = fragment.to_batches(schema=unified, columns=read, batch_size=rows,
                                         batch_readahead=readahead, fragment_readahead=1)
            while True:
                try:
                    batch = next(reader)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as exc:
                    msg = f"table {name!r}: cannot read Parquet shard {uri}: {exc}"
                    raise StorageError(msg) from exc
                yield _convert(batch, columns, base, name)

    total = sum(n for _, n in footers)
    return _create_and_fill(catalog, name, columns, batches, if_exists=if_exists,
                            progress=progress, on_error=on_error, total=total)


def _footer(item: tuple[Any, str]) -> tuple[pa.Schema, int]:
    """A shard's schema and row count, from its footer."""
    fragment, uri = item
    try:
        return fragment.physical_schema, fragment.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"cannot read Parquet shard {uri}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def import_csv(catalog: Catalog, name: str, path: Any, *,
               schema: Mapping[str, Any] | None = None,
               rename: Mapping[str, str] | None = None, if_exists: str = "error",
               progress: bool = True, on_error: str = "abort", **csv_options: Any) -> Table:
    """Create table ``name`` from a CSV file (local or ``s3://``; also a glob or a list of files
    with the same columns) and fill it in one insert (one version), streaming it in blocks.

    Column types are inferred from the first rows (integers, floats, booleans, ISO dates and
    timestamps, else strings); ``schema`` sets the type of named columns, for a column whose
    first rows mislead the inference, or leaves one out (``{"note": None}``). A column given as
    a media type (``schema={"image": lh.Image}``) holds paths or URIs of media files: relative
    paths are resolved against the CSV file's folder, and the files are read into the table.
    ``rename``, ``if_exists``, ``on_error`` and the clean-up after a failure are as for
    :func:`import_parquet`. Other keywords are options of ``pyarrow.csv`` (``delimiter``,
    ``skip_rows``, ``column_names``, ``null_values``, ...); ``.tsv`` files default to tabs.

    >>> t = db.import_csv("pets", "pets/labels.csv", schema={"file": lh.Image})  # doctest: +SKIP
    """
    if _check_import(catalog, name, if_exists, on_error):
        return catalog.get_table(name)
    files = expand_sources(path, storage_options=_source_options(catalog),
                           extensions=CSV_EXTENSIONS)
    if not files:
        raise StorageError(f"table {name!r}: no CSV files found in {_describe_sources(path)}")
    options = dict(csv_options)
    if "delimiter" not in options and files[0].lower().endswith((".tsv", ".tsv.gz", ".tsv.bz2")):
        options["delimiter"] = "\t"
    overrides = dict(schema or {})
    read_types = {k: _csv_read_type(v, k) for k, v in overrides.items() if v is not None}
    opener = _CsvOpener(catalog, name, options)
    with opener.open(files[0], read_types) as first:
        inferred = first.schema
    columns = _plan(inferred, table=name, overrides=overrides, rename=rename, metadata=[])
    fixed = {f.name: f.type for f in inferred}  # later files are read with these types

    def batches() -> Iterator[pa.Table]:
        for uri in files:
            with opener.open(uri, fixed) as reader:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except pa.ArrowInvalid as exc:
                        msg = (f"table {name!r}: cannot read {uri}: {exc}; the column types are "
                               "guessed from the first rows: give the column's type with "
                               "schema={...}")
                        raise TypeMismatchError(msg) from None
                    except OSError as exc:
                        raise StorageError(f"table {name!r}: cannot read {uri}: {exc}") from exc
                    yield _convert(batch, columns, _folder(uri), name)

    return _create_and_fill(catalog, name, columns, batches, if_exists=if_exists,
                            progress=progress, on_error=on_error, total=None)


def _csv_read_type(spec: Any, column: str) -> pa.DataType:
    """How a CSV column the caller typed is parsed: numbers and bools natively, the rest as
    text converted on insert."""
    ctype = T.parse_type(spec, column=column)
    if ctype.kind in ("int", "float", "bool", "string"):
        return ctype.arrow_type()
    return pa.string()


class _CsvOpener:
    """Opens CSV files (local or S3) as streaming Arrow readers with the caller's options."""

    def __init__(self, catalog: Catalog, table: str, options: dict[str, Any]) -> None:
        from pyarrow import csv

        self._csv = csv
        self._table = table
        self._catalog = catalog
        self._fs: fsspec.AbstractFileSystem | None = None
        self._kinds: dict[str, dict[str, Any]] = {"read": {}, "parse": {}, "convert": {}}
        classes = {"read": csv.ReadOptions, "parse": csv.ParseOptions,
                   "convert": csv.ConvertOptions}
        for key, value in options.items():
            kind = next((k for k, cls in classes.items() if hasattr(cls(), key)), None)
            if kind is None:
                raise TypeMismatchError(f"table {table!r}: unknown CSV option {key!r}")
            self._kinds[kind][key] = value

    @contextlib.contextmanager
    def open(self, uri: str, column_types: dict[str, pa.DataType]) -> Iterator[Any]:
        """A streaming reader on the file, closed (with its S3 object) on exit."""
        csv = self._csv
        convert = dict(self._kinds["convert"])
        convert["column_types"] = {**(convert.get("column_types") or {}), **column_types}
        args = {"read_options": csv.ReadOptions(**self._kinds["read"]),
                "parse_options": csv.ParseOptions(**self._kinds["parse"]),
                "convert_options": csv.ConvertOptions(**convert)}
        with contextlib.ExitStack() as stack:
            source: Any = uri
            try:
                if _is_s3(uri):
                    if self._fs is None:
                        self._fs = s3_filesystem(_source_options(self._catalog))
                    source = stack.enter_context(self._fs.open(uri.split("://", 1)[1], "rb"))
                    codec = _COMPRESSION.get(os.path.splitext(uri)[1].lower())
                    if codec:
                        source = pa.CompressedInputStream(source, codec)
                reader = csv.open_csv(source, **args)
            except pa.ArrowInvalid as exc:
                raise TypeMismatchError(f"table {self._table!r}: cannot read {uri}: {exc}") \
                    from None
            except OSError as exc:
                raise StorageError(f"table {self._table!r}: cannot read {uri}: {exc}") from exc
            stack.callback(reader.close)
            yield reader


# --------------------------------------------------------------------------------------------
# In-memory frames, and create_table(source=...)
# --------------------------------------------------------------------------------------------


def import_frame(catalog: Catalog, name: str, data: Any, *,
                 schema: Mapping[str, Any] | None = None,
                 rename: Mapping[str, str] | None = None, if_exists: str = "error",
                 batch_rows: int | None = None, progress: bool = True,
                 on_error: str = "abort") -> Table:
    """Create table ``name`` from a Polars or pandas DataFrame, an Arrow table or an Arrow
    record batch reader, with the column types inferred as for :func:`import_parquet`, and fill
    it in one insert. Media columns (``schema={"image": lh.Image}``, or Hugging Face image
    structs) take bytes, paths or URIs; relative paths are taken from the working directory.

    >>> t = import_frame(db, "scores", df)  # doctest: +SKIP
    """
    if _check_import(catalog, name, if_exists, on_error):
        return catalog.get_table(name)
    total: int | None
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.DataFrame):
        data = data.to_arrow()
    elif type(data).__module__.startswith("pandas") and hasattr(data, "to_numpy"):
        data = pa.Table.from_pandas(data, preserve_index=False)
    elif isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        arrow_schema, total = data.schema, data.num_rows
    elif isinstance(data, pa.RecordBatchReader):
        arrow_schema, total = data.schema, None
    else:
        raise TypeMismatchError(
            f"table {name!r}: cannot import {type(data).__name__}; pass a Polars or pandas "
            "DataFrame, an Arrow table or record batch reader, or a path to Parquet or CSV files"
        )
    columns = _plan(arrow_schema, table=name, overrides=schema, rename=rename,
                    metadata=[arrow_schema.metadata])
    rows = _batch_rows(arrow_schema, columns, batch_rows)
    source = data

    def batches() -> Iterator[pa.Table]:
        stream = source.to_batches(max_chunksize=rows) if isinstance(source, pa.Table) \
            else source
        for batch in stream:
            yield _convert(batch, columns, None, name)

    return _create_and_fill(catalog, name, columns, batches, if_exists=if_exists,
                            progress=progress, on_error=on_error, total=total)


def create_from_source(catalog: Catalog, name: str, source: Any, *,
                       schema: Mapping[str, Any] | None = None, **options: Any) -> Table:
    """Create and fill a table from ``source``: Parquet or CSV files (by their extension;
    folders and other globs are read as Parquet), or an in-memory frame. This is what
    ``db.create_table(name, source=...)`` does.

    >>> t = db.create_table("t", source="shards/*.parquet")  # doctest: +SKIP
    """
    paths = [source] if isinstance(source, str | os.PathLike) else source
    if isinstance(paths, list | tuple) and paths \
            and all(isinstance(p, str | os.PathLike) for p in paths):
        if all(os.fspath(p).lower().endswith(tuple("." + e for e in CSV_EXTENSIONS))
               for p in paths):
            return import_csv(catalog, name, list(paths), schema=schema, **options)
        return import_parquet(catalog, name, list(paths), schema=schema, **options)
    return import_frame(catalog, name, source, schema=schema, **options)


def _check_choice(param: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TypeMismatchError(f"{param} must be one of {', '.join(map(repr, allowed))}, "
                                f"got {value!r}")


__all__ = [
    "BATCH_ROWS", "CSV_EXTENSIONS", "MEDIA_BATCH_ROWS", "MEDIA_EXTENSIONS", "PARQUET_EXTENSIONS",
    "create_from_source", "expand_sources", "import_csv", "import_frame", "import_parquet",
    "insert_files", "lh_type", "parent_folder",
]
