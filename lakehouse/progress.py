"""Progress display for long writes: a rich progress bar on an interactive terminal, else nothing.

Every long API call takes ``progress=`` (default True); pass False to silence that call. Whether
a call that may show a bar draws one depends on the *progress mode*:

* ``"auto"`` (the default): only when stderr is a terminal, so logs and pipes stay clean;
* ``"always"``: on a piped stderr too (a command-line tool whose user asked for the bar);
* ``"never"``: no bar at all.

Set the mode for a block of code with :func:`progress_bars` (``lh.progress_bars``), or for a
whole process with the environment variable ``LAKEHOUSE_PROGRESS`` (``always``, ``never`` or
``auto``), which is the default outside any such block. ``lakehouse ingest --progress`` uses
``progress_bars("always")``.

>>> import lakehouse as lh
>>> with lh.progress_bars("never"):
...     current_mode()
'never'
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from lakehouse.errors import InvalidOptionError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, Task

#: The environment variable that sets the default mode (``always``, ``never`` or ``auto``).
FORCE_VARIABLE = "LAKEHOUSE_PROGRESS"
#: The progress modes: a bar on a terminal only, a bar on any stderr, no bar.
MODES = ("auto", "always", "never")

_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("lakehouse_progress_mode",
                                                                  default=None)


def current_mode() -> str:
    """The progress mode in effect here: the innermost :func:`progress_bars` block's, else
    ``$LAKEHOUSE_PROGRESS`` when it names a mode, else ``"auto"``."""
    chosen = _mode.get()
    if chosen is not None:
        return chosen
    from_environment = os.environ.get(FORCE_VARIABLE, "").strip().lower()
    return from_environment if from_environment in MODES else "auto"


@contextlib.contextmanager
def progress_bars(mode: str) -> Iterator[None]:
    """Draw the progress bars of the writes made in this block ``"always"`` (even when stderr is
    piped), ``"never"``, or as by default (``"auto"``: when stderr is a terminal).

    A call's own ``progress=False`` still silences it. The mode belongs to the current thread
    (and asyncio task), like a ``decimal`` context: writes run by other threads keep theirs.

    >>> import lakehouse as lh
    >>> with lh.progress_bars("always"):
    ...     pass  # t.insert(rows) here draws its bar on a piped stderr too
    """
    if mode not in MODES:
        raise InvalidOptionError(f"progress_bars() takes one of {', '.join(map(repr, MODES))}, "
                                f"got {mode!r}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


class Reporter(Protocol):
    """What a long write tells its display as it goes."""

    def advance(self, rows: int, *, errors: int | None = None, reused: bool = False) -> None:
        """``rows`` more rows are done. ``errors``: the rows with an error *so far*, in all (a
        running total, as writers count it; None leaves it as it was). ``reused``: the rows
        were finished by an earlier run (a resumed backfill's checkpoint): they count as done
        but not in the rate, so the time left is not underestimated."""


class _Silent:
    def advance(self, rows: int, *, errors: int | None = None, reused: bool = False) -> None:
        pass


class RowBar:
    """A reporter drawn as one task of a rich ``Progress`` whose columns are
    :func:`bar_columns`: rows done of the total, rows per second, time left, and the rows with
    errors so far (in red, when there are any).

    >>> from rich.progress import Progress
    >>> progress = Progress(*bar_columns(), disable=True)  # drawn nowhere
    >>> bar = RowBar(progress, "compute doubled", total=1_000)
    >>> bar.advance(400, errors=3)
    >>> progress.tasks[0].completed, progress.tasks[0].fields["errors"]
    (400, 3)
    """

    def __init__(self, progress: Progress, description: str, total: int | None) -> None:
        self._progress = progress
        self._rows = 0
        self._errors = 0
        self._task = progress.add_task(description, total=total, errors=0)

    def advance(self, rows: int, *, errors: int | None = None, reused: bool = False) -> None:
        """See :meth:`Reporter.advance`."""
        self._rows += rows
        self._errors = self._errors if errors is None else errors
        if reused:  # the rate and the time left start again from here
            self._progress.reset(self._task, completed=self._rows, errors=self._errors)
        else:
            self._progress.update(self._task, advance=rows, errors=self._errors)


def bar_columns() -> list[ProgressColumn]:
    """The columns of a long write's bar: what it does, the bar, ``rows done/total rows``,
    ``rows/s`` (over the last 30 seconds, rich's window), time elapsed, ``ETA`` (time left at
    that rate) and ``N errors`` in red once a row has failed (``on_error="ignore"``).

    >>> [type(c).__name__ for c in bar_columns()][:3]
    ['TextColumn', 'BarColumn', 'RowsColumn']
    """
    from rich.progress import (  # rich loads only when a bar is drawn
        BarColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text  # rich loads only when a bar is drawn

    class RowsColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            done = f"{int(task.completed):,}"
            return Text(f"{done} rows" if task.total is None else
                        f"{done}/{int(task.total):,} rows")

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "")

    class ErrorsColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            errors = int(task.fields.get("errors", 0))
            if not errors:
                return Text("")
            return Text(f"{errors:,} error{'' if errors == 1 else 's'}", style="red")

    return [TextColumn("{task.description}"), BarColumn(), RowsColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), ErrorsColumn()]


@contextlib.contextmanager
def report(description: str, *, enabled: bool, total: int | None = None,
           force: bool = False) -> Iterator[Reporter]:
    """Yield a reporter counting rows; draws a bar (:class:`RowBar`) if enabled and the
    progress mode allows it (see :func:`current_mode`); ``force`` draws it on a piped stderr,
    as ``"always"`` does."""
    current = current_mode()
    force = force or current == "always"
    if not enabled or current == "never" or not (force or sys.stderr.isatty()):
        yield _Silent()
        return
    from rich.console import Console  # rich loads only when a bar is drawn
    from rich.progress import Progress

    with Progress(*bar_columns(), console=Console(stderr=True, force_terminal=force or None),
                  transient=False) as progress:
        yield RowBar(progress, description, total)
