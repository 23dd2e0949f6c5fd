"""A local table skips Lance's check for a newer version while its version folder is as it was
(lakehouse.version_watch): what it skips must never hide another process's commit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import lance
import pytest

import lakehouse as lh
from lakehouse import version_watch
from lakehouse.version_watch import VersionWatch

WRITER = """
import random, sys, time
import lakehouse as lh
t = lh.connect(sys.argv[1]).get_table("t")
rows = int(sys.argv[2])
random.seed(7)
for i in range(int(sys.argv[3])):
    time.sleep(random.choice([0.0, 0.0, 0.01, 0.08, 0.25]))
    t.insert([{"n": i}], progress=False)
    rows += 1
    print(time.monotonic(), rows, flush=True)
"""


def _table(root, rows: int = 1):
    t = lh.connect(root).create_table("t", {"n": lh.Int})
    t.insert([{"n": -i} for i in range(rows)], progress=False)
    return t


def test_a_settled_table_reads_another_process_commit_at_once(tmp_path, monkeypatch):
    """Once its folder has settled, reading the table costs a stat; a commit from another
    process changes the folder, and the very next read sees it, columns included."""
    monkeypatch.setattr(version_watch, "SETTLE_NS", 0)
    monkeypatch.setattr(version_watch, "COARSE_SETTLE_NS", 0)
    _table(tmp_path)
    time.sleep(0.05)  # the other process's commit lands in a later tick of the clock
    reader = lh.connect(tmp_path).get_table("t")
    assert reader.count() == 1 and reader.count() == 1
    assert reader._head.watch.unchanged()  # the shortcut is in use
    subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, lakehouse as lh
        t = lh.connect(sys.argv[1]).get_table("t")
        t.insert([{"n": 5}], progress=False)
        t.add_computed_column(m=t.n * 2, progress=False)
    """), str(tmp_path)], check=True, env=dict(os.environ))
    assert not reader._head.watch.unchanged()
    assert reader.count() == 2
    assert reader.order_by(reader.n).collect()["m"].to_list() == [0, 10]


def test_a_folder_changed_lately_is_checked_the_full_way(tmp_path, monkeypatch):
    """A folder changed within the settle time may change again within one tick of the
    file system's clock and keep its time: it is never trusted."""
    monkeypatch.setattr(version_watch, "SETTLE_NS", 60_000_000_000)
    t = _table(tmp_path)
    t.count()
    t.count()
    assert not t._head.watch.unchanged()


def test_a_replaced_or_missing_folder_is_checked_the_full_way(tmp_path):
    folder = tmp_path / "_versions"
    folder.mkdir()
    watch = VersionWatch(str(tmp_path), settle_ns=0)
    watch.confirm(watch.observe())
    assert watch.unchanged()
    folder.rename(tmp_path / "old")
    assert not watch.unchanged()
    folder.mkdir()  # another folder of the same name: another inode
    assert not watch.unchanged()
    watch.confirm(watch.observe())
    (tmp_path / "old").rmdir()
    folder.rmdir()
    assert not watch.unchanged()
    assert watch.observe() is None  # nothing to stat: never trusted


def test_a_failed_check_is_not_trusted(tmp_path, monkeypatch):
    """A check that fails (storage unreachable) confirms nothing: the next read checks the
    full way again, and finds the version another process committed meanwhile."""
    monkeypatch.setattr(version_watch, "SETTLE_NS", 0)
    monkeypatch.setattr(version_watch, "COARSE_SETTLE_NS", 0)
    _table(tmp_path)
    time.sleep(0.05)
    reader = lh.connect(tmp_path).get_table("t")
    reader.count()
    writer = lh.connect(tmp_path).get_table("t")
    writer.insert([{"n": 9}], progress=False)
    real = lance.LanceDataset.checkout_latest

    def unreachable(self):
        raise OSError("storage unreachable")

    monkeypatch.setattr(lance.LanceDataset, "checkout_latest", unreachable)
    with pytest.raises(lh.StorageError):
        reader.count()
    assert not reader._head.watch.unchanged()
    monkeypatch.setattr(lance.LanceDataset, "checkout_latest", real)
    assert reader.count() == 2
    assert reader._head.watch.unchanged()  # that check succeeded: trusted from now on


def test_a_handle_that_wrote_trusts_its_folder_once_settled(tmp_path, monkeypatch):
    """After its own write, a handle asks Lance for the latest version number until the
    folder settles, then only stats it; another process's commit is still seen at once."""
    monkeypatch.setattr(version_watch, "SETTLE_NS", 0)
    monkeypatch.setattr(version_watch, "COARSE_SETTLE_NS", 0)
    t = _table(tmp_path)
    assert t.count() == 1
    assert t._head.watch.unchanged()
    time.sleep(0.05)
    lh.connect(tmp_path).get_table("t").insert([{"n": 2}], progress=False)
    assert t.count() == 2


def test_object_stores_are_always_checked(db, backend):
    """The shortcut is for local folders only; a handle opened at a version never refreshes."""
    t = db.create_table("w", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    assert (t._head.watch is not None) == (backend == "local")
    assert t.at(1)._head.watch is None


def test_reads_racing_a_writer_process_see_every_commit_made_before_them(tmp_path, monkeypatch):
    """A writer process commits 25 times with pauses of 0 to 250 ms, so the folder settles
    between some commits (after SETTLE_NS, 100 ms) and not between others; this process reads
    all along. Every read that starts after a commit returned counts at least its rows."""
    _table(tmp_path, rows=3)
    answers: list[bool] = []
    unchanged = VersionWatch.unchanged

    def recorded(self: VersionWatch) -> bool:
        answers.append(unchanged(self))
        return answers[-1]

    monkeypatch.setattr(VersionWatch, "unchanged", recorded)
    reader = lh.connect(tmp_path).get_table("t")
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path),
                               "3", "25"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    reads: list[tuple[float, int]] = []
    while writer.poll() is None:
        started = time.monotonic()
        reads.append((started, reader.count()))
    out, _ = writer.communicate()
    assert writer.returncode == 0
    commits = [(float(at), int(rows)) for at, rows in (line.split() for line in out.splitlines())]
    assert [rows for _, rows in commits] == list(range(4, 29))
    for started, seen in reads:
        committed = max((rows for at, rows in commits if at < started), default=3)
        assert seen >= committed, (started, seen, committed)
    assert reader.count() == 28
    assert len(reads) > 100  # the reads did race the writes
    assert answers.count(True) > 20 and answers.count(False) > 20  # both ways were taken
