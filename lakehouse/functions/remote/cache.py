"""The results of remote model calls, kept in the lakehouse so that no input is paid for twice.

A result is stored under a key: the SHA-256 of the endpoint's base URL, the path, the model, the
call's parameters and the input (text, or the SHA-256 of bytes), never the key or any secret.
Results live in a hidden Lance dataset of the lakehouse the process connected to last,
``<root>/_lakehouse_cache/remote.lance`` (local folder or S3; ``lh.connect`` sets it with
:func:`use_lakehouse`; the catalog does not list it, as it is not a table). A recompute, a
resumed backfill, another column with the same call, or another process or machine on the same
lakehouse reads the result instead of calling the endpoint again.

Rules: only successful results are stored (an error is never cached, so a retry asks again);
writers append (Lance's commits let concurrent appends from several processes all land; two
processes may store the same key, and either copy is the same result); each lookup opens the
latest version, so results other processes stored are found. Before any ``lh.connect`` the
cache is this process's memory only.

>>> cache = ResultCache(None)
>>> key = cache_key({"base_url": "http://127.0.0.1:1/v1", "model": "m"}, "hello")
>>> cache.store({key: b"world"}); cache.lookup([key, "0" * 64])
{'...': b'world'}
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from typing import Any

import lance
import pyarrow as pa

from lakehouse.storage import Location

CACHE_DIR = "_lakehouse_cache"
CACHE_NAME = "remote.lance"
_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False),
                     pa.field("value", pa.large_binary(), nullable=False)])
_LOOKUP_CHUNK = 256  # keys per filter, so the filter text stays small

_location: Location | None = None
_caches: dict[str, ResultCache] = {}
_lock = threading.Lock()


def use_lakehouse(location: Location) -> None:
    """Keep remote results under ``location`` (the lakehouse root) from now on."""
    global _location
    with _lock:
        _location = location


def current() -> ResultCache:
    """The cache of the lakehouse connected last (this process's memory before any)."""
    with _lock:
        location = _location
        uri = None if location is None else location.join(CACHE_DIR, CACHE_NAME)
        found = _caches.get(uri or "")
        if found is None:
            found = _caches[uri or ""] = ResultCache(location)
        return found


def cache_key(request: dict[str, Any], value: str | bytes) -> str:
    """The key of a result: the SHA-256 of the request's description (endpoint, model,
    parameters; no secret) and of the input.

    >>> cache_key({"model": "m"}, "a") == cache_key({"model": "m"}, "a")
    True
    >>> cache_key({"model": "m"}, "a") == cache_key({"model": "m", "temperature": 1}, "a")
    False
    """
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode())
    data = value.encode() if isinstance(value, str) else bytes(value)
    digest.update(b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


class ResultCache:
    """Results by key, in a Lance dataset under a lakehouse root (or in memory when ``None``)."""

    def __init__(self, location: Location | None) -> None:
        self.location = location
        self.uri = None if location is None else location.join(CACHE_DIR, CACHE_NAME)
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def lookup(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The stored results among ``keys``."""
        wanted = sorted(set(keys))
        with self._lock:
            found = {k: self._memory[k] for k in wanted if k in self._memory}
        missing = [k for k in wanted if k not in found]
        if not missing or self.uri is None:
            return found
        dataset = self._open()
        if dataset is None:
            return found
        for start in range(0, len(missing), _LOOKUP_CHUNK):
            chunk = missing[start:start + _LOOKUP_CHUNK]
            keys_sql = ", ".join(f"'{k}'" for k in chunk)  # hex digests: nothing to escape
            table = dataset.to_table(columns=["key", "value"], filter=f"key IN ({keys_sql})")
            for key, value in zip(table.column("key").to_pylist(),
                                  table.column("value").to_pylist(), strict=True):
                found[key] = value
        with self._lock:
            self._memory.update({k: found[k] for k in missing if k in found})
        return found

    def store(self, results: dict[str, bytes]) -> None:
        """Keep ``results`` (successful ones only: callers never pass errors)."""
        if not results:
            return
        with self._lock:
            self._memory.update(results)
        if self.uri is None:
            return
        table = pa.table({"key": list(results), "value": list(results.values())}, schema=_SCHEMA)
        options = dict(self.location.storage_options) if self.location else None
        mode = "append" if self._open() is not None else "create"
        try:
            lance.write_dataset(table, self.uri, schema=_SCHEMA, mode=mode,
                                storage_options=options or None)
        except (OSError, ValueError, RuntimeError):
            if mode == "append":
                raise
            # another process created the dataset at the same moment: append to theirs
            lance.write_dataset(table, self.uri, schema=_SCHEMA, mode="append",
                                storage_options=options or None)

    def _open(self) -> Any:
        options = dict(self.location.storage_options) if self.location else None
        try:
            return lance.dataset(self.uri, storage_options=options or None)
        except (OSError, ValueError):  # nothing stored yet
            return None


__all__ = ["CACHE_DIR", "CACHE_NAME", "ResultCache", "cache_key", "current", "use_lakehouse"]
