"""The iterator registry, and :class:`IteratorCall`: an iterator applied to one column.

An iterator turns one value of a base column into zero or more rows of a view. Each is
registered once, as an :class:`IteratorDef`: its name, the column kinds it reads, its options
with their defaults (taken from its constructor's signature), the check that normalises them,
its output columns, and the generator that makes the rows. Applied to a column it becomes an
:class:`IteratorCall`, the frozen part of a view's definition that is stored as JSON (the name,
the input column by id, the options) and rebuilt on open.

The rules:

- A built-in iterator names its row generator by import path (``"lakehouse.iterators.video:
  frames"``), so PyAV, pypdf and BeautifulSoup load the first time an iterator runs, not on
  ``import lakehouse``. The path is a constant of this package, never read from storage.
- A user iterator (``@lh.iterators.iterator``) is stored as ``module:qualname``. A stored
  definition naming one resolves only when the name is registered in this process, or its
  module is trusted (:func:`lakehouse.trust.module_trusted`) and, once imported, registers it.
  Nothing is imported for an untrusted name, and a name that is not a registered iterator
  (``os:system``) is refused.
- Options are JSON values, checked and completed when the call is made, so a stored call and
  the call it was made from are equal (:meth:`IteratorCall.to_json`, :meth:`IteratorCall.
  from_json`).
- A built-in's row generator raises ValueError for a value it cannot read (a truncated video, a
  damaged PDF); :meth:`IteratorCall.rows` turns it into a :class:`~lakehouse.errors.MediaError`
  naming the iterator and the column.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from lakehouse import trust
from lakehouse import types as T
from lakehouse.errors import (
    Error,
    InvalidOptionError,
    MediaError,
    TypeMismatchError,
    UDFNotFoundError,
    UnsafeDefinitionError,
)
from lakehouse.exprs.nodes import ColumnRef
from lakehouse.secrets import refuse_literals

REQUIRED = inspect.Parameter.empty  # the default of an option that must be given
RESERVED = ("pos",)  # the view's own column beside an iterator's
_KIND_NAMES = {"string": "String", "image": "Image", "video": "Video", "audio": "Audio",
               "document": "Document"}

Rows = Callable[..., Iterator[dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class IteratorDef:
    """A registered iterator.

    ``kinds`` are the column kinds it reads (:attr:`lakehouse.ColumnType.kind`). ``options``
    maps each option to its default (:data:`REQUIRED` when it has none). ``normalise`` takes
    every option (defaults filled in) and returns them checked and as JSON values, raising
    InvalidOptionError. ``outputs`` gives the output columns for normalised options. ``run``
    is the row generator ``run(value, **options)``, or its ``"module:function"`` path.
    ``builtin``: a ValueError from ``run`` means an unreadable value (a MediaError)."""

    name: str
    kinds: tuple[str, ...]
    options: Mapping[str, Any]
    normalise: Callable[[dict[str, Any]], dict[str, Any]]
    outputs: Callable[[Mapping[str, Any]], dict[str, T.ColumnType]]
    run: Rows | str
    builtin: bool = True

    def generator(self) -> Rows:
        """The row generator, its module imported on first use (PyAV, pypdf...).

        >>> resolve("tile_iterator").generator().__name__
        'tiles'
        """
        if not isinstance(self.run, str):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def expects(self) -> str:
        """The column types it reads, for messages: ``"a Video column"``.

        >>> resolve("document_splitter").expects()
        'a Document or String column'
        """
        names = [_KIND_NAMES.get(k, k) for k in self.kinds]
        return f"a {' or '.join(names)} column"


_ITERATORS: dict[str, IteratorDef] = {}
_lock = threading.Lock()


def register(definition: IteratorDef) -> IteratorDef:
    """Make ``definition`` usable in views and resolvable from stored definitions."""
    with _lock:
        _ITERATORS[definition.name] = definition
    return definition


def builtin_names() -> list[str]:
    """The names of the built-in iterators, in the order they were registered.

    >>> builtin_names()
    ['document_splitter', 'frame_iterator', 'tile_iterator', 'audio_splitter']
    """
    return [name for name, d in _ITERATORS.items() if d.builtin]


def options_of(constructor: Callable[..., Any]) -> dict[str, Any]:
    """The options of an iterator's constructor (its keyword-only parameters) and their
    defaults: the one place an iterator's defaults are written is its signature.

    >>> from lakehouse.iterators import tile_iterator
    >>> options_of(tile_iterator)
    {'tile_size': <class 'inspect._empty'>, 'overlap': 0}
    """
    return {p.name: p.default for p in inspect.signature(constructor).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def resolve(name: str) -> IteratorDef:
    """The iterator registered under ``name``. A user iterator (``module:qualname``) not
    registered yet is imported only when its module is trusted; UnsafeDefinitionError for a
    name that is not a registered iterator, or whose module may not be imported.

    >>> resolve("frame_iterator").kinds
    ('video',)
    >>> resolve("os:system")
    Traceback (most recent call last):
    ...
    lakehouse.errors.UnsafeDefinitionError: stored definition names iterator 'os:system', which \
is not registered with @lh.iterators.iterator; ...
    """
    found = _ITERATORS.get(name)
    if found is not None:
        return found
    if ":" not in name:
        msg = (f"{name!r} is not an iterator of this lakehouse; the built-in iterators are "
               f"{', '.join(builtin_names())}, and a user iterator is named 'module:function'")
        raise UnsafeDefinitionError(msg)
    module, _, qualname = name.partition(":")
    if not trust.MODULE_NAME.match(module) or not trust.MODULE_NAME.match(qualname):
        raise UnsafeDefinitionError(f"{name!r} is not a valid iterator reference")
    if module not in sys.modules and not trust.module_trusted(module):
        msg = (f"stored definition names iterator {name!r}, and module {module!r} is neither "
               f"imported nor trusted in this process, so it was not imported. If you trust "
               f"it, import it first, or pass lh.connect(..., trusted_modules=[{module!r}]) "
               f"or set {trust.MODULES_VARIABLE}={module}")
        raise UnsafeDefinitionError(msg)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        msg = (f"iterator {name!r} cannot be imported ({exc}): make {module!r} importable in "
               "this process (install its package or add its folder to PYTHONPATH)")
        raise UDFNotFoundError(msg) from exc
    found = _ITERATORS.get(name)
    if found is None:
        msg = (f"stored definition names iterator {name!r}, which is not registered with "
               "@lh.iterators.iterator; only those and the built-in iterators can make a "
               "view's rows")
        raise UnsafeDefinitionError(msg)
    return found


def make_call(name: str, column: Any, options: Mapping[str, Any]) -> IteratorCall:
    """The call of iterator ``name`` on ``column`` with ``options``, checked: the column's type
    (TypeMismatchError), the option names and values (InvalidOptionError).

    >>> make_call("frame_iterator", clips.video, {"fps": 2})
    frame_iterator(video, fps=2.0)
    """
    definition = resolve(name)
    if not isinstance(column, ColumnRef):
        msg = (f"{_short(name)}() reads a column of the base table, such as t.video; "
               f"got {column!r}")
        raise TypeMismatchError(msg)
    _check_kind(definition, column, where="")
    unknown = sorted(set(options) - set(definition.options))
    if unknown:
        msg = (f"{_short(name)}() has no option {', '.join(map(repr, unknown))}; its options "
               f"are {', '.join(definition.options) or 'none'}")
        raise InvalidOptionError(msg)
    given = {**definition.options, **options}
    missing = [k for k, v in given.items() if v is REQUIRED]
    if missing:
        msg = f"{_short(name)}() needs {', '.join(f'{k}=' for k in missing)}"
        raise InvalidOptionError(msg)
    return IteratorCall(name, column, definition.normalise(given))


def _check_kind(definition: IteratorDef, column: ColumnRef, *, where: str) -> None:
    if column.type.kind not in definition.kinds:
        msg = (f"{_short(definition.name)}() reads {definition.expects()}; column "
               f"{column.name!r}{where} is {column.type}")
        raise TypeMismatchError(msg)


def _short(name: str) -> str:
    return name.rpartition(":")[2].rpartition(".")[2]


@dataclasses.dataclass(frozen=True, eq=False)
class IteratorCall:
    """An iterator applied to one column of a base table: what a view's rows come from.

    ``name`` is a built-in iterator's name (``"frame_iterator"``) or a user iterator's
    ``module:qualname``; ``input`` the base column it reads; ``args`` its options, checked and
    with every default filled in (JSON values). Made by the iterators' constructors
    (:func:`lakehouse.iterators.frame_iterator`...) or rebuilt with :meth:`from_json`.

    >>> call = lh.iterators.frame_iterator(clips.video, fps=1)
    >>> call
    frame_iterator(video, fps=1.0)
    >>> call.name, call.input.name, dict(call.args)
    ('frame_iterator', 'video', {'fps': 1.0, 'every_n': None, 'keyframes_only': False})
    """

    name: str
    input: ColumnRef
    args: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", types.MappingProxyType(dict(self.args)))

    @property
    def definition(self) -> IteratorDef:
        """The registered iterator this call runs.

        >>> lh.iterators.tile_iterator(pics.image, tile_size=256).definition.kinds
        ('image',)
        """
        return resolve(self.name)

    def output_columns(self) -> dict[str, T.ColumnType]:
        """The iterator's own columns and their types, in order (the view adds ``pos``).

        >>> lh.iterators.audio_splitter(sounds.sound, duration=2.0).output_columns()
        {'clip': lh.Audio, 'start_time': lh.Float, 'end_time': lh.Float}
        """
        return dict(self.definition.outputs(self.args))

    def rows(self, value: Any) -> Iterator[dict[str, Any]]:
        """The rows made from one base value (bytes of a media file, or a str), one dict per
        row with the keys of :meth:`output_columns`; none for a null value. Rows are made as
        they are read: a long video is never decoded all at once. A value the iterator cannot
        read raises MediaError (after the rows made before the problem was found).

        >>> words = lh.iterators.document_splitter(t.title, separators=("token_limit",),
        ...                                        limit=1)
        >>> [row["text"] for row in words.rows("Alien: the director's cut")]
        ['Alien', ':', 'the', 'director', "'", 's', 'cut']
        >>> list(words.rows(None))
        []
        """
        if value is None:
            return
        definition = self.definition
        value = self._checked(value)
        try:
            if definition.builtin:
                yield from definition.generator()(value, **self.args)
                return
            expected = set(definition.outputs(self.args))
            for row in definition.generator()(value, **self.args):
                if not isinstance(row, Mapping) or set(row) != expected:
                    msg = (f"{self!r} yielded {row!r}; each row must be a dict with the keys "
                           f"{', '.join(sorted(expected))}")
                    raise TypeMismatchError(msg)
                yield dict(row)
        except Error:
            raise
        except ValueError as exc:
            if not definition.builtin:
                raise
            msg = f"{self!r} cannot read a value of column {self.input.name!r}: {exc}"
            raise MediaError(msg) from None

    def _checked(self, value: Any) -> Any:
        if self.input.type.is_media:
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            what = f"the bytes of a {self.input.type.kind} file"
        elif isinstance(value, str):
            return value
        else:
            what = "a str"
        msg = (f"{self!r} reads {what} from column {self.input.name!r}, got "
               f"{type(value).__name__}")
        raise TypeMismatchError(msg)

    def check(self, table_name: str) -> None:
        """Raise TypeMismatchError unless the input column has a type the iterator reads.

        >>> lh.iterators.frame_iterator(clips.video).check("clips")
        >>> from lakehouse.exprs.nodes import ColumnRef
        >>> lh.iterators.IteratorCall("frame_iterator", ColumnRef("image", 0, lh.Image),
        ...                           {}).check("pics")
        Traceback (most recent call last):
        ...
        lakehouse.errors.TypeMismatchError: frame_iterator() reads a Video column; column \
'image' of table 'pics' is Image
        """
        _check_kind(self.definition, self.input, where=f" of table {table_name!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON a view's definition stores: the name, the input column (by id, with its
        name for readers) and the options.

        >>> lh.iterators.tile_iterator(pics.image, tile_size=(256, 128)).to_json()
        {'name': 'tile_iterator', 'input': {'name': 'image', 'id': 0}, \
'args': {'tile_size': [256, 128], 'overlap': 0}}
        """
        refuse_literals(self.name, self.args.items())  # a key belongs in lh.secret(...)
        return {"name": self.name, "input": {"name": self.input.name, "id": self.input.col_id},
                "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any],
                  resolve_column: Callable[[str, int], ColumnRef]) -> IteratorCall:
        """The call :meth:`to_json` stored, its column found with ``resolve_column(name, id)``.
        The name must be a built-in or a registered (or trusted) user iterator, and the options
        are checked again: UnsafeDefinitionError, InvalidOptionError, TypeMismatchError.

        >>> stored = lh.iterators.frame_iterator(clips.video, every_n=10).to_json()
        >>> lh.iterators.IteratorCall.from_json(stored, lambda name, col_id: clips.video)
        frame_iterator(video, every_n=10)
        >>> stored["name"] = "os:system"
        >>> lh.iterators.IteratorCall.from_json(stored, lambda name, col_id: clips.video)
        Traceback (most recent call last):
        ...
        lakehouse.errors.UnsafeDefinitionError: stored definition names iterator 'os:system'...
        """
        name, column, args = _parts(data)
        resolve(name)  # refuses an unknown or untrusted name before anything else is looked at
        return make_call(name, resolve_column(column["name"], column["id"]), args)

    def __repr__(self) -> str:
        options = self.definition.options
        shown = [f"{k}={_shown(v)}" for k, v in self.args.items()
                 if _listed(options.get(k)) != v]
        return f"{_short(self.name)}({', '.join([self.input.name, *shown])})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IteratorCall):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.input.name, self.input.col_id, self.input.type,
                json.dumps(dict(self.args), sort_keys=True))


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _shown(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def _parts(data: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The name, input and options of a stored call; UnsafeDefinitionError if malformed."""
    column = data.get("input") if isinstance(data, Mapping) else None
    args = data.get("args", {}) if isinstance(data, Mapping) else None
    if (not isinstance(data, Mapping) or not isinstance(data.get("name"), str)
            or not isinstance(column, Mapping) or not isinstance(column.get("name"), str)
            or not isinstance(column.get("id"), int) or not isinstance(args, Mapping)):
        msg = (f"malformed iterator in a stored view definition: {data!r}; expected "
               "{'name': ..., 'input': {'name': ..., 'id': ...}, 'args': {...}}")
        raise UnsafeDefinitionError(msg)
    return data["name"], dict(column), dict(args)


__all__ = ["REQUIRED", "RESERVED", "IteratorCall", "IteratorDef", "builtin_names", "make_call",
           "options_of", "register", "resolve"]
