"""Checkpoints of long column backfills: what a backfill finished, kept with the table.

A backfill (a new computed column, an embedding index's vectors) computes each fragment's new
column files with Lance's ``merge_columns`` and commits them all at once. Those files are
written to the table's data folder as soon as a fragment is done, but only the commit makes them
part of the table. A checkpoint records each finished fragment (its key and its new files) in
``<table>/_lakehouse_jobs/<job>/``, one small JSON object per fragment, so that after a crash,
a SIGKILL, Ctrl-C or a lost machine the same backfill started again reuses them and computes only
the rest. Readers never see a partial column: nothing is committed until every fragment is done.

The job is named by a hash of what it computes (the new fields with their definitions), so a
changed expression is a different job; a checkpoint for the same columns with another
definition is discarded when the new one starts, with a warning. ``job.json`` holds what the job
is and its progress (rows done, rows in all, errors, when it last moved), which another process
reads with :func:`list_jobs`.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import fsspec
import lance
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from lance.fragment import DataFile, FragmentMetadata

from lakehouse.storage import s3_filesystem

JOBS_DIR = "_lakehouse_jobs"
STALE_AFTER_S = 60.0  # a job whose progress has not moved for this long is abandoned
#: A job is written to storage only once it has run this long: a short backfill pays nothing
#: for its checkpoint (what it finished before is kept in memory and written then). The
#: environment variable LAKEHOUSE_CHECKPOINT_AFTER_S sets another delay (0: from the start).
WRITE_AFTER_S = 2.0
_PROGRESS_EVERY_S = 2.0
_TRIES = 5  # writes and removals racing another process's removals and writes
_ASIDE = ".removed-"  # a job folder being removed (see _remove)

FragmentKey = tuple[int, tuple[str, ...]]  # a fragment's id and data files: its rows and columns


def fragment_key(md: FragmentMetadata) -> FragmentKey:
    return md.id, tuple(f.path for f in md.files)


def job_id(fields: Sequence[pa.Field]) -> str:
    """The identity of a backfill: the fields it adds, with their stored definitions."""
    described = [[f.name, str(f.type), {k.decode(): v.decode() for k, v in
                                         (f.metadata or {}).items()}] for f in fields]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


class DiscardedCheckpointWarning(UserWarning):
    """A checkpoint was thrown away because the backfill it belongs to changed."""


@dataclasses.dataclass
class Checkpoint:
    """The checkpoint of one backfill of one table (see the module docstring)."""

    fs: fsspec.AbstractFileSystem
    path: str
    job: dict[str, Any]
    _last_progress: float = 0.0
    _began: float = dataclasses.field(default_factory=time.monotonic)
    _written: bool = False
    _pending: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    @staticmethod
    def open(uri: str, storage_options: dict[str, str], fields: Sequence[pa.Field], *,
             kind: str, version: int, total_rows: int, basis: str = "",
             dataset: lance.LanceDataset | None = None) -> Checkpoint:
        """The checkpoint of the backfill adding ``fields`` to table ``uri`` (from ``basis``:
        what else the work depends on, such as the base version a view's upkeep starts from):
        resumed if one is there, else started. Checkpoints of earlier jobs of the same kind on
        the same columns with another definition or basis are discarded, and so is this job's
        own if the table (``dataset``, its latest version) was reverted since it started."""
        fs = _filesystem(uri, storage_options)
        root = f"{_fs_path(uri)}/{JOBS_DIR}"
        ident = job_id(fields) if not basis else \
            hashlib.sha256(f"{job_id(fields)}:{basis}".encode()).hexdigest()[:16]
        names = sorted(f.name for f in fields)
        for other in _read_jobs(fs, root):
            if other["id"] != ident and other["kind"] == kind \
                    and set(other["columns"]) & set(names):
                warnings.warn(DiscardedCheckpointWarning(
                    f"discarding the checkpoint of an earlier {other['kind']} of "
                    f"{', '.join(other['columns'])} (job {other['id']}): its definition or "
                    "starting point differs from the one being computed now"), stacklevel=4)
                _remove(fs, f"{root}/{other['id']}")
        path = f"{root}/{ident}"
        existing = _read_json(fs, f"{path}/job.json")
        if existing is not None and dataset is not None \
                and _reverted_since(dataset, int(existing["version"])):
            warnings.warn(DiscardedCheckpointWarning(
                f"discarding the checkpoint of an earlier {kind} of {', '.join(names)} (job "
                f"{ident}): the table was reverted since it started"), stacklevel=4)
            _remove(fs, path)
            existing = None
        job = existing or {"id": ident, "kind": kind, "columns": names, "version": version,
                           "started": time.time()}
        job.update(rows_total=total_rows, host=socket.gethostname(), pid=os.getpid(),
                   updated=time.time(), rows_done=job.get("rows_done", 0) if existing else 0,
                   errors=job.get("errors", 0) if existing else 0, resumed=existing is not None)
        return Checkpoint(fs, path, job, _written=existing is not None)

    @property
    def resumed(self) -> bool:
        return bool(self.job["resumed"])

    def done(self) -> dict[FragmentKey, tuple[int, list[DataFile]]]:
        """Fragment key -> (rows, new data files) for each fragment finished before."""
        out: dict[FragmentKey, tuple[int, list[DataFile]]] = {}
        self.fs.invalidate_cache()
        for name in self._entries():
            data = _read_json(self.fs, name)
            if data is None:
                continue  # a write cut short: that fragment is computed again
            files = FragmentMetadata.from_json(json.dumps(data["fragment"])).files
            key = (int(data["id"]), tuple(data["files"]))
            out[key] = (int(data["rows"]), list(files))
        return out

    def record(self, key: FragmentKey, rows: int, files: list[DataFile]) -> None:
        """Remember a finished fragment (after its files are written)."""
        md = FragmentMetadata(id=key[0], files=files, physical_rows=rows)
        entry = {"id": key[0], "files": list(key[1]), "rows": rows, "fragment": md.to_json()}
        digest = hashlib.sha256("\0".join(key[1]).encode()).hexdigest()[:12]
        self._keep(f"fragments/{key[0]}-{digest}-{rows}.json", entry)

    def done_groups(self) -> dict[str, list[FragmentMetadata]]:
        """Group key -> the whole fragments written for it, for each group finished before
        (a view's upkeep writes new fragments per base fragment)."""
        out: dict[str, list[FragmentMetadata]] = {}
        self.fs.invalidate_cache()
        for name in _list(self.fs, f"{self.path}/groups"):
            data = _read_json(self.fs, name)
            if data is not None:
                out[data["key"]] = [FragmentMetadata.from_json(json.dumps(f))
                                    for f in data["fragments"]]
        return out

    def record_group(self, key: str, rows: int, fragments: list[FragmentMetadata]) -> None:
        """Remember the fragments written for one group (after they are written)."""
        entry = {"key": key, "rows": rows, "fragments": [f.to_json() for f in fragments]}
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self._keep(f"groups/{digest}-{rows}.json", entry)

    def progress(self, rows_done: int, errors: int) -> None:
        """Record progress for readers in other processes (at most every few seconds; rows
        done also show in the names of the finished fragments' entries)."""
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_EVERY_S:
            return
        self._last_progress = now
        self.job.update(rows_done=rows_done, errors=errors, updated=time.time())
        if self._written or now - self._began >= _write_after():
            self._write_out()

    def keep(self) -> None:
        """The work stopped before its commit (an error, Ctrl-C): write out what it finished,
        however young the job, for the next try."""
        if self._pending:
            self._write_out()

    def finish(self) -> None:
        """The backfill committed: the checkpoint is no longer needed."""
        if self._written:
            _remove(self.fs, self.path)

    def _keep(self, name: str, entry: dict[str, Any]) -> None:
        """Write an entry, or keep it in memory while the job is young (see WRITE_AFTER_S)."""
        self._pending.append((name, entry))
        if self._written or time.monotonic() - self._began >= _write_after():
            self._write_out()

    def _write_out(self) -> None:
        self.job["updated"] = time.time()
        _write_json(self.fs, f"{self.path}/job.json", self.job)
        for name, entry in self._pending:
            _write_json(self.fs, f"{self.path}/{name}", entry)
        self._pending.clear()
        self._written = True

    def _entries(self) -> list[str]:
        return sorted(_list(self.fs, f"{self.path}/fragments"))


def list_jobs(uri: str, storage_options: dict[str, str]) -> list[dict[str, Any]]:
    """The checkpointed backfills of table ``uri``, each with its progress, the fragments it
    finished and whether it is ``running`` (its progress moved in the last minute) or
    ``abandoned``."""
    fs = _filesystem(uri, storage_options)
    now = time.time()
    jobs = _read_jobs(fs, f"{_fs_path(uri)}/{JOBS_DIR}")
    for job in jobs:
        job["state"] = "running" if now - float(job["updated"]) < STALE_AFTER_S else "abandoned"
        path = f"{_fs_path(uri)}/{JOBS_DIR}/{job['id']}"
        entries = [n for part in ("fragments", "groups") for n in _list(fs, f"{path}/{part}")]
        job["fragments_done"] = len(entries)
        # each entry's name ends with its rows: the rows done, without reading the entries
        finished = sum(int(n.rsplit("-", 1)[-1].removesuffix(".json")) for n in entries)
        job["rows_done"] = max(int(job.get("rows_done", 0)), finished)
    return sorted(jobs, key=lambda j: j["started"])


def discard(uri: str, storage_options: dict[str, str], ident: str) -> bool:
    """Throw a checkpoint away (its files stay unreferenced until Lance's cleanup removes
    them). Returns whether there was one."""
    fs = _filesystem(uri, storage_options)
    path = f"{_fs_path(uri)}/{JOBS_DIR}/{ident}"
    if _read_json(fs, f"{path}/job.json") is None:
        return False
    _remove(fs, path)
    return True


def written_files(uri: str, storage_options: dict[str, str], idents: list[str]) -> set[str]:
    """The data files (paths inside the data folder) that the checkpoints ``idents`` of table
    ``uri`` recorded: written, not yet committed, needed by a resume (so garbage collection
    keeps them)."""
    fs = _filesystem(uri, storage_options)
    fs.invalidate_cache()
    found: set[str] = set()
    for ident in idents:
        path = f"{_fs_path(uri)}/{JOBS_DIR}/{ident}"
        for name in _list(fs, f"{path}/fragments") + _list(fs, f"{path}/groups"):
            data = _read_json(fs, name) or {}
            fragments = [data["fragment"]] if "fragment" in data else data.get("fragments", [])
            for fragment in fragments:
                found.update(f.path for f in FragmentMetadata.from_json(json.dumps(fragment)).files)
    return found


def _read_jobs(fs: fsspec.AbstractFileSystem, root: str) -> list[dict[str, Any]]:
    fs.invalidate_cache()
    try:
        names = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    jobs = [_read_json(fs, f"{name}/job.json") for name in names
            if not name.rsplit("/", 1)[-1].startswith(_ASIDE)]
    return [j for j in jobs if j is not None]


def _reverted_since(ds: lance.LanceDataset, version: int) -> bool:
    """Whether a revert (a Lance ``Restore``) was committed after ``version``."""
    for later in range(version + 1, ds.version + 1):
        try:
            tx = ds.read_transaction(later)
        except (ValueError, OSError):
            return True  # the versions in between are gone: nothing can be trusted
        if tx is not None and type(tx.operation).__name__ == "Restore":
            return True
    return False


def _write_after() -> float:
    try:
        return float(os.environ.get("LAKEHOUSE_CHECKPOINT_AFTER_S", WRITE_AFTER_S))
    except ValueError:
        return WRITE_AFTER_S


def _list(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    try:
        return [p for p in fs.ls(path, detail=False) if p.endswith(".json")]
    except FileNotFoundError:
        return []


def _filesystem(uri: str, storage_options: dict[str, str]) -> fsspec.AbstractFileSystem:
    return s3_filesystem(storage_options) if uri.startswith("s3://") \
        else fsspec.filesystem("file")


def _fs_path(uri: str) -> str:
    return uri[len("s3://"):] if uri.startswith("s3://") else uri


def _read_json(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    """One object, read in one request (an object replaced while read is read again)."""
    for _ in range(3):
        try:
            return json.loads(fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return None
        except OSError:  # replaced by its writer between two requests of one read
            continue
    return None


def _write_json(fs: fsspec.AbstractFileSystem, path: str, data: dict[str, Any]) -> None:
    """Write whole or not at all: a local file is written aside and renamed; an S3 object
    appears only when its upload completes."""
    text = json.dumps(data).encode()
    if not isinstance(fs, LocalFileSystem):
        with fs.open(path, "wb") as f:
            f.write(text)
        return
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.partial"
    for attempt in range(_TRIES):
        try:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with open(partial, "wb") as f:
                f.write(text)
            os.replace(partial, path)
            return
        except (FileNotFoundError, FileExistsError):  # another process discarded this job
            # meanwhile (a folder made, then renamed away before the next was made in it)
            if attempt == _TRIES - 1:
                raise


def _remove(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove a job's folder, also while the process running that job still writes into it (a
    view's upkeep from a newer base version discards an older one's checkpoint; that process
    writes its entries into a new folder). A local folder is first renamed aside in one step,
    so that writer cannot add to what is being removed; what an S3 writer adds during the
    removal is left for a later discard. A race with that writer never fails the write doing
    the removal: after a few tries what remains is left, never listed as a job."""
    if isinstance(fs, LocalFileSystem):
        aside = f"{path.rsplit('/', 1)[0]}/{_ASIDE}{uuid.uuid4().hex}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return  # removed by another process
        path = aside
    for _ in range(_TRIES):
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            if not fs.exists(path):
                return  # removed by another process as well
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:  # a file added while the folder was removed
                raise
        else:
            return
