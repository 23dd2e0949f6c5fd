"""Where a lakehouse lives: a local folder or an ``s3://bucket/prefix`` URI, and how to reach it.

Storage options follow Lance's names (``aws_endpoint``, ``aws_access_key_id``, ...). Anything not
given is taken from the usual AWS variables, including ``AWS_ENDPOINT_URL`` so that Tigris, MinIO
and other S3-compatible stores work with no code change. The same options drive Lance (tables)
and s3fs (directory markers and listings).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

from lakehouse.errors import StorageError

_ENV = {
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
}
_TIMEOUTS = {"connect_timeout": "5s", "timeout": "60s"}


@dataclasses.dataclass(frozen=True)
class Location:
    """A lakehouse root: its URI, Lance storage options and an fsspec filesystem for listings."""

    uri: str
    storage_options: dict[str, str]

    @staticmethod
    def parse(root: str | os.PathLike[str] | None,
              storage_options: dict[str, Any] | None = None) -> Location:
        if root is None:
            root = os.environ.get("LAKEHOUSE_ROOT") or "./lakehouse_data"
        root = os.fspath(root)
        scheme = urlparse(root).scheme
        if scheme in ("s3", "s3a"):
            return Location(root.rstrip("/").replace("s3a://", "s3://", 1),
                            s3_options(storage_options or {}))
        if scheme == "file":
            root = urlparse(root).path
        elif scheme and len(scheme) > 1:
            raise StorageError(f"unsupported lakehouse root {root!r}: use a folder or s3://bucket")
        return Location(str(Path(root).expanduser().resolve()),
                        {str(k): str(v) for k, v in (storage_options or {}).items()})

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


def s3_filesystem(opts: dict[str, str]) -> fsspec.AbstractFileSystem:
    """An s3fs filesystem configured from Lance-style storage options."""
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
        config_kwargs={"connect_timeout": 5, "read_timeout": 30,
                       "retries": {"max_attempts": 2}},
        skip_instance_cache=True,
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
    return StorageError(f"cannot {what} at {where}: {type(exc).__name__}: {exc}")
