"""The PyTorch dataset classes :func:`lakehouse.export.pytorch.make_dataset` returns. This
module imports torch (they subclass its ``Dataset`` and ``IterableDataset``, which is how a
``DataLoader`` tells them apart), so it is imported only once torch is known to be there."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lakehouse.errors import InvalidOptionError
from lakehouse.export.pytorch import DATASET_KINDS, READ_ROWS, Reader

Transform = Callable[[dict[str, Any]], Any] | None


class TableDataset(Dataset):  # type: ignore[type-arg]
    """A map-style dataset: ``len(ds)`` rows of one table version, ``ds[i]`` the i-th (a dict
    of column -> value, or what ``transform`` makes of it). ``DataLoader`` reads a batch in one
    Lance read (``__getitems__``). Picklable; each process opens its own Lance handle.

    >>> ds = t.to_pytorch(columns=["title"])
    >>> len(ds), ds[2], [row["title"] for row in ds.__getitems__([1, 0])]
    (3, {'title': 'Up'}, ['Heat', 'Alien'])
    """

    def __init__(self, reader: Reader, positions: np.ndarray, transform: Transform) -> None:
        self.reader = reader
        self.positions = positions
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of a dataset of {len(self)} rows")
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        rows = self.reader.rows(self.positions[np.asarray(indices, dtype=np.int64)])
        return rows if self.transform is None else [self.transform(r) for r in rows]

    @property
    def version(self) -> int:
        """The table version the rows are read from."""
        return self.reader.source.version

    def split(self, fractions: Sequence[float], *, seed: int | None = None,
              ) -> list[TableDataset]:
        """Disjoint parts of the rows, of these shares (summing to 1), drawn at random from
        ``seed``: the same seed gives the same parts. Each part keeps this dataset's order.

        >>> train, test = t.to_pytorch(columns=["year"]).split([0.67, 0.33], seed=1)
        >>> len(train), len(test)
        (2, 1)
        """
        return [type(self)(self.reader, part, self.transform)
                for part in _split(self.positions, fractions, seed)]


class TableIterableDataset(IterableDataset):  # type: ignore[type-arg]
    """An iterable dataset over the rows of one table version, read a few dozen rows at a time.
    In a ``DataLoader`` with workers, worker k of n yields the k-th of n contiguous shares of
    the rows, so each row comes once per epoch.

    >>> ds = t.to_pytorch(columns=["title"], iterable=True)
    >>> [row["title"] for row in ds]
    ['Alien', 'Heat', 'Up']
    """

    def __init__(self, reader: Reader, positions: np.ndarray, transform: Transform) -> None:
        self.reader = reader
        self.positions = positions
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        mine = self.positions if info is None else \
            np.array_split(self.positions, info.num_workers)[info.id]
        for start in range(0, len(mine), READ_ROWS):
            for row in self.reader.rows(mine[start:start + READ_ROWS]):
                yield row if self.transform is None else self.transform(row)

    @property
    def version(self) -> int:
        """The table version the rows are read from."""
        return self.reader.source.version

    def split(self, fractions: Sequence[float], *, seed: int | None = None,
              ) -> list[TableIterableDataset]:
        """Disjoint parts of the rows, as :meth:`TableDataset.split`.

        >>> [len(p) for p in t.to_pytorch(iterable=True).split([0.5, 0.5], seed=3)]
        [2, 1]
        """
        return [type(self)(self.reader, part, self.transform)
                for part in _split(self.positions, fractions, seed)]


def _split(positions: np.ndarray, fractions: Sequence[float],
           seed: int | None) -> list[np.ndarray]:
    """``positions`` cut at random (from ``seed``) into parts of these shares, each part in the
    order of ``positions``; the rows rounding leaves go to the parts with the largest
    remainders."""
    shares = [float(f) for f in fractions]
    if not shares or any(f < 0 for f in shares) or abs(sum(shares) - 1) > 1e-6:
        raise InvalidOptionError(f"split() needs non-negative fractions that sum to 1, got "
                                 f"{list(fractions)!r}")
    n = len(positions)
    wanted = np.asarray(shares) * n
    sizes = np.floor(wanted).astype(np.int64)
    sizes[np.argsort(-(wanted - sizes), kind="stable")[:n - int(sizes.sum())]] += 1
    chosen = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [positions[np.sort(chosen[a:b])] for a, b in zip(bounds[:-1], bounds[1:],
                                                             strict=True)]


DATASET_KINDS.update(map=TableDataset, iterable=TableIterableDataset)
