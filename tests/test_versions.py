"""Versions: one version per call, history() (newest first, a page at a time), read-only at(n)
and "name:N", revert()."""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import json
import threading
import urllib.parse

import lance
import polars as pl
import pyarrow as pa
import pytest
from cli_checks import ok

import lakehouse as lh

HISTORY_SCHEMA = {
    "version": pl.Int64, "operation": pl.String, "rows_added": pl.Int64,
    "rows_changed": pl.Int64, "rows_removed": pl.Int64, "total_rows": pl.Int64,
}


def _rows(t) -> list[tuple]:
    return sorted(t.to_polars().rows(), key=repr)


@pytest.fixture
def evolved(db):
    """A table taken through one call of each kind; returns (table, snapshots by version)."""
    t = db.create_table("t", {"s": lh.String, "n": lh.Int})
    snaps = {t.version: (t.columns(), _rows(t))}
    steps = [
        lambda: t.insert([{"s": f"s{i}", "n": i} for i in range(5)], progress=False).version,
        lambda: t.update({"n": t.n + 10}, where=t.n >= 3, progress=False).version,
        lambda: t.delete(where=t.n == 0).version,
        lambda: t.add_column(note=lh.String),
        lambda: t.add_computed_column(n2=t.n * 2, progress=False).version,
        lambda: t.drop_column("note"),
        lambda: t.rename_column("s", "label"),
    ]
    for step in steps:
        before = t.version
        returned = step()
        assert returned == before + 1 == t.version
        snaps[t.version] = (t.columns(), _rows(t))
    return t, snaps


def test_each_call_makes_exactly_one_version(evolved):
    t, snaps = evolved
    assert t.version == 8
    assert sorted(snaps) == list(range(1, 9))
    assert snaps[8] == (["label", "n", "n2"],
                        [("s1", 1, 2), ("s2", 2, 4), ("s3", 13, 26), ("s4", 14, 28)])


def test_history_rows_and_operations(evolved):
    t, _ = evolved
    h = t.history().reverse()  # oldest first
    assert isinstance(h, pl.DataFrame)
    assert h.columns == ["version", "time", "operation", "rows_added", "rows_changed",
                         "rows_removed", "total_rows", "snapshots"]
    assert {k: h.schema[k] for k in HISTORY_SCHEMA} == HISTORY_SCHEMA
    assert isinstance(h.schema["time"], pl.Datetime)
    assert h.get_column("version").to_list() == list(range(1, 9))
    assert h.get_column("operation").to_list() == [
        "create", "insert", "update", "delete", "add column", "add column", "schema change",
        "schema change",
    ]
    counts = h.select("version", "rows_added", "rows_removed", "total_rows").rows()
    assert counts == [
        (1, 0, 0, 0), (2, 5, 0, 5), (3, 0, 0, 5), (4, 0, 1, 4), (5, 0, 0, 4), (6, 0, 0, 4),
        (7, 0, 0, 4), (8, 0, 0, 4),
    ]
    changed = dict(h.select("version", "rows_changed").rows())
    assert changed[1] == changed[2] == changed[4] == 0
    assert changed[3] == 2  # the update rewrote two rows
    assert changed[6] == 4  # the computed column was filled for the four rows
    assert changed[7] == changed[8] == 0  # drop and rename touch no values
    # every version's total matches what reading that version gives
    for version, total in h.select("version", "total_rows").rows():
        assert t.at(version).count() == total
    times = h.get_column("time").to_list()
    assert times == sorted(times)
    now = dt.datetime.now(dt.UTC)
    last = times[-1] if times[-1].tzinfo else times[-1].replace(tzinfo=dt.UTC)
    assert abs(now - last) < dt.timedelta(minutes=10)


def test_at_is_read_only_and_shows_that_version(evolved):
    t, snaps = evolved
    for version, (columns, rows) in snaps.items():
        old = t.at(version)
        assert old.version == version
        assert old.is_read_only
        assert old.columns() == columns
        assert _rows(old) == rows
    v2 = t.at(2)
    assert v2.columns() == ["s", "n"]  # n2 and the rename came later
    assert v2.to_polars().schema == pl.Schema({"s": pl.String, "n": pl.Int64})
    with pytest.raises(AttributeError):
        _ = v2.n2
    assert sorted(v2.where(v2.n >= 3).collect().get_column("n").to_list()) == [3, 4]
    assert v2.count() == 5
    assert sorted(v2.scan().collect().get_column("n").to_list()) == [0, 1, 2, 3, 4]
    v6 = t.at(6)
    assert v6.columns() == ["s", "n", "note", "n2"]
    assert sorted(v6.select(v6.s, v6.n2).collect().rows()) == \
        [("s1", 2), ("s2", 4), ("s3", 26), ("s4", 28)]


def test_at_does_not_follow_later_writes(evolved):
    t, snaps = evolved
    old = t.at(8)
    t.insert({"label": "new", "n": 100}, progress=False)
    assert t.version == 9 and t.count() == 5
    assert old.version == 8 and old.count() == 4
    assert _rows(old) == snaps[8][1]


def test_old_versions_refuse_writes(evolved, db):
    t, _ = evolved
    for old in (t.at(3), db.get_table("t:3")):
        writes = [
            lambda o=old: o.insert([{"s": "x", "n": 1}], progress=False),
            lambda o=old: o.update({"n": 1}, progress=False),
            lambda o=old: o.delete(where=o.n == 1),
            lambda o=old: o.add_column(extra=lh.Int),
            lambda o=old: o.add_computed_column(m=o.n + 1, progress=False),
            lambda o=old: o.drop_column("n"),
            lambda o=old: o.rename_column("n", "m"),
            lambda o=old: o.revert(),
        ]
        for write in writes:
            with pytest.raises(lh.ReadOnlyError, match="'t'"):
                write()
    assert t.version == 8


def test_get_table_with_version(evolved, db):
    t, snaps = evolved
    old = db.get_table("t:4")
    assert old.is_read_only and old.version == 4
    assert old.columns() == snaps[4][0]
    assert _rows(old) == snaps[4][1]
    latest = db.get_table("t")
    assert not latest.is_read_only and latest.version == 8
    with pytest.raises(lh.VersionNotFoundError):
        db.get_table("t:999")
    with pytest.raises(lh.InvalidNameError):
        db.get_table("t:abc")


def test_handles_follow_the_latest_version(db):
    t = db.create_table("t", {"n": lh.Int})
    other = db.get_table("t")
    t.insert([{"n": 1}, {"n": 2}], progress=False)
    assert other.version == t.version == 2
    assert other.count() == 2
    other.add_computed_column(m=other.n * 10, progress=False)
    assert t.columns() == ["n", "m"]
    assert sorted(t.collect().get_column("m").to_list()) == [10, 20]


def test_revert_to_previous(evolved):
    t, snaps = evolved
    new_version = t.revert()
    assert new_version == t.version == 9
    assert (t.columns(), _rows(t)) == snaps[7]  # before the rename
    assert t.history().get_column("operation").to_list()[0] == "revert"
    # the reverted-over version is still in the history
    assert t.at(8).columns() == ["label", "n", "n2"]
    assert _rows(t.at(8)) == snaps[8][1]
    # and the previous version of *this* one is version 8
    assert t.revert() == 10
    assert (t.columns(), _rows(t)) == snaps[8]


def test_revert_to_version(evolved):
    t, snaps = evolved
    assert t.revert(to=2) == 9
    assert (t.columns(), _rows(t)) == snaps[2]
    h = t.history()
    assert h.height == 9
    last = h.row(0, named=True)  # newest first
    assert last["version"] == 9 and last["operation"] == "revert"
    assert last["total_rows"] == 5
    # the table is writable again at that shape
    result = t.insert([{"s": "s9", "n": 9}], progress=False)
    assert result.version == 10
    assert t.count() == 6
    # reverting to a version that has a computed column brings its definition back
    assert t.revert(to=6) == 11
    assert t.columns() == ["s", "n", "note", "n2"]
    t.insert([{"s": "z", "n": 50}], progress=False)
    assert t.where(t.s == "z").select(t.n2).collect().item() == 100


def test_revert_to_a_bad_version(evolved):
    t, _ = evolved
    for bad in (0, -1, 9, 999):
        with pytest.raises(lh.VersionNotFoundError, match="'t'"):
            t.revert(to=bad)
    assert t.version == 8
    for bad in (0, 999):
        with pytest.raises(lh.VersionNotFoundError, match="'t'"):
            t.at(bad)


def test_revert_of_a_new_table_has_nothing_to_go_back_to(db):
    t = db.create_table("t", {"n": lh.Int})
    with pytest.raises(lh.VersionNotFoundError):
        t.revert()
    assert t.version == 1
    with pytest.raises(lh.VersionNotFoundError):
        t.at(999)


def test_history_counts_no_changed_rows_for_an_empty_column_and_uses_utc(db):
    t = db.create_table("h", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": 2}], progress=False)
    t.add_column(note=lh.String)
    t.add_computed_column(m=t.n * 2, progress=False)
    hist = t.history(limit=2)
    assert hist["operation"].to_list() == ["add column", "add column"]
    assert hist["rows_changed"].to_list() == [2, 0]  # only the computed one wrote values
    assert hist.schema["time"] == pl.Datetime("us", "UTC")


def test_required_columns_are_not_nullable_in_arrow(db):
    t = db.create_table("r", {"n": lh.Required(lh.Int), "s": lh.String})
    import lance

    ds = lance.dataset(t.uri, storage_options=db.location.storage_options or None)
    assert not ds.schema.field("n").nullable
    assert ds.schema.field("s").nullable


def test_snapshots_name_a_version_that_stays_readable(db):
    t = db.create_table("snap", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    tagged = t.snapshot("first")
    t.insert([{"n": 2}], progress=False)
    assert t.snapshots() == {"first": tagged}
    assert t.history()["snapshots"].to_list() == [[], ["first"], []]  # versions 3, 2, 1
    old = db.get_table("snap@first")
    assert old.is_read_only and old.version == tagged
    assert old.collect()["n"].to_list() == [1]
    with pytest.raises(lh.SnapshotExistsError, match="already has a snapshot 'first'"):
        t.snapshot("first")
    assert t.snapshot("first", replace=True) == t.version
    assert db.get_table("snap@first").count() == 2
    with pytest.raises(lh.InvalidNameError, match="not a valid snapshot name"):
        t.snapshot("no spaces")
    with pytest.raises(lh.VersionNotFoundError):
        db.get_table("snap@missing")


# --- history a page at a time ------------------------------------------------------------------
class _CountingProxy(http.server.ThreadingHTTPServer):
    """A plain HTTP proxy in front of the moto S3 server that counts the requests it forwards:
    what a call costs on S3, seen from the wire."""

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.target = urllib.parse.urlsplit(target)
        self.requests: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    server: _CountingProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(self.server.target.hostname, self.server.target.port)
        conn.request(self.command, self.path, body=body or None,
                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"}
                     | {"Host": self.server.target.netloc})
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        # a HEAD answer's length is the object's, which its body does not carry
        length = answer.getheader("Content-Length") if self.command == "HEAD" else len(data)
        self.send_header("Content-Length", str(length or 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counting_s3(lakehouse_root):
    """The test's S3 lakehouse seen through a request-counting proxy (skips on local)."""
    if not lakehouse_root.uri.startswith("s3://"):
        pytest.skip("counts S3 requests")
    proxy = _CountingProxy(lakehouse_root.storage_options["aws_endpoint"])
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, lh.connect(lakehouse_root.uri, storage_options={
            **lakehouse_root.storage_options, "aws_endpoint": proxy.endpoint})
    finally:
        proxy.shutdown()
        proxy.server_close()


def _aged(db, name: str, versions: int) -> lh.Table:
    t = db.create_table(name, {"n": lh.Int})
    for i in range(versions - 1):
        t.insert([{"n": i}], progress=False)
    return t


def test_history_is_newest_first_a_page_at_a_time(lakehouse_root):
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options,
                    maintenance=False)  # one version a call
    t = _aged(db, "aged", 30)
    assert t.history()["version"].to_list() == list(range(30, 10, -1))  # the newest 20
    assert t.history(limit=3)["version"].to_list() == [30, 29, 28]
    everything = t.history(limit=None)
    assert everything["version"].to_list() == list(range(30, 0, -1))
    # a page's rows are those of the whole history, the oldest's rows_added included
    assert t.history(limit=5).equals(everything.head(5))
    # an old version's history ends at that version
    assert t.at(4).history()["version"].to_list() == [4, 3, 2, 1]


def test_history_after_old_versions_were_removed(lakehouse_root):
    """Versions removed by cleanup (a snapshot keeping an older one) leave a gap: the page
    skips it and shows the versions that exist."""
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options,
                    maintenance=False)  # one version a call
    t = _aged(db, "gappy", 8)
    t.at(2).snapshot("kept")
    ds = lance.dataset(t.uri, storage_options=lakehouse_root.storage_options)
    ds.cleanup_old_versions(older_than=dt.timedelta(0),  # keeps the latest and the snapshot
                            error_if_tagged_old_versions=False)
    assert t.history(limit=None)["version"].to_list() == [8, 2]
    page = t.history(limit=3)
    assert page["version"].to_list() == [8, 2]
    assert page["snapshots"].to_list() == [[], ["kept"]]


def _aged_table(counted: lh.Catalog, lakehouse_root, versions: int) -> lh.Table:
    """A table of ``versions`` versions, opened through ``counted``: its first made by the
    lakehouse, the others one-row appends by Lance directly, without the proxy (faster)."""
    table = counted.create_table(f"aged{versions}", {"n": lh.Int})
    one_row = pa.table({"n": pa.array([1], pa.int64())})
    for _ in range(versions - 1):
        lance.write_dataset(one_row, table.uri, mode="append",
                            storage_options=lakehouse_root.storage_options)
    return counted.get_table(f"aged{versions}")


@pytest.mark.slow
def test_history_reads_a_bounded_number_of_versions_on_s3(lakehouse_root, counting_s3):
    """The default call costs the same on a table of 200 versions as on one of 30: about
    three requests for each of the 21 versions it reads (its page and the one before)."""
    proxy, counted = counting_s3
    costs = {}
    for versions in (30, 200):
        t = _aged_table(counted, lakehouse_root, versions)
        newest = versions
        proxy.requests.clear()
        assert t.history()["version"].to_list()[0] == newest
        costs[versions] = len(proxy.requests)
    assert costs[200] <= costs[30] + 2, costs
    assert costs[200] <= 21 * 3 + 10, costs
    proxy.requests.clear()
    assert t.history(limit=2).height == 2
    assert len(proxy.requests) <= 3 * 3 + 3, proxy.requests


@pytest.mark.slow
def test_index_commits_read_as_index_operations_in_history(db):
    """An embedding index on a column of vectors changes field metadata, and one on a table
    with no rows adds an empty column: both read as the index operation, as does the drop."""
    t = db.create_table("vecs", {"v": lh.Array[(2,), "float32"], "s": lh.String})
    t.add_embedding_index("v", progress=False)
    t.drop_embedding_index("v")
    t.add_embedding_index("s", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    assert t.history(limit=3)["operation"].to_list() == [
        "embedding index", "drop embedding index", "embedding index"]


def test_cli_history_pages_like_the_library(cli, root: str):
    t = lh.connect(root, maintenance=False).create_table("log", {"n": lh.Int})
    for i in range(24):
        t.insert([{"n": i}], progress=False)
    page = cli("history", "log", "-f", "json")
    assert [h["version"] for h in json.loads(ok(page))] == list(range(25, 5, -1))
    assert "--limit N or --all for more" in page.stderr
    assert [h["version"] for h in json.loads(ok(cli("history", "log", "--limit", "2",
                                                    "-f", "json")))] == [25, 24]
    everything = cli("history", "log", "--all", "-f", "json")
    assert len(json.loads(ok(everything))) == 25 and "--all" not in everything.stderr


def test_version_count_lists_the_versions_without_reading_them(lakehouse_root, counting_s3):
    """t.version_count() costs the same few requests (a listing) on a table of 60 versions as on
    one of 10, where len(t.history(limit=None)) reads every version."""
    proxy, counted = counting_s3
    costs = {}
    for versions in (10, 60):
        t = _aged_table(counted, lakehouse_root, versions)
        proxy.requests.clear()
        assert t.version_count() == versions
        costs[versions] = len(proxy.requests)
    assert costs[60] == costs[10] <= 3, costs
    proxy.requests.clear()
    assert len(t.history(limit=None)) == 60 and len(proxy.requests) > 60
