"""One thread pool shared by media work (fetching, decoding, resizing).

Pillow, PyAV and the storage clients release the GIL while they decode, resize and wait on I/O,
so threads use every core without the cost of copying bytes between processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_lock = threading.Lock()


def workers() -> int:
    """Threads for media work: ``$LAKEHOUSE_THREADS``, else one per core."""
    return max(1, int(os.environ.get("LAKEHOUSE_THREADS") or os.cpu_count() or 1))


def pmap(fn: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
    """``[fn(x) for x in items]`` on the pool; the first exception propagates.

    >>> pmap(len, ["a", "bb", "ccc"])
    [1, 2, 3]
    """
    if len(items) < 2 or workers() == 1:
        return [fn(x) for x in items]
    return list(_executor().map(fn, items))


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():  # a forked child needs its own threads
            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="lakehouse")
            _pool_pid = os.getpid()
        return _pool
