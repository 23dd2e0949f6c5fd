"""Reading media sources: local paths, ``file://``, ``s3://`` and ``http(s)://`` URIs, within the
lakehouse's :class:`~lakehouse.media.policy.FetchPolicy`.

Sources are named by absolute URIs (a local path ``photos/a.jpg`` becomes
``file:///abs/photos/a.jpg``), which is what ``t.image.fileurl`` returns. S3 sources use the
table's storage options, or the usual AWS variables. Objects fetched from remote URIs when a
``store="reference"`` column is read are cached on local disk (``$LAKEHOUSE_CACHE``, else
``~/.cache/lakehouse``), so a second read of the same object does not download it again.

The rules every read follows (a source that breaks one is a
:class:`~lakehouse.errors.SourceRefusedError` for its row):

- Size and time: reading streams and stops at ``max_bytes``; connects, reads and the whole
  object have their timeouts (the last one for local files too).
- Local files: only regular files are read (``/dev/zero``, pipes and sockets are refused). A
  ``file://`` or ``s3://`` URI with a ``..`` segment is refused: lakehouse writes one only for a
  relative path that climbs out of its folder (see :mod:`lakehouse.ingest.files`).
- http(s): the host is resolved once, every address it has is checked, and the connection goes to
  the checked address (the ``Host`` header and the TLS name stay the host's), so a DNS answer
  cannot change between the check and the connect. Link-local, multicast, reserved and
  unspecified addresses (the cloud metadata service ``169.254.169.254``) are always refused;
  private and loopback ones unless ``allow_private_network``. Redirects are followed only to
  http(s), never from https to http, and each new address is checked again; a redirect reaches a
  private address only when that is allowed and it stays on the same host. Proxy variables are
  not used: the connection is made directly.
- s3: the endpoint is the lakehouse's own configuration, so it is not checked for private
  addresses.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import posixpath
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urljoin, urlparse, urlsplit

import fsspec
import urllib3

from lakehouse.errors import SourceRefusedError
from lakehouse.media.policy import FetchPolicy, describe_size
from lakehouse.storage import redact_text, redact_uri, s3_filesystem, s3_options

SCHEMES = ("file", "s3", "http", "https")
_CHUNK = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CONNECT_FAILED = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


class HTTPStatusError(OSError):
    """An http(s) server answered with an error status."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} {reason}".strip())
        self.code = code


class UnreachableError(OSError):
    """An http(s) server could not be reached; the message holds no secret."""


def to_uri(source: str | os.PathLike[str], *, allow_outside_folder: bool = False) -> str:
    """The absolute URI of a path or URI; raise ValueError for a scheme that cannot be read, and
    :class:`SourceRefusedError` for a ``file://`` or ``s3://`` URI with a ``..`` segment (unless
    ``allow_outside_folder``: then the segment is resolved).

    >>> to_uri("pics/cat.png"), to_uri("s3://bucket/cat.png")  # relative to the working folder
    ('file:///.../pics/cat.png', 's3://bucket/cat.png')
    >>> to_uri("ftp://host/cat.png")
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'ftp://host/cat.png': unsupported URI scheme 'ftp' (use a path or ...
    """
    text = os.fspath(source)
    scheme = urlparse(text).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        if scheme == "file" and not allow_outside_folder:
            refuse_dot_segments(text)
        path = unquote(urlparse(text).path) if scheme == "file" else text
        return Path(path).expanduser().resolve().as_uri()
    if scheme == "s3a":
        text = "s3://" + text.split("://", 1)[1]
        scheme = "s3"
    if scheme not in SCHEMES:
        raise ValueError(f"cannot read {redact_uri(text)!r}: unsupported URI scheme {scheme!r} "
                         f"(use a path or a {', '.join(s + '://' for s in SCHEMES)} URI)")
    if scheme == "s3" and not allow_outside_folder:
        refuse_dot_segments(text)
    elif scheme == "s3" and "/.." in text:
        bucket, _, key = text[len("s3://"):].partition("/")
        text = f"s3://{bucket}/" + posixpath.normpath("/" + key).lstrip("/")
    return text


def refuse_dot_segments(uri: str) -> None:
    """Refuse a ``file://`` or ``s3://`` URI whose path holds a ``..`` segment: such a URI names a
    file outside the folder it seems to be in (lakehouse writes one for a relative path in a CSV
    or Parquet file that climbs out of the file's folder, or a symbolic link that leads out of
    the folder ``insert_files`` was given).

    >>> refuse_dot_segments("file:///data/photos/../secret.png")
    Traceback (most recent call last):
    ...
    lakehouse.errors.SourceRefusedError: file:///data/photos/../secret.png leads out of the \
folder /data/photos (through '..' or a symbolic link); only files inside it are read. ...
    """
    path = unquote(urlsplit(uri).path)
    parts = path.split("/")
    if ".." not in parts:
        return
    folder = "/".join(parts[:parts.index("..")]) or "/"
    msg = (f"{redact_uri(uri)} leads out of the folder {folder} (through '..' or a symbolic "
           "link); only files inside it are read. Write an absolute path to read a file "
           "elsewhere, or open the lakehouse with "
           "lh.connect(..., fetch=lh.FetchPolicy(allow_outside_folder=True))")
    raise SourceRefusedError(msg, kind="OutsideFolder")


def local_path(uri: str) -> str | None:
    """The local file a ``file://`` URI names, else None.

    >>> local_path("file:///data/my%20photo.png"), local_path("s3://bucket/photo.png")
    ('/data/my photo.png', None)
    """
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def cache_dir() -> Path:
    root = os.environ.get("LAKEHOUSE_CACHE") or Path.home() / ".cache" / "lakehouse"
    return Path(root)


class Fetcher:
    """Reads the bytes behind URIs with one set of storage options, under one fetch policy.

    >>> Fetcher().read(to_uri(photo))[1:4]  # a PNG file's signature
    b'PNG'
    >>> Fetcher(policy=lh.FetchPolicy(max_bytes=1000)).read(to_uri(photo))
    Traceback (most recent call last):
    ...
    lakehouse.errors.SourceRefusedError: file:///.../astronaut.png is 773.0 KiB; the fetch limit \
is 1000 bytes (max_bytes=1000); ...
    """

    def __init__(self, storage_options: dict[str, str] | None = None,
                 policy: FetchPolicy | None = None) -> None:
        self._options = dict(storage_options or {})
        self.policy = policy or FetchPolicy()
        self._s3: fsspec.AbstractFileSystem | None = None
        self._lock = threading.Lock()

    def read(self, uri: str, *, cache: bool = False) -> bytes:
        """The object's bytes. With ``cache``, remote objects are kept in the local cache."""
        deadline = time.monotonic() + self.policy.total_timeout_s
        path = self._local(uri)
        if path is not None:
            with self._open_local(path, uri) as f:
                size = os.fstat(f.fileno()).st_size
                if size > self.policy.max_bytes:
                    raise self._too_large(uri, size)
                return self._read_capped(f.read, uri, deadline)
        if cache:
            cached = self._cached(uri)
            if cached.exists():
                return cached.read_bytes()
            data = self._read_remote(uri, deadline)
            write_atomic(cached, data)
            return data
        return self._read_remote(uri, deadline)

    def open(self, uri: str) -> IO[bytes]:
        """A file object on the object: lazy with ranged reads for local files and S3; an
        http(s) object is read (within the limits) into memory."""
        path = self._local(uri)
        if path is not None:
            return self._open_local(path, uri)
        if self._scheme(uri) == "s3":
            return self._s3fs().open(uri[len("s3://"):], "rb")
        return io.BytesIO(self._read_remote(uri, time.monotonic() + self.policy.total_timeout_s))

    # --- local files ----------------------------------------------------------------------------
    def _local(self, uri: str) -> str | None:
        path = local_path(uri)
        if path is not None and not self.policy.allow_outside_folder:
            refuse_dot_segments(uri)
        return path

    @staticmethod
    def _open_local(path: str, uri: str) -> IO[bytes]:
        """The open file, if it is a regular file. Opened without blocking, so a named pipe
        cannot hold the reader before the check."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                what = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
                raise SourceRefusedError(f"{redact_uri(uri)} is {what}, not a regular file",
                                         kind="NotAFile")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    # --- remote objects -------------------------------------------------------------------------
    def _read_remote(self, uri: str, deadline: float) -> bytes:
        scheme = self._scheme(uri)
        if scheme == "s3":
            with self._s3fs().open(uri[len("s3://"):], "rb", block_size=_CHUNK) as f:
                if f.size is not None and f.size > self.policy.max_bytes:
                    raise self._too_large(uri, f.size)
                return self._read_capped(f.read, uri, deadline)
        if scheme in ("http", "https"):
            return _HttpReader(self, deadline).read(uri)
        raise ValueError(f"cannot read {redact_uri(uri)!r}: unsupported URI scheme {scheme!r}")

    @staticmethod
    def _scheme(uri: str) -> str:
        return urlsplit(uri).scheme.lower()

    def _s3fs(self) -> fsspec.AbstractFileSystem:
        with self._lock:
            if self._s3 is None:
                self._s3 = s3_filesystem(s3_options(self._options),
                                         connect_timeout_s=self.policy.connect_timeout_s,
                                         read_timeout_s=self.policy.read_timeout_s)
            return self._s3

    # --- limits ---------------------------------------------------------------------------------
    def _read_capped(self, read: Callable[[int], bytes], uri: str, deadline: float) -> bytes:
        """Read to the end in chunks, refusing the source as soon as it passes ``max_bytes`` or
        the deadline: never more than ``max_bytes + 1`` bytes are read."""
        limit = self.policy.max_bytes
        parts: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise self._too_slow(uri)
            chunk = read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise self._too_large(uri)
            parts.append(chunk)

    def _too_large(self, uri: str, size: int | None = None) -> SourceRefusedError:
        limit = self.policy.max_bytes
        what = f"is {describe_size(size)}" if size is not None else "is larger than that"
        msg = (f"{redact_uri(uri)} {what}; the fetch limit is {describe_size(limit)} "
               f"(max_bytes={limit}); open the lakehouse with "
               "lh.connect(..., fetch=lh.FetchPolicy(max_bytes=...)) to read larger objects")
        return SourceRefusedError(msg, kind="SourceTooLarge")

    def _too_slow(self, uri: str, what: str = "total_timeout_s") -> SourceRefusedError:
        seconds = getattr(self.policy, what)
        msg = (f"{redact_uri(uri)} took longer than {seconds:g} s to read ({what}); open the "
               f"lakehouse with lh.connect(..., fetch=lh.FetchPolicy({what}=...)) to wait longer")
        return SourceRefusedError(msg, kind="SourceTimeout")

    @staticmethod
    def _cached(uri: str) -> Path:
        digest = hashlib.sha256(uri.encode()).hexdigest()
        suffix = Path(urlparse(uri).path).suffix[:10]
        return cache_dir() / "objects" / f"{digest}{suffix}"


@dataclass(frozen=True)
class _Hop:
    """One http(s) request of a fetch: where it goes, and the address checked for it."""

    url: str
    scheme: str
    host: str  # without brackets, lower case
    port: int
    host_header: str
    target: str  # path and query

    @staticmethod
    def parse(url: str) -> _Hop:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UnreachableError(f"{redact_uri(url)} has an invalid port") from None
        if not parts.hostname:
            raise UnreachableError(f"{redact_uri(url)} names no host")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _Hop(url, scheme, parts.hostname, port, parts.netloc.rpartition("@")[2], target)


class _HttpReader:
    """One http(s) fetch with urllib3: each hop's address checked, then connected to."""

    def __init__(self, fetcher: Fetcher, deadline: float) -> None:
        self._fetcher = fetcher
        self._policy = fetcher.policy
        self._deadline = deadline

    def read(self, uri: str) -> bytes:
        hop = _Hop.parse(uri)
        addresses = self._addresses(hop, None)
        for _ in range(self._policy.max_redirects + 1):
            pool, response = self._request(hop, addresses)
            try:
                if response.status in _REDIRECTS and response.headers.get("Location"):
                    previous = hop
                    hop = self._redirect(uri, previous, response.headers["Location"])
                    addresses = self._addresses(hop, previous)
                    continue
                if response.status >= 400:
                    raise HTTPStatusError(response.status, response.reason or "")
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self._policy.max_bytes:
                    raise self._fetcher._too_large(uri, int(length))
                return self._fetcher._read_capped(self._reader(response, uri), uri,
                                                  self._deadline)
            finally:
                response.release_conn()
                pool.close()
        msg = (f"{redact_uri(uri)} redirected more than {self._policy.max_redirects} times "
               "(max_redirects)")
        raise SourceRefusedError(msg, kind="RedirectRefused")

    def _request(self, hop: _Hop, addresses: list[str],
                 ) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        """The response of the first address that takes the connection (as a browser tries a
        host's IPv6 and IPv4 addresses), with the pool to close after reading it."""
        try:
            for address in addresses[:-1]:
                try:
                    return self._request_to(hop, address)
                except _CONNECT_FAILED:
                    continue  # this address takes no connections: try the next one
            return self._request_to(hop, addresses[-1])
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(hop, exc) from None

    def _request_to(self, hop: _Hop, address: str,
                    ) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._fetcher._too_slow(hop.url)
        timeout = urllib3.Timeout(connect=min(self._policy.connect_timeout_s, remaining),
                                  read=min(self._policy.read_timeout_s, remaining))
        pool: urllib3.HTTPConnectionPool
        if hop.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(address, hop.port, timeout=timeout, maxsize=1,
                                               retries=False, server_hostname=hop.host,
                                               assert_hostname=hop.host, cert_reqs="CERT_REQUIRED")
        else:
            pool = urllib3.HTTPConnectionPool(address, hop.port, timeout=timeout, maxsize=1,
                                              retries=False)
        headers = {"Host": hop.host_header, "User-Agent": "lakehouse",
                   "Accept-Encoding": "identity"}
        try:
            response = pool.urlopen("GET", hop.target, headers=headers, redirect=False,
                                    retries=False, preload_content=False, decode_content=False,
                                    assert_same_host=False, release_conn=False)
        except BaseException:
            pool.close()
            raise
        return pool, response

    def _reader(self, response: urllib3.BaseHTTPResponse, uri: str) -> Callable[[int], bytes]:
        """``read(n)``: at most one network read, so the deadline is checked between reads."""
        def read(n: int) -> bytes:
            try:
                return response.read1(n)
            except urllib3.exceptions.HTTPError as exc:
                raise self._unreachable(_Hop.parse(uri), exc) from None
        return read

    def _unreachable(self, hop: _Hop, exc: Exception) -> Exception:
        """The error to raise for a failed request: a timeout, or the reason without the URL
        (urllib3 puts the whole URL, query included, in its messages)."""
        # NewConnectionError subclasses ConnectTimeoutError, but a refused connection is no timeout
        if isinstance(exc, urllib3.exceptions.TimeoutError) \
                and not isinstance(exc, urllib3.exceptions.NewConnectionError):
            which = "connect_timeout_s" if isinstance(
                exc, urllib3.exceptions.ConnectTimeoutError) else "read_timeout_s"
            return self._fetcher._too_slow(hop.url, which)
        reason = getattr(exc, "reason", None) or exc
        text = str(reason).rpartition(": ")[2] or type(exc).__name__  # urllib3 prefixes objects
        return UnreachableError(redact_text(f"{hop.host}:{hop.port}: {text}"))

    @staticmethod
    def _redirect(uri: str, previous: _Hop, location: str) -> _Hop:
        """The next hop, if its scheme may be followed: http(s), and never https to http."""
        url = urljoin(previous.url, location)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https") or (previous.scheme, scheme) == ("https", "http"):
            msg = (f"{redact_uri(uri)} redirects to {redact_uri(url)}: a redirect may only go "
                   "to http(s), and never from https to http")
            raise SourceRefusedError(msg, kind="RedirectRefused")
        return _Hop.parse(url)

    def _addresses(self, hop: _Hop, redirected_from: _Hop | None) -> list[str]:
        """The addresses to connect to, in the resolver's order, once every one of them has
        been checked."""
        try:
            infos = socket.getaddrinfo(hop.host, hop.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnreachableError(f"cannot resolve {hop.host} ({exc})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        same_host = redirected_from is not None and \
            (redirected_from.host, redirected_from.port) == (hop.host, hop.port)
        for address in addresses:
            problem = _address_problem(address, self._policy,
                                       redirected=redirected_from is not None and not same_host)
            if problem:
                what = f"redirects to {redact_uri(hop.url)}, whose" if redirected_from else "its"
                source = redirected_from.url if redirected_from else hop.url
                host = hop.host if hop.host == str(address) else f"{hop.host} ({address})"
                msg = f"{redact_uri(source)}: {what} host {host} is {problem}"
                raise SourceRefusedError(
                    msg, kind="RedirectRefused" if redirected_from else "PrivateAddress")
        return list(dict.fromkeys(str(a) for a in addresses))


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                     policy: FetchPolicy, *, redirected: bool) -> str | None:
    """Why ``address`` may not be fetched from, or None. ``redirected``: a redirect from
    another host leads there."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    reserved = address.is_reserved and not address.is_loopback  # ::1 lies in reserved ::/8
    if address.is_link_local or address.is_multicast or address.is_unspecified or reserved:
        return ("a link-local, multicast or reserved address (such as the cloud metadata "
                "service 169.254.169.254), which is never fetched from")
    if address.is_global:
        return None
    allow = "lh.connect(..., fetch=lh.FetchPolicy(allow_private_network=True))"
    if not policy.allow_private_network:
        return (f"a private or loopback network address; open the lakehouse with {allow} to "
                "read from your own network")
    if redirected:
        return ("a private or loopback network address reached by a redirect from another "
                "host, which is never followed")
    return None


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
    """A short reason for a failed read, with no secret: ``no such file``, ``HTTP 404``, ...

    >>> describe_failure(FileNotFoundError("/data/photo.png")), describe_failure(
    ...     HTTPStatusError(404, "Not Found"))
    ('no such file or object', 'HTTP 404 Not Found')
    """
    if isinstance(exc, FileNotFoundError):
        return "no such file or object"
    if isinstance(exc, SourceRefusedError | HTTPStatusError):
        return str(exc)
    if isinstance(exc, UnreachableError):
        return f"unreachable ({exc})"
    return redact_text(f"{type(exc).__name__}: {exc}")
