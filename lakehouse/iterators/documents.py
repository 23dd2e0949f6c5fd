"""The rows of ``document_splitter``: chunks of a document's text, with headings and offsets.

A document is first read into its text, as ``t.doc.text()`` gives it (the helpers of
:mod:`lakehouse.functions.document`), and a list of *blocks*: spans of that text, each with the
heading path above it, its PDF page, and whether it is a heading itself.

- PDF (pypdf): each page's text; its paragraphs are the spans between blank lines.
- HTML (BeautifulSoup): each line of the text is a block (a block element); a line that is the
  text of an ``<h1>``...``<h6>`` element is that heading.
- Markdown (markdown-it-py, CommonMark with tables): each top-level block (paragraph, list,
  code block, table, quote; rules left out) spans its source lines; headings are ``#`` and
  underlined headings.
- Plain text: paragraphs between blank lines.

Then the separators cut (:func:`split`): blocks are grouped (a new group at a heading, a page,
or every block with ``"paragraph"``), groups are cut into sentences, and pieces longer than the
limit into windows. Every cut is a pair of offsets into the text, so a chunk's text is always
``text[start:end]``.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from lakehouse.functions.document import detect_format, html_text, pdf_page_texts, read_pdf

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
#: a token of ``token_limit``: a run of letters, digits and underscores, or one other character
TOKEN = re.compile(r"\w+|[^\w\s]")
#: a sentence: from a non-space character to ., ! or ? (and closing quotes or brackets)
#: followed by white space, or to the end of the piece
SENTENCE = re.compile(r"\S.*?(?:[.!?]+[\"'\u201d\u2019)\]]*(?=\s)|\Z)", re.DOTALL)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")  # ends a paragraph of plain text or a PDF page
_NEWLINE = re.compile(r"\r\n?|\n")  # line breaks as markdown-it counts them
_NON_SPACE = re.compile(r"\S")
_MARKDOWN = MarkdownIt("commonmark").enable("table")
_EVERY_COLUMN = ("text", "heading", "page", "start_char", "end_char")


class Span(NamedTuple):
    """A span ``[start, end)`` of the document's text, with the headings above it and its PDF
    page; ``is_heading`` for a heading's own line. (A tuple: one is made per block and per
    chunk, and a tuple is the cheapest immutable record to make.)"""

    start: int
    end: int
    heading: tuple[str, ...] = ()
    page: int | None = None
    is_heading: bool = False


def chunks(value: bytes | str, *, separators: Sequence[str], limit: int | None, overlap: int,
           metadata: Sequence[str]) -> Iterator[dict[str, Any]]:
    """One row per chunk of the document ``value`` (a file's bytes, or a str): ``text`` and the
    ``metadata`` columns; ValueError if it is not a readable document."""
    text, blocks = parse(value)
    columns = ("text", *metadata)
    for start, end, group in split(text, blocks, separators, limit, overlap):
        row = {"text": text[start:end], "heading": list(group.heading), "page": group.page,
               "start_char": start, "end_char": end}
        yield row if columns == _EVERY_COLUMN else {column: row[column] for column in columns}


# --- reading: the text and its blocks ------------------------------------------------------------
def parse(value: bytes | str) -> tuple[str, list[Span]]:
    """The document's text (as ``t.doc.text()`` gives it) and its blocks, in order.

    >>> text, blocks = parse("# Tides\\n\\nHigh water.\\n")
    >>> [(text[b.start:b.end].strip(), b.heading, b.is_heading) for b in blocks]
    [('# Tides', ('Tides',), True), ('High water.', ('Tides',), False)]
    """
    data = value.encode() if isinstance(value, str) else value
    kind = detect_format(data)
    if kind == "pdf":
        return _pdf(data)
    text = data.decode("utf-8-sig")  # detect_format checked that it is UTF-8
    if kind == "html":
        return _html(text)
    if kind == "markdown":
        return text, _markdown(text)
    return text, list(_paragraphs(text, 0, len(text)))


def _paragraphs(text: str, start: int, end: int, page: int | None = None) -> Iterator[Span]:
    for gap in _BLANK_LINE.finditer(text, start, end):
        yield Span(start, gap.start(), page=page)
        start = gap.end()
    yield Span(start, end, page=page)


def _pdf(data: bytes) -> tuple[str, list[Span]]:
    pages = pdf_page_texts(read_pdf(data))
    text = "\n\n".join(pages)  # as t.doc.text() joins them
    blocks: list[Span] = []
    start = 0
    for number, page in enumerate(pages, 1):
        blocks += _paragraphs(text, start, start + len(page), number)
        start += len(page) + 2
    return text, blocks


def _html(source: str) -> tuple[str, list[Span]]:
    soup = BeautifulSoup(source, "html.parser")
    text = html_text(soup)  # leaves the soup without scripts and styles
    levels: dict[str, deque[int]] = defaultdict(deque)  # heading text -> levels, in order
    for tag in soup.find_all(HEADINGS):
        title = " ".join(tag.get_text().split())
        if title:
            levels[title].append(int(tag.name[1]))
    path = _Headings()
    blocks = []
    start = 0
    for line in text.split("\n"):
        found = levels.get(line)
        level = found.popleft() if found else None
        if level is not None:
            path.enter(level, line)
        blocks.append(Span(start, start + len(line), path.titles, is_heading=level is not None))
        start += len(line) + 1
    return text, blocks


def _markdown(text: str) -> list[Span]:
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    tokens = _MARKDOWN.parse(text)
    path = _Headings()
    blocks = []
    for i, token in enumerate(tokens):
        if token.level or token.map is None or token.nesting < 0 or token.type == "hr":
            continue
        first, last = (starts[line] if line < len(starts) else len(text) for line in token.map)
        heading = token.type == "heading_open"
        if heading:
            path.enter(int(token.tag[1]), tokens[i + 1].content.strip())
        blocks.append(Span(first, last, path.titles, is_heading=heading))
    return blocks


class _Headings:
    """The path of headings above the current block, outermost first."""

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        if title:
            self._path = [(lv, t) for lv, t in self._path if lv < level] + [(level, title)]

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._path)


# --- cutting ---------------------------------------------------------------------------------
def split(text: str, blocks: Iterable[Span], separators: Sequence[str], limit: int | None,
          overlap: int) -> Iterator[tuple[int, int, Span]]:
    """The chunks of ``text`` as ``(start, end, group)``: its blocks grouped and cut by
    ``separators`` (see :func:`lakehouse.iterators.document_splitter`), stripped, empty ones
    left out; ``group`` is the span they were cut from, with its headings and page.

    >>> text = "One. Two three four five.\\n\\nSix."
    >>> [text[s:e] for s, e, _ in split(text, [Span(0, len(text))], ["sentence"], None, 0)]
    ['One.', 'Two three four five.', 'Six.']
    >>> [text[s:e] for s, e, _ in split(text, [Span(0, len(text))], ["token_limit"], 4, 1)]
    ['One. Two three', 'three four five.', '.\\n\\nSix.']
    """
    sentences = "sentence" in separators
    for group in _groups(text, blocks, separators):
        start, end = _stripped(text, group.start, group.end)  # not empty: see _groups
        # a sentence starts and ends with a non-space character: it needs no stripping
        pieces = map(re.Match.span, SENTENCE.finditer(text, start, end)) if sentences \
            else [(start, end)]
        if limit is None:
            for first, last in pieces:
                yield first, last, group
            continue
        for piece in pieces:
            for first, last in _windows(text, *piece, separators, limit, overlap):
                first, last = _stripped(text, first, last)
                if first < last:
                    yield first, last, group


def _groups(text: str, blocks: Iterable[Span], separators: Sequence[str]) -> Iterator[Span]:
    """Runs of blocks merged into one span, cut at headings (with ``"heading"``, the heading
    lines left out), at every block (``"paragraph"``) and at every page; blocks of white
    space left out, so each run holds a non-space character."""
    by_heading, by_block = "heading" in separators, "paragraph" in separators
    current: Span | None = None  # the first block of the group
    end = 0  # where the group's last block ends
    for block in blocks:
        if block.is_heading and by_heading:
            if current is not None:
                yield Span(current.start, end, current.heading, current.page)
            current = None
            continue
        if not _NON_SPACE.search(text, block.start, block.end):
            continue
        if current is None or by_block or block.page != current.page:
            if current is not None:
                yield Span(current.start, end, current.heading, current.page)
            current = block
        end = block.end
    if current is not None:
        yield Span(current.start, end, current.heading, current.page)


def _windows(text: str, start: int, end: int, separators: Sequence[str], limit: int,
             overlap: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` cut into windows of ``limit`` tokens or characters that overlap by
    ``overlap``, when it is longer than that; else as it is."""
    step = limit - overlap
    if "char_limit" in separators:
        for first in range(start, max(end - overlap, start + 1), step):
            yield first, min(first + limit, end)
        return
    bounds = [m.span() for m in TOKEN.finditer(text, start, end)]
    for i in range(0, max(len(bounds) - overlap, 1), step):
        window = bounds[i:i + limit]
        yield (window[0][0], window[-1][1]) if window else (start, end)


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
