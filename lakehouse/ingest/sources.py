"""The input files of an import: :func:`source_files` turns what the caller named (paths,
folders, globs, ``s3://`` prefixes, or a readable binary stream such as ``sys.stdin.buffer``)
into :class:`SourceFile` entries, each with the folder its relative media paths are resolved
against and the name a filename column records.

A stream is copied to a temporary file first, in 1 MiB pieces, so memory stays bounded
whatever its size, and the import can read it more than once (Parquet needs its footer, the
other formats a look at the first rows to infer the column types, and an import is redone if a
concurrent definition change asks for it). The copy is deleted when the import ends. A stream
has no folder (relative media paths in it are taken from the working directory) and no file
name.

>>> import io
>>> with contextlib.ExitStack() as stack:
...     [source] = source_files(io.BytesIO(b"a,b\\n1,2\\n"), extensions=("csv",),
...                             storage_options=None, stack=stack)
...     open(source.uri).read(), source.base, source.name
('a,b\\n1,2\\n', None, None)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from lakehouse.ingest.files import expand_sources, file_name, folder_of

_COPY_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One input file: where to read it (a local path or an ``s3://`` URI), the folder its
    relative media paths are resolved against (None: the working directory), the name a
    filename column records (None for a stream), and how messages name it."""

    uri: str
    base: str | None
    name: str | None
    label: str


def is_stream(source: Any) -> bool:
    """Whether ``source`` is a readable file object rather than paths or URIs."""
    return callable(getattr(source, "read", None)) and not isinstance(source, str | os.PathLike)


def source_files(sources: Any, *, extensions: Sequence[str],
                 storage_options: Mapping[str, str] | None,
                 stack: contextlib.ExitStack) -> list[SourceFile]:
    """The files ``sources`` names, found as :func:`~lakehouse.ingest.files.expand_sources`
    finds them (keeping names that end in one of ``extensions``), or the temporary copy of a
    stream, deleted when ``stack`` closes."""
    if is_stream(sources):
        label = str(getattr(sources, "name", None) or "the stream")
        return [SourceFile(_spool(sources, stack), None, None, label)]
    files = expand_sources(sources, storage_options=storage_options, extensions=extensions)
    return [SourceFile(f, folder_of(f), file_name(f), f) for f in files]


def _spool(stream: Any, stack: contextlib.ExitStack) -> str:
    """Copy ``stream`` (binary, or text written as UTF-8) to a temporary file; its path."""
    handle = tempfile.NamedTemporaryFile(prefix="lakehouse-import-", delete=False)  # noqa: SIM115
    stack.callback(os.unlink, handle.name)
    with handle:
        binary = getattr(stream, "buffer", stream)  # sys.stdin: its bytes, not its text
        shutil.copyfileobj(binary, _Encoded(handle) if binary is stream else handle,
                           _COPY_BYTES)
    return handle.name


class _Encoded:
    """A file that takes text pieces as UTF-8 and bytes as they are (a text stream without a
    ``buffer``, such as ``io.StringIO``)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, piece: str | bytes) -> int:
        return self._target.write(piece.encode() if isinstance(piece, str) else piece)


__all__ = ["SourceFile", "is_stream", "source_files"]
