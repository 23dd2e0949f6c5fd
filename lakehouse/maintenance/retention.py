"""Retention: which old versions of a table are removed, which stay and why.

Every write makes a version, and each version keeps the files it references: a table written
row by row for a week holds thousands of versions and the small files they name. Garbage
collection (``t.gc()``, ``lakehouse gc``, and automatically after writes) removes the versions
the rules no longer need, with the files only they reference, and the orphaned files of writes
that crashed before their commit (:mod:`lakehouse.maintenance.orphans`).

A version stays when any rule keeps it (each kept version is reported with its reasons):

- it is the latest, one of the newest ``keep_versions``, or younger than ``keep_for``
  (:class:`~lakehouse.maintenance.policy.MaintenancePolicy`; ``t.gc()`` can override both);
- it was the latest less than ``reader_window`` ago: a reader or writer that opened it a moment
  ago can still finish (the window counts from when the next version replaced it, not from when
  it was written: a version that stayed current for a day was read until a moment ago);
- a snapshot names it (a Lance tag), or a branch starts from it (a Lance branch);
- a view needs it: the base version a registered view's latest upkeep reflects (the next upkeep
  compares it with the newest), and the version a view of a version or snapshot is pinned to;
  for a view itself, its last upkeep commit and every version after it (where the view reads
  the base version it reflects);
- a running backfill started from it, or from a version before it (its commit is checked
  against every version since).

Lance's ``cleanup_old_versions`` cannot be told "keep these versions" through ``older_than`` or
``retain_versions`` (both cut the history at one point), but it takes the exact list to remove
(``versions=``), so retention decides the list and Lance removes it, never removing a tagged
version, a branch's base or the latest (``error_if_tagged_old_versions=False``) and never a
file no version references (``delete_unverified=False``; orphans are removed separately, with
their own safety rules). A dry run asks Lance's ``explain_cleanup_old_versions`` the same
question, so it reports what the real run would remove.

Backfill checkpoints (:mod:`lakehouse.exec.checkpoints`) name files no version references
yet. An abandoned checkpoint whose starting version was removed cannot resume (it cannot check
the commits since): garbage collection discards it, and its files go with the orphans, instead of
keeping every version since an abandoned job started; the backfill, called again, computes from
the start. So does one older than six days when versions are removed, because Lance's cleanup
itself removes unreferenced files older than seven days (:data:`LANCE_SWEEP`); and no version
is removed while a backfill that has run that long is still running. A checkpoint is always
discarded before any of its files goes, so no resume ever commits a missing file.

Automatic collection after writes (:func:`auto_collect`) is rate-limited: it looks (one
listing of the table's manifests) only every few versions, and removes versions only once the
table holds more than ``keep_versions`` by a margin; it never removes orphans, which needs a
listing of every file.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping

import lance

from lakehouse import views
from lakehouse.errors import InvalidOptionError, StorageError, VersionNotFoundError
from lakehouse.exec import checkpoints, protocol
from lakehouse.maintenance import orphans
from lakehouse.maintenance.policy import MaintenancePolicy
from lakehouse.metadata import TableDef
from lakehouse.storage import Location

_UTC = datetime.UTC
#: Lance's cleanup also removes the files no version references once they are this old
#: (files it cannot tell from those of a write in progress); lakehouse never leaves a
#: checkpoint naming such a file.
LANCE_SWEEP = datetime.timedelta(days=7)
_MARGIN = datetime.timedelta(days=1)
_U64 = 2 ** 64 - 1  # Lance's newer manifest names count down from this


@dataclasses.dataclass(frozen=True)
class Rules:
    """The retention rules of one collection: the policy's, with ``keep_versions`` and
    ``keep_for`` possibly overridden for one call.

    >>> Rules.of(MaintenancePolicy(), keep_versions=3).keep_versions
    3
    """

    keep_versions: int
    keep_for: datetime.timedelta
    reader_window: datetime.timedelta

    @staticmethod
    def of(policy: MaintenancePolicy, *, keep_versions: int | None = None,
           keep_for: datetime.timedelta | None = None) -> Rules:
        check_overrides(keep_versions, keep_for)
        return Rules(policy.keep_versions if keep_versions is None else keep_versions,
                     policy.keep_for if keep_for is None else keep_for, policy.reader_window)

    def describe(self) -> str:
        """The rules in words, for reports and errors.

        >>> Rules(50, datetime.timedelta(days=7), datetime.timedelta(minutes=10)).describe()
        'keep_versions=50, keep_for=7 days, reader_window=10 minutes'
        """
        return (f"keep_versions={self.keep_versions}, keep_for={_words(self.keep_for)}, "
                f"reader_window={_words(self.reader_window)}")


@dataclasses.dataclass(frozen=True)
class GcReport:
    """What a garbage collection removed (or, in a dry run, would remove): the versions, the
    files and bytes they alone referenced, the orphaned files of crashed writes, the backfill
    checkpoints discarded, and each old version kept with the reasons.

    >>> report = t.gc(keep_versions=1, keep_for=datetime.timedelta(0), dry_run=True)
    >>> report.removed_versions, report.kept[2]
    ((), ('latest', 'newest 1 (keep_versions)'))
    """

    table: str
    dry_run: bool
    rules: Rules
    removed_versions: tuple[int, ...]
    version_files: int
    version_bytes: int
    orphan_files: tuple[str, ...]
    orphan_bytes: int
    discarded_jobs: tuple[str, ...]
    kept: Mapping[int, tuple[str, ...]]
    notes: tuple[str, ...] = ()

    @property
    def files_removed(self) -> int:
        """Files removed (manifests, data, deletion, index and transaction files, orphans).

        >>> t.gc(dry_run=True).files_removed
        0
        """
        return self.version_files + len(self.orphan_files)

    @property
    def bytes_reclaimed(self) -> int:
        """Bytes the removed files held.

        >>> t.gc(dry_run=True).bytes_reclaimed
        0
        """
        return self.version_bytes + self.orphan_bytes

    def summary(self) -> str:
        """The report in a few lines, as ``lakehouse gc`` prints it.

        >>> print(t.gc(dry_run=True).summary().splitlines()[0])
        films: would remove 0 versions, 0 orphaned files, 0 files in all, 0 B
        """
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{self.table}: {verb} {len(self.removed_versions)} versions"
                 f"{_ranges(self.removed_versions, ' (', ')')}, {len(self.orphan_files)} "
                 f"orphaned files, {self.files_removed} files in all, "
                 f"{_size(self.bytes_reclaimed)}"]
        by_reason: dict[str, list[int]] = defaultdict(list)
        for version, reasons in sorted(self.kept.items()):
            for reason in reasons:
                by_reason[reason].append(version)
        lines += [f"  kept {_ranges(vs)}: {reason}" for reason, vs in by_reason.items()]
        verb = "would discard" if self.dry_run else "discarded"
        lines += [f"  {verb} the checkpoint of backfill {job}: its starting version is removed"
                  for job in self.discarded_jobs]
        lines += [f"  {note}" for note in self.notes]
        lines.append(f"  rules: {self.rules.describe()}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class VersionTimes:
    """The versions of a table, oldest first, with when each was written (from one listing of
    its manifests: no manifest is read)."""

    versions: tuple[int, ...]
    written: tuple[datetime.datetime, ...]

    @staticmethod
    def list(location: Location, uri: str) -> VersionTimes:
        fs = location.filesystem()
        try:
            entries = fs.ls(f"{location.fs_path(uri)}/_versions", detail=True)
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            raise StorageError(f"cannot list the versions of {uri}: {exc}") from exc
        found = []
        for entry in entries:
            name = entry["name"].rsplit("/", 1)[-1]
            stem = name.removesuffix(".manifest")
            if name.endswith(".manifest") and stem.isdigit():
                number = int(stem)
                found.append((number if number < 2 ** 63 else _U64 - number, _when(entry)))
        found.sort()
        return VersionTimes(tuple(v for v, _ in found), tuple(w for _, w in found))

    def upto(self, version: int) -> VersionTimes:
        """The versions up to ``version`` (those written since are not looked at).

        >>> when = datetime.datetime(2026, 1, 1, tzinfo=_UTC)
        >>> VersionTimes((1, 2, 3), (when,) * 3).upto(2).versions
        (1, 2)
        """
        count = sum(1 for v in self.versions if v <= version)
        return VersionTimes(self.versions[:count], self.written[:count])


def policy_reasons(times: VersionTimes, rules: Rules,
                   now: datetime.datetime) -> dict[int, list[str]]:
    """The versions the rules themselves keep (newest, young, in the reader window), with why.

    >>> at = [datetime.datetime(2026, 1, d, tzinfo=_UTC) for d in (1, 2, 3, 4)]
    >>> rules = Rules(2, datetime.timedelta(days=3), datetime.timedelta(hours=1))
    >>> kept = policy_reasons(VersionTimes((1, 2, 3, 4), tuple(at)), rules, at[-1])
    >>> sorted(kept), kept[2]
    ([2, 3, 4], ['younger than 3 days (keep_for)'])
    """
    out: dict[int, list[str]] = defaultdict(list)
    versions, written = times.versions, times.written
    for i in range(len(versions) - 1, -1, -1):
        version = versions[i]
        if i == len(versions) - 1:
            out[version].append("latest")
        if i >= len(versions) - rules.keep_versions:
            out[version].append(f"newest {rules.keep_versions} (keep_versions)")
        if now - written[i] < rules.keep_for:
            out[version].append(f"younger than {_words(rules.keep_for)} (keep_for)")
        if i + 1 < len(versions) and now - written[i + 1] < rules.reader_window:
            out[version].append(f"replaced less than {_words(rules.reader_window)} ago "
                                "(reader_window)")
    return dict(out)


def held_versions(ds: lance.LanceDataset, location: Location,
                  jobs: list[dict[str, object]]) -> dict[int, list[str]]:
    """The versions something else needs: snapshots, branches, views, running backfills."""
    out: dict[int, list[str]] = defaultdict(list)
    for name, tag in ds.tags.list().items():
        if tag.get("branch") is None:
            out[int(tag["version"])].append(f"snapshot {name!r}")
    for name, branch in ds.branches.list().items():
        if branch.get("parent_branch") is None:
            out[int(branch["parent_version"])].append(f"branch {name!r} starts from it")
    for view in views.views_of(ds):
        for version, reason in _view_needs(location, view):
            out[version].append(reason)
    vdef = TableDef.from_schema(ds.schema, "").view
    if vdef is not None:
        upkeep = _last_upkeep(ds)
        for version in range(upkeep or ds.version, ds.version + 1):
            out[version].append("this view's last upkeep and after")
    for job in jobs:
        if job["state"] == "running":
            for version in range(int(str(job["version"])), ds.version + 1):
                out[version].append(f"backfill {job['id']} is running from version "
                                    f"{job['version']}")
    return dict(out)


def collect_garbage(name: str, uri: str, location: Location, *,
                    keep_versions: int | None = None,
                    keep_for: datetime.timedelta | None = None, dry_run: bool = False,
                    remove_orphans: bool = True) -> GcReport:
    """Remove the versions of table ``name`` (at ``uri``) that the retention rules do not keep,
    and (``remove_orphans``) the orphaned files of crashed writes; ``dry_run`` removes nothing
    and reports the same. ``keep_versions`` / ``keep_for`` override the policy's for this call.
    """
    rules = Rules.of(location.maintenance, keep_versions=keep_versions, keep_for=keep_for)
    now = datetime.datetime.now(_UTC)
    ds = _open(name, uri, location)
    times = VersionTimes.list(location, uri).upto(ds.version)
    jobs = checkpoints.list_jobs(uri, location.storage_options)
    kept = _merge(policy_reasons(times, rules, now), held_versions(ds, location, jobs))
    removed = tuple(v for v in times.versions if v not in kept)
    notes: list[str] = []
    long_running = [str(j["id"]) for j in jobs if j["state"] == "running"
                    and now - _started(j) > LANCE_SWEEP - _MARGIN]
    if removed and long_running:
        notes.append(f"no version removed: backfill {', '.join(long_running)} has run for days, "
                     "and Lance's cleanup would take the files it wrote first")
        removed = ()
    left = set(times.versions) - set(removed)
    stale = tuple(str(j["id"]) for j in jobs if j["state"] != "running" and (
        not set(range(int(str(j["version"])), ds.version + 1)) <= left
        or (removed and now - _started(j) > LANCE_SWEEP - _MARGIN)))
    if not dry_run:  # before any file goes: a checkpoint never names a removed file
        for job in stale:
            checkpoints.discard(ds.uri, location.storage_options, job)
    files, size = _remove_versions(name, ds, removed, dry_run)
    found: list[orphans.Orphan] = []
    if remove_orphans:
        oldest = min((w for v, w in zip(times.versions, times.written, strict=True)
                      if v in left), default=now)
        found, more = _orphans(ds, location, min(oldest, now - rules.reader_window), jobs,
                               stale, dry_run)
        notes += more
    return GcReport(name, dry_run, rules, removed, files, size,
                    tuple(o.path for o in found), sum(o.size for o in found), stale,
                    {v: tuple(r) for v, r in sorted(kept.items())}, tuple(notes))


def auto_collect(name: str, uri: str, location: Location, version: int) -> GcReport | None:
    """Garbage collection after a write that made ``version``, when it is due: only if the
    policy's ``auto`` is on, every :func:`interval` versions, and once the rules let at least
    that many versions go (snapshots and views aside). Versions only (no orphans). Returns the
    report, or None when nothing was due. Costs nothing between those versions, and one listing
    of the table's manifests when it looks.

    >>> auto_collect(t.table_name, t.table_uri, t.table_state().location, 2) is None
    True
    """
    policy = location.maintenance
    step = interval(policy.keep_versions)
    if not policy.auto or version % step or version <= policy.keep_versions + step:
        return None
    times = VersionTimes.list(location, uri)
    kept = policy_reasons(times, Rules.of(policy), datetime.datetime.now(_UTC))
    if len(times.versions) - len(kept) < step:
        return None  # the rules alone keep all but a few: not worth a collection yet
    return collect_garbage(name, uri, location, remove_orphans=False)


def interval(keep_versions: int) -> int:
    """How many versions apart automatic collection looks (a fifth of ``keep_versions``, at
    least 10): one listing of the manifests every so many writes, and versions removed in
    batches, not one per write.

    >>> interval(50), interval(1000)
    (10, 200)
    """
    return max(10, keep_versions // 5)


def missing_version(name: str, version: int, times: VersionTimes,
                    policy: MaintenancePolicy) -> VersionNotFoundError:
    """The error for opening a version that does not exist: removed by retention (it is older
    than the oldest version left), or not written yet.

    >>> print(missing_version("films", 1, VersionTimes((5, 6), ()), MaintenancePolicy()))
    table 'films' has no version 1: versions before 5 were removed by garbage collection \
(retention policy keep_versions=50, keep_for=7 days, reader_window=10 minutes); snapshot a \
version (t.snapshot(name)) to keep it, or pass lh.connect(maintenance=lh.MaintenancePolicy(...)) \
with longer retention
    """
    versions = times.versions
    if versions and 1 <= version < versions[0]:
        message = (f"table {name!r} has no version {version}: versions before {versions[0]} "
                   f"were removed by garbage collection (retention policy "
                   f"{Rules.of(policy).describe()}); snapshot a version (t.snapshot(name)) "
                   "to keep it, or pass lh.connect(maintenance=lh.MaintenancePolicy(...)) with "
                   "longer retention")
    elif versions and version < versions[-1]:
        message = (f"table {name!r} has no version {version}: it was removed by garbage "
                   f"collection (retention policy {Rules.of(policy).describe()}); versions "
                   f"left: {_ranges(versions)}")
    else:
        latest = versions[-1] if versions else 0
        message = f"table {name!r} has no version {version} (latest is {latest})"
    return VersionNotFoundError(message)


# --- steps ----------------------------------------------------------------------------------------
def _open(name: str, uri: str, location: Location) -> lance.LanceDataset:
    try:
        return lance.dataset(uri, storage_options=location.storage_options or None)
    except (ValueError, OSError) as exc:
        raise StorageError(f"table {name!r}: cannot open {uri}: {exc}") from exc


def _remove_versions(name: str, ds: lance.LanceDataset, removed: tuple[int, ...],
                     dry_run: bool) -> tuple[int, int]:
    """Remove (or explain the removal of) ``removed``: files and bytes that go with them."""
    if not removed:
        return 0, 0
    if dry_run:
        try:
            stats = ds.explain_cleanup_old_versions(versions=list(removed),
                                                    error_if_tagged_old_versions=False).stats
        except OSError as exc:
            raise StorageError(f"table {name!r}: cannot plan the removal of old versions: "
                               f"{exc}") from exc
    else:
        stats = protocol.remove_versions(name, ds, list(removed))
    files = (stats.old_versions + stats.data_files_removed + stats.transaction_files_removed
             + stats.index_files_removed + stats.deletion_files_removed)
    return files, stats.bytes_removed


def _orphans(ds: lance.LanceDataset, location: Location, written_after: datetime.datetime,
             jobs: list[dict[str, object]], stale: tuple[str, ...],
             dry_run: bool) -> tuple[list[orphans.Orphan], list[str]]:
    """Find the orphaned files that may go (those written before ``written_after``, see
    :mod:`lakehouse.maintenance.orphans`) and remove them (unless ``dry_run``). A backfill
    that started (or resumed) since ``jobs`` were listed stops the removal."""
    resumable = [str(j["id"]) for j in jobs if str(j["id"]) not in stale]
    guard = orphans.protection(ds.uri, location, written_after, resumable)
    found, cut = orphans.find(ds, location)
    going = [o for o in found if not guard.spares(o)]
    notes = []
    if len(going) < len(found):
        notes.append(f"kept {len(found) - len(going)} unreferenced files: a write in progress "
                     "may still commit them (written after the oldest version kept, within "
                     "the reader window, or by a backfill that runs or can resume)")
    if cut:
        notes.append("more orphaned files remain: run gc again")
    running = {str(j["id"]) for j in jobs if j["state"] == "running"}
    now_running = {str(j["id"]) for j in checkpoints.list_jobs(ds.uri, location.storage_options)
                   if j["state"] == "running"}
    if now_running - running:
        notes.append(f"no orphaned file removed: backfill {', '.join(sorted(now_running))} "
                     "started meanwhile; run gc again")
        return [], notes
    if not dry_run:
        orphans.remove(ds, location, going)
    return going, notes


def _started(job: Mapping[str, object]) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(float(str(job["started"])), _UTC)


def _view_needs(location: Location, view: str) -> list[tuple[int, str]]:
    """The base versions view ``view`` needs: the one its latest upkeep reflects, and the one
    it is pinned to."""
    try:
        vds = lance.dataset(views.table_uri(location, view),
                            storage_options=location.storage_options or None)
    except (ValueError, OSError):
        return []  # dropped outside lakehouse: it needs nothing
    needs = []
    vdef = TableDef.from_schema(vds.schema, view).view
    if vdef is not None and vdef.pinned is not None:
        needs.append((vdef.pinned, f"view {view!r} is pinned to it"))
    reflected = views.recorded_base_version(vds)
    if reflected is not None:
        needs.append((reflected, f"view {view!r} reflects it"))
    return needs


def _last_upkeep(ds: lance.LanceDataset) -> int | None:
    """The version of a view's last upkeep commit (which records the base version it
    reflects), or None if there is none left."""
    for version in range(ds.version, 0, -1):
        try:
            tx = ds.read_transaction(version)
        except (ValueError, OSError):
            return None
        if tx is not None and views.BASE_VERSION_KEY in tx.transaction_properties:
            return version
    return None


def _merge(*parts: Mapping[int, list[str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for part in parts:
        for version, reasons in part.items():
            out[version].extend(reasons)
    return dict(out)


def _when(entry: Mapping[str, object]) -> datetime.datetime:
    when = entry.get("LastModified") or entry.get("mtime")
    if isinstance(when, datetime.datetime):
        return when if when.tzinfo else when.replace(tzinfo=_UTC)
    return datetime.datetime.fromtimestamp(float(str(when)), _UTC)


def _words(delta: datetime.timedelta) -> str:
    """A duration in words.

    >>> _words(datetime.timedelta(days=7)), _words(datetime.timedelta(seconds=90))
    ('7 days', '90 seconds')
    """
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _ranges(versions: Iterable[int], before: str = "", after: str = "") -> str:
    """Versions as ranges: ``1-3, 7``.

    >>> _ranges([1, 2, 3, 7])
    '1-3, 7'
    """
    spans: list[list[int]] = []
    for v in sorted(versions):
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    if not spans:
        return ""
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"{before}{text}{after}"


def _size(count: int) -> str:
    """Bytes in words.

    >>> _size(0), _size(2048), _size(3 * 2 ** 20)
    ('0 B', '2.0 KiB', '3.0 MiB')
    """
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_overrides(keep_versions: object, keep_for: object) -> None:
    """Refuse a ``keep_versions`` / ``keep_for`` of the wrong kind before anything runs.

    >>> check_overrides(0, None)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: gc: keep_versions must be a whole number of 1 or more \
(the latest version always stays), got 0
    """
    if keep_versions is not None and (not isinstance(keep_versions, int)
                                      or isinstance(keep_versions, bool) or keep_versions < 1):
        raise InvalidOptionError("gc: keep_versions must be a whole number of 1 or more (the "
                                 f"latest version always stays), got {keep_versions!r}")
    if keep_for is not None and (not isinstance(keep_for, datetime.timedelta)
                                 or keep_for < datetime.timedelta(0)):
        raise InvalidOptionError("gc: keep_for must be a datetime.timedelta of 0 or more (such "
                                 f"as datetime.timedelta(days=7)), got {keep_for!r}")
