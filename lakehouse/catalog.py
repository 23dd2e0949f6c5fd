"""The catalog: a lakehouse root holding directories and tables, each table one Lance dataset.

A table named ``ml/images`` lives at ``<root>/ml/images.lance``; a directory is a folder (or
prefix) holding a ``.lakehouse-dir`` marker. ``get_table("name:3")`` opens version 3 read-only,
``get_table("name@tag")`` a tagged version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import lance
import polars as pl

from lakehouse import branches, ingest, trust, views
from lakehouse import types as T
from lakehouse.engine import RayEngine, engine_from, resolve_engine
from lakehouse.errors import (
    DependencyError,
    DirectoryNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    TableExistsError,
    TableNotFoundError,
    TypeMismatchError,
    UnsupportedError,
    VersionNotFoundError,
    check_choice,
)
from lakehouse.export import sql as export_sql
from lakehouse.exprs.nodes import BinaryOp, Expr
from lakehouse.functions.remote import cache as remote_cache
from lakehouse.iterators import IteratorCall
from lakehouse.maintenance import retention
from lakehouse.maintenance.policy import MaintenancePolicy
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import ON_ERROR, ColumnDef, TableDef
from lakehouse.names import TABLE_SUFFIX, check_column_name, validate_name
from lakehouse.queries import Query
from lakehouse.storage import Location, storage_error
from lakehouse.table import Table

DIR_MARKER = ".lakehouse-dir"


def connect(root: str | None = None, storage_options: dict[str, Any] | None = None, *,
            trusted_modules: Iterable[str] = (), trusted_models: Iterable[str] = (),
            fetch: FetchPolicy | None = None,
            maintenance: MaintenancePolicy | bool | None = None,
            engine: str | RayEngine | None = None) -> Catalog:
    """Open a lakehouse: a local folder (default ``$LAKEHOUSE_ROOT``, else ``./lakehouse_data``)
    or ``s3://bucket/prefix``. S3 settings come from ``storage_options`` (Lance's names, such as
    ``aws_endpoint``) or the usual AWS variables, including ``AWS_ENDPOINT_URL``.

    A table's stored definition cannot make this process import a module or load a model the
    user did not allow (see :mod:`lakehouse.trust`). ``trusted_modules`` (packages or modules,
    submodules included) may be imported when a write needs one of their UDFs even when their
    code no longer matches the definition; ``trusted_models`` names hub models (such as
    ``"all-MiniLM-L6-v2"``) that stored embedding indexes may load. Both hold for the whole
    process, like ``LAKEHOUSE_TRUSTED_MODULES`` and ``LAKEHOUSE_TRUSTED_MODELS``.

    ``fetch`` (a :class:`~lakehouse.FetchPolicy`) limits how media sources named by inserts and
    imports are read: size, timeouts, private network addresses, paths out of their folder.
    The defaults refuse private and loopback addresses;
    ``fetch=lh.FetchPolicy(allow_private_network=True)`` reads from your own network.

    ``maintenance`` (a :class:`~lakehouse.MaintenancePolicy`) says when writes compact small
    fragments and which old versions are kept; ``maintenance=False`` turns that automatic work
    off (``t.optimize()`` and ``t.gc()`` still do it on demand).

    ``engine="ray"`` (or a :class:`~lakehouse.RayEngine`) runs backfills (``add_computed_column``,
    ``recompute``, embedding index builds, in model actors), view expansions (``create_view``
    and view upkeep), bulk imports (``import_parquet``, ``import_csv``, ``insert_files``, see
    :mod:`lakehouse.exec.ray_ingest`) and compaction (``optimize()``) as Ray tasks on the
    cluster this process is connected to, with the same results, checkpoints and single
    commit (needs the ``lakehouse[ray]`` extra; see :mod:`lakehouse.engine`). Each of these
    calls also takes ``engine=`` for itself, over the connection's.

    >>> import lakehouse as lh
    >>> db = lh.connect("my-lakehouse")
    >>> db.root.endswith("my-lakehouse"), db.list_tables()
    (True, [])
    """
    catalog = Catalog(Location.parse(root, storage_options, fetch, maintenance,
                                     engine_from(engine)))
    catalog._check_reachable()
    trust.trust(modules=trusted_modules, models=trusted_models)
    remote_cache.use_lakehouse(catalog.location)  # remote model results are kept here
    return catalog


class Catalog:
    """A lakehouse root. Create it with :func:`connect`.

    >>> db = lh.connect("my-lakehouse")
    >>> _ = db.create_table("notes", {"text": lh.String})
    >>> db.list_tables()
    ['notes']
    """

    def __init__(self, location: Location) -> None:
        self._location = location
        self._fs = location.filesystem()

    @property
    def root(self) -> str:
        """The lakehouse root: a local folder or ``s3://bucket/prefix``.

        >>> lh.connect("s3://my-bucket/lake").root  # needs the bucket  # doctest: +SKIP
        's3://my-bucket/lake'
        >>> lh.connect("my-lakehouse").root.endswith("my-lakehouse")
        True
        """
        return self._location.uri

    @property
    def location(self) -> Location:
        """Where the lakehouse lives and how to reach it: the root URI, the storage options
        (secret values hidden in its repr) and the fetch policy for media sources.

        >>> db.location.fetch.allow_private_network
        False
        """
        return self._location

    def __repr__(self) -> str:
        return f"lakehouse.connect({self.root!r})"

    # --- paths ----------------------------------------------------------------------------------
    def _table_uri(self, name: str) -> str:
        return self._location.join(name + TABLE_SUFFIX)

    def _path(self, uri: str) -> str:
        return self._location.fs_path(uri)

    def _exists(self, uri: str) -> bool:
        try:
            return bool(self._fs.exists(self._path(uri)))
        except Exception as exc:
            raise storage_error(self._location, "read", exc) from exc

    def has_table(self, name: str) -> bool:
        """Whether a table ``name`` exists (at the root or in a directory, ``"ml/images"``).

        >>> db.has_table("no_such_table")
        False
        """
        base, branch = branches.split(name)  # "films#dev": whether that branch exists
        uri = self._table_uri(validate_name(base))
        if branch is not None:
            uri = branches.branch_uri(uri, branch)
        return self._exists(uri + "/_versions")

    def _is_dir(self, path: str) -> bool:
        return self._exists(self._location.join(path, DIR_MARKER))

    def _check_reachable(self) -> None:
        if self._location.is_local:
            return
        bucket = self._path(self.root).split("/")[0]
        try:
            self._fs.ls(bucket)
        except Exception as exc:
            raise storage_error(self._location, "reach the lakehouse root", exc) from exc

    def _check_parent(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent and not self._is_dir(parent):
            raise DirectoryNotFoundError(
                f"directory {parent!r} does not exist; create it with db.create_dir({parent!r}, "
                "parents=True)"
            )

    def _create_parents(self, name: str) -> None:
        """Create the directories table ``name`` sits in, as ``create_dir(parents=True)``."""
        parent = name.rpartition("/")[0]
        if parent:
            self.create_dir(parent, parents=True, if_exists="ignore")

    # --- directories ----------------------------------------------------------------------------
    def create_dir(self, path: str, *, parents: bool = False, if_exists: str = "error") -> None:
        """Create a directory for tables, e.g. ``db.create_dir("ml")``.

        >>> db.create_dir("ml/images", parents=True)
        >>> _ = db.create_table("ml/images/cats", {"image": lh.Image})
        >>> db.list_tables("ml")
        ['ml/images/cats']
        """
        validate_name(path, "directory")
        if self._is_dir(path):
            if if_exists == "ignore":
                return
            raise TableExistsError(f"directory {path!r} already exists")
        if self.has_table(path):
            raise TableExistsError(f"{path!r} is a table, not a directory")
        parent = path.rpartition("/")[0]
        if parent and not self._is_dir(parent):
            if not parents:
                raise DirectoryNotFoundError(
                    f"directory {parent!r} does not exist; pass parents=True to create it"
                )
            self.create_dir(parent, parents=True, if_exists="ignore")
        marker = self._path(self._location.join(path, DIR_MARKER))
        try:
            if self._location.is_local:
                self._fs.makedirs(marker.rpartition("/")[0], exist_ok=True)
            self._fs.pipe_file(marker, b"")
        except Exception as exc:
            raise storage_error(self._location, f"create directory {path!r}", exc) from exc

    def list_dirs(self, path: str | None = None) -> list[str]:
        """Directories directly under ``path`` (the root by default), sorted.

        >>> db.create_dir("raw")
        >>> db.create_dir("ml/images", parents=True)
        >>> db.list_dirs(), db.list_dirs("ml")
        (['ml', 'raw'], ['ml/images'])
        """
        return sorted(p for p, is_table in self._children(path) if not is_table)

    def drop_dir(self, path: str, *, force: bool = False) -> None:
        """Remove an empty directory; ``force=True`` also drops everything in it.

        >>> db.create_dir("scratch")
        >>> _ = db.create_table("scratch/tmp", {"n": lh.Int})
        >>> db.drop_dir("scratch", force=True)
        >>> db.list_dirs(), db.has_table("scratch/tmp")
        ([], False)
        """
        validate_name(path, "directory")
        if not self._is_dir(path):
            raise DirectoryNotFoundError(f"directory {path!r} does not exist")
        if self._children(path) and not force:
            raise TableExistsError(f"directory {path!r} is not empty; pass force=True")
        self._fs.rm(self._path(self._location.join(path)), recursive=True)

    # --- tables ---------------------------------------------------------------------------------
    def create_table(self, name: str, schema: dict[str, Any] | None = None, *,
                     if_exists: str = "error", parents: bool = False, source: Any = None,
                     **options: Any) -> Table:
        """Create an empty table with the given columns: ``{"label": lh.String, "n": lh.Int}``.

        ``if_exists``: ``"error"`` (default), ``"ignore"`` (return the existing table) or
        ``"replace"`` (overwrite it; earlier versions stay in its history).

        A table in a directory (``"ml/images"``) needs the directory; ``parents=True`` creates
        the missing ones first, as :meth:`create_dir` with ``parents=True`` does (same rules and
        errors: a table cannot stand in for a directory). They are created after the name and,
        for an empty table, the schema are checked; they stay if a ``source`` import fails.

        With ``source``, the table is created from data and filled in one go: Parquet or CSV
        files (a path, folder, glob or ``s3://`` URI, or a list of them), a Polars or pandas
        DataFrame or an Arrow table. Column types are inferred; ``schema`` then sets the type of
        named columns only. Other options (``progress``, ``on_error``, ``rename``, CSV options)
        are those of :meth:`import_parquet` and :meth:`import_csv`; a failed import leaves no
        table behind. :func:`lakehouse.ingest.create_from_source` does the same and also says
        what was written (an :class:`~lakehouse.ImportResult`).

        >>> pets = db.create_table("pets", {"name": lh.String, "age": lh.Int})
        >>> pets.column_names()
        ['name', 'age']
        >>> scores = db.create_table("scores", source=pl.DataFrame({"player": ["ann"], "n": [3]}))
        >>> scores.collect().rows()
        [('ann', 3)]
        >>> deep = db.create_table("ml/images/cats", {"image": lh.Image}, parents=True)
        >>> db.list_dirs("ml"), db.list_tables("ml")
        (['ml/images'], ['ml/images/cats'])
        """
        if source is not None:
            if parents:
                self._create_parents(validate_name(name))
            return ingest.create_from_source(self, name, source, schema=schema,
                                             if_exists=if_exists, **options).table
        if options:
            raise InvalidOptionError(f"create_table() got unexpected options "
                                     f"{', '.join(map(repr, options))} (they go with source=)")
        validate_name(name)
        check_choice("if_exists", if_exists, ("error", "ignore", "replace"))
        if not isinstance(schema, dict) or not schema:
            msg = (f"table {name!r}: schema must be a non-empty dict of column name -> type (or "
                   "pass source= to create the table from data)")
            raise TypeMismatchError(msg) if not isinstance(schema, dict) \
                else InvalidOptionError(msg)
        columns = []
        for i, (col, spec) in enumerate(schema.items()):
            check_column_name(col, name)
            columns.append(ColumnDef(col, i, T.parse_type(spec, column=col)))
        if parents:
            self._create_parents(name)
        self._check_parent(name)
        if self._is_dir(name):
            raise TableExistsError(f"{name!r} is a directory")
        mode = "create"
        if self.has_table(name):
            if if_exists == "ignore":
                return self.get_table(name)
            if if_exists == "error":
                raise TableExistsError(
                    f"table {name!r} already exists; pass if_exists='ignore' or 'replace'"
                )
            mode = "overwrite"
        arrow_schema = TableDef(tuple(columns)).schema()
        uri = self._table_uri(name)
        try:
            ds = lance.write_dataset(
                arrow_schema.empty_table(), uri, schema=arrow_schema, mode=mode,
                enable_stable_row_ids=True,
                storage_options=self._location.storage_options or None,
            )
        except OSError as exc:
            raise storage_error(self._location, f"create table {name!r}", exc) from exc
        return Table(name, uri, self._location, ds)

    def import_parquet(self, name: str, sources: Any, **options: Any) -> Table:
        """Create table ``name`` from Parquet shards (a file, folder, glob or ``s3://`` prefix,
        or a list of them; the Hugging Face image layout becomes an ``lh.Image`` column) and
        fill it in one insert, streaming batch by batch (``if_exists="append"`` inserts into an
        existing table instead). If the import fails the new table is dropped again. Options:
        ``schema``, ``rename``, ``if_exists``, ``batch_rows``,
        ``progress``, ``on_error``, ``engine`` (``"ray"``: read and written by Ray tasks,
        committed here once); see :func:`lakehouse.ingest.import_parquet`, which takes the
        same arguments (after the catalog) and returns what was written, an
        :class:`~lakehouse.ImportResult`, rather than the table.

        >>> pl.DataFrame({"city": ["Oslo", "Lima"], "pop": [0.7, 10.1]}).write_parquet("c.parquet")
        >>> cities = db.import_parquet("cities", "c.parquet", progress=False)
        >>> cities.collect().rows()
        [('Oslo', 0.7), ('Lima', 10.1)]
        """
        return ingest.import_parquet(self, name, sources, **options).table

    def import_csv(self, name: str, path: Any, **options: Any) -> Table:
        """Create table ``name`` from a CSV file (local or ``s3://``) and fill it in one insert.
        Types are inferred from the first rows; ``schema={"file": lh.Image}`` reads a column
        of media paths (relative to the CSV's folder) into a media column. Options and
        ``pyarrow.csv`` keywords: see :func:`lakehouse.ingest.import_csv` (which returns an
        :class:`~lakehouse.ImportResult`: what was written, and the table).

        >>> _ = open("pets.csv", "w").write(f"file,name\\n{photo},astronaut\\n")
        >>> pets = db.import_csv("pets", "pets.csv", schema={"file": lh.Image}, progress=False)
        >>> pets.select(pets.name, pets.file.width).collect().rows()
        [('astronaut', 512)]
        """
        return ingest.import_csv(self, name, path, **options).table

    def get_table(self, name: str) -> Table:
        """Open a table; ``"name:3"`` opens version 3 and ``"name@prod"`` a tag, read-only;
        ``"name#dev"`` opens branch ``dev`` (writable) and ``"name#dev:3"`` its version 3.

        >>> db.get_table("films").count()
        3
        >>> db.get_table("films:1").count()  # version 1: created, still empty
        0
        """
        version: int | str | None = None
        base = name
        if isinstance(name, str) and ":" in name:
            base, _, text = name.rpartition(":")
            if not text.isdigit():
                raise InvalidNameError(f"{name!r}: the version after ':' must be a number")
            version = int(text)
        elif isinstance(name, str) and "@" in name:
            base, _, version = name.rpartition("@")
        base, branch = branches.split(base, tagged=isinstance(version, str))
        validate_name(base)
        uri = self._table_uri(base)
        if branch is not None:  # "name#branch" or "name#branch:3": lakehouse.branches
            if not self.has_table(base):
                raise TableNotFoundError(f"table {base!r} does not exist in {self.root}")
            ds = branches.open_branch(self._location, base, uri, branch, version)
            return Table(f"{base}#{branch}", branches.branch_uri(uri, branch), self._location,
                         ds, pinned=version is not None, branch=branch)
        opts = self._location.storage_options or None
        try:  # opened at once: whether the table exists is asked only when this fails
            ds = lance.dataset(uri, version=version, storage_options=opts)
        except (ValueError, OSError, KeyError) as exc:
            if not self.has_table(base):
                raise TableNotFoundError(f"table {base!r} does not exist in {self.root}") from None
            if isinstance(version, int):
                raise retention.missing_version(base, version,
                                                retention.VersionTimes.list(self._location, uri),
                                                self._location.maintenance) from exc
            if version is not None:
                raise VersionNotFoundError(f"table {base!r} has no version {version!r}") from exc
            raise storage_error(self._location, f"open table {base!r}", exc) from exc
        table = Table(base, uri, self._location, ds, pinned=version is not None)
        state = table.table_state()  # reads the definition: refuse unreadable ones now
        if state.definition.view is not None and version is None:
            views.catch_up(self._location, base)  # a write of the base may not have finished
        return table

    def sql(self, statement: str, *, media: str = "exclude") -> pl.DataFrame:
        """Run one SQL query (``SELECT``, ``WITH``, ``UNION``...) over the lakehouse's tables
        and return a Polars DataFrame; Polars' SQL engine reads lazy scans of the tables the
        statement names, each at its latest version (``"films:3"`` for version 3). A name with
        a ``/`` goes in double quotes: ``FROM "ml/images"``. Media columns are left out, or
        kept as bytes with ``media="bytes"``. Anything but a read of the lakehouse's tables
        (``read_parquet(...)``, ``COPY``, a second statement) is refused with
        :class:`~lakehouse.SQLRefusedError`. See :mod:`lakehouse.export.sql`.

        >>> db.sql("SELECT rating, count(*) AS n, min(year) AS first FROM films "
        ...        "GROUP BY rating ORDER BY rating").rows()
        [(8.3, 2, 1995), (8.5, 1, 1979)]
        """
        return export_sql.run(self, statement, media=media)

    # --- views ----------------------------------------------------------------------------------
    def create_view(self, name: str, base: Table | Query, *, where: Expr | None = None,
                    iterator: IteratorCall | None = None, columns: list[str] | None = None,
                    on_error: str = "abort", if_exists: str = "error",
                    progress: bool = True, engine: str | RayEngine | None = None) -> Table:
        """Create a view: a table whose rows follow ``base`` (a table, a view, or a query
        ``t.where(...)``, possibly of a version, ``t.at(3)``, or a snapshot), kept current by
        every write of the base, incrementally (only the base rows that changed are read).

        Each view row comes from one base row matching ``where`` (and the query's filter): one
        row each, or with an ``iterator`` (:mod:`lakehouse.iterators`) one row per item it
        makes, numbered by ``pos``. The view carries the base ``columns`` named (by default all
        of them; with an iterator, all but media columns and the iterator's input). A view is
        read like a table, takes computed columns and embedding indexes of its own, and refuses
        inserts, updates and deletes. ``on_error="ignore"`` skips base values the iterator
        cannot read (counted in the write's ``rows_with_errors``) instead of failing. A view of
        a version or snapshot is frozen there. ``engine`` (``"local"``, ``"ray"`` or a
        :class:`~lakehouse.RayEngine`) fills the view there instead of on the connection's
        engine (its later upkeep runs where the base's writes run).

        >>> v = db.create_view("recent", t.where(t.year > 1990))
        >>> v.select(v.title).collect()["title"].to_list()
        ['Heat', 'Up']
        >>> _ = t.insert([{"title": "Dune", "year": 2021}], progress=False)
        >>> v.count()  # the insert brought the view up to date
        3
        """
        validate_name(name)
        check_choice("if_exists", if_exists, ("error", "ignore", "replace"))
        check_choice("on_error", on_error, ON_ERROR)
        location = dataclasses.replace(self._location,
                                       engine=resolve_engine(engine, self._location.engine))
        table, condition = _view_base(base, name)
        branches.check_no_branch(table.table_branch, table.table_name, "a view")
        if table.table_uri != self._table_uri(table.table_name):
            raise InvalidOptionError(f"view {name!r}: its base {table.table_name!r} must be a "
                                     f"table of this lakehouse ({self.root})")
        if name == table.table_name:
            raise InvalidOptionError(f"view {name!r} cannot be its own base")
        if where is not None:
            condition = where if condition is None else BinaryOp("&", condition, where)
        state = table.table_state()
        tdef = views.define(name, table.table_name, state.definition,
                            pinned=state.version if Table.is_read_only.fget(table) else None,
                            where=condition, iterator=iterator, columns=columns,
                            on_error=on_error)
        self._check_parent(name)
        schema = tdef.schema()
        if self.has_table(name):
            if views.unfinished(self._location, name, schema):  # the same call again
                return self._fill_view(location, name, table.table_name, progress)
            if if_exists == "ignore":
                return self.get_table(name)
            if if_exists == "error":
                raise TableExistsError(
                    f"{name!r} already exists; pass if_exists='ignore' or 'replace'")
            self.drop_table(name)
        try:
            lance.write_dataset(schema.empty_table(), self._table_uri(name), schema=schema,
                                enable_stable_row_ids=True,
                                storage_options=self._location.storage_options or None)
        except OSError as exc:
            raise storage_error(self._location, f"create view {name!r}", exc) from exc
        return self._fill_view(location, name, table.table_name, progress)

    def _fill_view(self, location: Location, name: str, base: str, progress: bool) -> Table:
        """Fill a new view from its base (on ``location``'s engine), then list it on the base.
        If this fails, the view is dropped; if the process dies, the same create_view resumes
        from the checkpoint."""
        try:  # filled first, registered on the base after: a failure leaves the base as it was
            views.catch_up(location, name, progress=progress)
            views.register(self._location, base, name)
        except Exception:
            self.drop_table(name, if_not_exists="ignore")
            raise
        return self.get_table(name)

    def list_views(self) -> dict[str, str]:
        """View name -> base name, for every view of the lakehouse (sorted by name).

        >>> _ = db.create_view("recent", t.where(t.year > 1990))
        >>> db.list_views()
        {'recent': 'films'}
        """
        found = {}
        for name in self.list_tables():
            vdef = self._definition(name).view
            if vdef is not None:
                found[name] = vdef.base
        return found

    def _definition(self, name: str) -> TableDef:
        uri = self._table_uri(name)
        try:
            ds = lance.dataset(uri, storage_options=self._location.storage_options or None)
        except (ValueError, OSError) as exc:
            raise storage_error(self._location, f"open table {name!r}", exc) from exc
        return TableDef.from_schema(ds.schema, name)

    def list_tables(self, dir: str | None = None, *, recursive: bool = True) -> list[str]:
        """Table names under ``dir`` (the root by default), sorted; ``recursive=False`` leaves
        out the tables of subdirectories.

        >>> db.create_dir("ml")
        >>> _ = db.create_table("ml/labels", {"label": lh.String})
        >>> db.list_tables(), db.list_tables(recursive=False)
        (['films', 'ml/labels'], ['films'])
        """
        if dir is not None:
            validate_name(dir, "directory")
            if not self._is_dir(dir):
                raise DirectoryNotFoundError(f"directory {dir!r} does not exist")
        found: list[str] = []
        pending = [dir]
        while pending:
            current = pending.pop()
            for path, is_table in self._children(current):
                if is_table:
                    found.append(path)
                elif recursive:
                    pending.append(path)
        return sorted(found)

    def _children(self, path: str | None) -> list[tuple[str, bool]]:
        """(name, is_table) for the tables and directories directly under ``path``."""
        uri = self._location.join(path) if path else self.root
        try:
            if not self._fs.exists(self._path(uri)):
                return []
            entries = self._fs.ls(self._path(uri), detail=True)
        except Exception as exc:
            raise storage_error(self._location, "list tables", exc) from exc
        out = []
        for entry in entries:
            if entry.get("type") != "directory":
                continue
            leaf = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            child = f"{path}/{leaf}" if path else leaf
            if leaf.endswith(TABLE_SUFFIX):
                out.append((child[: -len(TABLE_SUFFIX)], True))
            elif self._is_dir(child):
                out.append((child, False))
        return out

    def drop_table(self, name: str, *, if_not_exists: str = "error",
                   cascade: bool = False) -> None:
        """Delete a table (or view) and all its versions. A table with views is refused unless
        ``cascade=True``, which drops its views (and theirs) first.

        >>> db.drop_table("films")
        >>> db.has_table("films")
        False
        """
        table, branch = branches.split(name)
        if branch is not None:
            raise InvalidNameError(f"{name!r} names branch {branch!r} of table {table!r}: delete "
                                   f"it with db.get_table({table!r}).delete_branch({branch!r})")
        validate_name(name)
        check_choice("if_not_exists", if_not_exists, ("error", "ignore"))
        if not self.has_table(name):
            if if_not_exists == "ignore":
                return
            raise TableNotFoundError(f"table {name!r} does not exist in {self.root}")
        ctx = views.open_context(self._location, name)
        dependents = [v for v in views.views_of(ctx.dataset) if self.has_table(v)
                      and getattr(self._definition(v).view, "base", None) == name]
        if dependents and not cascade:
            raise DependencyError(
                f"table {name!r} has views {', '.join(map(repr, dependents))}; drop them first, "
                "or pass cascade=True to drop them too")
        for view in dependents:
            self.drop_table(view, if_not_exists="ignore", cascade=True)
        try:
            self._fs.rm(self._path(self._table_uri(name)), recursive=True)
        except Exception as exc:
            raise storage_error(self._location, f"drop table {name!r}", exc) from exc
        vdef = ctx.definition.view
        if vdef is not None and self.has_table(vdef.base):
            views.register(self._location, vdef.base, name, add=False)


def _view_base(base: Any, name: str) -> tuple[Table, Expr | None]:
    """The table a view follows and the query's filter: a view is defined by a table or a
    filtered query, nothing that reorders, limits or reshapes rows."""
    if isinstance(base, Table):
        return base, None
    if isinstance(base, Query):
        if base.outputs is not None or base.ordering or base.row_limit is not None:
            raise UnsupportedError(
                f"view {name!r}: its base query can only filter rows (where); choose columns "
                "with create_view(columns=[...]) and add computed columns to the view")
        return base.table, base.condition
    raise TypeMismatchError(
        f"view {name!r}: base must be a table, a view or a query such as t.where(...), "
        f"got {base!r}")


__all__ = ["Catalog", "connect", "validate_name"]
