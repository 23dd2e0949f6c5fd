"""@lh.udf functions the Ray engine tests run on the workers of a local Ray cluster.

The cluster's processes get tests/ on PYTHONPATH, so the workers import this module themselves,
after checking its source against the stored fingerprint (lakehouse.trust), as any process
that did not import it does. The environment of the cluster (not of the test runner) sets
``LAKEHOUSE_TEST_RAY_DIR``: a folder where the workers log their calls and find the marker of
the process they kill.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lakehouse as lh
from lakehouse.exec.permissions import Permissions
from lakehouse.functions import embeddings

KILL_AT = 250  # the value whose computation kills its worker process, once


def _shared_dir() -> Path | None:
    folder = os.environ.get("LAKEHOUSE_TEST_RAY_DIR")
    return Path(folder) if folder else None


@lh.udf
def odd_square(n: int) -> int:
    """n * n, and an error for multiples of 7 (rows kept with their error)."""
    if n % 7 == 0:
        raise ValueError(f"{n} is a multiple of 7")
    return n * n


@lh.udf
def logged_triple(n: int) -> int:
    """3 n; on a Ray worker of the test cluster, each call is logged in calls.log and the first
    call for KILL_AT kills the worker's own process (SIGKILL), as a lost machine would."""
    shared = _shared_dir()
    if shared is not None:
        with open(shared / "calls.log", "a") as log:
            log.write(f"{n}\n")
        marker = shared / "killed"
        if n == KILL_AT and os.environ.get("LH_TEST_ALLOW_EXIT") == "1" and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
    return 3 * n


class ModelChecks:
    """A Ray actor (one worker process) that says whether stored embedding specs may load there:
    each spec's refusal (the ModelError message), or None where it is allowed."""

    def refusals(self, specs: list[dict], permissions: Permissions | None = None) \
            -> list[str | None]:
        """Grant ``permissions`` (a driver's) first, when given, then check every spec."""
        if permissions is not None:
            permissions.grant()
        out: list[str | None] = []
        for spec in specs:
            try:
                embeddings.check_allowed(embeddings.EmbeddingFunction.from_spec(spec))
            except lh.ModelError as exc:
                out.append(str(exc))
            else:
                out.append(None)
        return out
