"""Retention and garbage collection (``t.gc``, ``lakehouse gc``): old versions go by the policy,
never a version a snapshot, a branch or a view needs; a dry run changes nothing and reports
what the real run removes; the orphaned files of a SIGKILLed insert are removed and the table
stays readable; gc racing a writer in another process loses nothing; a removed version is a
typed error naming the retention policy. Local and S3 (moto).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fsspec
import lance
import pyarrow as pa
import pytest
import udfs_for_tests as U
from cli_checks import ok, one_error_line
from hypothesis import given
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.exec import checkpoints
from lakehouse.maintenance import orphans, retention

NO_TIME = datetime.timedelta(0)


def _connect(root, **policy) -> lh.Catalog:
    """The lakehouse at ``root`` with automatic maintenance off and no reader window (no other
    process reads these tables), so that gc removes what the rules let go at once."""
    rules = {"auto": False, "reader_window": NO_TIME, **policy}
    return lh.connect(root.uri, storage_options=root.storage_options,
                      maintenance=lh.MaintenancePolicy(**rules))


def _numbers(db: lh.Catalog, inserts: int = 6) -> lh.Table:
    t = db.create_table("t", {"a": lh.Int})
    for i in range(inserts):
        t.insert([{"a": i}], progress=False)
    return t


def _versions(t: lh.Table) -> list[int]:
    location = t.table_state().location
    return list(retention.VersionTimes.list(location, t.table_uri).versions)


def _files(t: lh.Table) -> dict[str, int]:
    """Every file of the table's folder (path -> size)."""
    location = t.table_state().location
    fs = location.filesystem()
    base = location.fs_path(t.table_uri)
    fs.invalidate_cache()
    return {path: info["size"] for path, info in fs.find(base, detail=True).items()}


# --- what stays -----------------------------------------------------------------------------------
def test_gc_keeps_snapshot_branch_and_view_versions(lakehouse_root):
    db = _connect(lakehouse_root)
    t = _numbers(db)  # versions 1 (created) to 7
    assert t.at(3).snapshot("three") == 3
    t.branch("dev", from_=4).insert([{"a": 50}], progress=False)
    db.create_view("pinned", t.at(5))  # frozen at version 5
    live = db.create_view("live", t.where(t.a >= 3))
    reflected = live.view_status().base_version
    t.add_column(b=lh.Int)  # schema changes move the base without a view upkeep
    t.add_column(c=lh.Int)
    assert live.view_status().base_version == reflected < t.table_version
    latest = t.table_version

    report = t.gc(keep_versions=1, keep_for=NO_TIME)

    assert set(report.kept) == {3, 4, 5, reflected, latest}
    assert "snapshot 'three'" in report.kept[3]
    assert "branch 'dev' starts from it" in report.kept[4]
    assert "view 'pinned' is pinned to it" in report.kept[5]
    assert "view 'live' reflects it" in report.kept[reflected]
    assert set(report.removed_versions) == set(range(1, latest + 1)) - set(report.kept)
    assert _versions(t) == sorted(report.kept)
    # everything kept reads as before
    assert db.get_table("t@three").count() == 2
    assert db.get_table("t:4").count() == 3
    assert sorted(db.get_table("t#dev").collect()["a"].to_list()) == [0, 1, 2, 50]
    assert db.get_table("t:5").count() == 4
    assert db.get_table("pinned").count() == 4
    assert db.get_table(f"t:{reflected}").count() == 6
    # the view keeps its own last upkeep (which records the base version it reflects), and
    # catches up from that base version
    view_report = db.get_table("live").gc(keep_versions=1, keep_for=NO_TIME)
    assert any("this view's last upkeep" in r for r in view_report.kept[max(view_report.kept)])
    t.insert([{"a": 10}, {"a": 1}], progress=False)
    assert sorted(db.get_table("live").collect()["a"].to_list()) == [3, 4, 5, 10]


def test_a_removed_version_is_a_typed_error_naming_the_policy(lakehouse_root):
    db = _connect(lakehouse_root, keep_versions=2, keep_for=NO_TIME)
    t = _numbers(db, inserts=4)
    t.gc()
    assert _versions(t) == [4, 5]
    for open_removed in (lambda: db.get_table("t:2"), lambda: t.at(2)):
        with pytest.raises(lh.VersionNotFoundError) as err:
            open_removed()
        message = str(err.value)
        assert "no version 2" in message and "removed by garbage collection" in message
        assert "keep_versions=2" in message and "t.snapshot(name)" in message
    with pytest.raises(lh.VersionNotFoundError, match="latest is 5"):
        db.get_table("t:9")


def test_keep_versions_and_keep_for_are_honoured(lakehouse_root):
    db = _connect(lakehouse_root, keep_versions=3, keep_for=NO_TIME)
    t = _numbers(db)
    young = t.gc(keep_versions=1, keep_for=datetime.timedelta(hours=1))
    assert young.removed_versions == ()
    assert all("younger than 1 hour (keep_for)" in r for r in young.kept.values())
    report = t.gc()  # the policy's keep_versions=3
    assert report.removed_versions == (1, 2, 3, 4)
    assert _versions(t) == [5, 6, 7]
    assert t.gc(keep_versions=1).removed_versions == (5, 6)
    assert _versions(t) == [7]
    assert t.count() == 6
    with pytest.raises(lh.InvalidOptionError, match="keep_versions"):
        t.gc(keep_versions=0)
    with pytest.raises(lh.InvalidOptionError, match="keep_for"):
        t.gc(keep_for=7)


def test_versions_replaced_within_the_reader_window_stay(lakehouse_root):
    db = _connect(lakehouse_root, reader_window=datetime.timedelta(minutes=10))
    t = _numbers(db, inserts=3)
    report = t.gc(keep_versions=1, keep_for=NO_TIME)
    assert report.removed_versions == ()
    assert report.kept[1] == ("replaced less than 10 minutes ago (reader_window)",)


_HOUR = datetime.timedelta(hours=1)


@given(ages=st.lists(st.integers(0, 100), min_size=1, max_size=12).map(sorted),
       keep_versions=st.integers(1, 6), keep_for=st.integers(0, 100), window=st.integers(0, 10))
def test_the_rules_keep_exactly_the_newest_young_and_recently_replaced(ages, keep_versions,
                                                                      keep_for, window):
    now = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    written = tuple(now - age * _HOUR for age in reversed(ages))  # oldest first
    times = retention.VersionTimes(tuple(range(1, len(ages) + 1)), written)
    rules = retention.Rules(keep_versions, keep_for * _HOUR, window * _HOUR)
    kept = retention.policy_reasons(times, rules, now)
    n = len(written)
    expected = {i + 1 for i in range(n)
                if i == n - 1 or i >= n - keep_versions or now - written[i] < keep_for * _HOUR
                or (i + 1 < n and now - written[i + 1] < window * _HOUR)}
    assert set(kept) == expected


# --- dry run --------------------------------------------------------------------------------------
def test_a_dry_run_changes_nothing_and_reports_what_the_real_run_removes(lakehouse_root):
    db = _connect(lakehouse_root)
    t = _numbers(db)
    # files no commit will name (as a crashed write leaves them), then versions after them
    lance.fragment.write_fragments(pa.table({"a": [7, 8]}), t.table_state().dataset)
    time.sleep(1.1)  # S3 keeps the time a file was written to the second
    t.update({"a": 100}, where=t.a == 2)  # rewritten rows: old data files only old versions use
    t.delete(where=t.a == 4)
    before = _files(t)

    dry = t.gc(keep_versions=2, keep_for=NO_TIME, dry_run=True)
    assert _files(t) == before
    assert dry.removed_versions and dry.orphan_files and dry.bytes_reclaimed > 0
    assert dry.summary().startswith("t: would remove")

    real = t.gc(keep_versions=2, keep_for=NO_TIME)
    assert (real.removed_versions, real.files_removed, real.bytes_reclaimed,
            real.orphan_files, real.kept) == (dry.removed_versions, dry.files_removed,
                                              dry.bytes_reclaimed, dry.orphan_files, dry.kept)
    after = _files(t)
    gone = set(before) - set(after)
    assert len(gone) == real.files_removed
    assert sum(before[p] for p in gone) == real.bytes_reclaimed
    assert sorted(t.collect()["a"].to_list()) == [0, 1, 3, 5, 100]
    assert t.gc(keep_versions=2, keep_for=NO_TIME).files_removed == 0


# --- orphans of a killed write --------------------------------------------------------------------
KILLED_WRITER = """
    import json, sys
    from pathlib import Path
    import pyarrow as pa
    import lakehouse as lh

    root, options, marker = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    t = lh.connect(root, storage_options=options).get_table("big")
    filler = pa.array(["payload-" + "x" * 92] * 10_000)

    def batches():
        for b in range(10**6):  # far more than can be written before the parent kills us
            if b == 120:
                marker.touch()  # Lance has written a data file (1M rows) by now
            yield pa.table({"n": pa.array(range(b * 10_000, (b + 1) * 10_000), pa.int64()),
                            "s": filler})

    t.insert(batches(), progress=False)
"""


def _kill_mid_insert(root, tmp_path: Path) -> None:
    folder = tmp_path / "writer"
    folder.mkdir()
    marker = folder / "writing"
    args = [root.uri, json.dumps(root.storage_options), str(marker)]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), *args],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the writer never reached the marker"
            time.sleep(0.02)
        time.sleep(0.5)
        assert proc.poll() is None, "the writer finished before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_orphans_of_a_sigkilled_insert_are_removed(lakehouse_root, tmp_path):
    db = _connect(lakehouse_root)
    t = db.create_table("big", {"n": lh.Int, "s": lh.String})
    t.insert([{"n": -1, "s": "seed"}], progress=False)
    _kill_mid_insert(lakehouse_root, tmp_path)
    ds = lance.dataset(t.table_uri, storage_options=lakehouse_root.storage_options)
    left, _ = orphans.find(ds, t.table_state().location)
    assert any(o.path.startswith("data/") for o in left), "the kill hit no write in progress"

    # the version the killed insert started from is still the latest: a write that started
    # from it could still commit, so its files stay
    waiting = t.gc(keep_versions=1, keep_for=NO_TIME)
    assert waiting.orphan_files == ()
    assert any("a write in progress may still commit them" in n for n in waiting.notes)

    # once the table moved on and that version is gone, they go
    time.sleep(1.1)  # S3 keeps the time a file was written to the second
    t.insert([{"n": 1, "s": "after"}], progress=False)
    report = t.gc(keep_versions=1, keep_for=NO_TIME)
    assert set(report.orphan_files) == {o.path for o in left}
    assert report.orphan_bytes == sum(o.size for o in left)
    assert orphans.find(ds, t.table_state().location)[0] == []
    assert sorted(t.collect()["n"].to_list()) == [-1, 1]
    t.insert([{"n": 2, "s": "again"}], progress=False)
    assert t.count() == 3


# --- backfill checkpoints -------------------------------------------------------------------------
BACKFILL = """
    import json, sys
    import lakehouse as lh
    import udfs_for_tests as U

    root, options, column = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    t = lh.connect(root, storage_options=options).get_table("numbers")
    t.add_computed_column(**{column: U.doubled_and_logged(t.n)}, progress=False)
"""


def _kill_backfill(root, column: str, log: Path, t: lh.Table, fragments: int = 2) -> str:
    """Run a slow backfill of ``column`` in another process and SIGKILL it once ``fragments``
    fragments are checkpointed; the job's id."""
    hold = U.rows_logged(log) + fragments * U.ROWS_PER_FRAGMENT  # computed, then it waits
    env = dict(os.environ, LAKEHOUSE_TEST_CALL_LOG=str(log), LAKEHOUSE_TEST_SLEEP="0.05",
               LAKEHOUSE_TEST_HOLD_AFTER_ROWS=str(hold),
               LAKEHOUSE_CHECKPOINT_AFTER_S="0",
               PYTHONPATH=os.pathsep.join([U.TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    args = [root.uri, json.dumps(root.storage_options), column]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(BACKFILL), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        jobs = [j for j in checkpoints.list_jobs(t.table_uri, root.storage_options or {})
                if column in j["columns"]]
        if jobs and jobs[0]["fragments_done"] >= fragments:
            break
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return str(jobs[0]["id"])


def _abandon(t: lh.Table, job: str) -> None:
    """Make job ``job`` look abandoned (its progress last moved an hour ago)."""
    location = t.table_state().location
    fs = location.filesystem()
    path = f"{location.fs_path(t.table_uri)}/{checkpoints.JOBS_DIR}/{job}/job.json"
    data = json.loads(fs.cat_file(path))
    data["updated"] = time.time() - 3600
    fs.pipe_file(path, json.dumps(data).encode())


@pytest.mark.slow
def test_gc_keeps_what_a_backfill_checkpoint_needs(lakehouse_root, tmp_path, monkeypatch):
    db = _connect(lakehouse_root)
    t = U.fill_numbers(db)
    total = U.FRAGMENTS * U.ROWS_PER_FRAGMENT
    log = tmp_path / "calls.log"
    running = _kill_backfill(lakehouse_root, "doubled", log, t)
    assert t.jobs()["state"].to_list() == ["running"]  # killed a moment ago
    t.insert([{"n": total}], progress=False)
    report = t.gc(keep_versions=1, keep_for=NO_TIME)
    assert any(f"backfill {running} is running" in r for rs in report.kept.values() for r in rs)
    assert report.orphan_files == ()  # its files wait for its resume
    computed = U.rows_logged(log)

    # the same call resumes: only the rest is computed, and every value is right
    monkeypatch.setenv("LAKEHOUSE_TEST_CALL_LOG", str(log))
    t.add_computed_column(doubled=U.doubled_and_logged(t.n), progress=False)
    finished = 2 * U.ROWS_PER_FRAGMENT  # at most one fragment is computed again
    assert U.rows_logged(log) - computed <= total + 1 - finished + U.ROWS_PER_FRAGMENT
    values = t.select(t.n, t.doubled).collect()
    assert values.height == total + 1 and (values["doubled"] == values["n"] * 2).all()

    # an abandoned checkpoint whose starting version goes cannot resume: it is discarded and
    # its files go with the orphans
    stale = _kill_backfill(lakehouse_root, "twice", log, t)
    _abandon(t, stale)
    time.sleep(1.1)  # S3 keeps the time a file was written to the second
    t.insert([{"n": total + 1}], progress=False)
    report = t.gc(keep_versions=1, keep_for=NO_TIME)
    assert report.discarded_jobs == (stale,)
    assert any(p.startswith("data/") for p in report.orphan_files)
    assert t.jobs().height == 0
    t.add_computed_column(twice=U.doubled_and_logged(t.n), progress=False)
    values = t.select(t.n, t.twice).collect()
    assert values.height == total + 2 and (values["twice"] == values["n"] * 2).all()


# --- concurrency ----------------------------------------------------------------------------------
WRITER = """
    import json, sys
    import lakehouse as lh

    root, options, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    t = lh.connect(root, storage_options=options).get_table("t")
    for i in range(count):
        t.insert([{"a": 1000 + i}], progress=False)
    print("done")
"""


@pytest.mark.slow
def test_gc_racing_a_concurrent_writer_loses_nothing(lakehouse_root):
    db = _connect(lakehouse_root)
    t = _numbers(db, inserts=2)
    count = 25
    args = [lakehouse_root.uri, json.dumps(lakehouse_root.storage_options), str(count)]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    removed = 0
    try:
        while proc.poll() is None:
            removed += len(t.gc(keep_versions=1, keep_for=NO_TIME).removed_versions)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "done" in out, err
    removed += len(t.gc(keep_versions=1, keep_for=NO_TIME).removed_versions)
    assert removed > count // 2
    assert sorted(t.collect()["a"].to_list()) == [0, 1, *range(1000, 1000 + count)]
    assert _versions(t) == [t.table_version]


# --- command line ---------------------------------------------------------------------------------
def test_cli_gc_dry_run_and_usage(cli, root):
    db = lh.connect(root, maintenance=lh.MaintenancePolicy(auto=False))
    t = _numbers(db, inserts=3)
    text = ok(cli("gc", "t", "--dry-run", "--keep-versions", "1", "--keep-for", "0"))
    assert text.startswith("t: would remove 0 versions")
    assert "replaced less than 10 minutes ago (reader_window)" in text
    assert "keep_versions=1, keep_for=0 seconds" in text
    assert t.count() == 3 and _versions(t) == [1, 2, 3, 4]
    error = one_error_line(cli("gc", "t", "--keep-for", "soon"), code=2)
    assert "--keep-for" in error and "7d" in error


def test_cli_gc_removes_versions_by_its_options(cli, root):
    db = lh.connect(root, maintenance=lh.MaintenancePolicy(auto=False))
    t = _numbers(db, inserts=3)
    location = t.table_state().location
    # make the old versions look older than the reader window (a moment ago, by the clock of
    # the local files)
    old = time.time() - 3600
    fs = fsspec.filesystem("file")
    for path in fs.ls(f"{location.fs_path(t.table_uri)}/_versions"):
        os.utime(path, (old, old))
    text = ok(cli("gc", "t", "--keep-versions", "1", "--keep-for", "0"))
    assert text.startswith("t: removed 3 versions (1-3)")
    assert _versions(t) == [4]
    assert t.count() == 3


# --- automatic ------------------------------------------------------------------------------
def test_writes_remove_old_versions_by_themselves_in_batches(lakehouse_root):
    db = _connect(lakehouse_root, auto=True, keep_versions=5, keep_for=NO_TIME)
    t = db.create_table("t", {"a": lh.Int})
    step = retention.interval(5)
    for i in range(3 * step):
        t.insert([{"a": i}], progress=False)
    left = _versions(t)
    assert len(left) <= 5 + 2 * step  # collected every `step` versions, past a margin
    assert left[0] > 1 and left[-1] == t.table_version
    assert sorted(t.collect()["a"].to_list()) == list(range(3 * step))
    off = _connect(lakehouse_root, auto=False, keep_versions=5, keep_for=NO_TIME)
    u = off.create_table("u", {"a": lh.Int})
    for i in range(3 * step):
        u.insert([{"a": i}], progress=False)
    assert _versions(u)[0] == 1
