"""The built-in iterators: their constructors, options and output columns.

Each constructor checks its column and options at once (TypeMismatchError, InvalidOptionError)
and returns an :class:`~lakehouse.iterators.registry.IteratorCall`; the rows are made by the
modules named in each registration (:mod:`lakehouse.iterators.documents`, ``video``, ``images``,
``audio``), imported the first time an iterator runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lakehouse import types as T
from lakehouse.errors import InvalidOptionError
from lakehouse.exprs.nodes import ColumnRef
from lakehouse.iterators.registry import IteratorCall, IteratorDef, make_call, options_of, register

#: the ways document_splitter cuts a document, coarsest first
SEPARATORS = ("heading", "paragraph", "sentence", "token_limit", "char_limit")
LIMITS = ("token_limit", "char_limit")
#: the columns document_splitter can add to ``text``
DOCUMENT_METADATA = ("heading", "page", "start_char", "end_char")
_DOC, _FRAMES, _TILES = "document_splitter()", "frame_iterator()", "tile_iterator()"
_METADATA_TYPES = {"heading": T.Json, "page": T.Int, "start_char": T.Int, "end_char": T.Int}


# --- document_splitter -----------------------------------------------------------------------
def document_splitter(column: ColumnRef, *,
                      separators: Sequence[str] = ("heading", "paragraph", "sentence"),
                      limit: int | None = None, overlap: int = 0,
                      metadata: Sequence[str] = DOCUMENT_METADATA) -> IteratorCall:
    """Split each document into chunks: one row per chunk, for retrieval (RAG) and search.

    Reads a Document column (PDF, HTML, Markdown or text) or a String column (its text). Each
    chunk is a piece of the document's text as ``t.doc.text()`` gives it (a PDF's pages
    separated by a blank line, an HTML page one line per block, Markdown with its markup), so
    ``text == doc_text[start_char:end_char]``. A chunk never spans two PDF pages.

    ``separators`` say where to cut, any of:

    - ``"heading"``: at every heading (Markdown ``#`` and underlined headings, HTML ``<h1>``
      to ``<h6>``); the heading lines themselves go into ``heading``, not into chunks;
    - ``"paragraph"``: at every paragraph (a block: text between blank lines, a Markdown
      list or code block, an HTML block element's line);
    - ``"sentence"``: after ``.``, ``!`` or ``?`` (and closing quotes or brackets) followed
      by white space (a plain rule: "e.g. this" is cut after "e.g.");
    - ``"token_limit"``: pieces longer than ``limit`` tokens become windows of ``limit``
      tokens, each starting ``limit - overlap`` tokens after the one before. A token is a
      run of letters, digits and underscores, or one other non-space character (the regex
      ``\\w+|[^\\w\\s]``; no language model's tokenizer is needed);
    - ``"char_limit"``: the same with characters.

    Pieces are cut, never merged: with no separator a document is one chunk (one per PDF
    page). Chunks are stripped of surrounding white space, and empty ones are left out.

    Output columns: ``text`` (String), and those of ``metadata``: ``heading`` (Json: the path
    of headings above the chunk, outermost first, ``[]`` where there is none), ``page`` (Int:
    the PDF page from 1, null for other documents), ``start_char`` and ``end_char`` (Int).

    >>> docs = db.create_table("docs", {"doc": lh.Document})
    >>> page = (b"# Tides\\n\\nHigh water at noon. Low water at six.\\n\\n"
    ...         b"## Charts\\n\\nSee page 2.\\n")
    >>> _ = docs.insert([{"doc": page}], progress=False)
    >>> chunks = lh.iterators.document_splitter(docs.doc)
    >>> chunks
    document_splitter(doc)
    >>> for row in chunks.rows(page):
    ...     print(row)
    {'text': 'High water at noon.', 'heading': ['Tides'], 'page': None, 'start_char': 9, \
'end_char': 28}
    {'text': 'Low water at six.', 'heading': ['Tides'], 'page': None, 'start_char': 29, \
'end_char': 46}
    {'text': 'See page 2.', 'heading': ['Tides', 'Charts'], 'page': None, 'start_char': 59, \
'end_char': 70}
    >>> lh.iterators.document_splitter(docs.doc, separators=("char_limit",), overlap=5)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: document_splitter() needs limit= with char_limit: \
the most characters a chunk holds
    """
    return make_call("document_splitter", column,
                     {"separators": separators, "limit": limit, "overlap": overlap,
                      "metadata": metadata})


def _document_options(options: dict[str, Any]) -> dict[str, Any]:
    separators = _names("separators", options["separators"], SEPARATORS)
    limits = [s for s in separators if s in LIMITS]
    limit, overlap = options["limit"], options["overlap"]
    if len(limits) > 1:
        raise InvalidOptionError("document_splitter() takes one of token_limit and char_limit "
                                 "in separators: limit= counts tokens or characters")
    if limits:
        unit = "tokens" if limits[0] == "token_limit" else "characters"
        if limit is None:
            msg = (f"document_splitter() needs limit= with {limits[0]}: the most {unit} a "
                   "chunk holds")
            raise InvalidOptionError(msg)
        limit = _integer(_DOC, "limit", limit, minimum=1)
    elif limit is not None:
        raise InvalidOptionError("document_splitter(): limit= applies with 'token_limit' or "
                                 "'char_limit' in separators; add one of them")
    overlap = _integer(_DOC, "overlap", overlap, minimum=0)
    if overlap and not limits:
        raise InvalidOptionError("document_splitter(): overlap= applies with 'token_limit' or "
                                 "'char_limit' in separators; add one of them and limit=")
    if limits and overlap >= limit:
        raise InvalidOptionError(f"document_splitter(): overlap must be less than limit "
                                 f"({limit}), got {overlap}")
    return {"separators": separators, "limit": limit, "overlap": overlap,
            "metadata": _names("metadata", options["metadata"], DOCUMENT_METADATA)}


def _document_outputs(options: Mapping[str, Any]) -> dict[str, T.ColumnType]:
    return {"text": T.String, **{m: _METADATA_TYPES[m] for m in options["metadata"]}}


# --- frame_iterator --------------------------------------------------------------------------
def frame_iterator(column: ColumnRef, *, fps: float | None = None, every_n: int | None = None,
                   keyframes_only: bool = False) -> IteratorCall:
    """Extract frames from each video: one row per frame, as a JPEG image (quality 90).

    Choose the frames one way, or none for every frame:

    - ``fps=``: the first frame at or after each multiple of ``1 / fps`` seconds (``fps=1``:
      the frames at 0 s, 1 s, 2 s...; above the video's rate, every frame once). Frames
      before the next wanted time are not decoded when nothing needs them: the decoder
      starts at the keyframe before that time (what seeking gives, found while reading the
      packets, so it never goes back), and skips the frames that no other frame refers to;
    - ``every_n=``: frames 0, n, 2n... (every frame is decoded, to count them exactly);
    - ``keyframes_only=True``: the keyframes, the only frames decoded.

    Output columns: ``frame`` (Image, JPEG), ``frame_index`` (Int: the frame's number from 0
    in presentation order, counted from the video's packets, so it is exact for sampled
    frames too) and ``timestamp`` (Float: seconds from the start of the video stream).
    Frames are decoded and encoded one at a time: a long video never sits in memory decoded.

    >>> frames = lh.iterators.frame_iterator(clips.video, fps=1)
    >>> frames.output_columns()
    {'frame': lh.Image, 'frame_index': lh.Int, 'timestamp': lh.Float}
    >>> data = clips.select(clips.video).collect().item()
    >>> [(row["frame_index"], row["timestamp"]) for row in frames.rows(data)]
    [(0, 0.0), (25, 1.0), (50, 2.0), (75, 3.0), (100, 4.0), (125, 5.0)]
    >>> lh.iterators.frame_iterator(clips.video, fps=1, every_n=5)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: frame_iterator() chooses frames one way: give one of \
fps=, every_n= and keyframes_only=True, got fps=1, every_n=5
    """
    return make_call("frame_iterator", column,
                     {"fps": fps, "every_n": every_n, "keyframes_only": keyframes_only})


def _frame_options(options: dict[str, Any]) -> dict[str, Any]:
    fps, every_n, keyframes_only = options["fps"], options["every_n"], options["keyframes_only"]
    if not isinstance(keyframes_only, bool):
        raise InvalidOptionError(f"frame_iterator(): keyframes_only must be True or False, got "
                                 f"{keyframes_only!r}")
    chosen = [f"{k}={v!r}" for k, v in (("fps", fps), ("every_n", every_n),
                                        ("keyframes_only", keyframes_only or None))
              if v is not None]
    if len(chosen) > 1:
        msg = (f"frame_iterator() chooses frames one way: give one of fps=, every_n= and "
               f"keyframes_only=True, got {', '.join(chosen)}")
        raise InvalidOptionError(msg)
    return {"fps": None if fps is None else _positive(_FRAMES, "fps", fps),
            "every_n": None if every_n is None else _integer(_FRAMES, "every_n", every_n,
                                                             minimum=1),
            "keyframes_only": keyframes_only}


# --- tile_iterator ---------------------------------------------------------------------------
def tile_iterator(column: ColumnRef, *, tile_size: int | tuple[int, int],
                  overlap: int = 0) -> IteratorCall:
    """Cut each image into tiles: one row per tile, left to right, then top to bottom.

    ``tile_size`` is ``(width, height)`` in pixels, or one number for squares. Each tile
    starts ``tile_size - overlap`` pixels after the one before; the last tile of a row or
    column reaches the image's edge and is cut there (smaller), so the tiles cover the image
    exactly. Tiles keep the image's format (JPEG stays JPEG, PNG stays PNG).

    Output columns: ``tile`` (Image) and ``box`` (Json: ``[left, top, right, bottom]`` in
    the image's pixels, as ``t.image.crop(box)`` takes it).

    >>> tiles = lh.iterators.tile_iterator(pics.image, tile_size=200)
    >>> tiles
    tile_iterator(image, tile_size=(200, 200))
    >>> photo = pics.select(pics.image).collect()["image"][0]  # 512 x 512
    >>> [row["box"] for row in tiles.rows(photo)][:4]
    [[0, 0, 200, 200], [200, 0, 400, 200], [400, 0, 512, 200], [0, 200, 200, 400]]
    >>> lh.iterators.tile_iterator(pics.image, tile_size=(0, 10))
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: tile_iterator(): tile_size must be at least 1, got 0
    """
    return make_call("tile_iterator", column, {"tile_size": tile_size, "overlap": overlap})


def _tile_options(options: dict[str, Any]) -> dict[str, Any]:
    size = options["tile_size"]
    pair = list(size) if isinstance(size, list | tuple) else [size, size]
    if len(pair) != 2:
        raise InvalidOptionError(f"tile_iterator(): tile_size is (width, height) or one "
                                 f"number, got {size!r}")
    width, height = (_integer(_TILES, "tile_size", n, minimum=1) for n in pair)
    overlap = _integer(_TILES, "overlap", options["overlap"], minimum=0)
    if overlap >= min(width, height):
        raise InvalidOptionError(f"tile_iterator(): overlap must be less than the tile's "
                                 f"width and height ({width} x {height}), got {overlap}")
    return {"tile_size": [width, height], "overlap": overlap}


# --- audio_splitter --------------------------------------------------------------------------
def audio_splitter(column: ColumnRef, *, duration: float, overlap: float = 0.0) -> IteratorCall:
    """Cut each audio file (or a video's sound track) into clips: one row per clip.

    Each clip lasts ``duration`` seconds and starts ``duration - overlap`` seconds after the
    one before; the last one ends with the sound (shorter). Clips are WAV files (16-bit PCM,
    the source's sample rate and channels), cut at exact sample positions.

    Output columns: ``clip`` (Audio), ``start_time`` and ``end_time`` (Float: seconds from
    the first sample).

    >>> clips_of = lh.iterators.audio_splitter(sounds.sound, duration=2.0, overlap=0.5)
    >>> data = sounds.select(sounds.sound).collect().item()  # 7.1 seconds
    >>> [(round(row["start_time"], 2), round(row["end_time"], 2))
    ...  for row in clips_of.rows(data)]
    [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0), (4.5, 6.5), (6.0, 7.1)]
    >>> lh.iterators.audio_splitter(sounds.sound, duration=-1)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: audio_splitter(): duration must be a number above 0, \
got -1
    """
    return make_call("audio_splitter", column, {"duration": duration, "overlap": overlap})


def _audio_options(options: dict[str, Any]) -> dict[str, Any]:
    duration = _positive("audio_splitter()", "duration", options["duration"])
    overlap = options["overlap"]
    if not _is_number(overlap) or not 0 <= overlap < duration:
        raise InvalidOptionError(f"audio_splitter(): overlap must be at least 0 and less than "
                                 f"duration ({duration}), got {overlap!r}")
    return {"duration": duration, "overlap": float(overlap)}


# --- checks shared by the options ------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _positive(caller: str, name: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise InvalidOptionError(f"{caller}: {name} must be a number above 0, got {value!r}")
    return float(value)


def _integer(caller: str, name: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidOptionError(f"{caller}: {name} must be a whole number, got {value!r}")
    if value < minimum:
        raise InvalidOptionError(f"{caller}: {name} must be at least {minimum}, got {value}")
    return value


def _names(option: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    """A list of names from ``allowed`` (a str is one name), in ``allowed``'s order."""
    given = [value] if isinstance(value, str) else value
    if not isinstance(given, list | tuple) or any(v not in allowed for v in given):
        msg = (f"document_splitter(): {option} takes names among "
               f"{', '.join(map(repr, allowed))}, got {value!r}")
        raise InvalidOptionError(msg)
    return [name for name in allowed if name in given]




for _constructor, _kinds, _normalise, _outputs, _run in (
        (document_splitter, ("document", "string"), _document_options, _document_outputs,
         "lakehouse.iterators.documents:chunks"),
        (frame_iterator, ("video",), _frame_options,
         lambda _: {"frame": T.Image, "frame_index": T.Int, "timestamp": T.Float},
         "lakehouse.iterators.video:frames"),
        (tile_iterator, ("image",), _tile_options, lambda _: {"tile": T.Image, "box": T.Json},
         "lakehouse.iterators.images:tiles"),
        (audio_splitter, ("audio", "video"), _audio_options,
         lambda _: {"clip": T.Audio, "start_time": T.Float, "end_time": T.Float},
         "lakehouse.iterators.audio:clips")):
    register(IteratorDef(_constructor.__name__, _kinds, options_of(_constructor), _normalise,
                         _outputs, _run))

__all__ = ["DOCUMENT_METADATA", "LIMITS", "SEPARATORS", "audio_splitter", "document_splitter",
           "frame_iterator", "tile_iterator"]
