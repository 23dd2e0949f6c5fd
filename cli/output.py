"""Writing a result frame in the format a command was asked for: a table for people, JSON, JSON
Lines, CSV or Parquet for programs.

``table`` is Polars' text table; ``json`` is one JSON array of row objects and ``jsonl`` one
object a line (the values of Json columns as JSON, dates and times in ISO 8601); ``csv`` has a
header line, and nested values (lists, structs, JSON) are JSON text in it. Media values (bytes)
are base64 text in ``json``, ``jsonl`` and ``csv`` (``lakehouse ingest --media base64`` reads
them back), and ``<N bytes>`` in the table for people; Parquet keeps every value as it is, bytes
included, and needs ``--output`` or a redirected stdout.
"""

from __future__ import annotations

import enum
import io
import json
import shutil
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse_cli.common import CommandError

if TYPE_CHECKING:
    import polars as pl


class Format(enum.StrEnum):
    """The output formats of `query`, `search`, `history`, `describe` and `index ls`."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", metavar="FORMAT",
                 help="Output format: table (for people); json (one array), jsonl (one object a "
                 "line), csv or parquet (for programs).",
                 case_sensitive=False),
]

OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of stdout.",
                 show_default=False, dir_okay=False),
]


class OutputError(CommandError):
    """The result cannot be written where it was asked for (a message for the user)."""


def _bytes_as_sizes(frame: pl.DataFrame) -> pl.DataFrame:
    """Media values (binary) as ``<N bytes>``, so text output never holds raw bytes."""
    import polars as pl

    binary = [name for name, dtype in frame.schema.items() if dtype == pl.Binary]
    if not binary:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).is_null()).then(None)
        .otherwise(pl.format("<{} bytes>", pl.col(name).bin.size()))
        .alias(name)
        for name in binary
    )


def _bytes_as_base64(frame: pl.DataFrame) -> pl.DataFrame:
    """Media values (binary) as base64 text, so JSON and CSV keep them whole."""
    import polars as pl

    binary = [name for name, dtype in frame.schema.items() if dtype == pl.Binary]
    return frame.with_columns(pl.col(name).bin.encode("base64") for name in binary) \
        if binary else frame


def _nested_as_json(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists, arrays and structs as JSON text (CSV holds only flat values)."""
    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if not nested:
        return frame
    return frame.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v, default=str)
                         for v in frame.get_column(name).to_list()], dtype=pl.String)
        for name in nested
    )


def render_table(frame: pl.DataFrame) -> str:
    """The frame as Polars' text table: every row and column, times to the second, no shape
    line and no column types."""
    import polars as pl

    times = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    frame = frame.with_columns(pl.col(n).dt.strftime("%Y-%m-%d %H:%M:%S") for n in times)
    # on a terminal, fit its width; piped, never wrap
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 60_000
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, fmt_str_lengths=100,
                   fmt_table_cell_list_len=6, tbl_width_chars=width):
        return str(_bytes_as_sizes(frame))


def _json_value(value: object) -> object:
    """JSON for the values ``json.dumps`` does not know: dates and times, decimals."""
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _json_rows(frame: pl.DataFrame, json_columns: Collection[str]) -> list[dict[str, object]]:
    """The rows as dicts, with media as base64 and the values of Json columns decoded."""
    rows = _bytes_as_base64(frame).to_dicts()
    decode = [name for name in json_columns if name in frame.columns]
    for row in rows:
        for name in decode:
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_value, ensure_ascii=False)


def encode(frame: pl.DataFrame, fmt: Format, json_columns: Collection[str] = ()) -> bytes:
    """The frame in ``fmt``, as the bytes to write; ``json_columns`` hold JSON text (the
    table's Json columns), written as JSON values in the ``json`` and ``jsonl`` formats."""
    if fmt is Format.table:
        return (render_table(frame) + "\n").encode()
    if fmt is Format.json:
        return (_dumps(_json_rows(frame, json_columns)) + "\n").encode()
    if fmt is Format.jsonl:
        return "".join(_dumps(row) + "\n" for row in _json_rows(frame, json_columns)).encode()
    if fmt is Format.csv:
        return _nested_as_json(_bytes_as_base64(frame)).write_csv().encode()
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def write(frame: pl.DataFrame, fmt: Format, output: Path | None,
          json_columns: Collection[str] = ()) -> None:
    """Write ``frame`` in ``fmt`` to ``output``, or to stdout (see :func:`encode`)."""
    if output is None and fmt is Format.parquet and sys.stdout.isatty():
        raise OutputError("parquet output is binary: pass --output FILE or redirect stdout")
    data = encode(frame, fmt, json_columns)
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from exc
        return
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
