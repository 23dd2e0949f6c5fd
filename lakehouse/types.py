"""Logical column types and their Arrow and Polars counterparts.

A logical type says what a column holds (``lh.Int``, ``lh.Json``, ``lh.Array[(3,), "float32"]``);
its Arrow type says how Lance stores it. Types serialise to small JSON objects kept in each
column's field metadata, so a table's schema can be rebuilt from the Lance manifest alone. Media
types (``lh.Image``, ``lh.Video``, ``lh.Audio``, ``lh.Document``) are stored in Lance blob columns;
how their values are checked and encoded is registered by their functions modules
(:func:`register_media`), which sit above this layer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
from lance.blob import blob_field

from lakehouse import providers
from lakehouse.errors import InvalidOptionError, TypeMismatchError, check_choice

_ARRAY_DTYPES = {
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "bool": pa.bool_(),
}


@dataclasses.dataclass(frozen=True)
class ColumnType:
    """Base of all logical types; instances are immutable and compare by value.

    >>> lh.Int == lh.Int(), lh.Int == lh.Float, isinstance(lh.Image, lh.ColumnType)
    (True, False, True)
    >>> lh.Int(nullable=False), lh.Array[(3,), "float32"]
    (lh.Required[Int], lh.Array[(3,), float32])
    """

    nullable: bool = True
    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[ColumnType]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            ColumnType._registry[cls.kind] = cls

    # --- storage -------------------------------------------------------------------------------
    def arrow_type(self) -> pa.DataType:
        """The Arrow type Lance stores values of this type as.

        >>> lh.Int.arrow_type(), lh.Array[(3,), "float32"].arrow_type()
        (DataType(int64), FixedSizeListType(fixed_size_list<item: float>[3]))
        """
        raise NotImplementedError

    def polars_type(self) -> pl.DataType:
        """The Polars type of this type's values in query results.

        >>> lh.Int.polars_type(), lh.Timestamp.polars_type()
        (Int64, Datetime(time_unit='us', time_zone='UTC'))
        """
        return _polars_type(self.arrow_type())

    def to_json(self) -> dict[str, Any]:
        """The small JSON object a column's field metadata stores for its type.

        >>> lh.Array[(3,), "float32"].to_json()
        {'kind': 'array', 'shape': [3], 'dtype': 'float32'}
        >>> lh.Required(lh.Int).to_json()
        {'kind': 'int', 'nullable': False}
        """
        data = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "nullable" and value:
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> ColumnType:
        """The type :meth:`to_json` stored; TypeMismatchError for a kind or field it does not
        know.

        >>> lh.ColumnType.from_json({"kind": "int", "nullable": False})
        lh.Required[Int]
        """
        kind = data.get("kind")
        cls = ColumnType._registry.get(str(kind))
        if cls is None:
            raise TypeMismatchError(f"unknown column type {kind!r} in a stored table definition")
        kwargs = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in data.items() if k != "kind"}
        try:
            return cls(**kwargs)
        except (TypeError, InvalidOptionError) as exc:  # a field it lacks, a value out of range
            raise TypeMismatchError(f"malformed {kind} type in a stored table definition: {exc}") \
                from None

    # --- validation ----------------------------------------------------------------------------
    def coerce(self, value: Any) -> Any:
        """Return ``value`` as the Python value Arrow stores for this type, or raise TypeError.

        >>> lh.Float.coerce(3), lh.Timestamp.coerce("2024-05-01T12:00").isoformat()
        (3.0, '2024-05-01T12:00:00+00:00')
        >>> lh.Int.coerce("3")
        Traceback (most recent call last):
        TypeError: expected an integer, got str '3'
        """
        raise NotImplementedError

    def storage_field(self, name: str, metadata: dict[bytes, str]) -> pa.Field:
        """The Lance field that stores a column of this type.

        >>> lh.Int.storage_field("year", {})
        pyarrow.Field<year: int64>
        """
        return pa.field(name, self.arrow_type(), nullable=self.nullable, metadata=metadata)

    def is_numeric(self) -> bool:
        """Whether arithmetic applies to the type's values (Int and Float).

        >>> lh.Int.is_numeric(), lh.String.is_numeric()
        (True, False)
        """
        return False

    @property
    def is_media(self) -> bool:
        """Whether values are media files (Image, Video, Audio, Document), stored as blobs.

        >>> lh.Image.is_media, lh.Json.is_media
        (True, False)
        """
        return False

    def required(self) -> ColumnType:
        """This type with nulls refused on insert.

        >>> lh.String.required()
        lh.Required[String]
        """
        return dataclasses.replace(self, nullable=False)

    def __call__(self, *, nullable: bool = True) -> ColumnType:
        return dataclasses.replace(self, nullable=nullable)

    def __str__(self) -> str:
        name = self.kind.capitalize()
        return name if self.nullable else f"Required[{name}]"

    def __repr__(self) -> str:
        return f"lh.{self}"

    def same_kind(self, other: ColumnType) -> bool:
        """Whether two types are the same but for nullability.

        >>> lh.Int.same_kind(lh.Required(lh.Int)), lh.Int.same_kind(lh.Float)
        (True, False)
        """
        return self == other or \
            dataclasses.replace(self, nullable=True) == dataclasses.replace(other, nullable=True)


@dataclasses.dataclass(frozen=True, repr=False)
class StringType(ColumnType):
    kind: ClassVar[str] = "string"

    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class IntType(ColumnType):
    kind: ClassVar[str] = "int"

    def arrow_type(self) -> pa.DataType:
        return pa.int64()

    def is_numeric(self) -> bool:
        return True

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            raise TypeError(f"expected an integer, got {_describe(value)}")
        if isinstance(value, int | np.integer):
            if not -(2**63) <= int(value) < 2**63:
                raise TypeError(f"{int(value)} is out of range for a 64-bit Int")
            return int(value)
        raise TypeError(f"expected an integer, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class FloatType(ColumnType):
    kind: ClassVar[str] = "float"

    def arrow_type(self) -> pa.DataType:
        return pa.float64()

    def is_numeric(self) -> bool:
        return True

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            raise TypeError(f"expected a number, got {_describe(value)}")
        if isinstance(value, int | float | np.integer | np.floating):
            return float(value)
        raise TypeError(f"expected a number, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class BoolType(ColumnType):
    kind: ClassVar[str] = "bool"

    def arrow_type(self) -> pa.DataType:
        return pa.bool_()

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        raise TypeError(f"expected a bool, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class TimestampType(ColumnType):
    """A point in time, stored as microseconds in UTC; naive datetimes are taken as UTC."""

    kind: ClassVar[str] = "timestamp"

    def arrow_type(self) -> pa.DataType:
        return pa.timestamp("us", tz="UTC")

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise TypeError(f"expected an ISO 8601 timestamp, got {value!r}") from None
        if isinstance(value, np.datetime64):
            value = value.astype("datetime64[us]").item()
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC)
        raise TypeError(f"expected a datetime, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class DateType(ColumnType):
    kind: ClassVar[str] = "date"

    def arrow_type(self) -> pa.DataType:
        return pa.date32()

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise TypeError(f"expected an ISO 8601 date, got {value!r}") from None
        if isinstance(value, dt.datetime):
            raise TypeError(f"expected a date, got a datetime {value!r}")
        if isinstance(value, dt.date):
            return value
        raise TypeError(f"expected a date, got {_describe(value)}")


@dataclasses.dataclass(frozen=True, repr=False)
class JsonType(ColumnType):
    """Any JSON value, stored as its JSON text (a plain Arrow string) so every reader can use it."""

    kind: ClassVar[str] = "json"

    def arrow_type(self) -> pa.DataType:
        return pa.string()

    def coerce(self, value: Any) -> Any:
        try:
            return json.dumps(value, allow_nan=False, separators=(",", ":"), default=_json_default)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"expected a JSON-serialisable value: {exc}") from None


@dataclasses.dataclass(frozen=True, repr=False)
class ArrayType(ColumnType):
    """An n-dimensional array. Fixed shapes are stored as nested fixed-size lists, so a 1-d float32
    array of length d is the ``fixed_size_list<float32, d>`` that vector indexes use; a ``None``
    dimension becomes a variable-length list."""

    kind: ClassVar[str] = "array"
    shape: tuple[int | None, ...] | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in _ARRAY_DTYPES:
            raise TypeMismatchError(
                f"unsupported array dtype {self.dtype!r}; use one of {sorted(_ARRAY_DTYPES)}"
            )
        if self.shape is not None and any(d is not None and d < 1 for d in self.shape):
            raise InvalidOptionError(
                f"array shape {self.shape}: each dimension must be a positive integer or None"
            )

    def __getitem__(self, spec: Any) -> ArrayType:
        """``lh.Array[(3,), "float32"]`` or ``lh.Array[(None, 2), lh.Int]``."""
        shape, dtype = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, self.dtype)
        return ArrayType(nullable=self.nullable, shape=_shape(shape), dtype=_dtype_name(dtype))

    def arrow_type(self) -> pa.DataType:
        inner: pa.DataType = _ARRAY_DTYPES[self.dtype]
        for dim in reversed(self.shape or (None,)):
            inner = pa.list_(inner) if dim is None else pa.list_(inner, dim)
        return inner

    def coerce(self, value: Any) -> Any:
        try:
            arr = np.asarray(value, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"expected an array of {self.dtype}: {exc}") from None
        if self.shape is not None:
            ok = arr.ndim == len(self.shape) and all(
                want is None or want == got for want, got in zip(self.shape, arr.shape, strict=True)
            )
            if not ok:
                raise TypeError(f"expected an array of shape {self.shape}, got shape {arr.shape}")
        return arr.tolist()

    def __str__(self) -> str:
        return f"Array[{self.shape}, {self.dtype}]"


_STORE = ("copy", "reference")

# check(data, column type, reuse): raise ValueError if ``data`` is not a valid value; ``reuse``
# says computed columns of the same write will read the value, so what was decoded may be kept
Checker = Callable[[bytes, Any, bool], None]


@dataclasses.dataclass(frozen=True)
class MediaHooks:
    """How values of one media kind are validated and encoded, registered by the module that
    holds the kind's functions (``lakehouse.functions.image`` for images).

    ``check`` validates every inserted value; ``check_source`` (optional) also sees the path or
    URI a value was read from (documents must be named like one); ``encode`` (optional) turns an
    in-memory value (a PIL image, a numpy array) into bytes, returning None for values it does
    not know."""

    check: Checker
    check_source: Callable[[str, bytes], None] | None = None
    encode: Callable[[Any], bytes | None] | None = None


_MEDIA_HOOKS: dict[str, MediaHooks] = {}


def register_media(kind: str, hooks: MediaHooks) -> None:
    """Set how values of the media ``kind`` are checked and encoded."""
    _MEDIA_HOOKS[kind] = hooks


def _media_hooks(kind: str) -> MediaHooks:
    providers.load(kind)
    found = _MEDIA_HOOKS.get(kind)
    if found is None:
        message = (f"no checker is registered for {kind} values; import the module that "
                   f"defines {kind} functions (lakehouse.functions.{kind})")
        raise TypeMismatchError(message)
    return found


@dataclasses.dataclass(frozen=True, repr=False)
class MediaType(ColumnType):
    """Base of the media types. Values travel through the executor and query results as their
    encoded bytes (JPEG, MP4, PDF, ...; ``pl.Binary``); Lance stores them in a blob column.

    ``store="copy"`` (the default) copies every object's bytes into the table, so the table is
    complete on its own; ``store="reference"`` keeps only the source URI of values inserted as
    paths or URIs, and fetches them when read. Both record the source URI (``t.col.fileurl``).
    """

    store: str = "copy"

    def __post_init__(self) -> None:
        check_choice("store", self.store, _STORE)

    @property
    def is_media(self) -> bool:
        return True

    def arrow_type(self) -> pa.DataType:
        return pa.large_binary()

    def storage_field(self, name: str, metadata: dict[bytes, str]) -> pa.Field:
        return blob_field(name, nullable=self.nullable).with_metadata(metadata)

    def __call__(self, *, nullable: bool = True, store: str | None = None) -> ColumnType:  # type: ignore[override]
        return dataclasses.replace(self, nullable=nullable, store=store or self.store)

    def check(self, data: bytes, *, reuse: bool = False) -> None:
        """Raise ValueError if ``data`` is not a valid object of this type (say, a truncated
        image); called for every inserted value. ``reuse``: computed columns of the same write
        will read the value, so the checker may keep what it decoded for them."""
        _media_hooks(self.kind).check(data, self, reuse)

    def check_source(self, source: str, data: bytes) -> None:
        """Raise ValueError if ``data``, read from the path or URI ``source``, may not be a
        value of this type by its name (a document must be named or sniffed as one)."""
        check = _media_hooks(self.kind).check_source
        if check is not None:
            check(source, data)

    def coerce(self, value: Any) -> Any:
        """Encoded bytes for an in-memory value (bytes; for images also a PIL image or a numpy
        array). Paths and URIs are fetched by the media intake, not here."""
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        encode = _media_hooks(self.kind).encode
        encoded = encode(value) if encode is not None else None
        if encoded is not None:
            return encoded
        raise TypeError(f"expected {self.kind} bytes, got {_describe(value)}")

    def _details(self) -> list[str]:
        return [] if self.store == "copy" else ["store=reference"]

    def __str__(self) -> str:
        details = self._details()
        name = self.kind.capitalize() + (f"[{', '.join(details)}]" if details else "")
        return name if self.nullable else f"Required[{name}]"


@dataclasses.dataclass(frozen=True, repr=False)
class ImageType(MediaType):
    """An image in a raster format Pillow decodes itself (PNG, JPEG, GIF, WebP, BMP, TIFF, ...;
    see :data:`lakehouse.functions.image.RASTER_FORMATS`), optionally constrained to a size and
    a mode: ``lh.Image[(640, 480), "RGB"]``, ``lh.Image["RGB"]``."""

    kind: ClassVar[str] = "image"
    size: tuple[int, int] | None = None
    mode: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise TypeMismatchError(f"an image size is (width, height), got {self.size!r}")

    def __getitem__(self, spec: Any) -> ImageType:
        size, mode = self.size, self.mode
        nested = isinstance(spec, tuple) and any(isinstance(p, str | tuple | list) for p in spec)
        for part in spec if nested else (spec,):
            if isinstance(part, str):
                mode = part
            else:
                size = (int(part[0]), int(part[1]))
        return dataclasses.replace(self, size=size, mode=mode)

    def _details(self) -> list[str]:
        return [str(d) for d in (self.size, self.mode) if d is not None] + super()._details()


@dataclasses.dataclass(frozen=True, repr=False)
class VideoType(MediaType):
    """A video file in any container PyAV (FFmpeg) reads: MP4, WebM, MKV, ..."""

    kind: ClassVar[str] = "video"


@dataclasses.dataclass(frozen=True, repr=False)
class AudioType(MediaType):
    """An audio file in any format PyAV (FFmpeg) reads: WAV, MP3, OGG, FLAC, ..."""

    kind: ClassVar[str] = "audio"


@dataclasses.dataclass(frozen=True, repr=False)
class DocumentType(MediaType):
    """A document: PDF, HTML, Markdown or plain text."""

    kind: ClassVar[str] = "document"


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    if isinstance(shape, int):
        return (shape,)
    return tuple(None if d is None else int(d) for d in shape)


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, ColumnType):
        return {"float": "float64", "int": "int64", "bool": "bool"}.get(dtype.kind, dtype.kind)
    return np.dtype(dtype).name if not isinstance(dtype, str) else dtype


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


String = StringType()
Int = IntType()
Float = FloatType()
Bool = BoolType()
Timestamp = TimestampType()
Date = DateType()
Json = JsonType()
Array = ArrayType()
Image = ImageType()
Video = VideoType()
Audio = AudioType()
Document = DocumentType()


def Required(t: ColumnType) -> ColumnType:
    """A column type whose values may not be null: ``lh.Required(lh.Int)``.

    >>> ids = db.create_table("ids", {"id": lh.Required(lh.Int)})
    >>> ids.insert([{"id": None}], progress=False)
    Traceback (most recent call last):
    lakehouse.errors.TypeMismatchError: ...
    """
    return t.required()


_PYTHON_TYPES: dict[Any, ColumnType] = {
    str: String,
    int: Int,
    float: Float,
    bool: Bool,
    dt.datetime: Timestamp,
    dt.date: Date,
    dict: Json,
    list: Json,
}


def from_python_type(py_type: Any) -> ColumnType | None:
    """The logical type for a Python annotation (``str`` -> String), or None if unknown."""
    if isinstance(py_type, ColumnType):
        return py_type
    try:
        return _PYTHON_TYPES.get(getattr(py_type, "__origin__", py_type))
    except TypeError:  # unhashable, such as [lh.Int]: not a type
        return None


def parse_type(spec: Any, *, column: str) -> ColumnType:
    """The column type ``spec`` names: a type (``lh.Int``), a Python type (``int``) or a type
    written as text, as the command line's ``--schema`` takes it: a kind (``"int"``,
    ``"image"``), or an array of numbers ``"array[D]"`` / ``"array[D, dtype]"`` (D numbers,
    float32 unless a dtype is given; several dimensions and ``*`` for any length:
    ``"array[*, 3, int8]"``; ``describe()``'s ``"Array[(3,), float32]"`` reads back too).
    Anything else is a TypeMismatchError naming ``column`` and the types there are (an
    InvalidOptionError for an array dimension below 1).

    >>> parse_type("array[3]", column="v")
    lh.Array[(3,), float32]
    >>> parse_type("array[*, 2, int8]", column="v")
    lh.Array[(None, 2), int8]
    """
    if isinstance(spec, ColumnType):
        return spec
    found = _type_from_text(spec, column) if isinstance(spec, str) else from_python_type(spec)
    if found is not None:
        return found
    raise TypeMismatchError(
        f"column {column!r}: {spec!r} is not a column type; use lh.String, lh.Int, lh.Float, "
        "lh.Bool, lh.Timestamp, lh.Date, lh.Json, lh.Array[shape, dtype], lh.Image, lh.Video, "
        "lh.Audio or lh.Document (as text: string, int, float, bool, timestamp, date, json, "
        "array[D] or array[D, dtype], image, video, audio, document)"
    )


def _type_from_text(text: str, column: str) -> ColumnType | None:
    """The type a text names (see :func:`parse_type`), or None when it names none; an
    ``array[...]`` that is not a valid array type raises, saying how to write one."""
    name = "".join(text.split()).lower()
    if name in ColumnType._registry:
        return ColumnType._registry[name]()
    if not (name.startswith("array[") and name.endswith("]")):
        return None
    any_length = ("*", "none")
    parts = [p for p in name[6:-1].replace("(", "").replace(")", "").split(",") if p]
    dtype = parts.pop() if parts and not (parts[-1].isdigit() or parts[-1] in any_length) \
        else "float32"
    if not parts or not all(p.isdigit() or p in any_length for p in parts):
        raise TypeMismatchError(
            f"column {column!r}: {text!r} is not an array type; give its length and, unless "
            "float32, its dtype: 'array[512]', 'array[512, float16]', or 'array[*, 3]' "
            "(* for any length)")
    shape = None if parts == ["none"] and "(" not in name \
        else tuple(None if p in any_length else int(p) for p in parts)  # None: str(lh.Array)
    try:
        return Array[shape, dtype]
    except (TypeMismatchError, InvalidOptionError) as exc:  # a dtype, a dimension below 1
        raise type(exc)(f"column {column!r}: {exc}") from None


def numeric_result(left: ColumnType, right: ColumnType) -> ColumnType:
    """The type of ``left op right`` for arithmetic: Int op Int is Int, otherwise Float."""
    return Int if left.kind == right.kind == "int" else Float


@functools.lru_cache(maxsize=512)
def _polars_type(arrow_type: pa.DataType) -> pl.DataType:
    """The Polars type Arrow values of ``arrow_type`` convert to; asked for every computed
    column of every batch, so each answer is kept."""
    return pl.from_arrow(pa.array([], arrow_type)).dtype  # type: ignore[union-attr]
