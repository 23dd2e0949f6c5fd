"""Run a generator one item ahead on a background thread, so that producing the next item (for
example validating the next chunk of an insert) overlaps consuming this one (running a model)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

_T = TypeVar("_T")
_DONE = object()


def prefetched(items: Iterator[_T], depth: int = 1) -> Iterator[_T]:
    """Yield what ``items`` yields, in order, producing up to ``depth`` items ahead; an exception
    in ``items`` is raised here, at the point it would have been reached. Stopping early (an
    exception in the consumer, or ``close()``) stops the producer after its current item."""
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(slots, (item, None), stop):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            _put(slots, (_DONE, exc), stop)
            return
        _put(slots, (_DONE, None), stop)

    worker = threading.Thread(target=produce, name="lakehouse-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def _put(slots: queue.Queue, entry: tuple[object, BaseException | None],
         stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
