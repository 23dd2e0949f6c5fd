"""The fetch policy: how much, how long and from where media sources may be read.

One frozen object, given once when the lakehouse is opened
(``lh.connect(root, fetch=lh.FetchPolicy(...))``), and kept by every table of it: inserts,
imports, ``insert_files`` and the reading of ``store="reference"`` columns all fetch under it.
The defaults suit media files from the internet and S3: a source outside them is refused for its
row with a :class:`~lakehouse.errors.SourceRefusedError` whose message names the field to change.
"""

from __future__ import annotations

import dataclasses

from lakehouse.errors import InvalidOptionError

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """Limits for reading media sources (``http(s)://``, ``s3://``, local files).

    - ``max_bytes`` (1 GiB): the largest object read; reading stops there and the source is
      refused (an announced size above it is refused before reading).
    - ``connect_timeout_s`` (10 s): the longest wait to connect to an http(s) or S3 server.
    - ``read_timeout_s`` (30 s): the longest wait for the next bytes of an http(s) or S3 object.
    - ``total_timeout_s`` (600 s): the longest time to read one object, local files included,
      so a server that sends a trickle cannot hold a reader forever.
    - ``max_redirects`` (5): http(s) redirects followed, each checked like the first address.
    - ``allow_private_network`` (False): read http(s) URLs whose host is a private or loopback
      address (``10.0.0.0/8``, ``192.168.0.0/16``, ``127.0.0.1``, ``::1``, ...), such as a
      server on your own network. Link-local, multicast and reserved addresses (the cloud
      metadata service ``169.254.169.254``) are refused whatever this says.
    - ``allow_outside_folder`` (False): let a relative path in a CSV or Parquet file climb out
      of the file's folder (``../``), and let ``insert_files`` follow a symbolic link that leads
      out of the folder it was given.

    >>> import lakehouse as lh
    >>> lh.FetchPolicy(max_bytes=50 * 2**20, allow_private_network=True).max_bytes
    52428800
    """

    max_bytes: int = 1024 * MiB
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 600.0
    max_redirects: int = 5
    allow_private_network: bool = False
    allow_outside_folder: bool = False

    def __post_init__(self) -> None:
        problems = [f"{name} must be a positive number, got {getattr(self, name)!r}"
                    for name in ("max_bytes", "connect_timeout_s", "read_timeout_s",
                                 "total_timeout_s")
                    if not _positive(getattr(self, name))]
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            problems.append(f"max_redirects must be 0 or more, got {self.max_redirects!r}")
        for name in ("allow_private_network", "allow_outside_folder"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if problems:
            raise InvalidOptionError("invalid FetchPolicy: " + "; ".join(problems))


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def describe_size(n: int) -> str:
    """``1.0 GiB``, ``512.0 KiB``, ``12 bytes``: a size for messages.

    >>> describe_size(2**30), describe_size(1536), describe_size(12)
    ('1.0 GiB', '1.5 KiB', '12 bytes')
    """
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
