"""Requests each small call makes on S3, counted against the moto server, beside raw Lance
doing the same work: on a real bucket every request is a round trip (20-50 ms), so a small
call may make at most one request more than raw Lance (issue 18).

A counting HTTP proxy stands between the lakehouse (and the raw Lance handles) and moto:
``storage_options["aws_endpoint"]`` points at it, and it records every request it forwards.
Each call is made once before it is counted, on both sides, so that both are counted with
warm caches (Lance keeps file metadata and index partitions in its session).
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pytest

import lakehouse as lh
from lakehouse.search import similarity_searches

pytestmark = pytest.mark.s3

#: Headers that belong to one hop of a connection, not to the request forwarded
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length"}


class CountingProxy:
    """A plain HTTP proxy in front of one upstream server that records each request it
    forwards (method and path), for counting what a call costs on S3."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Forward,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, method: str, path: str) -> None:
        with self.lock:
            self.seen.append((method, path))

    def count(self, call: Callable[[], Any]) -> list[tuple[str, str]]:
        """The requests ``call`` makes."""
        with self.lock:
            self.seen.clear()
        call()
        with self.lock:
            return list(self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Forward(http.server.BaseHTTPRequestHandler):
    """Forwards each request to the proxy's upstream and its answer back, whole."""

    protocol_version = "HTTP/1.1"
    proxy: CountingProxy

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().strip(), 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._body()
        self.proxy.record(self.command, self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP_HEADERS:
                self.send_header(key, value)
        # a HEAD answer has no body but tells the object's size
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[CountingProxy]:
    counting = CountingProxy(moto_endpoint)
    yield counting
    counting.close()


@pytest.fixture
def options(proxy: CountingProxy, s3_env: str) -> dict[str, str]:
    """Lance storage options that reach moto through the counting proxy."""
    return {"aws_endpoint": proxy.endpoint, "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing", "aws_region": "us-east-1", "allow_http": "true"}


@pytest.fixture
def root(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/lh"


def counted(proxy: CountingProxy, call: Callable[[], Any]) -> int:
    """Requests ``call`` makes the second time (the first warms the caches)."""
    call()
    return len(proxy.count(call))


def at_most_one_more(proxy: CountingProxy, ours: Callable[[], Any],
                     raw: Callable[[], Any]) -> tuple[int, int]:
    mine, theirs = counted(proxy, ours), counted(proxy, raw)
    assert mine <= theirs + 1, (mine, theirs)
    return mine, theirs


ROWS = pa.table({"a": np.arange(100, dtype=np.int64), "s": [str(i) for i in range(100)]})


def test_a_one_row_insert_makes_at_most_one_request_more_than_a_raw_append(proxy, options, root):
    db = lh.connect(root, storage_options=options)
    t = db.create_table("t", {"a": lh.Int, "s": lh.String})
    t.insert(ROWS, progress=False)
    raw_uri = f"{root}/raw.lance"
    lance.write_dataset(ROWS, raw_uri, schema=t.table_state().dataset.schema,
                        storage_options=options)
    one = pa.table({"a": [1000], "s": ["x"]})
    mine, theirs = at_most_one_more(
        proxy, lambda: t.insert(one, progress=False),
        lambda: lance.write_dataset(one, raw_uri, mode="append", storage_options=options))
    assert theirs == 6  # list, manifest, data, list, transaction, manifest
    assert t.count() == 102


def test_get_table_from_a_fresh_connect_reads_what_lance_reads_to_open(proxy, options, root):
    lh.connect(root, storage_options=options).create_table(
        "t", {"a": lh.Int, "s": lh.String}).insert(ROWS, progress=False)
    uri = lh.connect(root, storage_options=options).get_table("t").table_uri
    assert len(proxy.count(lambda: lh.connect(root, storage_options=options))) <= 1
    fresh = lh.connect(root, storage_options=options)
    mine = len(proxy.count(lambda: fresh.get_table("t")))
    theirs = len(proxy.count(lambda: lance.dataset(uri, storage_options=options)))
    assert mine <= theirs + 1 and theirs == 2, (mine, theirs)
    with pytest.raises(lh.TableNotFoundError, match="'nope' does not exist"):
        fresh.get_table("nope")


def test_count_and_a_point_query_read_what_lance_reads_plus_one_check(proxy, options, root):
    t = lh.connect(root, storage_options=options).create_table("t", {"a": lh.Int, "s": lh.String})
    for start in (0, 100):  # two fragments
        t.insert(pa.table({"a": np.arange(start, start + 100), "s": ["x"] * 100}), progress=False)
    raw = lance.dataset(t.table_uri, storage_options=options)
    at_most_one_more(proxy, t.count, raw.count_rows)
    mine, theirs = at_most_one_more(proxy, lambda: t.where(t.a == 77).collect(),
                                    lambda: raw.to_table(columns=["a", "s"], filter="a = 77"))
    assert mine == theirs + 1  # the one more: does the table have a newer version?
    assert t.where(t.a == 77).collect().rows() == [(77, "x")]


@pytest.mark.parametrize("rows", [200, pytest.param(10_500, marks=pytest.mark.slow)],
                         ids=["exact", "vector_index"])
def test_a_similarity_query_reads_what_lance_reads_plus_one_check(proxy, options, root, rows):
    vt = lh.connect(root, storage_options=options).create_table(
        "v", {"id": lh.Int, "tag": lh.Int, "v": lh.Array[(8,), "float32"]})
    vt.add_embedding_index("v", progress=False)
    vectors = np.random.default_rng(0).standard_normal((rows, 8)).astype(np.float32)
    vt.insert(pa.table({"id": np.arange(rows), "tag": np.arange(rows) % 10,
                        "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 8)}),
              progress=False)
    raw = lance.dataset(vt.table_uri, storage_options=options)
    sim = vt.v.similarity(vectors[3])
    query = vt.order_by(sim, asc=False).limit(10).select(vt.id, score=sim)
    [search] = similarity_searches([sim], vt, raw, vt.table_definition)
    nearest = search.nearest(raw, 10)  # the same parameters (nprobes, refine_factor) as ours
    at_most_one_more(proxy, query.collect, lambda: raw.to_table(
        columns=["id"], nearest=nearest, disable_scoring_autoprojection=True))
    filtered = vt.where(vt.tag == 3).order_by(sim, asc=False).limit(10).select(vt.id, score=sim)
    at_most_one_more(proxy, filtered.collect, lambda: raw.to_table(
        columns=["id"], nearest=nearest, filter="tag = 3", prefilter=True,
        disable_scoring_autoprojection=True))
    assert query.collect()["id"][0] == 3 and filtered.collect()["id"][0] == 3


def test_history_reads_what_lance_reads_for_the_same_columns_plus_one(proxy, options, root):
    t = lh.connect(root, storage_options=options).create_table("t", {"a": lh.Int, "s": lh.String})
    for start in (0, 100, 200):
        t.insert(pa.table({"a": np.arange(start, start + 100), "s": ["x"] * 100}), progress=False)
    raw = lance.dataset(t.table_uri, storage_options=options)

    def raw_history() -> None:
        # the same columns: each version (rows, time), its transaction (the operation) and
        # the snapshots
        raw.get_transactions(len(raw.versions()))
        raw.tags.list()

    at_most_one_more(proxy, t.history, raw_history)
