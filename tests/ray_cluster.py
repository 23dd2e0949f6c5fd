"""The local Ray cluster of the Ray tests, and what they compare.

The session fixture ``ray_cluster`` starts a Ray head and one worker node (`ray start --block`,
one CPU each, small object stores) as two processes of this test run, joins them as a driver
and stops them at the end: every test file that asks for it shares the one cluster. The
workers find the test UDFs on their own PYTHONPATH (tests/ and the repository) and log their
calls to ``ray_dir``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from udfs_for_tests import TESTS_DIR

import lakehouse as lh

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT_S = 90
# a cluster of this test run only, on this machine: no token to hand to the driver
AUTH_MODE = "disabled"
NODE = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=80000000",
        "--disable-usage-stats"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End a `ray start --block` process: it stops the node's processes on SIGTERM."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_nodes(count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    import ray  # the ray extra: only the Ray tests need it

    while sum(1 for n in ray.nodes() if n["Alive"]) < count:
        assert time.monotonic() < deadline, f"the Ray cluster did not reach {count} nodes"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def ray_dir() -> Iterator[Path]:
    """The folder the cluster's workers log their calls to (LAKEHOUSE_TEST_RAY_DIR)."""
    with tempfile.TemporaryDirectory(prefix="lhray") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def ray_cluster(ray_dir: Path) -> Iterator[str]:
    """A Ray head and one worker node on this machine, joined by this process as a driver."""
    ray = pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[ray]"')
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), TESTS_DIR]),
           "LAKEHOUSE_TEST_RAY_DIR": str(ray_dir), "LH_TEST_ALLOW_EXIT": "1",
           "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": AUTH_MODE}
    temp = tempfile.mkdtemp(prefix="lhray", dir="/tmp")  # short: Ray's socket paths are bounded
    logs = open(ray_dir / "cluster.log", "ab")  # noqa: SIM115 - open while the cluster runs
    before, os.environ["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE"), AUTH_MODE
    head = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}",
                             "--include-dashboard=false", f"--temp-dir={temp}", *NODE],
                            env=env, stdout=logs, stderr=subprocess.STDOUT)
    procs = [head]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                ray.init(address=address, log_to_driver=False)
                break
            except (ConnectionError, RuntimeError):
                assert head.poll() is None and time.monotonic() < deadline, \
                    (ray_dir / "cluster.log").read_text()[-3000:]
                time.sleep(1)
        procs.append(subprocess.Popen([str(RAY), "start", "--block", f"--address={address}",
                                       *NODE], env=env, stdout=logs, stderr=subprocess.STDOUT))
        _wait_for_nodes(2)
        yield address
    finally:
        ray.shutdown()
        for proc in reversed(procs):
            _stop(proc)
        logs.close()
        shutil.rmtree(temp, ignore_errors=True)
        if before is None:
            os.environ.pop("RAY_AUTH_MODE")
        else:
            os.environ["RAY_AUTH_MODE"] = before


def connect_to(root, engine=None) -> lh.Catalog:
    return lh.connect(root.uri, storage_options=root.storage_options, maintenance=False,
                      engine=engine)


def table_content(t: lh.Table) -> list[tuple]:
    names = t.column_names()
    refs = [getattr(t, n) for n in names]
    extra = [r for n in names if t.table_definition.get(n, t.name).keeps_errors
             for r in (getattr(t, n).errortype, getattr(t, n).errormsg)]
    return t.order_by(t.n).select(*refs, *extra).collect().rows()


def table_history(t: lh.Table) -> list[tuple]:
    return t.history().select("version", "operation", "rows_added", "rows_changed",
                              "rows_removed", "total_rows").rows()


def table_definitions(t: lh.Table) -> list[tuple]:
    """Every column's definition, the hidden vectors of embedding indexes (and the index each
    serves) too."""
    tdef = t.table_definition
    return [(c.name, c.col_id, c.expr_json, c.on_error, c.index)
            for c in (*tdef.columns, *tdef.hidden)]
