"""Progress display for long writes: a rich progress bar on an interactive terminal, else nothing.

Every long API call takes ``progress=`` (default True); pass False to silence it. The bar goes to
stderr and only appears when stderr is a terminal, so logs and pipes stay clean, unless the
environment variable ``LAKEHOUSE_PROGRESS`` is ``always`` (``lakehouse ingest --progress`` sets
it): then it is drawn on a piped stderr too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Protocol

#: Set to ``always`` to draw progress bars even when stderr is not a terminal.
FORCE_VARIABLE = "LAKEHOUSE_PROGRESS"


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
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: object) -> Text:
            speed = getattr(task, "speed", None)
            return Text(f"{speed:,.0f} rows/s" if speed else "")

    return RateColumn()


@contextlib.contextmanager
def report(description: str, *, enabled: bool, total: int | None = None,
           force: bool = False) -> Iterator[Reporter]:
    """Yield a reporter counting rows; draws a bar if enabled and stderr is a terminal (or
    ``force``, or ``LAKEHOUSE_PROGRESS=always``)."""
    force = force or os.environ.get(FORCE_VARIABLE, "").lower() == "always"
    if not enabled or not (force or sys.stderr.isatty()):
        yield _Silent()
        return
    from rich.console import Console
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
