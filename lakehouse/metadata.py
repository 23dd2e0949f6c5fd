"""A table's definition, kept as JSON in the field metadata of its Lance schema.

Every lakehouse column carries a ``lakehouse`` field-metadata entry with its id, logical type and,
for computed columns, the expression and error policy. Because the definition lives on the fields,
adding a computed column writes its data and its definition in one Lance commit, and every version
of the dataset carries the definition that was true at that version. See docs/FORMAT.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from lakehouse import types as T
from lakehouse.errors import (
    ColumnNotFoundError,
    FormatVersionError,
    UnsafeDefinitionError,
)
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import ColumnRef, Expr, InfoColumn
from lakehouse.names import ROW_ADDRESS as ROW_ADDRESS  # Lance's row columns, named below the
from lakehouse.names import ROW_ID as ROW_ID  # SQL compiler, which needs them; kept here too

FORMAT_VERSION = 1
FIELD_KEY = b"lakehouse"
SCHEMA_KEY = b"lakehouse.format"
HIDDEN_PREFIX = "_lh_"  # bookkeeping columns; user column names cannot start with "_"
PENDING_PREFIX = "_lh_pending_"  # a replacement computed column before it is switched in
RETIRED_PREFIX = "_lh_retired_"  # a replaced computed column, dropped right after the switch
VECTORS_PREFIX = "_lh_embedding_"  # the vectors of an embedding index, computed from its column
BASE_ROW = "_lh_base_row"  # a view row's base row: the base's stable Lance row id
POSITION = "pos"  # a view row's position among the rows its iterator made from one base row
METRICS = ("cosine", "l2", "dot")
ON_ERROR = ("abort", "ignore")  # what a write does with a row it cannot compute or read


def error_column(col_id: int, field: str) -> str:
    """The hidden column holding a column's per-row error type or message."""
    return f"_lh_{field}_{col_id}"


def vectors_column(col_id: int) -> str:
    """The hidden computed column holding the vectors of an embedding index."""
    return f"{VECTORS_PREFIX}{col_id}"


def uri_column(col_id: int) -> str:
    """The hidden column holding the source URI of each value of a media column."""
    return f"_lh_uri_{col_id}"


@dataclasses.dataclass(frozen=True)
class ColumnDef:
    name: str
    col_id: int
    type: T.ColumnType
    expr_json: dict[str, Any] | None = None  # the stored expression, for computed columns
    on_error: str = "abort"
    index: dict[str, Any] | None = None  # the embedding index these vectors serve, if any

    @property
    def is_computed(self) -> bool:
        return self.expr_json is not None

    @property
    def keeps_errors(self) -> bool:
        """Whether per-row errors are stored: for computed columns with ``on_error="ignore"``,
        and for inserted media columns (an insert with ``on_error="ignore"`` keeps the rows
        whose file is missing or corrupt)."""
        if self.is_computed:
            return self.on_error == "ignore"
        return self.type.is_media

    @property
    def keeps_uri(self) -> bool:
        """Whether the source URI of each value is stored (inserted media columns)."""
        return self.type.is_media and not self.is_computed

    def info_columns(self) -> dict[str, str]:
        """Kind of per-row information (``errortype``, ``errormsg``, ``fileurl``) -> the hidden
        column that stores it."""
        out = {}
        if self.keeps_errors:
            out = {f: error_column(self.col_id, f) for f in ("errortype", "errormsg")}
        if self.keeps_uri:
            out["fileurl"] = uri_column(self.col_id)
        return out

    def fields(self) -> list[pa.Field]:
        """The Arrow fields that store this column: its values, then its hidden per-row errors
        and source URIs where it keeps them."""
        meta: dict[str, Any] = {"format": FORMAT_VERSION, "id": self.col_id,
                                "type": self.type.to_json()}
        if self.expr_json is not None:
            meta["computed"] = {"expr": self.expr_json, "on_error": self.on_error}
        if self.index is not None:
            meta["index"] = self.index
        out = [self.type.storage_field(self.name, {FIELD_KEY: json.dumps(meta)})]
        for kind, name in self.info_columns().items():
            info = json.dumps({"format": FORMAT_VERSION, "role": kind, "of": self.col_id})
            out.append(pa.field(name, pa.string(), metadata={FIELD_KEY: info}))
        return out

    def ref(self) -> ColumnRef:
        return ColumnRef(self.name, self.col_id, self.type)


@dataclasses.dataclass(frozen=True)
class IndexDef:
    """An embedding index: the column it searches, the column of vectors it searches with (a
    hidden computed column, or the searched column itself when that holds vectors), the
    embedding function's spec and the distance metric."""

    name: str
    source_id: int
    metric: str
    vectors: ColumnDef
    embedding: dict[str, Any] | None

    @functools.cached_property
    def lance_index(self) -> str:
        """The name of the Lance vector index on ``vectors`` (when one has been built); read
        on every search, so worked out once."""
        return f"lh_ann_{self.vectors.col_id}"

    @property
    def vector_index(self) -> str:
        """The Lance index type built once the table is large enough."""
        return str((self.vectors.index or {}).get("vector_index", "IVF_SQ"))

    @functools.cached_property
    def dim(self) -> int:
        shape = getattr(self.vectors.type, "shape", None) or (0,)
        return int(shape[0] or 0)

    @staticmethod
    def of(column: ColumnDef) -> IndexDef:
        assert column.index is not None
        info = column.index
        return IndexDef(str(info["name"]), int(info["source"]), str(info["metric"]), column,
                        info.get("embedding"))


@dataclasses.dataclass(frozen=True)
class ViewDef:
    """What a view is made of, stored on its hidden base-row column (see docs/FORMAT.md): the
    base table or view it follows, the base version it is frozen at (a view of ``t.at(3)``;
    None follows the base), the filter and the iterator over the base's columns (their stored
    JSON, base columns by id), the base columns it carries (view column id -> base column id)
    and what a base value the iterator cannot read does (``on_error``).

    >>> v = db.create_view("recent", t.where(t.year > 1990))
    >>> vdef = v.table_definition.view
    >>> vdef.base, vdef.pinned, vdef.carried
    ('films', None, ((0, 0), (1, 1), (2, 2)))
    """

    base: str
    pinned: int | None
    where: dict[str, Any] | None
    iterator: dict[str, Any] | None
    carried: tuple[tuple[int, int], ...]
    on_error: str = "abort"

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "pinned": self.pinned, "where": self.where,
                "iterator": self.iterator, "carried": [list(p) for p in self.carried],
                "on_error": self.on_error}

    @staticmethod
    def from_json(data: dict[str, Any], table_name: str) -> ViewDef:
        try:
            pinned = data.get("pinned")
            return ViewDef(
                base=str(data["base"]), pinned=None if pinned is None else int(pinned),
                where=data.get("where"), iterator=data.get("iterator"),
                carried=tuple((int(a), int(b)) for a, b in data.get("carried", ())),
                on_error=str(data.get("on_error", "abort")))
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsafeDefinitionError(
                f"view {table_name!r} has a malformed definition ({exc!r})") from exc

    def field(self) -> pa.Field:
        """The hidden base-row column, which carries the view's definition."""
        meta = {"format": FORMAT_VERSION, "role": "view", "view": self.to_json()}
        return pa.field(BASE_ROW, pa.uint64(), metadata={FIELD_KEY: json.dumps(meta)})


@dataclasses.dataclass(frozen=True)
class TableDef:
    """The columns of a table in schema order, rebuilt from (and written to) an Arrow schema.
    ``hidden`` holds the vector columns of embedding indexes: computed like other computed
    columns, but not shown among the table's columns.

    >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
    >>> tdef = t.table_definition
    >>> [(c.name, c.col_id, c.is_computed) for c in tdef.columns]
    [('title', 0, False), ('year', 1, False), ('rating', 2, False), ('decade', 3, True)]
    >>> tdef.expr(tdef.get("decade", "films"))
    ((year // 10) * 10)
    """

    columns: tuple[ColumnDef, ...]
    hidden: tuple[ColumnDef, ...] = ()
    view: ViewDef | None = None  # set when the table is a view

    @staticmethod
    def from_schema(schema: pa.Schema, table_name: str) -> TableDef:
        meta = schema.metadata or {}
        if SCHEMA_KEY in meta and int(meta[SCHEMA_KEY]) > FORMAT_VERSION:
            raise FormatVersionError(
                f"table {table_name!r} uses lakehouse format {int(meta[SCHEMA_KEY])}, newer than "
                f"this version reads ({FORMAT_VERSION}); upgrade lakehouse"
            )
        columns, hidden = [], []
        view = None
        for field in schema:
            raw = (field.metadata or {}).get(FIELD_KEY)
            if raw is not None and field.name == BASE_ROW:
                view = ViewDef.from_json(_view_json(raw, table_name), table_name)
                continue
            if raw is None or (field.name.startswith(HIDDEN_PREFIX)
                               and not field.name.startswith(VECTORS_PREFIX)):
                continue
            try:
                info = json.loads(raw)
            except ValueError as exc:
                raise UnsafeDefinitionError(
                    f"table {table_name!r}: column {field.name!r} has a malformed definition"
                ) from exc
            if int(info.get("format", 1)) > FORMAT_VERSION:
                raise FormatVersionError(
                    f"table {table_name!r}: column {field.name!r} uses a newer lakehouse format "
                    f"({info['format']}); upgrade lakehouse"
                )
            if "role" in info:
                continue
            computed = info.get("computed")
            column = ColumnDef(
                name=field.name,
                col_id=int(info["id"]),
                type=T.ColumnType.from_json(info["type"]),
                expr_json=computed["expr"] if computed else None,
                on_error=computed["on_error"] if computed else "abort",
                index=info.get("index"),
            )
            (hidden if field.name.startswith(HIDDEN_PREFIX) else columns).append(column)
        return TableDef(tuple(columns), tuple(hidden), view)

    def schema(self) -> pa.Schema:
        fields: list[pa.Field] = []
        for c in (*self.columns, *self.hidden):
            fields.extend(c.fields())
        if self.view is not None:
            fields.append(self.view.field())
        return pa.schema(fields, metadata={SCHEMA_KEY: str(FORMAT_VERSION)})

    # --- lookups --------------------------------------------------------------------------------
    def get(self, name: str, table_name: str) -> ColumnDef:
        for c in self.columns:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.columns) or "none"
        raise ColumnNotFoundError(f"table {table_name!r} has no column {name!r} (columns: {known})")

    def by_id(self, col_id: int) -> ColumnDef:
        for c in (*self.columns, *self.hidden):
            if c.col_id == col_id:
                return c
        raise ColumnNotFoundError(f"column id {col_id} is not in this table")

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    def stored_columns(self, exprs: Iterable[Expr]) -> list[str]:
        """The stored columns (hidden error columns included) that ``exprs`` read, in order."""
        names: list[str] = []
        errors = self.info_names()
        for expr in exprs:
            for node in _walk_stored(expr):
                if isinstance(node, ColumnRef):
                    name = self.by_id(node.col_id).name
                elif isinstance(node, InfoColumn) and (node.column.col_id, node.field) in errors:
                    name = errors[(node.column.col_id, node.field)]
                else:
                    continue
                if name not in names:
                    names.append(name)
        return names

    def check_refs(self, expr: Expr | None, table_name: str) -> None:
        """Refuse column references that are not columns of this table as it is now (a column
        of another table, or a dropped one): references are resolved by column id."""
        if expr is None:
            return
        for node in expr.walk():
            if not isinstance(node, ColumnRef):
                continue
            found = next((c for c in self.columns if c.col_id == node.col_id), None)
            if found is None or found.name != node.name or not found.type.same_kind(node.type):
                known = ", ".join(c.name for c in self.columns) or "none"
                raise ColumnNotFoundError(
                    f"table {table_name!r} has no column {node.name!r} (columns: {known}); an "
                    "expression may only use this table's current columns"
                )

    def next_id(self) -> int:
        return max((c.col_id for c in (*self.columns, *self.hidden)), default=-1) + 1

    def expr(self, column: ColumnDef) -> Expr:
        """The computed expression of ``column``, with references bound to current names."""
        assert column.expr_json is not None
        return serialize.from_json(column.expr_json, lambda i: self.by_id(i).ref())

    def names(self) -> dict[int, str]:
        return {c.col_id: c.name for c in (*self.columns, *self.hidden)}

    def info_names(self) -> dict[tuple[int, str], str]:
        """(column id, ``errortype`` | ``errormsg`` | ``fileurl``) -> hidden column name."""
        return {(c.col_id, kind): name for c in (*self.columns, *self.hidden)
                for kind, name in c.info_columns().items()}

    def media_columns(self) -> list[ColumnDef]:
        return [c for c in self.columns if c.type.is_media]

    def base_columns(self) -> list[ColumnDef]:
        return [c for c in self.columns if not c.is_computed]

    def computed_columns(self) -> list[ColumnDef]:
        """Computed columns in evaluation order: the table's, then the vectors of embedding
        indexes (which may embed a computed column)."""
        return [c for c in (*self.columns, *self.hidden) if c.is_computed]

    def indexes(self) -> list[IndexDef]:
        """The embedding indexes, by name."""
        found = [IndexDef.of(c) for c in (*self.columns, *self.hidden) if c.index is not None]
        return sorted(found, key=lambda i: i.name)

    def index(self, name: str) -> IndexDef | None:
        return next((i for i in self.indexes() if i.name == name), None)

    def dependencies(self, column: ColumnDef) -> set[int]:
        return serialize.from_json(column.expr_json, _any_ref).column_ids() if column.expr_json \
            else set()

    def dependents(self, col_ids: Iterable[int]) -> list[ColumnDef]:
        """Computed columns that depend, directly or transitively, on ``col_ids``, in order.

        >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
        >>> _ = t.add_computed_column(label=t.decade.astype(lh.String), progress=False)
        >>> [c.name for c in t.table_definition.dependents({t.year.col_id})]
        ['decade', 'label']
        """
        changed = set(col_ids)
        out = []
        for c in self.computed_columns():  # schema order is a valid evaluation order
            if self.dependencies(c) & changed:
                out.append(c)
                changed.add(c.col_id)
        return out



def _view_json(raw: bytes, table_name: str) -> dict[str, Any]:
    try:
        info = json.loads(raw)
        if int(info.get("format", 1)) > FORMAT_VERSION:
            raise FormatVersionError(f"view {table_name!r} uses a newer lakehouse format "
                                     f"({info['format']}); upgrade lakehouse")
        return dict(info["view"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsafeDefinitionError(
            f"view {table_name!r} has a malformed definition") from exc


def _walk_stored(expr: Expr) -> Iterator[Expr]:
    """The nodes of ``expr`` that read stored data: like ``walk()``, but ``t.x.errortype`` and
    ``t.x.fileurl`` read only their hidden column, not ``x`` itself (which may be media)."""
    if not isinstance(expr, InfoColumn):
        for child in expr.children():
            yield from _walk_stored(child)
    yield expr


def _any_ref(col_id: int) -> ColumnRef:
    return ColumnRef(f"#{col_id}", col_id, T.String)
