"""Evaluate computed columns on a batch of rows with Polars.

A :class:`Plan` lists the columns to compute in dependency order. For each batch, calls that run
in Python (UDFs) are evaluated first, children before parents, over the whole batch: row UDFs in a
tight loop, batched UDFs in chunks of their ``batch_size``. Their results become temporary columns,
and everything else (operators, casts, string and JSON functions) compiles to one Polars expression
per column. A row whose UDF raises gets null, and its error type and message are recorded; so does a
row whose Int arithmetic leaves the 64-bit range (a ``ComputeError``: the compiled expression
checks it, vectorised, see ``exprs.polars``). With ``on_error="abort"`` the first such row stops
the whole write (or query) with a :class:`ComputeError`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from lakehouse.errors import ComputeError, ModelError, UDFNotFoundError, UnsafeDefinitionError
from lakehouse.exprs.nodes import Call, Expr
from lakehouse.exprs.polars import Check, Context, needs_python, to_polars
from lakehouse.exprs.registry import Function, lookup, resolve
from lakehouse.exprs.serialize import stored_fingerprints
from lakehouse.metadata import ColumnDef, TableDef, error_column

#: Batches of up to this many rows evaluate their Polars expressions eagerly (see _evaluate)
EAGER_ROWS = 16_384


class UDFChangedWarning(UserWarning):
    """A UDF's code differs from the code it had when its computed column was defined."""


#: The prefix of the registry names of the functions that run a model (``embed.text``,
#: ``embed.image``).
MODEL_FUNCTIONS = "embed."


@dataclasses.dataclass(frozen=True)
class PlannedColumn:
    """A column a :class:`Plan` computes: a computed column's definition and expression, or
    an expression of a query under its output name."""

    column: ColumnDef  # col_id -1: an expression of a query, not a stored column
    expr: Expr

    @property
    def stored(self) -> bool:
        return self.column.col_id >= 0

    def describe(self) -> str:
        if self.stored:
            return f"computed column {self.column.name!r} ({self.expr!r})"
        return f"query expression {self.expr!r}"


@dataclasses.dataclass
class RowErrors:
    """Per-row error type and message of one computed column in one batch."""

    types: list[str | None]
    messages: list[str | None]
    first: int | None = None  # the first failing row, kept so no one scans ``types`` for it

    @staticmethod
    def empty(n: int) -> RowErrors:
        return RowErrors([None] * n, [None] * n)

    def record(self, row: int, exc: BaseException) -> None:
        if self.types[row] is None:
            self.types[row] = type(exc).__name__
            self.messages[row] = str(exc)
            if self.first is None or row < self.first:
                self.first = row


@dataclasses.dataclass(frozen=True)
class _PythonCall:
    """A call the executor runs in Python, compiled once per plan: its function (with the
    call's options bound), its arguments as Polars expressions with their overflow checks (by
    flag name; ``arg_flags``: the names of each argument's own checks), and the temporary
    column its result goes to."""

    call: Call
    fn: Function
    args: tuple[pl.Expr, ...]
    flags: dict[str, Check]
    arg_flags: tuple[tuple[str, ...], ...]
    column: str

    @property
    def columns_as_they_are(self) -> bool:
        """Whether every argument is a column read as it is (no query needed to make them)."""
        return not self.flags and all(a.meta.is_column() for a in self.args)


@dataclasses.dataclass(frozen=True)
class _Step:
    """One target of a plan, compiled: its Python calls, then either the Polars expression of
    its value with its overflow checks, or (``called``) the column of the one Python call
    that is its value."""

    target: PlannedColumn
    calls: tuple[_PythonCall, ...]
    value: pl.Expr | None
    flags: dict[str, Check]
    called: str | None


class Plan:
    """How to compute a list of targets (computed columns or ad-hoc expressions) for batches.

    >>> plan = Plan.for_exprs("films", t.table_definition, {"next": t.year + 1})
    >>> plan.read_columns, plan.output_names
    (['year'], ['next'])
    >>> frame, failed = plan.run(t.select(t.title, t.year).collect())
    >>> frame.rows(), failed
    ([('Alien', 1979, 1980), ('Heat', 1995, 1996), ('Up', 2009, 2010)], set())
    """

    def __init__(self, table_name: str, tdef: TableDef, targets: list[PlannedColumn]) -> None:
        self.table_name = table_name
        self.tdef = tdef
        self.targets = targets
        self.functions = self._resolve_functions()
        # compiled once per set of columns computed beforehand (see run's ``materialized``):
        # every batch runs the same expressions
        self._steps: dict[tuple[tuple[int, str], ...], tuple[_Step, ...]] = {}

    @staticmethod
    def for_columns(table_name: str, tdef: TableDef, columns: list[ColumnDef]) -> Plan:
        """A plan for stored computed columns, in the given (dependency) order; a row that
        fails keeps its error in the column's hidden error columns.

        >>> @lh.udf
        ... def half(year: int) -> int:
        ...     if year > 2000:
        ...         raise ValueError(f"{year} is too recent")
        ...     return year // 2
        >>> _ = t.add_computed_column(h=half(t.year), on_error="ignore", progress=False)
        >>> plan = Plan.for_columns("films", t.table_definition,
        ...                         [t.table_definition.get("h", "films")])
        >>> frame, failed = plan.run(t.select(t.year).collect())
        >>> frame.rows(), failed
        ([(1979, 989, None, None), (1995, 997, None, None), (2009, None, 'ValueError', \
'2009 is too recent')], {2})
        """
        return Plan(table_name, tdef, [PlannedColumn(c, tdef.expr(c)) for c in columns])

    @staticmethod
    def for_exprs(table_name: str, tdef: TableDef, exprs: dict[str, Expr]) -> Plan:
        """A plan for query-time expressions; a failing UDF aborts the query."""
        targets = [PlannedColumn(ColumnDef(name, -1, e.type), e) for name, e in exprs.items()]
        return Plan(table_name, tdef, targets)

    @functools.cached_property
    def output_names(self) -> list[str]:
        return [f.name for f in self.output_fields()]

    def _resolve_functions(self) -> dict[str, Function]:
        found: dict[str, Function] = {}
        for target in self.targets:
            stored = stored_fingerprints(target.column.expr_json or {})
            for node in target.expr.walk():
                if isinstance(node, Call) and node.fn not in found:
                    try:
                        fn = resolve(node.fn, stored.get(node.fn))
                    except (UDFNotFoundError, UnsafeDefinitionError) as exc:
                        msg = (f"table {self.table_name!r}: computed column {target.column.name!r} "
                               f"cannot be computed: {exc}")
                        raise type(exc)(msg) from exc
                    if node.fn in stored and fn.fingerprint and stored[node.fn] != fn.fingerprint:
                        warnings.warn(
                            f"UDF {node.fn!r} changed since computed column "
                            f"{target.column.name!r} of table {self.table_name!r} was defined; new "
                            "rows use the new code", UDFChangedWarning, stacklevel=4)
                    found[node.fn] = fn
        return found

    @property
    def reads_tables(self) -> bool:
        """Whether a function of the plan runs lakehouse queries (an ``@lh.query``): such a
        plan cannot run inside a Lance column UDF, which may not start Lance reads itself."""
        return any(fn.reads_tables for fn in self.functions.values())

    @property
    def runs_models(self) -> bool:
        """Whether the plan embeds values with a model (slow per row: batch rows smaller)."""
        return any(name.startswith(MODEL_FUNCTIONS) for name in self.functions)

    @functools.cached_property
    def read_columns(self) -> list[str]:
        """Stored columns the plan reads (computed columns it produces are excluded)."""
        produced = {t.column.name for t in self.targets}
        return [n for n in self.tdef.stored_columns(t.expr for t in self.targets)
                if n not in produced]

    def output_fields(self) -> list[pa.Field]:
        return list(self._output_fields)

    @functools.cached_property
    def _output_fields(self) -> tuple[pa.Field, ...]:
        return tuple(f for t in self.targets for f in t.column.fields())

    def is_current(self) -> bool:
        """Whether every function the plan resolved is still the one registered under its
        name (a UDF defined again in a notebook replaces it: a plan kept for later is then
        made again, so new rows use the new code, as they would in a new plan)."""
        return all(lookup(name) is fn for name, fn in self.functions.items())

    def run(self, df: pl.DataFrame, *, row_offset: int = 0,
            materialized: dict[int, str] | None = None,
            arrow: dict[str, pa.Array] | None = None) -> tuple[pl.DataFrame, set[int]]:
        """Add the target columns (and their error columns) to ``df``.

        ``materialized`` maps nodes computed beforehand (the scores of similarity searches) to
        their columns in ``df``. ``arrow``, when given, receives the Arrow array of each target
        whose value is one Python call's result, as the call made it in the column's own Arrow
        type: a writer stores it as it is (the frame's copy would come back from Polars as
        another Arrow type, to be cast again). Returns the extended frame and the rows
        (positions in ``df``) with at least one error.

        >>> @lh.udf
        ... def shout(title: str) -> str:
        ...     return title.upper()
        >>> plan = Plan.for_exprs("films", t.table_definition, {"loud": shout(t.title)})
        >>> made = {}
        >>> frame, _ = plan.run(t.select(t.title).collect(), arrow=made)
        >>> made["loud"].to_pylist() == frame["loud"].to_list()
        True
        """
        failed: set[int] = set()  # rows with an error in a column that keeps errors
        for step in self._compiled(materialized):
            target = step.target
            errors = RowErrors.empty(df.height)
            made: dict[str, pa.Array] = {}
            df = self._run_python_calls(step, df, errors, row_offset, made)
            name = target.column.name
            try:
                if step.value is None:  # the target is one Python call: its result, as it is
                    values, flags = df, {}
                    series = df.get_column(step.called).alias(name)  # type: ignore[arg-type]
                else:
                    flags = step.flags
                    # with_columns (not select) so that a literal broadcasts to every row
                    values = _evaluate(df, [step.value.alias(name),
                                            *(c.failed.alias(n) for n, c in flags.items())])
                    series = values.get_column(name)
                series = series.cast(target.column.type.polars_type())
            except Exception as exc:
                raise ComputeError(_failed_message(self.table_name, target, exc)) from exc
            failing = _record_overflows(values, flags, errors)
            self._abort_on_error(target, errors, row_offset)
            df = _put(df, _null_where(series, failing, flags))
            result = made.get(step.called) if arrow is not None and step.called else None
            if result is not None and result.type == target.column.type.arrow_type():
                arrow[name] = result
            if target.column.keeps_errors:
                df = _put(
                    df,
                    pl.Series(error_column(target.column.col_id, "errortype"), errors.types,
                              dtype=pl.String),
                    pl.Series(error_column(target.column.col_id, "errormsg"), errors.messages,
                              dtype=pl.String),
                )
                if errors.first is not None:  # else no row failed: skip scanning the batch
                    failed.update(i for i, t in enumerate(errors.types) if t is not None)
        for temporary in [c for c in df.columns if c.startswith("__call")]:
            df.drop_in_place(temporary)  # a frame _put made for this run: nobody else holds it
        return df, failed

    def _compiled(self, materialized: dict[int, str] | None) -> tuple[_Step, ...]:
        """The targets compiled for ``materialized`` (once: each batch reuses them)."""
        key = tuple(sorted((materialized or {}).items()))
        steps = self._steps.get(key)
        if steps is None:
            steps = self._steps[key] = self._compile(dict(materialized or {}))
        return steps

    def _compile(self, materialized: dict[int, str]) -> tuple[_Step, ...]:
        """Compile each target: its Python calls (children first, each result in a temporary
        column the expressions above it read) and the Polars expression of its value."""
        ctx = Context(names=self.tdef.names(), info_names=self.tdef.info_names(),
                      materialized=materialized)
        steps = []
        for target in self.targets:
            checked = dataclasses.replace(ctx, checks=[])
            calls = []
            for call in needs_python(target.expr):
                fn = self.functions[call.fn]
                if call.kwargs:  # options of built-ins, such as the size of resize()
                    fn = dataclasses.replace(fn, python=functools.partial(fn.python,
                                                                          **dict(call.kwargs)))
                compiled = [_with_checks(a, checked) for a in call.args]
                name = f"__call{len(checked.materialized)}"
                calls.append(_PythonCall(call, fn, tuple(v for v, _ in compiled),
                                         {k: c for _, f in compiled for k, c in f.items()},
                                         tuple(tuple(f) for _, f in compiled), name))
                checked.materialized[id(call)] = name
            called = checked.materialized.get(id(target.expr))
            value, flags = None, {}
            if called is None:
                try:
                    value, flags = _with_checks(target.expr, checked)
                except Exception as exc:
                    raise ComputeError(_failed_message(self.table_name, target, exc)) from exc
            steps.append(_Step(target, tuple(calls), value, flags, called))
        return tuple(steps)

    def _run_python_calls(self, step: _Step, df: pl.DataFrame, errors: RowErrors,
                          row_offset: int, made: dict[str, pa.Array]) -> pl.DataFrame:
        """``df`` with the result of each Python call of ``step`` in its temporary column;
        ``made`` receives each result as Arrow, by that column's name."""
        for call in step.calls:
            if call.columns_as_they_are:
                series = [df.get_column(v.meta.output_name()) for v in call.args]
            else:
                frame = _evaluate(df, [*(v.alias(f"__arg{i}") for i, v in enumerate(call.args)),
                                       *(c.failed.alias(n) for n, c in call.flags.items())],
                                  select=True)
                failing = _record_overflows(frame, call.flags, errors)
                self._abort_on_error(step.target, errors, row_offset)
                series = [_null_where(_full_height(frame.get_column(f"__arg{i}"), df.height),
                                      failing, names)
                          for i, names in enumerate(call.arg_flags)]
            args = [s.to_list() for s in series]
            nulls = [s.null_count() > 0 for s in series]
            results = _apply(call.fn, args, df.height, errors, nulls)
            arrow = _to_arrow(results, call.call, errors)
            self._abort_on_error(step.target, errors, row_offset, f"{call.call.fn} raised ")
            made[call.column] = arrow
            df = _put(df, pl.Series(call.column, pl.from_arrow(arrow)))
        return df

    def _abort_on_error(self, target: PlannedColumn, errors: RowErrors, row_offset: int,
                        source: str = "") -> None:
        """With ``on_error="abort"``, raise ComputeError for the first failing row, naming the
        table, the column (or query expression), the row and the error."""
        first = errors.first
        if first is None or target.column.on_error != "abort":
            return
        msg = (f"table {self.table_name!r}: {target.describe()} failed on row "
               f"{row_offset + first}{'' if target.stored else ' of the result'}: "
               f"{source}{errors.types[first]}: {errors.messages[first]}")
        if target.stored:
            msg += (" (nothing was written; use on_error='ignore' to keep failing rows "
                    "with their errors)")
        raise ComputeError(msg)


#: How many definitions' plans :func:`table_plan` keeps (the most recently used)
PLANS_KEPT = 64
#: The plans :func:`table_plan` made, by the id of their definition, with the definition itself
#: (held, so its id names no other object while the entry lives) and the table's name
_table_plans: collections.OrderedDict[int, tuple[TableDef, str, Plan]] = \
    collections.OrderedDict()
_plans_lock = threading.Lock()


def table_plan(table_name: str, tdef: TableDef) -> Plan | None:
    """The plan of every computed column of ``tdef``, in dependency order (None when there is
    none), made once per definition read and kept for the :data:`PLANS_KEPT` definitions used
    last: a small insert then resolves, checks and compiles nothing again. A definition read
    again after a change is another object, with a plan of its own; a UDF registered again is
    picked up (:meth:`Plan.is_current`).

    >>> _ = t.add_computed_column(next_year=t.year + 1, progress=False)
    >>> plan = table_plan("films", t.table_definition)
    >>> plan.output_names, plan is table_plan("films", t.table_definition)
    (['next_year'], True)
    """
    key = id(tdef)
    with _plans_lock:
        held = _table_plans.get(key)
        if held is not None and held[0] is tdef and held[1] == table_name:
            _table_plans.move_to_end(key)
            if held[2].is_current():
                return held[2]
    computed = tdef.computed_columns()
    if not computed:
        return None
    plan = Plan.for_columns(table_name, tdef, computed)
    with _plans_lock:
        _table_plans[key] = (tdef, table_name, plan)
        _table_plans.move_to_end(key)
        while len(_table_plans) > PLANS_KEPT:
            _table_plans.popitem(last=False)
    return plan


def _evaluate(df: pl.DataFrame, exprs: list[pl.Expr], *, select: bool = False) -> pl.DataFrame:
    """``df`` with the columns of ``exprs`` (only those with ``select``). A batch of up to
    :data:`EAGER_ROWS` rows runs eagerly, one expression after the other on this thread: the
    query optimiser's fixed cost is most of the time there (0.15 ms of 0.2 for 1,000 rows of a
    checked Int sum), and handing such small work to Polars' threads costs more than it saves
    (on a loaded machine, a wait for each). A larger one runs as a lazy query, which computes
    each subexpression the overflow checks share with the value once and splits the rows over
    threads (eagerly, 262,144 rows took 4x as long)."""
    if df.height <= EAGER_ROWS:
        return df.select_seq(exprs) if select else df.with_columns_seq(exprs)
    frame = df.lazy()
    return (frame.select(exprs) if select else frame.with_columns(exprs)).collect()


def _failed_message(table_name: str, target: PlannedColumn, exc: Exception) -> str:
    return f"table {table_name!r}: {target.describe()} failed: {type(exc).__name__}: {exc}"


def _put(df: pl.DataFrame, *series: pl.Series) -> pl.DataFrame:
    """``df`` with ``series`` added (or replaced, where it has a column of that name), as a
    new frame; adding runs no Polars query (a tenth of the time on a small batch)."""
    if any(s.name in df.columns for s in series):
        return df.with_columns(*series)
    return df.hstack(list(series))


def _with_checks(expr: Expr, ctx: Context) -> tuple[pl.Expr, dict[str, Check]]:
    """``expr`` compiled with overflow checks: its value, and the per-row flag of each check,
    by the name of its temporary column. Where a check fails the value is not yet null (an
    operation above the overflow, such as ``is_null``, may have made one): the executor nulls
    those rows once it has the flags (:func:`_null_where`), which costs nothing where no check
    failed, instead of a condition over every check in the expression of every batch."""
    assert ctx.checks is not None
    start = len(ctx.checks)
    value = to_polars(expr, ctx)
    return value, {f"__check{start + i}": c for i, c in enumerate(ctx.checks[start:])}


def _record_overflows(frame: pl.DataFrame, flags: dict[str, Check],
                      errors: RowErrors) -> dict[str, list[int]]:
    """Record a ComputeError for each row where a check failed (the innermost one first);
    return the rows where each check that failed somewhere failed."""
    failing: dict[str, list[int]] = {}
    for name, check in flags.items():
        rows = frame.get_column(name)
        if rows.any():
            failing[name] = _full_height(rows, len(errors.types)).arg_true().to_list()
            for row in failing[name]:
                errors.record(row, ComputeError(check.message()))
    return failing


def _null_where(series: pl.Series, failing: dict[str, list[int]],
                names: Iterable[str]) -> pl.Series:
    """``series`` with null on the rows where one of the checks ``names`` failed (see
    :func:`_record_overflows`): a value that an Int overflow went into is no value."""
    rows = sorted({row for name in names for row in failing.get(name, ())})
    if not rows:
        return series
    failed = pl.Series([False] * len(series)).scatter(rows, True)  # scatter(None): not every type
    return pl.select(pl.when(failed).then(None).otherwise(series)).to_series().alias(series.name)


def _full_height(series: pl.Series, height: int) -> pl.Series:
    """A literal argument compiles to one value: repeat it for every row of the batch."""
    if len(series) == 1 and height != 1:
        return series.new_from_index(0, height)
    return series


def _apply(fn: Function, args: list[list[Any]], n: int, errors: RowErrors,
           nulls: list[bool] | None = None) -> list[Any]:
    """Run ``fn`` over ``n`` rows; failing rows give None and are recorded in ``errors``.

    A row with a null for a parameter that does not accept None (not annotated Optional) gets
    null without a call, for row and batched UDFs alike. Each row is passed to the function once,
    except that a failing batch is re-run one row at a time to find the failing rows.
    ``nulls`` says per argument whether it holds any null (found by scanning when not given).
    """
    null_safe = fn.null_safe or (True,) * len(args)
    if nulls is None:
        nulls = [None in a for a in args]
    checked = [a for a, ok, has in zip(args, null_safe, nulls, strict=False) if not ok and has]
    rows: Sequence[int] = range(n)
    if checked:  # only then look for the rows to skip, one by one
        rows = [i for i in rows if all(a[i] is not None for a in checked)]
    out: list[Any] = [None] * n
    if fn.batched:
        size = fn.batch_size
        for start in range(0, len(rows), size):
            idx = rows[start:start + size]
            try:
                result = list(fn.python(*[[a[i] for i in idx] for a in args]))
                if len(result) != len(idx):
                    raise ValueError(f"returned {len(result)} values for {len(idx)} rows")
            except ModelError:
                raise  # the model itself is missing or changed: no row can be computed
            except Exception:
                # isolate the failing rows by running the chunk one row at a time
                for i in idx:
                    try:
                        single = list(fn.python(*[[a[i]] for a in args]))
                        if len(single) != 1:
                            raise ValueError(f"returned {len(single)} values for 1 row")
                        out[i] = single[0]
                    except Exception as exc:
                        errors.record(i, exc)
                continue
            for i, value in zip(idx, result, strict=True):
                out[i] = value
        return out
    # map() calls the function in C, once per row; when a call raises, the rows before it are
    # already in ``results`` (list.extend keeps them) and map() goes on from the next row
    python = fn.python
    sources = args if len(rows) == n else [[a[i] for i in rows] for a in args]
    calls = map(python, *sources) if args else map(lambda _: python(), rows)
    results: list[Any] = []
    while True:
        try:
            results.extend(calls)
            break
        except Exception as exc:
            errors.record(rows[len(results)], exc)
            results.append(None)
    if len(rows) == n:
        return results
    for i, value in zip(rows, results, strict=True):
        out[i] = value
    return out


def _to_arrow(results: list[Any], call: Call, errors: RowErrors) -> pa.Array:
    arrow_type = call.type.arrow_type()
    try:
        return pa.array(results, type=arrow_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    coerced = []
    for i, value in enumerate(results):
        try:
            coerced.append(None if value is None else call.type.coerce(value))
        except TypeError as exc:
            errors.record(i, TypeError(f"{call.fn} returned a wrong type: {exc}"))
            coerced.append(None)
    return pa.array(coerced, type=arrow_type)
