"""The maintenance policy: when lakehouse compacts a table's small fragments and which old
versions it keeps.

One frozen object, given once when the lakehouse is opened
(``lh.connect(root, maintenance=lh.MaintenancePolicy(...))``, or ``maintenance=False`` to turn
automatic work off) and kept on the connection's :class:`~lakehouse.storage.Location`, so every
table of it follows the same rules. Writes (inserts, updates, deletes, backfills) leave one or
more fragments each; after a write, lakehouse compacts when the table holds
``max_small_fragments`` fragments or more with fewer than ``small_fragment_rows`` rows, and then
removes versions older than the retention rules allow. ``t.optimize()`` and ``t.gc()`` do the same
work on demand whatever ``auto`` says.
"""

from __future__ import annotations

import dataclasses
import datetime

from lakehouse.errors import InvalidOptionError


@dataclasses.dataclass(frozen=True)
class MaintenancePolicy:
    """Rules for the upkeep lakehouse does by itself after writes.

    - ``auto`` (True): compact, keep automatic filter indexes current and remove old versions
      after each write. ``lh.connect(..., maintenance=False)`` is the same as ``auto=False``.
    - ``max_small_fragments`` (16): compaction starts after a write once the table has this many
      fragments smaller than ``small_fragment_rows`` (each write adds at least one fragment; a
      query opens every fragment, so many small ones make every query slower).
    - ``small_fragment_rows`` (65,536): a fragment with fewer rows is "small".
    - ``target_rows_per_fragment`` (1,048,576): compaction merges neighbouring fragments into
      fragments of up to this many rows (Lance's default).
    - ``filter_index_rows`` (100,000): once a table holds this many rows, its Int, Date and
      Timestamp columns whose values arrive sorted or clustered (ids, times) get a zone map,
      so that selective filters on them read only the blocks of rows that can match
      (see :mod:`lakehouse.maintenance.filters`).
    - ``keep_versions`` (50): retention keeps at least the newest this many versions.
    - ``keep_for`` (7 days): retention keeps every version younger than this.
    - ``reader_window`` (10 minutes): no version younger than this is ever removed, whatever the
      other rules say, so a reader that opened it a moment ago can finish.

    >>> import datetime
    >>> import lakehouse as lh
    >>> lh.MaintenancePolicy(keep_versions=10, keep_for=datetime.timedelta(days=1)).keep_versions
    10
    """

    auto: bool = True
    max_small_fragments: int = 16
    small_fragment_rows: int = 65_536
    target_rows_per_fragment: int = 1_048_576
    filter_index_rows: int = 100_000
    keep_versions: int = 50
    keep_for: datetime.timedelta = datetime.timedelta(days=7)
    reader_window: datetime.timedelta = datetime.timedelta(minutes=10)

    def __post_init__(self) -> None:
        problems = [f"{name} must be a whole number of 1 or more, got {getattr(self, name)!r}"
                    for name in ("max_small_fragments", "small_fragment_rows",
                                 "target_rows_per_fragment", "filter_index_rows",
                                 "keep_versions")
                    if not _positive_int(getattr(self, name))]
        problems += [f"{name} must be a datetime.timedelta of 0 or more, got "
                     f"{getattr(self, name)!r}"
                     for name in ("keep_for", "reader_window")
                     if not isinstance(getattr(self, name), datetime.timedelta)
                     or getattr(self, name) < datetime.timedelta(0)]
        if not isinstance(self.auto, bool):
            problems.append(f"auto must be True or False, got {self.auto!r}")
        if problems:
            raise InvalidOptionError("invalid MaintenancePolicy: " + "; ".join(problems))


def policy_from(maintenance: MaintenancePolicy | bool | None) -> MaintenancePolicy:
    """The policy ``lh.connect(maintenance=...)`` asks for: ``None`` or ``True`` the defaults,
    ``False`` the defaults with ``auto`` off, a :class:`MaintenancePolicy` itself.

    >>> policy_from(False).auto, policy_from(None).auto
    (False, True)
    """
    if maintenance is None or maintenance is True:
        return MaintenancePolicy()
    if maintenance is False:
        return MaintenancePolicy(auto=False)
    if not isinstance(maintenance, MaintenancePolicy):
        message = ("maintenance must be a lakehouse.MaintenancePolicy, True or False, got "
                   f"{type(maintenance).__name__}")
        raise InvalidOptionError(message)
    return maintenance


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
