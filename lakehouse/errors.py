"""The exception hierarchy: every error lakehouse raises is an :class:`Error`.

Subclasses also inherit the matching builtin (``ColumnNotFoundError`` is a ``KeyError``), so code
that catches builtins keeps working. Messages name the table, column and row where known, and say
how to fix the problem.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every lakehouse error."""

    def __str__(self) -> str:  # KeyError quotes its message; keep messages readable
        return str(self.args[0]) if self.args else ""


class InvalidNameError(Error, ValueError):
    """A table or directory name is empty, absolute, or escapes the lakehouse root."""


class TableNotFoundError(Error, KeyError):
    """No table with this name exists."""


class TableExistsError(Error, FileExistsError):
    """A table or directory with this name already exists."""


class DirectoryNotFoundError(Error, KeyError):
    """The directory a table should live in does not exist."""


class ColumnNotFoundError(Error, KeyError):
    """An expression, insert or schema change names a column the table does not have."""


class ColumnExistsError(Error, ValueError):
    """A column with this name already exists."""


class TypeMismatchError(Error, TypeError):
    """A value or expression does not have the type its column or operator needs."""


class InvalidOptionError(Error, ValueError):
    """An argument has a value the call does not accept: a choice outside its list
    (``on_error``, ``if_exists``, ``kind``, ``metric``...), a number out of range
    (``limit(-1)``, ``batch_rows=0``), an option the call does not know, or nothing to work on
    (``update({})``). The message names the argument, what it got and what it accepts."""


class UnsupportedError(Error, ValueError):
    """A call cannot do what it was asked with these arguments, though each is valid on its
    own: filtering on a similarity (``where(sim > 0.5)``), storing one in a computed column,
    or ``scan()`` of a query that runs Python UDFs or reads media. The message says what to
    do instead (order by the similarity and ``limit()``; ``collect()``)."""


class ComputedColumnError(Error, ValueError):
    """A write gives a value to a computed column, whose values come only from its expression:
    set the columns it depends on instead."""


class ExpressionSyntaxError(Error, ValueError):
    """A where or select string is not a valid expression: Python's parser rejected it, or it
    uses something the expression language does not allow (a function call, a lambda, a private
    attribute...). The message names the offending part and its column; ``text``, ``line`` and
    ``column`` (both from 1) hold them too."""

    def __init__(self, message: str, *, text: str = "", line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.line = line
        self.column = column


class DependencyError(Error, ValueError):
    """A schema change would break a computed column that depends on the column."""


class ComputeError(Error, RuntimeError):
    """A computed column failed for a row while ``on_error="abort"``; nothing was written."""


class UDFNotFoundError(Error, ImportError):
    """A stored computed column calls a UDF that cannot be imported in this process."""


class UnsafeDefinitionError(Error, ValueError):
    """A stored definition names something that is not a registered UDF or built-in."""


class FormatVersionError(Error, ValueError):
    """A table was written by a newer lakehouse whose format this version cannot read."""


class ReadOnlyError(Error, PermissionError):
    """A write was attempted on a read-only table handle (an old version)."""


class StorageError(Error, OSError):
    """The storage backend (local folder or object store) could not be reached or read."""


class ConcurrentWriteError(Error, RuntimeError):
    """A write kept conflicting with concurrent writers and gave up after bounded retries."""


class VersionNotFoundError(Error, KeyError):
    """The requested table version does not exist."""


class IndexExistsError(Error, ValueError):
    """The column already has an index of this kind."""


class IndexNotFoundError(Error, KeyError):
    """The column has no index of this kind."""


class MediaError(Error, ValueError):
    """A media value could not be read or is not valid: a missing file, an unreachable URI, a
    corrupt image, an unreadable video. The message names the table, column, row and source."""


class SourceRefusedError(MediaError):
    """A media source the fetch policy (:class:`lakehouse.FetchPolicy`) does not allow: larger
    than ``max_bytes``, slower than its timeouts, on a private or link-local network address,
    redirected to another scheme or address, a path that leaves its folder, or not a regular
    file. ``kind`` is the error type recorded for the row (``SourceTooLarge``, ...); the message
    names the source and the setting that allows it, where one does."""

    def __init__(self, message: str, *, kind: str = "SourceRefused") -> None:
        super().__init__(message)
        self.kind = kind


class EngineNotInstalledError(Error, ImportError):
    """``engine="ray"`` was asked for, but Ray is not installed: ``pip install
    "lakehouse[ray]"`` adds Ray and lance-ray."""


class EngineUnavailableError(Error, ConnectionError):
    """The Ray cluster an engine names cannot be reached (none running, a wrong address)."""


class EngineTaskError(Error, RuntimeError):
    """Work sent to a Ray cluster failed there for a reason other than the data (a worker
    or node kept dying past its retries); nothing was committed, finished fragments are kept
    in the checkpoint and the same call resumes from them."""


class ModelError(Error, RuntimeError):
    """An embedding model cannot be found or loaded, or is not the model an index was built
    with (its weights changed)."""


class ModelsNotInstalledError(ModelError, ImportError):
    """A CLIP or sentence-transformers model is named or needed, but the optional model libraries
    (torch, open_clip, sentence-transformers) are not installed: ``pip install
    "lakehouse[models]"`` adds them. Tables, queries and everything else work without them."""


class RemoteModelError(ModelError):
    """A remote model endpoint refuses every call: the key is refused (401, 403), the model or
    address does not exist (404), or retries ran out on every row. No row can be computed, so
    the write stops."""


class RemoteCallError(Error, RuntimeError):
    """A remote model call failed for one row: the server refused the input (400, 413, 422),
    or kept failing (429, 5xx, connection errors) after every retry. The column's ``on_error``
    decides: ``"abort"`` stops the write naming the row, ``"ignore"`` records it."""


class SecretNotFoundError(ModelError, KeyError):
    """A secret named with ``lh.secret(...)`` is not set where it was looked for (the
    environment, or the file it names). The message names the secret and where it looked."""


class SecretLiteralError(Error, ValueError):
    """A definition would store a literal that looks like a secret (an argument named like a
    key, or a value shaped like one); the message shows the ``lh.secret(...)`` to pass."""


class SnapshotExistsError(Error, ValueError):
    """A snapshot (a named version) with this name already exists."""


class OutputExistsError(Error, FileExistsError):
    """An export's target file already exists; ``overwrite=True`` replaces it."""


class SQLRefusedError(Error, PermissionError):
    """A SQL statement given to ``db.sql`` does something other than read the lakehouse's
    tables: it names a file or a table function (``read_parquet``...), changes data
    (``COPY``, ``CREATE``...), holds several statements, or reads something not a table.
    The message names what was refused."""


class BranchNotFoundError(Error, KeyError):
    """The table has no branch with this name."""


class BranchExistsError(Error, FileExistsError):
    """The table already has a branch with this name."""


class BranchDivergedError(Error, RuntimeError):
    """A branch cannot be promoted: its parent moved since the branch was made, so a
    fast-forward would drop the parent's newer changes."""


def check_choice(param: str, value: object, allowed: tuple[str, ...]) -> None:
    """Refuse an option value that is not one of ``allowed`` (the one check every call with a
    choice argument uses, so that the error type and message are the same everywhere).

    >>> check_choice("on_error", "skip", ("abort", "ignore"))
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: on_error must be one of 'abort', 'ignore', got 'skip'
    """
    if value not in allowed:
        msg = f"{param} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        raise InvalidOptionError(msg)
