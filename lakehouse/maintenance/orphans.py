"""Orphaned files: data, deletion, index and transaction files that no version references.

A write puts its files in the table's folders first and commits them after; a process killed
in between (SIGKILL, a lost machine) leaves files that no manifest will ever name. Lance finds
them (``explain_cleanup_old_versions(delete_unverified=True)`` lists them as *unverified*
candidates), but it can only remove all of them (``delete_unverified=True``, unsafe while any
other process writes) or those older than seven days. So lakehouse removes them itself, one by
one, under rules that keep every write in progress whole:

- a file written after the oldest version that stays is never removed: a write still in
  progress started from a version that stays (its files are newer than that version), or from a
  removed one, and then its commit fails and the write protocol redoes it with new files
  (Lance needs the version a commit read). So the files of a crashed write go once the version
  it started from is gone;
- a file younger than the policy's ``reader_window`` is never removed either;
- the files a backfill checkpoint lists are kept while the checkpoint can resume
  (:mod:`lakehouse.exec.checkpoints`: the new column files of its finished fragments), and
  while a backfill runs, nothing written since it started is removed.

One case is left to the window: a write slower than ``reader_window`` that meets a concurrent
commit recommits its files against the newest version; if its first version was removed in
between, its files may be gone. Keep ``reader_window`` above the longest write.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable

import fsspec
import lance

from lakehouse.errors import StorageError
from lakehouse.exec import checkpoints
from lakehouse.storage import Location

#: Orphans listed per gc (Lance lists the candidates; a longer list waits for the next gc).
MAX_LISTED = 100_000


@dataclasses.dataclass(frozen=True)
class Orphan:
    """A file of a table that no version references: its path inside the table's folder, its
    size and when it was last written."""

    path: str
    size: int
    modified: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Protection:
    """What orphan removal must leave alone: files younger than ``written_after`` (the reader
    window, or the start of a running backfill, whichever is earlier) and ``kept_files`` (data
    files of resumable checkpoints, relative to the data folder)."""

    written_after: datetime.datetime
    kept_files: frozenset[str]

    def spares(self, orphan: Orphan) -> bool:
        """Whether ``orphan`` must stay.

        >>> now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        >>> p = Protection(now, frozenset({"a.lance"}))
        >>> hour = datetime.timedelta(hours=1)
        >>> [p.spares(Orphan(path, 1, when)) for path, when in
        ...  [("data/a.lance", now - hour), ("data/b.lance", now - hour),
        ...   ("data/b.lance", now + hour)]]
        [True, False, True]
        """
        if orphan.modified >= self.written_after:
            return True
        return orphan.path.startswith("data/") and orphan.path[len("data/"):] in self.kept_files


def find(ds: lance.LanceDataset, location: Location) -> tuple[list[Orphan], bool]:
    """The files of table ``ds`` that no version references, and whether the list was cut at
    :data:`MAX_LISTED`. Costs one listing of the table's files and a read of every manifest."""
    try:
        found = ds.explain_cleanup_old_versions(  # every version retained: orphans only
            retain_versions=ds.version + 1, delete_unverified=True,
            error_if_tagged_old_versions=False, include_files=True, max_files=MAX_LISTED)
    except OSError as exc:
        raise StorageError(f"cannot list the files of {ds.uri}: {exc}") from exc
    fs = location.filesystem()
    root = location.fs_path(ds.uri).strip("/")
    out = []
    for candidate in found.candidate_files:
        if not candidate.unverified:
            continue
        relative = _relative(candidate.path, root)
        modified = _modified(fs, f"{location.fs_path(ds.uri)}/{relative}")
        if modified is not None:
            out.append(Orphan(relative, int(candidate.size_bytes), modified))
    return out, bool(found.candidate_files_truncated)


def protection(uri: str, location: Location, written_after: datetime.datetime,
               resumable: Iterable[str]) -> Protection:
    """What removal must spare in table ``uri``: files written after ``written_after`` (the
    oldest version that stays, or the reader window) or since the start of a running backfill,
    and the files of the checkpoints ``resumable``."""
    for job in checkpoints.list_jobs(uri, location.storage_options):
        if job["state"] == "running":
            started = datetime.datetime.fromtimestamp(float(job["started"]),
                                                      datetime.UTC)
            written_after = min(written_after, started)
    files = checkpoints.written_files(uri, location.storage_options, list(resumable))
    return Protection(written_after, frozenset(files))


def remove(ds: lance.LanceDataset, location: Location, orphans: list[Orphan]) -> None:
    """Delete ``orphans`` from table ``ds``'s folder (a file already gone is skipped)."""
    fs = location.filesystem()
    base = location.fs_path(ds.uri)
    for orphan in orphans:
        try:
            fs.rm_file(f"{base}/{orphan.path}")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot remove the orphaned file {orphan.path} of {ds.uri}: "
                               f"{exc}") from exc


def _relative(path: str, root: str) -> str:
    """A candidate's path inside the table's folder (Lance names it from the store's root)."""
    path = path.strip("/")
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    _, _, key = root.partition("/")  # on S3 Lance's path may leave out the bucket
    return path[len(key) + 1:] if key and path.startswith(key + "/") else path


def _modified(fs: fsspec.AbstractFileSystem, path: str) -> datetime.datetime | None:
    """When ``path`` was last written (timezone-aware), or None if it is gone."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    when = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(when, datetime.datetime):
        return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(float(when), datetime.UTC)
