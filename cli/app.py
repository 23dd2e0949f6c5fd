"""The `lakehouse` command: a thin typer front end over the public `lakehouse` API.

Every command opens the lakehouse, makes one documented library call and prints the result. A
`lakehouse.Error` becomes one red line on stderr and exit code 1; `--debug` shows the traceback
instead. The library is imported lazily, inside the commands, so `--help` and `--version` stay fast.

    $ lakehouse --version
    $ lakehouse ls ml --root s3://bucket/prefix
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    name="lakehouse",
    help="Lance-based columnar lakehouse: tables are Lance datasets on a local folder or S3.",
    no_args_is_help=True,
    add_completion=False,
    # We print our own one-line errors; with --debug a plain traceback (never the local
    # variables, which may hold storage credentials).
    pretty_exceptions_enable=False,
)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_ERROR = 1  # a lakehouse.Error: the user can fix it (message says how)
EXIT_UNEXPECTED = 2  # anything else: a bug or an environment problem


@dataclass(frozen=True)
class Options:
    """Global options, set by the top-level callback and read by every command."""

    debug: bool = False


RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        envvar="LAKEHOUSE_ROOT",
        help="Lakehouse root: a local folder or s3://bucket/prefix (default: ./lakehouse_data).",
        show_default=False,
    ),
]


def _version() -> str:
    try:
        return _dist_version("lakehouse")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lakehouse {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the full traceback when a command fails."),
    ] = False,
) -> None:
    """Lance-based columnar lakehouse: tables are Lance datasets on a local folder or S3."""
    ctx.obj = Options(debug=debug)


def _fail(message: str, code: int) -> typer.Exit:
    line = Text("Error: ", style="bold red")
    line.append(" ".join(message.split()) or "(no message)", style="red")
    _stderr.print(line)
    return typer.Exit(code)


@contextmanager
def _library_errors(ctx: typer.Context) -> Iterator[None]:
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
        raise _fail("interrupted", 130) from None
    except lh.Error as exc:
        if debug:
            raise
        raise _fail(str(exc), EXIT_ERROR) from None
    except Exception as exc:  # not ours: still one line, but say how to get the details
        if debug:
            raise
        message = f"{type(exc).__name__}: {exc} (unexpected; rerun with --debug for the traceback)"
        raise _fail(message, EXIT_UNEXPECTED) from None


@app.command("ls")
def ls(
    ctx: typer.Context,
    directory: Annotated[
        str | None,
        typer.Argument(
            metavar="DIR",
            help="Directory to list, e.g. 'ml' (default: the root).",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """List the tables under DIR, one name per line."""
    import lakehouse as lh

    with _library_errors(ctx):
        names = lh.connect(root).list_tables(directory)
    for name in names:
        typer.echo(name)


@app.command("demo")
def demo(ctx: typer.Context, root: RootOption = None) -> None:
    """Run the main job: books, photos and captioned pictures with computed columns, embedding
    indexes and similarity searches."""
    from lakehouse.demo import run

    with _library_errors(ctx):
        run(root)


if __name__ == "__main__":  # pragma: no cover - `python -m lakehouse_cli.app`
    app(prog_name="lakehouse")
