"""UDFs that tell the Ray tests where and when the workers of the local test cluster compute.

The cluster's processes get tests/ on PYTHONPATH and ``LAKEHOUSE_TEST_RAY_DIR`` (a folder of
this test run) in their environment (tests/ray_cluster.py); the test runner and the processes
it starts itself have neither variable, so these UDFs do their work only on the cluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lakehouse as lh

GATE = "gate"  # while this file is in the shared folder, gated_triple waits on the workers
GATED = "gated"  # written by the first call that waits at the gate
GATE_TIMEOUT_S = 60.0  # a test that never opens the gate fails instead of hanging


def _shared_dir() -> Path | None:
    folder = os.environ.get("LAKEHOUSE_TEST_RAY_DIR")
    return Path(folder) if folder else None


@lh.udf
def actor_of(n: int) -> str:
    """The id of the Ray actor that computed the row: "" in a plain Ray task and outside the
    test cluster (``n`` unused but read)."""
    if n is None or _shared_dir() is None:
        return ""
    import ray  # a worker of the test cluster has it

    return ray.get_runtime_context().get_actor_id() or ""


@lh.udf
def gated_triple(n: int) -> int:
    """3 n; on a worker of the test cluster, while the GATE file is in the shared folder, each
    call says so (the GATED file) and waits until the file is gone (GATE_TIMEOUT_S at most):
    a test holds a write's tasks mid-way while another process writes."""
    shared = _shared_dir()
    if shared is not None and (shared / GATE).exists():
        (shared / GATED).touch()
        deadline = time.monotonic() + GATE_TIMEOUT_S
        while (shared / GATE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return 3 * n
