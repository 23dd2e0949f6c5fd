"""PyTorch datasets over a table version: what ``t.to_pytorch()`` and ``q.to_pytorch()`` return.

The rules:

- **One version.** The rows are the query's rows at the table version current when the dataset
  is made; a later write changes nothing it yields.
- **Safe with worker processes.** A dataset holds the table's URI, that version, the storage
  options and the list of row positions (numpy), never an open Lance handle: pickled into a
  ``DataLoader`` worker, it opens its own handle on first read in that process. The iterable
  dataset splits its rows between the workers (``torch.utils.data.get_worker_info()``), so an
  epoch yields each row once whatever ``num_workers`` is. Workers may be forked (the default
  on Linux) or spawned (``multiprocessing_context="spawn"``, then ``transform`` must pickle):
  Lance warns at every fork that it is not fork-safe, which concerns a handle used on both
  sides of a fork; a worker here never uses its parent's.
- **Tensors where they fit.** An image becomes a ``uint8`` tensor of shape ``(3, H, W)``
  (channels first, RGB whatever the file's mode; ``images="float"``: ``float32`` in [0, 1]);
  an array (an embedding) a tensor of its dtype and shape; strings, numbers and booleans stay
  Python values (the ``DataLoader``'s collation makes tensors of numbers); other media (video,
  audio, documents) stay bytes. ``transform`` is then called with each row's dict.
- **Reproducible.** ``shuffle=True`` orders the rows by a permutation drawn from ``seed``; the
  same seed gives the same order, and :meth:`TableDataset.split` the same parts.

torch is imported only when a dataset is made; without it (it comes with the ``models`` extra)
:class:`~lakehouse.ModelsNotInstalledError` says how to install it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa

from lakehouse.errors import (
    InvalidOptionError,
    ModelsNotInstalledError,
    UnsupportedError,
    check_choice,
)
from lakehouse.exec.scan import scan_frames
from lakehouse.exprs.nodes import ColumnRef
from lakehouse.media.fetch import Fetcher
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import ROW_ADDRESS, ColumnDef, TableDef

if TYPE_CHECKING:
    import torch

    from lakehouse.queries import Query

IMAGES = ("uint8", "float")
READ_ROWS = 64  # rows an iterable dataset reads at a time


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
        ctype = column.type
        if ctype.is_media:
            store = getattr(ctype, "store", "bytes")
            uri = column.info_columns().get("fileurl") if store == "reference" else None
            return Column(name, column.name, "image" if ctype.kind == "image" else "media", uri)
        return Column(name, column.name, "array" if ctype.kind == "array" else "value")


@dataclasses.dataclass(frozen=True)
class Source:
    """Everything a worker needs to read rows, and nothing it cannot pickle: where the table
    is, its version, how to reach it, the columns, and how images become tensors."""

    table: str
    uri: str
    version: int
    storage_options: dict[str, str]
    fetch: FetchPolicy
    columns: tuple[Column, ...]
    images: str = "uint8"


class Reader:
    """Reads rows by position from one table version, through a Lance handle opened lazily in
    the process that reads (after a fork, the child opens its own)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._dataset: lance.LanceDataset | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source}  # never the open handle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"])  # type: ignore[misc]

    def dataset(self) -> lance.LanceDataset:
        """This process's handle on the table version."""
        if self._dataset is None or self._pid != os.getpid():
            src = self.source
            self._dataset = lance.dataset(src.uri, version=src.version,
                                          storage_options=src.storage_options or None)
            self._pid = os.getpid()
        return self._dataset

    def rows(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at ``positions`` (in that order), as dicts of tensors and values."""
        import torch

        ds = self.dataset()
        wanted = [int(p) for p in positions]
        columns = self.source.columns
        plain = [c.stored for c in columns if c.kind in ("value", "array")]
        plain += [c.uri_column for c in columns if c.uri_column is not None]
        taken = ds.take(wanted, columns=plain) if plain else pa.table({})
        values: dict[str, list[Any]] = {}
        for c in columns:
            if c.kind in ("image", "media"):
                data = self._media(ds, c, wanted, taken)
                values[c.name] = [_image_tensor(torch, d, self.source.images) if
                                  c.kind == "image" and d is not None else d for d in data]
            elif c.kind == "array":
                values[c.name] = _array_tensors(torch, taken.column(c.stored))
            else:
                values[c.name] = taken.column(c.stored).to_pylist()
        return [{c.name: values[c.name][i] for c in columns} for i in range(len(wanted))]

    def _media(self, ds: lance.LanceDataset, column: Column, positions: list[int],
               taken: pa.Table) -> list[bytes | None]:
        """The bytes of a media column: stored blobs, or read from the source URI of a
        ``store="reference"`` value."""
        blobs = ds.take_blobs(column.stored, indices=positions)
        data: list[bytes | None] = []
        for blob in blobs:
            if blob is None:
                data.append(None)
                continue
            with blob:
                data.append(blob.read())
        if column.uri_column is None:
            return data
        uris = taken.column(column.uri_column).to_pylist()
        fetcher = Fetcher(self.source.storage_options, self.source.fetch)
        return [d if d is not None or u is None else fetcher.read(u, cache=True)
                for d, u in zip(data, uris, strict=True)]


def _image_tensor(torch: Any, data: bytes, images: str) -> torch.Tensor:
    """An encoded image as a ``(3, H, W)`` tensor: uint8, or float32 in [0, 1]."""
    from lakehouse.functions.image import decode

    pixels = np.array(decode(data, remember=False).convert("RGB"))
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    return tensor.float().div_(255) if images == "float" else tensor


def _array_tensors(torch: Any, column: pa.ChunkedArray) -> list[Any]:
    """An array column's values as tensors (None stays None)."""
    return [None if v is None else torch.from_numpy(np.asarray(v))
            for v in column.to_numpy(zero_copy_only=False)]


def require_torch() -> None:
    """Refuse, before anything is read, when torch cannot be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ModelsNotInstalledError(
            "to_pytorch() needs torch, which is not installed; pip install "
            "'lakehouse[models]' (or torch alone) adds it") from None


def make_dataset(query: Query, *, columns: Sequence[str] | None = None,
                 transform: Callable[[dict[str, Any]], Any] | None = None,
                 shuffle: bool = False, seed: int | None = None, iterable: bool = False,
                 images: str = "uint8") -> Any:
    """The query's rows at the table version current now, as a map-style
    :class:`~lakehouse.export.datasets.TableDataset` or (``iterable=True``) an
    :class:`~lakehouse.export.datasets.TableIterableDataset`. See the module's rules.

    >>> ds = make_dataset(t.where(t.year > 1990), columns=["title", "year"])
    >>> len(ds), ds[0]
    (2, {'title': 'Heat', 'year': 1995})
    """
    require_torch()
    check_choice("images", images, IMAGES)
    if query.ordering:
        raise UnsupportedError("to_pytorch() yields rows in table order (or shuffled by seed); "
                               "drop order_by()")
    if seed is not None and not shuffle:
        raise InvalidOptionError("seed= orders a shuffle: pass shuffle=True with it")
    state = query.table.table_state()
    tdef, name = state.definition, query.table.table_name
    chosen = _columns(query, tdef, name, columns)
    source = Source(name, query.table.table_uri, state.version,
                    dict(state.location.storage_options), state.location.fetch, chosen, images)
    positions = _positions(query, state.dataset, tdef)
    if shuffle:
        positions = np.random.default_rng(seed).permutation(positions)
    from lakehouse.export.datasets import TableDataset, TableIterableDataset

    kind = TableIterableDataset if iterable else TableDataset
    return kind(Reader(source), positions, transform)


def _columns(query: Query, tdef: TableDef, table: str,
             names: Sequence[str] | None) -> tuple[Column, ...]:
    """The columns to yield: ``names``, else the query's outputs (plain columns only), else
    every column of the table."""
    if names is not None:
        if isinstance(names, str):
            names = [names]
        return tuple(Column.of(n, tdef.get(n, table)) for n in names)
    if query.outputs is None:
        return tuple(Column.of(c.name, c) for c in tdef.columns)
    chosen = []
    for out, expr in query.outputs:
        if not isinstance(expr, ColumnRef):
            raise UnsupportedError(
                f"to_pytorch() reads stored columns; {out!r} ({expr!r}) is an expression: "
                "add it as a computed column, or compute it in transform=")
        tdef.check_refs(expr, table)
        chosen.append(Column.of(out, tdef.by_id(expr.col_id)))
    return tuple(chosen)


def _positions(query: Query, ds: lance.LanceDataset, tdef: TableDef) -> np.ndarray:
    """The positions (0..rows-1 in this version) of the query's rows, in table order."""
    if query.condition is None and query.sampled is None:
        count = ds.count_rows()
        return np.arange(count if query.row_limit is None else min(count, query.row_limit),
                         dtype=np.int64)
    tdef.check_refs(query.condition, query.table.table_name)
    matched = [f.get_column(ROW_ADDRESS).to_numpy() for f in scan_frames(
        ds, tdef, query.table.table_name, query.condition, [], row_ids=True,
        limit=query.row_limit,
        only_rows=None if query.sampled is None else list(query.sampled))]
    if not matched:
        return np.zeros(0, dtype=np.int64)
    every = ds.scanner(columns=[], with_row_address=True).to_table().column(0).to_numpy()
    order = np.argsort(every)
    found = order[np.searchsorted(every, np.concatenate(matched), sorter=order)]
    return np.sort(found).astype(np.int64)
