"""Branches: writable lines of versions of a table, kept apart from its main line until promoted.

A branch is a Lance branch of the table's dataset: ``create_branch`` makes it from a version of
the main line (sharing that version's files), and its commits land in its own folder,
``<table>.lance/tree/<branch>``, which Lance opens as a dataset of its own. So a branch handle
is an ordinary :class:`~lakehouse.Table` whose URI is the branch folder: every write path (the
write protocol opens and commits by URI) reaches the branch and never the main line, and the
definition a write computes under is the one in the branch's schema metadata.

The rules, each in one function here:

- **Names** (:func:`split`): ``films#dev`` names branch ``dev`` of ``films``;
  ``films#dev:3`` its version 3, read-only. A branch name is one name part
  (:func:`lakehouse.names.validate_branch_name`); ``main`` is the table itself. A snapshot
  names a version of any line, so ``films#dev@v1`` is refused: open ``films@v1``.
- **Branches come from the main line** (a version or a snapshot of it); a branch of a branch
  is refused, so promoting always means bringing one branch into the main line.
- **Promote is a fast-forward** (:func:`promote`): allowed only while the main line has no
  data commit since the branch was made, or since the branch was last promoted
  (:func:`start`): the commits after that version may only be ones that change no rows (the
  index builds, vector index upkeep and compaction that follow a promote or a write, metadata).
  The promote commit records the branch and the branch version it brought, which is how the
  next promote finds it: a branch can be promoted again and again, like a git fast-forward.
  The branch's own files (data and deletion files) the table lacks are copied into the
  table's folders and one ``Merge`` commit makes the branch's fragments and schema (with its
  definitions) the main line's next version. A fragment the main line already has (the
  branch's parent's, or one an earlier promote brought; told by the data files they share)
  keeps the main line's id and stable row ids, never the branch's (an earlier promote gave
  its rows new ids on the main line); fragments new to the main line get new ids at the
  commit, and new fragment ids where the main line's compaction took theirs (a Merge
  conflicts with any concurrent write, which is what makes the fast-forward exclusive). If
  the main line moved, :class:`~lakehouse.BranchDivergedError` says so and nothing changes.
  The table's scalar indexes then follow the branch's (:func:`sync_indexes`) and the vector
  index upkeep runs. The branch itself is kept (delete it when done, or keep writing and
  promote again).
- **Diff** (:func:`changes`): what a branch changed since it was made or last promoted, read
  on the branch's own line: what the next promote brings.
- **Views** are refused on a branch: a view follows its base's main line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lance
import polars as pl
import pyarrow as pa
from lance.fragment import DataFile, DeletionFile, FragmentMetadata

from lakehouse import diff
from lakehouse.diff import Diff
from lakehouse.errors import (
    BranchDivergedError,
    BranchExistsError,
    BranchNotFoundError,
    InvalidNameError,
    UnsupportedError,
    VersionNotFoundError,
)
from lakehouse.exec import protocol
from lakehouse.exec.protocol import OPERATION_KEY, Redo, WriteContext
from lakehouse.names import BRANCH_SEPARATOR, MAIN_BRANCH, validate_branch_name
from lakehouse.storage import Location, storage_error

TREE = "tree"
"""The folder of a table's dataset where Lance keeps its branches."""
_COPIED = ("data", "_deletions")  # the folders of a branch's own files a promote brings over
_SCALAR_KINDS = ("btree", "bitmap", "zonemap")  # as Lance names their details types
# what the promote commit records (protocol.fast_forward): the branch and its version brought
_BRANCH_KEY, _BRANCH_VERSION_KEY = "lakehouse.branch", "lakehouse.branch_version"
# Lance operations that change no rows: index builds and upkeep, metadata, compaction
_NO_DATA = frozenset({"CreateIndex", "UpdateConfig", "Rewrite"})
_READ_THREADS = 8  # main-line transactions read at once (each waits on storage, not the CPU)


def split(name: str, *, tagged: bool = False) -> tuple[str, str | None]:
    """``"films#dev"`` -> ``("films", "dev")``; a name without ``#`` has no branch. The branch
    name is checked (``tagged``: the name also named a snapshot, which a branch cannot take).

    >>> split("films#dev"), split("ml/images")
    (('films', 'dev'), ('ml/images', None))
    >>> split("films#main")
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidNameError: table 'films': 'main' is the table itself: open 'films'
    """
    if not isinstance(name, str) or BRANCH_SEPARATOR not in name:
        return name, None
    table, _, branch = name.partition(BRANCH_SEPARATOR)
    if branch == MAIN_BRANCH:
        raise InvalidNameError(f"table {table!r}: {MAIN_BRANCH!r} is the table itself: open "
                               f"{table!r}")
    validate_branch_name(branch, table)
    if tagged:
        raise InvalidNameError(
            f"{name!r}: a snapshot names a version of the whole table; open '{table}@<snapshot>'"
            f" instead of naming a branch too")
    return table, branch


def referenced(ref: object, table: str) -> str | None:
    """The branch a diff argument names (``"#dev"``), checked; None for a version or snapshot.

    >>> referenced("#dev", "films"), referenced("v1", "films"), referenced(3, "films")
    ('dev', None, None)
    """
    if not isinstance(ref, str) or not ref.startswith(BRANCH_SEPARATOR):
        return None
    return split(f"{table.partition(BRANCH_SEPARATOR)[0]}{ref}")[1]


def branch_uri(table_uri: str, branch: str) -> str:
    """Where Lance keeps branch ``branch`` of the table at ``table_uri``; Lance opens it as a
    dataset of its own.

    >>> branch_uri("s3://b/lake/films.lance", "dev")
    's3://b/lake/films.lance/tree/dev'
    """
    return f"{table_uri}/{TREE}/{branch}"


def main_uri(uri: str, branch: str | None) -> str:
    """The table's own URI, given the URI of a handle on ``branch`` (None: the main line).

    >>> main_uri("/lake/films.lance/tree/dev", "dev"), main_uri("/lake/films.lance", None)
    ('/lake/films.lance', '/lake/films.lance')
    """
    return uri if branch is None else uri[: -len(f"/{TREE}/{branch}")]


def open_branch(location: Location, table: str, table_uri: str, branch: str,
                version: int | None = None) -> lance.LanceDataset:
    """A handle on ``branch`` of ``table`` at its latest version (or ``version``).

    >>> open_branch(db.location, "films", t.table_uri, "nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lakehouse.errors.BranchNotFoundError: table 'films' has no branch 'nope'; its branches: ...
    """
    opts = location.storage_options or None
    try:
        ds = lance.dataset(branch_uri(table_uri, branch), storage_options=opts)
    except ValueError as exc:
        names = ", ".join(map(repr, sorted(_listed(table_uri, opts)))) or "(none)"
        raise BranchNotFoundError(
            f"table {table!r} has no branch {branch!r}; its branches: {names}; make one with "
            f"t.branch({branch!r})") from exc
    except OSError as exc:
        raise storage_error(location, f"open branch {branch!r} of table {table!r}", exc) from exc
    if version is None:
        return ds
    first = _info(ds, branch)["parent_version"]
    try:
        if version < first:
            raise ValueError(version)
        return ds.checkout_version(version)
    except (ValueError, OSError) as exc:
        raise VersionNotFoundError(
            f"branch {branch!r} of table {table!r} has no version {version} (it has versions "
            f"{first}..{ds.version}; earlier ones are the main line's: open {table}:{version})"
        ) from exc


def first_version(ds: lance.LanceDataset, branch: str | None) -> int:
    """The first version of a line: 1 for the main line, the parent version for a branch
    (``ds`` is a handle on that line).

    >>> first_version(t.table_state().dataset, None)
    1
    >>> dev = t.branch("dev")
    >>> first_version(dev.table_state().dataset, "dev")
    2
    """
    return 1 if branch is None else int(_info(ds, branch)["parent_version"])


def _listed(table_uri: str, opts: dict[str, str] | None) -> dict[str, Any]:
    return dict(lance.dataset(table_uri, storage_options=opts).branches.list())


def _info(ds: lance.LanceDataset, branch: str) -> dict[str, Any]:
    return dict(ds.branches.list()[branch])


def create(ctx: WriteContext, name: str, version: int) -> lance.LanceDataset:
    """Make branch ``name`` of the table in ``ctx`` from main-line ``version``.

    >>> from lakehouse.exec.protocol import WriteContext
    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds, t.table_definition)
    >>> create(ctx, "dev", 2).version
    2
    """
    table = ctx.table_name
    validate_branch_name(name, table)
    if name in ctx.dataset.branches.list():
        raise BranchExistsError(f"table {table!r} already has a branch {name!r}; open it with "
                                f"db.get_table('{table}#{name}'), or delete it first")
    if not 1 <= version <= ctx.dataset.latest_version:
        raise VersionNotFoundError(f"table {table!r} has no version {version} to branch from "
                                   f"(versions 1..{ctx.dataset.latest_version})")
    return protocol.create_branch(ctx, name, version)


def listing(location: Location, table_uri: str) -> pl.DataFrame:
    """One row per branch of the table, by name: ``branch``, ``parent_version`` (the main-line
    version it was made from), ``latest_version`` and ``created`` (UTC).

    >>> _ = t.branch("dev")
    >>> listing(db.location, t.table_uri).select("branch", "parent_version").rows()
    [('dev', 2)]
    """
    opts = location.storage_options or None
    rows = []
    try:
        for name, info in sorted(_listed(table_uri, opts).items()):
            latest = lance.dataset(branch_uri(table_uri, name), storage_options=opts).version
            rows.append({"branch": name, "parent_version": info["parent_version"],
                         "latest_version": latest,
                         "created": dt.datetime.fromtimestamp(info["create_at"], dt.UTC)})
    except (ValueError, OSError) as exc:
        raise storage_error(location, "list the branches", exc) from exc
    schema = {"branch": pl.String, "parent_version": pl.Int64, "latest_version": pl.Int64,
              "created": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema)


def changes(location: Location, table: str, table_uri: str, name: str) -> Diff:
    """What branch ``name`` changed since it was made, or since the version of it the main
    line last took (:func:`last_promoted`), to its latest version, read on the branch's own
    line, so rows are paired by their stable row ids as within one table. It is what a
    promote brings when the main line has not moved (like ``git diff main...dev``); the main
    line's own changes since the branch was made are ``t.diff(parent_version)``.

    >>> dev = t.branch("dev")
    >>> _ = dev.delete(where=dev.title == "Up")
    >>> changes(db.location, "films", t.table_uri, "dev").summary()
    'films#dev: version 2 -> 3: 0 inserted, 0 updated, 1 deleted, 0 schema changes'
    """
    ds = open_branch(location, table, table_uri, name)
    try:
        main = lance.dataset(table_uri, storage_options=location.storage_options or None)
    except (ValueError, OSError) as exc:
        raise storage_error(location, f"open table {table!r}", exc) from exc
    return diff.between(ds, f"{table}{BRANCH_SEPARATOR}{name}", last_promoted(main, name))


def start(main: lance.LanceDataset, table: str, name: str) -> int:
    """The branch version a promote of branch ``name`` starts from: the version of the branch
    the main line last took (the promote commit records it), or the branch's parent version if
    it was never promoted. Refused (:class:`~lakehouse.BranchDivergedError`) when the main
    line (``main``, at its latest version) has a data commit since then: only the commits that
    change no rows (index builds and upkeep, compaction, metadata: what follows a promote) may
    come after it. Reads one transaction per main-line version since then, newest first.

    >>> dev = t.branch("dev")
    >>> _ = dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    >>> start(t.table_state().dataset, "films", "dev")
    2
    >>> t.promote("dev"), start(t.table_state().dataset, "films", "dev")
    (3, 3)
    """
    parent = int(_info(main, name)["parent_version"])
    for version, tx in _main_commits(main, parent):
        promoted = _promoted(tx, name)
        if promoted is not None:
            return promoted
        if tx is None or type(tx.operation).__name__ not in _NO_DATA:
            raise BranchDivergedError(_moved(table, name, parent, main.version, version, tx))
    return parent


def last_promoted(main: lance.LanceDataset, name: str) -> int:
    """The version of branch ``name`` the main line took last (its parent version if none),
    whatever the main line did since: the start of what the branch changed. Reads the main
    line's transactions back to the branch's last promote (all since the branch was made when
    it was never promoted), a page of them at a time.

    >>> dev = t.branch("dev")
    >>> _ = dev.insert([{"title": "Ran", "year": 1985}], progress=False)
    >>> _ = t.promote("dev")
    >>> _ = t.insert([{"title": "Jaws", "year": 1975}], progress=False)
    >>> last_promoted(t.table_state().dataset, "dev")
    3
    """
    parent = int(_info(main, name)["parent_version"])
    found = (_promoted(tx, name) for _, tx in _main_commits(main, parent))
    return next((version for version in found if version is not None), parent)


def _main_commits(main: lance.LanceDataset, parent: int
                  ) -> Iterator[tuple[int, lance.Transaction | None]]:
    """The main line's commits after version ``parent``, newest first, as (version,
    transaction): None for a version removed by retention. Read a page at a time on a few
    threads (one request each on S3); the first page is only the latest version, which is
    usually all a promote reads."""
    newest, size = main.version, 1
    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        while newest > parent:
            page = range(newest, max(newest - size, parent), -1)
            yield from zip(page, pool.map(lambda v: _transaction(main, v), page), strict=True)
            newest, size = page[-1] - 1, _READ_THREADS


def _transaction(main: lance.LanceDataset, version: int) -> lance.Transaction | None:
    try:
        return main.read_transaction(version)
    except (ValueError, OSError):
        return None


def _promoted(tx: lance.Transaction | None, name: str) -> int | None:
    """The branch version a promote commit of branch ``name`` brought; None for any other."""
    props = tx.transaction_properties if tx is not None else {}
    if props.get(OPERATION_KEY) == "promote" and props.get(_BRANCH_KEY) == name \
            and _BRANCH_VERSION_KEY in props:
        return int(props[_BRANCH_VERSION_KEY])
    return None


def _moved(table: str, name: str, parent: int, latest: int, version: int,
           tx: lance.Transaction | None) -> str:
    """Why branch ``name`` cannot fast-forward: the main line's commit ``version``."""
    what = "removed" if tx is None else \
        tx.transaction_properties.get(OPERATION_KEY) or type(tx.operation).__name__
    return (f"table {table!r} cannot fast-forward to branch {name!r}: the table moved from "
            f"version {parent} (where the branch was made) to {latest}, and its version "
            f"{version} ({what}) is not a promote of the branch; nothing was changed. Apply "
            f"the branch's changes to the table again, or make a new branch from version "
            f"{latest}")


def remove(ctx: WriteContext, name: str) -> None:
    """Delete branch ``name`` of the table in ``ctx`` (the main line cannot be deleted).

    >>> from lakehouse.exec.protocol import WriteContext
    >>> _ = t.branch("tmp")
    >>> ds = t.table_state().dataset
    >>> remove(WriteContext("films", ds.uri, {}, ds, t.table_definition), "tmp")
    >>> t.branches().height
    0
    """
    table = ctx.table_name
    if name == MAIN_BRANCH:
        raise UnsupportedError(f"table {table!r}: the main line is the table itself and cannot "
                               f"be deleted as a branch; use db.drop_table({table!r})")
    validate_branch_name(name, table)
    if name not in ctx.dataset.branches.list():
        raise BranchNotFoundError(f"table {table!r} has no branch {name!r}")
    protocol.delete_branch(ctx, name)


def promote(ctx: WriteContext, location: Location, name: str) -> lance.LanceDataset:
    """Fast-forward the main line of the table in ``ctx`` to the latest version of branch
    ``name``: refused (:class:`~lakehouse.BranchDivergedError`, nothing changed) when the main
    line moved since the branch was made or last promoted (:func:`start`). Returns the main
    line at its new version.

    >>> from lakehouse.exec.protocol import WriteContext
    >>> b = t.branch("dev")
    >>> _ = b.insert([{"title": "Ran", "year": 1985}], progress=False)
    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds.checkout_version(ds.version),
    ...                    t.table_definition)
    >>> promote(ctx, db.location, "dev").count_rows()
    4
    """
    table = ctx.table_name
    if name not in ctx.dataset.branches.list():
        raise BranchNotFoundError(f"table {table!r} has no branch {name!r}")
    start(ctx.dataset, table, name)  # refused when the main line moved
    branch = open_branch(location, table, ctx.uri, name)
    _copy_own_files(location, branch.uri, ctx.uri, ctx.dataset)
    operation = _fast_forward(location, branch, ctx.dataset, ctx.uri, name)
    try:
        return protocol.fast_forward(ctx, operation, seen=ctx.version, branch=name,
                                     branch_version=branch.version)
    except Redo as exc:
        raise BranchDivergedError(f"table {table!r} cannot fast-forward to branch {name!r}: "
                                  f"{exc.reason}; nothing was changed") from exc


def _fast_forward(location: Location, branch: lance.LanceDataset, main: lance.LanceDataset,
                  table_uri: str, name: str) -> lance.LanceOperation.BaseOperation:
    """The one Lance operation that turns the main line (with no data commit since the branch
    was made or last promoted) into the branch's latest content: a ``Merge`` of the branch's
    fragments under its schema (with its definitions). A Merge conflicts with every concurrent
    data commit, so Lance never folds a promote into a write that landed meanwhile (an
    ``Update`` would be rebased over an append). Each branch fragment the main line has
    (:func:`_counterpart`) takes the main line's id and row ids (:func:`_with_main_ids`); the
    others are new (:func:`_fresh`); main-line fragments the branch removed (or the main
    line's compaction wrote) stay with every row deleted, since a Merge keeps every fragment
    (Lance then drops those with no rows)."""
    ours = [f.metadata for f in main.get_fragments()]
    by_file = {path: md for md in ours for path in _paths(md)[0]}
    theirs = [_in_main(f.metadata, branch, table_uri, name) for f in branch.get_fragments()]
    pairs = [(md, _counterpart(md, by_file)) for md in theirs]
    kept = {main_md.id for _, main_md in pairs if main_md is not None}
    gone = [_emptied(location, table_uri, md, main.version) for md in ours if md.id not in kept]
    ids = [md.id for md in ours]
    new = _fresh(location, table_uri, [md for md, main_md in pairs if main_md is None],
                 max([*ids, *(md.id for md in theirs)], default=-1), max(ids, default=-1))
    # Lance wants the fragments the main line has before the new ones
    return lance.LanceOperation.Merge(
        [*gone, *(_with_main_ids(location, table_uri, md, main_md)
                  for md, main_md in pairs if main_md is not None), *new],
        branch.lance_schema)


def _counterpart(md: FragmentMetadata, by_file: dict[str, FragmentMetadata]
                 ) -> FragmentMetadata | None:
    """The main-line fragment that branch fragment ``md`` is (``by_file``: the main line's
    fragments by their data files), maybe with columns or deletions added since: the one that
    shares a data file with it (Lance names data files with random ids). Not told by id: a
    promote numbers some branch fragments anew on the main line, and a compaction of the main
    line after a promote may take the id of a fragment the branch wrote meanwhile."""
    return next((by_file[path] for path in _paths(md)[0] if path in by_file), None)


def _with_main_ids(location: Location, table_uri: str, md: FragmentMetadata,
                   main_md: FragmentMetadata) -> FragmentMetadata:
    """Branch fragment ``md`` as its main-line counterpart ``main_md``: the main line's id and
    row ids (the branch's parent's, or those an earlier promote gave its rows on the main
    line), its deletion file renamed for that id if it differs; the main line's own metadata
    when the branch left the fragment's files as they were."""
    if _paths(md) == _paths(main_md):
        return main_md
    deletion = md.deletion_file if md.id == main_md.id else \
        _renamed_deletions(location, table_uri, md, main_md.id)
    return dataclasses.replace(md, id=main_md.id, row_id_meta=main_md.row_id_meta,
                               deletion_file=deletion)


def _fresh(location: Location, table_uri: str, new: list[FragmentMetadata], highest: int,
           main_highest: int) -> list[FragmentMetadata]:
    """The branch fragments new to the main line, which get new row ids at the commit (the
    branch's would clash with the main line's). One whose id the main line may have used
    (not above ``main_highest``, its highest fragment id: a compaction after a promote takes
    new ids on the main line too) is numbered again above ``highest``, the highest id of
    either line, its deletion file copied under the new number."""
    fresh = []
    for md in new:
        if md.id > main_highest:
            fresh.append(dataclasses.replace(md, row_id_meta=None))
            continue
        highest += 1
        fresh.append(dataclasses.replace(
            md, id=highest, row_id_meta=None,
            deletion_file=_renamed_deletions(location, table_uri, md, highest)))
    return fresh


def _renamed_deletions(location: Location, table_uri: str, md: FragmentMetadata,
                       fragment_id: int) -> DeletionFile | None:
    """Fragment ``md``'s deletion file (in the table's folders), copied to where Lance looks
    for it once the fragment is numbered ``fragment_id`` (:func:`_deletion_name`)."""
    deletion = md.deletion_file
    if deletion is None:
        return None
    names = [location.fs_path(f"{table_uri}/_deletions/{_deletion_name(i, deletion)}")
             for i in (md.id, fragment_id)]
    try:
        location.filesystem().copy(*names)
    except OSError as exc:
        raise storage_error(location, "copy a deletion file of the branch", exc) from exc
    return deletion


def _paths(md: FragmentMetadata) -> tuple[list[str], tuple[int, int] | None]:
    """What tells a fragment's content: its data files and its deletion file."""
    deletion = md.deletion_file
    return ([str(f.path) for f in md.files],
            None if deletion is None else (deletion.read_version, deletion.id))


def _emptied(location: Location, table_uri: str, md: FragmentMetadata,
             version: int) -> FragmentMetadata:
    """Main-line fragment ``md``, which the branch does not have, with every row deleted (as it
    is already when an earlier promote emptied it)."""
    if md.deletion_file is not None and md.deletion_file.num_deleted_rows == md.physical_rows:
        return md
    return dataclasses.replace(md, deletion_file=_all_rows_deleted(location, table_uri, md,
                                                                   version))


def _all_rows_deleted(location: Location, table_uri: str, md: FragmentMetadata,
                      version: int) -> DeletionFile:
    """A deletion file that deletes every row of main-line fragment ``md``: a Merge must keep
    every fragment, so one the branch removed stays, with no rows. Written in Lance's format
    for deletion files (an Arrow IPC file of one ``row_id: uint32`` column of row offsets, at
    ``_deletions/<fragment>-<read version>-<id>.arrow``)."""
    file_id = secrets.randbits(63)
    path = location.fs_path(f"{table_uri}/_deletions/{md.id}-{version}-{file_id}.arrow")
    offsets = pa.table({"row_id": pa.array(range(md.physical_rows), pa.uint32())},
                       schema=pa.schema([pa.field("row_id", pa.uint32(), nullable=False)]))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, offsets.schema) as writer:
        writer.write_table(offsets)
    fs = location.filesystem()
    try:
        if location.is_local:
            fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        fs.pipe_file(path, sink.getvalue().to_pybytes())
    except OSError as exc:
        raise storage_error(location, "write a deletion file", exc) from exc
    return DeletionFile(version, file_id, "array", md.physical_rows, None)


def sync_indexes(ctx: WriteContext, branch: lance.LanceDataset) -> int:
    """After a promote, give the table the scalar indexes the branch has (built again on the
    table: index files are not copied) and drop the ones the branch dropped, so the table
    reads as the branch did. Vector indexes are the embedding index upkeep's. Returns the
    version reached.

    >>> from lakehouse.exec.protocol import WriteContext
    >>> dev = t.branch("dev")
    >>> _ = dev.add_index("year")
    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds.checkout_version(ds.version),
    ...                    t.table_definition)
    >>> sync_indexes(ctx, dev.table_state().dataset) == t.version, t.indexes()["name"].to_list()
    (True, ['year_btree'])
    """
    wanted, present = _scalar_indexes(branch), _scalar_indexes(ctx.dataset)
    for name in sorted(present.keys() - wanted.keys()):
        protocol.drop_index(ctx, name)
    for name, (column, kind) in sorted(wanted.items()):
        if name not in present:
            protocol.create_scalar_index(ctx, column, kind, name, replace=False)
    return ctx.dataset.version


def _scalar_indexes(ds: lance.LanceDataset) -> dict[str, tuple[str, str]]:
    """Index name -> (column, kind) for the scalar indexes of ``ds`` (btree, bitmap, zone map)."""
    found = {}
    for index in ds.describe_indices():
        kind = next((k for k in _SCALAR_KINDS if k in index.type_url.lower()), None)
        if kind is not None and len(index.field_names) == 1:
            found[index.name] = (index.field_names[0], kind)
    return found


def _copy_own_files(location: Location, source: str, target: str,
                    main: lance.LanceDataset) -> None:
    """Copy the branch's own data and deletion files (blob files included) into the table's
    folders, so the main line never depends on the branch's folder, which a branch delete
    removes; not those the main line's fragments already reference (:func:`_referenced`: an
    earlier promote copied them). Only the branch's folder is listed, never the table's: Lance
    names files with random ids, so a file of the same name in the table is this copy (from a
    promote that was retried) and copying it again changes nothing. Files of failed branch
    writes come along unreferenced, as orphans for the table's cleanup."""
    fs = location.filesystem()
    present = _referenced(main)
    for folder in _COPIED:
        src, dst = location.fs_path(f"{source}/{folder}"), location.fs_path(f"{target}/{folder}")
        try:
            if not fs.exists(src):
                continue
            for path in fs.find(src):
                rel = path[len(src):]
                if rel.lstrip("/").split("/")[0].removesuffix(".lance") in present:
                    continue
                if location.is_local:
                    fs.makedirs((dst + rel).rpartition("/")[0], exist_ok=True)
                fs.copy(path, dst + rel)
        except OSError as exc:
            raise storage_error(location, "copy the branch's files into the table", exc) from exc


def _referenced(main: lance.LanceDataset) -> set[str]:
    """The files the main line's fragments reference, by the first part of their path under
    ``data/`` or ``_deletions/``: a data file's name without ``.lance`` also names the folder of
    its blob files."""
    names = set()
    for fragment in main.get_fragments():
        md = fragment.metadata
        names.update(str(f.path).removesuffix(".lance") for f in md.files)
        if md.deletion_file is not None:
            names.add(_deletion_name(md.id, md.deletion_file))
    return names


def _deletion_name(fragment_id: int, deletion: DeletionFile) -> str:
    """The name of a deletion file of fragment ``fragment_id`` in ``_deletions/``, as Lance
    names it: ``<fragment>-<read version>-<id>.<arrow or bin>`` (its content does not name
    the fragment)."""
    ext = "arrow" if deletion.file_type == "array" else "bin"
    return f"{fragment_id}-{deletion.read_version}-{deletion.id}.{ext}"


def _in_main(md: FragmentMetadata, branch: lance.LanceDataset, table_uri: str,
             name: str) -> FragmentMetadata:
    """A branch fragment as the main line stores it: every file in the table's own folders
    (base ``None``), version metadata left for Lance to derive at the commit."""
    roots = {base_id: base.path for base_id, base in branch.base_paths().items()}
    for base_id in {f.base_id for f in md.files} | {getattr(md.deletion_file, "base_id", None)}:
        if base_id is not None and not _same_place(roots.get(base_id, ""), table_uri):
            raise UnsupportedError(
                f"branch {name!r} reads files from {roots.get(base_id)!r}, outside the table; "
                "only branches made from the table's main line can be promoted")
    files = [DataFile(str(f.path), f.fields, f.column_indices, f.file_major_version,
                      f.file_minor_version, f.file_size_bytes, None) for f in md.files]
    deletion = md.deletion_file
    if deletion is not None:
        deletion = DeletionFile(deletion.read_version, deletion.id, deletion.file_type,
                                deletion.num_deleted_rows, None)
    return dataclasses.replace(md, files=files, deletion_file=deletion,
                               created_at_version_meta=None, last_updated_at_version_meta=None)


def _same_place(path: str, uri: str) -> bool:
    """Whether a Lance base path names the folder ``uri`` (Lance drops the scheme and the
    leading slash of some paths)."""
    def norm(p: str) -> str:
        return p.split("://", 1)[-1].strip("/")
    return norm(path) == norm(uri)


def check_no_branch(branch: str | None, table: str, what: str) -> None:
    """Refuse ``what`` on a branch handle (views follow a table's main line; branches are made
    from it)."""
    if branch is not None:
        raise UnsupportedError(f"table {table!r}: {what} works on a table's main line, not on "
                               f"a branch; use it on '{table.partition(BRANCH_SEPARATOR)[0]}'")


__all__ = ["TREE", "branch_uri", "changes", "check_no_branch", "create", "first_version",
           "last_promoted", "listing", "main_uri", "open_branch", "promote", "referenced",
           "remove", "split", "start", "sync_indexes"]
