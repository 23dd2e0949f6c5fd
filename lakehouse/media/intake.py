"""Media intake: turn inserted media values into validated bytes plus their source URIs.

A media cell accepts a local path, a ``file://``, ``s3://`` or ``http(s)://`` URI, raw bytes,
and for images a PIL image or a numpy array. Sources are fetched and checked on the shared thread
pool (a corrupt image, an unreadable video or a missing file is an error for that row). With
``on_error="abort"`` the first bad row stops the insert; with ``"ignore"`` the row is kept with a
null value and the error recorded (``t.col.errortype``, ``t.col.errormsg``).
"""

from __future__ import annotations

import dataclasses
import os
import urllib.error
from typing import Any

import pyarrow as pa

from lakehouse import types as T
from lakehouse.errors import MediaError
from lakehouse.media.fetch import Fetcher, describe_failure, to_uri
from lakehouse.media.pool import pmap

ON_ERROR = ("abort", "ignore")


@dataclasses.dataclass(frozen=True)
class MediaOptions:
    """How an insert treats media values: its error policy and where sources are read from."""

    on_error: str = "abort"
    fetcher: Fetcher = dataclasses.field(default_factory=Fetcher)
    reused: frozenset[str] = frozenset()  # media columns computed columns of the write read
    ignorable: bool = True  # whether the call takes on_error="ignore" (update() does not)


@dataclasses.dataclass(frozen=True)
class LoadedColumn:
    """One media column of one chunk: bytes, source URIs and per-row errors, as Arrow arrays."""

    data: pa.Array
    uris: pa.Array
    errortypes: pa.Array
    errormsgs: pa.Array


class _CellError(Exception):
    """A bad media value: ``source`` names it, the message says what is wrong."""

    def __init__(self, kind: str, message: str, uri: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.uri = uri  # the source, kept with the error so failed rows can be found by it


def load_column(values: list[Any], ctype: T.MediaType, options: MediaOptions, *,
                table: str, column: str, row_offset: int) -> LoadedColumn:
    """Fetch and check every value of one media column."""
    def load(value: Any) -> tuple[bytes | None, str | None, _CellError | None]:
        try:
            data, uri = _load(value, ctype, options.fetcher, column in options.reused)
            return data, uri, None
        except _CellError as exc:
            return None, exc.uri, exc

    results = pmap(load, values)
    errors = [e for _, _, e in results]
    if options.on_error == "abort":
        first = next((i for i, e in enumerate(errors) if e is not None), None)
        if first is not None:
            msg = f"table {table!r}: column {column!r}, row {row_offset + first}: {errors[first]} "
            msg += ("(nothing was written; pass on_error='ignore' to keep such rows with the "
                    "error recorded)") if options.ignorable else "(nothing was written)"
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
        try:
            uri = to_uri(value)
        except ValueError as exc:
            raise _CellError("UnsupportedSource", str(exc)) from None
        try:
            data = fetcher.read(uri)
        except Exception as exc:
            raise _CellError("SourceNotFound" if _not_found(exc) else "SourceUnreachable",
                             f"cannot read {uri}: {describe_failure(exc)}", uri) from None
    else:
        try:
            data = ctype.coerce(value)
        except TypeError as exc:
            raise _CellError("TypeMismatch", str(exc)) from None
    try:
        ctype.check(data, reuse=reuse)
    except ValueError as exc:
        source = uri or f"the {type(value).__name__} value"
        raise _CellError(f"Invalid{ctype.kind.capitalize()}", f"{source}: {exc}", uri) from None
    return data, uri


def _not_found(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or (
        isinstance(exc, urllib.error.HTTPError) and exc.code in (404, 410))


def values_of(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of an inserted Arrow media column: strings are sources, binaries are bytes,
    and a struct of ``bytes`` and ``path`` (the Hugging Face image layout) is its bytes, or its
    path where the bytes are missing."""
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
