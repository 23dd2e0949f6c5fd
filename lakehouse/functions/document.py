"""Document functions: ``t.doc.text()``, ``t.doc.format``, ``t.doc.page_count``, ...

A document is a PDF (read with pypdf), an HTML page (read with BeautifulSoup), Markdown or plain
UTF-8 text. Values travel as the bytes of their file, and the format is told from the content,
not from a file name: in-memory bytes have none.

A document read from a path or URI must also say what it is (:func:`check_named`), because plain
text looks like any other text: a credentials file, a key or a JSON answer from a server would
otherwise be copied into the table as "text". Its name has a document extension (``.pdf``,
``.html``, ``.htm``, ``.xhtml``, ``.md``, ``.markdown``, ``.txt``, ``.text``) that agrees with its
content, or, with any other name (a URL such as ``https://example.com/article``), the content is
a PDF (it starts with ``%PDF-``) or an HTML page. Bytes inserted as values are taken on their
content alone: whoever holds them chose them.
"""

from __future__ import annotations

import io
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup
from pypdf import PasswordType, PdfReader

from lakehouse import types as T
from lakehouse.functions.media import media_check, media_function

FORMATS = ("pdf", "html", "markdown", "text")
_HEAD = 4096  # bytes looked at to tell the format
_HTML_START = re.compile(
    rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|link|style|script"
    rb"|div|p|table|section|article|main|header|nav|h[1-6]|ul|ol)[\s/>]",
    re.IGNORECASE | re.DOTALL)
# headings, fenced code, links, bold text or table rows: what tells Markdown from plain text.
# Each pattern starts with a literal ("\n" before the line patterns, which also match at the
# start), which the regex engine looks for fast: 10x faster than one pattern anchored with ^.
_MARKDOWN_LINE = r"(?:#{1,6}\s+\S|```|~~~|\|.+\|\s*$)"
_MARKDOWN = (re.compile(_MARKDOWN_LINE, re.MULTILINE).match,
             re.compile(r"\n" + _MARKDOWN_LINE, re.MULTILINE).search,
             re.compile(r"\[[^\]\n]+\]\([^)\s]+\)").search, re.compile(r"\*\*[^*\n]+\*\*").search)
_NOT_A_DOCUMENT = "not a PDF, HTML, Markdown or UTF-8 text document"
#: the extensions a document read from a path or URI may have, and the format each promises
DOCUMENT_EXTENSIONS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html",
                       ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text"}
_HTML_SKIPPED = ["script", "style", "noscript", "template", "head"]
_HTML_BLOCKS = ["p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
                "section", "article", "header", "footer", "nav", "pre", "blockquote", "table",
                "ul", "ol", "dt", "dd", "hr"]


def detect_format(data: bytes) -> str:
    """``"pdf"``, ``"html"``, ``"markdown"`` or ``"text"``, told from the content; ValueError if
    the bytes are none of these (binary data, text that is not UTF-8)."""
    head = data[:_HEAD].lstrip(b"\xef\xbb\xbf \t\r\n\f")
    if head.startswith(b"%PDF-"):
        return "pdf"
    text = _text_of(data)
    if _HTML_START.match(head):
        return "html"
    return "markdown" if any(find(text) for find in _MARKDOWN) else "text"


def check_named(source: str, data: bytes) -> None:
    """Raise ValueError unless ``data``, read from the path or URI ``source``, is a document by
    its name and content: a document extension that agrees with the content (``.pdf`` holds a
    PDF; the others hold text or a PDF), or else content that is a PDF or an HTML page.

    >>> check_named("file:///notes/todo.txt", b"buy milk")
    >>> check_named("https://example.com/page", b"<!doctype html><p>Hi</p>")
    >>> check_named("file:///home/ann/.aws/credentials", b"[default]\\naws_secret_access_key=x")
    Traceback (most recent call last):
    ...
    ValueError: credentials is not named like a document (...) and its content is neither a PDF...
    """
    name = PurePosixPath(unquote(urlsplit(source).path)).name
    promised = DOCUMENT_EXTENSIONS.get(PurePosixPath(name).suffix.lower())
    found = detect_format(data)
    if promised == "pdf" and found != "pdf":
        raise ValueError(f"{name} is named like a PDF but does not start with %PDF-")
    if promised is None and found not in ("pdf", "html"):
        extensions = ", ".join(DOCUMENT_EXTENSIONS)
        raise ValueError(
            f"{name or 'the source'} is not named like a document ({extensions}) and its "
            "content is neither a PDF nor an HTML page; rename the file, or insert its bytes "
            "if you mean to store it")


def _text_of(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(_NOT_A_DOCUMENT) from None
    if "\x00" in text:  # valid UTF-8, but binary
        raise ValueError(_NOT_A_DOCUMENT)
    return text


def read_pdf(data: bytes) -> PdfReader:
    """The opened PDF; ValueError if it is encrypted (with a password), corrupt or empty."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ValueError("an encrypted PDF (it needs a password)")
        pages = len(reader.pages)
    except ValueError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise ValueError(f"not a readable PDF ({exc})") from None
    if pages < 1:
        raise ValueError("a PDF with no pages")
    return reader


def pdf_page_texts(reader: PdfReader) -> list[str]:
    """The text of each page, stripped; ValueError if a content stream is damaged. The text of
    the whole PDF is these joined with a blank line (:func:`text`)."""
    try:
        return [page.extract_text().strip() for page in reader.pages]
    except Exception as exc:  # damaged content streams
        raise ValueError(f"cannot extract the text of the PDF ({exc})") from None


def html_text(soup: BeautifulSoup) -> str:
    """The text of an HTML page, one line per block element, without scripts and styles
    (``soup`` is changed). As a browser shows it: a line break in the source of a paragraph is
    a space, and only ``<pre>`` keeps its lines.

    >>> html_text(BeautifulSoup("<h1>Tides</h1><p>High water\\ncomes twice.</p>", "html.parser"))
    'Tides\\nHigh water comes twice.'
    """
    for tag in soup(_HTML_SKIPPED):
        tag.decompose()
    for text in soup.find_all(string=True):
        if text.find_parent("pre") is None and "\n" in text:
            text.replace_with(text.replace("\n", " "))
    for tag in soup(_HTML_BLOCKS):  # block elements end lines, as a browser shows them
        tag.insert_after("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line)


def _tidy(value: Any) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


@media_check("document", check_source=check_named)
def check(data: bytes, ctype: T.DocumentType, reuse: bool = False) -> None:
    if detect_format(data) == "pdf":
        read_pdf(data)


@media_function("document", "format", T.String, is_property=True)
def doc_format(data: bytes) -> str:
    """``"pdf"``, ``"html"``, ``"markdown"`` or ``"text"``.

    >>> notes = db.create_table("notes", {"doc": lh.Document})
    >>> _ = notes.insert([{"doc": b"# Tides\\n\\nHigh water at **noon**.\\n"},
    ...                   {"doc": b"<html><title>Tides</title><p>Low water</p></html>"}],
    ...                  progress=False)
    >>> notes.select(notes.doc.format).collect()["format"].to_list()
    ['markdown', 'html']
    """
    return detect_format(data)


@media_function("document", "text", T.String)
def text(data: bytes) -> str:
    """The text: of every page of a PDF (pages separated by a blank line), of an HTML page
    (without scripts and styles, one line per block), or the Markdown or text itself.

    >>> notes = db.create_table("notes", {"doc": lh.Document})
    >>> page = (b"<html><head><title>Tides</title></head><body><script>x()</script>"
    ...         b"<p>High water</p><p>at noon</p></body></html>")
    >>> _ = notes.insert([{"doc": page}], progress=False)
    >>> notes.select(notes.doc.text()).collect().item()
    'High water\\nat noon'
    """
    kind = detect_format(data)
    if kind == "pdf":
        return "\n\n".join(pdf_page_texts(read_pdf(data)))
    if kind == "html":
        return html_text(BeautifulSoup(_text_of(data), "html.parser"))
    return _text_of(data)


@media_function("document", "page_count", T.Int, is_property=True)
def page_count(data: bytes) -> int:
    """Pages of a PDF; 1 for other documents.

    >>> notes = db.create_table("notes", {"doc": lh.Document})
    >>> page = (b"<html><head><title>Tides</title></head><body><script>x()</script>"
    ...         b"<p>High water</p><p>at noon</p></body></html>")
    >>> _ = notes.insert([{"doc": page}], progress=False)
    >>> notes.select(notes.doc.page_count).collect().item()
    1
    """
    return len(read_pdf(data).pages) if detect_format(data) == "pdf" else 1


@media_function("document", "metadata", T.Json)
def metadata(data: bytes) -> dict[str, Any]:
    """Format, page count, title and author where the document says them, as Json. The title of
    an HTML page is its ``<title>``; of Markdown, its first heading.

    >>> notes = db.create_table("notes", {"doc": lh.Document})
    >>> page = (b"<html><head><title>Tides</title></head><body><script>x()</script>"
    ...         b"<p>High water</p><p>at noon</p></body></html>")
    >>> _ = notes.insert([{"doc": page}], progress=False)
    >>> notes.select(notes.doc.metadata()).collect().item()
    '{"format":"html","page_count":1,"title":"Tides","author":null}'
    """
    kind = detect_format(data)
    title = author = None
    pages = 1
    if kind == "pdf":
        reader = read_pdf(data)
        pages = len(reader.pages)
        info = reader.metadata
        if info is not None:
            title, author = _tidy(info.title), _tidy(info.author)
    elif kind == "html":
        soup = BeautifulSoup(_text_of(data), "html.parser")
        title = _tidy(soup.title.get_text()) if soup.title else None
        found = soup.find("meta", attrs={"name": re.compile("^author$", re.IGNORECASE)})
        author = _tidy(found.get("content")) if found else None
    elif kind == "markdown":
        heading = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", _text_of(data), re.MULTILINE)
        title = heading.group(1) if heading else None
    return {"format": kind, "page_count": pages, "title": title, "author": author}
