"""Finding media files and inserting them: :func:`insert_files` fills a table's media column
from paths, folders, globs and ``s3://`` prefixes, :func:`expand_sources` lists the files they
name, and :func:`parent_folder` labels a file by the name of its folder.

Also the small helpers the other ingest modules share: whether a source is on S3
(:func:`is_s3`), the folder holding a file (:func:`folder_of`), a relative media path resolved
against that folder (:func:`resolve_media_path`) and sources named in messages
(:func:`describe_sources`).

Files stay inside the folder they were found in. A relative media path in a CSV or Parquet file
is resolved against that file's folder; one that leads out of it (``../secret``, or a symbolic
link pointing elsewhere) is written as a URI that still shows the climb
(``file:///data/csv/../secret``), and the media intake refuses such a URI for its row
(``OutsideFolder``) unless the lakehouse was opened with
``lh.FetchPolicy(allow_outside_folder=True)``. Absolute paths and URIs in the file are read as
written: they name what they name. Likewise ``insert_files`` takes a symbolic link found in a
folder it walks (or a glob it expands) only when the link stays inside that folder.

>>> import os, shutil
>>> os.makedirs("photos/space")
>>> _ = shutil.copy(photo, "photos/space/astronaut.png")
>>> photos = db.create_table("photos", {"image": lh.Image, "label": lh.String})
>>> label = lambda uri: {"label": parent_folder(uri)}  # the name of the file's folder
>>> photos.insert_files("photos/**/*.png", extra=label)
WriteResult(rows_written=1, rows_with_errors=0, version=2)
>>> photos.select(photos.label, photos.image.fileurl).collect().row(0)
('space', 'file:///.../photos/space/astronaut.png')
"""

from __future__ import annotations

import dataclasses
import glob
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from lakehouse.engine import RayEngine, resolve_engine
from lakehouse.errors import (
    ComputedColumnError,
    InvalidOptionError,
    MediaError,
    StorageError,
    TypeMismatchError,
    check_choice,
)
from lakehouse.exec import ray_ingest, writes
from lakehouse.exec.intake import MEDIA_CHUNK_ROWS
from lakehouse.exec.protocol import WriteContext
from lakehouse.exec.ray_ingest import RowChunks, Shares
from lakehouse.exec.writes import WriteResult
from lakehouse.media.fetch import local_path, to_uri
from lakehouse.metadata import ON_ERROR, ColumnDef, TableDef
from lakehouse.storage import s3_filesystem, s3_options

if TYPE_CHECKING:
    import fsspec

    from lakehouse.table import Table

#: File extensions ``insert_files`` looks for by default, by the media kind of the column.
MEDIA_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"),
    "video": ("mp4", "mov", "mkv", "webm", "avi"),
    "audio": ("wav", "mp3", "ogg", "flac", "m4a"),
    "document": ("pdf", "html", "htm", "md", "txt"),
}

_GLOB_CHARS = frozenset("*?[")


# --------------------------------------------------------------------------------------------
# Media files
# --------------------------------------------------------------------------------------------


def insert_files(table: Table, sources: Any, *, column: str | None = None,
                 recursive: bool = True, extensions: Sequence[str] | None = None,
                 on_error: str = "abort", progress: bool = True,
                 extra: Callable[[str], Mapping[str, Any]] | None = None,
                 filename_column: str | None = None,
                 engine: str | RayEngine | None = None) -> WriteResult:
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
    ``file:///...`` for local files, ``s3://...`` for objects. ``filename_column`` names a
    String column of the table that gets the name of each file (``astronaut.png``; its folder
    is in ``t.image.fileurl``).

    A symbolic link found in a folder or glob is followed only when it leads to a file inside
    that folder; one that leads out is refused for its row (``OutsideFolder``) unless the
    lakehouse was opened with ``fetch=lh.FetchPolicy(allow_outside_folder=True)``. A file
    named explicitly is read wherever it leads.

    A file that cannot be read or is not a valid image (video, ...) stops the insert with a
    :class:`~lakehouse.errors.MediaError` and nothing is written (``on_error="abort"``), or is
    kept with a null value and its error recorded (``on_error="ignore"``). No file found at
    all is a ``MediaError`` naming the sources.

    With a Ray engine (``lh.connect(..., engine="ray")``, or ``engine="ray"`` or a
    :class:`~lakehouse.RayEngine` for this call; ``engine="local"`` keeps it here), the rows
    are made here (``extra`` runs in this process) and the files are read, checked, computed
    and written by Ray tasks, each taking a share of the files; this process commits them all
    at once, with the same rows, errors and version as here (see
    :mod:`lakehouse.exec.ray_ingest`). The files must be readable by the workers: on S3, or
    in a folder they share.

    >>> import os, shutil
    >>> for label in ("cat", "dog"):
    ...     os.makedirs(f"pets/{label}")
    ...     _ = shutil.copy(photo, f"pets/{label}/001.png")
    >>> pets = db.create_table("pets", {"image": lh.Image, "label": lh.String})
    >>> insert_files(pets, "pets/", extra=lambda uri: {"label": parent_folder(uri)})
    WriteResult(rows_written=2, rows_with_errors=0, version=2)
    >>> pets.select(pets.label).collect()["label"].to_list()
    ['cat', 'dog']
    >>> _ = pets.add_column(file=lh.String)
    >>> insert_files(pets, "pets/cat/", filename_column="file").rows_written
    1
    >>> pets.where(pets.file.is_not_null()).select(pets.file).collect().item()
    '001.png'
    """
    check_choice("on_error", on_error, ON_ERROR)
    if not isinstance(sources, str | os.PathLike):
        sources = list(sources)  # listed twice: to expand, and to name them in errors
    state = table.table_state()
    media = _media_column(state.definition, table.table_name, column)
    if filename_column is not None:
        _check_filename_column(state.definition, table.table_name, filename_column, media)
        extra = _with_file_name(extra, filename_column)
    suffixes = _suffixes(extensions, media.type.kind)
    files = expand_sources(sources, storage_options=state.location.storage_options,
                           recursive=recursive, extensions=suffixes, confine=True)
    if not files:
        wanted = ", ".join("." + s for s in suffixes) if suffixes else "any extension"
        msg = (f"table {table.table_name!r}: no {media.type.kind} files found in "
               f"{describe_sources(sources)} (looked for {wanted})")
        raise MediaError(msg)
    uris = [f if f.startswith(("s3://", "file://")) else to_uri(f) for f in files]
    on_ray = resolve_engine(engine, state.location.engine)

    def body(ctx: WriteContext) -> WriteResult:
        rows = _file_rows(uris, media.name, extra, table.table_name)
        if on_ray is None:
            return writes.insert(ctx, rows, progress=progress, on_error=on_error,
                                 total=len(uris))
        chunks = tuple(rows)  # made here: the tasks get the rows, never the function extra
        return ray_ingest.insert(dataclasses.replace(ctx, engine=on_ray),
                                 Shares(RowChunks(), chunks, tuple(map(len, chunks))),
                                 on_error=on_error, progress=progress, total=len(uris))

    return table.write_rows(body, what="the insert", progress=progress)


def _check_filename_column(tdef: TableDef, table_name: str, name: str,
                           media: ColumnDef) -> None:
    """``name`` must be a String column of the table, not computed, not the media column."""
    found = tdef.get(name, table_name)
    if found.is_computed or found.type.kind != "string" or found.name == media.name:
        what = "computed" if found.is_computed else str(found.type)
        msg = (f"table {table_name!r}: filename_column {name!r} is {what}; the file names go "
               "into a String column that is not computed (add one, e.g. "
               f"t.add_column({name}=lh.String), or name another)")
        raise TypeMismatchError(msg)


def _with_file_name(extra: Callable[[str], Mapping[str, Any]] | None,
                    column: str) -> Callable[[str], Mapping[str, Any]]:
    """``extra``, with the file's name in ``column`` too."""
    def values(uri: str) -> Mapping[str, Any]:
        found = extra(uri) if extra is not None else {}
        if not isinstance(found, Mapping):
            return found  # refused with its own message by the caller
        return {**found, column: file_name(uri)}

    return values


def parent_folder(uri: str) -> str:
    """The name of the folder holding a file, for labels taken from folder names.

    >>> parent_folder("file:///data/pets/cat/001.jpg")
    'cat'
    >>> parent_folder("s3://bucket/pets/dog/002.jpg")
    'dog'
    """
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    return PurePosixPath(path.replace("\\", "/")).parent.name


def file_name(uri: str) -> str:
    """The last part of a local path or a URI: the name a filename column records.

    >>> file_name("s3://bucket/pets/dog/002.jpg")
    '002.jpg'
    """
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    return PurePosixPath(path.replace("\\", "/")).name


def expand_sources(sources: Any, *, storage_options: Mapping[str, str] | None = None,
                   recursive: bool = True, extensions: Sequence[str] | None = None,
                   confine: bool = False) -> list[str]:
    """The files named by ``sources`` (paths, folders, globs, ``s3://`` prefixes or globs, or a
    list of them): absolute local paths and ``s3://`` URIs, sorted within each source, without
    duplicates. Folder walks and globs keep only names ending in one of ``extensions`` (all
    when None); files named explicitly are always kept. With ``confine``, a symbolic link
    found by a walk or glob that leads out of its folder is listed as a ``file://`` URI that
    shows the climb (``file:///photos/../secret``), which the media intake refuses.

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
        if is_s3(text):
            if fs is None:
                fs = s3_filesystem(s3_options(dict(storage_options or {})))
            matches = _expand_s3(fs, text, recursive, suffixes)
        else:
            matches = _expand_local(text, recursive, suffixes, confine)
        for match in matches:
            if match not in seen:
                seen.add(match)
                found.append(match)
    return found


def _expand_local(text: str, recursive: bool, suffixes: tuple[str, ...] | None,
                  confine: bool) -> list[str]:
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
        return sorted(_inside(str(p), path) if confine else str(p.resolve()) for p in files)
    if _GLOB_CHARS & set(path):
        matches = glob.glob(path, recursive=recursive)
        found = [m for m in matches if os.path.isfile(m) and _wanted(m, suffixes)]
        root = _glob_root(path)
        return sorted(_inside(m, root) if confine else os.path.abspath(m) for m in found)
    return []


def _inside(path: str, folder: str) -> str:
    """The real path of ``path``, a file inside ``folder``; where it leads out of the folder (a
    symbolic link), a ``file://`` URI of the folder followed by the way out, ``..`` included."""
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
        return real
    return Path(root).as_uri().rstrip("/") + "/" + quote(os.path.relpath(real, root))


def _glob_root(pattern: str) -> str:
    """The folder a glob looks in: its parts before the first one with a wildcard."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    return str(Path(*parts[:fixed])) if fixed else "."


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


def is_s3(text: str) -> bool:
    """Whether a source names an S3 object or prefix (``s3://`` or ``s3a://``)."""
    return text.startswith(("s3://", "s3a://"))


def _suffixes(extensions: Sequence[str] | None, kind: str) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = [extensions]
    chosen = extensions if extensions is not None else MEDIA_EXTENSIONS.get(kind, ())
    return tuple(e.lower().lstrip(".") for e in chosen)


def _media_column(tdef: TableDef, table_name: str, column: str | None) -> ColumnDef:
    """The column ``insert_files`` fills: ``column``, or the table's only media column."""
    if column is not None:
        found = tdef.get(column, table_name)
        if not found.type.is_media or found.is_computed:
            what = "computed" if found.is_computed else str(found.type)
            msg = (f"table {table_name!r}: column {column!r} is {what}; insert_files() needs a "
                   "media column (lh.Image, lh.Video, lh.Audio or lh.Document) that is not "
                   "computed")
            raise ComputedColumnError(msg) if found.is_computed else TypeMismatchError(msg)
        return found
    media = [c for c in tdef.base_columns() if c.type.is_media]
    if len(media) > 1:
        names = ", ".join(repr(c.name) for c in media)
        msg = (f"table {table_name!r} has {len(media)} media columns ({names}); name the one to "
               "fill with column=...")
        raise InvalidOptionError(msg)
    if not media:
        msg = (f"table {table_name!r} has no media column; add one, e.g. "
               "t.add_column(image=lh.Image)")
        raise TypeMismatchError(msg)
    return media[0]


def _file_rows(uris: list[str], column: str, extra: Callable[[str], Mapping[str, Any]] | None,
               table_name: str) -> Iterator[list[dict[str, Any]]]:
    """The rows of the files, in chunks of the size the media intake works on."""
    for start in range(0, len(uris), MEDIA_CHUNK_ROWS):
        rows = []
        for uri in uris[start:start + MEDIA_CHUNK_ROWS]:
            row: dict[str, Any] = {}
            if extra is not None:
                values = extra(uri)
                if not isinstance(values, Mapping):
                    msg = (f"table {table_name!r}: extra({uri!r}) must return a dict of column "
                           f"values, got {type(values).__name__}")
                    raise TypeMismatchError(msg)
                if column in values:
                    msg = (f"table {table_name!r}: extra({uri!r}) returned a value for "
                           f"{column!r}, the column the file itself goes into")
                    raise InvalidOptionError(msg)
                row.update(values)
            row[column] = uri
            rows.append(row)
        yield rows


def describe_sources(sources: Any) -> str:
    """The sources as a message names them: ``'a.parquet', 'b/'``."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    return ", ".join(repr(os.fspath(s)) if isinstance(s, str | os.PathLike) else repr(s)
                     for s in items) or "(no sources)"


# --------------------------------------------------------------------------------------------
# Locations: local or S3, folders, relative paths
# --------------------------------------------------------------------------------------------


def resolve_media_path(value: str | None, base: str | None) -> str | None:
    """A media path from a CSV or Parquet file, resolved against ``base``, the file's folder.
    Absolute paths and URIs are kept as written; a relative path that leads out of ``base``
    becomes a URI that shows the climb, which the media intake refuses (see the module doc)."""
    if not value:
        return None
    if base is None or "://" in value or os.path.isabs(value) or value.startswith("~"):
        return value
    if is_s3(base):
        bucket, _, key = base.split("://", 1)[1].partition("/")
        key = key.strip("/")
        joined = posixpath.normpath(posixpath.join(key, value))
        if joined != ".." and not joined.startswith("../") and (
                not key or joined == key or joined.startswith(key + "/")):
            return f"s3://{bucket}/" + joined.lstrip("/")
        return f"s3://{bucket}/" + (f"{key}/" if key else "") + value.lstrip("/")
    return _inside(os.path.join(base, value), base)


def folder_of(location: str) -> str:
    """The folder holding a local file or an S3 object."""
    if is_s3(location):
        return location.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(location))


__all__ = [
    "MEDIA_EXTENSIONS", "describe_sources", "expand_sources", "file_name", "folder_of",
    "insert_files",
    "is_s3", "parent_folder", "resolve_media_path",
]
