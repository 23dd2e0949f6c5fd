"""An iterator and a UDF the Ray view tests run on the workers of a local Ray cluster.

The cluster's processes get tests/ on PYTHONPATH and ``LAKEHOUSE_TEST_RAY_DIR`` in their
environment (tests/ray_cluster.py); the test runner has neither variable, so a value can say
where it was made. The workers import this module themselves: the driver registered the
iterator, so they resolve it as it did.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lakehouse as lh

KILL_AT = 451  # the base value whose expansion kills its worker process, once
LOG = "expanded.log"  # the base values expanded on the workers, one a line
MARKER = "expansion_killed"
SLOW = "slow"  # while this file is in the shared folder, each base fragment takes a second more


def _shared_dir() -> Path | None:
    folder = os.environ.get("LAKEHOUSE_TEST_RAY_DIR")
    return Path(folder) if folder else None


@lh.iterators.iterator(outputs={"k": lh.Int, "on_ray": lh.Bool}, input=lh.String)
def counted(text: str, *, every: int = 3) -> Iterator[dict[str, Any]]:
    """``n % every`` rows for the number ``n`` written in ``text`` (none for multiples of
    ``every``), each saying whether a Ray worker made it; a failure for multiples of 13. On a
    worker of the test cluster, each base value is logged, the first expansion of KILL_AT
    kills the worker's own process (SIGKILL) after its first row, as a lost machine would, and
    the first value of each hundred waits a second while the SLOW file is there."""
    n = int(text)
    shared = _shared_dir()
    if shared is not None and n % 100 == 0 and (shared / SLOW).exists():
        time.sleep(1.0)
    if n % 13 == 0:
        raise lh.ComputeError(f"{n} is a multiple of 13")
    for k in range(n % every):
        if shared is not None and k == 0:
            with open(shared / LOG, "a") as log:
                log.write(f"{n}\n")
        yield {"k": n * 10 + k, "on_ray": shared is not None}
        marker = shared / MARKER if shared is not None else None
        if n == KILL_AT and marker is not None and not marker.exists() \
                and os.environ.get("LH_TEST_ALLOW_EXIT") == "1":
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def fill_texts(db: lh.Catalog, name: str) -> lh.Table:
    """Table ``name``: ``n`` 0 .. 799 and ``text``, the same number written out; one insert, and
    so one fragment, a hundred rows."""
    t = db.create_table(name, {"n": lh.Int, "text": lh.String})
    for start in range(0, 800, 100):
        t.insert([{"n": n, "text": str(n)} for n in range(start, start + 100)], progress=False)
    return t


@lh.udf
def on_ray(n: int) -> bool:
    """Whether a Ray worker of the test cluster computed it (``n`` unused but read)."""
    return n >= 0 and _shared_dir() is not None


@lh.udf
def odd_k(k: int) -> int:
    """k + 1, and an error for even values of k (rows kept with their error)."""
    if k % 2 == 0:
        raise ValueError(f"{k} is even")
    return k + 1
