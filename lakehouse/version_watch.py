"""Whether a table in a local folder may have a version newer than the one last found: one
``stat`` of its version folder answers "no" for a table nobody wrote lately, where Lance's own
check lists that folder on a thread of its runtime (a tenth of a millisecond of a small query,
which is what every query of the latest version pays).

A new version is a new file in the dataset's ``_versions`` folder, which changes the folder's
modification time. A time is trusted only once it has settled: a folder changed within one tick
of the file system's clock could be changed again within that tick and keep its time, so it is
checked the full way until :data:`SETTLE_NS` has passed (Git trusts its index the same way).
Linux stamps files with a clock of one scheduler tick (at most 10 ms), which shows in the
sub-second digits of the times; a time of whole seconds may come from a file system of coarse
times (FAT's are two seconds), so it settles after :data:`COARSE_SETTLE_NS`. Object stores have
no folder to stat: tables there are always checked."""

from __future__ import annotations

import os
import time

#: how long after its last change a folder with sub-second times is trusted: ten times the
#: longest tick of Linux's file time clock
SETTLE_NS = 100_000_000
#: the same for a folder whose time is a whole second: longer than the coarsest clock a local
#: file system stamps with (two seconds)
COARSE_SETTLE_NS = 3_000_000_000
_SECOND_NS = 1_000_000_000


class VersionWatch:
    """The state of one dataset's version folder at the last full check.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "_versions").mkdir()
    >>> watch = VersionWatch(str(folder), settle_ns=0)  # (a folder settled at once)
    >>> watch.unchanged()   # never checked: check the full way
    False
    >>> seen = watch.observe()   # just before a full check...
    >>> watch.confirm(seen)      # ...which found the latest version
    >>> watch.unchanged()
    True
    >>> time.sleep(0.05)
    >>> (folder / "_versions" / "2.manifest").touch()   # another writer commits
    >>> watch.unchanged()
    False
    """

    __slots__ = ("_folder", "_settle_ns", "_stamp")

    def __init__(self, dataset_path: str, *, settle_ns: int | None = None) -> None:
        self._folder = os.path.join(dataset_path, "_versions")
        self._settle_ns = settle_ns  # None: the module's, as they are when marked
        self._stamp: tuple[int, int, int] | None = None

    def unchanged(self) -> bool:
        """True only when the folder is as it was when last confirmed (see :meth:`observe`):
        no version was added or removed since. False whenever in doubt (never confirmed, not
        settled, the folder gone or replaced)."""
        stamp = self._stamp
        if stamp is None:
            return False
        try:
            st = os.stat(self._folder)
        except OSError:
            return False
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) == stamp

    def observe(self) -> tuple[int, int, int] | None:
        """The folder as it is, to take just *before* a full check and :meth:`confirm` once
        that check succeeded: a version added after this stat changes the folder again, so
        :meth:`unchanged` cannot miss it. None where the folder cannot be trusted (missing,
        or changed too lately to have settled)."""
        now = time.time_ns()
        try:
            st = os.stat(self._folder)
        except OSError:
            return None
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        settle = self._settle_ns
        if settle is None:
            settle = COARSE_SETTLE_NS if changed % _SECOND_NS == 0 else SETTLE_NS
        if changed > now - settle:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns

    def confirm(self, observed: tuple[int, int, int] | None) -> None:
        """Trust ``observed`` (from :meth:`observe`) from now on: the full check that followed
        it found the latest version. A check that failed confirms nothing, so the next one is
        made the full way too."""
        self._stamp = observed
