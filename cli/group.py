"""The command group every `lakehouse` command belongs to: `--debug` before or after the
command, and help pages that read as plain text.

Typer shows each parameter's Python type in help (``<str>``, ``<bool>``, ``<list[str]>``) and
keeps the line breaks of a docstring's source. :class:`LakehouseGroup` prepares each command
as it is looked up: an option without a metavar gets a plain one (``TEXT``, ``INTEGER``, the
choices, nothing for a flag), an argument shows only its metavar (``TABLE``), each paragraph of
a command's help is one line (the terminal wraps it), and a copy of the group's ``--debug``
joins the command's options, so ``lakehouse query t --debug`` works like
``lakehouse --debug query t``. ``--root`` is an option of every command and of the group (see
``lakehouse_cli.common.RootOption``). A usage mistake in a command is one line on stderr, as
every error is.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup

try:  # typer with its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # typer on click
    from click.exceptions import UsageError  # type: ignore[no-redef]

#: Plain metavars for the Python types typer would show (``<str>``); other types keep theirs.
_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


class PlainArgument(TyperArgument):
    """An argument whose help shows its metavar alone (``TABLE``, not ``TABLE <str>``), and whose
    usage shows ``TABLE`` or ``[DIR]`` (not ``{TABLE}``)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or (self.name or "").upper()
        return name if self.required else f"[{name}]"


def _plain_metavar(param: Any, ctx: Any) -> None:
    """Give an option without a metavar a plain one, and an argument its plain display."""
    if isinstance(param, TyperArgument):
        param.__class__ = PlainArgument
        return
    if param.metavar is not None:
        return
    if getattr(param, "is_flag", False):
        param.metavar = ""  # a flag takes no value: show none
        return
    display_type = getattr(param, "display_type", None)  # the typer versions that show "<str>"
    if display_type is None:
        return
    shown = display_type(ctx)  # "<str>", "<table|json|csv>", "<int range>"
    label = shown.strip("<>") if isinstance(shown, str) else ""
    if "|" in label:
        param.metavar = f"[{label}]"
    else:
        param.metavar = _METAVARS.get(label.split(" ")[0], label.upper() or "VALUE")


def whole_paragraphs(text: str | None) -> str | None:
    """``text`` with each paragraph on one line: the source's line breaks inside a sentence
    are not the reader's (the terminal wraps the help)."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", p).strip() for p in paragraphs)


def _set_debug(ctx: typer.Context, _param: Any, value: bool) -> None:
    """The callback of a command's ``--debug``: the same as the group's."""
    from lakehouse_cli.common import Options

    if value:
        options = ctx.obj if isinstance(ctx.obj, Options) else Options()
        ctx.obj = dataclasses.replace(options, debug=True)


def _prepared(command: Any, ctx: Any, debug: Any) -> Any:
    """``command`` with plain metavars, whole paragraphs and (not for a group) ``--debug``."""
    if getattr(command, "_lakehouse_prepared", False):
        return command
    command.help = whole_paragraphs(command.help)
    if debug is not None and not isinstance(command, TyperGroup) \
            and all(p.name != "debug" for p in command.params):
        option = copy.copy(debug)
        option.expose_value = False  # the command's function does not take it
        option.callback = _set_debug
        command.params.append(option)
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is not None:
            _plain_metavar(param, ctx)
    command._lakehouse_prepared = True
    return command


class LakehouseGroup(TyperGroup):
    """A typer group whose commands are prepared as the module docstring says."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            return None
        root = ctx.find_root().command
        debug = next((p for p in root.params if p.name == "debug"), None)
        return _prepared(command, ctx, debug)

    def get_params(self, ctx: Any) -> list[Any]:
        _prepared(self, ctx, None)
        return super().get_params(ctx)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _usage_mistakes_in_one_line(ctx):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        with _usage_mistakes_in_one_line(ctx):
            return super().invoke(ctx)


@contextmanager
def _usage_mistakes_in_one_line(ctx: Any) -> Iterator[None]:
    """A usage mistake (a missing argument, an unknown option or command, a value of the wrong
    kind) as one line on stderr, like every other error, with exit code 2."""
    from lakehouse_cli.common import fail

    try:
        yield
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was shown (typer's own test)
            raise
        where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
        message = exc.format_message().rstrip(".")
        raise fail(f"{message}; see {where} --help", exc.exit_code) from None
