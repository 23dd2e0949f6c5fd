"""What every command shares: the global options, the `--root` option, opening tables, and how
errors become one clear line on stderr.

A `lakehouse.Error` is one red line and exit code 1 (the message says how to fix it); anything
else is one line naming the exception and exit code 2; `--debug` shows the traceback instead.
Where a library message's hint names a Python argument (``pass if_exists='replace'``), the line
names the command's flag instead (see :data:`HINTS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    import lakehouse as lh

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_ERROR = 1  # a lakehouse.Error: the user can fix it (message says how)
EXIT_UNEXPECTED = 2  # anything else: a bug or an environment problem


@dataclass(frozen=True)
class Options:
    """Global options, set by the top-level callback (``lakehouse --root R --debug CMD``) and
    read by every command."""

    debug: bool = False
    root: str | None = None


ROOT_HELP = "Lakehouse root: a local folder or s3://bucket/prefix (default: $LAKEHOUSE_ROOT, " \
    "else ./lakehouse_data). Before or after the command."


def _root(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """A command's ``--root``: given after the command, else before it, else
    ``$LAKEHOUSE_ROOT``."""
    given_before = ctx.obj.root if isinstance(ctx.obj, Options) else None
    source = ctx.get_parameter_source(param.name or "root")
    if given_before is not None and (source is None or source.name != "COMMANDLINE"):
        return given_before
    return value


RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        envvar="LAKEHOUSE_ROOT",
        metavar="ROOT",
        help=ROOT_HELP,
        show_default=False,
        show_envvar=False,
        callback=_root,
    ),
]

TableArgument = Annotated[
    str,
    typer.Argument(
        metavar="TABLE",
        help="Table name, e.g. 'ml/images'; 'name:3' reads version 3, 'name@tag' a snapshot, "
        "'name#dev' branch dev.",
        show_default=False,
    ),
]

ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar on stderr (default: only when stderr is a terminal, or as "
        "LAKEHOUSE_PROGRESS=always|never says; --progress shows it even when stderr is piped).",
        show_default=False,
    ),
]

OnErrorOption = Annotated[
    str,
    typer.Option(
        "--on-error", metavar="[abort|ignore]",
        help="abort: a value that cannot be read stops the write and nothing is written; "
        "ignore: keep the row with the error recorded.",
    ),
]


class CommandError(Exception):
    """A command-line mistake the library does not see (a bad option value): one line, exit 1."""


#: The hints of library messages that name a Python call or argument, and what the command
#: line takes instead. Only the hint changes; the rest of the message is the library's.
HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    # the label of a where, select or order-by text the parser could not read: the option's
    (re.compile(r"^(where|select|order-by): "), r"--\1: "),
    (re.compile(r"pass if_exists='ignore' or 'replace'"),
     "pass --if-exists ignore or --if-exists replace"),
    (re.compile(r"create it with db\.create_dir\([^)]*\)"), "pass --parents to create it"),
    (re.compile(r"\b(pass|use|with) on_error='ignore'"), r"\1 --on-error ignore"),
    (re.compile(r"pass if_exists='replace' to rebuild it"), "pass --replace to rebuild it"),
    (re.compile(r"pass replace=True"), "pass --replace"),
    (re.compile(r"pass cascade=True to drop them too"), "pass --cascade to drop them too"),
    (re.compile(r"pass columns=\[\.\.\.\] to carry"), "pass --columns to carry"),
    (re.compile(r"\bon_error must be one of"), "--on-error must be one of"),
    (re.compile(r"\bif_exists must be one of"), "--if-exists must be one of"),
    (re.compile(r"name the one to fill with column=\.\.\."),
     "name the one to fill with --column"),
    (re.compile(r"table '([^']*)': column '([^']*)' has no embedding index; add one with "
                r"t\.add_embedding_index\('[^']*', embedding=\.\.\.\)"),
     r"table '\1': column '\2' has no embedding index; add one with "
     r"lakehouse index add \1 \2 --model ..."),
    (re.compile(r"use lh\.String, [^(]* or lh\.Document \(as text: ([^)]*)\)"), r"use one of \1"),
    (re.compile(r"use db\.get_table\(name\) for the latest version, or revert\(to=n\) to "
                r"restore this one"),
     "name the table without ':N' or '@NAME' for the latest version, or restore this one "
     "with lakehouse revert TABLE --to N"),
    (re.compile(r"schema=\{'(\w+)': \.\.\.\}"), r"--schema \1:TYPE"),
    (re.compile(r"schema=\{\.\.\.\}"), "--schema NAME:TYPE"),
    (re.compile(r"media='base64'"), "--media base64"),
    (re.compile(r"\bfilename_column( |=)"), "--filename-column "),
    (re.compile(r"needs embedding=lh\.functions\.clip\(\.\.\.\) or sentence_transformer\(\.\.\.\) "
                r"for Image and String columns, or a column of vectors \(lh\.Array\[\(d,\), "
                r"'float32'\]\)"),
     "needs --model clip:... for an image column or --model sentence-transformers:... for a "
     "string column, or a column of vectors (array[D, float32])"),
    (re.compile(r"pick one with similarity\(\.\.\., index=name\)"), "pick one with --index NAME"),
    (re.compile(r"pass lh\.connect\(\.\.\., trusted_models=\[[^\]]*\]\) or set "), "set "),
    (re.compile(r"select\(\) has duplicate output names (.*); name them with "
                r"select\(name=expr\)"),
     r"--select has duplicate output names \1; name them, as in --select 'a, b = a + 1'"),
    (re.compile(r"say what it holds with schema=\{'(\w+)': lh\.Image\} \(or lh\.Video, "
                r"lh\.Audio, lh\.Document, lh\.String\), or leave it out with "
                r"schema=\{'\w+': None\}"),
     r"say what it holds with --schema \1:image (or video, audio, document, string)"),
    (re.compile(r"rename them with rename=\{([^}]*)\} or leave them out with "
                r"schema=\{name: None\}"),
     r"rename them in the source first (\1)"),
    (re.compile(r"rename one with rename=.*$"), "rename one in the source first"),
    (re.compile(r"re-create the index with add_embedding_index\(\.\.\., if_exists='replace'\)"),
     "re-create the index with lakehouse index add TABLE COLUMN --model ... --replace"),
    # branches (lakehouse_cli.branches)
    (re.compile(r"table '([^']*)' has no branch '([^']*)'(.*)make one with t\.branch\('[^']*'\)"),
     r"table '\1' has no branch '\2'\3make one with lakehouse branch \1 \2"),
    (re.compile(r"open it with db\.get_table\('([^'#]*)#([^']*)'\), or delete it first"),
     r"use it as \1#\2, or delete it first with lakehouse branch \1 \2 --delete"),
    (re.compile(r"use db\.drop_table\('([^']*)'\)"), r"use lakehouse drop \1"),
    (re.compile(r"delete it with db\.get_table\('([^']*)'\)\.delete_branch\('([^']*)'\)"),
     r"delete it with lakehouse branch \1 \2 --delete"),
)

#: Storage and engine text that means nothing to the user: where in Lance's Rust sources an
#: error was raised (a build machine's path), and the wrapper names around the real reason.
INTERNALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r",?\s*(?:[A-Za-z]:)?(?:[/\\][^\s,:/\\]+)+\.rs:\d+(?::\d+)?"), ""),
    (re.compile(r"(?:\b\w+Error: )?LanceError\(\w+\): "), ""),
    (re.compile(r"\bGeneric \w+ error: "), ""),
)


def command_line_hint(message: str) -> str:
    """``message`` with the hints that name Python arguments turned into flags (:data:`HINTS`)."""
    for pattern, replacement in HINTS:
        message = pattern.sub(replacement, message)
    return message


def without_internals(message: str) -> str:
    """``message`` without the storage engine's internals (:data:`INTERNALS`)."""
    for pattern, replacement in INTERNALS:
        message = pattern.sub(replacement, message)
    return message


def command_line_message(message: str) -> str:
    """A library message as the command line says it: flags for Python arguments, and no
    storage engine internals."""
    return without_internals(command_line_hint(message))


def fail(message: str, code: int) -> typer.Exit:
    """Print ``Error: message`` on one red line; return the exit to raise."""
    line = Text("Error: ", style="bold red")
    line.append(" ".join(message.split()) or "(no message)", style="red")
    stderr.print(line)
    return typer.Exit(code)


@contextmanager
def library_errors(ctx: typer.Context) -> Iterator[None]:
    """Turn exceptions into one line on stderr and an exit code, unless --debug is given."""
    import lakehouse as lh

    debug = isinstance(ctx.obj, Options) and ctx.obj.debug
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        raise fail("interrupted", 130) from None
    except lh.Error as exc:
        if debug:
            raise
        raise fail(command_line_message(str(exc)), EXIT_ERROR) from None
    except CommandError as exc:
        if debug:
            raise
        raise fail(command_line_message(str(exc)), EXIT_ERROR) from None
    except Exception as exc:  # not ours: still one line, but say how to get the details
        if debug:
            raise
        message = f"{type(exc).__name__}: {without_internals(str(exc))} (unexpected; rerun with " \
            "--debug for the traceback)"
        raise fail(message, EXIT_UNEXPECTED) from None


def connect(root: str | None, *, existing: bool = False) -> lh.Catalog:
    """Open the lakehouse at ``root`` (``--root``/``LAKEHOUSE_ROOT``, else the default).

    A local root must be a folder; with ``existing`` (commands that only list, such as `ls`)
    it must exist too, so a mistyped ``--root`` is an error rather than an empty list. (The
    library reads a missing folder as an empty lakehouse, which a first `create` makes.)"""
    from pathlib import Path

    import lakehouse as lh

    db = lh.connect(root)
    if db.location.is_local:
        folder = Path(db.root)
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"the lakehouse root {db.root} is a file, not a folder; pass "
                               "--root a folder or s3://bucket/prefix")
        if existing and not folder.exists():
            raise CommandError(f"no lakehouse at {db.root}: the folder does not exist; check "
                               "--root (or $LAKEHOUSE_ROOT), or make it with lakehouse create "
                               "TABLE --schema ...")
    return db


def open_table(root: str | None, name: str) -> lh.Table:
    """Open ``name`` (``t``, ``t:3`` or ``t@tag``) in the lakehouse at ``root``."""
    return connect(root).get_table(name)


@contextmanager
def progress_bars(progress: bool | None) -> Iterator[None]:
    """Draw the library's progress bars as ``--progress/--no-progress`` asks (see
    ``lh.progress_bars``): ``--progress`` always, even when stderr is piped; ``--no-progress``
    never; unset, as the library does by default (when stderr is a terminal, or as
    ``LAKEHOUSE_PROGRESS`` says)."""
    import lakehouse as lh

    if progress is None:
        yield
        return
    with lh.progress_bars("always" if progress else "never"):
        yield
