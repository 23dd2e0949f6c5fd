"""Reading media sources: local paths, ``file://``, ``s3://`` and ``http(s)://`` URIs.

Sources are named by absolute URIs (a local path ``photos/a.jpg`` becomes
``file:///abs/photos/a.jpg``), which is what ``t.image.fileurl`` returns. S3 sources use the
table's storage options, or the usual AWS variables. Objects fetched from remote URIs when a
``store="reference"`` column is read are cached on local disk (``$LAKEHOUSE_CACHE``, else
``~/.cache/lakehouse``), so a second read of the same object does not download it again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import fsspec

from lakehouse.storage import s3_filesystem, s3_options

SCHEMES = ("file", "s3", "http", "https")
HTTP_TIMEOUT_S = 30


def to_uri(source: str | os.PathLike[str]) -> str:
    """The absolute URI of a path or URI; raise ValueError for a scheme that cannot be read."""
    text = os.fspath(source)
    scheme = urlparse(text).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        path = unquote(urlparse(text).path) if scheme == "file" else text
        return Path(path).expanduser().resolve().as_uri()
    if scheme == "s3a":
        return "s3://" + text.split("://", 1)[1]
    if scheme not in SCHEMES:
        raise ValueError(f"cannot read {text!r}: unsupported URI scheme {scheme!r} "
                         f"(use a path or a {', '.join(s + '://' for s in SCHEMES)} URI)")
    return text


def local_path(uri: str) -> str | None:
    """The local file a ``file://`` URI names, else None."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def cache_dir() -> Path:
    root = os.environ.get("LAKEHOUSE_CACHE") or Path.home() / ".cache" / "lakehouse"
    return Path(root)


class Fetcher:
    """Reads the bytes behind URIs with one set of storage options."""

    def __init__(self, storage_options: dict[str, str] | None = None) -> None:
        self._options = dict(storage_options or {})
        self._s3: fsspec.AbstractFileSystem | None = None
        self._lock = threading.Lock()

    def read(self, uri: str, *, cache: bool = False) -> bytes:
        """The object's bytes. With ``cache``, remote objects are kept in the local cache."""
        path = local_path(uri)
        if path is not None:
            with open(path, "rb") as f:
                return f.read()
        if cache:
            cached = self._cached(uri)
            if cached.exists():
                return cached.read_bytes()
            data = self._read_remote(uri)
            write_atomic(cached, data)
            return data
        return self._read_remote(uri)

    def open(self, uri: str) -> IO[bytes]:
        """A lazy file object (ranged reads) on the object."""
        path = local_path(uri)
        if path is not None:
            return open(path, "rb")
        if uri.startswith("s3://"):
            return self._s3fs().open(uri[len("s3://"):], "rb")
        return fsspec.open(uri, "rb").open()

    def _read_remote(self, uri: str) -> bytes:
        if uri.startswith("s3://"):
            return self._s3fs().cat_file(uri[len("s3://"):])
        request = urllib.request.Request(uri, headers={"User-Agent": "lakehouse"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.read()

    def _s3fs(self) -> fsspec.AbstractFileSystem:
        with self._lock:
            if self._s3 is None:
                self._s3 = s3_filesystem(s3_options(self._options))
            return self._s3

    @staticmethod
    def _cached(uri: str) -> Path:
        digest = hashlib.sha256(uri.encode()).hexdigest()
        suffix = Path(urlparse(uri).path).suffix[:10]
        return cache_dir() / "objects" / f"{digest}{suffix}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed read: ``no such file``, ``HTTP 404``, ..."""
    if isinstance(exc, FileNotFoundError):
        return "no such file or object"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"

