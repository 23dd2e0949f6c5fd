"""Creating a table from Parquet shards (the Hugging Face layout included), CSV files or an
in-memory frame, and filling it in one insert (one version). The table is created from the types
found in the input (see :mod:`lakehouse.ingest.arrow_types`); if the import fails, a table that
did not exist before is dropped again and a replaced one gets its previous content back.

The functions here return an :class:`ImportResult` (what was written, and the table); the
catalog's methods return the table.

>>> pl.DataFrame({"player": ["ann", "bo"], "score": [3, 5]}).write_parquet("scores.parquet")
>>> db.import_parquet("scores", "scores.parquet", progress=False).count()
2
>>> import_parquet(db, "copy", "scores.parquet", progress=False).rows_written
2
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from pyarrow import csv

from lakehouse import types as T
from lakehouse.errors import InvalidOptionError, StorageError, TypeMismatchError, check_choice
from lakehouse.exec import writes
from lakehouse.exec.intake import MEDIA_CHUNK_ROWS, is_pandas_frame
from lakehouse.ingest.arrow_types import ImportColumn, convert_batch, holds_binary, plan_columns
from lakehouse.ingest.files import describe_sources, expand_sources, folder_of, is_s3
from lakehouse.media.pool import pmap
from lakehouse.metadata import ON_ERROR
from lakehouse.names import validate_name
from lakehouse.storage import s3_filesystem, s3_options

if TYPE_CHECKING:
    import fsspec

    from lakehouse.catalog import Catalog
    from lakehouse.table import Table

PARQUET_EXTENSIONS = ("parquet", "pq", "parq")
CSV_EXTENSIONS = ("csv", "tsv", "csv.gz", "tsv.gz", "csv.bz2", "tsv.bz2")
#: Rows per batch read from Parquet: small when rows hold media bytes, so memory stays bounded.
MEDIA_BATCH_ROWS = MEDIA_CHUNK_ROWS
BATCH_ROWS = 65_536

_IF_EXISTS = ("error", "ignore", "replace", "append")
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2"}


@dataclasses.dataclass(frozen=True)
class ImportResult(writes.WriteResult):
    """What an import did: rows written, rows kept with a recorded error (a media value that
    could not be read with ``on_error="ignore"``, a computed value that failed), the version
    it created (the table's version when nothing was imported), and the table itself.

    ``db.import_parquet``, ``db.import_csv`` and ``db.create_table(source=...)`` return the
    table; the functions of this module return this result, for a caller that reports what
    was written (the ``lakehouse ingest`` command).

    >>> result = import_frame(db, "scores", pl.DataFrame({"score": [3, 5]}), progress=False)
    >>> result
    ImportResult(rows_written=2, rows_with_errors=0, version=2)
    >>> result.table.count()
    2
    """

    table: Table = dataclasses.field(repr=False, compare=False)


# --------------------------------------------------------------------------------------------
# Creating a table and filling it in one insert
# --------------------------------------------------------------------------------------------


def _create_and_fill(catalog: Catalog, name: str, columns: list[ImportColumn],
                     batches: Callable[[], Iterator[pa.Table]], *, if_exists: str,
                     progress: bool, on_error: str, total: int | None) -> ImportResult:
    """Create the table and insert every batch in one commit. If that fails, a table that did
    not exist before is dropped again; a replaced one gets its previous content back."""
    existed = catalog.has_table(name)
    if existed and if_exists == "ignore":
        return _nothing_imported(catalog.get_table(name))
    if existed and if_exists == "append":  # one insert: all rows or, on an error, none
        table = catalog.get_table(name)
        return _imported(table, _fill(table, batches, progress=progress, on_error=on_error,
                                      total=total))
    if if_exists == "append":
        if_exists = "error"  # a new table
    previous = catalog.get_table(name).version if existed and if_exists == "replace" else None
    table = catalog.create_table(name, {c.name: c.type for c in columns}, if_exists=if_exists)
    try:
        written = _fill(table, batches, progress=progress, on_error=on_error, total=total)
    except BaseException as exc:
        try:
            if previous is None:
                catalog.drop_table(name, if_not_exists="ignore")
            else:
                table.revert(to=previous)
        except Exception as cleanup:  # keep the first error; say what was left behind
            exc.add_note(f"the half-made table {name!r} could not be removed: {cleanup}")
        raise
    return _imported(table, written)


def _imported(table: Table, written: writes.WriteResult) -> ImportResult:
    return ImportResult(written.rows_written, written.rows_with_errors, written.version, table)


def _nothing_imported(table: Table) -> ImportResult:
    """The result of an import skipped because the table exists (``if_exists="ignore"``)."""
    return ImportResult(0, 0, table.table_version, table)


def _fill(table: Table, batches: Callable[[], Iterator[pa.Table]], *, progress: bool,
          on_error: str, total: int | None) -> writes.WriteResult:
    """One insert of every batch; redone from the sources if a concurrent definition change
    asks for it (``batches()`` reads them again)."""
    return table.write_rows(lambda ctx: writes.insert(ctx, batches(), progress=progress,
                                                      on_error=on_error, total=total),
                            what="the import", progress=progress)


def _check_import(catalog: Catalog, name: str, if_exists: str, on_error: str) -> bool:
    """Validate the common arguments; True when the import should be skipped (the table exists
    and ``if_exists="ignore"``)."""
    validate_name(name)
    check_choice("if_exists", if_exists, _IF_EXISTS)
    check_choice("on_error", on_error, ON_ERROR)
    return if_exists == "ignore" and catalog.has_table(name)


def _source_options(catalog: Catalog) -> dict[str, str]:
    return s3_options(catalog.location.storage_options)


def _batch_rows(schema: pa.Schema, columns: list[ImportColumn], given: int | None) -> int:
    if given is not None:
        if given < 1:
            raise InvalidOptionError(f"batch_rows must be a positive number, got {given}")
        return given
    media = any(c.type.is_media or holds_binary(schema.field(c.source).type) for c in columns)
    return MEDIA_BATCH_ROWS if media else BATCH_ROWS


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------


def import_parquet(catalog: Catalog, name: str, sources: Any, *,
                   schema: Mapping[str, Any] | None = None,
                   rename: Mapping[str, str] | None = None, if_exists: str = "error",
                   batch_rows: int | None = None, progress: bool = True,
                   on_error: str = "abort") -> ImportResult:
    """Create table ``name`` from Parquet shards and fill it in one insert (one version), and
    say what was written (:class:`ImportResult`).

    ``sources`` is a Parquet file, a folder of them, a glob (``"data/train-*.parquet"``), an
    ``s3://`` prefix or glob, or a list of those. The shards are streamed batch by batch
    (``batch_rows`` rows, by default 64 when rows hold binary data such as images, else
    65,536), so memory stays bounded whatever their size; a progress bar shows the rows done
    out of the total in the Parquet footers.

    Column types follow :func:`lh_type`. A Hugging Face image column (a struct of ``bytes`` and
    ``path``, or any column the ``huggingface`` schema metadata declares as an Image, Audio,
    Video or Pdf feature) becomes the matching media column. ``schema`` sets the type of named
    columns (``{"image": lh.Image}`` for a plain binary column, ``{"n": lh.Float}``), or leaves
    a column out (``{"extra": None}``); ``rename`` renames input columns
    (``{"Sale Price": "price"}``): column names must be identifiers not starting with ``_``.
    Columns pandas wrote for a DataFrame index are left out. Relative paths in a media column
    (the ``path`` of a Hugging Face image) are resolved against the shard's folder and must
    stay inside it, as for :func:`import_csv`.

    ``if_exists``: ``"error"`` (default), ``"ignore"`` (import nothing: the result holds the
    existing table and 0 rows written), ``"replace"``, or ``"append"`` (insert the rows into
    the existing table, in one commit, checked against its column types; a new table when there
    is none). If the import fails (a bad value with ``on_error="abort"``, an unreadable
    shard), a table that did not exist before the call is dropped again, and a
    replaced one gets its previous content back (as a new version), before the error is
    raised. With ``on_error="ignore"``, rows whose media cannot be read are kept with the
    error recorded. ``db.import_parquet(...)`` makes the same import and returns the table.

    A shard in the Hugging Face layout, its image a struct of bytes and path:

    >>> image = {"bytes": open(photo, "rb").read(), "path": "astronaut.png"}
    >>> pl.DataFrame({"image": [image], "label": [3]}).write_parquet("train-0.parquet")
    >>> result = import_parquet(db, "faces", "train-*.parquet", progress=False)
    >>> result.rows_written, result.rows_with_errors, result.version
    (1, 0, 2)
    >>> faces = result.table
    >>> faces.select(faces.image.width, faces.label).collect().row(0)
    (512, 3)
    """
    if _check_import(catalog, name, if_exists, on_error):
        return _nothing_imported(catalog.get_table(name))
    files = expand_sources(sources, storage_options=_source_options(catalog),
                           extensions=PARQUET_EXTENSIONS)
    if not files:
        raise StorageError(f"table {name!r}: no Parquet files found in "
                           f"{describe_sources(sources)}")
    remote = {is_s3(f) for f in files}
    if len(remote) > 1:
        raise InvalidOptionError(f"table {name!r}: import local and s3:// shards separately "
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
    columns = plan_columns(unified, table_name=name, overrides=schema, rename=rename,
                    metadata=[s.metadata for s, _ in footers])
    rows = _batch_rows(unified, columns, batch_rows)
    read = [c.source for c in columns]
    media = rows <= MEDIA_BATCH_ROWS
    readahead = 1 if media else 8
    # for media, stream column chunks through a small buffer rather than fetching whole row
    # groups ahead: memory then follows the batch, not the shard's row group size
    scan_options = pads.ParquetFragmentScanOptions(pre_buffer=False, buffer_size=1 << 20) \
        if media else None

    def batches() -> Iterator[pa.Table]:
        for fragment, uri in zip(fragments, files, strict=True):
            base = folder_of(uri)
            reader = fragment.to_batches(schema=unified, columns=read, batch_size=rows,
                                         batch_readahead=readahead, fragment_readahead=1,
                                         fragment_scan_options=scan_options)
            while True:
                try:
                    batch = next(reader)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as exc:
                    msg = f"table {name!r}: cannot read Parquet shard {uri}: {exc}"
                    raise StorageError(msg) from exc
                yield convert_batch(batch, columns, base, name)

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
               progress: bool = True, on_error: str = "abort",
               **csv_options: Any) -> ImportResult:
    """Create table ``name`` from a CSV file (local or ``s3://``; also a glob or a list of files
    with the same columns) and fill it in one insert (one version), streaming it in blocks.

    Column types are inferred from the first rows (integers, floats, booleans, ISO dates and
    timestamps, else strings); ``schema`` sets the type of named columns, for a column whose
    first rows mislead the inference, or leaves one out (``{"note": None}``). A column given as
    a media type (``schema={"image": lh.Image}``) holds paths or URIs of media files: relative
    paths are resolved against the CSV file's folder and must stay inside it (a path that
    climbs out with ``../`` or through a symbolic link is refused for its row, see
    :mod:`lakehouse.ingest.files`), and the files are read into the table under the
    lakehouse's fetch policy (:class:`~lakehouse.FetchPolicy`).
    ``rename``, ``if_exists``, ``on_error`` and the clean-up after a failure are as for
    :func:`import_parquet`. Other keywords are options of ``pyarrow.csv`` (``delimiter``,
    ``skip_rows``, ``column_names``, ``null_values``, ...); ``.tsv`` files default to tabs.

    >>> import os, shutil
    >>> os.makedirs("pets")
    >>> _ = shutil.copy(photo, "pets/rex.png")
    >>> _ = open("pets/labels.csv", "w").write("file,name,age\\nrex.png,Rex,3\\n")
    >>> import_csv(db, "pets", "pets/labels.csv", schema={"file": lh.Image}, progress=False)
    ImportResult(rows_written=1, rows_with_errors=0, version=2)
    >>> db.get_table("pets").describe()["type"].to_list()
    ['Image', 'String', 'Int']
    """
    if _check_import(catalog, name, if_exists, on_error):
        return _nothing_imported(catalog.get_table(name))
    files = expand_sources(path, storage_options=_source_options(catalog),
                           extensions=CSV_EXTENSIONS)
    if not files:
        raise StorageError(f"table {name!r}: no CSV files found in {describe_sources(path)}")
    options = dict(csv_options)
    if "delimiter" not in options and files[0].lower().endswith((".tsv", ".tsv.gz", ".tsv.bz2")):
        options["delimiter"] = "\t"
    overrides = dict(schema or {})
    read_types = {k: _csv_read_type(v, k) for k, v in overrides.items() if v is not None}
    opener = _CsvOpener(catalog, name, options)
    with opener.open(files[0], read_types) as first:
        inferred = first.schema
    columns = plan_columns(inferred, table_name=name, overrides=overrides, rename=rename,
                           metadata=[])
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
                    yield convert_batch(batch, columns, folder_of(uri), name)

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

    def __init__(self, catalog: Catalog, table_name: str, options: dict[str, Any]) -> None:
        self._table = table_name
        self._catalog = catalog
        self._fs: fsspec.AbstractFileSystem | None = None
        self._kinds: dict[str, dict[str, Any]] = {"read": {}, "parse": {}, "convert": {}}
        classes = {"read": csv.ReadOptions, "parse": csv.ParseOptions,
                   "convert": csv.ConvertOptions}
        for key, value in options.items():
            kind = next((k for k, cls in classes.items() if hasattr(cls(), key)), None)
            if kind is None:
                raise InvalidOptionError(f"table {table_name!r}: unknown CSV option {key!r}")
            self._kinds[kind][key] = value

    @contextlib.contextmanager
    def open(self, uri: str, column_types: dict[str, pa.DataType]) -> Iterator[Any]:
        """A streaming reader on the file, closed (with its S3 object) on exit."""
        convert = dict(self._kinds["convert"])
        convert["column_types"] = {**(convert.get("column_types") or {}), **column_types}
        args = {"read_options": csv.ReadOptions(**self._kinds["read"]),
                "parse_options": csv.ParseOptions(**self._kinds["parse"]),
                "convert_options": csv.ConvertOptions(**convert)}
        with contextlib.ExitStack() as stack:
            source: Any = uri
            try:
                if is_s3(uri):
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
                 on_error: str = "abort") -> ImportResult:
    """Create table ``name`` from a Polars or pandas DataFrame, an Arrow table or an Arrow
    record batch reader, with the column types inferred as for :func:`import_parquet`, and fill
    it in one insert. Media columns (``schema={"image": lh.Image}``, or Hugging Face image
    structs) take bytes, paths or URIs; relative paths are taken from the working directory.

    >>> frame = pl.DataFrame({"player": ["ann", "bo"], "score": [3, 5]})
    >>> scores = import_frame(db, "scores", frame, progress=False).table
    >>> scores.describe()["type"].to_list()
    ['String', 'Int']
    """
    if _check_import(catalog, name, if_exists, on_error):
        return _nothing_imported(catalog.get_table(name))
    total: int | None
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.DataFrame):
        data = data.to_arrow()
    elif is_pandas_frame(data):
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
    columns = plan_columns(arrow_schema, table_name=name, overrides=schema, rename=rename,
                    metadata=[arrow_schema.metadata])
    rows = _batch_rows(arrow_schema, columns, batch_rows)
    source = data

    def batches() -> Iterator[pa.Table]:
        stream = source.to_batches(max_chunksize=rows) if isinstance(source, pa.Table) \
            else source
        for batch in stream:
            yield convert_batch(batch, columns, None, name)

    return _create_and_fill(catalog, name, columns, batches, if_exists=if_exists,
                            progress=progress, on_error=on_error, total=total)


def create_from_source(catalog: Catalog, name: str, source: Any, *,
                       schema: Mapping[str, Any] | None = None,
                       **options: Any) -> ImportResult:
    """Create and fill a table from ``source``: Parquet or CSV files (by their extension;
    folders and other globs are read as Parquet), or an in-memory frame. This is what
    ``db.create_table(name, source=...)`` does.

    >>> for i in range(2):
    ...     pl.DataFrame({"shard": [i] * 1000}).write_parquet(f"shard-{i}.parquet")
    >>> create_from_source(db, "shards", "shard-*.parquet", progress=False).rows_written
    2000
    """
    paths = [source] if isinstance(source, str | os.PathLike) else source
    if isinstance(paths, list | tuple) and paths \
            and all(isinstance(p, str | os.PathLike) for p in paths):
        if all(os.fspath(p).lower().endswith(tuple("." + e for e in CSV_EXTENSIONS))
               for p in paths):
            return import_csv(catalog, name, list(paths), schema=schema, **options)
        return import_parquet(catalog, name, list(paths), schema=schema, **options)
    return import_frame(catalog, name, source, schema=schema, **options)


__all__ = [
    "BATCH_ROWS", "CSV_EXTENSIONS", "MEDIA_BATCH_ROWS", "PARQUET_EXTENSIONS", "ImportResult",
    "create_from_source", "import_csv", "import_frame", "import_parquet",
]
