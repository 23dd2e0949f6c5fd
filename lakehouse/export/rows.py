"""Rows of one table version read by position: what a PyTorch dataset's reader asks for.

A :class:`Source` says everything needed to read (where the table is, its version, how to
reach it, the columns); :func:`read_rows` reads the rows at some positions as one Arrow table
with a column per output: stored values as they are, media as their bytes (a ``store=
"reference"`` value read from its source). Turning them into tensors is the dataset's job, in
the process that yields them, so this module needs no torch and a reader process can send its
result as Arrow (:mod:`lakehouse.export.row_server`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import lance
import pyarrow as pa

from lakehouse.media.fetch import Fetcher
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import ColumnDef


@dataclasses.dataclass(frozen=True)
class Column:
    """One column a dataset yields: its output name, its stored column, what it holds
    (``image``, ``media``, ``array`` or ``value``) and, for ``store="reference"`` media, the
    hidden column of its source URIs."""

    name: str
    stored: str
    kind: str
    uri_column: str | None = None

    @staticmethod
    def of(name: str, column: ColumnDef) -> Column:
        """The column ``column`` of a table definition, yielded as ``name``.

        >>> Column.of("year", t.table_definition.get("year", "films"))
        Column(name='year', stored='year', kind='value', uri_column=None)
        """
        ctype = column.type
        if ctype.is_media:
            store = getattr(ctype, "store", "bytes")
            uri = column.info_columns().get("fileurl") if store == "reference" else None
            return Column(name, column.name, "image" if ctype.kind == "image" else "media", uri)
        return Column(name, column.name, "array" if ctype.kind == "array" else "value")


@dataclasses.dataclass(frozen=True)
class Source:
    """Everything a reader needs, and nothing it cannot pickle or write as JSON: where the
    table is, its version, how to reach it, the columns, and how images become tensors."""

    table: str
    uri: str
    version: int
    storage_options: dict[str, str]
    fetch: FetchPolicy
    columns: tuple[Column, ...]
    images: str = "uint8"

    def to_json(self) -> dict[str, Any]:
        """The source as JSON values (for a reader process started by this one).

        >>> src = Source("films", "/x/films.lance", 3, {}, FetchPolicy(), ())
        >>> Source.from_json(src.to_json()) == src
        True
        """
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Source:
        """The source :meth:`to_json` wrote."""
        return Source(**{**data, "fetch": FetchPolicy(**data["fetch"]),
                         "columns": tuple(Column(**c) for c in data["columns"])})


def open_version(source: Source) -> lance.LanceDataset:
    """A Lance handle on the source's table version, opened in this process."""
    return lance.dataset(source.uri, version=source.version,
                         storage_options=source.storage_options or None)


def read_rows(ds: lance.LanceDataset, source: Source, positions: Sequence[int]) -> pa.Table:
    """The rows at ``positions`` (in that order), one column per output column: values as
    stored, media as bytes (null where a row has none).

    >>> src = Source("films", t.table_uri, t.version, {}, FetchPolicy(),
    ...              (Column("title", "title", "value"),))
    >>> read_rows(open_version(src), src, [1, 0])["title"].to_pylist()
    ['Heat', 'Alien']
    """
    wanted = [int(p) for p in positions]
    columns = source.columns
    plain = [c.stored for c in columns if c.kind in ("value", "array")]
    plain += [c.uri_column for c in columns if c.uri_column is not None]
    taken = ds.take(wanted, columns=list(dict.fromkeys(plain))) if plain else None
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {}
    for c in columns:
        if c.kind in ("image", "media"):
            arrays[c.name] = pa.array(_media(ds, source, c, wanted, taken), pa.large_binary())
        else:
            arrays[c.name] = taken.column(c.stored)  # type: ignore[union-attr]
    return pa.table(arrays) if arrays else pa.table({})


def _media(ds: lance.LanceDataset, source: Source, column: Column, positions: list[int],
           taken: pa.Table | None) -> list[bytes | None]:
    """The bytes of a media column: stored blobs, or read from the source URI of a
    ``store="reference"`` value."""
    data: list[bytes | None] = []
    for blob in ds.take_blobs(column.stored, indices=positions):
        if blob is None:
            data.append(None)
            continue
        with blob:
            data.append(blob.read())
    if column.uri_column is None or taken is None:
        return data
    uris = taken.column(column.uri_column).to_pylist()
    fetcher = Fetcher(source.storage_options, source.fetch)
    return [d if d is not None or u is None else fetcher.read(u, cache=True)
            for d, u in zip(data, uris, strict=True)]
