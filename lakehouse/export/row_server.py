"""Reads for a forked PyTorch worker, made by a fresh Python process it starts.

Lance is not fork-safe: a process forked from one that has used Lance must not call it (the
threads of its runtime did not survive the fork, and a read can hang for ever). A
``DataLoader`` forks its workers by default on Linux, so a dataset's reader in a forked worker
hands its reads to a child it starts with ``python -m lakehouse.export.row_server`` (a new
interpreter, not a fork; a worker, being a daemon, may not start ``multiprocessing``
children). The child opens the table version itself and answers each request with the rows as
an Arrow IPC stream. What crosses the pipe is JSON (the :class:`~lakehouse.export.rows.Source`,
then one list of positions per request) and Arrow: nothing is pickled. The child ends when the
worker closes the pipe or exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import IO

import pyarrow as pa

from lakehouse.errors import StorageError
from lakehouse.export.rows import Source, open_version, read_rows

_LENGTH_BYTES = 8


class ForkedReads:
    """A reader process for one source, started on first use in a forked worker.

    >>> from lakehouse.export.rows import Column
    >>> src = Source("films", t.table_uri, t.version, {}, lh.FetchPolicy(),
    ...              (Column("year", "year", "value"),))
    >>> reads = ForkedReads(src)
    >>> reads.read([2, 0])["year"].to_pylist()
    [2009, 1979]
    >>> reads.close()
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self._process = subprocess.Popen(
            [sys.executable, "-m", "lakehouse.export.row_server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._send(source.to_json())

    def read(self, positions: Sequence[int]) -> pa.Table:
        """The rows at ``positions``, as :func:`~lakehouse.export.rows.read_rows` gives them."""
        self._send([int(p) for p in positions])
        stdout = self._process.stdout
        assert stdout is not None
        header = stdout.read(_LENGTH_BYTES)
        if len(header) < _LENGTH_BYTES:
            raise self._failure()
        body = stdout.read(int.from_bytes(header, "little"))
        with pa.ipc.open_stream(body) as stream:
            return stream.read_all()

    def close(self) -> None:
        """End the reader process (closing its input ends it)."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        self._process.wait()

    def _send(self, message: object) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise self._failure() from None

    def _failure(self) -> StorageError:
        """The reader process ended: its last error line says why."""
        self._process.kill()
        _, err = self._process.communicate()
        last = (err.decode(errors="replace").strip().splitlines() or ["it ended"])[-1]
        return StorageError(f"table {self.source.table!r}: reading rows of version "
                            f"{self.source.version} for a forked DataLoader worker failed: {last}")


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer requests until the input ends: the first line is the source, each next line a
    list of positions, each answer an 8-byte length and an Arrow IPC stream."""
    source = Source.from_json(json.loads(requests.readline()))
    ds = open_version(source)
    for line in requests:
        table = read_rows(ds, source, json.loads(line))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        body = sink.getvalue()
        answers.write(len(body).to_bytes(_LENGTH_BYTES, "little"))
        answers.write(body)
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
