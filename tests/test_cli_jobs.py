"""Long work from the installed `lakehouse` command, run as a subprocess: `jobs` watches a
backfill that another process runs, shows it abandoned once its process is gone, and discards
it; `recompute` computes values again for chosen rows, failed cells only, with or without their
dependents, with a progress bar; mistakes are one clear line and change nothing.

The backfill runs in a real process (a slow UDF from tests/udfs_for_tests) that is killed with
SIGKILL; the tables are made with the library. Local and S3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import fsspec
import pytest
import udfs_for_tests as U
from cli_checks import ok, one_error_line

import lakehouse as lh
from lakehouse.exec import checkpoints
from lakehouse.storage import s3_filesystem

FRAGMENTS, ROWS_PER_FRAGMENT = U.FRAGMENTS, U.ROWS_PER_FRAGMENT


@pytest.fixture
def cli(run_cli, lakehouse_root, tmp_path):
    """run_cli on the current backend's root, able to import tests/udfs_for_tests, with the
    UDF call log in tmp_path."""

    def run(*args: str, **env: str):
        return run_cli(*args, env={"LAKEHOUSE_ROOT": lakehouse_root.uri,
                                   "PYTHONPATH": _pythonpath(),
                                   "LAKEHOUSE_TEST_CALL_LOG": str(tmp_path / "calls.log"),
                                   **env})

    return run


def _pythonpath() -> str:
    return os.pathsep.join([U.TESTS_DIR, os.environ.get("PYTHONPATH", "")])



@pytest.fixture
def numbers(db):
    return U.fill_numbers(db)


def _start_backfill(root, sleep: float) -> subprocess.Popen:
    """A process adding ``doubled`` to numbers, sleeping ``sleep`` s per batch of 50 rows."""
    code = textwrap.dedent(f"""
        import lakehouse as lh
        import udfs_for_tests as U
        db = lh.connect({root.uri!r}, storage_options={root.storage_options!r})
        t = db.get_table("numbers")
        t.add_computed_column(doubled=U.doubled_and_logged(t.n), progress=False)
    """)
    env = dict(os.environ, LAKEHOUSE_TEST_SLEEP=str(sleep), PYTHONPATH=_pythonpath(),
               LAKEHOUSE_CHECKPOINT_AFTER_S="0")
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _age(t: lh.Table, job: str, seconds: float) -> None:
    """Make a job's last progress ``seconds`` older, as if its process had stopped that long
    ago (rather than wait for it)."""
    uri = t.table_uri
    options = t.table_state().location.storage_options
    fs = s3_filesystem(options) if uri.startswith("s3://") else fsspec.filesystem("file")
    path = f"{uri.removeprefix('s3://')}/{checkpoints.JOBS_DIR}/{job}/job.json"
    state = json.loads(fs.cat_file(path))
    state["updated"] -= seconds
    with fs.open(path, "wb") as f:
        f.write(json.dumps(state).encode())


def test_jobs_watches_a_backfill_run_by_another_process_then_discards_it(
        cli, numbers, lakehouse_root) -> None:
    proc = _start_backfill(lakehouse_root, sleep=0.5)  # about 1 s a fragment
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the backfill showed no progress"
            jobs = json.loads(ok(cli("jobs", "numbers", "--format", "json")))
            if jobs and jobs[0]["rows_done"] > 0:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    (job,) = jobs  # every field of t.jobs(), for programs
    assert job["state"] == "running"
    assert (job["kind"], job["columns"], job["rows_total"]) == ("add column", ["doubled"], 800)
    assert 0 < job["rows_done"] < 800 and job["errors"] == 0
    assert job["rows_per_s"] > 0 and job["eta_s"] > 0
    assert set(job) == {"job", "kind", "columns", "state", "rows_done", "rows_total", "errors",
                        "started", "updated", "rows_per_s", "eta_s"}

    # killed: still "running" until its progress is a minute old, then "abandoned"
    table = ok(cli("jobs", "numbers"))
    header, row = table.splitlines()[1], table.splitlines()[3]
    for name in ("state", "rows", "%", "rows/s", "eta", "errors", "columns", "job"):
        assert name in header, table
    assert "running" in row and job["job"] in row and "doubled" in row and "/800" in row, table
    _age(numbers, job["job"], checkpoints.STALE_AFTER_S + 1)
    table = ok(cli("jobs", "numbers"))
    row = table.splitlines()[3]
    assert "abandoned" in row and job["job"] in row, table
    assert "null" in row  # no time left while nothing runs it

    assert ok(cli("jobs", "numbers", "--discard", job["job"])) == \
        f"discarded job {job['job']} of numbers\n"
    assert numbers.jobs().height == 0
    assert ok(cli("jobs", "numbers")) == "numbers has no unfinished jobs\n"
    assert ok(cli("jobs", "numbers", "-f", "json")) == "[]\n"
    line = one_error_line(cli("jobs", "numbers", "--discard", job["job"]))
    assert f"table 'numbers' has no unfinished job '{job['job']}'" in line
    assert "lakehouse jobs numbers" in line
    assert "doubled" not in numbers.column_names()


def test_jobs_help_says_how_to_resume(run_cli) -> None:
    out = " ".join(ok(run_cli("jobs", "--help")).split())
    assert "run the command that started it again" in out


def test_recompute_chosen_rows_with_a_progress_bar(cli, numbers, tmp_path) -> None:
    numbers.add_computed_column(doubled=U.doubled_and_logged(numbers.n), progress=False)
    numbers.add_computed_column(quad=numbers.doubled * 2, progress=False)
    before = numbers.table_version

    proc = cli("recompute", "numbers", "doubled", "--where", "n < 120", "--progress")
    assert ok(proc) == f"recomputed doubled of numbers: 120 rows (0 with errors), version " \
        f"{before + 1}\n"
    assert "update numbers" in proc.stderr and "120 rows" in proc.stderr  # the bar
    assert U.rows_logged(tmp_path / "calls.log") == 120  # those rows only
    assert numbers.table_version == before + 1

    out = ok(cli("recompute", "numbers", "doubled", "quad", "-w", "n >= 790", "--no-cascade"))
    assert out == f"recomputed doubled, quad of numbers: 10 rows (0 with errors), version " \
        f"{before + 2}\n"
    values = numbers.select(numbers.n, numbers.doubled, numbers.quad).collect()
    assert values.height == 800
    assert (values["doubled"] == values["n"] * 2).all()
    assert (values["quad"] == values["n"] * 4).all()


def test_recompute_errors_only_retries_the_failed_cells(cli, db) -> None:
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(10)], progress=False)
    U.FLAKY = True  # 0, 3, 6 and 9 fail, here and in the command's process
    t.add_computed_column(f=U.flaky(t.n), on_error="ignore", progress=False)
    t.add_computed_column(g=t.f + 1, progress=False)
    before = t.table_version

    out = ok(cli("recompute", "t", "f", "--errors-only", "--no-progress"))
    assert out == f"recomputed f of t: 4 rows (4 with errors), version {before + 1}\n"
    out = ok(cli("recompute", "t", "f", "--errors-only", "--where", "n > 5"))
    assert out == f"recomputed f of t: 2 rows (2 with errors), version {before + 2}\n"
    rows = t.select(t.n, t.f, t.g, t.f.errortype).order_by(t.n).collect().rows()
    assert rows[1] == (1, 1001, 1002, None) and rows[3] == (3, None, None, "ConnectionError")


def test_recompute_mistakes_are_one_line_and_change_nothing(cli, db) -> None:
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(5)], progress=False)
    t.add_computed_column(m=t.n * 3, progress=False)
    before = t.table_version

    assert "'n' is not a computed column" in one_error_line(cli("recompute", "t", "n"))
    assert "has no column 'nope'" in one_error_line(cli("recompute", "t", "nope"))
    assert "no column 'nope'" in one_error_line(cli("recompute", "t", "m", "-w", "nope > 1"))
    line = one_error_line(cli("recompute", f"t:{before}", "m"))
    assert "read-only" in line and "lakehouse revert TABLE --to N" in line
    assert "Missing argument 'COLUMN...'" in cli("recompute", "t").stderr
    assert t.table_version == before
