"""Reading the values of ``store="reference"`` media columns from their sources, under the
lakehouse's fetch policy (a source it refuses now is a :class:`SourceRefusedError`)."""

from __future__ import annotations

import polars as pl

from lakehouse.errors import MediaError, SourceRefusedError
from lakehouse.media.fetch import Fetcher, describe_failure
from lakehouse.media.pool import pmap
from lakehouse.metadata import ColumnDef
from lakehouse.storage import redact_uri


def resolve_references(frame: pl.DataFrame, column: ColumnDef, fetcher: Fetcher,
                       table_name: str) -> pl.DataFrame:
    """Fill in the bytes of ``column`` where the table keeps only the source URI; remote objects
    are cached on local disk. A source that can no longer be read is a :class:`MediaError`.

    >>> from pathlib import Path
    >>> refs = db.create_table("refs", {"image": lh.Image(store="reference")})
    >>> column = refs.table_definition.get("image", "refs")
    >>> uri, errortype = column.info_columns()["fileurl"], column.info_columns()["errortype"]
    >>> frame = pl.DataFrame({"image": [None], uri: [Path(photo).as_uri()], errortype: [None]},
    ...                      schema={"image": pl.Binary, uri: pl.String, errortype: pl.String})
    >>> len(resolve_references(frame, column, Fetcher(), "refs").item(0, "image"))
    791555
    """
    info = column.info_columns()
    data = frame.get_column(column.name)
    uris = frame.get_column(info["fileurl"])
    failed = frame.get_column(info["errortype"]).is_not_null()  # kept with its error at insert
    missing = (data.is_null() & uris.is_not_null() & ~failed).arg_true().to_list()
    if not missing:
        return frame
    wanted = [uris[i] for i in missing]

    def read(uri: str) -> bytes:
        try:
            return fetcher.read(uri, cache=True)
        except Exception as exc:
            msg = (f"table {table_name!r}: column {column.name!r} refers to {redact_uri(uri)}, "
                   f"which cannot be read: {describe_failure(exc)}")
            if isinstance(exc, SourceRefusedError):
                raise SourceRefusedError(msg, kind=exc.kind) from None
            raise MediaError(msg) from None  # the cause's message may hold the URI's secrets

    fetched = dict(zip(missing, pmap(read, wanted), strict=True))
    values = [fetched.get(i, v) for i, v in enumerate(data.to_list())]
    return frame.with_columns(pl.Series(column.name, values, dtype=pl.Binary))
