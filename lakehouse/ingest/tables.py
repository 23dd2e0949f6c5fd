"""Creating a table from Parquet shards (the Hugging Face layout included), CSV files, JSON
files (arrays or JSON Lines), a stream of any of these (stdin) or an in-memory frame, and
filling it in one insert (one version). The table is created from the types found in the input
(see :mod:`lakehouse.ingest.arrow_types`); if the import fails, a table that did not exist
before is dropped again and a replaced one gets its previous content back.

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
import itertools
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from pyarrow import csv

from lakehouse import branches
from lakehouse import types as T
from lakehouse.engine import RayEngine, resolve_engine
from lakehouse.errors import InvalidOptionError, StorageError, TypeMismatchError, check_choice
from lakehouse.exec import ray_ingest, writes
from lakehouse.exec.intake import MEDIA_CHUNK_ROWS, is_pandas_frame
from lakehouse.exec.protocol import WriteContext
from lakehouse.exec.ray_ingest import Shares
from lakehouse.ingest.arrow_types import Conversion, ImportColumn, holds_binary, plan_columns
from lakehouse.ingest.files import describe_sources, is_s3
from lakehouse.ingest.json_files import JSON_EXTENSIONS, JsonReader
from lakehouse.ingest.sources import SourceFile, is_stream, source_files
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


@dataclasses.dataclass(frozen=True)
class _Input:
    """What an import inserts: ``batches()`` reads it (again, when a write is redone) in this
    process; ``shares`` splits it into parts for the tasks of a Ray engine (None: it is read
    here whatever the engine, as a stream or a frame is); ``total``: its rows, where known."""

    batches: Callable[[], Iterator[pa.Table]]
    total: int | None
    shares: Shares | None = None


@dataclasses.dataclass(frozen=True)
class _Writing:
    """How an import writes: ``on_error``, the progress bar, and the engine it runs on (None:
    this process)."""

    on_error: str
    progress: bool
    engine: RayEngine | None


def _create_and_fill(catalog: Catalog, name: str, conversion: Conversion, source: _Input, *,
                     if_exists: str, writing: _Writing) -> ImportResult:
    """Create the table and insert every batch in one commit. If that fails, a table that did
    not exist before is dropped again; a replaced one gets its previous content back."""
    existed = catalog.has_table(name)
    if existed and if_exists == "ignore":
        return _nothing_imported(catalog.get_table(name))
    if existed and if_exists == "append":  # one insert: all rows or, on an error, none
        table = catalog.get_table(name)
        return _imported(table, _fill(table, source, writing))
    if if_exists == "append":
        if_exists = "error"  # a new table
    previous = catalog.get_table(name).version if existed and if_exists == "replace" else None
    table = catalog.create_table(name, conversion.table_schema(), if_exists=if_exists)
    try:
        written = _fill(table, source, writing)
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


def _fill(table: Table, source: _Input, writing: _Writing) -> writes.WriteResult:
    """One insert of every batch, here or in the tasks of a Ray engine; redone from the
    sources if a concurrent definition change asks for it (they are read again)."""
    def body(ctx: WriteContext) -> writes.WriteResult:
        if writing.engine is not None and source.shares is not None:
            return ray_ingest.insert(dataclasses.replace(ctx, engine=writing.engine),
                                     source.shares, on_error=writing.on_error,
                                     progress=writing.progress, total=source.total)
        return writes.insert(ctx, source.batches(), progress=writing.progress,
                             on_error=writing.on_error, total=source.total)

    return table.write_rows(body, what="the import", progress=writing.progress)


def _check_import(catalog: Catalog, name: str, if_exists: str, on_error: str) -> bool:
    """Validate the common arguments; True when the import should be skipped (the table exists
    and ``if_exists="ignore"``)."""
    validate_name(branches.split(name)[0])  # "films#dev" imports into a branch
    check_choice("if_exists", if_exists, _IF_EXISTS)
    check_choice("on_error", on_error, ON_ERROR)
    return if_exists == "ignore" and catalog.has_table(name)


def _writing(catalog: Catalog, on_error: str, progress: bool,
             engine: str | RayEngine | None) -> _Writing:
    """The import's writing options, with the engine of the call (else the connection's)."""
    return _Writing(on_error, progress, resolve_engine(engine, catalog.location.engine))


def _source_options(catalog: Catalog) -> dict[str, str]:
    return s3_options(catalog.location.storage_options)


def _column_types(catalog: Catalog, name: str, if_exists: str, schema: Mapping[str, Any] | None,
                  names: Collection[str], rename: Mapping[str, str] | None) -> dict[str, Any]:
    """The types of named input columns: the caller's ``schema``, and, when the rows go into an
    existing table (``if_exists="append"``), that table's types for the input's other columns,
    so that its media columns read paths (or base64) and the values are read as it stores them.
    """
    types = dict(schema or {})
    if if_exists != "append" or not catalog.has_table(name):
        return types
    targets = {(rename or {}).get(n, n) for n in names}
    for column in catalog.get_table(name).table_definition.columns:
        if column.name in targets and column.name not in types:
            types[column.name] = column.type
    return types


def _conversion(name: str, columns: list[ImportColumn], media: str,
                filename_column: str | None) -> Conversion:
    return Conversion(name, tuple(columns), media=media, filename_column=filename_column)


def _no_files(name: str, what: str, sources: Any) -> StorageError:
    shown = "the stream" if is_stream(sources) else describe_sources(sources)
    return StorageError(f"table {name!r}: no {what} files found in {shown}")


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
                   on_error: str = "abort", media: str = "uri",
                   filename_column: str | None = None,
                   engine: str | RayEngine | None = None) -> ImportResult:
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

    Rows added to an existing table are read with its column types: a string in one of its
    media columns is a path or URI (relative to the shard's folder), or, with
    ``media="base64"``, the media's bytes base64-encoded (strings in a media column of a new
    table too). ``filename_column`` names a column that gets the name of each row's file
    (``train-0.parquet``): a String column made for a new table, an existing column of an
    existing one. ``sources`` may also be a readable binary stream (``sys.stdin.buffer``),
    copied to a temporary file first (see :mod:`lakehouse.ingest.sources`).

    With a Ray engine (``lh.connect(..., engine="ray")``, or ``engine="ray"`` or a
    :class:`~lakehouse.RayEngine` for this call; ``engine="local"`` keeps it here), the row
    groups of the shards are shared out to Ray tasks, which read, convert, compute and write
    them; this process commits them all in one insert, with the same rows, order, errors and
    version as here (see :mod:`lakehouse.exec.ray_ingest`). The shards must be readable by the
    workers: on S3, or in a folder they share. A stream is read here.

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
    writing = _writing(catalog, on_error, progress, engine)
    with contextlib.ExitStack() as stack:
        files = source_files(sources, extensions=PARQUET_EXTENSIONS,
                             storage_options=_source_options(catalog), stack=stack)
        if not files:
            raise _no_files(name, "Parquet", sources)
        fragments = _parquet_fragments(catalog, name, files)
        footers = pmap(_footer, list(zip(fragments, files, strict=True)))
        try:
            unified = pa.unify_schemas([f.schema for f in footers])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            msg = f"table {name!r}: the Parquet shards have different schemas: {exc}"
            raise StorageError(msg) from exc
        types = _column_types(catalog, name, if_exists, schema, unified.names, rename)
        columns = plan_columns(unified, table_name=name, overrides=types, rename=rename,
                               metadata=[f.schema.metadata for f in footers])
        shards = _ParquetShards(_source_options(catalog), unified, tuple(columns),
                                _batch_rows(unified, columns, batch_rows),
                                _conversion(name, columns, media, filename_column))

        def batches() -> Iterator[pa.Table]:
            for fragment, source in zip(fragments, files, strict=True):
                yield from shards.converted(fragment, source)

        parts = [(source, i, n) for source, footer in zip(files, footers, strict=True)
                 for i, n in enumerate(footer.row_groups)]
        shares = None if is_stream(sources) else Shares(
            shards, tuple((source, i) for source, i, _ in parts), tuple(n for *_, n in parts))
        source = _Input(batches, sum(f.rows for f in footers), shares)
        return _create_and_fill(catalog, name, shards.conversion, source, if_exists=if_exists,
                                writing=writing)


@dataclasses.dataclass(frozen=True)
class _ParquetShards:
    """How the Parquet shards of one import are read (``batch_rows`` rows at a time, with the
    unified ``schema``) and converted to the table's columns: here, and in the tasks of an
    import on Ray, which get this object and read parts of shards with :meth:`read`."""

    storage_options: dict[str, str] = dataclasses.field(repr=False)
    schema: pa.Schema
    columns: tuple[ImportColumn, ...]
    batch_rows: int
    conversion: Conversion

    def converted(self, fragment: Any, source: SourceFile) -> Iterator[pa.Table]:
        """The rows of a shard (an Arrow dataset fragment), in the table's types."""
        name = self.conversion.table_name
        for batch in _shard_batches(fragment, source, self.schema, self.columns,
                                    self.batch_rows, name):
            yield self.conversion.convert(batch, source.base, source.name)

    def read(self, parts: Sequence[tuple[SourceFile, int]]) -> Iterator[pa.Table]:
        """The rows of consecutive parts, each a row group of a shard: ``(shard, index)``.
        The row groups of one shard are read together, in batches as a whole shard is."""
        filesystem = None
        for source, group in itertools.groupby(parts, key=lambda part: part[0]):
            if filesystem is None:
                filesystem = _arrow_filesystem(self.storage_options, is_s3(source.uri))
            path = source.uri.split("://", 1)[1] if is_s3(source.uri) else source.uri
            try:
                fragment = pads.ParquetFileFormat().make_fragment(
                    path, filesystem=filesystem, row_groups=[i for _, i in group])
            except (pa.ArrowException, OSError) as exc:
                msg = (f"table {self.conversion.table_name!r}: cannot read Parquet shard "
                       f"{source.label}: {exc}")
                raise StorageError(msg) from exc
            yield from self.converted(fragment, source)


def _arrow_filesystem(storage_options: Mapping[str, str], remote: bool) -> pafs.FileSystem:
    """The filesystem Arrow reads the shards through: S3 with the lakehouse's options, or the
    local one."""
    if not remote:
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(s3_filesystem(dict(storage_options))))


def _parquet_fragments(catalog: Catalog, name: str, files: list[SourceFile]) -> list[Any]:
    """The shards as Arrow dataset fragments, in the order of ``files``."""
    remote = {is_s3(f.uri) for f in files}
    if len(remote) > 1:
        raise InvalidOptionError(f"table {name!r}: import local and s3:// shards separately "
                                 "(one filesystem per import)")
    filesystem = None
    paths = [f.uri for f in files]
    if remote == {True}:
        filesystem = _arrow_filesystem(_source_options(catalog), True)
        paths = [p.split("://", 1)[1] for p in paths]
    try:
        dataset = pads.dataset(paths, format="parquet", filesystem=filesystem)
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"table {name!r}: cannot open the Parquet shards: {exc}") from exc
    return list(dataset.get_fragments())


def _shard_batches(fragment: Any, source: SourceFile, schema: pa.Schema,
                   columns: Sequence[ImportColumn], rows: int, name: str,
                   ) -> Iterator[pa.RecordBatch]:
    """The batches of one shard, ``rows`` rows at a time."""
    media = rows <= MEDIA_BATCH_ROWS
    # for media, stream column chunks through a small buffer rather than fetching whole row
    # groups ahead: memory then follows the batch, not the shard's row group size
    scan_options = pads.ParquetFragmentScanOptions(pre_buffer=False, buffer_size=1 << 20) \
        if media else None
    reader = fragment.to_batches(schema=schema, columns=[c.source for c in columns],
                                 batch_size=rows, batch_readahead=1 if media else 8,
                                 fragment_readahead=1, fragment_scan_options=scan_options)
    while True:
        try:
            batch = next(reader)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            msg = f"table {name!r}: cannot read Parquet shard {source.label}: {exc}"
            raise StorageError(msg) from exc
        yield batch


@dataclasses.dataclass(frozen=True)
class _Footer:
    """What a shard's footer says: its schema, its rows, the rows of each row group."""

    schema: pa.Schema
    rows: int
    row_groups: tuple[int, ...]


def _footer(item: tuple[Any, SourceFile]) -> _Footer:
    """A shard's schema and row counts, from its footer."""
    fragment, source = item
    try:
        md = fragment.metadata
        return _Footer(fragment.physical_schema, md.num_rows,
                       tuple(md.row_group(i).num_rows for i in range(md.num_row_groups)))
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"cannot read Parquet shard {source.label}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def import_csv(catalog: Catalog, name: str, path: Any, *,
               schema: Mapping[str, Any] | None = None,
               rename: Mapping[str, str] | None = None, if_exists: str = "error",
               progress: bool = True, on_error: str = "abort", media: str = "uri",
               filename_column: str | None = None, engine: str | RayEngine | None = None,
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
    ``rename``, ``if_exists``, ``on_error``, ``media``, ``filename_column``, streams (stdin)
    and the clean-up after a failure are as for :func:`import_parquet`. Other keywords are
    options of ``pyarrow.csv`` (``delimiter``, ``skip_rows``, ``column_names``,
    ``null_values``, ...); ``.tsv`` files default to tabs.
    ``engine`` is as for :func:`import_parquet`: on Ray, each task reads whole files.

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
    writing = _writing(catalog, on_error, progress, engine)
    with contextlib.ExitStack() as stack:
        files = source_files(path, extensions=CSV_EXTENSIONS,
                             storage_options=_source_options(catalog), stack=stack)
        if not files:
            raise _no_files(name, "CSV", path)
        options = dict(csv_options)
        if "delimiter" not in options \
                and files[0].uri.lower().endswith((".tsv", ".tsv.gz", ".tsv.bz2")):
            options["delimiter"] = "\t"
        opener = _CsvOpener(_source_options(catalog), name, options)
        with opener.open(files[0], _read_types(schema)) as first:
            inferred = first.schema
        types = _column_types(catalog, name, if_exists, schema, inferred.names, rename)
        columns = plan_columns(inferred, table_name=name, overrides=types, rename=rename,
                               metadata=[])
        # later files, and the first one again, are read with the types of the table
        fixed = {**{f.name: f.type for f in inferred}, **_read_types(types)}
        reader = _CsvFiles(_source_options(catalog), options, fixed,
                           _conversion(name, columns, media, filename_column))
        shares = None if is_stream(path) else \
            Shares(reader, tuple(files), tuple(None for _ in files))
        source = _Input(lambda: reader.read(files), None, shares)
        return _create_and_fill(catalog, name, reader.conversion, source, if_exists=if_exists,
                                writing=writing)


@dataclasses.dataclass(frozen=True)
class _CsvFiles:
    """How the CSV files of one import are read (with the caller's ``pyarrow.csv`` options and
    the column ``types`` found in the first file) and converted to the table's columns: here,
    and in the tasks of an import on Ray, which get this object and read files with
    :meth:`read`."""

    storage_options: dict[str, str] = dataclasses.field(repr=False)
    options: dict[str, Any]
    types: dict[str, pa.DataType]
    conversion: Conversion

    def read(self, files: Sequence[SourceFile]) -> Iterator[pa.Table]:
        """The rows of ``files``, in the table's types."""
        name = self.conversion.table_name
        opener = _CsvOpener(self.storage_options, name, self.options)
        for source in files:
            for batch in _csv_batches(opener, source, self.types, name):
                yield self.conversion.convert(batch, source.base, source.name)


def _read_types(types: Mapping[str, Any] | None) -> dict[str, pa.DataType]:
    return {k: _csv_read_type(v, k) for k, v in (types or {}).items() if v is not None}


def _csv_batches(opener: _CsvOpener, source: SourceFile, types: dict[str, pa.DataType],
                 name: str) -> Iterator[pa.RecordBatch]:
    with opener.open(source, types) as reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                msg = (f"table {name!r}: cannot read {source.label}: {exc}; the column types are "
                       "guessed from the first rows: give the column's type with schema={...}")
                raise TypeMismatchError(msg) from None
            except OSError as exc:
                msg = f"table {name!r}: cannot read {source.label}: {exc}"
                raise StorageError(msg) from exc
            yield batch


def _csv_read_type(spec: Any, column: str) -> pa.DataType:
    """How a CSV column the caller typed is parsed: numbers and bools natively, the rest as
    text converted on insert."""
    ctype = T.parse_type(spec, column=column)
    if ctype.kind in ("int", "float", "bool", "string"):
        return ctype.arrow_type()
    return pa.string()


class _CsvOpener:
    """Opens CSV files (local or S3) as streaming Arrow readers with the caller's options."""

    def __init__(self, storage_options: Mapping[str, str], table_name: str,
                 options: dict[str, Any]) -> None:
        self._table = table_name
        self._storage_options = dict(storage_options)
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
    def open(self, source: SourceFile, column_types: dict[str, pa.DataType]) -> Iterator[Any]:
        """A streaming reader on the file, closed (with its S3 object) on exit."""
        convert = dict(self._kinds["convert"])
        convert["column_types"] = {**(convert.get("column_types") or {}), **column_types}
        args = {"read_options": csv.ReadOptions(**self._kinds["read"]),
                "parse_options": csv.ParseOptions(**self._kinds["parse"]),
                "convert_options": csv.ConvertOptions(**convert)}
        uri = source.uri
        with contextlib.ExitStack() as stack:
            stream: Any = uri
            try:
                if is_s3(uri):
                    if self._fs is None:
                        self._fs = s3_filesystem(self._storage_options)
                    stream = stack.enter_context(self._fs.open(uri.split("://", 1)[1], "rb"))
                    codec = _COMPRESSION.get(os.path.splitext(uri)[1].lower())
                    if codec:
                        stream = pa.CompressedInputStream(stream, codec)
                reader = csv.open_csv(stream, **args)
            except pa.ArrowInvalid as exc:
                msg = f"table {self._table!r}: cannot read {source.label}: {exc}"
                raise TypeMismatchError(msg) from None
            except OSError as exc:
                msg = f"table {self._table!r}: cannot read {source.label}: {exc}"
                raise StorageError(msg) from exc
            stack.callback(reader.close)
            yield reader


# --------------------------------------------------------------------------------------------
# JSON and JSON Lines
# --------------------------------------------------------------------------------------------


def import_json(catalog: Catalog, name: str, sources: Any, *,
                schema: Mapping[str, Any] | None = None,
                rename: Mapping[str, str] | None = None, if_exists: str = "error",
                progress: bool = True, on_error: str = "abort", media: str = "uri",
                filename_column: str | None = None,
                engine: str | RayEngine | None = None) -> ImportResult:
    """Create table ``name`` from JSON files and fill it in one insert (one version): each
    file holds one JSON array of objects, or JSON Lines (one object a line: ``.jsonl``,
    ``.ndjson``, or a ``.json`` file that does not start with ``[``), one row per object.

    ``sources`` is a file, a folder of them, a glob, an ``s3://`` prefix or glob, a list of
    those, or a readable binary stream (``sys.stdin.buffer``). JSON Lines are streamed in
    blocks of 1 MiB or more, so memory stays bounded; a JSON array is read whole (see
    :mod:`lakehouse.ingest.json_files`). Column types come from the first rows: numbers,
    booleans, strings, ISO timestamps, lists of numbers (Array), other objects and lists
    (Json); ``schema`` sets a column's type, or that of a field the first rows do not have. A
    malformed line is an error naming its file and line, and nothing is written.
    ``rename``, ``if_exists``, ``on_error``, ``media`` and ``filename_column`` are as for
    :func:`import_parquet`: with ``media="base64"``, strings in a media column are its bytes
    base64-encoded, as ``lakehouse query --format json`` writes them. ``engine`` is as for
    :func:`import_parquet`: on Ray, each task reads whole files.

    >>> import base64, json
    >>> data = base64.b64encode(open(photo, "rb").read()).decode()
    >>> with open("photos.jsonl", "w") as f:
    ...     print(json.dumps({"name": "astronaut", "image": data}), file=f)
    >>> result = import_json(db, "photos", "photos.jsonl", schema={"image": lh.Image},
    ...                      media="base64", progress=False)
    >>> photos = result.table
    >>> photos.select(photos.name, photos.image.width).collect().row(0)
    ('astronaut', 512)
    >>> photos.collect()["image"][0] == open(photo, "rb").read()
    True
    """
    if _check_import(catalog, name, if_exists, on_error):
        return _nothing_imported(catalog.get_table(name))
    writing = _writing(catalog, on_error, progress, engine)
    with contextlib.ExitStack() as stack:
        files = source_files(sources, extensions=JSON_EXTENSIONS,
                             storage_options=_source_options(catalog), stack=stack)
        if not files:
            raise _no_files(name, "JSON", sources)
        reader = JsonReader(name, _source_options(catalog))
        inferred = reader.schema(files[0], schema or {})
        types = _column_types(catalog, name, if_exists, schema, inferred.names, rename)
        columns = plan_columns(inferred, table_name=name, overrides=types, rename=rename,
                               metadata=[])
        json_files = _JsonFiles(reader, inferred,
                                _conversion(name, columns, media, filename_column))
        counts = tuple(reader.rows(f) for f in files)
        total = None if None in counts else sum(n or 0 for n in counts)
        shares = None if is_stream(sources) else Shares(json_files, tuple(files), counts)
        source = _Input(lambda: json_files.read(files), total, shares)
        return _create_and_fill(catalog, name, json_files.conversion, source,
                                if_exists=if_exists, writing=writing)


@dataclasses.dataclass(frozen=True)
class _JsonFiles:
    """How the JSON files of one import are read (with the ``schema`` of the first file) and
    converted to the table's columns: here, and in the tasks of an import on Ray, which get
    this object and read files with :meth:`read`."""

    reader: JsonReader
    schema: pa.Schema
    conversion: Conversion

    def read(self, files: Sequence[SourceFile]) -> Iterator[pa.Table]:
        """The rows of ``files``, in the table's types."""
        for source in files:
            for batch in self.reader.batches(source, self.schema):
                yield self.conversion.convert(batch, source.base, source.name)


# --------------------------------------------------------------------------------------------
# In-memory frames, and create_table(source=...)
# --------------------------------------------------------------------------------------------


def import_frame(catalog: Catalog, name: str, data: Any, *,
                 schema: Mapping[str, Any] | None = None,
                 rename: Mapping[str, str] | None = None, if_exists: str = "error",
                 batch_rows: int | None = None, progress: bool = True,
                 on_error: str = "abort", media: str = "uri",
                 engine: str | RayEngine | None = None) -> ImportResult:
    """Create table ``name`` from a Polars or pandas DataFrame, an Arrow table or an Arrow
    record batch reader, with the column types inferred as for :func:`import_parquet`, and fill
    it in one insert. Media columns (``schema={"image": lh.Image}``, or Hugging Face image
    structs) take bytes, paths or URIs; relative paths are taken from the working directory
    (``media="base64"``: strings are the bytes, base64-encoded). Rows added to an existing table
    are read with its column types, as for :func:`import_parquet`. The frame is in this
    process's memory, so it is written here whatever the ``engine`` (checked as for
    :func:`import_parquet`), as a stream is.

    >>> frame = pl.DataFrame({"player": ["ann", "bo"], "score": [3, 5]})
    >>> scores = import_frame(db, "scores", frame, progress=False).table
    >>> scores.describe()["type"].to_list()
    ['String', 'Int']
    """
    writing = _writing(catalog, on_error, progress, engine)
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
    types = _column_types(catalog, name, if_exists, schema, arrow_schema.names, rename)
    columns = plan_columns(arrow_schema, table_name=name, overrides=types, rename=rename,
                           metadata=[arrow_schema.metadata])
    conversion = _conversion(name, columns, media, None)
    rows = _batch_rows(arrow_schema, columns, batch_rows)
    source = data

    def batches() -> Iterator[pa.Table]:
        stream = source.to_batches(max_chunksize=rows) if isinstance(source, pa.Table) \
            else source
        for batch in stream:
            yield conversion.convert(batch, None, None)

    return _create_and_fill(catalog, name, conversion, _Input(batches, total),
                            if_exists=if_exists, writing=writing)


#: What :func:`create_from_source` reads, by ``format=``: the import function of each format.
IMPORT_FORMATS = ("parquet", "csv", "json")


def create_from_source(catalog: Catalog, name: str, source: Any, *,
                       schema: Mapping[str, Any] | None = None, format: str | None = None,
                       **options: Any) -> ImportResult:
    """Create and fill a table from ``source``: Parquet, CSV or JSON files (by ``format``, else
    by their extension: ``.csv``/``.tsv``, ``.json``/``.jsonl``/``.ndjson``, and Parquet for
    the rest, folders and other globs included), a readable binary stream such as
    ``sys.stdin.buffer`` (``format`` is then required), or an in-memory frame. This is what
    ``db.create_table(name, source=...)`` does, and the ``lakehouse ingest`` command for
    tables; the options are those of :func:`import_parquet`, :func:`import_csv` and
    :func:`import_json`.

    >>> for i in range(2):
    ...     pl.DataFrame({"shard": [i] * 1000}).write_parquet(f"shard-{i}.parquet")
    >>> create_from_source(db, "shards", "shard-*.parquet", progress=False).rows_written
    2000
    >>> import io
    >>> stdin = io.BytesIO(b'{"city": "Oslo"}\\n{"city": "Lima"}\\n')
    >>> create_from_source(db, "cities", stdin, format="json", progress=False).table.count()
    2
    """
    if format is not None:
        check_choice("format", format, IMPORT_FORMATS)
    elif is_stream(source):
        raise InvalidOptionError(f"table {name!r}: say what the stream holds with format= "
                                 f"(one of {', '.join(map(repr, IMPORT_FORMATS))})")
    paths = [source] if isinstance(source, str | os.PathLike) else source
    if format is None and isinstance(paths, list | tuple) and paths \
            and all(isinstance(p, str | os.PathLike) for p in paths):
        format = _format_of([os.fspath(p) for p in paths])
    if format is None:
        return import_frame(catalog, name, source, schema=schema, **options)
    importer = {"parquet": import_parquet, "csv": import_csv, "json": import_json}[format]
    return importer(catalog, name, source if is_stream(source) else list(paths),
                    schema=schema, **options)


def _format_of(paths: list[str]) -> str:
    """CSV or JSON when every path ends so, else Parquet."""
    for fmt, extensions in (("csv", CSV_EXTENSIONS), ("json", JSON_EXTENSIONS)):
        if all(p.lower().endswith(tuple("." + e for e in extensions)) for p in paths):
            return fmt
    return "parquet"


__all__ = [
    "BATCH_ROWS", "CSV_EXTENSIONS", "IMPORT_FORMATS", "MEDIA_BATCH_ROWS", "PARQUET_EXTENSIONS",
    "ImportResult", "create_from_source", "import_csv", "import_frame", "import_json",
    "import_parquet",
]
