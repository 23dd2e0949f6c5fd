"""Where a lakehouse lives: a local folder or an ``s3://bucket/prefix`` URI, and how to reach it.

Storage options follow Lance's names (``aws_endpoint``, ``aws_access_key_id``, ...). Anything not
given is taken from the usual AWS variables, including ``AWS_ENDPOINT_URL`` so that Tigris, MinIO
and other S3-compatible stores work with no code change. The same options drive Lance (tables)
and s3fs (directory markers and listings).

Secrets stay out of sight: :class:`StorageOptions` (the options a :class:`Location` holds) hides
the values of secret options in its repr, and :func:`redact_uri` / :func:`redact_text` hide the
user and password of a URI and the signature, credential and token parameters of presigned URLs
in messages (``X-Amz-Signature=***``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import fsspec

from lakehouse.engine import RayEngine
from lakehouse.errors import StorageError
from lakehouse.maintenance.policy import MaintenancePolicy, policy_from
from lakehouse.media.policy import FetchPolicy

_ENV = {
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
}
_TIMEOUTS = {"connect_timeout": "5s", "timeout": "60s"}
# option names whose values are secrets: keys, tokens, passwords, SAS signatures
_SECRET_OPTION = re.compile(r"secret|token|password|passwd|credential|sas|key", re.IGNORECASE)
# query parameters of presigned URLs (S3, GCS, Azure) and API links that carry a secret
_SECRET_PARAM = re.compile(r"sig|credential|token|secret|password|passwd|key|auth|session"
                           r"|policy", re.IGNORECASE)
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()]+")
HIDDEN = "***"


class StorageOptions(dict[str, str]):
    """Storage options (Lance's names) whose repr hides secret values, so that printing a
    :class:`Location`, a write target or an error never shows a key or token."""

    def __repr__(self) -> str:
        shown = {k: HIDDEN if _SECRET_OPTION.search(k) else redact_uri(v)
                 for k, v in self.items()}
        return repr(shown)

    def hide(self, text: str) -> str:
        """``text`` with every secret option value replaced by ``***``."""
        for key, value in self.items():
            if value and len(value) >= 4 and _SECRET_OPTION.search(key):
                text = text.replace(value, HIDDEN)
        return text


@dataclasses.dataclass(frozen=True)
class Location:
    """A lakehouse root: its URI, Lance storage options, the policy media sources are fetched
    under, the maintenance policy its tables follow, and an fsspec filesystem for listings.
    Its repr hides secret options."""

    uri: str
    storage_options: StorageOptions
    fetch: FetchPolicy = FetchPolicy()
    maintenance: MaintenancePolicy = MaintenancePolicy()
    engine: RayEngine | None = None  # where backfills run: None in this process (lakehouse.engine)

    @staticmethod
    def parse(root: str | os.PathLike[str] | None,
              storage_options: dict[str, Any] | None = None,
              fetch: FetchPolicy | None = None,
              maintenance: MaintenancePolicy | bool | None = None,
              engine: RayEngine | None = None) -> Location:
        if fetch is not None and not isinstance(fetch, FetchPolicy):
            raise TypeError(f"fetch must be a lakehouse.FetchPolicy, got {type(fetch).__name__}")
        fetch = fetch or FetchPolicy()
        policy = policy_from(maintenance)
        if root is None:
            root = os.environ.get("LAKEHOUSE_ROOT") or "./lakehouse_data"
        root = os.fspath(root)
        scheme = urlparse(root).scheme
        if scheme in ("s3", "s3a"):
            return Location(root.rstrip("/").replace("s3a://", "s3://", 1),
                            StorageOptions(s3_options(storage_options or {})), fetch, policy,
                            engine)
        if scheme == "file":
            root = urlparse(root).path
        elif scheme and len(scheme) > 1:
            raise StorageError(f"unsupported lakehouse root {redact_uri(root)!r}: use a folder "
                               "or s3://bucket")
        options = StorageOptions({str(k): str(v) for k, v in (storage_options or {}).items()})
        return Location(str(Path(root).expanduser().resolve()), options, fetch, policy, engine)

    @property
    def is_local(self) -> bool:
        return not self.uri.startswith("s3://")

    def join(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    def filesystem(self) -> fsspec.AbstractFileSystem:
        if self.is_local:
            return fsspec.filesystem("file")
        return s3_filesystem(self.storage_options)

    def fs_path(self, uri: str) -> str:
        return uri[len("s3://"):] if uri.startswith("s3://") else uri


def s3_filesystem(opts: dict[str, str], *, connect_timeout_s: float = 5,
                  read_timeout_s: float = 30) -> fsspec.AbstractFileSystem:
    """An s3fs filesystem configured from Lance-style storage options: one per set of options,
    process and thread (fsspec's instance cache, which a forked child starts afresh), so a
    second ``connect`` to the same store does not build a botocore client again (0.2 s of
    CPU)."""
    client: dict[str, Any] = {}
    if "aws_region" in opts:
        client["region_name"] = opts["aws_region"]
    return fsspec.filesystem(
        "s3",
        key=opts.get("aws_access_key_id"),
        secret=opts.get("aws_secret_access_key"),
        token=opts.get("aws_session_token"),
        endpoint_url=opts.get("aws_endpoint"),
        client_kwargs=client,
        config_kwargs={"connect_timeout": connect_timeout_s, "read_timeout": read_timeout_s,
                       "retries": {"max_attempts": 2}},
        use_listings_cache=False,
    )


def s3_options(given: dict[str, Any]) -> dict[str, str]:
    opts = {str(k): str(v) for k, v in given.items()}
    if "endpoint" in opts and "aws_endpoint" not in opts:
        opts["aws_endpoint"] = opts.pop("endpoint")
    for key, names in _ENV.items():
        if key not in opts:
            for name in names:
                if os.environ.get(name):
                    opts[key] = os.environ[name]
                    break
    if opts.get("aws_endpoint", "").startswith("http://"):
        opts.setdefault("allow_http", "true")
    for key, value in _TIMEOUTS.items():
        opts.setdefault(key, value)
    return opts


def storage_error(location: Location, what: str, exc: BaseException) -> StorageError:
    endpoint = location.storage_options.get("aws_endpoint")
    where = f"{location.uri}" + (f" (endpoint {endpoint})" if endpoint else "")
    msg = f"cannot {what} at {where}: {type(exc).__name__}: {exc}"
    return StorageError(redact_text(location.storage_options.hide(msg)))


def redact_uri(uri: str) -> str:
    """``uri`` without its secrets, for messages: the user and password of ``https://u:p@host``
    and the values of signature, credential and token parameters become ``***``.

    >>> redact_uri("https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=AKIA&X-Amz-Signature=9f")
    'https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=***&X-Amz-Signature=***'
    >>> redact_uri("http://ann:hunter2@example.com/a.png?size=2")
    'http://***@example.com/a.png?size=2'
    """
    scheme, found, rest = uri.partition("://")
    if not found:
        return uri
    rest = _without_userinfo(rest)
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError:  # not parsable (a bad IPv6 literal): show only its scheme
        return f"{scheme}://{HIDDEN}"
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _without_userinfo(rest: str) -> str:
    """The part of a URI after ``scheme://`` with its user and password hidden. The last ``@``
    before the query ends the user information when no ``/`` comes before it, or when a ``:``
    does (a password holding a ``/``); an ``@`` in a plain path (``/@ann/photo.jpg``) stays."""
    end = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    at = rest.rfind("@", 0, end)
    slash = rest.find("/")
    if at >= 0 and (slash < 0 or slash > at or ":" in rest[:at]):
        return HIDDEN + rest[at:]
    return rest


def _redact_param(param: str) -> str:
    name, equals, _ = param.partition("=")
    return f"{name}={HIDDEN}" if equals and _SECRET_PARAM.search(name) else param


def redact_text(text: str) -> str:
    """``text`` (an error message) with every URI in it passed through :func:`redact_uri`."""
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group()), text)
