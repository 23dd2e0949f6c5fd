"""The `lakehouse` help pages: every command and option is documented in README.md's Command
line section (as sqlite-utils checks its docs), and each page reads as plain text: metavars
such as TABLE, TEXT and N (never Python types like <str> or <bool>), and each paragraph
whole, not broken where the source line ends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from lakehouse_cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> dict[str, Any]:
    """Command path ("query", "index add") -> its click command, as the help shows it."""
    root = typer.main.get_command(app)
    found: dict[str, Any] = {}

    def walk(group: TyperGroup, ctx: typer.Context, prefix: str) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, TyperGroup):
                walk(command, typer.Context(command, info_name=name, parent=ctx),
                     f"{prefix}{name} ")
            else:
                found[prefix + name] = command

    walk(root, typer.Context(root, info_name="lakehouse"), "")
    return found


COMMANDS = _commands()


def _options(command: Any) -> set[str]:
    """The option names of ``command`` (``--where``, ``--no-progress``, ``-k``): every long
    name, and the short name of an option that has no long one."""
    names: set[str] = set()
    ctx = typer.Context(command, info_name="lakehouse")
    for param in command.get_params(ctx):
        if param.param_type_name != "option":
            continue
        flags = [*param.opts, *param.secondary_opts]
        long = {flag for flag in flags if flag.startswith("--")}
        names |= long or set(flags)
    return names


def _command_line_section() -> str:
    text = README.read_text()
    start = text.index("\n## Command line\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_command_and_option_is_in_the_readme() -> None:
    section = _command_line_section()
    assert {"ls", "query", "index add", "view create", "serve", "demo"} <= set(COMMANDS)
    missing_commands = [path for path in COMMANDS
                        if not re.search(rf"(`|lakehouse ){re.escape(path)}\b", section)]
    assert not missing_commands, f"commands missing from README's Command line: {missing_commands}"
    root = typer.main.get_command(app)
    options = _options(root).union(*(_options(c) for c in COMMANDS.values())) - {"--help"}
    missing_options = sorted(option for option in options
                             if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])",
                                              section))
    assert not missing_options, f"options missing from README's Command line: {missing_options}"


def _help(*path: str) -> str:
    """``lakehouse PATH --help`` on a terminal wide enough that no paragraph wraps."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "3000"},
                                prog_name="lakehouse")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", ["", *COMMANDS, "index", "view"])
def test_help_reads_as_plain_text(path: str) -> None:
    out = _help(*path.split())
    assert "Usage: lakehouse" in out
    types = re.findall(r"<(?:str|bool|int|float|list\[[^]]*\]|Path|[a-z|]+)>", out)
    assert not types, f"Python types in `lakehouse {path} --help`: {types}"
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage
    # the description: the lines between the usage line and the first panel, each a whole
    # paragraph, so each ends as a sentence does
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next(i for i, line in enumerate(lines) if line.lstrip().startswith("╭"))
    paragraphs = [line.strip() for line in lines[start:end] if line.strip()]
    assert paragraphs, f"`lakehouse {path} --help` has no description"
    broken = [p for p in paragraphs if not p.endswith((".", ":", ")", "`"))]
    assert not broken, f"`lakehouse {path} --help` breaks a sentence: {broken}"


def test_every_option_has_help_and_a_plain_metavar() -> None:
    for path, command in COMMANDS.items():
        ctx = typer.Context(command, info_name="lakehouse")
        for param in command.get_params(ctx):
            assert param.help if param.param_type_name == "option" else True, (path, param.name)
            if param.param_type_name == "option" and not param.is_flag:
                assert re.fullmatch(r"[A-Z]+|\[[a-z0-9|]+\]", param.metavar or ""), \
                    (path, param.opts, param.metavar)
