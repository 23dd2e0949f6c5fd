"""Media intake: turn inserted media values into validated bytes plus their source URIs.

A media cell accepts a local path, a ``file://``, ``s3://`` or ``http(s)://`` URI, raw bytes,
and for images a PIL image or a numpy array. Sources are fetched and checked on the shared thread
pool (a corrupt image, an unreadable video or a missing file is an error for that row), under the
lakehouse's fetch policy (:mod:`lakehouse.media.fetch`): a source the policy refuses (too large,
too slow, a private address, a path out of its folder) is an error for its row too. A document
read from a path or URI must be named like one or say what it is (see
:func:`lakehouse.functions.document.check_named`, which the document type runs through
:meth:`lakehouse.types.MediaType.check_source`). With ``on_error="abort"`` the first bad row
stops the insert (a :class:`~lakehouse.errors.SourceRefusedError` when the policy refused it);
with ``"ignore"`` the row is kept with a null value and the error recorded (``t.col.errortype``,
``t.col.errormsg``). Messages never show the secrets of a URI (see
:func:`lakehouse.storage.redact_uri`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pyarrow as pa

from lakehouse import types as T
from lakehouse.errors import MediaError, SourceRefusedError
from lakehouse.media.fetch import Fetcher, HTTPStatusError, describe_failure, to_uri
from lakehouse.media.pool import pmap
from lakehouse.storage import redact_text, redact_uri

ON_ERROR = ("abort", "ignore")


@dataclasses.dataclass(frozen=True)
class MediaOptions:
    """How an insert treats media values: its error policy and where sources are read from."""

    on_error: str = "abort"
    fetcher: Fetcher = dataclasses.field(default_factory=Fetcher)
    reused: frozenset[str] = frozenset()  # media columns computed columns of the write read
    # media columns whose bytes lakehouse itself made or read from a table (a view's frames and
    # carried columns): stored as they are, not decoded again to be checked
    trusted: frozenset[str] = frozenset()
    ignorable: bool = True  # whether the call takes on_error="ignore" (update() does not)


@dataclasses.dataclass(frozen=True)
class LoadedColumn:
    """One media column of one chunk: bytes, source URIs and per-row errors, as Arrow arrays."""

    data: pa.Array
    uris: pa.Array
    errortypes: pa.Array
    errormsgs: pa.Array


class _CellError(Exception):
    """A bad media value: ``source`` names it, the message says what is wrong. ``refused``: the
    fetch policy refused the source."""

    def __init__(self, kind: str, message: str, uri: str | None = None, *,
                 refused: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.uri = uri  # the source, kept with the error so failed rows can be found by it
        self.refused = refused


def load_column(values: list[Any], ctype: T.MediaType, options: MediaOptions, *,
                table_name: str, column: str, row_offset: int) -> LoadedColumn:
    """Fetch and check every value of one media column.

    >>> loaded = load_column([photo, None, "missing.png"], T.Image, MediaOptions(on_error="ignore"),
    ...                      table_name="pics", column="image", row_offset=0)
    >>> [None if d is None else len(d) for d in loaded.data.to_pylist()]
    [791555, None, None]
    >>> loaded.uris.to_pylist()
    ['file:///.../astronaut.png', None, 'file:///.../missing.png']
    >>> loaded.errortypes.to_pylist()
    [None, None, 'SourceNotFound']
    >>> load_column(["missing.png"], T.Image, MediaOptions(), table_name="pics",
    ...             column="image", row_offset=0)
    Traceback (most recent call last):
    ...
    lakehouse.errors.MediaError: table 'pics': column 'image', row 0: cannot read \
file:///.../missing.png: no such file or object (nothing was written; ...)
    """
    def load(value: Any) -> tuple[bytes | None, str | None, _CellError | None]:
        try:
            if column in options.trusted and (value is None or isinstance(value, bytes)):
                return value, None, None
            data, uri = _load(value, ctype, options.fetcher, column in options.reused)
            return data, uri, None
        except _CellError as exc:
            return None, exc.uri, exc

    results = pmap(load, values)
    errors = [e for _, _, e in results]
    if options.on_error == "abort":
        first = next((i for i, e in enumerate(errors) if e is not None), None)
        if first is not None:
            error = errors[first]
            msg = f"table {table_name!r}: column {column!r}, row {row_offset + first}: {error} "
            msg += ("(nothing was written; pass on_error='ignore' to keep such rows with the "
                    "error recorded)") if options.ignorable else "(nothing was written)"
            if error.refused:
                raise SourceRefusedError(msg, kind=error.kind)
            raise MediaError(msg)
    return LoadedColumn(
        data=pa.array([d for d, _, _ in results], pa.large_binary()),
        uris=pa.array([u for _, u, _ in results], pa.string()),
        errortypes=pa.array([e.kind if e else None for e in errors], pa.string()),
        errormsgs=pa.array([str(e) if e else None for e in errors], pa.string()),
    )


def _load(value: Any, ctype: T.MediaType, fetcher: Fetcher,
          reuse: bool) -> tuple[bytes | None, str | None]:
    if value is None:
        return None, None
    uri = None
    if isinstance(value, str | os.PathLike):
        uri, data = _fetch(os.fspath(value), fetcher)
        _check_source(uri, data, ctype)
    else:
        try:
            data = ctype.coerce(value)
        except TypeError as exc:
            raise _CellError("TypeMismatch", str(exc)) from None
    try:
        ctype.check(data, reuse=reuse)
    except ValueError as exc:
        source = redact_uri(uri) if uri else f"the {type(value).__name__} value"
        raise _CellError(f"Invalid{ctype.kind.capitalize()}", f"{source}: {exc}", uri) from None
    return data, uri


def _fetch(source: str, fetcher: Fetcher) -> tuple[str, bytes]:
    """The source's URI and bytes; a :class:`_CellError` if it cannot or may not be read."""
    try:
        uri = to_uri(source, allow_outside_folder=fetcher.policy.allow_outside_folder)
    except SourceRefusedError as exc:
        raise _CellError(exc.kind, str(exc), source, refused=True) from None
    except ValueError as exc:
        raise _CellError("UnsupportedSource", redact_text(str(exc))) from None
    try:
        return uri, fetcher.read(uri)
    except SourceRefusedError as exc:
        raise _CellError(exc.kind, str(exc), uri, refused=True) from None
    except Exception as exc:
        raise _CellError("SourceNotFound" if _not_found(exc) else "SourceUnreachable",
                         f"cannot read {redact_uri(uri)}: {describe_failure(exc)}", uri) from None


def _check_source(uri: str, data: bytes, ctype: T.MediaType) -> None:
    try:
        ctype.check_source(uri, data)
    except ValueError as exc:
        kind = f"Invalid{ctype.kind.capitalize()}"
        raise _CellError(kind, f"{redact_uri(uri)}: {exc}", uri) from None


def _not_found(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or (
        isinstance(exc, HTTPStatusError) and exc.code in (404, 410))


def values_of(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of an inserted Arrow media column: strings are sources, binaries are bytes,
    and a struct of ``bytes`` and ``path`` (the Hugging Face image layout) is its bytes, or its
    path where the bytes are missing.

    >>> values_of(pa.array([{"bytes": b"GIF89a", "path": "a.gif"},
    ...                     {"bytes": None, "path": "b.gif"}]))
    [b'GIF89a', 'b.gif']
    """
    t = arr.type
    if pa.types.is_struct(t) and {t.field(i).name for i in range(t.num_fields)} >= {"bytes"}:
        has_path = t.get_field_index("path") >= 0
        out = []
        for row in arr.to_pylist():
            if row is None:
                out.append(None)
            elif row.get("bytes") is not None:
                out.append(row["bytes"])
            else:
                out.append(row.get("path") if has_path else None)
        return out
    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_null(t)):
        return arr.to_pylist()
    raise TypeError(f"a media column takes paths, URIs or bytes, got Arrow type {t}")
