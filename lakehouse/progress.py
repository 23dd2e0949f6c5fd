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
from typing import Protocol

from lakehouse.errors import InvalidOptionError

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
    def advance(self, rows: int) -> None: ...


class _Silent:
    def advance(self, rows: int) -> None:
        pass


class _Bar:
    def __init__(self, progress: object, task: object) -> None:
        self._progress = progress
        self._task = task

    def advance(self, rows: int) -> None:
        self._progress.update(self._task, advance=rows)  # type: ignore[attr-defined]


def _rate_column() -> object:
    """A rich column showing rows per second (built lazily, like the bar itself)."""
    from rich.progress import ProgressColumn  # rich loads only when a bar is drawn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: object) -> Text:
            speed = getattr(task, "speed", None)
            return Text(f"{speed:,.0f} rows/s" if speed else "")

    return RateColumn()


@contextlib.contextmanager
def report(description: str, *, enabled: bool, total: int | None = None,
           force: bool = False) -> Iterator[Reporter]:
    """Yield a reporter counting rows; draws a bar if enabled and the progress mode allows it
    (see :func:`current_mode`); ``force`` draws it on a piped stderr, as ``"always"`` does."""
    current = current_mode()
    force = force or current == "always"
    if not enabled or current == "never" or not (force or sys.stderr.isatty()):
        yield _Silent()
        return
    from rich.console import Console  # rich loads only when a bar is drawn
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("rows"), _rate_column(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True, force_terminal=force or None),
                  transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
