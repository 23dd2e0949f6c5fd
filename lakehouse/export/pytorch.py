"""PyTorch datasets over a table version: what ``t.to_pytorch()`` and ``q.to_pytorch()`` return.

The rules:

- **One version.** The rows are the query's rows at the table version current when the dataset
  is made; a later write changes nothing it yields.
- **Safe with worker processes.** A dataset holds the table's URI, that version, the storage
  options and the list of row positions (numpy), never an open Lance handle: pickled into a
  ``DataLoader`` worker, it opens its own handle on first read in that process. The iterable
  dataset splits its rows between the workers (``torch.utils.data.get_worker_info()``), so an
  epoch yields each row once whatever ``num_workers`` is. Workers may be spawned
  (``multiprocessing_context="spawn"``, then ``transform`` must pickle) or forked (the
  default on Linux): Lance is not fork-safe (a forked process that calls it can hang), so a
  forked worker reads through a fresh reader process it starts
  (:mod:`lakehouse.export.row_server`), and only a spawned one opens Lance itself.
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

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa

from lakehouse import providers
from lakehouse.errors import (
    InvalidOptionError,
    ModelsNotInstalledError,
    UnsupportedError,
    check_choice,
)
from lakehouse.exec.scan import scan_frames
from lakehouse.export.row_server import ForkedReads
from lakehouse.export.rows import Column, Source, open_version, read_rows
from lakehouse.exprs.nodes import ColumnRef
from lakehouse.functions.image import decode
from lakehouse.metadata import ROW_ADDRESS, TableDef

if TYPE_CHECKING:
    import torch

    from lakehouse.queries import Query

#: The namespace whose provider (:mod:`lakehouse.export.datasets`) defines the dataset classes
#: and fills :data:`DATASET_KINDS` when imported: it imports torch, which only
#: :func:`make_dataset` may load, and this module cannot import it back without a cycle.
DATASETS = "pytorch-datasets"
DATASET_KINDS: dict[str, type] = {}
providers.provide(DATASETS, "lakehouse.export.datasets")

IMAGES = ("uint8", "float")
READ_ROWS = 64  # rows an iterable dataset reads at a time


class Reader:
    """Reads rows by position from one table version and makes them tensors. Lance is used
    directly only in the process that made the reader or unpickled it (a spawned worker); a
    forked worker, where Lance must not be called, reads through a process of its own
    (:class:`~lakehouse.export.row_server.ForkedReads`)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._owner = os.getpid()
        self._dataset: lance.LanceDataset | None = None
        self._forked: ForkedReads | None = None
        self._forked_in = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source}  # never the open handle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["source"])  # type: ignore[misc]

    def raw(self, positions: Sequence[int]) -> pa.Table:
        """The rows at ``positions`` as Arrow (media as bytes), read safely in this process."""
        pid = os.getpid()
        if pid == self._owner:
            if self._dataset is None:
                self._dataset = open_version(self.source)
            return read_rows(self._dataset, self.source, positions)
        if self._forked is None or self._forked_in != pid:
            self._forked, self._forked_in = ForkedReads(self.source), pid
        return self._forked.read(positions)

    def rows(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at ``positions`` (in that order), as dicts of tensors and values."""
        import torch  # heavy and optional (the [models] extra): loaded when rows are read

        taken = self.raw(positions)
        values: dict[str, list[Any]] = {}
        for c in self.source.columns:
            column = taken.column(c.name)
            if c.kind == "image":
                values[c.name] = [None if d is None else
                                  _image_tensor(torch, d, self.source.images)
                                  for d in column.to_pylist()]
            elif c.kind == "array":
                values[c.name] = _array_tensors(torch, column)
            else:
                values[c.name] = column.to_pylist()
        return [{c.name: values[c.name][i] for c in self.source.columns}
                for i in range(taken.num_rows)]


def _image_tensor(torch: Any, data: bytes, images: str) -> torch.Tensor:
    """An encoded image as a ``(3, H, W)`` tensor: uint8, or float32 in [0, 1]."""
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
    providers.load(DATASETS)  # the dataset classes subclass torch's, so they load with torch
    kind = DATASET_KINDS["iterable" if iterable else "map"]
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
